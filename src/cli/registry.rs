//! `registry …` subcommands.

use std::process::ExitCode;

use clap::Subcommand;

use crate::registry::{Created, RegistryError, create_table};

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Create the registry table: partition key `pk` and sort key `sk` (strings), on-demand
    /// capacity, TTL on `expires_at`. Waits until the table is ACTIVE. Safe to run again: an
    /// existing table is left as it is.
    ///
    /// Exit codes: 0 created or already there; 69 DynamoDB unreachable; 77 credentials
    /// expired; 78 not allowed or invalid (the message says what to change).
    #[command(verbatim_doc_comment)]
    Create {
        /// Table name.
        #[arg(long, default_value = "deployment-registry")]
        table: String,
        /// AWS region (default: the environment's, e.g. AWS_REGION).
        #[arg(long)]
        region: Option<String>,
    },
}

pub(crate) async fn run(cmd: RegistryCommand) -> ExitCode {
    match cmd {
        RegistryCommand::Create { table, region } => {
            let config = crate::aws::load(region.as_deref()).await;
            let client = aws_sdk_dynamodb::Client::new(&config);
            match create_table(&client, &table).await {
                Ok(Created::Created) => {
                    println!("created table {table} (pk/sk, on-demand, TTL on expires_at)");
                    ExitCode::SUCCESS
                }
                Ok(Created::AlreadyExisted) => {
                    println!("table {table} already exists: left as it is");
                    ExitCode::SUCCESS
                }
                Err(e) => registry_failure("Cannot create the registry table", &e),
            }
        }
    }
}

/// Prints a registry error as an annotation and maps it to the documented exit code.
pub(crate) fn registry_failure(title: &str, e: &RegistryError) -> ExitCode {
    crate::action::log::error(title, &e.to_string());
    ExitCode::from(registry_exit_code(e))
}

pub(crate) fn registry_exit_code(e: &RegistryError) -> u8 {
    match e {
        RegistryError::Unavailable { .. } => 69,
        RegistryError::ExpiredCredentials { .. } => 77,
        RegistryError::Misconfigured { .. } | RegistryError::Corrupt { .. } => 78,
    }
}
