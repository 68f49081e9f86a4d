//! `estimate`: the estimator offline, over exported history and the AWS CLI's own
//! `describe-stack-events` JSON, so anyone can check an estimate without the action.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;

use crate::estimate::offline::{Offline, estimate_offline};
use crate::estimate::{ChangeSetFile, fmt_secs, parse_describe_change_set};
use crate::history::{HistoryRecord, StackEvent, parse_describe_stack_events, parse_records};

const EXIT_CODES: &str = "Exit codes:
  0    the estimate was printed
  2    invalid arguments
  65   a file is malformed (the message gives the file, line and column, and what was expected),
       the events contain no operation (no stack-level \"User Initiated\" event), or a change
       set alone does not say which stack it is for
  66   a file cannot be read";

/// Estimate the remaining time of a stack operation from exported history and the events so
/// far. EVENTS is exactly what `aws cloudformation describe-stack-events --stack-name S`
/// prints (the stack's whole event history: its earlier operations count as history too);
/// HISTORY is what `history export` prints (omit both to estimate from resource-type priors
/// alone). The newest operation in the events is the one estimated. CHANGE_SET is what
/// `aws cloudformation describe-change-set` prints: the estimate then knows exactly which
/// resources change and how; without EVENTS it is the whole duration of that deployment,
/// from now, before it starts (for planning a deploy window). The stack's history is first
/// replayed through the estimator to calibrate it.
///
/// Example:
///   aws cloudformation describe-stack-events --stack-name app > e.json
///   deploy-coordinator history export --table T --stack app > h.json
///   deploy-coordinator estimate --history h.json --events e.json --json
///   aws cloudformation describe-change-set --stack-name app --change-set-name c > cs.json
///   deploy-coordinator estimate --history h.json --change-set cs.json
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES, verbatim_doc_comment)]
pub struct EstimateArgs {
    /// History records (a JSON array, as `history export` prints).
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// `describe-stack-events` output ({"StackEvents": [...]}); optional with --change-set.
    #[arg(long, value_name = "FILE", required_unless_present = "change_set")]
    events: Option<PathBuf>,
    /// `describe-change-set` output ({"StackName", "Changes": [...]}): which resources the
    /// deployment adds, modifies (replaces) and removes.
    #[arg(long, value_name = "FILE")]
    change_set: Option<PathBuf>,
    /// The time to estimate for (RFC 3339, e.g. 2026-01-14T12:40:00Z). Default: now.
    #[arg(long, value_parser = parse_time)]
    now: Option<DateTime<Utc>>,
    /// How many resources the change set touches, if known (the progress total).
    #[arg(long)]
    expected_total: Option<usize>,
    /// Print JSON: elapsed_seconds, remaining_seconds, remaining_low_seconds,
    /// remaining_high_seconds, estimated_completion, progress {done, total}, confidence, …
    #[arg(long)]
    json: bool,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e} (expected RFC 3339, e.g. 2026-01-14T12:40:00Z)"))
}

/// A failure with its exit code.
pub(crate) struct Failure(pub u8, pub anyhow::Error);

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(|e| Failure(66, e))
}

/// Reads and validates a history file (`history export` format).
pub(crate) fn load_history(path: &Path) -> Result<Vec<HistoryRecord>, Failure> {
    let text = read(path)?;
    parse_records(&text).map_err(|e| Failure(65, anyhow::anyhow!("{}: {e}", path.display())))
}

fn load_change_set(path: &Path) -> Result<ChangeSetFile, Failure> {
    let text = read(path)?;
    parse_describe_change_set(&text)
        .map_err(|e| Failure(65, anyhow::anyhow!("{}: {e}", path.display())))
}

fn load_events(path: &Path) -> Result<Vec<StackEvent>, Failure> {
    let text = read(path)?;
    let (events, skipped) = parse_describe_stack_events(&text)
        .map_err(|e| Failure(65, anyhow::anyhow!("{}: {e}", path.display())))?;
    for problem in &skipped {
        crate::action::log::warning("Event skipped", &format!("{}: {problem}", path.display()));
    }
    Ok(events)
}

pub async fn run(args: EstimateArgs) -> ExitCode {
    match execute(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, e)) => {
            crate::action::log::error("Cannot estimate", &format!("{e:#}"));
            ExitCode::from(code)
        }
    }
}

fn execute(args: &EstimateArgs) -> Result<(), Failure> {
    let history = match &args.history {
        Some(path) => load_history(path)?,
        None => Vec::new(),
    };
    let events = match &args.events {
        Some(path) => load_events(path)?,
        None => Vec::new(),
    };
    let change_set = match &args.change_set {
        Some(path) => Some(load_change_set(path)?),
        None => None,
    };
    let now = args.now.unwrap_or_else(Utc::now);
    let estimate = estimate_offline(history, &events, change_set.as_ref(), now, args.expected_total)
        .map_err(|e| {
            let problem = match e {
                Offline::NoOperation { events } => format!(
                    "{}: no operation found: no stack-level *_IN_PROGRESS event with reason \"User Initiated\" among {events} event(s)",
                    args.events.as_deref().unwrap_or(Path::new("events")).display()
                ),
                Offline::NoStack => format!(
                    "{}: the change set does not say which stack it is for (no \"StackName\") and there is no history: add \"StackName\" or pass --history",
                    args.change_set.as_deref().unwrap_or(Path::new("change set")).display()
                ),
            };
            Failure(65, anyhow::anyhow!(problem))
        })?;
    if args.json {
        let text = serde_json::to_string_pretty(&estimate)
            .context("cannot print the estimate")
            .map_err(|e| Failure(1, e))?;
        println!("{text}");
        return Ok(());
    }
    println!(
        "{} {} on {}: {}",
        estimate.operation.as_str(),
        match estimate.phase {
            _ if args.events.is_none() => "planned",
            crate::estimate::Phase::Running => "running",
            crate::estimate::Phase::RollingBack => "rolling back",
            crate::estimate::Phase::Finished => "finished",
        },
        estimate.stack,
        estimate.summary()
    );
    println!(
        "  elapsed {}, started {}",
        fmt_secs(estimate.elapsed_seconds as f64),
        estimate.started_at.to_rfc3339()
    );
    println!(
        "  completion {} (between {} and {})",
        estimate.estimated_completion.to_rfc3339(),
        estimate.completion_low.format("%H:%M:%S"),
        estimate.completion_high.format("%H:%M:%S")
    );
    if let Some(u) = estimate.usual {
        println!(
            "  usual: {} (P10 {}, P90 {}, max {}) over {} run(s)",
            fmt_secs(u.median_seconds as f64),
            fmt_secs(u.low_seconds as f64),
            fmt_secs(u.high_seconds as f64),
            fmt_secs(u.max_seconds as f64),
            u.runs
        );
    }
    for l in &estimate.laggards {
        println!(
            "  slow: {} ({}) has run {}, usually {} (P90 {})",
            l.logical_id,
            l.resource_type,
            fmt_secs(l.running_seconds as f64),
            fmt_secs(l.usual_seconds as f64),
            fmt_secs(l.high_seconds as f64)
        );
    }
    if let Some(skew) = estimate.clock_skew_seconds {
        println!("  note: --now is {skew}s before the newest event; used the newest event's time");
    }
    println!("  basis: {}", estimate.basis);
    Ok(())
}
