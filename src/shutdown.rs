//! Cancellation by SIGINT and SIGTERM.
//!
//! In its container the binary is PID 1, and PID 1 ignores every signal it has no handler for:
//! without these handlers a cancelled job would wait for the runner's SIGKILL, and the lock
//! would stay taken. The runner sends SIGINT, then SIGTERM 7.5 s later, then kills 2.5 s after
//! that; so the first signal must make every wait stop at once and leave time to undo what the
//! step holds (leave the queue, release the lock).

use tokio_util::sync::CancellationToken;

/// Returns a token that is cancelled on the first SIGINT or SIGTERM. A second signal is not
/// needed: once cancelled, the step only runs its bounded clean-up.
pub(crate) fn install() -> std::io::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::warn!("received {name}: stopping and releasing what this step holds");
        cancel.cancel();
    });
    Ok(token)
}
