//! `slack status` and `slack retry` through the real binary, against moto (dead letters) and a
//! fake Slack (wiremock). Secrets come from environment variables and never show up in output.

mod support;

use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deploy_coordinator::registry::Registry;
use deploy_coordinator::slack::client::{SlackApi, Webhook};
use deploy_coordinator::slack::{
    Card, DeadLetterStore, Destination, Notifier, NotifierOptions, Outcome, Phase, ThreadEvent,
};
use serde_json::{Value, json};
use support::cli::{run, text};
use support::dynamo::{DynamoServer, Emulator, free_port};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TABLE: &str = "registry";
const TOKEN: &str = "xoxb-cli-test-token-987654";
const HOOK_SECRET: &str = "HOOKSECRET1234";

/// `deploy-coordinator slack SUB --table TABLE ARGS…`
async fn slack_cmd(env: &[(String, String)], sub: &str, args: &[&str]) -> Output {
    let mut argv = vec!["slack", sub, "--table", TABLE];
    argv.extend_from_slice(args);
    run(env, &argv).await
}

/// A Slack that records every body and answers like Slack does.
async fn fake_slack() -> (MockServer, Arc<Mutex<Vec<(String, Value)>>>) {
    let server = MockServer::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    Mock::given(any())
        .respond_with(move |req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let path = req.url.path().to_string();
            let n = {
                let mut l = log.lock().unwrap();
                l.push((path.clone(), body.clone()));
                l.len()
            };
            if path.starts_with("/services/") {
                return ResponseTemplate::new(200).set_body_string("ok");
            }
            let auth = req
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if auth != Some(&format!("Bearer {TOKEN}")) {
                return ResponseTemplate::new(200)
                    .set_body_json(json!({"ok": false, "error": "invalid_auth"}));
            }
            ResponseTemplate::new(200).set_body_json(json!({
                "ok": true, "channel": "C0CLI", "ts": format!("1800000000.{n:06}")
            }))
        })
        .mount(&server)
        .await;
    (server, seen)
}

fn card(phase: Phase, correlation: &str) -> Card {
    Card {
        stack: "app".into(),
        stack_id: None,
        environment: None,
        correlation_id: correlation.into(),
        mode: "deploy".into(),
        repository: None,
        actor: None,
        commit: None,
        commit_message: None,
        git_ref: None,
        server_url: None,
        run_url: None,
        region: None,
        phase,
    }
}

fn fast() -> NotifierOptions {
    NotifierOptions {
        backoff_base: Duration::from_millis(10),
        max_attempts: 2,
        update_interval: Duration::from_millis(10),
        request_timeout: Duration::from_millis(200),
        dead_letter_timeout: Duration::from_secs(10),
    }
}

/// Runs a short deployment against a Slack that is down; returns after the dead letter is
/// stored.
async fn dead_letter(registry: &Registry, destination: Destination, correlation: &str) {
    let n = Notifier::start(destination, "prod", correlation, None, fast());
    n.card(&card(
        Phase::Finished {
            outcome: Outcome::Failed,
            duration: Duration::from_secs(90),
            root_cause: None,
            stack_status: None,
            mention: None,
            warnings: Vec::new(),
            next_step: None,
        },
        correlation,
    ));
    n.thread(&ThreadEvent::Note(
        "::set-output name=outcome::succeeded".into(),
    ));
    let report = n.flush(Duration::from_millis(300), Some(registry)).await;
    assert_eq!(
        report.dead_lettered,
        if correlation.contains("hook") { 1 } else { 2 }
    );
    assert!(
        matches!(report.store, DeadLetterStore::Registry { .. }),
        "{report:?}"
    );
}

/// A bot destination whose Slack API is at `base` (a closed port: Slack is down).
fn bot_to(base: &str) -> Destination {
    Destination::Bot {
        api: SlackApi::new(&format!("{base}/api"), TOKEN, Duration::from_millis(200)).unwrap(),
        channel: "#deploys".into(),
    }
}

#[tokio::test]
async fn status_lists_and_retry_resends_dead_letters_without_showing_secrets() {
    let moto = DynamoServer::start(Emulator::Moto);
    moto.create_table(TABLE).await;
    let registry = Registry::new(moto.client().await, TABLE);
    let down = format!("http://127.0.0.1:{}", free_port());
    dead_letter(&registry, bot_to(&down), "corr-bot").await;
    let hook = Webhook::new(
        &format!("{down}/services/T/B/{HOOK_SECRET}"),
        Duration::from_millis(200),
    )
    .unwrap();
    dead_letter(&registry, Destination::Webhook(hook), "corr-hook").await;

    let (slack, seen) = fake_slack().await;
    let mut env = moto.env();
    env.push(("DC_SLACK_TOKEN".into(), TOKEN.into()));
    env.push((
        "DC_SLACK_HOOK".into(),
        format!("{}/services/T/B/{HOOK_SECRET}", slack.uri()),
    ));
    let api_url = format!("{}/api", slack.uri());

    // status: both items, readable, nothing that can act as a workflow command.
    let o = slack_cmd(&env, "status", &[]).await;
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("corr-bot") && out.contains("corr-hook"),
        "{out}"
    );
    assert!(
        out.contains("channel #deploys") && out.contains("webhook"),
        "{out}"
    );
    for line in out.lines() {
        assert!(!line.trim_start().starts_with("::"), "{line}");
    }
    let o = slack_cmd(&env, "status", &["--json"]).await;
    let items: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(items.as_array().map(Vec::len), Some(2));

    // A missing variable is an argument error that names it.
    let o = slack_cmd(&env, "retry", &["--token-env", "NOPE"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("NOPE"));

    // The token resends the bot item; the webhook item needs the webhook.
    let o = slack_cmd(
        &env,
        "retry",
        &["--token-env", "DC_SLACK_TOKEN", "--api-url", &api_url],
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(1),
        "the webhook item is left: {}",
        text(&o)
    );
    assert!(text(&o).contains("corr-bot: delivered"), "{}", text(&o));
    assert!(text(&o).contains("corr-hook: skipped"), "{}", text(&o));
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].0, "/api/chat.postMessage");
        assert_eq!(seen[0].1["channel"], "#deploys");
        assert_eq!(
            seen[1].1["thread_ts"], "1800000000.000001",
            "the reply goes to the new card"
        );
    }
    let o = slack_cmd(&env, "retry", &["--webhook-env", "DC_SLACK_HOOK"]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert!(seen.lock().unwrap()[2].0.ends_with(HOOK_SECRET));

    let o = slack_cmd(&env, "status", &[]).await;
    assert!(
        text(&o).contains("no undelivered Slack messages"),
        "{}",
        text(&o)
    );
    // Nothing is sent twice.
    let o = slack_cmd(&env, "retry", &["--webhook-env", "DC_SLACK_HOOK"]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn secrets_in_arguments_are_refused_and_never_printed() {
    let moto = DynamoServer::start(Emulator::Moto);
    moto.create_table(TABLE).await;
    let mut env = moto.env();
    env.push(("DC_SLACK_TOKEN".into(), TOKEN.into()));
    // There is no option that takes the token itself.
    let o = slack_cmd(&env, "retry", &["--token", TOKEN]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // A failing retry (Slack refuses the token) prints no token.
    let registry = Registry::new(moto.client().await, TABLE);
    let down = format!("http://127.0.0.1:{}", free_port());
    dead_letter(&registry, bot_to(&down), "corr-bot").await;
    env.push(("WRONG_TOKEN".into(), "xoxb-wrong-token-000".into()));
    let (slack, _) = fake_slack().await;
    let api_url = format!("{}/api", slack.uri());
    let o = slack_cmd(
        &env,
        "retry",
        &["--token-env", "WRONG_TOKEN", "--api-url", &api_url],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("invalid_auth"), "{}", text(&o));
    assert!(!text(&o).contains("xoxb-wrong-token-000"), "{}", text(&o));
    assert!(!text(&o).contains(TOKEN));
}
