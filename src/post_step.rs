//! The action's post step, as one story.
//!
//! It runs in a new container after the job's other steps, also when they failed or were
//! cancelled (`post-if: always()`), and knows of the main step only what the state file
//! carried (`STATE_*`):
//! 1. No correlation ID: the main step stopped before doing anything. Nothing to do.
//! 2. The main step released the lock itself (modes deploy and monitor). Nothing to do.
//! 3. Mode lock: read what the job's later steps did to the stack since the lock was taken,
//!    and report it (log, job summary).
//! 4. Release the lock, checked against our owner ID (never someone else's lock), and leave
//!    the queue in case the main step was killed while waiting.
//!
//! The post step never fails the job over clean-up it cannot do: the lease frees the lock
//! anyway. It says exactly what happened and what to run if something is left.

use std::process::ExitCode;

use tracing::{Instrument, info, info_span, warn};

use crate::action::{FileCommands, Inputs, log};
use crate::config::Config;
use crate::context::RunContext;
use crate::lock::{self, WallClock};
use crate::outputs::state;
use crate::registry::Registry;
use crate::stack::{self, Baseline, StackClient};
use crate::{aws, duration, main_step, summary};

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
        if let Some(baseline) = get(state::STACK_BASELINE) {
            report_lock_mode(&sdk, &correlation_id, &baseline).await;
        } else if get(state::MODE).is_some_and(|m| m != "lock") {
            // Modes deploy and monitor release in the main step; getting here means it
            // stopped early (cancelled, killed, or its monitor gave up): look at the stack.
            check_stack_before_release(&sdk).await;
        }
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

/// Mode lock: what ran on the stack between the main step and now (CDK, SAM, the AWS CLI…).
async fn report_lock_mode(sdk: &aws_config::SdkConfig, correlation_id: &str, baseline: &str) {
    let Some(stack_name) = std::env::var("INPUT_STACK-NAME")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
    else {
        return;
    };
    let baseline = match Baseline::decode(baseline) {
        Ok(b) => b,
        Err(e) => {
            warn!(
                "the main step's stack baseline is unreadable ({e}): not reporting what was deployed"
            );
            return;
        }
    };
    let stacks = StackClient::from_conf(sdk);
    let files = FileCommands::from_env(&|name| std::env::var(name).ok());
    match stack::reconstruct_since(&stacks, &stack_name, &baseline).await {
        Ok(found) if found.operations.is_empty() && found.running.is_none() => {
            info!("no operation ran on stack {stack_name} while the lock was held");
        }
        Ok(found) => {
            for op in found.operations.iter().chain(found.running.iter()) {
                let status = op.stack_status.as_deref().unwrap_or("unknown");
                info!(
                    "while the lock was held: {stack_name} {} ({status}) in {}",
                    op.outcome,
                    duration::human(op.duration)
                );
                if let (Some(resource), Some(reason)) = (&op.failed_resource, &op.failure_reason) {
                    log::error(&format!("{resource} failed"), reason);
                }
            }
            if let Some(running) = &found.running {
                log::warning(
                    "Stack still in progress",
                    &format!(
                        "stack {stack_name} is {} while the lock is released: a later step started an operation that has not ended",
                        running.stack_status.as_deref().unwrap_or("in progress")
                    ),
                );
            }
            let config = post_config(&stack_name);
            if let (Some(config), Some(last)) = (config, found.operations.last()) {
                let _ = files.append_summary(&summary::render(correlation_id, &config, last));
            }
        }
        Err(e) => {
            warn!("cannot read what ran on stack {stack_name} ({e}): the lock is released anyway")
        }
    }
}

/// The inputs again (the runner exports them to the post step too), for the summary.
fn post_config(stack_name: &str) -> Option<Config> {
    let inputs = Inputs::from_process_env();
    let workspace = std::env::var("GITHUB_WORKSPACE").unwrap_or_else(|_| ".".into());
    Config::from_inputs(&inputs, std::path::Path::new(&workspace))
        .map_err(|e| warn!("cannot read the inputs again for the summary of {stack_name}: {e}"))
        .ok()
}

/// Says whether the stack still has an operation running as we release: the next holder's
/// stack guard then waits for it, but the people reading this log should know.
async fn check_stack_before_release(sdk: &aws_config::SdkConfig) {
    let Some(stack_name) = std::env::var("INPUT_STACK-NAME")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
    else {
        return;
    };
    match StackClient::from_conf(sdk)
        .describe_stack(&stack_name)
        .await
    {
        Ok(Some(info)) if stack::status::is_in_progress(&info.status) => log::warning(
            "Releasing the lock while the stack is busy",
            &format!(
                "stack {stack_name} is {}: the main step stopped before the operation ended. The next run waits for the \
                 stack to settle before deploying.",
                info.status
            ),
        ),
        Ok(Some(info)) => info!("stack {stack_name} is {}", info.status),
        Ok(None) => info!("stack {stack_name} does not exist"),
        Err(e) => warn!("cannot read stack {stack_name} before releasing ({e})"),
    }
}
