//! No comparable run in history: the running resources from their types, plus the resources
//! still to come (when the change set's size is known) as one more wave; without that, a
//! generic operation given how long this one has already run.

use super::dist::DurationModel;
use super::model::{self, Knowledge};
use super::priors;
use super::sim::Seen;
use crate::estimate::dist::Rng;

/// Remaining-time samples, the number of resources still to start, and what the estimate
/// rests on.
pub(crate) fn without_plans(
    knowledge: &Knowledge,
    forward: &[Seen],
    now: f64,
    expected_total: Option<usize>,
    rng: &mut Rng,
    samples: usize,
) -> (Vec<f64>, usize, String) {
    let pending = expected_total.map(|t| t.saturating_sub(forward.len()));
    let generic = DurationModel::from_median(
        priors::GENERIC_OPERATION.0,
        priors::GENERIC_OPERATION.1,
        0.0,
    );
    let generic_resource = {
        let (median, sigma) = priors::prior("", "CREATE");
        DurationModel::from_median(median, sigma, model::SLOW_OUTLIER)
    };
    let models: Vec<DurationModel> = forward
        .iter()
        .map(|s| {
            knowledge
                .model(&s.logical_id, &s.resource_type, &s.action, false)
                .0
        })
        .collect();
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let mut end = now;
        for (s, m) in forward.iter().zip(&models) {
            let f = match s.finish {
                Some(f) => f,
                None => s.start + m.sample_beyond(now - s.start, rng),
            };
            end = end.max(f);
        }
        match pending {
            Some(n) => {
                let wave_start = end;
                for _ in 0..n {
                    end = end.max(wave_start + generic_resource.sample(rng));
                }
            }
            None => {
                let whole = generic.sample_beyond(now, rng);
                end = end.max(whole);
            }
        }
        out.push(end - now);
    }
    let note = match pending {
        Some(n) => format!("{n} resource(s) still to start, estimated from generic priors"),
        None => "estimated from resource-type priors and a generic deployment time".into(),
    };
    (out, pending.unwrap_or(0), note)
}
