//! Keeping a held lock: rotate its version every third of the lease, conditional on ownership.
//!
//! The lock is lost, loudly and for good, in two ways:
//! - a renew is refused: someone took the lock over (we looked dead to them) or an operator
//!   force-unlocked it;
//! - by time: no renew got through for a whole lease less a safety margin ([`loss_margin`]),
//!   counted from the moment the last successful one was *sent* (it took effect after that,
//!   so a waiter that saw its version cannot have seen it unchanged for a lease any earlier).
//!   Errors and hung calls both count: ExpiredToken on every renew is as lost as a refused
//!   write, since a waiter may have taken over meanwhile.
//!
//! Loss cancels [`Heartbeat::lost`], which the work the lock protects watches; [`Heartbeat::prove`]
//! renews at once, for a step that must not happen without the lock (ExecuteChangeSet), and
//! [`Heartbeat::stop`] reports the loss whichever way it came.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::record::{LockRecord, LockState};
use super::store::{self, Write};
use crate::registry::Registry;

/// How long before the lease (since the last proof) runs out the holder counts its lock as
/// lost: a tenth of the lease, at most 30 s.
///
/// Why not at the lease itself: that is the very moment a waiter that saw our version at
/// once may take over, and the holder does not stop at the instant it declares the loss: the
/// timer fires late on a loaded runner, the cancellation reaches the work it protects through
/// a task switch or two, and a request already on the wire (a CloudFormation call, a
/// `prove()` racing the deadline) still lands. Monotonic clocks on two machines also tick at
/// slightly different rates (NTP may slew one by up to 0.05 %). The margin makes the holder
/// give up first; it costs nothing while renews get through (they come every third of the
/// lease), and after a real outage it only ends our hold a little sooner.
pub(crate) fn loss_margin(lease: Duration) -> Duration {
    (lease / 10).min(Duration::from_secs(30))
}

/// The lock is no longer ours.
#[derive(Debug, Clone, thiserror::Error)]
#[error("lock {key:?} was lost: {detail}")]
pub struct LostLock {
    pub key: String,
    pub detail: String,
    /// Who holds it now, if anyone (known when a renew was refused).
    pub holder: Option<LockRecord>,
    /// True when the loss is by time (no renew got through for a lease), not by a refusal.
    pub by_time: bool,
}

/// A running heartbeat; stop it before releasing.
pub struct Heartbeat {
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

struct Shared {
    reg: Registry,
    key: String,
    lease: Duration,
    lost: CancellationToken,
    state: Mutex<State>,
}

struct State {
    record: LockRecord,
    /// When the last write that proved ownership (acquisition or renew) was sent.
    proved_at: Instant,
    last_error: Option<String>,
    loss: Option<LostLock>,
}

/// Starts heartbeating `record`, which was acquired just now.
pub fn spawn_heartbeat(reg: Registry, key: impl Into<String>, record: LockRecord) -> Heartbeat {
    spawn_heartbeat_since(reg, key, record, Instant::now())
}

/// Starts heartbeating `record`, whose acquiring write was sent at `proved_at`
/// ([`super::Acquired::written_at`]): the lease is counted from there.
pub fn spawn_heartbeat_since(
    reg: Registry,
    key: impl Into<String>,
    record: LockRecord,
    proved_at: Instant,
) -> Heartbeat {
    let shared = Arc::new(Shared {
        reg,
        key: key.into(),
        lease: record.lease(),
        lost: CancellationToken::new(),
        state: Mutex::new(State {
            record,
            proved_at,
            last_error: None,
            loss: None,
        }),
    });
    let stop = CancellationToken::new();
    let task = tokio::spawn(beat(shared.clone(), stop.clone()));
    Heartbeat { shared, stop, task }
}

impl Heartbeat {
    /// Stops heartbeating. `Ok` carries the record with the latest version; `Err` when the
    /// lock was lost, including by time when no renew got through for a whole lease.
    pub async fn stop(self) -> Result<LockRecord, LostLock> {
        self.stop.cancel();
        let _ = self.task.await;
        self.shared.check_time();
        let state = self.shared.state();
        match &state.loss {
            Some(loss) => Err(loss.clone()),
            None => Ok(state.record.clone()),
        }
    }

    /// Resolves when the lock is found lost (to stop the work it protects).
    pub fn lost(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.shared.lost.cancelled()
    }

    /// A token cancelled when the lock is lost, for work that outlives a borrow.
    pub fn lost_token(&self) -> CancellationToken {
        self.shared.lost.clone()
    }

    pub fn is_lost(&self) -> bool {
        self.shared.check_time();
        self.shared.lost.is_cancelled()
    }

    /// How the lock was lost, once it was.
    pub fn loss(&self) -> Option<LostLock> {
        self.shared.check_time();
        self.shared.state().loss.clone()
    }

    /// Proves the lock is still ours by a conditional write now, before a step that must not
    /// happen without it. Transient errors are retried for as long as the lease since the last
    /// proof allows; past that the lock counts as lost.
    pub async fn prove(&self) -> Result<LockRecord, LostLock> {
        loop {
            if let Some(loss) = self.loss() {
                return Err(loss);
            }
            let deadline = self.shared.lost_at();
            match self.shared.renew_until(deadline).await {
                Renewed::Yes(record) => return Ok(record),
                Renewed::Lost(loss) => return Err(loss),
                Renewed::Failed => {
                    let pause = (Instant::now() + Duration::from_millis(500)).min(deadline);
                    tokio::time::sleep_until(pause).await;
                }
            }
        }
    }
}

enum Renewed {
    Yes(LockRecord),
    Lost(LostLock),
    /// An error or a timeout that is not (yet) a loss: try again.
    Failed,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the lock counts as lost unless a renew gets through: the lease since the last
    /// proof, less the [`loss_margin`].
    fn lost_at(&self) -> Instant {
        self.state().proved_at + self.lease - loss_margin(self.lease)
    }

    /// Declares the loss by time if the lease since the last proof (less the margin) has run
    /// out.
    fn check_time(&self) {
        let lost_at = self.lost_at();
        let (expired, last_error) = {
            let s = self.state();
            (
                s.loss.is_none() && Instant::now() >= lost_at,
                s.last_error.clone(),
            )
        };
        if expired {
            let detail = format!(
                "no heartbeat got through for {} of its lease ({}): waiters may take it over any moment now{}",
                crate::duration::human(self.lease - loss_margin(self.lease)),
                crate::duration::human(self.lease),
                last_error
                    .map(|e| format!(". Last error: {e}"))
                    .unwrap_or_default()
            );
            self.declare(detail, None, true);
        }
    }

    /// Records the loss (the first one wins), says so once, and cancels `lost`.
    fn declare(&self, detail: String, holder: Option<LockRecord>, by_time: bool) -> LostLock {
        let mut s = self.state();
        if let Some(loss) = &s.loss {
            return loss.clone();
        }
        let loss = LostLock {
            key: self.key.clone(),
            detail,
            holder,
            by_time,
        };
        tracing::error!(
            "lock {:?} (fence {}) is no longer ours: {}. The work it protected is no longer exclusive",
            self.key,
            s.record.fence,
            loss.detail
        );
        s.loss = Some(loss.clone());
        drop(s);
        self.lost.cancel();
        loss
    }

    /// One renew, given up at `deadline` (the end of the lease since the last proof).
    async fn renew_until(&self, deadline: Instant) -> Renewed {
        let owner = self.state().record.info.owner.clone();
        let version = uuid::Uuid::new_v4().to_string();
        let sent = Instant::now();
        let attempt = tokio::time::timeout_at(
            deadline,
            store::renew(&self.reg, &self.key, &owner, &version),
        )
        .await;
        match attempt {
            Ok(Ok(Write::Done(renewed))) => {
                let mut s = self.state();
                if let Some(loss) = &s.loss {
                    // Too late: the lease had run out, someone may have held it meanwhile.
                    return Renewed::Lost(loss.clone());
                }
                s.record = renewed.clone();
                s.proved_at = sent;
                s.last_error = None;
                Renewed::Yes(renewed)
            }
            Ok(Ok(Write::Refused(now))) => {
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
                Renewed::Lost(self.declare(detail, holder, false))
            }
            Ok(Err(e)) => {
                tracing::warn!("lock heartbeat failed (retrying): {e}");
                self.state().last_error = Some(e.to_string());
                self.check_time();
                Renewed::Failed
            }
            Err(_) => {
                self.state().last_error =
                    Some("the renew did not answer before the lease ran out".into());
                self.check_time();
                Renewed::Failed
            }
        }
    }
}

async fn beat(shared: Arc<Shared>, stop: CancellationToken) {
    let interval = (shared.lease / 3).max(Duration::from_millis(50));
    // From the acquiring write, not from now: whatever ran since (the acquisition's own
    // clean-up, a slow start) already used part of the lease. Past already: renew at once.
    let mut next = shared.state().proved_at + interval;
    loop {
        let deadline = shared.lost_at();
        tokio::select! {
            _ = stop.cancelled() => return,
            // Wakes at the end of the lease too, so a loss by time is declared when it happens.
            _ = tokio::time::sleep_until(next.min(deadline)) => {}
        }
        shared.check_time();
        if shared.lost.is_cancelled() {
            return;
        }
        let renewed = tokio::select! {
            // Stopping mid-request is fine: the next owner-checked write (release) decides.
            _ = stop.cancelled() => return,
            r = shared.renew_until(deadline) => r,
        };
        match renewed {
            Renewed::Yes(_) => next = Instant::now() + interval,
            Renewed::Lost(_) => return,
            Renewed::Failed => next = Instant::now() + Duration::from_secs(1).min(interval),
        }
    }
}
