//! The operator CLI: the same binary as the action, with subcommands.
//!
//! Each subcommand lives in its own file and returns a process exit code; the exit codes are
//! part of the interface (scripts branch on them) and are listed in each command's `--help`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub(crate) mod doctor;
pub(crate) mod estimate;
pub(crate) mod history;
pub(crate) mod lock;
pub(crate) mod registry;
pub(crate) mod slack;
pub(crate) mod watch;

/// Coordinates CloudFormation deployments across workflows: a DynamoDB lease lock with a fair
/// queue, live monitoring, Slack and history.
///
/// With no subcommand inside GitHub Actions (GITHUB_ACTIONS=true) it runs the action's main
/// step; started through the `deploy-coordinator-post` path it runs the post step.
#[derive(Debug, Parser)]
#[command(
    name = "deploy-coordinator",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a setup: credentials, registry table, permissions, stack, Slack, GitHub.
    Doctor(doctor::DoctorArgs),
    /// Estimate the remaining time of a stack operation (offline).
    Estimate(estimate::EstimateArgs),
    /// List, export, import, collect or report on deployment history.
    #[command(subcommand)]
    History(history::HistoryCommand),
    /// Inspect, take, release or force-unlock deployment locks.
    #[command(subcommand)]
    Lock(lock::LockCommand),
    /// Manage the registry table (locks, queue, history, dead letters).
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Slack dead letters: list and resend.
    #[command(subcommand)]
    Slack(slack::SlackCommand),
    /// Follow a stack's current or next operation live in the terminal.
    Watch(watch::WatchArgs),
}

/// Runs a parsed CLI command to completion.
pub async fn run(command: Command) -> ExitCode {
    match command {
        Command::Doctor(args) => doctor::run(args).await,
        Command::Estimate(args) => estimate::run(args).await,
        Command::History(cmd) => history::run(cmd).await,
        Command::Lock(cmd) => lock::run(cmd).await,
        Command::Registry(cmd) => registry::run(cmd).await,
        Command::Slack(cmd) => slack::run(cmd).await,
        Command::Watch(args) => watch::run(args).await,
    }
}
