//! Steps 4 and 5 of the main step: wait while someone else's operation runs on the stack,
//! then deploy or follow ours (modes deploy and monitor) or hand over to the job's later steps
//! (mode lock), and tell what came of it.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::lock::{Coordination, ProveLock};
use super::{Ending, Step};
use crate::action::log;
use crate::config::{Mode, OnCancel};
use crate::lock;
use crate::outputs::state;
use crate::stack::deploy::Grace;
use crate::stack::{
    self, DeployRequest, GuardError, MonitorEvent, MonitorSettings, Outcome, PollSettings,
    StackClient, StackError, StackResult,
};
use crate::{duration, narrate, summary};

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
                        &ProveLock(heartbeat),
                        (config.on_cancel == OnCancel::CancelUpdate).then_some(&grace as &Grace),
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
        self.summary(&summary::render_summary(&context, result));
        self.live
            .finished(result, self.config.slack_mention_on_failure.as_deref());
        self.ledger(|l| l.reported = true);
        ending
    }
}
