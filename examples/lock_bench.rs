//! Lock benchmark: N waiters on one key against moto (requests serialised), each taking the
//! lock `--rounds` times, measuring hand-off latency (release → next holder acquired) and
//! DynamoDB requests per waiter-minute of waiting, for this crate's queue and, in the same run
//! on other keys, for fixed 5 s polling with `attribute_not_exists` (what
//! abatilo/github-action-locks and ben-z/gh-action-mutex do) and for Terraform's S3/DynamoDB
//! backend (`attribute_not_exists`, retry after 1 s doubling to 16 s).
//!
//!     cargo run --example lock_bench -- [--waiters 20] [--rounds 5] [--hold 1s]
//!
//! Every waiter has its own SDK client whose interceptor timestamps each HTTP request, so the
//! requests of a waiter can be split into "while first in line" and "while further back".
//! Holds are random in [hold, 1.5 × hold), the same list for every strategy: a hold that is
//! a multiple of a poll interval would phase-lock the pollers to the releases.
//! "Requests per waiter-minute" is pooled: all requests sent while waiting (the acquiring
//! write and the ticket's removal included) over all minutes spent waiting.

// Shared with the integration tests: starts and stops the emulator, never orphaned.
#[allow(dead_code)]
#[path = "../tests/support/dynamo.rs"]
mod dynamo;

#[path = "common/args.rs"]
mod args;
use args::arg;

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
    /// Which of the waiter's acquisitions this was (0: the first, before any rate was known).
    round: usize,
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
    // A hand-off: the lock released while the next holder was already waiting for it. Split
    // by the next holder's round too: the first round starts on a key nobody has timed yet,
    // the later ones behind the rate holders leave on the lock item.
    let gaps = |keep: &dyn Fn(&Waited) -> bool| {
        let mut v: Vec<f64> = order
            .windows(2)
            .filter(|w| w[1].start < w[0].released && keep(w[1]))
            .map(|w| {
                w[1].acquired
                    .saturating_duration_since(w[0].released)
                    .as_secs_f64()
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let hand_offs = gaps(&|_| true);
    let first_round = gaps(&|w| w.round == 0);
    let later_rounds = gaps(&|w| w.round > 0);
    let (mut head_req, mut head_time, mut back_req, mut back_time) =
        (0, Duration::ZERO, 0, Duration::ZERO);
    for w in results {
        let head = w.head_since.unwrap_or(w.start).clamp(w.start, w.acquired);
        head_req += w
            .requests
            .between(head, w.acquired + Duration::from_millis(1));
        head_time += w.acquired - head;
        back_req += w.requests.between(w.start, head);
        back_time += head - w.start;
    }
    let all_req = head_req + back_req;
    let all_time = head_time + back_time;
    println!("## {name}");
    println!(
        "hand-off latency (release -> next acquired), {} hand-offs: p50 {:.3} s, p95 {:.3} s, max {:.3} s",
        hand_offs.len(),
        percentile(&hand_offs, 50.0),
        percentile(&hand_offs, 95.0),
        hand_offs.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  first round: {} hand-offs, p50 {:.3} s, p95 {:.3} s, max {:.3} s; later rounds: {} hand-offs, p50 {:.3} s, p95 {:.3} s, max {:.3} s",
        first_round.len(),
        percentile(&first_round, 50.0),
        percentile(&first_round, 95.0),
        first_round.last().copied().unwrap_or(f64::NAN),
        later_rounds.len(),
        percentile(&later_rounds, 50.0),
        percentile(&later_rounds, 95.0),
        later_rounds.last().copied().unwrap_or(f64::NAN),
    );
    println!(
        "requests per waiter-minute of waiting: {:.1} on average ({all_req} requests over {:.0} waiter-s, {:.1} per acquisition); first in line {:.1} ({head_req} over {:.0} s), further back {:.1} ({back_req} over {:.0} s)",
        per_minute(all_req, all_time).unwrap_or(f64::NAN),
        all_time.as_secs_f64(),
        all_req as f64 / results.len().max(1) as f64,
        per_minute(head_req, head_time).unwrap_or(f64::NAN),
        head_time.as_secs_f64(),
        per_minute(back_req, back_time).unwrap_or(f64::NAN),
        back_time.as_secs_f64(),
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

/// This crate's queue: each waiter takes the lock `holds.len()` times, heartbeating it while
/// it holds it.
async fn queued(endpoint: String, holds: Vec<Vec<Duration>>) -> Vec<Waited> {
    let mut tasks = Vec::new();
    for (i, holds) in holds.into_iter().enumerate() {
        let endpoint = endpoint.clone();
        tasks.push(tokio::spawn(async move {
            // Staggered arrivals, so that the first queue order is the arrival order.
            tokio::time::sleep(Duration::from_millis(50 * i as u64)).await;
            let requests = Requests::default();
            let reg = Registry::new(client(&endpoint, &requests).await, "bench");
            let mut out = Vec::new();
            for (round, hold) in holds.into_iter().enumerate() {
                let owner = format!("queued-{i}-{round}");
                let me = HolderInfo {
                    owner: owner.clone(),
                    correlation_id: owner.clone(),
                    ..HolderInfo::default()
                };
                let opts = AcquireOptions::new(Duration::from_secs(60), Duration::from_secs(7200));
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
                let hb = lock::spawn_heartbeat_since(
                    reg.clone(),
                    "queued",
                    got.record.clone(),
                    got.written_at,
                );
                tokio::time::sleep(hold).await;
                let _ = hb.stop().await;
                let released = Instant::now();
                // Retried as the pollers' delete is: a lost release would end the whole run.
                let mut tries = 0;
                while let Err(e) = lock::release(&reg, "queued", &owner).await {
                    tries += 1;
                    assert!(tries < 10, "release: {e}");
                }
                let head_since = *head_since.lock().unwrap_or_else(|p| p.into_inner());
                out.push(Waited {
                    start,
                    head_since: head_since.or(Some(acquired)),
                    acquired,
                    released,
                    requests: requests.clone(),
                    round,
                });
            }
            out
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.extend(t.await.expect("waiter"));
    }
    out
}

/// No queue: PutItem with attribute_not_exists, delete when done; after a refusal wait
/// `delay(attempt)` and try again.
async fn polling(
    endpoint: String,
    key: &'static str,
    holds: Vec<Vec<Duration>>,
    delay: fn(u32) -> Duration,
) -> Vec<Waited> {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let mut tasks = Vec::new();
    for (i, holds) in holds.into_iter().enumerate() {
        let endpoint = endpoint.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50 * i as u64)).await;
            let requests = Requests::default();
            let c = client(&endpoint, &requests).await;
            let mut out = Vec::new();
            for (round, hold) in holds.into_iter().enumerate() {
                let start = Instant::now();
                let mut attempt = 0;
                loop {
                    let put = c
                        .put_item()
                        .table_name("bench")
                        .item("pk", A::S(key.into()))
                        .item("sk", A::S("LOCK".into()))
                        .item("owner", A::S(format!("{key}-{i}")))
                        .condition_expression("attribute_not_exists(pk)")
                        .send()
                        .await;
                    if put.is_ok() {
                        break;
                    }
                    tokio::time::sleep(delay(attempt)).await;
                    attempt += 1;
                }
                let acquired = Instant::now();
                tokio::time::sleep(hold).await;
                let released = Instant::now();
                // Retried: on a loaded machine moto-serial can miss the SDK's timeouts, and
                // one lost delete would end the whole run.
                let mut tries = 0;
                while let Err(e) = c
                    .delete_item()
                    .table_name("bench")
                    .key("pk", A::S(key.into()))
                    .key("sk", A::S("LOCK".into()))
                    .send()
                    .await
                {
                    tries += 1;
                    assert!(tries < 10, "delete: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                // No queue: every waiter polls the same way the whole time ("first in line"
                // is not a thing), so all of its waiting counts as "further back".
                out.push(Waited {
                    start,
                    head_since: Some(acquired),
                    acquired,
                    released,
                    requests: requests.clone(),
                    round,
                });
            }
            out
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.extend(t.await.expect("waiter"));
    }
    out
}

fn fixed_5s(_: u32) -> Duration {
    Duration::from_secs(5)
}

/// Terraform's lock retry (backend/local, `lockWithContext`): 1 s, doubling, at most 16 s.
fn terraform(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(4))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let waiters: usize = arg("--waiters", "20").parse().expect("--waiters N");
    let rounds: usize = arg("--rounds", "5").parse().expect("--rounds N");
    let hold = deploy_coordinator::duration::parse(&arg("--hold", "1s")).expect("--hold DURATION");
    let server = dynamo::DynamoServer::start(dynamo::Emulator::Moto);
    server.create_table("bench").await;
    let endpoint = server.endpoint();
    println!(
        "{waiters} waiters x {rounds} rounds per key, each hold {hold:?} to 1.5x that, moto-serial at {endpoint}"
    );
    let t0 = Instant::now();
    let holds: Vec<Vec<Duration>> = (0..waiters)
        .map(|_| {
            (0..rounds)
                .map(|_| hold.mul_f64(rand::Rng::random_range(&mut rand::rng(), 1.0..1.5)))
                .collect()
        })
        .collect();
    let (ours, fixed, tf) = tokio::join!(
        queued(endpoint.clone(), holds.clone()),
        polling(endpoint.clone(), "fixed", holds.clone(), fixed_5s),
        polling(endpoint, "terraform", holds, terraform),
    );
    println!("(ran {:.0} s)\n", t0.elapsed().as_secs_f64());
    summary(
        "deploy-coordinator queue (head and next in line poll fast, the others by place and rate)",
        &ours,
    );
    println!();
    summary("fixed 5 s polling, no queue", &fixed);
    println!();
    summary("Terraform (1 s doubling to 16 s), no queue", &tf);
    println!(
        "\nFIFO: acquisitions out of arrival order: queue {}, fixed polling {}, Terraform {}",
        inversions(&ours),
        inversions(&fixed),
        inversions(&tf)
    );
}
