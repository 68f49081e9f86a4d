//! What this deployment is: a small update after large ones, a large one after small ones, a
//! stack with one record, a change set that removes resources, a rollback; and the
//! self-calibration on the stack's own history.

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::history::events::records_from_history;
use crate::history::events::tests::Stack;
use crate::history::record::HistoryRecord;

const ROLE: &str = "AWS::IAM::Role";
const FN: &str = "AWS::Lambda::Function";
const DB: &str = "AWS::RDS::DBInstance";
const CDN: &str = "AWS::CloudFront::Distribution";

/// The template: Role → Fn → Cdn, and Db on its own. (logical id, type, seconds, needs).
const TEMPLATE: [(&str, &str, i64, Option<&str>); 4] = [
    ("Role", ROLE, 20, None),
    ("Fn", FN, 15, Some("Role")),
    ("Db", DB, 480, None),
    ("Cdn", CDN, 600, Some("Fn")),
];

/// An update of `changed` at `t0` (seconds from the helper's epoch), as CloudFormation runs it:
/// a resource starts a second after the last of its dependencies that changed too (an
/// unchanged one is not waited for); `slow` stretches every duration. Returns the end.
fn update(s: &mut Stack, t0: i64, changed: &[&str], slow: f64) -> i64 {
    s.stack(t0, "UPDATE_IN_PROGRESS", "User Initiated");
    let mut done: Vec<(&str, i64)> = Vec::new();
    let mut last = t0 + 1;
    for (id, rtype, secs, needs) in TEMPLATE {
        if !changed.contains(&id) {
            continue;
        }
        let ready = needs
            .and_then(|n| done.iter().find(|(d, _)| *d == n).map(|(_, t)| *t))
            .unwrap_or(t0);
        let start = ready + 1;
        let end = start + (secs as f64 * slow).round() as i64;
        s.res(start, id, rtype, "UPDATE_IN_PROGRESS");
        s.res(end, id, rtype, "UPDATE_COMPLETE");
        done.push((id, end));
        last = last.max(end);
    }
    s.stack(last + 2, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "");
    s.stack(last + 3, "UPDATE_COMPLETE", "");
    last + 3
}

const SMALL: &[&str] = &["Fn"];
const LARGE: &[&str] = &["Role", "Fn", "Db", "Cdn"];

/// Past updates, a day apart, each a small or a large one (durations ±5 %).
fn history(kinds: &[&[&str]]) -> Vec<HistoryRecord> {
    let mut s = Stack::new("app");
    for (i, changed) in kinds.iter().enumerate() {
        let slow = 1.0 + 0.05 * ((i * 3 % 5) as f64 - 2.0) / 2.0;
        update(&mut s, i as i64 * 86_400, changed, slow);
    }
    records_from_history(&s.cli_order(), "h-")
}

/// The run in progress, `upto` seconds in; returns its events, the time and its actual end.
fn running(changed: &[&str], upto: i64) -> (Stack, DateTime<Utc>, i64) {
    let mut s = Stack::new("app");
    s.t0 += TimeDelta::days(400);
    let end = update(&mut s, 0, changed, 1.0);
    s.events
        .retain(|e| e.timestamp <= s.t0 + TimeDelta::seconds(upto));
    let now = s.t0 + TimeDelta::seconds(upto);
    (s, now, end)
}

/// The change set of an update of `changed` (and of removing `removed`).
fn change_set(changed: &[&str], removed: &[&str]) -> Vec<ResourceChange> {
    let of = |id: &str, action: &str| ResourceChange {
        logical_id: id.into(),
        resource_type: TEMPLATE
            .iter()
            .find(|t| t.0 == id)
            .map(|t| t.1)
            .unwrap_or(FN)
            .into(),
        action: action.into(),
        replacement: (action == "Modify").then(|| "False".into()),
        scope: vec!["Properties".into()],
        ..Default::default()
    };
    changed
        .iter()
        .map(|id| of(id, "Modify"))
        .chain(removed.iter().map(|id| of(id, "Remove")))
        .collect()
}

/// The estimate as the action makes it: calibrated on the same history, with the change set
/// when one is given.
fn est(
    h: &[HistoryRecord],
    s: &Stack,
    now: DateTime<Utc>,
    cs: Option<Vec<ResourceChange>>,
) -> Estimate {
    let calibration = Some(Calibration::of(h, "app", Operation::Update, cs.is_some()));
    let options = Options {
        change_set: cs,
        calibration,
        ..Options::default()
    };
    estimate_events(h, &s.cli_order(), now, &options).expect("an operation")
}

fn within(e: &Estimate, actual: i64) -> bool {
    let a = actual.max(0) as u64;
    e.remaining_low_seconds <= a && a <= e.remaining_high_seconds
}

#[test]
fn a_small_update_after_large_ones_is_recognised_as_small() {
    // The newest runs were large (≈ 640 s, the CDN on the critical path); this one only
    // updates the function (≈ 20 s).
    let h = history(&[SMALL, SMALL, SMALL, LARGE, LARGE, LARGE, LARGE, LARGE]);
    let (s, now, end) = running(SMALL, 8);
    let e = est(&h, &s, now, None);
    // 8 s in, only Fn has started, at once: the large runs' Role and Db would have started
    // in the same first wave and their Fn only after Role. The small runs explain it.
    assert!(e.remaining_seconds < 120, "{e:?}");
    assert!(within(&e, end - 8), "actual {} in {e:?}", end - 8);
    // Fn done at 16 s, and 5 s later nothing else has started: nothing else is coming.
    let (s, now, end) = running(SMALL, 22);
    let e = est(&h, &s, now, None);
    assert!(e.remaining_seconds <= 15, "{e:?}");
    assert!(within(&e, end - 22), "actual {} in {e:?}", end - 22);
    // With the change set it is known before anything starts.
    let (s, now, end) = running(SMALL, 0);
    let e = est(&h, &s, now, Some(change_set(SMALL, &[])));
    assert!(
        (e.remaining_seconds as i64 - end).abs() <= 10,
        "{end} s actual: {e:?}"
    );
    assert_eq!(e.progress.total, 1);
    assert!(e.basis.contains("change set: 1 to modify"), "{}", e.basis);
}

#[test]
fn a_large_update_after_small_ones_is_not_taken_for_one_more_small_one() {
    let h = history(&[SMALL; 10]);
    let usual = est(&h, &running(SMALL, 0).0, running(SMALL, 0).1, None)
        .usual
        .unwrap();
    assert!(usual.median_seconds < 30, "{usual:?}");
    // 160 s in: Role and Fn are done, Db and Cdn (never changed before) are running.
    let (s, now, end) = running(LARGE, 160);
    let e = est(&h, &s, now, None);
    let actual = end - 160;
    assert!(e.remaining_seconds > 150, "{actual} s left: {e:?}");
    assert!(
        e.remaining_high_seconds as i64 >= actual,
        "{actual} s left: {e:?}"
    );
    assert!(e.slower_than_usual, "{e:?}");
    let mut unseen = e.unseen_resources.clone();
    unseen.sort();
    assert_eq!(
        unseen,
        vec!["Cdn".to_string(), "Db".to_string(), "Role".to_string()]
    );
    assert_ne!(e.confidence, Confidence::High);
    // The change set says so before it starts: minutes, not seconds.
    let (s, now, end) = running(LARGE, 0);
    let e = est(&h, &s, now, Some(change_set(LARGE, &[])));
    assert!(e.remaining_seconds > 300, "{end} s actual: {e:?}");
    assert!(within(&e, end), "{end} s actual: {e:?}");
    assert_eq!(e.progress.total, 4);
}

#[test]
fn a_stack_with_one_record_is_estimated_without_calibration() {
    let h = history(&[LARGE]);
    let cal = Calibration::of(&h, "app", Operation::Update, false);
    assert_eq!((cal.runs, cal.points), (0, 0), "nothing to replay against");
    let (s, now, end) = running(LARGE, 300);
    let e = est(&h, &s, now, None);
    assert!(
        e.calibration.is_none() && !e.basis.contains("calibrated"),
        "{e:?}"
    );
    assert_eq!(e.confidence, Confidence::Low);
    assert!(within(&e, end - 300), "{e:?}");
    // Its change set still says what runs.
    let (s, now, end) = running(SMALL, 0);
    let e = est(&h, &s, now, Some(change_set(SMALL, &[])));
    assert!(
        (e.remaining_seconds as i64 - end).abs() <= 10,
        "{end}: {e:?}"
    );
}

#[test]
fn a_change_set_that_removes_resources_waits_for_their_deletes_in_the_cleanup() {
    let h = history(&[SMALL; 8]);
    // Fn is updated and the database removed: its delete runs in the cleanup phase, after
    // Fn, and takes minutes (an RDS delete: the reference table's 7 min).
    let cs = change_set(SMALL, &["Db"]);
    let (s, now, _) = running(SMALL, 0);
    let with = est(&h, &s, now, Some(cs.clone()));
    let without = est(&h, &s, now, None);
    assert!(without.remaining_seconds < 40, "{without:?}");
    assert!(with.remaining_seconds > 300, "{with:?}");
    assert_eq!(with.progress.total, 2);
    assert!(
        with.basis.contains("1 to modify, 1 to remove"),
        "{}",
        with.basis
    );

    // In the cleanup: Fn done at 16 s, Db's delete running since 20 s.
    let mut s = Stack::new("app");
    s.t0 += TimeDelta::days(400);
    s.stack(0, "UPDATE_IN_PROGRESS", "User Initiated");
    s.res(1, "Fn", FN, "UPDATE_IN_PROGRESS");
    s.res(16, "Fn", FN, "UPDATE_COMPLETE");
    s.stack(18, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "");
    s.res(20, "Db", DB, "DELETE_IN_PROGRESS");
    let e = est(&h, &s, s.t0 + TimeDelta::seconds(200), Some(cs));
    assert_eq!(e.progress, Progress { done: 1, total: 2 });
    // 180 s into a delete whose usual time is minutes: minutes still to go.
    assert!(e.remaining_seconds > 60, "{e:?}");
}

#[test]
fn a_rollback_is_estimated_as_undoing_and_left_uncalibrated() {
    // Past updates, some of which rolled back after Fn failed (Role updated back).
    let mut s = Stack::new("app");
    for i in 0..10i64 {
        let t0 = i * 86_400;
        if i % 3 == 2 {
            s.stack(t0, "UPDATE_IN_PROGRESS", "User Initiated");
            s.res(t0 + 1, "Role", ROLE, "UPDATE_IN_PROGRESS");
            s.res(t0 + 21, "Role", ROLE, "UPDATE_COMPLETE");
            s.res(t0 + 22, "Fn", FN, "UPDATE_IN_PROGRESS");
            s.res_reason(t0 + 30, "Fn", FN, "UPDATE_FAILED", "bad handler");
            s.stack(
                t0 + 31,
                "UPDATE_ROLLBACK_IN_PROGRESS",
                "The following resource(s) failed to update: [Fn]. ",
            );
            s.res(t0 + 32, "Fn", FN, "UPDATE_IN_PROGRESS");
            s.res(t0 + 40, "Fn", FN, "UPDATE_COMPLETE");
            s.res(t0 + 41, "Role", ROLE, "UPDATE_IN_PROGRESS");
            s.res(t0 + 60, "Role", ROLE, "UPDATE_COMPLETE");
            s.stack(t0 + 62, "UPDATE_ROLLBACK_COMPLETE", "");
        } else {
            update(&mut s, t0, &["Role", "Fn"], 1.0);
        }
    }
    let h = records_from_history(&s.cli_order(), "h-");
    let cal = Calibration::of(&h, "app", Operation::Update, false);
    assert!(
        cal.runs >= 3,
        "the newer half of the updates replayed: {cal:?}"
    );

    let mut cur = Stack::new("app");
    cur.t0 += TimeDelta::days(400);
    cur.stack(0, "UPDATE_IN_PROGRESS", "User Initiated");
    cur.res(1, "Role", ROLE, "UPDATE_IN_PROGRESS");
    cur.res(21, "Role", ROLE, "UPDATE_COMPLETE");
    cur.res(22, "Fn", FN, "UPDATE_IN_PROGRESS");
    cur.res_reason(30, "Fn", FN, "UPDATE_FAILED", "bad handler");
    cur.stack(
        31,
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "The following resource(s) failed to update: [Fn]. ",
    );
    cur.res(32, "Fn", FN, "UPDATE_IN_PROGRESS");
    cur.res(40, "Fn", FN, "UPDATE_COMPLETE");
    let now = cur.t0 + TimeDelta::seconds(42);
    let e = est(&h, &cur, now, Some(change_set(&["Role", "Fn"], &[])));
    assert_eq!(e.phase, Phase::RollingBack);
    assert!(
        e.calibration.is_none(),
        "a rollback is other work than the replayed runs"
    );
    assert_eq!(e.progress, Progress { done: 1, total: 2 });
    // Role is updated back next (≈ 20 s, as in the past rollbacks), then the wrap-up.
    assert!((15..=60).contains(&e.remaining_seconds), "{e:?}");
    assert_eq!(
        e.confidence,
        Confidence::Medium,
        "undo times from this stack's own rollbacks"
    );
}

#[test]
fn calibration_widens_a_range_that_did_not_hold_on_this_stack() {
    // Every third update, the function takes three times as long (it waits on something
    // outside the stack): the per-resource model sees its usual 15 s, fits a narrow spread to
    // it and calls the rest outliers, so its range misses one run in three. Replaying the
    // stack's history shows that, and widens the high end.
    let mut s = Stack::new("app");
    let mut t0 = 0;
    for i in 0..24i64 {
        let fn_secs = if i % 3 == 2 { 45 } else { 15 };
        s.stack(t0, "UPDATE_IN_PROGRESS", "User Initiated");
        s.res(t0 + 1, "Role", ROLE, "UPDATE_IN_PROGRESS");
        s.res(t0 + 21, "Role", ROLE, "UPDATE_COMPLETE");
        s.res(t0 + 22, "Fn", FN, "UPDATE_IN_PROGRESS");
        s.res(t0 + 22 + fn_secs, "Fn", FN, "UPDATE_COMPLETE");
        s.stack(t0 + 25 + fn_secs, "UPDATE_COMPLETE", "");
        t0 += 86_400;
    }
    let h = records_from_history(&s.cli_order(), "h-");
    let cal = Calibration::of(&h, "app", Operation::Update, false);
    assert!(cal.runs >= 10 && cal.points >= 40, "{cal:?}");
    let (cur, now, _) = running(&["Role", "Fn"], 0);
    let raw = estimate_events(&h, &cur.cli_order(), now, &Options::default()).unwrap();
    let calibrated = est(&h, &cur, now, None);
    let applied = calibrated.calibration.clone().expect("calibrated");
    assert!(applied.high_scale > 1.2, "{applied:?}");
    // A slow run (70 s) is outside the raw range and inside the calibrated one.
    assert!(raw.remaining_high_seconds < 70, "{raw:?}");
    assert!(calibrated.remaining_high_seconds >= 70, "{calibrated:?}");
    assert!(
        calibrated.basis.contains("calibrated on"),
        "{}",
        calibrated.basis
    );
    // The same inputs, the same calibration.
    assert_eq!(cal, Calibration::of(&h, "app", Operation::Update, false));
}
