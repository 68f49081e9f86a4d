//! The live card of one deployment: what the lock and the monitor report, turned into card
//! updates and thread replies.
//!
//! The steps hand every event to [`LiveCard`] and go on: the notifier behind it queues and
//! collapses, so a burst of CloudFormation events costs the deployment nothing. Which events
//! deserve a thread reply (queued behind someone, a takeover, a monitoring gap, the registry
//! falling back, the failures) is decided here, once, for both steps.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::card::{Card, FailedResource, Holder, Outcome, Phase, RootCause, ThreadEvent};
use super::notifier::Notifier;
use crate::lock::LockEvent;
use crate::stack::{self, MonitorEvent, StackResult};

impl From<stack::Outcome> for Outcome {
    fn from(outcome: stack::Outcome) -> Outcome {
        match outcome {
            stack::Outcome::Succeeded => Outcome::Succeeded,
            stack::Outcome::NoChanges => Outcome::NoChanges,
            stack::Outcome::RolledBack => Outcome::RolledBack,
            stack::Outcome::Failed => Outcome::Failed,
            stack::Outcome::TimedOut => Outcome::TimedOut,
            stack::Outcome::Cancelled => Outcome::Cancelled,
            stack::Outcome::Skipped => Outcome::Skipped,
        }
    }
}

/// One deployment's card and the notifier that delivers it.
pub struct LiveCard {
    notifier: Notifier,
    state: Mutex<State>,
}

struct State {
    card: Card,
    /// The freeze this run waits behind, while it lasts.
    freeze: Option<crate::lock::Freeze>,
    announced_queue: bool,
    started: Option<Instant>,
    done: u32,
    total: Option<u32>,
    in_progress: BTreeSet<String>,
    failures: Vec<FailedResource>,
    remaining: Option<(Duration, Duration)>,
    completion: Option<chrono::DateTime<chrono::Utc>>,
    slower: bool,
}

impl LiveCard {
    pub fn new(notifier: Notifier, card: Card) -> LiveCard {
        let state = State {
            card,
            freeze: None,
            announced_queue: false,
            started: None,
            done: 0,
            total: None,
            in_progress: BTreeSet::new(),
            failures: Vec::new(),
            remaining: None,
            completion: None,
            slower: false,
        };
        LiveCard {
            notifier,
            state: Mutex::new(state),
        }
    }

    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn show(&self, state: &mut State, phase: Phase) {
        state.card = state.card.with_phase(phase);
        self.notifier.card(&state.card);
    }

    /// The lock's queue: position, holder and ETA on the card; one thread reply the first
    /// time we wait, and one for a takeover.
    pub fn lock_event(&self, event: &LockEvent) {
        let mut state = self.state();
        match event {
            LockEvent::Queued {
                position,
                ahead,
                holder,
                eta,
            }
            | LockEvent::PositionChanged {
                position,
                ahead,
                holder,
                eta,
            } => {
                let holder = holder.as_ref().map(|h| Holder::from_info(&h.info));
                let phase = match &state.freeze {
                    // Behind a freeze the card keeps saying so; only our place changes.
                    Some(freeze) => Phase::Frozen {
                        freeze: freeze.clone(),
                        position: *position as u32,
                        holder: holder.clone(),
                    },
                    None => Phase::Queued {
                        position: *position as u32,
                        ahead: *ahead as u32,
                        holder: holder.clone(),
                        eta: *eta,
                    },
                };
                self.show(&mut state, phase);
                if !state.announced_queue {
                    state.announced_queue = true;
                    if let Some(holder) = holder {
                        self.notifier.thread(&ThreadEvent::QueuedBehind {
                            holder,
                            position: *position as u32,
                            eta: *eta,
                        });
                    }
                }
            }
            LockEvent::Frozen {
                freeze,
                holder,
                position,
                moved,
            } => {
                state.freeze = Some(freeze.clone());
                let phase = Phase::Frozen {
                    freeze: freeze.clone(),
                    position: *position as u32,
                    holder: holder.as_ref().map(|h| Holder::from_info(&h.info)),
                };
                self.show(&mut state, phase);
                if !moved {
                    self.notifier.thread(&ThreadEvent::Frozen {
                        freeze: freeze.clone(),
                        stopped: false,
                    });
                }
            }
            LockEvent::FreezeEnded { freeze, expired } => {
                state.freeze = None;
                // Back to the plain queue at the place we held behind the freeze.
                if let Phase::Frozen {
                    position, holder, ..
                } = state.card.phase.clone()
                {
                    let phase = Phase::Queued {
                        position,
                        ahead: position.saturating_sub(1),
                        holder,
                        eta: None,
                    };
                    self.show(&mut state, phase);
                }
                let how = if *expired {
                    "reached its end"
                } else {
                    "was lifted"
                };
                self.notifier.thread(&ThreadEvent::Note(format!(
                    "🌤️ The deploy freeze by {} {how}; this run goes in its turn.",
                    freeze.by
                )));
            }
            LockEvent::TakingOver { previous, why, .. } => {
                self.notifier.thread(&ThreadEvent::Takeover {
                    previous: Holder::from_info(&previous.info),
                    why: why.to_string(),
                });
            }
            LockEvent::Acquired { .. } => {
                self.show(&mut state, Phase::WaitingForStack { stack_status: None })
            }
            LockEvent::PassedBy { by, position } => {
                if let Phase::Queued {
                    ahead, eta, holder, ..
                } = state.card.phase.clone()
                {
                    let phase = Phase::Queued {
                        position: *position as u32,
                        ahead: ahead.max(position.saturating_sub(1) as u32),
                        holder,
                        eta,
                    };
                    self.show(&mut state, phase);
                }
                self.notifier.thread(&ThreadEvent::PassedBy {
                    by: Holder::from_info(by),
                    origin: by.origin(),
                    position: *position as u32,
                });
            }
        }
    }

    /// The run left the queue: `by`, a newer commit of its ref, deploys instead.
    pub fn superseded(&self, by: &crate::lock::HolderInfo) {
        self.notifier.thread(&ThreadEvent::Superseded {
            by: Holder::from_info(by),
            commit: by.short_sha().unwrap_or("?").to_string(),
        });
    }

    /// The run stopped at a freeze (`on-freeze: fail`, or `lock-timeout` ran out behind it):
    /// the thread says who froze it, why and until when.
    pub fn frozen_out(&self, freeze: &crate::lock::Freeze) {
        self.notifier.thread(&ThreadEvent::Frozen {
            freeze: freeze.clone(),
            stopped: true,
        });
    }

    /// The registry is unreachable and the step goes on without the lock.
    pub fn registry_fallback(&self, reason: &str) {
        let mut state = self.state();
        self.show(&mut state, Phase::WaitingForStack { stack_status: None });
        self.notifier.thread(&ThreadEvent::RegistryFallback {
            reason: reason.to_string(),
        });
    }

    /// The lock is no longer ours: a thread reply at once; the final card says it again.
    pub fn lock_lost(&self, detail: &str) {
        self.notifier.thread(&ThreadEvent::LockLost {
            detail: detail.to_string(),
        });
    }

    /// The stack is busy with someone else's operation.
    pub fn waiting_for_stack(&self, status: &str) {
        let mut state = self.state();
        self.show(
            &mut state,
            Phase::WaitingForStack {
                stack_status: Some(status.to_string()),
            },
        );
    }

    /// Progress of the followed operation.
    pub fn monitor_event(&self, event: &MonitorEvent) {
        let mut state = self.state();
        match event {
            MonitorEvent::ChangeSetCreated { changes, .. } => state.total = Some(*changes),
            MonitorEvent::Started { stack_id, .. } => {
                state.started = Some(Instant::now());
                state.card.stack_id = Some(stack_id.clone());
                let phase = running(&state);
                self.show(&mut state, phase);
            }
            MonitorEvent::Resource(e) if !e.is_stack_level() => {
                let name = if e.stack_name == state.card.stack {
                    e.logical_id.clone()
                } else {
                    format!("{}/{}", e.stack_name, e.logical_id)
                };
                if e.status.ends_with("_IN_PROGRESS") {
                    state.in_progress.insert(name.clone());
                } else {
                    state.in_progress.remove(&name);
                }
                if e.status.ends_with("_FAILED") && !e.is_cancellation() {
                    state.failures.push(FailedResource {
                        resource: name,
                        resource_type: Some(e.resource_type.clone()),
                        status: e.status.clone(),
                        reason: e.reason.clone().unwrap_or_default(),
                    });
                }
                let phase = running(&state);
                self.show(&mut state, phase);
            }
            MonitorEvent::Progress { done, total } => {
                state.done = *done;
                state.total = Some(*total);
                let phase = running(&state);
                self.show(&mut state, phase);
            }
            MonitorEvent::Interrupted {
                error,
                restart,
                retry_in,
                ..
            } => {
                self.notifier.thread(&ThreadEvent::MonitoringGap {
                    gap: *retry_in,
                    restarts: *restart,
                    error: error.clone(),
                });
            }
            // The run's cancellation and what it did to the update: in the thread, in the
            // narrator's words (the final card then shows what the cancel came to).
            MonitorEvent::UpdateCancelRequested { .. }
            | MonitorEvent::UpdateNotCancelled { .. } => {
                let line = crate::narrate::monitor_event(&state.card.stack, event);
                self.notifier.thread(&ThreadEvent::Note(line.text));
            }
            _ => {}
        }
    }

    /// The operation ended: the final card, and the failures in the thread.
    pub fn finished(&self, result: &StackResult, mention: Option<&str>) {
        let mut state = self.state();
        if let Some(id) = &result.stack_id {
            state.card.stack_id = Some(id.clone());
        }
        if !state.failures.is_empty() {
            let failures = std::mem::take(&mut state.failures);
            self.notifier
                .thread(&ThreadEvent::FailureDetail { failures });
        }
        // No failed resource: the stack itself said why (a template error, a cancellation).
        let root_cause = result.failure_reason.as_ref().map(|reason| RootCause {
            resource: result
                .failed_resource
                .clone()
                .unwrap_or_else(|| state.card.stack.clone()),
            resource_type: None,
            reason: reason.clone(),
            heading: result.failure_title.clone(),
        });
        let phase = Phase::Finished {
            outcome: result.outcome.into(),
            duration: result.duration,
            root_cause,
            stack_status: result.stack_status.clone(),
            mention: mention.map(str::to_string),
            warnings: result.warnings.clone(),
            next_step: result.recovery.clone(),
        };
        self.show(&mut state, phase);
    }

    /// What history says about the time left.
    pub fn estimate(&self, estimate: &crate::estimate::Estimate) {
        let mut state = self.state();
        state.remaining = Some((
            Duration::from_secs(estimate.remaining_low_seconds),
            Duration::from_secs(estimate.remaining_high_seconds),
        ));
        state.completion = Some(estimate.estimated_completion);
        state.slower = estimate.slower_than_usual;
        let phase = running(&state);
        self.show(&mut state, phase);
    }

    /// One thread reply when the deployment passes its usual high bound.
    pub fn slower_than_usual(&self, elapsed: Duration, usual: Duration) {
        self.notifier
            .thread(&ThreadEvent::SlowerThanUsual { elapsed, usual });
    }

    /// Mode lock: the job's later steps deploy while we hold the lock.
    pub fn holding_lock(&self) {
        let mut state = self.state();
        state.started = Some(Instant::now());
        let phase = running(&state);
        self.show(&mut state, phase);
    }

    /// The step ended before any stack operation (lock timeout, cancellation, an error).
    pub fn ended_early(&self, outcome: stack::Outcome, why: &str, mention: Option<&str>) {
        let mut state = self.state();
        let duration = state.started.map(|s| s.elapsed()).unwrap_or(Duration::ZERO);
        let phase = Phase::Finished {
            outcome: outcome.into(),
            duration,
            root_cause: (!outcome.is_success()).then(|| RootCause {
                resource: "deploy-coordinator".into(),
                resource_type: None,
                reason: why.to_string(),
                heading: None,
            }),
            stack_status: None,
            mention: mention.map(str::to_string),
            warnings: Vec::new(),
            next_step: None,
        };
        self.show(&mut state, phase);
    }
}

fn running(state: &State) -> Phase {
    Phase::Running {
        done: state.done,
        total: state.total,
        elapsed: state.started.map(|s| s.elapsed()).unwrap_or(Duration::ZERO),
        remaining: state.remaining,
        completion: state.completion,
        slower_than_usual: state.slower,
        in_progress: state.in_progress.iter().take(10).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{Freeze, LockEvent};

    fn card() -> Card {
        Card {
            stack: "app".into(),
            stack_id: None,
            environment: Some("prod".into()),
            correlation_id: "c-1".into(),
            mode: "deploy".into(),
            repository: None,
            actor: None,
            commit: None,
            commit_message: None,
            git_ref: None,
            server_url: None,
            run_url: None,
            region: None,
            phase: Phase::WaitingForStack { stack_status: None },
        }
    }

    fn phase(live: &LiveCard) -> Phase {
        live.state().card.phase.clone()
    }

    #[test]
    fn the_card_says_frozen_while_the_freeze_lasts_and_keeps_our_place() {
        let live = LiveCard::new(Notifier::disabled(), card());
        let freeze = Freeze::new(
            "INC-42",
            "alice",
            chrono::Utc::now(),
            Duration::from_secs(3600),
        )
        .unwrap();
        let queued = |position: usize| LockEvent::PositionChanged {
            position,
            ahead: position - 1,
            holder: None,
            eta: None,
        };
        live.lock_event(&queued(3));
        live.lock_event(&LockEvent::Frozen {
            freeze: freeze.clone(),
            holder: None,
            position: 3,
            moved: false,
        });
        assert!(matches!(phase(&live), Phase::Frozen { position: 3, .. }));
        // Moving up the queue behind the freeze: still frozen, new place.
        live.lock_event(&queued(2));
        assert!(matches!(phase(&live), Phase::Frozen { position: 2, .. }));
        live.lock_event(&LockEvent::FreezeEnded {
            freeze,
            expired: false,
        });
        assert!(matches!(
            phase(&live),
            Phase::Queued {
                position: 2,
                ahead: 1,
                ..
            }
        ));
        live.lock_event(&queued(1));
        assert!(matches!(phase(&live), Phase::Queued { position: 1, .. }));
    }
}
