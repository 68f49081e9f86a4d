//! A rollback: each resource the operation created or updated is undone (deleted or updated
//! back) after the resources that depended on it.

use super::Progress;
use super::dist::{DurationModel, Rng};
use super::model::{Knowledge, Source, infer_parents};
use super::sim::{SKIP_GRACE, Seen};

/// The wrap-up after a rollback's last resource when history shows none.
const ROLLBACK_TAIL: f64 = 10.0;

pub(crate) struct Undo {
    pub samples: Vec<f64>,
    pub progress: Progress,
    /// Every undo time came from this stack's own rollbacks.
    pub own_history: bool,
    pub note: String,
}

pub(crate) fn rollback(
    knowledge: &Knowledge,
    forward: &[Seen],
    undoing: &[Seen],
    rollback_start: f64,
    now: f64,
    rng: &mut Rng,
    samples: usize,
) -> Undo {
    // Forward resources in start order, with their triggers in this run.
    let mut order: Vec<usize> = (0..forward.len()).collect();
    order.sort_by(|a, b| forward[*a].start.total_cmp(&forward[*b].start));
    let items: Vec<(f64, Option<f64>)> = order
        .iter()
        .map(|i| (forward[*i].start, forward[*i].finish))
        .collect();
    let parents = infer_parents(&items);
    let undo_action = |a: &str| match a {
        "CREATE" | "IMPORT" => Some("DELETE"),
        "UPDATE" => Some("UPDATE"),
        _ => None,
    };
    // What gets undone, and its rollback-phase state if it has one.
    let targets: Vec<Option<(&Seen, &str, Option<&Seen>)>> = order
        .iter()
        .map(|i| {
            let s = &forward[*i];
            let action = undo_action(&s.action)?;
            let state = undoing
                .iter()
                .find(|u| u.logical_id == s.logical_id && u.action == action);
            Some((s, action, state))
        })
        .collect();
    let mut own_history = true;
    let models: Vec<Option<DurationModel>> = targets
        .iter()
        .map(|t| {
            t.map(|(s, action, _)| {
                let (m, source) = knowledge.model(&s.logical_id, &s.resource_type, action, true);
                own_history &= matches!(source, Source::Resource(_));
                m
            })
        })
        .collect();
    let own_history = own_history && !targets.is_empty();
    let total = targets.iter().flatten().count();
    let done = targets
        .iter()
        .flatten()
        .filter(|(_, _, st)| st.is_some_and(|u| u.finish.is_some()))
        .count();
    let mut out = Vec::with_capacity(samples);
    let n = order.len();
    for _ in 0..samples {
        // Children first: reverse start order.
        let mut ready = vec![rollback_start; n];
        let mut ready_known = vec![true; n];
        let mut end = now;
        for pos in (0..n).rev() {
            let (finish, known) = match (&targets[pos], &models[pos]) {
                (Some((_, _, Some(u))), Some(m)) => match u.finish {
                    Some(f) => (f, true),
                    None => (u.start + m.sample_beyond(now - u.start, rng), false),
                },
                (Some((_, _, None)), Some(m)) => {
                    if ready_known[pos] && now > ready[pos] + SKIP_GRACE {
                        (ready[pos], true) // nothing to undo for it
                    } else {
                        (ready[pos].max(now) + m.sample(rng), false)
                    }
                }
                _ => (ready[pos], ready_known[pos]),
            };
            end = end.max(finish);
            if let (Some(p), _) = parents[pos] {
                ready[p] = ready[p].max(finish);
                ready_known[p] &= known;
            }
        }
        out.push(end + ROLLBACK_TAIL - now);
    }
    let note = format!(
        "rolling back: {done} of {total} resource(s) undone{}",
        if own_history {
            ""
        } else {
            ", undo times from resource-type priors"
        }
    );
    Undo {
        samples: out,
        progress: Progress { done, total },
        own_history,
        note,
    }
}
