//! One CloudFormation stack event, owned and SDK-independent, and what it says on its own.
//!
//! Following a stack's events is split in three pure pieces around this type:
//! - [`super::cursor`] reads DescribeStackEvents pages and keeps only events not seen before;
//! - [`super::tracker`] follows ONE operation chain to the root stack's terminal status.
//!
//! Timestamps are CloudFormation's own (one clock); the local clock is never compared with
//! them, so clock skew on the runner cannot hide or invent events.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::status;

/// The resource type of a nested stack, and of a stack's own events.
pub const STACK_TYPE: &str = "AWS::CloudFormation::Stack";

/// A nested stack's events start after its parent's resource event; the tolerance covers
/// timestamps written by different CloudFormation workers.
pub(crate) const NESTED_TOLERANCE: TimeDelta = TimeDelta::seconds(1);

/// See [`Event::identity`]; also for events in the AWS CLI's shape (`history::StackEvent`).
pub fn identity(
    event_id: &str,
    timestamp: DateTime<Utc>,
    status: &str,
    hook_status: Option<&str>,
) -> String {
    format!(
        "{event_id}|{}|{status}|{}",
        timestamp.timestamp_millis(),
        hook_status.unwrap_or("")
    )
}

/// One stack event, owned and SDK-independent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub stack_id: String,
    pub stack_name: String,
    pub logical_id: String,
    pub physical_id: Option<String>,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub operation_id: Option<String>,
    pub client_request_token: Option<String>,
    /// `CONFIGURATION_COMPLETE` (created, not yet stable) or `VALIDATION_FAILED`.
    #[serde(default)]
    pub detailed_status: Option<String>,
    /// A Hook's verdict on this resource (`HookStatus` HOOK_COMPLETE_FAILED, ...), its type
    /// name, reason and failure mode (FAIL stops the resource, WARN only warns).
    #[serde(default)]
    pub hook_type: Option<String>,
    #[serde(default)]
    pub hook_status: Option<String>,
    #[serde(default)]
    pub hook_status_reason: Option<String>,
    #[serde(default)]
    pub hook_failure_mode: Option<String>,
}

impl Event {
    /// An event about the stack itself rather than one of its resources.
    pub fn is_stack_level(&self) -> bool {
        self.resource_type == STACK_TYPE
            && (self.logical_id == self.stack_name
                || self.physical_id.as_deref() == Some(self.stack_id.as_str()))
    }

    /// The first event of an operation on this stack.
    pub fn starts_operation(&self) -> bool {
        if !self.is_stack_level() || !status::starts_operation(&self.status) {
            return false;
        }
        // Rollback statuses also appear in the middle of a failed update; only a rollback
        // the user asked for (RollbackStack, CancelUpdateStack) starts an operation.
        !status::is_rollback(&self.status) || self.is_user_initiated()
    }

    pub fn is_user_initiated(&self) -> bool {
        self.reason
            .as_deref()
            .is_some_and(|r| r.trim() == "User Initiated")
    }

    /// A cancellation is a consequence of another failure, never its cause.
    pub fn is_cancellation(&self) -> bool {
        let reason = self
            .reason
            .as_deref()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        [
            "resource creation cancelled",
            "resource update cancelled",
            "resource deletion cancelled",
        ]
        .iter()
        .any(|c| reason.starts_with(c))
    }

    /// What tells two events apart: the EventId, and for the rare events that share one
    /// (a Hook's IN_PROGRESS and FAILED in real-events/28) what they say. Overlapping pages
    /// repeat an event whole, so this still drops every repeat.
    pub fn identity(&self) -> String {
        identity(
            &self.event_id,
            self.timestamp,
            &self.status,
            self.hook_status.as_deref(),
        )
    }

    pub(crate) fn nested_stack_id(&self) -> Option<&str> {
        self.physical_id.as_deref().filter(|p| !p.trim().is_empty())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stack::cursor::{Cursor, Scan};
    use crate::stack::tracker::{Tracker, Update};

    pub const ROOT: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/app/1";
    pub const CHILD: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/app-Net-X/2";

    /// Builds events the way CloudFormation writes them; `t` is seconds after a fixed moment.
    pub struct Ev {
        pub n: u32,
    }

    pub fn at(t: f64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(1_767_225_600_000 + (t * 1000.0) as i64)
            .unwrap_or_default()
    }

    impl Ev {
        pub fn new() -> Self {
            Self { n: 0 }
        }

        fn next_id(&mut self) -> String {
            self.n += 1;
            format!("ev-{:04}", self.n)
        }

        pub fn stack(&mut self, t: f64, status: &str, reason: Option<&str>) -> Event {
            Event {
                event_id: self.next_id(),
                stack_id: ROOT.into(),
                stack_name: "app".into(),
                logical_id: "app".into(),
                physical_id: Some(ROOT.into()),
                resource_type: STACK_TYPE.into(),
                status: status.into(),
                reason: reason.map(Into::into),
                timestamp: at(t),
                operation_id: None,
                client_request_token: None,
                ..Event::default()
            }
        }

        pub fn res(&mut self, t: f64, logical: &str, status: &str, reason: Option<&str>) -> Event {
            Event {
                event_id: self.next_id(),
                stack_id: ROOT.into(),
                stack_name: "app".into(),
                logical_id: logical.into(),
                physical_id: None,
                resource_type: "AWS::SQS::Queue".into(),
                status: status.into(),
                reason: reason.map(Into::into),
                timestamp: at(t),
                operation_id: None,
                client_request_token: None,
                ..Event::default()
            }
        }

        /// The parent's resource for the nested stack `Net`.
        pub fn nested_res(
            &mut self,
            t: f64,
            status: &str,
            physical: Option<&str>,
            reason: Option<&str>,
        ) -> Event {
            let mut e = self.res(t, "Net", status, reason);
            e.resource_type = STACK_TYPE.into();
            e.physical_id = physical.map(Into::into);
            e
        }

        /// An event inside the nested stack.
        pub fn child(
            &mut self,
            t: f64,
            logical: &str,
            status: &str,
            reason: Option<&str>,
        ) -> Event {
            let mut e = self.res(t, logical, status, reason);
            e.stack_id = CHILD.into();
            e.stack_name = "app-Net-X".into();
            if logical == "app-Net-X" {
                e.resource_type = STACK_TYPE.into();
                e.physical_id = Some(CHILD.into());
            }
            e
        }
    }

    pub fn newest_first(events: &[Event]) -> Vec<Event> {
        let mut v = events.to_vec();
        v.reverse();
        v
    }

    pub fn read(cursor: &mut Cursor, pages: &[Vec<Event>]) -> Vec<Event> {
        let mut batch = Vec::new();
        for page in pages {
            if cursor.scan_page(page, &mut batch) == Scan::Done {
                break;
            }
        }
        cursor.finish(batch)
    }

    pub fn ids(events: &[Event]) -> Vec<String> {
        events.iter().map(|e| e.event_id.clone()).collect()
    }

    pub fn feed(tracker: &mut Tracker, events: &[Event]) -> Vec<Update> {
        events
            .iter()
            .flat_map(|e| {
                if e.stack_id == CHILD {
                    tracker.apply_nested(CHILD, e)
                } else {
                    tracker.apply_root(e)
                }
            })
            .collect()
    }

    pub fn finished(updates: &[Update]) -> Option<String> {
        updates.iter().find_map(|u| match u {
            Update::Finished(e) => Some(e.status.clone()),
            _ => None,
        })
    }
}
