//! A Slack message (fallback `text` + Block Kit `blocks`) that is always within Slack's limits.
//!
//! Slack refuses a whole message (`invalid_blocks`, `msg_too_long`) when one block is over a
//! limit, and a refused card means the channel shows nothing. So every block is built through
//! the constructors here, which cut their text, and [`Message::new`] enforces the per-message
//! limits. Callers escape untrusted text before (see `mrkdwn`); cutting never breaks escaping.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::mrkdwn::{truncate, truncate_plain};

/// Block Kit limits (docs.slack.dev, "Reference: blocks").
pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION_TEXT: usize = 3000;
pub const MAX_FIELDS: usize = 10;
pub const MAX_FIELD_TEXT: usize = 2000;
pub const MAX_HEADER_TEXT: usize = 150;
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
/// `text` is cut by Slack above 40,000 characters; a notification never needs more than this.
pub const MAX_FALLBACK_TEXT: usize = 3000;

/// One message as sent: the notification fallback and the blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// mrkdwn; shown in notifications and by clients that cannot render blocks.
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<Value>,
}

impl Message {
    /// A message within the limits: fallback cut to [`MAX_FALLBACK_TEXT`], at most
    /// [`MAX_BLOCKS`] blocks (the last ones kept, since they carry the links and the
    /// correlation ID, when there are too many: the middle is dropped).
    pub fn new(text: &str, mut blocks: Vec<Value>) -> Message {
        if blocks.len() > MAX_BLOCKS {
            let tail = blocks.split_off(blocks.len() - 2);
            blocks.truncate(MAX_BLOCKS - 3);
            blocks.push(context(&[
                "_(some details were left out to fit in one message)_",
            ]));
            blocks.extend(tail);
        }
        Message {
            text: truncate(text, MAX_FALLBACK_TEXT),
            blocks,
        }
    }

    /// The same message without blocks: what is sent when Slack refuses the blocks, so people
    /// still learn what happened.
    pub fn text_only(&self) -> Message {
        Message {
            text: self.text.clone(),
            blocks: Vec::new(),
        }
    }
}

/// A `header` block. `text` is plain (see `mrkdwn::plain`).
pub fn header(text: &str) -> Value {
    json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate_plain(text, MAX_HEADER_TEXT), "emoji": true}
    })
}

/// A `section` block with mrkdwn text (already escaped). Empty text is not allowed by Slack.
pub fn section(text: &str) -> Value {
    let text = if text.trim().is_empty() { " " } else { text };
    json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_TEXT)}
    })
}

/// A `section` block of two-column fields (mrkdwn, already escaped); at most [`MAX_FIELDS`].
pub fn fields(items: &[String]) -> Value {
    let fields: Vec<Value> = items
        .iter()
        .filter(|f| !f.trim().is_empty())
        .take(MAX_FIELDS)
        .map(|f| json!({"type": "mrkdwn", "text": truncate(f, MAX_FIELD_TEXT)}))
        .collect();
    json!({"type": "section", "fields": fields})
}

/// A `context` block (small grey text), at most [`MAX_CONTEXT_ELEMENTS`] elements.
pub fn context<S: AsRef<str>>(elements: &[S]) -> Value {
    let elements: Vec<Value> = elements
        .iter()
        .map(AsRef::as_ref)
        .filter(|e| !e.trim().is_empty())
        .take(MAX_CONTEXT_ELEMENTS)
        .map(|e| json!({"type": "mrkdwn", "text": truncate(e, MAX_SECTION_TEXT)}))
        .collect();
    json!({"type": "context", "elements": elements})
}

pub fn divider() -> Value {
    json!({"type": "divider"})
}

/// Checks a message against every limit this module enforces; `Err` names the first
/// violation. Used by tests (unit and against the fake Slack server).
pub fn check_limits(message: &Value) -> Result<(), String> {
    let blocks = message
        .get("blocks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if blocks.len() > MAX_BLOCKS {
        return Err(format!("{} blocks", blocks.len()));
    }
    let len = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    for (i, b) in blocks.iter().enumerate() {
        match b.get("type").and_then(Value::as_str) {
            Some("header") => {
                let n = len(&b["text"]["text"]);
                if n == 0 || n > MAX_HEADER_TEXT {
                    return Err(format!("block {i}: header of {n} chars"));
                }
            }
            Some("section") => {
                if let Some(t) = b.get("text") {
                    let n = len(&t["text"]);
                    if n == 0 || n > MAX_SECTION_TEXT {
                        return Err(format!("block {i}: section text of {n} chars"));
                    }
                }
                if let Some(f) = b.get("fields").and_then(Value::as_array) {
                    if f.len() > MAX_FIELDS {
                        return Err(format!("block {i}: {} fields", f.len()));
                    }
                    if let Some(n) = f
                        .iter()
                        .map(|x| len(&x["text"]))
                        .find(|n| *n > MAX_FIELD_TEXT)
                    {
                        return Err(format!("block {i}: field of {n} chars"));
                    }
                }
                if b.get("text").is_none() && b.get("fields").is_none() {
                    return Err(format!("block {i}: section without text or fields"));
                }
            }
            Some("context") => {
                let n = b["elements"].as_array().map_or(0, Vec::len);
                if n == 0 || n > MAX_CONTEXT_ELEMENTS {
                    return Err(format!("block {i}: context with {n} elements"));
                }
            }
            Some("divider") => {}
            other => return Err(format!("block {i}: unexpected type {other:?}")),
        }
    }
    let text = len(&message["text"]);
    if text == 0 || text > 40_000 {
        return Err(format!("text of {text} chars"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_is_cut_to_its_limit() {
        let long = "x".repeat(10_000);
        let many: Vec<String> = (0..15).map(|i| format!("f{i} {long}")).collect();
        let msg = Message::new(
            &long,
            vec![
                header(&long),
                section(&long),
                fields(&many),
                context(&many),
                divider(),
            ],
        );
        let value = serde_json::to_value(&msg).unwrap();
        check_limits(&value).unwrap();
        assert_eq!(
            msg.blocks[2]["fields"].as_array().unwrap().len(),
            MAX_FIELDS
        );
    }

    #[test]
    fn too_many_blocks_keep_the_first_and_the_last() {
        let blocks: Vec<Value> = (0..80).map(|i| section(&format!("b{i}"))).collect();
        let msg = Message::new("t", blocks);
        assert_eq!(msg.blocks.len(), MAX_BLOCKS);
        assert_eq!(msg.blocks[0]["text"]["text"], "b0");
        assert_eq!(msg.blocks[MAX_BLOCKS - 1]["text"]["text"], "b79");
        check_limits(&serde_json::to_value(&msg).unwrap()).unwrap();
    }

    #[test]
    fn the_checker_catches_violations() {
        let bad = json!({"text": "t", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x".repeat(3001)}}]});
        assert!(check_limits(&bad).is_err());
        let empty = json!({"text": "", "blocks": []});
        assert!(check_limits(&empty).is_err());
    }
}
