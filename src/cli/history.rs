//! `history …` subcommands: list, export, import, collect, report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use clap::{Args, Subcommand};

use super::estimate::{Failure, load_history};
use super::registry::registry_exit_code;
use crate::estimate::fmt_secs;
use crate::history::events::records_from_history;
use crate::history::store;
use crate::history::{HistoryRecord, StackEvent};
use crate::registry::Registry;
use crate::stack::ErrorKind;

const EXIT_CODES: &str = "Exit codes:
  0    success
  2    invalid arguments
  65   the file is malformed (the message gives line and column, or the record, and what was
       expected); nothing was imported
  66   the file cannot be read
  73   the report cannot be written
  69   DynamoDB or CloudFormation unreachable (network, 5xx, throttling after retries)
  77   AWS credentials expired
  78   registry misconfigured (table missing, access denied), the stack does not exist, or an
       item in the table cannot be read (the message says which)";

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// List a stack's past operations, newest first: when, how long, outcome, resources.
    #[command(after_long_help = EXIT_CODES)]
    List {
        #[command(flatten)]
        target: Target,
        /// At most this many records.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print the records as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print all of a stack's records as a JSON array (oldest first): the input of
    /// `history import` and `estimate --history`.
    #[command(after_long_help = EXIT_CODES)]
    Export {
        #[command(flatten)]
        target: Target,
    },
    /// Store records from a JSON array (as `history export` prints). Every record is
    /// validated before anything is written; storing a record again replaces it.
    #[command(after_long_help = EXIT_CODES)]
    Import {
        /// Registry table.
        #[arg(long, default_value = "deployment-registry")]
        table: String,
        /// AWS region (default: the environment's, e.g. AWS_REGION).
        #[arg(long)]
        region: Option<String>,
        /// How long imported records stay (TTL), e.g. 365d, 90d.
        #[arg(long, default_value = "365d", value_parser = parse_duration)]
        ttl: Duration,
        /// The file to import.
        file: PathBuf,
    },
    /// Build records from a stack's past events in CloudFormation (DescribeStackEvents keeps
    /// about 90 days), so estimates start with history instead of none. Stores them in the
    /// registry table, or prints them with --print.
    #[command(after_long_help = EXIT_CODES)]
    Collect {
        /// Stack name or ID.
        #[arg(long)]
        stack: String,
        /// Registry table.
        #[arg(long, default_value = "deployment-registry")]
        table: String,
        /// AWS region (default: the environment's, e.g. AWS_REGION).
        #[arg(long)]
        region: Option<String>,
        /// Print the records as a JSON array instead of storing them.
        #[arg(long)]
        print: bool,
        /// How long stored records stay (TTL).
        #[arg(long, default_value = "365d", value_parser = parse_duration)]
        ttl: Duration,
    },
    /// Write one self-contained HTML file (inline SVG charts, no scripts, nothing fetched)
    /// with, per stack: deployments over time (duration, outcome, the estimate's range), the
    /// slowest resources and their trend, estimated against actual duration, and lock waits.
    #[command(after_long_help = EXIT_CODES)]
    Report {
        /// Registry table to read the records from (every stack's unless --stack).
        #[arg(
            long,
            default_value = "deployment-registry",
            conflicts_with = "history"
        )]
        table: String,
        /// Only this stack (repeat for several).
        #[arg(long)]
        stack: Vec<String>,
        /// AWS region (default: the environment's, e.g. AWS_REGION).
        #[arg(long, conflicts_with = "history")]
        region: Option<String>,
        /// Read the records from a file instead of the table (as `history export` prints).
        #[arg(long, value_name = "FILE")]
        history: Option<PathBuf>,
        /// The HTML file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// Table, region and stack.
#[derive(Debug, Args)]
pub struct Target {
    /// Registry table.
    #[arg(long, default_value = "deployment-registry")]
    table: String,
    /// Stack name.
    #[arg(long)]
    stack: String,
    /// AWS region (default: the environment's, e.g. AWS_REGION).
    #[arg(long)]
    region: Option<String>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text).map_err(|e| e.to_string())
}

async fn registry(table: &str, region: Option<&str>) -> Registry {
    let config = crate::aws::load(region).await;
    Registry::new(aws_sdk_dynamodb::Client::new(&config), table)
}

fn registry_failure(e: &crate::registry::RegistryError) -> Failure {
    Failure(registry_exit_code(e), anyhow::anyhow!("{e}"))
}

pub(crate) async fn run(cmd: HistoryCommand) -> ExitCode {
    let title = match &cmd {
        HistoryCommand::List { .. } => "Cannot list history",
        HistoryCommand::Export { .. } => "Cannot export history",
        HistoryCommand::Import { .. } => "Cannot import history",
        HistoryCommand::Collect { .. } => "Cannot collect history",
        HistoryCommand::Report { .. } => "Cannot make the history report",
    };
    match execute(cmd).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, e)) => {
            crate::action::log::error(title, &format!("{e:#}"));
            ExitCode::from(code)
        }
    }
}

fn print_json(records: &[HistoryRecord]) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(records)
        .context("cannot print the records")
        .map_err(|e| Failure(1, e))?;
    println!("{text}");
    Ok(())
}

async fn execute(cmd: HistoryCommand) -> Result<(), Failure> {
    match cmd {
        HistoryCommand::List {
            target,
            limit,
            json,
        } => {
            let reg = registry(&target.table, target.region.as_deref()).await;
            let records = store::list(&reg, &target.stack, Some(limit))
                .await
                .map_err(|e| registry_failure(&e))?;
            if json {
                return print_json(&records);
            }
            if records.is_empty() {
                println!("no history for stack {}", target.stack);
                return Ok(());
            }
            println!(
                "{:<20}  {:<8}  {:<11}  {:>9}  {:>9}  correlation id",
                "finished (UTC)", "op", "outcome", "duration", "resources"
            );
            for r in &records {
                println!(
                    "{:<20}  {:<8}  {:<11}  {:>9}  {:>9}  {}",
                    r.finished_at.format("%Y-%m-%d %H:%M:%S"),
                    r.operation.as_str(),
                    r.outcome.as_str(),
                    fmt_secs(r.seconds()),
                    r.resources.len(),
                    r.correlation_id
                );
            }
            Ok(())
        }
        HistoryCommand::Export { target } => {
            let reg = registry(&target.table, target.region.as_deref()).await;
            let mut records = store::list(&reg, &target.stack, None)
                .await
                .map_err(|e| registry_failure(&e))?;
            records.reverse();
            print_json(&records)
        }
        HistoryCommand::Import {
            table,
            region,
            ttl,
            file,
        } => {
            // Validate the whole file before writing anything.
            let records = load_history(&file)?;
            let reg = registry(&table, region.as_deref()).await;
            match store::import(&reg, &records, ttl).await {
                Ok(n) => {
                    println!("imported {n} record(s) into {table}");
                    Ok(())
                }
                Err((stored, e)) => Err(Failure(
                    registry_exit_code(&e),
                    anyhow::anyhow!(
                        "{e} (after {stored} of {} record(s) were stored)",
                        records.len()
                    ),
                )),
            }
        }
        HistoryCommand::Collect {
            stack,
            table,
            region,
            print,
            ttl,
        } => {
            let config = crate::aws::load(region.as_deref()).await;
            let cfn = crate::stack::StackClient::from_conf(&config);
            let events: Vec<StackEvent> = cfn
                .all_events(&stack)
                .await
                .map_err(|e| {
                    let code = match e.kind {
                        ErrorKind::ExpiredToken => 77,
                        ErrorKind::Validation | ErrorKind::NotFound | ErrorKind::AccessDenied => 78,
                        _ => 69,
                    };
                    Failure(code, anyhow::anyhow!("stack {stack}: {e}"))
                })?
                .iter()
                .map(crate::history::StackEvent::from)
                .collect();
            let records = records_from_history(&events, "cfn-");
            if print {
                return print_json(&records);
            }
            let reg = Registry::new(aws_sdk_dynamodb::Client::new(&config), &table);
            let n = store::import(&reg, &records, ttl)
                .await
                .map_err(|(_, e)| registry_failure(&e))?;
            println!(
                "collected {n} finished operation(s) of {stack} from {} event(s) into {table}",
                events.len()
            );
            Ok(())
        }
        HistoryCommand::Report {
            table,
            stack,
            region,
            history,
            out,
        } => {
            let (mut records, source) = match &history {
                Some(file) => (load_history(file)?, format!("file {}", file.display())),
                None => {
                    let reg = registry(&table, region.as_deref()).await;
                    let mut records = Vec::new();
                    if stack.is_empty() {
                        records = store::list_all(&reg)
                            .await
                            .map_err(|e| registry_failure(&e))?;
                    }
                    for s in &stack {
                        let mine = store::list(&reg, s, None).await;
                        records.extend(mine.map_err(|e| registry_failure(&e))?);
                    }
                    (records, format!("table {table}"))
                }
            };
            if !stack.is_empty() {
                records.retain(|r| stack.contains(&r.stack));
            }
            if records.is_empty() {
                crate::action::log::warning(
                    "Empty history report",
                    &format!("no history records in {source} for the stack(s) asked"),
                );
            }
            let options = crate::history::page::PageOptions {
                source,
                generated_at: Utc::now(),
            };
            let html = crate::history::page::render(&records, &options);
            std::fs::write(&out, &html)
                .with_context(|| format!("cannot write {}", out.display()))
                .map_err(|e| Failure(73, e))?;
            let stacks: std::collections::BTreeSet<&str> =
                records.iter().map(|r| r.stack.as_str()).collect();
            println!(
                "wrote {} ({} bytes): {} record(s) of {} stack(s)",
                out.display(),
                html.len(),
                records.len(),
                stacks.len()
            );
            Ok(())
        }
    }
}
