//! The figures a release manager reads per stack, from its history records: outcomes and
//! durations, the slowest resources and their trend, how good the estimates were, and how
//! long runs queued for the lock. Pure.

use std::collections::BTreeMap;

use crate::estimate::dist::quantile;
use crate::history::{HistoryRecord, Outcome, PredictedDuration, ResourceTiming};

/// How many of the slowest resources a stack's section shows.
pub(crate) const TOP_RESOURCES: usize = 8;

/// Median, 90th percentile and maximum of some values (none when there are none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spread {
    pub count: usize,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
}

impl Spread {
    pub(crate) fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        Some(Spread {
            count: v.len(),
            median: quantile(&mut v, 0.5),
            p90: quantile(&mut v, 0.9),
            max: v.iter().copied().fold(f64::MIN, f64::max),
        })
    }
}

/// One completed run of a resource, in the order of the stack's deployments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResourceRun<'a> {
    pub record: &'a HistoryRecord,
    pub seconds: f64,
}

/// A resource among the slowest of its stack.
#[derive(Debug, Clone)]
pub(crate) struct ResourceStats<'a> {
    pub logical_id: &'a str,
    pub resource_type: &'a str,
    pub runs: Vec<ResourceRun<'a>>,
    pub spread: Spread,
    /// Median of the newer half of its runs over the older half's, minus one (+0.25: a
    /// quarter slower lately). None with fewer than four runs: two halves of one say nothing.
    pub trend: Option<f64>,
}

/// Estimated against actual, for one successful deployment with a recorded estimate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Judged<'a> {
    pub record: &'a HistoryRecord,
    pub estimate: PredictedDuration,
    pub actual: f64,
    pub inside: bool,
}

/// How the estimates recorded by the action compare with what happened.
#[derive(Debug, Clone)]
pub(crate) struct Accuracy<'a> {
    /// Successful deployments with an estimate. Others are not judged: a rollback or a
    /// cancellation does not take the time the deployment was estimated to take.
    pub judged: Vec<Judged<'a>>,
    /// Records without an estimate (from `history collect`, or from before the action
    /// recorded estimates).
    pub missing: usize,
    /// Share of the judged whose actual duration fell inside [low, high].
    pub inside_share: Option<f64>,
    /// Median of |estimated − actual| / actual.
    pub median_relative_error: Option<f64>,
    /// Median of (estimated − actual) in seconds: positive when estimates are pessimistic.
    pub median_bias: Option<f64>,
}

/// Lock waits recorded by the action.
#[derive(Debug, Clone)]
pub(crate) struct Waits<'a> {
    pub recorded: Vec<(&'a HistoryRecord, f64)>,
    pub missing: usize,
    pub spread: Option<Spread>,
    /// Runs that found the lock taken (waited a second or more).
    pub queued: usize,
}

/// Everything the report shows for one stack.
#[derive(Debug, Clone)]
pub(crate) struct StackStats<'a> {
    pub stack: &'a str,
    /// Oldest first (by start).
    pub records: Vec<&'a HistoryRecord>,
    pub outcomes: BTreeMap<&'static str, usize>,
    /// Durations of successful deployments.
    pub succeeded: Option<Spread>,
    pub resources: Vec<ResourceStats<'a>>,
    pub accuracy: Accuracy<'a>,
    pub waits: Waits<'a>,
    /// Deployments that did not succeed, oldest first, each with the resource that failed
    /// first (none for a cancellation, or when the record has no resource timings).
    pub unsuccessful: Vec<(&'a HistoryRecord, Option<&'a ResourceTiming>)>,
}

/// Groups records by stack (sorted by name), each oldest first.
pub(crate) fn by_stack(records: &[HistoryRecord]) -> Vec<StackStats<'_>> {
    let mut groups: BTreeMap<&str, Vec<&HistoryRecord>> = BTreeMap::new();
    for r in records {
        groups.entry(r.stack.as_str()).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|(stack, mut rs)| {
            rs.sort_by(|a, b| {
                (a.started_at, &a.correlation_id).cmp(&(b.started_at, &b.correlation_id))
            });
            stack_stats(stack, rs)
        })
        .collect()
}

fn stack_stats<'a>(stack: &'a str, records: Vec<&'a HistoryRecord>) -> StackStats<'a> {
    let mut outcomes = BTreeMap::new();
    for r in &records {
        *outcomes.entry(r.outcome.as_str()).or_insert(0) += 1;
    }
    let ok: Vec<f64> = records
        .iter()
        .filter(|r| r.outcome == Outcome::Succeeded)
        .map(|r| r.seconds())
        .collect();
    StackStats {
        stack,
        succeeded: Spread::of(&ok),
        resources: slowest_resources(&records, TOP_RESOURCES),
        accuracy: accuracy(&records),
        waits: waits(&records),
        unsuccessful: records
            .iter()
            .filter(|r| r.outcome != Outcome::Succeeded)
            // A cancellation's resources fail because of it: none of them is a cause.
            .map(|r| {
                let cause = (r.outcome != Outcome::Cancelled).then(|| first_failure(r));
                (*r, cause.flatten())
            })
            .collect(),
        outcomes,
        records,
    }
}

/// The resources with the longest median duration, over their completed runs in the
/// deployment itself (a rollback's undoing and a failed or cancelled run are not how long the
/// resource takes).
pub(crate) fn slowest_resources<'a>(
    records: &[&'a HistoryRecord],
    top: usize,
) -> Vec<ResourceStats<'a>> {
    let mut runs: BTreeMap<&str, (&str, Vec<ResourceRun<'a>>)> = BTreeMap::new();
    for record in records {
        for r in record.forward_resources().filter(|r| r.completed()) {
            runs.entry(r.logical_id.as_str())
                .or_insert_with(|| (r.resource_type.as_str(), Vec::new()))
                .1
                .push(ResourceRun {
                    record,
                    seconds: r.seconds(),
                });
        }
    }
    let mut stats: Vec<ResourceStats<'a>> = runs
        .into_iter()
        .filter_map(|(logical_id, (resource_type, runs))| {
            let secs: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
            let spread = Spread::of(&secs)?;
            let trend = (secs.len() >= 4).then(|| {
                let (old, new) = secs.split_at(secs.len() / 2);
                let mut old = old.to_vec();
                let mut new = new.to_vec();
                quantile(&mut new, 0.5) / quantile(&mut old, 0.5).max(0.001) - 1.0
            });
            Some(ResourceStats {
                logical_id,
                resource_type,
                runs,
                spread,
                trend,
            })
        })
        .collect();
    stats.sort_by(|a, b| {
        b.spread
            .median
            .total_cmp(&a.spread.median)
            .then(a.logical_id.cmp(b.logical_id))
    });
    stats.truncate(top);
    stats
}

/// The root cause: the deployment's first resource to fail (resources cancelled because of it
/// fail later).
pub(crate) fn first_failure(record: &HistoryRecord) -> Option<&ResourceTiming> {
    record
        .forward_resources()
        .filter(|r| r.status.ends_with("_FAILED"))
        .min_by_key(|r| r.finished_at)
}

pub(crate) fn accuracy<'a>(records: &[&'a HistoryRecord]) -> Accuracy<'a> {
    let judged: Vec<Judged<'a>> = records
        .iter()
        .filter(|r| r.outcome == Outcome::Succeeded)
        .filter_map(|r| {
            let e = r.estimate?;
            let actual = r.seconds();
            // Whole seconds, as the estimate is.
            let a = actual.round();
            Some(Judged {
                record: r,
                estimate: e,
                actual,
                inside: e.low_seconds as f64 <= a && a <= e.high_seconds as f64,
            })
        })
        .collect();
    let missing = records.iter().filter(|r| r.estimate.is_none()).count();
    let n = judged.len();
    let mut rel: Vec<f64> = judged
        .iter()
        .map(|j| (j.estimate.seconds as f64 - j.actual).abs() / j.actual.max(1.0))
        .collect();
    let mut bias: Vec<f64> = judged
        .iter()
        .map(|j| j.estimate.seconds as f64 - j.actual)
        .collect();
    Accuracy {
        inside_share: (n > 0).then(|| judged.iter().filter(|j| j.inside).count() as f64 / n as f64),
        median_relative_error: (n > 0).then(|| quantile(&mut rel, 0.5)),
        median_bias: (n > 0).then(|| quantile(&mut bias, 0.5)),
        judged,
        missing,
    }
}

pub(crate) fn waits<'a>(records: &[&'a HistoryRecord]) -> Waits<'a> {
    let recorded: Vec<(&'a HistoryRecord, f64)> = records
        .iter()
        .filter_map(|r| {
            r.lock_wait_seconds
                .filter(|w| w.is_finite())
                .map(|w| (*r, w.max(0.0)))
        })
        .collect();
    let values: Vec<f64> = recorded.iter().map(|(_, w)| *w).collect();
    Waits {
        missing: records.len() - recorded.len(),
        spread: Spread::of(&values),
        queued: values.iter().filter(|w| **w >= 1.0).count(),
        recorded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Operation, ResourceTiming};
    use chrono::{DateTime, TimeDelta, Utc};

    fn record(i: i64, outcome: Outcome, seconds: i64, db: i64) -> HistoryRecord {
        let start: DateTime<Utc> =
            "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::hours(i);
        HistoryRecord {
            stack: "app".into(),
            correlation_id: format!("c{i}"),
            operation: Operation::Update,
            outcome,
            started_at: start,
            finished_at: start + TimeDelta::seconds(seconds),
            rollback_started_at: None,
            resources: vec![
                ResourceTiming {
                    logical_id: "Db".into(),
                    resource_type: "AWS::RDS::DBInstance".into(),
                    action: "UPDATE".into(),
                    started_at: start,
                    finished_at: start + TimeDelta::seconds(db),
                    status: "UPDATE_COMPLETE".into(),
                },
                ResourceTiming {
                    logical_id: "Fn".into(),
                    resource_type: "AWS::Lambda::Function".into(),
                    action: "UPDATE".into(),
                    started_at: start,
                    finished_at: start + TimeDelta::seconds(10),
                    status: "UPDATE_COMPLETE".into(),
                },
            ],
            estimate: None,
            lock_wait_seconds: None,
        }
    }

    #[test]
    fn resources_are_ranked_by_median_with_a_trend_between_halves() {
        let records: Vec<HistoryRecord> = (0..6)
            .map(|i| record(i, Outcome::Succeeded, 700, if i < 3 { 400 } else { 600 }))
            .collect();
        let refs: Vec<&HistoryRecord> = records.iter().collect();
        let top = slowest_resources(&refs, 1);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].logical_id, "Db");
        assert_eq!(top[0].runs.len(), 6);
        let trend = top[0].trend.expect("six runs have a trend");
        assert!((trend - 0.5).abs() < 1e-9, "{trend}");
        assert!(slowest_resources(&refs[..3], 5)[0].trend.is_none());
    }

    #[test]
    fn failed_and_rollback_runs_of_a_resource_are_not_its_duration() {
        let mut r = record(0, Outcome::RolledBack, 900, 500);
        r.resources[0].status = "UPDATE_FAILED".into();
        r.rollback_started_at = Some(r.started_at + TimeDelta::seconds(501));
        let mut undo = r.resources[1].clone();
        undo.started_at = r.started_at + TimeDelta::seconds(600);
        undo.finished_at = undo.started_at + TimeDelta::seconds(200);
        r.resources.push(undo);
        let top = slowest_resources(&[&r], 5);
        assert_eq!(top.len(), 1, "Db failed: only Fn's forward run counts");
        assert_eq!(top[0].logical_id, "Fn");
        assert_eq!(top[0].spread.median, 10.0);
    }

    #[test]
    fn the_first_resource_to_fail_is_the_root_cause() {
        let mut r = record(0, Outcome::RolledBack, 900, 500);
        r.resources[0].status = "UPDATE_FAILED".into(); // Db fails at 500 s
        r.resources[1].status = "UPDATE_FAILED".into(); // Fn fails first, at 10 s
        assert_eq!(first_failure(&r).map(|x| x.logical_id.as_str()), Some("Fn"));
        let ok = record(1, Outcome::Succeeded, 900, 500);
        assert!(first_failure(&ok).is_none());
        let mut cancelled = r.clone();
        cancelled.outcome = Outcome::Cancelled;
        cancelled.correlation_id = "cancelled".into();
        let both = [r, cancelled];
        let stats = by_stack(&both);
        assert_eq!(stats[0].unsuccessful.len(), 2);
        assert!(stats[0].unsuccessful[0].1.is_some());
        assert!(
            stats[0].unsuccessful[1].1.is_none(),
            "a cancellation has no failed resource to blame"
        );
    }

    #[test]
    fn accuracy_judges_only_successful_estimated_runs() {
        let mut records: Vec<HistoryRecord> = (0..5)
            .map(|i| record(i, Outcome::Succeeded, 600, 500))
            .collect();
        let predicted = |s, lo, hi| PredictedDuration {
            seconds: s,
            low_seconds: lo,
            high_seconds: hi,
        };
        records[1].estimate = Some(predicted(550, 500, 700)); // inside
        records[2].estimate = Some(predicted(300, 250, 400)); // outside
        records[3].estimate = Some(predicted(600, 600, 600)); // inside, at both ends
        records[4].estimate = Some(predicted(600, 500, 700));
        records[4].outcome = Outcome::RolledBack;
        let refs: Vec<&HistoryRecord> = records.iter().collect();
        let a = accuracy(&refs);
        assert_eq!(a.judged.len(), 3);
        assert_eq!(a.missing, 1);
        assert_eq!(a.inside_share, Some(2.0 / 3.0));
        assert_eq!(a.median_bias, Some(-50.0));
        assert!(accuracy(&refs[..1]).inside_share.is_none());
    }

    #[test]
    fn waits_count_only_recorded_values() {
        let mut records: Vec<HistoryRecord> = (0..4)
            .map(|i| record(i, Outcome::Succeeded, 600, 500))
            .collect();
        records[0].lock_wait_seconds = Some(0.2);
        records[1].lock_wait_seconds = Some(120.0);
        records[2].lock_wait_seconds = Some(f64::NAN);
        let refs: Vec<&HistoryRecord> = records.iter().collect();
        let w = waits(&refs);
        assert_eq!(w.recorded.len(), 2);
        assert_eq!(w.missing, 2);
        assert_eq!(w.queued, 1);
        assert_eq!(w.spread.map(|s| s.max), Some(120.0));
    }

    #[test]
    fn stacks_are_grouped_and_ordered_oldest_first() {
        let mut a = record(5, Outcome::Succeeded, 60, 30);
        let b = record(1, Outcome::Failed, 60, 30);
        let mut c = record(3, Outcome::Succeeded, 60, 30);
        c.stack = "api".into();
        a.correlation_id = "late".into();
        let all = vec![a, b, c];
        let stacks = by_stack(&all);
        assert_eq!(stacks.len(), 2);
        assert_eq!(stacks[0].stack, "api");
        assert_eq!(stacks[1].records[0].correlation_id, "c1");
        assert_eq!(stacks[1].outcomes.get("failed"), Some(&1));
        assert_eq!(stacks[1].succeeded.map(|s| s.count), Some(1));
    }
}
