//! PostgreSQL LISTEN/NOTIFY bridge: every process publishes its events on one channel and
//! delivers the others' locally. Each process tags its notifications with a random id to
//! skip its own. A lost listener connection is re-established with backoff; events sent
//! while it was down are not replayed (subscribers resynchronise by querying).

use super::{Event, EventBus};
use crate::tasks::Background;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::mpsc;

/// The notification channel all Hearth processes share.
pub const CHANNEL: &str = "hearth_events";

#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: String,
    event: Event,
}

/// Starts the bridge for a database and returns the bus wired to it.
pub fn start(database_url: &str, capacity: usize, background: &Background) -> EventBus {
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let bus = EventBus::with_remote(capacity, out_tx);
    let origin = uuid::Uuid::new_v4().to_string();
    background.spawn_service(notifier(database_url.to_string(), origin.clone(), out_rx));
    background.spawn_service(listener(database_url.to_string(), origin, bus.clone()));
    bus
}

async fn connect_with_backoff(url: &str, attempt: &mut u32) -> AsyncPgConnection {
    loop {
        match AsyncPgConnection::establish(url).await {
            Ok(c) => {
                *attempt = 0;
                return c;
            }
            Err(e) => {
                *attempt += 1;
                let wait = Duration::from_millis(200 * 2u64.pow((*attempt).min(6)));
                tracing::warn!(error = %e, ?wait, "event bridge: cannot connect to PostgreSQL");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Sends this process's events with `pg_notify` on a connection of its own.
async fn notifier(url: String, origin: String, mut rx: mpsc::UnboundedReceiver<Event>) {
    let mut attempt = 0;
    let mut conn = connect_with_backoff(&url, &mut attempt).await;
    while let Some(event) = rx.recv().await {
        let payload = match serde_json::to_string(&Envelope {
            origin: origin.clone(),
            event,
        }) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "event bridge: cannot encode event");
                continue;
            }
        };
        for _ in 0..2 {
            let sent = diesel::sql_query("SELECT pg_notify($1, $2)")
                .bind::<Text, _>(CHANNEL)
                .bind::<Text, _>(&payload)
                .execute(&mut conn)
                .await;
            match sent {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "event bridge: notify failed, reconnecting");
                    conn = connect_with_backoff(&url, &mut attempt).await;
                }
            }
        }
    }
}

/// Listens on [`CHANNEL`] and delivers other processes' events locally.
async fn listener(url: String, origin: String, bus: EventBus) {
    let mut attempt = 0;
    loop {
        let mut conn = connect_with_backoff(&url, &mut attempt).await;
        if let Err(e) = conn.batch_execute(&format!("LISTEN {CHANNEL}")).await {
            tracing::warn!(error = %e, "event bridge: LISTEN failed");
            continue;
        }
        let mut stream = std::pin::pin!(conn.notifications_stream());
        while let Some(n) = stream.next().await {
            match n {
                Ok(n) => match serde_json::from_str::<Envelope>(&n.payload) {
                    Ok(env) if env.origin != origin => bus.deliver_local(env.event),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "event bridge: unreadable notification"),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "event bridge: connection lost");
                    break;
                }
            }
        }
    }
}
