//! The per-resource model: the remaining time simulated a few hundred times over the shape of
//! past runs (which resource waited for which), with each resource's own duration model.
//!
//! What this run is, is learned while it runs. Without a change set, each future follows one
//! past run's plan, and plans are weighted by how well they explain what has happened so far:
//! a resource this run started that the plan lacks makes the plan less likely, and so does a
//! plan that had started many more (or fewer) resources at this point of its run than this one
//! has: how many resources were touched so far says how broad the change is. A resource of the
//! plan that should have started by now (its trigger finished a while ago) and did not is not
//! part of this change: it is dropped from that future (what waited for it waits only for its
//! trigger), and the plan, which did not leave it out, loses weight too.
//!
//! With a change set, the work is known exactly: past runs only lend their shape (who waits
//! for whom), and every announced change is run.

use std::collections::HashMap;
use std::rc::Rc;

use super::changes::Work;
use super::dist::{self, DurationModel, Rng, quantile};
use super::model::{self, Knowledge, Plan, Source};
use super::priors;

/// A resource whose trigger completed this long ago (beyond the usual gap) and that has not
/// started is not part of this operation: CloudFormation starts a resource within a second or
/// two of its last dependency (0.3–1.5 s in the real streams, at most 3.5 s from the stack's
/// start: tests/fixtures/real-events), and its event is visible at once.
pub(crate) const SKIP_GRACE: f64 = 5.0;
/// How much whole runs differ in speed (log spread) before this run's own resources say.
const RUN_SPREAD: f64 = 0.15;
/// A run is taken to be at most twice as fast or as slow as usual overall.
const MAX_SHIFT: f64 = 0.7;
/// How much a plan's weight drops for each resource it cannot explain (started here, not in
/// the plan), and for each resource of the plan that this run visibly skipped (its trigger
/// finished a while ago and it did not start): a run that left out what a plan did is less
/// like that plan in what is still to come, too (a small change is not the large one).
const EXTRA: f64 = 0.2;
const ABSENT: f64 = 0.5;
/// Log spread of the number of resources started at a given moment among runs of the same
/// breadth of change.
const BREADTH_SPREAD: f64 = 0.5;
/// From the last forward change to the first cleanup delete (real streams: the stack's
/// `UPDATE_COMPLETE_CLEANUP_IN_PROGRESS` 1–3 s after the last resource, deletes right after).
const CLEANUP_GAP: f64 = 3.0;
/// From a trigger's completion to its dependant's start, when no past run shows it.
const DEFAULT_GAP: f64 = 1.0;

/// A resource of the current run, in seconds from the operation's start.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub logical_id: String,
    pub resource_type: String,
    pub action: String,
    pub start: f64,
    pub finish: Option<f64>,
}

/// The simulated futures and what they say besides the remaining time.
pub(crate) struct Futures {
    pub samples: Vec<f64>,
    /// The futures in which no resource took its less likely explanation: not a slow outlier
    /// for a resource not yet started, nor for a running one whose elapsed time a usual run
    /// still explains (one already far past its usual time stays slow: that is evidence, not
    /// a guess).
    pub typical: Vec<f64>,
    /// Mean number of resources still to start.
    pub pending: f64,
    /// Each plan's (or donor's) weight: how well it explains this run so far.
    pub weights: Vec<f64>,
}

impl Futures {
    /// (P10, point estimate, P90). The point estimate leaves out the futures where some
    /// resource turned out a slow outlier that nothing points to yet: each of a dozen
    /// resources carries a few per cent of that risk, which belongs in the high bound, but
    /// counted in the median it makes every ordinary run look late. Too few typical futures:
    /// all of them.
    pub fn quantiles(&mut self) -> (f64, f64, f64) {
        let p10 = quantile(&mut self.samples, 0.1);
        let p90 = quantile(&mut self.samples, 0.9);
        let p50 = if self.typical.len() * 4 >= self.samples.len() {
            quantile(&mut self.typical, 0.5)
        } else {
            quantile(&mut self.samples, 0.5)
        };
        (p10, p50.clamp(p10, p90), p90)
    }
}

/// One resource of one candidate future.
#[derive(Debug, Clone)]
struct Node {
    /// Index of the resource it waits for (an earlier node).
    parent: Option<usize>,
    gap: f64,
    model: DurationModel,
    /// With this probability the other model (a conditional replacement).
    alt: Option<(DurationModel, f64)>,
    /// The current run's resource it is.
    matched: Option<usize>,
    /// May turn out not to be part of this operation (a plan's resource, not the change set's).
    skippable: bool,
    /// Waits for every forward resource (the cleanup phase).
    cleanup: bool,
}

/// A piece of a change set's work: its duration model(s) and its match in this run.
#[derive(Debug, Clone, Copy)]
struct WorkModel {
    model: DurationModel,
    alt: Option<(DurationModel, f64)>,
    matched: Option<usize>,
}

/// A candidate future's shape and how likely it is.
struct Scenario {
    nodes: Vec<Node>,
    tail: f64,
    weight: f64,
}

pub(crate) struct Sim<'a> {
    pub knowledge: &'a Knowledge,
    pub now: f64,
    pub rng: Rng,
    pub samples: usize,
    shift: f64,
    /// Duration models by logical id, then action.
    models: HashMap<String, Vec<(String, DurationModel)>>,
}

impl<'a> Sim<'a> {
    pub fn new(knowledge: &'a Knowledge, now: f64, seed: u64, samples: usize) -> Self {
        Sim {
            knowledge,
            now,
            rng: Rng::new(seed),
            samples,
            shift: 0.0,
            models: HashMap::new(),
        }
    }

    /// A resource's duration model doing `action`, shifted by this run's speed.
    fn model(&mut self, logical: &str, rtype: &str, action: &str) -> DurationModel {
        if let Some((_, m)) = self
            .models
            .get(logical)
            .and_then(|ms| ms.iter().find(|(a, _)| a == action))
        {
            return *m;
        }
        let mut m = self.knowledge.model(logical, rtype, action, false).0;
        m.mu += self.shift;
        self.models
            .entry(logical.to_string())
            .or_default()
            .push((action.to_string(), m));
        m
    }

    /// How much faster or slower than usual this run's finished resources were, as a log
    /// ratio: the precision-weighted mean of their deviations, shrunk towards zero by a prior
    /// spread of whole runs ([`RUN_SPREAD`]). Each deviation is capped at two spreads from the
    /// median deviation, so one slow outlier does not make the whole run "slow", while a run
    /// where everything is slow is recognised as such.
    pub fn learn_speed(&mut self, forward: &[Seen]) {
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
        self.shift = (num / den).clamp(-MAX_SHIFT, MAX_SHIFT);
        self.models.clear();
    }

    /// Without a change set: each past run's plan, weighted by how well it explains this run.
    pub fn with_plans(&mut self, plans: &[Rc<Plan>], forward: &[Seen]) -> Futures {
        let seen = index(forward);
        let started = forward.len() as f64;
        let mut scenarios = Vec::with_capacity(plans.len());
        for (rank, plan) in plans.iter().enumerate() {
            let mut nodes = Vec::with_capacity(plan.nodes.len());
            for n in &plan.nodes {
                let model = self.model(&n.logical_id, &n.resource_type, &n.action);
                nodes.push(Node {
                    parent: n.parent,
                    gap: n.gap,
                    model,
                    alt: None,
                    matched: seen
                        .get(&(n.logical_id.as_str(), n.action.as_str()))
                        .copied(),
                    skippable: true,
                    cleanup: false,
                });
            }
            let extra = forward
                .iter()
                .filter(|s| !plan.has(&s.logical_id, &s.action))
                .count();
            let absent = self.absent(&nodes, forward);
            let then = plan.nodes.iter().filter(|n| n.start <= self.now).count() as f64;
            let breadth = ((started + 1.0) / (then + 1.0)).ln() / BREADTH_SPREAD;
            let weight = 0.85f64.powi(rank as i32)
                * EXTRA.powi(extra as i32)
                * ABSENT.powi(absent as i32)
                * (-0.5 * breadth * breadth).exp();
            scenarios.push(Scenario {
                nodes,
                tail: plan.tail,
                weight,
            });
        }
        self.simulate(&scenarios, plans, forward)
    }

    /// With a change set: exactly its work, in the shape past runs (`donors`, any operation of
    /// the stack) lend it.
    pub fn with_change_set(
        &mut self,
        donors: &[Rc<Plan>],
        work: &[Work],
        forward: &[Seen],
    ) -> Futures {
        let seen = index(forward);
        let keys: Vec<(String, String)> = work
            .iter()
            .map(|w| (w.logical_id.clone(), w.action.to_string()))
            .collect();
        // Where each piece of work is among the change's forward work (what may be waited for).
        let forward_index: HashMap<(&str, &str), usize> = work
            .iter()
            .enumerate()
            .filter(|(_, w)| !w.cleanup)
            .map(|(k, w)| ((w.logical_id.as_str(), w.action), k))
            .collect();
        // A resource a donor has not the shape of takes it from the newest donor that has it.
        let fallback: Vec<Option<&Plan>> = keys
            .iter()
            .map(|k| donors.iter().map(|p| &**p).find(|p| p.has(&k.0, &k.1)))
            .collect();
        // Each piece of work's duration model (a conditional replacement: a create's time, at
        // that probability) and its match in this run, whatever shape it takes.
        let models: Vec<WorkModel> = work
            .iter()
            .map(|w| WorkModel {
                model: self.model(&w.logical_id, &w.resource_type, w.like),
                alt: (w.maybe_like > 0.0).then(|| {
                    let create = self.model(&w.logical_id, &w.resource_type, "CREATE");
                    (create, w.maybe_like)
                }),
                matched: seen.get(&(w.logical_id.as_str(), w.action)).copied(),
            })
            .collect();
        let mut scenarios = Vec::new();
        let shapes: Vec<Option<&Plan>> = if donors.is_empty() {
            vec![None]
        } else {
            donors.iter().map(|p| Some(&**p)).collect()
        };
        for (rank, donor) in shapes.into_iter().enumerate() {
            let mut parents: Vec<(Option<usize>, f64)> = Vec::with_capacity(work.len());
            for (i, (k, w)) in keys.iter().zip(work).enumerate() {
                if w.cleanup {
                    parents.push((None, CLEANUP_GAP));
                    continue;
                }
                let shape = donor.filter(|p| p.has(&k.0, &k.1)).or(fallback[i]);
                parents.push(match shape {
                    Some(p) => climb(p, k, &forward_index),
                    None => (None, DEFAULT_GAP),
                });
            }
            let order = topological(&parents);
            let mut position = vec![0usize; work.len()];
            for (pos, k) in order.iter().enumerate() {
                position[*k] = pos;
            }
            let mut nodes = Vec::with_capacity(work.len());
            for (pos, &k) in order.iter().enumerate() {
                let WorkModel {
                    model,
                    alt,
                    matched,
                } = models[k];
                nodes.push(Node {
                    parent: parents[k].0.map(|p| position[p]).filter(|p| *p < pos),
                    gap: parents[k].1,
                    model,
                    alt,
                    matched,
                    skippable: false,
                    cleanup: work[k].cleanup,
                });
            }
            // The donors most like this change (and the newest) lend their shape most often.
            let similarity = donor.map_or(1.0, |p| {
                let shared = keys.iter().filter(|k| p.has(&k.0, &k.1)).count() as f64;
                shared / (keys.len() + p.nodes.len()) as f64 * 2.0
            });
            scenarios.push(Scenario {
                nodes,
                tail: donor.map_or(priors::GENERIC_TAIL, |p| p.tail),
                weight: 0.85f64.powi(rank as i32) * (0.05 + similarity * similarity),
            });
        }
        self.simulate(&scenarios, donors, forward)
    }

    /// The plan's resources that this run has visibly skipped: their trigger finished here (for
    /// one that waits for nothing: the first wave started) more than [`SKIP_GRACE`] ago and
    /// they have not started.
    fn absent(&self, nodes: &[Node], forward: &[Seen]) -> usize {
        let first_wave = forward.iter().map(|s| s.start).min_by(f64::total_cmp);
        let mut known: Vec<Option<f64>> = vec![None; nodes.len()];
        let mut absent = 0;
        for (i, n) in nodes.iter().enumerate() {
            let ready = match n.parent {
                Some(j) => known[j].map(|f| f + n.gap),
                None => first_wave,
            };
            known[i] = match (n.matched, ready) {
                (Some(o), _) => forward[o].finish,
                (None, Some(r)) if self.now > r + SKIP_GRACE => {
                    absent += 1;
                    Some(r - n.gap)
                }
                _ => None,
            };
        }
        absent
    }

    fn simulate(
        &mut self,
        scenarios: &[Scenario],
        plans: &[Rc<Plan>],
        forward: &[Seen],
    ) -> Futures {
        let now = self.now;
        let weights: Vec<f64> = scenarios.iter().map(|s| s.weight).collect();
        let seen_models: Vec<DurationModel> = forward
            .iter()
            .map(|s| self.model(&s.logical_id, &s.resource_type, &s.action))
            .collect();
        let tails: Vec<f64> = plans.iter().map(|p| p.tail).collect();
        let tail_model = match dist::robust_log_stats(&tails) {
            Some((mu, sigma)) => DurationModel {
                mu,
                sigma: sigma.max(0.3),
                slow: model::SLOW_OUTLIER,
            },
            None => DurationModel::from_median(priors::GENERIC_TAIL, 0.5, model::SLOW_OUTLIER),
        };
        let mut futures = Futures {
            samples: Vec::with_capacity(self.samples),
            typical: Vec::with_capacity(self.samples),
            pending: 0.0,
            weights: weights.clone(),
        };
        let mut pending = 0usize;
        // CloudFormation starts every resource that waits for nothing in one first wave: until
        // that wave shows, a resource not started yet says nothing (the operation itself may
        // be slow to begin); once it has, a first-wave resource missing from it is skipped.
        let first_wave = forward.iter().map(|s| s.start).min_by(f64::total_cmp);
        for _ in 0..self.samples {
            let sc = &scenarios[self.rng.pick(&weights)];
            let n = sc.nodes.len();
            let mut finish = vec![0.0f64; n];
            let mut known = vec![false; n];
            let mut in_plan = vec![false; forward.len()];
            let mut end = 0.0f64;
            let mut forward_end = 0.0f64;
            let mut outlier = false;
            for (i, node) in sc.nodes.iter().enumerate() {
                let (parent_finish, parent_known) = match (node.parent, first_wave) {
                    (Some(j), _) => (finish[j], known[j]),
                    (None, _) if node.cleanup => (forward_end, false),
                    (None, Some(t)) => (t - node.gap, true),
                    (None, None) => (0.0, false),
                };
                let ready = parent_finish + node.gap;
                let model = match node.alt {
                    Some((alt, p)) if self.rng.uniform() < p => alt,
                    _ => node.model,
                };
                match node.matched {
                    Some(o) => {
                        in_plan[o] = true;
                        let s = &forward[o];
                        match s.finish {
                            Some(f) => {
                                finish[i] = f;
                                known[i] = true;
                            }
                            None => {
                                let m = if node.alt.is_some() {
                                    model
                                } else {
                                    seen_models[o]
                                };
                                let (d, odd) =
                                    m.sample_beyond_flagged(now - s.start, &mut self.rng);
                                outlier |= odd;
                                finish[i] = s.start + d;
                            }
                        }
                    }
                    None if node.skippable && parent_known && now > ready + SKIP_GRACE => {
                        // Its trigger finished long ago and it never started: this change
                        // does not touch it. Its dependants wait only for its trigger.
                        finish[i] = parent_finish;
                        known[i] = true;
                    }
                    None => {
                        pending += 1;
                        let start = ready.max(now);
                        let (d, slow) = model.sample_flagged(&mut self.rng);
                        outlier |= slow;
                        finish[i] = start + d;
                    }
                }
                if !node.cleanup {
                    forward_end = forward_end.max(finish[i]);
                }
                end = end.max(finish[i]);
            }
            // Resources this future does not have: only their own time is known.
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
                sc.tail
            };
            let remaining = (end + tail - now).max(0.0);
            futures.samples.push(remaining);
            if !outlier {
                futures.typical.push(remaining);
            }
        }
        futures.pending = pending as f64 / self.samples.max(1) as f64;
        futures
    }
}

fn index(forward: &[Seen]) -> HashMap<(&str, &str), usize> {
    forward
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.logical_id.as_str(), s.action.as_str()), i))
        .collect()
}

/// The change-set work `key` waits for in `plan`: its trigger there, or, when the trigger is
/// not part of this change (CloudFormation does not wait for an unchanged resource), the
/// trigger's trigger, and so on. With the gap the plan shows.
fn climb(
    plan: &Plan,
    key: &(String, String),
    position: &HashMap<(&str, &str), usize>,
) -> (Option<usize>, f64) {
    let Some(i) = plan.find(&key.0, &key.1) else {
        return (None, DEFAULT_GAP);
    };
    let gap = plan.nodes[i].gap;
    let mut p = plan.nodes[i].parent;
    while let Some(j) = p {
        let n = &plan.nodes[j];
        if let Some(&k) = position.get(&(n.logical_id.as_str(), n.action.as_str())) {
            return (Some(k), gap);
        }
        p = n.parent;
    }
    (None, gap)
}

/// An order in which every node comes after the one it waits for (parents borrowed from
/// several plans could, in theory, form a cycle: the link that would close it is dropped).
fn topological(parents: &[(Option<usize>, f64)]) -> Vec<usize> {
    let n = parents.len();
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    for start in 0..n {
        let mut chain = Vec::new();
        let mut k = Some(start);
        while let Some(i) = k {
            if placed[i] || chain.contains(&i) {
                break;
            }
            chain.push(i);
            k = parents[i].0;
        }
        for &i in chain.iter().rev() {
            placed[i] = true;
            order.push(i);
        }
    }
    order
}
