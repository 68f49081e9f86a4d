//! What history teaches: how long each resource takes (its own past, else its type's, else a
//! prior), and the shape of past runs (which resource waited for which), used as plans for the
//! run in progress.

use std::cell::RefCell;
use std::collections::HashMap;

use super::dist::{DurationModel, robust_log_stats};
use super::priors;
use crate::history::record::{HistoryRecord, Operation, Outcome, ResourceTiming, seconds_between};

/// Prior probability that a resource run is a slow outlier (about 1 in 25).
pub const SLOW_OUTLIER: f64 = 0.04;

/// Prior weight (in runs) of the type-level centre against a resource's own durations: the
/// own history takes over after one run, since one stack's database is not the average one.
const PRIOR_RUNS_MU: f64 = 0.5;
/// Prior weight (in degrees of freedom) of the type-level spread: two or three runs say
/// little about spread, so the prior keeps intervals honest until there are more.
const PRIOR_RUNS_SIGMA: f64 = 2.0;
/// A type's spread across stacks is wider than one resource's across runs.
const MIN_TYPE_SIGMA: f64 = 0.25;

/// Where a duration model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This resource's own past runs (how many).
    Resource(usize),
    /// Resources of the same type, in any stack (how many).
    Type(usize),
    /// The reference table.
    Prior,
}

/// Durations by name (a logical id or a type), then by action: looked up by `&str` without
/// building a key (the calibration asks thousands of times per step).
type ByName = HashMap<String, HashMap<String, Vec<f64>>>;

fn lookup<'a>(map: &'a ByName, name: &str, action: &str) -> Option<&'a Vec<f64>> {
    map.get(name)?.get(action)
}

fn push(map: &mut ByName, name: &str, action: &str, seconds: f64) {
    map.entry(name.to_string())
        .or_default()
        .entry(action.to_string())
        .or_default()
        .push(seconds);
}

/// A robust centre and spread of log-durations (None: no samples).
type Stats = Option<(f64, f64)>;
/// A resource's fitted model: (action, undo, model, where it came from).
type Fitted = (String, bool, DurationModel, Source);

/// Durations seen in history, by resource and by type.
#[derive(Debug, Default)]
pub struct Knowledge {
    own: ByName,
    undo: ByName,
    types: ByName,
    /// Each type's robust centre and spread, computed once (a type pools every resource of it
    /// in every record: the largest samples, asked for by every resource of the type).
    type_stats: RefCell<HashMap<String, HashMap<String, Stats>>>,
    /// Each resource's model once computed, by logical id: (action, undo, model, source).
    models: RefCell<HashMap<String, Vec<Fitted>>>,
}

fn usable(r: &ResourceTiming) -> bool {
    r.completed()
}

impl Knowledge {
    /// `history` may hold any stacks: resources of `stack` give per-resource durations, all of
    /// them give per-type durations. Cancelled runs are left out (their resources were cut
    /// short); failed and rolled-back runs still tell how long their COMPLETE resources took.
    pub fn new(history: &[HistoryRecord], stack: &str) -> Self {
        let mut k = Knowledge::default();
        for record in history {
            k.add(record, stack);
        }
        k
    }

    /// Learns one more record (replaying history in order adds them one by one).
    pub fn add(&mut self, record: &HistoryRecord, stack: &str) {
        if record.outcome == Outcome::Cancelled {
            return;
        }
        let mine = record.stack == stack;
        for (undo, r) in record
            .forward_resources()
            .map(|r| (false, r))
            .chain(record.rollback_resources().map(|r| (true, r)))
            .filter(|(_, r)| usable(r))
        {
            if mine {
                let own = if undo { &mut self.undo } else { &mut self.own };
                push(own, &r.logical_id, &r.action, r.seconds());
            }
            push(&mut self.types, &r.resource_type, &r.action, r.seconds());
            self.type_stats.get_mut().clear();
            self.models.get_mut().clear();
        }
    }

    pub fn has_own(&self, logical_id: &str, action: &str) -> bool {
        lookup(&self.own, logical_id, action).is_some()
    }

    /// The duration model of one resource doing `action` (`undo`: during a rollback).
    pub fn model(
        &self,
        logical_id: &str,
        resource_type: &str,
        action: &str,
        undo: bool,
    ) -> (DurationModel, Source) {
        let known = self.models.borrow().get(logical_id).and_then(|ms| {
            ms.iter()
                .find(|(a, u, _, _)| a == action && *u == undo)
                .map(|(_, _, m, s)| (*m, *s))
        });
        if let Some(known) = known {
            return known;
        }
        let fitted = self.fit(logical_id, resource_type, action, undo);
        self.models
            .borrow_mut()
            .entry(logical_id.to_string())
            .or_default()
            .push((action.to_string(), undo, fitted.0, fitted.1));
        fitted
    }

    fn fit(
        &self,
        logical_id: &str,
        resource_type: &str,
        action: &str,
        undo: bool,
    ) -> (DurationModel, Source) {
        let type_samples = lookup(&self.types, resource_type, action).filter(|s| s.len() >= 3);
        let stats = |samples: &Vec<f64>| {
            let mut cache = self.type_stats.borrow_mut();
            let by_action = cache.entry(resource_type.to_string()).or_default();
            match by_action.get(action) {
                Some(st) => *st,
                None => {
                    let st = robust_log_stats(samples);
                    by_action.insert(action.to_string(), st);
                    st
                }
            }
        };
        let (mu0, sigma0, mut source) =
            match type_samples.and_then(|s| stats(s).map(|st| (st, s.len()))) {
                Some(((c, s), n)) => (c, s.max(MIN_TYPE_SIGMA), Source::Type(n)),
                None => {
                    let (median, sigma) = priors::prior(resource_type, action);
                    (median.ln(), sigma, Source::Prior)
                }
            };
        let own = lookup(
            if undo { &self.undo } else { &self.own },
            logical_id,
            action,
        );
        let Some((samples, (m, sd))) = own.and_then(|s| robust_log_stats(s).map(|st| (s, st)))
        else {
            return (
                DurationModel {
                    mu: mu0,
                    sigma: sigma0,
                    slow: SLOW_OUTLIER,
                },
                source,
            );
        };
        let n = samples.len() as f64;
        source = Source::Resource(samples.len());
        let mu = (n * m + PRIOR_RUNS_MU * mu0) / (n + PRIOR_RUNS_MU);
        let var = ((n - 1.0) * sd * sd + PRIOR_RUNS_SIGMA * sigma0 * sigma0)
            / (n - 1.0 + PRIOR_RUNS_SIGMA);
        // Predictive spread: the run-to-run spread plus the uncertainty about the centre.
        let sigma = (var * (1.0 + 1.0 / (n + PRIOR_RUNS_MU))).sqrt();
        (
            DurationModel {
                mu,
                sigma: sigma.max(0.05),
                slow: SLOW_OUTLIER,
            },
            source,
        )
    }
}

/// One resource of a past run, and what it waited for.
#[derive(Debug, Clone)]
pub struct Node {
    pub logical_id: String,
    pub resource_type: String,
    pub action: String,
    /// The resource whose completion let this one start (index into `Plan::nodes`); None:
    /// it started with the operation.
    pub parent: Option<usize>,
    /// Seconds from the parent's completion (or the operation's start) to this one's start.
    pub gap: f64,
    /// Seconds from the operation's start to this one's start, in that run.
    pub start: f64,
}

/// The shape of one past run: its resources in start order with their triggers.
#[derive(Debug, Clone)]
pub struct Plan {
    pub nodes: Vec<Node>,
    /// Node indices by logical id (see [`Plan::find`]).
    ids: HashMap<String, Vec<usize>>,
    /// From the last resource's completion to the stack's.
    pub tail: f64,
    pub total: f64,
}

/// A resource may start this long before its trigger's recorded completion (timestamps from
/// different CloudFormation workers).
const TRIGGER_TOLERANCE: f64 = 2.0;

/// Infers each resource's trigger: CloudFormation starts a resource as soon as the last of its
/// dependencies completes, so the resource that completed last before it started is the one
/// it waited for. The true dependency graph may have more edges, but only the last one to
/// finish decides when a resource starts, which is what an estimate needs.
pub fn infer_parents(
    items: &[(f64, Option<f64>)], // (start, finish) seconds from the operation start
) -> Vec<(Option<usize>, f64)> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|a, b| items[*a].0.total_cmp(&items[*b].0).then(a.cmp(b)));
    let mut rank = vec![0; items.len()];
    for (pos, i) in order.iter().enumerate() {
        rank[*i] = pos;
    }
    items
        .iter()
        .enumerate()
        .map(|(b, (start, _))| {
            let parent = items
                .iter()
                .enumerate()
                .filter(|(a, (_, f))| {
                    rank[*a] < rank[b] && f.is_some_and(|f| f <= start + TRIGGER_TOLERANCE)
                })
                .max_by(|x, y| x.1.1.unwrap_or(0.0).total_cmp(&y.1.1.unwrap_or(0.0)))
                .map(|(a, _)| a);
            let gap = match parent {
                Some(a) => (start - items[a].1.unwrap_or(0.0)).max(0.0),
                None => start.max(0.0),
            };
            (parent, gap)
        })
        .collect()
}

impl Plan {
    /// The node of `logical_id` doing `action`, if the run had it.
    pub fn find(&self, logical_id: &str, action: &str) -> Option<usize> {
        self.ids
            .get(logical_id)?
            .iter()
            .copied()
            .find(|i| self.nodes[*i].action == action)
    }

    /// Whether the run worked on `logical_id` doing `action`.
    pub fn has(&self, logical_id: &str, action: &str) -> bool {
        self.find(logical_id, action).is_some()
    }

    pub fn from_record(record: &HistoryRecord) -> Plan {
        let mut resources: Vec<&ResourceTiming> = record.forward_resources().collect();
        resources.sort_by_key(|r| r.started_at);
        let at = |t| seconds_between(record.started_at, t);
        let items: Vec<(f64, Option<f64>)> = resources
            .iter()
            .map(|r| {
                (
                    at(r.started_at),
                    Some(at(r.finished_at).max(at(r.started_at))),
                )
            })
            .collect();
        let parents = infer_parents(&items);
        let mut nodes = Vec::with_capacity(resources.len());
        let mut ids: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, (r, (parent, gap))) in resources.iter().zip(parents).enumerate() {
            ids.entry(r.logical_id.clone()).or_default().push(i);
            nodes.push(Node {
                logical_id: r.logical_id.clone(),
                resource_type: r.resource_type.clone(),
                action: r.action.clone(),
                parent,
                gap,
                start: items[i].0,
            });
        }
        let last = items.iter().filter_map(|(_, f)| *f).fold(0.0f64, f64::max);
        Plan {
            nodes,
            ids,
            tail: (record.seconds() - last).max(0.0),
            total: record.seconds(),
        }
    }
}

/// At most this many past runs serve as plans (the newest): enough variety, and a stack's
/// template drifts over time.
pub const MAX_PLANS: usize = 20;

/// Successful runs of the same operation on the same stack, newest first: the runs that show
/// what this one will do. Failed and cancelled runs end early and would mislead.
pub fn comparable_runs<'a>(
    history: &'a [HistoryRecord],
    stack: &str,
    operation: Operation,
) -> Vec<&'a HistoryRecord> {
    let mut runs: Vec<&HistoryRecord> = history
        .iter()
        .filter(|r| r.stack == stack && r.operation == operation && r.outcome == Outcome::Succeeded)
        .collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.finished_at));
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_are_the_last_completion_before_a_start() {
        // A(0–10) and B(0–30) in parallel; C starts at 31 after B; D at 11 after A.
        let items = [
            (0.0, Some(10.0)),
            (0.5, Some(30.0)),
            (31.0, Some(40.0)),
            (11.0, Some(12.0)),
        ];
        let p = infer_parents(&items);
        assert_eq!(p[0], (None, 0.0));
        assert_eq!(p[1], (None, 0.5));
        assert_eq!(p[2].0, Some(1));
        assert!((p[2].1 - 1.0).abs() < 1e-9);
        assert_eq!(p[3].0, Some(0));
    }

    #[test]
    fn simultaneous_tiny_resources_never_form_a_cycle() {
        let items = [(5.0, Some(5.5)), (5.0, Some(5.2))];
        let p = infer_parents(&items);
        assert!(p[0].0.is_none() || p[1].0.is_none());
    }
}
