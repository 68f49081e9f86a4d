//! `registry create` through the real binary, on moto and dynalite: the table the lock needs
//! (pk/sk strings, on-demand, TTL on expires_at), created once, left alone the second time.

mod support;

use std::process::Output;

use aws_sdk_dynamodb::types::{BillingMode, KeyType, TimeToLiveStatus};
use support::dynamo::{DynamoServer, Emulator};

fn create(server: &DynamoServer, table: &str) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_deploy-coordinator"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(server.env())
        .args(["registry", "create", "--table", table])
        .output()
        .unwrap()
}

async fn creates_the_table_once(emulator: Emulator) {
    let server = DynamoServer::start(emulator);
    let first = create(&server, "deployment-registry");
    assert!(first.status.success(), "{first:?}");
    assert!(String::from_utf8_lossy(&first.stdout).contains("created table deployment-registry"));
    let again = create(&server, "deployment-registry");
    assert!(again.status.success(), "{again:?}");
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already exists"),
        "{again:?}"
    );

    let client = server.client().await;
    let described = client
        .describe_table()
        .table_name("deployment-registry")
        .send()
        .await
        .unwrap();
    let table = described.table().unwrap();
    let keys: Vec<_> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name().to_string(), k.key_type().clone()))
        .collect();
    assert_eq!(
        keys,
        [
            ("pk".to_string(), KeyType::Hash),
            ("sk".to_string(), KeyType::Range)
        ]
    );
    assert_eq!(
        table.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    if emulator == Emulator::Moto {
        // dynalite does not implement TTL; moto does, like DynamoDB.
        let ttl = client
            .describe_time_to_live()
            .table_name("deployment-registry")
            .send()
            .await
            .unwrap();
        let ttl = ttl.time_to_live_description().unwrap();
        assert_eq!(ttl.attribute_name(), Some("expires_at"));
        assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    }
}

#[tokio::test]
async fn creates_the_table_once_on_moto() {
    creates_the_table_once(Emulator::Moto).await
}

#[tokio::test]
async fn creates_the_table_once_on_dynalite() {
    creates_the_table_once(Emulator::Dynalite).await
}

#[test]
fn an_invalid_table_name_is_a_configuration_error() {
    let server = DynamoServer::start(Emulator::Dynalite);
    let o = create(&server, "a");
    assert_eq!(o.status.code(), Some(78), "{o:?}");
}
