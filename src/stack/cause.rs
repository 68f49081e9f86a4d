//! Why an operation failed, and what it left behind, from every place real CloudFormation puts
//! it (tests/fixtures/real-events/FINDINGS.md):
//!
//! 1. the first resource `*_FAILED` event, going forward, whose reason is not a cancellation
//!    ("Resource creation cancelled" is a consequence), root or nested stack alike; a Hook
//!    that failed a resource counts with the Hook's own reason;
//! 2. else a nested stack's own rollback reason (its template was wrong);
//! 3. else the parent's summary of a nested stack ("Embedded stack … was not successfully
//!    created: …") — a nested stack's own failures, read later, still win over it;
//! 4. else the root stack's rollback reason ("Attribute 'PublicIp' does not exist. Rollback
//!    requested by user.": the only words some failures get), or the cancellation that
//!    started the rollback (`CancelUpdateStack`);
//! 5. else a failure during the rollback or a clean-up phase;
//! 6. else the reason of the root stack's failed terminal status.
//!
//! Failures during a rollback or a clean-up phase (`DELETE_FAILED` of a resource being removed)
//! are also kept as [`Leftover`]s: they did not decide the outcome, but someone must deal with
//! what they left behind. Pure: events in, the cause out.

use chrono::{DateTime, Utc};

use super::events::{Event, STACK_TYPE};
use super::status::{self, ResourceClass};

/// Which place a cause came from (the module docs' list, best first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CauseSource {
    Resource,
    NestedStackReason,
    NestedStackSummary,
    StackRollbackReason,
    Cancelled,
    DuringRollback,
    StackStatus,
}

/// Why the operation failed, as a person reading its events says it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// The failed resource: `Logical`, `Nested/Logical` inside nested stacks, the nested
    /// stack's path when a nested stack itself says why; None when the root stack itself
    /// does (a template error, a cancellation).
    pub resource: Option<String>,
    /// CloudFormation's words (from AWS: sanitize before logging).
    pub reason: String,
    pub source: CauseSource,
    pub event: Event,
}

/// A resource the operation left behind: it failed to delete while the stack rolled back or
/// cleaned up (the reason a rollback failed, or something a clean-up gave up on), or it was
/// retained (`DELETE_SKIPPED`, DeletionPolicy Retain), which leaves it in the account where a
/// later create of the same name fails with "already exists" (real-events/18, 19).
#[derive(Debug, Clone, PartialEq)]
pub struct Leftover {
    pub path: String,
    pub resource_type: String,
    /// Its last status (`DELETE_FAILED`, `DELETE_SKIPPED`, `UPDATE_FAILED`, ...).
    pub status: String,
    pub reason: Option<String>,
    /// Where its stack was: rolling back, or cleaning up (after the update or its rollback).
    pub stage: Stage,
    /// How many failed attempts (CloudFormation retries a clean-up's delete: real-events/23).
    pub attempts: u32,
}

impl Leftover {
    pub fn retained(&self) -> bool {
        self.status.ends_with("_SKIPPED")
    }
}

/// Which part of an operation an event belongs to, for the stack it is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Forward,
    Rollback,
    Cleanup,
}

impl Stage {
    /// The stage a stack is in after a stack-level event with `status`.
    pub fn after(status: &str) -> Option<Stage> {
        if status.ends_with("_CLEANUP_IN_PROGRESS") {
            Some(Stage::Cleanup)
        } else if status::is_rollback(status) {
            Some(Stage::Rollback)
        } else {
            None
        }
    }
}

/// The candidates seen so far; [`Causes::best`] is the cause.
#[derive(Debug, Clone, Default)]
pub struct Causes {
    best: Option<(CauseSource, DateTime<Utc>, Cause)>,
    leftovers: Vec<Leftover>,
}

impl Causes {
    /// The cause, if anything failed or the stack said why it rolled back.
    pub fn best(&self) -> Option<&Cause> {
        self.best.as_ref().map(|(_, _, c)| c)
    }

    pub fn leftovers(&self) -> &[Leftover] {
        &self.leftovers
    }

    /// Considers one event of the operation. `prefix`: the nested stack's path ("" for the
    /// root); `stage`: the stage its stack was in when the event was written; `root`: the
    /// event is on the root stack. True when the cause changed.
    pub fn consider(&mut self, event: &Event, prefix: &str, stage: Stage, root: bool) -> bool {
        let path = path_of(event, prefix);
        if event.is_stack_level() {
            return self.consider_stack_event(event, (!root).then_some(path), root);
        }
        if let Some(cause) = hook_failure(event, &path) {
            return self.offer(CauseSource::Resource, cause);
        }
        if status::classify_resource(&event.status) == ResourceClass::Skipped {
            self.leave(event, path, stage);
            return false;
        }
        if status::classify_resource(&event.status) != ResourceClass::Failed
            || event.is_cancellation()
        {
            return false;
        }
        if stage != Stage::Forward {
            self.leave(event, path.clone(), stage);
            return self.offer(
                CauseSource::DuringRollback,
                cause(event, Some(path), CauseSource::DuringRollback),
            );
        }
        let source = if event.resource_type == STACK_TYPE {
            CauseSource::NestedStackSummary
        } else {
            CauseSource::Resource
        };
        self.offer(source, cause(event, Some(path), source))
    }

    fn consider_stack_event(&mut self, event: &Event, path: Option<String>, root: bool) -> bool {
        let reason = event.reason.as_deref().map(str::trim).unwrap_or("");
        if status::is_rollback(&event.status) {
            // CancelUpdateStack's rollback says "Stack update cancelled" (or "User
            // Initiated", the words of every operation a user starts).
            let cancelled =
                event.is_user_initiated() || reason.to_ascii_lowercase().contains("cancelled");
            let source = match (root, cancelled) {
                (true, true) => CauseSource::Cancelled,
                (true, false) => CauseSource::StackRollbackReason,
                (false, _) => CauseSource::NestedStackReason,
            };
            if reason.is_empty() || (!root && event.is_user_initiated()) {
                return false;
            }
            let mut candidate = cause(event, path, source);
            if source == CauseSource::Cancelled {
                candidate.reason = "the update was cancelled (CancelUpdateStack) and CloudFormation rolled it back".into();
            }
            return self.offer(source, candidate);
        }
        if status::classify_resource(&event.status) == ResourceClass::Failed && !reason.is_empty() {
            return self.offer(
                CauseSource::StackStatus,
                cause(event, path, CauseSource::StackStatus),
            );
        }
        false
    }

    /// Records (or updates: one entry per resource) what `event` left behind.
    fn leave(&mut self, event: &Event, path: String, stage: Stage) {
        let failed = u32::from(!event.status.ends_with("_SKIPPED"));
        match self.leftovers.iter_mut().find(|l| l.path == path) {
            Some(l) => {
                l.status = event.status.clone();
                l.reason = event.reason.clone().or(l.reason.take());
                l.stage = stage;
                l.attempts += failed;
            }
            None => self.leftovers.push(Leftover {
                path,
                resource_type: event.resource_type.clone(),
                status: event.status.clone(),
                reason: event.reason.clone(),
                stage,
                attempts: failed,
            }),
        }
    }

    /// Keeps `candidate` if it ranks before the current cause: by source, then by time (a
    /// nested stack's events are read after its parent's, so arrival order means nothing).
    fn offer(&mut self, source: CauseSource, candidate: Cause) -> bool {
        let at = candidate.event.timestamp;
        if self
            .best
            .as_ref()
            .is_some_and(|(s, t, _)| (*s, *t) <= (source, at))
        {
            return false;
        }
        self.best = Some((source, at, candidate));
        true
    }
}

fn path_of(event: &Event, prefix: &str) -> String {
    match (event.is_stack_level(), prefix.is_empty()) {
        (true, true) | (false, true) => event.logical_id.clone(),
        (true, false) => prefix.to_string(),
        (false, false) => format!("{prefix}/{}", event.logical_id),
    }
}

fn cause(event: &Event, resource: Option<String>, source: CauseSource) -> Cause {
    Cause {
        resource,
        reason: event.reason.clone().unwrap_or_default(),
        source,
        event: event.clone(),
    }
}

/// A Hook that failed a resource (`HookStatus` HOOK_COMPLETE_FAILED or HOOK_FAILED, failure
/// mode FAIL): its reason says more than the resource's later "The following hook(s) failed",
/// and it sits on a `*_IN_PROGRESS` event that a status rule would skip
/// (tests/fixtures/real-events/28). A Hook in WARN mode lets the resource go on: no cause.
fn hook_failure(event: &Event, path: &str) -> Option<Cause> {
    let hook_status = event.hook_status.as_deref()?;
    if !hook_status.ends_with("_FAILED")
        || event
            .hook_failure_mode
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case("WARN"))
    {
        return None;
    }
    let reason = event
        .hook_status_reason
        .clone()
        .or_else(|| event.reason.clone())
        .unwrap_or_else(|| {
            format!(
                "Hook {} failed ({hook_status})",
                event.hook_type.as_deref().unwrap_or("")
            )
        });
    Some(Cause {
        resource: Some(path.to_string()),
        reason,
        source: CauseSource::Resource,
        event: event.clone(),
    })
}
