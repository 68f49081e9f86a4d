//! The evaluation's figures: per family and pooled, at each point of the runs, the median
//! absolute error against the baselines' and how often [low, high] held.

use super::{Family, Outcomes, POINTS};
use crate::estimate::dist::quantile;

/// Results at one point of the runs.
#[derive(Debug, Clone)]
pub struct Row {
    /// Fraction of the actual duration (0 = the first estimate).
    pub at: f64,
    pub runs: usize,
    pub estimator_mae: f64,
    /// The seed's baseline: mean of the last 10 durations.
    pub baseline_mae: f64,
    /// The median of the last 10 durations instead.
    pub baseline_median_mae: f64,
    /// Fraction of runs whose actual remaining time fell inside [low, high].
    pub coverage: f64,
    /// Fraction that finished sooner than `low` (the other misses came after `high`).
    pub early: f64,
    /// Median of (estimated − actual) remaining: positive when the estimator is pessimistic.
    pub bias: f64,
}

impl Row {
    /// The stronger of the two baselines' errors.
    pub fn best_baseline(&self) -> f64 {
        self.baseline_mae.min(self.baseline_median_mae)
    }

    /// Estimator ÷ the stronger baseline.
    pub fn ratio(&self) -> f64 {
        self.estimator_mae / self.best_baseline().max(1e-9)
    }

    /// Estimator ÷ the baseline, the stack's rolling average (mean of 10): the goals
    /// are stated against it; [`Row::ratio`] is the stricter figure beside it.
    pub fn ratio_to_mean(&self) -> f64 {
        self.estimator_mae / self.baseline_mae.max(1e-9)
    }
}

fn rows(outcomes: &[Outcomes]) -> Vec<Row> {
    POINTS
        .iter()
        .enumerate()
        .map(|(p, at)| {
            let here: Vec<&Outcomes> = outcomes.iter().filter(|o| o.point == p).collect();
            let n = here.len();
            let mut est: Vec<f64> = here.iter().map(|o| (o.estimate - o.actual).abs()).collect();
            let mut mean: Vec<f64> = here
                .iter()
                .map(|o| (o.baseline_mean - o.actual).abs())
                .collect();
            let mut median: Vec<f64> = here
                .iter()
                .map(|o| (o.baseline_median - o.actual).abs())
                .collect();
            let mut signed: Vec<f64> = here.iter().map(|o| o.estimate - o.actual).collect();
            // Whole seconds, as reported.
            let early = here.iter().filter(|o| o.actual.round() < o.low).count();
            let inside = here
                .iter()
                .filter(|o| o.actual.round() >= o.low && o.actual.round() <= o.high)
                .count();
            let share = |k: usize| k as f64 / n.max(1) as f64;
            Row {
                at: *at,
                runs: n,
                estimator_mae: quantile(&mut est, 0.5),
                baseline_mae: quantile(&mut mean, 0.5),
                baseline_median_mae: quantile(&mut median, 0.5),
                coverage: share(inside),
                early: share(early),
                bias: quantile(&mut signed, 0.5),
            }
        })
        .collect()
}

/// One family's rows, without and with the change set.
#[derive(Debug, Clone)]
pub struct FamilyRows {
    pub family: Family,
    pub plain: Vec<Row>,
    pub with_change_set: Vec<Row>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub families: Vec<FamilyRows>,
    all_plain: Vec<Outcomes>,
    all_cs: Vec<Outcomes>,
    pub seconds: f64,
}

impl Report {
    pub(crate) fn add(&mut self, family: Family, plain: &[Outcomes], with_cs: &[Outcomes]) {
        self.families.push(FamilyRows {
            family,
            plain: rows(plain),
            with_change_set: rows(with_cs),
        });
        self.all_plain.extend_from_slice(plain);
        self.all_cs.extend_from_slice(with_cs);
    }

    /// All families pooled (each point of each run counts once).
    pub fn pooled(&self) -> Vec<Row> {
        rows(&self.all_plain)
    }

    pub fn pooled_with_change_set(&self) -> Vec<Row> {
        rows(&self.all_cs)
    }

    pub fn family(&self, family: Family) -> Option<&FamilyRows> {
        self.families.iter().find(|f| f.family == family)
    }

    /// The table for docs/performance.md: one line per family and point, pooled last.
    pub fn markdown(&self, with_change_set: bool) -> String {
        let mut out = String::from(
            "| family | point | runs | median abs. error, estimator | baseline: mean of 10 | baseline: median of 10 | ratio to the mean | ratio to the stronger | [low, high] coverage | ended before low / after high |\n|---|---|---|---|---|---|---|---|---|---|\n",
        );
        let line = |label: &str, r: &Row| {
            if r.runs == 0 {
                return String::new();
            }
            format!(
                "| {label} | {:.0} % | {} | {:.1} s | {:.1} s | {:.1} s | {:.2} | {:.2} | {:.0} % | {:.0} % / {:.0} % |\n",
                r.at * 100.0,
                r.runs,
                r.estimator_mae,
                r.baseline_mae,
                r.baseline_median_mae,
                r.ratio_to_mean(),
                r.ratio(),
                r.coverage * 100.0,
                r.early * 100.0,
                (1.0 - r.coverage - r.early) * 100.0
            )
        };
        for f in &self.families {
            let rows = if with_change_set {
                &f.with_change_set
            } else {
                &f.plain
            };
            let label = if f.family.decided_on() {
                format!("{} (decided on)", f.family.name())
            } else {
                format!("{} (held out)", f.family.name())
            };
            for r in rows {
                out += &line(&label, r);
            }
        }
        let pooled = if with_change_set {
            self.pooled_with_change_set()
        } else {
            self.pooled()
        };
        for r in &pooled {
            out += &line("**pooled**", r);
        }
        out
    }

    /// One line per family and point: bias (median of estimated − actual).
    pub fn biases(&self, with_change_set: bool) -> String {
        let mut out = String::new();
        for f in &self.families {
            let rows = if with_change_set {
                &f.with_change_set
            } else {
                &f.plain
            };
            let b: Vec<String> = rows
                .iter()
                .filter(|r| r.runs > 0)
                .map(|r| format!("{:.0} %: {:+.1} s", r.at * 100.0, r.bias))
                .collect();
            if !b.is_empty() {
                out += &format!("bias {}: {}\n", f.family.name(), b.join(", "));
            }
        }
        out
    }
}
