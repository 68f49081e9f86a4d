//! Key layout of the registry table (see DESIGN.md, "The lock"). One partition per lock key
//! holds the lock item, the queue tickets and the audit trail, so one Query reads a lock and its
//! whole queue.

/// The table's partition key attribute (a string): the lock key, or the stack for history.
pub(crate) const PARTITION_KEY: &str = "pk";
/// The table's sort key attribute (a string): what the item is (`LOCK`, `QUEUE#…`, `HIST#…`).
pub(crate) const SORT_KEY: &str = "sk";

/// Sort key of the lock item. It is never deleted (release leaves a "free" tombstone), because
/// it carries the fence counter, which must never go back.
pub(crate) const LOCK: &str = "LOCK";
/// Prefix of queue tickets: `QUEUE#<enqueued ms, 13 digits>#<correlation ID>`.
pub(crate) const QUEUE_PREFIX: &str = "QUEUE#";
/// Prefix of audit records (force-unlock, takeover): `AUDIT#<ms>#<what>`.
pub(crate) const AUDIT_PREFIX: &str = "AUDIT#";

/// Sort key of a queue ticket. Zero-padded so that the table's string order is FIFO order.
pub(crate) fn queue_ticket(enqueued_ms: u64, correlation_id: &str) -> String {
    format!("{QUEUE_PREFIX}{enqueued_ms:013}#{correlation_id}")
}

/// Reads the enqueue time back from a ticket's sort key.
pub(crate) fn parse_queue_ticket(sk: &str) -> Option<(u64, &str)> {
    let rest = sk.strip_prefix(QUEUE_PREFIX)?;
    let (ms, id) = rest.split_once('#')?;
    Some((ms.parse().ok()?, id))
}

/// Sort key of an audit record.
pub(crate) fn audit(at_ms: u64, what: &str) -> String {
    format!("{AUDIT_PREFIX}{at_ms:013}#{what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_sort_in_enqueue_order_and_parse_back() {
        let a = queue_ticket(999, "z-late-name");
        let b = queue_ticket(1_700_000_000_000, "a-early-name");
        assert!(a < b, "string order must follow time, not the name");
        assert_eq!(
            parse_queue_ticket(&b),
            Some((1_700_000_000_000, "a-early-name"))
        );
        assert_eq!(parse_queue_ticket("LOCK"), None);
        assert_eq!(parse_queue_ticket("QUEUE#x#y"), None);
    }

    #[test]
    fn lock_and_queue_items_sort_after_history_and_audit() {
        // The lock Query reads `sk >= LOCK`: history (HIST#), dead letters (DEADLETTER#) and
        // audit records in the same partition must sort before it.
        for other in [
            "HIST#2026",
            "DEADLETTER#1",
            &audit(1, "force-unlock"),
            crate::history::deployed::DEPLOYED,
        ] {
            assert!(other < LOCK, "{other}");
        }
        assert!(queue_ticket(1, "a").as_str() > LOCK);
    }
}
