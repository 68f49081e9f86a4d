//! Deploy freezes (issue #8) against moto (serialised) and dynalite, through the library and
//! the real binary: waiters keep FIFO order across a freeze and go after `lock unfreeze`;
//! `--on-freeze fail` stops at once with the reason; a freeze survives both staleness rules
//! (a waiter's whole lease, a "completed" GitHub run); it ends at its declared time, never
//! before, or with `lock force-unlock`.

mod support;

use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deploy_coordinator::lock::liveness::BoxFuture;
use deploy_coordinator::lock::{
    self, AcquireError, AcquireOptions, Freeze, HolderInfo, LockEvent, LockState, RunLiveness,
    RunState, WallClock,
};
use deploy_coordinator::registry::Registry;
use serde_json::Value;
use support::cli::{lock_status, registry_on, text, wait_for_status};
use support::dynamo::{DynamoServer, Emulator};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

const TABLE: &str = "reg";

// ---- library -------------------------------------------------------------------------------

/// A GitHub that says every run is completed, counting the questions.
#[derive(Default)]
struct EveryRunCompleted(AtomicUsize);

impl RunLiveness for EveryRunCompleted {
    fn run_state<'a>(&'a self, _: &'a str, _: u64, _: u32) -> BoxFuture<'a, RunState> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { RunState::Completed })
    }
}

/// A holder that looks like a GitHub run, so the liveness check applies to it.
fn run_holder(owner: &str) -> HolderInfo {
    HolderInfo {
        owner: owner.into(),
        correlation_id: owner.into(),
        repository: Some("acme/api".into()),
        run_id: Some(42),
        run_attempt: Some(1),
        ..HolderInfo::default()
    }
}

fn opts(lease_ms: u64, wait_ms: u64) -> AcquireOptions {
    let mut o = AcquireOptions::new(
        Duration::from_millis(lease_ms),
        Duration::from_millis(wait_ms),
    );
    o.queue_poll = Duration::from_millis(300);
    // Ask GitHub at every poll: a freeze must hold even so.
    o.liveness_interval = Duration::ZERO;
    o
}

fn freeze_for(reason: &str, length: Duration) -> Freeze {
    Freeze::new(reason, "release-manager", WallClock::system().now(), length).unwrap()
}

/// Acquires `key` for a GitHub-run-like `owner` with (lease, wait) in milliseconds.
async fn take(
    reg: &Registry,
    key: &str,
    owner: &str,
    (lease_ms, wait_ms): (u64, u64),
    github: &dyn RunLiveness,
    on_event: &(dyn Fn(LockEvent) + Send + Sync),
) -> Result<lock::Acquired, AcquireError> {
    let never = CancellationToken::new();
    lock::acquire(
        reg,
        key,
        &run_holder(owner),
        &opts(lease_ms, wait_ms),
        github,
        on_event,
        &never,
    )
    .await
}

async fn setup(emulator: Emulator) -> (DynamoServer, Registry) {
    let server = DynamoServer::start(emulator);
    server.create_table(TABLE).await;
    let reg = Registry::new(server.client().await, TABLE);
    (server, reg)
}

async fn survives_lease_and_liveness(emulator: Emulator) {
    let (_server, reg) = setup(emulator).await;
    let github = EveryRunCompleted::default();
    let quiet = |_: LockEvent| {};

    // Control: without a freeze, the same dead holder is taken over at once.
    take(&reg, "control", "dead", (500, 0), &github, &quiet)
        .await
        .unwrap();
    let taken = take(&reg, "control", "next", (500, 5_000), &github, &quiet)
        .await
        .unwrap();
    assert!(taken.took_over.is_some(), "the control must take over");

    // A run holds the lock (lease 500 ms, never renewed), then the lock is frozen.
    let held = take(&reg, "prod", "holder", (500, 0), &github, &quiet)
        .await
        .unwrap();
    let frozen = lock::freeze(
        &reg,
        "prod",
        &freeze_for("INC-42 failover", Duration::from_secs(600)),
    )
    .await
    .unwrap();
    assert_eq!(
        frozen.holder.as_ref().map(|h| h.info.owner.as_str()),
        Some("holder")
    );
    let asked_before = github.0.load(Ordering::SeqCst);

    // A waiter waits six of the holder's leases with GitHub saying "completed" every time.
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let on_event = move |e: LockEvent| ev.lock().unwrap().push(e);
    let waited = Instant::now();
    let r = take(&reg, "prod", "waiter", (500, 3_000), &github, &on_event).await;
    assert!(waited.elapsed() >= Duration::from_millis(2_900));
    match r {
        Err(AcquireError::Frozen {
            freeze,
            holder,
            timed_out,
        }) => {
            assert!(timed_out);
            assert_eq!(freeze.reason, "INC-42 failover");
            assert_eq!(holder.map(|h| h.info.owner), Some("holder".to_string()));
        }
        other => panic!("expected the freeze to hold: {other:?}"),
    }
    assert_eq!(
        github.0.load(Ordering::SeqCst),
        asked_before,
        "nobody asks GitHub about a frozen lock's holder"
    );
    assert!(
        events.lock().unwrap().iter().any(|e| matches!(
            e,
            LockEvent::Frozen { freeze, position: 1, .. } if freeze.by == "release-manager"
        )),
        "the waiter reports the freeze"
    );
    let st = lock::status(&reg, "prod").await.unwrap();
    let h = st.lock.holder().expect("still held by the run");
    assert_eq!(
        (h.info.owner.as_str(), h.fence),
        ("holder", held.record.fence)
    );
    assert!(
        st.queue.is_empty(),
        "the waiter left the queue: {:?}",
        st.queue
    );

    // The holder itself still finishes: a rerun of its step reenters, its release works,
    // and the freeze stays on the free lock.
    let again = take(&reg, "prod", "holder", (500, 0), &github, &quiet)
        .await
        .unwrap();
    assert!(again.reentrant);
    assert!(again.record.freeze.is_some(), "reentry keeps the freeze");
    assert!(matches!(
        lock::release(&reg, "prod", "holder").await.unwrap(),
        lock::ReleaseOutcome::Released(_)
    ));
    let free_but_frozen = lock::status(&reg, "prod").await.unwrap().lock;
    assert!(matches!(free_but_frozen, LockState::Free(_)));
    assert!(
        free_but_frozen
            .active_freeze(WallClock::system().now_ms())
            .is_some()
    );
    let r = take(&reg, "prod", "waiter", (500, 1_500), &github, &quiet).await;
    assert!(matches!(r, Err(AcquireError::Frozen { .. })), "{r:?}");

    // Unfrozen: the next acquisition gets it, with the next fence.
    let ended = lock::unfreeze(&reg, "prod", "oncall", Some("resolved"))
        .await
        .unwrap();
    assert_eq!(ended.map(|f| f.reason), Some("INC-42 failover".into()));
    let got = take(&reg, "prod", "waiter", (500, 0), &github, &quiet)
        .await
        .unwrap();
    assert_eq!(got.record.fence, held.record.fence + 1);
    assert!(got.record.freeze.is_none());
    let audit: Vec<_> = lock::status(&reg, "prod")
        .await
        .unwrap()
        .audit
        .into_iter()
        .map(|a| a.what)
        .collect();
    assert_eq!(audit, ["unfreeze", "freeze"]);
}

async fn ends_at_its_time_not_before(emulator: Emulator) {
    let (_server, reg) = setup(emulator).await;
    let freeze = freeze_for("short window", Duration::from_secs(3));
    lock::freeze(&reg, "k", &freeze).await.unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let on_event = move |e: LockEvent| ev.lock().unwrap().push(e);
    let got = take(
        &reg,
        "k",
        "w",
        (60_000, 20_000),
        &EveryRunCompleted::default(),
        &on_event,
    )
    .await
    .unwrap();
    let now_ms = WallClock::system().now_ms();
    assert!(
        now_ms >= freeze.until_ms,
        "acquired {} ms before the freeze's end",
        freeze.until_ms - now_ms
    );
    assert!(
        now_ms < freeze.until_ms + 2_000,
        "the head goes within about a second of the end ({} ms late)",
        now_ms - freeze.until_ms
    );
    assert_eq!(got.record.fence, 1);
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, LockEvent::FreezeEnded { expired: true, .. }))
    );
}

// ---- the binary ----------------------------------------------------------------------------

/// The CLI as operator alice on host bastion (what `--by` defaults to).
fn as_alice(env: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    env.push(("USER".into(), "alice".into()));
    env.push(("HOSTNAME".into(), "bastion".into()));
    env
}

fn cli(env: &[(String, String)], args: &[&str]) -> Command {
    support::cli::cli(&as_alice(env), args)
}

async fn run(env: &[(String, String)], args: &[&str]) -> Output {
    support::cli::run(&as_alice(env), args).await
}

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
    wait_for_status(env, TABLE, key, what, Duration::from_secs(15), pred).await
}

/// `lock <sub> --table <TABLE> --key <key> <extra…>`.
fn lock_args<'a>(sub: &'a str, key: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["lock", sub, "--table", TABLE, "--key", key];
    args.extend_from_slice(extra);
    args
}

fn queue_len(s: &Value) -> usize {
    s["queue"].as_array().map_or(0, Vec::len)
}

async fn ok(env: &[(String, String)], args: &[&str]) -> Output {
    let o = run(env, args).await;
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    o
}

async fn fifo_after_unfreeze(emulator: Emulator) {
    let (_server, env) = start(emulator).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("order");
    // A run holds the lock; an operator freezes it.
    ok(
        &env,
        &lock_args(
            "acquire",
            "prod",
            &["--owner", "deploying", "--lease", "1h"],
        ),
    )
    .await;
    let o = ok(
        &env,
        &lock_args(
            "freeze",
            "prod",
            &["--for", "1h", "--reason", "INC-7: payments outage"],
        ),
    )
    .await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("by alice@bastion: INC-7: payments outage"),
        "{out}"
    );
    assert!(out.contains("owner deploying"), "{out}");

    // Three runs queue behind it, one after the other.
    let mut waiters = Vec::new();
    for (n, name) in ["first", "second", "third"].into_iter().enumerate() {
        let script = format!("echo {name} >> {}", log.display());
        let child = cli(
            &env,
            &lock_args(
                "run",
                "prod",
                &[
                    "--owner",
                    name,
                    "--wait",
                    "2m",
                    "--queue-poll",
                    "300ms",
                    "--lease",
                    "3s",
                    "--",
                    "sh",
                    "-c",
                    &script,
                ],
            ),
        )
        .spawn()
        .unwrap();
        waiters.push(child);
        wait_status(&env, "prod", "the next waiter in the queue", |s| {
            queue_len(s) == n + 1
        })
        .await;
    }
    // The holder finishes; the freeze stays, past every waiter's own lease (3 s).
    ok(
        &env,
        &lock_args("release", "prod", &["--owner", "deploying"]),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let s = status(&env, "prod").await;
    assert_eq!(s["state"], "frozen", "{s}");
    assert_eq!(s["frozen"], true, "{s}");
    assert_eq!(s["freeze"]["reason"], "INC-7: payments outage", "{s}");
    assert_eq!(s["freeze"]["by"], "alice@bastion", "{s}");
    assert!(
        s["freeze"]["remaining_seconds"].as_u64().unwrap() > 3000,
        "{s}"
    );
    assert_eq!(queue_len(&s), 3, "{s}");
    assert!(!log.exists(), "someone ran during the freeze");

    let o = ok(&env, &["lock", "status", "--table", TABLE, "--key", "prod"]).await;
    let shown = String::from_utf8_lossy(&o.stdout);
    for part in ["FROZEN", "INC-7: payments outage", "alice@bastion", "left)"] {
        assert!(shown.contains(part), "{part} missing: {shown}");
    }

    let unfrozen_at = Instant::now();
    let o = ok(
        &env,
        &lock_args("unfreeze", "prod", &["--reason", "resolved"]),
    )
    .await;
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("unfroze lock \"prod\""),
        "{}",
        text(&o)
    );
    for w in waiters {
        let o = tokio::time::timeout(Duration::from_secs(60), w.wait_with_output())
            .await
            .expect("waiters finish after the unfreeze")
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("is frozen by alice@bastion until"), "{err}");
        assert!(err.contains("was lifted"), "{err}");
    }
    let order = std::fs::read_to_string(&log).unwrap();
    assert_eq!(order, "first\nsecond\nthird\n");
    assert!(unfrozen_at.elapsed() < Duration::from_secs(30));
    let s = status(&env, "prod").await;
    assert_eq!(s["frozen"], false, "{s}");
    assert_eq!(s["fence"], 4, "three runs after the holder's fence 1: {s}");
}

async fn on_freeze_fail_is_fast(emulator: Emulator) {
    let (_server, env) = start(emulator).await;
    ok(
        &env,
        &lock_args(
            "freeze",
            "prod",
            &[
                "--for",
                "45m",
                "--reason",
                "quarter-end close",
                "--by",
                "finance-rm",
            ],
        ),
    )
    .await;
    let before = status(&env, "prod").await;
    let t0 = Instant::now();
    let o = run(
        &env,
        &lock_args("acquire", "prod", &["--wait", "10m", "--on-freeze", "fail"]),
    )
    .await;
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(o.status.code(), Some(76), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for part in [
        "Deployments are frozen",
        "quarter-end close",
        "finance-rm",
        "until",
    ] {
        assert!(err.contains(part), "{part} missing: {err}");
    }
    let after = status(&env, "prod").await;
    assert_eq!(queue_len(&after), 0, "{after}");
    assert_eq!(after["last"], before["last"], "lock untouched");

    // Waiting (the default) with a short --wait times out behind it, exit 75.
    let o = run(&env, &lock_args("acquire", "prod", &["--wait", "1s"])).await;
    assert_eq!(o.status.code(), Some(75), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("quarter-end close"));
}

async fn force_unlock_ends_a_freeze(emulator: Emulator) {
    let (_server, env) = start(emulator).await;
    ok(&env, &lock_args("acquire", "prod", &["--owner", "stuck"])).await;
    ok(
        &env,
        &lock_args(
            "freeze",
            "prod",
            &["--for", "2h", "--reason", "investigating"],
        ),
    )
    .await;
    let o = ok(
        &env,
        &lock_args(
            "force-unlock",
            "prod",
            &["--reason", "runner lost, start over", "--json"],
        ),
    )
    .await;
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["removed"]["owner"], "stuck", "{v}");
    assert_eq!(v["freeze_ended"]["reason"], "investigating", "{v}");
    let s = status(&env, "prod").await;
    assert_eq!(
        (s["state"].as_str(), s["frozen"].as_bool()),
        (Some("free"), Some(false)),
        "{s}"
    );
    ok(&env, &lock_args("acquire", "prod", &["--owner", "next"])).await;
    // Bad input is refused before anything is written.
    let o = run(
        &env,
        &lock_args("freeze", "prod", &["--for", "0s", "--reason", "x"]),
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(status(&env, "prod").await["frozen"], false);
}

on_all_backends!(survives_lease_and_liveness);
on_all_backends!(ends_at_its_time_not_before);
on_all_backends!(fifo_after_unfreeze);
on_all_backends!(on_freeze_fail_is_fast);
on_all_backends!(force_unlock_ends_a_freeze);
