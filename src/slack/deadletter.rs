//! Dead letters: Slack messages that could not be delivered, kept so nobody loses the message
//! that said a deployment failed.
//!
//! One item per flush in the registry table: pk = lock key, sk =
//! `DEADLETTER#<ms, 13 digits>#<correlation ID>`, holding the undelivered messages in order
//! (the card's last state first, then the thread replies). What is stored has no secret: the
//! message, its kind, the channel ID for bot mode, and for webhook mode only the marker
//! `webhook` (`slack retry` takes the URL from an environment variable then).
//!
//! `slack retry` claims an item by rotating its `version` (a conditional write, so two retries
//! never send the same letter twice), sends, then deletes the item only if its version is still
//! the claimed one, or writes back what is still undelivered.

use serde::{Deserialize, Serialize};

use super::blocks::Message;
use crate::registry::item::{Item, get_n, get_s, key, n, s};
use crate::registry::{Registry, RegistryError, TTL_ATTRIBUTE, classify};

/// Sort key prefix of dead letters (sorts before `LOCK`, see `registry::keys`).
pub const DEADLETTER_PREFIX: &str = "DEADLETTER#";
/// Dead letters are cleaned up by TTL after this long (30 days): long enough for an outage
/// and a holiday, and TTL is clean-up only.
pub const DEADLETTER_TTL_SECS: u64 = 30 * 24 * 3600;
/// DynamoDB items are at most 400 KB; stay well below it.
const MAX_ITEM_BYTES: usize = 350_000;

/// Sort key of a dead letter. Zero-padded so the table's string order is time order.
pub fn dead_letter_key(at_ms: u64, correlation_id: &str) -> String {
    format!("{DEADLETTER_PREFIX}{at_ms:013}#{correlation_id}")
}

/// What an undelivered message was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LetterKind {
    /// The deployment card's last state.
    Card,
    /// A reply in the card's thread.
    Thread,
    /// A webhook post (a state change).
    Webhook,
}

impl LetterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LetterKind::Card => "card",
            LetterKind::Thread => "thread",
            LetterKind::Webhook => "webhook",
        }
    }
}

/// One undelivered message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Letter {
    pub kind: LetterKind,
    pub message: Message,
    /// Card: the ts of the card already posted (a retry updates it in place). Thread: the
    /// card's ts it replies to, when the card exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    /// The last error (no secrets: see `client`).
    #[serde(default)]
    pub error: String,
}

/// Where the letters were going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeadTarget {
    /// Bot token mode: the channel (ID once Slack answered, else as configured).
    Bot { channel: String },
    /// Webhook mode: the URL is a secret and is not stored.
    Webhook,
}

/// One dead-letter item.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub lock_key: String,
    pub sk: String,
    pub correlation_id: String,
    /// RFC 3339, on this machine's clock.
    pub created_at: String,
    pub target: DeadTarget,
    pub letters: Vec<Letter>,
    /// Rotated by every claim (see module docs).
    pub version: String,
}

impl DeadLetter {
    pub fn new(
        registry: &Registry,
        lock_key: &str,
        correlation_id: &str,
        target: DeadTarget,
        letters: Vec<Letter>,
    ) -> DeadLetter {
        let clock = registry.clock();
        DeadLetter {
            lock_key: lock_key.to_string(),
            sk: dead_letter_key(clock.now_ms(), correlation_id),
            correlation_id: correlation_id.to_string(),
            created_at: clock.now_rfc3339(),
            target,
            letters,
            version: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// The item; messages lose their blocks if the item would be too large (the text still
    /// says what happened).
    pub fn to_item(&self, now_secs: u64) -> Item {
        let mut letters_json = serde_json::to_string(&self.letters).unwrap_or_default();
        if letters_json.len() > MAX_ITEM_BYTES {
            let slim: Vec<Letter> = self
                .letters
                .iter()
                .map(|l| Letter {
                    message: l.message.text_only(),
                    ..l.clone()
                })
                .collect();
            letters_json = serde_json::to_string(&slim).unwrap_or_default();
        }
        let mut item = key(&self.lock_key, &self.sk);
        item.insert("kind".into(), s("slack-dead-letter"));
        item.insert("correlation_id".into(), s(&self.correlation_id));
        item.insert("created_at".into(), s(&self.created_at));
        match &self.target {
            DeadTarget::Bot { channel } => {
                item.insert("target".into(), s("bot"));
                item.insert("channel".into(), s(channel));
            }
            DeadTarget::Webhook => {
                item.insert("target".into(), s("webhook"));
            }
        }
        item.insert("letters".into(), s(letters_json));
        item.insert("count".into(), n(self.letters.len()));
        item.insert("version".into(), s(&self.version));
        item.insert(
            TTL_ATTRIBUTE.into(),
            n(now_secs.saturating_add(DEADLETTER_TTL_SECS)),
        );
        item
    }

    pub fn from_item(item: &Item) -> Result<DeadLetter, String> {
        let text = |name: &str| {
            get_s(item, name)
                .map(str::to_string)
                .ok_or_else(|| format!("dead letter without {name}"))
        };
        let target = match get_s(item, "target") {
            Some("bot") => DeadTarget::Bot {
                channel: text("channel")?,
            },
            Some("webhook") => DeadTarget::Webhook,
            other => return Err(format!("dead letter with target {other:?}")),
        };
        let letters: Vec<Letter> = serde_json::from_str(&text("letters")?)
            .map_err(|e| format!("dead letter with unreadable letters: {e}"))?;
        let _count: Option<u64> = get_n(item, "count");
        Ok(DeadLetter {
            lock_key: text("pk")?,
            sk: text("sk")?,
            correlation_id: text("correlation_id").unwrap_or_default(),
            created_at: text("created_at").unwrap_or_default(),
            target,
            letters,
            version: text("version")?,
        })
    }
}

fn now_secs(registry: &Registry) -> u64 {
    registry.clock().now_ms() / 1000
}

/// Writes a new dead letter (never overwrites one).
pub async fn store(registry: &Registry, letter: &DeadLetter) -> Result<(), RegistryError> {
    registry
        .client()
        .put_item()
        .table_name(registry.table())
        .set_item(Some(letter.to_item(now_secs(registry))))
        .condition_expression("attribute_not_exists(sk)")
        .send()
        .await
        .map_err(|e| classify(registry.table(), "PutItem", &e))?;
    Ok(())
}

/// Every dead letter in the table, oldest first.
pub async fn list(registry: &Registry) -> Result<Vec<DeadLetter>, RegistryError> {
    let mut out = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let page = registry
            .client()
            .scan()
            .table_name(registry.table())
            .filter_expression("begins_with(sk, :p)")
            .expression_attribute_values(":p", s(DEADLETTER_PREFIX))
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| classify(registry.table(), "Scan", &e))?;
        for item in page.items() {
            let letter = DeadLetter::from_item(item).map_err(|detail| RegistryError::Corrupt {
                table: registry.table().to_string(),
                detail,
            })?;
            out.push(letter);
        }
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => break,
        }
    }
    out.sort_by(|a, b| a.sk.cmp(&b.sk).then(a.lock_key.cmp(&b.lock_key)));
    Ok(out)
}

/// Claims a dead letter for sending: rotates its version if it is still the one read.
/// `Ok(None)` when someone else claimed or removed it meanwhile.
pub async fn claim(
    registry: &Registry,
    letter: &DeadLetter,
) -> Result<Option<String>, RegistryError> {
    let new_version = uuid::Uuid::new_v4().to_string();
    let result = registry
        .client()
        .update_item()
        .table_name(registry.table())
        .key("pk", s(&letter.lock_key))
        .key("sk", s(&letter.sk))
        .update_expression("SET version = :new")
        .condition_expression("version = :seen")
        .expression_attribute_values(":new", s(&new_version))
        .expression_attribute_values(":seen", s(&letter.version))
        .send()
        .await;
    match result {
        Ok(_) => Ok(Some(new_version)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(classify(registry.table(), "UpdateItem", &e)),
    }
}

/// After a retry: deletes the item if everything was delivered, else keeps only `remaining`.
/// Both only if the item still carries `claimed` (the version this retry set).
pub async fn settle(
    registry: &Registry,
    letter: &DeadLetter,
    claimed: &str,
    remaining: Vec<Letter>,
) -> Result<(), RegistryError> {
    if remaining.is_empty() {
        let result = registry
            .client()
            .delete_item()
            .table_name(registry.table())
            .key("pk", s(&letter.lock_key))
            .key("sk", s(&letter.sk))
            .condition_expression("version = :mine")
            .expression_attribute_values(":mine", s(claimed))
            .send()
            .await;
        return match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(classify(registry.table(), "DeleteItem", &e)),
        };
    }
    let rest = DeadLetter {
        letters: remaining,
        version: uuid::Uuid::new_v4().to_string(),
        ..letter.clone()
    };
    registry
        .client()
        .put_item()
        .table_name(registry.table())
        .set_item(Some(rest.to_item(now_secs(registry))))
        .condition_expression("version = :mine")
        .expression_attribute_values(":mine", s(claimed))
        .send()
        .await
        .map_err(|e| classify(registry.table(), "PutItem", &e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(text: &str, blocks: usize) -> Letter {
        Letter {
            kind: LetterKind::Thread,
            message: Message {
                text: text.into(),
                blocks: (0..blocks)
                    .map(|_| serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": "x".repeat(3000)}}))
                    .collect(),
            },
            ts: Some("1.2".into()),
            error: "Slack did not answer in time".into(),
        }
    }

    #[test]
    fn keys_sort_by_time_and_before_the_lock() {
        let a = dead_letter_key(5, "z");
        let b = dead_letter_key(1_700_000_000_000, "a");
        assert!(a < b);
        assert!(b.as_str() < crate::registry::keys::LOCK);
    }

    #[test]
    fn items_round_trip_without_secrets() {
        let dl = DeadLetter {
            lock_key: "prod".into(),
            sk: dead_letter_key(1, "c-1"),
            correlation_id: "c-1".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            target: DeadTarget::Webhook,
            letters: vec![letter("a", 1), letter("b", 0)],
            version: "v1".into(),
        };
        let item = dl.to_item(100);
        assert_eq!(get_s(&item, "target"), Some("webhook"));
        assert_eq!(
            get_n::<u64>(&item, TTL_ATTRIBUTE),
            Some(100 + DEADLETTER_TTL_SECS)
        );
        assert_eq!(DeadLetter::from_item(&item).unwrap(), dl);
    }

    #[test]
    fn oversized_letters_keep_their_text() {
        let dl = DeadLetter {
            lock_key: "prod".into(),
            sk: dead_letter_key(1, "c"),
            correlation_id: "c".into(),
            created_at: String::new(),
            target: DeadTarget::Bot {
                channel: "C1".into(),
            },
            letters: (0..10).map(|i| letter(&format!("m{i}"), 50)).collect(),
            version: "v".into(),
        };
        let item = dl.to_item(0);
        let back = DeadLetter::from_item(&item).unwrap();
        assert_eq!(back.letters.len(), 10);
        assert!(back.letters.iter().all(|l| l.message.blocks.is_empty()));
        assert_eq!(back.letters[3].message.text, "m3");
        assert!(get_s(&item, "letters").unwrap().len() < MAX_ITEM_BYTES);
    }
}
