//! Evaluates the deployment-time estimator on generated histories and prints the table kept
//! in docs/performance.md ("Estimates").
//!
//!     cargo run --release --example estimate_eval [-- --deployments N --seed S --seeds K]
//!
//! `--seeds K` pools K generated worlds (seeds S, S+1, …) into one table and prints how much
//! the single seeds differ.
//!
//! Deterministic for a given seed. The generator's assumptions are documented in
//! `src/estimate/eval.rs` and docs/performance.md.

use deploy_coordinator::estimate::eval::{EvalConfig, run};

fn main() -> anyhow::Result<()> {
    let mut config = EvalConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> anyhow::Result<u64> {
            let v = args
                .next()
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?;
            v.parse().map_err(|e| anyhow::anyhow!("{name} {v:?}: {e}"))
        };
        match arg.as_str() {
            "--deployments" => config.deployments = usize::try_from(value("--deployments")?)?,
            "--seed" => config.seed = value("--seed")?,
            "--seeds" => config.seeds = value("--seeds")?.max(1),
            other => {
                anyhow::bail!(
                    "unknown argument {other:?} (expected --deployments N, --seed S, --seeds K)"
                )
            }
        }
    }
    let report = run(&config);
    println!(
        "seed {}{}, {} deployments per stack ({} of warm-up), history window {}",
        config.seed,
        if config.seeds > 1 {
            format!(" and the {} after it", config.seeds - 1)
        } else {
            String::new()
        },
        config.deployments,
        config.warmup,
        config.window
    );
    print!("{}", report.markdown());
    print!("{}", report.seed_spread());
    for r in &report.rows {
        println!(
            "bias at {:.0} %: {:+.0} s (median of estimated − actual)",
            r.at * 100.0,
            r.bias
        );
    }
    for (stack, rows) in &report.by_stack {
        let b: Vec<String> = rows.iter().map(|r| format!("{:+.0} s", r.bias)).collect();
        println!("bias {stack}: {}", b.join(", "));
    }
    println!(
        "{} estimates, {:.2} ms each on average",
        report.estimates,
        report.mean_micros_per_estimate / 1000.0
    );
    Ok(())
}
