//! Lock benchmark: N waiters on one key against moto (requests serialised), measuring
//! hand-off latency (release → next holder acquired) and DynamoDB requests per waiter-minute,
//! for this crate's queue (head polls fast, others slowly) and, in the same run on another
//! key, for fixed 5 s polling with `attribute_not_exists` (what abatilo/github-action-locks and
//! ben-z/gh-action-mutex do).
//!
//!     cargo run --example lock_bench -- [--waiters 20] [--hold 15s]
//!
//! Every waiter has its own SDK client whose interceptor timestamps each HTTP request, so the
//! requests of a waiter can be split into "while first in line" and "while further back".
//! `--hold` should exceed the queue poll (15 s, jittered up to 18 s): a deployment holds
//! the lock for minutes, and the next waiter has then long learned it is first in line.

// Shared with the integration tests: starts and stops the emulator, never orphaned.
#[allow(dead_code)]
#[path = "../tests/support/dynamo.rs"]
mod dynamo;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use deploy_coordinator::lock::{self, AcquireOptions, HolderInfo, LockEvent, NoLiveness};
use deploy_coordinator::registry::Registry;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default)]
struct Requests(Arc<Mutex<Vec<Instant>>>);

impl Intercept for Requests {
    fn name(&self) -> &'static str {
        "count-requests"
    }
    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Ok(mut v) = self.0.lock() {
            v.push(Instant::now());
        }
        Ok(())
    }
}

impl Requests {
    fn between(&self, from: Instant, to: Instant) -> usize {
        self.0
            .lock()
            .map(|v| v.iter().filter(|t| **t >= from && **t < to).count())
            .unwrap_or(0)
    }
}

async fn client(endpoint: &str, requests: &Requests) -> aws_sdk_dynamodb::Client {
    let base = dynamo::client_for(endpoint).await;
    let conf = base
        .config()
        .to_builder()
        .interceptor(requests.clone())
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// What one waiter saw.
#[derive(Debug, Clone)]
struct Waited {
    start: Instant,
    head_since: Option<Instant>,
    acquired: Instant,
    released: Instant,
    requests: Requests,
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn per_minute(requests: usize, d: Duration) -> Option<f64> {
    (d >= Duration::from_secs(5)).then(|| requests as f64 / d.as_secs_f64() * 60.0)
}

fn summary(name: &str, results: &[Waited]) {
    let mut order: Vec<&Waited> = results.iter().collect();
    order.sort_by_key(|w| w.acquired);
    let mut hand_offs: Vec<f64> = order
        .windows(2)
        .map(|w| {
            w[1].acquired
                .saturating_duration_since(w[0].released)
                .as_secs_f64()
        })
        .collect();
    hand_offs.sort_by(f64::total_cmp);
    let (mut head_req, mut head_time, mut back_req, mut back_time) =
        (0, Duration::ZERO, 0, Duration::ZERO);
    let mut back_rates = Vec::new();
    for w in results {
        let head = w.head_since.unwrap_or(w.start);
        head_req += w.requests.between(head, w.acquired);
        head_time += w.acquired - head;
        let n = w.requests.between(w.start, head);
        back_req += n;
        back_time += head - w.start;
        if let Some(r) = per_minute(n, head - w.start) {
            back_rates.push(r);
        }
    }
    back_rates.sort_by(f64::total_cmp);
    println!("## {name}");
    println!(
        "hand-off latency (release -> next acquired), {} hand-offs: p50 {:.3} s, p95 {:.3} s, max {:.3} s",
        hand_offs.len(),
        percentile(&hand_offs, 50.0),
        percentile(&hand_offs, 95.0),
        hand_offs.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "requests per waiter-minute: first in line {:.1} ({head_req} requests over {:.0} s); further back {:.1} ({back_req} over {:.0} s; per waiter max {:.1})",
        per_minute(head_req, head_time).unwrap_or(f64::NAN),
        head_time.as_secs_f64(),
        per_minute(back_req, back_time).unwrap_or(f64::NAN),
        back_time.as_secs_f64(),
        back_rates.last().copied().unwrap_or(f64::NAN),
    );
}

/// How many waiters got the lock before someone who had arrived earlier.
fn inversions(results: &[Waited]) -> usize {
    let mut by_arrival: Vec<&Waited> = results.iter().collect();
    by_arrival.sort_by_key(|w| w.start);
    by_arrival
        .windows(2)
        .filter(|w| w[0].acquired > w[1].acquired)
        .count()
}

/// This crate's queue.
async fn queued(endpoint: String, holds: Vec<Duration>) -> Vec<Waited> {
    let mut tasks = Vec::new();
    for (i, hold) in holds.into_iter().enumerate() {
        let endpoint = endpoint.clone();
        tasks.push(tokio::spawn(async move {
            // Staggered arrivals, so that the queue order is the arrival order.
            tokio::time::sleep(Duration::from_millis(50 * i as u64)).await;
            let requests = Requests::default();
            let reg = Registry::new(client(&endpoint, &requests).await, "bench");
            let owner = format!("queued-{i}");
            let me = HolderInfo {
                owner: owner.clone(),
                correlation_id: owner.clone(),
                ..HolderInfo::default()
            };
            let opts = AcquireOptions::new(Duration::from_secs(60), Duration::from_secs(3600));
            let head_since = Arc::new(Mutex::new(None));
            let hs = head_since.clone();
            let on_event = move |e: LockEvent| {
                if let LockEvent::Queued { ahead: 0, .. }
                | LockEvent::PositionChanged { ahead: 0, .. } = e
                    && let Ok(mut h) = hs.lock()
                {
                    h.get_or_insert(Instant::now());
                }
            };
            let start = Instant::now();
            let got = lock::acquire(
                &reg,
                "queued",
                &me,
                &opts,
                &NoLiveness,
                &on_event,
                &CancellationToken::new(),
            )
            .await
            .expect("acquire");
            let acquired = Instant::now();
            let hb = lock::spawn_heartbeat(reg.clone(), "queued", got.record.clone());
            tokio::time::sleep(hold).await;
            let _ = hb.stop().await;
            let released = Instant::now();
            lock::release(&reg, "queued", &owner)
                .await
                .expect("release");
            let head_since = *head_since.lock().unwrap();
            Waited {
                start,
                head_since: head_since.or(Some(acquired)),
                acquired,
                released,
                requests,
            }
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("waiter"));
    }
    out
}

/// Fixed 5 s polling: PutItem with attribute_not_exists every 5 s, delete when done.
async fn fixed_polling(endpoint: String, holds: Vec<Duration>) -> Vec<Waited> {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let mut tasks = Vec::new();
    for (i, hold) in holds.into_iter().enumerate() {
        let endpoint = endpoint.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50 * i as u64)).await;
            let requests = Requests::default();
            let c = client(&endpoint, &requests).await;
            let start = Instant::now();
            loop {
                let put = c
                    .put_item()
                    .table_name("bench")
                    .item("pk", A::S("polled".into()))
                    .item("sk", A::S("LOCK".into()))
                    .item("owner", A::S(format!("polled-{i}")))
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
                    .await;
                if put.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            let acquired = Instant::now();
            tokio::time::sleep(hold).await;
            let released = Instant::now();
            c.delete_item()
                .table_name("bench")
                .key("pk", A::S("polled".into()))
                .key("sk", A::S("LOCK".into()))
                .send()
                .await
                .expect("delete");
            // No queue: every waiter polls the same way the whole time ("first in line" is
            // not a thing), so all of its waiting counts as "further back".
            Waited {
                start,
                head_since: Some(acquired),
                acquired,
                released,
                requests,
            }
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("waiter"));
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let waiters: usize = arg("--waiters", "20").parse().expect("--waiters N");
    let hold = deploy_coordinator::duration::parse(&arg("--hold", "18s")).expect("--hold DURATION");
    let server = dynamo::DynamoServer::start(dynamo::Emulator::Moto);
    server.create_table("bench").await;
    let endpoint = server.endpoint();
    println!(
        "{waiters} waiters per key, each holding {} to 1.5x that once, moto-serial at {endpoint}",
        deploy_coordinator::duration::human(hold)
    );
    let t0 = Instant::now();
    // Random hold times (the same for both strategies): a hold that is a multiple of the
    // 5 s poll would phase-lock the pollers to the releases and flatter fixed polling.
    let holds: Vec<Duration> = (0..waiters)
        .map(|_| hold.mul_f64(rand::Rng::random_range(&mut rand::rng(), 1.0..1.5)))
        .collect();
    let (ours, polled) = tokio::join!(
        queued(endpoint.clone(), holds.clone()),
        fixed_polling(endpoint, holds)
    );
    println!("(ran {:.0} s)\n", t0.elapsed().as_secs_f64());
    summary(
        "deploy-coordinator queue (head polls 100-250 ms, others every 15 s)",
        &ours,
    );
    println!();
    summary("fixed 5 s polling, no queue", &polled);
    println!(
        "\nFIFO: hand-offs out of arrival order: queue {}, fixed polling {}",
        inversions(&ours),
        inversions(&polled)
    );
}
