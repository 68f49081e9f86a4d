//! Is the holder's GitHub run still going? The second staleness rule: a lock whose run is
//! completed can be taken over at once instead of after a whole lease.

use std::future::Future;
use std::pin::Pin;

use super::order::Comparison;

/// What the GitHub API says about a run attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// `status == "completed"`: the run cannot release its lock any more.
    Completed,
    Running,
    /// Any error, 404 (e.g. another repository the token cannot read), rate limiting: the
    /// lease decides. Never treated as completed.
    Unknown,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a waiter asks GitHub: whether a run attempt is completed, and (queue policies,
/// [`super::order`]) how two commits of a repository compare. A boxed future keeps the trait
/// usable as `&dyn RunLiveness` without an `async-trait` dependency.
pub trait RunLiveness: Send + Sync {
    fn run_state<'a>(
        &'a self,
        repository: &'a str,
        run_id: u64,
        attempt: u32,
    ) -> BoxFuture<'a, RunState>;

    /// `head` compared with `base` (`GET /repos/{repository}/compare/{base}...{head}`). Without
    /// GitHub access: unknown, so nobody is skipped.
    fn compare<'a>(
        &'a self,
        _repository: &'a str,
        _base: &'a str,
        _head: &'a str,
    ) -> BoxFuture<'a, Comparison> {
        Box::pin(async { Comparison::Unknown })
    }
}

/// No GitHub access (no token, or outside GitHub): every run is `Unknown`, the lease decides.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLiveness;

impl RunLiveness for NoLiveness {
    fn run_state<'a>(&'a self, _: &'a str, _: u64, _: u32) -> BoxFuture<'a, RunState> {
        Box::pin(async { RunState::Unknown })
    }
}
