//! What the steps tell the people reading the job's log about the lock and the stack.
//!
//! One line per event, in words an on-call engineer reads at a glance. Texts that come from
//! AWS (event reasons) are printed through the tracing writer, which sanitizes every line
//! (`action::log::sanitize`): no event reason can become a workflow command.

use std::time::Duration;

use tracing::{info, warn};

use crate::action::log;
use crate::duration;
use crate::lock::{self, LockEvent};
use crate::stack::{MonitorEvent, StackResult};

/// One log line per lock event, for the people reading the job's log.
pub fn lock_event(key: &str, event: LockEvent) {
    let eta = |eta: Option<Duration>| eta.map(duration::human).unwrap_or_else(|| "unknown".into());
    match event {
        LockEvent::Queued {
            position,
            ahead,
            holder,
            eta: e,
        }
        | LockEvent::PositionChanged {
            position,
            ahead,
            holder,
            eta: e,
        } => {
            let holder = holder
                .map(|h| format!("held by {} since {}", h.info.describe(), h.acquired_at))
                .unwrap_or_else(|| "free, being handed over".into());
            info!(
                "lock {key:?} {holder}; waiting in queue position {position} ({ahead} ahead), ETA {}",
                eta(e)
            );
        }
        LockEvent::Frozen {
            freeze,
            position,
            moved: true,
            ..
        } => info!(
            "lock {key:?} is still frozen by {} until {}; now queue position {position}",
            freeze.by, freeze.until
        ),
        LockEvent::Frozen {
            freeze,
            holder,
            position,
            moved: false,
        } => {
            let finishing = holder
                .map(|h| format!(" {} holds it and finishes first;", h.info.describe()))
                .unwrap_or_default();
            // A notice, not just a line: the reason a deployment waits belongs on the run page.
            log::notice(
                "Deployments are frozen",
                &format!(
                    "lock {key:?} is {}.{finishing} waiting in queue position {position}; \
                     this run goes when the freeze ends (lock-timeout permitting)",
                    freeze.describe(lock::WallClock::system().now_ms())
                ),
            );
        }
        LockEvent::FreezeEnded { freeze, expired } => {
            let how = if expired {
                "reached its end"
            } else {
                "was lifted"
            };
            info!(
                "the freeze on lock {key:?} by {} {how}; waiting for our turn in the queue",
                freeze.by
            );
        }
        LockEvent::TakingOver { previous, why } => {
            // Loud on purpose: a takeover means a run died holding the lock.
            log::warning(
                "Taking over a stale deployment lock",
                &format!(
                    "lock {key:?} was held by {}: {why}. Taking it over.",
                    previous.info.describe()
                ),
            );
        }
        LockEvent::Acquired { record, waited } => {
            info!(
                "lock {key:?} acquired (fence {}) after {}",
                record.fence,
                duration::human(waited)
            );
        }
    }
}

/// Log lines while the stack is deployed or followed. Event texts come from AWS (and from
/// whoever wrote the template): the log writer sanitizes every line.
pub fn monitor_event(root: &str, event: MonitorEvent) {
    match event {
        MonitorEvent::Waiting { timeout } => info!(
            "no operation is running: waiting up to {} for one to start",
            duration::human(timeout)
        ),
        MonitorEvent::DeletingFailedStack { stack_id } => log::notice(
            "Recreating a failed stack",
            &format!(
                "{stack_id} is in ROLLBACK_COMPLETE after a failed first create: deleting it and creating it again"
            ),
        ),
        MonitorEvent::ChangeSetCreated { name, changes, .. } => {
            info!("change set {name} ready: {changes} resource change(s)")
        }
        MonitorEvent::Started {
            stack_id,
            status,
            operation_id,
        } => {
            info!(
                "{status}: operation {} on {stack_id}",
                operation_id.as_deref().unwrap_or("(no id)")
            )
        }
        MonitorEvent::Resource(e) => {
            // Nested stacks' events name their stack; the root's go without.
            let stack = if e.stack_name == root {
                String::new()
            } else {
                format!("{} ", e.stack_name)
            };
            let reason = e
                .reason
                .as_deref()
                .map(|r| format!(" - {r}"))
                .unwrap_or_default();
            info!(
                "{stack}{} {} {}{reason}",
                e.logical_id, e.resource_type, e.status
            )
        }
        MonitorEvent::Progress { done, total } => info!("progress {done}/{total}"),
        MonitorEvent::RootCause {
            resource: Some(resource),
            reason,
        } => warn!("root cause: {resource} failed: {reason}"),
        MonitorEvent::RootCause {
            resource: None,
            reason,
        } => warn!("root cause: the stack says: {reason}"),
        MonitorEvent::Throttled { next_poll } => warn!(
            "CloudFormation is throttling us: next poll in {}",
            duration::human(next_poll)
        ),
        MonitorEvent::Interrupted {
            error,
            restart,
            budget,
            retry_in,
        } => log::warning(
            "Monitoring interrupted",
            &format!(
                "{error}; restarting the monitor in {} (restart {restart} of {budget})",
                duration::human(retry_in)
            ),
        ),
        MonitorEvent::Resumed { gap } => {
            info!("monitoring resumed after a gap of {}", duration::human(gap))
        }
        MonitorEvent::Finished(outcome) => info!("operation finished: {outcome}"),
    }
}

pub fn release(outcome: &lock::ReleaseOutcome) -> String {
    match outcome {
        lock::ReleaseOutcome::Released(_) => "released".into(),
        lock::ReleaseOutcome::AlreadyFree => "already free: nothing to release".into(),
        lock::ReleaseOutcome::HeldByOther(other) => {
            format!(
                "held by {} (we were taken over): left untouched",
                other.info.describe()
            )
        }
    }
}

/// The annotations of a finished stack operation: the root cause (an error when the operation
/// failed), the next step out of a stuck state, and what was left behind. One place for both
/// steps (mode lock reports from the post step).
pub fn result_annotations(stack: &str, result: &StackResult) {
    if !result.outcome.is_success() {
        match (&result.failed_resource, &result.failure_reason) {
            (Some(resource), Some(reason)) => log::error(&format!("{resource} failed"), reason),
            (None, Some(reason)) => log::error(&format!("{stack} failed"), reason),
            _ => {}
        }
    }
    if let Some(step) = &result.recovery {
        log::error(&format!("{stack} needs a person"), step);
    }
    for warning in &result.warnings {
        log::warning(&format!("{stack}: left behind"), warning);
    }
}
