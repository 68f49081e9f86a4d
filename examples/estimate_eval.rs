//! Evaluates the deployment-time estimator on every generator family and the real streams,
//! and prints the tables kept in docs/performance.md ("Estimates").
//!
//!     cargo run --release --example estimate_eval [-- --seed S --seeds K --deployments N
//!         --family NAME (repeatable) --stream FILE (repeatable) --raw --no-change-sets]
//!
//! `--seeds K` generated worlds per family (seeds S, S+1, …) are pooled; `--raw` leaves the
//! calibration out (the per-resource model alone); `--family` restricts the run. The real
//! streams are read from tests/fixtures/real-events (`--stream` names the files to read
//! instead of all of them, e.g. one stream's real history alone). Deterministic for a given seed; the
//! families are described in `src/estimate/eval/` and docs/performance.md.

use deploy_coordinator::estimate::eval::real::read_streams;
use deploy_coordinator::estimate::eval::{EvalConfig, Family, Variant, run};

fn main() -> anyhow::Result<()> {
    let mut config = EvalConfig::default();
    let mut families = Vec::new();
    let mut streams = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> anyhow::Result<String> {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))
        };
        match arg.as_str() {
            "--deployments" => config.deployments = value("--deployments")?.parse()?,
            "--seed" => config.seed = value("--seed")?.parse()?,
            "--seeds" => config.seeds = value("--seeds")?.parse::<u64>()?.max(1),
            "--family" => {
                let name = value("--family")?;
                families.push(Family::parse(&name).ok_or_else(|| {
                    anyhow::anyhow!("unknown family {name:?} (expected one of: {})", names())
                })?);
            }
            "--stream" => streams.push(value("--stream")?),
            "--raw" => config.variant = Variant::Raw,
            "--no-change-sets" => config.change_sets = false,
            other => anyhow::bail!(
                "unknown argument {other:?} (expected --deployments N, --seed S, --seeds K, --family NAME, --stream FILE, --raw, --no-change-sets)"
            ),
        }
    }
    if !families.is_empty() {
        config.families = families;
    }
    config.real_streams = real_streams(&streams)?;
    let report = run(&config);
    println!(
        "seeds {}..{} ({} worlds per family), {} deployments per world ({} of warm-up), history window {}, {}",
        config.seed,
        config.seed + config.seeds - 1,
        config.seeds,
        config.deployments,
        config.warmup,
        config.window,
        match config.variant {
            Variant::Calibrated => "calibrated",
            Variant::Raw => "raw (no calibration)",
        }
    );
    println!("\nwithout change sets:\n{}", report.markdown(false));
    print!("{}", report.biases(false));
    if config.change_sets {
        println!("\nwith change sets:\n{}", report.markdown(true));
        print!("{}", report.biases(true));
    }
    println!("\n{:.1} s in all", report.seconds);
    Ok(())
}

fn names() -> String {
    Family::ALL.map(|f| f.name()).join(", ")
}

/// tests/fixtures/real-events/*.json (the manifest aside), in name order; or the `names` of
/// that folder, in the order given.
fn real_streams(names: &[String]) -> anyhow::Result<Vec<String>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real-events");
    if names.is_empty() {
        return read_streams(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()));
    }
    names
        .iter()
        .map(|name| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        })
        .collect()
}
