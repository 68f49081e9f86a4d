//! The action's post step, as one story.
//!
//! It runs in a new container after the job's other steps, also when they failed or were
//! cancelled (`post-if: always()`), and knows of the main step only what the state file
//! carried (`STATE_*`):
//! 1. No correlation ID: the main step stopped before doing anything. Nothing to do.
//! 2. The main step released the lock itself (modes deploy and monitor). Nothing to do.
//! 3. Otherwise release the lock, checked against our owner ID (never someone else's lock),
//!    and leave the queue in case the main step was killed while waiting.
//!
//! The post step never fails the job over clean-up it cannot do: the lease frees the lock
//! anyway. It says exactly what happened and what to run if something is left.

use std::process::ExitCode;

use tracing::{Instrument, info, info_span, warn};

use crate::action::log;
use crate::context::RunContext;
use crate::lock::{self, WallClock};
use crate::outputs::state;
use crate::registry::Registry;
use crate::{aws, main_step};

/// Runs the post step with this process's environment.
pub async fn run(_ctx: RunContext) -> ExitCode {
    let get = |key: &str| {
        std::env::var(format!("STATE_{key}"))
            .ok()
            .filter(|v| !v.is_empty())
    };
    let Some(correlation_id) = get(state::CORRELATION_ID) else {
        info!("the main step recorded nothing (it stopped before starting): nothing to clean up");
        return ExitCode::SUCCESS;
    };
    let span = info_span!("deploy", cid = %correlation_id);
    async move {
        let (Some(table), Some(key), Some(owner)) = (get(state::LOCK_TABLE), get(state::LOCK_KEY), get(state::LOCK_OWNER)) else {
            info!("no lock was requested: nothing to release");
            return ExitCode::SUCCESS;
        };
        if get(state::LOCK_RELEASED).is_some() {
            info!("lock {key:?} was already released by the main step");
            return ExitCode::SUCCESS;
        }
        let sdk = aws::load(get(state::REGION).as_deref()).await;
        let clock = WallClock::from_env(&|name| std::env::var(name).ok()).unwrap_or_else(|_| WallClock::system());
        let registry = Registry::new(aws_sdk_dynamodb::Client::new(&sdk), &table).with_clock(clock);
        match lock::release(&registry, &key, &owner).await {
            Ok(outcome) => info!("lock {key:?}: {}", main_step::describe_release(&outcome)),
            Err(e) => {
                log::warning(
                    "Could not release the deployment lock",
                    &format!(
                        "{e}. The lock expires after its lease; to free it now run \
                         `deploy-coordinator lock release --table {table} --key {key} --owner {owner}`"
                    ),
                );
                return ExitCode::SUCCESS;
            }
        }
        // A main step killed while queued leaves a ticket; others would skip it once stale,
        // but removing it now hands the lock on without that delay.
        match lock::leave_queue(&registry, &key, &owner).await {
            Ok(0) => {}
            Ok(n) => info!("removed {n} queue ticket(s) left by the main step"),
            Err(e) => warn!("could not remove our queue ticket ({e}); waiters skip it once it goes stale"),
        }
        ExitCode::SUCCESS
    }
    .instrument(span)
    .await
}
