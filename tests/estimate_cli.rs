//! `estimate` through the real binary: the AWS CLI's describe-stack-events JSON and an exported
//! history in, the documented JSON out; malformed files give the file, the position and what
//! was expected.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deploy-coordinator"));
    c.env_remove("GITHUB_ACTIONS");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run the binary")
}

fn t0() -> DateTime<Utc> {
    "2026-01-14T12:00:00Z".parse().unwrap()
}

/// The AWS CLI's timestamp format.
fn cli_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// One event as `aws cloudformation describe-stack-events` prints it.
fn event(
    n: usize,
    at: i64,
    logical: &str,
    rtype: &str,
    status: &str,
    reason: Option<&str>,
) -> Value {
    let stack_id = "arn:aws:cloudformation:us-east-1:123456789012:stack/app/0f1e";
    let mut e = json!({
        "StackId": stack_id,
        "EventId": format!("{logical}-{status}-{n}"),
        "StackName": "app",
        "LogicalResourceId": logical,
        "PhysicalResourceId": if logical == "app" { stack_id.to_string() } else { format!("phys-{logical}") },
        "ResourceType": rtype,
        "Timestamp": cli_time(t0() + TimeDelta::seconds(at)),
        "ResourceStatus": status,
    });
    if let Some(r) = reason {
        e["ResourceStatusReason"] = json!(r);
    }
    e
}

/// A running update 200 s in: Role done (20 s), Db (RDS) running since 22 s.
fn events_file(dir: &Path) -> PathBuf {
    let mut events = vec![
        event(
            0,
            0,
            "app",
            "AWS::CloudFormation::Stack",
            "UPDATE_IN_PROGRESS",
            Some("User Initiated"),
        ),
        event(1, 1, "Role", "AWS::IAM::Role", "UPDATE_IN_PROGRESS", None),
        event(2, 21, "Role", "AWS::IAM::Role", "UPDATE_COMPLETE", None),
        event(
            3,
            22,
            "Db",
            "AWS::RDS::DBInstance",
            "UPDATE_IN_PROGRESS",
            None,
        ),
    ];
    events.reverse(); // newest first, as the CLI prints them
    let path = dir.join("e.json");
    let text = serde_json::to_string_pretty(&json!({ "StackEvents": events })).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// Five past updates: Role 20 s, then Db 480–520 s, then 10 s of wrap-up.
fn history_file(dir: &Path) -> PathBuf {
    let records: Vec<Value> = (0..5)
        .map(|i| {
            let start = t0() - TimeDelta::days(10 - i);
            let at = |s: i64| (start + TimeDelta::seconds(s)).to_rfc3339();
            let db = 480 + 10 * i;
            json!({
                "stack": "app", "correlation_id": format!("20260104-00000{i}-abc1234"),
                "operation": "UPDATE", "outcome": "succeeded",
                "started_at": at(0), "finished_at": at(22 + db + 10),
                "resources": [
                    {"logical_id": "Role", "type": "AWS::IAM::Role", "action": "UPDATE",
                     "started_at": at(1), "finished_at": at(21), "status": "UPDATE_COMPLETE"},
                    {"logical_id": "Db", "type": "AWS::RDS::DBInstance", "action": "UPDATE",
                     "started_at": at(22), "finished_at": at(22 + db), "status": "UPDATE_COMPLETE"}
                ]
            })
        })
        .collect();
    let path = dir.join("h.json");
    std::fs::write(&path, serde_json::to_string_pretty(&records).unwrap()).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn prints_the_documented_json() {
    let dir = tempfile::tempdir().unwrap();
    let (e, h) = (events_file(dir.path()), history_file(dir.path()));
    let now = t0() + TimeDelta::seconds(200);
    let v = json_of(&run(&[
        "estimate",
        "--history",
        s(&h),
        "--events",
        s(&e),
        "--now",
        &now.to_rfc3339(),
        "--json",
    ]));
    assert_eq!(v["elapsed_seconds"], 200);
    let remaining = v["remaining_seconds"].as_u64().unwrap();
    // The usual run ends at 22 + ~500 + 10 ≈ 532 s: about 330 s left.
    assert!((280..=380).contains(&remaining), "{v}");
    let low = v["remaining_low_seconds"].as_u64().unwrap();
    let high = v["remaining_high_seconds"].as_u64().unwrap();
    assert!(low <= remaining && remaining <= high && low < high, "{v}");
    let completion: DateTime<Utc> = v["estimated_completion"].as_str().unwrap().parse().unwrap();
    assert_eq!(completion, now + TimeDelta::seconds(remaining as i64));
    assert_eq!(v["progress"], json!({"done": 1, "total": 2}));
    assert_eq!(v["confidence"], "medium");
    assert_eq!(v["slower_than_usual"], false);
    assert_eq!(v["phase"], "running");
}

#[test]
fn the_text_output_is_one_readable_line_and_details() {
    let dir = tempfile::tempdir().unwrap();
    let (e, h) = (events_file(dir.path()), history_file(dir.path()));
    let now = t0() + TimeDelta::seconds(900); // far past the usual ~530 s
    let out = run(&[
        "estimate",
        "--history",
        s(&h),
        "--events",
        s(&e),
        "--now",
        &now.to_rfc3339(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("UPDATE running on app: about "), "{text}");
    assert!(text.contains("1/2 resources"), "{text}");
    assert!(text.contains("slower than usual"), "{text}");
    assert!(
        text.contains("slow: Db (AWS::RDS::DBInstance) has run 14m 38s"),
        "{text}"
    );
}

#[test]
fn without_history_it_still_estimates_with_low_confidence() {
    let dir = tempfile::tempdir().unwrap();
    let e = events_file(dir.path());
    let now = t0() + TimeDelta::seconds(200);
    let out = run(&[
        "estimate",
        "--events",
        s(&e),
        "--now",
        &now.to_rfc3339(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["confidence"], "low");
    assert!(v["remaining_seconds"].as_u64().unwrap() > 0);
}

fn assert_error(out: &Output, code: i32, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in {err}");
    }
    assert!(out.stdout.is_empty());
}

#[test]
fn malformed_history_names_the_file_the_position_and_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let e = events_file(dir.path());
    let h = history_file(dir.path());
    let text = std::fs::read_to_string(&h).unwrap();
    // Record 0 loses its outcome: serde reports where that object ends.
    let broken = text.replacen("\"outcome\": \"succeeded\",", "", 1);
    std::fs::write(&h, &broken).unwrap();
    let out = run(&["estimate", "--history", s(&h), "--events", s(&e)]);
    assert_error(
        &out,
        65,
        &[
            s(&h),
            "line ",
            "column ",
            "missing field `outcome`",
            "expected a JSON array of history records",
        ],
    );

    std::fs::write(&h, "[{\"stack\": \"app\",,}]").unwrap();
    let out = run(&["estimate", "--history", s(&h), "--events", s(&e)]);
    assert_error(
        &out,
        65,
        &[s(&h), "line 1, column 18", "key must be a string"],
    );

    // Valid JSON, invalid record: the record is named.
    let backwards = text.replacen(
        "\"finished_at\": \"2026-01-04T12:08:32+00:00\"",
        "\"finished_at\": \"2026-01-01T00:00:00+00:00\"",
        1,
    );
    assert_ne!(backwards, text, "fixture changed");
    std::fs::write(&h, backwards).unwrap();
    let out = run(&["estimate", "--history", s(&h), "--events", s(&e)]);
    assert_error(&out, 65, &["record 0", "before started_at"]);
}

#[test]
fn malformed_events_name_the_file_the_position_and_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let e = dir.path().join("e.json");
    std::fs::write(&e, "{\"StackEvents\": [\n  {\"EventId\": 3}\n]}").unwrap();
    let out = run(&["estimate", "--events", s(&e)]);
    assert_error(
        &out,
        65,
        &[
            s(&e),
            "line 2, column 15",
            "expected a string",
            "describe-stack-events",
        ],
    );

    // describe-stacks output instead of describe-stack-events.
    std::fs::write(&e, "{\"Stacks\": []}").unwrap();
    let out = run(&["estimate", "--events", s(&e)]);
    assert_error(
        &out,
        65,
        &[
            "missing field `StackEvents`",
            "expected the output of `aws cloudformation describe-stack-events",
        ],
    );

    // Well-formed, but no operation starts in it.
    std::fs::write(&e, "{\"StackEvents\": []}").unwrap();
    let out = run(&["estimate", "--events", s(&e)]);
    assert_error(&out, 65, &["no operation found", "User Initiated"]);
}

#[test]
fn unreadable_files_and_bad_arguments_have_their_own_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let out = run(&["estimate", "--events", s(&missing)]);
    assert_error(&out, 66, &["cannot read", s(&missing)]);

    let e = events_file(dir.path());
    let out = run(&["estimate", "--events", s(&e), "--now", "yesterday"]);
    assert_error(&out, 2, &["RFC 3339"]);

    let help = run(&["estimate", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("65") && text.contains("66") && text.contains("Exit codes"),
        "{text}"
    );
}

/// `describe-stack-events` of the whole stack: the five past updates of `history_file` and the
/// running one of `events_file`, newest first.
fn full_events_file(dir: &Path) -> PathBuf {
    let mut events = Vec::new();
    let mut n = 100;
    let mut push = |at: i64, logical: &str, rtype: &str, status: &str, reason: Option<&str>| {
        n += 1;
        events.push(event(n, at, logical, rtype, status, reason));
    };
    for i in 0..5i64 {
        let start = -(10 - i) * 86_400;
        let db = 480 + 10 * i;
        let stack = "AWS::CloudFormation::Stack";
        push(
            start,
            "app",
            stack,
            "UPDATE_IN_PROGRESS",
            Some("User Initiated"),
        );
        push(
            start + 1,
            "Role",
            "AWS::IAM::Role",
            "UPDATE_IN_PROGRESS",
            None,
        );
        push(
            start + 21,
            "Role",
            "AWS::IAM::Role",
            "UPDATE_COMPLETE",
            None,
        );
        push(
            start + 22,
            "Db",
            "AWS::RDS::DBInstance",
            "UPDATE_IN_PROGRESS",
            None,
        );
        push(
            start + 22 + db,
            "Db",
            "AWS::RDS::DBInstance",
            "UPDATE_COMPLETE",
            None,
        );
        push(start + 32 + db, "app", stack, "UPDATE_COMPLETE", None);
    }
    let running = std::fs::read_to_string(events_file(dir)).unwrap();
    let running: Value = serde_json::from_str(&running).unwrap();
    let mut all: Vec<Value> = running["StackEvents"].as_array().unwrap().clone();
    events.reverse();
    all.extend(events);
    let path = dir.join("full.json");
    std::fs::write(&path, json!({ "StackEvents": all }).to_string()).unwrap();
    path
}

/// `describe-change-set` output: Role and Db modified in place, `removed` removed.
fn change_set_file(dir: &Path, removed: &[(&str, &str)], with_stack: bool) -> PathBuf {
    let change = |action: &str, logical: &str, rtype: &str| {
        let mut rc = json!({"Action": action, "LogicalResourceId": logical,
            "PhysicalResourceId": format!("phys-{logical}"), "ResourceType": rtype,
            "Scope": ["Properties"], "Details": []});
        if action == "Modify" {
            rc["Replacement"] = json!("False");
        }
        json!({"Type": "Resource", "HookInvocationCount": 0, "ResourceChange": rc})
    };
    let mut changes = vec![
        change("Modify", "Role", "AWS::IAM::Role"),
        change("Modify", "Db", "AWS::RDS::DBInstance"),
    ];
    changes.extend(removed.iter().map(|(l, t)| change("Remove", l, t)));
    let mut out = json!({"ChangeSetName": "dc-1", "ChangeSetId": "arn:aws:cloudformation:us-east-1:123456789012:changeSet/dc-1/1",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/app/0f1e",
        "Status": "CREATE_COMPLETE", "ExecutionStatus": "AVAILABLE", "Changes": changes});
    if with_stack {
        out["StackName"] = json!("app");
    }
    let path = dir.join("cs.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    path
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn earlier_operations_in_the_events_are_history_too() {
    let dir = tempfile::tempdir().unwrap();
    let full = full_events_file(dir.path());
    let h = history_file(dir.path());
    let now = (t0() + TimeDelta::seconds(200)).to_rfc3339();
    let alone = json_of(&run(&[
        "estimate",
        "--events",
        s(&full),
        "--now",
        &now,
        "--json",
    ]));
    assert_eq!(alone["usual"]["runs"], 5, "{alone}");
    let remaining = alone["remaining_seconds"].as_u64().unwrap();
    assert!((280..=380).contains(&remaining), "{alone}");
    // The same runs in both files count once.
    let both = json_of(&run(&[
        "estimate",
        "--history",
        s(&h),
        "--events",
        s(&full),
        "--now",
        &now,
        "--json",
    ]));
    assert_eq!(both["usual"]["runs"], 5, "{both}");
}

#[test]
fn a_change_set_says_what_runs_and_plans_a_deployment_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let (e, h) = (events_file(dir.path()), history_file(dir.path()));
    // The change set also removes a CloudFront distribution: its delete (minutes) runs in the
    // cleanup after Db.
    let cs = change_set_file(
        dir.path(),
        &[("Cdn", "AWS::CloudFront::Distribution")],
        true,
    );
    let now = t0() + TimeDelta::seconds(200);
    let plain = json_of(&run(&[
        "estimate",
        "--history",
        s(&h),
        "--events",
        s(&e),
        "--now",
        &now.to_rfc3339(),
        "--json",
    ]));
    let with = json_of(&run(&[
        "estimate",
        "--history",
        s(&h),
        "--events",
        s(&e),
        "--change-set",
        s(&cs),
        "--now",
        &now.to_rfc3339(),
        "--json",
    ]));
    assert_eq!(with["progress"], json!({"done": 1, "total": 3}), "{with}");
    assert!(
        with["basis"]
            .as_str()
            .unwrap()
            .contains("change set: 2 to modify, 1 to remove"),
        "{with}"
    );
    let (p, w) = (
        plain["remaining_seconds"].as_u64().unwrap(),
        with["remaining_seconds"].as_u64().unwrap(),
    );
    assert!(
        w > p + 120,
        "the delete adds minutes: {p} without, {w} with"
    );

    // Before it starts: no events, the whole deployment from now.
    let cs = change_set_file(dir.path(), &[], true);
    let planned = run(&[
        "estimate",
        "--history",
        s(&h),
        "--change-set",
        s(&cs),
        "--now",
        &t0().to_rfc3339(),
    ]);
    assert!(
        planned.status.success(),
        "{}",
        String::from_utf8_lossy(&planned.stderr)
    );
    let text = String::from_utf8_lossy(&planned.stdout);
    assert!(text.starts_with("UPDATE planned on app: about "), "{text}");
    let v = json_of(&run(&[
        "estimate",
        "--history",
        s(&h),
        "--change-set",
        s(&cs),
        "--now",
        &t0().to_rfc3339(),
        "--json",
    ]));
    assert_eq!(v["elapsed_seconds"], 0);
    let whole = v["remaining_seconds"].as_u64().unwrap();
    assert!((450..=650).contains(&whole), "about 530 s: {v}");
}

#[test]
fn a_malformed_change_set_names_the_file_and_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let e = events_file(dir.path());
    let cs = dir.path().join("cs.json");
    // describe-stacks output instead.
    std::fs::write(&cs, "{\"Stacks\": []}").unwrap();
    let out = run(&["estimate", "--events", s(&e), "--change-set", s(&cs)]);
    assert_error(
        &out,
        65,
        &[
            s(&cs),
            "line 1, column",
            "missing field `Changes`",
            "expected the output of `aws cloudformation describe-change-set",
        ],
    );
    // A change set alone that does not say which stack, and no history to say it either.
    let cs = change_set_file(dir.path(), &[], false);
    let out = run(&["estimate", "--change-set", s(&cs)]);
    assert_error(&out, 65, &[s(&cs), "does not say which stack", "--history"]);
    // Neither events nor a change set.
    let out = run(&["estimate"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
