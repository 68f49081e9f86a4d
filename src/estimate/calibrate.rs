//! Self-calibration: the stack's own past runs replayed through the estimator, each against the
//! runs before it, at 0 %, 25 %, 50 % and 75 % of its duration (as the evaluation does), and
//! what that backtest shows applied to the run in progress:
//!
//! - which model to believe: the per-resource model, the duration-level conditional median
//!   (`whole.rs`), a blend of the two, or the baseline, whichever erred least on this stack
//!   (per phase of the run: its first estimate, early, late; a phase with too few replayed
//!   points borrows the choice of all phases, and with fewer still nothing is applied);
//! - how wide the range must be: the low and high ends are scaled so that, on the replayed
//!   runs, about one in ten ended before the low and one in ten after the high (split
//!   conformal scaling, shrunk towards no scaling when the replay is short).
//!
//! Computed once per step (≤ 50 ms for 40 records of 50 resources in the release build,
//! docs/performance.md), then applied to every estimate of the step.

use std::collections::HashMap;
use std::rc::Rc;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use super::model::{Knowledge, Plan};
use super::prepared::Prepared;
use super::whole;
use super::{Options, Phase, changes};
use crate::history::events::trace_at;
use crate::history::record::{HistoryRecord, Operation, Outcome};

/// Where each past run is replayed, as fractions of its duration.
const CHECKPOINTS: [f64; 4] = [0.0, 0.25, 0.5, 0.75];
/// Simulated futures per replayed estimate: the backtest needs errors, not fine quantiles.
const BACKTEST_SAMPLES: usize = 64;
/// Weights of the per-resource model tried against the conditional median.
const WEIGHTS: [f64; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];
/// Replayed points a phase needs for a choice of its own; all phases together need as many
/// for any calibration at all.
const MIN_POINTS: usize = 8;
/// Replayed runs needed for any calibration: a blend or a scale chosen on fewer would mostly
/// follow their noise.
const MIN_RUNS: usize = 5;
/// The per-resource model is kept unless another choice erred less on significantly more of
/// the replayed points than it erred more (one-sided sign test at this level): on a few
/// dozen points, a smaller total error alone is mostly noise.
const SIGNIFICANCE: f64 = 0.05;
/// Prior weight, in points, of "no scaling" against the replayed scale.
const SCALE_PRIOR: f64 = 4.0;
/// A range claimed at 80 % is never narrowed to less than half on a few dozen replayed
/// points (a too narrow range misleads more than a too wide one), nor widened past 10×.
const MIN_SCALE: f64 = 0.5;
const MAX_SCALE: f64 = 10.0;

/// One replayed estimate: the models' (P10, median, P90) and what happened.
#[derive(Debug, Clone, Copy)]
struct Point {
    phase: usize,
    actual: f64,
    per_resource: (f64, f64, f64),
    conditional: (f64, f64, f64),
    baseline: f64,
}

/// What the backtest chose for one phase of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Choice {
    /// Weight of the per-resource model; the rest goes to the conditional median.
    per_resource: f64,
    /// The baseline instead of either.
    baseline: bool,
    low_scale: f64,
    high_scale: f64,
    points: usize,
}

/// The calibration of one stack's operation, from its own history.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Calibration {
    /// Past runs replayed, and the estimates that gave.
    pub runs: usize,
    pub points: usize,
    phases: [Option<Choice>; 3],
    pooled: Option<Choice>,
}

/// What the calibration did to one estimate (in the estimate's JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// Past runs replayed and the estimates that gave.
    pub runs: usize,
    pub points: usize,
    /// Weight of the per-resource model (the rest: past durations given the elapsed time).
    pub per_resource_weight: f64,
    /// The baseline (mean of the last 10 durations) was used instead.
    pub baseline: bool,
    /// How much the low and the high distance from the estimate were scaled.
    pub low_scale: f64,
    pub high_scale: f64,
}

impl Applied {
    pub fn describe(&self) -> String {
        let model = if self.baseline {
            "the mean of recent durations".to_string()
        } else if self.per_resource_weight >= 1.0 {
            "the per-resource model".to_string()
        } else if self.per_resource_weight <= 0.0 {
            "past durations given the time elapsed".to_string()
        } else {
            format!(
                "{:.0} % per-resource model, {:.0} % past durations",
                self.per_resource_weight * 100.0,
                (1.0 - self.per_resource_weight) * 100.0
            )
        };
        format!(
            "calibrated on {} past run(s) ({} replayed estimates): {model}, range ×{:.2} low / ×{:.2} high",
            self.runs, self.points, self.low_scale, self.high_scale
        )
    }
}

/// The phase of a run an estimate is made in: its first estimate, early, late (by the time
/// elapsed against the usual duration).
fn phase(elapsed: f64, usual_median: Option<f64>) -> usize {
    match usual_median {
        _ if elapsed <= 0.0 => 0,
        Some(u) if u > 0.0 && elapsed < 0.1 * u => 0,
        Some(u) if u > 0.0 && elapsed >= 0.5 * u => 2,
        _ => 1,
    }
}

fn blend(p: &Point, c: &Choice) -> (f64, f64, f64) {
    if c.baseline {
        let (l, m, h) = p.conditional;
        return (p.baseline - (m - l), p.baseline, p.baseline + (h - m));
    }
    let w = c.per_resource;
    let mix = |a: f64, b: f64| w * a + (1.0 - w) * b;
    (
        mix(p.per_resource.0, p.conditional.0),
        mix(p.per_resource.1, p.conditional.1),
        mix(p.per_resource.2, p.conditional.2),
    )
}

/// The smallest scale `s` such that about 90 % of `needs` are at most `s` (split conformal:
/// the ⌈0.9 (n + 1)⌉-th smallest), shrunk towards 1 by [`SCALE_PRIOR`].
fn scale(mut needs: Vec<f64>) -> f64 {
    let n = needs.len();
    if n == 0 {
        return 1.0;
    }
    needs.sort_by(f64::total_cmp);
    let k = ((0.9 * (n + 1) as f64).ceil() as usize).clamp(1, n);
    let s = needs[k - 1];
    ((n as f64 * s + SCALE_PRIOR) / (n as f64 + SCALE_PRIOR)).clamp(MIN_SCALE, MAX_SCALE)
}

/// One-sided sign test: `a` errs less than `b` on more points than chance allows.
fn significantly_better(a: &[f64], b: &[f64]) -> bool {
    let wins = a.iter().zip(b).filter(|(x, y)| x < y).count();
    let losses = a.iter().zip(b).filter(|(x, y)| x > y).count();
    let n = wins + losses;
    if wins <= losses {
        return false;
    }
    // P(at least `wins` of `n` fair coin flips), summed in logs.
    let ln_choose = |k: usize| -> f64 {
        (1..=k)
            .map(|i| ((n - k + i) as f64).ln() - (i as f64).ln())
            .sum()
    };
    let tail: f64 = (wins..=n)
        .map(|k| (ln_choose(k) - n as f64 * std::f64::consts::LN_2).exp())
        .sum();
    tail < SIGNIFICANCE
}

fn choose(points: &[&Point]) -> Option<Choice> {
    if points.len() < MIN_POINTS {
        return None;
    }

    let errors = |c: &Choice| -> Vec<f64> {
        points
            .iter()
            .map(|p| (blend(p, c).1 - p.actual).abs())
            .collect()
    };
    let base = |w: f64, baseline: bool| Choice {
        per_resource: w,
        baseline,
        low_scale: 1.0,
        high_scale: 1.0,
        points: points.len(),
    };
    let default = base(1.0, false);
    let reference = errors(&default);
    let mut best = (default, reference.iter().sum::<f64>());
    for c in WEIGHTS
        .iter()
        .map(|w| base(*w, false))
        .chain([base(0.0, true)])
    {
        let e = errors(&c);
        let total: f64 = e.iter().sum();
        if total < best.1 && significantly_better(&e, &reference) {
            best = (c, total);
        }
    }
    let mut c = best.0;
    // Distances are floored at a second (and 5 % of the estimate) so that a range of zero
    // width can still be scaled.
    let floor = |m: f64| 1.0 + 0.05 * m.abs();
    let (mut lows, mut highs) = (Vec::new(), Vec::new());
    for p in points {
        let (l, m, h) = blend(p, &c);
        lows.push(((m - p.actual) / (m - l).max(floor(m))).max(0.0));
        highs.push(((p.actual - m) / (h - m).max(floor(m))).max(0.0));
    }
    c.low_scale = scale(lows);
    c.high_scale = scale(highs);
    Some(c)
}

impl Calibration {
    /// Replays `history`'s runs of `operation` on `stack` (oldest first, each against the
    /// runs before it); `with_change_set`: each as if its change set had been given (the one
    /// its own resources show), as in mode deploy.
    pub fn of(
        history: &[HistoryRecord],
        stack: &str,
        operation: Operation,
        with_change_set: bool,
    ) -> Calibration {
        let mut records: Vec<&HistoryRecord> =
            history.iter().filter(|r| r.stack == stack).collect();
        records.sort_by_key(|r| r.started_at);
        let mut knowledge = Knowledge::default();
        let mut plans: HashMap<*const HistoryRecord, Rc<Plan>> = HashMap::new();
        let mut points = Vec::new();
        let mut runs = 0;
        // Only the newer half is replayed: those runs had most of the history before them, as
        // the run in progress has all of it (older ones, replayed against a few runs, err more
        // and would widen every range).
        let first = (records.len() / 2).max(1);
        for j in 0..records.len() {
            let run = records[j];
            if j >= first && run.operation == operation && run.outcome != Outcome::Cancelled {
                let prepared =
                    Prepared::with_plans(&records[..j], &knowledge, stack, operation, |r| {
                        plans
                            .entry(r as *const HistoryRecord)
                            .or_insert_with(|| Rc::new(Plan::from_record(r)))
                            .clone()
                    });
                let before = points.len();
                replay(&prepared, run, with_change_set, &mut points);
                runs += usize::from(points.len() > before);
            }
            knowledge.add(run, stack);
        }
        let all: Vec<&Point> = points.iter().collect();
        let pooled = if runs >= MIN_RUNS { choose(&all) } else { None };
        let mut phases = [None; 3];
        if pooled.is_some() {
            for (k, slot) in phases.iter_mut().enumerate() {
                let here: Vec<&Point> = points.iter().filter(|p| p.phase == k).collect();
                *slot = choose(&here);
            }
        }
        Calibration {
            runs,
            points: points.len(),
            phases,
            pooled,
        }
    }

    /// The per-resource model's (P10, median, P90) calibrated, or None when the history was
    /// too short to say anything.
    pub(crate) fn apply(
        &self,
        per_resource: (f64, f64, f64),
        durations: Option<whole::Whole>,
        elapsed: f64,
        usual_median: Option<f64>,
    ) -> Option<((f64, f64, f64), Applied)> {
        let mut c = self.phases[phase(elapsed, usual_median)].or(self.pooled)?;
        let point = Point {
            phase: 0,
            actual: 0.0,
            per_resource,
            conditional: durations.map_or(per_resource, |d| d.conditional),
            baseline: durations.map_or(per_resource.1, |d| d.baseline),
        };
        if durations.is_none() {
            c.per_resource = 1.0;
            c.baseline = false;
        }
        let (l, m, h) = blend(&point, &c);
        let floor = 1.0 + 0.05 * m.abs();
        let low = (m - c.low_scale * (m - l).max(floor)).max(0.0);
        let high = m + c.high_scale * (h - m).max(floor);
        let applied = Applied {
            runs: self.runs,
            points: self.points,
            per_resource_weight: if c.baseline { 0.0 } else { c.per_resource },
            baseline: c.baseline,
            low_scale: c.low_scale,
            high_scale: c.high_scale,
        };
        Some(((low, m.max(0.0), high), applied))
    }
}

/// The replayed estimates of one past run.
fn replay(
    prepared: &Prepared,
    run: &HistoryRecord,
    with_change_set: bool,
    points: &mut Vec<Point>,
) {
    if prepared.runs.is_empty() && !with_change_set {
        // Nothing to replay against but priors: not this stack's estimator.
        return;
    }
    let options = Options {
        change_set: with_change_set.then(|| changes::of_record(run)),
        ..Options::default()
    };
    let total = run.seconds();
    for f in CHECKPOINTS {
        let elapsed = total * f;
        let trace = trace_at(run, elapsed);
        if trace.rollback_started_at.is_some() {
            continue;
        }
        let now = run.started_at + TimeDelta::milliseconds((elapsed * 1000.0).round() as i64);
        let parts = prepared.parts(&trace, now, &options, BACKTEST_SAMPLES);
        let e = &parts.estimate;
        // As at run time: only a run in progress like the runs before it is calibrated.
        if e.phase != Phase::Running || parts.novel {
            continue;
        }
        let a = (
            e.remaining_low_seconds as f64,
            e.remaining_seconds as f64,
            e.remaining_high_seconds as f64,
        );
        let d = parts.durations;
        points.push(Point {
            phase: phase(elapsed, e.usual.map(|u| u.median_seconds as f64)),
            actual: total - elapsed,
            per_resource: a,
            conditional: d.map_or(a, |d| d.conditional),
            baseline: d.map_or(a.1, |d| d.baseline),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_model_is_chosen_only_when_it_wins_beyond_chance() {
        // 9 wins of 10: p ≈ 0.011; 7 of 10: p ≈ 0.17.
        let b = [10.0; 10];
        let mut a = [5.0; 10];
        a[0] = 20.0;
        assert!(significantly_better(&a, &b));
        let mut c = [5.0; 10];
        c[..3].copy_from_slice(&[20.0; 3]);
        assert!(!significantly_better(&c, &b));
        assert!(!significantly_better(&b, &b), "ties are no evidence");
    }

    #[test]
    fn scales_cover_nine_in_ten_and_lean_on_no_scaling_when_short() {
        let needs: Vec<f64> = (1..=20).map(|i| i as f64 / 10.0).collect();
        // The 19th of 20 needs is 1.9, shrunk towards 1 by 4 points of prior.
        let s = scale(needs);
        assert!((s - (20.0 * 1.9 + 4.0) / 24.0).abs() < 1e-9, "{s}");
        assert_eq!(scale(vec![]), 1.0);
        assert_eq!(scale(vec![0.0; 30]), MIN_SCALE);
    }
}
