//! History records in the registry table, against moto through the real SDK: the library's
//! put/list, and `history import`/`export`/`list` through the real binary.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use deploy_coordinator::history::record::{HistoryRecord, Operation, Outcome, ResourceTiming};
use deploy_coordinator::history::store;
use deploy_coordinator::registry::Registry;
use support::dynamo::{DynamoServer, Emulator};

fn record(stack: &str, i: i64) -> HistoryRecord {
    let start: DateTime<Utc> =
        "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::hours(i);
    HistoryRecord {
        stack: stack.into(),
        correlation_id: format!("20260101-{i:06}-abc1234"),
        operation: Operation::Update,
        outcome: if i % 5 == 4 {
            Outcome::RolledBack
        } else {
            Outcome::Succeeded
        },
        started_at: start,
        finished_at: start + TimeDelta::seconds(600 + i),
        rollback_started_at: None,
        resources: vec![ResourceTiming {
            logical_id: "Db".into(),
            resource_type: "AWS::RDS::DBInstance".into(),
            action: "UPDATE".into(),
            started_at: start + TimeDelta::seconds(5),
            finished_at: start + TimeDelta::seconds(590 + i),
            status: "UPDATE_COMPLETE".into(),
        }],
        estimate: None,
        lock_wait_seconds: None,
    }
}

const YEAR: Duration = store::DEFAULT_TTL;

#[tokio::test]
async fn records_come_back_newest_first_per_stack_across_pages_on_moto() {
    records_come_back_newest_first_per_stack_across_pages(Emulator::Moto).await
}

#[tokio::test]
async fn records_come_back_newest_first_per_stack_across_pages_on_dynalite() {
    records_come_back_newest_first_per_stack_across_pages(Emulator::Dynalite).await
}

async fn records_come_back_newest_first_per_stack_across_pages(emulator: Emulator) {
    let server = DynamoServer::start(emulator);
    server.create_table("reg").await;
    let reg = Registry::new(server.client().await, "reg");

    // Written out of order, plus another stack and a lock item in the same partition (a lock
    // key may equal the stack name).
    let mut written: Vec<HistoryRecord> = (0..130).map(|i| record("app", i)).collect();
    written.swap(3, 100);
    for r in &written {
        store::put(&reg, r, YEAR).await.expect("put");
    }
    store::put(&reg, &record("other", 500), YEAR)
        .await
        .expect("put");
    reg.client()
        .put_item()
        .table_name("reg")
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("app".into()),
        )
        .item(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("LOCK".into()),
        )
        .send()
        .await
        .expect("lock item");

    let all = store::list(&reg, "app", None).await.expect("list");
    assert_eq!(all.len(), 130, "more than one page of 100, all read");
    assert!(
        all.windows(2).all(|w| w[0].finished_at > w[1].finished_at),
        "newest first"
    );
    assert_eq!(all[0], record("app", 129));
    assert!(all.iter().all(|r| r.stack == "app"));

    let recent = store::list(&reg, "app", Some(5)).await.expect("list");
    assert_eq!(recent, all[..5].to_vec());

    // Storing again replaces (a post step that runs twice does not duplicate history).
    store::put(&reg, &record("app", 129), YEAR)
        .await
        .expect("put again");
    assert_eq!(store::list(&reg, "app", None).await.unwrap().len(), 130);
    assert!(store::list(&reg, "nobody", None).await.unwrap().is_empty());

    // Every stack sharing the table, for the report: both pages of the Scan.
    let everything = store::list_all(&reg).await.expect("list_all");
    assert_eq!(
        everything.len(),
        131,
        "both stacks' records, not the lock item"
    );
    assert_eq!(everything.iter().filter(|r| r.stack == "other").count(), 1);
}

#[tokio::test]
async fn a_missing_table_is_a_configuration_error() {
    let server = DynamoServer::start(Emulator::Moto);
    let reg = Registry::new(server.client().await, "absent");
    let err = store::list(&reg, "app", None).await.unwrap_err();
    assert!(
        matches!(
            err,
            deploy_coordinator::registry::RegistryError::Misconfigured { .. }
        ),
        "{err}"
    );
}

fn cli(server: &DynamoServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deploy-coordinator"))
        .args(args)
        .envs(server.env())
        .env_remove("GITHUB_ACTIONS")
        .output()
        .expect("run the binary")
}

#[tokio::test]
async fn import_export_and_list_through_the_binary() {
    let server = DynamoServer::start(Emulator::Moto);
    server.create_table("reg").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("h.json");
    let records: Vec<HistoryRecord> = (0..7).map(|i| record("app", i)).collect();
    std::fs::write(&file, serde_json::to_string_pretty(&records).unwrap()).unwrap();

    let out = cli(
        &server,
        &[
            "history",
            "import",
            "--table",
            "reg",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 7 record(s)"));

    // Export: the same records, oldest first, in the import format.
    let out = cli(
        &server,
        &["history", "export", "--table", "reg", "--stack", "app"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported: Vec<HistoryRecord> = serde_json::from_slice(&out.stdout).expect("a JSON array");
    assert_eq!(exported, records);

    let out = cli(
        &server,
        &[
            "history", "list", "--table", "reg", "--stack", "app", "--limit", "2", "--json",
        ],
    );
    let listed: Vec<HistoryRecord> = serde_json::from_slice(&out.stdout).expect("a JSON array");
    assert_eq!(listed, vec![records[6].clone(), records[5].clone()]);

    let out = cli(
        &server,
        &["history", "list", "--table", "reg", "--stack", "app"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "{text}");
    assert!(
        lines[1].contains("UPDATE") && lines[1].contains("10m 06s"),
        "{text}"
    );
    assert!(text.contains("rolled_back"), "{text}");
}

#[tokio::test]
async fn a_malformed_import_writes_nothing_and_says_where() {
    let server = DynamoServer::start(Emulator::Moto);
    server.create_table("reg").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("h.json");
    let mut records: Vec<serde_json::Value> = (0..3)
        .map(|i| serde_json::to_value(record("app", i)).unwrap())
        .collect();
    records[2]["operation"] = serde_json::json!("DEPLOY");
    std::fs::write(&file, serde_json::to_string_pretty(&records).unwrap()).unwrap();

    let out = cli(
        &server,
        &[
            "history",
            "import",
            "--table",
            "reg",
            file.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(
        err.contains("h.json: line ") && err.contains("unknown variant `DEPLOY`"),
        "{err}"
    );
    let reg = Registry::new(server.client().await, "reg");
    assert!(
        store::list(&reg, "app", None).await.unwrap().is_empty(),
        "nothing imported"
    );

    let out = cli(
        &server,
        &["history", "list", "--table", "absent", "--stack", "app"],
    );
    assert_eq!(
        out.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
