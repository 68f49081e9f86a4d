//! Following one operation to its end: the polling loop around the pure tracker, supervised.
//!
//! The loop reads the root stack's new events (and those of every nested stack still
//! running), feeds them to [`Tracker`], reports what changed through a callback, and sleeps as
//! [`PollSchedule`] says. It ends on the ROOT stack's terminal event, on `deploy-timeout`
//! (outcome timed-out) or on cancellation (outcome cancelled); in neither of the last two does
//! it touch the CloudFormation operation, which goes on.
//!
//! Supervision: a failed poll (network, 5xx) is retried with backoff from where the cursors
//! stand, so no event is lost or repeated across the gap; every gap is reported. More than
//! `restart_budget` failures within `restart_window` and the state is declared unknown.
//! Throttling is not a failure: it only slows polling down.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::Utc;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use super::client::{ClientError, ErrorKind, StackClient};
use super::cursor::{Baseline, Cursor};
use super::events::Event;
use super::planner::Planner;
use super::poll::PollSettings;
use super::result::{CancelReport, StackResult, result_of};
use super::status::{self, Outcome};
use super::tracker::{Matcher, Tracker, Update};

/// What the caller sees while an operation is followed (logs now, Slack later).
// Each event is moved once through a callback: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum MonitorEvent {
    /// Nothing runs yet; waiting up to `timeout` for the next operation to start.
    Waiting {
        timeout: Duration,
    },
    /// Mode deploy: the stack was left by a failed first create (ROLLBACK_COMPLETE): it is
    /// deleted and created again.
    DeletingFailedStack {
        stack_id: String,
    },
    /// Mode deploy: the change set is ready with this many changes; `resources` says which
    /// resources change and how (the estimate's plan).
    ChangeSetCreated {
        name: String,
        changes: u32,
        resources: Vec<super::client::ResourceChange>,
    },
    /// The operation started (its first stack-level event).
    Started {
        stack_id: String,
        status: String,
        operation_id: Option<String>,
    },
    /// An event of the operation, root or nested stack. Its texts come from AWS: sanitize
    /// them before logging.
    Resource(Event),
    /// Completed resources out of the expected total (goes down during a rollback).
    Progress {
        done: u32,
        total: u32,
    },
    /// The failed resource (`Nested/Logical` inside nested stacks; None: the stack itself
    /// says why) and why.
    RootCause {
        resource: Option<String>,
        reason: String,
    },
    /// CloudFormation throttles us: polling slows down.
    Throttled {
        next_poll: Duration,
    },
    /// Following failed; it restarts after `retry_in` (restart `restart` of `budget`).
    Interrupted {
        error: String,
        restart: u32,
        budget: u32,
        retry_in: Duration,
    },
    /// Following works again after a gap.
    Resumed {
        gap: Duration,
    },
    /// The step was cancelled while the stack was `status` (`UPDATE_IN_PROGRESS`), and
    /// CloudFormation accepted CancelUpdateStack: the rollback is followed for up to `grace`.
    UpdateCancelRequested {
        status: String,
        grace: Duration,
    },
    /// The step was cancelled, and the operation was not cancelled (`why`: a create cannot
    /// be, the update was already cleaning up, CloudFormation refused): it goes on.
    UpdateNotCancelled {
        status: String,
        why: String,
    },
    Finished(Outcome),
}

/// What following does when the step is cancelled while the operation runs.
#[derive(Clone, Copy)]
pub(crate) enum WhenCancelled<'a> {
    /// Stop following at once: the operation goes on in CloudFormation.
    Leave,
    /// `on-cancel: cancel-update`: CancelUpdateStack with `token` when the stack is
    /// `UPDATE_IN_PROGRESS`, then follow the rollback for as long as `grace` (asked at the
    /// cancel: the runner's time left, less the step's wind-down) allows.
    CancelUpdate {
        token: &'a str,
        grace: &'a (dyn Fn() -> Duration + Send + Sync),
    },
}

/// The constants of the loop. Defaults are the design's; tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonitorSettings {
    pub poll: PollSettings,
    /// At most this many restarts within `restart_window`.
    pub restart_budget: u32,
    pub restart_window: Duration,
    /// The first restart's delay; doubles with each restart in the window, up to `poll.max`.
    pub restart_backoff: Duration,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        Self {
            poll: PollSettings::default(),
            restart_budget: 5,
            restart_window: Duration::from_secs(300),
            restart_backoff: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Error)]
pub enum StackError {
    #[error(transparent)]
    Aws(#[from] ClientError),
    #[error(
        "the deployment's state is unknown: following stack {stack} failed {failures} times within {window}, \
         last error: {last}. Check the stack in the CloudFormation console before deploying again"
    )]
    StateUnknown {
        stack: String,
        failures: u32,
        window: String,
        last: ClientError,
    },
    #[error("template {path}: {source}")]
    Template {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "template {path} is {size} bytes; CloudFormation accepts at most 51,200 bytes inline: upload it to S3 \
         and pass its https URL as `template`"
    )]
    TemplateTooLarge { path: String, size: usize },
    #[error("change set {name} on stack {stack} failed: {reason}")]
    ChangeSetFailed {
        stack: String,
        name: String,
        reason: String,
    },
    #[error("stack {stack} cannot be deployed: {problem}")]
    BadState { stack: String, problem: String },
    #[error("cancelled")]
    Cancelled,
}

/// Where the followed operation is found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Start {
    /// The operation running now (read back to its first event).
    Current,
    /// The first operation after this point.
    After(Baseline),
}

/// What to follow and for how long.
#[derive(Debug, Clone)]
pub(crate) struct Follow {
    pub stack: String,
    pub start: Start,
    pub matcher: Matcher,
    /// Expected number of resource changes (a change set's size).
    pub total_hint: Option<u32>,
    /// The whole budget (`deploy-timeout`), measured on this machine's monotonic clock.
    pub timeout: Duration,
    /// Give up when nothing started within this (mode monitor's `start-timeout`).
    pub start_timeout: Option<Duration>,
    /// The operation's usual duration (history), to poll faster as its end approaches.
    pub expected_duration: Option<Duration>,
}

struct Supervisor {
    failures: VecDeque<Instant>,
    budget: u32,
    window: Duration,
    backoff: Duration,
    max_backoff: Duration,
    interrupted_at: Option<Instant>,
}

impl Supervisor {
    /// Records a failure; the delay before the restart, or None when the budget is spent.
    fn failed(&mut self, now: Instant) -> Option<(u32, Duration)> {
        while self
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            self.failures.pop_front();
        }
        let count = u32::try_from(self.failures.len()).unwrap_or(u32::MAX);
        if count >= self.budget {
            return None;
        }
        self.failures.push_back(now);
        self.interrupted_at.get_or_insert(now);
        let delay = self
            .backoff
            .saturating_mul(1 << count.min(16))
            .min(self.max_backoff);
        Some((count + 1, delay))
    }
}

/// Follows one operation to its end. Errors: credentials, permissions and an exhausted
/// restart budget; every other end is a [`StackResult`].
pub(crate) async fn follow<F>(
    client: &StackClient,
    follow: Follow,
    settings: &MonitorSettings,
    cancel: &CancellationToken,
    when_cancelled: WhenCancelled<'_>,
    on_event: &mut F,
) -> Result<StackResult, StackError>
where
    F: FnMut(MonitorEvent) + Send,
{
    let began = Instant::now();
    // Set once CancelUpdateStack was accepted: until when the rollback is followed.
    let mut cancelling: Option<Cancelling> = None;
    let mut state = FollowState::new(&follow);
    let mut planner = Planner::new(settings.poll, follow.expected_duration);
    let mut supervisor = Supervisor {
        failures: VecDeque::new(),
        budget: settings.restart_budget,
        window: settings.restart_window,
        backoff: settings.restart_backoff,
        max_backoff: settings.poll.max,
        interrupted_at: None,
    };
    if let (Some(timeout), Start::After(_)) = (follow.start_timeout, &follow.start) {
        on_event(MonitorEvent::Waiting { timeout });
    }
    loop {
        let polled = state.poll(client, &mut planner, began.elapsed(), on_event);
        let polled = match &cancelling {
            // A read that hangs must not outlast the runner's grace.
            Some(c) => match tokio::time::timeout_at(c.until.into(), polled).await {
                Ok(polled) => polled,
                Err(_) => {
                    let result = state.finish(client, began, on_event).await;
                    on_event(MonitorEvent::Finished(Outcome::Cancelled));
                    return Ok(c.ended(result, false));
                }
            },
            None => polled.await,
        };
        let delay = match polled {
            Ok(news) => {
                if let Some(since) = supervisor.interrupted_at.take() {
                    on_event(MonitorEvent::Resumed {
                        gap: since.elapsed(),
                    });
                }
                if state.tracker.is_finished() {
                    let result = state.finish(client, began, on_event).await;
                    return Ok(match &cancelling {
                        Some(c) => c.ended(result, true),
                        None => result,
                    });
                }
                planner.after_read(&state.tracker, news, began.elapsed())
            }
            Err(err) if err.kind == ErrorKind::Throttling => {
                let next_poll = planner.after_throttling();
                on_event(MonitorEvent::Throttled { next_poll });
                next_poll
            }
            Err(err) if !err.is_retryable() => return Err(err.into()),
            Err(err) => match supervisor.failed(Instant::now()) {
                Some((restart, retry_in)) => {
                    on_event(MonitorEvent::Interrupted {
                        error: err.to_string(),
                        restart,
                        budget: settings.restart_budget,
                        retry_in,
                    });
                    retry_in
                }
                None => {
                    return Err(StackError::StateUnknown {
                        stack: follow.stack.clone(),
                        failures: settings.restart_budget + 1,
                        window: crate::duration::human(settings.restart_window),
                        last: err,
                    });
                }
            },
        };
        if let Some(c) = cancelling.as_ref().filter(|c| Instant::now() >= c.until) {
            let result = state.finish(client, began, on_event).await;
            on_event(MonitorEvent::Finished(Outcome::Cancelled));
            return Ok(c.ended(result, false));
        }
        let elapsed = began.elapsed();
        if !state.tracker.is_started()
            && let Some(start_timeout) = follow.start_timeout.filter(|t| elapsed >= *t)
        {
            let mut result = state.finish(client, began, on_event).await;
            result.outcome = Outcome::TimedOut;
            result.fail_step = true;
            result.failure_reason = Some(format!(
                "no operation started on stack {} within {} (start-timeout)",
                follow.stack,
                crate::duration::human(start_timeout)
            ));
            on_event(MonitorEvent::Finished(Outcome::TimedOut));
            return Ok(result);
        }
        if elapsed >= follow.timeout {
            let mut result = state.finish(client, began, on_event).await;
            result.outcome = Outcome::TimedOut;
            result.fail_step = true;
            let timed_out = format!(
                "stack {} was still {} after {} (deploy-timeout); the operation goes on in CloudFormation",
                follow.stack,
                result.stack_status.as_deref().unwrap_or("in progress"),
                crate::duration::human(follow.timeout)
            );
            // A failure already seen (a Hook that stopped a resource) is what someone must
            // read first; the timeout is said beside it.
            match state.tracker.root_cause() {
                Some(cause) => {
                    result.failure_reason = Some(cause.reason.clone());
                    result.failed_resource = cause.resource.clone();
                    result.warnings.push(timed_out);
                }
                None => result.failure_reason = Some(timed_out),
            }
            on_event(MonitorEvent::Finished(Outcome::TimedOut));
            return Ok(result);
        }
        let mut delay = delay.min(follow.timeout - elapsed);
        if let Some(start_timeout) = follow.start_timeout.filter(|_| !state.tracker.is_started()) {
            delay = delay.min(start_timeout.saturating_sub(elapsed));
        }
        if let Some(c) = &cancelling {
            // The rollback ends in seconds, or not within the grace: read it every second.
            delay = delay
                .min(CANCELLED_POLL)
                .min(c.until.saturating_duration_since(Instant::now()));
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancel.cancelled(), if cancelling.is_none() => {
                if let WhenCancelled::CancelUpdate { token, grace } = when_cancelled
                    && let Some(c) = state.cancel_update(client, token, grace, on_event).await
                {
                    cancelling = Some(c);
                    continue;
                }
                let mut result = state.finish(client, began, on_event).await;
                result.outcome = Outcome::Cancelled;
                result.fail_step = true;
                result.failure_reason = Some(format!(
                    "the step was cancelled while stack {} was {}; the operation goes on in CloudFormation",
                    follow.stack,
                    result.stack_status.as_deref().unwrap_or("in progress"),
                ));
                if let Some((status, why)) = state.not_cancelled.clone() {
                    result.cancel = Some(CancelReport {
                        status,
                        requested: false,
                        not_cancelled: Some(why),
                        rolled_back_in: None,
                    });
                }
                on_event(MonitorEvent::Finished(Outcome::Cancelled));
                return Ok(result);
            }
        }
    }
}

/// How often the rollback of a cancelled update is read while the runner's grace runs.
const CANCELLED_POLL: Duration = Duration::from_secs(1);

/// CancelUpdateStack was accepted: the rollback is followed until `until`.
struct Cancelling {
    status: String,
    at: Instant,
    until: Instant,
}

impl Cancelling {
    /// The result of a cancelled step whose update we cancelled: `settled` when the chain
    /// reached its end (the rollback's `UPDATE_ROLLBACK_COMPLETE`, or whatever it ended in).
    fn ended(&self, mut result: StackResult, settled: bool) -> StackResult {
        result.outcome = Outcome::Cancelled;
        result.fail_step = true;
        result.cancel = Some(CancelReport {
            status: self.status.clone(),
            requested: true,
            not_cancelled: None,
            rolled_back_in: settled.then(|| self.at.elapsed()),
        });
        result
    }
}

/// The cursors and the tracker of one followed operation.
struct FollowState {
    stack: String,
    tracker: Tracker,
    root: Cursor,
    nested: HashMap<String, Cursor>,
    /// `on-cancel: cancel-update` found nothing to cancel: the status then and why.
    not_cancelled: Option<(String, String)>,
}

/// Why an operation in `status` cannot be cancelled by CancelUpdateStack, which "can cancel
/// only stacks that are in the UPDATE_IN_PROGRESS state"
/// (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CancelUpdateStack.html).
/// None: it can. Pure.
pub(crate) fn cannot_cancel(status: &str) -> Option<String> {
    match status {
        "UPDATE_IN_PROGRESS" => None,
        "CREATE_IN_PROGRESS" | "REVIEW_IN_PROGRESS" => Some(
            "a stack being created cannot be cancelled (CancelUpdateStack only applies to an update in progress): \
             the create goes on, and if it fails CloudFormation rolls it back"
                .into(),
        ),
        "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS" => Some(
            "the update had already succeeded and was cleaning up: there is nothing left to cancel".into(),
        ),
        s if status::is_rollback(s) => {
            Some("the stack was already rolling back: CloudFormation finishes the rollback".into())
        }
        s if status::is_in_progress(s) => Some(format!(
            "CancelUpdateStack only applies to UPDATE_IN_PROGRESS, and the stack was {s}: the operation goes on"
        )),
        s => Some(format!("the operation had already ended ({s})")),
    }
}

impl FollowState {
    fn new(follow: &Follow) -> Self {
        let root = match &follow.start {
            Start::Current => Cursor::current_operation(),
            Start::After(baseline) => Cursor::after(baseline),
        };
        Self {
            stack: follow.stack.clone(),
            tracker: Tracker::new(&follow.stack, follow.matcher.clone(), follow.total_hint),
            root,
            nested: HashMap::new(),
            not_cancelled: None,
        }
    }

    /// The step was cancelled: CancelUpdateStack when the stack is `UPDATE_IN_PROGRESS`.
    /// `Some` when it was accepted (the rollback is then followed within `grace`); `None`
    /// when the operation goes on (said through `on_event`, and in the result's report).
    async fn cancel_update<F: FnMut(MonitorEvent) + Send>(
        &mut self,
        client: &StackClient,
        token: &str,
        grace: &(dyn Fn() -> Duration + Send + Sync),
        on_event: &mut F,
    ) -> Option<Cancelling> {
        let stack_ref = self.tracker.root_id().unwrap_or(&self.stack).to_string();
        // Both calls within the runner's grace: a hung CloudFormation must not hold the step
        // past the kill.
        let deadline = tokio::time::Instant::now() + grace();
        let too_slow = |what: &str| format!("{what} did not answer within the runner's grace");
        // Read now, not from the last events: the operation may have moved on since.
        let status =
            match tokio::time::timeout_at(deadline, client.describe_stack(&stack_ref)).await {
                Ok(Ok(Some(info))) => info.status,
                Ok(Ok(None)) => "absent".to_string(),
                Ok(Err(e)) => {
                    self.not_cancelled(
                        "unknown".into(),
                        format!("its status could not be read ({e})"),
                        on_event,
                    );
                    return None;
                }
                Err(_) => {
                    self.not_cancelled("unknown".into(), too_slow("DescribeStacks"), on_event);
                    return None;
                }
            };
        if let Some(why) = cannot_cancel(&status) {
            self.not_cancelled(status, why, on_event);
            return None;
        }
        // Ours from the start: the rollback carries this token, not the update's.
        self.tracker.adopt_token(token);
        match tokio::time::timeout_at(deadline, client.cancel_update_stack(&stack_ref, token)).await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.not_cancelled(
                    status,
                    format!("CloudFormation refused CancelUpdateStack: {e}"),
                    on_event,
                );
                return None;
            }
            // It may have arrived: the rollback would then run, unfollowed; said so.
            Err(_) => {
                let why = format!(
                    "{}; it may still take effect: check the stack",
                    too_slow("CancelUpdateStack")
                );
                self.not_cancelled(status, why, on_event);
                return None;
            }
        }
        let at = Instant::now();
        let grace = grace();
        on_event(MonitorEvent::UpdateCancelRequested {
            status: status.clone(),
            grace,
        });
        Some(Cancelling {
            status,
            at,
            until: at + grace,
        })
    }

    fn not_cancelled<F: FnMut(MonitorEvent) + Send>(
        &mut self,
        status: String,
        why: String,
        on_event: &mut F,
    ) {
        self.not_cancelled = Some((status.clone(), why.clone()));
        on_event(MonitorEvent::UpdateNotCancelled { status, why });
    }

    /// One round of reads; true when something new was seen.
    async fn poll<F: FnMut(MonitorEvent) + Send>(
        &mut self,
        client: &StackClient,
        planner: &mut Planner,
        now: Duration,
        on_event: &mut F,
    ) -> Result<bool, ClientError> {
        // By id once known: a deleted stack's events are only found by its id.
        let root_ref = self.tracker.root_id().unwrap_or(&self.stack).to_string();
        let events = match client.read_new_events(&root_ref, &mut self.root).await {
            Ok(events) => events,
            // Not created yet: nothing to read.
            Err(e) if e.kind == ErrorKind::NotFound && !self.tracker.is_started() => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut news = !events.is_empty();
        if self.root.take_missed_start() {
            let updates = self.tracker.join_running(&events);
            self.emit(updates, on_event);
        } else {
            for event in &events {
                let updates = self.tracker.apply_root(event);
                self.emit(updates, on_event);
            }
        }
        for stack_id in planner.nested_due(&self.tracker, now) {
            let since = self
                .tracker
                .nested_since(&stack_id)
                .unwrap_or_else(Utc::now);
            let cursor = self
                .nested
                .entry(stack_id.clone())
                .or_insert_with(|| Cursor::since(since));
            let events = match client.read_new_events(&stack_id, cursor).await {
                Ok(events) => events,
                // Gone and never seen by its id, or never created (a nested resource can fail
                // before its stack exists): the parent's events are all there is to know.
                Err(e) if e.kind == ErrorKind::NotFound => {
                    self.tracker.nested_unreadable(&stack_id);
                    continue;
                }
                Err(e) => return Err(e),
            };
            news |= !events.is_empty();
            for event in &events {
                let updates = self.tracker.apply_nested(&stack_id, event);
                self.emit(updates, on_event);
            }
            self.tracker.nested_read(&stack_id);
        }
        Ok(news)
    }

    /// Hands each update to the caller as an event.
    fn emit<F: FnMut(MonitorEvent) + Send>(&self, updates: Vec<Update>, on_event: &mut F) {
        for update in updates {
            match update {
                Update::Started(e) => {
                    on_event(MonitorEvent::Started {
                        stack_id: e.stack_id.clone(),
                        status: e.status.clone(),
                        operation_id: e.operation_id.clone(),
                    });
                    // The start is an event of the operation too (history needs it).
                    on_event(MonitorEvent::Resource(e));
                }
                Update::Resource(e) => on_event(MonitorEvent::Resource(e)),
                Update::Progress { done, total } => {
                    on_event(MonitorEvent::Progress { done, total })
                }
                Update::RootCause(cause) => on_event(MonitorEvent::RootCause {
                    resource: cause.resource,
                    reason: cause.reason,
                }),
                Update::NestedStack(_) | Update::Finished(_) => {}
            }
        }
    }

    /// The result as it stands; reads the stack once more for its status and outputs.
    async fn finish<F: FnMut(MonitorEvent) + Send>(
        &self,
        client: &StackClient,
        began: Instant,
        on_event: &mut F,
    ) -> StackResult {
        let stack_ref = self.tracker.root_id().unwrap_or(&self.stack);
        // Best effort: the events already say how it ended; outputs are a bonus.
        let info = client.describe_stack(stack_ref).await.ok().flatten();
        let result = result_of(&self.tracker, info.as_ref(), began.elapsed());
        if self.tracker.is_finished() {
            on_event(MonitorEvent::Finished(result.outcome));
        }
        result
    }
}

/// The result of what `tracker` saw; `info` is the stack now, `elapsed` the time measured here
/// (used when the operation did not end).
/// Mode `monitor`: follows the operation running now, or waits up to `start_timeout` for
/// the next one to start (a deployer elsewhere: CodePipeline, another job) and follows it.
pub async fn monitor<F>(
    client: &StackClient,
    stack: &str,
    start_timeout: Duration,
    deploy_timeout: Duration,
    settings: &MonitorSettings,
    cancel: &CancellationToken,
    on_event: &mut F,
) -> Result<StackResult, StackError>
where
    F: FnMut(MonitorEvent) + Send,
{
    // Baseline first, status second: an operation starting between the two is either running
    // (followed from its start) or after the baseline (found as the next one). Never missed.
    let baseline = client.baseline(stack).await?;
    let info = client.describe_stack(stack).await?;
    let running = info
        .as_ref()
        .is_some_and(|i| status::is_in_progress(&i.status));
    let follow_spec = Follow {
        stack: stack.to_string(),
        start: if running {
            Start::Current
        } else {
            Start::After(baseline)
        },
        // No OperationId to pin: `LastOperations` names the newest operation, which is the
        // rollback when the stack is rolling back; reading back to the start finds the chain.
        matcher: Matcher::default(),
        total_hint: None,
        timeout: deploy_timeout.saturating_add(if running {
            Duration::ZERO
        } else {
            start_timeout
        }),
        start_timeout: (!running).then_some(start_timeout),
        expected_duration: None,
    };
    // Not ours to cancel: mode monitor follows someone else's operation.
    follow(
        client,
        follow_spec,
        settings,
        cancel,
        WhenCancelled::Leave,
        on_event,
    )
    .await
}

/// What ran on a stack since a baseline (mode `lock`: what the job's later steps deployed).
#[derive(Debug, Clone, PartialEq)]
pub struct Reconstruction {
    /// Every operation that ended, oldest first.
    pub operations: Vec<StackResult>,
    /// An operation still running now (its status in `stack_status`).
    pub running: Option<StackResult>,
    /// The stack now (None: it does not exist).
    pub stack_status: Option<String>,
}

/// Reads the operations that ran on `stack` since `baseline` (taken when the lock was
/// acquired), nested stacks included, with their outcomes, root causes and durations.
pub async fn reconstruct_since(
    client: &StackClient,
    stack: &str,
    baseline: &Baseline,
) -> Result<Reconstruction, StackError> {
    let info = client.describe_stack(stack).await?;
    let mut cursor = Cursor::after(baseline);
    let events = match client.read_new_events(stack, &mut cursor).await {
        Ok(events) => events,
        Err(e) if e.kind == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut trackers: Vec<Tracker> = Vec::new();
    let mut current = Tracker::new(stack, Matcher::default(), None);
    for event in &events {
        current.apply_root(event);
        if current.is_finished() {
            trackers.push(std::mem::replace(
                &mut current,
                Tracker::new(stack, Matcher::default(), None),
            ));
        }
    }
    let running = current.is_started().then_some(current);
    let mut operations = Vec::new();
    for mut tracker in trackers {
        read_nested(client, &mut tracker).await?;
        operations.push(result_of(&tracker, info.as_ref(), Duration::ZERO));
    }
    let running = match running {
        Some(mut tracker) => {
            read_nested(client, &mut tracker).await?;
            let mut result = result_of(&tracker, info.as_ref(), Duration::ZERO);
            result.stack_status = info.as_ref().map(|i| i.status.clone());
            Some(result)
        }
        None => None,
    };
    // Outputs are the stack's now: only the last operation gets them.
    let last = operations.len();
    for (i, op) in operations.iter_mut().enumerate() {
        if i + 1 != last || running.is_some() {
            op.outputs.clear();
        }
    }
    Ok(Reconstruction {
        operations,
        running,
        stack_status: info.map(|i| i.status),
    })
}

async fn read_nested(client: &StackClient, tracker: &mut Tracker) -> Result<(), StackError> {
    // Nested stacks can nest further: read until no new one appears (bounded).
    let mut cursors: HashMap<String, Cursor> = HashMap::new();
    for _ in 0..8 {
        let pending: Vec<String> = tracker
            .nested_to_poll()
            .into_iter()
            .filter(|id| !cursors.contains_key(id))
            .collect();
        if pending.is_empty() {
            break;
        }
        for id in pending {
            let since = tracker.nested_since(&id).unwrap_or_else(Utc::now);
            let cursor = cursors
                .entry(id.clone())
                .or_insert_with(|| Cursor::since(since));
            let events = match client.read_new_events(&id, cursor).await {
                Ok(events) => events,
                Err(e) if e.kind == ErrorKind::NotFound => {
                    tracker.nested_unreadable(&id);
                    Vec::new()
                }
                Err(e) => return Err(e.into()),
            };
            for event in &events {
                tracker.apply_nested(&id, event);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_update_in_progress_can_be_cancelled_and_every_other_status_says_why() {
        assert_eq!(cannot_cancel("UPDATE_IN_PROGRESS"), None);
        let create = cannot_cancel("CREATE_IN_PROGRESS").unwrap_or_default();
        assert!(create.contains("the create goes on"), "{create}");
        let cleanup = cannot_cancel("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS").unwrap_or_default();
        assert!(cleanup.contains("already succeeded"), "{cleanup}");
        let rolling = cannot_cancel("UPDATE_ROLLBACK_IN_PROGRESS").unwrap_or_default();
        assert!(rolling.contains("already rolling back"), "{rolling}");
        let ended = cannot_cancel("UPDATE_COMPLETE").unwrap_or_default();
        assert!(ended.contains("already ended"), "{ended}");
        let deleting = cannot_cancel("DELETE_IN_PROGRESS").unwrap_or_default();
        assert!(deleting.contains("DELETE_IN_PROGRESS"), "{deleting}");
    }

    #[test]
    fn supervisor_allows_the_budget_within_the_window_then_gives_up() {
        let mut s = Supervisor {
            failures: VecDeque::new(),
            budget: 5,
            window: Duration::from_secs(300),
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(30),
            interrupted_at: None,
        };
        let t0 = Instant::now();
        let delays: Vec<_> = (0..5)
            .filter_map(|i| s.failed(t0 + Duration::from_secs(i)))
            .collect();
        assert_eq!(
            delays
                .iter()
                .map(|(n, d)| (*n, d.as_secs()))
                .collect::<Vec<_>>(),
            [(1, 2), (2, 4), (3, 8), (4, 16), (5, 30)]
        );
        assert_eq!(
            s.failed(t0 + Duration::from_secs(10)),
            None,
            "the sixth failure within 5 minutes"
        );
        // Once the early failures left the window, restarts are allowed again.
        assert!(s.failed(t0 + Duration::from_secs(302)).is_some());
    }
}
