//! `history collect` through the real binary against the CloudFormation simulator: a stack's
//! past events become history records (a create that succeeded, an update that rolled back),
//! with the resources' real timings, stored in the registry table or printed.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::{Capability, StackStatus};
use deploy_coordinator::history::record::{HistoryRecord, Operation, Outcome};
use deploy_coordinator::history::store;
use deploy_coordinator::registry::Registry;
use serde_json::json;
use support::cfnsim::Simulator;
use support::dynamo::{DynamoServer, Emulator};

const TEMPLATE: &str = r#"{"Resources": {
  "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
  "Db": {"Type": "AWS::RDS::DBInstance", "DependsOn": "Role", "Properties": {}},
  "Fn": {"Type": "AWS::Lambda::Function", "DependsOn": "Role", "Properties": {}}
}}"#;

async fn cfn(sim: &Simulator) -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&sim.endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .load()
        .await;
    Client::new(&config)
}

async fn wait_for(client: &Client, stack: &str, done: StackStatus) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = client
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .expect("describe");
        let status = out.stacks()[0].stack_status().cloned();
        if status.as_ref() == Some(&done) {
            return;
        }
        assert!(Instant::now() < deadline, "stuck at {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A stack with two operations: a CREATE (Role 20 s, then Db 300 s and Fn 10 s in parallel)
/// and an UPDATE whose Fn fails, rolled back.
async fn stack_with_history() -> Simulator {
    let scenario = json!({
        "seed": 3,
        "stack_overhead": 1.0,
        "initiated_delay": 0.5,
        "resources": {
            "Role": {"duration": 20},
            "Db": {"duration": 300},
            "Fn": {"duration": 10, "fail_update": true}
        },
        "update_changes": ["Fn"]
    });
    let sim = Simulator::start(&scenario, 100.0);
    let client = cfn(&sim).await;
    client
        .create_stack()
        .stack_name("app")
        .template_body(TEMPLATE)
        .capabilities(Capability::CapabilityIam)
        .send()
        .await
        .expect("create");
    wait_for(&client, "app", StackStatus::CreateComplete).await;
    client
        .update_stack()
        .stack_name("app")
        .use_previous_template(true)
        .capabilities(Capability::CapabilityIam)
        .send()
        .await
        .expect("update");
    wait_for(&client, "app", StackStatus::UpdateRollbackComplete).await;
    sim
}

fn collect(env: &[(String, String)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deploy-coordinator"))
        .arg("history")
        .arg("collect")
        .args(args)
        .envs(env.iter().cloned())
        .env_remove("GITHUB_ACTIONS")
        .output()
        .expect("run the binary")
}

fn check(records: &[HistoryRecord]) {
    assert_eq!(records.len(), 2, "{records:#?}");
    let create = &records[0];
    assert_eq!(
        (create.operation, create.outcome),
        (Operation::Create, Outcome::Succeeded)
    );
    let took = |id: &str| {
        create
            .resources
            .iter()
            .find(|r| r.logical_id == id)
            .map(|r| r.seconds())
            .unwrap_or_else(|| panic!("{id} missing"))
    };
    assert!((took("Role") - 20.0).abs() < 1.5, "{create:#?}");
    assert!((took("Db") - 300.0).abs() < 1.5, "{create:#?}");
    // Db and Fn ran in parallel after Role: the stack took about 20 + 300 s, not 330.
    assert!(
        create.seconds() > 320.0 && create.seconds() < 326.0,
        "{}",
        create.seconds()
    );
    let update = &records[1];
    assert_eq!(
        (update.operation, update.outcome),
        (Operation::Update, Outcome::RolledBack)
    );
    assert!(update.rollback_started_at.is_some());
    let failed = update.forward_resources().find(|r| r.logical_id == "Fn");
    assert_eq!(failed.map(|r| r.status.as_str()), Some("UPDATE_FAILED"));
    assert!(update.rollback_resources().count() >= 1, "{update:#?}");
}

#[tokio::test]
async fn past_operations_become_records() {
    let sim = stack_with_history().await;
    let env = support::dynamo::endpoint_env(&sim.endpoint);
    let out = collect(&env, &["--stack", "app", "--print"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<HistoryRecord> = serde_json::from_slice(&out.stdout).expect("JSON array");
    check(&records);

    // Stored: CloudFormation from the simulator, DynamoDB from moto.
    let dynamo = DynamoServer::start(Emulator::Moto);
    dynamo.create_table("reg").await;
    let mut env = support::dynamo::endpoint_env(&dynamo.endpoint());
    env.push((
        "AWS_ENDPOINT_URL_CLOUDFORMATION".into(),
        sim.endpoint.clone(),
    ));
    let out = collect(&env, &["--stack", "app", "--table", "reg"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("collected 2 finished operation(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let reg = Registry::new(dynamo.client().await, "reg");
    let mut stored = store::list(&reg, "app", None).await.expect("list");
    stored.reverse();
    assert_eq!(stored, records);

    // A stack that does not exist is a clear error, not an empty history.
    let env = support::dynamo::endpoint_env(&sim.endpoint);
    let out = collect(&env, &["--stack", "nope", "--print"]);
    assert_eq!(
        out.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}
