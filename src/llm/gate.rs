//! Per-model concurrency: at most `limit` generations run, at most `queue` wait for a slot,
//! and anyone beyond that is refused at once with `model_busy` instead of piling up.

use crate::error::{AppError, AppResult, ErrorCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A semaphore with a bounded wait queue.
pub struct Gate {
    slots: Arc<Semaphore>,
    limit: usize,
    queue: usize,
    waiting: AtomicUsize,
}

/// Decrements the waiting count however the wait ends (slot, cancellation).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    /// `limit` concurrent holders, `queue` waiters.
    pub fn new(limit: usize, queue: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
            queue,
            waiting: AtomicUsize::new(0),
        }
    }

    /// The configured concurrency.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Holders now.
    pub fn running(&self) -> usize {
        self.limit - self.slots.available_permits()
    }

    /// Waiters now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// A slot, waiting in line if the queue has room.
    pub async fn acquire(&self) -> AppResult<OwnedSemaphorePermit> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(p);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(AppError::new(
                ErrorCode::ModelBusy,
                "the model is at its concurrency limit and its queue is full; retry shortly",
            ));
        }
        let _w = Waiting(&self.waiting);
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(AppError::internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queue_is_bounded_and_slots_are_released() {
        let gate = Arc::new(Gate::new(1, 1));
        let first = gate.acquire().await.unwrap();
        let g2 = gate.clone();
        let second = tokio::spawn(async move { g2.acquire().await.map(|_| ()) });
        while gate.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        let third = gate.acquire().await.unwrap_err();
        assert_eq!(third.code, ErrorCode::ModelBusy);
        drop(first);
        second.await.unwrap().unwrap();
        assert_eq!(gate.running(), 0);
        assert_eq!(gate.waiting(), 0);
    }
}
