//! Generator families that differ in structure, not only in parameters: how the template is
//! shaped, how much one deployment changes, which operations happen and how they fail, how
//! slow a day can be. Each world is one stack and its deployments, oldest first.
//!
//! Resource times come from the simulator's built-in table (`simulator/README.md`, "Built-in
//! create durations", itself from the reference ranges), NOT from the estimator's priors, and
//! each world draws its own resources' typical times inside those ranges.

use chrono::{DateTime, TimeDelta, Utc};

use super::engine::{Deployment, Dur, Intent, Kind, Pace, Res, Template, play};
use crate::estimate::dist::Rng;
use crate::history::record::Operation;

/// (type, create seconds low–high, update ÷ create, delete ÷ create).
const PALETTE: &[(&str, (f64, f64), f64, f64)] = &[
    ("AWS::CloudFront::Distribution", (300.0, 1200.0), 0.7, 1.0),
    ("AWS::RDS::DBInstance", (360.0, 600.0), 0.8, 0.7),
    ("AWS::RDS::DBCluster", (300.0, 600.0), 0.6, 0.6),
    (
        "AWS::ElastiCache::ReplicationGroup",
        (360.0, 540.0),
        1.1,
        0.8,
    ),
    ("AWS::EKS::Cluster", (480.0, 600.0), 1.5, 1.0),
    ("AWS::EC2::NatGateway", (90.0, 120.0), 0.5, 0.6),
    (
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        (90.0, 180.0),
        0.2,
        0.3,
    ),
    ("AWS::ECS::Service", (60.0, 300.0), 1.2, 0.8),
    ("AWS::IAM::InstanceProfile", (60.0, 120.0), 0.5, 0.3),
    ("AWS::Lambda::Function", (10.0, 30.0), 0.7, 0.4),
    ("AWS::IAM::Role", (10.0, 20.0), 1.0, 0.3),
    ("AWS::IAM::Policy", (10.0, 20.0), 1.0, 0.3),
    ("AWS::DynamoDB::Table", (10.0, 30.0), 1.0, 1.0),
    ("AWS::S3::Bucket", (2.0, 25.0), 0.5, 0.5),
    ("AWS::SQS::Queue", (2.0, 30.0), 1.0, 2.0),
    ("AWS::SNS::Topic", (2.0, 10.0), 1.0, 1.0),
    ("AWS::EC2::VPC", (5.0, 15.0), 1.0, 1.0),
    ("AWS::EC2::Subnet", (5.0, 10.0), 1.0, 1.0),
    ("AWS::EC2::SecurityGroup", (5.0, 10.0), 1.0, 1.0),
    ("AWS::Logs::LogGroup", (1.0, 3.0), 1.0, 1.0),
    ("AWS::SSM::Parameter", (1.0, 3.0), 1.0, 1.0),
    ("AWS::ApiGateway::Deployment", (3.0, 15.0), 1.0, 1.0),
    ("AWS::Lambda::Permission", (3.0, 15.0), 1.0, 1.0),
    ("AWS::Events::Rule", (3.0, 15.0), 1.0, 1.0),
];

/// Seconds from a world's first deployment to the next one (they are hours to days apart).
fn base(index: usize, rng: &mut Rng) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default()
        + TimeDelta::hours(index as i64 * 9)
        + TimeDelta::minutes((rng.uniform() * 300.0) as i64)
}

fn pick<'a, T>(rng: &mut Rng, xs: &'a [T]) -> &'a T {
    &xs[((rng.uniform() * xs.len() as f64) as usize).min(xs.len() - 1)]
}

fn int(rng: &mut Rng, low: usize, high: usize) -> usize {
    low + ((rng.uniform() * (high - low + 1) as f64) as usize).min(high - low)
}

/// A resource of a palette type with its own typical times in this world; `noise` picks the
/// run-to-run distribution (lognormal, or uniform around the centre: not every family has
/// the estimator's lognormal shape).
fn resource(id: String, type_index: usize, deps: Vec<usize>, uniform: bool, rng: &mut Rng) -> Res {
    let (rtype, (low, high), up, del) = PALETTE[type_index];
    let centre = low + (high - low) * rng.uniform();
    let sigma = 0.08 + 0.35 * rng.uniform();
    let dur = |m: f64| {
        if uniform {
            Dur::Uniform {
                low: m * (1.0 - 1.2 * sigma).max(0.3),
                high: m * (1.0 + 1.2 * sigma),
            }
        } else {
            Dur::LogNormal { median: m, sigma }
        }
    };
    Res {
        id,
        rtype: rtype.to_string(),
        deps,
        create: dur(centre),
        update: dur(centre * up),
        delete: dur(centre * del),
    }
}

fn run_speed(rng: &mut Rng, sigma: f64) -> f64 {
    (sigma * rng.normal()).exp()
}

fn intent(operation: Operation, changes: Vec<(usize, Kind)>, speed: f64) -> Intent {
    let n = changes.len();
    Intent {
        operation,
        changes,
        fail: None,
        speed,
        stuck: vec![1.0; n],
        conditional: Vec::new(),
    }
}

/// Plays an update of `changes` as the `d`-th deployment, at a speed of its own (log spread
/// `sigma`).
fn update(
    template: &Template,
    changes: Vec<(usize, Kind)>,
    sigma: f64,
    d: usize,
    pace: &Pace,
    rng: &mut Rng,
) -> Deployment {
    let speed = run_speed(rng, sigma);
    let at = base(d, rng);
    play(
        template,
        &intent(Operation::Update, changes, speed),
        at,
        pace,
        rng,
    )
}

/// Random shapes in dependency waves: 8–40 resources in 2–6 waves, each depending on one to
/// three resources of earlier waves; each resource changes with its own probability, and a
/// change often carries over to what depends on it (a changed output).
pub(crate) fn waves(seed: u64, deployments: usize) -> (Template, Vec<Deployment>) {
    let mut rng = Rng::new(seed ^ 0x3A7E5);
    let n = int(&mut rng, 8, 40);
    waves_of(&mut rng, seed, n, deployments, false)
}

/// [`waves`] with `n` resources; `all`: every deployment changes every resource (the
/// calibration's worst case, `examples/estimate_bench`).
pub(crate) fn waves_of(
    rng: &mut Rng,
    seed: u64,
    n: usize,
    deployments: usize,
    all: bool,
) -> (Template, Vec<Deployment>) {
    let mut rng = rng.clone();
    let waves = int(&mut rng, 2, 6);
    let mut wave_of = Vec::with_capacity(n);
    let mut resources: Vec<Res> = Vec::with_capacity(n);
    for i in 0..n {
        let w = if i < waves {
            i
        } else {
            int(&mut rng, 0, waves - 1)
        };
        wave_of.push(w);
    }
    wave_of.sort();
    for i in 0..n {
        let earlier: Vec<usize> = (0..i).filter(|&j| wave_of[j] < wave_of[i]).collect();
        let mut deps = Vec::new();
        if !earlier.is_empty() {
            for _ in 0..int(&mut rng, 1, 3) {
                let d = *pick(&mut rng, &earlier);
                if !deps.contains(&d) {
                    deps.push(d);
                }
            }
        }
        let t = int(&mut rng, 0, PALETTE.len() - 1);
        resources.push(resource(format!("R{i:02}"), t, deps, true, &mut rng));
    }
    let p: Vec<f64> = (0..n).map(|_| 0.03 + 0.8 * rng.uniform().powi(2)).collect();
    let template = Template {
        stack: format!("waves-{seed}"),
        resources,
    };
    let pace = Pace::default();
    let mut out = Vec::with_capacity(deployments);
    for d in 0..deployments {
        let mut changed = vec![false; n];
        for i in 0..n {
            let carried =
                template.resources[i].deps.iter().any(|&j| changed[j]) && rng.uniform() < 0.3;
            changed[i] = rng.uniform() < p[i] || carried;
        }
        if all {
            changed = vec![true; n];
        }
        if !changed.iter().any(|c| *c) {
            changed[int(&mut rng, 0, n - 1)] = true;
        }
        let changes = (0..n)
            .filter(|&i| changed[i])
            .map(|i| (i, Kind::Modify))
            .collect();
        out.push(update(&template, changes, 0.1, d, &pace, &mut rng));
    }
    (template, out)
}

/// Breadth of change drawn from a wide distribution: a stack of 4–12 services (each a chain of
/// two to four resources after a shared base); a deployment changes one service, a few, half
/// of them or everything, so the same stack's deployments take seconds or many minutes.
pub(crate) fn breadth(seed: u64, deployments: usize) -> (Template, Vec<Deployment>) {
    let mut rng = Rng::new(seed ^ 0xB2EAD7);
    let mut resources: Vec<Res> = Vec::new();
    let base_types = [10usize, 16, 18, 1, 7]; // role, VPC, security group, database, ECS service
    let bases = int(&mut rng, 1, 3);
    for b in 0..bases {
        let t = base_types[int(&mut rng, 0, base_types.len() - 1)];
        resources.push(resource(format!("Base{b}"), t, Vec::new(), false, &mut rng));
    }
    let services = int(&mut rng, 4, 12);
    let chains: [&[usize]; 4] = [
        &[9, 22, 21],     // function → permission → deployment
        &[7, 23],         // ECS service → rule
        &[13, 0],         // bucket → CloudFront
        &[15, 14, 9, 19], // topic → queue → function → log group
    ];
    let mut members: Vec<Vec<usize>> = Vec::new();
    for s in 0..services {
        let chain = *pick(&mut rng, &chains);
        let mut ids = Vec::new();
        for (k, t) in chain.iter().enumerate() {
            let deps = if k == 0 {
                vec![int(&mut rng, 0, bases - 1)]
            } else {
                vec![resources.len() - 1]
            };
            ids.push(resources.len());
            resources.push(resource(
                format!("Svc{s}Part{k}"),
                *t,
                deps,
                false,
                &mut rng,
            ));
        }
        members.push(ids);
    }
    let template = Template {
        stack: format!("breadth-{seed}"),
        resources,
    };
    let pace = Pace::default();
    let mut out = Vec::with_capacity(deployments);
    for d in 0..deployments {
        let u = rng.uniform();
        let how_many = if u < 0.4 {
            1
        } else if u < 0.7 {
            int(&mut rng, 2, 3.min(services))
        } else if u < 0.9 {
            services / 2
        } else {
            services
        };
        let mut chosen: Vec<usize> = (0..services).collect();
        // A random subset: Fisher–Yates on the first `how_many`.
        for i in 0..how_many {
            let j = int(&mut rng, i, services - 1);
            chosen.swap(i, j);
        }
        let mut changes: Vec<(usize, Kind)> = Vec::new();
        if how_many == services {
            changes.extend((0..bases).map(|b| (b, Kind::Modify)));
        }
        for s in &chosen[..how_many] {
            for &r in &members[*s] {
                if rng.uniform() < 0.8 || changes.is_empty() {
                    changes.push((r, Kind::Modify));
                }
            }
        }
        changes.sort();
        out.push(update(&template, changes, 0.12, d, &pace, &mut rng));
    }
    (template, out)
}

/// CREATE/UPDATE/rollback mixes: a stack created, updated (some updates add, remove or
/// replace resources, one in seven fails and rolls back), now and then deleted and created
/// again (a create fails one time in four). Every operation is estimated, failures included.
pub(crate) fn mixes(seed: u64, deployments: usize) -> (Template, Vec<Deployment>) {
    let mut rng = Rng::new(seed ^ 0x0013_1355);
    let n = int(&mut rng, 6, 25);
    let mut resources: Vec<Res> = Vec::with_capacity(n);
    for i in 0..n {
        // A tree-ish graph: each resource needs one earlier resource, sometimes two.
        let mut deps = Vec::new();
        if i > 0 && rng.uniform() < 0.8 {
            deps.push(int(&mut rng, 0, i - 1));
            if i > 2 && rng.uniform() < 0.3 {
                let d = int(&mut rng, 0, i - 1);
                if !deps.contains(&d) {
                    deps.push(d);
                }
            }
        }
        let t = int(&mut rng, 0, PALETTE.len() - 1);
        resources.push(resource(
            format!("M{i:02}"),
            t,
            deps,
            rng.uniform() < 0.5,
            &mut rng,
        ));
    }
    let template = Template {
        stack: format!("mixes-{seed}"),
        resources,
    };
    let pace = Pace {
        wrap_up: (1.0, 8.0),
        ..Pace::default()
    };
    let p: Vec<f64> = (0..n).map(|_| 0.05 + 0.6 * rng.uniform()).collect();
    let mut exists = false;
    // Which resources the stack has now (a removed leaf comes back with a later Add).
    let mut present = vec![true; n];
    let leaves: Vec<usize> = (0..n)
        .filter(|r| !template.resources.iter().any(|x| x.deps.contains(r)))
        .collect();
    let mut out = Vec::with_capacity(deployments);
    for d in 0..deployments {
        let speed = run_speed(&mut rng, 0.1);
        let at = base(d, &mut rng);
        let mut i = if !exists {
            let mut i = intent(
                Operation::Create,
                (0..n).map(|r| (r, Kind::Add)).collect(),
                speed,
            );
            present = vec![true; n];
            if rng.uniform() < 0.25 {
                i.fail = Some((int(&mut rng, 0, n - 1), 0.2 + 0.7 * rng.uniform()));
            } else {
                exists = true;
            }
            i
        } else if rng.uniform() < 0.06 {
            exists = false;
            let gone = (0..n)
                .filter(|r| present[*r])
                .map(|r| (r, Kind::Remove))
                .collect();
            intent(Operation::Delete, gone, speed)
        } else {
            let mut changes: Vec<(usize, Kind)> = Vec::new();
            for r in (0..n).filter(|r| present[*r]) {
                if rng.uniform() < p[r] {
                    let u = rng.uniform();
                    let kind = if u < 0.08 {
                        Kind::Replace
                    } else if u < 0.2 {
                        Kind::Trivial
                    } else {
                        Kind::Modify
                    };
                    changes.push((r, kind));
                }
            }
            // Now and then a leaf resource is removed, and a removed one added back.
            if rng.uniform() < 0.12 {
                let leaf = *pick(&mut rng, &leaves);
                changes.retain(|(r, _)| *r != leaf);
                changes.push((
                    leaf,
                    if present[leaf] {
                        Kind::Remove
                    } else {
                        Kind::Add
                    },
                ));
                present[leaf] = !present[leaf];
            }
            if changes.is_empty() {
                let r = (0..n).find(|r| present[*r]).unwrap_or(0);
                changes.push((r, Kind::Modify));
            }
            changes.sort();
            let mut i = intent(Operation::Update, changes, speed);
            i.conditional = (0..i.changes.len())
                .filter(|_| rng.uniform() < 0.1)
                .collect();
            let forward = i.changes.iter().filter(|(_, k)| *k != Kind::Remove).count();
            if forward > 0 && rng.uniform() < 1.0 / 7.0 {
                let k = i
                    .changes
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, kind))| *kind != Kind::Remove)
                    .map(|(k, _)| k)
                    .nth(int(&mut rng, 0, forward - 1))
                    .unwrap_or(0);
                i.fail = Some((k, 0.1 + 0.8 * rng.uniform()));
            }
            i
        };
        i.stuck = vec![1.0; i.changes.len()];
        out.push(play(&template, &i, at, &pace, &mut rng));
    }
    (template, out)
}

/// Slow outlier days: deployments a few hours apart, and on one day in six the whole region is
/// 1.8–3.5× slower for every deployment of that day; one deployment in twenty has a resource
/// stuck for 4–8× its time.
pub(crate) fn outlier_days(seed: u64, deployments: usize) -> (Template, Vec<Deployment>) {
    let mut rng = Rng::new(seed ^ 0x0D4F5);
    let n = int(&mut rng, 6, 20);
    let mut resources: Vec<Res> = Vec::with_capacity(n);
    for i in 0..n {
        let deps = if i == 0 {
            Vec::new()
        } else {
            vec![int(&mut rng, i.saturating_sub(4), i - 1)]
        };
        let t = int(&mut rng, 0, PALETTE.len() - 1);
        resources.push(resource(format!("D{i:02}"), t, deps, false, &mut rng));
    }
    let template = Template {
        stack: format!("outlier-days-{seed}"),
        resources,
    };
    let pace = Pace {
        outlier: 0.0,
        ..Pace::default()
    };
    let p: Vec<f64> = (0..n).map(|_| 0.2 + 0.7 * rng.uniform()).collect();
    let mut out = Vec::with_capacity(deployments);
    let start = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    let mut day = -1i64;
    let mut day_factor = 1.0;
    for d in 0..deployments {
        let this_day = (d / 3) as i64;
        if this_day != day {
            day = this_day;
            day_factor = if rng.uniform() < 1.0 / 6.0 {
                1.8 + 1.7 * rng.uniform()
            } else {
                1.0
            };
        }
        let at = start + TimeDelta::days(this_day) + TimeDelta::hours(2 + 3 * (d % 3) as i64);
        let mut changes: Vec<(usize, Kind)> = (0..n)
            .filter(|&r| rng.uniform() < p[r])
            .map(|r| (r, Kind::Modify))
            .collect();
        if changes.is_empty() {
            changes.push((int(&mut rng, 0, n - 1), Kind::Modify));
        }
        let mut i = intent(
            Operation::Update,
            changes,
            day_factor * run_speed(&mut rng, 0.08),
        );
        if rng.uniform() < 0.05 {
            let k = int(&mut rng, 0, i.changes.len() - 1);
            i.stuck[k] = 4.0 + 4.0 * rng.uniform();
        }
        out.push(play(&template, &i, at, &pace, &mut rng));
    }
    (template, out)
}

/// Serverless stacks built from the real streams' own resource timings: SAM-shaped (roles →
/// functions → permissions, an API → deployment → stage, tables, queues, nested stacks), each
/// resource's time resampled from what that type took in the streams, and updates that touch
/// one to four resources as the real histories do (tests/fixtures/real-events 23, 24, 26).
pub(crate) fn real_timings(
    seed: u64,
    deployments: usize,
    timings: &super::real::Timings,
) -> (Template, Vec<Deployment>) {
    let mut rng = Rng::new(seed ^ 0x2EA1);
    let observed = |rtype: &str, action: &str, fallback: f64| -> Dur {
        match timings.of(rtype, action) {
            Some(xs) if xs.len() >= 2 => Dur::Observed(xs.to_vec()),
            _ => Dur::LogNormal {
                median: fallback,
                sigma: 0.3,
            },
        }
    };
    let mut resources: Vec<Res> = Vec::new();
    let mut add = |id: String, rtype: &str, deps: Vec<usize>, fallback: f64| -> usize {
        resources.push(Res {
            id,
            rtype: rtype.to_string(),
            deps,
            create: observed(rtype, "CREATE", fallback),
            update: observed(rtype, "UPDATE", fallback * 0.7),
            delete: observed(rtype, "DELETE", fallback * 0.5),
        });
        resources.len() - 1
    };
    let api = add("Api".into(), "AWS::ApiGateway::RestApi", vec![], 2.0);
    let functions = int(&mut rng, 1, 6);
    let mut perms = Vec::new();
    for f in 0..functions {
        let role = add(format!("Fn{f}Role"), "AWS::IAM::Role", vec![], 17.0);
        let func = add(format!("Fn{f}"), "AWS::Lambda::Function", vec![role], 8.0);
        perms.push(add(
            format!("Fn{f}Permission"),
            "AWS::Lambda::Permission",
            vec![func, api],
            1.5,
        ));
    }
    let deployment = add(
        "ApiDeployment".into(),
        "AWS::ApiGateway::Deployment",
        vec![api],
        1.8,
    );
    add(
        "ApiStage".into(),
        "AWS::ApiGateway::Stage",
        vec![deployment],
        3.0,
    );
    for t in 0..int(&mut rng, 0, 3) {
        add(format!("Table{t}"), "AWS::DynamoDB::Table", vec![], 20.0);
    }
    for q in 0..int(&mut rng, 0, 2) {
        add(format!("Queue{q}"), "AWS::SQS::Queue", vec![], 30.0);
    }
    for s in 0..int(&mut rng, 0, 4) {
        add(
            format!("Nested{s}Stack"),
            "AWS::CloudFormation::Stack",
            vec![],
            11.0,
        );
    }
    let template = Template {
        stack: format!("real-timings-{seed}"),
        resources,
    };
    let n = template.resources.len();
    let pace = Pace {
        first_start: (1.5, 3.5),
        gap: (0.4, 1.2),
        wrap_up: (1.3, 2.5),
        outlier: 0.02,
        outlier_factor: (1.8, 2.2),
    };
    let mut out = Vec::with_capacity(deployments);
    let mut first = true;
    for d in 0..deployments {
        let at = base(d, &mut rng);
        let speed = run_speed(&mut rng, 0.05);
        let i = if first {
            first = false;
            intent(
                Operation::Create,
                (0..n).map(|r| (r, Kind::Add)).collect(),
                speed,
            )
        } else {
            // Mostly one function's code; sometimes its role too, the API group, or a few
            // tables/nested stacks together.
            let u = rng.uniform();
            let mut changed: Vec<usize> = Vec::new();
            if u < 0.5 {
                let f = int(&mut rng, 0, functions - 1);
                changed.push(
                    template
                        .resources
                        .iter()
                        .position(|r| r.id == format!("Fn{f}"))
                        .unwrap_or(0),
                );
            } else if u < 0.7 {
                let f = int(&mut rng, 0, functions - 1);
                for id in [format!("Fn{f}Role"), format!("Fn{f}")] {
                    if let Some(p) = template.resources.iter().position(|r| r.id == id) {
                        changed.push(p);
                    }
                }
            } else if u < 0.85 {
                changed.extend([api, deployment, deployment + 1]);
                changed.extend(perms.iter().copied().filter(|_| rng.uniform() < 0.5));
            } else {
                changed.extend((0..n).filter(|_| rng.uniform() < 0.3));
            }
            if changed.is_empty() {
                changed.push(int(&mut rng, 0, n - 1));
            }
            changed.sort();
            changed.dedup();
            intent(
                Operation::Update,
                changed.into_iter().map(|r| (r, Kind::Modify)).collect(),
                speed,
            )
        };
        out.push(play(&template, &i, at, &pace, &mut rng));
    }
    (template, out)
}
