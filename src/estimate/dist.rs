//! The arithmetic under the estimator: a seeded random source, the normal distribution, a
//! lognormal duration model with a slow-outlier component, and empirical quantiles.

/// SplitMix64: tiny, fast, and seeded, so an estimate is a pure function of its inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in the open interval (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub fn normal(&mut self) -> f64 {
        inv_normal_cdf(self.uniform())
    }

    /// Picks an index with probability proportional to `weights` (all zero: the first).
    pub fn pick(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return 0;
        }
        let mut x = self.uniform() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }
}

/// Standard normal CDF (Abramowitz–Stegun 7.1.26 through erf; error below 1.5e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    let erf = if x >= 0.0 { erf } else { -erf };
    0.5 * (1.0 + erf)
}

/// Inverse standard normal CDF (Acklam's rational approximation; relative error 1.2e-9).
pub fn inv_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let low = 0.024_25;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    }
}

/// How much slower a slow outlier is than a usual run of the same resource (about ×3: the
/// reference table's "5–20 min, older reports up to 35 min" for CloudFront, ECS services that
/// hang), and how often one happens.
const SLOW_FACTOR_LN: f64 = 1.1;
const SLOW_SIGMA: f64 = 0.5;

/// A duration in seconds: lognormal(mu, sigma), with probability `slow` a slow outlier instead.
/// The outlier component is what lets an estimate grow sensibly when a resource has already
/// run far past its usual time, instead of saying "almost done" forever.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DurationModel {
    pub mu: f64,
    pub sigma: f64,
    pub slow: f64,
}

impl DurationModel {
    pub fn from_median(median_seconds: f64, sigma: f64, slow: f64) -> Self {
        DurationModel {
            mu: median_seconds.max(0.5).ln(),
            sigma: sigma.max(0.05),
            slow,
        }
    }

    pub fn median(&self) -> f64 {
        self.mu.exp()
    }

    fn components(&self) -> [(f64, f64, f64); 2] {
        [
            (1.0 - self.slow, self.mu, self.sigma),
            (
                self.slow,
                self.mu + SLOW_FACTOR_LN,
                self.sigma.max(SLOW_SIGMA),
            ),
        ]
    }

    /// P(duration > t).
    pub fn survival(&self, t: f64) -> f64 {
        if t <= 0.0 {
            return 1.0;
        }
        self.components()
            .iter()
            .map(|(w, mu, s)| w * (1.0 - normal_cdf((t.ln() - mu) / s)))
            .sum()
    }

    /// The q-quantile (bisection on the mixture's CDF; 60 steps are exact enough).
    pub fn quantile(&self, q: f64) -> f64 {
        let (mut lo, mut hi) = (
            -10.0f64,
            self.mu + SLOW_FACTOR_LN + 12.0 * SLOW_SIGMA.max(self.sigma),
        );
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if 1.0 - self.survival(mid.exp()) < q {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (0.5 * (lo + hi)).exp()
    }

    /// The q-quantile of the duration given that it has already lasted `t` seconds.
    pub fn quantile_beyond(&self, t: f64, q: f64) -> f64 {
        let s_t = self.survival(t);
        if t <= 0.0 || s_t >= 1.0 {
            return self.quantile(q);
        }
        if s_t < 1e-12 {
            // Far past anything the model expected: the lognormal's asymptotic excess.
            let s = self.sigma.max(SLOW_SIGMA);
            return t + t * s * s / (t.ln() - self.mu).max(s) * -(1.0 - q).ln();
        }
        let (mut lo, mut hi) = (
            t.ln(),
            self.mu + SLOW_FACTOR_LN + 12.0 * SLOW_SIGMA.max(self.sigma),
        );
        hi = hi.max(lo + 1.0);
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if 1.0 - self.survival(mid.exp()) / s_t < q {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (0.5 * (lo + hi)).exp().max(t)
    }

    /// A whole duration.
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        self.sample_flagged(rng).0
    }

    /// A whole duration, and whether it was drawn as a slow outlier.
    pub fn sample_flagged(&self, rng: &mut Rng) -> (f64, bool) {
        let [(_, mu, s), (w_slow, mu_slow, s_slow)] = self.components();
        if rng.uniform() < w_slow {
            ((mu_slow + s_slow * rng.normal()).exp(), true)
        } else {
            ((mu + s * rng.normal()).exp(), false)
        }
    }

    /// A whole duration, given that it has already lasted `t` seconds (so at least `t`).
    pub fn sample_beyond(&self, t: f64, rng: &mut Rng) -> f64 {
        self.sample_beyond_flagged(t, rng).0
    }

    /// [`Self::sample_beyond`], and whether the draw came from the less likely component
    /// given `t` (a slow outlier while a usual run still explains the elapsed time, or a
    /// usual run once only an outlier does).
    pub fn sample_beyond_flagged(&self, t: f64, rng: &mut Rng) -> (f64, bool) {
        if t <= 0.0 {
            return self.sample_flagged(rng);
        }
        let comps = self.components();
        let weights: Vec<f64> = comps
            .iter()
            .map(|(w, mu, s)| w * (1.0 - normal_cdf((t.ln() - mu) / s)))
            .collect();
        let picked = rng.pick(&weights);
        let likelier = usize::from(weights[1] > weights[0]);
        (self.draw_beyond(comps[picked], t, rng), picked != likelier)
    }

    fn draw_beyond(&self, (_, mu, s): (f64, f64, f64), t: f64, rng: &mut Rng) -> f64 {
        let z_t = (t.ln() - mu) / s;
        let tail = 1.0 - normal_cdf(z_t);
        if tail < 1e-9 {
            // Far past anything the model expected: the lognormal's asymptotic excess over t
            // (Mills ratio) with exponential noise, rather than a number pinned at t.
            let mean_excess = t * s * s / (t.ln() - mu).max(s);
            return t + mean_excess * -rng.uniform().ln();
        }
        let u = 1.0 - tail * rng.uniform();
        let x = (mu + s * inv_normal_cdf(u)).exp();
        x.max(t)
    }
}

/// Robust centre and spread of log-durations: median and 1.4826·MAD (a slow outlier in the
/// history neither drags the centre nor blows up the spread).
pub fn robust_log_stats(durations: &[f64]) -> Option<(f64, f64)> {
    let mut logs: Vec<f64> = durations.iter().map(|d| d.max(0.5).ln()).collect();
    if logs.is_empty() {
        return None;
    }
    let centre = median(&mut logs);
    let mut dev: Vec<f64> = logs.iter().map(|l| (l - centre).abs()).collect();
    let spread = 1.4826 * median(&mut dev);
    Some((centre, spread))
}

fn median(values: &mut [f64]) -> f64 {
    quantile(values, 0.5)
}

/// The q-quantile of weighted values (sorts `values`; weights must be positive). Empty: NaN.
pub fn weighted_quantile(values: &mut [(f64, f64)], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = values.iter().map(|(_, w)| w).sum();
    // Each value stands at the middle of its weight, as the unweighted quantile's points do.
    let target = q.clamp(0.0, 1.0) * total;
    let mut below = 0.0;
    let mut prev: Option<(f64, f64)> = None;
    for &(v, w) in values.iter() {
        let centre = below + w / 2.0;
        if centre >= target {
            return match prev {
                Some((pv, pc)) if centre > pc => pv + (v - pv) * (target - pc) / (centre - pc),
                _ => v,
            };
        }
        prev = Some((v, centre));
        below += w;
    }
    values[values.len() - 1].0
}

/// Empirical q-quantile with linear interpolation (sorts `values`, unless they already are:
/// several quantiles of the same samples sort once). Empty: NaN.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    if !values.is_sorted_by(|a, b| a.total_cmp(b).is_le()) {
        values.sort_unstable_by(f64::total_cmp);
    }
    let pos = q.clamp(0.0, 1.0) * (values.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    values[lo] + (values[hi] - values[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_functions_invert_each_other() {
        for p in [0.001, 0.1, 0.5, 0.9, 0.999] {
            let z = inv_normal_cdf(p);
            assert!((normal_cdf(z) - p).abs() < 1e-6, "{p}");
        }
        assert!((inv_normal_cdf(0.9) - 1.281_551_6).abs() < 1e-6);
    }

    #[test]
    fn samples_follow_the_model() {
        let m = DurationModel::from_median(100.0, 0.3, 0.0);
        let mut rng = Rng::new(7);
        let mut xs: Vec<f64> = (0..20_000).map(|_| m.sample(&mut rng)).collect();
        assert!((quantile(&mut xs, 0.5) - 100.0).abs() < 2.0);
        assert!((quantile(&mut xs, 0.9) - m.quantile(0.9)).abs() < 3.0);
        assert!((m.quantile(0.9) - 100.0 * (0.3f64 * 1.281_551_6).exp()).abs() < 0.1);
    }

    #[test]
    fn conditional_samples_never_end_before_the_elapsed_time_and_grow_with_it() {
        let m = DurationModel::from_median(100.0, 0.3, 0.04);
        let mut rng = Rng::new(1);
        let mut mean_excess = |t: f64| {
            let xs: Vec<f64> = (0..4000).map(|_| m.sample_beyond(t, &mut rng)).collect();
            assert!(xs.iter().all(|x| *x >= t));
            xs.iter().map(|x| x - t).sum::<f64>() / xs.len() as f64
        };
        let early = mean_excess(50.0);
        let late = mean_excess(400.0); // far past the usual: the slow component takes over
        let absurd = mean_excess(1e7);
        assert!(early > 40.0 && early < 70.0, "{early}");
        assert!(late > 50.0, "{late}");
        assert!(absurd.is_finite() && absurd > 0.0);
    }

    #[test]
    fn draws_are_flagged_when_they_take_the_less_likely_explanation() {
        let m = DurationModel::from_median(100.0, 0.2, 0.04);
        let mut rng = Rng::new(3);
        let mut odd_share = |t: f64| {
            let odd = (0..20_000)
                .filter(|_| m.sample_beyond_flagged(t, &mut rng).1)
                .count();
            odd as f64 / 20_000.0
        };
        // Not started or early: only the slow outliers are odd (about 4 %).
        let fresh = odd_share(0.0);
        assert!((0.03..0.05).contains(&fresh), "{fresh}");
        assert!((0.03..0.06).contains(&odd_share(60.0)));
        // Far past the usual time, a slow run is the likely story and a usual end the odd one.
        let late = odd_share(250.0);
        assert!(late < 0.05, "{late}");
        let (d, _) = m.sample_beyond_flagged(250.0, &mut rng);
        assert!(d >= 250.0);
    }

    #[test]
    fn conditional_quantiles_are_past_the_elapsed_time_and_match_sampling() {
        let m = DurationModel::from_median(100.0, 0.3, 0.04);
        let mut rng = Rng::new(9);
        let mut xs: Vec<f64> = (0..20_000)
            .map(|_| m.sample_beyond(80.0, &mut rng))
            .collect();
        for q in [0.1, 0.5, 0.9] {
            let exact = m.quantile_beyond(80.0, q);
            let sampled = quantile(&mut xs, q);
            assert!(
                exact >= 80.0 && (exact - sampled).abs() < 3.0,
                "{q}: {exact} vs {sampled}"
            );
        }
        assert!(m.quantile_beyond(1e7, 0.5) > 1e7);
        assert_eq!(m.quantile_beyond(0.0, 0.5), m.quantile(0.5));
    }

    #[test]
    fn weighted_quantiles_weigh() {
        let mut even = vec![(1.0, 1.0), (2.0, 1.0), (3.0, 1.0)];
        assert_eq!(weighted_quantile(&mut even, 0.5), 2.0);
        // Each value stands at the middle of its weight: the median is well inside the heavy
        // value's share, between it and the next.
        let mut heavy = vec![(10.0, 8.0), (1.0, 1.0), (2.0, 1.0)];
        let m = weighted_quantile(&mut heavy, 0.5);
        assert!(m > 8.0 && m < 10.0, "{m}");
        assert_eq!(weighted_quantile(&mut heavy, 0.9), 10.0);
        assert!(weighted_quantile(&mut [], 0.5).is_nan());
    }

    #[test]
    fn robust_stats_ignore_one_outlier() {
        let (c, s) = robust_log_stats(&[100.0, 105.0, 95.0, 102.0, 1000.0]).unwrap();
        assert!((c.exp() - 102.0).abs() < 1.0);
        assert!(s < 0.1, "{s}");
        assert!(robust_log_stats(&[]).is_none());
    }
}
