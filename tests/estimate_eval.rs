//! Regression guard for the estimator's accuracy: a small seeded run of the evaluation harness
//! (`cargo run --release --example estimate_eval` is the full one, in docs/performance.md).
//!
//! The goals: median absolute error of the remaining time at most half the baseline's (the
//! mean of the last 10 durations minus the elapsed time), and the actual remaining time inside
//! [low, high] 80 ± 10 % of the time. Where one large resource's own run-to-run noise decides
//! the remaining time (the nightly re-created environment, whose Multi-AZ database is on the
//! critical path from start to end), no estimator can halve the error early in the run; the
//! goal is asserted per stack where it is reachable and the rest is bounded; pooled over the
//! three stacks it holds at every point (see docs/performance.md).

use deploy_coordinator::estimate::eval::{EvalConfig, Row, run};

fn ratio(r: &Row) -> f64 {
    r.estimator_mae / r.baseline_mae
}

#[test]
fn the_estimator_beats_the_baseline_and_its_ranges_are_calibrated() {
    // The table in docs/performance.md: 20 generated worlds pooled, 6,600 held-out runs per
    // point (about 20 s in debug). One world alone is too noisy to judge a goal: its ratio
    // ranges from 0.37 to 0.65 across seeds for the same estimator.
    let report = run(&EvalConfig {
        seeds: 20,
        ..EvalConfig::default()
    });
    println!("{}{}", report.markdown(), report.seed_spread());
    for r in &report.rows {
        // 0.49 / 0.44 / 0.37 when this was written.
        assert!(ratio(r) <= 0.5, "pooled at {}: {r:?}", r.at);
        assert!(
            (0.70..=0.90).contains(&r.coverage),
            "coverage at {}: {r:?}",
            r.at
        );
    }
    for (stack, rows) in &report.by_stack {
        for r in rows {
            // Per stack, the goal where it is reachable: stacks whose changes vary, once
            // enough of the run is known. The nightly environment's remaining time is its
            // database's own noise, which nothing before its end reveals.
            let goal = match stack.as_str() {
                "serverless-api" => 0.5,
                "web-platform" if r.at >= 0.5 => 0.5,
                "web-platform" => 0.6,
                _ => 0.8,
            };
            assert!(ratio(r) <= goal, "{stack} at {}: {r:?}", r.at);
            assert!(
                (0.70..=0.92).contains(&r.coverage),
                "{stack} coverage at {}: {r:?}",
                r.at
            );
        }
    }
}

#[test]
fn the_evaluation_is_deterministic() {
    let config = EvalConfig {
        seed: 11,
        seeds: 2,
        deployments: 14,
        warmup: 10,
        window: 40,
    };
    let (a, b) = (run(&config), run(&config));
    assert_eq!(a.markdown(), b.markdown());
    assert_eq!(a.seed_spread(), b.seed_spread());
}
