//! The whole action with Slack configured, through the real binary: one card posted and
//! updated in place, the outcome unaffected by a Slack outage, and no secret in any byte the
//! process wrote.

mod support;

use serde_json::json;
use support::cfnsim::Simulator;
use support::dynamo::{DynamoServer, Emulator};
use support::runner::{Runner, StepRun};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TABLE: &str = "deployment-registry";
const TOKEN: &str = "xoxb-111-222-SECRETTOKENVALUE";
const TEMPLATE: &str =
    "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n  Topic:\n    Type: AWS::SNS::Topic\n";

async fn world() -> (DynamoServer, Simulator) {
    let dynamo = DynamoServer::start(Emulator::Moto);
    dynamo.create_table(TABLE).await;
    let sim = Simulator::start(&json!({"seed": 1, "change_set_seconds": 1}), 30.0);
    (dynamo, sim)
}

fn runner(dynamo: &DynamoServer, sim: &Simulator, stack: &str) -> Runner {
    let mut runner = Runner::new();
    for (k, v) in dynamo.env() {
        runner.env(&k, &v);
    }
    runner
        .env("AWS_ENDPOINT_URL_CLOUDFORMATION", &sim.endpoint)
        .input("stack-name", stack)
        .input("template", "stack.yaml");
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

/// Every byte the step wrote, except the `::add-mask::` lines that hand the secret to the
/// runner's masking (the runner consumes them).
fn without_mask_commands(run: &StepRun) -> String {
    String::from_utf8_lossy(&run.all_bytes)
        .lines()
        .filter(|l| !l.trim_start().starts_with("::add-mask::"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn calls(requests: &[Request], api: &str) -> Vec<serde_json::Value> {
    requests
        .iter()
        .filter(|r| r.url.path().ends_with(api))
        .map(|r| serde_json::from_slice(&r.body).unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_card_is_posted_then_updated_in_place_and_the_token_never_leaks() {
    let (dynamo, sim) = world().await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"ok": true, "channel": "C0DEPLOY", "ts": "1700000000.000100"}),
            ),
        )
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat.update"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"ok": true, "channel": "C0DEPLOY", "ts": "1700000000.000100"}),
            ),
        )
        .mount(&slack)
        .await;
    let mut runner = runner(&dynamo, &sim, "payments");
    runner
        .input("slack-bot-token", TOKEN)
        .input("slack-channel", "#deploys")
        .input("slack-api-url", &format!("{}/api", slack.uri()));
    let (runner, main) = run_main(runner).await;
    assert_eq!(main.code(), Some(0), "{}", main.log());
    assert_eq!(main.output("slack-ts"), Some("1700000000.000100"));

    let requests = slack.received_requests().await.unwrap_or_default();
    let posts: Vec<_> = calls(&requests, "chat.postMessage")
        .into_iter()
        .filter(|b| b.get("thread_ts").is_none())
        .collect();
    assert_eq!(posts.len(), 1, "exactly one card is posted: {posts:?}");
    let updates = calls(&requests, "chat.update");
    assert!(!updates.is_empty(), "the card is updated in place");
    for update in &updates {
        assert_eq!(update["channel"], "C0DEPLOY");
        assert_eq!(update["ts"], "1700000000.000100");
    }
    let last = updates.last().unwrap().to_string();
    assert!(
        last.contains("payments")
            && main
                .output("correlation-id")
                .is_some_and(|id| last.contains(id)),
        "{last}"
    );
    for r in &requests {
        assert_eq!(
            r.headers.get("authorization").and_then(|v| v.to_str().ok()),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
    let written = without_mask_commands(&main);
    assert!(
        !written.contains(TOKEN) && !written.contains("SECRETTOKENVALUE"),
        "the token leaked:\n{written}"
    );
    let post = tokio::task::spawn_blocking(move || runner.post(&main))
        .await
        .unwrap();
    assert!(!without_mask_commands(&post).contains("SECRETTOKENVALUE"));
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_down_for_the_whole_run_changes_nothing_but_dead_letters_the_messages() {
    let (dynamo, sim) = world().await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&slack)
        .await;
    let mut runner = runner(&dynamo, &sim, "orders");
    runner
        .input("slack-bot-token", TOKEN)
        .input("slack-channel", "#deploys")
        .input("slack-api-url", &format!("{}/api", slack.uri()));
    let started = std::time::Instant::now();
    let (_runner, main) = run_main(runner).await;
    assert_eq!(
        main.code(),
        Some(0),
        "a Slack outage must not fail the deployment:\n{}",
        main.log()
    );
    assert_eq!(main.output("outcome"), Some("succeeded"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "bounded: {:?}",
        started.elapsed()
    );
    assert!(
        main.commands().iter().any(|c| c.starts_with("::warning")),
        "a warning says Slack failed:\n{}",
        main.log()
    );
    assert!(
        main.summary.to_lowercase().contains("dead letter")
            || main.summary.to_lowercase().contains("dead-letter"),
        "{}",
        main.summary
    );
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_deploy-coordinator"))
        .args(["slack", "status", "--table", TABLE, "--json"])
        .envs(dynamo.env())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success() && text.contains("orders"),
        "the dead letter is in the registry: {text}"
    );
    assert!(!text.contains("SECRETTOKENVALUE"));
    assert!(!without_mask_commands(&main).contains("SECRETTOKENVALUE"));
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_mode_posts_state_changes_only_and_the_url_never_leaks() {
    let (dynamo, sim) = world().await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/T000/B000/WEBHOOKSECRET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    // Webhooks must be https, except on a loopback address (local proxies and tests).
    let webhook = format!("{}/services/T000/B000/WEBHOOKSECRET", slack.uri());
    let mut runner = runner(&dynamo, &sim, "inventory");
    runner.input("slack-webhook-url", &webhook);
    let (_runner, main) = run_main(runner).await;
    assert_eq!(main.code(), Some(0), "{}", main.log());
    let requests = slack.received_requests().await.unwrap_or_default();
    assert!(
        requests.len() <= 3 && !requests.is_empty(),
        "state changes only (started, finished): {} posts",
        requests.len()
    );
    let written = without_mask_commands(&main);
    assert!(
        !written.contains("WEBHOOKSECRET"),
        "the webhook URL leaked:\n{written}"
    );
}

/// Hole 8 of #13: a run that timed out in the queue has posted its final card (and its
/// mention) in the main step; its post step must not overwrite it with "Cancelled" nor
/// mention again.
#[tokio::test(flavor = "multi_thread")]
async fn the_post_step_leaves_a_timed_out_runs_final_card_alone() {
    let (dynamo, sim) = world().await;
    let slack = MockServer::start().await;
    support::mount_slack_bot_api(&slack).await;
    let held = std::process::Command::new(env!("CARGO_BIN_EXE_deploy-coordinator"))
        .args([
            "lock", "acquire", "--table", TABLE, "--key", "payments", "--owner", "holder",
        ])
        .envs(dynamo.env())
        .output()
        .unwrap();
    assert!(held.status.success(), "{held:?}");
    let mut runner = runner(&dynamo, &sim, "payments");
    runner
        .input("slack-bot-token", TOKEN)
        .input("slack-channel", "#deploys")
        .input("slack-mention-on-failure", "@oncall")
        .input("slack-api-url", &format!("{}/api", slack.uri()))
        .input("lock-timeout", "2s");
    let (runner, main) = run_main(runner).await;
    assert_eq!(main.code(), Some(1), "{}", main.log());
    assert_eq!(main.output("outcome"), Some("timed-out"));
    let before = slack.received_requests().await.unwrap_or_default().len();
    let post = tokio::task::spawn_blocking(move || runner.post(&main))
        .await
        .unwrap();
    assert_eq!(post.code(), Some(0), "{}", post.log());
    let requests = slack.received_requests().await.unwrap_or_default();
    let after: Vec<String> = requests[before..]
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        after.is_empty(),
        "the post step sent {} Slack request(s) over the final card: {after:?}",
        after.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_the_guard_stopped_ends_the_card_saying_so_and_naming_the_table() {
    let (dynamo, sim) = world().await;
    let table = |name: &str| {
        format!(
            "Resources:\n  Orders:\n    Type: AWS::DynamoDB::Table\n    Properties:\n      TableName: {name}\n"
        )
    };
    let first = runner(&dynamo, &sim, "orders-card");
    std::fs::write(first.workspace().join("stack.yaml"), table("orders-v1")).unwrap();
    let (_, created) = run_main(first).await;
    assert_eq!(created.code(), Some(0), "{}", created.log());

    let slack = MockServer::start().await;
    for api in ["/api/chat.postMessage", "/api/chat.update"] {
        Mock::given(method("POST"))
            .and(path(api))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"ok": true, "channel": "C0DEPLOY", "ts": "1700000000.000200"}),
            ))
            .mount(&slack)
            .await;
    }
    let mut guarded = runner(&dynamo, &sim, "orders-card");
    std::fs::write(guarded.workspace().join("stack.yaml"), table("orders-v2")).unwrap();
    guarded
        .input("slack-bot-token", TOKEN)
        .input("slack-channel", "#deploys")
        .input("slack-api-url", &format!("{}/api", slack.uri()));
    let (_, main) = run_main(guarded).await;
    assert_eq!(main.code(), Some(1), "{}", main.log());
    let requests = slack.received_requests().await.unwrap_or_default();
    let last = calls(&requests, "chat.update")
        .last()
        .map(|b| b.to_string())
        .expect("the card's last state");
    assert!(
        last.contains("*Deployment stopped: stateful resources at risk*")
            && last.contains("Orders: AWS::DynamoDB::Table is replaced")
            && last.contains("Nothing was executed"),
        "{last}"
    );
    assert!(!last.contains("Root cause"), "nothing failed: {last}");
}
