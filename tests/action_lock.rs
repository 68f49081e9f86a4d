//! The action's lock through the real binary and the runner emulation: main step, then post
//! step, against the DynamoDB backends.

mod support;

use std::time::{Duration, Instant};

use support::cfnsim::Simulator;
use support::dynamo::{DynamoServer, Emulator, endpoint_env, free_port};
use support::runner::{Runner, StepRun};

const TABLE: &str = "deployment-registry";

/// A CloudFormation endpoint for the stack guard: the lock tests' stack never exists.
fn cloudformation() -> Simulator {
    Simulator::start(&serde_json::json!({}), 1.0)
}

/// Sends the stack guard's CloudFormation calls to the simulator (dynalite has no CloudFormation).
fn with_cloudformation(mut env: Vec<(String, String)>, cfn: &Simulator) -> Vec<(String, String)> {
    env.push((
        "AWS_ENDPOINT_URL_CLOUDFORMATION".into(),
        cfn.endpoint.clone(),
    ));
    env
}

fn runner_for(server_env: &[(String, String)], run_id: &str) -> Runner {
    let mut runner = Runner::new();
    for (k, v) in server_env {
        runner.env(k, v);
    }
    runner
        .env("GITHUB_RUN_ID", run_id)
        .input("stack-name", "payments")
        .input("mode", "lock");
    runner
}

fn lock_status(server_env: &[(String, String)], key: &str) -> serde_json::Value {
    support::runner::lock_status(server_env, TABLE, key)
}

/// The owner holding the lock, from `lock status --json`.
fn held_by(status: &serde_json::Value) -> Option<String> {
    (status["state"] == "held").then(|| {
        status["holder"]["owner"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    })
}

fn assert_ok(run: &StepRun, what: &str) {
    assert_eq!(run.code(), Some(0), "{what} failed:\n{}", run.log());
}

async fn lock_mode_main_then_post(emulator: Emulator) {
    let server = DynamoServer::start(emulator);
    server.create_table(TABLE).await;
    let cfn = cloudformation();
    let env = with_cloudformation(server.env(), &cfn);

    let runner = runner_for(&env, "1001");
    let main = runner.main();
    assert_ok(&main, "main");
    let cid = main
        .output("correlation-id")
        .expect("correlation-id output")
        .to_string();
    assert_eq!(cid.len(), "20260114-123456-abc1234".len(), "{cid}");
    assert!(cid.ends_with("-abc1234"), "{cid}");
    assert_eq!(main.output("lock-acquired"), Some("true"));
    assert_eq!(main.output("lock-fence"), Some("1"));
    assert_eq!(main.output("outcome"), Some("succeeded"));
    assert_eq!(main.state.get("correlation_id"), Some(&cid));
    assert!(
        held_by(&lock_status(&env, "payments")).is_some(),
        "held between main and post"
    );
    assert!(main.summary.contains("fence 1"), "{}", main.summary);

    let post = runner.post(&main);
    assert_ok(&post, "post");
    assert!(
        post.log().contains(&cid),
        "the post step logs under the same correlation ID:\n{}",
        post.log()
    );
    assert!(post.log().contains("released"), "{}", post.log());
    assert!(
        held_by(&lock_status(&env, "payments")).is_none(),
        "released by the post step"
    );

    // The post step is idempotent (a retried post step changes nothing), and the fence grows.
    assert_ok(&runner.post(&main), "second post");
    let again = runner_for(&env, "1002").main();
    assert_ok(&again, "second main");
    assert_eq!(again.output("lock-fence"), Some("2"));
}

#[tokio::test]
async fn lock_mode_main_then_post_on_moto() {
    lock_mode_main_then_post(Emulator::Moto).await;
}

#[tokio::test]
async fn lock_mode_main_then_post_on_dynalite() {
    lock_mode_main_then_post(Emulator::Dynalite).await;
}

#[tokio::test]
async fn lock_mode_main_then_post_on_dynamodb_local() {
    lock_mode_main_then_post(Emulator::DynamoDbLocal).await;
}

#[tokio::test]
async fn a_second_run_queues_until_the_first_post_step_releases() {
    let server = DynamoServer::start(Emulator::Moto);
    server.create_table(TABLE).await;
    let cfn = cloudformation();
    let env = with_cloudformation(server.env(), &cfn);

    let first = runner_for(&env, "2001");
    let first_main = first.main();
    assert_ok(&first_main, "first main");

    let second = runner_for(&env, "2002");
    let running = second.spawn_main();
    std::thread::sleep(Duration::from_secs(3));
    let status = lock_status(&env, "payments");
    assert_eq!(
        status["queue"].as_array().map(Vec::len),
        Some(1),
        "the second run waits in the queue: {status}"
    );

    let release_at = Instant::now();
    assert_ok(&first.post(&first_main), "first post");
    let second_main = running.wait();
    let handoff = release_at.elapsed();
    assert_ok(&second_main, "second main");
    assert_eq!(second_main.output("lock-fence"), Some("2"));
    let waited: u64 = second_main
        .output("lock-wait-seconds")
        .unwrap()
        .parse()
        .unwrap();
    assert!(waited >= 2, "waited {waited}s");
    assert!(
        second_main.log().contains("queue position 1"),
        "{}",
        second_main.log()
    );
    assert!(
        handoff < Duration::from_secs(5),
        "hand-off took {handoff:?}"
    );
    assert_ok(&second.post(&second_main), "second post");
}

#[tokio::test]
async fn lock_timeout_fails_naming_the_holder_and_leaves_the_queue() {
    let server = DynamoServer::start(Emulator::Moto);
    server.create_table(TABLE).await;
    let cfn = cloudformation();
    let env = with_cloudformation(server.env(), &cfn);
    let holder = runner_for(&env, "3001");
    let holder_main = holder.main();
    assert_ok(&holder_main, "holder main");

    let mut waiter = runner_for(&env, "3002");
    waiter.input("lock-timeout", "2s");
    let run = waiter.main();
    assert_eq!(run.code(), Some(1), "{}", run.log());
    assert_eq!(run.output("outcome"), Some("timed-out"));
    assert_eq!(run.output("lock-acquired"), Some("false"));
    let error = run
        .commands()
        .into_iter()
        .find(|c| c.starts_with("::error"))
        .expect("an error annotation");
    assert!(
        error.contains("lock-timeout") && error.contains("acme/payments run 3001"),
        "{error}"
    );
    let status = lock_status(&env, "payments");
    assert_eq!(
        status["queue"].as_array().map(Vec::len),
        Some(0),
        "the waiter's ticket is gone: {status}"
    );
    // Its post step must not touch the holder's lock.
    assert_ok(&waiter.post(&run), "waiter post");
    assert!(held_by(&lock_status(&env, "payments")).is_some());
    assert_ok(&holder.post(&holder_main), "holder post");
}

#[tokio::test]
async fn sigterm_while_queued_leaves_the_queue_and_exits_quickly() {
    let server = DynamoServer::start(Emulator::Moto);
    server.create_table(TABLE).await;
    let cfn = cloudformation();
    let env = with_cloudformation(server.env(), &cfn);
    let holder = runner_for(&env, "4001");
    let holder_main = holder.main();
    assert_ok(&holder_main, "holder main");

    let waiter = runner_for(&env, "4002");
    let running = waiter.spawn_main();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        lock_status(&env, "payments")["queue"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let (run, took) = running.terminate();
    assert!(
        took < Duration::from_secs(5),
        "exit took {took:?} after SIGINT: release, outputs and card are due within 5 s"
    );
    assert_eq!(run.code(), Some(1), "{}", run.log());
    assert_eq!(run.output("outcome"), Some("cancelled"));
    assert_eq!(
        lock_status(&env, "payments")["queue"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "ticket removed"
    );
    assert_ok(&holder.post(&holder_main), "holder post");
}

#[tokio::test]
async fn registry_down_falls_back_with_a_warning_or_fails_when_told_to() {
    // Nothing listens on this port: DynamoDB is unreachable.
    let cfn = cloudformation();
    let env = with_cloudformation(
        endpoint_env(&format!("http://127.0.0.1:{}", free_port())),
        &cfn,
    );
    // The outage budget (at least 10 s, at most lock-timeout or a minute) runs out first.
    let mut runner = runner_for(&env, "5001");
    runner.input("lock-timeout", "10s");
    let run = runner.main();
    assert_ok(&run, "main in fallback");
    assert!(
        run.elapsed >= Duration::from_secs(10),
        "fell back after {:?}, before the outage budget",
        run.elapsed
    );
    assert_eq!(run.output("lock-acquired"), Some("false"));
    let warning = run
        .commands()
        .into_iter()
        .find(|c| c.starts_with("::warning"))
        .expect("a warning annotation");
    assert!(warning.contains("CloudFormation-only"), "{warning}");
    assert!(run.summary.contains("unavailable"), "{}", run.summary);
    assert_ok(&runner.post(&run), "post in fallback");

    let mut strict = runner_for(&env, "5002");
    strict
        .input("on-registry-unavailable", "fail")
        .input("lock-timeout", "10s");
    let run = strict.main();
    assert_eq!(run.code(), Some(1), "{}", run.log());
    assert!(
        run.commands().iter().any(|c| c.starts_with("::error")),
        "{}",
        run.log()
    );
}

#[tokio::test]
async fn a_missing_table_is_a_configuration_error_even_with_fallback() {
    let server = DynamoServer::start(Emulator::Moto);
    let runner = runner_for(&server.env(), "6001");
    let run = runner.main();
    assert_eq!(run.code(), Some(1), "{}", run.log());
    let error = run
        .commands()
        .into_iter()
        .find(|c| c.starts_with("::error"))
        .expect("an error annotation");
    assert!(
        error.contains("registry create"),
        "says how to fix it: {error}"
    );
}

/// Two legs of a matrix job: same run, attempt, commit and (here, forced) correlation ID. The
/// lock is reentrant for its owner, so the owners must differ or both would hold it.
#[tokio::test]
async fn matrix_legs_of_one_run_do_not_share_the_lock() {
    let server = DynamoServer::start(Emulator::Moto);
    server.create_table(TABLE).await;
    let cfn = cloudformation();
    let env = with_cloudformation(server.env(), &cfn);
    let mut first = runner_for(&env, "7001");
    first.input("correlation-id", "release-42");
    let first_main = first.main();
    assert_eq!(first_main.code(), Some(0), "{}", first_main.log());
    let mut second = runner_for(&env, "7001");
    second
        .input("correlation-id", "release-42")
        .input("lock-timeout", "2s");
    let run = second.main();
    assert_eq!(
        run.code(),
        Some(1),
        "the second leg must wait, not re-enter:\n{}",
        run.log()
    );
    assert_eq!(run.output("outcome"), Some("timed-out"));
    assert_ok(&second.post(&run), "second post");
    assert!(
        held_by(&lock_status(&env, "payments")).is_some(),
        "the first leg still holds it"
    );
    assert_ok(&first.post(&first_main), "first post");
}

/// `lock <sub> --table <TABLE> --key <key> <extra…>`.
fn lock_args<'a>(sub: &'a str, key: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["lock", sub, "--table", TABLE, "--key", key];
    args.extend_from_slice(extra);
    args
}

/// Runs `deploy-coordinator <args>` against the emulator (an operator at a terminal).
fn operator(server_env: &[(String, String)], args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deploy-coordinator"))
        .args(args)
        .envs(server_env.iter().cloned())
        .env("USER", "rm")
        .env("HOSTNAME", "bastion")
        .output()
        .expect("run the operator command");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An emulator whose lock `payments` an operator has frozen with `freeze_args`.
async fn frozen_payments(freeze_args: &[&str]) -> (DynamoServer, Simulator, Vec<(String, String)>) {
    let server = DynamoServer::start(Emulator::Moto);
    server.create_table(TABLE).await;
    let cfn = cloudformation();
    let env = with_cloudformation(server.env(), &cfn);
    operator(&env, &lock_args("freeze", "payments", freeze_args));
    (server, cfn, env)
}

#[tokio::test]
async fn on_freeze_fail_stops_at_once_saying_who_why_and_until_when() {
    let (_server, _cfn, env) = frozen_payments(&[
        "--for",
        "2h",
        "--reason",
        "INC-9 ledger mismatch",
        "--by",
        "release-manager",
    ])
    .await;
    let before = lock_status(&env, "payments");

    let mut runner = runner_for(&env, "5001");
    runner
        .input("on-freeze", "fail")
        .input("lock-timeout", "10m");
    let run = runner.main();
    assert_eq!(run.code(), Some(1), "{}", run.log());
    assert!(run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);
    assert_eq!(run.output("lock-acquired"), Some("false"));
    assert_eq!(run.output("outcome"), Some("failed"));
    let error = run
        .commands()
        .into_iter()
        .find(|c| c.starts_with("::error title=Deployments are frozen::"))
        .unwrap_or_else(|| panic!("no freeze error:\n{}", run.log()));
    let until = before["freeze"]["until"].as_str().unwrap();
    for part in [
        "INC-9 ledger mismatch",
        "release-manager",
        until,
        "lock unfreeze",
    ] {
        assert!(error.contains(part), "{part} missing: {error}");
    }
    assert!(
        run.summary.contains("Deployments are frozen"),
        "{}",
        run.summary
    );
    assert!(
        run.summary.contains("INC-9 ledger mismatch"),
        "{}",
        run.summary
    );

    let after = lock_status(&env, "payments");
    assert_eq!(after["queue"].as_array().map(Vec::len), Some(0), "{after}");
    assert_eq!(after["last"], before["last"], "lock untouched: {after}");
    assert_ok(&runner.post(&run), "post");
    assert_eq!(lock_status(&env, "payments")["state"], "frozen");
}

#[tokio::test]
async fn a_run_waits_behind_a_freeze_and_goes_after_unfreeze() {
    let (_server, _cfn, env) =
        frozen_payments(&["--for", "1h", "--reason", "release window closed"]).await;
    let runner = runner_for(&env, "6001");
    let running = runner.spawn_main();
    std::thread::sleep(Duration::from_secs(3));
    let status = lock_status(&env, "payments");
    assert_eq!(status["state"], "frozen", "{status}");
    assert_eq!(
        status["queue"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );

    let unfrozen = Instant::now();
    operator(
        &env,
        &["lock", "unfreeze", "--table", TABLE, "--key", "payments"],
    );
    let main = running.wait();
    assert_ok(&main, "main");
    assert!(
        unfrozen.elapsed() < Duration::from_secs(5),
        "{:?}",
        unfrozen.elapsed()
    );
    assert_eq!(main.output("lock-fence"), Some("1"));
    let notice = main
        .commands()
        .into_iter()
        .find(|c| c.starts_with("::notice title=Deployments are frozen::"))
        .unwrap_or_else(|| panic!("no freeze notice:\n{}", main.log()));
    assert!(
        notice.contains("frozen by rm@bastion until") && notice.contains("release window closed"),
        "{notice}"
    );
    assert!(main.log().contains("was lifted"), "{}", main.log());
    assert!(
        main.summary.contains("was frozen by rm@bastion until"),
        "{}",
        main.summary
    );
    assert_ok(&runner.post(&main), "post");
}

/// A stack that someone deploys outside the lock: one database, `seconds` long.
const BUSY_TEMPLATE: &str =
    "Resources:\n  Db:\n    Type: AWS::RDS::DBInstance\n    Properties: {Engine: postgres}\n";

/// A simulator whose stack `stack` is busy with someone else's create for about `seconds`.
fn busy_stack(stack: &str, seconds: u64) -> Simulator {
    let cfn = Simulator::start(
        &serde_json::json!({"seed": 1, "change_set_seconds": 1,
            "types": {"AWS::RDS::DBInstance": {"duration": [seconds, seconds]}}}),
        1.0,
    );
    cfn.admin_post(
        &format!("start?stack={stack}&operation=create"),
        Some(&serde_json::json!({ "template": BUSY_TEMPLATE })),
    );
    cfn
}

/// Polls `lock status` until someone holds `key`; returns the owner.
fn wait_held(env: &[(String, String)], key: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some(owner) = held_by(&lock_status(env, key)) {
            return owner;
        }
        assert!(Instant::now() < deadline, "nobody took lock {key:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Hole 1: a run that got the lock while someone else's operation runs on its stack waits for
/// the stack holding the lock, and keeps it alive: no waiter takes it over after a lease.
#[tokio::test]
async fn the_lock_is_kept_alive_while_waiting_for_a_busy_stack() {
    let server = DynamoServer::start(Emulator::Moto);
    server.create_table(TABLE).await;
    let cfn = busy_stack("payments", 9);
    let env = with_cloudformation(server.env(), &cfn);
    let mut a = runner_for(&env, "8001");
    a.input("lock-key", "prod").input("lock-lease", "2s");
    let running_a = a.spawn_main();
    let a_owner = wait_held(&env, "prod", Duration::from_secs(10));

    // Another stack of the same environment: the same lock key.
    let mut b = runner_for(&env, "8002");
    b.input("stack-name", "ledger")
        .input("lock-key", "prod")
        .input("lock-lease", "2s")
        .input("lock-timeout", "60s");
    let running_b = b.spawn_main();
    // 2.5 leases while the first run waits for its stack: still the first run's lock.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let holder = held_by(&lock_status(&env, "prod"));
        assert_eq!(
            holder.as_deref(),
            Some(a_owner.as_str()),
            "the lock changed hands while its holder waited for the busy stack"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let main_a = running_a.wait();
    assert_ok(&main_a, "first main");
    assert!(
        main_a.log().contains("waiting for it to settle"),
        "{}",
        main_a.log()
    );
    assert_ok(&a.post(&main_a), "first post");
    let main_b = running_b.wait();
    assert_ok(&main_b, "second main");
    assert_eq!(main_b.output("lock-fence"), Some("2"));
    assert_ok(&b.post(&main_b), "second post");
}

/// Hole 2: a lock lost before the change set is executed stops the deployment: ownership is
/// proved by a conditional write just before ExecuteChangeSet (here the heartbeat, a third of
/// a one-minute lease, has not run yet when an operator force-unlocks during the change set's
/// creation). The loss is an error, an output, a summary section.
#[tokio::test]
async fn a_lock_lost_before_execution_executes_nothing() {
    let server = DynamoServer::start(Emulator::Moto);
    server.create_table(TABLE).await;
    let cfn = Simulator::start(
        &serde_json::json!({"seed": 2, "change_set_seconds": 4}),
        1.0,
    );
    let env = with_cloudformation(server.env(), &cfn);
    let mut a = runner_for(&env, "8101");
    a.input("mode", "deploy").input("lock-lease", "60s");
    std::fs::write(a.workspace().join("stack.yaml"), BUSY_TEMPLATE).unwrap();
    a.input("template", "stack.yaml");
    let running = a.spawn_main();
    wait_held(&env, "payments", Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    while cfn.requests("CreateChangeSet") == 0 {
        assert!(Instant::now() < deadline, "no change set was created");
        std::thread::sleep(Duration::from_millis(50));
    }
    operator(
        &env,
        &lock_args("force-unlock", "payments", &["--reason", "INC-7 test"]),
    );
    let main = running.wait();
    assert_eq!(
        cfn.requests("ExecuteChangeSet"),
        0,
        "a change set was executed after the lock was lost:\n{}",
        main.log()
    );
    assert_eq!(main.code(), Some(1), "{}", main.log());
    assert_eq!(main.output("lock-lost"), Some("true"), "{:?}", main.outputs);
    assert!(
        main.commands()
            .iter()
            .any(|c| c.starts_with("::error title=Deployment lock lost")),
        "{}",
        main.log()
    );
    assert!(main.summary.contains("was lost"), "{}", main.summary);
    // Nobody cancelled the run: the loss failed it, and every place says so alike.
    assert_eq!(main.output("outcome"), Some("failed"), "{:?}", main.outputs);
    assert!(
        main.summary.contains("| outcome | **failed** |"),
        "the summary's outcome differs from the output `outcome`:\n{}",
        main.summary
    );
    assert!(!main.summary.contains("cancelled**"), "{}", main.summary);
    assert_ok(&a.post(&main), "post");
}

/// Hole 8 of #13: the post step releases first, then reads what the job did (events,
/// history, GitHub): a CloudFormation endpoint that never answers must not keep the lock.
#[tokio::test]
async fn the_post_step_releases_before_it_reports() {
    let server = DynamoServer::start(Emulator::Moto);
    server.create_table(TABLE).await;
    let cfn = cloudformation();
    let env = with_cloudformation(server.env(), &cfn);
    let mut runner = runner_for(&env, "8201");
    let main = runner.main();
    assert_ok(&main, "main");
    assert!(held_by(&lock_status(&env, "payments")).is_some());
    // From now on CloudFormation hangs.
    let hung = support::faults::FaultProxy::start(free_port());
    hung.set(support::faults::Fault::Stall);
    runner.env("AWS_ENDPOINT_URL_CLOUDFORMATION", &hung.endpoint());
    let (mut cmd, _files) = runner.command(true, &main.state);
    let mut post = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while held_by(&lock_status(&env, "payments")).is_some() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the post step still holds the lock {:?} after it started (reading the stack first?)",
            t0.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = post.kill();
    let _ = post.wait();
}

/// Hole 8 of #13: a lock taken over or force-unlocked while the job ran is a warning at
/// release, not an info line.
#[tokio::test]
async fn a_lock_that_is_no_longer_ours_at_release_is_a_warning() {
    let server = DynamoServer::start(Emulator::Moto);
    server.create_table(TABLE).await;
    let cfn = cloudformation();
    let env = with_cloudformation(server.env(), &cfn);
    let runner = runner_for(&env, "8301");
    let main = runner.main();
    assert_ok(&main, "main");
    operator(
        &env,
        &lock_args("force-unlock", "payments", &["--reason", "INC-8 stuck"]),
    );
    let post = runner.post(&main);
    assert_ok(&post, "post");
    assert!(
        post.commands()
            .iter()
            .any(|c| c.starts_with("::warning title=The deployment lock was no longer ours")),
        "{}",
        post.log()
    );
}

/// Hole 8 of #13: when the state for the post step cannot be written, the lock is not taken
/// (the post step could not release it: it would stay taken for a lease, 6 h in mode lock).
#[tokio::test]
async fn no_lock_is_taken_when_the_post_step_could_not_release_it() {
    let server = DynamoServer::start(Emulator::Moto);
    server.create_table(TABLE).await;
    let cfn = cloudformation();
    let env = with_cloudformation(server.env(), &cfn);
    let runner = runner_for(&env, "8401");
    let (mut cmd, files) = runner.command(false, &std::collections::BTreeMap::new());
    // GITHUB_STATE is a directory: every state record fails (root ignores file modes).
    std::fs::remove_file(&files[1]).unwrap();
    std::fs::create_dir(&files[1]).unwrap();
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let _ = std::fs::remove_dir(&files[1]);
    std::fs::write(&files[1], "").unwrap();
    let run =
        support::runner::collect(out.status, out.stdout, out.stderr, files, started.elapsed());
    assert_eq!(run.code(), Some(1), "{}", run.log());
    let status = lock_status(&env, "payments");
    assert!(
        held_by(&status).is_none() && status["fence"] == 0,
        "the lock was taken although the post step could not release it: {status}"
    );
}
