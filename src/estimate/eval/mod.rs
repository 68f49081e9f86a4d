//! The estimator's evaluation: deployment histories from generator families that differ in
//! structure, and the real streams, replayed the way the action and the CLI see them.
//!
//! Every family writes stack events (the AWS CLI's shape); history records come from those
//! events through `history::events`, and the running operation is the trace of its events up
//! to the moment of the estimate, so the estimator sees nothing a user would not. For each
//! deployment after the warm-up, at 0 % (just started: the prediction a deploy window is
//! planned on), 25 %, 50 % and 75 % of its actual duration, the estimate is compared with what
//! happened, and with the baseline: the mean (and the median) of the stack's last 10
//! durations of the same operation, minus the time already elapsed.
//!
//! Used by `examples/estimate_eval.rs` (the full run in docs/performance.md) and
//! `tests/estimate_eval.rs` (a smaller run that guards the goals). Deterministic for a seed.

pub mod engine;
pub mod families;
mod ours;
pub mod real;
mod report;

use chrono::{DateTime, TimeDelta, Utc};

pub use ours::{histories, trace_at};
pub use real::Timings;
pub use report::{Report, Row};

use super::calibrate::Calibration;
use super::dist::quantile;
use super::{Options, estimate_with};
use crate::history::events::{StackEvent, records_from_history, trace};
use crate::history::record::{HistoryRecord, Operation, Outcome};
use engine::Deployment;

/// A generator family (or the real histories).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// The three stacks the estimator was first written against.
    Ours,
    /// Random shapes in dependency waves, per-resource change probabilities.
    Waves,
    /// Per-deployment breadth of change from a wide distribution.
    Breadth,
    /// CREATE/UPDATE/DELETE with failures and rollbacks, adds, removes, replacements.
    Mixes,
    /// Slow region days and stuck resources.
    OutlierDays,
    /// SAM-shaped stacks with the real streams' resource timings.
    RealTimings,
    /// The real multi-operation histories (streams 22–26), as they happened.
    RealHistories,
}

impl Family {
    pub const ALL: [Family; 7] = [
        Family::Ours,
        Family::Waves,
        Family::Breadth,
        Family::Mixes,
        Family::OutlierDays,
        Family::RealTimings,
        Family::RealHistories,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Ours => "ours",
            Family::Waves => "waves",
            Family::Breadth => "breadth",
            Family::Mixes => "mixes",
            Family::OutlierDays => "outlier-days",
            Family::RealTimings => "real-timings",
            Family::RealHistories => "real-histories",
        }
    }

    /// The families the method was decided on; the others were held out (docs/performance.md).
    pub fn decided_on(self) -> bool {
        matches!(self, Family::Ours | Family::Waves)
    }

    pub fn parse(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// What the estimator is given besides history and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// As the action runs it: calibrated on the stack's own history.
    Calibrated,
    /// Without the calibration (the per-resource model alone), to show what it adds.
    Raw,
}

#[derive(Debug, Clone)]
pub struct EvalConfig {
    pub seed: u64,
    /// Generated worlds per family (seeds `seed`, `seed + 1`, …), pooled.
    pub seeds: u64,
    /// Deployments generated per world (the first `warmup` only build history).
    pub deployments: usize,
    pub warmup: usize,
    /// History records the estimator sees (the newest), as the action reads them.
    pub window: usize,
    pub families: Vec<Family>,
    /// Also estimate with each deployment's change set (mode deploy).
    pub change_sets: bool,
    pub variant: Variant,
    /// The real streams' texts (tests/fixtures/real-events/*.json), for the two real families.
    pub real_streams: Vec<String>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            seed: 20_260_114,
            seeds: 20,
            deployments: 50,
            warmup: 10,
            window: crate::history::store::ESTIMATE_WINDOW,
            families: Family::ALL.to_vec(),
            change_sets: true,
            variant: Variant::Calibrated,
            real_streams: Vec::new(),
        }
    }
}

/// Points of each run: 0 % (the first estimate, before any resource has started), 25, 50, 75 %.
pub const POINTS: [f64; 4] = [0.0, 0.25, 0.5, 0.75];

/// One estimate against what happened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcomes {
    pub point: usize,
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    pub actual: f64,
    pub baseline_mean: f64,
    pub baseline_median: f64,
}

/// The baselines: the mean and the median of the stack's last 10 durations of the same
/// operation (cancelled runs left out), minus the time already elapsed, never below zero.
fn baselines(history: &[HistoryRecord], stack: &str, op: Operation, elapsed: f64) -> (f64, f64) {
    let mut last: Vec<f64> = history
        .iter()
        .rev()
        .filter(|r| r.stack == stack && r.operation == op && r.outcome != Outcome::Cancelled)
        .take(10)
        .map(|r| r.seconds())
        .collect();
    if last.is_empty() {
        return (0.0, 0.0);
    }
    let mean = last.iter().sum::<f64>() / last.len() as f64;
    let median = quantile(&mut last, 0.5);
    ((mean - elapsed).max(0.0), (median - elapsed).max(0.0))
}

fn at(base: DateTime<Utc>, seconds: f64) -> DateTime<Utc> {
    base + TimeDelta::milliseconds((seconds * 1000.0).round() as i64)
}

/// Replays one stack's deployments; returns (without change set, with change set) outcomes.
fn replay(config: &EvalConfig, deployments: &[Deployment]) -> (Vec<Outcomes>, Vec<Outcomes>) {
    // Each deployment's own record, as `history collect` would build it from its events.
    let records: Vec<Option<HistoryRecord>> = deployments
        .iter()
        .map(|d| records_from_history(&d.events, "eval-").pop())
        .collect();
    let mut plain = Vec::new();
    let mut with_cs = Vec::new();
    for i in config.warmup.min(deployments.len())..deployments.len() {
        let d = &deployments[i];
        let history: Vec<HistoryRecord> = records[i.saturating_sub(config.window)..i]
            .iter()
            .flatten()
            .cloned()
            .collect();
        let Some(full) = trace(&d.events) else {
            continue;
        };
        let total = (d.finished_at - d.started_at).num_milliseconds() as f64 / 1000.0;
        let variants: Vec<(bool, &mut Vec<Outcomes>)> =
            if config.change_sets && d.change_set.is_some() {
                vec![(false, &mut plain), (true, &mut with_cs)]
            } else {
                vec![(false, &mut plain)]
            };
        for (use_cs, out) in variants {
            let change_set = if use_cs { d.change_set.clone() } else { None };
            let calibration = match config.variant {
                Variant::Calibrated => Some(Calibration::of(
                    &history,
                    &full.stack,
                    full.operation,
                    change_set.is_some(),
                )),
                Variant::Raw => None,
            };
            let options = Options {
                expected_total: None,
                change_set,
                calibration,
            };
            for (p, f) in POINTS.iter().enumerate() {
                let elapsed = total * f;
                let now = at(d.started_at, elapsed);
                let seen: Vec<StackEvent> = d
                    .events
                    .iter()
                    .filter(|e| e.timestamp <= now)
                    .cloned()
                    .collect();
                let Some(tr) = trace(&seen) else { continue };
                let e = estimate_with(&history, &tr, now, &options);
                let (mean, median) = baselines(&history, &full.stack, full.operation, elapsed);
                out.push(Outcomes {
                    point: p,
                    estimate: e.remaining_seconds as f64,
                    low: e.remaining_low_seconds as f64,
                    high: e.remaining_high_seconds as f64,
                    actual: total - elapsed,
                    baseline_mean: mean,
                    baseline_median: median,
                });
            }
        }
    }
    (plain, with_cs)
}

/// The worlds of a family: one or more stacks' deployments each.
fn worlds(config: &EvalConfig, family: Family, timings: &Timings) -> Vec<Vec<Deployment>> {
    let seeds = config.seed..config.seed + config.seeds.max(1);
    let n = config.deployments;
    match family {
        Family::Ours => seeds
            .flat_map(|s| ours::deployments(s, n).into_iter().map(|(_, d)| d))
            .collect(),
        Family::Waves => seeds.map(|s| families::waves(s, n).1).collect(),
        Family::Breadth => seeds.map(|s| families::breadth(s, n).1).collect(),
        Family::Mixes => seeds.map(|s| families::mixes(s, n).1).collect(),
        Family::OutlierDays => seeds.map(|s| families::outlier_days(s, n).1).collect(),
        Family::RealTimings => seeds
            .map(|s| families::real_timings(s, n, timings).1)
            .collect(),
        Family::RealHistories => real::histories(&config.real_streams, 3)
            .into_iter()
            .map(|(_, d)| d)
            .collect(),
    }
}

/// `records` history records of one stack of `resources` resources in dependency waves, each
/// deployment changing every one of them, and the trace of the next deployment half-way: the
/// calibration's and the estimator's worst case, for measuring their cost.
pub fn bench_history(
    resources: usize,
    records: usize,
) -> (Vec<HistoryRecord>, crate::history::events::Trace) {
    let mut rng = super::dist::Rng::new(7);
    let (_, deployments) = families::waves_of(&mut rng, 7, resources, records + 1, true);
    let history: Vec<HistoryRecord> = deployments[..records]
        .iter()
        .filter_map(|d| records_from_history(&d.events, "bench-").pop())
        .collect();
    let last = &deployments[records];
    let half = last.started_at + (last.finished_at - last.started_at) / 2;
    let seen: Vec<StackEvent> = last
        .events
        .iter()
        .filter(|e| e.timestamp <= half)
        .cloned()
        .collect();
    let current = trace(&seen).expect("a started deployment");
    (history, current)
}

/// Runs the evaluation.
pub fn run(config: &EvalConfig) -> Report {
    let timings = Timings::from_streams(&config.real_streams);
    let started = std::time::Instant::now();
    let mut report = Report::default();
    for &family in &config.families {
        if matches!(family, Family::RealTimings | Family::RealHistories) && timings.is_empty() {
            continue;
        }
        // Real histories are few and short: two operations of warm-up, the whole history.
        let cfg = if family == Family::RealHistories {
            EvalConfig {
                warmup: 2,
                ..config.clone()
            }
        } else {
            config.clone()
        };
        let mut plain = Vec::new();
        let mut with_cs = Vec::new();
        for world in worlds(&cfg, family, &timings) {
            let (p, c) = replay(&cfg, &world);
            plain.extend(p);
            with_cs.extend(c);
        }
        report.add(family, &plain, &with_cs);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}
