//! Step 3 of the main step and its end: the lock taken (or the fallback), kept by the
//! heartbeat, its loss reported with consequences, and its release.

use std::time::Duration;

use tracing::{info, warn};

use super::{Ending, Step};
use crate::action::log;
use crate::config::OnRegistryUnavailable;
use crate::github;
use crate::lock::{self, AcquireError, AcquireOptions, LockEvent, NoLiveness, RunLiveness};
use crate::outputs::state;
use crate::registry::Registry;
use crate::stack::{self, Outcome};
use crate::summary::{self, LockCoordination, LockSummary};
use crate::{duration, narrate};

/// How long the note on the lock item may take when the runner's kill is near.
const NOTE_WITHIN: Duration = Duration::from_millis(800);

/// How the step is coordinated with other runs.
pub(super) enum Coordination {
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

/// Proves, by a conditional write just before ExecuteChangeSet, that the lock is still ours.
pub(super) struct ProveLock<'a>(pub(super) Option<&'a lock::Heartbeat>);

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

impl Step {
    /// Takes the lock, waiting in the queue; `Err` carries the outcome to end the step with.
    pub(super) async fn take_lock(&self) -> Result<Coordination, Ending> {
        let config = &self.config;
        let registry = self.registry.clone();
        let me = &self.me;

        // Saved before asking: see the module comment.
        self.state(state::LOCK_TABLE, &config.registry_table);
        self.state(state::LOCK_KEY, &config.lock_key);
        self.state(state::LOCK_OWNER, &me.owner);
        if self.ledger(|l| l.write_failed) {
            // Without them the post step could not release a lock we took: the lock would
            // stay taken for a whole lease (6 h in mode lock). Do not take it.
            self.error(
                "Lock not requested",
                "the state for the post step could not be written (see above), so the post step could not release the lock: \
                 nothing was locked or deployed. Check the runner's disk and GITHUB_STATE.",
            );
            self.output("lock-acquired", "false");
            return Err(Ending::of(Outcome::Failed));
        }

        let liveness = self.liveness();
        let mut options = AcquireOptions::new(config.lock_lease, config.lock_timeout);
        options.on_freeze = config.on_freeze;
        options.priority = config.priority;
        options.on_superseded = config.on_superseded;
        let on_event = |event: LockEvent| {
            match &event {
                LockEvent::Frozen {
                    freeze,
                    moved: false,
                    ..
                } => self.summary(&summary::waiting_behind_freeze(&config.lock_key, freeze)),
                LockEvent::PassedBy { by, .. } => {
                    self.summary(&summary::passed_by(&config.lock_key, by))
                }
                _ => {}
            }
            let event = self.with_queue_eta(event);
            self.live.lock_event(&event);
            narrate::say(&narrate::lock_event(
                &config.lock_key,
                &event,
                self.clock.now_ms(),
            ));
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
            Ok(acquired) => Ok(self.acquired(registry, acquired)),
            Err(AcquireError::Registry(e))
                if e.is_unavailable()
                    && config.on_registry_unavailable == OnRegistryUnavailable::Fallback =>
            {
                Ok(self.fall_back(&e, started.elapsed()))
            }
            Err(AcquireError::Registry(e)) => {
                self.error("Cannot take the deployment lock", &e.to_string());
                self.output("lock-acquired", "false");
                Err(Ending::of(Outcome::Failed))
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
                Err(Ending::of(Outcome::TimedOut))
            }
            Err(AcquireError::Frozen {
                freeze,
                holder,
                timed_out,
            }) => {
                self.frozen(&freeze, holder.as_ref(), timed_out, started.elapsed());
                Err(Ending::of(if timed_out {
                    Outcome::TimedOut
                } else {
                    Outcome::Failed
                }))
            }
            Err(AcquireError::Cancelled) => {
                warn!(
                    "cancelled while waiting for lock {:?}: left the queue",
                    config.lock_key
                );
                self.output("lock-acquired", "false");
                Err(Ending::of(Outcome::Cancelled))
            }
            Err(AcquireError::Superseded { by }) => {
                self.superseded(&by, started.elapsed());
                Err(Ending::of(Outcome::Skipped))
            }
        }
    }

    /// The lock is ours: the summary, the post step's state and the outputs say so.
    fn acquired(&self, registry: Registry, acquired: lock::Acquired) -> Coordination {
        let config = &self.config;
        self.set_lock_summary(LockSummary {
            wait: Some(acquired.waited),
            coordination: LockCoordination::Acquired {
                fence: acquired.record.fence,
                reentrant: acquired.reentrant,
                took_over_from: acquired.took_over.as_ref().map(|h| h.info.describe()),
            },
        });
        if config.priority == lock::Priority::High && !acquired.waited.is_zero() {
            self.summary(&summary::went_ahead(&config.lock_key, acquired.waited));
        }
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
        Coordination::Locked {
            registry,
            record: Box::new(record),
            written_at: acquired.written_at,
        }
    }

    /// The registry is unreachable and the user allows it: CloudFormation-only coordination,
    /// loudly (log, summary, card).
    fn fall_back(&self, e: &crate::registry::RegistryError, waited: Duration) -> Coordination {
        let config = &self.config;
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
        self.ledger(|l| l.registry_unreachable = true);
        self.live.registry_fallback(&e.to_string());
        self.output("lock-acquired", "false");
        self.output("lock-wait-seconds", &waited.as_secs().to_string());
        self.set_lock_summary(LockSummary {
            wait: Some(waited),
            coordination: LockCoordination::Fallback,
        });
        Coordination::Fallback
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

    /// A newer commit of our ref is queued (`on-superseded: skip`): we left the queue without
    /// the lock. A notice that names the run and commit that deploy instead, on the log, the
    /// job summary and the Slack card; the step succeeds with outcome `skipped`.
    fn superseded(&self, by: &lock::HolderInfo, waited: Duration) {
        let config = &self.config;
        let line = narrate::superseded(&config.lock_key, &self.me, by);
        narrate::say(&line);
        self.ledger(|l| l.first_error = Some(line.text.clone()));
        self.summary(&summary::superseded(&config.lock_key, &self.me, by));
        self.live.superseded(by);
        self.output("lock-acquired", "false");
        self.output("lock-wait-seconds", &waited.as_secs().to_string());
        self.output("superseded-by", by.run_url.as_deref().unwrap_or(&by.owner));
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

    /// Asks GitHub whether a holder's run is completed and how two commits compare, when we
    /// have a token.
    pub(super) fn liveness(&self) -> Box<dyn RunLiveness> {
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

    fn set_lock_summary(&self, lock: LockSummary) {
        self.ledger(|l| l.lock_summary = Some(lock));
    }

    /// From the moment the lock is ours: the heartbeat, whose loss cancels what has not
    /// happened yet (the stack guard's wait); the change set is executed only after ownership
    /// is proved (`ProveLock`).
    pub(super) fn start_heartbeat(&self, coordination: &Coordination) -> Option<lock::Heartbeat> {
        let Coordination::Locked {
            registry,
            record,
            written_at,
        } = coordination
        else {
            return None;
        };
        let heartbeat = lock::spawn_heartbeat_since(
            registry.clone(),
            self.config.lock_key.clone(),
            (**record).clone(),
            *written_at,
        );
        let (lost, work) = (heartbeat.lost_token(), self.work.clone());
        tokio::spawn(async move {
            lost.cancelled().await;
            work.cancel();
        });
        Some(heartbeat)
    }

    /// Stops the heartbeat and says whether the lock stayed ours all along (output
    /// `lock-lost`). A loss is an error with consequences: the step fails, and the log, the
    /// summary and the Slack card and thread say what it means.
    pub(super) async fn end_heartbeat(
        &self,
        heartbeat: Option<lock::Heartbeat>,
        ending: Ending,
    ) -> Ending {
        let Some(heartbeat) = heartbeat else {
            return ending;
        };
        match heartbeat.stop().await {
            Ok(record) => {
                self.output("lock-lost", "false");
                self.ledger(|l| l.last_heartbeat = Some(record));
                ending
            }
            Err(lost) => {
                self.lock_lost(&lost);
                // Cancelled by the loss, not by the runner: the run failed.
                let outcome = match ending.outcome {
                    Outcome::Cancelled if !self.cancel.is_cancelled() => Outcome::Failed,
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
        self.ledger(|l| l.lock_lost_reported = true);
    }

    /// The rollback our CancelUpdateStack started outlives the runner's grace: the lock stays
    /// held (the post step releases it once the stack has settled, else the lease frees it),
    /// and the log, the summary and the post step's state say so.
    pub(super) async fn keep_lock_for_rollback(&self, coordination: &Coordination, status: &str) {
        let config = &self.config;
        let Coordination::Locked {
            registry, record, ..
        } = coordination
        else {
            return;
        };
        // On the lock item too, for `lock status` and the waiters; bounded, the runner's kill
        // is near (best effort: the lock and its lease are what matter).
        let note = narrate::cancelling_note(&config.stack_name, status, &self.clock.now_rfc3339());
        let noting = lock::note_cancelling(registry, &config.lock_key, &record.info.owner, &note);
        match tokio::time::timeout(NOTE_WITHIN, noting).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(
                "could not note the cancel on lock {:?}: {e}",
                config.lock_key
            ),
            Err(_) => warn!(
                "noting the cancel on lock {:?} took longer than {} ms: skipped",
                config.lock_key,
                NOTE_WITHIN.as_millis()
            ),
        }
        let last = self.ledger(|l| l.last_heartbeat.clone());
        let lease = Duration::from_millis(record.lease_ms);
        let expires = last
            .as_ref()
            .and_then(|r| r.heartbeat_at.as_deref())
            .or(Some(record.acquired_at.as_str()))
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .and_then(|at| chrono::Duration::from_std(lease).ok().map(|l| at + l))
            .map(|at| {
                at.with_timezone(&chrono::Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            });
        let line = narrate::lock_kept_for_rollback(
            &config.lock_key,
            &config.stack_name,
            status,
            lease,
            expires.as_deref(),
        );
        self.summary(&format!(
            "> [!WARNING]\n> {}\n",
            crate::action::log::sanitize(&line.text)
        ));
        narrate::say(&line);
        self.state(state::CANCEL_ROLLBACK, status);
    }

    pub(super) async fn release_if_locked(&self, coordination: &Coordination) {
        if let Coordination::Locked {
            registry, record, ..
        } = coordination
        {
            self.release(registry, record).await;
        }
    }

    /// Releases the lock at the end of modes deploy and monitor; the post step then has
    /// nothing left to do.
    async fn release(&self, registry: &Registry, record: &lock::LockRecord) {
        let config = &self.config;
        match lock::release(registry, &config.lock_key, &record.info.owner).await {
            // Not ours any more, and no heartbeat said so (mode lock after the hand-over, a
            // loss in the last moments): the narrator says it loudly.
            Ok(outcome) => {
                let expected_ours = !self.ledger(|l| l.lock_lost_reported);
                narrate::say(&narrate::released(
                    &config.registry_table,
                    &config.lock_key,
                    &outcome,
                    expected_ours,
                ));
                self.state(state::LOCK_RELEASED, "true");
            }
            // The post step tries again.
            Err(e) => warn!(
                "could not release lock {:?} now ({e}); the post step will",
                self.config.lock_key
            ),
        }
    }
}
