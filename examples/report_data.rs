//! Generates realistic history records (3 stacks × N deployments, see `src/report/sample.rs`)
//! in the `history export` format, and optionally renders the report from them, timing it.
//!
//!     cargo run --release --example report_data -- --out history.json [--html report.html]
//!         [--deployments 50] [--seed S] [--runs 20]
//!
//! The records can be imported (`history import history.json`) or given to
//! `history report --history history.json`. Deterministic for a given seed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use deploy_coordinator::history::page::sample::{SampleConfig, generate};
use deploy_coordinator::history::page::{PageOptions, render};

fn main() -> anyhow::Result<()> {
    let mut config = SampleConfig::default();
    let mut out: Option<PathBuf> = None;
    let mut html: Option<PathBuf> = None;
    let mut runs = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> anyhow::Result<String> {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))
        };
        match arg.as_str() {
            "--deployments" => config.deployments = value("--deployments")?.parse()?,
            "--seed" => config.seed = value("--seed")?.parse()?,
            "--runs" => runs = value("--runs")?.parse::<usize>()?.max(1),
            "--out" => out = Some(value("--out")?.into()),
            "--html" => html = Some(value("--html")?.into()),
            other => anyhow::bail!(
                "unknown argument {other:?} (expected --out FILE, --html FILE, --deployments N, --seed S, --runs N)"
            ),
        }
    }
    let records = generate(&config);
    let json = serde_json::to_string_pretty(&records).context("cannot serialise the records")?;
    match &out {
        Some(path) => std::fs::write(path, &json)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None if html.is_none() => println!("{json}"),
        None => {}
    }
    if let Some(path) = &html {
        let options = PageOptions {
            source: format!(
                "generated sample (seed {}, {} deployments per stack)",
                config.seed, config.deployments
            ),
            // Fixed, so the same seed gives the same file byte for byte.
            generated_at: DateTime::<Utc>::from_timestamp(1_772_000_000, 0).unwrap_or_default(),
        };
        let mut times = Vec::with_capacity(runs);
        let mut page = String::new();
        for _ in 0..runs {
            let started = Instant::now();
            page = render(&records, &options);
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        std::fs::write(path, &page).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "{}: {} bytes from {} records; HTML built in {:.2} ms (median of {runs})",
            path.display(),
            page.len(),
            records.len(),
            times[times.len() / 2]
        );
    }
    Ok(())
}
