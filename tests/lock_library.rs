//! The lock library against the three DynamoDB backends, through the real AWS SDK: acquire,
//! reentry, fence, release (idempotent, owner-checked), force-unlock, queue hand-off, heartbeat
//! loss, cancellation. Each scenario runs on moto (serialised), on dynalite, whose faithful
//! expression validation catches malformed expressions that moto answers with HTTP 500, and on
//! Amazon's DynamoDB Local.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use deploy_coordinator::lock::liveness::{BoxFuture, RunLiveness, RunState};
use deploy_coordinator::lock::{
    self, AcquireError, AcquireOptions, HolderInfo, LockEvent, LockState, NoLiveness,
    ReleaseOutcome,
};
use deploy_coordinator::registry::Registry;
use support::dynamo::{DynamoServer, Emulator};
use tokio_util::sync::CancellationToken;

use support::holder as me;

fn fast(lease_ms: u64, wait_ms: u64) -> AcquireOptions {
    let mut o = AcquireOptions::new(
        Duration::from_millis(lease_ms),
        Duration::from_millis(wait_ms),
    );
    o.queue_poll = Duration::from_millis(300);
    o
}

async fn setup(emulator: Emulator) -> (DynamoServer, Registry) {
    let server = DynamoServer::start(emulator);
    server.create_table("reg").await;
    let reg = Registry::new(server.client().await, "reg");
    (server, reg)
}

fn quiet() -> impl Fn(LockEvent) + Send + Sync {
    |_| {}
}

/// `owner` asks for lock "prod" without GitHub and without listening to events.
async fn take(
    reg: &Registry,
    owner: &str,
    lease_ms: u64,
    wait_ms: u64,
    cancel: &CancellationToken,
) -> Result<lock::Acquired, AcquireError> {
    let opts = fast(lease_ms, wait_ms);
    lock::acquire(
        reg,
        "prod",
        &me(owner),
        &opts,
        &NoLiveness,
        &quiet(),
        cancel,
    )
    .await
}

async fn basics(emulator: Emulator) {
    let (_server, reg) = setup(emulator).await;
    let cancel = CancellationToken::new();
    let a = take(&reg, "a", 5_000, 0, &cancel).await.unwrap();
    assert_eq!(a.record.fence, 1);
    assert!(!a.reentrant);

    // Reentrant for the same owner: same fence, new version.
    let again = take(&reg, "a", 5_000, 0, &cancel).await.unwrap();
    assert!(again.reentrant);
    assert_eq!(again.record.fence, 1);
    assert_ne!(again.record.version, a.record.version);

    // Another owner with --wait 0: one try, told who holds it.
    match take(&reg, "b", 5_000, 0, &cancel).await {
        Err(AcquireError::TimedOut { holder: Some(h) }) => assert_eq!(h.info.owner, "a"),
        other => panic!("{other:?}"),
    }

    // Release refuses another owner, then works, then is idempotent.
    match lock::release(&reg, "prod", "b").await.unwrap() {
        ReleaseOutcome::HeldByOther(h) => assert_eq!(h.info.owner, "a"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        lock::release(&reg, "prod", "a").await.unwrap(),
        ReleaseOutcome::Released(_)
    ));
    assert_eq!(
        lock::release(&reg, "prod", "a").await.unwrap(),
        ReleaseOutcome::AlreadyFree
    );
    assert_eq!(
        lock::release(&reg, "never-taken", "a").await.unwrap(),
        ReleaseOutcome::AlreadyFree
    );

    // The fence survives release and force-unlock.
    let b = take(&reg, "b", 5_000, 0, &cancel).await.unwrap();
    assert_eq!(b.record.fence, 2);
    let removed = lock::force_unlock(&reg, "prod", "stuck deploy, INC-42", "oncall")
        .await
        .unwrap();
    assert_eq!(removed.map(|r| r.info.owner), Some("b".to_string()));
    assert_eq!(
        lock::force_unlock(&reg, "prod", "again", "oncall")
            .await
            .unwrap(),
        None
    );
    let st = lock::status(&reg, "prod").await.unwrap();
    match &st.lock {
        LockState::Free(f) => {
            assert_eq!(f.force_reason.as_deref(), Some("stuck deploy, INC-42"));
            assert_eq!(f.released_by.as_deref(), Some("oncall"));
            assert_eq!(f.last_owner.as_deref(), Some("b"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        st.audit.first().map(|a| (a.what.as_str(), a.by.as_deref())),
        Some(("force-unlock", Some("oncall")))
    );
    // The removed holder cannot release what is no longer its lock.
    assert_eq!(
        lock::release(&reg, "prod", "b").await.unwrap(),
        ReleaseOutcome::AlreadyFree
    );
    let c = take(&reg, "c", 5_000, 0, &cancel).await.unwrap();
    assert_eq!(c.record.fence, 3);
}

async fn queue_hand_off_and_heartbeat(emulator: Emulator) {
    let (_server, reg) = setup(emulator).await;
    let cancel = CancellationToken::new();
    let held = lock::acquire(
        &reg,
        "k",
        &me("holder"),
        &fast(1_500, 0),
        &NoLiveness,
        &quiet(),
        &cancel,
    )
    .await
    .unwrap();
    let hb = lock::spawn_heartbeat(reg.clone(), "k", held.record.clone());

    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let on_event = move |e: LockEvent| ev.lock().unwrap().push(format!("{e:?}"));
    let waiter = {
        let reg = reg.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            lock::acquire(
                &reg,
                "k",
                &me("waiter"),
                &fast(1_500, 20_000),
                &NoLiveness,
                &on_event,
                &cancel,
            )
            .await
        })
    };
    // The heartbeat keeps it ours for 3 leases.
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    assert!(!waiter.is_finished(), "taken over despite heartbeats");
    let st = lock::status(&reg, "k").await.unwrap();
    assert_eq!(st.queue.len(), 1, "{:?}", st.queue);
    let latest = hb.stop().await.expect("heartbeat kept the lock");
    assert_ne!(
        latest.version, held.record.version,
        "heartbeat rotates the version"
    );
    let released_at = tokio::time::Instant::now();
    assert!(matches!(
        lock::release(&reg, "k", "holder").await.unwrap(),
        ReleaseOutcome::Released(_)
    ));
    let got = waiter.await.unwrap().unwrap();
    let hand_off = released_at.elapsed();
    assert!(
        hand_off < Duration::from_secs(1),
        "hand-off took {hand_off:?}"
    );
    assert_eq!(got.record.fence, 2);
    assert!(got.took_over.is_none());
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.starts_with("Queued"))
    );
    // The ticket is gone once the lock is ours.
    assert!(lock::status(&reg, "k").await.unwrap().queue.is_empty());

    // A heartbeat notices a force-unlock.
    let hb = lock::spawn_heartbeat(reg.clone(), "k", got.record.clone());
    lock::force_unlock(&reg, "k", "test", "tester")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(3), hb.lost())
        .await
        .expect("loss noticed within a heartbeat");
    assert!(hb.stop().await.is_err());
}

async fn cancel_leaves_nothing(emulator: Emulator) {
    let (_server, reg) = setup(emulator).await;
    let never = CancellationToken::new();
    lock::acquire(
        &reg,
        "k",
        &me("holder"),
        &fast(60_000, 0),
        &NoLiveness,
        &quiet(),
        &never,
    )
    .await
    .unwrap();
    let cancel = CancellationToken::new();
    let task = {
        let (reg, cancel) = (reg.clone(), cancel.clone());
        tokio::spawn(async move {
            lock::acquire(
                &reg,
                "k",
                &me("w"),
                &fast(60_000, 60_000),
                &NoLiveness,
                &quiet(),
                &cancel,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(lock::status(&reg, "k").await.unwrap().queue.len(), 1);
    let t0 = std::time::Instant::now();
    cancel.cancel();
    assert!(matches!(task.await.unwrap(), Err(AcquireError::Cancelled)));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(lock::status(&reg, "k").await.unwrap().queue.is_empty());
    // Timing out also leaves the queue.
    let r = lock::acquire(
        &reg,
        "k",
        &me("w2"),
        &fast(60_000, 700),
        &NoLiveness,
        &quiet(),
        &never,
    )
    .await;
    assert!(
        matches!(r, Err(AcquireError::TimedOut { holder: Some(_) })),
        "{r:?}"
    );
    assert!(lock::status(&reg, "k").await.unwrap().queue.is_empty());
}

/// A GitHub where run 7 is over and every other run is still going.
struct Run7IsOver;

impl RunLiveness for Run7IsOver {
    fn run_state<'a>(&'a self, _: &'a str, run_id: u64, _: u32) -> BoxFuture<'a, RunState> {
        Box::pin(async move {
            if run_id == 7 {
                RunState::Completed
            } else {
                RunState::Running
            }
        })
    }
}

/// A waiter whose runner vanished (its future dropped mid-wait, as a SIGKILL leaves it) is
/// skipped as soon as GitHub says its run is over, not after a whole ticket lease.
async fn a_dead_waiter_is_skipped_once_its_run_is_over(emulator: Emulator) {
    let (_server, reg) = setup(emulator).await;
    let cancel = CancellationToken::new();
    let mut o = fast(60_000, 60_000);
    // Non-head waiters poll every 2 s: a ticket lease (12 polls' worth) is 24 s.
    o.queue_poll = Duration::from_secs(2);
    o.liveness_interval = Duration::from_millis(200);
    let ticket_lease = o.ticket_lease();
    let a = lock::acquire(&reg, "k", &me("a"), &o, &NoLiveness, &quiet(), &cancel)
        .await
        .unwrap();

    let dead = HolderInfo {
        repository: Some("acme/api".into()),
        run_id: Some(7),
        run_attempt: Some(1),
        ..me("dead")
    };
    let (reg2, o2, c2) = (reg.clone(), o.clone(), cancel.clone());
    let vanished = tokio::spawn(async move {
        let _ = lock::acquire(&reg2, "k", &dead, &o2, &NoLiveness, &quiet(), &c2).await;
    });
    // Waits until the queue's tickets are exactly `owners`.
    let queue_is = |owners: &'static [&'static str]| {
        let reg = reg.clone();
        async move {
            let mut seen = Vec::new();
            for _ in 0..100 {
                let st = lock::status(&reg, "k").await.unwrap();
                seen = st.queue.iter().map(|t| t.info.owner.clone()).collect();
                if seen == owners {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("the queue never was {owners:?}: {seen:?}");
        }
    };
    queue_is(&["dead"]).await;
    vanished.abort();

    let (reg3, o3, c3) = (reg.clone(), o.clone(), cancel.clone());
    let next = tokio::spawn(async move {
        let got = lock::acquire(&reg3, "k", &me("c"), &o3, &Run7IsOver, &quiet(), &c3).await;
        (got, std::time::Instant::now())
    });
    // The dead waiter's ticket goes at the live one's first look at the queue, while the
    // lock is still held.
    queue_is(&["c"]).await;
    lock::release(&reg, "k", &a.record.info.owner)
        .await
        .unwrap();
    let released = std::time::Instant::now();

    let (got, at) = next.await.unwrap();
    let got = got.expect("the live waiter gets the lock");
    let waited = at - released;
    assert_eq!(got.record.fence, 2);
    assert!(
        waited < Duration::from_secs(8) && waited < ticket_lease / 2,
        "took {waited:?} after the release (ticket lease {ticket_lease:?})"
    );
    assert!(lock::status(&reg, "k").await.unwrap().queue.is_empty());
}

on_all_backends!(basics);
on_all_backends!(queue_hand_off_and_heartbeat);
on_all_backends!(cancel_leaves_nothing);
on_all_backends!(a_dead_waiter_is_skipped_once_its_run_is_over);
