//! Every real event stream of tests/fixtures/real-events followed by the REAL binary in mode
//! monitor, as the GitHub runner starts it, while the simulator replays the recording with its
//! gaps compressed (simulator/README.md, "Replay"): the outputs a workflow's later steps read
//! (outcome, stack-status, failed-resource, failure-reason) and the resource timings stored in
//! history must say what a person reading the stream says (its manifest.json); then
//! `history collect` reads the whole recording back into records.
//!
//! `DC_TEST_BIN=path cargo test --test real_events_replay` runs another build against the same
//! streams (the build before the operation-chain fix waits out deploy-timeout on every failed
//! stream whose events carry OperationIds).

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::cfnsim::Simulator;
use support::dynamo::{DynamoServer, Emulator};
use support::real_events::{Expected, Stream, corpus};
use support::runner::{Runner, StepRun};

/// Streams played at once (each on its own simulator; one DynamoDB for all).
const WORKERS: usize = 4;

/// The operation of a stream the binary follows: its last failed one (the cases this issue
/// is about), else its last one.
fn pick(stream: &Stream) -> usize {
    let ops = &stream.operations;
    ops.iter()
        .rposition(|o| o.outcome.as_deref().is_some_and(|x| x != "succeeded"))
        .or_else(|| ops.iter().rposition(|o| o.interrupted()))
        .unwrap_or(ops.len() - 1)
}

/// What one run of the binary showed.
struct Played {
    file: String,
    run: StepRun,
    /// From the terminal event's reveal to the step's exit (None: no terminal event).
    notice: Option<Duration>,
    records: Value,
    /// What `history collect --print` made of the whole recording.
    collected: Value,
}

fn play(sim: &Simulator, dynamo: &DynamoServer, stream: &Stream, index: usize) -> Played {
    let op = &stream.operations[index];
    // Streams 16/17 and 18/19 are one stack name each: a table per stream keeps their locks
    // and history records apart.
    let table = format!("registry-{}", &stream.file[..2]);
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(dynamo.create_table(&table));
    }
    sim.admin_post("reset", None);
    let mut options = json!({
        "file": stream.path.display().to_string(),
        "duration": 4.0,
        "max_gap": 0.5,
        "start": "trigger",
    });
    let joins_running = match op
        .start_event_id
        .as_deref()
        .filter(|id| stream.text.contains(&format!("\"{id}\"")))
    {
        Some(id) => {
            options["event_id"] = json!(id);
            false
        }
        // The recording begins mid-operation: the monitor meets it running.
        None => {
            options["reveal_first"] = json!(1);
            true
        }
    };
    sim.admin_post("replay", Some(&options));
    let mut runner = Runner::new();
    for (k, v) in dynamo.env() {
        runner.env(&k, &v);
    }
    let started_at_run = format!("{}", 9000 + index);
    runner
        .env("AWS_ENDPOINT_URL_DYNAMODB", &dynamo.endpoint())
        .env("AWS_ENDPOINT_URL_CLOUDFORMATION", &sim.endpoint)
        .env("GITHUB_RUN_ID", &started_at_run)
        .input("stack-name", &op.stack_name)
        .input("mode", "monitor")
        .input("capabilities", "")
        .input("registry-table", &table)
        .input("start-timeout", "15s")
        // A recording that ends before its operation does: no end to wait for.
        .input(
            "deploy-timeout",
            if op.final_status.is_none() && !op.interrupted() {
                "10s"
            } else {
                "120s"
            },
        );
    let running = runner.spawn_main();
    // Let the step look first: it must see the stack settled (or running), then the
    // operation.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.requests(if joins_running {
        "DescribeStackEvents"
    } else {
        "DescribeStacks"
    }) < 1
    {
        assert!(
            Instant::now() < deadline,
            "{}: the step never looked",
            stream.file
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    sim.admin_post("replay/start", None);
    let run = running.wait();
    let exited = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let notice = sim.admin_get("stacks")["stacks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["terminal_events"].as_array().cloned().unwrap_or_default())
        .filter(|t| Some(t["status"].as_str().unwrap_or_default()) == op.final_status.as_deref())
        .filter_map(|t| t["real_time"].as_f64())
        .map(|t| Duration::from_secs_f64((exited - t).max(0.0)))
        .next();
    let export = std::process::Command::new(support::runner::binary())
        .args([
            "history",
            "export",
            "--table",
            &table,
            "--stack",
            &op.stack_name,
        ])
        .envs(dynamo.env())
        .output()
        .expect("history export");
    let records = serde_json::from_slice(&export.stdout).unwrap_or(Value::Null);
    // The whole recording, once played, read back by `history collect`.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.admin_get("replay")["done"] != json!(true) {
        assert!(
            Instant::now() < deadline,
            "{}: the replay never ended",
            stream.file
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let collect = std::process::Command::new(support::runner::binary())
        .args(["history", "collect", "--print", "--stack", &op.stack_name])
        .envs(dynamo.env())
        .env("AWS_ENDPOINT_URL_CLOUDFORMATION", &sim.endpoint)
        .output()
        .expect("history collect");
    let collected = serde_json::from_slice(&collect.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: history collect --print: {e}: {}",
            stream.file,
            String::from_utf8_lossy(&collect.stderr)
        )
    });
    Played {
        file: stream.file.clone(),
        run,
        notice,
        records,
        collected,
    }
}

/// The outcomes `history collect` must find: one record per operation that started and
/// ended in the recording, in the history's words (a failed create rolled back).
fn collectable(stream: &Stream) -> Vec<&'static str> {
    stream
        .operations
        .iter()
        .filter(|o| {
            o.start_event_id
                .as_deref()
                .is_some_and(|id| stream.text.contains(&format!("\"{id}\"")))
        })
        .filter_map(|o| {
            let status = o.final_status.as_deref()?;
            Some(match o.outcome.as_deref() {
                Some("succeeded") => "succeeded",
                _ if status.ends_with("_COMPLETE") => "rolled_back",
                _ => "failed",
            })
        })
        .collect()
}

/// What the binary's run says against what the stream's reader says; one line per mismatch.
fn compare(played: &Played, op: &Expected) -> Vec<String> {
    let run = &played.run;
    let mut problems = Vec::new();
    let mut check = |what: &str, ours: Option<&str>, theirs: Option<&str>| {
        if ours != theirs {
            problems.push(format!(
                "{}: {what}: ours {ours:?}, the reader's {theirs:?}",
                played.file
            ));
        }
    };
    let outcome = match (op.final_status.as_deref(), op.interrupted()) {
        (Some(_), _) => op.outcome.as_deref(),
        (None, true) => Some("failed"),
        (None, false) => Some("timed-out"),
    };
    check("outcome", run.output("outcome"), outcome);
    if op.final_status.is_some() {
        check(
            "stack-status",
            run.output("stack-status"),
            op.final_status.as_deref(),
        );
    }
    // A recording that ends before its operation does says "timed out" and nothing else.
    let cut_short = op.final_status.is_none() && !op.interrupted() && op.failure_reason.is_none();
    if op.cause_determinable() && !cut_short {
        check(
            "failed-resource",
            run.output("failed-resource"),
            op.failed_resource.as_deref(),
        );
        check(
            "failure-reason",
            run.output("failure-reason"),
            op.failure_reason.as_deref(),
        );
    }
    let success = outcome == Some("succeeded");
    if run.code() != Some(if success { 0 } else { 1 }) {
        problems.push(format!(
            "{}: exit code {:?} for outcome {outcome:?}",
            played.file,
            run.code()
        ));
    }
    // The only record of the stream's table is this operation's (an operation that did not
    // end has none).
    let record = played.records.as_array().and_then(|r| r.last());
    let durations = op
        .resource_durations
        .iter()
        .filter(|_| op.final_status.is_some() || op.interrupted());
    for (resource, seconds) in durations {
        let ours = record.and_then(|r| {
            r["resources"].as_array()?.iter().find_map(|x| {
                (x["logical_id"] == *resource).then(|| {
                    let t = |k: &str| {
                        chrono::DateTime::parse_from_rfc3339(x[k].as_str()?)
                            .ok()
                            .map(|d| d.timestamp_millis())
                    };
                    Some((t("finished_at")? - t("started_at")?) as f64 / 1000.0)
                })?
            })
        });
        if ours.is_none_or(|o| (o - seconds).abs() > 0.002) {
            problems.push(format!(
                "{}: {resource} took {ours:?} s in the history record, {seconds} s by the reader",
                played.file
            ));
        }
    }
    problems
}

#[test]
fn every_real_stream_followed_by_the_binary_in_mode_monitor() {
    let dynamo = DynamoServer::start(Emulator::Moto);
    let streams = corpus();
    let queue = Mutex::new((0..streams.len()).collect::<Vec<_>>());
    let results = Mutex::new(Vec::new());
    let began = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                let sim = Simulator::start(&json!({}), 1.0);
                loop {
                    let Some(i) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let stream = &streams[i];
                    let index = pick(stream);
                    let played = play(&sim, &dynamo, stream, index);
                    let mut problems = compare(&played, &stream.operations[index]);
                    let outcomes: Vec<&str> = played
                        .collected
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r["outcome"].as_str())
                        .collect();
                    if outcomes != collectable(stream) {
                        problems.push(format!(
                            "{}: history collect found {outcomes:?}, the reader {:?}",
                            stream.file,
                            collectable(stream)
                        ));
                    }
                    results.lock().unwrap().push((played, problems));
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let mut problems = Vec::new();
    let mut notices = Vec::new();
    for (played, p) in &results {
        if !p.is_empty() {
            problems.extend(p.iter().cloned());
            problems.push(format!("  log of {}:\n{}", played.file, played.run.log()));
        }
        if let Some(n) = played.notice {
            notices.push(n);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    notices.sort();
    let median = notices.get(notices.len() / 2).copied().unwrap_or_default();
    eprintln!(
        "{} streams in {:.0?}; notice after the terminal event: median {:.2?}, max {:.2?}",
        results.len(),
        began.elapsed(),
        median,
        notices.last().copied().unwrap_or_default()
    );
    assert_eq!(results.len(), streams.len());
    // Gaps are compressed (4 s per recording), the poll schedule is not: a second or two.
    assert!(median < Duration::from_secs(4), "median notice {median:?}");
}
