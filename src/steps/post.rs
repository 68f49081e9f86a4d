//! The action's post step, as one story.
//!
//! It runs in a new container after the job's other steps, also when they failed or were
//! cancelled (`post-if: always()`), and knows of the main step only what the state file
//! carried (`STATE_*`) and the inputs, which the runner exports again:
//! 1. No correlation ID: the main step stopped before doing anything. Nothing to do.
//! 2. The main step released the lock itself (modes deploy and monitor). Nothing to do.
//! 3. Release the lock first, checked against our owner ID (never someone else's lock), and
//!    leave the queue in case the main step was killed while waiting. A lock the main step
//!    took that is no longer ours is a warning: someone took it over while the job ran.
//!    Not while the rollback that `on-cancel: cancel-update` started still runs: the stack
//!    is busy, and the lease frees the lock.
//! 4. Mode lock: read what the job's later steps did to the stack since the lock was taken,
//!    and report it (log, job summary, the Slack card), bounded in time.
//!    Modes deploy and monitor that get here stopped early: look at the stack and say so (on
//!    the card only if the main step did not reach its end, which posted the final card).
//! 5. Deliver what Slack still has queued, or dead-letter it.
//!
//! The post step never fails the job over clean-up it cannot do: the lease frees the lock
//! anyway. It says exactly what happened and what to run if something is left.

use std::process::ExitCode;
use std::time::Duration;

use tracing::{Instrument, info, info_span, warn};

use crate::action::{FileCommands, Inputs, log};
use crate::config::Config;
use crate::context::RunContext;
use crate::lock::{self, WallClock};
use crate::outputs::state;
use crate::registry::Registry;
use crate::slack::{CardRef, LiveCard, Notifier};
use crate::stack::{self, Baseline, StackClient, StackResult};
use crate::{aws, duration, history, narrate, summary};

use super::shared;

/// How long the post step gives Slack: it shares the step's time limit with everything else.
const SLACK_FLUSH: Duration = Duration::from_secs(10);
/// How long the post step gives its report of the stack (events, history, GitHub) after the
/// release.
const TELL_BUDGET: Duration = Duration::from_secs(60);

fn state_value(key: &str) -> Option<String> {
    std::env::var(format!("STATE_{key}"))
        .ok()
        .filter(|v| !v.is_empty())
}

/// Runs the post step with this process's environment.
pub async fn run(ctx: RunContext) -> ExitCode {
    let Some(correlation_id) = state_value(state::CORRELATION_ID) else {
        info!("the main step recorded nothing (it stopped before starting): nothing to clean up");
        return ExitCode::SUCCESS;
    };
    let span = info_span!("deploy", cid = %correlation_id);
    async move {
        let (Some(table), Some(key), Some(owner)) =
            (state_value(state::LOCK_TABLE), state_value(state::LOCK_KEY), state_value(state::LOCK_OWNER))
        else {
            info!("no lock was requested: nothing to release");
            return ExitCode::SUCCESS;
        };
        if state_value(state::LOCK_RELEASED).is_some() {
            info!("lock {key:?} was already released by the main step");
            return ExitCode::SUCCESS;
        }
        let sdk = aws::load(state_value(state::REGION).as_deref()).await;
        // The inputs again: for the stack name, Slack and the summary.
        let config = Config::from_inputs(&Inputs::from_process_env(), &ctx.workspace)
            .map_err(|e| warn!("cannot read the inputs again ({e}): releasing the lock without a report"))
            .ok();
        let live = config.as_ref().map(|config| resume_card(config, &correlation_id, &sdk));
        let clock = WallClock::from_env(&|name| std::env::var(name).ok()).unwrap_or_else(|_| WallClock::system());
        let registry = Registry::new(aws_sdk_dynamodb::Client::new(&sdk), &table).with_clock(clock);

        // The main step stopped while the rollback its CancelUpdateStack started still ran
        // (`on-cancel: cancel-update`): the lock stays held while the stack is busy. The main
        // step has said everything else (summary, final card): nothing more to report.
        if state_value(state::CANCEL_ROLLBACK).is_some()
            && let Some(config) = &config
            && rollback_still_running(&sdk, &table, &key, &config.stack_name).await
        {
            return ExitCode::SUCCESS;
        }

        // 3. Release first, owner-checked: the next run must not wait for our reports (the
        // stack's events, history, GitHub, Slack), which are bounded below.
        // After a cancel's rollback outlived the main step, its heartbeat stopped: a waiter
        // taking the lock over since is expected, not an alarm.
        let acquired = state_value(state::LOCK_FENCE).is_some() && state_value(state::CANCEL_ROLLBACK).is_none();
        release(&registry, &table, &key, &owner, acquired).await;

        // 4. What happened to the stack while we held the lock.
        if let Some(config) = &config {
            let telling = async {
                let stacks = StackClient::from_conf(&sdk);
                if let Some(baseline) = state_value(state::STACK_BASELINE) {
                    let outcome = tell_what_ran(&stacks, config, &correlation_id, &baseline, live.as_ref()).await;
                    // What the later steps deployed becomes forbid-older's reference.
                    if matches!(outcome, Some((stack::Outcome::Succeeded, _))) {
                        shared::remember_deployed(&registry, config, &shared::holder(config, &correlation_id), &correlation_id).await;
                    }
                    finish_github_deployment(&ctx, config, &correlation_id, outcome).await;
                    record_lock_mode_history(&stacks, &registry, config, &correlation_id, &baseline).await;
                } else if state_value(state::ENDED).as_deref() == Some(stack::Outcome::Skipped.as_str()) {
                    // Superseded in the queue: it never held the lock nor touched the stack, and
                    // its card and summary already say which run deploys instead.
                    info!("the main step was skipped (a newer commit of its ref deploys instead): nothing else to do");
                } else {
                    // Modes deploy and monitor release in the main step; getting here means it
                    // stopped early (cancelled, killed, or its monitor gave up).
                    check_stack_before_release(&stacks, &config.stack_name).await;
                    // A main step that reached its end (timed out in the queue, frozen out,
                    // failed) has already posted its final card, mention included: not again.
                    if state_value(state::ENDED).is_none()
                        && let Some(live) = &live
                    {
                        let why = "the main step stopped before the stack operation ended (cancelled, killed or monitoring gave up)";
                        live.ended_early(stack::Outcome::Cancelled, why, config.slack_mention_on_failure.as_deref());
                    }
                }
            };
            if tokio::time::timeout(TELL_BUDGET, telling).await.is_err() {
                warn!(
                    "reading what the job did to the stack took longer than {}: the lock is released, the report is incomplete",
                    duration::human(TELL_BUDGET)
                );
            }
        }

        // 5. Slack.
        if let Some(live) = &live {
            let delivery = live.notifier().flush(SLACK_FLUSH, Some(&registry)).await;
            if delivery.dead_lettered > 0 {
                let files = FileCommands::from_env(&|name| std::env::var(name).ok());
                let _ = files.append_summary(&delivery.summary_markdown());
            }
        }
        ExitCode::SUCCESS
    }
    .instrument(span)
    .await
}

/// The Slack card the main step posted, to update in place (or a new one if it never got a
/// timestamp).
fn resume_card(config: &Config, correlation_id: &str, sdk: &aws_config::SdkConfig) -> LiveCard {
    let resume = state_value(state::SLACK_CARD).and_then(|text| CardRef::decode(&text));
    let me = shared::holder(config, correlation_id);
    let card = shared::card(config, &me, sdk);
    LiveCard::new(Notifier::from_config(config, correlation_id, resume), card)
}

async fn release(registry: &Registry, table: &str, key: &str, owner: &str, acquired: bool) {
    match lock::release(registry, key, owner).await {
        // The main step took the lock and nobody should have touched it since: if it is not
        // ours any more, someone took it over or force-unlocked it while the job ran.
        Ok(outcome) => narrate::say(&narrate::released(table, key, &outcome, acquired)),
        Err(e) => {
            log::warning(
                "Could not release the deployment lock",
                &format!(
                    "{e}. The lock expires after its lease; to free it now run \
                     `deploy-coordinator lock release --table {table} --key {key} --owner {owner}`"
                ),
            );
            return;
        }
    }
    // A main step killed while queued leaves a ticket; others would skip it once stale, but
    // removing it now hands the lock on without that delay.
    match lock::leave_queue(registry, key, owner).await {
        Ok(0) => {}
        Ok(n) => info!("removed {n} queue ticket(s) left by the main step"),
        Err(e) => {
            warn!("could not remove our queue ticket ({e}); waiters skip it once it goes stale")
        }
    }
}

/// Whether the rollback the main step's CancelUpdateStack started still runs (then said, and
/// the lock is left to its lease). Unknown counts as ended: the release is owner-checked and
/// the next run's stack guard waits for a busy stack anyway.
async fn rollback_still_running(
    sdk: &aws_config::SdkConfig,
    table: &str,
    key: &str,
    stack_name: &str,
) -> bool {
    match StackClient::from_conf(sdk).describe_stack(stack_name).await {
        Ok(Some(info)) if stack::status::is_in_progress(&info.status) => {
            narrate::say(&narrate::rollback_outlives_post(
                table,
                key,
                stack_name,
                &info.status,
            ));
            true
        }
        Ok(info) => {
            info!(
                "the rollback of the cancelled update has ended: stack {stack_name} is {}",
                info.map(|i| i.status).unwrap_or_else(|| "gone".into())
            );
            false
        }
        Err(e) => {
            warn!(
                "cannot read stack {stack_name} ({e}): releasing the lock; the next run waits for the stack to settle"
            );
            false
        }
    }
}

/// Mode lock: what ran on the stack between the main step and now (CDK, SAM, the AWS CLI…).
async fn tell_what_ran(
    stacks: &StackClient,
    config: &Config,
    correlation_id: &str,
    baseline: &str,
    live: Option<&LiveCard>,
) -> Option<(stack::Outcome, Vec<(String, String)>)> {
    let stack_name = &config.stack_name;
    let baseline = match Baseline::decode(baseline) {
        Ok(b) => b,
        Err(e) => {
            warn!(
                "the main step's stack baseline is unreadable ({e}): not reporting what was deployed"
            );
            return None;
        }
    };
    let found = match stack::reconstruct_since(stacks, stack_name, &baseline).await {
        Ok(found) => found,
        Err(e) => {
            warn!("cannot read what ran on stack {stack_name} ({e}): the lock is released anyway");
            return None;
        }
    };
    for op in found.operations.iter().chain(found.running.iter()) {
        let status = op.stack_status.as_deref().unwrap_or("unknown");
        info!(
            "while the lock was held: {stack_name} {} ({status}) in {}",
            op.outcome,
            duration::human(op.duration)
        );
        for line in narrate::result_annotations(stack_name, op) {
            narrate::say(&line);
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
    let last: Option<&StackResult> = found.operations.last();
    match last {
        Some(last) => {
            let files = FileCommands::from_env(&|name| std::env::var(name).ok());
            let _ = files.append_summary(&summary::render(correlation_id, config, last));
            if let Some(live) = live {
                live.finished(last, config.slack_mention_on_failure.as_deref());
            }
            Some((last.outcome, last.outputs.clone()))
        }
        None => {
            info!("no operation ran on stack {stack_name} while the lock was held");
            if let Some(live) = live {
                live.ended_early(
                    stack::Outcome::NoChanges,
                    "no stack operation ran while the lock was held",
                    None,
                );
            }
            None
        }
    }
}

/// Says whether the stack still has an operation running as we release: the next holder's
/// stack guard then waits for it, but the people reading this log should know.
async fn check_stack_before_release(stacks: &StackClient, stack_name: &str) {
    match stacks.describe_stack(stack_name).await {
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

/// Mode lock: stores what the later steps deployed in the history, so estimates learn from
/// CDK and SAM deployments too.
async fn record_lock_mode_history(
    stacks: &StackClient,
    registry: &Registry,
    config: &Config,
    correlation_id: &str,
    baseline: &str,
) {
    let Ok(baseline) = Baseline::decode(baseline) else {
        return;
    };
    let mut cursor = stack::cursor::Cursor::after(&baseline);
    let events = match stacks
        .read_new_events(&config.stack_name, &mut cursor)
        .await
    {
        Ok(events) => events,
        Err(e) => {
            warn!("cannot read the stack's events for the history ({e})");
            return;
        }
    };
    let events: Vec<_> = events
        .iter()
        .filter(|e| e.stack_name == config.stack_name)
        .map(history::StackEvent::from)
        .collect();
    for (i, operation) in history::split_operations(&events).iter().enumerate() {
        // One correlation ID per record: the second operation of a job gets a suffix.
        let id = if i == 0 {
            correlation_id.to_string()
        } else {
            format!("{correlation_id}.{}", i + 1)
        };
        if let Some(record) = history::trace(operation).and_then(|t| t.to_record(&id))
            && !shared::remember(registry, &record).await
        {
            return;
        }
    }
}

/// Mode lock: the GitHub deployment's final status, from what the later steps did.
async fn finish_github_deployment(
    ctx: &RunContext,
    config: &Config,
    correlation_id: &str,
    outcome: Option<(stack::Outcome, Vec<(String, String)>)>,
) {
    let Some(id) = state_value(state::DEPLOYMENT_ID).and_then(|v| v.parse::<u64>().ok()) else {
        return;
    };
    let me = shared::holder(config, correlation_id);
    let deployments = match shared::deployments(ctx, config, &me) {
        Ok(d) => d,
        Err(e) => {
            warn!("cannot set the GitHub deployment's final status: {e}");
            return;
        }
    };
    // No operation while the lock was held: nothing was deployed, which is not a failure.
    let (outcome, outputs) = outcome.unwrap_or((stack::Outcome::NoChanges, Vec::new()));
    shared::finish_github_deployment(&deployments, id, config, &me, outcome, &outputs).await;
}
