//! How long the running operation will still take: a pure function of the stack's history,
//! the operation's events so far and the time now.
//!
//! The method, in short (docs/performance.md, "Estimates", has the evaluation):
//! - every past successful run of the same operation is a *plan*: its resources in the order
//!   they started, each with the resource whose completion triggered it (so parallel waves
//!   and the critical path come from what CloudFormation actually did);
//! - each resource has a duration model: lognormal fitted to its own past durations, shrunk
//!   towards its type's (other stacks in the history, else the reference table's priors),
//!   plus a small slow-outlier component;
//! - the remaining time is simulated a few hundred times (seeded, so the result is a pure
//!   function): pick a plan (recent ones and ones that match what this run has started are
//!   likelier), keep the actual times of finished resources, draw the rest of each running
//!   resource's time *given how long it has already run*, draw the resources not started
//!   after their triggers, drop the plan's resources whose trigger finished long ago but that
//!   never started (not part of this change), and take the latest completion plus the
//!   stack's own wrap-up time. The estimate is the median of the futures in which no resource
//!   took its less likely explanation (a slow outlier nothing points to yet); the 10th and
//!   90th percentiles of all of them are the range.
//!
//! What this run is, is learned while it runs (`sim.rs`): plans that cannot explain what has
//! started, or that had started many more or fewer resources by now, lose weight. With a
//! change set (mode deploy, or `estimate --change-set`) the work is known exactly and past
//! runs only lend their shape.
//!
//! Self-calibration (`calibrate.rs`): the stack's own past runs are replayed through the
//! estimator, as the evaluation does, and what that backtest shows decides how much the
//! per-resource model is trusted against duration-level models (`whole.rs`: the past
//! durations given the elapsed time, the baseline), and how wide the range must be to cover
//! what it claims on that stack.
//!
//! Rollbacks are simulated the same way in reverse order (undo a resource after the ones that
//! depended on it). With no comparable run, in-progress resources use their type's model and
//! the rest falls back to a generic prior, with low confidence.

pub mod calibrate;
pub mod changes;
pub mod dist;
pub mod eval;
mod fallback;
pub mod model;
pub mod offline;
mod prepared;
pub mod priors;
pub mod queue;
mod rollback;
mod sim;
mod whole;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::history::events::{StackEvent, Trace, current_operation, trace};
use crate::history::record::{HistoryRecord, Operation};
use crate::stack::client::ResourceChange;
pub use calibrate::{Applied, Calibration};
pub use changes::{ChangeSetFile, parse_describe_change_set};
pub use queue::{DurationRange, QueueEta, holder_remaining, queue_eta, typical_duration};

/// Simulated futures per estimate: enough for stable 10th/90th percentiles (±1 percentile
/// point), cheap enough to recompute on every poll.
pub(crate) const SAMPLES: usize = 400;
/// Fixed seed: the same inputs always give the same estimate.
pub(crate) const SEED: u64 = 0x00C0_FFEE_5EED;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    High,
    Medium,
    Low,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Running,
    RollingBack,
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

/// The whole duration this estimate predicts (elapsed + remaining, with its range): what a
/// history record keeps of its operation's first estimate.
impl From<&Estimate> for crate::history::PredictedDuration {
    fn from(e: &Estimate) -> Self {
        crate::history::PredictedDuration {
            seconds: e.elapsed_seconds + e.remaining_seconds,
            low_seconds: e.elapsed_seconds + e.remaining_low_seconds,
            high_seconds: e.elapsed_seconds + e.remaining_high_seconds,
        }
    }
}

/// How long comparable past runs took.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Usual {
    pub runs: usize,
    pub low_seconds: u64,
    pub median_seconds: u64,
    pub high_seconds: u64,
    pub max_seconds: u64,
}

/// A resource running longer than its usual 90th percentile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Laggard {
    pub logical_id: String,
    pub resource_type: String,
    pub running_seconds: u64,
    pub usual_seconds: u64,
    pub high_seconds: u64,
}

/// The estimate for a running (or just finished) operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub stack: String,
    pub operation: Operation,
    pub phase: Phase,
    pub started_at: DateTime<Utc>,
    /// The time the estimate is for (never before the newest event; see `clock_skew_seconds`).
    pub now: DateTime<Utc>,
    pub elapsed_seconds: u64,
    pub remaining_seconds: u64,
    pub remaining_low_seconds: u64,
    pub remaining_high_seconds: u64,
    pub estimated_completion: DateTime<Utc>,
    pub completion_low: DateTime<Utc>,
    pub completion_high: DateTime<Utc>,
    pub progress: Progress,
    pub confidence: Confidence,
    /// While running: elapsed time is past the usual high (the 90th percentile of comparable
    /// runs; with fewer than three, 1.25 × the longest).
    pub slower_than_usual: bool,
    pub usual: Option<Usual>,
    pub laggards: Vec<Laggard>,
    /// Resources of this run that no comparable past run had (estimated from their type).
    pub unseen_resources: Vec<String>,
    /// Set when `now` was earlier than CloudFormation's newest event: the local clock is
    /// behind by at least this much, and the newest event's time was used instead.
    pub clock_skew_seconds: Option<u64>,
    /// What the stack's own history said about this estimator (absent before a run starts
    /// its resources, during a rollback, and without enough history to replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Applied>,
    /// In words: what the estimate rests on.
    pub basis: String,
}

/// Knobs the caller may know about.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The number of resources the change set touches, when known (progress total; a
    /// `change_set` gives it on its own).
    pub expected_total: Option<usize>,
    /// What the change set says will change (mode deploy; `estimate --change-set`).
    pub change_set: Option<Vec<ResourceChange>>,
    /// From [`Calibration::of`] on the same history, computed once per step: without it the
    /// per-resource model is used as it is.
    pub calibration: Option<Calibration>,
}

/// Estimates the operation traced in `current` from `history` (any stacks; the current
/// stack's records give plans and per-resource times, all give per-type times).
pub fn estimate(history: &[HistoryRecord], current: &Trace, now: DateTime<Utc>) -> Estimate {
    estimate_with(history, current, now, &Options::default())
}

/// [`estimate`] straight from stack events (any order, as DescribeStackEvents or the AWS CLI
/// give them): the newest operation in them is the current one. None when no event starts an
/// operation.
pub fn estimate_events(
    history: &[HistoryRecord],
    events: &[StackEvent],
    now: DateTime<Utc>,
    options: &Options,
) -> Option<Estimate> {
    let op = current_operation(events)?;
    let t = trace(&op)?;
    Some(estimate_with(history, &t, now, options))
}

pub fn estimate_with(
    history: &[HistoryRecord],
    current: &Trace,
    now: DateTime<Utc>,
    options: &Options,
) -> Estimate {
    let knowledge = model::Knowledge::new(history, &current.stack);
    let all: Vec<&HistoryRecord> = history.iter().collect();
    let prepared = prepared::Prepared::new(&all, &knowledge, &current.stack, current.operation);
    prepared.estimate(current, now, options, SAMPLES)
}

/// `1h 02m`, `7m 05s`, `45s`.
pub fn fmt_secs(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

impl Estimate {
    /// One line for logs, the Slack card and the job summary, e.g.
    /// `about 7m 05s left (5m 10s–11m 00s), done by 12:54 UTC; 14/20 resources; medium
    /// confidence`.
    pub fn summary(&self) -> String {
        let progress = format!("{}/{} resources", self.progress.done, self.progress.total);
        if self.phase == Phase::Finished {
            return format!(
                "finished in {}; {progress}",
                fmt_secs(self.elapsed_seconds as f64)
            );
        }
        let what = if self.phase == Phase::RollingBack {
            "rollback: about"
        } else {
            "about"
        };
        let slow = if self.slower_than_usual {
            match self.usual {
                Some(u) => format!(
                    "; slower than usual ({} so far, usually {})",
                    fmt_secs(self.elapsed_seconds as f64),
                    fmt_secs(u.median_seconds as f64)
                ),
                None => "; slower than usual".into(),
            }
        } else {
            String::new()
        };
        format!(
            "{what} {} left ({}–{}), done by {} UTC; {progress}; {} confidence{slow}",
            fmt_secs(self.remaining_seconds as f64),
            fmt_secs(self.remaining_low_seconds as f64),
            fmt_secs(self.remaining_high_seconds as f64),
            self.estimated_completion.format("%H:%M"),
            match self.confidence {
                Confidence::High => "high",
                Confidence::Medium => "medium",
                Confidence::Low => "low",
            },
        )
    }

    /// The remaining time as a range, for the queue ETA of waiters behind this operation.
    pub fn remaining_range(&self) -> DurationRange {
        DurationRange {
            low_seconds: self.remaining_low_seconds as f64,
            median_seconds: self.remaining_seconds as f64,
            high_seconds: self.remaining_high_seconds as f64,
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_change;
