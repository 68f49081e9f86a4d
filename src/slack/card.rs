//! The deployment card and its thread messages: what an on-call engineer reads in the channel.
//!
//! Pure rendering, no I/O. A [`Card`] describes one deployment at one moment (the card shows the
//! present: the notifier replaces it in place); [`ThreadEvent`]s are the notable things that
//! happened on the way, posted as replies. Every string that comes from outside (commit
//! messages, resource reasons, names, holder descriptions) is escaped here; our own links and
//! the configured mention are added after escaping, so untrusted `<!channel>` stays text.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::blocks::{self, Message};
use super::mrkdwn::{escape, first_line, link, mention, plain, url_encode};
use crate::duration::human;

/// What a failure says about the resource that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootCause {
    /// Logical resource ID.
    pub resource: String,
    pub resource_type: Option<String>,
    pub reason: String,
    /// Said instead of "Root cause: RESOURCE" when nothing failed: the step refused to execute
    /// (the deploy guard, a reviewed change set no longer executable).
    pub heading: Option<String>,
}

/// The run that holds the lock, as a waiter sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Holder {
    /// One line: repository, run, actor, commit (see [`Holder::from_info`]).
    pub summary: String,
    pub run_url: Option<String>,
    /// How long it has held the lock, when known.
    pub held_for: Option<Duration>,
}

impl Holder {
    /// From the lock record's holder info. The run URL is kept apart so it becomes a link.
    pub fn from_info(info: &crate::lock::HolderInfo) -> Holder {
        let mut summary = match (&info.repository, info.run_id) {
            (Some(repo), Some(id)) => format!("{repo} run {id}"),
            _ => format!("owner {}", info.owner),
        };
        if let Some(actor) = &info.actor {
            summary.push_str(&format!(" by {actor}"));
        }
        if let Some(stack) = &info.stack {
            summary.push_str(&format!(" (stack {stack})"));
        }
        Holder {
            summary,
            run_url: info.run_url.clone(),
            held_for: None,
        }
    }

    fn render(&self) -> String {
        let text = escape(&self.summary);
        let mut out = match &self.run_url {
            Some(url) => format!("{text} ({})", link(url, "run")),
            None => text,
        };
        if let Some(d) = self.held_for {
            out.push_str(&format!(", holding it for {}", human(d)));
        }
        out
    }
}

/// How a deployment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Nothing to change (empty change set).
    NoChanges,
    /// Failed; CloudFormation rolled back (the stack is usable at its previous state).
    RolledBack,
    Failed,
    TimedOut,
    Cancelled,
    /// Superseded by a newer commit of the same ref: left the queue without deploying.
    Skipped,
}

impl Outcome {
    fn emoji(self) -> &'static str {
        match self {
            Outcome::Succeeded => "✅",
            Outcome::NoChanges => "➖",
            Outcome::RolledBack => "↩️",
            Outcome::Failed => "❌",
            Outcome::TimedOut => "⏱️",
            Outcome::Cancelled => "🚫",
            Outcome::Skipped => "⏭️",
        }
    }
    fn verb(self) -> &'static str {
        match self {
            Outcome::Succeeded => "deployed",
            Outcome::NoChanges => "had no changes",
            Outcome::RolledBack => "failed and rolled back",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed out",
            Outcome::Cancelled => "was cancelled",
            Outcome::Skipped => "was skipped: a newer commit deploys instead",
        }
    }
    /// Outcomes someone has to look at: these get the configured mention.
    pub fn needs_attention(self) -> bool {
        matches!(
            self,
            Outcome::RolledBack | Outcome::Failed | Outcome::TimedOut
        )
    }
}

/// Where the deployment is.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Waiting in the lock's queue.
    Queued {
        /// 1 = next in line.
        position: u32,
        /// Waiters ahead (not counting the holder).
        ahead: u32,
        holder: Option<Holder>,
        /// Estimated wait until this run gets the lock.
        eta: Option<Duration>,
    },
    /// Waiting in the lock's queue behind an operator's deploy freeze.
    Frozen {
        freeze: crate::lock::Freeze,
        /// Our place in the queue, kept across the freeze.
        position: u32,
        /// The run that held the lock when it was frozen (it finishes first).
        holder: Option<Holder>,
    },
    /// Holds the lock; waits for the stack to be free (or, in monitor mode, for the operation
    /// to start).
    WaitingForStack { stack_status: Option<String> },
    /// The operation is running.
    Running {
        done: u32,
        total: Option<u32>,
        elapsed: Duration,
        /// Estimated remaining time, low and high.
        remaining: Option<(Duration, Duration)>,
        /// Estimated completion, as a time of day.
        completion: Option<DateTime<Utc>>,
        slower_than_usual: bool,
        /// Resources in progress right now (logical IDs), for the card's detail line.
        in_progress: Vec<String>,
    },
    Finished {
        outcome: Outcome,
        duration: Duration,
        root_cause: Option<RootCause>,
        /// Final stack status, e.g. `UPDATE_ROLLBACK_COMPLETE`.
        stack_status: Option<String>,
        /// `slack-mention-on-failure`, as configured; used only when the outcome needs it.
        mention: Option<String>,
        /// What someone must know although it did not decide the outcome (resources a
        /// clean-up left behind), and the one next step out of a stuck state.
        warnings: Vec<String>,
        next_step: Option<String>,
    },
}

/// The state changes webhook mode posts (webhooks cannot update a message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseKind {
    Queued,
    Started,
    Finished,
}

impl Phase {
    pub fn kind(&self) -> PhaseKind {
        match self {
            Phase::Queued { .. } | Phase::Frozen { .. } => PhaseKind::Queued,
            Phase::WaitingForStack { .. } | Phase::Running { .. } => PhaseKind::Started,
            Phase::Finished { .. } => PhaseKind::Finished,
        }
    }
}

/// One deployment at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub stack: String,
    /// Stack ID (ARN) when known: the console link then survives a stack's deletion.
    pub stack_id: Option<String>,
    pub environment: Option<String>,
    pub correlation_id: String,
    /// `deploy`, `monitor` or `lock`.
    pub mode: String,
    pub repository: Option<String>,
    pub actor: Option<String>,
    pub commit: Option<String>,
    pub commit_message: Option<String>,
    pub git_ref: Option<String>,
    /// `GITHUB_SERVER_URL` (https://github.com or a GHES host), for the commit link.
    pub server_url: Option<String>,
    pub run_url: Option<String>,
    pub region: Option<String>,
    pub phase: Phase,
}

/// The AWS console page of a stack, in the right partition (aws, aws-cn, aws-us-gov).
pub(crate) fn console_url(region: &str, stack: &str) -> String {
    let host = if region.starts_with("cn-") {
        format!("{region}.console.amazonaws.cn")
    } else if region.starts_with("us-gov-") {
        format!("{region}.console.amazonaws-us-gov.com")
    } else {
        format!("{region}.console.aws.amazon.com")
    };
    format!(
        "https://{host}/cloudformation/home?region={region}#/stacks/stackinfo?stackId={}",
        url_encode(stack)
    )
}

/// A text progress bar: `▰▰▰▱▱▱▱▱▱▱ 30%`. Clamped: a count past the total shows 100%.
pub(crate) fn progress_bar(done: u32, total: u32, width: usize) -> String {
    if total == 0 {
        return format!("{} 0%", "▱".repeat(width));
    }
    let done = done.min(total);
    let filled = (done as usize * width) / total as usize;
    let percent = done as u64 * 100 / total as u64;
    format!(
        "{}{} {percent}%",
        "▰".repeat(filled),
        "▱".repeat(width - filled)
    )
}

fn clock(t: &DateTime<Utc>) -> String {
    t.format("%H:%M UTC").to_string()
}

/// A freeze's end as people read it: `18:00 UTC (Nov 27)`.
fn until(freeze: &crate::lock::Freeze) -> String {
    match i64::try_from(freeze.until_ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
    {
        Some(t) => t.format("%H:%M UTC (%b %-d)").to_string(),
        None => escape(&cut(&freeze.until, 40)),
    }
}

/// Length limits for untrusted text before escaping (escaping can triple it; the block
/// limits cut the rest safely).
const MAX_REASON: usize = 1500;

/// Warnings shown on the final card; the job summary has them all.
const MAX_WARNINGS: usize = 3;
const MAX_COMMIT_LINE: usize = 200;

fn cut(text: &str, max: usize) -> String {
    super::mrkdwn::truncate_plain(text, max)
}

impl Card {
    /// A card for this run from the lock's holder info (repository, actor, commit, ref, run
    /// URL; the GitHub server for the commit link is taken from the run URL).
    pub fn for_run(
        stack: &str,
        environment: Option<&str>,
        mode: &str,
        info: &crate::lock::HolderInfo,
        region: Option<&str>,
        phase: Phase,
    ) -> Card {
        let server_url = match (&info.run_url, &info.repository) {
            (Some(url), Some(repo)) => url.find(&format!("/{repo}/")).map(|i| url[..i].to_string()),
            _ => None,
        };
        Card {
            stack: stack.to_string(),
            stack_id: None,
            environment: environment.map(str::to_string),
            correlation_id: info.correlation_id.clone(),
            mode: mode.to_string(),
            repository: info.repository.clone(),
            actor: info.actor.clone(),
            commit: info.sha.clone(),
            commit_message: None,
            git_ref: info.git_ref.clone(),
            server_url,
            run_url: info.run_url.clone(),
            region: region.map(str::to_string),
            phase,
        }
    }

    /// The same deployment in another phase (the step keeps one card and moves it along).
    pub fn with_phase(&self, phase: Phase) -> Card {
        Card {
            phase,
            ..self.clone()
        }
    }

    /// `app (prod)`, escaped.
    fn target(&self) -> String {
        match &self.environment {
            Some(env) => format!("`{}` ({})", escape(&self.stack), escape(env)),
            None => format!("`{}`", escape(&self.stack)),
        }
    }

    fn header_text(&self) -> String {
        let target = match &self.environment {
            Some(env) => format!("{} → {}", self.stack, env),
            None => self.stack.clone(),
        };
        let target = plain(&target);
        match &self.phase {
            Phase::Queued { .. } => format!("⏳ {target}: queued"),
            Phase::Frozen { .. } => format!("🧊 {target}: deployments frozen"),
            Phase::WaitingForStack { .. } => format!("🔒 {target}: waiting for the stack"),
            Phase::Running { .. } => format!("🚀 {target}: {}", self.running_word()),
            Phase::Finished { outcome, .. } => {
                format!("{} {target} {}", outcome.emoji(), outcome.verb())
            }
        }
    }

    fn running_word(&self) -> &'static str {
        match self.mode.as_str() {
            "monitor" => "operation in progress",
            "lock" => "lock held",
            _ => "deploying",
        }
    }

    /// The one-line summary: the fallback `text` and the first line of the card.
    fn summary(&self) -> String {
        let target = self.target();
        match &self.phase {
            Phase::Queued {
                position,
                holder,
                eta,
                ..
            } => {
                let mut s = format!("⏳ {target} is queued, position {position}");
                if let Some(h) = holder {
                    s.push_str(&format!(", behind {}", escape(&h.summary)));
                }
                if let Some(eta) = eta {
                    s.push_str(&format!(", expected to start in ~{}", human(*eta)));
                }
                s
            }
            Phase::Frozen { freeze, .. } => format!(
                "🧊 {target} is waiting behind a deploy freeze by {} until {}",
                escape(&cut(&freeze.by, 200)),
                until(freeze)
            ),
            Phase::WaitingForStack { stack_status } => match stack_status {
                Some(st) => format!(
                    "🔒 {target}: lock taken, waiting for the stack ({})",
                    escape(st)
                ),
                None => format!("🔒 {target}: lock taken, waiting for the stack"),
            },
            Phase::Running { done, total, .. } => match total {
                Some(t) => format!(
                    "🚀 {target}: {} ({done}/{t} resources)",
                    self.running_word()
                ),
                None => format!(
                    "🚀 {target}: {} ({done} resources done)",
                    self.running_word()
                ),
            },
            Phase::Finished {
                outcome, duration, ..
            } => format!(
                "{} {target} {} in {}",
                outcome.emoji(),
                outcome.verb(),
                human(*duration)
            ),
        }
    }

    fn status_section(&self) -> String {
        let mut lines = vec![format!("*{}*", self.summary())];
        match &self.phase {
            Phase::Queued {
                position,
                ahead,
                holder,
                eta,
            } => {
                lines.push(format!(
                    "Position *{position}* in the queue ({ahead} waiting ahead)"
                ));
                if let Some(h) = holder {
                    lines.push(format!("Lock held by {}", h.render()));
                }
                if let Some(eta) = eta {
                    lines.push(format!("Estimated wait: ~{}", human(*eta)));
                }
            }
            Phase::Frozen {
                freeze,
                position,
                holder,
            } => {
                lines.push(format!(
                    "Reason: {}",
                    escape(&cut(&freeze.reason, MAX_REASON))
                ));
                lines.push(format!(
                    "Position *{position}* in the queue, kept: this run goes in its turn once the freeze ends or is lifted."
                ));
                if let Some(h) = holder {
                    lines.push(format!("Finishing first: {}", h.render()));
                }
            }
            Phase::WaitingForStack { .. } => {
                lines.push(
                    "Another operation is running on the stack; this one starts when it ends."
                        .into(),
                );
            }
            Phase::Running {
                done,
                total,
                elapsed,
                remaining,
                completion,
                slower_than_usual,
                in_progress,
            } => {
                if let Some(t) = total {
                    lines.push(format!("`{}`", progress_bar(*done, *t, 20)));
                }
                let mut timing = format!("Elapsed {}", human(*elapsed));
                if let Some((low, high)) = remaining {
                    if low == high {
                        timing.push_str(&format!(" · about {} left", human(*low)));
                    } else {
                        timing.push_str(&format!(" · {}–{} left", human(*low), human(*high)));
                    }
                }
                if let Some(at) = completion {
                    timing.push_str(&format!(" · done around {}", clock(at)));
                }
                lines.push(timing);
                if *slower_than_usual {
                    lines.push("🐢 Slower than usual".into());
                }
                if !in_progress.is_empty() {
                    let shown: Vec<String> = in_progress
                        .iter()
                        .take(5)
                        .map(|r| format!("`{}`", escape(&cut(r, 100))))
                        .collect();
                    let more = in_progress.len().saturating_sub(5);
                    let mut line = format!("In progress: {}", shown.join(", "));
                    if more > 0 {
                        line.push_str(&format!(" and {more} more"));
                    }
                    lines.push(line);
                }
            }
            Phase::Finished {
                stack_status,
                root_cause,
                warnings,
                next_step,
                ..
            } => {
                if let Some(st) = stack_status {
                    lines.push(format!("Stack status: `{}`", escape(st)));
                }
                if let Some(rc) = root_cause {
                    lines.push(render_root_cause(rc));
                }
                for w in warnings.iter().take(MAX_WARNINGS) {
                    lines.push(format!(":warning: {}", escape(&cut(w, MAX_REASON))));
                }
                if warnings.len() > MAX_WARNINGS {
                    lines.push(format!(
                        ":warning: and {} more (see the job summary)",
                        warnings.len() - MAX_WARNINGS
                    ));
                }
                if let Some(step) = next_step {
                    lines.push(format!("*Next step:* {}", escape(&cut(step, MAX_REASON))));
                }
            }
        }
        lines.join("\n")
    }

    fn detail_fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(repo) = &self.repository {
            out.push(format!("*Repository*\n{}", escape(repo)));
        }
        if let Some(sha) = &self.commit {
            let short = sha.get(..7).unwrap_or(sha);
            let mut commit = match (&self.server_url, &self.repository) {
                (Some(server), Some(repo)) => link(
                    &format!("{}/{repo}/commit/{sha}", server.trim_end_matches('/')),
                    short,
                ),
                _ => format!("`{}`", escape(short)),
            };
            if let Some(msg) = &self.commit_message {
                commit.push_str(&format!(
                    " {}",
                    escape(&cut(first_line(msg), MAX_COMMIT_LINE))
                ));
            }
            out.push(format!("*Commit*\n{commit}"));
        }
        if let Some(actor) = &self.actor {
            out.push(format!("*Actor*\n{}", escape(actor)));
        }
        if let Some(r) = &self.git_ref {
            out.push(format!("*Ref*\n{}", escape(r)));
        }
        out.push(format!("*Mode*\n{}", escape(&self.mode)));
        if let Some(region) = &self.region {
            out.push(format!("*Region*\n{}", escape(region)));
        }
        if let Phase::Finished { duration, .. } = &self.phase {
            out.push(format!("*Duration*\n{}", human(*duration)));
        }
        out
    }

    fn links(&self) -> Vec<String> {
        let mut links = Vec::new();
        if let Some(url) = &self.run_url {
            links.push(link(url, "Workflow run"));
        }
        if let Some(region) = &self.region {
            let id = self.stack_id.as_deref().unwrap_or(&self.stack);
            links.push(link(&console_url(region, id), "Stack in the AWS console"));
        }
        links
    }

    /// The card as a Slack message (bot mode: posted once, then updated in place).
    pub fn render(&self) -> Message {
        let mut blocks: Vec<Value> = vec![
            blocks::header(&self.header_text()),
            blocks::section(&self.status_section()),
        ];
        if let Phase::Finished {
            outcome,
            mention: Some(who),
            ..
        } = &self.phase
            && outcome.needs_attention()
        {
            blocks.push(blocks::section(&format!(
                "{} please take a look",
                mention(who)
            )));
        }
        blocks.push(blocks::fields(&self.detail_fields()));
        let mut context = self.links();
        context.push(format!("Correlation ID `{}`", escape(&self.correlation_id)));
        blocks.push(blocks::context(&context));
        Message::new(&self.fallback_text(), blocks)
    }

    /// The notification text: summary, the mention on failure, and the correlation ID.
    fn fallback_text(&self) -> String {
        let mut text = self.summary();
        if let Phase::Finished {
            outcome,
            mention: Some(who),
            root_cause,
            ..
        } = &self.phase
        {
            if let Some(rc) = root_cause {
                text.push_str(&format!(
                    ": `{}` {}",
                    escape(&rc.resource),
                    escape(&cut(&rc.reason, 300))
                ));
            }
            if outcome.needs_attention() {
                text = format!("{} {text}", mention(who));
            }
        }
        format!("{text} [{}]", escape(&self.correlation_id))
    }
}

fn render_root_cause(rc: &RootCause) -> String {
    if let Some(heading) = &rc.heading {
        return format!(
            "*{}*\n>{}",
            escape(&cut(heading, 255)),
            escape(&cut(&rc.reason, MAX_REASON)).replace('\n', "\n>")
        );
    }
    let kind = rc
        .resource_type
        .as_deref()
        .map(|t| format!(" ({})", escape(t)))
        .unwrap_or_default();
    format!(
        "*Root cause:* `{}`{kind}\n>{}",
        escape(&cut(&rc.resource, 255)),
        escape(&cut(&rc.reason, MAX_REASON)).replace('\n', "\n>")
    )
}

/// One failed resource, for the failure detail thread message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedResource {
    pub resource: String,
    pub resource_type: Option<String>,
    pub status: String,
    pub reason: String,
}

/// Something worth a reply in the card's thread.
#[derive(Debug, Clone, PartialEq)]
pub enum ThreadEvent {
    /// This run waits behind another.
    QueuedBehind {
        holder: Holder,
        position: u32,
        eta: Option<Duration>,
    },
    /// The lock was taken over from a stale holder.
    Takeover { previous: Holder, why: String },
    /// The lock is frozen: this run waits behind it, or (`stopped`) fails at once.
    Frozen {
        freeze: crate::lock::Freeze,
        stopped: bool,
    },
    /// Monitoring stopped for a while (and restarted).
    MonitoringGap {
        gap: Duration,
        restarts: u32,
        error: String,
    },
    /// The registry is unreachable: coordinating through CloudFormation only.
    RegistryFallback { reason: String },
    /// The deployment lock is no longer ours (taken over, force-unlocked, or no heartbeat got
    /// through for a whole lease).
    LockLost { detail: String },
    /// The resources that failed, first one first.
    FailureDetail { failures: Vec<FailedResource> },
    /// Taking longer than history says it usually does.
    SlowerThanUsual { elapsed: Duration, usual: Duration },
    /// A higher-priority run went ahead of this one in the queue; `origin` is its
    /// `repository@ref`, `position` our place now.
    PassedBy {
        by: Holder,
        origin: String,
        position: u32,
    },
    /// This run left the queue: a newer commit of its ref (`commit`) deploys instead.
    Superseded { by: Holder, commit: String },
    /// Anything else (escaped).
    Note(String),
}

/// At most this many failed resources are listed (one block each).
const MAX_FAILURES_LISTED: usize = 20;

impl ThreadEvent {
    /// A thread reply: the event and, on every message, the correlation ID.
    pub fn render(&self, correlation_id: &str) -> Message {
        let (text, mut blocks): (String, Vec<Value>) = match self {
            ThreadEvent::QueuedBehind {
                holder,
                position,
                eta,
            } => {
                let mut t = format!(
                    "⏳ Queued at position {position} behind {}",
                    holder.render()
                );
                if let Some(eta) = eta {
                    t.push_str(&format!("; expected to start in ~{}", human(*eta)));
                }
                (t.clone(), vec![blocks::section(&t)])
            }
            ThreadEvent::PassedBy {
                by,
                origin,
                position,
            } => {
                let t = format!(
                    "⏫ A hotfix from {} went ahead of this run: {}. Now position {position} in the queue.",
                    escape(origin),
                    by.render(),
                );
                (t.clone(), vec![blocks::section(&t)])
            }
            ThreadEvent::Superseded { by, commit } => {
                let t = format!(
                    "⏭️ Skipped: commit {} of the same ref is queued and deploys instead, {}.",
                    escape(commit),
                    by.render(),
                );
                (t.clone(), vec![blocks::section(&t)])
            }
            ThreadEvent::Takeover { previous, why } => {
                let t = format!(
                    "⚠️ Took over the lock from {}: {}",
                    previous.render(),
                    escape(&cut(why, MAX_REASON))
                );
                (t.clone(), vec![blocks::section(&t)])
            }
            ThreadEvent::Frozen { freeze, stopped } => {
                let then = if *stopped {
                    "on-freeze is fail: this run stopped without deploying."
                } else {
                    "This run keeps its place in the queue and goes once the freeze ends."
                };
                let t = format!(
                    "🧊 Deployments are frozen by {} until {}: {}\n{then}",
                    escape(&cut(&freeze.by, 200)),
                    until(freeze),
                    escape(&cut(&freeze.reason, MAX_REASON))
                );
                (t.clone(), vec![blocks::section(&t)])
            }
            ThreadEvent::MonitoringGap {
                gap,
                restarts,
                error,
            } => {
                let t = format!(
                    "📡 Monitoring was interrupted for {} (restart {restarts}): {}",
                    human(*gap),
                    escape(&cut(error, MAX_REASON))
                );
                (t.clone(), vec![blocks::section(&t)])
            }
            ThreadEvent::RegistryFallback { reason } => {
                let t = format!(
                    "⚠️ The lock registry is unreachable, coordinating through CloudFormation only (other queued runs are not seen): {}",
                    escape(&cut(reason, MAX_REASON))
                );
                (t.clone(), vec![blocks::section(&t)])
            }
            ThreadEvent::LockLost { detail } => {
                let t = format!(
                    "🚨 The deployment lock was lost: {}. Nothing more is executed by this run; another run may deploy at the same time",
                    escape(&cut(detail, MAX_REASON))
                );
                (t.clone(), vec![blocks::section(&t)])
            }
            ThreadEvent::FailureDetail { failures } => {
                let head = format!(
                    "❌ {} resource{} failed",
                    failures.len(),
                    if failures.len() == 1 { "" } else { "s" }
                );
                let mut blocks = vec![blocks::section(&format!("*{head}*"))];
                for f in failures.iter().take(MAX_FAILURES_LISTED) {
                    let kind = f
                        .resource_type
                        .as_deref()
                        .map(|t| format!(" ({})", escape(t)))
                        .unwrap_or_default();
                    blocks.push(blocks::section(&format!(
                        "`{}`{kind} {}\n>{}",
                        escape(&cut(&f.resource, 255)),
                        escape(&f.status),
                        escape(&cut(&f.reason, MAX_REASON)).replace('\n', "\n>")
                    )));
                }
                if failures.len() > MAX_FAILURES_LISTED {
                    blocks.push(blocks::section(&format!(
                        "… and {} more",
                        failures.len() - MAX_FAILURES_LISTED
                    )));
                }
                let text = match failures.first() {
                    Some(f) => format!(
                        "{head}; first: `{}` {}",
                        escape(&f.resource),
                        escape(&cut(&f.reason, 300))
                    ),
                    None => head,
                };
                (text, blocks)
            }
            ThreadEvent::SlowerThanUsual { elapsed, usual } => {
                let t = format!(
                    "🐢 Slower than usual: running for {}, usually done in {}",
                    human(*elapsed),
                    human(*usual)
                );
                (t.clone(), vec![blocks::section(&t)])
            }
            ThreadEvent::Note(note) => {
                let t = escape(&cut(note, MAX_REASON));
                (t.clone(), vec![blocks::section(&t)])
            }
        };
        blocks.push(blocks::context(&[format!(
            "Correlation ID `{}`",
            escape(correlation_id)
        )]));
        Message::new(&format!("{text} [{}]", escape(correlation_id)), blocks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slack::blocks::check_limits;

    const EVIL: &str = "<!channel> <https://evil|click> & ::set-output name=x::y";

    fn card(phase: Phase) -> Card {
        Card {
            stack: "app-prod".into(),
            stack_id: None,
            environment: Some("prod".into()),
            correlation_id: "app-prod-abc1234-42-1".into(),
            mode: "deploy".into(),
            repository: Some("acme/api".into()),
            actor: Some("alice".into()),
            commit: Some("abc1234def".into()),
            commit_message: Some(format!("Fix {EVIL}\n\nbody")),
            git_ref: Some("refs/heads/main".into()),
            server_url: Some("https://github.com".into()),
            run_url: Some("https://github.com/acme/api/actions/runs/42".into()),
            region: Some("eu-west-1".into()),
            phase,
        }
    }

    fn json(msg: &Message) -> String {
        serde_json::to_string(msg).unwrap()
    }

    /// Every `<` in the output starts one of our own links or mentions.
    fn only_our_markup(text: &str) -> bool {
        text.match_indices('<').all(|(i, _)| {
            let rest = &text[i..];
            rest.starts_with("<https://github.com/")
                || rest.starts_with("<https://eu-west-1.console.aws.amazon.com/")
                || rest.starts_with("<!here>")
                || rest.starts_with("<@U")
        })
    }

    fn phases() -> Vec<Phase> {
        vec![
            Phase::Queued {
                position: 2,
                ahead: 1,
                holder: Some(Holder {
                    summary: format!("acme/other run 7 by {EVIL}"),
                    run_url: Some("https://github.com/acme/other/actions/runs/7".into()),
                    held_for: Some(Duration::from_secs(300)),
                }),
                eta: Some(Duration::from_secs(600)),
            },
            Phase::WaitingForStack {
                stack_status: Some("UPDATE_IN_PROGRESS".into()),
            },
            Phase::Running {
                done: 12,
                total: Some(30),
                elapsed: Duration::from_secs(250),
                remaining: Some((Duration::from_secs(300), Duration::from_secs(540))),
                completion: DateTime::from_timestamp(1_700_000_000, 0),
                slower_than_usual: true,
                in_progress: vec![EVIL.into(), "Db".into()],
            },
            Phase::Finished {
                outcome: Outcome::RolledBack,
                duration: Duration::from_secs(754),
                root_cause: Some(RootCause {
                    resource: "Db".into(),
                    resource_type: Some("AWS::RDS::DBInstance".into()),
                    reason: format!("Invalid {EVIL}"),
                    heading: None,
                }),
                stack_status: Some("UPDATE_ROLLBACK_COMPLETE".into()),
                mention: Some("@here".into()),
                warnings: Vec::new(),
                next_step: None,
            },
            Phase::Frozen {
                freeze: frozen(EVIL),
                position: 3,
                holder: Some(Holder {
                    summary: format!("acme/other run 7 by {EVIL}"),
                    run_url: Some("https://github.com/acme/other/actions/runs/7".into()),
                    held_for: None,
                }),
            },
        ]
    }

    fn frozen(reason: &str) -> crate::lock::Freeze {
        let at = DateTime::from_timestamp(1_764_237_600, 0).unwrap(); // 2025-11-27 10:00 UTC
        crate::lock::Freeze::new(reason, "alice", at, Duration::from_secs(8 * 3600)).unwrap()
    }

    #[test]
    fn a_frozen_card_says_who_froze_why_and_until_when() {
        let msg = card(phases().remove(4)).render();
        let s = json(&msg);
        assert!(
            msg.text
                .contains("waiting behind a deploy freeze by alice until 18:00 UTC (Nov 27)"),
            "{}",
            msg.text
        );
        assert!(s.contains("Reason: &lt;!channel&gt;"), "{s}");
        assert!(s.contains("Position *3* in the queue"), "{s}");
        assert!(s.contains("Finishing first: acme/other run 7"), "{s}");
        assert_eq!(phases().remove(4).kind(), PhaseKind::Queued);
        let stopped = ThreadEvent::Frozen {
            freeze: frozen("INC-42 failover"),
            stopped: true,
        }
        .render("c-1");
        assert!(
            stopped.text.contains(
                "Deployments are frozen by alice until 18:00 UTC (Nov 27): INC-42 failover"
            ),
            "{}",
            stopped.text
        );
        assert!(
            stopped.text.contains("on-freeze is fail"),
            "{}",
            stopped.text
        );
    }

    #[test]
    fn every_phase_renders_within_limits_with_links_and_correlation_id() {
        for phase in phases() {
            let msg = card(phase.clone()).render();
            let value = serde_json::to_value(&msg).unwrap();
            check_limits(&value).unwrap_or_else(|e| panic!("{phase:?}: {e}"));
            let s = json(&msg);
            assert!(msg.text.contains("app-prod-abc1234-42-1"), "{}", msg.text);
            assert!(s.contains("Correlation ID `app-prod-abc1234-42-1`"));
            assert!(s.contains("<https://github.com/acme/api/actions/runs/42|Workflow run>"));
            assert!(s.contains(
                "<https://eu-west-1.console.aws.amazon.com/cloudformation/home?region=eu-west-1#/stacks/stackinfo?stackId=app-prod|Stack in the AWS console>"
            ));
            assert!(s.contains("<https://github.com/acme/api/commit/abc1234def|abc1234>"));
        }
    }

    #[test]
    fn untrusted_text_is_inert_everywhere() {
        for phase in phases() {
            let msg = card(phase).render();
            for text in std::iter::once(msg.text.clone())
                .chain(msg.blocks.iter().map(|b| serde_json::to_string(b).unwrap()))
            {
                assert!(only_our_markup(&text), "{text}");
                assert!(!text.contains("<!channel>"));
            }
            assert!(json(&msg).contains("&lt;!channel&gt;"));
        }
        let events = [
            ThreadEvent::Note(EVIL.into()),
            ThreadEvent::Frozen {
                freeze: frozen(EVIL),
                stopped: false,
            },
            ThreadEvent::Takeover {
                previous: Holder {
                    summary: EVIL.into(),
                    ..Holder::default()
                },
                why: EVIL.into(),
            },
            ThreadEvent::PassedBy {
                by: Holder {
                    summary: EVIL.into(),
                    ..Holder::default()
                },
                origin: EVIL.into(),
                position: 2,
            },
            ThreadEvent::Superseded {
                by: Holder {
                    summary: EVIL.into(),
                    ..Holder::default()
                },
                commit: EVIL.into(),
            },
            ThreadEvent::FailureDetail {
                failures: vec![FailedResource {
                    resource: EVIL.into(),
                    resource_type: None,
                    status: "CREATE_FAILED".into(),
                    reason: EVIL.into(),
                }],
            },
        ];
        for e in events {
            let msg = e.render("<!channel>");
            let s = json(&msg);
            assert!(!s.contains("<!channel>"), "{s}");
            assert!(!s.contains("<https://evil"), "{s}");
            assert!(s.contains("&amp;"));
        }
    }

    #[test]
    fn a_hotfix_pass_and_a_skip_name_the_other_run() {
        let by = Holder {
            summary: "acme/api run 207 by alice".into(),
            run_url: Some("https://github.com/acme/api/actions/runs/207".into()),
            held_for: None,
        };
        let passed = ThreadEvent::PassedBy {
            by: by.clone(),
            origin: "acme/api@hotfix".into(),
            position: 2,
        }
        .render("c1");
        assert!(
            passed
                .text
                .contains("A hotfix from acme/api@hotfix went ahead")
                && passed.text.contains("runs/207")
                && passed.text.contains("position 2"),
            "{}",
            passed.text
        );
        let skipped = ThreadEvent::Superseded {
            by,
            commit: "9f1c2aa".into(),
        }
        .render("c1");
        assert!(
            skipped.text.contains("Skipped: commit 9f1c2aa") && skipped.text.contains("runs/207"),
            "{}",
            skipped.text
        );
        assert_eq!(
            Outcome::Skipped.verb(),
            "was skipped: a newer commit deploys instead"
        );
        assert!(
            !Outcome::Skipped.needs_attention(),
            "a skip mentions nobody"
        );
    }

    #[test]
    fn running_card_shows_progress_estimate_and_completion() {
        let msg = card(phases().remove(2)).render();
        let section = msg.blocks[1]["text"]["text"].as_str().unwrap();
        assert!(section.contains("12/30 resources"), "{section}");
        assert!(section.contains(&progress_bar(12, 30, 20)));
        assert!(section.contains("Elapsed 4m 10s · 5m–9m left · done around 22:13 UTC"));
        assert!(section.contains("Slower than usual"));
    }

    #[test]
    fn failure_shows_root_cause_and_mentions_only_when_needed() {
        let msg = card(phases().remove(3)).render();
        let s = json(&msg);
        assert!(s.contains("*Root cause:* `Db` (AWS::RDS::DBInstance)"));
        assert!(msg.text.starts_with("<!here> "), "{}", msg.text);
        assert!(msg.text.contains("12m 34s"));
        let ok = card(Phase::Finished {
            outcome: Outcome::Succeeded,
            duration: Duration::from_secs(60),
            root_cause: None,
            stack_status: None,
            mention: Some("@here".into()),
            warnings: Vec::new(),
            next_step: None,
        })
        .render();
        assert!(!json(&ok).contains("<!here>"));
    }

    #[test]
    fn a_huge_reason_still_fits() {
        let reason = "<&>".repeat(5000);
        let msg = card(Phase::Finished {
            outcome: Outcome::Failed,
            duration: Duration::from_secs(1),
            root_cause: Some(RootCause {
                resource: "R".repeat(500),
                resource_type: None,
                reason: reason.clone(),
                heading: None,
            }),
            stack_status: None,
            mention: None,
            warnings: Vec::new(),
            next_step: None,
        })
        .render();
        check_limits(&serde_json::to_value(&msg).unwrap()).unwrap();
        let failures = (0..80)
            .map(|i| FailedResource {
                resource: format!("R{i}"),
                resource_type: None,
                status: "CREATE_FAILED".into(),
                reason: reason.clone(),
            })
            .collect();
        let detail = ThreadEvent::FailureDetail { failures }.render("c");
        check_limits(&serde_json::to_value(&detail).unwrap()).unwrap();
    }

    #[test]
    fn a_card_is_built_from_the_holder_info() {
        let env = |name: &str| {
            Some(
                match name {
                    "GITHUB_REPOSITORY" => "acme/api",
                    "GITHUB_RUN_ID" => "42",
                    "GITHUB_RUN_ATTEMPT" => "1",
                    "GITHUB_SERVER_URL" => "https://ghe.example.com",
                    "GITHUB_SHA" => "abc1234def",
                    "GITHUB_ACTOR" => "alice",
                    _ => return None,
                }
                .to_string(),
            )
        };
        let info = crate::lock::HolderInfo::from_env("corr-1", &env);
        let c = Card::for_run(
            "app",
            Some("prod"),
            "deploy",
            &info,
            Some("eu-west-1"),
            phases().remove(1),
        );
        assert_eq!(c.server_url.as_deref(), Some("https://ghe.example.com"));
        assert_eq!(c.correlation_id, "corr-1");
        let s = json(&c.render());
        assert!(
            s.contains("<https://ghe.example.com/acme/api/commit/abc1234def|abc1234>"),
            "{s}"
        );
        assert!(
            s.contains("actions/runs/42/attempts/1|Workflow run>"),
            "{s}"
        );
        let done = c.with_phase(phases().remove(3));
        assert_eq!(done.stack, "app");
        assert!(done.render().text.contains("rolled back"));
    }

    #[test]
    fn console_links_follow_the_partition() {
        assert!(
            console_url("cn-north-1", "s").starts_with("https://cn-north-1.console.amazonaws.cn/")
        );
        assert!(
            console_url("us-gov-west-1", "s")
                .starts_with("https://us-gov-west-1.console.amazonaws-us-gov.com/")
        );
        assert!(
            console_url("eu-west-1", "arn:aws:cloudformation:eu-west-1:1:stack/a/b")
                .ends_with("stackId=arn%3Aaws%3Acloudformation%3Aeu-west-1%3A1%3Astack%2Fa%2Fb")
        );
    }

    #[test]
    fn progress_bar_is_clamped() {
        assert_eq!(progress_bar(0, 4, 4), "▱▱▱▱ 0%");
        assert_eq!(progress_bar(2, 4, 4), "▰▰▱▱ 50%");
        assert_eq!(progress_bar(9, 4, 4), "▰▰▰▰ 100%");
        assert_eq!(progress_bar(1, 0, 2), "▱▱ 0%");
    }

    #[test]
    fn webhook_kinds_group_phases() {
        let kinds: Vec<PhaseKind> = phases().iter().map(Phase::kind).collect();
        assert_eq!(
            kinds,
            [
                PhaseKind::Queued,
                PhaseKind::Started,
                PhaseKind::Started,
                PhaseKind::Finished,
                PhaseKind::Queued
            ]
        );
    }
}
