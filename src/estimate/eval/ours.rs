//! The first family of the evaluation, "ours": the three stacks the estimator was first
//! written against (also the report's sample data, `report::sample`). Deterministic for a
//! given seed.
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

use super::engine::Deployment;
use crate::estimate::dist::Rng;
use crate::history::events::{STACK_TYPE, StackEvent, Trace};
use crate::history::record::{HistoryRecord, Operation, Outcome, ResourceTiming};
use crate::stack::client::ResourceChange;

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
    crate::history::events::trace_at(run, at)
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

/// A generated record as the stack events CloudFormation would have written for it, with the
/// change set that names its resources (the "ours" family through the same path as the
/// others: events in, records and traces out).
fn deployment_of(record: &HistoryRecord) -> Deployment {
    let stack_id = format!(
        "arn:aws:cloudformation:eu-west-1:123456789012:stack/{}/0",
        record.stack
    );
    let verb = record.operation.as_str();
    let event = |n: usize, logical: &str, rtype: &str, at, status: String, reason: Option<&str>| {
        StackEvent {
            stack_id: stack_id.clone(),
            event_id: format!("{}-{n}", record.correlation_id),
            stack_name: record.stack.clone(),
            logical_resource_id: logical.to_string(),
            physical_resource_id: Some(if logical == record.stack {
                stack_id.clone()
            } else {
                format!("{}-{logical}", record.stack)
            }),
            resource_type: rtype.to_string(),
            timestamp: at,
            resource_status: status,
            resource_status_reason: reason.map(str::to_string),
            ..Default::default()
        }
    };
    let mut events = vec![event(
        0,
        &record.stack,
        STACK_TYPE,
        record.started_at,
        format!("{verb}_IN_PROGRESS"),
        Some("User Initiated"),
    )];
    for r in &record.resources {
        let n = events.len();
        events.push(event(
            n,
            &r.logical_id,
            &r.resource_type,
            r.started_at,
            format!("{}_IN_PROGRESS", r.action),
            None,
        ));
        events.push(event(
            n + 1,
            &r.logical_id,
            &r.resource_type,
            r.finished_at,
            r.status.clone(),
            None,
        ));
    }
    let n = events.len();
    events.push(event(
        n,
        &record.stack,
        STACK_TYPE,
        record.finished_at,
        format!("{verb}_COMPLETE"),
        None,
    ));
    events.sort_by_key(|e| e.timestamp);
    let change_set = record
        .resources
        .iter()
        .map(|r| ResourceChange {
            logical_id: r.logical_id.clone(),
            resource_type: r.resource_type.clone(),
            action: if r.action == "CREATE" {
                "Add"
            } else {
                "Modify"
            }
            .to_string(),
            replacement: (r.action != "CREATE").then(|| "False".to_string()),
            scope: vec!["Properties".to_string()],
            ..Default::default()
        })
        .collect();
    Deployment {
        events,
        change_set: Some(change_set),
        started_at: record.started_at,
        finished_at: record.finished_at,
    }
}

/// The three stacks' deployments as stack events: (stack, deployments oldest first).
pub(crate) fn deployments(seed: u64, n: usize) -> Vec<(String, Vec<Deployment>)> {
    histories(seed, n)
        .into_iter()
        .map(|runs| {
            let stack = runs.first().map(|r| r.stack.clone()).unwrap_or_default();
            (stack, runs.iter().map(deployment_of).collect())
        })
        .collect()
}
