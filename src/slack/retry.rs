//! Resending dead letters (`slack retry`): each item is claimed, its letters are sent in order,
//! and the item is removed once all are delivered (or keeps what is still undelivered).
//!
//! A card letter that carries the ts of a card already posted updates that card in place (it
//! is the card's final state); otherwise it is posted, and the thread letters after it reply to
//! it. Given another channel (`--channel`), every letter is posted anew there.

use std::time::Duration;

use super::blocks::Message;
use super::client::{ErrorClass, SendError, SlackApi, Webhook};
use super::deadletter::{self, DeadLetter, DeadTarget, Letter, LetterKind};
use crate::action::log;
use crate::registry::{Registry, RegistryError};

/// Where `slack retry` sends.
#[derive(Debug, Clone)]
pub enum RetryTarget {
    /// Bot token; `channel` replaces the dead letters' channel when given.
    Bot {
        api: SlackApi,
        channel: Option<String>,
    },
    Webhook(Webhook),
}

/// Attempts per letter within one `slack retry` run, and the wait between them when Slack
/// gave no Retry-After.
#[derive(Debug, Clone)]
pub struct RetryOptions {
    pub attempts: u32,
    pub backoff: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            attempts: 3,
            backoff: Duration::from_secs(2),
        }
    }
}

/// What happened to one dead-letter item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemResult {
    /// All letters delivered; the item was removed.
    Delivered { letters: usize },
    /// Some delivered, the rest kept in the item.
    Partial {
        delivered: usize,
        left: usize,
        error: String,
    },
    /// Not attempted: another retry holds it, or it belongs to the other kind of target.
    Skipped { why: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemReport {
    pub lock_key: String,
    pub sk: String,
    pub correlation_id: String,
    pub result: ItemResult,
}

/// Resends every dead letter in the table.
pub async fn retry_all(
    registry: &Registry,
    target: &RetryTarget,
    options: &RetryOptions,
) -> Result<Vec<ItemReport>, RegistryError> {
    let mut reports = Vec::new();
    for item in deadletter::list(registry).await? {
        let result = retry_one(registry, target, options, &item).await?;
        reports.push(ItemReport {
            lock_key: item.lock_key.clone(),
            sk: item.sk.clone(),
            correlation_id: item.correlation_id.clone(),
            result,
        });
    }
    Ok(reports)
}

async fn retry_one(
    registry: &Registry,
    target: &RetryTarget,
    options: &RetryOptions,
    item: &DeadLetter,
) -> Result<ItemResult, RegistryError> {
    match (&item.target, target) {
        (DeadTarget::Webhook, RetryTarget::Bot { channel: None, .. }) => {
            return Ok(ItemResult::Skipped {
                why: "sent through a webhook: give --webhook-env, or --channel with --token-env"
                    .into(),
            });
        }
        (DeadTarget::Bot { .. }, RetryTarget::Webhook(_)) => {
            return Ok(ItemResult::Skipped {
                why: "sent with a bot token: give --token-env".into(),
            });
        }
        _ => {}
    }
    let Some(claimed) = deadletter::claim(registry, item).await? else {
        return Ok(ItemResult::Skipped {
            why: "another `slack retry` is sending it, or it was removed".into(),
        });
    };
    let mut delivered = 0;
    let mut failure = None;
    let mut parent: Option<(String, String)> = None;
    for letter in &item.letters {
        match send_letter(target, item, letter, &mut parent, options).await {
            Ok(()) => delivered += 1,
            Err(e) => {
                failure = Some(log::redact(&e.to_string()));
                break;
            }
        }
    }
    let remaining: Vec<Letter> = item.letters[delivered..]
        .iter()
        .map(|l| Letter {
            error: failure.clone().unwrap_or_default(),
            ..l.clone()
        })
        .collect();
    let left = remaining.len();
    deadletter::settle(registry, item, &claimed, remaining).await?;
    Ok(match failure {
        None => ItemResult::Delivered { letters: delivered },
        Some(error) => ItemResult::Partial {
            delivered,
            left,
            error,
        },
    })
}

/// Sends one letter; `parent` is the card (channel, ts) posted or updated by this retry.
async fn send_letter(
    target: &RetryTarget,
    item: &DeadLetter,
    letter: &Letter,
    parent: &mut Option<(String, String)>,
    options: &RetryOptions,
) -> Result<(), SendError> {
    match target {
        RetryTarget::Webhook(hook) => {
            with_retries(
                options,
                &letter.message,
                |m| async move { hook.post(&m).await },
            )
            .await
        }
        RetryTarget::Bot { api, channel } => {
            let original = match &item.target {
                DeadTarget::Bot { channel } => Some(channel.clone()),
                DeadTarget::Webhook => None,
            };
            // The stored ts only means something in the original channel.
            let (dest, same_channel) = match (channel, original) {
                (Some(c), Some(o)) => (c.clone(), *c == o),
                (Some(c), None) => (c.clone(), false),
                (None, Some(o)) => (o, true),
                (None, None) => {
                    return Err(SendError::Api {
                        code: "no_channel".into(),
                    });
                }
            };
            let stored_ts = letter.ts.clone().filter(|_| same_channel);
            match letter.kind {
                LetterKind::Card => {
                    if let Some(ts) = &stored_ts {
                        let updated = with_retries(options, &letter.message, |m| {
                            let (dest, ts) = (dest.clone(), ts.clone());
                            async move { api.update(&dest, &ts, &m).await.map(|_| ()) }
                        })
                        .await;
                        match updated {
                            Ok(()) => {
                                *parent = Some((dest, ts.clone()));
                                return Ok(());
                            }
                            Err(e) if e.class() != ErrorClass::CannotUpdate => return Err(e),
                            Err(_) => {}
                        }
                    }
                    let posted = with_retries(options, &letter.message, |m| {
                        let dest = dest.clone();
                        async move { api.post_message(&dest, &m, None).await }
                    })
                    .await?;
                    *parent = Some((posted.channel, posted.ts));
                    Ok(())
                }
                LetterKind::Thread | LetterKind::Webhook => {
                    let (to, thread) = match (parent.clone(), stored_ts) {
                        (Some((c, ts)), _) => (c, Some(ts)),
                        (None, ts) => (dest, ts),
                    };
                    with_retries(options, &letter.message, |m| {
                        let (to, thread) = (to.clone(), thread.clone());
                        async move {
                            api.post_message(&to, &m, thread.as_deref())
                                .await
                                .map(|_| ())
                        }
                    })
                    .await
                }
            }
        }
    }
}

/// Runs `send` up to `options.attempts` times on retryable errors (honouring Retry-After);
/// a refused message is tried once more as plain text.
async fn with_retries<T, F, Fut>(
    options: &RetryOptions,
    message: &Message,
    mut send: F,
) -> Result<T, SendError>
where
    F: FnMut(Message) -> Fut,
    Fut: std::future::Future<Output = Result<T, SendError>>,
{
    let mut message = message.clone();
    let mut attempt = 0;
    let mut text_only = false;
    loop {
        attempt += 1;
        match send(message.clone()).await {
            Ok(v) => return Ok(v),
            Err(e) => match e.class() {
                ErrorClass::Retryable if attempt < options.attempts.max(1) => {
                    let wait = e.retry_after().unwrap_or(options.backoff);
                    tokio::time::sleep(wait).await;
                }
                ErrorClass::BadMessage if !text_only => {
                    text_only = true;
                    message = message.text_only();
                }
                _ => return Err(e),
            },
        }
    }
}
