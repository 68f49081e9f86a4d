//! Edge cases of the estimator: no history, one record, an unseen resource, a rollback, a run
//! slower than every past one, skewed clocks, events out of order, misleading past runs.

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::history::events::tests::Stack;
use crate::history::events::{StackEvent, trace};
use crate::history::record::{HistoryRecord, Outcome};

const ROLE: &str = "AWS::IAM::Role";
const DB: &str = "AWS::RDS::DBInstance";
const FN: &str = "AWS::Lambda::Function";
const CDN: &str = "AWS::CloudFront::Distribution";

/// Role (20 s) → {Db (480 s), Fn (15 s) → Cdn (600 s)}, then 10 s of wrap-up: the stack takes
/// about 20 + 615 + 10 = 645 s, with Cdn on the critical path.
fn deploy(s: &mut Stack, t0: i64, f: f64, cdn: bool) -> i64 {
    let d = |x: f64| (x * f).round() as i64;
    s.stack(t0, "UPDATE_IN_PROGRESS", "User Initiated");
    let role_done = t0 + 1 + d(20.0);
    s.res(t0 + 1, "Role", ROLE, "UPDATE_IN_PROGRESS");
    s.res(role_done, "Role", ROLE, "UPDATE_COMPLETE");
    s.res(role_done + 1, "Db", DB, "UPDATE_IN_PROGRESS");
    s.res(role_done + 1, "Fn", FN, "UPDATE_IN_PROGRESS");
    let fn_done = role_done + 1 + d(15.0);
    s.res(fn_done, "Fn", FN, "UPDATE_COMPLETE");
    let db_done = role_done + 1 + d(480.0);
    let mut last = db_done;
    if cdn {
        s.res(fn_done + 1, "Cdn", CDN, "UPDATE_IN_PROGRESS");
        let cdn_done = fn_done + 1 + d(600.0);
        s.res(cdn_done, "Cdn", CDN, "UPDATE_COMPLETE");
        last = last.max(cdn_done);
    }
    s.res(db_done, "Db", DB, "UPDATE_COMPLETE");
    s.stack(last + 10, "UPDATE_COMPLETE", "");
    last + 10
}

/// `n` past runs, a day apart, with durations varying by ±10 %.
fn history(n: usize) -> Vec<HistoryRecord> {
    let mut s = Stack::new("app");
    for i in 0..n {
        let f = 1.0 + 0.05 * ((i * 7 % 5) as f64 - 2.0);
        deploy(&mut s, i as i64 * 86_400, f, true);
    }
    crate::history::events::records_from_history(&s.cli_order(), "h-")
}

/// The current run's events up to `upto` seconds after its start (f: its speed).
fn running(upto: i64, f: f64, cdn: bool) -> (Stack, DateTime<Utc>, i64) {
    let mut s = Stack::new("app");
    s.t0 += TimeDelta::days(400);
    let end = deploy(&mut s, 0, f, cdn);
    s.events
        .retain(|e| e.timestamp <= s.t0 + TimeDelta::seconds(upto));
    let now = s.t0 + TimeDelta::seconds(upto);
    (s, now, end)
}

fn est(history: &[HistoryRecord], events: &[StackEvent], now: DateTime<Utc>) -> Estimate {
    estimate_events(history, events, now, &Options::default()).expect("an operation")
}

fn within(e: &Estimate, actual_remaining: i64) -> bool {
    let a = actual_remaining.max(0) as u64;
    e.remaining_low_seconds <= a && a <= e.remaining_high_seconds
}

#[test]
fn with_enough_history_the_estimate_is_close_and_confident() {
    let h = history(12);
    let (s, now, end) = running(300, 1.0, true);
    let e = est(&h, &s.cli_order(), now);
    assert_eq!(e.phase, Phase::Running);
    assert_eq!(e.elapsed_seconds, 300);
    let actual = end - 300;
    assert!(
        (e.remaining_seconds as i64 - actual).abs() < 60,
        "estimated {} for {actual}",
        e.remaining_seconds
    );
    assert!(within(&e, actual), "{e:?}");
    assert!(e.remaining_low_seconds <= e.remaining_seconds);
    assert!(e.remaining_seconds <= e.remaining_high_seconds);
    assert_eq!(e.confidence, Confidence::High);
    assert_eq!(e.progress, Progress { done: 2, total: 4 });
    assert!(!e.slower_than_usual);
    assert_eq!(
        e.estimated_completion,
        now + TimeDelta::seconds(e.remaining_seconds as i64)
    );
    assert!(e.summary().contains("2/4 resources"), "{}", e.summary());
}

#[test]
fn the_critical_path_counts_not_the_sum() {
    // Db (480 s) and Cdn (600 s) run in parallel: right after Role, about 625 s remain,
    // not 480 + 615.
    let h = history(12);
    let (s, now, end) = running(25, 1.0, true);
    let e = est(&h, &s.cli_order(), now);
    let actual = end - 25;
    assert!(
        (e.remaining_seconds as i64 - actual).abs() < 80,
        "{} vs {actual}",
        e.remaining_seconds
    );
}

#[test]
fn no_history_gives_a_low_confidence_estimate_from_type_priors() {
    let (s, now, _) = running(60, 1.0, true);
    let e = est(&[], &s.cli_order(), now);
    assert_eq!(e.confidence, Confidence::Low);
    assert!(e.usual.is_none() && !e.slower_than_usual);
    // Db (RDS) and Cdn (CloudFront) are running: minutes, not seconds.
    assert!(e.remaining_seconds > 180, "{e:?}");
    assert!(e.remaining_low_seconds < e.remaining_high_seconds);
    assert!(e.basis.contains("no past successful UPDATE"), "{}", e.basis);

    // Nothing started yet, no history: still a number, from the generic prior.
    let (s, now, _) = running(0, 1.0, true);
    let e = est(&[], &s.cli_order(), now);
    assert!(e.remaining_seconds > 0 && e.confidence == Confidence::Low);

    // The change set's size fills in the progress total.
    let opts = Options {
        expected_total: Some(7),
        ..Options::default()
    };
    let (s, now, _) = running(60, 1.0, true);
    let e = estimate_events(&[], &s.cli_order(), now, &opts).unwrap();
    assert_eq!(e.progress.total, 7);
}

#[test]
fn one_record_is_used_with_low_confidence_and_a_wider_range() {
    let one = history(1);
    let many = history(12);
    let (s, now, end) = running(300, 1.0, true);
    let e1 = est(&one, &s.cli_order(), now);
    let e12 = est(&many, &s.cli_order(), now);
    assert_eq!(e1.confidence, Confidence::Low);
    assert!(within(&e1, end - 300), "{e1:?}");
    let width = |e: &Estimate| e.remaining_high_seconds - e.remaining_low_seconds;
    assert!(
        width(&e1) > width(&e12),
        "{} vs {}",
        width(&e1),
        width(&e12)
    );
}

#[test]
fn a_resource_never_seen_before_is_estimated_from_its_type() {
    let h = history(12);
    let (mut s, _, _) = running(300, 1.0, true);
    // A new ElastiCache cluster (6–9 min) started 30 s in.
    s.res(
        30,
        "Cache",
        "AWS::ElastiCache::ReplicationGroup",
        "CREATE_IN_PROGRESS",
    );
    let now = s.t0 + TimeDelta::seconds(300);
    let e = est(&h, &s.cli_order(), now);
    assert_eq!(e.unseen_resources, vec!["Cache".to_string()]);
    assert_eq!(e.confidence, Confidence::Medium);
    assert!(e.basis.contains("never seen before"), "{}", e.basis);
    // The plan still finishes ~345 s from now; the cache alone needs ~450 − 270 = 180 s.
    assert!(e.remaining_seconds >= 300, "{e:?}");
    assert!(e.progress.total >= 5);
}

#[test]
fn a_rollback_is_estimated_as_undoing_what_was_done() {
    let h = history(12);
    let mut s = Stack::new("app");
    s.t0 += TimeDelta::days(400);
    s.stack(0, "UPDATE_IN_PROGRESS", "User Initiated");
    s.res(1, "Role", ROLE, "UPDATE_IN_PROGRESS");
    s.res(21, "Role", ROLE, "UPDATE_COMPLETE");
    s.res(22, "Db", DB, "UPDATE_IN_PROGRESS");
    s.res(22, "Fn", FN, "UPDATE_IN_PROGRESS");
    s.res_reason(30, "Fn", FN, "UPDATE_FAILED", "bad handler");
    s.stack(
        31,
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "The following resource(s) failed to update: [Fn].",
    );
    s.res_reason(32, "Db", DB, "UPDATE_FAILED", "Resource update cancelled");
    s.res(33, "Fn", FN, "UPDATE_IN_PROGRESS");
    s.res(40, "Fn", FN, "UPDATE_COMPLETE");
    s.res(41, "Db", DB, "UPDATE_IN_PROGRESS");
    let now = s.t0 + TimeDelta::seconds(60);
    let e = est(&h, &s.cli_order(), now);
    assert_eq!(e.phase, Phase::RollingBack);
    assert_eq!(e.confidence, Confidence::Low);
    assert_eq!(e.progress, Progress { done: 1, total: 3 });
    // Db's update back is a database modification (minutes), then Role after it.
    assert!(e.remaining_seconds > 60, "{e:?}");
    assert!(
        e.summary().starts_with("rollback: about"),
        "{}",
        e.summary()
    );
    assert!(e.basis.contains("rolling back: 1 of 3"), "{}", e.basis);
}

#[test]
fn a_run_slower_than_every_past_one_says_so_and_still_has_time_left() {
    let h = history(12);
    // Everything 1.8× slower; at 1000 s the usual run (≈ 650 s) would be long done.
    let (s, now, end) = running(1000, 1.8, true);
    let e = est(&h, &s.cli_order(), now);
    assert!(e.slower_than_usual);
    assert!(
        e.basis.contains("slower than every past run"),
        "{}",
        e.basis
    );
    assert_ne!(e.confidence, Confidence::High);
    assert!(e.remaining_seconds > 0, "{e:?}");
    assert_eq!(e.laggards.len(), 1);
    assert_eq!(e.laggards[0].logical_id, "Cdn");
    assert!(e.summary().contains("slower than usual"), "{}", e.summary());
    // Slow so far predicts slow to come: the estimate is not the usual run's remainder (0).
    let actual = end - 1000;
    assert!(
        (e.remaining_seconds as i64 - actual).abs() < actual,
        "{} vs {actual}",
        e.remaining_seconds
    );
}

#[test]
fn a_local_clock_behind_cloudformation_is_detected_and_ignored() {
    let h = history(12);
    let (s, now, _) = running(300, 1.0, true);
    let newest = s.events.iter().map(|e| e.timestamp).max().unwrap();
    let right = est(&h, &s.cli_order(), newest);
    // The runner's clock is 10 minutes behind: "now" is before events already seen.
    let behind = est(&h, &s.cli_order(), now - TimeDelta::minutes(10));
    assert_eq!(
        behind.clock_skew_seconds,
        Some((newest - (now - TimeDelta::minutes(10))).num_seconds() as u64)
    );
    assert_eq!(behind.remaining_seconds, right.remaining_seconds);
    assert_eq!(behind.elapsed_seconds, right.elapsed_seconds);
    assert_eq!(right.clock_skew_seconds, None);
}

#[test]
fn skewed_timestamps_in_history_do_not_break_it() {
    let mut h = history(6);
    // A record whose resource "finished" before it started (two workers' clocks).
    let r = &mut h[0].resources[0];
    r.finished_at = r.started_at - TimeDelta::seconds(3);
    let (s, now, end) = running(300, 1.0, true);
    let e = est(&h, &s.cli_order(), now);
    assert!(within(&e, end - 300), "{e:?}");
}

#[test]
fn events_out_of_order_give_the_same_estimate() {
    let h = history(12);
    let (s, now, _) = running(300, 1.0, true);
    let mut shuffled = s.events.clone();
    shuffled.swap(0, 3);
    shuffled.rotate_left(2);
    shuffled.push(shuffled[1].clone());
    assert_eq!(est(&h, &s.cli_order(), now), est(&h, &shuffled, now));
}

#[test]
fn cancelled_and_failed_runs_do_not_shorten_the_usual_time() {
    let h = history(12);
    let mut misleading = h.clone();
    for (i, outcome) in [Outcome::Cancelled, Outcome::Failed, Outcome::RolledBack]
        .into_iter()
        .enumerate()
    {
        let mut r = h[i].clone();
        r.correlation_id = format!("bad-{i}");
        r.outcome = outcome;
        r.started_at += TimeDelta::days(300);
        r.finished_at = r.started_at + TimeDelta::seconds(40);
        r.resources.truncate(1);
        misleading.push(r);
    }
    let (s, now, _) = running(300, 1.0, true);
    let clean = est(&h, &s.cli_order(), now);
    let noisy = est(&misleading, &s.cli_order(), now);
    assert_eq!(clean.usual, noisy.usual);
    assert!(
        (clean.remaining_seconds as i64 - noisy.remaining_seconds as i64).abs() < 30,
        "{} vs {}",
        clean.remaining_seconds,
        noisy.remaining_seconds
    );
}

#[test]
fn a_change_that_skips_a_slow_resource_is_recognised() {
    // Half the past runs updated the CDN, half did not.
    let mut s = Stack::new("app");
    for i in 0..12 {
        deploy(&mut s, i as i64 * 86_400, 1.0, i % 2 == 0);
    }
    let h = crate::history::events::records_from_history(&s.cli_order(), "h-");
    // Now 120 s in: Fn finished at ~37 s and Cdn never started, so only Db (~500 s) remains.
    let (cur, now, end) = running(120, 1.0, false);
    let e = est(&h, &cur.cli_order(), now);
    let actual = end - 120;
    assert!(
        (e.remaining_seconds as i64 - actual).abs() < 60,
        "{} vs {actual}",
        e.remaining_seconds
    );
    assert_eq!(e.progress.total, 3);
}

#[test]
fn a_finished_operation_has_nothing_left() {
    let h = history(3);
    let (s, _, end) = running(100_000, 1.0, true);
    let later = s.t0 + TimeDelta::seconds(end + 300);
    let e = est(&h, &s.cli_order(), later);
    assert_eq!(e.phase, Phase::Finished);
    assert_eq!(e.remaining_seconds, 0);
    assert_eq!(e.elapsed_seconds, end as u64);
    assert_eq!(e.estimated_completion, s.t0 + TimeDelta::seconds(end));
    assert_eq!(e.progress, Progress { done: 4, total: 4 });
}

#[test]
fn estimates_are_deterministic_and_consistent_with_traces() {
    let h = history(5);
    let (s, now, _) = running(200, 1.0, true);
    let a = est(&h, &s.cli_order(), now);
    let t = trace(&s.events).unwrap();
    assert_eq!(a, estimate(&h, &t, now));
}
