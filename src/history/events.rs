//! From CloudFormation stack events to operations and resource timings.
//!
//! [`StackEvent`] mirrors one element of `aws cloudformation describe-stack-events` output, so
//! the CLI's own JSON can be fed in as it is. The rest is pure:
//! - [`split_operations`] cuts a stack's event history into operations: each starts at a
//!   stack-level "User Initiated" `*_IN_PROGRESS` event and ends at the stack's next terminal
//!   status;
//! - [`trace`] replays one operation's events into resource timings (what is done, what is
//!   running and since when), which is what both a history record and the estimator need.
//!
//! Events may arrive in any order (pages overlap, the CLI prints newest first, several share a
//! timestamp): they are de-duplicated by EventId and put in time order first.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::record::{HistoryRecord, Operation, Outcome, ResourceTiming, describe_json_error};

/// The resource type of a stack's own events (and of nested stacks).
pub const STACK_TYPE: &str = "AWS::CloudFormation::Stack";

/// One stack event, in the AWS CLI's JSON shape (PascalCase keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StackEvent {
    pub stack_id: String,
    pub event_id: String,
    pub stack_name: String,
    pub logical_resource_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_resource_id: Option<String>,
    pub resource_type: String,
    pub timestamp: DateTime<Utc>,
    pub resource_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_status_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detailed_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_status_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_failure_mode: Option<String>,
}

impl StackEvent {
    /// About the stack itself rather than one of its resources.
    pub fn is_stack_level(&self) -> bool {
        self.resource_type == STACK_TYPE
            && (self.logical_resource_id == self.stack_name
                || self.physical_resource_id.as_deref() == Some(self.stack_id.as_str()))
    }

    fn reason(&self) -> &str {
        self.resource_status_reason.as_deref().unwrap_or("").trim()
    }

    /// The first event of an operation: "User Initiated" is what CloudFormation writes on
    /// the stack-level event of every API call that starts one. `REVIEW_IN_PROGRESS` (a
    /// change set for a new stack) is not a start: the work starts at CREATE_IN_PROGRESS.
    pub fn starts_operation(&self) -> bool {
        self.is_stack_level()
            && self.resource_status != "REVIEW_IN_PROGRESS"
            && Operation::from_start_status(&self.resource_status).is_some()
            && self.reason() == "User Initiated"
    }
}

/// The whole `describe-stack-events` output.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeStackEventsOutput {
    stack_events: Vec<StackEvent>,
}

#[derive(Debug, Error)]
#[error("{}", describe_json_error(.0, EVENTS_EXPECTED))]
pub struct EventsParseError(serde_json::Error);

const EVENTS_EXPECTED: &str = "expected the output of `aws cloudformation describe-stack-events --stack-name S` \
     ({\"StackEvents\": [{\"StackId\", \"EventId\", \"StackName\", \"LogicalResourceId\", \"ResourceType\", \
     \"Timestamp\", \"ResourceStatus\", ...}]})";

/// Parses `aws cloudformation describe-stack-events` output (`{"StackEvents": [...]}`); a bare
/// array of events is accepted too. An event that lacks a field every event has is skipped
/// and named in the returned list (a real stream has one with a hand-corrupted key:
/// tests/fixtures/real-events/10): one bad event must not cost the whole file. When no
/// event can be read, the error says where and what was expected.
pub fn parse_describe_stack_events(
    text: &str,
) -> Result<(Vec<StackEvent>, Vec<String>), EventsParseError> {
    let strict = if text.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<StackEvent>>(text)
    } else {
        serde_json::from_str::<DescribeStackEventsOutput>(text).map(|o| o.stack_events)
    };
    let err = match strict {
        Ok(events) => return Ok((events, Vec::new())),
        Err(err) => err,
    };
    let values = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(values)) => values,
        Ok(serde_json::Value::Object(mut o)) => match o.remove("StackEvents") {
            Some(serde_json::Value::Array(values)) => values,
            _ => return Err(EventsParseError(err)),
        },
        _ => return Err(EventsParseError(err)),
    };
    let mut events = Vec::new();
    let mut skipped = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let id = value
            .get("EventId")
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string();
        match serde_json::from_value::<StackEvent>(value) {
            Ok(e) => events.push(e),
            Err(e) => skipped.push(format!("event {} ({id}): {e}", i + 1)),
        }
    }
    if events.is_empty() {
        return Err(EventsParseError(err));
    }
    Ok((events, skipped))
}

/// Events de-duplicated by EventId, oldest first. Input is usually newest first (the API's
/// and the CLI's order): reversing it first keeps events that share a timestamp in the order
/// CloudFormation wrote them; the stable sort then repairs anything out of order.
pub fn chronological(events: &[StackEvent]) -> Vec<StackEvent> {
    let mut seen = HashSet::new();
    let mut out: Vec<StackEvent> = events
        .iter()
        .rev()
        .filter(|e| {
            seen.insert(crate::stack::events::identity(
                &e.event_id,
                e.timestamp,
                &e.resource_status,
                e.hook_status.as_deref(),
            ))
        })
        .cloned()
        .collect();
    out.sort_by_key(|e| e.timestamp);
    out
}

/// A stack-level status that ends an operation.
pub fn is_terminal_stack_status(status: &str) -> bool {
    (status.ends_with("_COMPLETE") || status.ends_with("_FAILED"))
        && !status.ends_with("_IN_PROGRESS")
}

/// Cuts a stack's events (any order) into operations, oldest first. Events before the first
/// start event are dropped (the middle of an operation whose start is not in the input). The
/// last operation may still be running.
///
/// An operation is a CHAIN, as real CloudFormation runs it (`crate::stack::chain`): its
/// automatic rollback and clean-up phases, and a `CancelUpdateStack` rollback ("User
/// Initiated" or "Stack update cancelled" while it runs), belong to it; it ends at the stack's
/// next terminal status, or when a user starts another operation before that (a DeleteStack
/// during a rollback: the interrupted chain has no end, hence no record). Stacks are kept
/// apart by StackId: a stack deleted and created again under its name is another stack.
pub fn split_operations(events: &[StackEvent]) -> Vec<Vec<StackEvent>> {
    let mut ops: Vec<Vec<StackEvent>> = Vec::new();
    // The stack whose operation is open, and that operation's index.
    let mut open: Option<(String, usize)> = None;
    for e in chronological(events) {
        let continues_open = open.as_ref().is_some_and(|(id, _)| *id == e.stack_id);
        if e.starts_operation() {
            let is_rollback = e.resource_status.contains("ROLLBACK");
            if !(continues_open && is_rollback) {
                ops.push(Vec::new());
                open = Some((e.stack_id.clone(), ops.len() - 1));
            }
        }
        let Some((stack_id, index)) = open.clone() else {
            continue;
        };
        if stack_id != e.stack_id {
            continue;
        }
        let ends = e.is_stack_level() && is_terminal_stack_status(&e.resource_status);
        ops[index].push(e);
        if ends {
            open = None;
        }
    }
    ops
}

/// The events of the operation running now (or the last one, if none runs).
pub fn current_operation(events: &[StackEvent]) -> Option<Vec<StackEvent>> {
    split_operations(events).pop()
}

/// Where a resource is in an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceState {
    pub logical_id: String,
    pub resource_type: String,
    pub action: String,
    pub started_at: DateTime<Utc>,
    /// None while it runs.
    pub finished_at: Option<DateTime<Utc>>,
    pub status: String,
    /// Started after the rollback began: undoing, not deploying.
    pub rollback: bool,
}

impl ResourceState {
    pub fn completed(&self) -> bool {
        self.finished_at.is_some() && self.status.ends_with("_COMPLETE")
    }
}

/// One operation replayed from its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub stack: String,
    pub operation: Operation,
    pub started_at: DateTime<Utc>,
    /// The newest event's time: CloudFormation's clock, to check a local clock against.
    pub last_event_at: DateTime<Utc>,
    pub rollback_started_at: Option<DateTime<Utc>>,
    /// The terminal stack status and when, once the operation ended.
    pub finished: Option<(String, DateTime<Utc>)>,
    /// A stack-level reason said "cancelled" (CancelUpdateStack).
    pub cancelled: bool,
    /// In the order they started.
    pub resources: Vec<ResourceState>,
}

impl Trace {
    pub fn outcome(&self) -> Option<Outcome> {
        let (status, _) = self.finished.as_ref()?;
        Some(if self.cancelled {
            Outcome::Cancelled
        } else if status.contains("ROLLBACK") && status.ends_with("_COMPLETE") {
            if self.operation == Operation::Rollback {
                Outcome::Succeeded
            } else {
                Outcome::RolledBack
            }
        } else if status.ends_with("_FAILED") {
            Outcome::Failed
        } else {
            Outcome::Succeeded
        })
    }

    /// The history record of a finished operation; None while it runs.
    pub fn to_record(&self, correlation_id: &str) -> Option<HistoryRecord> {
        let outcome = self.outcome()?;
        let (_, finished_at) = self.finished.as_ref()?;
        let resources = self
            .resources
            .iter()
            .filter_map(|r| {
                Some(ResourceTiming {
                    logical_id: r.logical_id.clone(),
                    resource_type: r.resource_type.clone(),
                    action: r.action.clone(),
                    started_at: r.started_at,
                    finished_at: r.finished_at?,
                    status: r.status.clone(),
                })
            })
            .collect();
        Some(HistoryRecord {
            stack: self.stack.clone(),
            correlation_id: correlation_id.to_string(),
            operation: self.operation,
            outcome,
            started_at: self.started_at,
            finished_at: *finished_at,
            rollback_started_at: self.rollback_started_at,
            resources,
            estimate: None,
            lock_wait_seconds: None,
        })
    }
}

/// What following `record`'s operation would have shown `at` seconds after its start: the
/// resources started by then, finished or still running, and the rollback once it had begun.
/// This is how past runs are replayed through the estimator (its self-calibration and the
/// evaluation).
pub fn trace_at(record: &HistoryRecord, at: f64) -> Trace {
    let now = record.started_at + chrono::TimeDelta::milliseconds((at * 1000.0).round() as i64);
    let rollback_started_at = record.rollback_started_at.filter(|r| *r <= now);
    let mut resources: Vec<ResourceState> = record
        .resources
        .iter()
        .filter(|r| r.started_at <= now)
        .map(|r| {
            let done = r.finished_at <= now;
            ResourceState {
                logical_id: r.logical_id.clone(),
                resource_type: r.resource_type.clone(),
                action: r.action.clone(),
                started_at: r.started_at,
                finished_at: done.then_some(r.finished_at),
                status: if done {
                    r.status.clone()
                } else {
                    format!("{}_IN_PROGRESS", r.action)
                },
                rollback: rollback_started_at.is_some_and(|c| r.started_at >= c),
            }
        })
        .collect();
    resources.sort_by_key(|r| r.started_at);
    let last_event_at = resources
        .iter()
        .flat_map(|r| [Some(r.started_at), r.finished_at])
        .flatten()
        .chain(rollback_started_at)
        .max()
        .unwrap_or(record.started_at)
        .max(record.started_at);
    Trace {
        stack: record.stack.clone(),
        operation: record.operation,
        started_at: record.started_at,
        last_event_at,
        rollback_started_at,
        finished: None,
        cancelled: false,
        resources,
    }
}

/// Splits `CREATE_IN_PROGRESS` into (`CREATE`, `IN_PROGRESS`).
fn split_status(status: &str) -> Option<(&str, &str)> {
    ["_IN_PROGRESS", "_COMPLETE", "_FAILED", "_SKIPPED"]
        .iter()
        .find_map(|suffix| {
            status
                .strip_suffix(suffix)
                .map(|action| (action, &suffix[1..]))
        })
}

/// Replays one operation's events (any order; the first start event found begins it). None
/// when no event starts an operation.
pub fn trace(events: &[StackEvent]) -> Option<Trace> {
    let events = chronological(events);
    let start = events.iter().position(StackEvent::starts_operation)?;
    let first = &events[start];
    let mut t = Trace {
        stack: first.stack_name.clone(),
        operation: Operation::from_start_status(&first.resource_status)?,
        started_at: first.timestamp,
        last_event_at: first.timestamp,
        rollback_started_at: None,
        finished: None,
        cancelled: false,
        resources: Vec::new(),
    };
    // Index of the open (running) interval of each (logical id, action, phase).
    let mut open: HashMap<(String, String, bool), usize> = HashMap::new();
    for e in &events[start..] {
        t.last_event_at = t.last_event_at.max(e.timestamp);
        if e.is_stack_level() {
            let status = e.resource_status.as_str();
            // CancelUpdateStack: "Stack update cancelled", or "User Initiated" on the
            // rollback it starts while the update runs.
            let reason = e.reason().to_ascii_lowercase();
            if reason.contains("cancel")
                || (status.contains("ROLLBACK_IN_PROGRESS")
                    && reason == "user initiated"
                    && t.operation != Operation::Rollback)
            {
                t.cancelled = true;
            }
            if status.contains("ROLLBACK_IN_PROGRESS") && t.operation != Operation::Rollback {
                t.rollback_started_at.get_or_insert(e.timestamp);
            }
            if is_terminal_stack_status(status) {
                t.finished = Some((status.to_string(), e.timestamp));
                break;
            }
            continue;
        }
        let Some((action, state)) = split_status(&e.resource_status) else {
            continue;
        };
        let rollback = t.rollback_started_at.is_some();
        let key = (e.logical_resource_id.clone(), action.to_string(), rollback);
        match state {
            "IN_PROGRESS" => {
                // CloudFormation writes a second IN_PROGRESS ("Resource creation Initiated"):
                // the first one is the start.
                if let std::collections::hash_map::Entry::Vacant(slot) = open.entry(key) {
                    slot.insert(t.resources.len());
                    t.resources.push(ResourceState {
                        logical_id: e.logical_resource_id.clone(),
                        resource_type: e.resource_type.clone(),
                        action: action.to_string(),
                        started_at: e.timestamp,
                        finished_at: None,
                        status: e.resource_status.clone(),
                        rollback,
                    });
                }
            }
            // SKIPPED (e.g. DELETE_SKIPPED for a retained resource) did no work.
            "SKIPPED" => {}
            _ => {
                // A resource that started before the rollback and ends during it (cancelled)
                // closes its forward interval.
                let index = open
                    .remove(&key)
                    .or_else(|| open.remove(&(key.0.clone(), key.1.clone(), !key.2)));
                if let Some(i) = index {
                    let r = &mut t.resources[i];
                    r.finished_at = Some(e.timestamp.max(r.started_at));
                    r.status = e.resource_status.clone();
                }
            }
        }
    }
    Some(t)
}

/// Every finished operation in a stack's event history as a record (oldest first), for
/// `history collect`. Records get `correlation_prefix` plus the operation's start time, since
/// no correlation ID was made for them.
pub fn records_from_history(events: &[StackEvent], correlation_prefix: &str) -> Vec<HistoryRecord> {
    split_operations(events)
        .iter()
        .filter_map(|op| trace(op))
        .filter_map(|t| {
            let id = format!(
                "{correlation_prefix}{}",
                t.started_at.format("%Y%m%d-%H%M%S")
            );
            t.to_record(&id)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeDelta;

    /// Builds events the way CloudFormation writes them, for tests here and in `estimate`.
    pub(crate) struct Stack {
        pub name: String,
        pub t0: DateTime<Utc>,
        pub events: Vec<StackEvent>,
    }

    impl Stack {
        pub fn new(name: &str) -> Self {
            Stack {
                name: name.into(),
                t0: "2026-01-14T12:00:00Z".parse().unwrap(),
                events: Vec::new(),
            }
        }

        fn push(&mut self, at: i64, logical: &str, rtype: &str, status: &str, reason: &str) {
            let stack_id = format!("arn:aws:cloudformation:us-east-1:1:stack/{}/x", self.name);
            let physical = if logical == self.name {
                Some(stack_id.clone())
            } else {
                Some(format!("phys-{logical}"))
            };
            self.events.push(StackEvent {
                stack_id,
                event_id: format!("ev-{}", self.events.len()),
                stack_name: self.name.clone(),
                logical_resource_id: logical.into(),
                physical_resource_id: physical,
                resource_type: rtype.into(),
                timestamp: self.t0 + TimeDelta::seconds(at),
                resource_status: status.into(),
                resource_status_reason: (!reason.is_empty()).then(|| reason.to_string()),
                operation_id: None,
                client_request_token: None,
                detailed_status: None,
                hook_type: None,
                hook_status: None,
                hook_status_reason: None,
                hook_failure_mode: None,
            });
        }

        pub fn stack(&mut self, at: i64, status: &str, reason: &str) {
            let name = self.name.clone();
            self.push(at, &name, STACK_TYPE, status, reason);
        }

        pub fn res(&mut self, at: i64, logical: &str, rtype: &str, status: &str) {
            self.push(at, logical, rtype, status, "");
        }

        pub fn res_reason(&mut self, at: i64, logical: &str, rtype: &str, status: &str, why: &str) {
            self.push(at, logical, rtype, status, why);
        }

        /// Newest first, as describe-stack-events prints them.
        pub fn cli_order(&self) -> Vec<StackEvent> {
            self.events.iter().rev().cloned().collect()
        }
    }

    fn create_then_update() -> Stack {
        let mut s = Stack::new("app");
        s.stack(0, "CREATE_IN_PROGRESS", "User Initiated");
        s.res(1, "Role", "AWS::IAM::Role", "CREATE_IN_PROGRESS");
        s.res_reason(
            2,
            "Role",
            "AWS::IAM::Role",
            "CREATE_IN_PROGRESS",
            "Resource creation Initiated",
        );
        s.res(20, "Role", "AWS::IAM::Role", "CREATE_COMPLETE");
        s.res(21, "Db", "AWS::RDS::DBInstance", "CREATE_IN_PROGRESS");
        s.res(500, "Db", "AWS::RDS::DBInstance", "CREATE_COMPLETE");
        s.stack(505, "CREATE_COMPLETE", "");
        s.stack(1000, "UPDATE_IN_PROGRESS", "User Initiated");
        s.res(1001, "Fn", "AWS::Lambda::Function", "UPDATE_IN_PROGRESS");
        s.res_reason(1010, "Fn", "AWS::Lambda::Function", "UPDATE_FAILED", "boom");
        s.stack(
            1011,
            "UPDATE_ROLLBACK_IN_PROGRESS",
            "The following resource(s) failed",
        );
        s.res(1012, "Fn", "AWS::Lambda::Function", "UPDATE_IN_PROGRESS");
        s.res(1020, "Fn", "AWS::Lambda::Function", "UPDATE_COMPLETE");
        s.stack(1025, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "");
        s.stack(1030, "UPDATE_ROLLBACK_COMPLETE", "");
        s
    }

    #[test]
    fn parses_the_cli_output_and_reports_positions() {
        let s = create_then_update();
        let json = serde_json::json!({ "StackEvents": s.cli_order() }).to_string();
        let (events, skipped) = parse_describe_stack_events(&json).unwrap();
        assert_eq!((events.len(), skipped.len()), (s.events.len(), 0));
        let bare = serde_json::to_string(&s.cli_order()).unwrap();
        assert_eq!(
            parse_describe_stack_events(&bare).unwrap().0.len(),
            s.events.len()
        );
        // One malformed event among good ones is skipped and named, not fatal.
        let mut values: Vec<serde_json::Value> = s
            .cli_order()
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect();
        let broken = values[3].as_object_mut().unwrap();
        let logical = broken.remove("LogicalResourceId").unwrap();
        broken.insert("LogicalResourceI".into(), logical);
        let json = serde_json::json!({ "StackEvents": values }).to_string();
        let (events, skipped) = parse_describe_stack_events(&json).unwrap();
        assert_eq!(events.len(), s.events.len() - 1);
        assert_eq!(skipped.len(), 1);
        assert!(
            skipped[0].contains("missing field `LogicalResourceId`"),
            "{skipped:?}"
        );

        let err = parse_describe_stack_events("{\"StackEvents\": [{\"EventId\": 3}]}")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("line 1, column"), "{err}");
        assert!(
            err.contains("invalid type: integer `3`, expected a string"),
            "{err}"
        );
        assert!(err.contains("describe-stack-events"), "{err}");
        let err = parse_describe_stack_events("{\"Stacks\": []}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `StackEvents`"), "{err}");
    }

    #[test]
    fn splits_operations_and_builds_records() {
        let s = create_then_update();
        let ops = split_operations(&s.cli_order());
        assert_eq!(ops.len(), 2);
        let records = records_from_history(&s.cli_order(), "cfn-");
        assert_eq!(records.len(), 2);
        let create = &records[0];
        assert_eq!(create.operation, Operation::Create);
        assert_eq!(create.outcome, Outcome::Succeeded);
        assert_eq!(create.seconds(), 505.0);
        assert_eq!(create.correlation_id, "cfn-20260114-120000");
        // The second "Resource creation Initiated" IN_PROGRESS does not restart the clock.
        let role = &create.resources[0];
        assert_eq!((role.logical_id.as_str(), role.seconds()), ("Role", 19.0));
        assert_eq!(create.resources[1].seconds(), 479.0);

        let update = &records[1];
        assert_eq!(update.operation, Operation::Update);
        assert_eq!(update.outcome, Outcome::RolledBack);
        assert_eq!(update.forward_resources().count(), 1);
        assert_eq!(
            update.forward_resources().next().unwrap().status,
            "UPDATE_FAILED"
        );
        let undo: Vec<_> = update.rollback_resources().collect();
        assert_eq!(undo.len(), 1);
        assert_eq!(undo[0].seconds(), 8.0);
        update.validate().unwrap();
    }

    #[test]
    fn out_of_order_and_duplicated_events_give_the_same_trace() {
        let s = create_then_update();
        let mut shuffled = s.cli_order();
        shuffled.reverse();
        shuffled.swap(2, 5);
        shuffled.push(shuffled[3].clone());
        let a = records_from_history(&s.cli_order(), "x");
        let b = records_from_history(&shuffled, "x");
        assert_eq!(a, b);
    }

    #[test]
    fn a_running_operation_has_no_record_yet() {
        let mut s = Stack::new("app");
        s.res(-5, "Old", "AWS::S3::Bucket", "UPDATE_COMPLETE"); // before the start: ignored
        s.stack(0, "UPDATE_IN_PROGRESS", "User Initiated");
        s.res(2, "Fn", "AWS::Lambda::Function", "UPDATE_IN_PROGRESS");
        let op = current_operation(&s.cli_order()).unwrap();
        let t = trace(&op).unwrap();
        assert!(t.finished.is_none() && t.outcome().is_none());
        assert_eq!(t.resources.len(), 1);
        assert_eq!(t.resources[0].finished_at, None);
        assert!(t.to_record("id").is_none());
    }

    #[test]
    fn a_cancelled_update_is_marked_cancelled() {
        let mut s = Stack::new("app");
        s.stack(0, "UPDATE_IN_PROGRESS", "User Initiated");
        s.res(1, "Db", "AWS::RDS::DBInstance", "UPDATE_IN_PROGRESS");
        s.stack(60, "UPDATE_ROLLBACK_IN_PROGRESS", "Stack update cancelled");
        s.res_reason(
            61,
            "Db",
            "AWS::RDS::DBInstance",
            "UPDATE_FAILED",
            "Resource update cancelled",
        );
        s.stack(90, "UPDATE_ROLLBACK_COMPLETE", "");
        let t = trace(&s.cli_order()).unwrap();
        assert_eq!(t.outcome(), Some(Outcome::Cancelled));
        // The cancelled resource's forward interval is closed by the event in the rollback.
        assert_eq!(
            t.resources[0].finished_at,
            Some(s.t0 + TimeDelta::seconds(61))
        );
        assert!(!t.resources[0].rollback);
    }

    #[test]
    fn timestamps_of_every_real_format_are_instants_not_text() {
        // FINDINGS §3: with and without fraction, `+00:00` and `Z`; as text, the first sorts
        // after the second, in time it is before.
        let json = r#"{"StackEvents": [
            {"StackId": "s", "EventId": "b", "StackName": "app", "LogicalResourceId": "B",
             "ResourceType": "T", "Timestamp": "2025-04-09T17:44:28.001Z", "ResourceStatus": "CREATE_COMPLETE"},
            {"StackId": "s", "EventId": "a", "StackName": "app", "LogicalResourceId": "A",
             "ResourceType": "T", "Timestamp": "2025-04-09T17:44:28+00:00", "ResourceStatus": "CREATE_COMPLETE"},
            {"StackId": "s", "EventId": "c", "StackName": "app", "LogicalResourceId": "C",
             "ResourceType": "T", "Timestamp": "2025-04-09T17:44:27.999000+00:00", "ResourceStatus": "CREATE_COMPLETE"}
        ]}"#;
        let (events, skipped) = parse_describe_stack_events(json).unwrap();
        assert!(skipped.is_empty());
        let order: Vec<String> = chronological(&events)
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        assert_eq!(order, ["c", "a", "b"]);
    }
}
