//! Keeping a held lock: rotate its version every third of the lease, conditional on ownership.
//!
//! A failed condition means someone took the lock over (we looked dead to them) or
//! force-unlocked it: that is reported loudly at once, and `stop()` returns [`LostLock`].
//! Transient registry errors are retried every second; after a whole lease without a
//! successful heartbeat a warning says waiters may take the lock over.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::record::{LockRecord, LockState};
use super::store::{self, Write};
use crate::registry::Registry;

/// The lock is no longer ours.
#[derive(Debug, Clone, thiserror::Error)]
#[error("lock {key:?} was lost: {detail}")]
pub struct LostLock {
    pub key: String,
    pub detail: String,
    /// Who holds it now, if anyone.
    pub holder: Option<LockRecord>,
}

/// A running heartbeat; stop it before releasing.
pub struct Heartbeat {
    stop: CancellationToken,
    lost: CancellationToken,
    task: JoinHandle<Result<LockRecord, LostLock>>,
}

impl Heartbeat {
    /// Stops heartbeating. `Ok` carries the record with the latest version.
    pub async fn stop(self) -> Result<LockRecord, LostLock> {
        self.stop.cancel();
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(LostLock {
                key: String::new(),
                detail: format!("heartbeat task failed: {e}"),
                holder: None,
            }),
        }
    }

    /// Resolves when the lock is found lost (e.g. to stop the work it protects).
    pub fn lost(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.lost.cancelled()
    }

    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }
}

/// Starts heartbeating `record` (which we hold) every `lease / 3`.
pub fn spawn_heartbeat(reg: Registry, key: impl Into<String>, record: LockRecord) -> Heartbeat {
    let key = key.into();
    let stop = CancellationToken::new();
    let lost = CancellationToken::new();
    let task = tokio::spawn(beat(reg, key, record, stop.clone(), lost.clone()));
    Heartbeat { stop, lost, task }
}

async fn beat(
    reg: Registry,
    key: String,
    mut record: LockRecord,
    stop: CancellationToken,
    lost: CancellationToken,
) -> Result<LockRecord, LostLock> {
    let lease = record.lease();
    let interval = (lease / 3).max(Duration::from_millis(50));
    let mut last_ok = Instant::now();
    let mut warned = false;
    let mut next = Instant::now() + interval;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(record),
            _ = tokio::time::sleep_until(next) => {}
        }
        let version = uuid::Uuid::new_v4().to_string();
        let attempt = tokio::select! {
            // Stopping mid-request is fine: the next owner-checked write (release) decides.
            _ = stop.cancelled() => return Ok(record),
            r = store::renew(&reg, &key, &record.info.owner, &version) => r,
        };
        match attempt {
            Ok(Write::Done(renewed)) => {
                record = renewed;
                last_ok = Instant::now();
                warned = false;
                next = last_ok + interval;
            }
            Ok(Write::Refused(now)) => {
                let holder = now.holder().cloned();
                let detail = match &now {
                    LockState::Held(r) => format!(
                        "it is now held by {} (fence {})",
                        r.info.describe(),
                        r.fence
                    ),
                    LockState::Free(f) => match &f.force_reason {
                        Some(why) => format!(
                            "it was force-unlocked by {}: {why}",
                            f.released_by.as_deref().unwrap_or("someone")
                        ),
                        None => "it was released by someone else".to_string(),
                    },
                    LockState::Absent => "the lock item is gone".to_string(),
                };
                let text = format!(
                    "lock {key:?} (fence {}) is no longer ours: {detail}. The work it protected is no longer exclusive",
                    record.fence
                );
                tracing::error!("{text}");
                crate::action::log::error("Lock lost", &text);
                lost.cancel();
                return Err(LostLock {
                    key,
                    detail,
                    holder,
                });
            }
            Err(e) => {
                if last_ok.elapsed() >= lease && !warned {
                    warned = true;
                    let text = format!(
                        "no heartbeat for lock {key:?} got through for a whole lease ({}): other waiters may take it over. Last error: {e}",
                        crate::duration::human(lease)
                    );
                    tracing::error!("{text}");
                    crate::action::log::warning("Lock heartbeat failing", &text);
                } else {
                    tracing::warn!("lock heartbeat failed (retrying): {e}");
                }
                next = Instant::now() + Duration::from_secs(1).min(interval);
            }
        }
    }
}
