//! How late the monitor notices the end of a REAL operation, and what following it costs in
//! CloudFormation calls, over the event streams people published from their own AWS accounts
//! (tests/fixtures/real-events): each operation plays on its own recorded timestamps in virtual
//! time, and the monitor's own code decides when to read (`stack::planner::Planner` over
//! `stack::tracker::Tracker`, exactly what `monitor::follow` runs). Side by side, CDK's fixed
//! 2 s poller (DescribeStackEvents + DescribeStacks every 2 s until the stack is terminal).
//!
//!     cargo run --example corpus_monitor [-- --verbose]   (virtual time: a debug build is fine)
//!
//! Assumptions, stated: an event can be read from its own timestamp on (CloudFormation makes
//! it visible within a fraction of a second); both pollers begin at the operation's first
//! event; a nested stack costs one DescribeStackEvents each time the monitor reads it (the
//! recordings hold no child events); the monitor reads DescribeStacks once at the end (outputs).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use deploy_coordinator::history::events::chronological;
use deploy_coordinator::history::parse_describe_stack_events;
use deploy_coordinator::stack::PollSettings;
use deploy_coordinator::stack::planner::Planner;
use deploy_coordinator::stack::tracker::{Matcher, Tracker};
use deploy_coordinator::stack::{Event, status};
use deploy_coordinator::timeline::from_history_event;
use serde::Deserialize;

#[derive(Deserialize)]
struct Entry {
    file: String,
    operations: Vec<Op>,
}

#[derive(Deserialize)]
struct Op {
    stack_id: String,
    kind: String,
    outcome: Option<String>,
    stack_name: String,
    start_event_id: Option<String>,
    final_status: Option<String>,
}

/// One operation followed by one strategy.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Operation start → terminal event.
    operation: f64,
    /// Terminal event → the read that saw it.
    notice: f64,
    calls: u64,
}

/// Our monitor, on the operation's own timestamps; `expected`: the stack's usual duration from
/// its history (what the action passes after earlier deployments), if any.
fn ours(events: &[Event], start: usize, stack: &str, expected: Option<f64>) -> Option<Run> {
    let t0 = events[start].timestamp;
    let at = |t: DateTime<Utc>| (t - t0).num_milliseconds() as f64 / 1000.0;
    let mut tracker = Tracker::new(stack, Matcher::default(), None);
    let mut planner = Planner::new(
        PollSettings::default(),
        expected.map(Duration::from_secs_f64),
    );
    let mut next = start;
    let mut now = 0.0_f64;
    let mut calls = 0u64;
    loop {
        calls += 1;
        let mut news = false;
        while next < events.len() && at(events[next].timestamp) <= now {
            tracker.apply_root(&events[next]);
            news = true;
            next += 1;
        }
        for nested in planner.nested_due(&tracker, Duration::from_secs_f64(now)) {
            calls += 1;
            tracker.nested_read(&nested);
        }
        if tracker.is_finished() {
            let end = tracker.end().or(tracker.interrupted_by())?;
            let operation = at(end.timestamp);
            // The outputs: one DescribeStacks.
            return Some(Run {
                operation,
                notice: now - operation,
                calls: calls + 1,
            });
        }
        if next >= events.len() {
            return None;
        }
        let delay = planner.after_read(&tracker, news, Duration::from_secs_f64(now));
        if std::env::var_os("CORPUS_TRACE").is_some() {
            eprintln!(
                "  t={now:7.2} news={news} running={} next={:.2}",
                tracker.in_progress().len(),
                delay.as_secs_f64()
            );
        }
        now += delay.as_secs_f64();
    }
}

/// CDK's poller: both calls every 2 s from the start; the read at or after the end sees it.
fn fixed(operation: f64) -> Run {
    let seen_at = (operation / 2.0).ceil() * 2.0;
    Run {
        operation,
        notice: seen_at - operation,
        calls: 2 * ((seen_at / 2.0) as u64 + 1),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn p95(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * 0.95).ceil() as usize).clamp(1, v.len()) - 1]
}

struct Row {
    label: &'static str,
    pairs: Vec<(Run, Run)>,
}

fn print(rows: &[Row]) {
    println!(
        "| operations | n | notice, median (ours / fixed 2 s) | notice, p95 | calls per monitored minute, pooled (ours / fixed) |"
    );
    println!("|---|---|---|---|---|");
    for row in rows {
        let minutes: f64 = row.pairs.iter().map(|(o, _)| o.operation / 60.0).sum();
        let calls = |f: fn(&(Run, Run)) -> u64| row.pairs.iter().map(f).sum::<u64>() as f64;
        println!(
            "| {} | {} | {:.2} s / {:.2} s | {:.2} s / {:.2} s | {:.1} / {:.1} |",
            row.label,
            row.pairs.len(),
            median(row.pairs.iter().map(|(o, _)| o.notice).collect()),
            median(row.pairs.iter().map(|(_, f)| f.notice).collect()),
            p95(row.pairs.iter().map(|(o, _)| o.notice).collect()),
            p95(row.pairs.iter().map(|(_, f)| f.notice).collect()),
            calls(|(o, _)| o.calls) / minutes,
            calls(|(_, f)| f.calls) / minutes,
        );
    }
}

fn main() -> Result<()> {
    let verbose = std::env::args().any(|a| a == "--verbose");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real-events");
    let manifest: Vec<Entry> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json"))?)?;
    let mut all = Vec::new();
    // The operations that have history, followed with it.
    let mut historic = Vec::new();
    let mut historic_without = Vec::new();
    for entry in &manifest {
        let mut done: Vec<(String, String, f64)> = Vec::new();
        let text =
            std::fs::read_to_string(dir.join(&entry.file)).with_context(|| entry.file.clone())?;
        let (parsed, _) = parse_describe_stack_events(&text)?;
        for op in &entry.operations {
            if op.final_status.is_none() {
                continue;
            }
            let events: Vec<Event> = chronological(&parsed)
                .iter()
                .map(from_history_event)
                .filter(|e| e.stack_id == op.stack_id)
                .collect();
            let Some(start) = op
                .start_event_id
                .as_deref()
                .and_then(|id| events.iter().position(|e| e.event_id == id))
                // A change-set create starts at REVIEW_IN_PROGRESS: the work, and the
                // monitor's following, at the CREATE_IN_PROGRESS after it.
                .and_then(|i| {
                    (i..events.len()).find(|&j| {
                        events[j].starts_operation() && events[j].status != "REVIEW_IN_PROGRESS"
                    })
                })
            else {
                continue;
            };
            let Some(run) = ours(&events, start, &op.stack_name, None) else {
                continue;
            };
            // With history: the median of this stack's earlier operations of the same kind
            // that succeeded, as the action's history gives it.
            let earlier: Vec<f64> = done
                .iter()
                .filter(|(id, kind, _)| *id == op.stack_id && *kind == op.kind)
                .map(|(_, _, d)| *d)
                .collect();
            let expected = (!earlier.is_empty()).then(|| median(earlier.clone()));
            let with_history = expected.and_then(|e| ours(&events, start, &op.stack_name, Some(e)));
            if op.outcome.as_deref() == Some("succeeded") {
                done.push((op.stack_id.clone(), op.kind.clone(), run.operation));
            }
            let end_is_terminal = events
                .iter()
                .any(|e| e.is_stack_level() && status::is_terminal(&e.status));
            if !end_is_terminal {
                continue;
            }
            let other = fixed(run.operation);
            if verbose {
                println!(
                    "{} {:>7.1} s: ours {:.2} s {} calls, fixed {:.2} s {} calls",
                    entry.file, run.operation, run.notice, run.calls, other.notice, other.calls
                );
            }
            all.push((run, other));
            if let Some(h) = with_history {
                historic.push((h, other));
                historic_without.push((run, other));
            }
        }
    }
    let short: Vec<_> = all
        .iter()
        .copied()
        .filter(|(o, _)| o.operation <= 120.0)
        .collect();
    let long: Vec<_> = all
        .iter()
        .copied()
        .filter(|(o, _)| o.operation > 120.0)
        .collect();
    print(&[
        Row {
            label: "all",
            pairs: all,
        },
        Row {
            label: "short (≤ 2 min)",
            pairs: short,
        },
        Row {
            label: "long (> 2 min)",
            pairs: long,
        },
        Row {
            label: "operations with history, followed without it",
            pairs: historic_without,
        },
        Row {
            label: "the same, with the stack's earlier operations as history",
            pairs: historic,
        },
    ]);
    Ok(())
}
