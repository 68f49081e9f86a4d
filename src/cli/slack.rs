//! `slack …` subcommands: list and resend Slack messages that could not be delivered.
//!
//! Secrets come from environment variables named on the command line (`--token-env NAME`),
//! never from argv: arguments are visible to every user of the machine (`ps`) and end up in
//! shell histories and CI logs.

use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Subcommand};
use serde_json::json;

use super::registry::registry_failure;
use crate::action::log;
use crate::registry::Registry;
use crate::slack::client::{SlackApi, Webhook};
use crate::slack::deadletter::{self, DeadTarget};
use crate::slack::retry::{ItemResult, RetryOptions, RetryTarget, retry_all};

const EXIT_CODES: &str = "Exit codes:
  0    success (retry: every dead letter delivered)
  1    some dead letters are still undelivered (retry), or the command failed
  2    invalid arguments, or the environment variable named is missing
  69   DynamoDB unreachable (network, 5xx, throttling after retries)
  77   AWS credentials expired
  78   registry misconfigured: table missing, access denied (the message says what to do)";

#[derive(Debug, Subcommand)]
pub enum SlackCommand {
    /// List the Slack messages that could not be delivered (dead letters), oldest first.
    #[command(after_long_help = EXIT_CODES)]
    Status {
        #[arg(long, default_value = "deployment-registry")]
        table: String,
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Resend the dead letters, in order; each item is removed once all its messages are
    /// delivered. A card that was already posted is updated in place.
    #[command(after_long_help = EXIT_CODES)]
    #[command(group(ArgGroup::new("secret").required(true).args(["token_env", "webhook_env"])))]
    Retry {
        #[arg(long, default_value = "deployment-registry")]
        table: String,
        #[arg(long)]
        region: Option<String>,
        /// Name of the environment variable holding the bot token (xoxb-…).
        #[arg(long, value_name = "NAME")]
        token_env: Option<String>,
        /// Name of the environment variable holding the incoming webhook URL.
        #[arg(long, value_name = "NAME")]
        webhook_env: Option<String>,
        /// Send to this channel instead of the one recorded (bot token only).
        #[arg(long, requires = "token_env")]
        channel: Option<String>,
        /// Slack API base URL.
        #[arg(long, default_value = "https://slack.com/api")]
        api_url: String,
        #[arg(long)]
        json: bool,
    },
}

async fn registry(table: &str, region: Option<&str>) -> Registry {
    let config = crate::aws::load(region).await;
    Registry::new(aws_sdk_dynamodb::Client::new(&config), table)
}

/// Reads a secret from the environment variable `name` and registers it for redaction.
pub(super) fn secret_from_env(name: &str) -> Option<String> {
    let value = std::env::var(name).ok()?.trim().to_string();
    if value.is_empty() {
        return None;
    }
    log::add_mask(&value);
    Some(value)
}

pub(crate) async fn run(cmd: SlackCommand) -> ExitCode {
    match cmd {
        SlackCommand::Status {
            table,
            region,
            json,
        } => status(&table, region.as_deref(), json).await,
        SlackCommand::Retry {
            table,
            region,
            token_env,
            webhook_env,
            channel,
            api_url,
            json,
        } => {
            let timeout = Duration::from_secs(10);
            let target = match (token_env, webhook_env) {
                (Some(name), _) => match secret_from_env(&name) {
                    Some(token) => SlackApi::new(&api_url, &token, timeout)
                        .map(|api| RetryTarget::Bot { api, channel }),
                    None => return missing_env(&name),
                },
                (None, Some(name)) => match secret_from_env(&name) {
                    Some(url) => Webhook::new(&url, timeout).map(RetryTarget::Webhook),
                    None => return missing_env(&name),
                },
                (None, None) => return missing_env("--token-env or --webhook-env"),
            };
            let target = match target {
                Ok(t) => t,
                Err(e) => {
                    log::error("Cannot set up the Slack client", &e.to_string());
                    return ExitCode::FAILURE;
                }
            };
            retry(&table, region.as_deref(), &target, json).await
        }
    }
}

fn missing_env(name: &str) -> ExitCode {
    log::error(
        "Missing secret",
        &format!("environment variable {name} is not set or empty"),
    );
    ExitCode::from(2)
}

async fn status(table: &str, region: Option<&str>, as_json: bool) -> ExitCode {
    let reg = registry(table, region).await;
    let letters = match deadletter::list(&reg).await {
        Ok(l) => l,
        Err(e) => return registry_failure("Cannot read dead letters", &e),
    };
    if as_json {
        let items: Vec<_> = letters
            .iter()
            .map(|d| {
                json!({
                    "lock_key": d.lock_key,
                    "sk": d.sk,
                    "correlation_id": d.correlation_id,
                    "created_at": d.created_at,
                    "target": match &d.target {
                        DeadTarget::Bot { channel } => json!({"bot": {"channel": channel}}),
                        DeadTarget::Webhook => json!("webhook"),
                    },
                    "letters": d.letters,
                })
            })
            .collect();
        println!("{}", log::redact(&json!(items).to_string()));
        return ExitCode::SUCCESS;
    }
    if letters.is_empty() {
        println!("no undelivered Slack messages in table {table}");
        return ExitCode::SUCCESS;
    }
    for d in &letters {
        let target = match &d.target {
            DeadTarget::Bot { channel } => format!("channel {channel}"),
            DeadTarget::Webhook => "webhook".to_string(),
        };
        // Message texts and errors come from elsewhere (commit messages, Slack): sanitized so
        // no line can be read as a workflow command when this runs inside Actions.
        println!(
            "{}",
            log::sanitize(&format!(
                "{} {} (lock {}, {target}, created {}): {} message(s)",
                d.sk,
                d.correlation_id,
                d.lock_key,
                d.created_at,
                d.letters.len()
            ))
        );
        for l in &d.letters {
            let text: String = l.message.text.chars().take(200).collect();
            println!(
                "  {}",
                log::sanitize(&format!(
                    "[{}] {} (last error: {})",
                    l.kind.as_str(),
                    text.replace('\n', " "),
                    l.error
                ))
            );
        }
    }
    ExitCode::SUCCESS
}

async fn retry(table: &str, region: Option<&str>, target: &RetryTarget, as_json: bool) -> ExitCode {
    let reg = registry(table, region).await;
    let reports = match retry_all(&reg, target, &RetryOptions::default()).await {
        Ok(r) => r,
        Err(e) => return registry_failure("Cannot resend dead letters", &e),
    };
    let mut all_delivered = true;
    let mut rows = Vec::new();
    for r in &reports {
        let (state, detail) = match &r.result {
            ItemResult::Delivered { letters } => (
                "delivered",
                format!("{letters} message(s) delivered, removed"),
            ),
            ItemResult::Partial {
                delivered,
                left,
                error,
            } => {
                all_delivered = false;
                (
                    "partial",
                    format!("{delivered} delivered, {left} kept: {error}"),
                )
            }
            ItemResult::Skipped { why } => {
                all_delivered = false;
                ("skipped", why.clone())
            }
        };
        if as_json {
            rows.push(json!({
                "lock_key": r.lock_key, "sk": r.sk, "correlation_id": r.correlation_id,
                "result": state, "detail": detail,
            }));
        } else {
            println!(
                "{}",
                log::sanitize(&format!("{} {}: {state}: {detail}", r.sk, r.correlation_id))
            );
        }
    }
    if as_json {
        println!("{}", log::redact(&json!(rows).to_string()));
    } else if reports.is_empty() {
        println!("no undelivered Slack messages in table {table}");
    }
    if all_delivered {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
