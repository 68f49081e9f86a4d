//! The background queue between the deployment and Slack. The deployment never waits on Slack.
//!
//! The step calls [`Notifier::card`] and [`Notifier::thread`], which only render the message
//! and put it in a shared state (a brief std mutex, no await); a tokio task sends:
//! - bot mode: the card is posted once (chat.postMessage; its channel ID and ts are kept) and
//!   then updated in place (chat.update at most once per `update_interval`); a card state that
//!   is replaced before it was delivered is dropped ("superseded": the card shows the present,
//!   not a backlog). Thread replies go out in order, once the card exists.
//! - webhook mode: webhooks can neither update nor thread, so only state changes (queued,
//!   started, finished) are posted, and thread events are not sent.
//! - failures: retried with exponential backoff (`backoff_base` × 1, 2, 4, 8, …; 5 s by
//!   default, so 5, 10, 20, 40 s) for at most `max_attempts` attempts, waiting at least what a
//!   `Retry-After` asked (for every send: Slack's limits are per method and workspace).
//!   Errors that retrying cannot fix stop sending (credentials, channel: warned once); a
//!   refused message is resent as plain text; a card that can no longer be updated is posted
//!   anew once.
//! - [`Notifier::flush`] at the end waits a bounded time; whatever is still undelivered, or
//!   was given up, becomes a dead letter (registry table, else the job summary only), and the
//!   [`Delivery`] counts delivered + superseded + dead-lettered = accepted: nothing is lost
//!   without being counted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::blocks::Message;
use super::card::{Card, PhaseKind, ThreadEvent};
use super::client::{ErrorClass, SendError, SlackApi, Webhook};
use super::deadletter::{self, DeadLetter, DeadTarget, Letter, LetterKind};
use crate::action::log;
use crate::config::{Config, SlackTarget};
use crate::registry::Registry;

/// Timings of the queue. The defaults are the production values; tests shrink them.
#[derive(Debug, Clone)]
pub struct NotifierOptions {
    /// First retry delay; doubles with each failed attempt (5, 10, 20, 40, 80 s).
    pub backoff_base: Duration,
    /// Attempts per message before it is given up (and dead-lettered).
    pub max_attempts: u32,
    /// Least time between two chat.update calls (Tier 3: about 50 per minute; a card that
    /// changes every second would also be hard to read).
    pub update_interval: Duration,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Upper bound of the time [`Notifier::flush`] spends writing the dead letter.
    pub dead_letter_timeout: Duration,
}

impl Default for NotifierOptions {
    fn default() -> Self {
        NotifierOptions {
            backoff_base: Duration::from_secs(5),
            max_attempts: 5,
            update_interval: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            dead_letter_timeout: Duration::from_secs(10),
        }
    }
}

/// Where messages go.
#[derive(Debug, Clone)]
pub enum Destination {
    Bot { api: SlackApi, channel: String },
    Webhook(Webhook),
}

impl Destination {
    /// From the action's inputs; `None` when Slack is not configured.
    pub fn from_target(
        target: &SlackTarget,
        api_url: &str,
        request_timeout: Duration,
    ) -> Result<Option<Destination>, SendError> {
        Ok(match target {
            SlackTarget::None => None,
            SlackTarget::Bot { token, channel } => Some(Destination::Bot {
                api: SlackApi::new(api_url, token, request_timeout)?,
                channel: channel.clone(),
            }),
            SlackTarget::Webhook { url } => {
                Some(Destination::Webhook(Webhook::new(url, request_timeout)?))
            }
        })
    }
}

/// The posted card: channel ID and message ts. Survives from the main to the post step as
/// `channel/ts` (see [`CardRef::encode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRef {
    pub channel: String,
    pub ts: String,
}

impl CardRef {
    pub fn encode(&self) -> String {
        format!("{}/{}", self.channel, self.ts)
    }
    pub fn decode(text: &str) -> Option<CardRef> {
        let (channel, ts) = text.trim().split_once('/')?;
        let valid_ts = !ts.is_empty() && ts.chars().all(|c| c.is_ascii_digit() || c == '.');
        (!channel.is_empty() && valid_ts).then(|| CardRef {
            channel: channel.to_string(),
            ts: ts.to_string(),
        })
    }
}

/// Where the dead letter of a flush went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterStore {
    /// Nothing was undelivered.
    NotNeeded,
    /// Stored in the registry table under this lock key and sort key.
    Registry {
        table: String,
        lock_key: String,
        sk: String,
    },
    /// Only in this report (the job summary): the registry was not in use or failed too.
    SummaryOnly { why: String },
}

/// What [`Notifier::flush`] found. `accepted == delivered + superseded + dead_lettered`.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// False when Slack is not configured (everything else is zero).
    pub enabled: bool,
    /// Messages accepted by `card`/`thread` (webhook mode: state changes only).
    pub accepted: u64,
    /// Delivered (each card post or update counts).
    pub delivered: u64,
    /// Card states replaced by a newer one before they were delivered.
    pub superseded: u64,
    /// Undelivered: in [`Delivery::letters`].
    pub dead_lettered: u64,
    pub letters: Vec<Letter>,
    pub store: DeadLetterStore,
    /// Why sending stopped, when an error retrying cannot fix occurred (no secrets).
    pub stopped_by: Option<String>,
    pub card: Option<CardRef>,
    /// How long the flush took.
    pub took: Duration,
}

impl Delivery {
    fn disabled() -> Delivery {
        Delivery {
            enabled: false,
            accepted: 0,
            delivered: 0,
            superseded: 0,
            dead_lettered: 0,
            letters: Vec::new(),
            store: DeadLetterStore::NotNeeded,
            stopped_by: None,
            card: None,
            took: Duration::ZERO,
        }
    }

    /// True when every accepted message is accounted for.
    pub fn balanced(&self) -> bool {
        self.accepted == self.delivered + self.superseded + self.dead_lettered
    }

    /// The warning annotation, when something was not delivered.
    pub fn warning(&self) -> Option<String> {
        if self.dead_lettered == 0 {
            return None;
        }
        let why = self
            .letters
            .last()
            .map(|l| l.error.clone())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "Slack did not answer in time".into());
        let mut text = format!(
            "{} Slack message(s) could not be delivered ({why}). ",
            self.dead_lettered
        );
        match &self.store {
            DeadLetterStore::Registry { table, .. } => text.push_str(&format!(
                "They are kept as a dead letter in table {table}: resend with `deploy-coordinator slack retry --table {table} --token-env NAME` (or --webhook-env NAME). The job summary has their text."
            )),
            DeadLetterStore::SummaryOnly { why } => text.push_str(&format!(
                "They could not be stored in the registry ({why}): the job summary has their text."
            )),
            DeadLetterStore::NotNeeded => {}
        }
        Some(log::redact(&text))
    }

    /// A Markdown section for the job summary: counts and, when needed, the undelivered
    /// messages' text (in a fence, so nothing in them is rendered).
    pub fn summary_markdown(&self) -> String {
        if !self.enabled {
            return String::new();
        }
        let mut out = format!(
            "### Slack\n\n{} message(s) delivered, {} card update(s) replaced by newer ones, {} not delivered.\n",
            self.delivered, self.superseded, self.dead_lettered
        );
        if let Some(why) = &self.stopped_by {
            out.push_str(&format!("\nSending stopped: {}\n", one_line(why)));
        }
        if self.dead_lettered > 0 {
            if let Some(w) = self.warning() {
                out.push_str(&format!("\n{}\n", one_line(&w)));
            }
            out.push_str("\n<details><summary>Undelivered messages</summary>\n\n~~~~text\n");
            for l in &self.letters {
                let text = l.message.text.replace("~~~~", "~ ~ ~ ~");
                out.push_str(&format!("[{}] {}\n", l.kind.as_str(), text));
            }
            out.push_str("~~~~\n\n</details>\n");
        }
        log::redact(&out)
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// A message waiting to be sent.
#[derive(Debug, Clone)]
struct Pending {
    seq: u64,
    kind: LetterKind,
    message: Message,
    attempts: u32,
    next_at: Instant,
    last_error: String,
    /// Slack refused the blocks: send the text alone.
    text_only: bool,
}

impl Pending {
    fn to_send(&self) -> Message {
        if self.text_only {
            self.message.text_only()
        } else {
            self.message.clone()
        }
    }
}

#[derive(Debug, Default)]
struct State {
    seq: u64,
    /// The newest card state not yet delivered (bot mode).
    card: Option<Pending>,
    /// The card state being sent right now, if any.
    card_in_flight: Option<u64>,
    /// The newest card state that was given up (a newer state replaces it).
    card_failed: Option<Letter>,
    posted: Option<CardRef>,
    /// False after Slack said the card cannot be updated: the next state is posted anew.
    updatable: bool,
    reposts_left: u32,
    /// Thread replies (bot mode) or state-change posts (webhook mode), in order.
    queue: VecDeque<Pending>,
    /// Given up, in order.
    failed: Vec<Letter>,
    stopped_by: Option<String>,
    accepted: u64,
    delivered: u64,
    superseded: u64,
    last_update: Option<Instant>,
    last_kind: Option<PhaseKind>,
    /// Retry-After: nothing is sent before this.
    paused_until: Option<Instant>,
    flush_deadline: Option<Instant>,
    closed: bool,
    warned: Vec<String>,
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
    card_ref: watch::Sender<Option<CardRef>>,
    webhook: bool,
    channel: Option<String>,
    lock_key: String,
    correlation_id: String,
    options: NotifierOptions,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written in a way that
        // matters more than losing Slack entirely: keep going with what is there.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The handle the steps hold. Cheap methods; `Send + Sync`.
pub struct Notifier {
    inner: Option<Arc<Shared>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Notifier {
    /// A notifier that sends nothing (Slack not configured).
    pub fn disabled() -> Notifier {
        Notifier {
            inner: None,
            task: Mutex::new(None),
        }
    }

    /// From the action's inputs with the production timings; `resume` is the card the main
    /// step posted (post step). Must be called inside a tokio runtime.
    pub fn from_config(config: &Config, correlation_id: &str, resume: Option<CardRef>) -> Notifier {
        Self::from_config_with(config, correlation_id, resume, NotifierOptions::default())
    }

    pub fn from_config_with(
        config: &Config,
        correlation_id: &str,
        resume: Option<CardRef>,
        options: NotifierOptions,
    ) -> Notifier {
        match Destination::from_target(
            &config.slack,
            &config.slack_api_url,
            options.request_timeout,
        ) {
            Ok(Some(dest)) => {
                Notifier::start(dest, &config.lock_key, correlation_id, resume, options)
            }
            Ok(None) => Notifier::disabled(),
            Err(e) => {
                log::warning(
                    "Slack disabled",
                    &format!("cannot set up the Slack client: {e}"),
                );
                Notifier::disabled()
            }
        }
    }

    /// Starts the sending task. `lock_key` is the dead letters' partition.
    pub fn start(
        destination: Destination,
        lock_key: &str,
        correlation_id: &str,
        resume: Option<CardRef>,
        options: NotifierOptions,
    ) -> Notifier {
        let (webhook, channel) = match &destination {
            Destination::Bot { channel, .. } => (false, Some(channel.clone())),
            Destination::Webhook(_) => (true, None),
        };
        let state = State {
            posted: resume.clone(),
            updatable: true,
            reposts_left: 1,
            ..State::default()
        };
        let (card_ref, _) = watch::channel(resume);
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            wake: Notify::new(),
            card_ref,
            webhook,
            channel,
            lock_key: lock_key.to_string(),
            correlation_id: correlation_id.to_string(),
            options,
        });
        let task = tokio::spawn(run(shared.clone(), destination));
        Notifier {
            inner: Some(shared),
            task: Mutex::new(Some(task)),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The deployment card's new state. Bot mode: replaces any undelivered older state.
    /// Webhook mode: posted only when the phase kind changes (queued, started, finished).
    pub fn card(&self, card: &Card) {
        let Some(shared) = &self.inner else { return };
        let message = card.render();
        let now = Instant::now();
        {
            let mut st = shared.lock();
            if st.closed {
                return;
            }
            st.seq += 1;
            let seq = st.seq;
            if shared.webhook {
                let kind = card.phase.kind();
                if st.last_kind == Some(kind) {
                    return;
                }
                st.last_kind = Some(kind);
                st.accepted += 1;
                st.queue
                    .push_back(pending(seq, LetterKind::Webhook, message, now));
            } else {
                st.accepted += 1;
                let mut new = pending(seq, LetterKind::Card, message, now);
                if let Some(old) = st.card.take() {
                    // Keep the backoff schedule: a newer state must not hammer a Slack that is
                    // failing.
                    new.next_at = old.next_at;
                    new.attempts = old.attempts;
                    new.last_error = old.last_error;
                    if st.card_in_flight != Some(old.seq) {
                        st.superseded += 1;
                    }
                } else if st.card_failed.take().is_some() {
                    st.superseded += 1;
                }
                st.card = Some(new);
            }
        }
        shared.wake.notify_one();
    }

    /// A reply in the card's thread (bot mode). Webhook mode cannot thread: ignored.
    pub fn thread(&self, event: &ThreadEvent) {
        let Some(shared) = &self.inner else { return };
        if shared.webhook {
            return;
        }
        let message = event.render(&shared.correlation_id);
        {
            let mut st = shared.lock();
            if st.closed {
                return;
            }
            st.seq += 1;
            let seq = st.seq;
            st.accepted += 1;
            st.queue
                .push_back(pending(seq, LetterKind::Thread, message, Instant::now()));
        }
        shared.wake.notify_one();
    }

    /// The card's channel ID and ts, once Slack has answered (the `slack-ts` output).
    pub fn card_ref(&self) -> Option<CardRef> {
        self.inner
            .as_ref()
            .and_then(|s| s.card_ref.borrow().clone())
    }

    /// Waits up to `timeout` for the card to be posted.
    pub async fn wait_card_ref(&self, timeout: Duration) -> Option<CardRef> {
        let shared = self.inner.as_ref()?;
        let mut rx = shared.card_ref.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(v)) => v.clone(),
            _ => self.card_ref(),
        }
    }

    /// Sends what it can within `within`, then stops: everything undelivered becomes a dead
    /// letter in `registry` (under this notifier's lock key), or, without a registry or if
    /// the write fails, only in the report. Writing the dead letter takes at most
    /// `dead_letter_timeout` more. Prints a warning annotation when something was not
    /// delivered. Later calls to `card`/`thread` are ignored.
    pub async fn flush(&self, within: Duration, registry: Option<&Registry>) -> Delivery {
        let Some(shared) = &self.inner else {
            return Delivery::disabled();
        };
        let started = Instant::now();
        let deadline = started + within;
        shared.lock().flush_deadline = Some(deadline);
        shared.wake.notify_one();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut task) = task
            && tokio::time::timeout_at(deadline, &mut task).await.is_err()
        {
            // A request still in flight at the deadline: its message stays pending and is
            // dead-lettered (it may have reached Slack; a duplicate beats a loss).
            task.abort();
            let _ = task.await;
        }
        let (letters, mut report) = {
            let mut st = shared.lock();
            st.closed = true;
            collect(shared, &mut st)
        };
        report.store = if letters.is_empty() {
            DeadLetterStore::NotNeeded
        } else {
            let target = match (&shared.channel, &report.card) {
                (None, _) => DeadTarget::Webhook,
                (Some(_), Some(card)) => DeadTarget::Bot {
                    channel: card.channel.clone(),
                },
                (Some(channel), None) => DeadTarget::Bot {
                    channel: channel.clone(),
                },
            };
            match registry {
                None => DeadLetterStore::SummaryOnly {
                    why: "the registry table is not in use (CloudFormation-only coordination)"
                        .into(),
                },
                Some(reg) => {
                    let dl = DeadLetter::new(
                        reg,
                        &shared.lock_key,
                        &shared.correlation_id,
                        target,
                        letters.clone(),
                    );
                    match tokio::time::timeout(
                        shared.options.dead_letter_timeout,
                        deadletter::store(reg, &dl),
                    )
                    .await
                    {
                        Ok(Ok(())) => DeadLetterStore::Registry {
                            table: reg.table().to_string(),
                            lock_key: dl.lock_key.clone(),
                            sk: dl.sk.clone(),
                        },
                        Ok(Err(e)) => DeadLetterStore::SummaryOnly {
                            why: log::redact(&e.to_string()),
                        },
                        Err(_) => DeadLetterStore::SummaryOnly {
                            why: "writing the dead letter timed out".into(),
                        },
                    }
                }
            }
        };
        report.letters = letters;
        report.took = started.elapsed();
        if let Some(w) = report.warning() {
            log::warning("Slack messages not delivered", &w);
        }
        report
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

fn pending(seq: u64, kind: LetterKind, message: Message, now: Instant) -> Pending {
    Pending {
        seq,
        kind,
        message,
        attempts: 0,
        next_at: now,
        last_error: String::new(),
        text_only: false,
    }
}

/// Takes everything undelivered out of the state, in the order it should be resent.
fn collect(shared: &Shared, st: &mut State) -> (Vec<Letter>, Delivery) {
    let parent = st.posted.as_ref().map(|c| c.ts.clone());
    let mut letters = Vec::new();
    let undelivered = |p: Pending, ts: Option<String>| Letter {
        kind: p.kind,
        message: if p.text_only {
            p.message.text_only()
        } else {
            p.message
        },
        ts,
        error: if p.last_error.is_empty() {
            "not sent before the end of the step".into()
        } else {
            p.last_error
        },
    };
    if let Some(card) = st.card.take() {
        let ts = if st.updatable { parent.clone() } else { None };
        letters.push(undelivered(card, ts));
    } else if let Some(card) = st.card_failed.take() {
        letters.push(card);
    }
    letters.append(&mut st.failed);
    while let Some(p) = st.queue.pop_front() {
        let ts = if shared.webhook { None } else { parent.clone() };
        letters.push(undelivered(p, ts));
    }
    let report = Delivery {
        enabled: true,
        accepted: st.accepted,
        delivered: st.delivered,
        superseded: st.superseded,
        dead_lettered: letters.len() as u64,
        letters: Vec::new(),
        store: DeadLetterStore::NotNeeded,
        stopped_by: st.stopped_by.clone(),
        card: st.posted.clone(),
        took: Duration::ZERO,
    };
    (letters, report)
}

/// One send decided by [`next`].
struct Job {
    seq: u64,
    what: JobKind,
    message: Message,
}

enum JobKind {
    /// Post the card (None) or update it.
    Card(Option<CardRef>),
    /// A thread reply to the card.
    Thread(CardRef),
    Webhook,
}

enum Next {
    Send(Job),
    Wait(Option<Instant>),
    Done,
}

fn next(shared: &Shared, st: &mut State, now: Instant) -> Next {
    let flushing = st.flush_deadline;
    if flushing.is_some_and(|d| now >= d) {
        return Next::Done;
    }
    if st.stopped_by.is_some() {
        return if flushing.is_some() {
            Next::Done
        } else {
            Next::Wait(None)
        };
    }
    let pause = st.paused_until.unwrap_or(now);
    let mut wake: Option<Instant> = None;
    let mut consider = |at: Instant| {
        wake = Some(wake.map_or(at, |w: Instant| w.min(at)));
    };

    if let Some(card) = &st.card {
        let update = st.posted.clone().filter(|_| st.updatable);
        let mut due = card.next_at.max(pause);
        if update.is_some()
            && let Some(last) = st.last_update
        {
            due = due.max(last + shared.options.update_interval);
        }
        if due <= now {
            st.card_in_flight = Some(card.seq);
            return Next::Send(Job {
                seq: card.seq,
                what: JobKind::Card(update),
                message: card.to_send(),
            });
        }
        consider(due);
    }
    if let Some(front) = st.queue.front() {
        let parent = st.posted.clone();
        let sendable = shared.webhook || parent.is_some();
        if sendable {
            let due = front.next_at.max(pause);
            if due <= now {
                let what = match parent {
                    Some(p) if !shared.webhook => JobKind::Thread(p),
                    _ => JobKind::Webhook,
                };
                return Next::Send(Job {
                    seq: front.seq,
                    what,
                    message: front.to_send(),
                });
            }
            consider(due);
        }
    }
    match (wake, flushing) {
        // Nothing that can still be sent: a flush is over.
        (None, Some(_)) => Next::Done,
        (w, Some(d)) => Next::Wait(Some(w.map_or(d, |w| w.min(d)))),
        (w, None) => Next::Wait(w),
    }
}

async fn send(dest: &Destination, job: &Job) -> Result<Option<CardRef>, SendError> {
    match (dest, &job.what) {
        (Destination::Bot { api, channel }, JobKind::Card(None)) => api
            .post_message(channel, &job.message, None)
            .await
            .map(|p| {
                Some(CardRef {
                    channel: p.channel,
                    ts: p.ts,
                })
            }),
        (Destination::Bot { api, .. }, JobKind::Card(Some(card))) => api
            .update(&card.channel, &card.ts, &job.message)
            .await
            .map(|_| None),
        (Destination::Bot { api, .. }, JobKind::Thread(card)) => api
            .post_message(&card.channel, &job.message, Some(&card.ts))
            .await
            .map(|_| None),
        (Destination::Webhook(hook), _) => hook.post(&job.message).await.map(|()| None),
        (Destination::Bot { api, channel }, JobKind::Webhook) => api
            .post_message(channel, &job.message, None)
            .await
            .map(|_| None),
    }
}

fn warn_once(st: &mut State, key: &str, text: &str) {
    if st.warned.iter().any(|k| k == key) {
        return;
    }
    st.warned.push(key.to_string());
    log::warning("Slack", text);
}

fn backoff(options: &NotifierOptions, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(16));
    options.backoff_base.saturating_mul(factor)
}

/// Records the outcome of a send.
fn apply(shared: &Shared, st: &mut State, job: Job, result: Result<Option<CardRef>, SendError>) {
    let now = Instant::now();
    let options = &shared.options;
    let is_card = matches!(job.what, JobKind::Card(_));
    if is_card {
        st.card_in_flight = None;
    }
    let current = if is_card {
        st.card.as_ref().map(|c| c.seq) == Some(job.seq)
    } else {
        st.queue.front().map(|c| c.seq) == Some(job.seq)
    };
    let error = match result {
        Ok(posted) => {
            st.delivered += 1;
            if is_card {
                st.last_update = Some(now);
                if let Some(card) = posted {
                    st.posted = Some(card.clone());
                    st.updatable = true;
                    shared.card_ref.send_replace(Some(card));
                }
                if current {
                    st.card = None;
                }
            } else if current {
                st.queue.pop_front();
            }
            return;
        }
        Err(e) => e,
    };
    let text = log::redact(&error.to_string());
    tracing::debug!("Slack send failed: {text}");
    if let Some(wait) = error.retry_after() {
        st.paused_until = Some(now + wait);
    }
    if is_card && !current {
        // A newer state replaced this one while it was in flight; the newer one is sent next.
        st.superseded += 1;
        if let Some(card) = st.card.as_mut() {
            card.last_error = text.clone();
            if error.class() == ErrorClass::Retryable {
                // The newer state must not hammer a failing Slack: it waits its backoff.
                card.attempts += 1;
                card.next_at = card.next_at.max(now + backoff(options, card.attempts));
            }
        }
    }
    let class = error.class();
    let give_up = |st: &mut State, text: &str| {
        let p = if is_card {
            st.card.take()
        } else {
            st.queue.pop_front()
        };
        if let Some(mut p) = p {
            p.last_error = text.to_string();
            let ts = if shared.webhook {
                None
            } else if is_card {
                st.posted.clone().filter(|_| st.updatable).map(|c| c.ts)
            } else {
                st.posted.clone().map(|c| c.ts)
            };
            let letter = Letter {
                kind: p.kind,
                message: p.to_send(),
                ts,
                error: p.last_error,
            };
            tracing::warn!(
                "Slack {} message given up after {} attempt(s): {text}",
                letter.kind.as_str(),
                p.attempts
            );
            if is_card {
                st.card_failed = Some(letter);
            } else {
                st.failed.push(letter);
            }
        }
    };
    match class {
        ErrorClass::Fatal => {
            warn_once(
                st,
                "fatal",
                &format!(
                    "{text}. No more Slack messages are sent by this step; what is undelivered is kept as a dead letter (`deploy-coordinator slack retry`). Check the token's scopes (chat:write), that the bot is in the channel, or the webhook."
                ),
            );
            st.stopped_by = Some(text);
        }
        _ if !current => {}
        ErrorClass::Retryable => {
            let attempts = {
                let p = if is_card {
                    st.card.as_mut()
                } else {
                    st.queue.front_mut()
                };
                match p {
                    Some(p) => {
                        p.attempts += 1;
                        p.last_error = text.clone();
                        let wait = backoff(options, p.attempts)
                            .max(error.retry_after().unwrap_or(Duration::ZERO));
                        p.next_at = now + wait;
                        p.attempts
                    }
                    None => 0,
                }
            };
            if attempts >= options.max_attempts {
                give_up(st, &text);
            }
        }
        ErrorClass::BadMessage => {
            let p = if is_card {
                st.card.as_mut()
            } else {
                st.queue.front_mut()
            };
            match p {
                Some(p) if !p.text_only => {
                    p.text_only = true;
                    p.last_error = text.clone();
                    warn_once(
                        st,
                        "bad-message",
                        &format!("{text}: the message is sent again as plain text"),
                    );
                }
                _ => give_up(st, &text),
            }
        }
        ErrorClass::CannotUpdate => {
            if is_card && st.reposts_left > 0 {
                st.reposts_left -= 1;
                st.updatable = false;
                warn_once(
                    st,
                    "cannot-update",
                    &format!("{text}: the deployment card is posted again as a new message"),
                );
            } else {
                give_up(st, &text);
            }
        }
    }
}

async fn run(shared: Arc<Shared>, dest: Destination) {
    loop {
        let decision = {
            let mut st = shared.lock();
            next(&shared, &mut st, Instant::now())
        };
        match decision {
            Next::Done => return,
            Next::Wait(until) => match until {
                Some(at) => {
                    tokio::select! {
                        () = shared.wake.notified() => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => shared.wake.notified().await,
            },
            Next::Send(job) => {
                let result = send(&dest, &job).await;
                let mut st = shared.lock();
                apply(&shared, &mut st, job, result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_refs_survive_the_state_file() {
        let c = CardRef {
            channel: "C0123".into(),
            ts: "1700000000.000100".into(),
        };
        assert_eq!(CardRef::decode(&c.encode()), Some(c));
        assert_eq!(CardRef::decode("C1/"), None);
        assert_eq!(CardRef::decode("nots"), None);
        assert_eq!(CardRef::decode("C1/1.2; rm"), None);
    }

    #[test]
    fn the_handle_can_be_shared_between_tasks() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Notifier>();
    }

    #[test]
    fn backoff_doubles_from_the_base() {
        let o = NotifierOptions::default();
        let waits: Vec<u64> = (1..=5).map(|a| backoff(&o, a).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80]);
    }

    #[test]
    fn the_report_counts_and_explains() {
        let mut r = Delivery::disabled();
        assert_eq!(r.summary_markdown(), "");
        r.enabled = true;
        r.accepted = 5;
        r.delivered = 2;
        r.superseded = 1;
        r.dead_lettered = 2;
        r.letters = vec![Letter {
            kind: LetterKind::Thread,
            message: Message {
                text: "boom ~~~~ <x>".into(),
                blocks: vec![],
            },
            ts: None,
            error: "Slack answered HTTP 500".into(),
        }];
        r.store = DeadLetterStore::SummaryOnly {
            why: "registry down".into(),
        };
        assert!(r.balanced());
        let md = r.summary_markdown();
        assert!(md.contains("2 message(s) delivered, 1 card update(s) replaced"));
        assert!(md.contains("[thread] boom ~ ~ ~ ~ <x>"));
        assert!(md.contains("registry down"));
        assert!(r.warning().unwrap().contains("HTTP 500"));
    }
}
