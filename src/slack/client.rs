//! Talking to Slack: the Web API with a bot token (chat.postMessage, chat.update) and incoming
//! webhooks, each answer turned into success or a [`SendError`] that says what to do next.
//!
//! Success is HTTP 200 AND `ok: true` (Web API) or HTTP 200 AND body `ok` (webhook): Slack
//! reports most Web API errors as HTTP 200 with `ok: false`. Errors never contain the token or
//! the webhook URL: reqwest's errors carry the URL (a webhook URL is a secret), so it is
//! stripped, and every text is passed through the secret redaction as well.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use thiserror::Error;

use super::blocks::Message;
use crate::action::log::redact;

/// Why a send failed, with what Slack or the network said (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    /// HTTP 429, or `ok:false` with a rate-limit code.
    #[error("rate limited by Slack{}", .retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    /// An HTTP status other than 200 and 429.
    #[error("Slack answered HTTP {status}{}", if .body.is_empty() { String::new() } else { format!(": {}", .body) })]
    Status {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    /// `ok: false` with an error code.
    #[error("Slack refused the request: {code}")]
    Api { code: String },
    #[error("Slack did not answer in time")]
    Timeout,
    #[error("cannot reach Slack: {0}")]
    Connection(String),
    /// HTTP 200 but not the answer Slack gives (a proxy page, a truncated body).
    #[error("unexpected answer from Slack: {0}")]
    BadAnswer(String),
}

/// What the sender does about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: try again after the backoff (or Retry-After).
    Retryable,
    /// Nothing else will work either (credentials, channel, webhook gone): stop sending, warn
    /// once, keep what is undelivered for the dead letter.
    Fatal,
    /// This message was refused (too long, invalid blocks): send it as plain text instead.
    BadMessage,
    /// This card can no longer be updated (deleted, too old): post a new one.
    CannotUpdate,
}

/// Classifies a Web API `ok:false` error code.
pub fn classify_code(code: &str) -> ErrorClass {
    match code {
        "rate_limited"
        | "ratelimited"
        | "internal_error"
        | "service_unavailable"
        | "request_timeout"
        | "fatal_error"
        | "team_added_to_org" => ErrorClass::Retryable,
        "message_not_found" | "cant_update_message" | "edit_window_closed" => {
            ErrorClass::CannotUpdate
        }
        "msg_too_long"
        | "invalid_blocks"
        | "invalid_blocks_format"
        | "no_text"
        | "too_many_attachments"
        | "invalid_attachments"
        | "invalid_arguments"
        | "invalid_form_data"
        | "invalid_json"
        | "json_not_object"
        | "invalid_charset"
        | "invalid_metadata_format"
        | "metadata_too_large" => ErrorClass::BadMessage,
        // invalid_auth, not_authed, account_inactive, token_revoked, token_expired,
        // no_permission, missing_scope, channel_not_found, not_in_channel, is_archived,
        // restricted_action, ekm_access_denied, org_login_required, ... and every code this
        // program does not know: retrying would only repeat the refusal.
        _ => ErrorClass::Fatal,
    }
}

impl SendError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SendError::RateLimited { .. }
            | SendError::Timeout
            | SendError::Connection(_)
            | SendError::BadAnswer(_) => ErrorClass::Retryable,
            SendError::Status { status, .. } => match status {
                408 | 425 | 500..=599 => ErrorClass::Retryable,
                // Webhook: 400 invalid_payload (this message); Web API never answers 400.
                400 | 413 => ErrorClass::BadMessage,
                // 403 action_prohibited, 404 channel_not_found / no_service, 410
                // channel_is_archived, 401: the target is gone or forbidden.
                _ => ErrorClass::Fatal,
            },
            SendError::Api { code } => classify_code(code),
        }
    }

    /// How long Slack asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::RateLimited { retry_after } | SendError::Status { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}

/// What chat.postMessage / chat.update return that we keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// Channel ID (chat.update needs the ID, not `#name`).
    pub channel: String,
    pub ts: String,
}

/// Builds the HTTP client: a timeout per request (the notifier's retries handle the rest).
fn http(timeout: Duration) -> Result<reqwest::Client, SendError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("deploy-coordinator/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SendError::Connection(describe_reqwest(e, &[])))
}

/// A reqwest error as text without the URL (which can be the webhook secret) and without any
/// registered or given secret.
fn describe_reqwest(err: reqwest::Error, secrets: &[&str]) -> String {
    use std::error::Error as _;
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    scrub(&text, secrets)
}

fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = redact(text);
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s, "***");
    }
    out
}

fn transport_error(err: reqwest::Error, secrets: &[&str]) -> SendError {
    if err.is_timeout() {
        SendError::Timeout
    } else {
        SendError::Connection(describe_reqwest(err, secrets))
    }
}

/// Sends a JSON body and reads the answer: HTTP status, `Retry-After`, body text. Transport
/// errors have the secrets (token, webhook URL) removed.
async fn send_json(
    request: reqwest::RequestBuilder,
    body: &Value,
    secrets: &[&str],
) -> Result<(u16, Option<Duration>, String), SendError> {
    let request = request
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )
        .body(body.to_string());
    let answer = send(request, secrets).await?;
    Ok((answer.status, answer.retry_after, answer.text))
}

/// An HTTP answer as read by [`send`].
struct RawAnswer {
    status: u16,
    retry_after: Option<Duration>,
    /// `x-oauth-scopes`: the scopes of the token, which Slack returns on Web API answers.
    scopes: Option<String>,
    text: String,
}

async fn send(request: reqwest::RequestBuilder, secrets: &[&str]) -> Result<RawAnswer, SendError> {
    let response = request
        .send()
        .await
        .map_err(|e| transport_error(e, secrets))?;
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let scopes = response
        .headers()
        .get("x-oauth-scopes")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response
        .text()
        .await
        .map_err(|e| transport_error(e, secrets))?;
    Ok(RawAnswer {
        status,
        retry_after,
        scopes,
        text,
    })
}

/// A Web API answer turned into its JSON body or the error it means: HTTP 429 and rate-limit
/// codes, other statuses, bodies that are not Slack's, and `ok: false`.
fn api_body(
    status: u16,
    wait: Option<Duration>,
    text: &str,
    secrets: &[&str],
) -> Result<Value, SendError> {
    if status == 429 {
        return Err(SendError::RateLimited { retry_after: wait });
    }
    if status != 200 {
        return Err(SendError::Status {
            status,
            body: body_excerpt(text, secrets),
            retry_after: wait,
        });
    }
    let body: Value = serde_json::from_str(text)
        .map_err(|_| SendError::BadAnswer(body_excerpt(text, secrets)))?;
    let answer = ApiAnswer::deserialize(&body)
        .map_err(|_| SendError::BadAnswer(body_excerpt(text, secrets)))?;
    if !answer.ok {
        let code = answer.error.unwrap_or_else(|| "unknown_error".into());
        let code = body_excerpt(&code, secrets);
        if matches!(code.as_str(), "rate_limited" | "ratelimited") {
            return Err(SendError::RateLimited { retry_after: wait });
        }
        return Err(SendError::Api { code });
    }
    Ok(body)
}

/// Who a bot token is, from `auth.test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: Option<String>,
    pub user_id: Option<String>,
    pub team: Option<String>,
    /// The token's scopes, when Slack said (the `x-oauth-scopes` header).
    pub scopes: Option<Vec<String>>,
}

/// What `conversations.info` says about a channel, as far as posting to it is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub id: String,
    pub name: Option<String>,
    pub is_member: bool,
    pub is_archived: bool,
    pub is_private: bool,
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The start of a body, for an error message: short, one line, without secrets.
fn body_excerpt(body: &str, secrets: &[&str]) -> String {
    let one_line: String = body
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    scrub(one_line.trim(), secrets)
}

/// The Web API with a bot token.
#[derive(Clone)]
pub struct SlackApi {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl std::fmt::Debug for SlackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackApi")
            .field("base", &self.base)
            .field("token", &"***")
            .finish()
    }
}

#[derive(Deserialize)]
struct ApiAnswer {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
}

impl SlackApi {
    /// `base` is the API root (`https://slack.com/api`, or a fake server in tests).
    pub fn new(base: &str, token: &str, timeout: Duration) -> Result<SlackApi, SendError> {
        Ok(SlackApi {
            http: http(timeout)?,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    /// Posts a message; `thread_ts` makes it a reply. Returns the channel ID and the ts.
    pub async fn post_message(
        &self,
        channel: &str,
        message: &Message,
        thread_ts: Option<&str>,
    ) -> Result<Posted, SendError> {
        let mut body = json!({
            "channel": channel,
            "text": message.text,
            // Links in our messages are explicit; no previews of run pages in the channel.
            "unfurl_links": false,
            "unfurl_media": false,
        });
        if !message.blocks.is_empty() {
            body["blocks"] = Value::Array(message.blocks.clone());
        }
        if let Some(ts) = thread_ts {
            body["thread_ts"] = json!(ts);
        }
        self.call("chat.postMessage", &body).await
    }

    /// Replaces the message `ts` in `channel` (a channel ID).
    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        message: &Message,
    ) -> Result<Posted, SendError> {
        let mut body = json!({"channel": channel, "ts": ts, "text": message.text});
        // Without `blocks`, chat.update keeps the old blocks: send an empty list to clear them.
        body["blocks"] = Value::Array(message.blocks.clone());
        self.call("chat.update", &body).await
    }

    /// `auth.test`: whether the token works, and as whom. Sends nothing to any channel.
    pub async fn auth_test(&self) -> Result<Identity, SendError> {
        let (body, scopes) = self.read("auth.test", &[]).await?;
        let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
        Ok(Identity {
            user: text("user"),
            user_id: text("user_id"),
            team: text("team"),
            scopes: scopes.map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            }),
        })
    }

    /// `conversations.info` for a channel ID: whether the bot is in it and whether it is
    /// archived (needs the `channels:read` scope, `groups:read` for a private channel).
    pub async fn conversations_info(&self, channel: &str) -> Result<ChannelInfo, SendError> {
        let (body, _) = self
            .read("conversations.info", &[("channel", channel)])
            .await?;
        let c = body.get("channel").cloned().unwrap_or(Value::Null);
        let flag = |key: &str| c.get(key).and_then(Value::as_bool).unwrap_or(false);
        Ok(ChannelInfo {
            id: c
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or(channel)
                .to_string(),
            name: c.get("name").and_then(Value::as_str).map(str::to_string),
            is_member: flag("is_member"),
            is_archived: flag("is_archived"),
            is_private: flag("is_private"),
        })
    }

    /// A read method called with GET and query arguments (read methods do not take JSON
    /// bodies). Returns the body and the token's scopes header.
    async fn read(
        &self,
        method: &str,
        query: &[(&str, &str)],
    ) -> Result<(Value, Option<String>), SendError> {
        let secrets = [self.token.as_str()];
        let mut url = reqwest::Url::parse(&format!("{}/{method}", self.base))
            .map_err(|e| SendError::Connection(format!("invalid Slack API URL: {e}")))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        let request = self.http.get(url).bearer_auth(&self.token);
        let answer = send(request, &secrets).await?;
        let body = api_body(answer.status, answer.retry_after, &answer.text, &secrets)?;
        Ok((body, answer.scopes))
    }

    async fn call(&self, method: &str, body: &Value) -> Result<Posted, SendError> {
        let secrets = [self.token.as_str()];
        let request = self
            .http
            .post(format!("{}/{method}", self.base))
            .bearer_auth(&self.token);
        let (status, wait, text) = send_json(request, body, &secrets).await?;
        let body = api_body(status, wait, &text, &secrets)?;
        let field = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
        match (field("channel"), field("ts")) {
            (Some(channel), Some(ts)) => Ok(Posted { channel, ts }),
            _ => Err(SendError::BadAnswer(format!(
                "{method} answered ok without channel and ts"
            ))),
        }
    }
}

/// An incoming webhook. The URL is a secret: it is never printed.
#[derive(Clone)]
pub struct Webhook {
    http: reqwest::Client,
    url: String,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("url", &"***").finish()
    }
}

impl Webhook {
    pub fn new(url: &str, timeout: Duration) -> Result<Webhook, SendError> {
        Ok(Webhook {
            http: http(timeout)?,
            url: url.to_string(),
        })
    }

    /// Checks the webhook without posting anything: an empty payload is refused by a live
    /// webhook (HTTP 400 `no_text` / `invalid_payload`) and by a revoked one with 403/404/410.
    /// Returns the HTTP status and the start of the body.
    pub async fn probe(&self) -> Result<(u16, String), SendError> {
        let secrets = [self.url.as_str()];
        let (status, _, text) = send_json(self.http.post(&self.url), &json!({}), &secrets).await?;
        Ok((status, body_excerpt(&text, &secrets)))
    }

    pub async fn post(&self, message: &Message) -> Result<(), SendError> {
        let secrets = [self.url.as_str()];
        let mut body = json!({"text": message.text, "unfurl_links": false});
        if !message.blocks.is_empty() {
            body["blocks"] = Value::Array(message.blocks.clone());
        }
        let (status, wait, text) = send_json(self.http.post(&self.url), &body, &secrets).await?;
        match status {
            200 if text.trim() == "ok" => Ok(()),
            200 => Err(SendError::BadAnswer(body_excerpt(&text, &secrets))),
            429 => Err(SendError::RateLimited { retry_after: wait }),
            _ => Err(SendError::Status {
                status,
                body: body_excerpt(&text, &secrets),
                retry_after: wait,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified_by_what_to_do() {
        for code in [
            "rate_limited",
            "ratelimited",
            "internal_error",
            "service_unavailable",
            "request_timeout",
            "fatal_error",
        ] {
            assert_eq!(classify_code(code), ErrorClass::Retryable, "{code}");
        }
        for code in [
            "invalid_auth",
            "not_authed",
            "account_inactive",
            "token_revoked",
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "missing_scope",
            "something_new",
        ] {
            assert_eq!(classify_code(code), ErrorClass::Fatal, "{code}");
        }
        for code in ["msg_too_long", "invalid_blocks", "no_text"] {
            assert_eq!(classify_code(code), ErrorClass::BadMessage, "{code}");
        }
        for code in [
            "message_not_found",
            "cant_update_message",
            "edit_window_closed",
        ] {
            assert_eq!(classify_code(code), ErrorClass::CannotUpdate, "{code}");
        }
    }

    #[test]
    fn webhook_statuses_are_classified() {
        let status = |status| SendError::Status {
            status,
            body: String::new(),
            retry_after: None,
        };
        assert_eq!(status(500).class(), ErrorClass::Retryable);
        assert_eq!(status(503).class(), ErrorClass::Retryable);
        assert_eq!(status(400).class(), ErrorClass::BadMessage);
        for s in [403, 404, 410] {
            assert_eq!(status(s).class(), ErrorClass::Fatal, "{s}");
        }
        assert_eq!(
            SendError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
            .retry_after(),
            Some(Duration::from_secs(3))
        );
        assert_eq!(SendError::Timeout.class(), ErrorClass::Retryable);
    }
}
