//! The registry: one DynamoDB table that holds locks, queue tickets, history and dead letters.
//!
//! This module knows the table (its creation, key layout, item helpers and error classes); what
//! the items mean belongs to the modules that write them (`crate::lock`, history, Slack).

mod error;
pub mod item;
pub mod keys;

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification,
};

pub use error::RegistryError;

use crate::lock::clock::WallClock;
pub(crate) use error::classify;

/// Name of the TTL attribute (epoch seconds). Clean-up only: DynamoDB deletes expired items
/// "typically within two days", so nothing may rely on it for correctness.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// A handle on the registry table. Cheap to clone (the SDK client is reference-counted).
#[derive(Debug, Clone)]
pub struct Registry {
    client: Client,
    table: String,
    clock: WallClock,
}

/// How long one attempt of a registry call may take, connection included. DynamoDB answers
/// in milliseconds; an attempt still open after this is hung (a stalled connection, a black
/// hole), and the SDK tries again on a new connection.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one registry call may take in all, its retries included. A call that runs out
/// counts as the registry being unavailable (the outage budget and the fallback decide).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Connecting is part of the attempt; a refused or black-holed connection fails sooner.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// `client` with the registry's timeouts where it has none of its own: without them the SDK
/// waits for an answer forever, and a hung heartbeat or release would hang the step.
fn with_timeouts(client: Client) -> Client {
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    let current = client.config().timeout_config();
    let has = |f: fn(&TimeoutConfig) -> Option<Duration>| current.and_then(f).is_some();
    if has(TimeoutConfig::operation_timeout) && has(TimeoutConfig::operation_attempt_timeout) {
        return client;
    }
    let mut timeouts = TimeoutConfig::builder()
        .operation_timeout(OPERATION_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(read) = current.and_then(TimeoutConfig::read_timeout) {
        timeouts = timeouts.read_timeout(read);
    }
    let conf = client
        .config()
        .to_builder()
        .timeout_config(timeouts.build())
        .build();
    Client::from_conf(conf)
}

impl Registry {
    /// A handle on `table` through `client`. Every call gets an operation timeout and an
    /// attempt timeout ([`OPERATION_TIMEOUT`], [`ATTEMPT_TIMEOUT`]) unless the client already
    /// has both.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Registry {
            client: with_timeouts(client),
            table: table.into(),
            clock: WallClock::system(),
        }
    }

    /// Uses `clock` for every wall-clock time written to the table (times people read, queue
    /// order). Staleness never uses it. Tests skew it; see [`WallClock::from_env`].
    pub fn with_clock(mut self, clock: WallClock) -> Self {
        self.clock = clock;
        self
    }

    pub fn clock(&self) -> &WallClock {
        &self.clock
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

/// What [`create_table`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Created,
    AlreadyExisted,
}

/// Creates the registry table (pk/sk strings, on-demand, TTL on `expires_at`) and waits until it
/// is ACTIVE. Idempotent: an existing table is left as it is (its TTL setting is completed if
/// missing).
pub async fn create_table(client: &Client, table: &str) -> Result<Created, RegistryError> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
    };
    let built = (
        attr(keys::PARTITION_KEY),
        attr(keys::SORT_KEY),
        key(keys::PARTITION_KEY, KeyType::Hash),
        key(keys::SORT_KEY, KeyType::Range),
    );
    let (Ok(pk), Ok(sk), Ok(hash), Ok(range)) = built else {
        return Err(RegistryError::Corrupt {
            table: table.to_string(),
            detail: "cannot build the key schema".into(),
        });
    };
    let outcome = match client
        .create_table()
        .table_name(table)
        .attribute_definitions(pk)
        .attribute_definitions(sk)
        .key_schema(hash)
        .key_schema(range)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
    {
        Ok(_) => Created::Created,
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            Created::AlreadyExisted
        }
        Err(err) => return Err(classify(table, "CreateTable", &err)),
    };
    wait_active(client, table).await?;
    enable_ttl(client, table).await;
    Ok(outcome)
}

/// Polls DescribeTable until the table is ACTIVE (dynalite keeps a new table CREATING for about
/// half a second; real DynamoDB for a few seconds).
async fn wait_active(client: &Client, table: &str) -> Result<(), RegistryError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| classify(table, "DescribeTable", &e))?;
        let status = described.table().and_then(|t| t.table_status());
        if status == Some(&TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(RegistryError::Unavailable {
                table: table.to_string(),
                operation: "DescribeTable",
                detail: format!("table still {status:?} after 2 minutes"),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Turns TTL on. Best effort: TTL only cleans up old tickets and audit records, and some
/// emulators (dynalite) do not implement it, so a failure is a warning, not an error.
async fn enable_ttl(client: &Client, table: &str) {
    let Ok(spec) = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(TTL_ATTRIBUTE)
        .build()
    else {
        return;
    };
    match client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
    {
        Ok(_) => {}
        Err(err) => {
            let text = crate::aws::error_text(&err);
            // Already enabled is reported as a ValidationException by DynamoDB.
            if !text.contains("already enabled") {
                tracing::warn!(
                    "could not enable TTL on {table} (old queue tickets will not be cleaned up): {text}"
                );
            }
        }
    }
}
