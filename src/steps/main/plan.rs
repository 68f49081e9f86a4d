//! Mode plan, the main step's other story: no lock (nothing runs), no GitHub deployment, no
//! Slack card.
//!
//! 1. Wait while someone else's operation runs on the stack (a change set against a moving
//!    stack says little).
//! 2. Create the change set with its nested stacks and property values; never execute it.
//! 3. Classify every change (`plan::risk`), expect a duration (the estimator with the change
//!    set), and tell it: outputs, the job summary's full table, one log line per risky change
//!    and one annotation, and the pull request's comment, updated in place.
//!
//! A change set CloudFormation cannot create is the plan's result (shown with its cause) and
//! fails the step; "no changes" says so and succeeds.

use std::process::ExitCode;

use super::{Ending, Step};
use crate::action::log;
use crate::estimate::fmt_secs;
use crate::github::comments::{PullRequestComments, Written};
use crate::narrate;
use crate::plan::render::{self, Origin};
use crate::plan::review::{self, Outcome as PlanOutcome, Review};
use crate::stack::preview::{Preview, preview};
use crate::stack::{DeployRequest, MonitorSettings, Outcome, StackClient, StackError};

impl Step {
    pub(super) async fn plan(&self) -> ExitCode {
        let config = &self.config;
        // Nothing of a plan reports through the card: it must not post an "ended early" one.
        self.ledger(|l| l.reported = true);
        let stacks = StackClient::from_conf(&self.sdk);
        // 1.
        if let Err(ending) = self.wait_for_stack(&stacks).await {
            return self.finish(ending).await;
        }
        // 2.
        let Some(request) = DeployRequest::from_config(config, &self.correlation_id) else {
            // Config::from_inputs requires a template in mode plan.
            self.error("Plan failed", "mode plan needs `template`");
            return self.finish(Ending::of(Outcome::Failed)).await;
        };
        let settings = MonitorSettings::default();
        let found = match preview(&stacks, &request, &settings, &self.cancel).await {
            Ok(found) => found,
            Err(StackError::Cancelled) => return self.finish(Ending::of(Outcome::Cancelled)).await,
            Err(e) => {
                self.error("Plan failed", &e.to_string());
                return self.finish(Ending::of(Outcome::Failed)).await;
            }
        };
        // 3.
        let review = self.review_of(found);
        self.output("change-set-name", &review.change_set_name);
        if let Some(id) = &review.change_set_id {
            self.output("change-set-id", id);
        }
        self.output("changes", &review::changes_json(&review));
        self.output("risk", review.risk().as_str());
        self.summary(&render::summary_markdown(&review));
        for line in narrate::plan(&review) {
            narrate::say(&line);
        }
        self.comment(&review).await;
        let ending = match &review.outcome {
            PlanOutcome::Changes(_) => Ending::of(Outcome::Succeeded),
            PlanOutcome::NoChanges { .. } => Ending::of(Outcome::NoChanges),
            PlanOutcome::Failed { .. } => Ending::of(Outcome::Failed),
        };
        self.finish(ending).await
    }

    /// The plan from what CloudFormation said, with the estimator's expectation.
    fn review_of(&self, found: Preview) -> Review {
        let stack = self.config.stack_name.clone();
        match found {
            Preview::Ready { name, id, stacks } => {
                let root = stacks
                    .iter()
                    .find(|s| s.path.is_empty())
                    .map(|s| s.changes.clone())
                    .unwrap_or_default();
                let expected = self.timeline().planned(&root, self.clock.now()).map(|e| {
                    format!(
                        "about {} ({}–{}), {} confidence, {}",
                        fmt_secs(e.remaining_seconds as f64),
                        fmt_secs(e.remaining_low_seconds as f64),
                        fmt_secs(e.remaining_high_seconds as f64),
                        format!("{:?}", e.confidence).to_lowercase(),
                        e.basis
                    )
                });
                Review {
                    stack,
                    change_set_name: name,
                    change_set_id: id,
                    outcome: PlanOutcome::Changes(review::rows(&stacks)),
                    expected,
                }
            }
            Preview::NoChanges { name, reason } => Review {
                stack,
                change_set_name: name,
                change_set_id: None,
                outcome: PlanOutcome::NoChanges { reason },
                expected: None,
            },
            Preview::Failed {
                name,
                reason,
                failures,
            } => Review {
                stack,
                change_set_name: name,
                change_set_id: None,
                outcome: PlanOutcome::Failed { reason, failures },
                expected: None,
            },
        }
    }

    /// The pull request's comment for this stack, created once and then edited. Best effort:
    /// a GitHub error is one warning, never the plan's failure.
    async fn comment(&self, review: &Review) {
        let event = std::env::var("GITHUB_EVENT_PATH").ok();
        let Some(number) = crate::context::pull_request_number(event.as_deref()) else {
            tracing::info!(
                "no pull request in this run's event (a push or a manual run): the plan is in the job summary only"
            );
            return;
        };
        let (Some(token), Some(repository)) = (
            self.config.github_token.as_deref(),
            self.me.repository.as_deref(),
        ) else {
            log::warning(
                "Plan comment not written",
                "the pull request's comment needs `github-token` and a GitHub run (GITHUB_REPOSITORY); the plan is in the job summary",
            );
            return;
        };
        let comments = match PullRequestComments::new(&self.ctx.api_url, token, repository, number)
        {
            Ok(c) => c,
            Err(e) => {
                log::warning("Plan comment not written", &e);
                return;
            }
        };
        let origin = Origin {
            run_url: self.me.run_url.clone(),
            commit: self.me.sha.clone(),
        };
        let body = render::comment(review, &origin);
        match comments.upsert(&render::marker(&review.stack), &body).await {
            Ok(Written::Created { id }) => {
                tracing::info!("plan comment {id} created on pull request #{number}")
            }
            Ok(Written::Updated { id }) => {
                tracing::info!("plan comment {id} on pull request #{number} updated")
            }
            Err(e) => log::warning("Plan comment not written", &e.to_string()),
        }
    }
}
