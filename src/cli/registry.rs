//! `registry …` subcommands (being written).

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Create the registry table.
    Create {
        #[arg(long)]
        table: String,
    },
}

pub async fn run(_cmd: RegistryCommand) -> ExitCode {
    ExitCode::from(2)
}
