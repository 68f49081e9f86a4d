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
//! Rollbacks are simulated the same way in reverse order (undo a resource after the ones that
//! depended on it). With no comparable run, in-progress resources use their type's model and
//! the rest falls back to a generic prior, with low confidence.

pub mod dist;
pub mod eval;
pub mod model;
pub mod priors;
pub mod queue;

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::history::events::{StackEvent, Trace, current_operation, trace};
use crate::history::record::{HistoryRecord, Operation, seconds_between};
use dist::{DurationModel, Rng, quantile};
use model::{Knowledge, Plan, Source, comparable_runs, infer_parents};

pub use queue::{DurationRange, QueueEta, holder_remaining, queue_eta, typical_duration};

/// Simulated futures per estimate: enough for stable 10th/90th percentiles (±1 percentile
/// point), cheap enough to recompute on every poll.
const SAMPLES: usize = 400;
/// A resource whose trigger completed this long ago (beyond the usual gap) and that has not
/// started is not part of this operation: CloudFormation starts a resource within a second or
/// two of its last dependency, and its event is visible at once.
const SKIP_GRACE: f64 = 10.0;
/// Fixed seed: the same inputs always give the same estimate.
const SEED: u64 = 0x00C0_FFEE_5EED;
/// How much whole runs differ in speed (log spread) before this run's own resources say.
const RUN_SPREAD: f64 = 0.15;
/// A run is taken to be at most twice as fast or as slow as usual overall.
const MAX_SHIFT: f64 = 0.7;
/// The wrap-up after a rollback's last resource when history shows none.
const ROLLBACK_TAIL: f64 = 10.0;

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
    /// In words: what the estimate rests on.
    pub basis: String,
}

/// Knobs the caller may know about.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The number of resources the change set touches, when known (progress total).
    pub expected_total: Option<usize>,
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

/// A resource of the current run, in seconds from the operation's start.
#[derive(Debug, Clone)]
struct Seen {
    logical_id: String,
    resource_type: String,
    action: String,
    start: f64,
    finish: Option<f64>,
}

pub fn estimate_with(
    history: &[HistoryRecord],
    current: &Trace,
    now: DateTime<Utc>,
    options: &Options,
) -> Estimate {
    // The local clock may be behind CloudFormation's; it cannot be earlier than an event
    // already seen.
    let skew = (current.last_event_at - now).num_seconds();
    let now = now.max(current.last_event_at);
    let clock_skew_seconds = (skew >= 1).then_some(skew as u64);
    let at = |t: DateTime<Utc>| seconds_between(current.started_at, t);
    let now_s = at(now);

    let knowledge = Knowledge::new(history, &current.stack);
    let runs = comparable_runs(history, &current.stack, current.operation);
    let usual = usual_of(&runs);
    let seen = |rollback: bool| -> Vec<Seen> {
        current
            .resources
            .iter()
            .filter(|r| r.rollback == rollback)
            .map(|r| Seen {
                logical_id: r.logical_id.clone(),
                resource_type: r.resource_type.clone(),
                action: r.action.clone(),
                start: at(r.started_at),
                finish: r.finished_at.map(at),
            })
            .collect()
    };
    let forward = seen(false);
    let undoing = seen(true);
    let done_forward = current
        .resources
        .iter()
        .filter(|r| !r.rollback && r.completed())
        .count();

    let mut ctx = Ctx {
        knowledge: &knowledge,
        now_s,
        rng: Rng::new(SEED),
        notes: Vec::new(),
        low_confidence: false,
        medium_confidence: false,
        typical: None,
    };

    let (phase, remaining, progress) = if let Some((_, finished_at)) = &current.finished {
        ctx.notes
            .push(format!("finished after {}", fmt_secs(at(*finished_at))));
        let done = done_forward;
        (Phase::Finished, vec![0.0], Progress { done, total: done })
    } else if let Some(rb) = current.rollback_started_at {
        let (rem, progress) = ctx.rollback(&forward, &undoing, at(rb));
        (Phase::RollingBack, rem, progress)
    } else if runs.is_empty() {
        let (rem, pending) = ctx.without_plans(&forward, options.expected_total);
        let started = forward.len();
        let total = options
            .expected_total
            .unwrap_or(started + pending)
            .max(started);
        (
            Phase::Running,
            rem,
            Progress {
                done: done_forward,
                total,
            },
        )
    } else {
        let plans: Vec<Plan> = runs
            .iter()
            .take(model::MAX_PLANS)
            .map(|r| Plan::from_record(r))
            .collect();
        let (rem, pending) = ctx.with_plans(&plans, &forward);
        let running = forward.iter().filter(|s| s.finish.is_none()).count();
        let finished = forward.len() - running;
        let expected = finished + running + pending.round() as usize;
        let total = options
            .expected_total
            .unwrap_or(expected)
            .max(forward.len());
        (
            Phase::Running,
            rem,
            Progress {
                done: done_forward,
                total,
            },
        )
    };

    let mut rem = remaining;
    // The point estimate leaves out the futures where some resource turned out a slow outlier
    // that nothing points to yet: each of a dozen resources carries a few per cent of that
    // risk, which belongs in the high bound, but counted in the median it makes every
    // ordinary run look late (see `Ctx::typical`). Too few typical futures: all of them.
    let p10 = quantile(&mut rem, 0.1);
    let p90 = quantile(&mut rem, 0.9);
    let p50 = match ctx.typical.take() {
        Some(mut typical) if typical.len() * 4 >= rem.len() => quantile(&mut typical, 0.5),
        _ => quantile(&mut rem, 0.5),
    }
    .clamp(p10, p90);
    let elapsed = if phase == Phase::Finished {
        current
            .finished
            .as_ref()
            .map(|(_, f)| at(*f))
            .unwrap_or(now_s)
    } else {
        now_s
    };

    // Only a deployment in progress is compared with usual deployments: a rollback is other
    // work, and a finished operation needs no warning.
    let slower_than_usual = phase == Phase::Running
        && usual.is_some_and(|u| {
            if u.runs >= 3 {
                elapsed > u.high_seconds as f64
            } else {
                elapsed > 1.25 * u.max_seconds as f64
            }
        });
    let beyond_all = usual.is_some_and(|u| elapsed > u.max_seconds as f64);

    let laggards = if phase == Phase::Running {
        laggards(&knowledge, &forward, now_s)
    } else {
        Vec::new()
    };
    let unseen_resources: Vec<String> = if runs.is_empty() {
        Vec::new()
    } else {
        forward
            .iter()
            .filter(|s| !knowledge.has_own(&s.logical_id, &s.action))
            .map(|s| s.logical_id.clone())
            .collect()
    };

    let confidence = if phase == Phase::Finished {
        Confidence::High
    } else if ctx.low_confidence || runs.len() < 3 {
        Confidence::Low
    } else if ctx.medium_confidence || runs.len() < 8 || !unseen_resources.is_empty() || beyond_all
    {
        Confidence::Medium
    } else {
        Confidence::High
    };

    let mut basis = Vec::new();
    match runs.len() {
        0 => basis.push(format!(
            "no past successful {} of {}",
            current.operation.as_str(),
            current.stack
        )),
        n => basis.push(format!(
            "{n} past successful {} run{} of {}",
            current.operation.as_str(),
            if n == 1 { "" } else { "s" },
            current.stack
        )),
    }
    if !unseen_resources.is_empty() {
        basis.push(format!(
            "{} resource(s) never seen before ({}), estimated from their type",
            unseen_resources.len(),
            unseen_resources.join(", ")
        ));
    }
    if beyond_all {
        basis.push("already slower than every past run".into());
    }
    basis.extend(ctx.notes);

    let secs = |x: f64| x.max(0.0).round() as u64;
    let plus = |x: f64| now + TimeDelta::seconds(secs(x) as i64);
    let completion = |x: f64| match (phase, &current.finished) {
        (Phase::Finished, Some((_, f))) => *f,
        _ => plus(x),
    };
    Estimate {
        stack: current.stack.clone(),
        operation: current.operation,
        phase,
        started_at: current.started_at,
        now,
        elapsed_seconds: secs(elapsed),
        remaining_seconds: secs(p50),
        remaining_low_seconds: secs(p10),
        remaining_high_seconds: secs(p90),
        estimated_completion: completion(p50),
        completion_low: completion(p10),
        completion_high: completion(p90),
        progress,
        confidence,
        slower_than_usual,
        usual,
        laggards,
        unseen_resources,
        clock_skew_seconds,
        basis: basis.join("; "),
    }
}

fn usual_of(runs: &[&HistoryRecord]) -> Option<Usual> {
    if runs.is_empty() {
        return None;
    }
    let mut totals: Vec<f64> = runs
        .iter()
        .take(model::MAX_PLANS * 2)
        .map(|r| r.seconds())
        .collect();
    let secs = |x: f64| x.max(0.0).round() as u64;
    Some(Usual {
        runs: totals.len(),
        low_seconds: secs(quantile(&mut totals, 0.1)),
        median_seconds: secs(quantile(&mut totals, 0.5)),
        high_seconds: secs(quantile(&mut totals, 0.9)),
        max_seconds: secs(quantile(&mut totals, 1.0)),
    })
}

fn laggards(knowledge: &Knowledge, forward: &[Seen], now_s: f64) -> Vec<Laggard> {
    forward
        .iter()
        .filter(|s| s.finish.is_none())
        .filter_map(|s| {
            let (m, _) = knowledge.model(&s.logical_id, &s.resource_type, &s.action, false);
            let running = now_s - s.start;
            let high = m.quantile(0.9);
            (running > high).then(|| Laggard {
                logical_id: s.logical_id.clone(),
                resource_type: s.resource_type.clone(),
                running_seconds: running.round() as u64,
                usual_seconds: m.median().round() as u64,
                high_seconds: high.round() as u64,
            })
        })
        .collect()
}

struct Ctx<'a> {
    knowledge: &'a Knowledge,
    now_s: f64,
    rng: Rng,
    notes: Vec<String>,
    low_confidence: bool,
    medium_confidence: bool,
    /// The simulated futures in which no resource took its less likely explanation: not a
    /// slow outlier for a resource not yet started, nor for a running one whose elapsed time
    /// a usual run still explains (one already far past its usual time stays slow: that is
    /// evidence, not a guess).
    typical: Option<Vec<f64>>,
}

impl Ctx<'_> {
    fn model(
        &self,
        logical_id: &str,
        resource_type: &str,
        action: &str,
        undo: bool,
    ) -> DurationModel {
        self.knowledge
            .model(logical_id, resource_type, action, undo)
            .0
    }

    /// How much faster or slower than usual this run's finished resources were, as a log
    /// ratio: the precision-weighted mean of their deviations, shrunk towards zero by a prior
    /// spread of whole runs ([`RUN_SPREAD`]). Each deviation is capped at two spreads from the
    /// median deviation, so one slow outlier does not make the whole run "slow", while a run
    /// where everything is slow is recognised as such.
    fn speed_shift(&self, forward: &[Seen]) -> f64 {
        let deviations: Vec<(f64, f64)> = forward
            .iter()
            .filter_map(|s| {
                let d = s.finish? - s.start;
                let (m, source) =
                    self.knowledge
                        .model(&s.logical_id, &s.resource_type, &s.action, false);
                (matches!(source, Source::Resource(_)) && d >= 3.0)
                    .then(|| (d.ln() - m.mu, m.sigma))
            })
            .collect();
        let centre = if deviations.len() >= 3 {
            let mut r: Vec<f64> = deviations.iter().map(|(r, _)| *r).collect();
            quantile(&mut r, 0.5)
        } else {
            0.0
        };
        let (mut num, mut den) = (0.0, 1.0 / (RUN_SPREAD * RUN_SPREAD));
        for (r, sigma) in deviations {
            let r = r.clamp(centre - 2.0 * sigma, centre + 2.0 * sigma);
            let precision = 1.0 / (sigma * sigma);
            num += r * precision;
            den += precision;
        }
        (num / den).clamp(-MAX_SHIFT, MAX_SHIFT)
    }

    /// Forward simulation over past runs' plans. Returns remaining-time samples and the mean
    /// number of resources still to start.
    fn with_plans(&mut self, plans: &[Plan], forward: &[Seen]) -> (Vec<f64>, f64) {
        let now = self.now_s;
        let shift = self.speed_shift(forward);
        let seen_index: HashMap<(&str, &str), usize> = forward
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.logical_id.as_str(), s.action.as_str()), i))
            .collect();
        // Per plan: each node's match in this run, and which of this run's resources it lacks.
        let matches: Vec<Vec<Option<usize>>> = plans
            .iter()
            .map(|p| {
                p.nodes
                    .iter()
                    .map(|n| {
                        seen_index
                            .get(&(n.logical_id.as_str(), n.action.as_str()))
                            .copied()
                    })
                    .collect()
            })
            .collect();
        let weights: Vec<f64> = plans
            .iter()
            .enumerate()
            .map(|(rank, p)| {
                let missing = forward
                    .iter()
                    .filter(|s| {
                        !p.index
                            .contains_key(&(s.logical_id.clone(), s.action.clone()))
                    })
                    .count();
                0.85f64.powi(rank as i32) * 0.2f64.powi(missing as i32)
            })
            .collect();
        // Duration models, shifted by this run's observed speed.
        let mut models: HashMap<(String, String), DurationModel> = HashMap::new();
        let mut model_of = |logical: &str, rtype: &str, action: &str| {
            *models
                .entry((logical.to_string(), action.to_string()))
                .or_insert_with(|| {
                    let mut m = self.knowledge.model(logical, rtype, action, false).0;
                    m.mu += shift;
                    m
                })
        };
        let node_models: Vec<Vec<DurationModel>> = plans
            .iter()
            .map(|p| {
                p.nodes
                    .iter()
                    .map(|n| model_of(&n.logical_id, &n.resource_type, &n.action))
                    .collect()
            })
            .collect();
        let seen_models: Vec<DurationModel> = forward
            .iter()
            .map(|s| model_of(&s.logical_id, &s.resource_type, &s.action))
            .collect();

        let tails: Vec<f64> = plans.iter().map(|p| p.tail).collect();
        let tail_model = match dist::robust_log_stats(&tails) {
            Some((mu, sigma)) => DurationModel {
                mu,
                sigma: sigma.max(0.3),
                slow: model::SLOW_OUTLIER,
            },
            None => DurationModel::from_median(10.0, 0.5, model::SLOW_OUTLIER),
        };
        let mut samples = Vec::with_capacity(SAMPLES);
        let mut pending_sum = 0usize;
        let mut typical = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            let k = self.rng.pick(&weights);
            let plan = &plans[k];
            let mut finish = vec![0.0f64; plan.nodes.len()];
            let mut known = vec![false; plan.nodes.len()];
            let mut in_plan = vec![false; forward.len()];
            let mut end = 0.0f64;
            let mut outlier = false;
            for (i, node) in plan.nodes.iter().enumerate() {
                let (parent_finish, parent_known) = match node.parent {
                    Some(j) => (finish[j], known[j]),
                    None => (0.0, true),
                };
                let ready = parent_finish + node.gap;
                match matches[k][i] {
                    Some(o) => {
                        in_plan[o] = true;
                        let s = &forward[o];
                        match s.finish {
                            Some(f) => {
                                finish[i] = f;
                                known[i] = true;
                            }
                            None => {
                                let (d, odd) = seen_models[o]
                                    .sample_beyond_flagged(now - s.start, &mut self.rng);
                                outlier |= odd;
                                finish[i] = s.start + d;
                            }
                        }
                    }
                    None if parent_known && now > ready + SKIP_GRACE => {
                        // Its trigger finished long ago and it never started: this change
                        // does not touch it. Its dependants wait only for its trigger.
                        finish[i] = parent_finish;
                        known[i] = true;
                    }
                    None => {
                        pending_sum += 1;
                        let start = ready.max(now);
                        let (d, slow) = node_models[k][i].sample_flagged(&mut self.rng);
                        outlier |= slow;
                        finish[i] = start + d;
                    }
                }
                end = end.max(finish[i]);
            }
            // Resources this plan does not have: only their own time is known.
            for (o, s) in forward.iter().enumerate().filter(|(o, _)| !in_plan[*o]) {
                let f = match s.finish {
                    Some(f) => f,
                    None => {
                        let (d, odd) =
                            seen_models[o].sample_beyond_flagged(now - s.start, &mut self.rng);
                        outlier |= odd;
                        s.start + d
                    }
                };
                end = end.max(f);
            }
            // Wrap-up after the last resource: the plan's, or, once it has begun, the usual
            // wrap-up given how long this one has lasted so far.
            let tail = if end <= now {
                tail_model.sample_beyond(now - end, &mut self.rng)
            } else {
                plan.tail
            };
            let remaining = (end + tail - now).max(0.0);
            samples.push(remaining);
            if !outlier {
                typical.push(remaining);
            }
        }
        self.typical = Some(typical);
        (samples, pending_sum as f64 / SAMPLES as f64)
    }

    /// No comparable run: the running resources from their types, plus the resources still
    /// to come (when the change set's size is known) as one more wave; without that, a generic
    /// operation given how long this one has already run.
    fn without_plans(
        &mut self,
        forward: &[Seen],
        expected_total: Option<usize>,
    ) -> (Vec<f64>, usize) {
        self.low_confidence = true;
        let now = self.now_s;
        let pending = expected_total.map(|t| t.saturating_sub(forward.len()));
        let generic = DurationModel::from_median(
            priors::GENERIC_OPERATION.0,
            priors::GENERIC_OPERATION.1,
            0.0,
        );
        let generic_resource = {
            let (median, sigma) = priors::prior("", "CREATE");
            DurationModel::from_median(median, sigma, model::SLOW_OUTLIER)
        };
        let models: Vec<DurationModel> = forward
            .iter()
            .map(|s| self.model(&s.logical_id, &s.resource_type, &s.action, false))
            .collect();
        let mut samples = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            let mut end = now;
            for (s, m) in forward.iter().zip(&models) {
                let f = match s.finish {
                    Some(f) => f,
                    None => s.start + m.sample_beyond(now - s.start, &mut self.rng),
                };
                end = end.max(f);
            }
            match pending {
                Some(n) => {
                    let wave_start = end;
                    for _ in 0..n {
                        end = end.max(wave_start + generic_resource.sample(&mut self.rng));
                    }
                }
                None => {
                    let whole = generic.sample_beyond(now, &mut self.rng);
                    end = end.max(whole);
                }
            }
            samples.push(end - now);
        }
        self.notes.push(match pending {
            Some(n) => format!("{n} resource(s) still to start, estimated from generic priors"),
            None => "estimated from resource-type priors and a generic deployment time".into(),
        });
        (samples, pending.unwrap_or(0))
    }

    /// A rollback: each resource the operation created or updated is undone (deleted or
    /// updated back) after the resources that depended on it.
    fn rollback(
        &mut self,
        forward: &[Seen],
        undoing: &[Seen],
        rollback_start: f64,
    ) -> (Vec<f64>, Progress) {
        let now = self.now_s;
        // Forward resources in start order, with their triggers in this run.
        let mut order: Vec<usize> = (0..forward.len()).collect();
        order.sort_by(|a, b| forward[*a].start.total_cmp(&forward[*b].start));
        let items: Vec<(f64, Option<f64>)> = order
            .iter()
            .map(|i| (forward[*i].start, forward[*i].finish))
            .collect();
        let parents = infer_parents(&items);
        let undo_action = |a: &str| match a {
            "CREATE" | "IMPORT" => Some("DELETE"),
            "UPDATE" => Some("UPDATE"),
            _ => None,
        };
        // What gets undone, and its rollback-phase state if it has one.
        let targets: Vec<Option<(&Seen, &str, Option<&Seen>)>> = order
            .iter()
            .map(|i| {
                let s = &forward[*i];
                let action = undo_action(&s.action)?;
                let state = undoing
                    .iter()
                    .find(|u| u.logical_id == s.logical_id && u.action == action);
                Some((s, action, state))
            })
            .collect();
        let mut own_history = true;
        let models: Vec<Option<DurationModel>> = targets
            .iter()
            .map(|t| {
                t.map(|(s, action, _)| {
                    let (m, source) =
                        self.knowledge
                            .model(&s.logical_id, &s.resource_type, action, true);
                    own_history &= matches!(source, Source::Resource(_));
                    m
                })
            })
            .collect();
        if own_history && !targets.is_empty() {
            self.medium_confidence = true;
        } else {
            self.low_confidence = true;
        }
        let total = targets.iter().flatten().count();
        let done = targets
            .iter()
            .flatten()
            .filter(|(_, _, st)| st.is_some_and(|u| u.finish.is_some()))
            .count();
        let mut samples = Vec::with_capacity(SAMPLES);
        let n = order.len();
        for _ in 0..SAMPLES {
            // Children first: reverse start order.
            let mut ready = vec![rollback_start; n];
            let mut ready_known = vec![true; n];
            let mut end = now;
            for pos in (0..n).rev() {
                let (finish, known) = match (&targets[pos], &models[pos]) {
                    (Some((_, _, Some(u))), Some(m)) => match u.finish {
                        Some(f) => (f, true),
                        None => (
                            u.start + m.sample_beyond(now - u.start, &mut self.rng),
                            false,
                        ),
                    },
                    (Some((_, _, None)), Some(m)) => {
                        if ready_known[pos] && now > ready[pos] + SKIP_GRACE {
                            (ready[pos], true) // nothing to undo for it
                        } else {
                            (ready[pos].max(now) + m.sample(&mut self.rng), false)
                        }
                    }
                    _ => (ready[pos], ready_known[pos]),
                };
                end = end.max(finish);
                if let (Some(p), _) = parents[pos] {
                    ready[p] = ready[p].max(finish);
                    ready_known[p] &= known;
                }
            }
            samples.push(end + ROLLBACK_TAIL - now);
        }
        self.notes.push(format!(
            "rolling back: {done} of {total} resource(s) undone{}",
            if own_history {
                ""
            } else {
                ", undo times from resource-type priors"
            }
        ));
        (samples, Progress { done, total })
    }
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
