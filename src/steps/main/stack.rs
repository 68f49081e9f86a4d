//! Steps 4 and 5 of the main step: wait while someone else's operation runs on the stack,
//! then deploy or follow ours (modes deploy and monitor) or hand over to the job's later steps
//! (mode lock), and tell what came of it.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::lock::{Coordination, ProveLock};
use super::{Ending, Step};
use crate::action::log;
use crate::config::{Mode, OnCancel, StoppedChangeSet};
use crate::lock;
use crate::outputs::state;
use crate::plan::review::StackChanges;
use crate::stack::deploy::{BeforeExecute, Grace, Refusal};
use crate::stack::{
    self, DeployRequest, GuardError, MonitorEvent, MonitorSettings, Outcome, PollSettings,
    StackClient, StackError, StackResult,
};
use crate::{duration, narrate, plan, summary};

/// What stands between a ready change set and its execution: the deploy guard (may it run at
/// all?), then the proof that the lock is still ours.
struct Gate<'a> {
    step: &'a Step,
    lock: ProveLock<'a>,
}

impl BeforeExecute for Gate<'_> {
    fn review(&self, name: &str, stacks: &[StackChanges]) -> Result<(), Refusal> {
        let config = &self.step.config;
        let guard = &config.guard;
        let verdict = plan::guard::judge(stacks, guard);
        let section = summary::guard::section(name, &verdict, guard.on_risk);
        self.step.ledger(|l| l.guard_summary = section);
        if verdict.stop {
            let (title, reason) = narrate::guard_refusal(
                &config.stack_name,
                name,
                &verdict,
                guard.stopped_change_set,
            );
            return Err(Refusal {
                title,
                reason,
                keep_change_set: guard.stopped_change_set == StoppedChangeSet::Keep,
            });
        }
        for line in narrate::guard(name, &verdict, guard.on_risk) {
            narrate::say(&line);
        }
        Ok(())
    }

    fn check(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        self.lock.check()
    }
}

impl Step {
    /// Waits while the stack has an operation in progress, bounded by `deploy-timeout`.
    pub(super) async fn wait_for_stack(&self, stacks: &StackClient) -> Result<(), Ending> {
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
                Err(Ending::of(Outcome::TimedOut))
            }
            Err(GuardError::Cancelled { .. }) => Err(Ending::of(Outcome::Cancelled)),
            Err(GuardError::Aws(e)) => {
                self.error("Cannot read the stack", &format!("{e}"));
                Err(Ending::of(Outcome::Failed))
            }
        }
    }

    /// Mode lock: remember where the stack's history stands, so the post step can tell what
    /// the job's later steps deployed; the lock stays held until then.
    pub(super) async fn hand_over(
        &self,
        stacks: &StackClient,
        coordination: &Coordination,
    ) -> Ending {
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
        self.ledger(|l| l.reported = true);
        Ending::of(Outcome::Succeeded)
    }

    /// Modes deploy and monitor: run or find the operation and follow it to its end.
    pub(super) async fn deploy_or_follow(
        &self,
        stacks: &StackClient,
        heartbeat: Option<&lock::Heartbeat>,
    ) -> Ending {
        let config = &self.config;
        let mut on_event = |event: MonitorEvent| {
            self.live.monitor_event(&event);
            self.track(&event);
            narrate::say(&narrate::monitor_event(&config.stack_name, &event));
        };
        let settings = MonitorSettings::default();
        let result = match config.mode {
            Mode::Deploy => match DeployRequest::from_config(config, &self.correlation_id) {
                Some(mut request) => {
                    // Polls faster as the usual end approaches.
                    request.expected_duration = self.timeline().usual_duration();
                    // Asked at the cancel: what the runner leaves before its kill, less
                    // the wind-down (shutdown.rs).
                    let shutdown = self.shutdown.clone();
                    let grace = move || {
                        shutdown
                            .signalled()
                            .map_or(Duration::ZERO, |s| s.follow_for(Instant::now()))
                    };
                    stack::deploy::deploy_checked(
                        stacks,
                        &request,
                        &settings,
                        &self.cancel,
                        &mut on_event,
                        &Gate {
                            step: self,
                            lock: ProveLock(heartbeat),
                        },
                        (config.on_cancel == OnCancel::CancelUpdate).then_some(&grace as &Grace),
                    )
                    .await
                }
                // Config guarantees a template or a change set in mode deploy.
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
                if config.mode == Mode::Deploy && result.outcome.is_success() {
                    self.remember_deployed().await;
                }
                self.tell_result(&result)
            }
            Err(StackError::Cancelled) => Ending::of(Outcome::Cancelled),
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
                    ..Ending::of(Outcome::Failed)
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
                    && !self.ledger(|l| std::mem::replace(&mut l.predicted, true))
                {
                    self.output("estimated-duration-seconds", &predicted.to_string());
                }
                info!("estimate: {}", estimate.summary());
                self.live.estimate(&estimate);
                if estimate.slower_than_usual
                    && !self.ledger(|l| std::mem::replace(&mut l.warned_slow, true))
                {
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

    /// Stores the finished operation in the history that the next estimates learn from.
    /// `forbid-older: true`: refuses to deploy a commit that GitHub says is behind (an
    /// ancestor of) the last one deployed successfully under the lock key. Whatever cannot be
    /// checked (no commit, no record, another repository, the registry or GitHub failing) is
    /// said and the deployment goes on: the check protects, it never blocks on an outage.
    pub(super) async fn never_backwards(&self) -> Result<(), Ending> {
        let config = &self.config;
        if !config.forbid_older {
            return Ok(());
        }
        let not_checked = |why: &str| {
            log::warning(
                "forbid-older not checked",
                &format!("{why}: deploying without comparing commits"),
            )
        };
        let (Some(mine), Some(repo)) = (self.me.sha.as_deref(), self.me.repository.as_deref())
        else {
            not_checked("this run has no commit or repository (GITHUB_SHA, GITHUB_REPOSITORY)");
            return Ok(());
        };
        let last =
            match crate::history::store::last_deployed(&self.registry, &config.lock_key).await {
                Ok(Some(last)) => last,
                Ok(None) => {
                    info!(
                        "forbid-older: nothing deployed under lock key {:?} yet",
                        config.lock_key
                    );
                    return Ok(());
                }
                Err(e) => {
                    not_checked(&format!("the last deployment could not be read ({e})"));
                    return Ok(());
                }
            };
        if last.repository.as_deref() != Some(repo) {
            info!(
                "forbid-older: lock key {:?} was deployed last from {} (commit {}), another repository: commits not compared",
                config.lock_key,
                last.origin(),
                last.sha
            );
            return Ok(());
        }
        if last.sha == mine {
            info!("forbid-older: commit {mine} is the one deployed last: deploying it again");
            return Ok(());
        }
        match self.liveness().compare(repo, &last.sha, mine).await {
            lock::Comparison::Behind => {
                let by = last.run_url.as_deref().unwrap_or(&last.correlation_id);
                self.error(
                    "Older commit refused (forbid-older)",
                    &format!(
                        "commit {mine} is older than commit {} deployed under lock key {:?} by run {by} ({}):                          GitHub's compare API says it is behind. Nothing was deployed. Deploy a newer commit,                          or set forbid-older: false for a deliberate rollback.",
                        last.sha,
                        config.lock_key,
                        last.origin()
                    ),
                );
                self.summary(&summary::refused_older(&config.lock_key, &self.me, &last));
                Err(Ending::of(Outcome::Failed))
            }
            lock::Comparison::Unknown => {
                not_checked(&format!(
                    "GitHub's compare API gave no answer for {}...{mine} (see the debug log; github-token needs contents: read)",
                    last.sha
                ));
                Ok(())
            }
            other => {
                info!(
                    "forbid-older: commit {mine} against {} deployed last: {other:?}, deploying",
                    last.sha
                );
                Ok(())
            }
        }
    }

    /// Records this commit as the last one deployed under the lock key (`forbid-older`'s
    /// reference), unless the registry proved unreachable.
    async fn remember_deployed(&self) {
        if !self.ledger(|l| l.registry_unreachable) {
            crate::steps::shared::remember_deployed(
                &self.registry,
                &self.config,
                &self.me,
                &self.correlation_id,
            )
            .await;
        }
    }

    async fn record_history(&self) {
        if self.ledger(|l| l.registry_unreachable) {
            return;
        }
        let lock_wait = self.ledger(|l| l.lock_summary.as_ref().and_then(|s| s.wait));
        let record = self.timeline().record(&self.correlation_id, lock_wait);
        if let Some(record) = record {
            super::super::shared::remember(&self.registry, &record).await;
        }
    }

    /// Outputs, annotations and the job summary of a finished stack operation.
    fn tell_result(&self, result: &StackResult) -> Ending {
        // `on-cancel: cancel-update`: the reason everyone reads is what the cancel came to.
        let told;
        let result = match &result.cancel {
            Some(report) => {
                let mut r = result.clone();
                r.failure_reason = Some(narrate::cancel_outcome(
                    &self.config.stack_name,
                    report,
                    result.stack_status.as_deref(),
                ));
                r.failed_resource = None;
                if report.rollback_running() {
                    let status = result
                        .stack_status
                        .clone()
                        .unwrap_or_else(|| "in progress".into());
                    self.ledger(|l| l.rollback_running = Some(status));
                }
                told = r;
                &told
            }
            None => result,
        };
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
        for line in narrate::result_annotations(&self.config.stack_name, result) {
            narrate::say(&line);
        }
        let (done, total) = result.progress;
        let status = result.stack_status.as_deref().unwrap_or("unknown");
        info!(
            "{} {}: {} in {} ({done}/{total} resources)",
            self.config.stack_name,
            result.outcome,
            status,
            duration::human(result.duration)
        );
        self.ledger(|l| l.stack_outputs = result.outputs.clone());
        let mut context = summary::SummaryContext::new(&self.correlation_id, &self.config)
            .with_prediction(self.timeline().predicted_seconds());
        if let Some(lock) = self.ledger(|l| l.lock_summary.clone()) {
            context = context.with_lock(lock);
        }
        let mut md = summary::render_summary(&context, result);
        md.push_str(&self.ledger(|l| std::mem::take(&mut l.guard_summary)));
        self.summary(&md);
        self.live
            .finished(result, self.config.slack_mention_on_failure.as_deref());
        self.ledger(|l| l.reported = true);
        ending
    }
}
