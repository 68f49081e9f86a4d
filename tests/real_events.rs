//! Real CloudFormation, not our model of it: the event streams in tests/fixtures/real-events,
//! published by people from their own AWS accounts (provenance in its manifest.json, facts in
//! its FINDINGS.md), read the way a person reads them — their outcome, final status, failed
//! resource, reason and resource timings are in the manifest, written by reading the events,
//! not by running this code.
//!
//! - every operation of every stream through the event follower (the library: fast, all 94);
//! - every stream through the real binary in mode monitor, the simulator replaying it with
//!   its gaps compressed (tests/real_events_replay.rs);
//! - `estimate --events` and `history collect` on every stream.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use deploy_coordinator::history::events::chronological;
use deploy_coordinator::history::parse_describe_stack_events;
use deploy_coordinator::stack::result::result_of;
use deploy_coordinator::stack::tracker::{Matcher, Tracker};
use deploy_coordinator::stack::{Event, StackResult};
use deploy_coordinator::timeline::from_history_event;
use support::real_events::{Expected, Stream, corpus};

/// Follows one operation of `stream` as the monitor would: from its first event when the
/// recording has it, else (a recording cut short) from the oldest event after the previous
/// operation's end, as the monitor does when it joins an operation already running.
fn follow(stream: &Stream, op: &Expected) -> (StackResult, Tracker) {
    let (events, skipped) = parse_describe_stack_events(&stream.text).expect("parse");
    assert!(
        skipped.len() <= 1,
        "{}: only the one hand-corrupted event of stream 10 may be skipped: {skipped:?}",
        stream.file
    );
    let events: Vec<Event> = chronological(&events)
        .iter()
        .map(from_history_event)
        .filter(|e| e.stack_id == op.stack_id)
        .collect();
    let mut tracker = Tracker::new(&op.stack_name, Matcher::default(), None);
    match op
        .start_event_id
        .as_deref()
        .and_then(|id| events.iter().position(|e| e.event_id == id))
    {
        Some(start) => {
            for e in &events[start..] {
                tracker.apply_root(e);
                if tracker.is_finished() {
                    break;
                }
            }
        }
        None => {
            // As the monitor meets it: running, then the rest arrives. The first read ends
            // before the operation's terminal event, if the recording has one.
            let end = events
                .iter()
                .position(|e| {
                    e.is_stack_level() && deploy_coordinator::stack::status::is_terminal(&e.status)
                })
                .unwrap_or(events.len());
            tracker.join_running(&events[..end]);
            for e in &events[end..] {
                tracker.apply_root(e);
            }
        }
    }
    (result_of(&tracker, None, Duration::ZERO), tracker)
}

#[test]
fn every_operation_of_every_real_stream_reads_as_a_person_reads_it() {
    let corpus = corpus();
    assert!(
        corpus.len() >= 15,
        "the corpus holds {} streams",
        corpus.len()
    );
    let mut checked = 0;
    let mut problems = Vec::new();
    for stream in &corpus {
        for (i, op) in stream.operations.iter().enumerate() {
            let (result, _) = follow(stream, op);
            let mut check = |what: &str, ours: Option<&str>, theirs: Option<&str>| {
                if ours != theirs {
                    problems.push(format!(
                        "{} op {i} ({}): {what}: ours {ours:?}, the reader's {theirs:?}",
                        stream.file, op.kind
                    ));
                }
            };
            let outcome = Some(result.outcome.as_str());
            match (op.final_status.as_deref(), op.interrupted()) {
                (Some(status), _) => {
                    check("stack status", result.stack_status.as_deref(), Some(status));
                    check("outcome", outcome, op.outcome.as_deref());
                }
                // Another operation took the stack over before the chain's end: the
                // deployment failed, and the step must end instead of waiting.
                (None, true) => check("outcome", outcome, Some("failed")),
                // The recording ends before the operation does: nothing to decide yet.
                (None, false) => check("outcome", outcome, Some("timed-out")),
            }
            if op.cause_determinable() {
                check(
                    "failed resource",
                    result.failed_resource.as_deref(),
                    op.failed_resource.as_deref(),
                );
                check(
                    "failure reason",
                    result.failure_reason.as_deref(),
                    op.failure_reason.as_deref(),
                );
            }
            for (resource, seconds) in &op.resource_durations {
                let ours = result
                    .resources
                    .iter()
                    .find(|r| r.path == *resource)
                    .and_then(|r| r.duration())
                    .map(|d| d.as_secs_f64());
                if ours.is_none_or(|o| (o - seconds).abs() > 0.002) {
                    problems.push(format!(
                        "{} op {i}: {resource} took {ours:?} s by ours, {seconds} s by the reader",
                        stream.file
                    ));
                }
            }
            for name in op.warned_resources() {
                let said = result.warnings.iter().chain(result.recovery.iter());
                if !said.clone().any(|w| w.contains(&name)) {
                    problems.push(format!(
                        "{} op {i}: nothing says what became of {name}: warnings {:?}, next step {:?}",
                        stream.file, result.warnings, result.recovery
                    ));
                }
            }
            checked += 1;
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {checked} operations read differently:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(checked >= 90, "{checked} operations checked");
}

#[test]
fn the_rollback_of_every_failed_chain_carries_its_own_operation_id_and_is_followed() {
    // The defect this corpus exposed: a follower that keeps only the forward OperationId never
    // sees the rollback's terminal status.
    let mut chains = 0;
    for stream in corpus() {
        for op in &stream.operations {
            if op.operation_ids.len() < 2 || op.final_status.is_none() {
                continue;
            }
            let (result, tracker) = follow(&stream, op);
            assert_eq!(
                tracker.operation_ids(),
                op.operation_ids.as_slice(),
                "{}: the chain's operations",
                stream.file
            );
            assert_eq!(
                result.stack_status.as_deref(),
                op.final_status.as_deref(),
                "{}",
                stream.file
            );
            chains += 1;
        }
    }
    assert!(chains >= 10, "{chains} chains with a rollback of their own");
}

#[test]
fn estimate_reads_every_real_stream() {
    for stream in corpus() {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_deploy-coordinator"))
            .args(["estimate", "--json", "--events"])
            .arg(PathBuf::from(&stream.path))
            .output()
            .expect("run estimate");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stream.has_start() {
            assert!(
                out.status.success(),
                "{}: estimate --events failed: {stderr}",
                stream.file
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{}: {e}", stream.file));
            assert!(v["phase"].is_string(), "{}: {v}", stream.file);
        } else {
            // No operation starts in the recording: said so, with what to give instead.
            assert_eq!(out.status.code(), Some(65), "{}: {stderr}", stream.file);
            assert!(stderr.contains("operation"), "{}: {stderr}", stream.file);
        }
    }
}
