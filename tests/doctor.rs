//! `deploy-coordinator doctor` through the real binary, against moto (DynamoDB and
//! CloudFormation), a fake Slack and a fake GitHub (wiremock): a healthy setup passes, and each
//! broken part fails with its own check and the fix for it. Secrets never show up in output.

mod support;

use std::process::Output;

use serde_json::{Value, json};
use support::cli::run;
use support::dynamo::{DynamoServer, Emulator, free_port};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TABLE: &str = "deployment-registry";
const STACK: &str = "payments";
const TOKEN: &str = "xoxb-doctor-GOODSECRET-4242";
const BAD_TOKEN: &str = "xoxb-doctor-REVOKEDSECRET-1";
const GH_TOKEN: &str = "ghs_DOCTORSECRET123";
const MEMBER_CHANNEL: &str = "C0MEMBER01";
const OTHER_CHANNEL: &str = "C0NOTMEMBER";

struct World {
    dynamo: DynamoServer,
    slack: MockServer,
    github: MockServer,
}

impl World {
    async fn start() -> World {
        let dynamo = DynamoServer::start(Emulator::Moto);
        dynamo.create_table(TABLE).await;
        create_stack(&dynamo.endpoint()).await;
        World {
            dynamo,
            slack: fake_slack().await,
            github: fake_github().await,
        }
    }

    /// The environment of a healthy setup: AWS pointing at moto, Slack and GitHub tokens in
    /// variables (never on the command line), the run the token should read.
    fn env(&self) -> Vec<(String, String)> {
        let mut env = self.dynamo.env();
        env.extend(
            [
                ("SLACK_TOKEN", TOKEN),
                ("BAD_SLACK_TOKEN", BAD_TOKEN),
                ("GITHUB_TOKEN", GH_TOKEN),
                ("GITHUB_REPOSITORY", "acme/payments"),
                ("GITHUB_RUN_ID", "42"),
                ("GITHUB_RUN_ATTEMPT", "1"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env.push(("GITHUB_API_URL".into(), self.github.uri()));
        env
    }

    fn slack_api(&self) -> String {
        format!("{}/api", self.slack.uri())
    }

    /// `doctor` with Slack configured (token from SLACK_TOKEN) on `table` and `channel`.
    async fn doctor_on(&self, env: &[(String, String)], table: &str, channel: &str) -> Output {
        let api = self.slack_api();
        let args = [
            "doctor",
            "--stack",
            STACK,
            "--table",
            table,
            "--slack-api-url",
            &api,
            "--slack-token-env",
            "SLACK_TOKEN",
            "--slack-channel",
            channel,
        ];
        run(env, &args).await
    }

    async fn doctor(&self, env: &[(String, String)]) -> Output {
        self.doctor_on(env, TABLE, MEMBER_CHANNEL).await
    }
}

async fn create_stack(endpoint: &str) {
    aws_sdk_cloudformation::Client::new(&support::dynamo::sdk_config(endpoint).await)
        .create_stack()
        .stack_name(STACK)
        .template_body(r#"{"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}"#)
        .send()
        .await
        .expect("create the stack in moto");
}

async fn fake_slack() -> MockServer {
    let server = MockServer::start().await;
    let good = format!("Bearer {TOKEN}");
    Mock::given(method("GET"))
        .and(path("/api/auth.test"))
        .and(header("authorization", good.as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-oauth-scopes", "chat:write,channels:read")
                .set_body_json(
                    json!({"ok": true, "user": "deploybot", "user_id": "U1", "team": "Acme"}),
                ),
        )
        .mount(&server)
        .await;
    for (channel, member) in [(MEMBER_CHANNEL, true), (OTHER_CHANNEL, false)] {
        Mock::given(method("GET"))
            .and(path("/api/conversations.info"))
            .and(query_param("channel", channel))
            .and(header("authorization", good.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "ok": true,
                "channel": {"id": channel, "name": "deploys", "is_member": member,
                            "is_archived": false, "is_private": false}
            })))
            .mount(&server)
            .await;
    }
    // Slack answers every other token with HTTP 200 and ok:false.
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "invalid_auth"})),
        )
        .mount(&server)
        .await;
    // Incoming webhooks: a live one refuses an empty payload, a revoked one answers 404.
    Mock::given(method("POST"))
        .and(path("/services/LIVE"))
        .respond_with(ResponseTemplate::new(400).set_body_string("no_text"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/services/REVOKED"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no_service"))
        .mount(&server)
        .await;
    server
}

async fn fake_github() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/payments/actions/runs/42/attempts/1"))
        .and(header(
            "authorization",
            format!("Bearer {GH_TOKEN}").as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": 42, "status": "in_progress"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest"
        })))
        .mount(&server)
        .await;
    server
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn all(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The report line of check `name`, and the `fix:` line under it if any.
fn check<'a>(out: &'a str, name: &str) -> (&'a str, Option<&'a str>) {
    let lines: Vec<&str> = out.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no line for check {name} in:\n{out}"));
    let fix = lines
        .get(i + 1)
        .filter(|l| l.trim_start().starts_with("fix: "))
        .map(|l| l.trim_start());
    (lines[i], fix)
}

fn assert_fails(o: &Output, name: &str, fix_contains: &str) {
    let out = stdout(o);
    assert_eq!(o.status.code(), Some(1), "{}", all(o));
    let (line, fix) = check(&out, name);
    assert!(line.starts_with("FAIL  "), "{name} should fail:\n{out}");
    let fix = fix.unwrap_or_else(|| panic!("no fix under {name}:\n{out}"));
    assert!(
        fix.contains(fix_contains),
        "{name}: {fix:?} lacks {fix_contains:?}"
    );
}

fn assert_no_secret(o: &Output) {
    let text = all(o);
    for secret in [TOKEN, BAD_TOKEN, GH_TOKEN, "LIVE", "REVOKED"] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
}

#[tokio::test]
async fn a_healthy_setup_passes_and_each_broken_part_fails_with_its_fix() {
    let world = World::start().await;
    let env = world.env();

    // Healthy: every check passes, exit 0.
    let healthy = world.doctor(&env).await;
    assert_eq!(healthy.status.code(), Some(0), "{}", all(&healthy));
    let out = stdout(&healthy);
    for name in [
        "aws-region",
        "aws-credentials",
        "registry-table",
        "registry-ttl",
        "registry-permissions",
        "lock",
        "stack",
        "stack-permissions",
        "slack-auth",
        "slack-channel",
        "github",
    ] {
        let (line, fix) = check(&out, name);
        assert!(line.starts_with("PASS  "), "{name}:\n{out}");
        assert_eq!(fix, None, "{name}");
    }
    assert!(check(&out, "stack").0.contains("CREATE_COMPLETE"), "{out}");
    assert_no_secret(&healthy);

    // The permission probes wrote nothing: the table is still empty.
    let items = world
        .dynamo
        .client()
        .await
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .expect("scan");
    assert_eq!(items.count(), 0, "{:?}", items.items());

    // A missing table.
    let o = world.doctor_on(&env, "no-such-table", MEMBER_CHANNEL).await;
    assert_fails(
        &o,
        "registry-table",
        "deploy-coordinator registry create --table no-such-table",
    );

    // A table without TTL (keys right).
    let ddb = world.dynamo.client().await;
    let key = |name: &str, kind| {
        aws_sdk_dynamodb::types::KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let attr = |name: &str| {
        aws_sdk_dynamodb::types::AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    use aws_sdk_dynamodb::types::{BillingMode, KeyType};
    ddb.create_table()
        .table_name("no-ttl")
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let o = world.doctor_on(&env, "no-ttl", MEMBER_CHANNEL).await;
    assert_fails(&o, "registry-ttl", "registry create --table no-ttl");
    assert!(check(&stdout(&o), "registry-table").0.starts_with("PASS"));

    // A table with another program's key schema.
    ddb.create_table()
        .table_name("other-keys")
        .key_schema(key("id", KeyType::Hash))
        .attribute_definitions(attr("id"))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let o = world.doctor_on(&env, "other-keys", MEMBER_CHANNEL).await;
    assert_fails(&o, "registry-table", "a key schema cannot be changed");
    assert!(
        check(&stdout(&o), "registry-table")
            .0
            .contains("HASH id (S)")
    );

    // A bad Slack token: refused by auth.test; the channel check is skipped, not repeated.
    let api = world.slack_api();
    let o = run(
        &env,
        &[
            "doctor",
            "--stack",
            STACK,
            "--slack-api-url",
            &api,
            "--slack-token-env",
            "BAD_SLACK_TOKEN",
            "--slack-channel",
            MEMBER_CHANNEL,
        ],
    )
    .await;
    assert_fails(&o, "slack-auth", "slack-bot-token");
    assert!(check(&stdout(&o), "slack-auth").0.contains("invalid_auth"));
    assert!(check(&stdout(&o), "slack-channel").0.starts_with("SKIP"));
    assert_no_secret(&o);

    // The bot is not in the channel.
    let o = world.doctor_on(&env, TABLE, OTHER_CHANNEL).await;
    assert_fails(&o, "slack-channel", "/invite @deploybot");

    // A GitHub token GitHub refuses.
    let mut bad_gh = env.clone();
    bad_gh.retain(|(k, _)| k != "GITHUB_TOKEN");
    bad_gh.push(("GITHUB_TOKEN".into(), "ghs_WRONGSECRET999".into()));
    let o = world.doctor(&bad_gh).await;
    assert_fails(&o, "github", "github-token");
    assert!(!all(&o).contains("ghs_WRONGSECRET999"));
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_fast_and_names_the_fix() {
    // A closed loopback port: connection refused.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let env = support::dynamo::endpoint_env(&closed);
    let started = std::time::Instant::now();
    let o = run(
        &env,
        &["doctor", "--stack", STACK, "--github-token-env", "NONE"],
    )
    .await;
    let took = started.elapsed();
    assert_fails(&o, "registry-table", "network path to DynamoDB");
    assert_fails(&o, "stack", "network path to AWS");
    let out = stdout(&o);
    // Later registry checks are skipped instead of repeating the same failure.
    for name in [
        "registry-ttl",
        "registry-permissions",
        "lock",
        "stack-permissions",
    ] {
        assert!(check(&out, name).0.starts_with("SKIP"), "{name}:\n{out}");
    }
    assert!(
        took < std::time::Duration::from_secs(10),
        "took {took:?}:\n{out}"
    );
}

#[tokio::test]
async fn json_output_and_webhook_probes() {
    let dynamo = DynamoServer::start(Emulator::Moto);
    dynamo.create_table(TABLE).await;
    let slack = fake_slack().await;
    let mut env = dynamo.env();
    env.push(("HOOK".into(), format!("{}/services/LIVE", slack.uri())));
    env.push((
        "DEAD_HOOK".into(),
        format!("{}/services/REVOKED", slack.uri()),
    ));

    let o = run(
        &env,
        &[
            "doctor",
            "--stack",
            STACK,
            "--mode",
            "monitor",
            "--slack-webhook-env",
            "HOOK",
            "--json",
        ],
    )
    .await;
    let report: Value = serde_json::from_str(&stdout(&o)).expect("one JSON document");
    let by_name = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {report}"))
    };
    assert_eq!(by_name("slack-webhook")["verdict"], "pass", "{report}");
    // Mode monitor on a stack that does not exist: a warning, which does not fail.
    assert_eq!(by_name("stack")["verdict"], "warn", "{report}");
    assert!(
        by_name("stack")["fix"]
            .as_str()
            .unwrap()
            .contains("stack-name")
    );
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(o.status.code(), Some(0), "{}", all(&o));
    assert!(report["elapsed_ms"].as_u64().is_some());
    // Nothing was posted: the probe is an empty payload the webhook refuses.
    let posted = slack.received_requests().await.unwrap_or_default();
    assert!(
        posted.iter().all(|r| r.body.as_slice() == b"{}"),
        "{posted:?}"
    );

    let o = run(
        &env,
        &[
            "doctor",
            "--stack",
            STACK,
            "--slack-webhook-env",
            "DEAD_HOOK",
            "--json",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", all(&o));
    let report: Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(report["ok"], false);
    let hook = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "slack-webhook")
        .cloned()
        .unwrap();
    assert_eq!(hook["verdict"], "fail");
    assert!(
        hook["fix"]
            .as_str()
            .unwrap()
            .contains("new incoming webhook")
    );
    assert_no_secret(&o);

    // A secret variable that is named but missing is a usage error (2), not a check.
    let o = run(
        &env,
        &["doctor", "--stack", STACK, "--slack-webhook-env", "UNSET"],
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", all(&o));
}

#[tokio::test]
async fn preflight_stops_the_step_before_the_lock_and_lets_a_healthy_setup_through() {
    use support::runner::Runner;
    let dynamo = DynamoServer::start(Emulator::Moto);
    dynamo.create_table(TABLE).await;
    create_stack(&dynamo.endpoint()).await;
    // A registry without TTL: the preflight must fail on it.
    let ddb = dynamo.client().await;
    deploy_coordinator::registry::create_table(&ddb, "no-ttl")
        .await
        .expect("create");
    ddb.update_time_to_live()
        .table_name("no-ttl")
        .time_to_live_specification(
            aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                .enabled(false)
                .attribute_name("expires_at")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("disable TTL");

    let runner = |table: &str| {
        let mut runner = Runner::new();
        for (k, v) in dynamo.env() {
            runner.env(&k, &v);
        }
        runner
            .input("stack-name", STACK)
            .input("mode", "lock")
            .input("registry-table", table)
            .input("preflight", "true");
        runner
    };

    let failing = runner("no-ttl");
    let run = tokio::task::spawn_blocking(move || failing.main())
        .await
        .unwrap();
    assert_eq!(run.code(), Some(1), "{}", run.log());
    let commands = run.commands();
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("::group::Preflight checks")),
        "{commands:?}"
    );
    let ttl_error = commands
        .iter()
        .find(|c| c.starts_with("::error title=Preflight%3A registry-ttl::"))
        .unwrap_or_else(|| panic!("no registry-ttl error annotation: {commands:?}"));
    assert!(
        ttl_error.contains("Fix: turn it on: `deploy-coordinator registry create --table no-ttl`"),
        "{ttl_error}"
    );
    // No github-token in the test: a warning annotation, which alone would not stop the step.
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("::warning title=Preflight%3A github::")),
        "{commands:?}"
    );
    assert!(run.log().contains("FAIL  registry-ttl"), "{}", run.log());
    // Nothing was taken or announced: no state for the post step, nothing in the table.
    assert!(run.state.is_empty(), "{:?}", run.state);
    let items = ddb.scan().table_name("no-ttl").send().await.unwrap();
    assert_eq!(items.count(), 0, "{:?}", items.items());

    // The healthy registry: the checks pass and the step goes on to take the lock.
    let healthy = runner(TABLE);
    let (healthy, run) = tokio::task::spawn_blocking(move || {
        let run = healthy.main();
        (healthy, run)
    })
    .await
    .unwrap();
    assert_eq!(run.code(), Some(0), "{}", run.log());
    assert!(run.log().contains("PASS  registry-ttl"), "{}", run.log());
    assert_eq!(run.output("lock-acquired"), Some("true"), "{}", run.log());
    let post = tokio::task::spawn_blocking(move || healthy.post(&run))
        .await
        .unwrap();
    assert_eq!(post.code(), Some(0), "{}", post.log());
}

#[tokio::test]
async fn credentials_that_expire_within_fifteen_minutes_warn_with_the_fix() {
    let dynamo = DynamoServer::start(Emulator::Moto);
    dynamo.create_table(TABLE).await;
    // Temporary credentials through the SDK's own chain (credential_process), as an OIDC role
    // session hands them out: with an expiry, here ten minutes away.
    let dir = tempfile::tempdir().unwrap();
    let expires = (chrono::Utc::now() + chrono::Duration::minutes(10))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let script = dir.path().join("creds.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho '{{\"Version\": 1, \"AccessKeyId\": \"test\", \"SecretAccessKey\": \"test\", \
             \"SessionToken\": \"session\", \"Expiration\": \"{expires}\"}}'\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!("[default]\ncredential_process = {}\n", script.display()),
    )
    .unwrap();
    let mut env: Vec<(String, String)> = dynamo
        .env()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET"))
        .collect();
    env.push(("AWS_CONFIG_FILE".into(), config.display().to_string()));
    env.push((
        "AWS_SHARED_CREDENTIALS_FILE".into(),
        dir.path().join("none").display().to_string(),
    ));

    let o = run(
        &env,
        &["doctor", "--stack", STACK, "--github-token-env", "NONE"],
    )
    .await;
    let out = stdout(&o);
    let (line, fix) = check(&out, "aws-credentials");
    assert!(line.starts_with("WARN  "), "{}", all(&o));
    assert!(line.contains("valid for"), "{line}");
    assert!(
        fix.unwrap_or_default().contains("role-duration-seconds"),
        "{out}"
    );
    // A warning does not fail the doctor: everything else is healthy.
    assert_eq!(o.status.code(), Some(0), "{}", all(&o));
}
