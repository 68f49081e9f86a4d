//! The deployment lock: a DynamoDB lease lock with a FIFO queue (DESIGN.md, "The lock").
//!
//! - [`acquire`]: take it (queueing), [`spawn_heartbeat`]: keep it, [`release`]: give it back;
//! - [`status`], [`force_unlock`], [`freeze`] and [`unfreeze`] for operators;
//! - [`order`]: the queue's policies (priority, supersede), pure.
//!
//! Correctness rests on three rules: every write of the lock item is conditional (absent,
//! version seen, or owner); staleness is measured on the waiter's own monotonic clock (or
//! GitHub says the holder's run is completed); the lock item is never deleted, so the fence
//! keeps growing.

mod acquire;
pub(crate) mod clock;
pub(crate) mod freeze;
mod heartbeat;
pub mod liveness;
mod ops;
pub mod order;
pub(crate) mod record;
pub(crate) mod staleness;
mod store;

pub use acquire::{
    AcquireError, AcquireOptions, Acquired, LockEvent, StaleReason, acquire, leave_queue,
};
pub use clock::WallClock;
pub use freeze::{Freeze, OnFreeze};
pub use heartbeat::{Heartbeat, LostLock, spawn_heartbeat, spawn_heartbeat_since};
pub use liveness::{NoLiveness, RunLiveness, RunState};
pub use ops::{
    AuditEntry, ForceUnlocked, Frozen, LockStatus, ReleaseOutcome, force_unlock, force_unlock_all,
    freeze, list, note_cancelling, release, status, unfreeze,
};
pub use order::{Comparison, OnSuperseded, Priority};
pub use record::{FreeLock, HolderInfo, LockRecord, LockState, QueueTicket, owner_for};
