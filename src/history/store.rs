//! History records in the registry table.
//!
//! Item: pk = stack name, sk = `HIST#<finished RFC3339, ms, Z>#<correlation ID>` (so the
//! table's string order is time order), the whole interchange record as JSON in `record`
//! (the one schema; nothing to keep in sync), a few flat attributes for people reading the
//! table in the console, and `expires_at` for TTL clean-up.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::deployed::{DEPLOYED, Deployed};
use super::record::HistoryRecord;
use crate::registry::item::{Item, get_s, key, n, s};
use crate::registry::{Registry, RegistryError, TTL_ATTRIBUTE, classify};

/// Sort-key prefix of history items.
pub const HIST_PREFIX: &str = "HIST#";

/// How long a record stays by default (TTL): a year of deployments.
pub const DEFAULT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// DynamoDB items are limited to 400 KB; a record bigger than this keeps its totals and
/// drops per-resource timings rather than failing the post step.
const MAX_RECORD_BYTES: usize = 350_000;

/// Sort key of a record.
pub fn sort_key(finished_at: DateTime<Utc>, correlation_id: &str) -> String {
    format!(
        "{HIST_PREFIX}{}#{correlation_id}",
        finished_at.to_rfc3339_opts(SecondsFormat::Millis, true)
    )
}

/// The item for `record`, expiring `ttl` after `now`.
pub fn to_item(record: &HistoryRecord, now: DateTime<Utc>, ttl: Duration) -> Item {
    let mut json = serde_json::to_string(record).unwrap_or_default();
    if json.len() > MAX_RECORD_BYTES {
        let mut slim = record.clone();
        slim.resources.clear();
        json = serde_json::to_string(&slim).unwrap_or_default();
    }
    let expires = now.timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let mut item = key(
        &record.stack,
        &sort_key(record.finished_at, &record.correlation_id),
    );
    item.insert("record".into(), s(json));
    item.insert("correlation_id".into(), s(&record.correlation_id));
    item.insert("operation".into(), s(record.operation.as_str()));
    item.insert("outcome".into(), s(record.outcome.as_str()));
    item.insert(
        "started_at".into(),
        s(record.started_at.to_rfc3339_opts(SecondsFormat::Secs, true)),
    );
    item.insert(
        "finished_at".into(),
        s(record
            .finished_at
            .to_rfc3339_opts(SecondsFormat::Secs, true)),
    );
    item.insert(
        "duration_seconds".into(),
        n(record.seconds().round() as i64),
    );
    item.insert("resource_count".into(), n(record.resources.len()));
    item.insert(TTL_ATTRIBUTE.into(), n(expires));
    item
}

/// Reads a record back from its item.
pub fn from_item(table: &str, item: &Item) -> Result<HistoryRecord, RegistryError> {
    let corrupt = |detail: String| RegistryError::Corrupt {
        table: table.to_string(),
        detail,
    };
    let sk = get_s(item, "sk").unwrap_or("?");
    let json = get_s(item, "record")
        .ok_or_else(|| corrupt(format!("history item {sk} has no `record` attribute")))?;
    let record: HistoryRecord =
        serde_json::from_str(json).map_err(|e| corrupt(format!("history item {sk}: {e}")))?;
    record
        .validate()
        .map_err(|e| corrupt(format!("history item {sk}: {e}")))?;
    Ok(record)
}

/// Stores a record (an existing one with the same key is replaced: storing twice is safe).
pub async fn put(
    reg: &Registry,
    record: &HistoryRecord,
    ttl: Duration,
) -> Result<(), RegistryError> {
    let item = to_item(record, reg.clock().now(), ttl);
    reg.client()
        .put_item()
        .table_name(reg.table())
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| classify(reg.table(), "PutItem (history)", &e))?;
    Ok(())
}

/// Records per Query page: bounded so that a long history is read in several small requests
/// (and the paging is exercised by tests, not only past DynamoDB's 1 MB page limit).
const PAGE: usize = 100;

/// A stack's records, newest first, at most `limit` (None: all). Pages through the Query, and
/// reads no page past the limit.
pub async fn list(
    reg: &Registry,
    stack: &str,
    limit: Option<usize>,
) -> Result<Vec<HistoryRecord>, RegistryError> {
    let limit = limit.unwrap_or(usize::MAX);
    let mut items = reg
        .client()
        .query()
        .table_name(reg.table())
        .key_condition_expression("pk = :pk AND begins_with(sk, :hist)")
        .expression_attribute_values(":pk", s(stack))
        .expression_attribute_values(":hist", s(HIST_PREFIX))
        .scan_index_forward(false)
        .into_paginator()
        .page_size(i32::try_from(limit.min(PAGE)).unwrap_or(100))
        .items()
        .send();
    let mut records = Vec::new();
    while records.len() < limit
        && let Some(item) = items.next().await
    {
        let item = item.map_err(|e| classify(reg.table(), "Query (history)", &e))?;
        records.push(from_item(reg.table(), &item)?);
    }
    Ok(records)
}

/// Every stack's records in the table (a Scan of the history items, every page), for a report
/// on all the stacks that share it. Unordered.
pub async fn list_all(reg: &Registry) -> Result<Vec<HistoryRecord>, RegistryError> {
    let mut items = reg
        .client()
        .scan()
        .table_name(reg.table())
        .filter_expression("begins_with(sk, :hist)")
        .expression_attribute_values(":hist", s(HIST_PREFIX))
        .into_paginator()
        .page_size(i32::try_from(PAGE).unwrap_or(100))
        .items()
        .send();
    let mut records = Vec::new();
    while let Some(item) = items.next().await {
        let item = item.map_err(|e| classify(reg.table(), "Scan (history)", &e))?;
        records.push(from_item(reg.table(), &item)?);
    }
    Ok(records)
}

/// The last commit deployed successfully under `lock_key`, if any.
pub async fn last_deployed(
    reg: &Registry,
    lock_key: &str,
) -> Result<Option<Deployed>, RegistryError> {
    let out = reg
        .client()
        .get_item()
        .table_name(reg.table())
        .set_key(Some(key(lock_key, DEPLOYED)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| classify(reg.table(), "GetItem (deployed)", &e))?;
    out.item()
        .map(Deployed::from_item)
        .transpose()
        .map_err(|detail| RegistryError::Corrupt {
            table: reg.table().to_string(),
            detail,
        })
}

/// Records a successful deployment as the last one under its lock key.
pub async fn put_deployed(reg: &Registry, deployed: &Deployed) -> Result<(), RegistryError> {
    reg.client()
        .put_item()
        .table_name(reg.table())
        .set_item(Some(deployed.to_item()))
        .send()
        .await
        .map_err(|e| classify(reg.table(), "PutItem (deployed)", &e))?;
    Ok(())
}

/// How many records to read for an estimate: enough for stable percentiles, few enough to be
/// one or two small Queries and to follow how the stack changes.
pub const ESTIMATE_WINDOW: usize = 40;

/// Stores every record; stops at the first failure and says how many were stored.
pub async fn import(
    reg: &Registry,
    records: &[HistoryRecord],
    ttl: Duration,
) -> Result<usize, (usize, RegistryError)> {
    for (i, record) in records.iter().enumerate() {
        put(reg, record, ttl).await.map_err(|e| (i, e))?;
    }
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::record::parse_records;

    fn record() -> HistoryRecord {
        parse_records(
            r#"[{"stack": "S", "correlation_id": "c1", "operation": "CREATE", "outcome": "failed",
                 "started_at": "2026-01-14T12:00:00Z", "finished_at": "2026-01-14T12:10:00.5Z",
                 "resources": []}]"#,
        )
        .unwrap()
        .remove(0)
    }

    #[test]
    fn items_round_trip_and_sort_by_finish_time() {
        let r = record();
        let now: DateTime<Utc> = "2026-02-01T00:00:00Z".parse().unwrap();
        let item = to_item(&r, now, DEFAULT_TTL);
        assert_eq!(get_s(&item, "sk"), Some("HIST#2026-01-14T12:10:00.500Z#c1"));
        assert_eq!(get_s(&item, "outcome"), Some("failed"));
        assert_eq!(
            crate::registry::item::get_n::<i64>(&item, TTL_ATTRIBUTE),
            Some(now.timestamp() + 365 * 24 * 3600)
        );
        assert_eq!(from_item("t", &item).unwrap(), r);
        // Zero-padded, fixed-width times: string order is time order.
        let early = sort_key("2026-01-14T09:00:00Z".parse().unwrap(), "zzz");
        let late = sort_key("2026-01-14T10:00:00Z".parse().unwrap(), "aaa");
        assert!(early < late);
    }

    #[test]
    fn a_damaged_item_is_reported_not_skipped() {
        let mut item = to_item(&record(), Utc::now(), DEFAULT_TTL);
        item.insert("record".into(), s("{not json"));
        let err = from_item("t", &item).unwrap_err().to_string();
        assert!(
            err.contains("HIST#") && err.contains("cannot read"),
            "{err}"
        );
    }

    #[test]
    fn oversized_records_keep_their_totals() {
        let mut r = record();
        let res = crate::history::record::ResourceTiming {
            logical_id: "X".repeat(1000),
            resource_type: "AWS::S3::Bucket".into(),
            action: "CREATE".into(),
            started_at: r.started_at,
            finished_at: r.finished_at,
            status: "CREATE_COMPLETE".into(),
        };
        r.resources = vec![res; 400];
        let item = to_item(&r, Utc::now(), DEFAULT_TTL);
        let back = from_item("t", &item).unwrap();
        assert!(back.resources.is_empty());
        assert_eq!(back.finished_at, r.finished_at);
    }
}
