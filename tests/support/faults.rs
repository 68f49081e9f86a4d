//! A fault-injecting TCP proxy between the code under test (the binary or the library) and a
//! DynamoDB backend, on a free 127.0.0.1 port: what the network between a runner and DynamoDB
//! really does now and then, on purpose.
//!
//! - `Latency(d)`: every chunk waits `d`, both ways (a slow or congested path);
//! - `Stall`: connections are accepted and requests read, but nothing is ever answered (an
//!   endpoint that hangs: the case that needs operation timeouts);
//! - `Reset`: connections are reset (RST), new ones at once, established ones at their next
//!   request (a blip, a restarting load balancer);
//! - `HalfOpen`: requests reach the server, answers never come back: the write happened and
//!   the client cannot know (the case that needs owner-checked clean-up);
//! - `Chaos`: each request independently passes or meets one of the above, by probability.
//!
//! The fault can be changed while connections are open (the SDK pools them): every request is
//! judged by the fault in force when it arrives. The proxy runs on its own thread and runtime,
//! so sync tests (the runner emulation) use it as well as async ones, and stops when dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    Pass,
    Latency(Duration),
    Stall,
    Reset,
    HalfOpen,
    Chaos(Chaos),
}

/// Per-request probabilities of each fault; the rest pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chaos {
    /// Probability of a delay, uniform in [0, `latency_max`).
    pub latency: f64,
    pub latency_max: Duration,
    pub stall: f64,
    pub reset: f64,
    pub half_open: f64,
}

impl Chaos {
    /// The mix of the chaos soak: mostly delays, some resets, a few hung and half-open
    /// connections (each of which costs the client an attempt timeout).
    pub fn soak() -> Chaos {
        Chaos {
            latency: 0.10,
            latency_max: Duration::from_millis(400),
            stall: 0.004,
            reset: 0.02,
            half_open: 0.004,
        }
    }

    /// Parses `latency=0.1,latency_max_ms=400,stall=0.004,reset=0.02,half_open=0.004`.
    pub fn parse(text: &str) -> Result<Chaos, String> {
        let mut c = Chaos {
            latency: 0.0,
            latency_max: Duration::ZERO,
            stall: 0.0,
            reset: 0.0,
            half_open: 0.0,
        };
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected name=value"))?;
            let x: f64 = v.parse().map_err(|_| format!("{part:?}: not a number"))?;
            match k {
                "latency" => c.latency = x,
                "latency_max_ms" => c.latency_max = Duration::from_millis(x as u64),
                "stall" => c.stall = x,
                "reset" => c.reset = x,
                "half_open" => c.half_open = x,
                _ => return Err(format!("{k:?}: unknown fault")),
            }
        }
        Ok(c)
    }

    fn roll(&self) -> Fault {
        let x: f64 = rand::rng().random();
        let mut edge = self.stall;
        if x < edge {
            return Fault::Stall;
        }
        edge += self.reset;
        if x < edge {
            return Fault::Reset;
        }
        edge += self.half_open;
        if x < edge {
            return Fault::HalfOpen;
        }
        edge += self.latency;
        if x < edge && !self.latency_max.is_zero() {
            return Fault::Latency(self.latency_max.mul_f64(rand::rng().random::<f64>()));
        }
        Fault::Pass
    }
}

/// How many requests met each fault.
#[derive(Debug, Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub delayed: AtomicU64,
    pub stalled: AtomicU64,
    pub reset: AtomicU64,
    pub half_open: AtomicU64,
    /// When each stalled or half-open request came (wall clock, ns since the epoch): each
    /// costs a client its attempt timeout, so a check can tell which waits a hang explains.
    pub hangs: Mutex<Vec<u128>>,
}

impl Counts {
    pub fn snapshot(&self) -> [u64; 5] {
        [
            self.requests.load(Ordering::Relaxed),
            self.delayed.load(Ordering::Relaxed),
            self.stalled.load(Ordering::Relaxed),
            self.reset.load(Ordering::Relaxed),
            self.half_open.load(Ordering::Relaxed),
        ]
    }

    pub fn describe(&self) -> String {
        let [r, d, s, x, h] = self.snapshot();
        format!("{r} requests: {d} delayed, {s} stalled, {x} reset, {h} half-open")
    }

    fn hang(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        self.hangs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(now);
    }

    /// The hangs between two wall-clock instants (ns since the epoch).
    pub fn hangs_between(&self, from: u128, to: u128) -> usize {
        let hangs = self.hangs.lock().unwrap_or_else(|p| p.into_inner());
        hangs.iter().filter(|&&t| t >= from && t <= to).count()
    }
}

struct Shared {
    fault: Mutex<Fault>,
    counts: Counts,
    upstream: SocketAddr,
}

impl Shared {
    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy to `127.0.0.1:upstream_port`, passing everything until told otherwise.
    pub fn start(upstream_port: u16) -> FaultProxy {
        let shared = Arc::new(Shared {
            fault: Mutex::new(Fault::Pass),
            counts: Counts::default(),
            upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let port = listener.local_addr().expect("proxy address").port();
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = CancellationToken::new();
        let (s, st) = (shared.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            rt.block_on(accept_loop(listener, s, st));
        });
        FaultProxy {
            port,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    pub fn counts(&self) -> &Counts {
        &self.shared.counts
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a child process needs to reach the backend through this proxy.
    pub fn env(&self) -> Vec<(String, String)> {
        super::dynamo::endpoint_env(&self.endpoint())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((client, _)) = accepted else { continue };
        let (shared, stop) = (shared.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = connection(client, shared) => {}
            }
        });
    }
}

/// What happens to the rest of a connection after a fault.
#[derive(PartialEq)]
enum Fate {
    Open,
    /// Read and discard everything, answer nothing.
    Stalled,
    /// Forward requests, drop answers.
    Mute,
}

async fn connection(mut client: TcpStream, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    // A fault in force when the connection arrives applies before it reaches the server.
    let first = match shared.fault() {
        Fault::Chaos(c) => c.roll(),
        f => f,
    };
    match first {
        Fault::Reset => {
            shared.counts.reset.fetch_add(1, Ordering::Relaxed);
            let _ = client.set_zero_linger();
            return;
        }
        Fault::Stall => {
            shared.counts.stalled.fetch_add(1, Ordering::Relaxed);
            shared.counts.hang();
            let mut sink = [0u8; 8192];
            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        _ => {}
    }
    let Ok(mut server) = TcpStream::connect(shared.upstream).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = server.set_nodelay(true);
    let mut fate = Fate::Open;
    let (mut cbuf, mut sbuf) = ([0u8; 16384], [0u8; 16384]);
    loop {
        tokio::select! {
            read = client.read(&mut cbuf) => {
                let n = match read { Ok(n) if n > 0 => n, _ => return };
                if fate == Fate::Stalled {
                    continue;
                }
                shared.counts.requests.fetch_add(1, Ordering::Relaxed);
                let fault = match shared.fault() {
                    Fault::Chaos(c) => c.roll(),
                    f => f,
                };
                match fault {
                    Fault::Pass => {}
                    Fault::Latency(d) => {
                        shared.counts.delayed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(d).await;
                    }
                    Fault::Stall => {
                        shared.counts.stalled.fetch_add(1, Ordering::Relaxed);
                        shared.counts.hang();
                        fate = Fate::Stalled;
                        continue;
                    }
                    Fault::Reset => {
                        shared.counts.reset.fetch_add(1, Ordering::Relaxed);
                        let _ = client.set_zero_linger();
                        return;
                    }
                    Fault::HalfOpen => {
                        shared.counts.half_open.fetch_add(1, Ordering::Relaxed);
                        shared.counts.hang();
                        fate = Fate::Mute;
                    }
                    Fault::Chaos(_) => {}
                }
                if server.write_all(&cbuf[..n]).await.is_err() {
                    return;
                }
            }
            read = server.read(&mut sbuf), if fate != Fate::Stalled => {
                let n = match read { Ok(n) if n > 0 => n, _ => {
                    // The server closed: a muted connection stays open and silent.
                    if fate == Fate::Mute {
                        let mut sink = [0u8; 8192];
                        while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
                    }
                    return;
                } };
                if fate == Fate::Mute {
                    continue;
                }
                if let Fault::Latency(d) = shared.fault() {
                    tokio::time::sleep(d).await;
                }
                if client.write_all(&sbuf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
