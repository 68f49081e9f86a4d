//! The lock through the real binary (`deploy-coordinator lock …`) against moto (serialised)
//! and dynalite: mutual exclusion under contention, FIFO, reentry, crash takeover after one
//! lease, dead-run takeover through a fake GitHub API, clock skew, signals, owner-checked
//! release, force-unlock, and registry errors classified for the main step's fallback.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cli::{cli, json_of, lock_status, registry_on, run, text, wait_for_status};
use support::dynamo::{DynamoServer, Emulator, endpoint_env, free_port};
use tokio::process::Child;

const TABLE: &str = "reg";

async fn start(emulator: Emulator) -> (DynamoServer, Vec<(String, String)>) {
    registry_on(emulator, TABLE).await
}

async fn status(env: &[(String, String)], key: &str) -> Value {
    lock_status(env, TABLE, key).await
}

async fn wait_status(
    env: &[(String, String)],
    key: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_for_status(env, TABLE, key, what, Duration::from_secs(10), pred).await
}

fn held_by(s: &Value) -> Option<&str> {
    s["holder"]["owner"].as_str()
}

fn queue_len(s: &Value) -> usize {
    s["queue"].as_array().map_or(0, Vec::len)
}

/// Checks a file of `start <fence>` / `end <fence>` lines written by critical sections: every
/// start is followed by its own end before any other start (the file order is the real order
/// of the appends), and fences strictly increase. Returns the number of critical sections.
fn check_disjoint(path: &Path) -> usize {
    let content = std::fs::read_to_string(path).unwrap();
    let mut open: Option<u64> = None;
    let mut last_fence = 0;
    let mut sections = 0;
    for (n, line) in content.lines().enumerate() {
        let (kind, fence) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("line {n}: {line:?}"));
        let fence: u64 = fence.trim().parse().unwrap();
        match (kind, open) {
            ("start", None) => {
                assert!(
                    fence > last_fence,
                    "line {n}: fence {fence} after {last_fence}: not increasing"
                );
                open = Some(fence);
            }
            ("start", Some(f)) => {
                panic!("line {n}: fence {fence} started while fence {f} was inside: OVERLAP")
            }
            ("end", Some(f)) if f == fence => {
                open = None;
                last_fence = fence;
                sections += 1;
            }
            _ => panic!("line {n}: unexpected {line:?} (inside {open:?})"),
        }
    }
    assert_eq!(open, None, "a critical section never ended");
    sections
}

const SECTION: &str = r#"echo "start $DEPLOY_COORDINATOR_FENCE" >> "$MARKS"; sleep 0.02; echo "end $DEPLOY_COORDINATOR_FENCE" >> "$MARKS""#;

async fn contention(emulator: Emulator) {
    let (_server, env) = start(emulator).await;
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("marks");
    let (processes, rounds) = (20, 3);
    let mut tasks = Vec::new();
    for p in 0..processes {
        let mut env = env.clone();
        env.push(("MARKS".into(), marks.to_string_lossy().into_owned()));
        tasks.push(tokio::spawn(async move {
            for r in 0..rounds {
                let owner = format!("p{p}-r{r}");
                let o = run(
                    &env,
                    &[
                        "lock",
                        "run",
                        "--table",
                        TABLE,
                        "--key",
                        "contended",
                        "--owner",
                        &owner,
                        "--lease",
                        "3s",
                        "--wait",
                        "180s",
                        "--queue-poll",
                        "300ms",
                        "--",
                        "sh",
                        "-c",
                        SECTION,
                    ],
                )
                .await;
                assert!(o.status.success(), "{owner}: {}", text(&o));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(check_disjoint(&marks), processes * rounds);
    let s = status(&env, "contended").await;
    assert_eq!(s["state"], "free", "{s}");
    assert_eq!(queue_len(&s), 0, "tickets left behind: {s}");
    assert_eq!(s["fence"].as_u64(), Some((processes * rounds) as u64));
}

async fn fifo(emulator: Emulator) {
    queue_order(emulator, None).await
}

/// The fourth waiter queues with `--priority high`: it goes first, the others in FIFO order.
async fn fifo_with_a_hotfix(emulator: Emulator) {
    queue_order(emulator, Some(3)).await
}

/// Five waiters queued one after the other behind a holder (waiter `high` with `--priority
/// high`) get the lock in queue order once it is released.
async fn queue_order(emulator: Emulator, high: Option<usize>) {
    let (_server, env) = start(emulator).await;
    let dir = tempfile::tempdir().unwrap();
    let order = dir.path().join("order");
    let o = run(
        &env,
        &[
            "lock", "acquire", "--table", TABLE, "--key", "k", "--owner", "first", "--lease", "1h",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let mut children = Vec::new();
    for i in 0..5 {
        let mut env = env.clone();
        env.push(("ORDER".into(), order.to_string_lossy().into_owned()));
        let owner = format!("w{i}");
        let priority = if high == Some(i) { "high" } else { "normal" };
        let child = cli(
            &env,
            &[
                "lock",
                "run",
                "--table",
                TABLE,
                "--key",
                "k",
                "--owner",
                &owner,
                "--wait",
                "60s",
                "--queue-poll",
                "250ms",
                "--priority",
                priority,
                "--",
                "sh",
                "-c",
                r#"echo "$DEPLOY_COORDINATOR_OWNER" >> "$ORDER""#,
            ],
        )
        .spawn()
        .unwrap();
        children.push(child);
        // Each waiter is queued before the next one starts: enqueue order is well defined.
        wait_status(&env, "k", "waiter queued", |s| queue_len(s) == i + 1).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = status(&env, "k").await;
    let positions: Vec<_> = s["queue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["owner"].as_str().unwrap().to_string())
        .collect();
    let mut expected: Vec<String> = (0..5).map(|i| format!("w{i}")).collect();
    if let Some(h) = high {
        let hotfix = expected.remove(h);
        expected.insert(0, hotfix);
    }
    assert_eq!(positions, expected, "{s}");
    let o = run(
        &env,
        &[
            "lock", "release", "--table", TABLE, "--key", "k", "--owner", "first",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    for c in children {
        let o = c.wait_with_output().await.unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    assert_eq!(
        std::fs::read_to_string(&order).unwrap(),
        expected
            .iter()
            .map(|o| format!("{o}\n"))
            .collect::<String>()
    );
}

async fn reentry_release_and_force_unlock(emulator: Emulator) {
    let (_server, env) = start(emulator).await;
    let acquire = |owner: &'static str| {
        let env = env.clone();
        async move {
            run(
                &env,
                &[
                    "lock", "acquire", "--table", TABLE, "--key", "k", "--owner", owner, "--json",
                ],
            )
            .await
        }
    };
    let first = acquire("a").await;
    assert!(first.status.success(), "{}", text(&first));
    let first = json_of(&first);
    assert_eq!(
        (first["fence"].as_u64(), first["reentrant"].as_bool()),
        (Some(1), Some(false))
    );
    let again = json_of(&acquire("a").await);
    assert_eq!(
        (again["fence"].as_u64(), again["reentrant"].as_bool()),
        (Some(1), Some(true)),
        "{again}"
    );

    let other = acquire("b").await;
    assert_eq!(other.status.code(), Some(75), "{}", text(&other));
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("owner a"),
        "{}",
        text(&other)
    );

    let release = |owner: &'static str| {
        let env = env.clone();
        async move {
            run(
                &env,
                &[
                    "lock", "release", "--table", TABLE, "--key", "k", "--owner", owner,
                ],
            )
            .await
        }
    };
    let refused = release("b").await;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("owner a"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        held_by(&status(&env, "k").await),
        Some("a"),
        "a refused release must not free the lock"
    );
    let ok = release("a").await;
    assert!(ok.status.success(), "{}", text(&ok));
    let twice = release("a").await;
    assert!(twice.status.success(), "{}", text(&twice));
    assert!(
        String::from_utf8_lossy(&twice.stdout).contains("nothing to release"),
        "{}",
        text(&twice)
    );

    let b = json_of(&acquire("b").await);
    assert_eq!(b["fence"].as_u64(), Some(2));
    let mut as_oncall = env.clone();
    as_oncall.push(("USER".into(), "oncall-alice".into()));
    let forced = run(
        &as_oncall,
        &[
            "lock",
            "force-unlock",
            "--table",
            TABLE,
            "--key",
            "k",
            "--reason",
            "INC-7 stuck",
            "--json",
        ],
    )
    .await;
    assert!(forced.status.success(), "{}", text(&forced));
    assert_eq!(json_of(&forced)["removed"]["owner"], "b");
    let s = status(&env, "k").await;
    assert_eq!(s["state"], "free");
    assert_eq!(s["last"]["force_reason"], "INC-7 stuck", "{s}");
    assert_eq!(s["last"]["released_by"], "oncall-alice", "{s}");
    assert_eq!(s["audit"][0]["what"], "force-unlock", "{s}");
    assert_eq!(s["audit"][0]["previous_owner"], "b", "{s}");
    let human = run(&env, &["lock", "status", "--table", TABLE, "--key", "k"]).await;
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("force-unlocked"),
        "{}",
        text(&human)
    );
    // Fences never go back, also across force-unlock.
    assert_eq!(json_of(&acquire("c").await)["fence"].as_u64(), Some(3));
}

async fn crash_takeover_after_one_lease(emulator: Emulator) {
    let (_server, env) = start(emulator).await;
    let lease = Duration::from_secs(2);
    // The protected command ends by itself once its parent (the holder) is gone, so killing
    // the holder leaves no orphan behind.
    let holder = cli(
        &env,
        &[
            "lock",
            "run",
            "--table",
            TABLE,
            "--key",
            "k",
            "--owner",
            "doomed",
            "--lease",
            "2s",
            "--",
            "sh",
            "-c",
            "while kill -0 $PPID 2>/dev/null; do sleep 0.1; done",
        ],
    )
    .spawn()
    .unwrap();
    wait_status(&env, "k", "holder", |s| held_by(s) == Some("doomed")).await;
    let waiter = cli(
        &env,
        &[
            "lock",
            "acquire",
            "--table",
            TABLE,
            "--key",
            "k",
            "--owner",
            "heir",
            "--wait",
            "30s",
            "--queue-poll",
            "250ms",
            "--json",
        ],
    )
    .spawn()
    .unwrap();
    // Alive and heartbeating for 1.5 leases: no takeover.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert_eq!(
        held_by(&status(&env, "k").await),
        Some("doomed"),
        "taken over while the holder was alive"
    );
    let killed_at = chrono::Utc::now();
    signal(&holder, "KILL");
    let o = waiter.wait_with_output().await.unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let got = json_of(&o);
    assert_eq!(got["took_over"]["owner"], "doomed", "{got}");
    // Same machine, same clock here: the takeover came at least one lease after the holder's
    // last sign of life, and not much later than one lease after the kill.
    let ts = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let acquired = ts(&got["acquired_at"]);
    let last_beat = ts(&got["took_over"]["heartbeat_at"]);
    let after_beat = (acquired - last_beat).to_std().unwrap();
    let after_kill = (acquired - killed_at).to_std().unwrap();
    eprintln!(
        "{}: takeover {after_kill:?} after SIGKILL, {after_beat:?} after the last heartbeat",
        emulator.name()
    );
    assert!(
        after_beat >= lease,
        "taken over {after_beat:?} after the last heartbeat, lease {lease:?}"
    );
    assert!(
        after_kill < lease + Duration::from_millis(1_500),
        "takeover too slow: {after_kill:?}"
    );
    let s = status(&env, "k").await;
    assert_eq!(s["audit"][0]["what"], "takeover", "{s}");
}

async fn dead_run(emulator: Emulator, github_status: u16, body: Value, expect_takeover: bool) {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let (_server, env) = start(emulator).await;
    let github = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/api/actions/runs/7/attempts/1"))
        .respond_with(ResponseTemplate::new(github_status).set_body_json(body))
        .mount(&github)
        .await;
    let mut holder_env = env.clone();
    for (k, v) in [
        ("GITHUB_REPOSITORY", "acme/api"),
        ("GITHUB_RUN_ID", "7"),
        ("GITHUB_RUN_ATTEMPT", "1"),
    ] {
        holder_env.push((k.into(), v.into()));
    }
    let o = run(
        &holder_env,
        &[
            "lock", "acquire", "--table", TABLE, "--key", "k", "--owner", "run7", "--lease", "1h",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let mut waiter_env = env.clone();
    waiter_env.push(("GITHUB_TOKEN".into(), "ghs_test".into()));
    waiter_env.push(("GITHUB_API_URL".into(), github.uri()));
    let t0 = Instant::now();
    let o = run(
        &waiter_env,
        &[
            "lock",
            "acquire",
            "--table",
            TABLE,
            "--key",
            "k",
            "--owner",
            "next",
            "--wait",
            "4s",
            "--queue-poll",
            "250ms",
            "--json",
        ],
    )
    .await;
    let asked = github.received_requests().await.unwrap_or_default().len();
    if expect_takeover {
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(json_of(&o)["took_over"]["owner"], "run7");
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "took {:?}",
            t0.elapsed()
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("GitHub run is completed"),
            "{}",
            text(&o)
        );
    } else {
        assert_eq!(o.status.code(), Some(75), "{}", text(&o));
        assert_eq!(held_by(&status(&env, "k").await), Some("run7"));
    }
    // Asked, but at most once per 30 s: the API budget is 1,000 requests an hour.
    assert_eq!(asked, 1, "GitHub asked {asked} times");
}

async fn clock_skew(emulator: Emulator, holder_skew: &str, waiter_skew: &str) {
    let (_server, env) = start(emulator).await;
    let mut holder_env = env.clone();
    holder_env.push(("DEPLOY_COORDINATOR_CLOCK_SKEW".into(), holder_skew.into()));
    let mut waiter_env = env.clone();
    waiter_env.push(("DEPLOY_COORDINATOR_CLOCK_SKEW".into(), waiter_skew.into()));
    let holder = cli(
        &holder_env,
        &[
            "lock", "run", "--table", TABLE, "--key", "k", "--owner", "h", "--lease", "1s", "--",
            "sleep", "4",
        ],
    )
    .spawn()
    .unwrap();
    wait_status(&env, "k", "holder", |s| held_by(s) == Some("h")).await;
    let o = run(
        &waiter_env,
        &[
            "lock",
            "acquire",
            "--table",
            TABLE,
            "--key",
            "k",
            "--owner",
            "w",
            "--wait",
            "20s",
            "--queue-poll",
            "250ms",
            "--json",
        ],
    )
    .await;
    let holder_done = holder.wait_with_output().await.unwrap();
    assert!(
        holder_done.status.success(),
        "holder lost its lock: {}",
        text(&holder_done)
    );
    assert!(o.status.success(), "{}", text(&o));
    let got = json_of(&o);
    assert!(
        got["took_over"].is_null(),
        "early takeover with skew {holder_skew}/{waiter_skew}: {got}"
    );
    assert_eq!(got["fence"].as_u64(), Some(2));
}

async fn sigterm_while_queued_and_while_holding(emulator: Emulator) {
    let (_server, env) = start(emulator).await;
    let o = run(
        &env,
        &[
            "lock", "acquire", "--table", TABLE, "--key", "q", "--owner", "holder",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let waiter = cli(
        &env,
        &[
            "lock", "acquire", "--table", TABLE, "--key", "q", "--owner", "w", "--wait", "10m",
        ],
    )
    .spawn()
    .unwrap();
    wait_status(&env, "q", "ticket", |s| queue_len(s) == 1).await;
    let t0 = Instant::now();
    signal(&waiter, "TERM");
    let o = waiter.wait_with_output().await.unwrap();
    let took = t0.elapsed();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    assert!(took < Duration::from_millis(7_500), "exit took {took:?}");
    eprintln!(
        "{}: SIGTERM while queued: exit after {took:?}",
        emulator.name()
    );
    assert_eq!(queue_len(&status(&env, "q").await), 0, "ticket left behind");

    let runner = cli(
        &env,
        &[
            "lock", "run", "--table", TABLE, "--key", "h", "--owner", "r", "--lease", "3s", "--",
            "sleep", "60",
        ],
    )
    .spawn()
    .unwrap();
    wait_status(&env, "h", "holder", |s| held_by(s) == Some("r")).await;
    let t0 = Instant::now();
    signal(&runner, "TERM");
    let o = runner.wait_with_output().await.unwrap();
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(7_500), "exit took {took:?}");
    eprintln!(
        "{}: SIGTERM while holding: exit after {took:?}",
        emulator.name()
    );
    assert_eq!(
        o.status.code(),
        Some(128 + 15),
        "the command's fate: {}",
        text(&o)
    );
    assert_eq!(status(&env, "h").await["state"], "free", "lock left behind");
}

/// Sends a signal to one process: a positive pid, never a group (`kill` can read a negative
/// number as "every process").
/// A lost lock is an event with consequences in `lock run` too: the command no longer runs
/// under the lock, so it is stopped (SIGTERM, as on cancellation) and the run fails, instead
/// of running on beside the next holder and failing only afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_run_stops_the_command_when_the_lock_is_lost() {
    let (_server, env) = start(Emulator::Moto).await;
    let runner = cli(
        &env,
        &[
            "lock", "run", "--table", TABLE, "--key", "l", "--owner", "r", "--lease", "3s", "--",
            "sleep", "60",
        ],
    )
    .spawn()
    .unwrap();
    wait_status(&env, "l", "holder", |s| held_by(s) == Some("r")).await;
    let forced = run(
        &env,
        &[
            "lock",
            "force-unlock",
            "--table",
            TABLE,
            "--key",
            "l",
            "--reason",
            "test",
        ],
    )
    .await;
    assert!(forced.status.success(), "{}", text(&forced));
    let t0 = Instant::now();
    let o = tokio::time::timeout(Duration::from_secs(15), runner.wait_with_output())
        .await
        .expect("the command ran on after the lock was lost")
        .unwrap();
    // The next renew (a third of the lease) is refused, then SIGTERM.
    assert!(
        t0.elapsed() < Duration::from_secs(6),
        "stopped only after {:?}",
        t0.elapsed()
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no longer ours"),
        "{}",
        text(&o)
    );
    assert_eq!(status(&env, "l").await["state"], "free", "{}", text(&o));
}

fn signal(child: &Child, sig: &str) {
    let pid = child.id().expect("child still running");
    assert!(pid > 1);
    let sent = std::process::Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

async fn registry_errors_are_classified(emulator: Emulator) {
    let server = DynamoServer::start(emulator);
    let env = server.env();
    // No table: a configuration error that says what to do.
    let o = run(
        &env,
        &["lock", "acquire", "--table", "missing", "--key", "k"],
    )
    .await;
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("registry create --table missing"),
        "{}",
        text(&o)
    );
    // Nothing listening: unavailable (the main step falls back).
    let down = endpoint_env(&format!("http://127.0.0.1:{}", free_port()));
    let t0 = Instant::now();
    let o = run(&down, &["lock", "acquire", "--table", TABLE, "--key", "k"]).await;
    assert_eq!(o.status.code(), Some(69), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unavailable"),
        "{}",
        text(&o)
    );
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
}

on_all_backends!(contention);
on_all_backends!(fifo);
on_all_backends!(fifo_with_a_hotfix);
on_all_backends!(reentry_release_and_force_unlock);
on_all_backends!(crash_takeover_after_one_lease);
on_all_backends!(sigterm_while_queued_and_while_holding);
on_all_backends!(registry_errors_are_classified);

async fn dead_run_completed(e: Emulator) {
    dead_run(
        e,
        200,
        serde_json::json!({"id": 7, "status": "completed", "conclusion": "cancelled"}),
        true,
    )
    .await
}
async fn dead_run_api_500(e: Emulator) {
    dead_run(
        e,
        500,
        serde_json::json!({"message": "Server Error"}),
        false,
    )
    .await
}
async fn dead_run_api_404(e: Emulator) {
    dead_run(e, 404, serde_json::json!({"message": "Not Found"}), false).await
}
on_all_backends!(dead_run_completed);
on_all_backends!(dead_run_api_500);
on_all_backends!(dead_run_api_404);

async fn skew_holder_behind(e: Emulator) {
    clock_skew(e, "-10m", "0s").await
}
async fn skew_holder_ahead(e: Emulator) {
    clock_skew(e, "+10m", "0s").await
}
async fn skew_waiter_ahead(e: Emulator) {
    clock_skew(e, "0s", "+10m").await
}
on_all_backends!(skew_holder_behind);
on_all_backends!(skew_holder_ahead);
on_all_backends!(skew_waiter_ahead);

/// A waiter killed in the queue (SIGKILL: no clean-up) does not block the queue: its ticket
/// goes stale after a ticket lease (12 x --queue-poll) on the next waiter's clock, is removed,
/// and the next waiter gets the lock.
async fn dead_waiter_is_skipped(emulator: Emulator) {
    let (_server, env) = start(emulator).await;
    let o = run(
        &env,
        &[
            "lock", "acquire", "--table", TABLE, "--key", "k", "--owner", "holder",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let waiter = |owner: &'static str| {
        cli(
            &env,
            &[
                "lock",
                "run",
                "--table",
                TABLE,
                "--key",
                "k",
                "--owner",
                owner,
                "--wait",
                "60s",
                "--queue-poll",
                "250ms",
                "--",
                "true",
            ],
        )
        .spawn()
        .unwrap()
    };
    let doomed = waiter("doomed");
    wait_status(&env, "k", "first waiter", |s| queue_len(s) == 1).await;
    signal(&doomed, "KILL");
    let t0 = Instant::now();
    let next = waiter("next");
    wait_status(&env, "k", "second waiter", |s| queue_len(s) == 2).await;
    let o = run(
        &env,
        &[
            "lock", "release", "--table", TABLE, "--key", "k", "--owner", "holder",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let o = next.wait_with_output().await.unwrap();
    let took = t0.elapsed();
    assert!(o.status.success(), "{}", text(&o));
    let ticket_lease = Duration::from_millis(250 * 12);
    assert!(
        took >= ticket_lease,
        "skipped the dead ticket after {took:?}, before its lease"
    );
    assert!(
        took < ticket_lease + Duration::from_secs(4),
        "took {took:?}"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("skipping the queue ticket"),
        "{}",
        text(&o)
    );
    let s = status(&env, "k").await;
    assert_eq!(queue_len(&s), 0, "{s}");
    assert_eq!(s["state"], "free", "{s}");
}
on_all_backends!(dead_waiter_is_skipped);
