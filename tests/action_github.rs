//! The action with the GitHub API (a wiremock server in its place): deployments with their
//! statuses, and reruns that need no manual clean-up.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::cfnsim::Simulator;
use support::dynamo::{DynamoServer, Emulator};
use support::runner::{Runner, StepRun};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TABLE: &str = "deployment-registry";
const TEMPLATE: &str = "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n  Db:\n    Type: AWS::RDS::DBInstance\nOutputs:\n  ServiceUrl:\n    Value: https://payments.example\n";

struct World {
    dynamo: DynamoServer,
    sim: Simulator,
    github: MockServer,
}

async fn world(rds_seconds: u64, time_scale: f64) -> World {
    let dynamo = DynamoServer::start(Emulator::Moto);
    dynamo.create_table(TABLE).await;
    let scenario = json!({"seed": 3, "change_set_seconds": 1, "types": {"AWS::RDS::DBInstance": {"duration": rds_seconds}}});
    let sim = Simulator::start(&scenario, time_scale);
    let github = MockServer::start().await;
    World {
        dynamo,
        sim,
        github,
    }
}

fn runner(world: &World, attempt: &str) -> Runner {
    let mut runner = Runner::new();
    for (k, v) in world.dynamo.env() {
        runner.env(&k, &v);
    }
    runner
        .env("AWS_ENDPOINT_URL_CLOUDFORMATION", &world.sim.endpoint)
        .env("GITHUB_API_URL", &world.github.uri())
        .env("GITHUB_RUN_ATTEMPT", attempt)
        .input("stack-name", "payments")
        .input("template", "stack.yaml")
        .input("environment", "production")
        .input("github-token", "ghs_testtoken0000000000");
    std::fs::write(runner.workspace().join("stack.yaml"), TEMPLATE).unwrap();
    runner
}

async fn run_main(runner: Runner) -> (Runner, StepRun) {
    tokio::task::spawn_blocking(move || {
        let run = runner.main();
        (runner, run)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_github_deployment_goes_in_progress_then_success_with_the_run_as_log() {
    let world = world(60, 30.0).await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/payments/deployments"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": 4711, "environment": "production"})),
        )
        .mount(&world.github)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/payments/deployments/4711/statuses"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"id": 1, "state": "success"})),
        )
        .mount(&world.github)
        .await;
    let mut runner = runner(&world, "1");
    runner.input("github-deployment", "true");
    let (_runner, main) = run_main(runner).await;
    assert_eq!(main.code(), Some(0), "{}", main.log());
    assert_eq!(main.output("deployment-id"), Some("4711"));

    let requests = world.github.received_requests().await.unwrap_or_default();
    let create: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(create["environment"], "production");
    assert_eq!(create["ref"], "abc1234def5678abc1234def5678abc1234def56");
    assert_eq!(
        create["payload"]["correlation_id"].as_str(),
        main.output("correlation-id")
    );
    let states: Vec<serde_json::Value> = requests
        .iter()
        .filter(|r| r.url.path().ends_with("/statuses"))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(
        states
            .iter()
            .map(|s| s["state"].as_str().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["in_progress", "success"]
    );
    for state in &states {
        assert_eq!(
            state["log_url"],
            "https://github.com/acme/payments/actions/runs/4242/attempts/1"
        );
    }
    assert_eq!(
        states[1]["environment_url"], "https://payments.example",
        "the stack's URL output"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_deployments_permission_it_warns_once_and_deploys() {
    let world = world(60, 30.0).await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/payments/deployments"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"message": "Resource not accessible by integration"})),
        )
        .mount(&world.github)
        .await;
    let mut runner = runner(&world, "1");
    runner.input("github-deployment", "true");
    let (_runner, main) = run_main(runner).await;
    assert_eq!(main.code(), Some(0), "{}", main.log());
    assert_eq!(main.output("outcome"), Some("succeeded"));
    assert_eq!(main.output("deployment-id"), None);
    let warnings: Vec<String> = main
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("::warning title=GitHub deployment"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", main.log());
    assert!(
        warnings[0].contains("deployments: write"),
        "says what to add: {}",
        warnings[0]
    );
    let requests = world.github.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 1, "no status calls after a refused create");
}

/// A rerun of a run whose first attempt was killed while deploying: the second attempt takes
/// the lock over as soon as GitHub says attempt 1 is completed, with no manual clean-up.
#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_proceeds_after_the_killed_attempt_without_cleanup() {
    // RDS takes 20 s: attempt 1 dies mid-deployment, which CloudFormation finishes anyway.
    let world = world(20, 1.0).await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/payments/actions/runs/4242/attempts/1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": 4242, "run_attempt": 1, "status": "completed", "conclusion": "cancelled"}),
        ))
        .mount(&world.github)
        .await;
    // Attempt 1 takes the lock, starts deploying, and its machine dies (SIGKILL: no clean-up).
    let mut first = runner(&world, "1");
    first.input("lock-lease", "10m");
    let running = first.spawn_main();
    std::thread::sleep(Duration::from_secs(6));
    running.kill();

    // Attempt 2: the lease is 10 minutes, but GitHub says attempt 1 is over. The rerun then
    // waits for the stack (the killed attempt's operation still runs in CloudFormation).
    let second = runner(&world, "2");
    let started = Instant::now();
    let (second, main) = tokio::task::spawn_blocking(move || {
        let main = second.main();
        (second, main)
    })
    .await
    .unwrap();
    let log = main.log();
    // One event, one annotation (the lock module and the narrator both gave one before).
    assert_eq!(log.matches("title=Lock taken over").count(), 1, "{log}");
    assert!(log.contains("GitHub run is completed"), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(9 * 60),
        "well before attempt 1's lease ran out"
    );
    assert_eq!(main.output("lock-acquired"), Some("true"));
    assert_eq!(main.output("lock-fence"), Some("2"));
    let post = tokio::task::spawn_blocking(move || second.post(&main))
        .await
        .unwrap();
    assert_eq!(post.code(), Some(0));
}
