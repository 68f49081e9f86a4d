//! The estimator's evaluation: synthetic but realistic deployment histories, replayed.
//!
//! Used by `examples/estimate_eval.rs` (the full run whose table is in docs/performance.md)
//! and by `tests/estimate_eval.rs` (a small seeded run that guards the goals). Deterministic
//! for a given seed.
//!
//! Generator assumptions (stated in docs/performance.md too):
//! - three stacks: an application stack updated often (ECS service on most deploys, Lambda
//!   code, sometimes a CloudFront, RDS, ElastiCache or ALB change), an environment re-created
//!   every night (VPC, subnets, two NAT gateways, Multi-AZ RDS, ElastiCache, ALB, ECS), and a
//!   serverless API (Lambda functions, sometimes a queue, a table or a CloudFront change);
//! - resources start when their dependencies complete (0.5–2.5 s later), so independent
//!   resources run in parallel waves; an update changes each resource with its own
//!   probability, and an unchanged resource costs nothing;
//! - durations are lognormal around the reference table's medians (CloudFront 7–9 min, RDS
//!   ~7 min single-AZ / ~16 min Multi-AZ, ElastiCache ~7.5 min, NAT ~105 s, ALB ~130 s,
//!   ECS service 3–4 min, Lambda 10–15 s, IAM 20 s), times a per-deployment factor
//!   (lognormal, σ 0.1: a busy region slows everything), and 3 % of resource runs are slow
//!   outliers (×2–4);
//! - the stack's wrap-up after its last resource takes 5–20 s.

use chrono::{DateTime, TimeDelta, Utc};

use super::dist::{Rng, quantile};
use super::{Options, estimate_with};
use crate::history::events::{ResourceState, Trace};
use crate::history::record::{HistoryRecord, Operation, Outcome, ResourceTiming};

/// One resource of a synthetic stack.
#[derive(Debug, Clone)]
struct Spec {
    id: &'static str,
    rtype: &'static str,
    deps: &'static [&'static str],
    /// Median seconds and log-spread of its work in this scenario's operation.
    median: f64,
    sigma: f64,
    /// Probability that a deployment touches it.
    p: f64,
}

const fn spec(
    id: &'static str,
    rtype: &'static str,
    deps: &'static [&'static str],
    median: f64,
    sigma: f64,
    p: f64,
) -> Spec {
    Spec {
        id,
        rtype,
        deps,
        median,
        sigma,
        p,
    }
}

struct Scenario {
    stack: &'static str,
    operation: Operation,
    specs: Vec<Spec>,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            stack: "web-platform",
            operation: Operation::Update,
            specs: vec![
                spec("TaskRole", "AWS::IAM::Role", &[], 15.0, 0.3, 0.15),
                spec("AssetsBucket", "AWS::S3::Bucket", &[], 10.0, 0.3, 0.1),
                spec(
                    "TaskDefinition",
                    "AWS::ECS::TaskDefinition",
                    &["TaskRole"],
                    4.0,
                    0.4,
                    0.9,
                ),
                spec(
                    "ResizeFn",
                    "AWS::Lambda::Function",
                    &["TaskRole"],
                    12.0,
                    0.4,
                    0.5,
                ),
                spec(
                    "AuthFn",
                    "AWS::Lambda::Function",
                    &["TaskRole"],
                    12.0,
                    0.4,
                    0.5,
                ),
                spec("Database", "AWS::RDS::DBInstance", &[], 420.0, 0.3, 0.12),
                spec(
                    "Cache",
                    "AWS::ElastiCache::ReplicationGroup",
                    &[],
                    540.0,
                    0.25,
                    0.08,
                ),
                spec(
                    "LoadBalancer",
                    "AWS::ElasticLoadBalancingV2::LoadBalancer",
                    &[],
                    30.0,
                    0.4,
                    0.1,
                ),
                spec(
                    "Service",
                    "AWS::ECS::Service",
                    &["TaskDefinition", "LoadBalancer", "Database"],
                    240.0,
                    0.35,
                    0.9,
                ),
                spec(
                    "Distribution",
                    "AWS::CloudFront::Distribution",
                    &["AssetsBucket", "ResizeFn"],
                    480.0,
                    0.35,
                    0.35,
                ),
                spec(
                    "Alarm",
                    "AWS::CloudWatch::Alarm",
                    &["Service"],
                    3.0,
                    0.4,
                    0.3,
                ),
            ],
        },
        Scenario {
            stack: "nightly-env",
            operation: Operation::Create,
            specs: vec![
                spec("Vpc", "AWS::EC2::VPC", &[], 15.0, 0.3, 1.0),
                spec("SubnetA", "AWS::EC2::Subnet", &["Vpc"], 6.0, 0.4, 1.0),
                spec("SubnetB", "AWS::EC2::Subnet", &["Vpc"], 6.0, 0.4, 1.0),
                spec("Igw", "AWS::EC2::InternetGateway", &["Vpc"], 15.0, 0.3, 1.0),
                spec(
                    "NatA",
                    "AWS::EC2::NatGateway",
                    &["SubnetA", "Igw"],
                    105.0,
                    0.12,
                    1.0,
                ),
                spec(
                    "NatB",
                    "AWS::EC2::NatGateway",
                    &["SubnetB", "Igw"],
                    105.0,
                    0.12,
                    1.0,
                ),
                spec("DbSg", "AWS::EC2::SecurityGroup", &["Vpc"], 6.0, 0.4, 1.0),
                spec(
                    "Database",
                    "AWS::RDS::DBInstance",
                    &["SubnetA", "SubnetB", "DbSg"],
                    960.0,
                    0.15,
                    1.0,
                ),
                spec(
                    "Cache",
                    "AWS::ElastiCache::ReplicationGroup",
                    &["SubnetA", "SubnetB", "DbSg"],
                    450.0,
                    0.12,
                    1.0,
                ),
                spec("Role", "AWS::IAM::Role", &[], 20.0, 0.3, 1.0),
                spec(
                    "Migrate",
                    "AWS::Lambda::Function",
                    &["Role", "Database"],
                    15.0,
                    0.4,
                    1.0,
                ),
                spec(
                    "Alb",
                    "AWS::ElasticLoadBalancingV2::LoadBalancer",
                    &["SubnetA", "SubnetB"],
                    130.0,
                    0.25,
                    1.0,
                ),
                spec("Cluster", "AWS::ECS::Cluster", &[], 10.0, 0.3, 1.0),
                spec(
                    "Service",
                    "AWS::ECS::Service",
                    &["Alb", "Cluster", "NatA", "NatB", "Cache"],
                    180.0,
                    0.4,
                    1.0,
                ),
            ],
        },
        Scenario {
            stack: "serverless-api",
            operation: Operation::Update,
            specs: vec![
                spec("FnRole", "AWS::IAM::Role", &[], 15.0, 0.3, 0.2),
                spec(
                    "Orders",
                    "AWS::Lambda::Function",
                    &["FnRole"],
                    10.0,
                    0.5,
                    0.7,
                ),
                spec(
                    "Payments",
                    "AWS::Lambda::Function",
                    &["FnRole"],
                    10.0,
                    0.5,
                    0.5,
                ),
                spec(
                    "Users",
                    "AWS::Lambda::Function",
                    &["FnRole"],
                    10.0,
                    0.5,
                    0.5,
                ),
                spec(
                    "Search",
                    "AWS::Lambda::Function",
                    &["FnRole"],
                    10.0,
                    0.5,
                    0.4,
                ),
                spec("Table", "AWS::DynamoDB::Table", &[], 20.0, 0.5, 0.05),
                spec("Queue", "AWS::SQS::Queue", &[], 60.0, 0.3, 0.15),
                spec(
                    "Api",
                    "AWS::ApiGateway::RestApi",
                    &["Orders", "Payments", "Users", "Search"],
                    5.0,
                    0.4,
                    1.0,
                ),
                spec(
                    "Deployment",
                    "AWS::ApiGateway::Deployment",
                    &["Api"],
                    5.0,
                    0.4,
                    1.0,
                ),
                spec(
                    "Edge",
                    "AWS::CloudFront::Distribution",
                    &["Deployment"],
                    420.0,
                    0.35,
                    0.15,
                ),
            ],
        },
    ]
}

fn t(base: DateTime<Utc>, seconds: f64) -> DateTime<Utc> {
    base + TimeDelta::milliseconds((seconds * 1000.0).round() as i64)
}

/// One synthetic deployment of a scenario.
fn generate(sc: &Scenario, index: usize, rng: &mut Rng) -> HistoryRecord {
    let base: DateTime<Utc> = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default()
        + TimeDelta::days(index as i64);
    let run_factor = (0.1 * rng.normal()).exp();
    let mut finish: Vec<f64> = Vec::with_capacity(sc.specs.len());
    let mut resources = Vec::new();
    let mut last = 0.0f64;
    for s in &sc.specs {
        let deps_done = s
            .deps
            .iter()
            .filter_map(|d| sc.specs.iter().position(|x| x.id == *d))
            .map(|i| finish[i])
            .fold(0.0f64, f64::max);
        // Every resource is drawn even when unchanged, so the random stream (and so the other
        // resources' durations) does not depend on which ones a deployment touches.
        let touched = rng.uniform() < s.p;
        let gap = if deps_done == 0.0 {
            1.0 + 3.0 * rng.uniform()
        } else {
            0.5 + 2.0 * rng.uniform()
        };
        let outlier = if rng.uniform() < 0.03 {
            2.0 + 2.0 * rng.uniform()
        } else {
            1.0
        };
        let d = s.median * run_factor * (s.sigma * rng.normal()).exp() * outlier;
        if !touched {
            finish.push(deps_done);
            continue;
        }
        let start = deps_done + gap;
        let end = start + d;
        finish.push(end);
        last = last.max(end);
        let action = sc.operation.as_str().to_string();
        resources.push(ResourceTiming {
            logical_id: s.id.to_string(),
            resource_type: s.rtype.to_string(),
            status: format!("{action}_COMPLETE"),
            action,
            started_at: t(base, start),
            finished_at: t(base, end),
        });
    }
    let tail = 5.0 + 15.0 * rng.uniform();
    HistoryRecord {
        stack: sc.stack.to_string(),
        correlation_id: format!("{}-{index:04}", sc.stack),
        operation: sc.operation,
        outcome: Outcome::Succeeded,
        started_at: base,
        finished_at: t(base, last + tail),
        rollback_started_at: None,
        resources,
        estimate: None,
        lock_wait_seconds: None,
    }
}

/// What the monitor would have seen `at` seconds into `run` (at 0: the operation has just
/// started, which is when the action makes its first estimate).
pub fn trace_at(run: &HistoryRecord, at: f64) -> Trace {
    let now = t(run.started_at, at);
    let mut resources: Vec<ResourceState> = run
        .resources
        .iter()
        .filter(|r| r.started_at <= now)
        .map(|r| {
            let done = r.finished_at <= now;
            ResourceState {
                logical_id: r.logical_id.clone(),
                resource_type: r.resource_type.clone(),
                action: r.action.clone(),
                started_at: r.started_at,
                finished_at: done.then_some(r.finished_at),
                status: if done {
                    r.status.clone()
                } else {
                    format!("{}_IN_PROGRESS", r.action)
                },
                rollback: false,
            }
        })
        .collect();
    resources.sort_by_key(|r| r.started_at);
    let last_event_at = resources
        .iter()
        .flat_map(|r| [Some(r.started_at), r.finished_at])
        .flatten()
        .max()
        .unwrap_or(run.started_at);
    Trace {
        stack: run.stack.clone(),
        operation: run.operation,
        started_at: run.started_at,
        last_event_at,
        rollback_started_at: None,
        finished: None,
        cancelled: false,
        resources,
    }
}

#[derive(Debug, Clone)]
pub struct EvalConfig {
    pub seed: u64,
    /// Independent generated worlds (seeds `seed`, `seed + 1`, …) pooled into one table: one
    /// world's ratio to the baseline varies by ±0.1 from seed to seed, more than most changes
    /// to the estimator, so a single seed cannot tell whether a goal is met.
    pub seeds: u64,
    /// Deployments generated per scenario (the first `warmup` only build history).
    pub deployments: usize,
    pub warmup: usize,
    /// History records the estimator sees (the newest), as the action reads them.
    pub window: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            seed: 20_260_114,
            seeds: 1,
            deployments: 120,
            warmup: 10,
            window: crate::history::store::ESTIMATE_WINDOW,
        }
    }
}

/// Results at one point of the runs (25 %, 50 %, 75 % of their actual duration).
#[derive(Debug, Clone)]
pub struct Row {
    pub at: f64,
    pub runs: usize,
    pub estimator_mae: f64,
    pub baseline_mae: f64,
    /// Fraction of runs whose actual remaining time fell inside [low, high].
    pub coverage: f64,
    /// Median of (estimated − actual) remaining: positive when the estimator is pessimistic.
    pub bias: f64,
    /// Fraction that finished sooner than `low` (the rest of the misses came after `high`).
    pub early: f64,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub rows: Vec<Row>,
    /// Per scenario: (stack, rows).
    pub by_stack: Vec<(String, Vec<Row>)>,
    /// Per seed, all stacks pooled: how much one generated world differs from another.
    pub by_seed: Vec<(u64, Vec<Row>)>,
    pub estimates: usize,
    pub mean_micros_per_estimate: f64,
}

pub const POINTS: [f64; 3] = [0.25, 0.5, 0.75];

/// The seed's baseline: the mean of the last 10 durations, minus the time already elapsed.
fn baseline(history: &[HistoryRecord], elapsed: f64) -> f64 {
    let last: Vec<f64> = history.iter().rev().take(10).map(|r| r.seconds()).collect();
    if last.is_empty() {
        return 0.0;
    }
    (last.iter().sum::<f64>() / last.len() as f64 - elapsed).max(0.0)
}

struct Errors {
    signed: Vec<f64>,
    est: Vec<f64>,
    base: Vec<f64>,
    inside: usize,
    early: usize,
}

fn rows(errors: &mut [Errors]) -> Vec<Row> {
    POINTS
        .iter()
        .zip(errors.iter_mut())
        .map(|(at, e)| Row {
            at: *at,
            runs: e.est.len(),
            estimator_mae: quantile(&mut e.est, 0.5),
            baseline_mae: quantile(&mut e.base, 0.5),
            coverage: e.inside as f64 / e.est.len().max(1) as f64,
            early: e.early as f64 / e.est.len().max(1) as f64,
            bias: quantile(&mut e.signed, 0.5),
        })
        .collect()
}

fn empty() -> Vec<Errors> {
    POINTS
        .iter()
        .map(|_| Errors {
            signed: Vec::new(),
            est: Vec::new(),
            base: Vec::new(),
            inside: 0,
            early: 0,
        })
        .collect()
}

/// The generated deployments of each of the three stacks, oldest first, one a day from
/// 2026-01-01: the records `run` replays (the same seed gives the same records). All succeed
/// and carry neither an estimate nor a lock wait: the report's sample data adds those.
pub fn histories(seed: u64, deployments: usize) -> Vec<Vec<HistoryRecord>> {
    let mut rng = Rng::new(seed);
    scenarios()
        .iter()
        .map(|sc| {
            (0..deployments)
                .map(|i| generate(sc, i, &mut rng))
                .collect()
        })
        .collect()
}

/// Generates the histories and replays every deployment after the warm-up against the ones
/// before it.
pub fn run(config: &EvalConfig) -> Report {
    let mut all = empty();
    let mut stacks: Vec<(String, Vec<Errors>)> = Vec::new();
    let mut by_seed = Vec::new();
    let mut estimates = 0usize;
    let started = std::time::Instant::now();
    for seed in config.seed..config.seed + config.seeds.max(1) {
        let mut this_seed = empty();
        for (sc, runs) in scenarios().iter().zip(histories(seed, config.deployments)) {
            if !stacks.iter().any(|(name, _)| name == sc.stack) {
                stacks.push((sc.stack.to_string(), empty()));
            }
            let Some((_, mine)) = stacks.iter_mut().find(|(name, _)| name == sc.stack) else {
                continue;
            };
            for i in config.warmup.min(runs.len())..runs.len() {
                let history = &runs[i.saturating_sub(config.window)..i];
                let run = &runs[i];
                let total = run.seconds();
                for (p, at) in POINTS.iter().enumerate() {
                    let elapsed = total * at;
                    let trace = trace_at(run, elapsed);
                    let now = t(run.started_at, elapsed);
                    let e = estimate_with(history, &trace, now, &Options::default());
                    estimates += 1;
                    let actual = total - elapsed;
                    let est_err = (e.remaining_seconds as f64 - actual).abs();
                    let base_err = (baseline(history, elapsed) - actual).abs();
                    // Whole seconds, as reported.
                    let early = actual.round() < e.remaining_low_seconds as f64;
                    let inside = !early && actual.round() <= e.remaining_high_seconds as f64;
                    for bucket in [&mut all[p], &mut mine[p], &mut this_seed[p]] {
                        bucket.est.push(est_err);
                        bucket.signed.push(e.remaining_seconds as f64 - actual);
                        bucket.base.push(base_err);
                        bucket.inside += usize::from(inside);
                        bucket.early += usize::from(early);
                    }
                }
            }
        }
        by_seed.push((seed, rows(&mut this_seed)));
    }
    let micros = started.elapsed().as_micros() as f64;
    Report {
        rows: rows(&mut all),
        by_stack: stacks
            .into_iter()
            .map(|(name, mut errors)| (name, rows(&mut errors)))
            .collect(),
        by_seed,
        estimates,
        mean_micros_per_estimate: micros / estimates.max(1) as f64,
    }
}

impl Report {
    /// The table for docs/performance.md.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| point of the run | runs | median abs. error, estimator | median abs. error, baseline | ratio | [low, high] coverage | ended before low / after high |\n|---|---|---|---|---|---|---|\n",
        );
        let line = |label: String, r: &Row| {
            format!(
                "| {label} | {} | {:.0} s | {:.0} s | {:.2} | {:.0} % | {:.0} % / {:.0} % |\n",
                r.runs,
                r.estimator_mae,
                r.baseline_mae,
                r.estimator_mae / r.baseline_mae.max(1e-9),
                r.coverage * 100.0,
                r.early * 100.0,
                (1.0 - r.coverage - r.early) * 100.0
            )
        };
        for r in &self.rows {
            out += &line(format!("{:.0} % (all stacks)", r.at * 100.0), r);
        }
        for (stack, rows) in &self.by_stack {
            for r in rows {
                out += &line(format!("{:.0} % ({stack})", r.at * 100.0), r);
            }
        }
        out
    }

    /// One line per point of the run: the ratio to the baseline of the single seeds, lowest,
    /// median and highest (empty with one seed).
    pub fn seed_spread(&self) -> String {
        if self.by_seed.len() < 2 {
            return String::new();
        }
        let mut out = String::new();
        for (p, at) in POINTS.iter().enumerate() {
            let mut ratios: Vec<f64> = self
                .by_seed
                .iter()
                .map(|(_, rows)| rows[p].estimator_mae / rows[p].baseline_mae.max(1e-9))
                .collect();
            let mut coverage: Vec<f64> = self.by_seed.iter().map(|(_, r)| r[p].coverage).collect();
            out += &format!(
                "single seeds at {:.0} %: ratio {:.2} / {:.2} / {:.2}, coverage {:.0} / {:.0} / {:.0} % (lowest / median / highest of {})\n",
                at * 100.0,
                quantile(&mut ratios, 0.0),
                quantile(&mut ratios, 0.5),
                quantile(&mut ratios, 1.0),
                quantile(&mut coverage, 0.0) * 100.0,
                quantile(&mut coverage, 0.5) * 100.0,
                quantile(&mut coverage, 1.0) * 100.0,
                self.by_seed.len()
            );
        }
        out
    }
}
