//! Every place real CloudFormation puts the reason a deployment failed, through the real
//! binary in mode deploy: the step's outputs (`failure-reason`, `failed-resource`), the job
//! summary and the Slack card must say it, and what was left behind or the next step out of a
//! stuck stack too. What an on-call engineer reading a failed deploy at 3 a.m. needs on one
//! screen. The simulator plays each case as the real streams of tests/fixtures/real-events
//! (or the AWS page cited in simulator/README.md) show it.

mod support;

use serde_json::{Value, json};
use support::cfnsim::Simulator;
use support::dynamo::{DynamoServer, Emulator};
use support::runner::{Runner, StepRun};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TABLE: &str = "deployment-registry";

const TEMPLATE: &str = r#"
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties: {AssumeRolePolicyDocument: {}}
  Bucket:
    Type: AWS::S3::Bucket
    Properties: {BucketName: reports-prod}
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      Role: !GetAtt Role.Arn
"#;

/// A deployment and everything a person reads about it.
struct Seen {
    run: StepRun,
    /// The last state of the Slack card (its text and blocks).
    card: String,
    executed: u64,
}

struct World {
    dynamo: DynamoServer,
    sim: Simulator,
    slack: MockServer,
}

impl World {
    async fn start(scenario: Value) -> World {
        let dynamo = DynamoServer::start(Emulator::Moto);
        dynamo.create_table(TABLE).await;
        let sim = Simulator::start(&scenario, 200.0);
        let slack = MockServer::start().await;
        World { dynamo, sim, slack }
    }

    async fn deploy(&self, stack: &str, template: &str) -> Seen {
        self.deploy_with(stack, template, &[]).await
    }

    /// [`Self::deploy`] with more inputs.
    async fn deploy_with(&self, stack: &str, template: &str, inputs: &[(&str, &str)]) -> Seen {
        // A new card per deployment: what the last update says is this one's.
        self.slack.reset().await;
        for api in ["/api/chat.postMessage", "/api/chat.update"] {
            Mock::given(method("POST"))
                .and(path(api))
                .respond_with(ResponseTemplate::new(200).set_body_json(
                    json!({"ok": true, "channel": "C0DEPLOY", "ts": "1700000000.000100"}),
                ))
                .mount(&self.slack)
                .await;
        }
        let before = self.sim.requests("ExecuteChangeSet");
        let mut runner = Runner::new();
        for (k, v) in self.dynamo.env() {
            runner.env(&k, &v);
        }
        std::fs::write(runner.workspace().join("stack.yaml"), template).unwrap();
        runner
            .env("AWS_ENDPOINT_URL_CLOUDFORMATION", &self.sim.endpoint)
            .input("stack-name", stack)
            .input("template", "stack.yaml")
            .input("capabilities", "CAPABILITY_IAM")
            .input("slack-bot-token", "xoxb-1-2-TESTTOKEN")
            .input("slack-channel", "#deploys")
            .input("slack-api-url", &format!("{}/api", self.slack.uri()));
        for (name, value) in inputs {
            runner.input(name, value);
        }
        let run = tokio::task::spawn_blocking(move || runner.main())
            .await
            .unwrap();
        let requests = self.slack.received_requests().await.unwrap_or_default();
        let card = requests
            .iter()
            .rfind(|r| r.url.path().ends_with("chat.update"))
            .map(|r| String::from_utf8_lossy(&r.body).to_string())
            .unwrap_or_default();
        let executed = self.sim.requests("ExecuteChangeSet") - before;
        Seen {
            run,
            card,
            executed,
        }
    }
}

/// The text a person reads on the card: the JSON body with its escapes undone.
fn card_text(card: &str) -> String {
    let v: Value = serde_json::from_str(card).unwrap_or_default();
    let mut out = v["text"].as_str().unwrap_or_default().to_string();
    for block in v["blocks"].as_array().into_iter().flatten() {
        out.push('\n');
        out.push_str(&block.to_string().replace("\\n", "\n").replace("\\\"", "\""));
    }
    out
}

/// Markdown as it reads once rendered: the summary escapes Markdown's punctuation.
fn unescaped(markdown: &str) -> String {
    let mut out = String::new();
    let mut chars = markdown.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek().is_some_and(|n| n.is_ascii_punctuation()) {
            continue;
        }
        out.push(c);
    }
    out
}

/// The reason is where a person looks for it: the output, the job summary, the card, and an
/// error annotation.
fn assert_said_everywhere(seen: &Seen, resource: Option<&str>, reason: &str) {
    let run = &seen.run;
    let log = run.log();
    assert_eq!(run.code(), Some(1), "{log}");
    assert_eq!(run.output("failed-resource"), resource, "{log}");
    assert!(
        run.output("failure-reason")
            .is_some_and(|r| r.contains(reason)),
        "failure-reason {:?} should say {reason:?}\n{log}",
        run.output("failure-reason")
    );
    assert!(run.summary.contains("Root cause"), "{}", run.summary);
    assert!(
        unescaped(&run.summary).contains(reason),
        "the summary should say {reason:?}:\n{}",
        run.summary
    );
    let card = card_text(&seen.card);
    assert!(card.contains("Root cause"), "{card}");
    assert!(
        card.contains(reason),
        "the card should say {reason:?}: {card}"
    );
    let errors: Vec<String> = run
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("::error"))
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&reason[..reason.len().min(40)])),
        "an error annotation should say it: {errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_resource_failure_going_forward_is_the_cause() {
    let world = World::start(json!({"seed": 1, "change_set_seconds": 1,
        "resources": {"Fn": {"duration": 5, "fail": "Resource handler returned message: \"The role defined for the function cannot be assumed by Lambda.\""}}}))
    .await;
    let seen = world.deploy("api", TEMPLATE).await;
    assert_said_everywhere(
        &seen,
        Some("Fn"),
        "The role defined for the function cannot be assumed by Lambda.",
    );
    assert_eq!(seen.run.output("stack-status"), Some("ROLLBACK_COMPLETE"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_said_only_on_the_stacks_rollback_event_is_the_cause() {
    // real-events/09: "Attribute 'PublicIp' does not exist. Rollback requested by user.",
    // and no resource failed.
    let world = World::start(json!({"seed": 2, "change_set_seconds": 1,
        "resources": {"Fn": {"fail_resolve": "Attribute 'Arn' does not exist"}}}))
    .await;
    let seen = world.deploy("api", TEMPLATE).await;
    assert_said_everywhere(&seen, None, "Attribute 'Arn' does not exist");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nested_stacks_own_first_failure_is_the_cause_not_the_parents_summary() {
    let nested = r#"
Resources:
  Network:
    Type: AWS::CloudFormation::Stack
    Properties: {TemplateURL: https://example.com/network.yaml}
"#;
    let world = World::start(json!({"seed": 3, "change_set_seconds": 1,
        "nested": {"Network": {
            "template": {"Resources": {"Vpc": {"Type": "AWS::EC2::VPC"},
                                       "Subnet": {"Type": "AWS::EC2::Subnet"}}},
            "resources": {"Subnet": {"fail": "The CIDR '10.0.0.0/16' conflicts with another subnet"}}}}}))
    .await;
    let seen = world.deploy("net", nested).await;
    assert_said_everywhere(
        &seen,
        Some("Network/Subnet"),
        "The CIDR '10.0.0.0/16' conflicts with another subnet",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_set_that_cannot_be_created_is_the_cause_and_nothing_is_executed() {
    let reason = "Template format error: Unresolved resource dependencies [Missing] in the Resources block of the template";
    let world =
        World::start(json!({"seed": 4, "change_set_seconds": 1, "change_set_failure": reason}))
            .await;
    let seen = world.deploy("api", TEMPLATE).await;
    assert_said_everywhere(&seen, None, reason);
    assert_eq!(seen.executed, 0, "nothing was executed");
    assert_eq!(seen.run.output("outcome"), Some("failed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_early_validation_failure_names_the_resource_the_check_and_the_place() {
    let world = World::start(json!({"seed": 5, "change_set_seconds": 1,
        "early_validation": [{"logical": "Bucket", "name": "NAME_CONFLICT_VALIDATION",
            "reason": "Resource of type 'AWS::S3::Bucket' with identifier 'reports-prod' already exists.",
            "path": "/Resources/Bucket/Properties/BucketName", "mode": "FAIL"}]}))
    .await;
    let seen = world.deploy("api", TEMPLATE).await;
    assert_said_everywhere(
        &seen,
        Some("Bucket"),
        "Resource of type 'AWS::S3::Bucket' with identifier 'reports-prod' already exists.",
    );
    let reason = seen.run.output("failure-reason").unwrap_or_default();
    assert!(
        reason.contains("NAME_CONFLICT_VALIDATION")
            && reason.contains("/Resources/Bucket/Properties/BucketName"),
        "which check, and where in the template: {reason}"
    );
    assert_eq!(seen.executed, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_that_fails_a_resource_is_the_cause_with_the_hooks_words() {
    // real-events/28: the failure sits on a CREATE_IN_PROGRESS event's HookStatus.
    let message = "Hook failed with message: Template failed validation, the following rule(s) failed: s3_encryption_enabled.";
    let world = World::start(json!({"seed": 6, "change_set_seconds": 1,
        "resources": {"Bucket": {"hook": {"type": "Private::Guard::S3SecurityGuardHook",
            "fail": message, "mode": "FAIL"}}}}))
    .await;
    let seen = world.deploy("api", TEMPLATE).await;
    assert_said_everywhere(&seen, Some("Bucket"), message);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resource_a_clean_up_could_not_delete_is_a_warning_on_a_successful_update() {
    // real-events/23: "Update successful. One or more resources could not be deleted."
    let world = World::start(json!({"seed": 7, "change_set_seconds": 1,
        "delete_attempts": 2, "delete_retry_seconds": 2,
        "resources": {"Bucket": {"fail_delete": "The bucket you tried to delete is not empty"}}}))
    .await;
    let first = world.deploy("api", TEMPLATE).await;
    assert_eq!(first.run.code(), Some(0), "{}", first.run.log());
    let without_bucket = TEMPLATE.replace(
        "  Bucket:\n    Type: AWS::S3::Bucket\n    Properties: {BucketName: reports-prod}\n",
        "",
    );
    // Removing a bucket is what the deploy guard stops by default (on-risk: fail): this
    // deployment means it, as a user would say with allow-replacement.
    let seen = world
        .deploy_with("api", &without_bucket, &[("allow-replacement", "Bucket")])
        .await;
    let run = &seen.run;
    assert_eq!(
        run.code(),
        Some(0),
        "the update itself succeeded\n{}",
        run.log()
    );
    assert_eq!(run.output("outcome"), Some("succeeded"));
    assert!(run.summary.contains("#### Warnings"), "{}", run.summary);
    assert!(
        unescaped(&run.summary).contains("Bucket") && run.summary.contains("is not empty"),
        "{}",
        run.summary
    );
    let card = card_text(&seen.card);
    assert!(
        card.contains(":warning:") && card.contains("Bucket"),
        "{card}"
    );
    assert!(
        run.commands()
            .iter()
            .any(|c| c.starts_with("::warning") && c.contains("Bucket")),
        "a warning annotation names it:\n{}",
        run.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_that_fails_says_the_exact_command_that_continues_it() {
    let world = World::start(json!({"seed": 8, "change_set_seconds": 1,
        "update_changes": ["Role", "Fn"],
        "resources": {
            "Fn": {"fail_update": "Resource handler returned message: \"Runtime nodejs12.x is no longer supported\""},
            "Role": {"fail_rollback": "Role was deleted outside CloudFormation"}}}))
    .await;
    let first = world.deploy("api", TEMPLATE).await;
    assert_eq!(first.run.code(), Some(0), "{}", first.run.log());
    let changed = format!("{TEMPLATE}      Timeout: 30\n");
    let seen = world.deploy("api", &changed).await;
    let run = &seen.run;
    assert_said_everywhere(
        &seen,
        Some("Fn"),
        "Runtime nodejs12.x is no longer supported",
    );
    assert_eq!(run.output("stack-status"), Some("UPDATE_ROLLBACK_FAILED"));
    let step = "aws cloudformation continue-update-rollback --stack-name api";
    assert!(run.summary.contains("#### Next step"), "{}", run.summary);
    assert!(unescaped(&run.summary).contains(step), "{}", run.summary);
    assert!(
        unescaped(&run.summary).contains("--resources-to-skip Role"),
        "{}",
        run.summary
    );
    let card = card_text(&seen.card);
    assert!(card.contains("Next step") && card.contains(step), "{card}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_whose_rollback_fails_says_the_stack_can_only_be_deleted() {
    // real-events/10: ROLLBACK_FAILED, "The following resource(s) failed to delete".
    let world = World::start(json!({"seed": 9, "change_set_seconds": 1,
        "resources": {
            "Fn": {"duration": 8, "fail": "Resource handler returned message: \"Function code too large\""},
            "Role": {"fail_delete": "User is not authorized to perform: iam:DetachRolePolicy"}}}))
    .await;
    let seen = world.deploy("api", TEMPLATE).await;
    let run = &seen.run;
    assert_said_everywhere(&seen, Some("Fn"), "Function code too large");
    assert_eq!(run.output("stack-status"), Some("ROLLBACK_FAILED"));
    assert!(
        unescaped(&run.summary).contains("aws cloudformation delete-stack --stack-name api"),
        "{}",
        run.summary
    );
    assert!(
        unescaped(&run.summary).contains("iam:DetachRolePolicy"),
        "{}",
        run.summary
    );
}
