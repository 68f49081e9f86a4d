//! The short soak of the lock (the long one is `scripts/lock-soak`, figures in
//! docs/performance.md): 20 processes of the real binary per backend, each taking the same
//! lock 3 times with `lock run` through the fault proxy's chaos mix (delays, resets, hung and
//! half-open connections), and one holder SIGKILLed in the middle of its hold. The record the
//! checker reads is written by the critical sections themselves ([`support::soak`]): no
//! overlap, fences strictly increasing, the dead holder's lock taken within its lease plus one
//! poll (plus one attempt timeout when a fault met the takeover), every key clean at the end.

mod support;

use std::time::Duration;

use support::dynamo::Emulator;
use support::faults::Chaos;
use support::soak::Soak;

async fn short_soak(emulator: Emulator) {
    let soak = Soak {
        bin: support::runner::binary(),
        emulator,
        keys: 1,
        processes: 20,
        rounds: 3,
        hold: Duration::from_millis(20),
        lease: Duration::from_secs(5),
        chaos: Some(Chaos::soak()),
        kills: 1,
        kill_lease: Duration::from_secs(3),
    };
    let report = soak.run().await;
    println!("{}", report.describe());
    assert!(report.ok(), "{}", report.describe());
    // 20 loops x 3 rounds, and the final acquisition that sweeps up after them.
    assert_eq!(report.sections, 20 * 3 + 1, "{}", report.describe());
    assert_eq!(report.dead.len(), 1, "{}", report.describe());
}

on_all_backends!(short_soak);
