//! Cancellation by SIGINT and SIGTERM, and the time the runner leaves after it.
//!
//! In its container the binary is PID 1, and PID 1 ignores every signal it has no handler for:
//! without these handlers a cancelled job would wait for the runner's SIGKILL, and the lock
//! would stay taken. The runner sends SIGINT, then SIGTERM 7.5 s later, then kills the docker
//! CLI 2.5 s after that (`../shared/reference/github-actions-contract.md`); so the first signal
//! must make every wait stop at once and leave time to undo what the step holds (leave the
//! queue, release the lock). What may still run after the first signal (following the
//! rollback `on-cancel: cancel-update` started) is measured by [`Signalled`], pure.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// From the runner's SIGINT to its SIGTERM.
pub(crate) const TERM_AFTER_INT: Duration = Duration::from_millis(7_500);
/// From the runner's SIGTERM to the kill of the docker CLI (and so of the container).
pub(crate) const KILL_AFTER_TERM: Duration = Duration::from_millis(2_500);
/// What the step keeps for its last words once it stops following a rollback: the stack read
/// once more, the history record, the release, outputs, state, summary and the Slack flush.
/// Each of those is fast (milliseconds) when its service answers; Slack gets what is left.
pub(crate) const WIND_DOWN: Duration = Duration::from_millis(2_000);
/// Kept back from the Slack flush so that the `outcome` output is written before the kill.
const LAST_WRITE: Duration = Duration::from_millis(500);

/// The first signal of a cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    /// How long after this signal, when it came first, the runner kills the step: a SIGINT
    /// leaves the whole sequence; a SIGTERM first (someone ran `docker stop`, or a runner that
    /// skips SIGINT) leaves only its own 2.5 s.
    pub(crate) fn until_kill(self) -> Duration {
        match self {
            Signal::Interrupt => TERM_AFTER_INT + KILL_AFTER_TERM,
            Signal::Terminate => KILL_AFTER_TERM,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

/// When the first signal came, and which: the arithmetic of what is left (pure; `now` is
/// given, on the monotonic clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Signalled {
    pub(crate) signal: Signal,
    pub(crate) at: Instant,
}

impl Signalled {
    /// Time left before the runner's kill.
    pub(crate) fn left(&self, now: Instant) -> Duration {
        self.signal
            .until_kill()
            .saturating_sub(now.saturating_duration_since(self.at))
    }

    /// How much longer a rollback may be followed: what is left, less the wind-down.
    pub(crate) fn follow_for(&self, now: Instant) -> Duration {
        self.left(now).saturating_sub(WIND_DOWN)
    }

    /// How long the Slack flush may take now, at most `usual`: what is left, less the time to
    /// write the last output.
    pub(crate) fn flush_within(&self, now: Instant, usual: Duration) -> Duration {
        self.left(now).saturating_sub(LAST_WRITE).min(usual)
    }
}

/// The cancellation of the process: a token cancelled on the first SIGINT or SIGTERM, and
/// when that was.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown {
    token: CancellationToken,
    first: Arc<OnceLock<Signalled>>,
}

impl Shutdown {
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The first signal; `None` while none came.
    pub(crate) fn signalled(&self) -> Option<Signalled> {
        self.first.get().copied()
    }
}

/// Installs the handlers. A second signal is not needed: once cancelled, the step only runs
/// its bounded clean-up.
pub(crate) fn install() -> std::io::Result<Shutdown> {
    use tokio::signal::unix::{SignalKind, signal};
    let shutdown = Shutdown {
        token: CancellationToken::new(),
        first: Arc::new(OnceLock::new()),
    };
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let (cancel, first) = (shutdown.token.clone(), shutdown.first.clone());
    tokio::spawn(async move {
        let signal = tokio::select! {
            _ = interrupt.recv() => Signal::Interrupt,
            _ = terminate.recv() => Signal::Terminate,
        };
        // Before the token: whoever wakes up on it finds the time already recorded.
        let _ = first.set(Signalled {
            signal,
            at: Instant::now(),
        });
        tracing::warn!(
            "received {}: stopping and releasing what this step holds",
            signal.name()
        );
        cancel.cancel();
    });
    Ok(shutdown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(signal: Signal, elapsed_ms: u64) -> (Signalled, Instant) {
        let at = Instant::now();
        (
            Signalled { signal, at },
            at + Duration::from_millis(elapsed_ms),
        )
    }

    #[test]
    fn a_sigint_leaves_ten_seconds_and_following_stops_two_before_the_kill() {
        let (s, now) = after(Signal::Interrupt, 0);
        assert_eq!(s.left(now), Duration::from_secs(10));
        assert_eq!(s.follow_for(now), Duration::from_secs(8));
        let (s, now) = after(Signal::Interrupt, 3_000);
        assert_eq!(s.follow_for(now), Duration::from_secs(5));
        // Past the point where following must stop: nothing more, never negative.
        let (s, now) = after(Signal::Interrupt, 8_500);
        assert_eq!(s.follow_for(now), Duration::ZERO);
        assert_eq!(s.left(now), Duration::from_millis(1_500));
        let (s, now) = after(Signal::Interrupt, 12_000);
        assert_eq!(s.left(now), Duration::ZERO);
    }

    #[test]
    fn a_sigterm_first_leaves_only_its_own_two_and_a_half_seconds() {
        let (s, now) = after(Signal::Terminate, 0);
        assert_eq!(s.left(now), Duration::from_millis(2_500));
        assert_eq!(s.follow_for(now), Duration::from_millis(500));
        let (s, now) = after(Signal::Terminate, 1_000);
        assert_eq!(s.follow_for(now), Duration::ZERO);
    }

    #[test]
    fn slack_gets_what_is_left_before_the_last_write_and_never_more_than_usual() {
        let usual = Duration::from_secs(3);
        let (s, now) = after(Signal::Interrupt, 100);
        assert_eq!(s.flush_within(now, usual), usual);
        let (s, now) = after(Signal::Interrupt, 8_200);
        assert_eq!(s.flush_within(now, usual), Duration::from_millis(1_300));
        let (s, now) = after(Signal::Interrupt, 9_800);
        assert_eq!(s.flush_within(now, usual), Duration::ZERO);
    }
}
