//! The lock's DynamoDB requests, one function per request shape.
//!
//! Every write to the lock item is conditional: on absence (first use), on the version last
//! seen (free tombstone or stale holder), or on ownership (reentry, heartbeat, release). A
//! failed condition returns the current item (`ReturnValuesOnConditionCheckFailure=ALL_OLD`);
//! emulators that do not implement it (dynalite) return nothing, and a consistent GetItem
//! fills in.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::freeze::Freeze;
use super::record::{LockRecord, LockState, QUEUE_MARK, QueueTicket, STATE_FREE, STATE_HELD};
use crate::registry::item::{Item, s};
use crate::registry::{Registry, RegistryError, classify, keys};

/// The condition an acquiring PutItem is made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect<'a> {
    /// No lock item yet.
    Absent,
    /// The lock item still has this version (free tombstone, or a stale holder taken over),
    /// and the queue mark the waiter saw with its last read of the queue (`None`: no mark).
    Version {
        version: &'a str,
        mark: Option<&'a str>,
    },
    /// Held by this owner, still with this version (reentry). The version keeps a freeze set
    /// since we read the item from being overwritten by our whole-item write.
    Owner { owner: &'a str, version: &'a str },
}

/// The result of a conditional write.
// One value per request, never stored in bulk: boxing the state would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Write<T> {
    Done(T),
    /// The condition failed; the lock item as it is now.
    Refused(LockState),
}

fn corrupt(reg: &Registry, detail: String) -> RegistryError {
    RegistryError::Corrupt {
        table: reg.table().to_string(),
        detail,
    }
}

/// `Ok(true)` when a conditional write went through, `Ok(false)` when its condition failed.
fn condition_met<T, E>(
    reg: &Registry,
    operation: &'static str,
    res: Result<T, SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>>,
) -> Result<bool, RegistryError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match res {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error().and_then(|e| e.code())
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(classify(reg.table(), operation, &e)),
    }
}

/// The item returned with a ConditionalCheckFailedException, if any. `Some(None)` means the
/// condition failed and no item came back (absent item, or an emulator without ALL_OLD).
fn refused_item<E, R>(
    err: &SdkError<E, R>,
    extract: impl Fn(&E) -> Option<Option<Item>>,
) -> Option<Option<Item>> {
    err.as_service_error().and_then(extract)
}

pub(crate) async fn read_lock(reg: &Registry, key: &str) -> Result<LockState, RegistryError> {
    let out = reg
        .client()
        .get_item()
        .table_name(reg.table())
        .set_key(Some(crate::registry::item::key(key, keys::LOCK)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| classify(reg.table(), "GetItem", &e))?;
    LockState::from_item(out.item()).map_err(|d| corrupt(reg, d))
}

/// After a refused write: the item that came back, or a consistent read when none did.
async fn current(
    reg: &Registry,
    key: &str,
    returned: Option<Item>,
) -> Result<LockState, RegistryError> {
    match returned {
        Some(item) => LockState::from_item(Some(&item)).map_err(|d| corrupt(reg, d)),
        None => read_lock(reg, key).await,
    }
}

/// The acquiring PutItem: writes the whole lock item under `expect`.
pub(crate) async fn put_lock(
    reg: &Registry,
    key: &str,
    record: &LockRecord,
    expect: Expect<'_>,
) -> Result<Write<()>, RegistryError> {
    let mut req = reg
        .client()
        .put_item()
        .table_name(reg.table())
        .set_item(Some(record.to_item(key)))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    req = match expect {
        Expect::Absent => req.condition_expression("attribute_not_exists(pk)"),
        Expect::Version {
            version,
            mark: None,
        } => req
            .condition_expression("#v = :seen AND attribute_not_exists(#m)")
            .expression_attribute_names("#v", "version")
            .expression_attribute_names("#m", QUEUE_MARK)
            .expression_attribute_values(":seen", s(version)),
        Expect::Version {
            version,
            mark: Some(mark),
        } => req
            .condition_expression("#v = :seen AND #m = :mark")
            .expression_attribute_names("#v", "version")
            .expression_attribute_names("#m", QUEUE_MARK)
            .expression_attribute_values(":seen", s(version))
            .expression_attribute_values(":mark", s(mark)),
        Expect::Owner { owner, version } => req
            .condition_expression("#s = :held AND #o = :me AND #v = :seen")
            .expression_attribute_names("#s", "state")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":held", s(STATE_HELD))
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":seen", s(version)),
    };
    match req.send().await {
        Ok(_) => Ok(Write::Done(())),
        Err(err) => match refused_item(&err, |e| {
            e.is_conditional_check_failed_exception().then(|| match e {
                aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => {
                    c.item().cloned()
                }
                _ => None,
            })
        }) {
            Some(returned) => Ok(Write::Refused(current(reg, key, returned).await?)),
            None => Err(classify(reg.table(), "PutItem", &err)),
        },
    }
}

/// Notes on the lock item that its holder's run was cancelled and keeps it while its update
/// rolls back: `SET cancelling`, conditional on `owner` holding it. The version is not
/// rotated: it is no heartbeat, and waiters' staleness counting goes on.
pub(crate) async fn note_cancelling(
    reg: &Registry,
    key: &str,
    owner: &str,
    note: &str,
) -> Result<Write<LockRecord>, RegistryError> {
    let set = [("cancelling", s(note))];
    update_if_owner(reg, key, owner, &set, "UpdateItem (cancelling)").await
}

/// Rotates the version of a lock this owner holds (heartbeat). Returns the renewed record.
pub(crate) async fn renew(
    reg: &Registry,
    key: &str,
    owner: &str,
    new_version: &str,
) -> Result<Write<LockRecord>, RegistryError> {
    let set = [
        ("version", s(new_version)),
        ("heartbeat_at", s(reg.clock().now_rfc3339())),
    ];
    update_if_owner(reg, key, owner, &set, "UpdateItem (heartbeat)").await
}

/// `SET` these attributes of a lock `owner` holds (conditional on it); the record after.
async fn update_if_owner(
    reg: &Registry,
    key: &str,
    owner: &str,
    set: &[(&str, AttributeValue)],
    operation: &'static str,
) -> Result<Write<LockRecord>, RegistryError> {
    let assignments: Vec<String> = (0..set.len()).map(|i| format!("#a{i} = :a{i}")).collect();
    let mut request = reg
        .client()
        .update_item()
        .table_name(reg.table())
        .set_key(Some(crate::registry::item::key(key, keys::LOCK)))
        .update_expression(format!("SET {}", assignments.join(", ")))
        .condition_expression("#s = :held AND #o = :me")
        .expression_attribute_names("#s", "state")
        .expression_attribute_names("#o", "owner")
        .expression_attribute_values(":held", s(STATE_HELD))
        .expression_attribute_values(":me", s(owner));
    for (i, (name, value)) in set.iter().enumerate() {
        request = request
            .expression_attribute_names(format!("#a{i}"), *name)
            .expression_attribute_values(format!(":a{i}"), value.clone());
    }
    let res = request
        .return_values(ReturnValue::AllNew)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    update_result(reg, key, res, operation).await
}

/// Sets the queue mark ([`QUEUE_MARK`]) to a new ticket's key, whatever the lock's state; the
/// version is not rotated (a waiter is no sign of life of the holder). `false` when there is no
/// lock item yet (nobody took the lock ever: the head's first write is conditional on absence,
/// and the queue is read by everyone until then).
pub(crate) async fn set_queue_mark(
    reg: &Registry,
    key: &str,
    mark: &str,
) -> Result<bool, RegistryError> {
    let res = reg
        .client()
        .update_item()
        .table_name(reg.table())
        .set_key(Some(crate::registry::item::key(key, keys::LOCK)))
        .update_expression("SET #m = :mark")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_names("#m", QUEUE_MARK)
        .expression_attribute_values(":mark", s(mark))
        .send()
        .await;
    condition_met(reg, "UpdateItem (queue mark)", res)
}

/// Leaves a waiter's observation on the lock item: `version` was seen unchanged for
/// `unchanged_ms` (see [`super::record::Watched`]). Only while the item still has that version
/// and is held, and never lowering a larger observation of the same version. The version is
/// not rotated: this is not a sign of life of the holder. `false` when the condition failed.
pub(crate) async fn record_watch(
    reg: &Registry,
    key: &str,
    version: &str,
    unchanged_ms: u64,
) -> Result<bool, RegistryError> {
    let res = reg
        .client()
        .update_item()
        .table_name(reg.table())
        .set_key(Some(crate::registry::item::key(key, keys::LOCK)))
        .update_expression("SET watched_version = :seen, watched_ms = :ms")
        .condition_expression(
            "#v = :seen AND #s = :held AND (attribute_not_exists(watched_ms) \
             OR watched_version <> :seen OR watched_ms < :ms)",
        )
        .expression_attribute_names("#v", "version")
        .expression_attribute_names("#s", "state")
        .expression_attribute_values(":seen", s(version))
        .expression_attribute_values(":held", s(STATE_HELD))
        .expression_attribute_values(":ms", AttributeValue::N(unchanged_ms.to_string()))
        .send()
        .await;
    condition_met(reg, "UpdateItem (watch)", res)
}

async fn update_result(
    reg: &Registry,
    key: &str,
    res: Result<
        aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
        SdkError<
            aws_sdk_dynamodb::operation::update_item::UpdateItemError,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    >,
    operation: &'static str,
) -> Result<Write<LockRecord>, RegistryError> {
    use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
    match res {
        Ok(out) => match LockState::from_item(out.attributes()) {
            Ok(LockState::Held(r)) => Ok(Write::Done(r)),
            Ok(other) => Err(corrupt(
                reg,
                format!("{operation} returned a lock that is not held: {other:?}"),
            )),
            Err(d) => Err(corrupt(reg, d)),
        },
        Err(err) => match refused_item(&err, |e| match e {
            UpdateItemError::ConditionalCheckFailedException(c) => Some(c.item().cloned()),
            _ => None,
        }) {
            Some(returned) => Ok(Write::Refused(current(reg, key, returned).await?)),
            None => Err(classify(reg.table(), operation, &err)),
        },
    }
}

/// Turns the lock into a free tombstone if `owner` holds it (release). The fence stays.
/// Returns the record that was released.
pub(crate) async fn free_if_owner(
    reg: &Registry,
    key: &str,
    owner: &str,
    new_version: &str,
) -> Result<Write<LockRecord>, RegistryError> {
    let res = reg
        .client()
        .update_item()
        .table_name(reg.table())
        .set_key(Some(crate::registry::item::key(key, keys::LOCK)))
        .update_expression("SET #s = :free, #v = :v, released_at = :t, released_by = :me, last_owner = :me REMOVE #o, force_reason")
        .condition_expression("#s = :held AND #o = :me")
        .expression_attribute_names("#v", "version")
        .expression_attribute_names("#s", "state")
        .expression_attribute_names("#o", "owner")
        .expression_attribute_values(":v", s(new_version))
        .expression_attribute_values(":t", s(reg.clock().now_rfc3339()))
        .expression_attribute_values(":held", s(STATE_HELD))
        .expression_attribute_values(":free", s(STATE_FREE))
        .expression_attribute_values(":me", s(owner))
        .return_values(ReturnValue::AllOld)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    update_result(reg, key, res, "UpdateItem (release)").await
}

/// Frees the lock whatever its owner, if its version is still `seen` (force-unlock, or undoing
/// an acquisition whose answer was lost). Records who and why on the tombstone. A force-unlock
/// (`reason` given) also ends a freeze; undoing our own lost acquisition keeps it.
pub(crate) async fn free_if_version(
    reg: &Registry,
    key: &str,
    seen: &LockRecord,
    new_version: &str,
    by: &str,
    reason: Option<&str>,
) -> Result<Write<LockRecord>, RegistryError> {
    let mut req = reg
        .client()
        .update_item()
        .table_name(reg.table())
        .set_key(Some(crate::registry::item::key(key, keys::LOCK)))
        .condition_expression("#s = :held AND #v = :seen")
        .expression_attribute_names("#v", "version")
        .expression_attribute_names("#s", "state")
        .expression_attribute_names("#o", "owner")
        .expression_attribute_values(":v", s(new_version))
        .expression_attribute_values(":seen", s(&seen.version))
        .expression_attribute_values(":prev", s(&seen.info.owner))
        .expression_attribute_values(":t", s(reg.clock().now_rfc3339()))
        .expression_attribute_values(":held", s(STATE_HELD))
        .expression_attribute_values(":free", s(STATE_FREE))
        .expression_attribute_values(":by", s(by))
        .return_values(ReturnValue::AllOld)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    req = match reason {
        Some(r) => req
            .update_expression(format!(
                "SET #s = :free, #v = :v, released_at = :t, released_by = :by, last_owner = :prev, force_reason = :why REMOVE #o, {FREEZE_ATTRIBUTES}"
            ))
            .expression_attribute_values(":why", s(r)),
        None => req.update_expression(
            "SET #s = :free, #v = :v, released_at = :t, released_by = :by, last_owner = :prev REMOVE #o, force_reason",
        ),
    };
    let res = req.send().await;
    update_result(reg, key, res, "UpdateItem (force-unlock)").await
}

/// The attributes of a freeze, as a REMOVE list.
const FREEZE_ATTRIBUTES: &str =
    "freeze_reason, frozen_by, frozen_at, frozen_until, frozen_until_ms";

/// Puts a freeze on the lock item, whatever its state, and rotates its version: an acquisition
/// that read the item before (conditional on that version) then fails and re-reads. A holder
/// keeps the lock (its heartbeat and release are owner-checked, not version-checked). Creates
/// the item (free, fence 0) if the key was never used. Returns the item as it was before.
pub(crate) async fn set_freeze(
    reg: &Registry,
    key: &str,
    freeze: &Freeze,
    new_version: &str,
) -> Result<LockState, RegistryError> {
    let out = reg
        .client()
        .update_item()
        .table_name(reg.table())
        .set_key(Some(crate::registry::item::key(key, keys::LOCK)))
        .update_expression(
            "SET #v = :v, fence = if_not_exists(fence, :zero), #s = if_not_exists(#s, :free), \
             freeze_reason = :why, frozen_by = :by, frozen_at = :at, frozen_until = :until, \
             frozen_until_ms = :until_ms",
        )
        .expression_attribute_names("#v", "version")
        .expression_attribute_names("#s", "state")
        .expression_attribute_values(":v", s(new_version))
        .expression_attribute_values(":zero", AttributeValue::N("0".into()))
        .expression_attribute_values(":free", s(STATE_FREE))
        .expression_attribute_values(":why", s(&freeze.reason))
        .expression_attribute_values(":by", s(&freeze.by))
        .expression_attribute_values(":at", s(&freeze.at))
        .expression_attribute_values(":until", s(&freeze.until))
        .expression_attribute_values(":until_ms", AttributeValue::N(freeze.until_ms.to_string()))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .map_err(|e| classify(reg.table(), "UpdateItem (freeze)", &e))?;
    LockState::from_item(out.attributes().filter(|a| !a.is_empty())).map_err(|d| corrupt(reg, d))
}

/// Removes the freeze from the lock item (and rotates its version, so waiters see the change).
/// Returns the lock as it was, `None` when there was no freeze (nothing written).
pub(crate) async fn clear_freeze(
    reg: &Registry,
    key: &str,
    new_version: &str,
) -> Result<Option<LockState>, RegistryError> {
    let res = reg
        .client()
        .update_item()
        .table_name(reg.table())
        .set_key(Some(crate::registry::item::key(key, keys::LOCK)))
        .update_expression(format!("SET #v = :v REMOVE {FREEZE_ATTRIBUTES}"))
        .condition_expression("attribute_exists(frozen_until_ms)")
        .expression_attribute_names("#v", "version")
        .expression_attribute_values(":v", s(new_version))
        .return_values(ReturnValue::AllOld)
        .send()
        .await;
    match res {
        Ok(out) => LockState::from_item(out.attributes())
            .map(Some)
            .map_err(|d| corrupt(reg, d)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(classify(reg.table(), "UpdateItem (unfreeze)", &e)),
    }
}

/// The lock item and the queue tickets of one key, in one consistent Query (`sk >= LOCK`:
/// history, dead letters and audit records sort before `LOCK`).
pub(crate) async fn read_partition(
    reg: &Registry,
    key: &str,
) -> Result<(LockState, Vec<QueueTicket>), RegistryError> {
    let mut lock = LockState::Absent;
    let mut tickets = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = reg
            .client()
            .query()
            .table_name(reg.table())
            .key_condition_expression("pk = :k AND sk >= :lock")
            .expression_attribute_values(":k", s(key))
            .expression_attribute_values(":lock", s(keys::LOCK))
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| classify(reg.table(), "Query", &e))?;
        for item in out.items() {
            match item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
            {
                Some(keys::LOCK) => {
                    lock = LockState::from_item(Some(item)).map_err(|d| corrupt(reg, d))?
                }
                Some(sk) if sk.starts_with(keys::QUEUE_PREFIX) => {
                    match QueueTicket::from_item(item) {
                        Ok(t) => tickets.push(t),
                        // A ticket we cannot read must not stop the queue: skip it, say so.
                        Err(d) => tracing::warn!("skipping unreadable queue ticket in {key}: {d}"),
                    }
                }
                _ => {}
            }
        }
        match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => break,
        }
    }
    tickets.sort_by(|a, b| a.sk.cmp(&b.sk));
    Ok((lock, tickets))
}

/// Creates (or puts back) a ticket; false when another waiter's ticket has this key. Our own
/// may be there already (a retried enqueue whose first answer was lost): it is overwritten, so
/// a retry never leaves a second ticket of ours in the queue.
pub(crate) async fn put_ticket(
    reg: &Registry,
    key: &str,
    ticket: &QueueTicket,
    expires_at: i64,
) -> Result<bool, RegistryError> {
    let res = reg
        .client()
        .put_item()
        .table_name(reg.table())
        .set_item(Some(ticket.to_item(key, expires_at)))
        .condition_expression("attribute_not_exists(pk) OR #o = :me")
        .expression_attribute_names("#o", "owner")
        .expression_attribute_values(":me", s(&ticket.info.owner))
        .send()
        .await;
    condition_met(reg, "PutItem (ticket)", res)
}

/// Rotates a ticket's version; false when the ticket is gone (someone removed it as stale).
pub(crate) async fn touch_ticket(
    reg: &Registry,
    key: &str,
    sk: &str,
    new_version: &str,
) -> Result<bool, RegistryError> {
    let res = reg
        .client()
        .update_item()
        .table_name(reg.table())
        .set_key(Some(crate::registry::item::key(key, sk)))
        .update_expression("SET #v = :v")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_names("#v", "version")
        .expression_attribute_values(":v", s(new_version))
        .send()
        .await;
    condition_met(reg, "UpdateItem (ticket)", res)
}

/// Deletes a ticket: our own (unconditionally: nobody else writes it), or a stale one of
/// somebody else (only if its version is still the one seen unchanged for a whole lease).
pub(crate) async fn delete_ticket(
    reg: &Registry,
    key: &str,
    sk: &str,
    if_version: Option<&str>,
) -> Result<bool, RegistryError> {
    let mut req = reg
        .client()
        .delete_item()
        .table_name(reg.table())
        .set_key(Some(crate::registry::item::key(key, sk)));
    if let Some(v) = if_version {
        req = req
            .condition_expression("#v = :seen")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":seen", s(v));
    }
    condition_met(reg, "DeleteItem (ticket)", req.send().await)
}

/// Writes an audit record (force-unlock, takeover) kept for 90 days.
pub(crate) async fn put_audit(
    reg: &Registry,
    key: &str,
    what: &str,
    fields: &[(&str, String)],
) -> Result<(), RegistryError> {
    let now = reg.clock().now();
    let at_ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    let mut item = crate::registry::item::key(key, &keys::audit(at_ms, what));
    item.insert("what".into(), s(what));
    item.insert("at".into(), s(reg.clock().now_rfc3339()));
    for (name, value) in fields {
        if !value.is_empty() {
            item.insert((*name).to_string(), s(value.clone()));
        }
    }
    let expires = now.timestamp() + 90 * 86_400;
    item.insert(
        crate::registry::TTL_ATTRIBUTE.into(),
        AttributeValue::N(expires.to_string()),
    );
    reg.client()
        .put_item()
        .table_name(reg.table())
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| classify(reg.table(), "PutItem (audit)", &e))?;
    Ok(())
}

/// The newest audit records of a key, newest first.
pub(crate) async fn read_audit(
    reg: &Registry,
    key: &str,
    limit: i32,
) -> Result<Vec<Item>, RegistryError> {
    let out = reg
        .client()
        .query()
        .table_name(reg.table())
        .key_condition_expression("pk = :k AND begins_with(sk, :a)")
        .expression_attribute_values(":k", s(key))
        .expression_attribute_values(":a", s(keys::AUDIT_PREFIX))
        .scan_index_forward(false)
        .limit(limit)
        .send()
        .await
        .map_err(|e| classify(reg.table(), "Query (audit)", &e))?;
    Ok(out.items().to_vec())
}

/// Every lock item in the table (for `lock status` without a key).
pub(crate) async fn scan_locks(reg: &Registry) -> Result<Vec<(String, LockState)>, RegistryError> {
    let mut locks = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = reg
            .client()
            .scan()
            .table_name(reg.table())
            .filter_expression("sk = :lock")
            .expression_attribute_values(":lock", s(keys::LOCK))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| classify(reg.table(), "Scan", &e))?;
        for item in out.items() {
            let key = item
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            locks.push((
                key,
                LockState::from_item(Some(item)).map_err(|d| corrupt(reg, d))?,
            ));
        }
        match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => break,
        }
    }
    locks.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(locks)
}
