//! The estimate as `estimate` (the CLI) makes it from files: exported history, the AWS CLI's
//! `describe-stack-events` output and, optionally, its `describe-change-set` output. Pure, so
//! the evaluation goes through exactly this path too.
//!
//! - `describe-stack-events` returns the stack's whole event history: every finished operation
//!   before the newest one is history too, and is added to the exported records unless they
//!   already hold it (the same stack, operation and start, to the second);
//! - with a change set and no events, the operation has not started: the estimate is the
//!   whole duration of the deployment it describes, from now (planning a deploy window);
//! - the stack's history is replayed once to calibrate the estimator (`calibrate.rs`).

use chrono::{DateTime, Utc};

use super::{Calibration, ChangeSetFile, Estimate, Options, estimate_with};
use crate::history::events::{StackEvent, Trace, records_from_history, split_operations, trace};
use crate::history::record::{HistoryRecord, Operation, Outcome};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offline {
    /// Events were given but none starts an operation.
    NoOperation { events: usize },
    /// Only a change set, and it does not say which stack (nor does the history).
    NoStack,
}

/// `history`: exported records; `events`: describe-stack-events output (empty when only a
/// change set is given).
pub fn estimate_offline(
    mut history: Vec<HistoryRecord>,
    events: &[StackEvent],
    change_set: Option<&ChangeSetFile>,
    now: DateTime<Utc>,
    expected_total: Option<usize>,
) -> Result<Estimate, Offline> {
    let current = if events.is_empty() && change_set.is_some() {
        let stack = change_set
            .and_then(|c| c.stack_name.clone())
            .or_else(|| history.last().map(|r| r.stack.clone()))
            .ok_or(Offline::NoStack)?;
        not_started(&history, &stack, change_set, now)
    } else {
        let mut ops = split_operations(events);
        let current = ops
            .pop()
            .and_then(|op| trace(&op))
            .ok_or(Offline::NoOperation {
                events: events.len(),
            })?;
        let earlier: Vec<StackEvent> = ops.into_iter().flatten().collect();
        merge(&mut history, records_from_history(&earlier, "events-"));
        current
    };
    let change_set = change_set.map(|c| c.changes.clone());
    let calibration = Some(Calibration::of(
        &history,
        &current.stack,
        current.operation,
        change_set.is_some(),
    ));
    let options = Options {
        expected_total,
        change_set,
        calibration,
    };
    Ok(estimate_with(&history, &current, now, &options))
}

/// Adds the records from events that the exported history does not already have.
fn merge(history: &mut Vec<HistoryRecord>, from_events: Vec<HistoryRecord>) {
    for r in from_events {
        let known = history.iter().any(|h| {
            h.stack == r.stack
                && h.operation == r.operation
                && (h.started_at - r.started_at).num_seconds().abs() <= 1
        });
        if !known {
            history.push(r);
        }
    }
    history.sort_by_key(|r| r.started_at);
}

/// The trace of an operation that starts now: a CREATE when the change set only adds and the
/// stack has no history since its last deletion (or none at all), else an UPDATE.
fn not_started(
    history: &[HistoryRecord],
    stack: &str,
    change_set: Option<&ChangeSetFile>,
    now: DateTime<Utc>,
) -> Trace {
    let only_adds = change_set.is_some_and(|c| c.changes.iter().all(|x| x.action == "Add"));
    // Gone after its last operation: deleted, or its first create failed (the action deletes
    // a stack left in ROLLBACK_COMPLETE and creates it again).
    let gone = |r: &HistoryRecord| match r.operation {
        Operation::Delete => r.outcome == Outcome::Succeeded,
        Operation::Create => r.outcome != Outcome::Succeeded,
        _ => false,
    };
    let exists = history
        .iter()
        .filter(|r| r.stack == stack)
        .max_by_key(|r| r.finished_at)
        .is_some_and(|r| !gone(r));
    Trace {
        stack: stack.to_string(),
        operation: if only_adds && !exists {
            Operation::Create
        } else {
            Operation::Update
        },
        started_at: now,
        last_event_at: now,
        rollback_started_at: None,
        finished: None,
        cancelled: false,
        resources: Vec::new(),
    }
}
