//! A waiter's time to the front of the queue: the holder's remaining time plus the expected
//! durations of the tickets ahead.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::dist::{DurationModel, Rng, quantile, robust_log_stats};
use super::model::comparable_runs;
use super::priors::GENERIC_OPERATION;
use crate::history::record::{HistoryRecord, Operation, Outcome};

/// A duration as a range: 10th percentile, median, 90th percentile, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DurationRange {
    pub low_seconds: f64,
    pub median_seconds: f64,
    pub high_seconds: f64,
}

impl DurationRange {
    fn of_model(m: &DurationModel) -> Self {
        DurationRange {
            low_seconds: m.quantile(0.1),
            median_seconds: m.quantile(0.5),
            high_seconds: m.quantile(0.9),
        }
    }

    /// A whole operation with no history at all.
    pub fn generic() -> Self {
        Self::of_model(&generic_model())
    }
}

fn generic_model() -> DurationModel {
    DurationModel::from_median(GENERIC_OPERATION.0, GENERIC_OPERATION.1, 0.0)
}

/// Fits the whole-operation durations of a stack's successful runs (of `operation`, or of any
/// operation when it is None or has no runs). None without any such run.
fn total_model(
    history: &[HistoryRecord],
    stack: &str,
    operation: Option<Operation>,
) -> Option<(DurationModel, usize)> {
    let mut durations: Vec<f64> = match operation {
        Some(op) => comparable_runs(history, stack, op)
            .iter()
            .map(|r| r.seconds())
            .collect(),
        None => Vec::new(),
    };
    if durations.is_empty() {
        durations = history
            .iter()
            .filter(|r| r.stack == stack && r.outcome == Outcome::Succeeded)
            .map(|r| r.seconds())
            .collect();
    }
    let n = durations.len();
    let (centre, spread) = robust_log_stats(&durations)?;
    // Few runs say little about spread: lean on the generic spread until there are several.
    let k = 2.0;
    let var = ((n as f64 - 1.0) * spread * spread + k * GENERIC_OPERATION.1.powi(2) * 0.25)
        / (n as f64 - 1.0 + k);
    Some((
        DurationModel {
            mu: centre,
            sigma: var.sqrt().max(0.05),
            slow: super::model::SLOW_OUTLIER,
        },
        n,
    ))
}

/// How long an operation on `stack` usually takes, from its history. None without history.
pub fn typical_duration(
    history: &[HistoryRecord],
    stack: &str,
    operation: Option<Operation>,
) -> Option<DurationRange> {
    total_model(history, stack, operation).map(|(m, _)| DurationRange::of_model(&m))
}

/// The remaining time of a lock holder that has been at it for `elapsed_seconds`, when its own
/// estimate is not available (a holder in another job): the stack's usual duration, given that
/// it has already lasted that long. Without history, a generic operation.
pub fn holder_remaining(
    history: &[HistoryRecord],
    stack: &str,
    operation: Option<Operation>,
    elapsed_seconds: f64,
) -> DurationRange {
    let m = total_model(history, stack, operation)
        .map(|(m, _)| m)
        .unwrap_or_else(generic_model);
    let mut rng = Rng::new(0x51DE);
    let mut rest: Vec<f64> = (0..400)
        .map(|_| m.sample_beyond(elapsed_seconds.max(0.0), &mut rng) - elapsed_seconds.max(0.0))
        .collect();
    DurationRange {
        low_seconds: quantile(&mut rest, 0.1),
        median_seconds: quantile(&mut rest, 0.5),
        high_seconds: quantile(&mut rest, 0.9),
    }
}

/// When a waiter's turn should come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEta {
    pub wait_seconds: u64,
    pub wait_low_seconds: u64,
    pub wait_high_seconds: u64,
    pub estimated_start: DateTime<Utc>,
    /// Tickets ahead (or the holder) with no history: counted as a generic operation.
    pub unknown: usize,
}

/// The holder's remaining time plus each ticket ahead's duration (None: no history, a generic
/// operation is assumed). Ranges are combined as independent: medians add, and the distances
/// to the 10th/90th percentiles add in quadrature (so ten waiters ahead do not give a
/// "high" of ten worst cases).
pub fn queue_eta(
    holder: Option<DurationRange>,
    ahead: &[Option<DurationRange>],
    now: DateTime<Utc>,
) -> QueueEta {
    let mut unknown = 0;
    let mut parts = Vec::with_capacity(ahead.len() + 1);
    for r in std::iter::once(&holder).chain(ahead.iter()) {
        match r {
            Some(r) => parts.push(*r),
            None => {
                unknown += 1;
                parts.push(DurationRange::generic());
            }
        }
    }
    let median: f64 = parts.iter().map(|p| p.median_seconds.max(0.0)).sum();
    let below = parts
        .iter()
        .map(|p| (p.median_seconds - p.low_seconds).max(0.0).powi(2))
        .sum::<f64>()
        .sqrt();
    let above = parts
        .iter()
        .map(|p| (p.high_seconds - p.median_seconds).max(0.0).powi(2))
        .sum::<f64>()
        .sqrt();
    let low = (median - below).max(
        parts
            .iter()
            .map(|p| p.low_seconds.max(0.0))
            .sum::<f64>()
            .min(median),
    );
    let high = median + above;
    let secs = |x: f64| x.max(0.0).round() as u64;
    QueueEta {
        wait_seconds: secs(median),
        wait_low_seconds: secs(low),
        wait_high_seconds: secs(high),
        estimated_start: now + TimeDelta::seconds(secs(median) as i64),
        unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::record::parse_records;

    fn runs(stack: &str, minutes: &[i64]) -> Vec<HistoryRecord> {
        let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        minutes
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let start = t0 + TimeDelta::days(i as i64);
                let json = format!(
                    r#"[{{"stack": "{stack}", "correlation_id": "c{i}", "operation": "UPDATE",
                        "outcome": "succeeded", "started_at": "{}", "finished_at": "{}"}}]"#,
                    start.to_rfc3339(),
                    (start + TimeDelta::minutes(*m)).to_rfc3339()
                );
                parse_records(&json).unwrap().remove(0)
            })
            .collect()
    }

    #[test]
    fn typical_duration_is_the_stacks_usual_time() {
        let h = runs("api", &[10, 11, 12, 10, 11, 13, 9]);
        let r = typical_duration(&h, "api", Some(Operation::Update)).unwrap();
        assert!((r.median_seconds - 660.0).abs() < 60.0, "{r:?}");
        assert!(r.low_seconds < r.median_seconds && r.median_seconds < r.high_seconds);
        assert!(typical_duration(&h, "other", None).is_none());
    }

    #[test]
    fn the_wait_is_the_holders_rest_plus_the_tickets_ahead() {
        let now: DateTime<Utc> = "2026-01-14T12:00:00Z".parse().unwrap();
        let ten = DurationRange {
            low_seconds: 480.0,
            median_seconds: 600.0,
            high_seconds: 780.0,
        };
        let holder = DurationRange {
            low_seconds: 100.0,
            median_seconds: 120.0,
            high_seconds: 200.0,
        };
        let eta = queue_eta(Some(holder), &[Some(ten), Some(ten)], now);
        assert_eq!(eta.wait_seconds, 1320);
        assert_eq!(eta.estimated_start, now + TimeDelta::seconds(1320));
        assert!(eta.wait_low_seconds < 1320 && eta.wait_low_seconds >= 1060);
        // Quadrature: narrower than adding every worst case (1760).
        assert!(eta.wait_high_seconds > 1320 && eta.wait_high_seconds < 1760);
        assert_eq!(eta.unknown, 0);

        let eta = queue_eta(None, &[None], now);
        assert_eq!(eta.unknown, 2);
        assert!(eta.wait_seconds > 0);
        let first_in_line = queue_eta(Some(holder), &[], now);
        assert_eq!(first_in_line.wait_seconds, 120);
    }

    #[test]
    fn a_holder_past_its_usual_time_still_has_some_left() {
        let h = runs("api", &[10, 11, 12, 10, 11, 13, 9]);
        let early = holder_remaining(&h, "api", Some(Operation::Update), 60.0);
        let late = holder_remaining(&h, "api", Some(Operation::Update), 30.0 * 60.0);
        assert!((early.median_seconds - 600.0).abs() < 90.0, "{early:?}");
        // Far past its usual time, the holder is one of the rare slow runs: still some time
        // left, more uncertain, but bounded.
        assert!(
            late.median_seconds > 0.0 && late.high_seconds < 3600.0,
            "{late:?}"
        );
        assert!(late.high_seconds - late.low_seconds > early.high_seconds - early.low_seconds);
        let none = holder_remaining(&[], "api", None, 0.0);
        assert!(none.median_seconds > 60.0);
    }
}
