//! Entry point: one binary, three faces.
//!
//! - started through a path whose name ends in `-post` (the image's
//!   `/usr/local/bin/deploy-coordinator-post` link): the action's post step, because the
//!   runner's `post-entrypoint` is one path and takes no arguments;
//! - with a subcommand: the operator CLI;
//! - with no arguments inside GitHub Actions: the action's main step.

use std::process::ExitCode;

use clap::Parser;
use deploy_coordinator::action::log::{self, Target};
use deploy_coordinator::{cli, context::RunContext, steps};

fn main() -> ExitCode {
    let ctx = RunContext::from_process_env();
    let target = if ctx.in_actions {
        Target::GitHub
    } else {
        Target::Terminal
    };
    log::init(target);
    log::init_tracing(target, ctx.debug);

    let argv0 = std::env::args_os().next().unwrap_or_default();
    let is_post = std::path::Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with("-post"));

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error(
                "deploy-coordinator could not start",
                &format!("cannot start the async runtime: {e}"),
            );
            return ExitCode::FAILURE;
        }
    };

    if is_post {
        return runtime.block_on(steps::post::run(ctx));
    }
    let args = cli::Cli::parse();
    match args.command {
        Some(command) => runtime.block_on(cli::run(command)),
        None if ctx.in_actions => runtime.block_on(steps::main::run(ctx)),
        None => {
            eprintln!(
                "deploy-coordinator: no command given. Run `deploy-coordinator --help` for the operator \
                 commands; the action's main step runs only inside GitHub Actions (GITHUB_ACTIONS=true)."
            );
            ExitCode::from(2)
        }
    }
}
