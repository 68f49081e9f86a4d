//! Mode plan through the real binary: the simulator's change sets in detail (replacement,
//! property values, nested change sets, failures) and a wiremock GitHub that checks the
//! pull-request comment's requests. A plan never executes anything.

mod support;

use serde_json::json;
use support::cfnsim::Simulator;
use support::dynamo::{DynamoServer, Emulator};
use support::runner::{Runner, StepRun};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TABLE: &str = "deployment-registry";
const MARKER: &str = "<!-- deploy-coordinator:plan stack=payments -->";
const TEMPLATE: &str = "\
Parameters:
  Env:
    Type: String
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub orders-${Env}
      BillingMode: PAY_PER_REQUEST
  Queue:
    Type: AWS::SQS::Queue
  Data:
    Type: AWS::CloudFormation::Stack
    Properties:
      TemplateURL: https://s3.amazonaws.com/acme/data.yaml
      Parameters:
        Env: !Ref Env
";

struct World {
    dynamo: DynamoServer,
    sim: Simulator,
    github: MockServer,
}

async fn world() -> World {
    let dynamo = DynamoServer::start(Emulator::Moto);
    dynamo.create_table(TABLE).await;
    // The nested stack's table is renamed by the planned update: its own change set shows it.
    let ledger = |name: &str| json!({"Resources": {"Ledger": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": name}}}});
    let scenario = json!({
        "seed": 5,
        "change_set_seconds": 1,
        "change_set_page_size": 2,
        "defaults": {"duration": [20, 40]},
        "nested": {"Data": {"template": ledger("ledger-a"), "next_template": ledger("ledger-b")}},
    });
    World {
        dynamo,
        sim: Simulator::start(&scenario, 30.0),
        github: MockServer::start().await,
    }
}

fn runner(world: &World, mode: &str, env: &str, sha: &str, pull_request: Option<u64>) -> Runner {
    let mut runner = Runner::new();
    for (k, v) in world.dynamo.env() {
        runner.env(&k, &v);
    }
    runner
        .env("AWS_ENDPOINT_URL_CLOUDFORMATION", &world.sim.endpoint)
        .env("GITHUB_API_URL", &world.github.uri())
        .env("GITHUB_SHA", sha)
        .input("mode", mode)
        .input("stack-name", "payments")
        .input("template", "stack.yaml")
        .input("parameters", &format!("Env={env}"))
        .input("github-token", "ghs_testtoken0000000000");
    std::fs::write(runner.workspace().join("stack.yaml"), TEMPLATE).unwrap();
    if let Some(number) = pull_request {
        let event = runner.workspace().join("../pr-event.json");
        std::fs::write(
            &event,
            json!({"action": "synchronize", "pull_request": {"number": number}}).to_string(),
        )
        .unwrap();
        runner
            .env("GITHUB_EVENT_NAME", "pull_request")
            .env("GITHUB_EVENT_PATH", &event.display().to_string());
    }
    runner
}

async fn run(runner: Runner) -> StepRun {
    tokio::task::spawn_blocking(move || runner.main())
        .await
        .unwrap()
}

async fn deploy(world: &World, env: &str) {
    let main = run(runner(world, "deploy", env, "1111111aaaaaaa", None)).await;
    assert_eq!(main.code(), Some(0), "{}", main.log());
}

/// The comment requests GitHub received, as (method, path, body).
async fn comment_requests(github: &MockServer) -> Vec<(String, String, String)> {
    github
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let body = serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|b| b["body"].as_str().map(str::to_string))
                .unwrap_or_default();
            (r.method.to_string(), r.url.path().to_string(), body)
        })
        .collect()
}

fn routes(requests: &[(String, String, String)]) -> Vec<String> {
    requests
        .iter()
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_plan_creates_the_comment_and_the_next_push_updates_the_same_one() {
    let world = world().await;
    // Push 1: the pull request has someone else's comment only.
    Mock::given(method("GET"))
        .and(path("/repos/acme/payments/issues/7/comments"))
        .and(query_param("per_page", "100"))
        .and(query_param("page", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 5, "body": "LGTM once the plan is clean"}
        ])))
        .up_to_n_times(1)
        .mount(&world.github)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/payments/issues/7/comments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 99})))
        .mount(&world.github)
        .await;
    let first = run(runner(&world, "plan", "dev", "2222222bbbbbbb", Some(7))).await;
    assert_eq!(first.code(), Some(0), "{}", first.log());
    assert_eq!(first.output("outcome"), Some("succeeded"));
    assert_eq!(first.output("risk"), Some("none"), "a new stack only adds");
    let name = first.output("change-set-name").unwrap_or_default();
    assert!(name.starts_with("dc-"), "{name}");
    assert!(
        first
            .output("change-set-id")
            .is_some_and(|id| id.starts_with("arn:aws:cloudformation:") && id.contains(name)),
        "{:?}",
        first.output("change-set-id")
    );
    let changes: serde_json::Value =
        serde_json::from_str(first.output("changes").unwrap_or("null")).unwrap();
    let rows: Vec<(String, String)> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["stack_path"].as_str().unwrap_or_default().to_string(),
                c["logical_id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    // Root changes (paged two at a time by the simulator) and the nested stack's own change
    // set right after the nested stack's row.
    assert_eq!(
        rows,
        [
            ("".to_string(), "Table".to_string()),
            ("".to_string(), "Queue".to_string()),
            ("".to_string(), "Data".to_string()),
            ("Data".to_string(), "Ledger".to_string()),
        ]
    );
    let requests = comment_requests(&world.github).await;
    assert_eq!(
        routes(&requests),
        [
            "GET /repos/acme/payments/issues/7/comments",
            "POST /repos/acme/payments/issues/7/comments"
        ]
    );
    let body = &requests[1].2;
    assert!(body.starts_with(MARKER), "{body}");
    assert!(body.contains("<code>Data/Ledger</code>"), "{body}");
    assert!(body.contains("Nothing was executed"), "{body}");
    assert!(
        first.summary.contains("| Resource | Type | Action |"),
        "{}",
        first.summary
    );

    // Push 2: the pull request now has our comment (among others): it is edited, not added.
    world.github.reset().await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/payments/issues/7/comments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 5, "body": "LGTM once the plan is clean"},
            {"id": 98, "body": format!("> {MARKER}\n> quoted by a reviewer")},
            {"id": 99, "body": format!("{MARKER}\n### Plan for stack `payments`: risk 🟢 none")},
        ])))
        .mount(&world.github)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/payments/issues/comments/99"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 99})))
        .mount(&world.github)
        .await;
    let second = run(runner(&world, "plan", "dev", "3333333ccccccc", Some(7))).await;
    assert_eq!(second.code(), Some(0), "{}", second.log());
    let requests = comment_requests(&world.github).await;
    assert_eq!(
        routes(&requests),
        [
            "GET /repos/acme/payments/issues/7/comments",
            "PATCH /repos/acme/payments/issues/comments/99"
        ],
        "never a second POST"
    );
    assert!(requests[1].2.starts_with(MARKER));
    assert!(
        requests[1].2.contains("<code>3333333</code>"),
        "the new commit"
    );
    assert_eq!(
        world.sim.requests("ExecuteChangeSet"),
        0,
        "a plan executes nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_that_replaces_a_table_is_dangerous_names_it_and_executes_nothing() {
    let world = world().await;
    deploy(&world, "dev").await;
    assert_eq!(world.sim.requests("ExecuteChangeSet"), 1);

    // A push event: no pull request, so no comment, said once.
    let main = run(runner(&world, "plan", "prod", "4444444ddddddd", None)).await;
    assert_eq!(main.code(), Some(0), "{}", main.log());
    assert_eq!(main.output("risk"), Some("dangerous"));
    let warning = main
        .commands()
        .into_iter()
        .find(|c| c.starts_with("::warning title=payments%3A dangerous changes::"))
        .unwrap_or_else(|| panic!("{}", main.log()));
    assert!(
        warning.contains("Table: AWS::DynamoDB::Table is replaced"),
        "{warning}"
    );
    assert!(
        warning.contains("Data/Ledger: AWS::DynamoDB::Table is replaced"),
        "{warning}"
    );
    let summary = &main.summary;
    assert!(
        summary.contains("<code>TableName</code>: <code>orders-dev</code> → <code>orders-prod</code> (parameter <code>Env</code>) — requires replacement"),
        "{summary}"
    );
    assert!(
        summary.contains("<code>TableName</code>: <code>ledger-a</code> → <code>ledger-b</code>"),
        "{summary}"
    );
    assert!(summary.contains("Expected duration: about"), "{summary}");
    assert_eq!(
        main.log()
            .matches("no pull request in this run's event")
            .count(),
        1
    );
    assert!(comment_requests(&world.github).await.is_empty());
    // The simulator proves it: nothing executed, the stack as the deploy left it.
    assert_eq!(world.sim.requests("ExecuteChangeSet"), 1);
    let changes: serde_json::Value =
        serde_json::from_str(main.output("changes").unwrap_or("null")).unwrap();
    let table = changes
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["logical_id"] == "Table")
        .unwrap();
    assert_eq!(table["replacement"], "True");
    assert_eq!(table["risk"], "dangerous");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_with_no_changes_says_so_and_a_broken_template_is_the_plans_result() {
    let world = world().await;
    deploy(&world, "dev").await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/payments/issues/8/comments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&world.github)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/payments/issues/8/comments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 100})))
        .mount(&world.github)
        .await;
    let main = run(runner(&world, "plan", "dev", "5555555eeeeeee", Some(8))).await;
    assert_eq!(
        main.code(),
        Some(0),
        "no changes is no failure: {}",
        main.log()
    );
    assert_eq!(main.output("outcome"), Some("no-changes"));
    assert_eq!(main.output("risk"), Some("none"));
    assert_eq!(main.output("changes"), Some("[]"));
    assert!(main.summary.contains("no changes"), "{}", main.summary);
    let requests = comment_requests(&world.github).await;
    assert!(
        requests
            .last()
            .is_some_and(|(m, _, b)| m == "POST" && b.contains("Nothing to change")),
        "{requests:?}"
    );

    // A template CloudFormation cannot read: shown with its cause, the step fails.
    let broken = runner(&world, "plan", "dev", "6666666fffffff", None);
    std::fs::write(
        broken.workspace().join("stack.yaml"),
        "Resources:\n  Fn:\n    Type: AWS::Lambda::Function\n    Properties:\n      Role: !GetAtt Missing.Arn\n",
    )
    .unwrap();
    let main = run(broken).await;
    assert_eq!(main.code(), Some(1), "{}", main.log());
    assert_eq!(main.output("outcome"), Some("failed"));
    assert!(
        main.summary.contains("could not be created"),
        "{}",
        main.summary
    );
    assert!(main.summary.contains("Missing"), "{}", main.summary);
    assert_eq!(
        world.sim.requests("ExecuteChangeSet"),
        1,
        "only the deploy executed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_comment_is_found_on_a_later_page_and_a_github_refusal_only_warns() {
    let world = world().await;
    // 100 other comments fill page 1; ours is on page 2.
    let others: Vec<serde_json::Value> = (1..=100)
        .map(|id| json!({"id": id, "body": format!("comment {id}")}))
        .collect();
    Mock::given(method("GET"))
        .and(path("/repos/acme/payments/issues/9/comments"))
        .and(query_param("page", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!(others)))
        .mount(&world.github)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/payments/issues/9/comments"))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{"id": 777, "body": format!("{MARKER}\nold plan")}])),
        )
        .mount(&world.github)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/payments/issues/comments/777"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 777})))
        .mount(&world.github)
        .await;
    let main = run(runner(&world, "plan", "dev", "7777777aaaaaaa", Some(9))).await;
    assert_eq!(main.code(), Some(0), "{}", main.log());
    assert_eq!(
        routes(&comment_requests(&world.github).await),
        [
            "GET /repos/acme/payments/issues/9/comments",
            "GET /repos/acme/payments/issues/9/comments",
            "PATCH /repos/acme/payments/issues/comments/777"
        ]
    );

    // Without `pull-requests: write`: one warning that says what to add; the plan stands.
    world.github.reset().await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/payments/issues/9/comments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&world.github)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/payments/issues/9/comments"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"message": "Resource not accessible by integration"})),
        )
        .mount(&world.github)
        .await;
    let main = run(runner(&world, "plan", "dev", "8888888bbbbbbb", Some(9))).await;
    assert_eq!(main.code(), Some(0), "{}", main.log());
    assert_eq!(main.output("outcome"), Some("succeeded"));
    let warnings: Vec<String> = main
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("::warning title=Plan comment not written::"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("pull-requests: write"),
        "{}",
        warnings[0]
    );
    assert!(main.summary.contains("| Resource | Type | Action |"));
    assert_eq!(world.sim.requests("ExecuteChangeSet"), 0);
}
