//! The stack guard: never start while the stack is busy.
//!
//! The lock serialises the deployers that use it; someone deploying from the console, another
//! pipeline or a run that lost its lock can still have an operation running. Starting then
//! would fail ("is in UPDATE_IN_PROGRESS state and can not be updated") or, in mode monitor,
//! follow the wrong operation. So after taking the lock, and alone when the registry is
//! unavailable ("CloudFormation-only coordination"), the step waits until the stack settles.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use super::client::{ClientError, ErrorKind, StackClient};
use super::poll::{Hint, PollResult, PollSchedule, PollSettings};
use super::status;

/// What the guard is waiting for (reported when it starts waiting and on every change).
#[derive(Debug, Clone, PartialEq)]
pub struct SettleWait {
    pub stack: String,
    pub status: String,
    /// When the stack last changed (CloudFormation's clock), if known.
    pub since: Option<DateTime<Utc>>,
    pub waited: Duration,
}

/// The stack once settled.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    /// None when the stack does not exist.
    pub status: Option<String>,
    pub waited: Duration,
}

#[derive(Debug, Error)]
pub enum GuardError {
    #[error("stack {stack} was still {status} after waiting {}: someone else is deploying it", crate::duration::human(*waited))]
    Timeout {
        stack: String,
        status: String,
        waited: Duration,
    },
    #[error("cancelled while waiting for stack {stack} to settle")]
    Cancelled { stack: String },
    #[error(transparent)]
    Aws(#[from] ClientError),
}

/// Waits while `stack` has an operation in progress, at most `timeout`. `on_wait` hears what
/// it waits for. Throttling and transient errors slow the polling down; other errors end it.
pub async fn wait_until_settled<F>(
    client: &StackClient,
    stack: &str,
    timeout: Duration,
    poll: PollSettings,
    cancel: &CancellationToken,
    mut on_wait: F,
) -> Result<Settled, GuardError>
where
    F: FnMut(&SettleWait) + Send,
{
    let began = Instant::now();
    let mut schedule = PollSchedule::new(poll);
    let mut last_status: Option<String> = None;
    let mut transient_failures = 0u32;
    loop {
        let result = match client.describe_stack(stack).await {
            Ok(None) => {
                return Ok(Settled {
                    status: None,
                    waited: began.elapsed(),
                });
            }
            Ok(Some(info)) if !status::is_in_progress(&info.status) => {
                return Ok(Settled {
                    status: Some(info.status),
                    waited: began.elapsed(),
                });
            }
            Ok(Some(info)) => {
                transient_failures = 0;
                let changed = last_status.as_deref() != Some(info.status.as_str());
                if changed {
                    on_wait(&SettleWait {
                        stack: stack.to_string(),
                        status: info.status.clone(),
                        since: info.last_updated,
                        waited: began.elapsed(),
                    });
                    last_status = Some(info.status);
                }
                if changed {
                    PollResult::News
                } else {
                    PollResult::Quiet
                }
            }
            Err(e) if e.kind == ErrorKind::Throttling => PollResult::Throttled,
            // A few network hiccups while waiting are not worth failing the step for.
            Err(e) if e.kind == ErrorKind::Transient && transient_failures < 5 => {
                transient_failures += 1;
                PollResult::Throttled
            }
            Err(e) => return Err(e.into()),
        };
        let waited = began.elapsed();
        if waited >= timeout {
            return Err(GuardError::Timeout {
                stack: stack.to_string(),
                status: last_status.unwrap_or_else(|| "in progress".into()),
                waited,
            });
        }
        let delay = schedule.next(result, Hint::default()).min(timeout - waited);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancel.cancelled() => return Err(GuardError::Cancelled { stack: stack.to_string() }),
        }
    }
}
