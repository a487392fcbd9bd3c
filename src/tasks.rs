//! The one owner of a process's background work. Every task that outlives a request (chat
//! turns, the PostgreSQL event bridge, bookkeeping writes, and every later background
//! capability) is spawned here, so a stop can cancel them all and wait for what they hold to
//! be stored before the process exits.

use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Background tasks and the signal that tells them to stop. Cheap to clone.
#[derive(Clone, Default)]
pub struct Background {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Background {
    /// A fresh owner with nothing running.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs a task that finishes on its own and watches [`Background::stopping`] if it can
    /// run long; a stop waits for it.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Runs an endless service loop (a listener, a relay) that is simply dropped at stop:
    /// it holds nothing that must be stored.
    pub fn spawn_service<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// Cancelled when the process begins to stop: long tasks wind up and store what they have.
    pub fn stopping(&self) -> &CancellationToken {
        &self.stop
    }

    /// Tells every task to stop; returns at once.
    pub fn begin_stop(&self) {
        self.stop.cancel();
    }

    /// Tells every task to stop and waits up to `grace` for all of them; `false` when some
    /// were still running at the deadline (they are abandoned with the process).
    pub async fn stop(&self, grace: Duration) -> bool {
        self.begin_stop();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }

    /// Tasks running now.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }
}
