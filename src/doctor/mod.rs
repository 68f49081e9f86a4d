//! `doctor`: is this setup ready to deploy? Every question a release manager asks before the
//! first run (credentials, the registry table, permissions, the stack, Slack, GitHub) answered
//! with harmless calls, each as PASS / WARN / FAIL (or SKIP) with the fix in one line.
//!
//! - [`report`]: the results and their text/JSON rendering (pure);
//! - [`verdicts`]: from what a probe found to a verdict and a fix (pure);
//! - `probes`: the calls themselves, through the crate's own clients, each with a short
//!   timeout so an unreachable endpoint fails in seconds, not after the SDK's retries.
//!
//! The same checks run from the CLI (`deploy-coordinator doctor`) and at the start of the main
//! step with `preflight: true`, before the lock is touched.

mod probes;
pub(crate) mod report;
pub(crate) mod verdicts;

use std::time::Duration;

pub(crate) use report::{Report, Verdict};

use crate::action::log;
use crate::config::{Config, Mode, SlackTarget};
use crate::context::RunContext;

/// How long one probe may take. Short on purpose: a doctor that hangs on a dead endpoint for
/// the SDK's default 3 attempts of 60 s is no help, and the main step pays it on every run.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(4);

/// What the doctor checks: the same settings as the action.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub stack: String,
    pub mode: Mode,
    pub table: String,
    pub lock_key: String,
    /// The `aws-region` input or `--region`; None means the environment's.
    pub region: Option<String>,
    pub slack: SlackTarget,
    pub slack_api_url: String,
    pub github: GitHub,
    pub probe_timeout: Duration,
}

/// The GitHub side: the token and the run it should be able to read.
#[derive(Clone, Default)]
pub(crate) struct GitHub {
    pub api_url: String,
    pub token: Option<String>,
    pub repository: Option<String>,
    pub run_id: Option<u64>,
    pub run_attempt: Option<u32>,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("api_url", &self.api_url)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("repository", &self.repository)
            .field("run_id", &self.run_id)
            .field("run_attempt", &self.run_attempt)
            .finish()
    }
}

impl GitHub {
    /// The run this process belongs to, from the runner's variables.
    pub(crate) fn from_env(
        api_url: &str,
        token: Option<String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> GitHub {
        let get = |name: &str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        GitHub {
            api_url: api_url.to_string(),
            token,
            repository: get("GITHUB_REPOSITORY"),
            run_id: get("GITHUB_RUN_ID").and_then(|v| v.parse().ok()),
            run_attempt: get("GITHUB_RUN_ATTEMPT").and_then(|v| v.parse().ok()),
        }
    }
}

impl Settings {
    /// The action's inputs, for `preflight: true`.
    pub(crate) fn from_config(config: &Config, github: GitHub) -> Settings {
        Settings {
            stack: config.stack_name.clone(),
            mode: config.mode,
            table: config.registry_table.clone(),
            lock_key: config.lock_key.clone(),
            region: config.aws_region.clone(),
            slack: config.slack.clone(),
            slack_api_url: config.slack_api_url.clone(),
            github,
            probe_timeout: PROBE_TIMEOUT,
        }
    }
}

/// Runs every check and returns the report (never fails: a failure is a check).
pub(crate) async fn run(settings: &Settings) -> Report {
    probes::run(settings).await
}

/// `preflight: true`: runs the checks with the step's inputs, prints the report in a log group,
/// each failure as an error annotation and each warning as a warning annotation, both with
/// their fix. Returns false when a check failed: the step must then stop before the lock.
pub(crate) async fn preflight(config: &Config, ctx: &RunContext) -> bool {
    let github = GitHub::from_env(&ctx.api_url, config.github_token.clone(), &|name| {
        std::env::var(name).ok()
    });
    let report = run(&Settings::from_config(config, github)).await;
    {
        let _group = log::group("Preflight checks (deploy-coordinator doctor)");
        // Already sanitized line by line by `to_text`.
        eprint!("{}", report.to_text());
    }
    for (verdict, level) in [
        (Verdict::Fail, log::Level::Error),
        (Verdict::Warn, log::Level::Warning),
    ] {
        for check in report.with(verdict) {
            let fix = check
                .fix
                .as_deref()
                .map(|f| format!(" Fix: {f}"))
                .unwrap_or_default();
            log::annotate(
                level,
                &format!("Preflight: {}", check.name),
                &format!("{}.{fix}", check.detail),
            );
        }
    }
    if !report.ok() {
        log::error(
            "Preflight failed",
            &format!(
                "{} check(s) failed: nothing was locked or deployed. Run `deploy-coordinator doctor` \
                 with the same settings to check again.",
                report.counts().fail
            ),
        );
    }
    report.ok()
}
