//! `doctor`: check a setup before the first deployment (or after a change), with the same
//! settings as the action. Secrets come from environment variables named on the command line,
//! never from argv (visible in `ps`, shell histories and CI logs).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::slack::secret_from_env;
use crate::action::log;
use crate::config::{self, Mode, SlackTarget};
use crate::doctor::{self, GitHub, Settings};

const EXIT_CODES: &str =
    "Checks (one line each: PASS|WARN|FAIL|SKIP  <name>  <detail>, then `fix:`):
  aws-region, aws-credentials (and how long they stay valid), registry-table (exists, ACTIVE,
  keys pk/sk), registry-ttl (on expires_at), registry-permissions (GetItem, Query, and PutItem,
  UpdateItem, DeleteItem proved with conditions designed to fail), lock (who holds it),
  stack (exists, state for the mode), stack-permissions, slack-auth + slack-channel or
  slack-webhook (when configured), github (the token reads the run).

Exit codes:
  0    no check failed (warnings allowed)
  1    at least one check failed
  2    invalid arguments, or an environment variable named is missing";

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Deploy,
    Monitor,
    Lock,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Deploy => Mode::Deploy,
            ModeArg::Monitor => Mode::Monitor,
            ModeArg::Lock => Mode::Lock,
        }
    }
}

#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct DoctorArgs {
    /// The stack the action deploys or watches (`stack-name`).
    #[arg(long)]
    stack: String,
    /// The action's mode: decides which permissions and stack states matter.
    #[arg(long, value_enum, default_value = "deploy")]
    mode: ModeArg,
    /// The registry table (`registry-table`).
    #[arg(long, default_value = "deployment-registry")]
    table: String,
    /// The lock key (`lock-key`); default: --environment, else the stack name.
    #[arg(long)]
    lock_key: Option<String>,
    /// The `environment` input (the default lock key).
    #[arg(long)]
    environment: Option<String>,
    /// AWS region (default: the environment's, e.g. AWS_REGION).
    #[arg(long)]
    region: Option<String>,
    /// Name of the environment variable holding the Slack bot token (xoxb-…).
    #[arg(
        long,
        value_name = "NAME",
        requires = "slack_channel",
        conflicts_with = "slack_webhook_env"
    )]
    slack_token_env: Option<String>,
    /// The Slack channel (`slack-channel`), an ID like C0123456789 for the membership check.
    #[arg(long, requires = "slack_token_env")]
    slack_channel: Option<String>,
    /// Name of the environment variable holding the Slack incoming webhook URL.
    #[arg(long, value_name = "NAME")]
    slack_webhook_env: Option<String>,
    /// Slack API base URL (`slack-api-url`).
    #[arg(long, default_value = "https://slack.com/api")]
    slack_api_url: String,
    /// Name of the environment variable holding the GitHub token.
    #[arg(long, value_name = "NAME", default_value = "GITHUB_TOKEN")]
    github_token_env: String,
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    github_api_url: String,
    /// The repository whose run the token should read (owner/name).
    #[arg(long, env = "GITHUB_REPOSITORY")]
    repository: Option<String>,
    #[arg(long, env = "GITHUB_RUN_ID")]
    run_id: Option<u64>,
    #[arg(long, env = "GITHUB_RUN_ATTEMPT")]
    run_attempt: Option<u32>,
    /// How long each probe may take.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    timeout: Duration,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text).map_err(|e| e.to_string())
}

fn invalid(message: &str) -> ExitCode {
    log::error("Invalid arguments", message);
    ExitCode::from(2)
}

/// Turns the arguments into the doctor's settings, or the exit code of a usage error.
fn settings(args: DoctorArgs) -> Result<(Settings, bool), ExitCode> {
    config::validate_stack_name(&args.stack).map_err(|e| invalid(&e.to_string()))?;
    config::validate_table_name(&args.table).map_err(|e| invalid(&e.to_string()))?;
    let lock_key = args
        .lock_key
        .or(args.environment)
        .unwrap_or_else(|| args.stack.clone());
    config::validate_lock_key(&lock_key).map_err(|e| invalid(&e.to_string()))?;
    let slack = match (&args.slack_token_env, &args.slack_webhook_env) {
        (Some(name), _) => SlackTarget::Bot {
            token: secret_from_env(name).ok_or_else(|| missing_env(name))?,
            channel: args.slack_channel.unwrap_or_default(),
        },
        (None, Some(name)) => SlackTarget::Webhook {
            url: secret_from_env(name).ok_or_else(|| missing_env(name))?,
        },
        (None, None) => SlackTarget::None,
    };
    let github = GitHub {
        api_url: args.github_api_url,
        token: secret_from_env(&args.github_token_env),
        repository: args.repository.filter(|r| !r.trim().is_empty()),
        run_id: args.run_id,
        run_attempt: args.run_attempt,
    };
    Ok((
        Settings {
            stack: args.stack,
            mode: args.mode.into(),
            table: args.table,
            lock_key,
            region: args.region,
            slack,
            slack_api_url: args.slack_api_url.trim_end_matches('/').to_string(),
            github,
            probe_timeout: args.timeout.max(Duration::from_millis(100)),
        },
        args.json,
    ))
}

fn missing_env(name: &str) -> ExitCode {
    invalid(&format!("environment variable {name} is not set or empty"))
}

pub(crate) async fn run(args: DoctorArgs) -> ExitCode {
    let (settings, json) = match settings(args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let report = doctor::run(&settings).await;
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
