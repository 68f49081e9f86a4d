//! The lock under real timing and faults: the fault proxy (tests/support/faults.rs) between
//! the lock and each DynamoDB backend, waiters that come and go, holds of milliseconds. Each
//! test is one of the holes of issue #13, kept closed.

mod support;

use std::time::Duration;

use deploy_coordinator::lock::{self, AcquireError, AcquireOptions, NoLiveness};
use deploy_coordinator::registry::Registry;
use support::cli::{run, text};
use support::dynamo::{DynamoServer, Emulator, client_for};
use support::faults::{Fault, FaultProxy};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const TABLE: &str = "reg";

use support::holder as me;

fn opts(lease: Duration, wait: Duration) -> AcquireOptions {
    let mut o = AcquireOptions::new(lease, wait);
    o.queue_poll = Duration::from_millis(500);
    o
}

/// A backend with the registry table, a fault proxy in front of it, and a registry handle on
/// each path: `faulty` through the proxy, `direct` for the test's own checks.
struct World {
    _server: DynamoServer,
    proxy: FaultProxy,
    faulty: Registry,
    direct: Registry,
}

async fn world(emulator: Emulator) -> World {
    let server = DynamoServer::start(emulator);
    server.create_table(TABLE).await;
    let proxy = FaultProxy::start(server.port);
    let faulty = Registry::new(client_for(&proxy.endpoint()).await, TABLE);
    let direct = Registry::new(server.client().await, TABLE);
    World {
        _server: server,
        proxy,
        faulty,
        direct,
    }
}

async fn take(
    reg: &Registry,
    key: &str,
    owner: &str,
    o: &AcquireOptions,
) -> Result<lock::Acquired, AcquireError> {
    lock::acquire(
        reg,
        key,
        &me(owner),
        o,
        &NoLiveness,
        &|_| {},
        &CancellationToken::new(),
    )
    .await
}

/// Hole 3: a heartbeat whose every renew fails with an error (not a refused write) for a whole
/// lease has lost the lock: waiters may have taken it over. Reported by time, for errors and
/// for calls that hang.
async fn failed_heartbeats_for_a_lease_are_a_lost_lock(emulator: Emulator) {
    for fault in [Fault::Reset, Fault::Stall] {
        let w = world(emulator).await;
        let lease = Duration::from_millis(1500);
        let got = take(&w.faulty, "k", "holder", &opts(lease, Duration::ZERO))
            .await
            .expect("acquire");
        let since = Instant::now();
        let hb = lock::spawn_heartbeat(w.faulty.clone(), "k", got.record.clone());
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(!hb.is_lost(), "{fault:?}: lost before any fault");
        w.proxy.set(fault);
        let noticed = tokio::time::timeout(lease * 3, hb.lost()).await;
        let after = since.elapsed();
        assert!(
            noticed.is_ok(),
            "{fault:?}: no heartbeat got through for {after:?} (lease {lease:?}), still not lost"
        );
        assert!(
            after >= lease,
            "{fault:?}: lost after {after:?}, before a lease"
        );
        let stopped = tokio::time::timeout(Duration::from_secs(5), hb.stop())
            .await
            .expect("stop() returns promptly");
        let lost = stopped.expect_err("stop() reports the loss");
        assert!(
            lost.detail.contains("no heartbeat"),
            "{fault:?}: {}",
            lost.detail
        );
    }
}
on_all_backends!(failed_heartbeats_for_a_lease_are_a_lost_lock);

/// Hole 5: an endpoint that accepts connections and never answers. `lock acquire --wait 5s`
/// used to hang forever; every call now has an operation timeout and a hung call counts as
/// unavailable (exit 69), within the outage budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_registry_is_unavailable_not_a_hang() {
    let w = world(Emulator::Moto).await;
    w.proxy.set(Fault::Stall);
    let env = w.proxy.env();
    let t0 = std::time::Instant::now();
    let o = tokio::time::timeout(
        Duration::from_secs(60),
        run(
            &env,
            &[
                "lock", "acquire", "--table", TABLE, "--key", "k", "--wait", "5s",
            ],
        ),
    )
    .await;
    let took = t0.elapsed();
    let o = o.unwrap_or_else(|_| panic!("lock acquire --wait 5s still hanging after {took:?}"));
    assert_eq!(o.status.code(), Some(69), "{}", text(&o));
    assert!(took < Duration::from_secs(40), "took {took:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unavailable"),
        "{}",
        text(&o)
    );
}
