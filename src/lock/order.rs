//! Queue policies: the order of the queue (priority, then FIFO), who a high-priority ticket
//! went ahead of, and when a waiter is superseded by a newer commit of its own ref.
//!
//! Pure logic, no I/O: the comparison of two commits is asked by the caller (the GitHub compare
//! API, through [`super::RunLiveness::compare`], implemented in `github/`) and passed in.
//!
//! - **Order.** High-priority tickets come before normal ones; among equals the ticket key
//!   (`QUEUE#<enqueued ms>#<id>`) decides, which is FIFO. The holder is not in the queue, so no
//!   ticket ever goes ahead of it.
//! - **Passed.** A normal waiter was passed by a high ticket that sorts ahead of it although it
//!   was enqueued later.
//! - **Superseded.** A waiter (`on-superseded: skip`) is superseded by another live ticket of
//!   the same repository and ref whose commit GitHub says is ahead of ours (a descendant).
//!   `behind`, `identical`, `diverged` and any error mean "do not skip": never by timestamps.

use serde::{Deserialize, Serialize};

use super::record::{HolderInfo, QueueTicket};

/// A ticket's priority (input `priority`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    #[default]
    Normal,
    /// Goes ahead of every normal waiter (never ahead of the holder).
    High,
}

impl Priority {
    pub fn parse(text: &str) -> Result<Priority, String> {
        match text.trim() {
            "" | "normal" => Ok(Priority::Normal),
            "high" => Ok(Priority::High),
            other => Err(format!("{other:?} is not accepted: use normal or high")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

/// What a waiter does when a newer commit of its ref is queued (input `on-superseded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnSuperseded {
    /// Stay in the queue and deploy in turn (the default).
    #[default]
    Wait,
    /// Leave the queue with outcome `skipped`, succeeding.
    Skip,
}

impl OnSuperseded {
    pub fn parse(text: &str) -> Result<OnSuperseded, String> {
        match text.trim() {
            "" | "wait" => Ok(OnSuperseded::Wait),
            "skip" => Ok(OnSuperseded::Skip),
            other => Err(format!("{other:?} is not accepted: use wait or skip")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnSuperseded::Wait => "wait",
            OnSuperseded::Skip => "skip",
        }
    }
}

/// What the GitHub compare API says about `head` relative to `base`
/// (`GET /repos/{owner}/{repo}/compare/{base}...{head}`, field `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `head` has commits `base` has not, and none the other way: `head` is newer.
    Ahead,
    /// `base` has commits `head` has not, and none the other way: `head` is older.
    Behind,
    Identical,
    /// Both have commits the other has not.
    Diverged,
    /// An error, a timeout, a repository the token cannot read, an unexpected body.
    Unknown,
}

impl Comparison {
    pub fn from_status(status: &str) -> Comparison {
        match status {
            "ahead" => Comparison::Ahead,
            "behind" => Comparison::Behind,
            "identical" => Comparison::Identical,
            "diverged" => Comparison::Diverged,
            _ => Comparison::Unknown,
        }
    }
}

/// Puts tickets in queue order: high priority first, FIFO (ticket key) among equals.
pub(crate) fn sort(tickets: &mut [QueueTicket]) {
    tickets.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.sk.cmp(&b.sk)));
}

/// The tickets in `ordered` that sort ahead of `mine` although they were enqueued after it:
/// higher-priority tickets that went ahead of us.
pub(crate) fn passed_by<'a>(
    ordered: &'a [QueueTicket],
    mine: &QueueTicket,
) -> Vec<&'a QueueTicket> {
    ordered
        .iter()
        .take_while(|t| t.sk != mine.sk)
        .filter(|t| t.priority > mine.priority && t.sk > mine.sk)
        .collect()
}

/// The tickets whose commit may supersede ours: the same repository and ref, another commit.
/// Without a repository, a ref and a commit of our own, none.
pub(crate) fn rivals<'a>(tickets: &'a [QueueTicket], mine: &HolderInfo) -> Vec<&'a QueueTicket> {
    let (Some(repo), Some(git_ref), Some(sha)) = (&mine.repository, &mine.git_ref, &mine.sha)
    else {
        return Vec::new();
    };
    tickets
        .iter()
        .filter(|t| t.info.owner != mine.owner)
        .filter(|t| {
            t.info.repository.as_ref() == Some(repo) && t.info.git_ref.as_ref() == Some(git_ref)
        })
        .filter(|t| t.info.sha.as_ref().is_some_and(|s| s != sha))
        .collect()
}

/// The decision: the rival that supersedes us, given what GitHub said about each rival's commit
/// compared to ours (`base` = our commit, `head` = theirs). Only `ahead` supersedes; when
/// several do, the latest enqueued (the newest run) is named.
pub(crate) fn superseded_by<'a>(
    rivals: &[&'a QueueTicket],
    compared: impl Fn(&QueueTicket) -> Comparison,
) -> Option<&'a QueueTicket> {
    rivals
        .iter()
        .filter(|t| compared(t) == Comparison::Ahead)
        .max_by(|a, b| a.sk.cmp(&b.sk))
        .copied()
}

/// Whether a commit about to be deployed goes backwards from the last one deployed: only when
/// GitHub says it is behind (an ancestor of the deployed one). Everything else proceeds.
pub fn is_older(comparison: Comparison) -> bool {
    comparison == Comparison::Behind
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::keys;

    fn ticket(ms: u64, owner: &str, priority: Priority) -> QueueTicket {
        QueueTicket {
            sk: keys::queue_ticket(ms, owner),
            info: HolderInfo {
                owner: owner.into(),
                correlation_id: owner.into(),
                repository: Some("acme/api".into()),
                git_ref: Some("refs/heads/main".into()),
                sha: Some(format!("{owner}000")),
                ..HolderInfo::default()
            },
            enqueued_ms: ms,
            version: "v".into(),
            lease_ms: 10_000,
            wants_lease_ms: None,
            priority,
        }
    }

    fn owners(tickets: &[QueueTicket]) -> Vec<&str> {
        tickets.iter().map(|t| t.info.owner.as_str()).collect()
    }

    #[test]
    fn high_priority_goes_first_and_equals_stay_fifo() {
        let mut q = vec![
            ticket(1, "n1", Priority::Normal),
            ticket(2, "n2", Priority::Normal),
            ticket(3, "h1", Priority::High),
            ticket(4, "n3", Priority::Normal),
            ticket(5, "h2", Priority::High),
        ];
        sort(&mut q);
        assert_eq!(owners(&q), ["h1", "h2", "n1", "n2", "n3"]);
    }

    #[test]
    fn a_waiter_is_passed_only_by_later_higher_tickets() {
        let mut q = vec![
            ticket(1, "h0", Priority::High),
            ticket(2, "n1", Priority::Normal),
            ticket(3, "h1", Priority::High),
            ticket(4, "n2", Priority::Normal),
        ];
        sort(&mut q);
        let n1 = q.iter().find(|t| t.info.owner == "n1").unwrap().clone();
        // h0 was there before n1: it did not pass n1. h1 came later and went ahead.
        assert_eq!(
            passed_by(&q, &n1)
                .iter()
                .map(|t| t.info.owner.as_str())
                .collect::<Vec<_>>(),
            ["h1"]
        );
        let h1 = q.iter().find(|t| t.info.owner == "h1").unwrap().clone();
        assert!(
            passed_by(&q, &h1).is_empty(),
            "FIFO among equals: h0 was first"
        );
    }

    #[test]
    fn only_an_ahead_commit_of_the_same_repository_and_ref_supersedes() {
        let me = ticket(1, "a", Priority::Normal);
        let mut other_ref = ticket(2, "b", Priority::Normal);
        other_ref.info.git_ref = Some("refs/heads/release".into());
        let mut other_repo = ticket(3, "c", Priority::Normal);
        other_repo.info.repository = Some("acme/web".into());
        let mut same_commit = ticket(4, "d", Priority::Normal);
        same_commit.info.sha = me.info.sha.clone();
        let newer = ticket(5, "e", Priority::Normal);
        let newest = ticket(6, "f", Priority::Normal);
        let q = vec![
            me.clone(),
            other_ref,
            other_repo,
            same_commit,
            newer,
            newest,
        ];
        let rivals = rivals(&q, &me.info);
        assert_eq!(
            rivals
                .iter()
                .map(|t| t.info.owner.as_str())
                .collect::<Vec<_>>(),
            ["e", "f"]
        );
        let by = superseded_by(&rivals, |_| Comparison::Ahead).unwrap();
        assert_eq!(by.info.owner, "f", "the newest run is named");
        for no in [
            Comparison::Behind,
            Comparison::Identical,
            Comparison::Diverged,
            Comparison::Unknown,
        ] {
            assert!(
                superseded_by(&rivals, |_| no).is_none(),
                "{no:?} must not skip"
            );
        }
        let only_e = superseded_by(&rivals, |t| {
            if t.info.owner == "e" {
                Comparison::Ahead
            } else {
                Comparison::Unknown
            }
        });
        assert_eq!(only_e.map(|t| t.info.owner.as_str()), Some("e"));
        let mut anonymous = me.info.clone();
        anonymous.sha = None;
        assert!(super::rivals(&q, &anonymous).is_empty());
    }

    #[test]
    fn only_behind_is_older() {
        assert!(is_older(Comparison::Behind));
        for c in [
            Comparison::Ahead,
            Comparison::Identical,
            Comparison::Diverged,
            Comparison::Unknown,
        ] {
            assert!(!is_older(c), "{c:?}");
        }
        assert_eq!(Comparison::from_status("diverged"), Comparison::Diverged);
        assert_eq!(Comparison::from_status("weird"), Comparison::Unknown);
    }

    #[test]
    fn inputs_parse() {
        assert_eq!(Priority::parse("high"), Ok(Priority::High));
        assert_eq!(Priority::parse(""), Ok(Priority::Normal));
        assert!(Priority::parse("urgent").is_err());
        assert_eq!(OnSuperseded::parse("skip"), Ok(OnSuperseded::Skip));
        assert!(OnSuperseded::parse("cancel").is_err());
    }
}
