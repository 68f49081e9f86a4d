//! Staleness on the observer's own monotonic clock, and the queue as one waiter sees it.
//!
//! Nothing here reads another machine's timestamps: a holder or a ticket is stale when its
//! `version` has not changed for a whole lease between two of OUR observations. Skewed clocks
//! anywhere cannot make a lock look stale early. Pure logic (the caller passes `now`), tested
//! without servers or real time.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::record::QueueTicket;

/// Remembers, per item, the version last seen and since when (on our clock) it has not changed.
#[derive(Debug, Default)]
pub(crate) struct VersionWatch {
    seen: HashMap<String, (String, Instant)>,
}

impl VersionWatch {
    /// Records an observation and returns how long this version has been seen unchanged.
    pub(crate) fn observe(&mut self, id: &str, version: &str, now: Instant) -> Duration {
        match self.seen.get_mut(id) {
            Some((v, since)) if v == version => now.saturating_duration_since(*since),
            Some(entry) => {
                *entry = (version.to_string(), now);
                Duration::ZERO
            }
            None => {
                self.seen.insert(id.to_string(), (version.to_string(), now));
                Duration::ZERO
            }
        }
    }

    /// Forgets items that are gone, so the map does not grow with the queue's history.
    pub(crate) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.seen.retain(|id, _| keep(id));
    }
}

/// The queue from one waiter's point of view.
#[derive(Debug, Default)]
pub(crate) struct QueueView {
    /// Live tickets in queue order (ours included): high priority first, then oldest first
    /// ([`super::order::sort`]).
    pub live: Vec<QueueTicket>,
    /// Tickets unchanged for a whole ticket lease: their waiters are gone. Skipped, and deleted
    /// (conditionally on the version seen) by whoever notices.
    pub stale: Vec<QueueTicket>,
    /// Tickets of waiters that already got the lock (the holder, or the last holder of a free
    /// lock): their removal after acquiring failed (a registry blip, a kill). Skipped at once
    /// and deleted by whoever notices: left alone, such a ticket would be the oldest in the
    /// queue once its owner released, nobody behind it would be head, and the lock would sit
    /// free for a whole ticket lease (3 minutes by default).
    pub leftover: Vec<QueueTicket>,
}

impl QueueView {
    /// Sorts tickets into live, stale and leftover. Our own ticket (`mine`) is always live (we
    /// are evidently alive); a ticket of an owner in `had_lock` (the holder, the last holder of
    /// a free lock) is a leftover: it must not block the queue.
    pub(crate) fn build(
        tickets: Vec<QueueTicket>,
        mine: Option<&str>,
        had_lock: &[&str],
        watch: &mut VersionWatch,
        now: Instant,
    ) -> QueueView {
        watch.retain(|id| tickets.iter().any(|t| t.sk == id));
        let mut view = QueueView::default();
        for t in tickets {
            if Some(t.sk.as_str()) == mine {
                view.live.push(t);
                continue;
            }
            if had_lock.contains(&t.info.owner.as_str()) {
                view.leftover.push(t);
                continue;
            }
            let unchanged = watch.observe(&t.sk, &t.version, now);
            if unchanged >= Duration::from_millis(t.lease_ms) {
                view.stale.push(t);
            } else {
                view.live.push(t);
            }
        }
        super::order::sort(&mut view.live);
        view
    }

    /// 0-based number of live tickets ahead of ours; `None` if ours is not in the queue.
    pub(crate) fn ahead_of(&self, mine: &str) -> Option<usize> {
        self.live.iter().position(|t| t.sk == mine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::record::HolderInfo;

    fn ticket(ms: u64, owner: &str, version: &str) -> QueueTicket {
        QueueTicket {
            sk: crate::registry::keys::queue_ticket(ms, owner),
            info: HolderInfo {
                owner: owner.into(),
                correlation_id: owner.into(),
                ..HolderInfo::default()
            },
            enqueued_ms: ms,
            version: version.into(),
            lease_ms: 10_000,
            wants_lease_ms: None,
            priority: Default::default(),
        }
    }

    #[test]
    fn a_version_must_stay_unchanged_for_the_whole_lease_on_our_clock() {
        let t0 = Instant::now();
        let mut w = VersionWatch::default();
        assert_eq!(w.observe("LOCK", "a", t0), Duration::ZERO);
        assert_eq!(
            w.observe("LOCK", "a", t0 + Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        // A heartbeat (new version) restarts the count from the moment WE saw it.
        assert_eq!(
            w.observe("LOCK", "b", t0 + Duration::from_secs(9)),
            Duration::ZERO
        );
        assert_eq!(
            w.observe("LOCK", "b", t0 + Duration::from_secs(12)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn stale_tickets_are_skipped_and_positions_count_only_live_ones() {
        let t0 = Instant::now();
        let mut w = VersionWatch::default();
        let q = || {
            vec![
                ticket(1, "dead", "d1"),
                ticket(2, "alive", "a1"),
                ticket(3, "me", "m1"),
            ]
        };
        let mine = q()[2].sk.clone();
        let v = QueueView::build(q(), Some(&mine), &[], &mut w, t0);
        assert_eq!(v.ahead_of(&mine), Some(2), "nobody is stale at first sight");
        // 11 s later: "dead" never changed, "alive" heartbeated.
        let mut later = q();
        later[1].version = "a2".into();
        let v = QueueView::build(
            later,
            Some(&mine),
            &[],
            &mut w,
            t0 + Duration::from_secs(11),
        );
        assert_eq!(v.stale.len(), 1);
        assert_eq!(v.stale[0].info.owner, "dead");
        assert_eq!(v.ahead_of(&mine), Some(1));
        // Our own ticket never goes stale in our view, whatever its version does.
        let v = QueueView::build(q(), Some(&mine), &[], &mut w, t0 + Duration::from_secs(60));
        assert!(v.live.iter().any(|t| t.sk == mine));
    }

    #[test]
    fn the_holders_leftover_ticket_does_not_block_the_queue() {
        let mut w = VersionWatch::default();
        let tickets = vec![ticket(1, "holder", "h"), ticket(2, "me", "m")];
        let mine = tickets[1].sk.clone();
        let v = QueueView::build(tickets, Some(&mine), &["holder"], &mut w, Instant::now());
        assert_eq!(v.ahead_of(&mine), Some(0));
        assert_eq!(v.leftover.len(), 1, "to be deleted by whoever sees it");
    }

    /// Found by the soak (tests/lock_soak.rs, DynamoDB Local behind the fault proxy): a holder
    /// whose ticket removal failed released the lock, and its ticket, oldest in the queue,
    /// kept everyone behind it from being head for a whole ticket lease.
    #[test]
    fn the_last_holders_leftover_ticket_does_not_block_the_queue_after_it_released() {
        let mut w = VersionWatch::default();
        let tickets = vec![ticket(1, "released", "r"), ticket(2, "me", "m")];
        let mine = tickets[1].sk.clone();
        let v = QueueView::build(tickets, Some(&mine), &["released"], &mut w, Instant::now());
        assert_eq!(v.ahead_of(&mine), Some(0), "we are the head");
        assert_eq!(v.leftover.len(), 1);
        assert!(v.stale.is_empty());
    }
}
