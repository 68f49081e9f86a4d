//! Release, status and force-unlock.

use std::time::Duration;

use serde::Serialize;

use super::freeze::Freeze;
use super::record::{LockRecord, LockState, QueueTicket};
use super::store::{self, Write};
use crate::registry::item::{Item, get_s};
use crate::registry::{Registry, RegistryError};

/// What [`release`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome {
    Released(LockRecord),
    /// Nobody holds it (already released, never taken, force-unlocked).
    AlreadyFree,
    /// Someone else holds it (we were taken over): left untouched.
    HeldByOther(LockRecord),
}

/// Releases `key` if `owner` holds it: an owner-checked conditional write, never a blind
/// delete. Idempotent: releasing twice, or after a takeover, changes nothing and says so.
pub async fn release(
    reg: &Registry,
    key: &str,
    owner: &str,
) -> Result<ReleaseOutcome, RegistryError> {
    // Found by the soak: a release whose SDK attempts (three) all met a fault failed, and the
    // lock stayed taken for a whole lease (6 h in mode lock). The owner-checked write
    // is safe to repeat: one whose answer was lost has freed the lock, and the next finds it
    // free (`AlreadyFree`) or someone else's. Tried again while the first try began less than
    // RELEASE_RETRY_WITHIN ago, so a cancelled step still ends long before the runner's kill.
    let began = tokio::time::Instant::now();
    loop {
        match release_once(reg, key, owner).await {
            Err(e) if e.is_unavailable() && began.elapsed() < RELEASE_RETRY_WITHIN => {
                tracing::warn!("releasing lock {key:?} failed (trying again): {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            other => return other,
        }
    }
}

/// Says on the lock item that `owner`'s run was cancelled and keeps the lock while its
/// update rolls back (`note`, for people: `lock status`, the waiters' log lines). `false`
/// when the lock is no longer `owner`'s.
pub async fn note_cancelling(
    reg: &Registry,
    key: &str,
    owner: &str,
    note: &str,
) -> Result<bool, RegistryError> {
    Ok(matches!(
        store::note_cancelling(reg, key, owner, note).await?,
        store::Write::Done(_)
    ))
}

/// How long after the first try a failed release is tried again.
const RELEASE_RETRY_WITHIN: Duration = Duration::from_secs(6);

async fn release_once(
    reg: &Registry,
    key: &str,
    owner: &str,
) -> Result<ReleaseOutcome, RegistryError> {
    let version = uuid::Uuid::new_v4().to_string();
    Ok(
        match store::free_if_owner(reg, key, owner, &version).await? {
            Write::Done(record) => ReleaseOutcome::Released(record),
            Write::Refused(LockState::Held(other)) if other.info.owner != owner => {
                ReleaseOutcome::HeldByOther(other)
            }
            // Held by us after all (the item changed between the write and the read): try again.
            Write::Refused(LockState::Held(_)) => {
                match store::free_if_owner(reg, key, owner, &version).await? {
                    Write::Done(record) => ReleaseOutcome::Released(record),
                    Write::Refused(LockState::Held(other)) => ReleaseOutcome::HeldByOther(other),
                    Write::Refused(_) => ReleaseOutcome::AlreadyFree,
                }
            }
            Write::Refused(_) => ReleaseOutcome::AlreadyFree,
        },
    )
}

/// An audit record (force-unlock, takeover).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub what: String,
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_run_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fence: Option<String>,
    /// The end of a freeze (`freeze` records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

impl AuditEntry {
    fn from_item(item: &Item) -> AuditEntry {
        let text = |name: &str| get_s(item, name).map(str::to_string);
        AuditEntry {
            what: text("what").unwrap_or_default(),
            at: text("at").unwrap_or_default(),
            by: text("by"),
            reason: text("reason"),
            previous_owner: text("previous_owner"),
            previous_run_url: text("previous_run_url"),
            fence: text("fence"),
            until: text("until"),
        }
    }
}

/// Everything known about one lock.
#[derive(Debug, Clone)]
pub struct LockStatus {
    pub key: String,
    pub lock: LockState,
    /// Queue tickets in queue order (high priority first, then oldest first). A single read
    /// cannot tell live from stale tickets.
    pub queue: Vec<QueueTicket>,
    /// Latest force-unlocks and takeovers, newest first.
    pub audit: Vec<AuditEntry>,
}

pub async fn status(reg: &Registry, key: &str) -> Result<LockStatus, RegistryError> {
    let (lock, mut queue) = store::read_partition(reg, key).await?;
    if let Some(h) = lock.holder() {
        queue.retain(|t| t.info.owner != h.info.owner);
    }
    super::order::sort(&mut queue);
    let audit = store::read_audit(reg, key, 5)
        .await?
        .iter()
        .map(AuditEntry::from_item)
        .collect();
    Ok(LockStatus {
        key: key.to_string(),
        lock,
        queue,
        audit,
    })
}

/// Every lock in the table with its state.
pub async fn list(reg: &Registry) -> Result<Vec<(String, LockState)>, RegistryError> {
    store::scan_locks(reg).await
}

/// Frees `key` whoever holds it, recording `who` and `reason` on the lock item and in an
/// audit record. Returns the record removed, `None` if it was not held. The removed holder's
/// next heartbeat fails and it reports the loss loudly. A freeze on the lock ends too (see
/// [`force_unlock_all`] to learn which).
pub async fn force_unlock(
    reg: &Registry,
    key: &str,
    reason: &str,
    who: &str,
) -> Result<Option<LockRecord>, RegistryError> {
    Ok(force_unlock_all(reg, key, reason, who).await?.removed)
}

/// What [`force_unlock_all`] removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForceUnlocked {
    /// The run that held the lock.
    pub removed: Option<LockRecord>,
    /// The freeze that was on it.
    pub freeze_ended: Option<Freeze>,
}

/// [`force_unlock`], also saying which freeze it ended: force-unlock is the operator's "make
/// this lock usable now", so it ends a freeze as well (recorded like `unfreeze`).
pub async fn force_unlock_all(
    reg: &Registry,
    key: &str,
    reason: &str,
    who: &str,
) -> Result<ForceUnlocked, RegistryError> {
    // The holder may heartbeat between our read and our write: retry with the new version.
    for _ in 0..5 {
        let held = match store::read_lock(reg, key).await? {
            LockState::Held(held) => held,
            _ => {
                let freeze_ended = unfreeze(reg, key, who, Some(reason)).await?;
                return Ok(ForceUnlocked {
                    removed: None,
                    freeze_ended,
                });
            }
        };
        let version = uuid::Uuid::new_v4().to_string();
        if let Write::Done(removed) =
            store::free_if_version(reg, key, &held, &version, who, Some(reason)).await?
        {
            let fields = [
                ("by", who.to_string()),
                ("reason", reason.to_string()),
                ("previous_owner", removed.info.owner.clone()),
                (
                    "previous_run_url",
                    removed.info.run_url.clone().unwrap_or_default(),
                ),
                ("fence", removed.fence.to_string()),
            ];
            if let Err(e) = store::put_audit(reg, key, "force-unlock", &fields).await {
                tracing::warn!("lock removed, but the audit record could not be written: {e}");
            }
            let freeze_ended = removed.freeze.clone();
            return Ok(ForceUnlocked {
                removed: Some(removed),
                freeze_ended,
            });
        }
    }
    Err(RegistryError::Unavailable {
        table: reg.table().to_string(),
        operation: "force-unlock",
        detail: "the lock kept changing under us (5 attempts); try again".into(),
    })
}

/// What [`freeze`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frozen {
    pub freeze: Freeze,
    /// The run holding the lock: it finishes, nobody gets the lock after it until the freeze
    /// ends.
    pub holder: Option<LockRecord>,
    /// The freeze this one replaced (a new end or reason), if one was in force.
    pub replaced: Option<Freeze>,
    /// Runs waiting in the queue: they keep their places.
    pub waiting: usize,
}

/// Freezes `key`: from now until `freeze.until` nobody acquires it; a run holding it now
/// finishes. Replaces a freeze already there (to extend or shorten it). Recorded in the audit
/// trail.
pub async fn freeze(reg: &Registry, key: &str, freeze: &Freeze) -> Result<Frozen, RegistryError> {
    let version = uuid::Uuid::new_v4().to_string();
    let before = store::set_freeze(reg, key, freeze, &version).await?;
    let fields = [
        ("by", freeze.by.clone()),
        ("reason", freeze.reason.clone()),
        ("until", freeze.until.clone()),
        (
            "previous_owner",
            before
                .holder()
                .map(|h| h.info.owner.clone())
                .unwrap_or_default(),
        ),
    ];
    if let Err(e) = store::put_audit(reg, key, "freeze", &fields).await {
        tracing::warn!("lock frozen, but the audit record could not be written: {e}");
    }
    let now_ms = reg.clock().now_ms();
    let (_, mut queue) = store::read_partition(reg, key).await?;
    if let Some(h) = before.holder() {
        queue.retain(|t| t.info.owner != h.info.owner);
    }
    Ok(Frozen {
        freeze: freeze.clone(),
        holder: before.holder().cloned(),
        replaced: before.active_freeze(now_ms).cloned(),
        waiting: queue.len(),
    })
}

/// Ends the freeze on `key` early (also an expired one still on the item), recording `who`
/// and why. Returns the freeze removed, `None` when there was none. The head of the queue
/// takes the lock within about a second; a run that held it keeps it.
pub async fn unfreeze(
    reg: &Registry,
    key: &str,
    who: &str,
    reason: Option<&str>,
) -> Result<Option<Freeze>, RegistryError> {
    let version = uuid::Uuid::new_v4().to_string();
    let Some(before) = store::clear_freeze(reg, key, &version).await? else {
        return Ok(None);
    };
    let ended = before.freeze().cloned();
    let fields = [
        ("by", who.to_string()),
        ("reason", reason.unwrap_or_default().to_string()),
        (
            "previous_owner",
            ended
                .as_ref()
                .map(|f| super::freeze::label(&f.by))
                .unwrap_or_default(),
        ),
    ];
    if let Err(e) = store::put_audit(reg, key, "unfreeze", &fields).await {
        tracing::warn!("lock unfrozen, but the audit record could not be written: {e}");
    }
    Ok(ended)
}
