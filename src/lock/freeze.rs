//! Deploy freezes: an operator stops new deployments on a lock key for a while, with a reason.
//!
//! A freeze lives on the lock item itself (attributes `freeze_reason`, `frozen_by`,
//! `frozen_at`, `frozen_until`, `frozen_until_ms`), whatever the item's state:
//! - on a free lock it stops every new acquisition;
//! - on a lock a run holds, that run finishes its deployment (its heartbeat and release keep the
//!   freeze on the item) and nobody else gets the lock after it: during an incident a release
//!   manager wants "nothing new starts", not "wait for the current deployment first" (a freeze
//!   queued behind it) nor "refuse while anything runs" (the freeze would race the queue).
//!
//! A freeze has no run and no heartbeat, so neither staleness rule applies to it: it ends only
//! at `frozen_until` or by `lock unfreeze` / `lock force-unlock`. Queue tickets stay where they
//! are, so the runs waiting behind a freeze go in FIFO order once it ends.
//!
//! Pure data and decisions, no I/O: unit-tested here without a server.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::registry::item::{Item, get_n, get_s, n, s};

/// The longest freeze accepted: long enough for a holiday freeze, short enough that a typo
/// (`--for 3000h`) does not stop deployments for months.
pub(crate) const MAX_FREEZE: Duration = Duration::from_secs(90 * 86_400);

/// Longest reason kept: it is shown in logs, annotations and Slack cards.
pub(crate) const MAX_REASON_CHARS: usize = 500;

/// The owner-like label of a freeze in logs and status: `freeze:<who>`.
pub(crate) fn label(by: &str) -> String {
    format!("freeze:{by}")
}

/// An operator's freeze on a lock key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freeze {
    pub reason: String,
    /// Who froze it (`--by`, GITHUB_ACTOR, or USER@host).
    pub by: String,
    /// When it was set, on the operator's clock (for people).
    pub at: String,
    /// When it ends, RFC 3339 (for people) ...
    pub until: String,
    /// ... and as epoch milliseconds (what waiters compare).
    pub until_ms: u64,
}

/// What a run does when it meets a freeze (input `on-freeze`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFreeze {
    /// Wait in the queue (up to `lock-timeout`) and go when the freeze ends.
    #[default]
    Wait,
    /// Fail at once, saying who froze it, why and until when.
    Fail,
}

impl OnFreeze {
    pub fn parse(text: &str) -> Result<OnFreeze, String> {
        match text.trim() {
            "" | "wait" => Ok(OnFreeze::Wait),
            "fail" => Ok(OnFreeze::Fail),
            other => Err(format!("{other:?} is not accepted: use wait or fail")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnFreeze::Wait => "wait",
            OnFreeze::Fail => "fail",
        }
    }
}

pub(crate) const REASON: &str = "freeze_reason";
pub(crate) const BY: &str = "frozen_by";
pub(crate) const AT: &str = "frozen_at";
pub(crate) const UNTIL: &str = "frozen_until";
pub(crate) const UNTIL_MS: &str = "frozen_until_ms";

impl Freeze {
    /// A freeze from `now` for `length`. Validates what an operator typed.
    pub fn new(
        reason: &str,
        by: &str,
        now: DateTime<Utc>,
        length: Duration,
    ) -> Result<Freeze, String> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err("--reason must say why deployments are frozen".into());
        }
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(format!(
                "--reason is longer than {MAX_REASON_CHARS} characters"
            ));
        }
        let by = by.trim();
        if by.is_empty() {
            return Err("--by must name who freezes".into());
        }
        if length.is_zero() || length > MAX_FREEZE {
            return Err(format!(
                "--for must be between 1s and {} (unfreeze early with `lock unfreeze`)",
                crate::duration::human(MAX_FREEZE)
            ));
        }
        let length = TimeDelta::from_std(length).map_err(|e| format!("--for: {e}"))?;
        let until = now + length;
        Ok(Freeze {
            reason: reason.to_string(),
            by: by.to_string(),
            at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            until: until.to_rfc3339_opts(SecondsFormat::Secs, true),
            until_ms: u64::try_from(until.timestamp_millis()).unwrap_or(0),
        })
    }

    /// Still in force at `now_ms` (epoch ms on the reader's wall clock).
    ///
    /// The wall clock is right here, unlike for lock staleness: the end is a time of day a
    /// person declared ("frozen until 18:00"), not a lease measured between heartbeats, and
    /// nothing is taken from anyone when it passes: the queue simply moves on. Runners keep
    /// their clocks in sync by NTP; a waiter whose clock runs ahead by X sees the freeze end X
    /// early, which the operator can rule out with a margin or by ending it with `unfreeze`.
    pub fn is_active(&self, now_ms: u64) -> bool {
        now_ms < self.until_ms
    }

    /// Time left at `now_ms` (zero once over).
    pub fn remaining(&self, now_ms: u64) -> Duration {
        Duration::from_millis(self.until_ms.saturating_sub(now_ms))
    }

    /// `frozen by alice until 2026-11-27T18:00:00Z (2h 5m left): INC-42 database failover`.
    /// The reason is operator text: callers printing it to the log sanitize it.
    pub fn describe(&self, now_ms: u64) -> String {
        format!(
            "frozen by {} until {} ({}): {}",
            self.by,
            self.until,
            self.left(now_ms),
            self.reason
        )
    }

    /// `2h 5m left`, or `ended` once over.
    pub fn left(&self, now_ms: u64) -> String {
        if self.is_active(now_ms) {
            format!("{} left", crate::duration::human(self.remaining(now_ms)))
        } else {
            "ended".to_string()
        }
    }

    /// The same freeze as another (a re-read, not a replaced or extended one).
    pub fn same_as(&self, other: &Freeze) -> bool {
        self.until_ms == other.until_ms && self.by == other.by && self.reason == other.reason
    }

    pub(crate) fn write(&self, item: &mut Item) {
        item.insert(REASON.into(), s(&self.reason));
        item.insert(BY.into(), s(&self.by));
        item.insert(AT.into(), s(&self.at));
        item.insert(UNTIL.into(), s(&self.until));
        item.insert(UNTIL_MS.into(), n(self.until_ms));
    }

    /// The freeze on a lock item, if any (expired ones included: callers decide).
    pub(crate) fn read(item: &Item) -> Option<Freeze> {
        let text = |name: &str| get_s(item, name).map(str::to_string);
        Some(Freeze {
            until_ms: get_n(item, UNTIL_MS)?,
            reason: text(REASON).unwrap_or_default(),
            by: text(BY).unwrap_or_else(|| "unknown".into()),
            at: text(AT).unwrap_or_default(),
            until: text(UNTIL).unwrap_or_default(),
        })
    }
}

/// Who is freezing: `--by`, else GITHUB_ACTOR inside Actions, else USER@host, as a lock
/// holder is described.
pub(crate) fn freezer(by: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> String {
    if let Some(by) = by.map(str::trim).filter(|b| !b.is_empty()) {
        return by.to_string();
    }
    let me = super::HolderInfo::from_env("", env);
    me.actor.or(me.host).unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_freeze_ends_at_its_declared_time_and_not_before() {
        let f = Freeze::new(
            " INC-42 failover ",
            "alice",
            noon(),
            Duration::from_secs(7200),
        )
        .unwrap();
        assert_eq!(f.reason, "INC-42 failover");
        assert_eq!(f.until, "2026-11-27T14:00:00Z");
        let start = noon().timestamp_millis() as u64;
        assert!(f.is_active(start));
        assert!(f.is_active(f.until_ms - 1));
        assert!(!f.is_active(f.until_ms));
        assert_eq!(f.remaining(start), Duration::from_secs(7200));
        assert_eq!(f.remaining(f.until_ms + 5), Duration::ZERO);
        assert_eq!(
            f.describe(start + 5 * 60_000),
            "frozen by alice until 2026-11-27T14:00:00Z (1h 55m left): INC-42 failover"
        );
        assert_eq!(f.left(f.until_ms), "ended");
    }

    #[test]
    fn operator_input_is_validated() {
        let ok = Duration::from_secs(60);
        assert!(Freeze::new("  ", "alice", noon(), ok).is_err());
        assert!(Freeze::new("why", " ", noon(), ok).is_err());
        assert!(Freeze::new("why", "alice", noon(), Duration::ZERO).is_err());
        assert!(Freeze::new("why", "alice", noon(), MAX_FREEZE + ok).is_err());
        assert!(Freeze::new(&"x".repeat(MAX_REASON_CHARS + 1), "alice", noon(), ok).is_err());
        assert!(Freeze::new("why", "alice", noon(), MAX_FREEZE).is_ok());
    }

    #[test]
    fn freezes_round_trip_through_an_item() {
        let f = Freeze::new(
            "db migration",
            "bob@laptop",
            noon(),
            Duration::from_secs(90),
        )
        .unwrap();
        let mut item = Item::new();
        f.write(&mut item);
        assert_eq!(Freeze::read(&item), Some(f.clone()));
        item.remove(UNTIL_MS);
        assert_eq!(Freeze::read(&item), None, "no end, no freeze");
    }

    #[test]
    fn on_freeze_accepts_wait_and_fail_only() {
        assert_eq!(OnFreeze::parse("wait"), Ok(OnFreeze::Wait));
        assert_eq!(OnFreeze::parse(" fail "), Ok(OnFreeze::Fail));
        assert_eq!(OnFreeze::parse(""), Ok(OnFreeze::Wait));
        assert!(OnFreeze::parse("skip").is_err());
    }

    #[test]
    fn the_freezer_is_named_by_flag_actor_or_user_at_host() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let all = env(&[
            ("GITHUB_ACTOR", "octocat"),
            ("USER", "ops"),
            ("HOSTNAME", "bastion"),
        ]);
        assert_eq!(freezer(Some("release-manager"), &all), "release-manager");
        assert_eq!(freezer(None, &all), "octocat");
        let local = env(&[("USER", "ops"), ("HOSTNAME", "bastion")]);
        assert_eq!(freezer(Some("  "), &local), "ops@bastion");
        // Nothing in the environment: the machine's own name, as a lock holder's.
        let nothing = env(&[]);
        let host = crate::lock::HolderInfo::from_env("", &nothing).host;
        assert_eq!(
            freezer(None, &nothing),
            host.unwrap_or_else(|| "unknown".into())
        );
        assert_eq!(label("ops@bastion"), "freeze:ops@bastion");
    }
}
