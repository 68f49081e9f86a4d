//! The one voice of the binary: every lock and stack event, and every finished operation,
//! becomes the words people read here, and nowhere else.
//!
//! The modules that do the work report events (`LockEvent`, `MonitorEvent`) and results; the
//! steps and the CLI hand them to this module, which turns each into a [`Line`] (pure, so the
//! wording is unit-tested without servers) and [`say`]s it: a log line, or an annotation for
//! what belongs on the run page. Nothing else words these events, so one event is one line
//! and at most one annotation, wherever it happens.
//!
//! Texts that come from AWS (event reasons) go out through the tracing writer or
//! `action::log`, which sanitize every line: no event reason can become a workflow command.

use std::time::Duration;

use tracing::{info, warn};

use crate::action::log;
use crate::config::{OnRisk, StoppedChangeSet};
use crate::duration;
use crate::lock::{self, HolderInfo, LockEvent};
use crate::plan::guard::Verdict;
use crate::plan::risk::Assessment;
use crate::stack::{CancelReport, MonitorEvent, Outcome, StackResult};

/// How loud a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// A log line.
    Info,
    /// A log line at warning level, not an annotation: worth noticing in the log only.
    Warn,
    /// Annotations, on the run page too.
    Notice,
    Warning,
    Error,
}

/// One thing said: its level, the annotation's title (annotations only) and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub level: Level,
    pub title: Option<String>,
    pub text: String,
}

impl Line {
    fn info(text: String) -> Line {
        Line {
            level: Level::Info,
            title: None,
            text,
        }
    }

    fn warn(text: String) -> Line {
        Line {
            level: Level::Warn,
            title: None,
            text,
        }
    }

    fn annotation(level: Level, title: impl Into<String>, text: String) -> Line {
        Line {
            level,
            title: Some(title.into()),
            text,
        }
    }
}

/// Says a line: to the log, and for annotations to the run page.
pub(crate) fn say(line: &Line) {
    let title = line.title.as_deref().unwrap_or_default();
    match line.level {
        Level::Info => info!("{}", line.text),
        Level::Warn => warn!("{}", line.text),
        Level::Notice => log::notice(title, &line.text),
        Level::Warning => log::warning(title, &line.text),
        Level::Error => log::error(title, &line.text),
    }
}

/// The line of one lock event. `now_ms`: the wall clock, for how long a freeze still lasts.
pub(crate) fn lock_event(key: &str, event: &LockEvent, now_ms: u64) -> Line {
    let eta = |eta: &Option<Duration>| eta.map(duration::human).unwrap_or_else(|| "unknown".into());
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
                .as_ref()
                .map(|h| {
                    let cancelling = h
                        .cancelling
                        .as_deref()
                        .map(|c| format!(" ({c})"))
                        .unwrap_or_default();
                    format!(
                        "held by {} since {} (holder's clock){cancelling}",
                        h.info.describe(),
                        h.acquired_at
                    )
                })
                .unwrap_or_else(|| "free, being handed over".into());
            Line::info(format!(
                "lock {key:?} {holder}; waiting in queue position {position} ({ahead} ahead), ETA {}",
                eta(e)
            ))
        }
        LockEvent::Frozen {
            freeze,
            position,
            moved: true,
            ..
        } => Line::info(format!(
            "lock {key:?} is still frozen by {} until {}; now queue position {position}",
            freeze.by, freeze.until
        )),
        LockEvent::Frozen {
            freeze,
            holder,
            position,
            moved: false,
        } => {
            let finishing = holder
                .as_ref()
                .map(|h| format!(" {} holds it and finishes first;", h.info.describe()))
                .unwrap_or_default();
            // A notice, not just a line: the reason a deployment waits belongs on the run page.
            Line::annotation(
                Level::Notice,
                "Deployments are frozen",
                format!(
                    "lock {key:?} is {}.{finishing} waiting in queue position {position}; \
                     this run goes when the freeze ends (lock-timeout permitting)",
                    freeze.describe(now_ms)
                ),
            )
        }
        LockEvent::FreezeEnded { freeze, expired } => {
            let how = if *expired {
                "reached its end"
            } else {
                "was lifted"
            };
            Line::info(format!(
                "the freeze on lock {key:?} by {} {how}; waiting for our turn in the queue",
                freeze.by
            ))
        }
        // Loud on purpose: a takeover means a run died holding the lock.
        LockEvent::TakingOver {
            previous,
            why,
            fence,
        } => Line::annotation(
            Level::Warning,
            "Lock taken over",
            format!(
                "took over lock {key:?} (fence {} → {fence}) from {}: {why}",
                previous.fence,
                previous.info.describe()
            ),
        ),
        LockEvent::Acquired { record, waited } => Line::info(format!(
            "lock {key:?} acquired (fence {}) after {}",
            record.fence,
            duration::human(*waited)
        )),
        // A notice: a waiter wants to know on its run page why its wait got longer.
        LockEvent::PassedBy { by, position } => Line::annotation(
            Level::Notice,
            "A hotfix went ahead",
            format!(
                "a hotfix from {} run {} went ahead of you in the queue of lock {key:?} (priority high);                  now queue position {position}",
                by.origin(),
                by.run_url.as_deref().unwrap_or(&by.owner)
            ),
        ),
    }
}

/// The notice of a run that left the queue because `by`, a newer commit of its ref, is queued.
pub(crate) fn superseded(key: &str, mine: &HolderInfo, by: &HolderInfo) -> Line {
    Line::annotation(
        Level::Notice,
        "Skipped: superseded by a newer commit",
        format!(
            "{} is queued for lock {key:?} with commit {}, which GitHub says is ahead of this run's {}:              this run left the queue without deploying (on-superseded: skip); the newer commit deploys              instead — {}",
            by.origin(),
            by.short_sha().unwrap_or("?"),
            mine.short_sha().unwrap_or("?"),
            by.run_url.as_deref().unwrap_or(&by.owner)
        ),
    )
}

/// The line of one event while the stack is deployed or followed. `root`: the followed stack
/// (nested stacks' events name their stack, the root's go without).
pub(crate) fn monitor_event(root: &str, event: &MonitorEvent) -> Line {
    match event {
        MonitorEvent::Waiting { timeout } => Line::info(format!(
            "no operation is running: waiting up to {} for one to start",
            duration::human(*timeout)
        )),
        MonitorEvent::DeletingFailedStack { stack_id } => Line::annotation(
            Level::Notice,
            "Recreating a failed stack",
            format!(
                "{stack_id} is in ROLLBACK_COMPLETE after a failed first create: deleting it and creating it again"
            ),
        ),
        MonitorEvent::ChangeSetCreated { name, changes, .. } => Line::info(format!(
            "change set {name} ready: {changes} resource change(s)"
        )),
        MonitorEvent::Started {
            stack_id,
            status,
            operation_id,
        } => Line::info(format!(
            "{status}: operation {} on {stack_id}",
            operation_id.as_deref().unwrap_or("(no id)")
        )),
        MonitorEvent::Resource(e) => {
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
            Line::info(format!(
                "{stack}{} {} {}{reason}",
                e.logical_id, e.resource_type, e.status
            ))
        }
        MonitorEvent::Progress { done, total } => Line::info(format!("progress {done}/{total}")),
        MonitorEvent::RootCause {
            resource: Some(resource),
            reason,
        } => Line::warn(format!("root cause: {resource} failed: {reason}")),
        MonitorEvent::RootCause {
            resource: None,
            reason,
        } => Line::warn(format!("root cause: the stack says: {reason}")),
        MonitorEvent::Throttled { next_poll } => Line::warn(format!(
            "CloudFormation is throttling us: next poll in {}",
            duration::human(*next_poll)
        )),
        MonitorEvent::Interrupted {
            error,
            restart,
            budget,
            retry_in,
        } => Line::annotation(
            Level::Warning,
            "Monitoring interrupted",
            format!(
                "{error}; restarting the monitor in {} (restart {restart} of {budget})",
                duration::human(*retry_in)
            ),
        ),
        MonitorEvent::Resumed { gap } => Line::info(format!(
            "monitoring resumed after a gap of {}",
            duration::human(*gap)
        )),
        MonitorEvent::UpdateCancelRequested { status, grace } => Line::annotation(
            Level::Notice,
            "Update cancelled",
            format!(
                "the run was cancelled while {root} was {status}: CancelUpdateStack called; following the rollback \
                 for up to {} (the runner kills this step 10 s after its first signal)",
                duration::human(*grace)
            ),
        ),
        MonitorEvent::UpdateNotCancelled { status, why } => Line::annotation(
            Level::Warning,
            "Update not cancelled",
            format!("the run was cancelled while {root} was {status}, but {why}"),
        ),
        MonitorEvent::Finished(outcome) => Line::info(format!("operation finished: {outcome}")),
    }
}

/// What `on-cancel: cancel-update` came to, for the result's reason (summary, card,
/// annotation): `status` is the stack's status as the step ends.
pub(crate) fn cancel_outcome(stack: &str, report: &CancelReport, status: Option<&str>) -> String {
    let now = status.unwrap_or("unknown");
    match (
        report.requested,
        report.rolled_back_in,
        &report.not_cancelled,
    ) {
        (true, Some(took), _) if now == "UPDATE_ROLLBACK_COMPLETE" => format!(
            "cancelled by the run's cancellation; CancelUpdateStack called; rolled back in {} ({stack} is {now})",
            duration::human(took)
        ),
        // UPDATE_ROLLBACK_FAILED: the result's next step says how to get out of it.
        (true, Some(took), _) => format!(
            "cancelled by the run's cancellation; CancelUpdateStack called; the rollback ended in {now} after {}",
            duration::human(took)
        ),
        (true, None, _) => format!(
            "cancelled by the run's cancellation; CancelUpdateStack called; the rollback is still running \
             ({stack} is {now}) as the runner's grace ends"
        ),
        (false, _, why) => format!(
            "cancelled by the run's cancellation while {stack} was {}; the update was not cancelled: {}",
            report.status,
            why.as_deref().unwrap_or("nothing to cancel")
        ),
    }
}

/// What the lock item says of a holder that keeps the lock while the rollback of its
/// cancelled update runs (`lock status`, the waiters' queue lines).
pub(crate) fn cancelling_note(stack: &str, status: &str, at: &str) -> String {
    format!(
        "its run was cancelled; CancelUpdateStack called; {stack} was still {status} at {at}: the lock is held until \
         the stack settles or the lease runs out"
    )
}

/// The main step stops while the rollback it started still runs: the lock is not released
/// (the post step releases it once the stack has settled; else its lease frees it).
/// `expires`: when the lease runs out after the last heartbeat (the holder's clock).
pub(crate) fn lock_kept_for_rollback(
    key: &str,
    stack: &str,
    status: &str,
    lease: Duration,
    expires: Option<&str>,
) -> Line {
    let until = expires
        .map(|t| format!("at {t}"))
        .unwrap_or_else(|| "a lease after the last heartbeat".into());
    Line::annotation(
        Level::Warning,
        "Rollback still running",
        format!(
            "the rollback is still running ({stack} is {status}); the lock {key:?} stays held until the post step \
             finds the stack settled, or until its lease ({}) expires {until}, or until a waiter sees this run \
             completed on GitHub. The next run waits for the stack to settle before deploying.",
            duration::human(lease)
        ),
    )
}

/// The post step finds the rollback the main step's CancelUpdateStack started still running:
/// it leaves the lock to its lease.
pub(crate) fn rollback_outlives_post(table: &str, key: &str, stack: &str, status: &str) -> Line {
    Line::annotation(
        Level::Warning,
        "Rollback still running",
        format!(
            "the rollback that this run's CancelUpdateStack started is still running ({stack} is {status}): the lock \
             {key:?} is not released, and is freed when its lease runs out after the main step's last heartbeat, or \
             when a waiter sees this run completed on GitHub. The next run waits for the stack to settle. To free \
             it now: `deploy-coordinator lock status --table {table} --key {key}`, then `lock release`."
        ),
    )
}

/// The line of a release. `expected_ours`: the lock should still have been ours (we took it
/// and no loss was reported); then finding it free or held by another is a warning, because
/// someone took it over or force-unlocked it while we ran.
pub(crate) fn released(
    table: &str,
    key: &str,
    outcome: &lock::ReleaseOutcome,
    expected_ours: bool,
) -> Line {
    match outcome {
        lock::ReleaseOutcome::HeldByOther(_) | lock::ReleaseOutcome::AlreadyFree
            if expected_ours =>
        {
            Line::annotation(
                Level::Warning,
                "The deployment lock was no longer ours",
                format!(
                    "lock {key:?}: {}. Someone took it over (it looked dead: no heartbeat for a lease, or its run \
                     looked completed) or force-unlocked it while this job ran, so this job may have deployed at \
                     the same time as another run. See `deploy-coordinator lock status --table {table} --key {key}`.",
                    release(outcome)
                ),
            )
        }
        _ => Line::info(format!("lock {key:?}: {}", release(outcome))),
    }
}

/// What a release found, in a few words.
pub(crate) fn release(outcome: &lock::ReleaseOutcome) -> String {
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

/// `Id: why` for each resource, in the change set's order.
fn each_and_why(assessments: &[Assessment]) -> String {
    assessments
        .iter()
        .map(|a| format!("{}: {}", a.logical_id, a.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

fn ids(assessments: &[Assessment]) -> String {
    assessments
        .iter()
        .map(|a| a.logical_id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the deploy guard says about a ready change set that runs: its risk and the changes
/// for review as log lines; at most one annotation each for what was allowed, what runs at
/// risk (`on-risk: warn`) and the allowances it did not use. A stop is said by
/// [`guard_refusal`], as the result's one error.
pub(crate) fn guard(change_set: &str, verdict: &Verdict, on_risk: OnRisk) -> Vec<Line> {
    let mut lines = vec![Line::info(format!(
        "deploy guard: change set {change_set} is {} ({} stateful resource(s) replaced or removed, {} allowed, {} for review)",
        verdict.risk.as_str(),
        verdict.at_risk.len() + verdict.allowed.len(),
        verdict.allowed.len(),
        verdict.review.len()
    ))];
    for a in &verdict.review {
        lines.push(Line::info(format!(
            "for review: {} ({})",
            a.logical_id, a.reason
        )));
    }
    if !verdict.allowed.is_empty() {
        lines.push(Line::annotation(
            Level::Notice,
            "Replacement allowed",
            format!(
                "executing change set {change_set}, which replaces or removes {} as allow-replacement allows. {}",
                ids(&verdict.allowed),
                each_and_why(&verdict.allowed)
            ),
        ));
    }
    if !verdict.at_risk.is_empty() && !verdict.stop && on_risk == OnRisk::Warn {
        lines.push(Line::annotation(
            Level::Warning,
            "Stateful resources at risk",
            format!(
                "executing change set {change_set} anyway (on-risk: warn), although it replaces or removes {}, which \
                 allow-replacement does not list. {}",
                ids(&verdict.at_risk),
                each_and_why(&verdict.at_risk)
            ),
        ));
    }
    if !verdict.unused_allowances.is_empty() {
        lines.push(Line::annotation(
            Level::Notice,
            "Unused allow-replacement",
            format!(
                "allow-replacement lists {}, which change set {change_set} neither replaces nor removes: remove it from \
                 the workflow once the replacement is done, so that it cannot let a later one through unreviewed",
                verdict.unused_allowances.join(", ")
            ),
        ));
    }
    lines
}

/// The error of a deployment the guard stopped: its title and its text, which names each
/// resource, why it is at risk, what became of the change set and what to do.
pub(crate) fn guard_refusal(
    stack: &str,
    change_set: &str,
    verdict: &Verdict,
    stopped: StoppedChangeSet,
) -> (String, String) {
    let kept = match stopped {
        StoppedChangeSet::Delete => "the change set was deleted",
        StoppedChangeSet::Keep => {
            "the change set was kept for inspection (on-risk-change-set: keep)"
        }
    };
    let mut text = format!(
        "stopped before executing change set {change_set} on {stack}: it would replace or remove {} stateful \
         resource(s) that allow-replacement does not list. {}. Nothing was executed; {kept}. If this is intended, add \
         {} to allow-replacement in the workflow (where its review shows) and deploy again, or set on-risk: warn",
        verdict.at_risk.len(),
        each_and_why(&verdict.at_risk),
        ids(&verdict.at_risk)
    );
    if !verdict.unused_allowances.is_empty() {
        // Often the allowance meant for it, misspelt or without its nested stack's path.
        text.push_str(&format!(
            ". allow-replacement lists {}, which this change set neither replaces nor removes (a nested stack's \
             resource is written Nested/Logical)",
            verdict.unused_allowances.join(", ")
        ));
    }
    (
        "Deployment stopped: stateful resources at risk".into(),
        text,
    )
}

/// The annotations of a finished stack operation: the root cause (an error when the operation
/// failed), the next step out of a stuck state, and what was left behind. One place for both
/// steps (mode lock reports from the post step).
pub(crate) fn result_annotations(stack: &str, result: &StackResult) -> Vec<Line> {
    let mut lines = Vec::new();
    if !result.outcome.is_success() {
        match (&result.failed_resource, &result.failure_reason) {
            // Nothing failed: the step refused to execute, and the title says so.
            (_, Some(reason)) if result.failure_title.is_some() => lines.push(Line::annotation(
                Level::Error,
                result.failure_title.clone().unwrap_or_default(),
                reason.clone(),
            )),
            (Some(resource), Some(reason)) => lines.push(Line::annotation(
                Level::Error,
                format!("{resource} failed"),
                reason.clone(),
            )),
            (None, Some(reason)) => lines.push(Line::annotation(
                Level::Error,
                match result.outcome {
                    Outcome::Cancelled => format!("{stack} cancelled"),
                    _ => format!("{stack} failed"),
                },
                reason.clone(),
            )),
            _ => {}
        }
    }
    if let Some(step) = &result.recovery {
        lines.push(Line::annotation(
            Level::Error,
            format!("{stack} needs a person"),
            step.clone(),
        ));
    }
    for warning in &result.warnings {
        lines.push(Line::annotation(
            Level::Warning,
            format!("{stack}: left behind"),
            warning.clone(),
        ));
    }
    lines
}

/// What a plan found, said once: one annotation for the plan's verdict (a warning that names
/// each dangerous resource and why, a notice for review or no changes, an error when the change
/// set could not be created), and one log line per risky change.
pub(crate) fn plan(review: &crate::plan::review::Review) -> Vec<Line> {
    use crate::plan::review::Outcome as PlanOutcome;
    use crate::plan::risk::Risk;
    let stack = &review.stack;
    let mut lines = Vec::new();
    match &review.outcome {
        PlanOutcome::NoChanges { reason } => lines.push(Line::annotation(
            Level::Notice,
            format!("{stack}: no changes"),
            format!("the template and parameters change nothing on the stack ({reason})"),
        )),
        PlanOutcome::Failed { reason, failures } => {
            let mut text = format!(
                "change set {} could not be created: {reason}",
                review.change_set_name
            );
            for f in failures {
                text.push('\n');
                text.push_str(f);
            }
            lines.push(Line::annotation(
                Level::Error,
                format!("{stack}: plan failed"),
                text,
            ));
        }
        PlanOutcome::Changes(rows) => {
            for row in rows.iter().filter(|r| r.assessment.risk != Risk::None) {
                lines.push(Line::info(format!(
                    "plan: {} {} ({}): {}: {}",
                    row.change.action,
                    row.resource(),
                    row.change.resource_type,
                    row.assessment.risk.as_str(),
                    row.assessment.reason
                )));
            }
            let risky = |risk: Risk| -> Vec<String> {
                rows.iter()
                    .filter(|r| r.assessment.risk == risk)
                    .map(|r| format!("{}: {}", r.resource(), r.assessment.reason))
                    .collect()
            };
            let dangerous = risky(Risk::Dangerous);
            let review_rows = risky(Risk::Review);
            let counts = crate::plan::render::counts(rows);
            let line = match review.risk() {
                Risk::Dangerous => Line::annotation(
                    Level::Warning,
                    format!("{stack}: dangerous changes"),
                    format!("{counts}\n{}", dangerous.join("\n")),
                ),
                Risk::Review => Line::annotation(
                    Level::Notice,
                    format!("{stack}: changes to review"),
                    format!("{counts}\n{}", review_rows.join("\n")),
                ),
                Risk::None => Line::info(format!(
                    "plan for {stack}: {counts} Change set {}, not executed.",
                    review.change_set_name
                )),
            };
            lines.push(line);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{HolderInfo, LockRecord, StaleReason};
    use crate::stack::Event;

    fn record(owner: &str, fence: u64) -> LockRecord {
        LockRecord {
            info: HolderInfo {
                owner: owner.into(),
                correlation_id: owner.into(),
                ..HolderInfo::default()
            },
            fence,
            version: "v".into(),
            lease_ms: 60_000,
            acquired_at: "2026-12-02T10:00:00Z".into(),
            heartbeat_at: None,
            freeze: None,
            watched: None,
            cycle_ms: None,
            queue_mark: None,
            cancelling: None,
        }
    }

    #[test]
    fn a_takeover_is_one_warning_annotation_with_both_fences() {
        let line = lock_event(
            "prod",
            &LockEvent::TakingOver {
                previous: record("run-a", 7),
                why: StaleReason::RunCompleted,
                fence: 8,
            },
            0,
        );
        assert_eq!(line.level, Level::Warning);
        assert_eq!(line.title.as_deref(), Some("Lock taken over"));
        assert!(line.text.contains("fence 7 → 8"), "{}", line.text);
        assert!(line.text.contains(&StaleReason::RunCompleted.to_string()));
    }

    #[test]
    fn a_queued_run_reads_its_place_the_holder_and_the_eta() {
        let line = lock_event(
            "prod",
            &LockEvent::Queued {
                position: 2,
                ahead: 1,
                holder: Some(record("run-a", 3)),
                eta: Some(Duration::from_secs(150)),
            },
            0,
        );
        assert_eq!(line.level, Level::Info);
        assert!(
            line.text.contains("queue position 2 (1 ahead)"),
            "{}",
            line.text
        );
        assert!(line.text.contains("ETA 2m 30s"), "{}", line.text);
        assert!(
            line.text
                .contains("since 2026-12-02T10:00:00Z (holder's clock)")
        );
    }

    fn run(id: u64, git_ref: &str, sha: &str) -> HolderInfo {
        HolderInfo {
            owner: format!("o{id}"),
            repository: Some("acme/api".into()),
            run_id: Some(id),
            git_ref: Some(git_ref.into()),
            sha: Some(sha.into()),
            run_url: Some(format!("https://github.com/acme/api/actions/runs/{id}")),
            ..HolderInfo::default()
        }
    }

    #[test]
    fn a_pass_and_a_skip_are_notices_that_name_the_other_run() {
        let hotfix = run(77, "refs/heads/hotfix", "9f1c2aa0000");
        let line = lock_event(
            "prod",
            &LockEvent::PassedBy {
                by: hotfix,
                position: 2,
            },
            0,
        );
        assert_eq!(line.level, Level::Notice);
        assert!(
            line.text.starts_with(
                "a hotfix from acme/api@hotfix run https://github.com/acme/api/actions/runs/77 went ahead of you"
            ) && line.text.ends_with("now queue position 2"),
            "{}",
            line.text
        );
        let mine = run(70, "refs/heads/main", "1111111aaaa");
        let newer = run(71, "refs/heads/main", "2222222bbbb");
        let line = superseded("prod", &mine, &newer);
        assert_eq!(line.level, Level::Notice);
        for part in [
            "2222222",
            "1111111",
            "runs/71",
            "acme/api@main",
            "on-superseded: skip",
        ] {
            assert!(line.text.contains(part), "{part}: {}", line.text);
        }
    }

    #[test]
    fn a_waiter_reads_that_the_holder_keeps_the_lock_for_its_cancelled_updates_rollback() {
        let mut holder = record("run-a", 3);
        holder.cancelling = Some(cancelling_note(
            "app",
            "UPDATE_ROLLBACK_IN_PROGRESS",
            "2026-12-03T06:00:00Z",
        ));
        let line = lock_event(
            "prod",
            &LockEvent::Queued {
                position: 1,
                ahead: 0,
                holder: Some(holder),
                eta: None,
            },
            0,
        );
        assert!(
            line.text.contains(
                "(its run was cancelled; CancelUpdateStack called; app was still UPDATE_ROLLBACK_IN_PROGRESS at \
                 2026-12-03T06:00:00Z"
            ),
            "{}",
            line.text
        );
    }

    #[test]
    fn nested_events_name_their_stack_and_root_events_do_not() {
        let event = |stack: &str| {
            MonitorEvent::Resource(Event {
                stack_name: stack.into(),
                logical_id: "Queue".into(),
                resource_type: "AWS::SQS::Queue".into(),
                status: "CREATE_FAILED".into(),
                reason: Some("Access denied".into()),
                ..Event::default()
            })
        };
        assert_eq!(
            monitor_event("app", &event("app")).text,
            "Queue AWS::SQS::Queue CREATE_FAILED - Access denied"
        );
        assert_eq!(
            monitor_event("app", &event("app-Db-1X")).text,
            "app-Db-1X Queue AWS::SQS::Queue CREATE_FAILED - Access denied"
        );
    }

    #[test]
    fn a_failed_operation_gives_its_cause_as_an_error_and_leftovers_as_warnings() {
        let mut result = StackResult::without_operation(Outcome::RolledBack, None);
        result.failed_resource = Some("Queue".into());
        result.failure_reason = Some("Access denied".into());
        result.warnings = vec!["Bucket was retained".into()];
        let lines = result_annotations("app", &result);
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (lines[0].level, lines[0].title.as_deref()),
            (Level::Error, Some("Queue failed"))
        );
        assert_eq!(lines[0].text, "Access denied");
        assert_eq!(
            (lines[1].level, lines[1].title.as_deref()),
            (Level::Warning, Some("app: left behind"))
        );
    }

    #[test]
    fn a_lock_found_taken_at_release_is_a_warning_only_when_it_should_have_been_ours() {
        let taken = lock::ReleaseOutcome::HeldByOther(record("run-b", 9));
        let line = released("registry", "prod", &taken, true);
        assert_eq!(line.level, Level::Warning);
        assert!(
            line.text
                .contains("lock status --table registry --key prod"),
            "{}",
            line.text
        );
        // A loss already reported, or a lock never taken: no second alarm.
        assert_eq!(
            released("registry", "prod", &taken, false).level,
            Level::Info
        );
        let free = released(
            "registry",
            "prod",
            &lock::ReleaseOutcome::AlreadyFree,
            false,
        );
        assert_eq!(free.text, "lock \"prod\": already free: nothing to release");
    }

    #[test]
    fn a_stop_names_each_resource_why_and_what_to_do_in_one_error() {
        use crate::config::Guard;
        use crate::plan::review::change;
        let changes = [
            change("Orders", "AWS::DynamoDB::Table", "Modify", Some("True")),
            change("Uploads", "AWS::S3::Bucket", "Remove", None),
            change(
                "Cache",
                "AWS::ElastiCache::CacheCluster",
                "Modify",
                Some("True"),
            ),
        ];
        let guard = Guard {
            allow_replacement: vec!["Cache".into()],
            ..Guard::default()
        };
        let verdict = crate::plan::guard::judge(
            &[crate::plan::review::StackChanges {
                path: Vec::new(),
                changes: changes.to_vec(),
            }],
            &guard,
        );
        let (title, text) = guard_refusal("shop", "dc-1", &verdict, StoppedChangeSet::Delete);
        assert_eq!(title, "Deployment stopped: stateful resources at risk");
        assert!(text.contains("change set dc-1 on shop"), "{text}");
        assert!(
            text.contains("Orders: AWS::DynamoDB::Table is replaced")
                && text.contains("Uploads: AWS::S3::Bucket is removed"),
            "{text}"
        );
        assert!(text.contains("the change set was deleted"), "{text}");
        assert!(
            text.contains("add Orders, Uploads to allow-replacement"),
            "{text}"
        );
        // What runs says no error: the allowed one is a notice, the stop is the result's error.
        let lines = super::guard("dc-1", &verdict, OnRisk::Fail);
        assert!(
            lines
                .iter()
                .all(|l| l.level != Level::Error && l.level != Level::Warning)
        );
        let allowed = lines
            .iter()
            .find(|l| l.title.as_deref() == Some("Replacement allowed"))
            .expect("the allowed replacement is said");
        assert!(
            allowed
                .text
                .contains("Cache: AWS::ElastiCache::CacheCluster is replaced")
        );
        // on-risk: warn executes, with one warning naming them.
        let guard = Guard {
            on_risk: OnRisk::Warn,
            ..Guard::default()
        };
        let verdict = crate::plan::guard::judge(
            &[crate::plan::review::StackChanges {
                path: Vec::new(),
                changes: changes.to_vec(),
            }],
            &guard,
        );
        let warnings: Vec<_> = super::guard("dc-1", &verdict, OnRisk::Warn)
            .into_iter()
            .filter(|l| l.level == Level::Warning)
            .collect();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].text.contains("Orders, Uploads, Cache"),
            "{}",
            warnings[0].text
        );
    }

    #[test]
    fn a_cancel_says_what_it_did_to_the_update_and_how_it_ended() {
        let report = |requested, rolled_back_in, not_cancelled: Option<&str>| CancelReport {
            status: "UPDATE_IN_PROGRESS".into(),
            requested,
            not_cancelled: not_cancelled.map(Into::into),
            rolled_back_in,
        };
        assert_eq!(
            cancel_outcome(
                "app",
                &report(true, Some(Duration::from_secs(4)), None),
                Some("UPDATE_ROLLBACK_COMPLETE")
            ),
            "cancelled by the run's cancellation; CancelUpdateStack called; rolled back in 4s (app is UPDATE_ROLLBACK_COMPLETE)"
        );
        let running = cancel_outcome(
            "app",
            &report(true, None, None),
            Some("UPDATE_ROLLBACK_IN_PROGRESS"),
        );
        assert!(
            running.contains("the rollback is still running (app is UPDATE_ROLLBACK_IN_PROGRESS)"),
            "{running}"
        );
        let create = cancel_outcome("app", &report(false, None, Some("a create goes on")), None);
        assert!(
            create.ends_with("the update was not cancelled: a create goes on"),
            "{create}"
        );
        let failed = cancel_outcome(
            "app",
            &report(true, Some(Duration::from_secs(9)), None),
            Some("UPDATE_ROLLBACK_FAILED"),
        );
        assert!(
            failed.ends_with("the rollback ended in UPDATE_ROLLBACK_FAILED after 9s"),
            "{failed}"
        );
        // The result's annotation calls a cancel a cancel.
        let mut result = StackResult::without_operation(Outcome::Cancelled, None);
        result.failure_reason = Some(running);
        assert_eq!(
            result_annotations("app", &result)[0].title.as_deref(),
            Some("app cancelled")
        );
    }

    #[test]
    fn the_lock_kept_for_a_rollback_says_until_when() {
        let line = lock_kept_for_rollback(
            "prod",
            "app",
            "UPDATE_ROLLBACK_IN_PROGRESS",
            Duration::from_secs(60),
            Some("2026-12-03T05:51:18Z"),
        );
        assert_eq!(line.level, Level::Warning);
        assert!(
            line.text
                .starts_with("the rollback is still running (app is UPDATE_ROLLBACK_IN_PROGRESS)"),
            "{}",
            line.text
        );
        assert!(
            line.text
                .contains("lease (1m) expires at 2026-12-03T05:51:18Z"),
            "{}",
            line.text
        );
    }

    #[test]
    fn a_success_gives_no_error_even_with_a_reason() {
        let mut result = StackResult::without_operation(Outcome::Succeeded, None);
        result.failure_reason = Some("an earlier failure".into());
        assert!(result_annotations("app", &result).is_empty());
    }

    #[test]
    fn a_plan_gives_one_annotation_naming_each_dangerous_resource() {
        use crate::plan::review::{Outcome as PlanOutcome, Review, StackChanges, change, rows};
        let stacks = [StackChanges {
            path: vec![],
            changes: vec![
                change("Table", "AWS::DynamoDB::Table", "Remove", None),
                change("Role", "AWS::IAM::Role", "Modify", Some("False")),
                change("Fn", "AWS::Lambda::Function", "Add", None),
            ],
        }];
        let mut review = Review {
            stack: "app".into(),
            change_set_name: "dc-1".into(),
            change_set_id: None,
            outcome: PlanOutcome::Changes(rows(&stacks)),
            expected: None,
        };
        let lines = plan(&review);
        let annotations: Vec<&Line> = lines.iter().filter(|l| l.title.is_some()).collect();
        assert_eq!(annotations.len(), 1, "{lines:?}");
        assert_eq!(annotations[0].level, Level::Warning);
        assert_eq!(
            annotations[0].title.as_deref(),
            Some("app: dangerous changes")
        );
        assert!(
            annotations[0]
                .text
                .contains("Table: AWS::DynamoDB::Table is removed")
        );
        assert!(
            !annotations[0].text.contains("Role:"),
            "only the dangerous ones"
        );
        // One log line per risky change, none for the rest.
        assert_eq!(lines.len(), 3, "{lines:?}");
        review.outcome = PlanOutcome::NoChanges {
            reason: "didn't contain changes".into(),
        };
        let lines = plan(&review);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].level, Level::Notice);
    }
}
