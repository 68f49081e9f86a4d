//! The lock soak at scale (see `tests/support/soak.rs` for what is checked and how):
//!
//!     cargo run --example lock_soak -- --bin target/debug/deploy-coordinator \
//!         [--emulator moto|dynalite|dynamodb-local] [--keys 4] [--processes 20] [--rounds 42] \
//!         [--hold 20ms] [--lease 5s] [--chaos soak|none|latency=0.1,latency_max_ms=400,...] \
//!         [--kills 2] [--kill-lease 3s]
//!
//! `scripts/lock-soak` builds the binary and runs this on each backend. Exits 1 when the
//! checker found anything wrong.

#[allow(dead_code)]
#[path = "../tests/support/dynamo.rs"]
mod dynamo;
#[allow(dead_code)]
#[path = "../tests/support/faults.rs"]
mod faults;
#[path = "../tests/support/soak.rs"]
mod soak;

#[path = "common/args.rs"]
mod args;
use args::arg;

use std::path::PathBuf;
use std::process::ExitCode;

use dynamo::Emulator;
use faults::Chaos;

fn duration(name: &str, default: &str) -> std::time::Duration {
    let text = arg(name, default);
    deploy_coordinator::duration::parse(&text)
        .unwrap_or_else(|e| panic!("{name} {text:?}: {e} (e.g. 20ms, 5s)"))
}

fn count(name: &str, default: &str) -> usize {
    let text = arg(name, default);
    text.parse()
        .unwrap_or_else(|_| panic!("{name} {text:?}: expected a whole number"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let emulator = match arg("--emulator", "moto").as_str() {
        "moto" => Emulator::Moto,
        "dynalite" => Emulator::Dynalite,
        "dynamodb-local" => Emulator::DynamoDbLocal,
        other => panic!("--emulator {other:?}: expected moto, dynalite or dynamodb-local"),
    };
    let chaos = match arg("--chaos", "soak").as_str() {
        "none" => None,
        "soak" => Some(Chaos::soak()),
        spec => Some(Chaos::parse(spec).unwrap_or_else(|e| panic!("--chaos: {e}"))),
    };
    let soak = soak::Soak {
        bin: PathBuf::from(arg("--bin", "target/debug/deploy-coordinator")),
        emulator,
        keys: count("--keys", "4"),
        processes: count("--processes", "20"),
        rounds: count("--rounds", "42"),
        hold: duration("--hold", "20ms"),
        lease: duration("--lease", "5s"),
        chaos,
        kills: count("--kills", "2"),
        kill_lease: duration("--kill-lease", "3s"),
    };
    println!(
        "lock soak on {}: {} key(s) x {} processes x {} rounds ({} of them per key killed mid-hold, then one more acquisition per key), hold {:?}, lease {:?}, faults: {:?}",
        emulator.name(),
        soak.keys,
        soak.processes,
        soak.rounds,
        soak.kills,
        soak.hold,
        soak.lease,
        soak.chaos
    );
    let report = soak.run().await;
    println!("{}", report.describe());
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
