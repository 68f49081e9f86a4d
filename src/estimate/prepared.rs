//! One estimate from what history has been prepared into: the duration models, the stack's
//! comparable runs and their plans. Prepared once for an estimate, or once per replayed run
//! when the calibration walks the history forward (plans are shared between replays).

use std::collections::HashSet;
use std::rc::Rc;

use chrono::{DateTime, TimeDelta, Utc};

use super::dist::{Rng, quantile};
use super::model::{self, Knowledge, Plan};
use super::sim::{Futures, Seen, Sim};
use super::{
    Calibration, Confidence, Estimate, Laggard, Operation, Options, Phase, Progress, SEED, Usual,
    changes, fallback, fmt_secs, rollback, whole,
};
use crate::history::events::Trace;
use crate::history::record::{HistoryRecord, Outcome, seconds_between};

pub(crate) struct Prepared<'a> {
    pub knowledge: &'a Knowledge,
    /// Successful runs of the operation on the stack, newest first.
    pub runs: Vec<&'a HistoryRecord>,
    /// Every run of the operation that ended (for the duration-level models), newest first.
    pub past: Vec<&'a HistoryRecord>,
    /// The newest runs' plans.
    pub plans: Vec<Rc<Plan>>,
    /// Successful runs of any operation on the stack, newest first: the shape a change set's
    /// work takes (dependencies are the template's, whatever the operation).
    pub donors: Vec<Rc<Plan>>,
}

impl<'a> Prepared<'a> {
    pub fn new(
        history: &[&'a HistoryRecord],
        knowledge: &'a Knowledge,
        stack: &str,
        operation: Operation,
    ) -> Self {
        Self::with_plans(history, knowledge, stack, operation, |r| {
            Rc::new(Plan::from_record(r))
        })
    }

    /// `plan_of` gives a record's plan (the calibration caches them).
    pub fn with_plans(
        history: &[&'a HistoryRecord],
        knowledge: &'a Knowledge,
        stack: &str,
        operation: Operation,
        mut plan_of: impl FnMut(&'a HistoryRecord) -> Rc<Plan>,
    ) -> Self {
        let mut succeeded: Vec<&'a HistoryRecord> = history
            .iter()
            .copied()
            .filter(|r| r.stack == stack && r.outcome == Outcome::Succeeded)
            .collect();
        succeeded.sort_by_key(|r| std::cmp::Reverse(r.finished_at));
        let runs: Vec<&'a HistoryRecord> = succeeded
            .iter()
            .copied()
            .filter(|r| r.operation == operation)
            .collect();
        let plans = runs
            .iter()
            .take(model::MAX_PLANS)
            .map(|r| plan_of(r))
            .collect();
        let donors = succeeded
            .iter()
            .filter(|r| r.operation != Operation::Delete && r.operation != Operation::Rollback)
            .take(model::MAX_PLANS)
            .map(|r| plan_of(r))
            .collect();
        let mut past: Vec<&'a HistoryRecord> = history
            .iter()
            .copied()
            .filter(|r| {
                r.stack == stack && r.operation == operation && r.outcome != Outcome::Cancelled
            })
            .collect();
        past.sort_by_key(|r| std::cmp::Reverse(r.finished_at));
        Prepared {
            knowledge,
            runs,
            past,
            plans,
            donors,
        }
    }

    /// The estimate, with `samples` simulated futures; calibrated when `options` carries a
    /// calibration and the run is one the calibration has seen the like of.
    pub fn estimate(
        &self,
        current: &Trace,
        now: DateTime<Utc>,
        options: &Options,
        samples: usize,
    ) -> Estimate {
        let mut parts = self.parts(current, now, options, samples);
        if let Some(cal) = &options.calibration {
            parts.calibrate(cal);
        }
        parts.estimate
    }

    /// The per-resource model's estimate and what the duration-level models say.
    pub fn parts(
        &self,
        current: &Trace,
        now: DateTime<Utc>,
        options: &Options,
        samples: usize,
    ) -> Parts {
        // The local clock may be behind CloudFormation's; it cannot be earlier than an event
        // already seen.
        let skew = (current.last_event_at - now).num_seconds();
        let now = now.max(current.last_event_at);
        let clock_skew_seconds = (skew >= 1).then_some(skew as u64);
        let at = |t: DateTime<Utc>| seconds_between(current.started_at, t);
        let now_s = at(now);
        let knowledge = self.knowledge;
        let usual = usual_of(&self.runs);
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
        let work = options.change_set.as_deref().map(changes::work_of);
        let mut notes: Vec<String> = Vec::new();
        let mut low_confidence = false;
        let mut medium_confidence = false;
        let mut typical: Option<(f64, f64, f64)> = None;
        let mut weighted: Vec<(f64, f64)> = Vec::new();
        let mut rng = Rng::new(SEED);

        let (phase, mut remaining, progress) = if let Some((_, finished_at)) = &current.finished {
            notes.push(format!("finished after {}", fmt_secs(at(*finished_at))));
            let done = done_forward;
            (Phase::Finished, vec![0.0], Progress { done, total: done })
        } else if let Some(rb) = current.rollback_started_at {
            let undo = rollback::rollback(
                knowledge,
                &forward,
                &undoing,
                at(rb),
                now_s,
                &mut rng,
                samples,
            );
            if undo.own_history {
                medium_confidence = true;
            } else {
                low_confidence = true;
            }
            notes.push(undo.note);
            (Phase::RollingBack, undo.samples, undo.progress)
        } else if work.is_none() && self.runs.is_empty() {
            low_confidence = true;
            let (rem, pending, note) = fallback::without_plans(
                knowledge,
                &forward,
                now_s,
                options.expected_total,
                &mut rng,
                samples,
            );
            notes.push(note);
            let started = forward.len();
            let total = options
                .expected_total
                .unwrap_or(started + pending)
                .max(started);
            let progress = Progress {
                done: done_forward,
                total,
            };
            (Phase::Running, rem, progress)
        } else {
            let mut sim = Sim::new(knowledge, now_s, SEED, samples);
            sim.learn_speed(&forward);
            let mut futures: Futures = match &work {
                Some(work) => {
                    if self.donors.is_empty() {
                        low_confidence = true;
                    }
                    notes.push(change_set_note(work));
                    sim.with_change_set(&self.donors, work, &forward)
                }
                None => sim.with_plans(&self.plans, &forward),
            };
            let expected = match &work {
                Some(work) => work.len(),
                None => forward.len() + futures.pending.round() as usize,
            };
            let total = options
                .expected_total
                .or(work.as_ref().map(Vec::len))
                .unwrap_or(expected)
                .max(forward.len());
            typical = Some(futures.quantiles());
            // The past durations weighted as the plans are (with a change set: by the work).
            weighted = match &work {
                Some(work) => {
                    let keys: HashSet<(&str, &str)> = work
                        .iter()
                        .map(|w| (w.logical_id.as_str(), w.action))
                        .collect();
                    whole::by_work(&self.past, &keys)
                }
                None => self
                    .runs
                    .iter()
                    .zip(&futures.weights)
                    .map(|(r, w)| (r.seconds(), *w))
                    .collect(),
            };
            let progress = Progress {
                done: done_forward,
                total,
            };
            (
                Phase::Running,
                std::mem::take(&mut futures.samples),
                progress,
            )
        };

        let (p10, p50, p90) = match typical {
            Some(q) => q,
            None => {
                let p10 = quantile(&mut remaining, 0.1);
                let p90 = quantile(&mut remaining, 0.9);
                (p10, quantile(&mut remaining, 0.5).clamp(p10, p90), p90)
            }
        };
        let elapsed = match (&phase, &current.finished) {
            (Phase::Finished, Some((_, f))) => at(*f),
            _ => now_s,
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
            laggards(knowledge, &forward, now_s)
        } else {
            Vec::new()
        };
        let unseen_resources: Vec<String> = if self.runs.is_empty() {
            Vec::new()
        } else {
            forward
                .iter()
                .filter(|s| !knowledge.has_own(&s.logical_id, &s.action))
                .map(|s| s.logical_id.clone())
                .collect()
        };
        // Work no past run did: the duration-level models, and a calibration learnt on runs
        // unlike this one, do not apply.
        let novel_work: Vec<String> = work
            .iter()
            .flatten()
            .filter(|w| !knowledge.has_own(&w.logical_id, w.action))
            .map(|w| w.logical_id.clone())
            .collect();
        let novel = !unseen_resources.is_empty() || !novel_work.is_empty() || beyond_all;
        let runs = self.runs.len();
        let confidence = if phase == Phase::Finished {
            Confidence::High
        } else if low_confidence || (runs < 3 && work.is_none()) {
            Confidence::Low
        } else if medium_confidence || runs < 8 || !unseen_resources.is_empty() || beyond_all {
            Confidence::Medium
        } else {
            Confidence::High
        };

        let mut basis = Vec::new();
        match runs {
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
        basis.extend(notes);

        let secs = |x: f64| x.max(0.0).round() as u64;
        let plus = |x: f64| now + TimeDelta::seconds(secs(x) as i64);
        let completion = |x: f64| match (phase, &current.finished) {
            (Phase::Finished, Some((_, f))) => *f,
            _ => plus(x),
        };
        let durations = (phase == Phase::Running)
            .then(|| whole::whole(&self.past, now_s, &weighted))
            .flatten();
        let estimate = Estimate {
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
            calibration: None,
            basis: basis.join("; "),
        };
        Parts {
            estimate,
            durations,
            novel,
        }
    }
}

/// An estimate before calibration, with what the calibration weighs it against.
pub(crate) struct Parts {
    pub estimate: Estimate,
    /// The duration-level models (a run in progress only).
    pub durations: Option<whole::Whole>,
    /// The run does what no past run did (resources or work never seen, or it is already
    /// longer than every past run).
    pub novel: bool,
}

impl Parts {
    /// Applies the calibration to a run in progress that is like the runs it was learnt on.
    fn calibrate(&mut self, cal: &Calibration) {
        let e = &mut self.estimate;
        if e.phase != Phase::Running {
            return;
        }
        if self.novel {
            if cal.points > 0 {
                e.basis += "; not calibrated: this run does what no past run did";
            }
            return;
        }
        let usual_median = e.usual.map(|u| u.median_seconds as f64);
        let raw = (
            e.remaining_low_seconds as f64,
            e.remaining_seconds as f64,
            e.remaining_high_seconds as f64,
        );
        let Some(((low, mid, high), applied)) =
            cal.apply(raw, self.durations, e.elapsed_seconds as f64, usual_median)
        else {
            return;
        };
        let secs = |x: f64| x.max(0.0).round() as u64;
        let at = |x: f64| e.now + TimeDelta::seconds(secs(x) as i64);
        (
            e.remaining_low_seconds,
            e.remaining_seconds,
            e.remaining_high_seconds,
        ) = (secs(low), secs(mid), secs(high));
        (e.completion_low, e.estimated_completion, e.completion_high) =
            (at(low), at(mid), at(high));
        e.basis += &format!("; {}", applied.describe());
        e.calibration = Some(applied);
    }
}

/// `change set: 2 to add, 3 to modify (1 replaced), 1 to remove`.
fn change_set_note(work: &[changes::Work]) -> String {
    let count = |f: &dyn Fn(&changes::Work) -> bool| work.iter().filter(|w| f(w)).count();
    let add = count(&|w| w.action == "CREATE" || w.action == "IMPORT");
    let modify = count(&|w| w.action == "UPDATE");
    let replaced = count(&|w| w.action == "UPDATE" && w.like == "CREATE");
    let remove = count(&|w| w.cleanup) - replaced;
    let mut parts = Vec::new();
    if add > 0 {
        parts.push(format!("{add} to add"));
    }
    if modify > 0 {
        parts.push(if replaced > 0 {
            format!("{modify} to modify ({replaced} replaced)")
        } else {
            format!("{modify} to modify")
        });
    }
    if remove > 0 {
        parts.push(format!("{remove} to remove"));
    }
    if parts.is_empty() {
        parts.push("nothing to change".into());
    }
    format!("change set: {}", parts.join(", "))
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
