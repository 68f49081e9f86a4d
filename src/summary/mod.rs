//! The job summary: what a person opening the run sees first.
//!
//! Pure: Markdown from a finished stack operation, no I/O. A table (correlation ID, lock wait,
//! fence, outcome, duration against the estimate, stack status), the root cause on failure, the
//! stack outputs, and a timeline of the resources as a Mermaid gantt chart, which GitHub renders.
//! Every text that came from AWS or the template (reasons, ids, types, output values) is escaped
//! for Markdown and HTML ([`markdown`]) or for mermaid ([`gantt::name`]), and the whole stays far
//! below the runner's 1 MiB limit, also for a 500-resource nested stack.

pub(crate) mod gantt;
pub(crate) mod guard;
pub(crate) mod markdown;
pub mod mermaid;

use std::time::Duration;

use crate::config::Config;
use crate::duration;
use crate::lock::HolderInfo;
use crate::stack::StackResult;
use crate::stack::status::{ResourceClass, classify_resource};

use markdown::{MAX_CELL_CHARS, text};

/// The runner's limit for one step's summary.
pub const SUMMARY_LIMIT: usize = 1024 * 1024;

/// What this summary may use of it: the step adds other parts (registry warnings, undelivered
/// Slack messages), so one deployment's summary stays well below the limit.
pub const SUMMARY_BUDGET: usize = 256 * 1024;

/// At most this many other failed resources are listed under the root cause.
const MAX_OTHER_FAILURES: usize = 10;

/// How this run was coordinated with the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockSummary {
    /// Time spent waiting for the lock (queue included); None when not known (post step).
    pub wait: Option<Duration>,
    pub coordination: LockCoordination,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockCoordination {
    /// The DynamoDB lock was held with this fence.
    Acquired {
        fence: u64,
        /// Already ours: a rerun of the step.
        reentrant: bool,
        /// The stale holder we took over from (its description), if any.
        took_over_from: Option<String>,
    },
    /// The registry was unreachable: CloudFormation-only coordination.
    Fallback,
}

/// Everything the summary shows besides the stack operation itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryContext<'a> {
    pub correlation_id: &'a str,
    pub stack_name: &'a str,
    pub mode: &'a str,
    pub lock_key: &'a str,
    /// None: not known here (nothing about the lock is shown but its key).
    pub lock: Option<LockSummary>,
    /// The history's prediction for the whole operation (`estimated-duration-seconds`).
    pub predicted_seconds: Option<u64>,
}

impl<'a> SummaryContext<'a> {
    /// The context from the action's configuration, without lock details or estimate.
    pub fn new(correlation_id: &'a str, config: &'a Config) -> Self {
        SummaryContext {
            correlation_id,
            stack_name: &config.stack_name,
            mode: config.mode.as_str(),
            lock_key: &config.lock_key,
            lock: None,
            predicted_seconds: None,
        }
    }

    pub fn with_lock(mut self, lock: LockSummary) -> Self {
        self.lock = Some(lock);
        self
    }

    pub fn with_prediction(mut self, predicted_seconds: Option<u64>) -> Self {
        self.predicted_seconds = predicted_seconds;
        self
    }
}

/// Escapes text for a Markdown table cell: pipes, line breaks, Markdown and HTML (which GitHub
/// renders).
pub fn cell(raw: &str) -> String {
    text(raw, MAX_CELL_CHARS)
}

/// The summary of one deployment, without lock details or estimate (kept for callers that do
/// not have them).
pub fn render(correlation_id: &str, config: &Config, result: &StackResult) -> String {
    render_summary(&SummaryContext::new(correlation_id, config), result)
}

/// The summary of one deployment.
pub fn render_summary(context: &SummaryContext<'_>, result: &StackResult) -> String {
    let mut md = header(context, result);
    md.push_str(&root_cause(result));
    md.push_str(&warnings_and_next_step(result));
    md.push_str(&outputs(result));
    let fixed = md.len();
    // The chart gets what the budget leaves; halve it until it fits (it never has to in
    // practice: 100 tasks are ~10 KB).
    let mut max_tasks = gantt::MAX_TASKS;
    loop {
        let chart = timeline(context, result, max_tasks);
        if fixed + chart.len() <= SUMMARY_BUDGET || max_tasks <= 1 {
            if fixed + chart.len() <= SUMMARY_BUDGET {
                md.push_str(&chart);
            }
            break;
        }
        max_tasks /= 2;
    }
    md
}

fn header(context: &SummaryContext<'_>, result: &StackResult) -> String {
    let icon = if result.outcome.is_success() {
        "✅"
    } else {
        "❌"
    };
    let mut rows: Vec<(&str, String)> = vec![
        ("correlation ID", code(context.correlation_id)),
        ("outcome", format!("**{}**", result.outcome)),
        (
            "stack status",
            cell(result.stack_status.as_deref().unwrap_or("unknown")),
        ),
        (
            "duration",
            duration_against_estimate(result.duration, context.predicted_seconds),
        ),
    ];
    let (done, total) = result.progress;
    if total > 0 || done > 0 {
        rows.push(("resources", format!("{done}/{total}")));
    }
    rows.push(("mode", cell(context.mode)));
    rows.push(("lock key", code(context.lock_key)));
    if let Some(lock) = &context.lock {
        let wait = lock
            .wait
            .map(duration::human)
            .unwrap_or_else(|| "unknown".to_string());
        match &lock.coordination {
            LockCoordination::Acquired {
                fence,
                reentrant,
                took_over_from,
            } => {
                let mut how = wait;
                if *reentrant {
                    how.push_str(" (already ours: a rerun of this step)");
                }
                if let Some(previous) = took_over_from {
                    how.push_str(&format!(
                        " (took over from stale holder {})",
                        cell(previous)
                    ));
                }
                rows.push(("lock wait", how));
                rows.push(("fence", fence.to_string()));
            }
            LockCoordination::Fallback => {
                rows.push(("lock wait", wait));
                rows.push((
                    "fence",
                    "none: ⚠️ registry unavailable, CloudFormation-only coordination".to_string(),
                ));
            }
        }
    }
    let mut md = format!(
        "### {icon} {}: {}\n\n| | |\n|---|---|\n",
        cell(context.stack_name),
        result.outcome
    );
    for (name, value) in rows {
        md.push_str(&format!("| {name} | {value} |\n"));
    }
    md
}

/// The job summary of a run stopped by a freeze (`on-freeze: fail`, or `lock-timeout` ran
/// out behind it): who froze the lock, why, until when, and how to lift it.
pub fn frozen(
    lock_key: &str,
    freeze: &crate::lock::Freeze,
    timed_out: bool,
    now_ms: u64,
) -> String {
    let verdict = if timed_out {
        "lock-timeout ran out while waiting behind the freeze"
    } else {
        "on-freeze is fail: the run stopped at once"
    };
    format!(
        "### 🧊 Deployments are frozen: lock {}\n\n| | |\n|---|---|\n\
         | reason | {} |\n| frozen by | {} |\n| until | {} ({}) |\n| this run | {verdict} |\n\n\
         Lift it early with `deploy-coordinator lock unfreeze --key {}`.\n",
        code(lock_key),
        cell(&freeze.reason),
        cell(&freeze.by),
        cell(&freeze.until),
        freeze.left(now_ms),
        code(lock_key).trim_matches('`')
    )
}

/// The job summary of a run that left the queue because a newer commit of its ref is queued
/// (`on-superseded: skip`): which run and commit deploy instead.
pub fn superseded(lock_key: &str, mine: &HolderInfo, by: &HolderInfo) -> String {
    let run = cell(&by.describe());
    format!(
        "### ⏭️ Skipped: superseded by a newer commit

| | |
|---|---|
         | lock key | {} |
| this run's commit | {} |
| newer commit | {} ({}) |
| deploys instead | {run} |

         GitHub's compare API says the newer commit is ahead of this run's: this run left the queue          without deploying (`on-superseded: skip`) and succeeded.
",
        code(lock_key),
        code(mine.sha.as_deref().unwrap_or("?")),
        code(by.sha.as_deref().unwrap_or("?")),
        cell(&by.origin()),
    )
}

/// A note for the job summary of a high-priority run that waited for the lock: it queued ahead
/// of every normal waiter (the waiters it passed were told).
pub fn went_ahead(lock_key: &str, waited: Duration) -> String {
    format!(
        "> [!NOTE]\n> ⏫ Priority high: this run queued ahead of every normal waiter for lock {} (never ahead of the holder) and waited {}.\n\n",
        code(lock_key),
        duration::human(waited),
    )
}

/// A note for the job summary of a waiter that a high-priority run went ahead of.
pub fn passed_by(lock_key: &str, by: &HolderInfo) -> String {
    format!(
        "> [!NOTE]
> ⏫ A hotfix from {} run {} went ahead of this run in the queue of lock {} (priority high).

",
        cell(&by.origin()),
        cell(by.run_url.as_deref().unwrap_or(&by.owner)),
        code(lock_key),
    )
}

/// The job summary of a deployment refused by `forbid-older`: its commit is an ancestor of
/// the one deployed last under the lock key.
pub fn refused_older(lock_key: &str, mine: &HolderInfo, last: &crate::history::Deployed) -> String {
    format!(
        "### ⛔ Not deployed: older than what is deployed

| | |
|---|---|
         | lock key | {} |
| this run's commit | {} |
| deployed last | {} ({}) |
| deployed by | {} |

         GitHub's compare API says this run's commit is behind the deployed one, and `forbid-older` is true:          deploying it would go backwards. Deploy a newer commit, or set `forbid-older: false` for a deliberate rollback.
",
        code(lock_key),
        code(mine.sha.as_deref().unwrap_or("?")),
        code(&last.sha),
        cell(&last.origin()),
        cell(last.run_url.as_deref().unwrap_or(&last.correlation_id)),
    )
}

/// A note for the job summary of a run that waits behind a freeze (it goes on afterwards).
pub fn waiting_behind_freeze(lock_key: &str, freeze: &crate::lock::Freeze) -> String {
    format!(
        "> [!NOTE]\n> 🧊 Lock {} was frozen by {} until {}: {}. This run waited behind the freeze.\n\n",
        code(lock_key),
        cell(&freeze.by),
        cell(&freeze.until),
        cell(&freeze.reason)
    )
}

/// Inline code for our own identifiers (correlation ID, lock key): safe characters only,
/// validated at input time; anything else falls back to escaped text.
fn code(raw: &str) -> String {
    if !raw.is_empty()
        && raw.len() <= 200
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/#@+=".contains(c))
    {
        format!("`{raw}`")
    } else {
        cell(raw)
    }
}

/// `12m 3s (estimate 10m, 21% longer)`.
fn duration_against_estimate(actual: Duration, predicted: Option<u64>) -> String {
    let human = duration::human(actual);
    let Some(predicted) = predicted.filter(|p| *p > 0) else {
        return format!("{human} (no estimate: no history yet)");
    };
    let estimate = duration::human(Duration::from_secs(predicted));
    let actual_s = actual.as_secs_f64();
    let ratio = actual_s / predicted as f64;
    let percent = ((ratio - 1.0).abs() * 100.0).round() as u64;
    let delta = if percent == 0 {
        "as estimated".to_string()
    } else if ratio > 1.0 {
        format!("{percent}% longer")
    } else {
        format!("{percent}% shorter")
    };
    format!("{human} (estimate {estimate}, {delta})")
}

fn root_cause(result: &StackResult) -> String {
    let failed: Vec<_> = result
        .resources
        .iter()
        .filter(|r| classify_resource(&r.status) == ResourceClass::Failed)
        .filter(|r| result.failed_resource.as_deref() != Some(r.path.as_str()))
        .collect();
    let mut md = String::new();
    if let Some(resource) = &result.failed_resource {
        let kind = result
            .resources
            .iter()
            .find(|r| &r.path == resource)
            .map(|r| format!(" ({})", cell(&r.resource_type)))
            .unwrap_or_default();
        md.push_str(&format!(
            "\n#### Root cause\n\n**{}**{kind} failed: {}\n",
            cell(resource),
            cell(
                result
                    .failure_reason
                    .as_deref()
                    .unwrap_or("no reason given")
            )
        ));
    } else if let Some(reason) = &result.failure_reason {
        // A refusal to execute has no root cause: its title says what happened.
        let heading = result.failure_title.as_deref().unwrap_or("Root cause");
        md.push_str(&format!("\n#### {}\n\n{}\n", cell(heading), cell(reason)));
    }
    if !failed.is_empty() {
        let names: Vec<String> = failed
            .iter()
            .take(MAX_OTHER_FAILURES)
            .map(|r| format!("{} ({})", cell(&r.path), cell(&r.status)))
            .collect();
        let more = failed.len().saturating_sub(MAX_OTHER_FAILURES);
        md.push_str(&format!(
            "\nAlso failed: {}{}\n",
            names.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    md
}

/// What was left behind and how to get out of a stuck state (both may quote AWS: escaped).
fn warnings_and_next_step(result: &StackResult) -> String {
    let mut md = String::new();
    if !result.warnings.is_empty() {
        md.push_str("\n#### Warnings\n\n");
        for w in &result.warnings {
            md.push_str(&format!("- {}\n", cell(w)));
        }
    }
    if let Some(step) = &result.recovery {
        md.push_str(&format!("\n#### Next step\n\n{}\n", cell(step)));
    }
    md
}

fn outputs(result: &StackResult) -> String {
    if result.outputs.is_empty() {
        return String::new();
    }
    let mut md = String::from("\n#### Stack outputs\n\n| output | value |\n|---|---|\n");
    for (key, value) in &result.outputs {
        md.push_str(&format!(
            "| {} | {} |\n",
            cell(key),
            markdown::url_or_text(value, MAX_CELL_CHARS)
        ));
    }
    md
}

fn timeline(context: &SummaryContext<'_>, result: &StackResult, max_tasks: usize) -> String {
    let Some(chart) = gantt::chart(context.stack_name, result, max_tasks) else {
        return String::new();
    };
    let mut notes = vec![format!(
        "{} resource{}",
        chart.shown,
        if chart.shown == 1 { "" } else { "s" }
    )];
    if chart.hidden > 0 {
        notes.push(format!(
            "{} more not shown (the fastest; failed and unfinished ones are always shown)",
            chart.hidden
        ));
    }
    if chart.undated > 0 {
        notes.push(format!("{} without a start time", chart.undated));
    }
    format!(
        "\n#### Timeline\n\n```mermaid\n{}```\n\n<sub>{}. Red: failed; blue: still running when the operation ended; grey: done. \
         Times in your browser's time zone.</sub>\n",
        chart.text,
        notes.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Outcome;
    use crate::stack::ResourceTiming;
    use chrono::{TimeZone, Utc};

    fn result() -> StackResult {
        let at = |s: i64| Utc.timestamp_opt(1_700_000_000 + s, 0).single();
        StackResult {
            outcome: Outcome::RolledBack,
            stack_status: Some("UPDATE_ROLLBACK_COMPLETE".into()),
            stack_id: None,
            operation_id: None,
            operation_ids: Vec::new(),
            duration: Duration::from_secs(726),
            started_at: at(0),
            finished_at: at(726),
            failure_reason: Some("Resource handler returned message: \"<b>x</b> | y\"".into()),
            failure_title: None,
            failed_resource: Some("Data/Db".into()),
            warnings: Vec::new(),
            recovery: None,
            outputs: vec![
                ("ApiUrl".into(), "https://api.example.com/prod".into()),
                ("Note".into(), "[x](javascript:alert(1)) | *bold*".into()),
            ],
            resources: vec![
                ResourceTiming {
                    path: "Data/Db".into(),
                    resource_type: "AWS::RDS::DBInstance".into(),
                    status: "CREATE_FAILED".into(),
                    started: at(10),
                    completed: None,
                },
                ResourceTiming {
                    path: "Data/Cache".into(),
                    resource_type: "AWS::ElastiCache::CacheCluster".into(),
                    status: "CREATE_FAILED".into(),
                    started: at(11),
                    completed: None,
                },
            ],
            progress: (1, 2),
            fail_step: true,
            cancel: None,
        }
    }

    fn context() -> SummaryContext<'static> {
        SummaryContext {
            correlation_id: "api-20240101-abcd",
            stack_name: "api",
            mode: "deploy",
            lock_key: "prod/api",
            lock: Some(LockSummary {
                wait: Some(Duration::from_secs(95)),
                coordination: LockCoordination::Acquired {
                    fence: 42,
                    reentrant: false,
                    took_over_from: None,
                },
            }),
            predicted_seconds: Some(600),
        }
    }

    #[test]
    fn the_table_has_what_a_reader_looks_for() {
        let md = render_summary(&context(), &result());
        for row in [
            "| correlation ID | `api-20240101-abcd` |",
            "| outcome | **rolled-back** |",
            "| stack status | UPDATE\\_ROLLBACK\\_COMPLETE |",
            "| duration | 12m 6s (estimate 10m, 21% longer) |",
            "| lock wait | 1m 35s |",
            "| fence | 42 |",
            "| lock key | `prod/api` |",
        ] {
            assert!(md.contains(row), "{row} missing in:\n{md}");
        }
    }

    #[test]
    fn the_root_cause_is_escaped_and_other_failures_listed() {
        let md = render_summary(&context(), &result());
        assert!(
            md.contains(
                "**Data/Db** (AWS::RDS::DBInstance) failed: Resource handler returned message: \"&lt;b&gt;x&lt;/b&gt; \\| y\""
            ),
            "{md}"
        );
        assert!(
            md.contains("Also failed: Data/Cache (CREATE\\_FAILED)"),
            "{md}"
        );
        assert!(!md.contains("<b>"));
    }

    #[test]
    fn outputs_are_links_or_inert_text() {
        let md = render_summary(&context(), &result());
        assert!(
            md.contains("| ApiUrl | <https://api.example.com/prod> |"),
            "{md}"
        );
        assert!(
            md.contains("| Note | \\[x\\](javascript:alert(1)) \\| \\*bold\\* |"),
            "{md}"
        );
    }

    #[test]
    fn the_timeline_is_a_valid_fenced_gantt() {
        let md = render_summary(&context(), &result());
        let start = md.find("```mermaid\n").expect("fence") + "```mermaid\n".len();
        let end = start + md[start..].find("```").expect("closing fence");
        let chart = mermaid::validate_gantt(&md[start..end]).expect("valid gantt");
        assert_eq!(chart.tasks.len(), 2);
        assert!(chart.tasks.iter().all(|t| t.tags == ["crit"]));
    }

    #[test]
    fn fallback_and_unknown_lock_are_said_plainly() {
        let mut ctx = context();
        ctx.lock = Some(LockSummary {
            wait: None,
            coordination: LockCoordination::Fallback,
        });
        ctx.predicted_seconds = None;
        let md = render_summary(&ctx, &result());
        assert!(md.contains("| lock wait | unknown |"), "{md}");
        assert!(md.contains("CloudFormation-only coordination"), "{md}");
        assert!(md.contains("(no estimate: no history yet)"), "{md}");
        ctx.lock = None;
        let md = render_summary(&ctx, &result());
        assert!(!md.contains("fence"), "{md}");
    }

    #[test]
    fn duration_against_estimate_reads_naturally() {
        let d = Duration::from_secs;
        assert_eq!(
            duration_against_estimate(d(300), Some(600)),
            "5m (estimate 10m, 50% shorter)"
        );
        assert_eq!(
            duration_against_estimate(d(600), Some(600)),
            "10m (estimate 10m, as estimated)"
        );
    }

    fn freeze() -> crate::lock::Freeze {
        use chrono::TimeZone;
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 11, 27, 12, 0, 0)
            .unwrap();
        crate::lock::Freeze::new(
            "INC-42 | <b>db</b> failover",
            "alice",
            at,
            Duration::from_secs(3600),
        )
        .unwrap()
    }

    #[test]
    fn a_frozen_run_says_who_why_until_when_and_how_to_lift_it() {
        let f = freeze();
        let md = frozen("prod/api", &f, false, f.until_ms - 30 * 60_000);
        for part in [
            "lock `prod/api`",
            "| reason | INC-42 \\| &lt;b&gt;db&lt;/b&gt; failover |",
            "| frozen by | alice |",
            "| until | 2026-11-27T13:00:00Z (30m left) |",
            "on-freeze is fail",
            "lock unfreeze --key prod/api",
        ] {
            assert!(md.contains(part), "{part} missing in:\n{md}");
        }
        assert!(frozen("k", &f, true, 0).contains("lock-timeout ran out"));
        let note = waiting_behind_freeze("prod/api", &f);
        assert!(
            note.contains("frozen by alice until 2026-11-27T13:00:00Z"),
            "{note}"
        );
        assert!(!note.contains("<b>"), "{note}");
    }

    #[test]
    fn table_cells_cannot_break_the_table_or_inject_html() {
        assert_eq!(cell("a|b\nc <script>&"), "a\\|b c &lt;script&gt;&amp;");
        assert_eq!(cell(&"x".repeat(600)).chars().count(), 501);
    }
}
