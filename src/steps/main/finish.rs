//! Step 6 of the main step: the GitHub deployment's final status, Slack's last card and
//! delivery, the `outcome` output. Also where the GitHub deployment starts (after the lock).

use std::process::ExitCode;
use std::time::Duration;

use super::{Ending, Step};
use crate::config::Mode;
use crate::outputs::state;
use crate::stack::Outcome;
use crate::steps::shared;

/// How long the main step gives Slack to deliver what is queued before dead-lettering it.
const SLACK_FLUSH: Duration = Duration::from_secs(15);
/// At most this long after a cancellation.
const CANCELLED_FLUSH: Duration = Duration::from_secs(3);

impl Step {
    /// The last words of the step: Slack's final card and delivery, the outcome.
    pub(super) async fn finish(&self, ending: Ending) -> ExitCode {
        // The post step must not post its own final card over ours.
        self.state(state::ENDED, ending.outcome.as_str());
        // Mode lock: the post step sets the deployment's final status.
        if self.config.mode != Mode::Lock {
            let outputs = self.ledger(|l| l.stack_outputs.clone());
            self.finish_github_deployment(ending.outcome, &outputs)
                .await;
        }
        let mention = self.config.slack_mention_on_failure.as_deref();
        if !self.ledger(|l| l.reported) {
            let why = self
                .ledger(|l| l.first_error.clone())
                .unwrap_or_else(|| ending.outcome.as_str().to_string());
            self.live.ended_early(ending.outcome, &why, mention);
        }
        let notifier = self.live.notifier();
        if notifier.is_enabled() {
            // Bounded: a Slack outage must not hold the step (after a cancellation the runner
            // kills us 7.5 s after its first signal).
            // What is left before the kill, when following a rollback used most of it.
            let within = match self.shutdown.signalled() {
                Some(signalled) => {
                    signalled.flush_within(std::time::Instant::now(), CANCELLED_FLUSH)
                }
                None if self.cancel.is_cancelled() => CANCELLED_FLUSH,
                None => SLACK_FLUSH,
            };
            let registry = (!self.ledger(|l| l.registry_unreachable)).then_some(&self.registry);
            let delivery = notifier.flush(within, registry).await;
            if let Some(card) = delivery.card.clone().or_else(|| notifier.card_ref()) {
                self.output("slack-ts", &card.ts);
                self.state(state::SLACK_CARD, &card.encode());
            }
            if !delivery.balanced() || delivery.dead_lettered > 0 {
                self.summary(&delivery.summary_markdown());
            }
        }
        self.output("outcome", ending.outcome.as_str());
        if self.ledger(|l| l.write_failed) {
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

    /// Creates the GitHub deployment (`github-deployment: true`), in progress. Best effort:
    /// without `deployments: write` it warns once and the deployment goes on.
    pub(super) async fn start_github_deployment(&self) {
        if let Some((deployments, id)) =
            shared::start_github_deployment(&self.ctx, &self.config, &self.me, &self.correlation_id)
                .await
        {
            self.output("deployment-id", &id.to_string());
            self.state(state::DEPLOYMENT_ID, &id.to_string());
            self.ledger(|l| l.deployment = Some((deployments, id)));
        }
    }

    /// The GitHub deployment's final status.
    async fn finish_github_deployment(&self, outcome: Outcome, outputs: &[(String, String)]) {
        let Some((deployments, id)) = self.ledger(|l| l.deployment.take()) else {
            return;
        };
        shared::finish_github_deployment(
            &deployments,
            id,
            &self.config,
            &self.me,
            outcome,
            outputs,
        )
        .await;
    }
}
