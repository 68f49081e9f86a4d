//! What a followed operation chain ended with, as the step reports it: outcome, status, root
//! cause, what was left behind and how to recover. Pure: a tracker in, a result out.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::cause::{CauseSource, Leftover, Stage};
use super::client::{FailedEvent, StackInfo};
use super::status::{self, Outcome};
use super::tracker::{ResourceTiming, Tracker};

/// What the lead turns into the step's outputs (and history).
#[derive(Debug, Clone, PartialEq)]
pub struct StackResult {
    pub outcome: Outcome,
    pub stack_status: Option<String>,
    pub stack_id: Option<String>,
    /// The forward operation's id.
    pub operation_id: Option<String>,
    /// Every operation of the chain (forward, rollback, clean-up), in order.
    pub operation_ids: Vec<String>,
    /// From the operation's first to its last event (CloudFormation's clock), or as measured
    /// here when it did not end.
    pub duration: Duration,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// From AWS (sanitize before logging).
    pub failure_reason: Option<String>,
    /// The error's title when "RESOURCE failed" would mislead: nothing failed, the step
    /// refused to execute (the deploy guard, a reviewed change set no longer executable).
    pub failure_title: Option<String>,
    pub failed_resource: Option<String>,
    /// What a person must know although it did not decide the outcome: resources left
    /// behind by a clean-up, another operation that took the stack over (from AWS in part:
    /// sanitize before logging).
    pub warnings: Vec<String>,
    /// How to get the stack out of a state only a person can fix (`*_ROLLBACK_FAILED`,
    /// `DELETE_FAILED`): the exact next command.
    pub recovery: Option<String>,
    pub outputs: Vec<(String, String)>,
    /// Per-resource timings, for history and estimates.
    pub resources: Vec<ResourceTiming>,
    /// Resources done / expected when it ended.
    pub progress: (u32, u32),
    /// The step must fail: the outcome is not a success, or an empty change set with
    /// `fail-on-empty-changeset`.
    pub fail_step: bool,
    /// The step was cancelled with `on-cancel: cancel-update`: what became of the update.
    pub cancel: Option<CancelReport>,
}

/// What `on-cancel: cancel-update` did when the step was cancelled while the operation ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelReport {
    /// The stack's status when the step was cancelled.
    pub status: String,
    /// CloudFormation accepted CancelUpdateStack.
    pub requested: bool,
    /// Why CancelUpdateStack was not called (a create cannot be cancelled) or was refused.
    pub not_cancelled: Option<String>,
    /// The rollback reached its end within the runner's grace: how long after the cancel
    /// (on this machine's clock). None: it was still running when following had to stop.
    pub rolled_back_in: Option<Duration>,
}

impl CancelReport {
    /// The cancel's rollback was started and has not ended: the stack is still busy.
    pub fn rollback_running(&self) -> bool {
        self.requested && self.rolled_back_in.is_none()
    }
}

impl StackResult {
    /// A result without an operation (no changes, nothing started).
    pub fn without_operation(outcome: Outcome, stack: Option<&StackInfo>) -> Self {
        Self {
            outcome,
            stack_status: stack.map(|s| s.status.clone()),
            stack_id: stack.map(|s| s.stack_id.clone()),
            operation_id: None,
            operation_ids: Vec::new(),
            duration: Duration::ZERO,
            started_at: None,
            finished_at: None,
            failure_reason: None,
            failure_title: None,
            failed_resource: None,
            warnings: Vec::new(),
            recovery: None,
            outputs: stack.map(|s| s.outputs.clone()).unwrap_or_default(),
            resources: Vec::new(),
            progress: (0, 0),
            fail_step: !outcome.is_success(),
            cancel: None,
        }
    }
}

/// The result of what `tracker` followed; `info`: the stack as DescribeStacks says it now
/// (outputs, and the status when the chain did not end); `elapsed`: how long we followed.
pub fn result_of(tracker: &Tracker, info: Option<&StackInfo>, elapsed: Duration) -> StackResult {
    let start = tracker.started();
    let end = tracker.end();
    let interrupted = tracker.interrupted_by();
    let end_status = end.map(|e| e.status.clone());
    let outcome = match (end_status.as_deref(), interrupted) {
        (Some(s), _) => status::outcome_of(s).unwrap_or(Outcome::TimedOut),
        // Another operation took the stack over: ours could not finish.
        (None, Some(_)) => Outcome::Failed,
        (None, None) => Outcome::TimedOut,
    };
    let last = end.or(interrupted);
    let duration = match (start, last) {
        (Some(s), Some(e)) => (e.timestamp - s.timestamp).to_std().unwrap_or_default(),
        _ => elapsed,
    };
    let failed = !matches!(outcome, Outcome::Succeeded | Outcome::NoChanges);
    let (failure_reason, failed_resource) = match tracker.root_cause() {
        Some(cause) if failed => (Some(cause.reason.clone()), cause.resource.clone()),
        _ if failed && last.is_some() => (info.and_then(|i| i.status_reason.clone()), None),
        _ => (None, None),
    };
    let stack_name = info
        .map(|i| i.name.as_str())
        .or(start.map(|e| e.stack_name.as_str()))
        .unwrap_or_default();
    let mut warnings = cleanup_warnings(tracker.leftovers());
    if tracker.joined_late() {
        warnings.push(
            "this operation was already running and its first event is no longer in the stack's events: \
             its duration and timings count from its oldest event still there"
                .to_string(),
        );
    }
    if let Some(other) = interrupted {
        warnings.push(format!(
            "another operation started on the stack before this one ended ({} at {}, {}): this operation's \
             own end was not reached",
            other.status,
            other.timestamp.to_rfc3339(),
            other.reason.as_deref().unwrap_or("no reason given")
        ));
    }
    if let Some(cause) = tracker.root_cause().filter(|_| !failed)
        && cause.source == CauseSource::Resource
    {
        // A failure that did not fail the operation (a Hook in WARN mode, a resource whose
        // failure CloudFormation tolerated): someone should still read it.
        let who = cause.resource.as_deref().unwrap_or(stack_name);
        warnings.push(format!("{who} reported: {}", cause.reason));
    }
    StackResult {
        outcome,
        stack_status: end_status
            .or_else(|| interrupted.map(|e| e.status.clone()))
            .or_else(|| info.map(|i| i.status.clone()))
            .or_else(|| tracker.root_status().map(str::to_string)),
        stack_id: tracker
            .root_id()
            .map(str::to_string)
            .or_else(|| info.map(|i| i.stack_id.clone())),
        operation_id: tracker.operation_id().map(str::to_string),
        operation_ids: tracker.operation_ids().to_vec(),
        duration,
        started_at: start.map(|e| e.timestamp),
        finished_at: last.map(|e| e.timestamp),
        failure_reason,
        failure_title: None,
        failed_resource,
        recovery: end.and_then(|e| {
            recovery(
                stack_name,
                &e.status,
                tracker.leftovers(),
                &tracker.resources(),
            )
        }),
        warnings,
        outputs: info.map(|i| i.outputs.clone()).unwrap_or_default(),
        resources: tracker.resources(),
        progress: tracker.progress(),
        fail_step: !outcome.is_success(),
        cancel: None,
    }
}

/// What a finished operation left in the account: resources a clean-up phase could not delete
/// (the outcome stands: "Update successful. One or more resources could not be deleted."),
/// and resources retained instead of deleted.
fn cleanup_warnings(leftovers: &[Leftover]) -> Vec<String> {
    leftovers
        .iter()
        .filter_map(|l| {
            if l.retained() {
                return Some(format!(
                    "{} ({}) was retained, not deleted (DeletionPolicy: Retain): it stays in the account, and \
                     creating it again under the same name fails with \"already exists\" until it is deleted or \
                     imported",
                    l.path, l.resource_type
                ));
            }
            (l.stage == Stage::Cleanup).then(|| {
                let tries = if l.attempts > 1 {
                    format!(" after {} attempts", l.attempts)
                } else {
                    String::new()
                };
                format!(
                    "{} ({}) could not be deleted during the clean-up{tries} ({}: {}); it is no longer managed \
                     by the stack: delete it by hand if it is not needed",
                    l.path,
                    l.resource_type,
                    l.status,
                    l.reason.as_deref().unwrap_or("no reason given")
                )
            })
        })
        .collect()
}

/// The one next step out of a status only a person can fix, naming the resources involved.
/// `ContinueUpdateRollback` takes nested resources as `NestedStackLogicalId.ResourceLogicalId`
/// and skips only resources that failed to roll back
/// (docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-updating-stacks-continueupdaterollback.html).
/// `resources`: the operation's resources, for a stack whose delete failed.
pub fn recovery(
    stack: &str,
    status: &str,
    leftovers: &[Leftover],
    resources: &[ResourceTiming],
) -> Option<String> {
    // What stopped it: failures while rolling back, or (a delete) the deletes that failed.
    let failed: Vec<(&str, Option<&str>)> = if status == "DELETE_FAILED" {
        resources
            .iter()
            .filter(|r| r.status == "DELETE_FAILED")
            .map(|r| (r.path.as_str(), None))
            .collect()
    } else {
        leftovers
            .iter()
            .filter(|l| l.stage == Stage::Rollback && !l.retained())
            .map(|l| {
                (
                    l.path.as_str(),
                    l.reason.as_deref().or(Some(l.status.as_str())),
                )
            })
            .collect()
    };
    let listed = |sep: &str| {
        failed
            .iter()
            .map(|(path, _)| skip_name(path))
            .collect::<Vec<_>>()
            .join(sep)
    };
    let why = failed
        .iter()
        .map(|(path, reason)| match reason {
            Some(r) => format!("{path} ({r})"),
            None => path.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let because = if why.is_empty() {
        String::new()
    } else {
        format!(" It failed at: {why}.")
    };
    match status {
        "UPDATE_ROLLBACK_FAILED" => {
            let skip = if failed.is_empty() {
                String::new()
            } else {
                format!(
                    " If a resource cannot be rolled back, skip it: add `--resources-to-skip {}`.",
                    listed(" ")
                )
            };
            Some(format!(
                "The rollback failed and the stack cannot be updated until it completes.{because} Fix what \
                 stopped it, then run `aws cloudformation continue-update-rollback --stack-name {stack}`.{skip}"
            ))
        }
        "ROLLBACK_FAILED" => Some(format!(
            "The failed create could not be rolled back; such a stack can only be deleted.{because} Run \
             `aws cloudformation delete-stack --stack-name {stack}`, then deploy again."
        )),
        "DELETE_FAILED" => {
            let retain = if failed.is_empty() {
                String::new()
            } else {
                format!(" --retain-resources {}", listed(" "))
            };
            Some(format!(
                "The stack could not be deleted.{because} Fix what stopped it, or keep those resources: \
                 `aws cloudformation delete-stack --stack-name {stack}{retain}`."
            ))
        }
        s if s.ends_with("_FAILED") && s.contains("ROLLBACK") => Some(format!(
            "The rollback failed ({s}).{because} See the stack's events in the CloudFormation console before \
             deploying again."
        )),
        _ => None,
    }
}

/// `Nested/Logical` → `Nested.Logical` (ContinueUpdateRollback's form; deeper levels keep
/// the innermost nested stack).
fn skip_name(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [.., nested, logical] => format!("{nested}.{logical}"),
        _ => path.to_string(),
    }
}

/// A change set that CloudFormation refused to create: nothing ran, and the reason is the
/// deployment's root cause. `failures`: what `DescribeEvents` says about it (early validation:
/// which resource, which check, where in the template), None where the endpoint lacks it.
pub fn change_set_failed(
    info: Option<&StackInfo>,
    status_reason: &str,
    failures: Option<&[FailedEvent]>,
) -> StackResult {
    let mut result = StackResult::without_operation(Outcome::Failed, info);
    let failures = failures.unwrap_or_default();
    let (warned, failed): (Vec<&FailedEvent>, Vec<&FailedEvent>) =
        failures.iter().partition(|f| f.is_warning());
    let line = |f: &FailedEvent| {
        let who = f.logical_id.as_deref().unwrap_or("the template");
        let check = f
            .validation
            .as_deref()
            .map(|v| format!(" [{v}]"))
            .unwrap_or_default();
        let at = f
            .path
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(|p| format!(" (at {p})"))
            .unwrap_or_default();
        format!(
            "{who}{check}: {}{at}",
            f.reason.as_deref().unwrap_or("no reason given")
        )
    };
    result.failure_reason = Some(if failed.is_empty() {
        status_reason.to_string()
    } else {
        failed
            .iter()
            .map(|f| line(f))
            .collect::<Vec<_>>()
            .join("\n")
    });
    result.failed_resource = failed.iter().find_map(|f| f.logical_id.clone());
    result.warnings = warned
        .iter()
        .map(|f| format!("early validation warning: {}", line(f)))
        .collect();
    result
}
