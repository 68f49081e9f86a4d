//! Release, status and force-unlock.

use serde::Serialize;

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
        }
    }
}

/// Everything known about one lock.
#[derive(Debug, Clone)]
pub struct LockStatus {
    pub key: String,
    pub lock: LockState,
    /// Queue tickets, oldest first. A single read cannot tell live from stale tickets.
    pub queue: Vec<QueueTicket>,
    /// Latest force-unlocks and takeovers, newest first.
    pub audit: Vec<AuditEntry>,
}

pub async fn status(reg: &Registry, key: &str) -> Result<LockStatus, RegistryError> {
    let (lock, mut queue) = store::read_partition(reg, key).await?;
    if let Some(h) = lock.holder() {
        queue.retain(|t| t.info.owner != h.info.owner);
    }
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
/// next heartbeat fails and it reports the loss loudly.
pub async fn force_unlock(
    reg: &Registry,
    key: &str,
    reason: &str,
    who: &str,
) -> Result<Option<LockRecord>, RegistryError> {
    // The holder may heartbeat between our read and our write: retry with the new version.
    for _ in 0..5 {
        let LockState::Held(held) = store::read_lock(reg, key).await? else {
            return Ok(None);
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
            return Ok(Some(removed));
        }
    }
    Err(RegistryError::Unavailable {
        table: reg.table().to_string(),
        operation: "force-unlock",
        detail: "the lock kept changing under us (5 attempts); try again".into(),
    })
}
