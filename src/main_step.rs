//! The action's main step, as one story.
//!
//! 1. Read and check every input; mask the secrets before anything is printed.
//! 2. Name the deployment (correlation ID) and tell the post step about it.
//! 3. Take the lock, queueing fairly behind other runs; or, when the registry is unreachable
//!    and the user allows it, fall back to CloudFormation-only coordination.
//! 4. Wait while the stack is busy with an operation started outside the lock.
//! 5. Deploy or follow the stack (modes deploy and monitor), or hand over to the job's later
//!    steps (mode lock).
//! 6. Write outputs and the job summary; release the lock we no longer need.
//!
//! Whatever happens after the lock is taken, the post step releases it: its identity is saved
//! to the state file the moment we have it.

use std::process::ExitCode;
use std::time::Instant;

use chrono::Utc;
use tracing::{Instrument, info, info_span};

use crate::action::{FileCommands, Inputs, log};
use crate::config::{self, Config};
use crate::context::RunContext;
use crate::correlation;
use crate::outputs::state;

/// Runs the main step with this process's environment.
pub async fn run(ctx: RunContext) -> ExitCode {
    let files = FileCommands::from_env(&|name| std::env::var(name).ok());
    let inputs = Inputs::from_process_env();
    // Before anything else is printed: the runner only masks what it was told about.
    config::mask_secrets(&inputs);

    let config = match Config::from_inputs(&inputs, &ctx.workspace) {
        Ok(config) => config,
        Err(e) => {
            log::error(
                &format!("Invalid input '{}'", e.input),
                &format!("{e}. Nothing was locked or deployed."),
            );
            return ExitCode::FAILURE;
        }
    };
    let cancel = match crate::shutdown::install() {
        Ok(token) => token,
        Err(e) => {
            log::error(
                "deploy-coordinator could not start",
                &format!("cannot install signal handlers: {e}"),
            );
            return ExitCode::FAILURE;
        }
    };

    let started = Utc::now();
    let correlation_id = config
        .correlation_id
        .clone()
        .unwrap_or_else(|| correlation::generate(started, Some(&ctx.sha)));
    let span = info_span!("deploy", cid = %correlation_id);
    let step = Step {
        files,
        ctx,
        config,
        correlation_id,
        started: Instant::now(),
        cancel,
        write_failed: false.into(),
    };
    step.run(started).instrument(span).await
}

struct Step {
    files: FileCommands,
    ctx: RunContext,
    config: Config,
    correlation_id: String,
    started: Instant,
    cancel: tokio_util::sync::CancellationToken,
    write_failed: std::sync::atomic::AtomicBool,
}

impl Step {
    async fn run(&self, started: chrono::DateTime<Utc>) -> ExitCode {
        let config = &self.config;
        info!(
            "{} stack {} (lock key {:?}, registry {})",
            match config.mode {
                config::Mode::Deploy => "deploying",
                config::Mode::Monitor => "monitoring",
                config::Mode::Lock => "locking",
            },
            config.stack_name,
            config.lock_key,
            config.registry_table
        );
        self.output("correlation-id", &self.correlation_id);
        self.state(state::CORRELATION_ID, &self.correlation_id);
        self.state(state::STARTED_AT, &started.to_rfc3339());
        self.state(state::MODE, config.mode.as_str());

        let code = ExitCode::SUCCESS;
        if self.write_failed.load(std::sync::atomic::Ordering::Relaxed) {
            log::error(
                "Cannot write the runner's files",
                "an output or state record could not be written: see the messages above",
            );
            return ExitCode::FAILURE;
        }
        code
    }

    fn output(&self, name: &str, value: &str) {
        if let Err(e) = self.files.set_output(name, value) {
            log::error("Cannot write a step output", &e.to_string());
            self.write_failed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn state(&self, name: &str, value: &str) {
        if let Err(e) = self.files.save_state(name, value) {
            log::error("Cannot save state for the post step", &e.to_string());
            self.write_failed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
