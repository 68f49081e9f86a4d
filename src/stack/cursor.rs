//! Reading a stack's event pages and returning only what is new.
//!
//! [`Cursor`] reads DescribeStackEvents pages (newest first) and keeps only events not seen
//! before. It reads down to the event that topped the list last time (an event written late
//! with an older timestamp still appears above it), then on down to a time floor a little
//! below the newest timestamp seen, skipping every id it already has: events that share a
//! timestamp, whose order among equals is not guaranteed between calls, are then neither
//! dropped nor repeated. Pure: pages in, new events out.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::events::{Event, NESTED_TOLERANCE};
use super::status;

/// How far below the newest event seen a cursor keeps looking, for events that become visible
/// late. Only costs a few extra events on the first page.
const LOOKBACK: TimeDelta = TimeDelta::seconds(10);

/// Where a stack's event history stood at some moment (when the lock was taken, before a
/// change set was executed): the event on top of the list, the newest timestamp and every
/// event id carrying it. Stored in the step's state so the post step can read what happened
/// since.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// None when the stack did not exist: every event is new.
    pub newest: Option<DateTime<Utc>>,
    /// The identities ([`Event::identity`]) of the events carrying that timestamp.
    pub ids: Vec<String>,
    /// The first event of the list (newest first).
    #[serde(default)]
    pub top: Option<String>,
}

impl Baseline {
    /// From the first page of DescribeStackEvents (newest first).
    pub fn from_newest_page(page: &[Event]) -> Self {
        let Some(newest) = page.iter().map(|e| e.timestamp).max() else {
            return Self::default();
        };
        let ids = page
            .iter()
            .filter(|e| e.timestamp == newest)
            .map(Event::identity)
            .collect();
        Self {
            newest: Some(newest),
            ids,
            top: page.first().map(|e| e.event_id.clone()),
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Whether to read another page of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    More,
    Done,
}

/// When the previous top of the list is never met (the stack was replaced), reading stops this
/// far below the floor instead of going through the whole history.
const ANCHOR_GIVE_UP: TimeDelta = TimeDelta::hours(1);

/// Reads one stack's event pages and returns only what is new. See the module docs.
#[derive(Debug, Clone)]
pub struct Cursor {
    /// Events older than this were all seen (or precede what we follow).
    floor: Option<DateTime<Utc>>,
    /// The floor never goes below this (the baseline or the operation's start).
    min_floor: Option<DateTime<Utc>>,
    /// Identities ([`Event::identity`]) seen at or above the floor, with their timestamps
    /// (for pruning).
    seen: HashMap<String, DateTime<Utc>>,
    /// The event on top of the list at the previous read, and whether this read passed it.
    anchor: Option<String>,
    passed_anchor: bool,
    /// The top of the list in this read: the next anchor.
    next_anchor: Option<String>,
    /// Reading back to the newest event that starts an operation (following one that runs).
    until_start: bool,
    /// Reading back, a "User Initiated" rollback was met: it started an operation of its own
    /// (RollbackStack after a failure) if the stack's event before it is a terminal status,
    /// or it continued the operation before it (CancelUpdateStack). Its timestamp, until the
    /// next older stack-level event tells which.
    rollback_candidate: Option<DateTime<Utc>>,
    /// Reading back found no start: the last read returned the whole history instead.
    missed_start: bool,
}

impl Cursor {
    fn with(floor: Option<DateTime<Utc>>, anchor: Option<String>, until_start: bool) -> Self {
        Self {
            floor,
            min_floor: floor,
            seen: HashMap::new(),
            anchor,
            passed_anchor: false,
            next_anchor: None,
            until_start,
            rollback_candidate: None,
            missed_start: false,
        }
    }

    /// Only events after `baseline`.
    pub fn after(baseline: &Baseline) -> Self {
        let mut cursor = Self::with(baseline.newest, baseline.top.clone(), false);
        if let Some(ts) = baseline.newest {
            cursor.seen = baseline.ids.iter().map(|id| (id.clone(), ts)).collect();
        }
        cursor
    }

    /// Events from `since` on (a nested stack, from its parent's first event about it).
    pub fn since(since: DateTime<Utc>) -> Self {
        Self::with(Some(since - NESTED_TOLERANCE), None, false)
    }

    /// Events of the operation running now: reads back to its first stack-level event.
    pub fn current_operation() -> Self {
        Self::with(None, None, true)
    }

    /// True once, after the read that went through the whole history without finding the
    /// start of the operation running now ([`Self::current_operation`]): the caller then
    /// follows it from its oldest visible event.
    pub fn take_missed_start(&mut self) -> bool {
        std::mem::take(&mut self.missed_start)
    }

    /// Takes the new events of one page (newest first) into `batch`; says whether the next
    /// page is needed.
    pub fn scan_page(&mut self, page: &[Event], batch: &mut Vec<Event>) -> Scan {
        if self.next_anchor.is_none() {
            self.next_anchor = page.first().map(|e| e.event_id.clone());
        }
        for event in page {
            if self.until_start
                && event.is_stack_level()
                && let Some(candidate) = self.rollback_candidate.take()
                && status::is_terminal(&event.status)
            {
                // The rollback started after the previous operation had ended: it is the
                // start. This older event is not needed.
                self.found_start(candidate);
                return Scan::Done;
            }
            if self.anchor.as_deref() == Some(event.event_id.as_str()) {
                self.passed_anchor = true;
            }
            if let Some(floor) = self.floor {
                let below = if self.anchor.is_none() || self.passed_anchor {
                    event.timestamp < floor
                } else {
                    event.timestamp < floor - ANCHOR_GIVE_UP
                };
                if below {
                    return Scan::Done;
                }
            }
            // Pages can overlap when events arrive between two page requests.
            let identity = event.identity();
            if self.seen.contains_key(&identity) {
                continue;
            }
            self.seen.insert(identity, event.timestamp);
            batch.push(event.clone());
            // Only a "User Initiated" event starts an operation: CloudFormation also writes
            // stack-level *_IN_PROGRESS events in the middle of one ("Eventual consistency
            // check initiated").
            if self.until_start && event.starts_operation() && event.is_user_initiated() {
                if status::is_rollback(&event.status) {
                    self.rollback_candidate = Some(event.timestamp);
                } else {
                    // Keep reading events with the same timestamp, then stop.
                    self.found_start(event.timestamp);
                }
            }
        }
        Scan::More
    }

    fn found_start(&mut self, at: DateTime<Utc>) {
        self.until_start = false;
        self.rollback_candidate = None;
        self.floor = Some(at);
        self.min_floor = Some(at);
        self.anchor = None;
    }

    /// Ends one read: returns the batch in the order CloudFormation wrote it (the reverse of
    /// the list's), and moves the anchor and the floor up.
    pub fn finish(&mut self, mut batch: Vec<Event>) -> Vec<Event> {
        batch.reverse();
        if let Some(top) = self.next_anchor.take() {
            self.anchor = Some(top);
        }
        self.passed_anchor = false;
        if let Some(candidate) = self.rollback_candidate.take() {
            // The history began with that rollback.
            self.found_start(candidate);
        }
        if self.until_start && !batch.is_empty() {
            // The whole history was read and the operation running now has no start in it
            // (the stack's events were cut short: a recording, a history past CloudFormation's
            // 90 days): what is there is what we follow, from now on forward.
            self.until_start = false;
            self.missed_start = true;
        }
        if let Some(newest) = self.seen.values().max().copied() {
            let floor = newest - LOOKBACK;
            let floor = match self.min_floor {
                Some(min) if min > floor => min,
                _ => floor,
            };
            self.floor = Some(floor);
            self.seen.retain(|_, ts| *ts >= floor);
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::events::tests::*;

    #[test]
    fn same_timestamp_events_are_neither_lost_nor_repeated() {
        let mut ev = Ev::new();
        let old = vec![ev.stack(0.0, "UPDATE_COMPLETE", None)];
        let mut cursor = Cursor::after(&Baseline::from_newest_page(&newest_first(&old)));
        let a = ev.stack(5.0, "UPDATE_IN_PROGRESS", Some("User Initiated"));
        let b = ev.res(6.0, "A", "UPDATE_IN_PROGRESS", None);
        let c = ev.res(6.0, "B", "UPDATE_IN_PROGRESS", None);
        let first = read(
            &mut cursor,
            &[vec![c.clone(), b.clone(), a.clone()], old.clone()],
        );
        assert_eq!(ids(&first), ids(&[a.clone(), b.clone(), c.clone()]));
        // Two more events with the SAME timestamp as the newest seen arrive, and the service
        // returns the equal-timestamp events in another order this time.
        let d = ev.res(6.0, "C", "UPDATE_IN_PROGRESS", None);
        let e = ev.res(6.0, "D", "UPDATE_IN_PROGRESS", None);
        let page = vec![
            b.clone(),
            d.clone(),
            c.clone(),
            e.clone(),
            a.clone(),
            old[0].clone(),
        ];
        let second = read(&mut cursor, &[page]);
        assert_eq!(
            ids(&second),
            ids(&[e.clone(), d.clone()]),
            "every new event once, none seen before"
        );
        // Nothing new: nothing returned.
        let third = read(&mut cursor, &[vec![e, d, c, b, a]]);
        assert!(third.is_empty());
    }

    #[test]
    fn stops_below_the_floor_without_reading_more_pages() {
        let mut ev = Ev::new();
        let older: Vec<Event> = (0..5)
            .map(|i| ev.res(f64::from(i), "Old", "UPDATE_COMPLETE", None))
            .collect();
        let mut cursor = Cursor::after(&Baseline::from_newest_page(&newest_first(&older)));
        let new = ev.stack(100.0, "UPDATE_IN_PROGRESS", Some("User Initiated"));
        let mut batch = Vec::new();
        let page1 = vec![new.clone(), older[4].clone(), older[3].clone()];
        assert_eq!(cursor.scan_page(&page1, &mut batch), Scan::Done);
        assert_eq!(ids(&cursor.finish(batch)), ids(&[new]));
    }

    #[test]
    fn overlapping_pages_do_not_repeat_events() {
        let mut ev = Ev::new();
        let mut cursor = Cursor::after(&Baseline::default());
        let a = ev.stack(1.0, "CREATE_IN_PROGRESS", Some("User Initiated"));
        let b = ev.res(2.0, "A", "CREATE_IN_PROGRESS", None);
        let c = ev.res(3.0, "A", "CREATE_COMPLETE", None);
        // Page 2 starts with an event page 1 already had (a new event shifted the pages).
        let got = read(
            &mut cursor,
            &[vec![c.clone(), b.clone()], vec![b.clone(), a.clone()]],
        );
        assert_eq!(ids(&got), ids(&[a, b, c]));
    }

    #[test]
    fn a_late_event_slightly_older_than_the_newest_is_still_caught() {
        let mut ev = Ev::new();
        let mut cursor = Cursor::after(&Baseline::default());
        let a = ev.stack(1.0, "UPDATE_IN_PROGRESS", Some("User Initiated"));
        let b = ev.res(5.0, "A", "UPDATE_IN_PROGRESS", None);
        assert_eq!(read(&mut cursor, &[vec![b.clone(), a.clone()]]).len(), 2);
        let late = ev.res(4.0, "B", "UPDATE_IN_PROGRESS", None);
        let got = read(&mut cursor, &[vec![b, late.clone(), a]]);
        assert_eq!(ids(&got), ids(&[late]));
    }

    #[test]
    fn baseline_round_trips_through_state() {
        let mut ev = Ev::new();
        let page = vec![
            ev.res(2.0, "A", "X", None),
            ev.res(2.0, "B", "X", None),
            ev.res(1.0, "C", "X", None),
        ];
        let b = Baseline::from_newest_page(&page);
        assert_eq!(b.ids, [page[0].identity(), page[1].identity()]);
        assert_eq!(Baseline::decode(&b.encode()).ok(), Some(b));
        assert_eq!(Baseline::from_newest_page(&[]), Baseline::default());
    }
}
