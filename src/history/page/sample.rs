//! Realistic sample histories for the report (its demo, its browser test and the figures in
//! docs/performance.md): the estimator evaluation's generated deployments
//! (`estimate::eval::histories`), placed on a working calendar behind a lock queue, with a
//! few rollbacks and cancellations, and the estimate the action would have recorded.
//!
//! - Requests to deploy arrive during working hours (08:00–18:00 UTC, Monday to Friday),
//!   a few hours apart, sometimes in bursts minutes apart (several merges at once); the
//!   nightly environment is requested at 01:00 and now and then re-run by hand meanwhile.
//! - One lock per stack, first come first served: a deployment starts when the previous one
//!   has finished and the lock is handed over (2–6 s), so `lock_wait_seconds` is how long its
//!   request queued.
//! - 6 % of deployments fail on a resource and roll back, 2 % are cancelled: resources still
//!   running are cut short, the ones not started never run, and the completed ones are undone.
//! - The estimate is the estimator's own first prediction (as `LiveEstimate::record` keeps it):
//!   the newest `ESTIMATE_WINDOW` records of the stack before it, the operation just started.
//! - The first `adopted_after` deployments of each stack have neither an estimate nor a lock
//!   wait, like records made by `history collect` before the action was adopted.
//!
//! Deterministic for a given seed.

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc, Weekday};

use crate::estimate::dist::Rng;
use crate::estimate::eval::{histories, trace_at};
use crate::estimate::{Options, estimate_with};
use crate::history::store::ESTIMATE_WINDOW;
use crate::history::{HistoryRecord, Operation, Outcome, PredictedDuration};

#[derive(Debug, Clone)]
pub struct SampleConfig {
    pub seed: u64,
    /// Deployments per stack (three stacks).
    pub deployments: usize,
    /// Deployments per stack recorded before the action was adopted.
    pub adopted_after: usize,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig {
            seed: 20_260_114,
            deployments: 50,
            adopted_after: 6,
        }
    }
}

/// How often a stack is deployed.
struct Cadence {
    /// Mean hours between requests (working hours only).
    mean_gap_hours: f64,
    /// Chance that a request follows the previous one within minutes.
    burst: f64,
    nightly: bool,
}

fn cadence(stack: &str) -> Cadence {
    match stack {
        "nightly-env" => Cadence {
            mean_gap_hours: 24.0,
            burst: 0.15,
            nightly: true,
        },
        "serverless-api" => Cadence {
            mean_gap_hours: 2.5,
            burst: 0.3,
            nightly: false,
        },
        _ => Cadence {
            mean_gap_hours: 4.0,
            burst: 0.3,
            nightly: false,
        },
    }
}

/// The first working moment at or after `t`.
fn working(t: DateTime<Utc>, rng: &mut Rng) -> DateTime<Utc> {
    let mut t = t;
    loop {
        let weekend = matches!(t.weekday(), Weekday::Sat | Weekday::Sun);
        if !weekend && (8..18).contains(&t.hour()) {
            return t;
        }
        let next_morning = (t.date_naive() + TimeDelta::days(1))
            .and_hms_opt(8, 0, 0)
            .map(|d| d.and_utc())
            .unwrap_or(t + TimeDelta::hours(14));
        let same_morning = t
            .date_naive()
            .and_hms_opt(8, 0, 0)
            .map(|d| d.and_utc())
            .unwrap_or(t);
        t = if !weekend && t.hour() < 8 {
            same_morning
        } else {
            next_morning
        } + secs(rng.uniform() * 5400.0);
    }
}

fn secs(s: f64) -> TimeDelta {
    TimeDelta::milliseconds((s * 1000.0).round() as i64)
}

/// When each deployment of a stack is requested.
fn arrivals(stack: &str, n: usize, start: DateTime<Utc>, rng: &mut Rng) -> Vec<DateTime<Utc>> {
    let c = cadence(stack);
    let mut out: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let mut night = start.date_naive();
    for _ in 0..n {
        let burst = rng.uniform() < c.burst;
        let gap = -rng.uniform().max(1e-9).ln() * c.mean_gap_hours * 3600.0;
        let next = match out.last() {
            Some(prev) if burst => *prev + secs(30.0 + 570.0 * rng.uniform()),
            _ if c.nightly => {
                night += TimeDelta::days(1);
                night
                    .and_hms_opt(1, 0, 0)
                    .map(|d| d.and_utc())
                    .unwrap_or(start)
                    + secs(90.0 * rng.uniform())
            }
            Some(prev) => working(*prev + secs(gap), rng),
            None => working(start + secs(gap), rng),
        };
        out.push(next);
    }
    out
}

fn shift(r: &mut HistoryRecord, by: TimeDelta) {
    r.started_at += by;
    r.finished_at += by;
    r.rollback_started_at = r.rollback_started_at.map(|t| t + by);
    for res in &mut r.resources {
        res.started_at += by;
        res.finished_at += by;
    }
}

/// Cuts a deployment short at `at` (a failure of resource `failing`, or a cancellation): what
/// runs then is cancelled, what has not started never runs, what completed is undone.
fn cut(r: &mut HistoryRecord, at: DateTime<Utc>, failing: Option<usize>, outcome: Outcome) {
    let mut kept = Vec::new();
    for (i, mut res) in r.resources.drain(..).enumerate() {
        if res.started_at >= at {
            continue;
        }
        if Some(i) == failing || res.finished_at > at {
            res.finished_at = if Some(i) == failing {
                at
            } else {
                at + TimeDelta::seconds(1)
            };
            res.status = format!("{}_FAILED", res.action);
        }
        kept.push(res);
    }
    let rollback = at + TimeDelta::seconds(2);
    let undo_action = match r.operation {
        Operation::Create => "DELETE",
        _ => "UPDATE",
    };
    let mut undone: Vec<_> = kept
        .iter()
        .filter(|res| res.completed())
        .rev()
        .enumerate()
        .map(|(j, res)| {
            let mut u = res.clone();
            u.action = undo_action.to_string();
            u.status = format!("{undo_action}_COMPLETE");
            u.started_at = rollback + secs(1.0 + 0.5 * j as f64);
            u.finished_at = u.started_at + secs((res.seconds() * 0.4).max(1.0));
            u
        })
        .collect();
    let end = undone
        .iter()
        .map(|u| u.finished_at)
        .max()
        .unwrap_or(rollback);
    kept.append(&mut undone);
    r.resources = kept;
    r.rollback_started_at = Some(rollback);
    r.finished_at = end + TimeDelta::seconds(10);
    r.outcome = outcome;
}

/// The estimator's first prediction for `run` from the records before it.
fn first_estimate(before: &[HistoryRecord], run: &HistoryRecord) -> PredictedDuration {
    let history = &before[before.len().saturating_sub(ESTIMATE_WINDOW)..];
    let trace = trace_at(run, 0.0);
    PredictedDuration::from(&estimate_with(
        history,
        &trace,
        run.started_at,
        &Options::default(),
    ))
}

/// Three stacks × `deployments` records, each stack oldest first.
pub fn generate(config: &SampleConfig) -> Vec<HistoryRecord> {
    // A stream of its own, so the deployments are the evaluation's for the same seed.
    let mut rng = Rng::new(config.seed ^ 0x5EED_4E90);
    let start = DateTime::<Utc>::from_timestamp(1_767_600_000, 0).unwrap_or_default(); // Mon 2026-01-05 08:00
    let mut all = Vec::new();
    for runs in histories(config.seed, config.deployments) {
        let Some(stack) = runs.first().map(|r| r.stack.clone()) else {
            continue;
        };
        let asked = arrivals(&stack, runs.len(), start, &mut rng);
        let mut done: Vec<HistoryRecord> = Vec::with_capacity(runs.len());
        for (i, (mut r, arrival)) in runs.into_iter().zip(asked).enumerate() {
            let free = done
                .last()
                .map(|p| p.finished_at + secs(2.0 + 4.0 * rng.uniform()))
                .unwrap_or(arrival);
            let begin = arrival.max(free);
            let by = begin - r.started_at;
            shift(&mut r, by);
            let fate = rng.uniform();
            if !r.resources.is_empty() && fate < 0.08 {
                let (failing, outcome) = if fate < 0.06 {
                    let k = ((rng.uniform() * r.resources.len() as f64) as usize)
                        .min(r.resources.len() - 1);
                    (Some(k), Outcome::RolledBack)
                } else {
                    (None, Outcome::Cancelled)
                };
                let at = match failing {
                    Some(k) => {
                        let res = &r.resources[k];
                        res.started_at + secs(res.seconds() * (0.2 + 0.7 * rng.uniform()))
                    }
                    None => r.started_at + secs(r.seconds() * (0.2 + 0.5 * rng.uniform())),
                };
                cut(&mut r, at, failing, outcome);
            }
            if i >= config.adopted_after {
                r.estimate = Some(first_estimate(&done, &r));
                let wait = (begin - arrival).num_milliseconds() as f64 / 1000.0;
                r.lock_wait_seconds = Some((wait * 10.0).round() / 10.0);
            }
            r.correlation_id = format!(
                "{}-{}",
                r.started_at.format("%Y%m%d-%H%M%S"),
                &format!("{:016x}", rng.next_u64())[..7]
            );
            done.push(r);
        }
        all.extend(done);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<HistoryRecord> {
        generate(&SampleConfig {
            seed: 7,
            deployments: 30,
            adopted_after: 4,
        })
    }

    #[test]
    fn records_are_valid_and_never_overlap_on_one_lock() {
        let records = sample();
        assert_eq!(records.len(), 90);
        for r in &records {
            r.validate().expect("valid");
        }
        for stack in records.chunks(30) {
            assert!(stack.iter().all(|r| r.stack == stack[0].stack));
            for w in stack.windows(2) {
                assert!(w[1].started_at > w[0].finished_at, "one at a time");
            }
        }
    }

    #[test]
    fn estimates_and_waits_appear_only_after_adoption() {
        let records = sample();
        for stack in records.chunks(30) {
            assert!(stack[..4].iter().all(|r| r.estimate.is_none()));
            assert!(stack[..4].iter().all(|r| r.lock_wait_seconds.is_none()));
            assert!(stack[4..].iter().all(|r| r.estimate.is_some()));
            for r in &stack[4..] {
                let e = r.estimate.expect("estimated");
                assert!(e.low_seconds <= e.seconds && e.seconds <= e.high_seconds);
            }
        }
        let waited = records
            .iter()
            .filter(|r| r.lock_wait_seconds.is_some_and(|w| w >= 1.0))
            .count();
        assert!(waited > 0, "bursts make some runs queue");
    }

    #[test]
    fn the_estimate_is_the_estimators_from_the_records_before() {
        let records = sample();
        let stack = &records[..30];
        let i = 20;
        let again = first_estimate(&stack[..i], &stack[i]);
        assert_eq!(stack[i].estimate, Some(again));
        // The history matters: from nothing, the estimator says something else.
        assert_ne!(first_estimate(&[], &stack[i]), again);
    }

    #[test]
    fn a_cut_deployment_undoes_what_it_completed() {
        let mut r = histories(3, 1).remove(0).remove(0);
        let mid = r.started_at + secs(r.seconds() / 2.0);
        let completed_before = r.resources.iter().filter(|x| x.finished_at <= mid).count();
        cut(&mut r, mid, None, Outcome::Cancelled);
        r.validate().expect("valid");
        assert_eq!(r.outcome, Outcome::Cancelled);
        assert_eq!(r.rollback_resources().count(), completed_before);
        assert!(r.forward_resources().all(|x| x.started_at < mid));
    }
}
