//! Duration-level models: what the whole operation's past durations say, knowing nothing of
//! its resources. The calibration (`calibrate.rs`) weighs them against the per-resource model
//! on the stack's own history: on a stack whose runs are all alike they are hard to beat, and
//! they never mistake a small change for a large one the way a plan can.
//!
//! - the conditional median: the past durations longer than the time already elapsed, less
//!   that time, each run weighted by how much this one looks like it (the plans' weights
//!   given what has happened so far; with a change set, how much of the same work it did);
//! - the baseline: the mean of the last 10 durations, less the elapsed time.

use std::collections::HashSet;

use super::dist::{DurationModel, robust_log_stats, weighted_quantile};
use super::model::SLOW_OUTLIER;
use crate::history::record::HistoryRecord;

/// Past durations considered (the newest).
const RECENT: usize = 20;

/// (P10, median, P90) of the remaining time, and the baseline's point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Whole {
    pub conditional: (f64, f64, f64),
    pub baseline: f64,
}

/// Past durations weighted by how much a run did the same work as the change set: Jaccard
/// similarity of (logical id, action), squared, so that a run that did the same work is worth
/// many that did other work. `runs` newest first.
pub(crate) fn by_work(runs: &[&HistoryRecord], work: &HashSet<(&str, &str)>) -> Vec<(f64, f64)> {
    runs.iter()
        .take(RECENT)
        .map(|r| {
            let theirs = r.forward_resources().count() as f64;
            let shared = r
                .forward_resources()
                .filter(|x| work.contains(&(x.logical_id.as_str(), x.action.as_str())))
                .count() as f64;
            let union = theirs + work.len() as f64 - shared;
            (r.seconds(), 0.02 + (shared / union.max(1.0)).powi(2))
        })
        .collect()
}

/// `past`: the stack's runs of the operation, newest first (the baseline's, and the durations
/// when `weighted` is empty); `weighted`: (duration, weight) of the runs this one is most like
/// (the plans' weights given what has happened so far, or [`by_work`]).
pub(crate) fn whole(
    past: &[&HistoryRecord],
    elapsed: f64,
    weighted: &[(f64, f64)],
) -> Option<Whole> {
    if past.is_empty() && weighted.is_empty() {
        return None;
    }
    let durations: Vec<(f64, f64)> = if weighted.is_empty() {
        past.iter()
            .take(RECENT)
            .map(|r| (r.seconds(), 1.0))
            .collect()
    } else {
        weighted.to_vec()
    };
    let mut rest: Vec<(f64, f64)> = durations
        .iter()
        .filter(|(d, w)| *d > elapsed && *w > 0.0)
        .map(|(d, w)| (d - elapsed, *w))
        .collect();
    let total: f64 = rest.iter().map(|(_, w)| w).sum();
    let squares: f64 = rest.iter().map(|(_, w)| w * w).sum();
    let effective = if squares > 0.0 {
        total * total / squares
    } else {
        0.0
    };
    let conditional = if effective >= 3.0 {
        (
            weighted_quantile(&mut rest, 0.1),
            weighted_quantile(&mut rest, 0.5),
            weighted_quantile(&mut rest, 0.9),
        )
    } else {
        // Too few runs this long: a lognormal fitted to all of them, given the elapsed time.
        let all: Vec<f64> = durations.iter().map(|(d, _)| *d).collect();
        let (mu, sigma) = robust_log_stats(&all)?;
        let m = DurationModel {
            mu,
            sigma: sigma.max(0.25),
            slow: SLOW_OUTLIER,
        };
        let q = |p: f64| (m.quantile_beyond(elapsed, p) - elapsed).max(0.0);
        (q(0.1), q(0.5), q(0.9))
    };
    let last: Vec<f64> = past.iter().take(10).map(|r| r.seconds()).collect();
    let baseline = if last.is_empty() {
        conditional.1
    } else {
        (last.iter().sum::<f64>() / last.len() as f64 - elapsed).max(0.0)
    };
    Some(Whole {
        conditional,
        baseline,
    })
}
