//! The evaluation's own CloudFormation: a template (resources and their dependencies), a
//! deployment (what changes and how, whether something fails), and what CloudFormation does
//! with it, written out as the stack events the AWS CLI would print.
//!
//! This is deliberately NOT the estimator's model of a deployment: it runs the dependency
//! graph of the template restricted to what changes (an unchanged dependency is not waited
//! for), puts removed and replaced resources' deletes in the cleanup phase, cancels what runs
//! when something fails and undoes the work in reverse dependency order, and writes every
//! stack-level status a real stream has (`UPDATE_COMPLETE_CLEANUP_IN_PROGRESS` on every update,
//! as tests/fixtures/real-events/26 shows). The estimator only ever sees the events.

use chrono::{DateTime, TimeDelta, Utc};

use crate::estimate::dist::Rng;
use crate::history::events::{STACK_TYPE, StackEvent};
use crate::history::record::Operation;
use crate::stack::client::ResourceChange;

/// How long one kind of work on a resource takes, before the deployment's own speed.
#[derive(Debug, Clone)]
pub(crate) enum Dur {
    LogNormal {
        median: f64,
        sigma: f64,
    },
    Uniform {
        low: f64,
        high: f64,
    },
    /// Resampled from observed durations (the real streams), with a little jitter.
    Observed(Vec<f64>),
}

impl Dur {
    pub(crate) fn draw(&self, rng: &mut Rng) -> f64 {
        match self {
            Dur::LogNormal { median, sigma } => median * (sigma * rng.normal()).exp(),
            Dur::Uniform { low, high } => low + (high - low) * rng.uniform(),
            Dur::Observed(xs) => {
                let i = ((rng.uniform() * xs.len() as f64) as usize).min(xs.len() - 1);
                xs[i] * (0.05 * rng.normal()).exp()
            }
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Res {
    pub id: String,
    pub rtype: String,
    /// Indices of resources it needs (always earlier in the template).
    pub deps: Vec<usize>,
    pub create: Dur,
    pub update: Dur,
    pub delete: Dur,
}

#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub stack: String,
    pub resources: Vec<Res>,
}

/// What a deployment does to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Add,
    /// In place.
    Modify,
    /// A property that needs a new physical resource: created anew, the old one deleted in
    /// the cleanup.
    Replace,
    /// Tags or metadata: CloudFormation still updates it, in a second or two.
    Trivial,
    /// Deleted in the cleanup.
    Remove,
}

/// One deployment as its generator decided it.
#[derive(Debug, Clone)]
pub(crate) struct Intent {
    pub operation: Operation,
    /// (resource, kind); for CREATE every resource is Add, for DELETE none is listed.
    pub changes: Vec<(usize, Kind)>,
    /// The change (index into `changes`) that fails, at this fraction of its duration.
    pub fail: Option<(usize, f64)>,
    /// Multiplies every duration (a slow region day > 1).
    pub speed: f64,
    /// Per change: an extra factor (a resource stuck for a while), 1 for most.
    pub stuck: Vec<f64>,
    /// The change set shows these Modify changes as `Replacement: Conditional`.
    pub conditional: Vec<usize>,
}

/// What the generator knows about a deployment that happened.
#[derive(Debug, Clone)]
pub(crate) struct Deployment {
    pub events: Vec<StackEvent>,
    /// What `describe-change-set` said before it ran (None for a DELETE).
    pub change_set: Option<Vec<ResourceChange>>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// Stack-level and resource timing constants of a family (real streams: a resource starts
/// 0.3–1.5 s after its last dependency, the stack writes its cleanup status 1–3 s after the
/// last resource and its final status a second later).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    pub first_start: (f64, f64),
    pub gap: (f64, f64),
    pub wrap_up: (f64, f64),
    /// Share of resource runs that are slow outliers, and how slow.
    pub outlier: f64,
    pub outlier_factor: (f64, f64),
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            first_start: (1.0, 4.0),
            gap: (0.3, 1.5),
            wrap_up: (1.5, 4.0),
            outlier: 0.03,
            outlier_factor: (2.0, 4.0),
        }
    }
}

fn between(rng: &mut Rng, (a, b): (f64, f64)) -> f64 {
    a + (b - a) * rng.uniform()
}

/// A piece of work: a resource doing `action` from `start` to `end`.
struct Work {
    res: usize,
    action: &'static str,
    start: f64,
    end: f64,
    status: String,
    reason: Option<String>,
}

/// Runs `works` (indices into `res_of`) through the dependency graph: each starts `gap`
/// after the last of its dependencies among them (`reverse`: after its dependants, as deletes
/// and undos go), not before `t0`. `dur` gives each one's duration.
fn schedule(
    template: &Template,
    items: &[usize],
    reverse: bool,
    t0: f64,
    pace: &Pace,
    rng: &mut Rng,
    mut dur: impl FnMut(usize, &mut Rng) -> f64,
) -> Vec<(f64, f64)> {
    let n = items.len();
    let mut times = vec![(0.0, 0.0); n];
    let mut order: Vec<usize> = (0..n).collect();
    // Template order is a topological order (dependencies first).
    order.sort_by_key(|&k| items[k]);
    if reverse {
        order.reverse();
    }
    let waits_for = |a: usize, b: usize| -> bool {
        // Does item a wait for item b?
        let (ra, rb) = (items[a], items[b]);
        if reverse {
            template.resources[rb].deps.contains(&ra)
        } else {
            template.resources[ra].deps.contains(&rb)
        }
    };
    let mut done: Vec<usize> = Vec::new();
    for &k in &order {
        let ready = done
            .iter()
            .filter(|&&j| waits_for(k, j))
            .map(|&j| times[j].1)
            .fold(f64::NAN, f64::max);
        let start = if ready.is_nan() {
            t0 + between(rng, pace.first_start)
        } else {
            ready + between(rng, pace.gap)
        };
        let d = dur(k, rng).max(0.2);
        times[k] = (start, start + d);
        done.push(k);
    }
    times
}

fn outlier(pace: &Pace, rng: &mut Rng) -> f64 {
    if rng.uniform() < pace.outlier {
        between(rng, pace.outlier_factor)
    } else {
        1.0
    }
}

/// Plays `intent` on `template` from `base`, writing CloudFormation's events.
pub(crate) fn play(
    template: &Template,
    intent: &Intent,
    base: DateTime<Utc>,
    pace: &Pace,
    rng: &mut Rng,
) -> Deployment {
    let op = intent.operation;
    let forward: Vec<(usize, Kind)> = match op {
        Operation::Delete => Vec::new(),
        _ => intent
            .changes
            .iter()
            .copied()
            .filter(|(_, k)| *k != Kind::Remove)
            .collect(),
    };
    let res = &template.resources;
    let items: Vec<usize> = forward.iter().map(|(r, _)| *r).collect();
    let stuck = |k: usize| intent.stuck.get(k).copied().unwrap_or(1.0);
    let mut works: Vec<Work> = Vec::new();
    let mut stack_statuses: Vec<(f64, String, Option<String>)> = Vec::new();
    let verb = match op {
        Operation::Create => "CREATE",
        Operation::Delete => "DELETE",
        _ => "UPDATE",
    };
    stack_statuses.push((
        0.0,
        format!("{verb}_IN_PROGRESS"),
        Some("User Initiated".into()),
    ));

    if op == Operation::Delete {
        // The resources the stack has (all of the template unless the intent lists them).
        let all: Vec<usize> = if intent.changes.is_empty() {
            (0..res.len()).collect()
        } else {
            intent.changes.iter().map(|(r, _)| *r).collect()
        };
        let times = schedule(template, &all, true, 0.0, pace, rng, |k, rng| {
            res[all[k]].delete.draw(rng) * intent.speed * outlier(pace, rng)
        });
        let mut end = 0.0f64;
        for (k, (s, e)) in times.into_iter().enumerate() {
            works.push(work(all[k], "DELETE", s, e));
            end = end.max(e);
        }
        let end = end + between(rng, pace.wrap_up);
        stack_statuses.push((end, "DELETE_COMPLETE".into(), None));
        return finish(template, intent, base, works, stack_statuses, rng);
    }

    let times = schedule(template, &items, false, 0.0, pace, rng, |k, rng| {
        let (r, kind) = forward[k];
        let d = match kind {
            Kind::Add | Kind::Replace => res[r].create.draw(rng),
            Kind::Modify => res[r].update.draw(rng),
            Kind::Trivial => 0.5 + 1.5 * rng.uniform(),
            Kind::Remove => 0.0,
        };
        d * intent.speed * outlier(pace, rng) * stuck(k)
    });
    let action = |kind: Kind| {
        if op == Operation::Create || kind == Kind::Add {
            "CREATE"
        } else {
            "UPDATE"
        }
    };

    let Some((failing, at)) = intent.fail.filter(|(k, _)| *k < forward.len()) else {
        // Success: every change, then the cleanup (removed resources and replaced ones' old
        // physical resources deleted), then the final status.
        let mut last = 0.0f64;
        for (k, (s, e)) in times.iter().enumerate() {
            works.push(work(forward[k].0, action(forward[k].1), *s, *e));
            last = last.max(*e);
        }
        if op == Operation::Create {
            let end = last + between(rng, pace.wrap_up);
            stack_statuses.push((end, "CREATE_COMPLETE".into(), None));
            return finish(template, intent, base, works, stack_statuses, rng);
        }
        let cleanup = last + between(rng, pace.wrap_up);
        stack_statuses.push((cleanup, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS".into(), None));
        let gone: Vec<usize> = intent
            .changes
            .iter()
            .filter(|(_, k)| matches!(k, Kind::Remove | Kind::Replace))
            .map(|(r, _)| *r)
            .collect();
        let deletes = schedule(template, &gone, true, cleanup - 1.0, pace, rng, |k, rng| {
            res[gone[k]].delete.draw(rng) * intent.speed * outlier(pace, rng)
        });
        let mut end = cleanup;
        for (k, (s, e)) in deletes.into_iter().enumerate() {
            works.push(work(gone[k], "DELETE", s, e));
            end = end.max(e);
        }
        let end = end + 0.5 + 1.0 * rng.uniform();
        stack_statuses.push((end, "UPDATE_COMPLETE".into(), None));
        return finish(template, intent, base, works, stack_statuses, rng);
    };

    // Failure: the failing change fails part-way; what runs then is cancelled, what has not
    // started never starts; the rollback undoes what was done, dependants first.
    let fail_at = times[failing].0 + at * (times[failing].1 - times[failing].0);
    let cancel_at = fail_at + 0.5 + 2.5 * rng.uniform();
    let mut touched: Vec<(usize, Kind)> = Vec::new();
    for (k, (s, e)) in times.iter().enumerate() {
        let (r, kind) = forward[k];
        let a = action(kind);
        if k == failing {
            let mut w = work(r, a, *s, fail_at);
            w.status = format!("{a}_FAILED");
            w.reason = Some("Resource handler returned message: \"Invalid request\"".into());
            works.push(w);
            touched.push((r, kind));
        } else if *e <= fail_at {
            works.push(work(r, a, *s, *e));
            touched.push((r, kind));
        } else if *s < fail_at {
            let mut w = work(r, a, *s, cancel_at);
            w.status = format!("{a}_FAILED");
            w.reason = Some(format!(
                "Resource {} cancelled",
                if a == "CREATE" { "creation" } else { "update" }
            ));
            works.push(w);
            touched.push((r, kind));
        }
    }
    let failed_id = res[forward[failing].0].id.clone();
    let rollback = cancel_at + 0.5 + 3.0 * rng.uniform();
    if op == Operation::Create {
        stack_statuses.push((
            rollback,
            "ROLLBACK_IN_PROGRESS".into(),
            Some(format!(
                "The following resource(s) failed to create: [{failed_id}]. Rollback requested by user."
            )),
        ));
        let undo: Vec<usize> = touched.iter().map(|(r, _)| *r).collect();
        let times = schedule(template, &undo, true, rollback, pace, rng, |k, rng| {
            res[undo[k]].delete.draw(rng) * intent.speed
        });
        let mut end = rollback;
        for (k, (s, e)) in times.into_iter().enumerate() {
            works.push(work(undo[k], "DELETE", s, e));
            end = end.max(e);
        }
        let end = end + between(rng, pace.wrap_up);
        stack_statuses.push((end, "ROLLBACK_COMPLETE".into(), None));
        return finish(template, intent, base, works, stack_statuses, rng);
    }
    stack_statuses.push((
        rollback,
        "UPDATE_ROLLBACK_IN_PROGRESS".into(),
        Some(format!(
            "The following resource(s) failed to update: [{failed_id}]. "
        )),
    ));
    // Modified resources are updated back (a replaced one goes back to its old physical
    // resource quickly); added ones, and the new physical resources of replaced ones, are
    // deleted in the rollback's cleanup.
    let revert: Vec<(usize, Kind)> = touched
        .iter()
        .copied()
        .filter(|(_, k)| matches!(k, Kind::Modify | Kind::Trivial | Kind::Replace))
        .collect();
    let revert_ids: Vec<usize> = revert.iter().map(|(r, _)| *r).collect();
    let times = schedule(
        template,
        &revert_ids,
        true,
        rollback,
        pace,
        rng,
        |k, rng| {
            let d = match revert[k].1 {
                Kind::Modify => res[revert_ids[k]].update.draw(rng),
                _ => 0.5 + 2.0 * rng.uniform(),
            };
            d * intent.speed
        },
    );
    let mut last = rollback;
    for (k, (s, e)) in times.into_iter().enumerate() {
        works.push(work(revert_ids[k], "UPDATE", s, e));
        last = last.max(e);
    }
    let cleanup = last + between(rng, pace.wrap_up);
    stack_statuses.push((
        cleanup,
        "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS".into(),
        None,
    ));
    let gone: Vec<usize> = touched
        .iter()
        .filter(|(_, k)| matches!(k, Kind::Add | Kind::Replace))
        .map(|(r, _)| *r)
        .collect();
    let deletes = schedule(template, &gone, true, cleanup - 1.0, pace, rng, |k, rng| {
        res[gone[k]].delete.draw(rng) * intent.speed
    });
    let mut end = cleanup;
    for (k, (s, e)) in deletes.into_iter().enumerate() {
        works.push(work(gone[k], "DELETE", s, e));
        end = end.max(e);
    }
    let end = end + 0.5 + rng.uniform();
    stack_statuses.push((end, "UPDATE_ROLLBACK_COMPLETE".into(), None));
    finish(template, intent, base, works, stack_statuses, rng)
}

fn work(res: usize, action: &'static str, start: f64, end: f64) -> Work {
    Work {
        res,
        action,
        start,
        end,
        status: format!("{action}_COMPLETE"),
        reason: None,
    }
}

/// What `describe-change-set` says of an intent (CloudFormation's own words).
fn change_set(template: &Template, intent: &Intent) -> Option<Vec<ResourceChange>> {
    if intent.operation == Operation::Delete {
        return None;
    }
    let changes = intent
        .changes
        .iter()
        .enumerate()
        .map(|(k, (r, kind))| {
            let res = &template.resources[*r];
            let (action, replacement, scope) = match (intent.operation, kind) {
                (Operation::Create, _) | (_, Kind::Add) => ("Add", None, vec![]),
                (_, Kind::Remove) => ("Remove", None, vec![]),
                (_, Kind::Replace) => ("Modify", Some("True"), vec!["Properties"]),
                (_, Kind::Trivial) => ("Modify", Some("False"), vec!["Tags"]),
                (_, Kind::Modify) if intent.conditional.contains(&k) => {
                    ("Modify", Some("Conditional"), vec!["Properties"])
                }
                (_, Kind::Modify) => ("Modify", Some("False"), vec!["Properties"]),
            };
            ResourceChange {
                logical_id: res.id.clone(),
                resource_type: res.rtype.clone(),
                action: action.to_string(),
                replacement: replacement.map(str::to_string),
                scope: scope.into_iter().map(str::to_string).collect(),
                ..Default::default()
            }
        })
        .collect();
    Some(changes)
}

/// Writes the events (oldest first; the eval reverses them as the CLI prints them).
fn finish(
    template: &Template,
    intent: &Intent,
    base: DateTime<Utc>,
    works: Vec<Work>,
    stack_statuses: Vec<(f64, String, Option<String>)>,
    rng: &mut Rng,
) -> Deployment {
    let stack = &template.stack;
    let stack_id = format!(
        "arn:aws:cloudformation:eu-west-1:123456789012:stack/{stack}/{:08x}",
        stack.len() * 7919
    );
    let at = |s: f64| base + TimeDelta::milliseconds((s * 1000.0).round() as i64);
    let mut raw: Vec<(f64, StackEvent)> = Vec::new();
    let mut push = |t: f64, logical: &str, rtype: &str, status: &str, reason: Option<String>| {
        let stack_level = logical == stack;
        raw.push((
            t,
            StackEvent {
                stack_id: stack_id.clone(),
                event_id: String::new(),
                stack_name: stack.clone(),
                logical_resource_id: logical.to_string(),
                physical_resource_id: Some(if stack_level {
                    stack_id.clone()
                } else {
                    format!("{stack}-{logical}")
                }),
                resource_type: rtype.to_string(),
                timestamp: at(t),
                resource_status: status.to_string(),
                resource_status_reason: reason,
                ..Default::default()
            },
        ));
    };
    for (t, status, reason) in &stack_statuses {
        push(*t, stack, STACK_TYPE, status, reason.clone());
    }
    for w in &works {
        let r = &template.resources[w.res];
        push(
            w.start,
            &r.id,
            &r.rtype,
            &format!("{}_IN_PROGRESS", w.action),
            None,
        );
        if w.action == "CREATE" && rng.uniform() < 0.8 {
            let initiated = w.start + (0.3 + 1.2 * rng.uniform()).min(0.5 * (w.end - w.start));
            push(
                initiated,
                &r.id,
                &r.rtype,
                "CREATE_IN_PROGRESS",
                Some("Resource creation Initiated".into()),
            );
        }
        push(w.end, &r.id, &r.rtype, &w.status, w.reason.clone());
    }
    raw.sort_by(|a, b| a.0.total_cmp(&b.0));
    let started_at = at(0.0);
    let finished_at = raw.last().map(|(t, _)| at(*t)).unwrap_or(started_at);
    let events = raw
        .into_iter()
        .enumerate()
        .map(|(i, (_, mut e))| {
            e.event_id = format!("{}-{}-{i}", e.logical_resource_id, base.timestamp_millis());
            e
        })
        .collect();
    Deployment {
        events,
        change_set: change_set(template, intent),
        started_at,
        finished_at,
    }
}
