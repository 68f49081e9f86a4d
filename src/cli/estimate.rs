//! `estimate`: the estimator offline, over exported history and the AWS CLI's own
//! `describe-stack-events` JSON, so anyone can check an estimate without the action.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;

use crate::estimate::{Options, estimate_events, fmt_secs};
use crate::history::{HistoryRecord, StackEvent, parse_describe_stack_events, parse_records};

const EXIT_CODES: &str = "Exit codes:
  0    the estimate was printed
  2    invalid arguments
  65   a file is malformed (the message gives the file, line and column, and what was expected),
       or the events contain no operation (no stack-level \"User Initiated\" event)
  66   a file cannot be read";

/// Estimate the remaining time of a stack operation from exported history and the events so
/// far. EVENTS is exactly what `aws cloudformation describe-stack-events --stack-name S`
/// prints; HISTORY is what `history export` prints (omit it to estimate from resource-type
/// priors alone). The newest operation in the events is the one estimated.
///
/// Example:
///   aws cloudformation describe-stack-events --stack-name app > e.json
///   deploy-coordinator history export --table T --stack app > h.json
///   deploy-coordinator estimate --history h.json --events e.json --json
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES, verbatim_doc_comment)]
pub struct EstimateArgs {
    /// History records (a JSON array, as `history export` prints).
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// `describe-stack-events` output ({"StackEvents": [...]}).
    #[arg(long, value_name = "FILE")]
    events: PathBuf,
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
    let events = load_events(&args.events)?;
    let now = args.now.unwrap_or_else(Utc::now);
    let options = Options {
        expected_total: args.expected_total,
    };
    let estimate = estimate_events(&history, &events, now, &options).ok_or_else(|| {
        Failure(
            65,
            anyhow::anyhow!(
                "{}: no operation found: no stack-level *_IN_PROGRESS event with reason \"User Initiated\" among {} event(s)",
                args.events.display(),
                events.len()
            ),
        )
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
