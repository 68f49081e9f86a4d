//! What the main step learns on the way, from the lock's and the monitor's callbacks and from
//! its own earlier parts, that a later part needs: one documented record instead of flags.

use crate::github::Deployments;
use crate::stack::Outcome;
use crate::summary::LockSummary;

/// Written by the callbacks and the story, read by the later parts of the story.
#[derive(Default)]
pub(super) struct Ledger {
    /// The first error of the step, for the Slack card when no stack operation ran.
    pub(super) first_error: Option<String>,
    /// `estimated-duration-seconds` was written (once, at the first estimate).
    pub(super) predicted: bool,
    /// The slower-than-usual warning was given (once).
    pub(super) warned_slow: bool,
    /// The card shows a finished stack operation (or the hand-over): the last card is posted.
    pub(super) reported: bool,
    /// What the job summary says about the lock, and the wait that the history records.
    pub(super) lock_summary: Option<LockSummary>,
    /// The GitHub deployment (`github-deployment: true`) and its ID, until its final status.
    pub(super) deployment: Option<(Deployments, u64)>,
    /// Outputs of the finished stack operation, for the deployment's environment URL.
    pub(super) stack_outputs: Vec<(String, String)>,
    /// The registry proved unreachable: no history record, dead letters to the summary only.
    pub(super) registry_unreachable: bool,
    /// An output or state record could not be written: the step fails at its end.
    pub(super) write_failed: bool,
    /// The deploy guard's section of the job summary (empty when it had nothing to say).
    pub(super) guard_summary: String,
    /// The loss of the lock was reported (error, summary, card): the release says no more.
    pub(super) lock_lost_reported: bool,
    /// The lock record as the heartbeat last wrote it (when its lease runs out).
    pub(super) last_heartbeat: Option<crate::lock::LockRecord>,
    /// The rollback our CancelUpdateStack started still runs as the step ends (the stack's
    /// status): the lock is not released by the main step.
    pub(super) rollback_running: Option<String>,
}

/// What the step ended with: the `outcome` output, and whether the step fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ending {
    pub(super) outcome: Outcome,
    pub(super) fail: bool,
    /// The monitor gave up: nobody knows whether the operation still runs.
    pub(super) state_unknown: bool,
}

impl Ending {
    pub(super) fn of(outcome: Outcome) -> Self {
        Ending {
            outcome,
            fail: !outcome.is_success(),
            state_unknown: false,
        }
    }
}
