//! What the estimator costs: the self-calibration (the stack's history replayed through the
//! estimator, once per step) and one estimate (on every poll), for 40 history records of a
//! 50-resource stack whose every deployment changes every resource: the worst case of
//! docs/performance.md ("Estimates", cost).
//!
//!     cargo run --release --example estimate_bench [-- --records N --resources N --runs N]
//!
//! Prints the median and the slowest of `--runs` timings (15 by default) of each, as CPU
//! time of this thread (what the step spends: on a shared runner the wall clock also counts
//! other processes' time), and the wall-clock median beside it.

use std::time::Instant;

/// This thread's CPU time in milliseconds (CLOCK_THREAD_CPUTIME_ID).
fn cpu_ms() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the pointer it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1000.0 + t.tv_nsec as f64 / 1e6
}

/// Runs `f` `runs` times: (CPU median, CPU slowest, wall median), in milliseconds.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, f64, f64) {
    let (mut cpu, mut wall) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (c, w) = (cpu_ms(), Instant::now());
        std::hint::black_box(f());
        cpu.push(cpu_ms() - c);
        wall.push(w.elapsed().as_secs_f64() * 1000.0);
    }
    let (c, worst) = median(cpu);
    (c, worst, median(wall).0)
}

use deploy_coordinator::estimate::eval::bench_history;
use deploy_coordinator::estimate::{Calibration, Options, estimate_with};

fn median(mut xs: Vec<f64>) -> (f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[xs.len() / 2], xs[xs.len() - 1])
}

fn main() -> anyhow::Result<()> {
    let (mut records, mut resources, mut runs) = (40usize, 50usize, 15usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> anyhow::Result<usize> {
            let v = args
                .next()
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?;
            v.parse().map_err(|e| anyhow::anyhow!("{name} {v:?}: {e}"))
        };
        match arg.as_str() {
            "--records" => records = value("--records")?,
            "--resources" => resources = value("--resources")?,
            "--runs" => runs = value("--runs")?.max(1),
            other => anyhow::bail!(
                "unknown argument {other:?} (expected --records N, --resources N, --runs N)"
            ),
        }
    }
    let (history, current) = bench_history(resources, records);
    let per_record = history.iter().map(|r| r.resources.len()).max().unwrap_or(0);
    println!(
        "{} records of stack {} ({} resources each), estimate {} s into the next deployment",
        history.len(),
        current.stack,
        per_record,
        (current.last_event_at - current.started_at).num_seconds()
    );
    for with_change_set in [false, true] {
        let cal = Calibration::of(&history, &current.stack, current.operation, with_change_set);
        let (cpu, worst, wall) = time(runs, || {
            Calibration::of(&history, &current.stack, current.operation, with_change_set)
        });
        println!(
            "calibration{}: {cpu:.1} ms CPU median, {worst:.1} ms slowest of {runs} ({wall:.1} ms wall median; {} runs replayed, {} estimates)",
            if with_change_set {
                " with change sets"
            } else {
                ""
            },
            cal.runs,
            cal.points
        );
    }
    let calibration = Some(Calibration::of(
        &history,
        &current.stack,
        current.operation,
        false,
    ));
    let options = Options {
        calibration,
        ..Options::default()
    };
    let (cpu, worst, wall) = time(runs, || {
        estimate_with(&history, &current, current.last_event_at, &options)
    });
    println!(
        "one estimate (400 simulated futures): {cpu:.2} ms CPU median, {worst:.2} ms slowest of {runs} ({wall:.2} ms wall median)"
    );
    Ok(())
}
