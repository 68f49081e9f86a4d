//! The action's lock through the real binary and the runner emulation: main step, then post
//! step, against both DynamoDB emulators.

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
        took < Duration::from_millis(7500),
        "exit took {took:?}: the runner kills after 7.5 s"
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
    let runner = runner_for(&env, "5001");
    let run = runner.main();
    assert_ok(&run, "main in fallback");
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
    strict.input("on-registry-unavailable", "fail");
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
