//! What the lock item and the queue tickets hold, and how they map to DynamoDB items.
//!
//! Pure data and conversions, no I/O: unit-tested here without a server.

use serde::{Deserialize, Serialize};

use super::freeze::Freeze;
use super::order::Priority;
use crate::registry::item::{self, Item, get_n, get_s, n, put_opt_n, put_opt_s, s};
use crate::registry::keys;

/// Who holds (or waits for) a lock: everything a person needs to find that run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderInfo {
    /// The identity ownership checks compare: correlation ID + run id + attempt. A rerun attempt
    /// of the same run is therefore a different owner (its previous attempt is completed, so the
    /// GitHub liveness check frees the old lock).
    pub owner: String,
    pub correlation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Machine (and user, outside GitHub) the holder runs on, like Terraform's `Who`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// The owner string for a correlation ID and, inside GitHub Actions, a run id and attempt.
pub fn owner_for(correlation_id: &str, run_id: Option<u64>, run_attempt: Option<u32>) -> String {
    match (run_id, run_attempt) {
        (Some(id), Some(attempt)) => format!("{correlation_id}/{id}/{attempt}"),
        (Some(id), None) => format!("{correlation_id}/{id}"),
        _ => correlation_id.to_string(),
    }
}

impl HolderInfo {
    /// Builds the holder description from the runner's `GITHUB_*` variables (all optional: the
    /// CLI runs outside GitHub too).
    pub fn from_env(correlation_id: &str, env: &dyn Fn(&str) -> Option<String>) -> HolderInfo {
        let get = |name: &str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let repository = get("GITHUB_REPOSITORY");
        let run_id = get("GITHUB_RUN_ID").and_then(|v| v.parse().ok());
        let run_attempt = get("GITHUB_RUN_ATTEMPT").and_then(|v| v.parse().ok());
        let server = get("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".to_string());
        let run_url = match (&repository, run_id) {
            (Some(repo), Some(id)) => Some(match run_attempt {
                Some(attempt) => format!("{server}/{repo}/actions/runs/{id}/attempts/{attempt}"),
                None => format!("{server}/{repo}/actions/runs/{id}"),
            }),
            _ => None,
        };
        let host = match (get("GITHUB_ACTIONS"), get("USER")) {
            (Some(_), _) => get("RUNNER_NAME").or_else(|| get("HOSTNAME")),
            (None, user) => {
                let host = get("HOSTNAME").or_else(read_hostname);
                match (user, host) {
                    (Some(u), Some(h)) => Some(format!("{u}@{h}")),
                    (u, h) => u.or(h),
                }
            }
        };
        HolderInfo {
            owner: owner_for(correlation_id, run_id, run_attempt),
            correlation_id: correlation_id.to_string(),
            repository,
            run_id,
            run_attempt,
            job: get("GITHUB_JOB"),
            actor: get("GITHUB_ACTOR"),
            sha: get("GITHUB_SHA"),
            git_ref: get("GITHUB_REF"),
            run_url,
            stack: None,
            mode: None,
            workflow: get("GITHUB_WORKFLOW"),
            host,
        }
    }

    /// Where the run's commit comes from: `acme/api@main` (a branch without `refs/heads/`),
    /// `acme/api@refs/tags/v1`, or the owner when the run carries no repository.
    pub fn origin(&self) -> String {
        match (&self.repository, &self.git_ref) {
            (Some(repo), Some(r)) => {
                format!("{repo}@{}", r.strip_prefix("refs/heads/").unwrap_or(r))
            }
            (Some(repo), None) => repo.clone(),
            _ => format!("owner {}", self.owner),
        }
    }

    /// The commit, shortened to 7 characters, if known.
    pub fn short_sha(&self) -> Option<&str> {
        self.sha.as_deref().map(|s| s.get(..7).unwrap_or(s))
    }

    /// One line for logs: `acme/api run 42 (attempt 1) by alice at abc1234 — <url>`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        match (&self.repository, self.run_id) {
            (Some(repo), Some(id)) => {
                out.push_str(&format!("{repo} run {id}"));
                if let Some(a) = self.run_attempt {
                    out.push_str(&format!(" (attempt {a})"));
                }
            }
            _ => out.push_str(&format!("owner {}", self.owner)),
        }
        if let Some(actor) = &self.actor {
            out.push_str(&format!(" by {actor}"));
        }
        if let Some(sha) = &self.sha {
            out.push_str(&format!(" at {}", sha.get(..7).unwrap_or(sha)));
        }
        if let Some(host) = &self.host {
            out.push_str(&format!(" on {host}"));
        }
        if let Some(url) = &self.run_url {
            out.push_str(&format!(" — {url}"));
        }
        out
    }

    fn write(&self, item: &mut Item) {
        item.insert("owner".into(), s(&self.owner));
        item.insert("correlation_id".into(), s(&self.correlation_id));
        put_opt_s(item, "repository", self.repository.as_deref());
        put_opt_n(item, "run_id", self.run_id);
        put_opt_n(item, "run_attempt", self.run_attempt);
        put_opt_s(item, "job", self.job.as_deref());
        put_opt_s(item, "actor", self.actor.as_deref());
        put_opt_s(item, "sha", self.sha.as_deref());
        put_opt_s(item, "git_ref", self.git_ref.as_deref());
        put_opt_s(item, "run_url", self.run_url.as_deref());
        put_opt_s(item, "stack", self.stack.as_deref());
        put_opt_s(item, "mode", self.mode.as_deref());
        put_opt_s(item, "workflow", self.workflow.as_deref());
        put_opt_s(item, "host", self.host.as_deref());
    }

    fn read(item: &Item) -> Option<HolderInfo> {
        let text = |name: &str| get_s(item, name).map(str::to_string);
        Some(HolderInfo {
            owner: text("owner")?,
            correlation_id: text("correlation_id").unwrap_or_default(),
            repository: text("repository"),
            run_id: get_n(item, "run_id"),
            run_attempt: get_n(item, "run_attempt"),
            job: text("job"),
            actor: text("actor"),
            sha: text("sha"),
            git_ref: text("git_ref"),
            run_url: text("run_url"),
            stack: text("stack"),
            mode: text("mode"),
            workflow: text("workflow"),
            host: text("host"),
        })
    }
}

fn read_hostname() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// A held lock, as stored in the lock item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    #[serde(flatten)]
    pub info: HolderInfo,
    /// Grows by one with every acquisition, never reused (also across release and
    /// force-unlock): a deployment can hand it to systems that reject older fences.
    pub fence: u64,
    /// Random, rotated by every heartbeat. Waiters watch it on their own clock.
    pub version: String,
    /// How long the holder may go without a heartbeat before waiters may take over.
    pub lease_ms: u64,
    /// When it was acquired, on the HOLDER's clock: for people, never for staleness.
    pub acquired_at: String,
    /// Last heartbeat, on the holder's clock: for people, never for staleness.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_at: Option<String>,
    /// A freeze set while this run holds the lock: the run finishes, nobody else gets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze: Option<Freeze>,
    /// How long waiters have watched a version of this record unchanged between them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watched: Option<Watched>,
    /// The time per acquisition its holder saw while it waited (a duration on its own
    /// monotonic clock): a waiter that just arrived schedules its first polls from it. Only
    /// for scheduling, never for staleness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle_ms: Option<u64>,
    /// The queue mark ([`QUEUE_MARK`]) on the item as read; never written by [`Self::to_item`],
    /// so an acquisition clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_mark: Option<String>,
    /// The holder's run was cancelled and keeps the lock while the rollback of its cancelled
    /// update runs (`on-cancel: cancel-update`): what it said, for people. Not a heartbeat:
    /// staleness goes on as for any holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelling: Option<String>,
}

/// The attribute of the lock item that a waiter sets, to the key of its new ticket, when the
/// ticket changes who should go next: a high-priority ticket, or one that may supersede an
/// earlier waiter of the same ref. The head only polls the lock item; its acquiring write is
/// conditional on the mark it saw with its last read of the queue, so a ticket that came in
/// since makes the write fail and the head reads the queue again before anyone takes the lock.
/// Release, heartbeat and freeze are UpdateItems that keep it; an acquisition (a whole-item
/// PutItem) removes it: from then on every waiter learns the queue from its own reads.
pub(crate) const QUEUE_MARK: &str = "queue_mark";

/// A waiter's observation, left on the lock item for the next waiter: version `version` was
/// seen unchanged for at least `unchanged_ms`, measured on monotonic clocks (one waiter's, or
/// several one after the other: each continues from what the previous one recorded, and the
/// gaps between them only make the sum smaller than the truth). It lets waiters whose
/// `lock-timeout` is shorter than the holder's lease free a dead holder together. Written
/// conditionally on the version, so a heartbeat (a new version) makes it void.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watched {
    pub version: String,
    pub unchanged_ms: u64,
}

impl Watched {
    fn read(item: &Item) -> Option<Watched> {
        Some(Watched {
            version: get_s(item, "watched_version")?.to_string(),
            unchanged_ms: get_n(item, "watched_ms")?,
        })
    }

    /// This observation, if it is about `version` (else a heartbeat made it void).
    pub fn of(&self, version: &str) -> Option<std::time::Duration> {
        (self.version == version).then(|| std::time::Duration::from_millis(self.unchanged_ms))
    }
}

/// The tombstone left by a release or a force-unlock. It keeps the fence counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeLock {
    pub version: String,
    pub fence: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
    /// Set when the lock was removed by `lock force-unlock`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_reason: Option<String>,
    /// A freeze on the free lock: nobody gets it until the freeze ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze: Option<Freeze>,
    /// The last holder's [`LockRecord::cycle_ms`], kept by the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle_ms: Option<u64>,
    /// See [`QUEUE_MARK`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_mark: Option<String>,
}

/// The lock item as read from the table.
// Held inline: one value per read, never stored in bulk, so the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// Never taken (or the table was recreated).
    Absent,
    Free(FreeLock),
    Held(LockRecord),
}

impl LockState {
    pub fn fence(&self) -> u64 {
        match self {
            LockState::Absent => 0,
            LockState::Free(f) => f.fence,
            LockState::Held(r) => r.fence,
        }
    }

    pub fn holder(&self) -> Option<&LockRecord> {
        match self {
            LockState::Held(r) => Some(r),
            _ => None,
        }
    }

    /// The time per acquisition the last holder saw while it waited (scheduling only).
    pub fn cycle_hint(&self) -> Option<std::time::Duration> {
        match self {
            LockState::Absent => None,
            LockState::Free(f) => f.cycle_ms,
            LockState::Held(r) => r.cycle_ms,
        }
        .map(std::time::Duration::from_millis)
    }

    /// The queue mark on the lock item ([`QUEUE_MARK`]).
    pub fn queue_mark(&self) -> Option<&str> {
        match self {
            LockState::Absent => None,
            LockState::Free(f) => f.queue_mark.as_deref(),
            LockState::Held(r) => r.queue_mark.as_deref(),
        }
    }

    /// The freeze on the lock item, in force or not.
    pub fn freeze(&self) -> Option<&Freeze> {
        match self {
            LockState::Absent => None,
            LockState::Free(f) => f.freeze.as_ref(),
            LockState::Held(r) => r.freeze.as_ref(),
        }
    }

    /// The freeze in force at `now_ms` (the reader's wall clock), if any.
    pub fn active_freeze(&self, now_ms: u64) -> Option<&Freeze> {
        self.freeze().filter(|f| f.is_active(now_ms))
    }

    /// Reads a lock item; `None` (no item) is [`LockState::Absent`].
    pub fn from_item(item: Option<&Item>) -> Result<LockState, String> {
        let Some(item) = item else {
            return Ok(LockState::Absent);
        };
        let version = get_s(item, "version")
            .ok_or("lock item without a version")?
            .to_string();
        let fence = get_n(item, "fence").ok_or("lock item without a fence")?;
        if get_s(item, "state") == Some(STATE_HELD) {
            let info = HolderInfo::read(item).ok_or("held lock item without an owner")?;
            Ok(LockState::Held(LockRecord {
                info,
                fence,
                version,
                lease_ms: get_n(item, "lease_ms").ok_or("held lock item without lease_ms")?,
                acquired_at: get_s(item, "acquired_at").unwrap_or_default().to_string(),
                heartbeat_at: get_s(item, "heartbeat_at").map(str::to_string),
                freeze: Freeze::read(item),
                watched: Watched::read(item),
                cycle_ms: get_n(item, "cycle_ms"),
                queue_mark: get_s(item, QUEUE_MARK).map(str::to_string),
                cancelling: get_s(item, "cancelling").map(str::to_string),
            }))
        } else {
            let text = |name: &str| get_s(item, name).map(str::to_string);
            Ok(LockState::Free(FreeLock {
                version,
                fence,
                last_owner: text("last_owner"),
                released_at: text("released_at"),
                released_by: text("released_by"),
                force_reason: text("force_reason"),
                freeze: Freeze::read(item),
                cycle_ms: get_n(item, "cycle_ms"),
                queue_mark: get_s(item, QUEUE_MARK).map(str::to_string),
            }))
        }
    }
}

pub(crate) const STATE_HELD: &str = "held";
pub(crate) const STATE_FREE: &str = "free";

impl LockRecord {
    /// The whole lock item, as one PutItem writes it.
    pub fn to_item(&self, key: &str) -> Item {
        let mut item = item::key(key, keys::LOCK);
        item.insert("state".into(), s(STATE_HELD));
        self.info.write(&mut item);
        item.insert("fence".into(), n(self.fence));
        item.insert("version".into(), s(&self.version));
        item.insert("lease_ms".into(), n(self.lease_ms));
        item.insert("acquired_at".into(), s(&self.acquired_at));
        put_opt_s(&mut item, "heartbeat_at", self.heartbeat_at.as_deref());
        put_opt_n(&mut item, "cycle_ms", self.cycle_ms);
        put_opt_s(&mut item, "cancelling", self.cancelling.as_deref());
        if let Some(f) = &self.freeze {
            f.write(&mut item);
        }
        item
    }

    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.lease_ms)
    }
}

/// A waiter's place in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueTicket {
    /// The ticket's sort key, `QUEUE#<ms>#<correlation ID>`.
    pub sk: String,
    #[serde(flatten)]
    pub info: HolderInfo,
    /// Wall-clock enqueue time on the WAITER's clock: it only orders the queue.
    pub enqueued_ms: u64,
    /// Rotated by the waiter's ticket heartbeat.
    pub version: String,
    /// A ticket whose version has not changed for this long (on the observer's clock) is
    /// skipped: its waiter died.
    pub lease_ms: u64,
    /// The lease the waiter will ask for once it holds the lock (for ETAs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wants_lease_ms: Option<u64>,
    /// Input `priority`: a high ticket goes ahead of normal ones ([`super::order`]). Absent
    /// on tickets of earlier versions: normal.
    #[serde(default, skip_serializing_if = "is_normal")]
    pub priority: Priority,
}

fn is_normal(p: &Priority) -> bool {
    *p == Priority::Normal
}

impl QueueTicket {
    pub fn to_item(&self, key: &str, expires_at: i64) -> Item {
        let mut item = item::key(key, &self.sk);
        self.info.write(&mut item);
        item.insert("enqueued_ms".into(), n(self.enqueued_ms));
        item.insert("version".into(), s(&self.version));
        item.insert("lease_ms".into(), n(self.lease_ms));
        put_opt_n(&mut item, "wants_lease_ms", self.wants_lease_ms);
        if self.priority != Priority::Normal {
            item.insert("priority".into(), s(self.priority.as_str()));
        }
        item.insert(crate::registry::TTL_ATTRIBUTE.into(), n(expires_at));
        item
    }

    pub fn from_item(item: &Item) -> Result<QueueTicket, String> {
        let sk = get_s(item, "sk").ok_or("ticket without sk")?.to_string();
        let (ms, _) =
            keys::parse_queue_ticket(&sk).ok_or_else(|| format!("malformed ticket key {sk:?}"))?;
        Ok(QueueTicket {
            info: HolderInfo::read(item).ok_or("ticket without an owner")?,
            enqueued_ms: get_n(item, "enqueued_ms").unwrap_or(ms),
            version: get_s(item, "version")
                .ok_or("ticket without a version")?
                .to_string(),
            lease_ms: get_n(item, "lease_ms").ok_or("ticket without lease_ms")?,
            wants_lease_ms: get_n(item, "wants_lease_ms"),
            // An unknown word from a newer version counts as normal: FIFO is never wrong.
            priority: get_s(item, "priority")
                .and_then(|p| Priority::parse(p).ok())
                .unwrap_or_default(),
            sk,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> HolderInfo {
        let env = |name: &str| {
            Some(
                match name {
                    "GITHUB_REPOSITORY" => "acme/api",
                    "GITHUB_RUN_ID" => "42",
                    "GITHUB_RUN_ATTEMPT" => "2",
                    "GITHUB_ACTOR" => "alice",
                    "GITHUB_SHA" => "abcdef0123456",
                    "GITHUB_ACTIONS" => "true",
                    "GITHUB_SERVER_URL" => "https://github.example",
                    _ => return None,
                }
                .to_string(),
            )
        };
        HolderInfo::from_env("20260114-123456-abcdef0", &env)
    }

    #[test]
    fn owner_and_run_url_come_from_the_runner_env() {
        let i = info();
        assert_eq!(i.owner, "20260114-123456-abcdef0/42/2");
        assert_eq!(
            i.run_url.as_deref(),
            Some("https://github.example/acme/api/actions/runs/42/attempts/2")
        );
        assert_eq!((i.run_id, i.run_attempt), (Some(42), Some(2)));
        let d = i.describe();
        assert!(
            d.contains("acme/api run 42 (attempt 2) by alice at abcdef0"),
            "{d}"
        );
    }

    #[test]
    fn held_and_free_items_round_trip() {
        let rec = LockRecord {
            info: info(),
            fence: 7,
            version: "v1".into(),
            lease_ms: 30_000,
            acquired_at: "2026-01-14T12:34:56.000Z".into(),
            heartbeat_at: None,
            freeze: None,
            watched: None,
            cycle_ms: Some(1_500),
            queue_mark: None,
            cancelling: Some("cancelled; CancelUpdateStack called".into()),
        };
        let item = rec.to_item("prod");
        assert_eq!(
            LockState::from_item(Some(&item)),
            Ok(LockState::Held(rec.clone()))
        );
        let mut free = item.clone();
        free.insert("state".into(), s(STATE_FREE));
        free.remove("owner");
        match LockState::from_item(Some(&free)) {
            Ok(LockState::Free(f)) => assert_eq!((f.fence, f.version.as_str()), (7, "v1")),
            other => panic!("{other:?}"),
        }
        assert_eq!(LockState::from_item(None), Ok(LockState::Absent));
        let mut broken = item;
        broken.remove("fence");
        assert!(LockState::from_item(Some(&broken)).is_err());
    }

    #[test]
    fn tickets_round_trip() {
        let t = QueueTicket {
            sk: keys::queue_ticket(1_700_000_000_123, "c1"),
            info: info(),
            enqueued_ms: 1_700_000_000_123,
            version: "tv".into(),
            lease_ms: 9_000,
            wants_lease_ms: Some(60_000),
            priority: Priority::High,
        };
        let item = t.to_item("prod", 1);
        assert_eq!(QueueTicket::from_item(&item), Ok(t));
    }
}
