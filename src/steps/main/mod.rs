//! The action's main step, as one story.
//!
//! 1. Read and check every input; mask the secrets before anything is printed.
//! 2. Name the deployment (correlation ID) and tell the post step about it.
//! 3. Take the lock, queueing fairly behind other runs; or, when the registry is unreachable
//!    and the user allows it, fall back to CloudFormation-only coordination. From the moment
//!    the lock is ours, a heartbeat keeps it so through every later phase.
//! 4. Wait while the stack is busy with an operation started outside the lock; with
//!    `forbid-older`, refuse a commit older than the one deployed last under the lock key.
//! 5. Deploy or follow the stack (modes deploy and monitor), or hand over to the job's later
//!    steps (mode lock). Mode plan leaves the story after step 2 for its own (`plan.rs`): it
//!    takes no lock and executes nothing.
//! 6. Write outputs and the job summary; release the lock we no longer need; deliver Slack.
//!
//! The lock's identity (table, key, owner) is saved for the post step BEFORE the lock is
//! requested: the owner is known in advance and the post step's release is owner-checked, so a
//! step killed at any moment, even between the DynamoDB write and the state file, is cleaned up.
//!
//! The files of this folder follow the story: `lock.rs` (step 3 and the release), `stack.rs`
//! (steps 4 and 5), `finish.rs` (step 6), `plan.rs` (mode plan); `ledger.rs` is what the callbacks learn on the way,
//! `files.rs` the runner's files.

mod files;
mod finish;
mod ledger;
mod lock;
mod plan;
mod stack;

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span};

use crate::action::{FileCommands, Inputs, log};
use crate::config::{self, Config, Mode};
use crate::context::RunContext;
use crate::estimate::live::LiveEstimate;
use crate::lock::{HolderInfo, WallClock};
use crate::outputs::state;
use crate::registry::Registry;
use crate::slack::LiveCard;
use crate::stack::{Outcome, StackClient};
use crate::{aws, correlation};

use ledger::{Ending, Ledger};

/// Runs the main step with this process's environment.
pub async fn run(ctx: RunContext) -> ExitCode {
    let files = FileCommands::from_env(&|name| std::env::var(name).ok());
    let inputs = Inputs::from_process_env();
    // 1. Before anything else is printed: the runner only masks what it was told about.
    config::mask_secrets(&inputs);

    let config = match Config::from_inputs(&inputs, &ctx.workspace) {
        Ok(config) => config,
        Err(e) => {
            log::error(
                &format!("Invalid input '{}'", e.input),
                &format!("{e}. Nothing was locked or deployed."),
            );
            return ExitCode::FAILURE;
        }
    };
    let clock = match WallClock::from_env(&|name| std::env::var(name).ok()) {
        Ok(clock) => clock,
        Err(e) => {
            log::error("Invalid test clock", &e);
            return ExitCode::FAILURE;
        }
    };
    let shutdown = match crate::shutdown::install() {
        Ok(shutdown) => shutdown,
        Err(e) => {
            log::error(
                "deploy-coordinator could not start",
                &format!("cannot install signal handlers: {e}"),
            );
            return ExitCode::FAILURE;
        }
    };
    // Before the lock, the Slack card and any state: a failed preflight leaves nothing for
    // the post step to clean up. After the signal handlers, so a cancel is not ignored.
    if config.preflight && !crate::doctor::preflight(&config, &ctx).await {
        return ExitCode::FAILURE;
    }

    // 2. The deployment's name.
    let correlation_id = config
        .correlation_id
        .clone()
        .unwrap_or_else(|| correlation::generate(clock.now(), Some(&ctx.sha)));
    let span = info_span!("deploy", cid = %correlation_id);
    async move {
        let sdk = aws::load(config.aws_region.as_deref()).await;
        let mut me = super::shared::holder(&config, &correlation_id);
        // Two legs of one matrix job share the run, the attempt, the commit and possibly the
        // second they start in, hence the correlation ID: a per-step nonce keeps their owners
        // apart, or the reentrant lock would let both in. The post step reads it from state.
        me.owner = format!(
            "{}/{}",
            me.owner,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let registry = Registry::new(aws_sdk_dynamodb::Client::new(&sdk), &config.registry_table)
            .with_clock(clock);
        let mut card = super::shared::card(&config, &me, &sdk);
        card.commit_message =
            crate::context::commit_message(std::env::var("GITHUB_EVENT_PATH").ok().as_deref());
        let live = LiveCard::new(
            crate::slack::Notifier::from_config(&config, &correlation_id, None),
            card,
        );
        let history = super::shared::history_of(&registry, &config.stack_name).await;
        let step = Step {
            files,
            ctx,
            timeline: std::sync::Mutex::new(LiveEstimate::new(&config.stack_name, history)),
            config,
            correlation_id,
            clock,
            work: shutdown.token().child_token(),
            cancel: shutdown.token().clone(),
            shutdown,
            sdk,
            me,
            registry,
            live,
            ledger: std::sync::Mutex::new(Ledger::default()),
        };
        step.run().await
    }
    .instrument(span)
    .await
}

/// Everything the step knows; shared by reference with the callbacks of the lock and the
/// monitor, so what they learn goes into `ledger` and `timeline` (each behind its own mutex,
/// never held across an `await`).
struct Step {
    files: FileCommands,
    ctx: RunContext,
    config: Config,
    correlation_id: String,
    clock: WallClock,
    /// The runner's cancellation (SIGINT/SIGTERM).
    cancel: CancellationToken,
    /// When the runner's first signal came: what is left before its kill.
    shutdown: crate::shutdown::Shutdown,
    /// Cancelled by `cancel` and by the loss of the lock: what has not happened yet stops.
    work: CancellationToken,
    sdk: aws_config::SdkConfig,
    /// Who we are in the lock's records (and on the Slack card).
    me: HolderInfo,
    registry: Registry,
    /// The Slack card of this deployment (does nothing when Slack is not configured).
    live: LiveCard,
    /// The followed operation against its history (estimates, ETAs, the history record).
    timeline: std::sync::Mutex<LiveEstimate>,
    /// What happened on the way that a later part of the story needs to know.
    ledger: std::sync::Mutex<Ledger>,
}

impl Step {
    async fn run(&self) -> ExitCode {
        let config = &self.config;
        info!(
            "{} stack {} (mode {}, lock key {:?}, registry table {})",
            match config.mode {
                Mode::Deploy => "deploying",
                Mode::Monitor => "monitoring",
                Mode::Lock => "locking",
                Mode::Plan => "planning",
            },
            config.stack_name,
            config.mode.as_str(),
            config.lock_key,
            config.registry_table
        );
        if let Some(note) = config.lease_note() {
            info!("{note}");
        }
        self.output("correlation-id", &self.correlation_id);
        self.state(state::CORRELATION_ID, &self.correlation_id);
        self.state(state::STARTED_AT, &self.clock.now_rfc3339());
        self.state(state::MODE, config.mode.as_str());
        if let Some(region) = self.sdk.region() {
            self.state(state::REGION, region.as_ref());
        }
        // A plan executes nothing: no lock, no heartbeat, no GitHub deployment (plan.rs).
        if config.mode == Mode::Plan {
            return self.plan().await;
        }

        // 3. The lock, kept alive by the heartbeat from the moment it is ours through every
        // phase of this step (stack guard, change set, execution, monitoring): a holder
        // waiting for a busy stack is no dead holder.
        let coordination = match self.take_lock().await {
            Ok(c) => c,
            Err(ending) => return self.finish(ending).await,
        };
        let heartbeat = self.start_heartbeat(&coordination);
        self.start_github_deployment().await;

        // 4. Someone may be deploying this stack outside the lock (a console user, a pipeline
        // that does not use the lock): wait until the stack is settled. Not in mode monitor:
        // an operation already running is exactly what it is there to follow.
        let stacks = StackClient::from_conf(&self.sdk);
        if config.mode != Mode::Monitor
            && let Err(ending) = self.wait_for_stack(&stacks).await
        {
            let ending = self.end_heartbeat(heartbeat, ending).await;
            self.release_if_locked(&coordination).await;
            return self.finish(ending).await;
        }

        // Never backwards (`forbid-older`): in modes deploy and lock, a commit older than the
        // one deployed last under the key is refused before anything is deployed.
        if config.mode != Mode::Monitor
            && let Err(ending) = self.never_backwards().await
        {
            let ending = self.end_heartbeat(heartbeat, ending).await;
            self.release_if_locked(&coordination).await;
            return self.finish(ending).await;
        }

        // 5. The work itself.
        let ending = match config.mode {
            Mode::Lock => {
                // Nothing of ours runs until the post step: no heartbeat, the long lease holds
                // the lock. A lock lost while we waited for the stack is not handed over.
                let ending = self
                    .end_heartbeat(heartbeat, Ending::of(Outcome::Succeeded))
                    .await;
                if ending.fail {
                    self.release_if_locked(&coordination).await;
                    ending
                } else {
                    self.hand_over(&stacks, &coordination).await
                }
            }
            // Mode plan returned above, before the lock.
            Mode::Deploy | Mode::Monitor | Mode::Plan => {
                let ending = self.deploy_or_follow(&stacks, heartbeat.as_ref()).await;
                let ending = self.end_heartbeat(heartbeat, ending).await;
                // 6. The operation has ended: hand the lock on now rather than at the post
                // step. Not when its state is unknown: the post step checks the stack first.
                // Not while the rollback our cancel started still runs: the stack is busy.
                if let Some(status) = self.ledger(|l| l.rollback_running.clone()) {
                    self.keep_lock_for_rollback(&coordination, &status).await;
                } else if !ending.state_unknown {
                    self.release_if_locked(&coordination).await;
                }
                ending
            }
        };
        self.finish(ending).await
    }

    /// What the callbacks learned so far, for a short read or write (never across `await`).
    fn ledger<R>(&self, f: impl FnOnce(&mut Ledger) -> R) -> R {
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut ledger)
    }

    fn timeline(&self) -> std::sync::MutexGuard<'_, LiveEstimate> {
        self.timeline.lock().unwrap_or_else(|p| p.into_inner())
    }
}
