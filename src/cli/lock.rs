//! `lock …` subcommands (being written).

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Show who holds a lock and who is queued.
    Status {
        #[arg(long)]
        table: String,
    },
}

pub async fn run(_cmd: LockCommand) -> ExitCode {
    ExitCode::from(2)
}
