//! Deploying and following stacks through the real binary, the runner emulation, DynamoDB
//! (moto) and the CloudFormation scenario simulator: every case an engineer watching a
//! production deployment relies on, with the outputs the workflow's later steps read.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::cfnsim::Simulator;
use support::dynamo::{DynamoServer, Emulator};
use support::runner::{Runner, StepRun};

const TABLE: &str = "deployment-registry";

const TEMPLATE: &str = r#"
Parameters:
  Size:
    Type: String
    Default: small
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties: {AssumeRolePolicyDocument: {}}
  Queue:
    Type: AWS::SQS::Queue
    Properties: {DelaySeconds: 0}
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      Role: !GetAtt Role.Arn
      Environment: {Variables: {SIZE: !Ref Size}}
  Db:
    Type: AWS::RDS::DBInstance
    Properties: {Engine: postgres}
Outputs:
  QueueUrl:
    Value: !Ref Queue
  FnName:
    Value: !Ref Fn
"#;

const NESTED_TEMPLATE: &str = r#"
Resources:
  Network:
    Type: AWS::CloudFormation::Stack
    Properties: {TemplateURL: https://example.com/network.yaml}
  App:
    Type: AWS::SQS::Queue
    DependsOn: Network
"#;

/// DynamoDB, the simulator, and a runner wired to both.
struct World {
    dynamo: DynamoServer,
    sim: Simulator,
}

impl World {
    async fn start(scenario: serde_json::Value, time_scale: f64) -> World {
        let dynamo = DynamoServer::start(Emulator::Moto);
        dynamo.create_table(TABLE).await;
        let sim = Simulator::start(&scenario, time_scale);
        World { dynamo, sim }
    }

    fn runner(&self, run_id: &str, stack: &str, template: Option<&str>) -> Runner {
        let mut runner = Runner::new();
        for (k, v) in self.dynamo.env() {
            runner.env(&k, &v);
        }
        runner
            .env("AWS_ENDPOINT_URL_DYNAMODB", &self.dynamo.endpoint())
            .env("AWS_ENDPOINT_URL_CLOUDFORMATION", &self.sim.endpoint)
            .env("GITHUB_RUN_ID", run_id)
            .input("stack-name", stack)
            .input("capabilities", "CAPABILITY_IAM");
        if let Some(template) = template {
            std::fs::write(runner.workspace().join("stack.yaml"), template).unwrap();
            runner.input("template", "stack.yaml");
        } else {
            runner.inputs.insert("capabilities".into(), String::new());
        }
        runner
    }
}

fn assert_code(run: &StepRun, code: i32, what: &str) {
    assert_eq!(run.code(), Some(code), "{what}: exit code\n{}", run.log());
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

#[tokio::test]
async fn a_successful_deployment_reports_outputs_and_hands_the_lock_on() {
    let world = World::start(json!({"seed": 1, "change_set_seconds": 1}), 60.0).await;
    let runner = world.runner("101", "orders", Some(TEMPLATE));
    let main = runner.main();
    assert_code(&main, 0, "deploy");
    assert_eq!(main.output("outcome"), Some("succeeded"));
    assert_eq!(main.output("stack-status"), Some("CREATE_COMPLETE"));
    assert!(
        main.output("stack-id")
            .unwrap()
            .starts_with("arn:aws:cloudformation:")
    );
    // RDS alone takes 6-10 simulated minutes: the duration is CloudFormation's, not ours.
    let seconds: u64 = main.output("duration-seconds").unwrap().parse().unwrap();
    assert!((360..=900).contains(&seconds), "duration {seconds}s");
    let outputs: serde_json::Value =
        serde_json::from_str(main.output("stack-outputs").unwrap()).unwrap();
    assert_eq!(
        outputs["QueueUrl"].as_str(),
        main.output("QueueUrl"),
        "each stack output is also its own step output"
    );
    assert!(main.output("FnName").is_some());
    assert_eq!(main.output("lock-acquired"), Some("true"));
    // Progress is shown and ends at M/M; nothing shows N > M.
    assert!(main.log().contains("progress 4/4"), "{}", main.log());
    assert_eq!(
        main.state.get("lock_released").map(String::as_str),
        Some("true"),
        "released by the main step"
    );
    assert!(
        main.summary.contains("succeeded") && main.summary.contains("QueueUrl"),
        "{}",
        main.summary
    );
    let post = runner.post(&main);
    assert_code(&post, 0, "post");
    assert!(post.log().contains("already released"), "{}", post.log());
}

#[tokio::test]
async fn an_empty_change_set_is_no_changes_and_fails_only_when_asked() {
    let world = World::start(json!({"seed": 2, "change_set_seconds": 1}), 120.0).await;
    assert_code(
        &world.runner("201", "billing", Some(TEMPLATE)).main(),
        0,
        "first deploy",
    );

    let again = world.runner("202", "billing", Some(TEMPLATE)).main();
    assert_code(&again, 0, "same template again");
    assert_eq!(again.output("outcome"), Some("no-changes"));
    assert_eq!(again.output("stack-status"), Some("CREATE_COMPLETE"));

    let mut strict = world.runner("203", "billing", Some(TEMPLATE));
    strict.input("fail-on-empty-changeset", "true");
    let run = strict.main();
    assert_code(&run, 1, "fail-on-empty-changeset");
    assert_eq!(run.output("outcome"), Some("no-changes"));
}

#[tokio::test]
async fn a_failed_create_names_the_root_cause_and_rolls_back() {
    let reason = "Resource handler returned message: \"Role is invalid\" ::set-output name=outcome::succeeded";
    let world = World::start(
        json!({"seed": 3, "change_set_seconds": 1, "resources": {"Fn": {"fail": reason}}}),
        60.0,
    )
    .await;
    let main = world.runner("301", "checkout", Some(TEMPLATE)).main();
    assert_code(&main, 1, "failing deploy");
    assert_eq!(main.output("outcome"), Some("failed"));
    assert_eq!(main.output("stack-status"), Some("ROLLBACK_COMPLETE"));
    assert_eq!(main.output("failed-resource"), Some("Fn"));
    assert_eq!(main.output("failure-reason"), Some(reason));
    // The cancellations of the resources running beside it are not the root cause.
    let error = main
        .commands()
        .into_iter()
        .find(|c| c.starts_with("::error title=Fn failed::"))
        .expect("root cause annotation");
    assert!(error.contains("Role is invalid"), "{error}");
    // The untrusted reason never became a workflow command of its own.
    assert!(
        !main
            .commands()
            .iter()
            .any(|c| c.starts_with("::set-output")),
        "{}",
        main.log()
    );
    assert!(
        main.summary.contains("Root cause") && main.summary.contains("Role is invalid"),
        "{}",
        main.summary
    );
}

#[tokio::test]
async fn a_failed_update_is_rolled_back() {
    let world = World::start(json!({"seed": 4, "change_set_seconds": 1}), 120.0).await;
    assert_code(
        &world.runner("401", "search", Some(TEMPLATE)).main(),
        0,
        "create",
    );
    world.sim.admin_post("scenario", Some(&json!({"seed": 4, "change_set_seconds": 1, "resources": {"Fn": {"fail_update": "Memory size out of range"}}})));
    let mut update = world.runner("402", "search", Some(TEMPLATE));
    update.input("parameters", "Size=large");
    let run = update.main();
    assert_code(&run, 1, "failed update");
    assert_eq!(run.output("outcome"), Some("rolled-back"));
    assert_eq!(run.output("stack-status"), Some("UPDATE_ROLLBACK_COMPLETE"));
    assert_eq!(run.output("failed-resource"), Some("Fn"));
}

#[tokio::test]
async fn nested_stacks_end_only_with_the_root_and_their_failures_are_named() {
    // The nested stack completes 40 simulated seconds before its parent resource does: a
    // monitor that stops at the first stack-level COMPLETE would exit early.
    let scenario = json!({"seed": 5, "change_set_seconds": 1, "nested": {"Network": {
        "template": {"Resources": {"Vpc": {"Type": "AWS::EC2::VPC"}, "Subnet": {"Type": "AWS::EC2::Subnet", "DependsOn": "Vpc"}}},
        "complete_lag": 40}}});
    let world = World::start(scenario, 20.0).await;
    let run = world
        .runner("501", "platform", Some(NESTED_TEMPLATE))
        .main();
    assert_code(&run, 0, "nested deploy");
    assert_eq!(run.output("outcome"), Some("succeeded"));
    let log = run.log();
    let nested_done = log
        .find("platform-Network-")
        .and_then(|i| log[i..].find("CREATE_COMPLETE").map(|j| i + j))
        .expect("nested events");
    let root_done = log
        .rfind("AWS::CloudFormation::Stack CREATE_COMPLETE")
        .expect("root COMPLETE");
    assert!(
        nested_done < root_done,
        "the nested stack's COMPLETE comes first and does not end monitoring"
    );
    assert!(
        log.contains("Subnet"),
        "nested resources are followed: {log}"
    );

    let failing = json!({"seed": 6, "change_set_seconds": 1, "nested": {"Network": {
        "template": {"Resources": {"Vpc": {"Type": "AWS::EC2::VPC"}, "Subnet": {"Type": "AWS::EC2::Subnet", "DependsOn": "Vpc"}}},
        "resources": {"Subnet": {"fail": "The CIDR '10.0.0.0/8' is invalid"}}}}});
    world.sim.admin_post("scenario", Some(&failing));
    let run = world
        .runner("502", "platform-two", Some(NESTED_TEMPLATE))
        .main();
    assert_code(&run, 1, "nested failure");
    assert_eq!(
        run.output("failed-resource"),
        Some("Network/Subnet"),
        "{}",
        run.log()
    );
    assert!(run.output("failure-reason").unwrap().contains("CIDR"));
}

#[tokio::test]
async fn events_sharing_a_timestamp_are_neither_lost_nor_repeated() {
    let scenario = json!({"seed": 7, "change_set_seconds": 1, "timestamp_precision_ms": 1000,
        "same_timestamp_groups": [["Role", "Queue", "Db"]], "defaults": {"duration": [5, 5]},
        "types": {"AWS::RDS::DBInstance": {"duration": [5, 5]}}});
    let world = World::start(scenario, 5.0).await;
    let run = world.runner("601", "ledger", Some(TEMPLATE)).main();
    assert_code(&run, 0, "deploy");
    let log = run.log();
    for resource in ["Role", "Queue", "Fn", "Db"] {
        let line = format!(" {resource} ");
        let completes = log
            .lines()
            .filter(|l| l.contains(&line) && l.contains("CREATE_COMPLETE"))
            .count();
        assert_eq!(
            completes, 1,
            "{resource}: exactly one CREATE_COMPLETE line\n{log}"
        );
    }
}

#[tokio::test]
async fn a_throttling_storm_slows_polling_but_the_deployment_is_followed_to_the_end() {
    let scenario = json!({"seed": 8, "change_set_seconds": 1,
        "throttle": {"rate": 0.6, "actions": ["DescribeStackEvents", "DescribeStacks"], "seed": 3}});
    let world = World::start(scenario, 60.0).await;
    let run = world.runner("701", "storm", Some(TEMPLATE)).main();
    assert_code(&run, 0, "deploy under throttling");
    assert_eq!(run.output("outcome"), Some("succeeded"));
    let throttled = world.sim.admin_get("stats")["throttled"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum::<u64>())
        .unwrap_or(0);
    assert!(throttled > 0, "the scenario throttled requests");
}

#[tokio::test]
async fn deploy_timeout_gives_timed_out_and_the_lock_is_still_released() {
    let world = World::start(json!({"seed": 9, "change_set_seconds": 1, "types": {"AWS::RDS::DBInstance": {"duration": 3600}}}), 1.0).await;
    let mut runner = world.runner("801", "slow", Some(TEMPLATE));
    runner.input("deploy-timeout", "8s");
    let started = Instant::now();
    let main = runner.main();
    assert_code(&main, 1, "timed out");
    assert_eq!(main.output("outcome"), Some("timed-out"));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert_code(&runner.post(&main), 0, "post");
    // Another run is not blocked by a stale lock: it waits for the stack instead.
    let status = support::runner::lock_status(&world.dynamo.env(), TABLE, "slow");
    assert_eq!(status["state"], "free", "{status}");
}

#[tokio::test]
async fn monitor_errors_restart_the_monitor_with_each_gap_reported() {
    let world = World::start(json!({"seed": 10, "change_set_seconds": 1}), 10.0).await;
    // Failures before execution (the SDK retries each call 3 times, so 4 fail a call) and while
    // following: within the restart budget.
    world
        .sim
        .admin_post("fault?kind=error&count=4&action=DescribeStackEvents", None);
    let runner = world.runner("901", "flaky", Some(TEMPLATE));
    let running = runner.spawn_main();
    std::thread::sleep(Duration::from_secs(12));
    world
        .sim
        .admin_post("fault?kind=error&count=8&action=DescribeStackEvents", None);
    let run = running.wait();
    assert_code(&run, 0, "recovered");
    assert_eq!(run.output("outcome"), Some("succeeded"));
    let gaps = run
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("::warning title=Monitoring interrupted"))
        .count();
    assert!(gaps >= 1, "each gap is reported: {}", run.log());
}

#[tokio::test]
async fn a_monitor_that_keeps_failing_stops_saying_the_state_is_unknown() {
    let world = World::start(json!({"seed": 11, "change_set_seconds": 1, "types": {"AWS::RDS::DBInstance": {"duration": 3600}}}), 1.0).await;
    let runner = world.runner("1001", "broken-api", Some(TEMPLATE));
    let running = runner.spawn_main();
    // Let the deployment start, then break every read of its events.
    std::thread::sleep(Duration::from_secs(6));
    world.sim.admin_post(
        "fault?kind=error&count=1000&action=DescribeStackEvents,DescribeStacks",
        None,
    );
    let main = running.wait();
    assert_code(&main, 1, "budget exhausted");
    let error = main
        .commands()
        .into_iter()
        .find(|c| c.starts_with("::error"))
        .expect("an error");
    assert!(error.contains("state is unknown"), "{error}");
    let gaps = count(&main.log(), "::warning title=Monitoring interrupted");
    assert_eq!(gaps, 5, "five restarts, then it stops:\n{}", main.log());
    // The main step did not release (the operation may still run); the post step looks at the stack.
    assert!(!main.state.contains_key("lock_released"));
    // CloudFormation answers again (re-posting the scenario clears injected faults).
    world.sim.admin_post("scenario", Some(&json!({"seed": 11, "change_set_seconds": 1, "types": {"AWS::RDS::DBInstance": {"duration": 3600}}})));
    let post = runner.post(&main);
    assert_code(&post, 0, "post");
    assert!(
        post.log()
            .contains("Releasing the lock while the stack is busy"),
        "{}",
        post.log()
    );
}

#[tokio::test]
async fn mode_monitor_follows_an_operation_started_elsewhere() {
    let world = World::start(json!({"seed": 12, "change_set_seconds": 1}), 60.0).await;
    assert_code(
        &world.runner("1101", "pipeline-app", Some(TEMPLATE)).main(),
        0,
        "create",
    );
    let watcher = world.runner("1102", "pipeline-app", None);
    let running = watcher.spawn_main();
    std::thread::sleep(Duration::from_secs(3));
    // CodePipeline updates the stack.
    world.sim.admin_post(
        "start?stack=pipeline-app&operation=update&touch=Fn,Db",
        None,
    );
    let run = running.wait();
    assert_code(&run, 0, "monitor");
    assert_eq!(run.output("outcome"), Some("succeeded"));
    assert_eq!(run.output("stack-status"), Some("UPDATE_COMPLETE"));
    assert!(
        run.log()
            .contains("Db AWS::RDS::DBInstance UPDATE_COMPLETE"),
        "{}",
        run.log()
    );
}

#[tokio::test]
async fn mode_lock_post_step_reports_what_the_later_steps_deployed() {
    let world = World::start(json!({"seed": 13, "change_set_seconds": 1, "defaults": {"duration": [1, 2]},
        "resources": {"Fn": {"fail": "cdk: handler not found"}}, "types": {"AWS::RDS::DBInstance": {"duration": [2, 3]}}}), 1.0).await;
    let mut runner = world.runner("1201", "cdk-app", None);
    runner.input("mode", "lock");
    let main = runner.main();
    assert_code(&main, 0, "lock");
    assert!(main.state.contains_key("stack_baseline"));
    // A later step (cdk deploy) creates the stack, and it fails.
    world.sim.admin_post(
        "start?stack=cdk-app&operation=create",
        Some(&json!({"template": TEMPLATE})),
    );
    std::thread::sleep(Duration::from_secs(12));
    let post = runner.post(&main);
    assert_code(&post, 0, "post");
    let log = post.log();
    assert!(
        log.contains("while the lock was held: cdk-app failed"),
        "{log}"
    );
    assert!(
        post.commands()
            .iter()
            .any(|c| c.starts_with("::error title=Fn failed::") && c.contains("handler not found")),
        "{log}"
    );
    assert!(post.summary.contains("Root cause"), "{}", post.summary);
    assert!(log.contains("released"), "{log}");
    // What the later step deployed is in the history, as if we had deployed it.
    let records = history_of(&world, "cdk-app");
    assert_eq!(records.len(), 1, "{records:?}");
    // The failed create was rolled back: that is the history's word for it.
    assert_eq!(records[0]["outcome"], "rolled_back");
}

#[tokio::test]
async fn sigterm_while_deploying_releases_the_lock_and_exits_within_the_runners_grace() {
    let world = World::start(json!({"seed": 14, "change_set_seconds": 1, "types": {"AWS::RDS::DBInstance": {"duration": 3600}}}), 1.0).await;
    let runner = world.runner("1301", "cancelled-app", Some(TEMPLATE));
    let running = runner.spawn_main();
    std::thread::sleep(Duration::from_secs(8));
    let (main, took) = running.terminate();
    assert!(
        took < Duration::from_secs(5),
        "exit took {took:?} after SIGINT: release, outputs and card are due within 5 s\n{}",
        main.log()
    );
    assert_code(&main, 1, "cancelled");
    assert_eq!(main.output("outcome"), Some("cancelled"));
    let status = support::runner::lock_status(&world.dynamo.env(), TABLE, "cancelled-app");
    assert_eq!(
        status["state"], "free",
        "the lock was released on SIGTERM: {status}"
    );
    // The post step then has nothing to undo, and says what the stack is doing.
    assert_code(&runner.post(&main), 0, "post");
}

/// A stack whose update is slow where it matters: created in seconds, then an update in which
/// `Fn` changes in a second and `Db` takes an hour, so a cancel always finds `Db` running.
/// With the update's `Cache` (see [`update_template`]), its deletion in the rollback's clean-up
/// takes `cleanup_seconds` (above 8: a rollback slower than the runner's grace).
fn cancellable(seed: u64, cleanup_seconds: u64) -> serde_json::Value {
    json!({"seed": seed, "change_set_seconds": 1, "stack_overhead": 0.3, "initiated_delay": 0.1,
        "defaults": {"duration": 1},
        "resources": {"Db": {"duration": 1, "update_duration": 3600},
                      "Cache": {"duration": 1, "delete_duration": cleanup_seconds}}})
}

/// The update of [`cancellable`]: `Size` changes `Fn`, the storage changes `Db`, and with
/// `add_cache` a queue is added.
fn update_template(add_cache: bool) -> String {
    let mut template = TEMPLATE
        .replace("Default: small", "Default: large")
        .replace(
            "{Engine: postgres}",
            "{Engine: postgres, AllocatedStorage: 30}",
        );
    if add_cache {
        template = template.replace(
            "Resources:\n",
            "Resources:\n  Cache:\n    Type: AWS::SQS::Queue\n",
        );
    }
    template
}

/// The simulator's view of one stack (`/_sim/stacks`).
fn sim_stack(world: &World, name: &str) -> serde_json::Value {
    world.sim.admin_get("stacks")["stacks"]
        .as_array()
        .and_then(|stacks| stacks.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no stack {name} in the simulator"))
}

/// Waits until the stack's update is running (Db's hour-long update has begun).
fn wait_for_update(world: &World, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim_stack(world, name)["status"] != "UPDATE_IN_PROGRESS" {
        assert!(Instant::now() < deadline, "{}", sim_stack(world, name));
        std::thread::sleep(Duration::from_millis(100));
    }
    // The resources start after the stack's overhead.
    std::thread::sleep(Duration::from_secs(2));
}

/// Creates the stack of [`cancellable`], then starts the update and cancels the job as the
/// runner does once the update runs.
fn cancel_an_update(
    world: &World,
    stack: &str,
    on_cancel: &str,
    add_cache: bool,
    slack_api: Option<&str>,
) -> (Runner, support::runner::Cancelled) {
    let create = world.runner("1401", stack, Some(TEMPLATE));
    assert_code(&create.main(), 0, "create");
    let mut runner = world.runner("1402", stack, Some(&update_template(add_cache)));
    runner.input("on-cancel", on_cancel);
    if let Some(api) = slack_api {
        runner
            .input("slack-bot-token", "xoxb-1-2-test")
            .input("slack-channel", "#deploys")
            .input("slack-api-url", &format!("{api}/api"));
    }
    let running = runner.spawn_main();
    wait_for_update(world, stack);
    (runner, running.cancel_as_the_runner_does())
}

/// The step ended by itself before the runner's kill, cancelled, after one CancelUpdateStack.
fn assert_cancelled_update_in_time(world: &World, cancelled: &support::runner::Cancelled) {
    let log = cancelled.run.log();
    assert!(
        cancelled.took < Duration::from_secs(10) && !cancelled.killed,
        "the step must end by itself before the runner's kill: {:?}\n{log}",
        cancelled.took
    );
    assert_eq!(world.sim.requests("CancelUpdateStack"), 1, "{log}");
    assert_code(&cancelled.run, 1, "cancelled");
    assert_eq!(cancelled.run.output("outcome"), Some("cancelled"));
}

#[tokio::test(flavor = "multi_thread")]
async fn on_cancel_cancel_update_rolls_the_update_back_and_releases_the_lock_within_the_grace() {
    let world = World::start(cancellable(15, 1), 1.0).await;
    let slack = slack_that_answers().await;
    // The Slack server answers on the runtime's other threads while this one waits.
    let (runner, cancelled) = tokio::task::block_in_place(|| {
        cancel_an_update(
            &world,
            "cancel-app",
            "cancel-update",
            false,
            Some(&slack.uri()),
        )
    });
    let main = &cancelled.run;
    let log = main.log();
    assert_cancelled_update_in_time(&world, &cancelled);
    assert_eq!(
        main.output("stack-status"),
        Some("UPDATE_ROLLBACK_COMPLETE"),
        "{log}"
    );
    // The rollback ended in CloudFormation before the step ended, within 10 s of the SIGINT.
    let stack = sim_stack(&world, "cancel-app");
    assert_eq!(stack["status"], "UPDATE_ROLLBACK_COMPLETE");
    let ended = stack["terminal_events"]
        .as_array()
        .and_then(|t| t.last())
        .and_then(|t| t["real_time"].as_f64())
        .expect("the rollback's terminal event");
    let sigint = cancelled
        .sigint_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        ended > sigint && ended - sigint < 10.0,
        "rolled back {:.1} s after the SIGINT",
        ended - sigint
    );
    // Released after the rollback ended, by the main step.
    let settled = log
        .find("UPDATE_ROLLBACK_COMPLETE")
        .expect("the end in the log");
    let released = log.find("lock \"cancel-app\": released").expect("released");
    assert!(settled < released, "{log}");
    assert_eq!(
        main.state.get("lock_released").map(String::as_str),
        Some("true")
    );
    let status = support::runner::lock_status(&world.dynamo.env(), TABLE, "cancel-app");
    assert_eq!(status["state"], "free", "{status}");
    // Said on the run page, and what it came to in the summary (and so on the card).
    assert!(
        main.commands()
            .iter()
            .any(|c| c.starts_with("::notice title=Update cancelled::")
                && c.contains("CancelUpdateStack called")),
        "{log}"
    );
    assert!(
        main.summary.contains(
            "cancelled by the run's cancellation; CancelUpdateStack called; rolled back in"
        ),
        "{}",
        main.summary
    );
    // The post step has nothing left to do, and reports nothing twice.
    // The thread says the cancel was asked for; the card's last state, what it came to.
    let requests = slack.received_requests().await.unwrap_or_default();
    let bodies = |api: &str| -> Vec<String> {
        requests
            .iter()
            .filter(|r| r.url.path().ends_with(api))
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect()
    };
    let thread: Vec<String> = bodies("chat.postMessage")
        .into_iter()
        .filter(|b| b.contains("thread_ts"))
        .collect();
    assert!(
        thread
            .iter()
            .any(|t| t.contains("CancelUpdateStack called")),
        "{thread:?}"
    );
    let last_card = bodies("chat.update").pop().unwrap_or_default();
    assert!(
        last_card.contains("CancelUpdateStack called; rolled back in")
            && last_card.contains("cancelled"),
        "{last_card}"
    );
    let post = tokio::task::block_in_place(|| runner.post(main));
    assert_code(&post, 0, "post");
    assert!(post.log().contains("already released"), "{}", post.log());
    assert!(post.summary.is_empty(), "{}", post.summary);
    let after_post = slack.received_requests().await.unwrap_or_default();
    assert_eq!(
        after_post.len(),
        requests.len(),
        "the post step reports nothing twice"
    );
}

/// A Slack Web API that accepts every message (one card, `ts` fixed).
async fn slack_that_answers() -> wiremock::MockServer {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"ok": true, "channel": "C0DEPLOY", "ts": "1700000000.000100"}),
            ),
        )
        .mount(&slack)
        .await;
    slack
}

#[tokio::test]
async fn on_cancel_leave_lets_the_update_go_on_as_before() {
    let world = World::start(cancellable(16, 1), 1.0).await;
    let (_runner, cancelled) = cancel_an_update(&world, "leave-app", "leave", false, None);
    let main = &cancelled.run;
    assert!(
        cancelled.took < Duration::from_secs(5),
        "{:?}",
        cancelled.took
    );
    assert_eq!(world.sim.requests("CancelUpdateStack"), 0);
    assert_eq!(main.output("outcome"), Some("cancelled"));
    assert_eq!(
        sim_stack(&world, "leave-app")["status"],
        "UPDATE_IN_PROGRESS"
    );
    assert!(
        main.summary
            .contains("the operation goes on in CloudFormation"),
        "{}",
        main.summary
    );
    let status = support::runner::lock_status(&world.dynamo.env(), TABLE, "leave-app");
    assert_eq!(status["state"], "free", "{status}");
}

#[tokio::test]
async fn a_rollback_slower_than_the_grace_leaves_the_lock_to_its_lease_and_says_so() {
    let world = World::start(cancellable(17, 60), 1.0).await;
    let (runner, cancelled) =
        cancel_an_update(&world, "slow-rollback", "cancel-update", true, None);
    let main = &cancelled.run;
    let log = main.log();
    assert_cancelled_update_in_time(&world, &cancelled);
    // It lived through the runner's SIGTERM (7.5 s) and still wrote everything before the kill.
    assert!(cancelled.sigterm_sent, "{:?}", cancelled.took);
    let still = main.output("stack-status").unwrap_or_default().to_string();
    assert!(still.starts_with("UPDATE_ROLLBACK_"), "{still}\n{log}");
    assert!(still.ends_with("_IN_PROGRESS"), "{still}\n{log}");
    // Not released: the stack is busy; the log and the summary say until when.
    assert!(!main.state.contains_key("lock_released"), "{log}");
    assert_eq!(main.state.get("cancel_rollback"), Some(&still));
    for text in [&log, &main.summary] {
        assert!(
            text.contains("the rollback is still running")
                && text.contains("lease")
                && text.contains("expires at"),
            "{text}"
        );
    }
    let status = support::runner::lock_status(&world.dynamo.env(), TABLE, "slow-rollback");
    assert_eq!(status["state"], "held", "{status}");
    // `lock status` (and every waiter) sees why it is still held.
    let note = status["holder"]["cancelling"].as_str().unwrap_or_default();
    assert!(
        note.contains("its run was cancelled; CancelUpdateStack called; slow-rollback was still UPDATE_ROLLBACK_"),
        "{status}"
    );
    // The post step finds the stack still busy: it leaves the lock to its lease, says so once,
    // and posts no second report.
    let post = runner.post(main);
    assert_code(&post, 0, "post");
    assert!(
        post.commands()
            .iter()
            .any(|c| c.starts_with("::warning title=Rollback still running::")),
        "{}",
        post.log()
    );
    assert!(post.summary.is_empty(), "{}", post.summary);
    let status = support::runner::lock_status(&world.dynamo.env(), TABLE, "slow-rollback");
    assert_eq!(status["state"], "held", "{status}");
}

#[tokio::test]
async fn on_cancel_cancel_update_leaves_a_create_running_and_says_why() {
    let world = World::start(json!({"seed": 18, "change_set_seconds": 1, "types": {"AWS::RDS::DBInstance": {"duration": 3600}}}), 1.0).await;
    let mut runner = world.runner("1501", "new-app", Some(TEMPLATE));
    runner.input("on-cancel", "cancel-update");
    let running = runner.spawn_main();
    let deadline = Instant::now() + Duration::from_secs(20);
    while world.sim.admin_get("stacks")["stacks"]
        .as_array()
        .is_none_or(|s| {
            !s.iter()
                .any(|s| s["name"] == "new-app" && s["status"] == "CREATE_IN_PROGRESS")
        })
    {
        assert!(Instant::now() < deadline, "the create never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (main, took) = running.terminate();
    assert!(took < Duration::from_secs(5), "{took:?}\n{}", main.log());
    assert_eq!(
        world.sim.requests("CancelUpdateStack"),
        0,
        "a create cannot be cancelled"
    );
    assert_eq!(main.output("outcome"), Some("cancelled"));
    assert!(
        main.commands()
            .iter()
            .any(|c| c.starts_with("::warning title=Update not cancelled::")
                && c.contains("the create goes on")),
        "{}",
        main.log()
    );
    assert!(
        main.summary
            .contains("the update was not cancelled: a stack being created cannot be cancelled"),
        "{}",
        main.summary
    );
    assert_eq!(sim_stack(&world, "new-app")["status"], "CREATE_IN_PROGRESS");
    // As with `leave`: the lock is handed on, the next run's stack guard waits for the create.
    let status = support::runner::lock_status(&world.dynamo.env(), TABLE, "new-app");
    assert_eq!(status["state"], "free", "{status}");
}

#[tokio::test]
async fn the_post_step_releases_the_lock_once_the_rollback_the_main_step_left_has_settled() {
    let world = World::start(cancellable(19, 14), 1.0).await;
    let (runner, cancelled) =
        cancel_an_update(&world, "late-rollback", "cancel-update", true, None);
    assert_cancelled_update_in_time(&world, &cancelled);
    let main = &cancelled.run;
    assert!(main.state.contains_key("cancel_rollback"), "{}", main.log());
    let deadline = Instant::now() + Duration::from_secs(40);
    while sim_stack(&world, "late-rollback")["status"] != "UPDATE_ROLLBACK_COMPLETE" {
        assert!(
            Instant::now() < deadline,
            "{}",
            sim_stack(&world, "late-rollback")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let post = runner.post(main);
    assert_code(&post, 0, "post");
    let log = post.log();
    assert!(
        log.contains("the rollback of the cancelled update has ended"),
        "{log}"
    );
    assert!(log.contains("lock \"late-rollback\": released"), "{log}");
    assert!(!log.contains("Rollback still running"), "{log}");
    let status = support::runner::lock_status(&world.dynamo.env(), TABLE, "late-rollback");
    assert_eq!(status["state"], "free", "{status}");
}

#[tokio::test]
async fn a_cancel_update_stack_that_hangs_is_given_up_before_the_runners_kill() {
    let world = World::start(cancellable(20, 1), 1.0).await;
    // CloudFormation takes 30 s to answer CancelUpdateStack (then applies it).
    world.sim.admin_post(
        "fault?kind=hang&seconds=30&count=10&action=CancelUpdateStack",
        None,
    );
    let (_runner, cancelled) =
        cancel_an_update(&world, "hung-cancel", "cancel-update", false, None);
    let main = &cancelled.run;
    assert!(
        cancelled.took < Duration::from_secs(10) && !cancelled.killed,
        "{:?}\n{}",
        cancelled.took,
        main.log()
    );
    assert_eq!(main.output("outcome"), Some("cancelled"));
    assert!(
        main.commands()
            .iter()
            .any(|c| c.starts_with("::warning title=Update not cancelled::")
                && c.contains("CancelUpdateStack did not answer within the runner's grace")),
        "{}",
        main.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_cancelled_from_the_console_is_followed_to_the_end_of_its_rollback() {
    let world = World::start(cancellable(21, 1), 1.0).await;
    let create = world.runner("1601", "console-app", Some(TEMPLATE));
    assert_code(&tokio::task::block_in_place(|| create.main()), 0, "create");
    let mut runner = world.runner("1602", "console-app", Some(&update_template(false)));
    // Without the console's rollback in the chain the step would follow until this (and end
    // timed-out). Well beyond the follower's slowest poll (30 s, stack/poll.rs), which it may
    // sleep while the rollback estimate is long: at 40 s the two were 10 s apart and a run that
    // noticed the end on its next 30 s poll passed or failed by milliseconds.
    runner.input("deploy-timeout", "90s");
    let running = runner.spawn_main();
    tokio::task::block_in_place(|| wait_for_update(&world, "console-app"));
    // Someone presses "Cancel update stack" in the console: its own token.
    let form = "Action=CancelUpdateStack&Version=2010-05-15&StackName=console-app\
                &ClientRequestToken=Console-CancelUpdateStack-7f1c2a";
    let answer = reqwest::Client::new()
        .post(&world.sim.endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("CancelUpdateStack");
    assert!(answer.status().is_success(), "{:?}", answer.text().await);
    let started = Instant::now();
    let main = tokio::task::block_in_place(|| running.wait());
    assert_eq!(
        main.output("outcome"),
        Some("rolled-back"),
        "{}",
        main.log()
    );
    assert_eq!(
        main.output("stack-status"),
        Some("UPDATE_ROLLBACK_COMPLETE")
    );
    // The rollback takes about 3 s; the end is seen at the latest one slow poll later.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?} (process {:?})\n{}",
        started.elapsed(),
        main.elapsed,
        main.log()
    );
    assert!(
        main.summary
            .contains("the update was cancelled (CancelUpdateStack)"),
        "{}",
        main.summary
    );
}

/// `history export` of a stack, as a JSON array (oldest first).
fn history_of(world: &World, stack: &str) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deploy-coordinator"))
        .args(["history", "export", "--table", TABLE, "--stack", stack])
        .envs(world.dynamo.env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn every_deployment_is_recorded_and_the_next_one_is_estimated_from_it() {
    let world = World::start(
        json!({"seed": 15, "change_set_seconds": 1, "update_changes": ["Db"]}),
        30.0,
    )
    .await;
    let first = world.runner("1401", "history-app", Some(TEMPLATE)).main();
    assert_code(&first, 0, "first deploy");
    let records = history_of(&world, "history-app");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["operation"], "CREATE");
    assert_eq!(records[0]["outcome"], "succeeded");
    assert_eq!(
        records[0]["correlation_id"].as_str(),
        first.output("correlation-id")
    );
    assert_eq!(records[0]["resources"].as_array().map(Vec::len), Some(4));

    let mut update = world.runner("1402", "history-app", Some(TEMPLATE));
    update.input("parameters", "Size=large");
    let second = update.main();
    assert_code(&second, 0, "second deploy");
    let predicted: u64 = second
        .output("estimated-duration-seconds")
        .expect("a prediction from history")
        .parse()
        .unwrap();
    assert!(predicted > 0);
    assert!(
        second.log().contains("estimate: about"),
        "estimates in the log:\n{}",
        second.log()
    );
    assert_eq!(history_of(&world, "history-app").len(), 2);
}

#[tokio::test]
async fn mode_monitor_follows_an_operation_already_running() {
    let world = World::start(json!({"seed": 16, "change_set_seconds": 1, "types": {"AWS::RDS::DBInstance": {"duration": [20, 20]}}}), 1.0).await;
    // Someone else's pipeline is creating the stack when the monitor step starts.
    world.sim.admin_post(
        "start?stack=running-app&operation=create",
        Some(&json!({"template": TEMPLATE})),
    );
    std::thread::sleep(Duration::from_secs(2));
    let mut watcher = world.runner("1501", "running-app", None);
    watcher.input("start-timeout", "5s");
    let run = watcher.main();
    assert_code(&run, 0, "monitor");
    assert_eq!(run.output("outcome"), Some("succeeded"));
    assert_eq!(run.output("stack-status"), Some("CREATE_COMPLETE"));
    assert!(
        run.log()
            .contains("Db AWS::RDS::DBInstance CREATE_COMPLETE"),
        "{}",
        run.log()
    );
}

/// TEMPLATE with the database's class as a parameter too: an update changes the function
/// (Size), the database (DbClass, minutes), or both.
const TWO_PARAMETER_TEMPLATE: &str = r#"
Parameters:
  Size:
    Type: String
    Default: small
  DbClass:
    Type: String
    Default: db.t3.micro
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties: {AssumeRolePolicyDocument: {}}
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      Role: !GetAtt Role.Arn
      Environment: {Variables: {SIZE: !Ref Size}}
  Db:
    Type: AWS::RDS::DBInstance
    Properties: {Engine: postgres, DBInstanceClass: !Ref DbClass}
"#;

#[tokio::test]
async fn the_change_set_tells_the_estimate_what_this_deployment_changes() {
    let world = World::start(
        json!({"seed": 17, "change_set_seconds": 1,
               "types": {"AWS::RDS::DBInstance": {"duration": [400, 420]},
                         "AWS::Lambda::Function": {"duration": [10, 12]}}}),
        60.0,
    )
    .await;
    let deploy = |run_id: &str, size: &str, class: &str| {
        let mut runner = world.runner(run_id, "cs-app", Some(TWO_PARAMETER_TEMPLATE));
        runner.input("parameters", &format!("Size={size},DbClass={class}"));
        let run = runner.main();
        assert_code(&run, 0, run_id);
        run
    };
    deploy("1601", "small", "db.t3.micro");
    // The last update changed the function and the database: about 7 minutes.
    let both = deploy("1602", "large", "db.t3.small");
    let took: u64 = both.output("duration-seconds").unwrap().parse().unwrap();
    assert!(took >= 400, "the database update takes minutes: {took}s");
    // This one only changes the function. History alone would expect the last update's 7
    // minutes; the change set says only the function changes.
    let small = deploy("1603", "medium", "db.t3.small");
    let predicted: u64 = small
        .output("estimated-duration-seconds")
        .expect("a prediction")
        .parse()
        .unwrap();
    let took: u64 = small.output("duration-seconds").unwrap().parse().unwrap();
    assert!(took < 60, "only the function: {took}s");
    assert!(
        predicted < 120,
        "predicted {predicted}s for a {took}s update after a 7-minute one:\n{}",
        small.log()
    );
    assert!(
        small.log().contains("change set dc-") && small.log().contains("1 resource change(s)"),
        "{}",
        small.log()
    );
}

const PARAMETER_FILE_TEMPLATE: &str = r#"
Parameters:
  Env:
    Type: String
  Size:
    Type: String
    Default: small
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      Tags: [{Key: env, Value: !Ref Env}, {Key: size, Value: !Ref Size}]
Outputs:
  EnvOut:
    Value: !Ref Env
  SizeOut:
    Value: !Ref Size
"#;

#[tokio::test]
async fn parameters_from_files_reach_the_change_set_and_use_previous_value_keeps_the_stacks() {
    let world = World::start(json!({"seed": 18, "change_set_seconds": 1}), 120.0).await;
    let deploy = |run_id: &str, file: &str, body: &str| {
        let mut runner = world.runner(run_id, "params-app", Some(PARAMETER_FILE_TEMPLATE));
        std::fs::create_dir_all(runner.workspace().join("infra")).unwrap();
        std::fs::write(runner.workspace().join("infra").join(file), body).unwrap();
        runner.input("parameters", &format!("file://infra/{file}"));
        runner.main()
    };
    // CodePipeline's format creates the stack.
    let first = deploy(
        "1701",
        "pipeline.json",
        r#"{"Parameters": {"Env": "prod", "Size": "large"}}"#,
    );
    assert_code(&first, 0, "create from a CodePipeline file");
    assert_eq!(first.output("EnvOut"), Some("prod"));
    assert_eq!(first.output("SizeOut"), Some("large"));

    // The AWS CLI's format: Env is kept by UsePreviousValue, not reset or refused as missing.
    let second = deploy(
        "1702",
        "cli.json",
        r#"[{"ParameterKey": "Env", "UsePreviousValue": true},
            {"ParameterKey": "Size", "ParameterValue": "medium"}]"#,
    );
    assert_code(&second, 0, "update from an AWS CLI file");
    assert_eq!(second.output("EnvOut"), Some("prod"), "{}", second.log());
    assert_eq!(second.output("SizeOut"), Some("medium"), "{}", second.log());

    // A malformed file fails the step before anything is taken, naming file, line and column.
    let requests = world.sim.requests("CreateChangeSet");
    let broken = deploy(
        "1703",
        "broken.json",
        "[\n  {\"ParameterKey\": \"Env\", \"ParameterValue\": \"prod\"}\n  {\"ParameterKey\": \"Size\"}\n]",
    );
    assert_code(&broken, 1, "malformed parameters file");
    assert!(
        broken
            .log()
            .contains("file://infra/broken.json, line 3, column 3: expected `,` or `]`"),
        "{}",
        broken.log()
    );
    assert!(
        broken.log().contains("Invalid input 'parameters'"),
        "{}",
        broken.log()
    );
    assert!(broken.state.is_empty(), "nothing taken: {:?}", broken.state);
    assert_eq!(world.sim.requests("CreateChangeSet"), requests);
}

/// An orders table whose name is the template's: renaming it replaces the table (its
/// TableName requires replacement, as the simulator's per-type table says after AWS).
fn orders_template(table_name: &str) -> String {
    format!(
        r#"
Resources:
  Orders:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: {table_name}
      KeySchema: [{{AttributeName: id, KeyType: HASH}}]
  Queue:
    Type: AWS::SQS::Queue
    Properties: {{DelaySeconds: 0}}
"#
    )
}

fn errors(run: &StepRun) -> Vec<String> {
    run.commands()
        .into_iter()
        .filter(|c| c.starts_with("::error"))
        .collect()
}

#[tokio::test]
async fn a_guarded_deploy_that_would_replace_a_table_stops_before_execute_change_set() {
    let world = World::start(json!({"seed": 19, "change_set_seconds": 1}), 120.0).await;
    assert_code(
        &world
            .runner("1801", "orders", Some(&orders_template("orders-v1")))
            .main(),
        0,
        "create",
    );
    let executes = world.sim.requests("ExecuteChangeSet");
    let deletes = world.sim.requests("DeleteChangeSet");

    let runner = world.runner("1802", "orders", Some(&orders_template("orders-v2")));
    let main = runner.main();
    assert_code(&main, 1, "stopped by the guard");
    assert_eq!(
        world.sim.requests("ExecuteChangeSet"),
        executes,
        "nothing was executed"
    );
    assert_eq!(
        world.sim.requests("DeleteChangeSet"),
        deletes + 1,
        "on-risk-change-set delete (the default) deleted it"
    );
    assert_eq!(main.output("outcome"), Some("failed"));
    assert_eq!(main.output("stack-status"), Some("CREATE_COMPLETE"));
    let reason = main.output("failure-reason").unwrap_or_default();
    assert!(
        reason.contains("Orders: AWS::DynamoDB::Table is replaced")
            && reason.contains("add Orders to allow-replacement"),
        "{reason}"
    );
    let errors = errors(&main);
    assert_eq!(errors.len(), 1, "one error annotation: {errors:?}");
    assert!(
        // The runner unescapes %3A in the title back to ":".
        errors[0].starts_with("::error title=Deployment stopped%3A stateful resources at risk::")
            && errors[0].contains("Orders"),
        "{}",
        errors[0]
    );
    assert!(
        main.summary.contains("#### Deploy guard")
            && main
                .summary
                .contains("- **Orders** (AWS::DynamoDB::Table): ⛔ stopped"),
        "{}",
        main.summary
    );
    // The lock was handed on by the main step; the post step has nothing left to do.
    assert_eq!(
        main.state.get("lock_released").map(String::as_str),
        Some("true")
    );
    let status = support::runner::lock_status(&world.dynamo.env(), TABLE, "orders");
    assert_eq!(status["state"], "free", "{status}");
    assert_code(&runner.post(&main), 0, "post");
}

#[tokio::test]
async fn an_allowed_replacement_proceeds_and_on_risk_warn_proceeds_with_a_warning() {
    let world = World::start(json!({"seed": 20, "change_set_seconds": 1}), 120.0).await;
    assert_code(
        &world
            .runner(
                "1901",
                "orders-allowed",
                Some(&orders_template("orders-v1")),
            )
            .main(),
        0,
        "create",
    );
    let executes = world.sim.requests("ExecuteChangeSet");
    let mut allowed = world.runner(
        "1902",
        "orders-allowed",
        Some(&orders_template("orders-v2")),
    );
    allowed.input("allow-replacement", "Orders");
    let run = allowed.main();
    assert_code(&run, 0, "allowed");
    assert_eq!(run.output("outcome"), Some("succeeded"));
    assert_eq!(world.sim.requests("ExecuteChangeSet"), executes + 1);
    let notice = run
        .commands()
        .into_iter()
        .find(|c| c.starts_with("::notice title=Replacement allowed::"))
        .expect("the allowed replacement is said");
    assert!(
        notice.contains("Orders: AWS::DynamoDB::Table is replaced"),
        "{notice}"
    );
    assert!(
        run.summary
            .contains("- **Orders** (AWS::DynamoDB::Table): ✅ allowed by allow-replacement"),
        "{}",
        run.summary
    );

    let mut warned = world.runner(
        "1903",
        "orders-allowed",
        Some(&orders_template("orders-v3")),
    );
    warned.input("on-risk", "warn");
    let run = warned.main();
    assert_code(&run, 0, "on-risk: warn");
    assert_eq!(run.output("outcome"), Some("succeeded"));
    assert_eq!(world.sim.requests("ExecuteChangeSet"), executes + 2);
    let warnings: Vec<String> = run
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("::warning title=Stateful resources at risk::"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", run.log());
    assert!(
        warnings[0].contains("Orders") && warnings[0].contains("on-risk: warn"),
        "{}",
        warnings[0]
    );
    assert!(errors(&run).is_empty(), "{:?}", errors(&run));
}

#[tokio::test]
async fn a_reviewed_change_set_executes_once_and_a_stale_one_is_refused() {
    let world = World::start(json!({"seed": 21, "change_set_seconds": 1}), 120.0).await;
    let stack = "orders-reviewed";
    assert_code(
        &world
            .runner("2001", stack, Some(&orders_template("orders-v1")))
            .main(),
        0,
        "create",
    );
    // An earlier run made the change set and kept it (a plan job does the same); its name
    // comes from the correlation ID.
    let make = |run_id: &str, id: &str, table: &str| {
        let mut runner = world.runner(run_id, stack, Some(&orders_template(table)));
        runner
            .input("correlation-id", id)
            .input("on-risk-change-set", "keep");
        let run = runner.main();
        assert_code(&run, 1, "stopped, change set kept");
        assert!(
            run.output("failure-reason")
                .unwrap_or_default()
                .contains("the change set was kept for inspection"),
            "{}",
            run.log()
        );
    };
    make("2002", "review-1", "orders-v2");
    let creates = world.sim.requests("CreateChangeSet");
    let executes = world.sim.requests("ExecuteChangeSet");

    // The approved deploy job: no template, the change set by name, the reviewer's allowance.
    let reviewed = |run_id: &str, change_set: &str| {
        let mut runner = world.runner(run_id, stack, None);
        runner
            .input("change-set-name", change_set)
            .input("allow-replacement", "Orders");
        runner.main()
    };
    let run = reviewed("2003", "dc-review-1");
    assert_code(&run, 0, "the reviewed change set");
    assert_eq!(run.output("outcome"), Some("succeeded"));
    assert_eq!(run.output("stack-status"), Some("UPDATE_COMPLETE"));
    assert_eq!(world.sim.requests("ExecuteChangeSet"), executes + 1);
    assert_eq!(
        world.sim.requests("CreateChangeSet"),
        creates,
        "executed as it was, no new change set"
    );
    assert!(
        run.log()
            .contains("Orders AWS::DynamoDB::Table UPDATE_COMPLETE"),
        "{}",
        run.log()
    );

    // Executed once: a second approval of the same change set is refused.
    let again = reviewed("2004", "dc-review-1");
    assert_code(&again, 1, "executed already");
    let errors_again = errors(&again);
    assert_eq!(errors_again.len(), 1, "{errors_again:?}");
    assert!(
        errors_again[0].starts_with("::error title=Change set not executable::")
            && errors_again[0].contains("its execution status is EXECUTE_COMPLETE"),
        "{}",
        errors_again[0]
    );
    assert_eq!(world.sim.requests("ExecuteChangeSet"), executes + 1);

    // A change set reviewed, then the stack changed by someone else: refused, nothing executed.
    make("2005", "review-2", "orders-v3");
    world.sim.admin_post(
        &format!("start?stack={stack}&operation=update&touch=Queue"),
        None,
    );
    let runner = {
        let mut runner = world.runner("2006", stack, None);
        runner
            .input("change-set-name", "dc-review-2")
            .input("allow-replacement", "Orders");
        runner
    };
    let stale = runner.main();
    assert_code(&stale, 1, "stale");
    assert_eq!(world.sim.requests("ExecuteChangeSet"), executes + 1);
    let reason = stale.output("failure-reason").unwrap_or_default();
    assert!(
        reason.starts_with(&format!(
            "change set dc-review-2 of stack {stack} cannot be executed: the stack changed at"
        )) && reason.contains("Run the plan again"),
        "{reason}"
    );
    assert!(
        stale.summary.contains("#### Change set not executable"),
        "{}",
        stale.summary
    );
    let status = support::runner::lock_status(&world.dynamo.env(), TABLE, stack);
    assert_eq!(status["state"], "free", "{status}");
    assert_code(&runner.post(&stale), 0, "post");
}

#[tokio::test]
async fn a_table_removed_with_deletion_policy_retain_is_kept_so_the_guard_lets_it_go() {
    let world = World::start(json!({"seed": 22, "change_set_seconds": 1}), 120.0).await;
    let retained = r#"
Resources:
  Orders:
    Type: AWS::DynamoDB::Table
    DeletionPolicy: Retain
    Properties:
      TableName: orders-v1
      KeySchema: [{AttributeName: id, KeyType: HASH}]
  Queue:
    Type: AWS::SQS::Queue
"#;
    let without = "\nResources:\n  Queue:\n    Type: AWS::SQS::Queue\n";
    assert_code(
        &world
            .runner("2101", "orders-retained", Some(retained))
            .main(),
        0,
        "create",
    );
    let executes = world.sim.requests("ExecuteChangeSet");
    let run = world
        .runner("2102", "orders-retained", Some(without))
        .main();
    assert_code(&run, 0, "removal of a retained table");
    assert_eq!(world.sim.requests("ExecuteChangeSet"), executes + 1);
    assert!(
        run.summary
            .contains("- **Orders** (AWS::DynamoDB::Table): 👀 for review.")
            && run.summary.contains("DeletionPolicy Retain keeps"),
        "{}",
        run.summary
    );
    assert!(errors(&run).is_empty(), "{:?}", errors(&run));
}

#[tokio::test]
async fn a_table_replaced_inside_a_nested_stack_is_stopped_by_its_path_and_allowed_by_it() {
    // The nested stack's own change set renames (replaces) its table when Env changes.
    let ledger = |name: &str| json!({"Resources": {"Ledger": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": name}}}});
    let world = World::start(
        json!({"seed": 23, "change_set_seconds": 1,
               "nested": {"Data": {"template": ledger("ledger-a"), "next_template": ledger("ledger-b")}}}),
        120.0,
    )
    .await;
    let template = r#"
Parameters:
  Env: {Type: String}
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Data:
    Type: AWS::CloudFormation::Stack
    Properties:
      TemplateURL: https://s3.amazonaws.com/acme/data.yaml
      Parameters: {Env: !Ref Env}
"#;
    let deploy = |run_id: &str, env: &str, allow: Option<&str>| {
        let mut runner = world.runner(run_id, "ledger-app", Some(template));
        runner.input("parameters", &format!("Env={env}"));
        if let Some(allow) = allow {
            runner.input("allow-replacement", allow);
        }
        runner.main()
    };
    assert_code(&deploy("2201", "a", None), 0, "create");
    let executes = world.sim.requests("ExecuteChangeSet");

    let stopped = deploy("2202", "b", Some("Ledger"));
    assert_code(&stopped, 1, "the nested table is at risk");
    assert_eq!(world.sim.requests("ExecuteChangeSet"), executes);
    let reason = stopped.output("failure-reason").unwrap_or_default();
    assert!(
        reason.contains("Data/Ledger: AWS::DynamoDB::Table is replaced"),
        "{reason}"
    );
    // The root has no Ledger: the allowance that was meant for it is pointed out.
    assert!(
        reason.contains("allow-replacement lists Ledger, which this change set neither"),
        "{reason}"
    );

    let allowed = deploy("2203", "b", Some("Data/Ledger"));
    assert_code(&allowed, 0, "allowed by its path");
    assert_eq!(allowed.output("outcome"), Some("succeeded"));
    assert_eq!(world.sim.requests("ExecuteChangeSet"), executes + 1);
}

#[tokio::test]
async fn a_plans_change_set_id_executes_exactly_that_change_set_once_allowed() {
    let world = World::start(json!({"seed": 24, "change_set_seconds": 1}), 120.0).await;
    let stack = "orders-planned";
    assert_code(
        &world
            .runner("2301", stack, Some(&orders_template("orders-v1")))
            .main(),
        0,
        "create",
    );
    // The plan job: a change set made and left for review.
    let mut planner = world.runner("2302", stack, Some(&orders_template("orders-v2")));
    planner.input("mode", "plan");
    let plan = planner.main();
    assert_code(&plan, 0, "plan");
    assert_eq!(plan.output("risk"), Some("dangerous"));
    let id = plan
        .output("change-set-id")
        .expect("change-set-id")
        .to_string();
    assert!(id.contains(":changeSet/"), "{id}");
    let creates = world.sim.requests("CreateChangeSet");
    let executes = world.sim.requests("ExecuteChangeSet");

    // The approved deploy job, by ARN. Approval alone does not replace the table...
    let approved = |run_id: &str, allow: Option<&str>| {
        let mut runner = world.runner(run_id, stack, None);
        runner
            .input("change-set-name", &id)
            .input("on-risk-change-set", "keep");
        if let Some(allow) = allow {
            runner.input("allow-replacement", allow);
        }
        runner.main()
    };
    let stopped = approved("2303", None);
    assert_code(&stopped, 1, "approved, but the table is not allowed");
    assert_eq!(world.sim.requests("ExecuteChangeSet"), executes);
    assert!(
        stopped
            .output("failure-reason")
            .unwrap_or_default()
            .contains(&format!("stopped before executing change set {id}")),
        "{}",
        stopped.log()
    );
    // ...a reviewed allowance does, with the very change set that was planned.
    let run = approved("2304", Some("Orders"));
    assert_code(&run, 0, "approved and allowed");
    assert_eq!(run.output("outcome"), Some("succeeded"));
    assert_eq!(world.sim.requests("ExecuteChangeSet"), executes + 1);
    assert_eq!(
        world.sim.requests("CreateChangeSet"),
        creates,
        "no new change set"
    );
}

#[tokio::test]
async fn a_planned_new_stack_is_created_by_its_reviewed_change_set() {
    let world = World::start(json!({"seed": 25, "change_set_seconds": 1}), 120.0).await;
    let mut planner = world.runner("2401", "orders-new", Some(&orders_template("orders-v1")));
    planner.input("mode", "plan");
    let plan = planner.main();
    assert_code(&plan, 0, "plan of a stack that does not exist yet");
    let id = plan
        .output("change-set-id")
        .expect("change-set-id")
        .to_string();
    let mut deployer = world.runner("2402", "orders-new", None);
    deployer.input("change-set-name", &id);
    let run = deployer.main();
    assert_code(&run, 0, "the reviewed CREATE change set");
    assert_eq!(run.output("stack-status"), Some("CREATE_COMPLETE"));
    assert_eq!(world.sim.requests("CreateChangeSet"), 1, "only the plan's");
}
