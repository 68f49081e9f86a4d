//! Acquiring a lock: one conditional PutItem when nobody waits, otherwise a FIFO queue in
//! which only the oldest live waiter (the head) polls fast and tries to take the lock.
//!
//! Timings (defaults; [`AcquireOptions`]):
//! - the head polls the lock and the next in line polls the queue "fast": a tenth of the time
//!   per acquisition as this waiter has seen the fence advance (`cycle`), between 200 and
//!   600 ms (jittered ±20 %), one request per poll. So a released lock is taken within a few
//!   hundred milliseconds, and behind holds of 50 ms the next in line already knows it is
//!   first when its turn comes;
//! - every other waiter schedules its reads from its place: with `k` waiters ahead its turn is
//!   about `k × cycle` away, and it looks again after a third of that, at most every
//!   `queue_poll` (15 s). A waiter deep in a queue of long deployments reads every 15 s, one
//!   behind a burst of no-op deployments comes forward quickly. It rotates its ticket's
//!   version every 4 × `queue_poll`;
//! - a ticket unchanged for 12 × `queue_poll` (3 missed ticket heartbeats) on the observer's
//!   clock is stale and skipped;
//! - the head asks GitHub whether the holder's run is completed at most every 30 s;
//! - the head leaves on the lock item how long it has watched the holder's version unchanged
//!   ([`super::record::Watched`]), now and then and when it gives up: the next waiter goes on
//!   from there, so waiters whose `lock-timeout` is shorter than the lease still free a dead
//!   holder together;
//! - a registry outage (errors, hung calls) is retried for up to a minute (less when `wait`
//!   is shorter, at least 10 s), from the first read on: a blip at start does not skip the
//!   lock;
//! - behind a freeze ([`super::freeze`]) nobody takes the lock and no staleness rule applies;
//!   the head polls every second (one request) so it goes first within a second of the
//!   freeze's end, and the others keep their places;
//! - the queue's order and policies are [`super::order`]'s: a high-priority ticket goes ahead
//!   of normal ones (each waiter it passed reports [`LockEvent::PassedBy`]), and with
//!   `on-superseded: skip` a waiter leaves with [`AcquireError::Superseded`] when GitHub says a
//!   rival of its ref is ahead. Such a ticket sets the queue mark on the lock item
//!   ([`super::record::QUEUE_MARK`]) so that the head, which polls only the lock item, reads
//!   the queue before it takes the lock.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::freeze::{Freeze, OnFreeze};
use super::liveness::{RunLiveness, RunState};
use super::order::{self, Comparison, OnSuperseded, Priority};
use super::record::{HolderInfo, LockRecord, LockState, QueueTicket};
use super::staleness::{QueueView, VersionWatch};
use super::store::{self, Expect, Write};
use crate::registry::{Registry, RegistryError, keys};

/// How to wait for a lock.
#[derive(Debug, Clone)]
pub struct AcquireOptions {
    /// How long the lock stays ours without a heartbeat before waiters may take it over.
    pub lease: Duration,
    /// How long to wait in the queue before giving up (`lock-timeout`). Zero: one try.
    pub wait: Duration,
    /// The shortest poll interval of the head and the next in line (they poll faster when
    /// acquisitions come fast: a tenth of the time per acquisition, up to 600 ms).
    pub head_poll: Duration,
    /// Poll interval of the other waiters.
    pub queue_poll: Duration,
    /// Minimum interval between two questions to GitHub about the holder's run.
    pub liveness_interval: Duration,
    /// Wait behind a freeze, or fail at once (`on-freeze`).
    pub on_freeze: OnFreeze,
    /// Our ticket's priority (`priority`): high goes ahead of every normal waiter.
    pub priority: Priority,
    /// Leave the queue when a newer commit of our ref is queued (`on-superseded`).
    pub on_superseded: OnSuperseded,
}

impl AcquireOptions {
    pub fn new(lease: Duration, wait: Duration) -> AcquireOptions {
        AcquireOptions {
            lease,
            wait,
            head_poll: Duration::from_millis(200),
            queue_poll: Duration::from_secs(15),
            liveness_interval: Duration::from_secs(30),
            on_freeze: OnFreeze::Wait,
            priority: Priority::Normal,
            on_superseded: OnSuperseded::Wait,
        }
    }

    /// How often a waiter rotates its ticket's version.
    pub fn ticket_heartbeat(&self) -> Duration {
        self.queue_poll * 4
    }

    /// How long a ticket may stay unchanged before others skip it: three missed heartbeats.
    pub fn ticket_lease(&self) -> Duration {
        self.ticket_heartbeat() * 3
    }
}

/// Why a holder was judged stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum StaleReason {
    /// Its version did not change for a whole lease on our monotonic clock.
    LeaseExpired { unchanged_ms: u64 },
    /// GitHub says its run attempt is completed.
    RunCompleted,
}

impl std::fmt::Display for StaleReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StaleReason::LeaseExpired { unchanged_ms } => write!(
                f,
                "no heartbeat for {} (its lease) on this waiter's clock",
                crate::duration::human(Duration::from_millis(*unchanged_ms))
            ),
            StaleReason::RunCompleted => write!(f, "its GitHub run is completed"),
        }
    }
}

/// What a waiter reports while it waits.
#[derive(Debug, Clone)]
pub enum LockEvent {
    /// Enqueued behind `ahead` waiters (`position` = ahead + 1).
    Queued {
        position: usize,
        ahead: usize,
        holder: Option<LockRecord>,
        eta: Option<Duration>,
    },
    PositionChanged {
        position: usize,
        ahead: usize,
        holder: Option<LockRecord>,
        eta: Option<Duration>,
    },
    /// The lock is frozen (first seen, or the freeze was changed): we wait behind it.
    /// `holder` is the run that held the lock when it was frozen and finishes first.
    Frozen {
        freeze: Freeze,
        holder: Option<LockRecord>,
        /// Our place in the queue, kept across the freeze.
        position: usize,
        /// Only our place changed (the same freeze was reported before).
        moved: bool,
    },
    /// The freeze we waited behind is over (`expired`: it reached its end; else lifted).
    FreezeEnded { freeze: Freeze, expired: bool },
    /// We took the lock from a stale holder (already done when this is reported).
    TakingOver {
        previous: LockRecord,
        why: StaleReason,
        /// Our fence, the one after `previous.fence`.
        fence: u64,
    },
    Acquired {
        record: LockRecord,
        waited: Duration,
    },
    /// A higher-priority ticket, enqueued after ours, went ahead of us (reported once per
    /// ticket). `position` is our place now.
    PassedBy { by: HolderInfo, position: usize },
}

/// A lock we now hold.
#[derive(Debug, Clone)]
pub struct Acquired {
    pub record: LockRecord,
    pub waited: Duration,
    /// The stale holder we took over from, if any.
    pub took_over: Option<LockRecord>,
    /// Already ours (same owner): a rerun of the step.
    pub reentrant: bool,
    /// When the write that won the lock was sent: its lease runs from there
    /// ([`super::spawn_heartbeat_since`]).
    pub written_at: Instant,
}

// A LockRecord inline: errors are returned once per acquisition, boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    #[error("timed out waiting for the lock")]
    TimedOut { holder: Option<LockRecord> },
    /// The lock is frozen: at once with `on-freeze: fail`, or the wait ran out behind it.
    #[error("deployments are frozen by {} until {}: {}", .freeze.by, .freeze.until, .freeze.reason)]
    Frozen {
        freeze: Freeze,
        holder: Option<LockRecord>,
        timed_out: bool,
    },
    #[error("cancelled while waiting for the lock")]
    Cancelled,
    /// `on-superseded: skip`: a newer commit of our repository and ref is queued (GitHub says
    /// it is ahead of ours). We left the queue without taking the lock.
    #[error("superseded by a newer commit of the same ref")]
    Superseded { by: HolderInfo },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Takes the lock `key` for `me`, queueing behind earlier waiters. On timeout, cancellation or
/// error, our queue ticket is gone when this returns (best effort, bounded to a few seconds).
pub async fn acquire(
    reg: &Registry,
    key: &str,
    me: &HolderInfo,
    opts: &AcquireOptions,
    liveness: &dyn RunLiveness,
    on_event: &(dyn Fn(LockEvent) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<Acquired, AcquireError> {
    let started = Instant::now();
    let mut w = Waiter {
        reg,
        key,
        me,
        opts,
        liveness,
        on_event,
        cancel,
        started,
        deadline: started + opts.wait,
        lock: LockState::Absent,
        lock_watch: VersionWatch::default(),
        ticket_watch: VersionWatch::default(),
        ticket: None,
        ticket_touched: started,
        queue_read: started,
        liveness_asked: None,
        front_asked: None,
        ahead: None,
        in_flight: None,
        healthy: started,
        queued: false,
        frozen: None,
        inherited: None,
        watch_recorded: None,
        rate: FenceRate::default(),
        mark_seen: None,
        passed: HashSet::new(),
        compared: HashMap::new(),
    };
    let result = w.run().await;
    w.clean_up(result.is_err()).await;
    if let Ok(acquired) = &result {
        on_event(LockEvent::Acquired {
            record: acquired.record.clone(),
            waited: acquired.waited,
        });
    }
    result
}

/// Removes every queue ticket of `owner` under `key` (e.g. from the post step, when the main
/// step died while queued). Returns how many were removed.
pub async fn leave_queue(reg: &Registry, key: &str, owner: &str) -> Result<usize, RegistryError> {
    let (_, tickets) = store::read_partition(reg, key).await?;
    let mut removed = 0;
    for t in tickets.iter().filter(|t| t.info.owner == owner) {
        if store::delete_ticket(reg, key, &t.sk, None).await? {
            removed += 1;
        }
    }
    Ok(removed)
}

struct Waiter<'a> {
    reg: &'a Registry,
    key: &'a str,
    me: &'a HolderInfo,
    opts: &'a AcquireOptions,
    liveness: &'a dyn RunLiveness,
    on_event: &'a (dyn Fn(LockEvent) + Send + Sync),
    cancel: &'a CancellationToken,
    started: Instant,
    deadline: Instant,
    /// The lock item as last seen.
    lock: LockState,
    lock_watch: VersionWatch,
    ticket_watch: VersionWatch,
    ticket: Option<QueueTicket>,
    ticket_touched: Instant,
    queue_read: Instant,
    liveness_asked: Option<Instant>,
    /// When we last asked GitHub about the run of the ticket at the front of the queue.
    front_asked: Option<Instant>,
    /// Live waiters ahead of us, as last computed.
    ahead: Option<usize>,
    /// A PutItem whose answer we never saw (cancelled, failed, timed out): it may have
    /// succeeded. With the holder it was taking over from, if any.
    in_flight: Option<InFlight>,
    /// When the registry last answered: an outage is counted from there.
    healthy: Instant,
    /// Our ticket is in the queue (start-up is done).
    queued: bool,
    /// The freeze we last reported waiting behind.
    frozen: Option<Freeze>,
    /// The longest unchanged time another waiter recorded for the holder's version: (version,
    /// recorded duration, when we read it).
    inherited: Option<(String, Duration, Instant)>,
    /// The (version, unchanged time) we last recorded on the lock item.
    watch_recorded: Option<(String, Duration)>,
    rate: FenceRate,
    /// The queue mark ([`super::record::QUEUE_MARK`]) as of our last read of the queue: our
    /// acquiring write is conditional on it.
    mark_seen: Option<String>,
    /// Tickets we reported as having gone ahead of us.
    passed: HashSet<String>,
    /// What GitHub said about a rival's commit against ours, and when (an unknown answer is
    /// asked again after `liveness_interval`).
    compared: HashMap<String, (Comparison, Instant)>,
}

/// A PutItem in flight: the record written, the stale holder it replaces (and why), and when
/// it was sent (the lease of the new record runs from then).
type InFlight = (LockRecord, Option<(LockRecord, StaleReason)>, Instant);

/// The rate at which acquisitions happen, as this waiter has seen the fence advance: the
/// basis of its poll schedule. Observations are this waiter's own reads on its own clock.
#[derive(Debug, Default)]
struct FenceRate {
    /// The fence last seen and when it was first seen at that value.
    last: Option<(u64, Instant)>,
    /// Smoothed time per acquisition.
    cycle: Option<Duration>,
}

impl FenceRate {
    fn observe(&mut self, fence: u64, now: Instant) {
        match self.last {
            Some((f, at)) if fence > f => {
                let per = now.saturating_duration_since(at)
                    / u32::try_from(fence - f).unwrap_or(u32::MAX);
                // A faster rate is believed at once, a slower one only half: a waiter that
                // expects its turn later than it comes sleeps through it (nobody awake at the
                // front, the lock sits free), one that expects it sooner only reads once more.
                self.cycle = Some(match self.cycle {
                    Some(c) if per < c => per,
                    Some(c) => (c + per) / 2,
                    None => per,
                });
                self.last = Some((fence, now));
            }
            Some(_) => {}
            None => self.last = Some((fence, now)),
        }
    }

    /// The expected time per acquisition: at least as long as the current holder has held it
    /// already (on our observations). Before any acquisition has been seen (and no holder left
    /// a hint), only that: assuming a slow rate would make the waiters far back sleep through
    /// a queue that moves every few hundred milliseconds (the 50 ms bench's p95 of 2.6 s came
    /// from a guess of 2 s). So a waiter that knows nothing reads again soon, and its naps grow
    /// with the hold it watches, a backoff that ends as soon as it sees the fence move.
    fn cycle(&self, now: Instant) -> Duration {
        let held = self
            .last
            .map(|(_, at)| now.saturating_duration_since(at))
            .unwrap_or_default();
        self.cycle.unwrap_or_default().max(held)
    }
}
/// A waiter with `k` waiters ahead looks again after this share of its expected wait.
const LOOKAHEAD: f64 = 1.0 / 3.0;
/// The slowest poll of the head and the next in line: a hand-off within about 0.7 s at worst.
const FAST_POLL_MAX: Duration = Duration::from_millis(600);

/// How often the head of the queue reads the lock while it is frozen.
const FROZEN_POLL: Duration = Duration::from_secs(1);

/// How long a waiter keeps trying through registry outages before giving up...
const OUTAGE_BUDGET: Duration = Duration::from_secs(60);
/// ...and at least this long, even with a short `wait`: a blip of a few seconds must not end
/// an acquisition (or skip the lock under `on-registry-unavailable: fallback`).
const MIN_OUTAGE_BUDGET: Duration = Duration::from_secs(10);

impl Waiter<'_> {
    async fn run(&mut self) -> Result<Acquired, AcquireError> {
        loop {
            let round = if self.queued {
                self.step().await
            } else {
                self.start().await
            };
            match round {
                Ok(Some(a)) => return Ok(a),
                Ok(None) => self.healthy = Instant::now(),
                // A hung call (its timeout) or an error: unavailable. Retried from the first
                // read on, for as long as the outage budget allows, whatever the deadline: a
                // wait of 0 s still rides out a blip.
                Err(AcquireError::Registry(e)) if e.is_unavailable() => {
                    let outage = self.healthy.elapsed();
                    if outage >= self.outage_budget() {
                        return Err(AcquireError::Registry(e));
                    }
                    tracing::warn!(
                        "registry error while {} (retrying for up to {} more): {e}",
                        if self.queued {
                            "waiting"
                        } else {
                            "asking for the lock"
                        },
                        crate::duration::human(self.outage_budget().saturating_sub(outage))
                    );
                    let backoff = if outage < Duration::from_secs(2) {
                        Duration::from_millis(500)
                    } else {
                        Duration::from_secs(1)
                    };
                    self.sleep(jitter(backoff, 0.8, 1.2)).await?;
                    continue;
                }
                Err(e) => return Err(e),
            }
            if Instant::now() >= self.deadline {
                let holder = self.lock.holder().cloned();
                return Err(match self.frozen.take() {
                    Some(freeze) => AcquireError::Frozen {
                        freeze,
                        holder,
                        timed_out: true,
                    },
                    None => AcquireError::TimedOut { holder },
                });
            }
        }
    }

    /// How long an outage may last before we give up: a minute, less when we would not wait
    /// that long for the lock itself, never less than [`MIN_OUTAGE_BUDGET`].
    fn outage_budget(&self) -> Duration {
        OUTAGE_BUDGET.min(self.opts.wait.max(MIN_OUTAGE_BUDGET))
    }

    /// The first round: read, reenter, the fast path, or a place in the queue. Repeated when
    /// the registry fails, so each of its writes is idempotent: reentry is owner-checked, an
    /// acquisition whose answer was lost is recognised by its version, the ticket is ours.
    async fn start(&mut self) -> Result<Option<Acquired>, AcquireError> {
        let (lock, tickets) = self.call(store::read_partition(self.reg, self.key)).await?;
        self.mark_seen = lock.queue_mark().map(str::to_string);
        self.set_lock(lock);
        if let Some(r) = self
            .lock
            .holder()
            .filter(|r| r.info.owner == self.me.owner)
            .cloned()
        {
            if let Some(a) = self.own_write_won(&r) {
                return Ok(Some(a));
            }
            if let Some(a) = self.reenter(r).await? {
                return Ok(Some(a));
            }
        }
        // `on-freeze: fail` fails before taking a place in the queue: nothing to clean up.
        if let Some(freeze) = self.active_freeze()
            && (self.opts.on_freeze == OnFreeze::Fail || self.opts.wait.is_zero())
        {
            return Err(AcquireError::Frozen {
                freeze,
                holder: self.lock.holder().cloned(),
                timed_out: self.opts.on_freeze == OnFreeze::Wait,
            });
        }
        // Fast path: nobody waits and the lock is free. Tickets count as live at first sight;
        // a dead one makes us queue, which is only slower.
        if tickets.is_empty()
            && self.lock.holder().is_none()
            && self.active_freeze().is_none()
            && let Some(a) = self.try_take(None).await?
        {
            return Ok(Some(a));
        }
        if self.opts.wait.is_zero() {
            return Err(AcquireError::TimedOut {
                holder: self.lock.holder().cloned(),
            });
        }
        self.enqueue(tickets).await?;
        self.queued = true;
        self.freeze_gate()?;
        Ok(None)
    }

    /// The lock item holds the record of our own acquisition whose answer we never saw: it
    /// did go through.
    fn own_write_won(&mut self, held: &LockRecord) -> Option<Acquired> {
        let (record, stale, written_at) = self
            .in_flight
            .take_if(|(r, _, _)| r.version == held.version)?;
        let took_over = stale.map(|(previous, why)| {
            self.announce_takeover(&previous, &why, &record);
            previous
        });
        Some(Acquired {
            record,
            waited: self.started.elapsed(),
            took_over,
            reentrant: false,
            written_at,
        })
    }

    /// The freeze in force on the lock as last read, unless we hold the lock ourselves (a
    /// rerun of the step that holds it finishes like the holder would).
    fn active_freeze(&self) -> Option<Freeze> {
        if self
            .lock
            .holder()
            .is_some_and(|r| r.info.owner == self.me.owner)
        {
            return None;
        }
        self.lock.active_freeze(self.reg.clock().now_ms()).cloned()
    }

    /// Reports a freeze appearing, changing or ending; fails at once under `on-freeze: fail`.
    /// `true` while the lock is frozen.
    // The error ends the acquisition (returned once): boxing it would buy nothing.
    #[allow(clippy::result_large_err)]
    fn freeze_gate(&mut self) -> Result<bool, AcquireError> {
        match self.active_freeze() {
            Some(freeze) => {
                if self.opts.on_freeze == OnFreeze::Fail {
                    return Err(AcquireError::Frozen {
                        freeze,
                        holder: self.lock.holder().cloned(),
                        timed_out: false,
                    });
                }
                if !self.frozen.as_ref().is_some_and(|f| f.same_as(&freeze)) {
                    self.frozen = Some(freeze.clone());
                    (self.on_event)(LockEvent::Frozen {
                        freeze,
                        holder: self.lock.holder().cloned(),
                        position: self.ahead.unwrap_or(0) + 1,
                        moved: false,
                    });
                }
                Ok(true)
            }
            None => {
                if let Some(freeze) = self.frozen.take() {
                    let expired = !freeze.is_active(self.reg.clock().now_ms());
                    (self.on_event)(LockEvent::FreezeEnded { freeze, expired });
                }
                Ok(false)
            }
        }
    }

    /// One round of waiting. `Some` once the lock is ours.
    async fn step(&mut self) -> Result<Option<Acquired>, AcquireError> {
        if self.ticket_touched.elapsed() >= self.opts.ticket_heartbeat() {
            self.touch_ticket().await?;
        }
        if self.ahead != Some(0) {
            self.pause(self.queue_nap()).await?;
            self.read_queue().await?;
            self.freeze_gate()?;
            return Ok(None);
        }
        // Head of the queue. Re-read the queue now and then: an older ticket may appear (a
        // waiter with a slow clock), and the position events want the holder.
        // A ticket that changes who goes next (high priority, or a newer commit of a ref in
        // the queue) marked the lock item since we read the queue: read it before taking.
        if self.queue_read.elapsed() >= self.opts.queue_poll
            || self.lock.queue_mark() != self.mark_seen.as_deref()
        {
            self.read_queue().await?;
            if self.ahead != Some(0) {
                return Ok(None);
            }
        }
        // Frozen: no takeover (a freeze has no run and no heartbeat to judge), no acquisition.
        // The holder the freeze found, if any, finishes; we keep our place and look again.
        if self.freeze_gate()? {
            let left = self
                .frozen
                .as_ref()
                .map(|f| f.remaining(self.reg.clock().now_ms()))
                .unwrap_or(FROZEN_POLL);
            let nap = jitter(FROZEN_POLL, 0.8, 1.2).min(left + Duration::from_millis(50));
            self.pause(nap).await?;
            let lock = self.call(store::read_lock(self.reg, self.key)).await?;
            self.set_lock(lock);
            return Ok(None);
        }
        match self.lock.clone() {
            LockState::Absent | LockState::Free(_) => self.try_take(None).await,
            LockState::Held(r) if r.info.owner == self.me.owner => {
                if let Some(a) = self.own_write_won(&r) {
                    return Ok(Some(a));
                }
                self.reenter(r).await
            }
            LockState::Held(r) => {
                let unchanged = self.unchanged(&r);
                if unchanged >= r.lease() {
                    let why = StaleReason::LeaseExpired {
                        unchanged_ms: millis(unchanged),
                    };
                    return self.try_take(Some((r, why))).await;
                }
                if self.run_completed(&r).await? {
                    return self.try_take(Some((r, StaleReason::RunCompleted))).await;
                }
                self.record_watch(&r, unchanged, false).await?;
                self.pause(jitter(self.fast_poll(), 0.8, 1.2)).await?;
                let lock = self.call(store::read_lock(self.reg, self.key)).await?;
                self.set_lock(lock);
                Ok(None)
            }
        }
    }

    fn set_lock(&mut self, lock: LockState) {
        let now = Instant::now();
        self.rate.observe(lock.fence(), now);
        // Before we have seen the fence move: the rate the holder saw while it waited.
        if self.rate.cycle.is_none() {
            self.rate.cycle = lock.cycle_hint();
        }
        if let LockState::Held(r) = &lock {
            self.lock_watch.observe(keys::LOCK, &r.version, now);
            // Another waiter's observation of this very version: we go on from there.
            if let Some(d) = r.watched.as_ref().and_then(|w| w.of(&r.version)) {
                let longer = match &self.inherited {
                    Some((v, had, at)) if *v == r.version => {
                        d > *had + now.saturating_duration_since(*at)
                    }
                    _ => true,
                };
                if longer {
                    self.inherited = Some((r.version.clone(), d, now));
                }
            }
        }
        self.lock = lock;
    }

    /// How long the holder's version has been unchanged: the longer of our own observation
    /// and what earlier waiters recorded (plus our time since we read it). Both are durations
    /// on monotonic clocks; neither trusts the holder's or any other machine's clock.
    fn unchanged(&mut self, held: &LockRecord) -> Duration {
        let now = Instant::now();
        let own = self.lock_watch.observe(keys::LOCK, &held.version, now);
        let inherited = match &self.inherited {
            Some((v, d, at)) if *v == held.version => *d + now.saturating_duration_since(*at),
            _ => Duration::ZERO,
        };
        own.max(inherited)
    }

    /// Leaves our observation of the holder's version on the lock item for the waiters after
    /// us: every quarter lease (1 s to 1 min), and when we give up (`last`). Best effort.
    async fn record_watch(
        &mut self,
        held: &LockRecord,
        unchanged: Duration,
        last: bool,
    ) -> Result<(), AcquireError> {
        let every = (held.lease() / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let since_last = match &self.watch_recorded {
            Some((v, d)) if *v == held.version => unchanged.saturating_sub(*d),
            _ => unchanged,
        };
        if unchanged < Duration::from_secs(1)
            || (!last && since_last < every)
            || since_last.is_zero()
        {
            return Ok(());
        }
        self.watch_recorded = Some((held.version.clone(), unchanged));
        match self
            .call(store::record_watch(
                self.reg,
                self.key,
                &held.version,
                millis(unchanged),
            ))
            .await
        {
            Ok(_) => Ok(()),
            Err(AcquireError::Registry(e)) => {
                tracing::debug!("could not record how long the holder looked dead: {e}");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// How often the head and the next in line look: a tenth of the time per acquisition
    /// (so about ten looks per hold), between `head_poll` and [`FAST_POLL_MAX`]. The hand-off
    /// then takes about half of it: 0.1 s behind holds of a second, 0.3 s behind long ones.
    fn fast_poll(&self) -> Duration {
        let floor = self.opts.head_poll;
        (self.rate.cycle(Instant::now()) / 10).clamp(floor, FAST_POLL_MAX.max(floor))
    }

    /// How long a waiter behind the head sleeps before it reads the queue again. The next in
    /// line polls fast: when holds are short, its turn comes within one of them, and it must
    /// already know it is first. Further back, a third of the expected wait (`ahead`
    /// acquisitions at the rate seen), at most `queue_poll`, and at most `ahead² / 2` fast
    /// polls: the rate seen may be that of one long hold just before a burst of short ones,
    /// and the few waiters close to the front must not sleep through the burst. Far back, the
    /// cost stays low: the waiters 2, 3, 4… ahead add 1/2, 2/9, 1/8… of a fast poller each.
    fn queue_nap(&self) -> Duration {
        let ahead = self.ahead.unwrap_or(1).max(1);
        let fast = self.fast_poll();
        let nap = if ahead == 1 {
            fast
        } else {
            let close = fast.mul_f64((ahead * ahead) as f64 / 2.0);
            self.rate
                .cycle(Instant::now())
                .mul_f64(ahead as f64 * LOOKAHEAD)
                .min(close)
                .clamp(fast, self.opts.queue_poll.max(fast))
        };
        jitter(nap, 0.8, 1.2)
    }

    /// Asks GitHub about the holder's run, at most every `liveness_interval`.
    async fn run_completed(&mut self, holder: &LockRecord) -> Result<bool, AcquireError> {
        let info = holder.info.clone();
        let mut asked = self.liveness_asked;
        let completed = self.ask_run(&info, &mut asked).await;
        self.liveness_asked = asked;
        completed
    }

    /// Whether GitHub says the run of `info` is completed; false when `info` is no GitHub run,
    /// when the answer is unknown, or when `asked` was less than `liveness_interval` ago.
    async fn ask_run(
        &self,
        info: &HolderInfo,
        asked: &mut Option<Instant>,
    ) -> Result<bool, AcquireError> {
        let (Some(repo), Some(run_id), Some(attempt)) =
            (info.repository.as_deref(), info.run_id, info.run_attempt)
        else {
            return Ok(false);
        };
        if asked.is_some_and(|t| t.elapsed() < self.opts.liveness_interval) {
            return Ok(false);
        }
        *asked = Some(Instant::now());
        let ask = tokio::time::timeout(
            Duration::from_secs(10),
            self.liveness.run_state(repo, run_id, attempt),
        );
        let state = tokio::select! {
            _ = self.cancel.cancelled() => return Err(AcquireError::Cancelled),
            state = ask => state.unwrap_or(RunState::Unknown),
        };
        tracing::debug!("run {repo}#{run_id} attempt {attempt}: {state:?}");
        Ok(state == RunState::Completed)
    }

    /// The conditional PutItem. `stale` is the holder being taken over, if any.
    async fn try_take(
        &mut self,
        stale: Option<(LockRecord, StaleReason)>,
    ) -> Result<Option<Acquired>, AcquireError> {
        let (expect_version, fence) = match &self.lock {
            LockState::Absent => (None, 1),
            LockState::Free(f) => (Some(f.version.clone()), f.fence + 1),
            LockState::Held(r) => (Some(r.version.clone()), r.fence + 1),
        };
        let mark = self.mark_seen.clone();
        let expect = match &expect_version {
            None => Expect::Absent,
            Some(v) => Expect::Version {
                version: v,
                mark: mark.as_deref(),
            },
        };
        let record = LockRecord {
            info: self.me.clone(),
            fence,
            version: uuid::Uuid::new_v4().to_string(),
            lease_ms: millis(self.opts.lease),
            acquired_at: self.reg.clock().now_rfc3339(),
            heartbeat_at: None,
            // A freeze in force never gets here (freeze_gate); an ended one is cleared.
            freeze: None,
            watched: None,
            cycle_ms: self.rate.cycle.map(millis),
            queue_mark: None,
            cancelling: None,
        };
        let written_at = Instant::now();
        self.in_flight = Some((record.clone(), stale.clone(), written_at));
        // An error or a cancellation leaves `in_flight` set: the write may have gone through,
        // and the next read (or the clean-up) will tell.
        match self
            .call(store::put_lock(self.reg, self.key, &record, expect))
            .await?
        {
            Write::Done(()) => {
                self.in_flight = None;
                let took_over = stale.map(|(previous, why)| {
                    self.announce_takeover(&previous, &why, &record);
                    previous
                });
                Ok(Some(Acquired {
                    record,
                    waited: self.started.elapsed(),
                    took_over,
                    reentrant: false,
                    written_at,
                }))
            }
            Write::Refused(now) => {
                self.in_flight = None;
                self.set_lock(now);
                Ok(None)
            }
        }
    }

    /// Takeovers are loud: an event (the narrator makes it a warning annotation) and an
    /// audit record.
    fn announce_takeover(&self, previous: &LockRecord, why: &StaleReason, record: &LockRecord) {
        (self.on_event)(LockEvent::TakingOver {
            previous: previous.clone(),
            why: why.clone(),
            fence: record.fence,
        });
        let (reg, key) = (self.reg.clone(), self.key.to_string());
        let fields = [
            ("by", record.info.owner.clone()),
            ("previous_owner", previous.info.owner.clone()),
            (
                "previous_run_url",
                previous.info.run_url.clone().unwrap_or_default(),
            ),
            ("reason", why.to_string()),
            ("fence", record.fence.to_string()),
        ];
        tokio::spawn(async move {
            let fields: Vec<(&str, String)> = fields.iter().map(|(k, v)| (*k, v.clone())).collect();
            if let Err(e) = store::put_audit(&reg, &key, "takeover", &fields).await {
                tracing::debug!("could not record the takeover: {e}");
            }
        });
    }

    /// Same owner already holds it: renew it as ours (new version, same fence).
    async fn reenter(&mut self, held: LockRecord) -> Result<Option<Acquired>, AcquireError> {
        let seen = held.version.clone();
        let record = LockRecord {
            info: self.me.clone(),
            version: uuid::Uuid::new_v4().to_string(),
            lease_ms: millis(self.opts.lease),
            heartbeat_at: None,
            watched: None,
            cycle_ms: self.rate.cycle.map(millis),
            cancelling: None,
            ..held
        };
        let written_at = Instant::now();
        match self
            .call(store::put_lock(
                self.reg,
                self.key,
                &record,
                Expect::Owner {
                    owner: &self.me.owner,
                    version: &seen,
                },
            ))
            .await?
        {
            Write::Done(()) => {
                tracing::info!(
                    "lock {:?} is already ours (fence {}): reentering",
                    self.key,
                    record.fence
                );
                Ok(Some(Acquired {
                    record,
                    waited: self.started.elapsed(),
                    took_over: None,
                    reentrant: true,
                    written_at,
                }))
            }
            Write::Refused(now) => {
                self.set_lock(now);
                Ok(None)
            }
        }
    }

    /// Puts our ticket in the queue. `seen` is the queue as just read: with our ticket added,
    /// it gives our first position without another read.
    async fn enqueue(&mut self, mut seen: Vec<QueueTicket>) -> Result<(), AcquireError> {
        let new_ticket = |ms: u64| QueueTicket {
            sk: keys::queue_ticket(ms, &self.me.correlation_id),
            info: self.me.clone(),
            enqueued_ms: ms,
            version: uuid::Uuid::new_v4().to_string(),
            lease_ms: millis(self.opts.ticket_lease()),
            wants_lease_ms: Some(millis(self.opts.lease)),
            priority: self.opts.priority,
        };
        // A retry (the registry failed) puts the same ticket again: never two of ours. Known
        // before it is written, so the clean-up removes it whatever the answer was.
        let mut ticket = match self.ticket.clone() {
            Some(t) => t,
            None => new_ticket(self.reg.clock().now_ms()),
        };
        self.ticket = Some(ticket.clone());
        loop {
            if self
                .call(store::put_ticket(
                    self.reg,
                    self.key,
                    &ticket,
                    self.ticket_expiry(),
                ))
                .await?
            {
                break;
            }
            // Same correlation ID in the same millisecond: take the next one.
            ticket = new_ticket(ticket.enqueued_ms + 1);
            self.ticket = Some(ticket.clone());
        }
        seen.retain(|t| t.sk != ticket.sk);
        self.mark_queue(&ticket, &seen).await?;
        seen.push(ticket.clone());
        seen.sort_by(|a, b| a.sk.cmp(&b.sk));
        self.ticket = Some(ticket);
        self.ticket_touched = Instant::now();
        self.apply_queue(seen).await
    }

    /// Marks the lock item with our ticket when it changes who should go next: we go ahead
    /// of normal waiters, or our commit may supersede an earlier waiter of our ref. The head
    /// then reads the queue before it takes the lock (see [`super::record::QUEUE_MARK`]).
    async fn mark_queue(
        &mut self,
        ticket: &QueueTicket,
        others: &[QueueTicket],
    ) -> Result<(), AcquireError> {
        let jumps = others.iter().any(|t| t.priority < ticket.priority);
        let rivals = !order::rivals(others, self.me).is_empty();
        if !(jumps || rivals) {
            return Ok(());
        }
        if self
            .call(store::set_queue_mark(self.reg, self.key, &ticket.sk))
            .await?
        {
            self.mark_seen = Some(ticket.sk.clone());
        }
        Ok(())
    }

    fn ticket_expiry(&self) -> i64 {
        let life = self.opts.wait + self.opts.ticket_lease() + Duration::from_secs(86_400);
        self.reg.clock().now().timestamp() + i64::try_from(life.as_secs()).unwrap_or(i64::MAX / 2)
    }

    /// Rotates our ticket's version; puts it back if someone removed it as stale.
    async fn touch_ticket(&mut self) -> Result<(), AcquireError> {
        let Some(mut ticket) = self.ticket.clone() else {
            return Ok(());
        };
        ticket.version = uuid::Uuid::new_v4().to_string();
        if !self
            .call(store::touch_ticket(
                self.reg,
                self.key,
                &ticket.sk,
                &ticket.version,
            ))
            .await?
        {
            tracing::warn!("our queue ticket was removed as stale; putting it back in its place");
            self.call(store::put_ticket(
                self.reg,
                self.key,
                &ticket,
                self.ticket_expiry(),
            ))
            .await?;
        }
        self.ticket = Some(ticket);
        self.ticket_touched = Instant::now();
        Ok(())
    }

    /// Reads lock and queue, removes stale tickets, reports position changes.
    async fn read_queue(&mut self) -> Result<(), AcquireError> {
        let (lock, tickets) = self.call(store::read_partition(self.reg, self.key)).await?;
        self.queue_read = Instant::now();
        self.mark_seen = lock.queue_mark().map(str::to_string);
        self.set_lock(lock);
        self.apply_queue(tickets).await
    }

    /// Computes our position from the queue as read, removes stale tickets, reports changes.
    async fn apply_queue(&mut self, tickets: Vec<QueueTicket>) -> Result<(), AcquireError> {
        let Some(mine) = self.ticket.as_ref().map(|t| t.sk.clone()) else {
            return Ok(());
        };
        if !tickets.iter().any(|t| t.sk == mine) {
            // Removed as stale by someone (our heartbeats did not get through): back in place.
            if let Some(t) = self.ticket.clone() {
                tracing::warn!("our queue ticket disappeared; putting it back in its place");
                self.call(store::put_ticket(
                    self.reg,
                    self.key,
                    &t,
                    self.ticket_expiry(),
                ))
                .await?;
                self.ticket_touched = Instant::now();
            }
        }
        // Owners that got the lock: the holder, or the last holder of a free lock.
        let had_lock: Vec<String> = match &self.lock {
            LockState::Held(r) => vec![r.info.owner.clone()],
            LockState::Free(f) => f.last_owner.iter().cloned().collect(),
            LockState::Absent => vec![],
        };
        let had_lock: Vec<&str> = had_lock.iter().map(String::as_str).collect();
        let mut view = QueueView::build(
            tickets,
            Some(&mine),
            &had_lock,
            &mut self.ticket_watch,
            Instant::now(),
        );
        for t in std::mem::take(&mut view.leftover) {
            tracing::info!(
                "removing the queue ticket of {}: it already got the lock (its own removal failed)",
                t.info.describe()
            );
            // Conditional on the version seen; best effort: the next reader tries again. (An
            // operator who reuses an `--owner` right after releasing may see its new ticket
            // removed once; it puts it back in its place, see above.)
            match self
                .call(store::delete_ticket(
                    self.reg,
                    self.key,
                    &t.sk,
                    Some(&t.version),
                ))
                .await
            {
                Ok(_) => {}
                Err(AcquireError::Registry(e)) => {
                    tracing::debug!("could not remove a leftover queue ticket: {e}")
                }
                Err(e) => return Err(e),
            }
        }
        for t in std::mem::take(&mut view.stale) {
            tracing::warn!(
                "skipping the queue ticket of {}: no sign of life for a whole ticket lease",
                t.info.describe()
            );
            // Conditional on the version seen: a waiter that just came back keeps its place.
            let _ = self
                .call(store::delete_ticket(
                    self.reg,
                    self.key,
                    &t.sk,
                    Some(&t.version),
                ))
                .await?;
        }
        // A waiter whose runner vanished without a word (a lost machine, SIGKILL) no longer
        // renews its ticket, but holds up everyone behind it for a whole ticket lease. The
        // waiter right behind the front asks GitHub whether the front's run is over, and if
        // it is, skips it now (the holder's rule, applied to the queue).
        if view.ahead_of(&mine) == Some(1) {
            let front = view.live[0].clone();
            let mut asked = self.front_asked;
            let completed = self.ask_run(&front.info, &mut asked).await?;
            self.front_asked = asked;
            if completed {
                tracing::warn!(
                    "skipping the queue ticket of {}: GitHub says its run is completed",
                    front.info.describe()
                );
                let _ = self
                    .call(store::delete_ticket(
                        self.reg,
                        self.key,
                        &front.sk,
                        Some(&front.version),
                    ))
                    .await?;
                view.live.remove(0);
            }
        }
        if self.opts.on_superseded == OnSuperseded::Skip
            && let Some(by) = self.superseded(&view.live).await?
        {
            return Err(AcquireError::Superseded { by });
        }
        let ahead = view.ahead_of(&mine).unwrap_or(view.live.len());
        if let Some(me) = view.live.iter().find(|t| t.sk == mine) {
            let passed: Vec<HolderInfo> = order::passed_by(&view.live, me)
                .into_iter()
                .filter(|t| self.passed.insert(t.sk.clone()))
                .map(|t| t.info.clone())
                .collect();
            for by in passed {
                (self.on_event)(LockEvent::PassedBy {
                    by,
                    position: ahead + 1,
                });
            }
        }
        if self.ahead != Some(ahead) {
            let holder = self.lock.holder().cloned();
            let frozen = self
                .active_freeze()
                .filter(|_| self.opts.on_freeze == OnFreeze::Wait);
            let event = if let Some(freeze) = frozen {
                // Behind a freeze our place is reported with the freeze, so nobody reads
                // "free, being handed over" while nothing can be handed over.
                let moved = self.frozen.as_ref().is_some_and(|f| f.same_as(&freeze));
                self.frozen = Some(freeze.clone());
                LockEvent::Frozen {
                    freeze,
                    holder,
                    position: ahead + 1,
                    moved,
                }
            } else if self.ahead.is_none() {
                LockEvent::Queued {
                    position: ahead + 1,
                    ahead,
                    holder,
                    eta: None,
                }
            } else {
                LockEvent::PositionChanged {
                    position: ahead + 1,
                    ahead,
                    holder,
                    eta: None,
                }
            };
            self.ahead = Some(ahead);
            (self.on_event)(event);
        }
        Ok(())
    }

    /// The waiter whose commit supersedes ours, if GitHub says one of our ref's rivals is ahead
    /// of us. Each rival commit is asked once (an unknown answer again after
    /// `liveness_interval`); an error or a timeout is "do not skip".
    async fn superseded(
        &mut self,
        live: &[QueueTicket],
    ) -> Result<Option<HolderInfo>, AcquireError> {
        let rivals = order::rivals(live, self.me);
        let (Some(repo), Some(sha)) = (self.me.repository.as_deref(), self.me.sha.as_deref())
        else {
            return Ok(None);
        };
        for rival in &rivals {
            let Some(theirs) = rival.info.sha.as_deref() else {
                continue;
            };
            let fresh = match self.compared.get(theirs) {
                Some((Comparison::Unknown, at)) => at.elapsed() < self.opts.liveness_interval,
                Some(_) => true,
                None => false,
            };
            if fresh {
                continue;
            }
            let ask = tokio::time::timeout(
                Duration::from_secs(10),
                self.liveness.compare(repo, sha, theirs),
            );
            let answer = tokio::select! {
                _ = self.cancel.cancelled() => return Err(AcquireError::Cancelled),
                answer = ask => answer.unwrap_or(Comparison::Unknown),
            };
            tracing::debug!("{theirs} compared with our {sha}: {answer:?}");
            self.compared
                .insert(theirs.to_string(), (answer, Instant::now()));
        }
        let compared = |t: &QueueTicket| {
            t.info
                .sha
                .as_deref()
                .and_then(|s| self.compared.get(s))
                .map_or(Comparison::Unknown, |(c, _)| *c)
        };
        Ok(order::superseded_by(&rivals, compared).map(|t| t.info.clone()))
    }

    /// Runs a registry request unless cancelled first.
    async fn call<T>(
        &self,
        fut: impl Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, AcquireError> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(AcquireError::Cancelled),
            res = fut => res.map_err(AcquireError::Registry),
        }
    }

    /// Sleeps, but never past the deadline, and returns at once on cancellation.
    /// Sleeps `d` whatever the deadline (outage back-off), returning at once on cancellation.
    async fn sleep(&self, d: Duration) -> Result<(), AcquireError> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(AcquireError::Cancelled),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    async fn pause(&self, d: Duration) -> Result<(), AcquireError> {
        let until = (Instant::now() + d).min(self.deadline);
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(AcquireError::Cancelled),
            _ = tokio::time::sleep_until(until) => Ok(()),
        }
    }

    /// Leaves nothing behind: our ticket, and a lock we may have taken without seeing the
    /// answer. Bounded, because it also runs after SIGTERM with the runner's kill coming.
    async fn clean_up(&mut self, gave_up: bool) {
        let (reg, key) = (self.reg, self.key);
        let in_flight = self.in_flight.take().map(|(record, _, _)| record);
        let mut ticket = self.ticket.take();
        // Holding the lock: one quick try now (a healthy registry answers in milliseconds);
        // if it fails or hangs, more tries in the background, so that the holder's work (and
        // the hand-off) does not wait for an attempt timeout. Should the ticket never go,
        // waiters remove it on sight (a ticket of the holder: `QueueView::leftover`).
        if !gave_up && let Some(t) = ticket.take() {
            let removed = tokio::time::timeout(
                Duration::from_secs(1),
                store::delete_ticket(reg, key, &t.sk, None),
            )
            .await;
            if !matches!(removed, Ok(Ok(_))) {
                let (reg, key) = (reg.clone(), key.to_string());
                tokio::spawn(async move { remove_ticket_patiently(&reg, &key, &t.sk).await });
            }
        }
        // Giving up as the head behind a holder that looks dead: leave what we watched for
        // the next waiter (see `record_watch`), so its count does not start from zero.
        let watched = match (self.lock.clone(), self.ahead) {
            (LockState::Held(r), Some(0)) if gave_up && r.info.owner != self.me.owner => {
                let unchanged = self.unchanged(&r);
                let newer = !matches!(&self.watch_recorded, Some((v, d)) if *v == r.version && *d >= unchanged);
                (unchanged >= Duration::from_secs(1) && newer)
                    .then(|| (r.version.clone(), millis(unchanged)))
            }
            _ => None,
        };
        let work = async move {
            if let Some((version, ms)) = watched
                && let Err(e) = store::record_watch(reg, key, &version, ms).await
            {
                tracing::debug!("could not record how long the holder looked dead: {e}");
            }
            if let Some(record) = in_flight {
                let version = uuid::Uuid::new_v4().to_string();
                match store::free_if_version(reg, key, &record, &version, &record.info.owner, None)
                    .await
                {
                    Ok(Write::Done(_)) => {
                        tracing::info!("released the lock taken while cancelling")
                    }
                    Ok(Write::Refused(_)) => {}
                    Err(e) => {
                        tracing::warn!("could not check for a lock taken while cancelling: {e}")
                    }
                }
            }
            if let Some(t) = ticket
                && let Err(e) = store::delete_ticket(reg, key, &t.sk, None).await
            {
                tracing::warn!("could not remove our queue ticket (it expires on its own): {e}");
            }
        };
        if tokio::time::timeout(Duration::from_secs(3), work)
            .await
            .is_err()
        {
            tracing::warn!("leaving the queue timed out; our ticket goes stale on its own");
        }
    }
}

/// Removes our ticket after we got the lock and the first try failed: a few more a second
/// apart (each bounded by the registry's own timeouts), then it is left to the waiters.
async fn remove_ticket_patiently(reg: &Registry, key: &str, sk: &str) {
    for attempt in 1..=4 {
        match store::delete_ticket(reg, key, sk, None).await {
            Ok(_) => return,
            Err(e) if attempt < 4 => {
                tracing::debug!("could not remove our queue ticket yet (try {attempt}): {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => tracing::warn!(
                "could not remove our queue ticket ({e}); waiters remove it when they see it (it belongs to the lock's holder)"
            ),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `base` scaled by a random factor in [lo, hi): spreads waiters' requests apart.
fn jitter(base: Duration, lo: f64, hi: f64) -> Duration {
    base.mul_f64(rand::rng().random_range(lo..hi))
}
