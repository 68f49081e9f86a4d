//! The action's main step, as one story.
//!
//! 1. Read and check every input; mask the secrets before anything is printed.
//! 2. Name the deployment (correlation ID) and tell the post step about it.
//! 3. Take the lock, queueing fairly behind other runs; or, when the registry is unreachable
//!    and the user allows it, fall back to CloudFormation-only coordination.
//! 4. Wait while the stack is busy with an operation started outside the lock.
//! 5. Deploy or follow the stack (modes deploy and monitor), or hand over to the job's later
//!    steps (mode lock).
//! 6. Write outputs and the job summary; release the lock we no longer need.
//!
//! The lock's identity (table, key, owner) is saved for the post step BEFORE the lock is
//! requested: the owner is known in advance and the post step's release is owner-checked, so a
//! step killed at any moment, even between the DynamoDB write and the state file, is cleaned up.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::action::{FileCommands, Inputs, log};
use crate::config::{self, Config, Mode, OnRegistryUnavailable};
use crate::context::RunContext;
use crate::lock::{
    self, AcquireError, AcquireOptions, HolderInfo, LockEvent, NoLiveness, RunLiveness, WallClock,
};
use crate::outputs::state;
use crate::registry::Registry;
use crate::{aws, correlation, duration, github};

/// Runs the main step with this process's environment.
pub async fn run(ctx: RunContext) -> ExitCode {
    let files = FileCommands::from_env(&|name| std::env::var(name).ok());
    let inputs = Inputs::from_process_env();
    // Before anything else is printed: the runner only masks what it was told about.
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
    let cancel = match crate::shutdown::install() {
        Ok(token) => token,
        Err(e) => {
            log::error(
                "deploy-coordinator could not start",
                &format!("cannot install signal handlers: {e}"),
            );
            return ExitCode::FAILURE;
        }
    };

    let correlation_id = config
        .correlation_id
        .clone()
        .unwrap_or_else(|| correlation::generate(clock.now(), Some(&ctx.sha)));
    let span = info_span!("deploy", cid = %correlation_id);
    let step = Step {
        files,
        ctx,
        config,
        correlation_id,
        clock,
        cancel,
        write_failed: AtomicBool::new(false),
    };
    step.run().instrument(span).await
}

struct Step {
    files: FileCommands,
    ctx: RunContext,
    config: Config,
    correlation_id: String,
    clock: WallClock,
    cancel: CancellationToken,
    write_failed: AtomicBool,
}

/// What the step ended with, for the `outcome` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    TimedOut,
    Cancelled,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::TimedOut => "timed-out",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed => "failed",
        }
    }
}

/// How the step is coordinated with other runs.
enum Coordination {
    /// We hold the DynamoDB lock.
    Locked {
        registry: Registry,
        record: lock::LockRecord,
    },
    /// The registry was unreachable: CloudFormation-only coordination.
    Fallback,
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
            },
            config.stack_name,
            config.mode.as_str(),
            config.lock_key,
            config.registry_table
        );
        self.output("correlation-id", &self.correlation_id);
        self.state(state::CORRELATION_ID, &self.correlation_id);
        self.state(state::STARTED_AT, &self.clock.now_rfc3339());
        self.state(state::MODE, config.mode.as_str());

        let sdk = aws::load(config.aws_region.as_deref()).await;
        if let Some(region) = sdk.region() {
            self.state(state::REGION, region.as_ref());
        }

        // 3. The lock.
        let coordination = match self.take_lock(&sdk).await {
            Ok(c) => c,
            Err(outcome) => return self.finish(outcome),
        };

        // 5. Mode lock: the job's later steps deploy; the post step releases.
        match config.mode {
            Mode::Lock => {
                let line = match &coordination {
                    Coordination::Locked { record, .. } => format!(
                        "Lock `{}` held (fence {}) until the post step of this job; later steps deploy.",
                        config.lock_key, record.fence
                    ),
                    Coordination::Fallback => format!(
                        "Registry unavailable: lock `{}` NOT taken; CloudFormation-only coordination.",
                        config.lock_key
                    ),
                };
                self.summary(&format!(
                    "### deploy-coordinator `{}`\n\n{line}\n",
                    self.correlation_id
                ));
                self.finish(Outcome::Succeeded)
            }
            Mode::Deploy | Mode::Monitor => {
                let outcome = if self.cancel.is_cancelled() {
                    Outcome::Cancelled
                } else {
                    Outcome::Succeeded
                };
                if let Coordination::Locked { registry, record } = coordination {
                    self.release(&registry, &record).await;
                }
                self.finish(outcome)
            }
        }
    }

    /// Takes the lock, waiting in the queue; `Err` carries the outcome to end the step with.
    async fn take_lock(&self, sdk: &aws_config::SdkConfig) -> Result<Coordination, Outcome> {
        let config = &self.config;
        let registry = Registry::new(aws_sdk_dynamodb::Client::new(sdk), &config.registry_table)
            .with_clock(self.clock.clone());
        let mut me = HolderInfo::from_env(&self.correlation_id, &|name| std::env::var(name).ok());
        me.stack = Some(config.stack_name.clone());
        me.mode = Some(config.mode.as_str().to_string());

        // Saved before asking: see the module comment.
        self.state(state::LOCK_TABLE, &config.registry_table);
        self.state(state::LOCK_KEY, &config.lock_key);
        self.state(state::LOCK_OWNER, &me.owner);

        let liveness = self.liveness();
        let options = AcquireOptions::new(config.lock_lease, config.lock_timeout);
        let on_event = |event: LockEvent| log_lock_event(&config.lock_key, event);
        let started = tokio::time::Instant::now();
        match lock::acquire(
            &registry,
            &config.lock_key,
            &me,
            &options,
            liveness.as_ref(),
            &on_event,
            &self.cancel,
        )
        .await
        {
            Ok(acquired) => {
                let record = acquired.record;
                self.state(state::LOCK_FENCE, &record.fence.to_string());
                self.state(state::LOCK_ACQUIRED_AT, &record.acquired_at);
                self.output("lock-acquired", "true");
                self.output("lock-fence", &record.fence.to_string());
                self.output("lock-wait-seconds", &acquired.waited.as_secs().to_string());
                if acquired.reentrant {
                    info!(
                        "lock {:?} was already ours (a retry of this step): continuing with fence {}",
                        config.lock_key, record.fence
                    );
                }
                Ok(Coordination::Locked { registry, record })
            }
            Err(AcquireError::Registry(e))
                if e.is_unavailable()
                    && config.on_registry_unavailable == OnRegistryUnavailable::Fallback =>
            {
                log::warning(
                    "Registry unavailable: CloudFormation-only coordination",
                    &format!(
                        "{e}. Continuing WITHOUT the DynamoDB lock: this run only waits while the stack is busy, so \
                         another run may start at the same time. Set on-registry-unavailable: fail to stop instead."
                    ),
                );
                self.summary(&format!(
                    "> [!WARNING]\n> Registry table `{}` unavailable: lock `{}` not taken, CloudFormation-only coordination.\n",
                    config.registry_table, config.lock_key
                ));
                self.output("lock-acquired", "false");
                self.output(
                    "lock-wait-seconds",
                    &started.elapsed().as_secs().to_string(),
                );
                Ok(Coordination::Fallback)
            }
            Err(AcquireError::Registry(e)) => {
                log::error("Cannot take the deployment lock", &e.to_string());
                self.output("lock-acquired", "false");
                Err(Outcome::Failed)
            }
            Err(AcquireError::TimedOut { holder }) => {
                let who = holder
                    .map(|h| format!(", held by {} since {}", h.info.describe(), h.acquired_at))
                    .unwrap_or_default();
                log::error(
                    "Timed out waiting for the deployment lock",
                    &format!(
                        "waited {} (lock-timeout) for lock {:?}{who}. Raise lock-timeout, or check the holder with \
                         `deploy-coordinator lock status --table {} --key {}`.",
                        duration::human(config.lock_timeout),
                        config.lock_key,
                        config.registry_table,
                        config.lock_key
                    ),
                );
                self.output("lock-acquired", "false");
                self.output(
                    "lock-wait-seconds",
                    &started.elapsed().as_secs().to_string(),
                );
                Err(Outcome::TimedOut)
            }
            Err(AcquireError::Cancelled) => {
                warn!(
                    "cancelled while waiting for lock {:?}: left the queue",
                    config.lock_key
                );
                self.output("lock-acquired", "false");
                Err(Outcome::Cancelled)
            }
        }
    }

    /// Asks GitHub whether a holder's run is completed, when we have a token.
    fn liveness(&self) -> Box<dyn RunLiveness> {
        match self.config.github_token.as_deref() {
            Some(token) => match github::GitHubRuns::new(&self.ctx.api_url, token) {
                Ok(runs) => Box::new(runs),
                Err(e) => {
                    warn!(
                        "cannot ask the GitHub API about lock holders ({e}): only the lease frees a dead holder's lock"
                    );
                    Box::new(NoLiveness)
                }
            },
            None => Box::new(NoLiveness),
        }
    }

    /// Releases the lock at the end of modes deploy and monitor; the post step then has
    /// nothing left to do.
    async fn release(&self, registry: &Registry, record: &lock::LockRecord) {
        match lock::release(registry, &self.config.lock_key, &record.info.owner).await {
            Ok(outcome) => {
                info!(
                    "lock {:?}: {}",
                    self.config.lock_key,
                    describe_release(&outcome)
                );
                self.state(state::LOCK_RELEASED, "true");
            }
            // The post step tries again.
            Err(e) => warn!(
                "could not release lock {:?} now ({e}); the post step will",
                self.config.lock_key
            ),
        }
    }

    fn finish(&self, outcome: Outcome) -> ExitCode {
        self.output("outcome", outcome.as_str());
        if self.write_failed.load(Ordering::Relaxed) {
            log::error(
                "Cannot write the runner's files",
                "an output or state record could not be written: see the messages above",
            );
            return ExitCode::FAILURE;
        }
        if outcome == Outcome::Succeeded {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    fn output(&self, name: &str, value: &str) {
        if let Err(e) = self.files.set_output(name, value) {
            log::error("Cannot write a step output", &e.to_string());
            self.write_failed.store(true, Ordering::Relaxed);
        }
    }

    fn state(&self, name: &str, value: &str) {
        if let Err(e) = self.files.save_state(name, value) {
            log::error("Cannot save state for the post step", &e.to_string());
            self.write_failed.store(true, Ordering::Relaxed);
        }
    }

    fn summary(&self, markdown: &str) {
        if let Err(e) = self.files.append_summary(markdown) {
            warn!("cannot write the job summary: {e}");
        }
    }
}

/// One log line per lock event, for the people reading the job's log.
fn log_lock_event(key: &str, event: LockEvent) {
    let eta = |eta: Option<Duration>| eta.map(duration::human).unwrap_or_else(|| "unknown".into());
    match event {
        LockEvent::Queued {
            position,
            ahead,
            holder,
            eta: e,
        }
        | LockEvent::PositionChanged {
            position,
            ahead,
            holder,
            eta: e,
        } => {
            let holder = holder
                .map(|h| format!("held by {} since {}", h.info.describe(), h.acquired_at))
                .unwrap_or_else(|| "free, being handed over".into());
            info!(
                "lock {key:?} {holder}; waiting in queue position {position} ({ahead} ahead), ETA {}",
                eta(e)
            );
        }
        LockEvent::TakingOver { previous, why } => {
            // Loud on purpose: a takeover means a run died holding the lock.
            log::warning(
                "Taking over a stale deployment lock",
                &format!(
                    "lock {key:?} was held by {}: {why}. Taking it over.",
                    previous.info.describe()
                ),
            );
        }
        LockEvent::Acquired { record, waited } => {
            info!(
                "lock {key:?} acquired (fence {}) after {}",
                record.fence,
                duration::human(waited)
            );
        }
    }
}

pub(crate) fn describe_release(outcome: &lock::ReleaseOutcome) -> String {
    match outcome {
        lock::ReleaseOutcome::Released(_) => "released".into(),
        lock::ReleaseOutcome::AlreadyFree => "already free: nothing to release".into(),
        lock::ReleaseOutcome::HeldByOther(other) => {
            format!(
                "held by {} (we were taken over): left untouched",
                other.info.describe()
            )
        }
    }
}
