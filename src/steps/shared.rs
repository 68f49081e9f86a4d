//! What both steps do alike: who we are, the Slack card, the history, the GitHub deployment.
//! The post step starts in a new container with only the state file and the inputs, so each
//! is built from those, never from the main step's memory.

use tracing::warn;

use crate::action::log;
use crate::config::Config;
use crate::context::RunContext;
use crate::github::{DeploymentState, Deployments};
use crate::history::{self, HistoryRecord};
use crate::lock::HolderInfo;
use crate::registry::Registry;
use crate::slack::{Card, Phase};
use crate::stack::Outcome;

/// Who runs this step, as the lock's records and the Slack card show it.
pub(crate) fn holder(config: &Config, correlation_id: &str) -> HolderInfo {
    let mut me = HolderInfo::from_env(correlation_id, &|name| std::env::var(name).ok());
    me.stack = Some(config.stack_name.clone());
    me.mode = Some(config.mode.as_str().to_string());
    me
}

/// The deployment's Slack card as it starts: nothing known about the stack yet.
pub(crate) fn card(config: &Config, me: &HolderInfo, sdk: &aws_config::SdkConfig) -> Card {
    Card::for_run(
        &config.stack_name,
        config.environment.as_deref(),
        config.mode.as_str(),
        me,
        sdk.region().map(|r| r.as_ref()),
        Phase::WaitingForStack { stack_status: None },
    )
}

/// What history knows about this stack: estimates, ETAs, faster polling near the end. Empty
/// (with a warning) when it cannot be read: estimates are a help, not a condition.
pub(crate) async fn history_of(registry: &Registry, stack: &str) -> Vec<HistoryRecord> {
    match history::store::list(registry, stack, Some(history::store::ESTIMATE_WINDOW)).await {
        Ok(records) => records,
        Err(e) => {
            warn!("no deployment history for estimates ({e})");
            Vec::new()
        }
    }
}

/// Stores a finished operation in the history that the next estimates learn from; `false`
/// (after a warning) when it could not.
pub(crate) async fn remember(registry: &Registry, record: &HistoryRecord) -> bool {
    match history::store::put(registry, record, history::store::DEFAULT_TTL).await {
        Ok(()) => true,
        Err(e) => {
            warn!(
                "could not store deployment {} in the history ({e}): estimates will not learn from it",
                record.correlation_id
            );
            false
        }
    }
}

/// Records this run's commit as the last one deployed under the lock key (`forbid-older`'s
/// reference). Best effort: a failure only warns.
pub(crate) async fn remember_deployed(
    registry: &Registry,
    config: &Config,
    me: &HolderInfo,
    correlation_id: &str,
) {
    let Some(sha) = me.sha.clone() else {
        return;
    };
    let deployed = history::Deployed {
        lock_key: config.lock_key.clone(),
        stack: config.stack_name.clone(),
        repository: me.repository.clone(),
        git_ref: me.git_ref.clone(),
        sha,
        run_url: me.run_url.clone(),
        correlation_id: correlation_id.to_string(),
        at: registry.clock().now_rfc3339(),
    };
    if let Err(e) = history::store::put_deployed(registry, &deployed).await {
        warn!(
            "could not record commit {} as deployed under lock key {:?} ({e}): forbid-older compares with the one before",
            deployed.sha, config.lock_key
        );
    }
}

/// The GitHub API client for this run's deployments, when `github-deployment` can work:
/// `environment`, `github-token` and a repository. `Err` says what is missing.
pub(crate) fn deployments(
    ctx: &RunContext,
    config: &Config,
    me: &HolderInfo,
) -> Result<Deployments, String> {
    let (Some(token), Some(repository)) =
        (config.github_token.as_deref(), me.repository.as_deref())
    else {
        return Err(
            "github-deployment needs `environment`, `github-token` and a GitHub run (GITHUB_REPOSITORY)"
                .into(),
        );
    };
    Deployments::new(&ctx.api_url, token, repository).map_err(|e| e.to_string())
}

/// Creates the GitHub deployment, in progress (main step, after the lock). Best effort:
/// without `deployments: write` it warns once and the deployment goes on.
pub(crate) async fn start_github_deployment(
    ctx: &RunContext,
    config: &Config,
    me: &HolderInfo,
    correlation_id: &str,
) -> Option<(Deployments, u64)> {
    if !config.github_deployment {
        return None;
    }
    let not_created = |why: &str| log::warning("GitHub deployment not created", why);
    let Some(environment) = config.environment.as_deref() else {
        not_created(
            "github-deployment needs `environment`, `github-token` and a GitHub run (GITHUB_REPOSITORY)",
        );
        return None;
    };
    let deployments = deployments(ctx, config, me)
        .map_err(|e| not_created(&e))
        .ok()?;
    let payload = serde_json::json!({
        "correlation_id": correlation_id,
        "stack": config.stack_name,
        "mode": config.mode.as_str(),
    });
    let sha = me.sha.as_deref().unwrap_or_default();
    let description = format!("{} via deploy-coordinator", config.stack_name);
    let id = match deployments
        .create(environment, sha, &description, payload)
        .await
    {
        Ok(id) => id,
        Err(e) => {
            not_created(&e.to_string());
            return None;
        }
    };
    let log_url = me.run_url.clone().unwrap_or_default();
    let status = format!("deploying {}", config.stack_name);
    if let Err(e) = deployments
        .set_status(id, DeploymentState::InProgress, &log_url, None, &status)
        .await
    {
        warn!("could not set the GitHub deployment in progress: {e}");
    }
    Some((deployments, id))
}

/// The GitHub deployment's final status (main step; post step in mode lock).
pub(crate) async fn finish_github_deployment(
    deployments: &Deployments,
    id: u64,
    config: &Config,
    me: &HolderInfo,
    outcome: Outcome,
    outputs: &[(String, String)],
) {
    let log_url = me.run_url.clone().unwrap_or_default();
    deployments
        .finish(id, &config.stack_name, outcome, outputs, &log_url)
        .await;
}
