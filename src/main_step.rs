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
use crate::github::{DeploymentState, Deployments};
use crate::lock::{
    self, AcquireError, AcquireOptions, HolderInfo, LockEvent, NoLiveness, RunLiveness, WallClock,
};
use crate::outputs::state;
use crate::registry::Registry;
use crate::slack::{Card, LiveCard, Notifier, Phase};
use crate::stack::{
    self, DeployRequest, GuardError, MonitorEvent, MonitorSettings, PollSettings, StackClient,
    StackError, StackResult,
};
use crate::summary::{LockCoordination, LockSummary};
use crate::timeline::Timeline;
use crate::{aws, correlation, duration, github, history, narrate, summary};

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
    // Before the lock, the Slack card and any state: a failed preflight leaves nothing for
    // the post step to clean up. After the signal handlers, so a cancel is not ignored.
    if config.preflight && !crate::doctor::preflight(&config, &ctx).await {
        return ExitCode::FAILURE;
    }

    let correlation_id = config
        .correlation_id
        .clone()
        .unwrap_or_else(|| correlation::generate(clock.now(), Some(&ctx.sha)));
    let span = info_span!("deploy", cid = %correlation_id);
    async move {
        let sdk = aws::load(config.aws_region.as_deref()).await;
        let mut me = HolderInfo::from_env(&correlation_id, &|name| std::env::var(name).ok());
        me.stack = Some(config.stack_name.clone());
        me.mode = Some(config.mode.as_str().to_string());
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
        let mut card = Card::for_run(
            &config.stack_name,
            config.environment.as_deref(),
            config.mode.as_str(),
            &me,
            sdk.region().map(|r| r.as_ref()),
            Phase::WaitingForStack { stack_status: None },
        );
        card.commit_message =
            crate::context::commit_message(std::env::var("GITHUB_EVENT_PATH").ok().as_deref());
        let live = LiveCard::new(Notifier::from_config(&config, &correlation_id, None), card);
        // What history knows about this stack: estimates, ETAs, faster polling near the end.
        let history = match history::store::list(
            &registry,
            &config.stack_name,
            Some(history::store::ESTIMATE_WINDOW),
        )
        .await
        {
            Ok(records) => records,
            Err(e) => {
                warn!("no deployment history for estimates ({e})");
                Vec::new()
            }
        };
        let timeline = Timeline::new(&config.stack_name, history);
        let step = Step {
            files,
            ctx,
            config,
            correlation_id,
            clock,
            work: cancel.child_token(),
            cancel,
            sdk,
            me,
            registry,
            live,
            first_error: std::sync::Mutex::new(None),
            timeline: std::sync::Mutex::new(timeline),
            predicted: AtomicBool::new(false),
            warned_slow: AtomicBool::new(false),
            reported: AtomicBool::new(false),
            lock_summary: std::sync::Mutex::new(None),
            deployment: std::sync::Mutex::new(None),
            stack_outputs: std::sync::Mutex::new(Vec::new()),
            registry_reachable: AtomicBool::new(true),
            write_failed: AtomicBool::new(false),
            lock_lost_reported: AtomicBool::new(false),
        };
        step.run().await
    }
    .instrument(span)
    .await
}

struct Step {
    files: FileCommands,
    ctx: RunContext,
    config: Config,
    correlation_id: String,
    clock: WallClock,
    cancel: CancellationToken,
    /// Cancelled by `cancel` and by the loss of the lock: what has not happened yet stops.
    work: CancellationToken,
    sdk: aws_config::SdkConfig,
    /// Who we are in the lock's records (and on the Slack card).
    me: HolderInfo,
    registry: Registry,
    /// The Slack card of this deployment (does nothing when Slack is not configured).
    live: LiveCard,
    /// The first error of the step, for the Slack card when no stack operation ran.
    first_error: std::sync::Mutex<Option<String>>,
    /// The followed operation against its history (estimates, the history record).
    timeline: std::sync::Mutex<Timeline>,
    /// `estimated-duration-seconds` was written.
    predicted: AtomicBool,
    /// The slower-than-usual warning was given.
    warned_slow: AtomicBool,
    /// What the summary says about the lock.
    lock_summary: std::sync::Mutex<Option<LockSummary>>,
    /// The GitHub deployment (`github-deployment: true`) and its ID, until its final status.
    deployment: std::sync::Mutex<Option<(Deployments, u64)>>,
    /// Outputs of the finished stack operation, for the deployment's environment URL.
    stack_outputs: std::sync::Mutex<Vec<(String, String)>>,
    /// Set once the card shows a finished stack operation.
    reported: AtomicBool,
    /// False once the registry proved unreachable: dead letters then go to the summary only.
    registry_reachable: AtomicBool,
    write_failed: AtomicBool,
    /// The loss of the lock was reported (error, summary, card): the release says no more.
    lock_lost_reported: AtomicBool,
}

/// How long the main step gives Slack to deliver what is queued before dead-lettering it.
const SLACK_FLUSH: Duration = Duration::from_secs(15);

/// What the step ended with: the `outcome` output, and whether the step fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ending {
    outcome: stack::Outcome,
    fail: bool,
    /// The monitor gave up: nobody knows whether the operation still runs.
    state_unknown: bool,
}

impl Ending {
    fn of(outcome: stack::Outcome) -> Self {
        Ending {
            outcome,
            fail: !outcome.is_success(),
            state_unknown: false,
        }
    }
}

/// Proves, by a conditional write just before ExecuteChangeSet, that the lock is still ours.
struct ProveLock<'a>(Option<&'a lock::Heartbeat>);

impl stack::deploy::BeforeExecute for ProveLock<'_> {
    fn check(
        &self,
        // Boxed: the hook is a trait object (`&dyn BeforeExecute`) in stack::deploy.
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            match self.0 {
                None => Ok(()),
                Some(heartbeat) => heartbeat
                    .prove()
                    .await
                    .map(|_| ())
                    .map_err(|lost| format!("the change set was not executed: {lost}")),
            }
        })
    }
}

/// How the step is coordinated with other runs.
enum Coordination {
    /// We hold the DynamoDB lock.
    Locked {
        registry: Registry,
        record: Box<lock::LockRecord>,
        /// When the acquiring write was sent: the heartbeat counts the lease from there.
        written_at: tokio::time::Instant,
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

        // 3. The lock, kept alive by the heartbeat from the moment it is ours through every
        // phase of this step (stack guard, change set, execution, monitoring): a holder
        // waiting for a busy stack is no dead holder.
        let coordination = match self.take_lock().await {
            Ok(c) => c,
            Err(ending) => return self.finish(ending).await,
        };
        let heartbeat = match &coordination {
            Coordination::Locked {
                registry,
                record,
                written_at,
            } => {
                let hb = lock::spawn_heartbeat_since(
                    registry.clone(),
                    config.lock_key.clone(),
                    (**record).clone(),
                    *written_at,
                );
                // Losing the lock cancels what has not happened yet (the stack guard's wait);
                // the change set is executed only after ownership is proved (ProveLock).
                let (lost, work) = (hb.lost_token(), self.work.clone());
                tokio::spawn(async move {
                    lost.cancelled().await;
                    work.cancel();
                });
                Some(hb)
            }
            Coordination::Fallback => None,
        };
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

        // 5. The work itself.
        let ending = match config.mode {
            Mode::Lock => {
                // Nothing of ours runs until the post step: no heartbeat, the long lease holds
                // the lock. A lock lost while we waited for the stack is not handed over.
                let ending = self
                    .end_heartbeat(heartbeat, Ending::of(stack::Outcome::Succeeded))
                    .await;
                if ending.fail {
                    self.release_if_locked(&coordination).await;
                    ending
                } else {
                    self.hand_over(&stacks, &coordination).await
                }
            }
            Mode::Deploy | Mode::Monitor => {
                let ending = self.deploy_or_follow(&stacks, heartbeat.as_ref()).await;
                let ending = self.end_heartbeat(heartbeat, ending).await;
                // 6. The operation has ended: hand the lock on now rather than at the post
                // step. Not when its state is unknown: the post step checks the stack first.
                if !ending.state_unknown {
                    self.release_if_locked(&coordination).await;
                }
                ending
            }
        };
        self.finish(ending).await
    }

    /// Stops the heartbeat and says whether the lock stayed ours all along (output
    /// `lock-lost`). A loss is an error with consequences: the step fails, and the log, the
    /// summary and the Slack card and thread say what it means.
    async fn end_heartbeat(&self, heartbeat: Option<lock::Heartbeat>, ending: Ending) -> Ending {
        let Some(heartbeat) = heartbeat else {
            return ending;
        };
        match heartbeat.stop().await {
            Ok(_) => {
                self.output("lock-lost", "false");
                ending
            }
            Err(lost) => {
                self.lock_lost(&lost);
                // Cancelled by the loss, not by the runner: the run failed.
                let outcome = match ending.outcome {
                    stack::Outcome::Cancelled if !self.cancel.is_cancelled() => {
                        stack::Outcome::Failed
                    }
                    other => other,
                };
                Ending {
                    outcome,
                    fail: true,
                    ..ending
                }
            }
        }
    }

    fn lock_lost(&self, lost: &lock::LostLock) {
        let config = &self.config;
        let cause = if lost.by_time {
            "our heartbeats did not reach DynamoDB for nearly a whole lease (lock-lease), so another run may take it over"
        } else {
            "another run took it over or an operator force-unlocked it"
        };
        self.error(
            "Deployment lock lost",
            &format!(
                "{lost} ({cause}). From then on this run started nothing: no change set is executed without ownership \
                 proved just before. If the stack operation had already started, another run may deploy at the same \
                 time: check the stack's events. See `deploy-coordinator lock status --table {} --key {}`.",
                config.registry_table, config.lock_key
            ),
        );
        self.summary(&format!(
            "> [!CAUTION]\n> The deployment lock `{}` was lost: {}. No change set was executed after the loss.\n",
            config.lock_key,
            crate::action::log::sanitize(&lost.detail)
        ));
        self.live.lock_lost(&lost.detail);
        self.output("lock-lost", "true");
        self.lock_lost_reported.store(true, Ordering::Relaxed);
    }

    /// Waits while the stack has an operation in progress, bounded by `deploy-timeout`.
    async fn wait_for_stack(&self, stacks: &StackClient) -> Result<(), Ending> {
        let config = &self.config;
        let on_wait = |w: &stack::SettleWait| {
            self.live.waiting_for_stack(&w.status);
            info!(
                "stack {} is {} (changed {}): waiting for it to settle before we start ({} so far)",
                w.stack,
                w.status,
                w.since
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "at an unknown time".into()),
                duration::human(w.waited)
            )
        };
        match stack::wait_until_settled(
            stacks,
            &config.stack_name,
            config.deploy_timeout,
            PollSettings::default(),
            &self.work,
            on_wait,
        )
        .await
        {
            Ok(settled) => {
                if settled.waited >= Duration::from_secs(1) {
                    info!(
                        "stack {} settled as {} after {}",
                        config.stack_name,
                        settled.status.as_deref().unwrap_or("absent"),
                        duration::human(settled.waited)
                    );
                }
                Ok(())
            }
            Err(GuardError::Timeout { .. }) => {
                self.error(
                    "Stack busy",
                    &format!(
                        "stack {} stayed busy longer than deploy-timeout ({})",
                        config.stack_name,
                        duration::human(config.deploy_timeout)
                    ),
                );
                Err(Ending::of(stack::Outcome::TimedOut))
            }
            Err(GuardError::Cancelled { .. }) => Err(Ending::of(stack::Outcome::Cancelled)),
            Err(GuardError::Aws(e)) => {
                self.error("Cannot read the stack", &format!("{e}"));
                Err(Ending::of(stack::Outcome::Failed))
            }
        }
    }

    /// Mode lock: remember where the stack's history stands, so the post step can tell what
    /// the job's later steps deployed; the lock stays held until then.
    async fn hand_over(&self, stacks: &StackClient, coordination: &Coordination) -> Ending {
        let config = &self.config;
        match stacks.baseline(&config.stack_name).await {
            Ok(baseline) => self.state(state::STACK_BASELINE, &baseline.encode()),
            Err(e) => warn!(
                "cannot read the stack's events now ({e}): the post step will report the stack's final state only"
            ),
        }
        let line = match coordination {
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
        self.live.holding_lock();
        self.reported.store(true, Ordering::Relaxed);
        Ending::of(stack::Outcome::Succeeded)
    }

    /// Modes deploy and monitor: run or find the operation and follow it to its end.
    async fn deploy_or_follow(
        &self,
        stacks: &StackClient,
        heartbeat: Option<&lock::Heartbeat>,
    ) -> Ending {
        let config = &self.config;
        let mut on_event = |event: MonitorEvent| {
            self.live.monitor_event(&event);
            self.track(&event);
            narrate::monitor_event(&config.stack_name, event);
        };
        let settings = MonitorSettings::default();
        let result = match config.mode {
            Mode::Deploy => match DeployRequest::from_config(config, &self.correlation_id) {
                Some(mut request) => {
                    // Polls faster as the usual end approaches.
                    request.expected_duration = self.timeline().usual_duration();
                    stack::deploy::deploy_checked(
                        stacks,
                        &request,
                        &settings,
                        &self.cancel,
                        &mut on_event,
                        &ProveLock(heartbeat),
                    )
                    .await
                }
                // Config guarantees a template in mode deploy.
                None => Err(StackError::BadState {
                    stack: config.stack_name.clone(),
                    problem: "no template".into(),
                }),
            },
            _ => {
                stack::monitor(
                    stacks,
                    &config.stack_name,
                    config.start_timeout,
                    config.deploy_timeout,
                    &settings,
                    &self.cancel,
                    &mut on_event,
                )
                .await
            }
        };
        match result {
            Ok(result) => {
                self.record_history().await;
                self.report(&result)
            }
            Err(StackError::Cancelled) => Ending::of(stack::Outcome::Cancelled),
            Err(e) => {
                let state_unknown = matches!(e, StackError::StateUnknown { .. });
                self.error(
                    if state_unknown {
                        "Deployment state unknown"
                    } else {
                        "Deployment failed"
                    },
                    &e.to_string(),
                );
                Ending {
                    state_unknown,
                    ..Ending::of(stack::Outcome::Failed)
                }
            }
        }
    }

    /// Feeds the operation's events to the timeline: an estimate on every progress change (log
    /// and card), and one warning when it runs slower than usual.
    fn track(&self, event: &MonitorEvent) {
        let mut timeline = self.timeline();
        match event {
            MonitorEvent::ChangeSetCreated { resources, .. } => {
                timeline.set_change_set(resources.clone())
            }
            MonitorEvent::Resource(e) => timeline.push(e),
            MonitorEvent::Progress { .. } => {
                let Some(estimate) = timeline.estimate(self.clock.now()) else {
                    return;
                };
                if let Some(predicted) = timeline.predicted_seconds()
                    && !self.predicted.swap(true, Ordering::Relaxed)
                {
                    self.output("estimated-duration-seconds", &predicted.to_string());
                }
                info!("estimate: {}", estimate.summary());
                self.live.estimate(&estimate);
                if estimate.slower_than_usual && !self.warned_slow.swap(true, Ordering::Relaxed) {
                    let usual = estimate
                        .usual
                        .as_ref()
                        .map(|u| u.high_seconds)
                        .unwrap_or_default();
                    log::warning(
                        "Slower than usual",
                        &format!(
                            "{} has run {} so far; it usually takes at most {}. Still following it.",
                            self.config.stack_name,
                            duration::human(Duration::from_secs(estimate.elapsed_seconds)),
                            duration::human(Duration::from_secs(usual))
                        ),
                    );
                    self.live.slower_than_usual(
                        Duration::from_secs(estimate.elapsed_seconds),
                        Duration::from_secs(usual),
                    );
                }
            }
            _ => {}
        }
    }

    fn timeline(&self) -> std::sync::MutexGuard<'_, Timeline> {
        self.timeline.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores the finished operation in the history that the next estimates learn from.
    async fn record_history(&self) {
        if !self.registry_reachable.load(Ordering::Relaxed) {
            return;
        }
        let lock_wait = self
            .lock_summary
            .lock()
            .ok()
            .and_then(|l| l.as_ref().and_then(|l| l.wait));
        let record = self.timeline().record(&self.correlation_id, lock_wait);
        if let Some(record) = record
            && let Err(e) =
                history::store::put(&self.registry, &record, history::store::DEFAULT_TTL).await
        {
            warn!(
                "could not store this deployment in the history ({e}): estimates will not learn from it"
            );
        }
    }

    /// Outputs, annotations and the job summary of a finished stack operation.
    fn report(&self, result: &StackResult) -> Ending {
        let ending = Ending {
            outcome: result.outcome,
            fail: result.fail_step,
            state_unknown: false,
        };
        if let Some(status) = &result.stack_status {
            self.output("stack-status", status);
        }
        if let Some(id) = &result.stack_id {
            self.output("stack-id", id);
        }
        self.output("duration-seconds", &result.duration.as_secs().to_string());
        if let Some(reason) = &result.failure_reason {
            self.output("failure-reason", reason);
        }
        if let Some(resource) = &result.failed_resource {
            self.output("failed-resource", resource);
        }
        let outputs: serde_json::Map<String, serde_json::Value> = result
            .outputs
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        self.output(
            "stack-outputs",
            &serde_json::Value::Object(outputs).to_string(),
        );
        for (key, value) in &result.outputs {
            // A stack output named like one of ours would overwrite it: keep ours.
            if crate::outputs::OUTPUTS.contains(&key.as_str()) {
                warn!(
                    "stack output {key:?} has the name of one of this action's outputs: read it from stack-outputs"
                );
            } else {
                self.output(key, value);
            }
        }
        narrate::result_annotations(&self.config.stack_name, result);
        let (done, total) = result.progress;
        let status = result.stack_status.as_deref().unwrap_or("unknown");
        info!(
            "{} {}: {} in {} ({done}/{total} resources)",
            self.config.stack_name,
            result.outcome,
            status,
            duration::human(result.duration)
        );
        if let Ok(mut outputs) = self.stack_outputs.lock() {
            *outputs = result.outputs.clone();
        }
        let mut context = summary::SummaryContext::new(&self.correlation_id, &self.config)
            .with_prediction(self.timeline().predicted_seconds());
        if let Some(lock) = self.lock_summary.lock().ok().and_then(|l| l.clone()) {
            context = context.with_lock(lock);
        }
        self.summary(&summary::render_summary(&context, result));
        self.live
            .finished(result, self.config.slack_mention_on_failure.as_deref());
        self.reported.store(true, Ordering::Relaxed);
        ending
    }

    async fn release_if_locked(&self, coordination: &Coordination) {
        if let Coordination::Locked {
            registry, record, ..
        } = coordination
        {
            self.release(registry, record).await;
        }
    }

    /// Takes the lock, waiting in the queue; `Err` carries the outcome to end the step with.
    async fn take_lock(&self) -> Result<Coordination, Ending> {
        let config = &self.config;
        let registry = self.registry.clone();
        let me = &self.me;

        // Saved before asking: see the module comment.
        self.state(state::LOCK_TABLE, &config.registry_table);
        self.state(state::LOCK_KEY, &config.lock_key);
        self.state(state::LOCK_OWNER, &me.owner);
        if self.write_failed.load(Ordering::Relaxed) {
            // Without them the post step could not release a lock we took: the lock would
            // stay taken for a whole lease (6 h in mode lock). Do not take it.
            self.error(
                "Lock not requested",
                "the state for the post step could not be written (see above), so the post step could not release the lock: \
                 nothing was locked or deployed. Check the runner's disk and GITHUB_STATE.",
            );
            self.output("lock-acquired", "false");
            return Err(Ending::of(stack::Outcome::Failed));
        }

        let liveness = self.liveness();
        let mut options = AcquireOptions::new(config.lock_lease, config.lock_timeout);
        options.on_freeze = config.on_freeze;
        let on_event = |event: LockEvent| {
            if let LockEvent::Frozen {
                freeze,
                moved: false,
                ..
            } = &event
            {
                self.summary(&summary::waiting_behind_freeze(&config.lock_key, freeze));
            }
            let event = self.with_queue_eta(event);
            self.live.lock_event(&event);
            narrate::lock_event(&config.lock_key, event);
        };
        let started = tokio::time::Instant::now();
        match lock::acquire(
            &registry,
            &config.lock_key,
            me,
            &options,
            liveness.as_ref(),
            &on_event,
            &self.cancel,
        )
        .await
        {
            Ok(acquired) => {
                self.set_lock_summary(LockSummary {
                    wait: Some(acquired.waited),
                    coordination: LockCoordination::Acquired {
                        fence: acquired.record.fence,
                        reentrant: acquired.reentrant,
                        took_over_from: acquired.took_over.as_ref().map(|h| h.info.describe()),
                    },
                });
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
                Ok(Coordination::Locked {
                    registry,
                    record: Box::new(record),
                    written_at: acquired.written_at,
                })
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
                self.registry_reachable.store(false, Ordering::Relaxed);
                self.live.registry_fallback(&e.to_string());
                self.output("lock-acquired", "false");
                self.output(
                    "lock-wait-seconds",
                    &started.elapsed().as_secs().to_string(),
                );
                self.set_lock_summary(LockSummary {
                    wait: Some(started.elapsed()),
                    coordination: LockCoordination::Fallback,
                });
                Ok(Coordination::Fallback)
            }
            Err(AcquireError::Registry(e)) => {
                self.error("Cannot take the deployment lock", &e.to_string());
                self.output("lock-acquired", "false");
                Err(Ending::of(stack::Outcome::Failed))
            }
            Err(AcquireError::TimedOut { holder }) => {
                let who = holder
                    .map(|h| format!(", held by {} since {}", h.info.describe(), h.acquired_at))
                    .unwrap_or_default();
                self.error(
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
                Err(Ending::of(stack::Outcome::TimedOut))
            }
            Err(AcquireError::Frozen {
                freeze,
                holder,
                timed_out,
            }) => {
                self.frozen(&freeze, holder.as_ref(), timed_out, started.elapsed());
                Err(Ending::of(if timed_out {
                    stack::Outcome::TimedOut
                } else {
                    stack::Outcome::Failed
                }))
            }
            Err(AcquireError::Cancelled) => {
                warn!(
                    "cancelled while waiting for lock {:?}: left the queue",
                    config.lock_key
                );
                self.output("lock-acquired", "false");
                Err(Ending::of(stack::Outcome::Cancelled))
            }
        }
    }

    /// The lock is frozen: an error that says who froze it, why and until when, on the log,
    /// the job summary and the Slack card. Our queue ticket is already gone; the lock is
    /// untouched.
    fn frozen(
        &self,
        freeze: &lock::Freeze,
        holder: Option<&lock::LockRecord>,
        timed_out: bool,
        waited: Duration,
    ) {
        let config = &self.config;
        let now_ms = self.clock.now_ms();
        let finishing = holder
            .map(|h| format!(" {} holds it and finishes first.", h.info.describe()))
            .unwrap_or_default();
        let what = if timed_out {
            format!(
                "waited {} (lock-timeout) behind the freeze of lock {:?}: {}.{finishing}",
                duration::human(config.lock_timeout),
                config.lock_key,
                freeze.describe(now_ms)
            )
        } else {
            format!(
                "lock {:?} is {}.{finishing} on-freeze is fail: not waiting.",
                config.lock_key,
                freeze.describe(now_ms)
            )
        };
        self.error(
            "Deployments are frozen",
            &format!(
                "{what} Ask {} or unfreeze with `deploy-coordinator lock unfreeze --table {} --key {}`.",
                freeze.by, config.registry_table, config.lock_key
            ),
        );
        self.summary(&summary::frozen(
            &config.lock_key,
            freeze,
            timed_out,
            now_ms,
        ));
        self.live.frozen_out(freeze);
        self.output("lock-acquired", "false");
        self.output("lock-wait-seconds", &waited.as_secs().to_string());
    }

    /// Fills a queue event's ETA from history: the holder's remaining time plus a usual
    /// deployment for each run ahead.
    fn with_queue_eta(&self, event: LockEvent) -> LockEvent {
        let now = self.clock.now();
        match event {
            LockEvent::Queued {
                position,
                ahead,
                holder,
                ..
            } => {
                let eta = Some(self.timeline().queue_eta(holder.as_ref(), ahead, now));
                LockEvent::Queued {
                    position,
                    ahead,
                    holder,
                    eta,
                }
            }
            LockEvent::PositionChanged {
                position,
                ahead,
                holder,
                ..
            } => {
                let eta = Some(self.timeline().queue_eta(holder.as_ref(), ahead, now));
                LockEvent::PositionChanged {
                    position,
                    ahead,
                    holder,
                    eta,
                }
            }
            other => other,
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
            // Not ours any more, and no heartbeat said so (mode lock after the hand-over, a
            // loss in the last moments): loudly, not at info level.
            Ok(
                outcome
                @ (lock::ReleaseOutcome::HeldByOther(_) | lock::ReleaseOutcome::AlreadyFree),
            ) if !self.lock_lost_reported.load(Ordering::Relaxed) => {
                log::warning(
                    "The deployment lock was no longer ours",
                    &format!(
                        "lock {:?}: {}. Someone took it over or force-unlocked it while this step ran.",
                        self.config.lock_key,
                        narrate::release(&outcome)
                    ),
                );
                self.state(state::LOCK_RELEASED, "true");
            }
            Ok(outcome) => {
                info!(
                    "lock {:?}: {}",
                    self.config.lock_key,
                    narrate::release(&outcome)
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

    /// The last words of the step: Slack's final card and delivery, the outcome.
    async fn finish(&self, ending: Ending) -> ExitCode {
        // The post step must not post its own final card over ours.
        self.state(state::ENDED, ending.outcome.as_str());
        // Mode lock: the post step sets the deployment's final status.
        if self.config.mode != Mode::Lock {
            let outputs = self
                .stack_outputs
                .lock()
                .map(|o| o.clone())
                .unwrap_or_default();
            self.finish_github_deployment(ending.outcome, &outputs)
                .await;
        }
        let mention = self.config.slack_mention_on_failure.as_deref();
        if !self.reported.load(Ordering::Relaxed) {
            let why = self
                .first_error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_else(|| ending.outcome.as_str().to_string());
            self.live.ended_early(ending.outcome, &why, mention);
        }
        let notifier = self.live.notifier();
        if notifier.is_enabled() {
            // Bounded: a Slack outage must not hold the step (after a cancellation the runner
            // kills us 7.5 s after its first signal).
            let within = if self.cancel.is_cancelled() {
                Duration::from_secs(3)
            } else {
                SLACK_FLUSH
            };
            let registry = self
                .registry_reachable
                .load(Ordering::Relaxed)
                .then_some(&self.registry);
            let report = notifier.flush(within, registry).await;
            if let Some(card) = report.card.clone().or_else(|| notifier.card_ref()) {
                self.output("slack-ts", &card.ts);
                self.state(state::SLACK_CARD, &card.encode());
            }
            if !report.balanced() || report.dead_lettered > 0 {
                self.summary(&report.summary_markdown());
            }
        }
        self.output("outcome", ending.outcome.as_str());
        if self.write_failed.load(Ordering::Relaxed) {
            self.error(
                "Cannot write the runner's files",
                "an output or state record could not be written: see the messages above",
            );
            return ExitCode::FAILURE;
        }
        if ending.fail {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }

    fn set_lock_summary(&self, lock: LockSummary) {
        if let Ok(mut slot) = self.lock_summary.lock() {
            *slot = Some(lock);
        }
    }

    /// Creates the GitHub deployment (`github-deployment: true`), in progress. Best effort:
    /// without `deployments: write` it warns once and the deployment goes on.
    async fn start_github_deployment(&self) {
        let config = &self.config;
        if !config.github_deployment {
            return;
        }
        let (Some(environment), Some(token), Some(repository)) = (
            config.environment.as_deref(),
            config.github_token.as_deref(),
            self.me.repository.as_deref(),
        ) else {
            log::warning(
                "GitHub deployment not created",
                "github-deployment needs `environment`, `github-token` and a GitHub run (GITHUB_REPOSITORY)",
            );
            return;
        };
        let deployments = match Deployments::new(&self.ctx.api_url, token, repository) {
            Ok(d) => d,
            Err(e) => {
                log::warning("GitHub deployment not created", &e);
                return;
            }
        };
        let payload = serde_json::json!({
            "correlation_id": self.correlation_id,
            "stack": config.stack_name,
            "mode": config.mode.as_str(),
        });
        let sha = self.me.sha.as_deref().unwrap_or_default();
        let description = format!("{} via deploy-coordinator", config.stack_name);
        match deployments
            .create(environment, sha, &description, payload)
            .await
        {
            Ok(id) => {
                self.output("deployment-id", &id.to_string());
                self.state(state::DEPLOYMENT_ID, &id.to_string());
                let log_url = self.me.run_url.clone().unwrap_or_default();
                let status = format!("deploying {}", config.stack_name);
                if let Err(e) = deployments
                    .set_status(id, DeploymentState::InProgress, &log_url, None, &status)
                    .await
                {
                    warn!("could not set the GitHub deployment in progress: {e}");
                }
                if let Ok(mut slot) = self.deployment.lock() {
                    *slot = Some((deployments, id));
                }
            }
            Err(e) => log::warning("GitHub deployment not created", &e.to_string()),
        }
    }

    /// The GitHub deployment's final status.
    async fn finish_github_deployment(
        &self,
        outcome: stack::Outcome,
        outputs: &[(String, String)],
    ) {
        let Some((deployments, id)) = self.deployment.lock().ok().and_then(|mut d| d.take()) else {
            return;
        };
        let log_url = self.me.run_url.clone().unwrap_or_default();
        deployments
            .finish(id, &self.config.stack_name, outcome, outputs, &log_url)
            .await;
    }

    /// An error annotation, remembered for the Slack card.
    fn error(&self, title: &str, message: &str) {
        log::error(title, message);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| format!("{title}: {message}"));
        }
    }

    fn output(&self, name: &str, value: &str) {
        if let Err(e) = self.files.set_output(name, value) {
            self.error("Cannot write a step output", &e.to_string());
            self.write_failed.store(true, Ordering::Relaxed);
        }
    }

    fn state(&self, name: &str, value: &str) {
        if let Err(e) = self.files.save_state(name, value) {
            self.error("Cannot save state for the post step", &e.to_string());
            self.write_failed.store(true, Ordering::Relaxed);
        }
    }

    fn summary(&self, markdown: &str) {
        if let Err(e) = self.files.append_summary(markdown) {
            warn!("cannot write the job summary: {e}");
        }
    }
}
