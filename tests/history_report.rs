//! `history report` through the real binary: records imported into a registry table (moto,
//! through the real SDK) or read from a `history export` file become one HTML file; and the
//! 3 stacks × 50 deployments sample opened in headless Chromium (tests/report/render.mjs):
//! no page error, no request, every chart holding one point per record it charts.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use deploy_coordinator::history::HistoryRecord;
use deploy_coordinator::history::page::sample::{SampleConfig, generate};
use support::dynamo::{DynamoServer, Emulator};

fn cli(env: &[(String, String)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deploy-coordinator"))
        .args(args)
        .envs(env.iter().cloned())
        .env_remove("GITHUB_ACTIONS")
        .output()
        .expect("run the binary")
}

/// `history report <source…> --out <out>`.
fn report(env: &[(String, String)], source: &[&str], out: &Path) -> Output {
    let mut args = vec!["history", "report"];
    args.extend_from_slice(source);
    args.extend(["--out", out.to_str().expect("utf-8 path")]);
    cli(env, &args)
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write_records(dir: &Path, records: &[HistoryRecord]) -> PathBuf {
    let path = dir.join("history.json");
    std::fs::write(&path, serde_json::to_string(records).expect("json")).expect("write");
    path
}

fn points(html: &str, series: &str) -> usize {
    html.matches(&format!("data-point=\"{series}\"")).count()
}

fn sections(html: &str) -> usize {
    html.matches("<section class=\"stack\"").count()
}

#[tokio::test]
async fn the_report_reads_every_stack_from_the_table_or_the_ones_asked() {
    let server = DynamoServer::start(Emulator::Moto);
    server.create_table("reg").await;
    let env = server.env();
    let dir = tempfile::tempdir().expect("tempdir");
    let records = generate(&SampleConfig {
        seed: 11,
        deployments: 40,
        adopted_after: 3,
    });
    let file = write_records(dir.path(), &records);
    let file = file.to_str().expect("utf-8 path");
    let imported = cli(&env, &["history", "import", "--table", "reg", file]);
    assert!(imported.status.success(), "{}", text(&imported));

    let all = dir.path().join("all.html");
    let out = report(&env, &["--table", "reg"], &all);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("120 record(s) of 3 stack(s)"),
        "{}",
        text(&out)
    );
    let html = std::fs::read_to_string(&all).expect("the report");
    assert_eq!(sections(&html), 3);
    assert_eq!(
        points(&html, "duration"),
        120,
        "one point per deployment, across Scan pages of 100"
    );
    let estimated = records
        .iter()
        .filter(|r| r.outcome.as_str() == "succeeded" && r.estimate.is_some())
        .count();
    assert_eq!(points(&html, "estimate"), estimated);
    assert_eq!(points(&html, "wait"), 111, "37 per stack recorded a wait");
    assert!(html.contains("table reg"));

    // The same records from the exported file give the same charts.
    let offline = dir.path().join("offline.html");
    let out = report(&[], &["--history", file], &offline);
    assert!(out.status.success(), "{}", text(&out));
    let from_file = std::fs::read_to_string(&offline).expect("the report");
    let charts =
        |h: &str| h[h.find("<table").unwrap_or(0)..h.rfind("<p class").unwrap_or(0)].to_string();
    assert_eq!(charts(&from_file), charts(&html), "table and file agree");

    // One stack, by name.
    let one = dir.path().join("one.html");
    let out = report(&env, &["--table", "reg", "--stack", "serverless-api"], &one);
    assert!(out.status.success(), "{}", text(&out));
    let html = std::fs::read_to_string(&one).expect("the report");
    assert_eq!(sections(&html), 1);
    assert!(html.contains("data-stack=\"serverless-api\""));
    assert_eq!(points(&html, "duration"), 40);
}

#[tokio::test]
async fn failures_have_their_exit_codes() {
    let server = DynamoServer::start(Emulator::Moto);
    let env = server.env();
    let dir = tempfile::tempdir().expect("tempdir");
    let out_file = dir.path().join("r.html");

    let missing_table = report(&env, &["--table", "nope"], &out_file);
    assert_eq!(
        missing_table.status.code(),
        Some(78),
        "{}",
        text(&missing_table)
    );
    assert!(!out_file.exists(), "nothing written on failure");

    let unreadable = report(&[], &["--history", "/nonexistent/h.json"], &out_file);
    assert_eq!(unreadable.status.code(), Some(66), "{}", text(&unreadable));

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "[{\"stack\": 1}]").expect("write");
    let malformed = report(&[], &["--history", bad.to_str().expect("utf-8")], &out_file);
    assert_eq!(malformed.status.code(), Some(65), "{}", text(&malformed));
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("line 1"));

    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "[]").expect("write");
    let unwritable = report(
        &[],
        &["--history", empty.to_str().expect("utf-8")],
        Path::new("/nonexistent/dir/r.html"),
    );
    assert_eq!(unwritable.status.code(), Some(73), "{}", text(&unwritable));

    let both = report(&[], &["--table", "t", "--history", "h.json"], &out_file);
    assert_eq!(both.status.code(), Some(2), "one source: {}", text(&both));
}

/// Runs a command, killed if it is still running after `limit` (the browser must never
/// outlive the test).
fn run_with_limit(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let id = child.id();
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    loop {
        if let Ok(out) = rx.recv_timeout(Duration::from_millis(200)) {
            return out.expect("wait");
        }
        if started.elapsed() > limit {
            // The child moved into the waiting thread: kill it by its pid.
            let _ = Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status();
            panic!("{cmd:?} still running after {limit:?}");
        }
    }
}

#[test]
fn the_sample_report_renders_in_headless_chromium_with_every_point() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run scripts/setup (it installs Debian's chromium)"
    );
    assert!(
        root.join("node_modules/playwright-core").exists(),
        "node_modules/playwright-core is missing: run scripts/setup (npm install)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let records = generate(&SampleConfig::default());
    assert_eq!(records.len(), 150, "3 stacks × 50");
    let file = write_records(dir.path(), &records);
    let html = dir.path().join("report.html");
    let png = dir.path().join("report.png");
    let out = report(&[], &["--history", file.to_str().expect("utf-8")], &html);
    assert!(out.status.success(), "{}", text(&out));

    let rendered = run_with_limit(
        Command::new("node")
            .arg(root.join("tests/report/render.mjs"))
            .args(["--html", html.to_str().expect("utf-8")])
            .args(["--records", file.to_str().expect("utf-8")])
            .args(["--png", png.to_str().expect("utf-8")])
            .env("CHROMIUM", &chromium),
        Duration::from_secs(120),
    );
    assert!(rendered.status.success(), "{}", text(&rendered));
    let verdict: serde_json::Value =
        serde_json::from_slice(&rendered.stdout).expect("one JSON line");
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["problems"], serde_json::json!([]));
    // Per stack: durations, resources, estimates, waits.
    assert_eq!(verdict["charts"], 12, "{verdict}");
    for stack in ["web-platform", "nightly-env", "serverless-api"] {
        assert_eq!(verdict["stacks"][stack]["duration"], 50, "{verdict}");
    }
    let png = std::fs::read(&png).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    // A full page of charts, not a blank one: well over a blank page's few kilobytes.
    assert!(png.len() > 100_000, "{} bytes", png.len());
}
