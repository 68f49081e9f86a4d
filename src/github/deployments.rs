//! GitHub Deployments (`github-deployment: true`): the deployment shows on the repository's
//! Environments page and on the pull request, with its state and a link to the run.
//!
//! One deployment per run at the commit (`POST /repos/{owner}/{repo}/deployments`), then its
//! statuses (`POST .../deployments/{id}/statuses`): `in_progress` when the stack operation
//! starts, `success` / `failure` / `inactive` at the end. Never a reason to fail the deploy: the
//! caller warns once and goes on. The usual cause is a workflow without
//! `permissions: deployments: write`: GitHub then answers 403 (or 404 when the token cannot see
//! the repository at all), which [`DeploymentError::PermissionDenied`] turns into one clear
//! instruction.

use octocrab::Octocrab;
use serde_json::{Value, json};
use thiserror::Error;

use crate::stack::Outcome;

/// GitHub refuses a status description longer than this.
const MAX_DESCRIPTION: usize = 140;

/// The states this action sets (GitHub has more: `queued`, `pending`, `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentState {
    InProgress,
    Success,
    Failure,
    /// Abandoned: the run was cancelled before the operation ended.
    Inactive,
}

impl DeploymentState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::InProgress => "in_progress",
            DeploymentState::Success => "success",
            DeploymentState::Failure => "failure",
            DeploymentState::Inactive => "inactive",
        }
    }

    /// The final state for the step's outcome.
    pub fn for_outcome(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Succeeded | Outcome::NoChanges => DeploymentState::Success,
            Outcome::Failed | Outcome::RolledBack | Outcome::TimedOut => DeploymentState::Failure,
            // A skipped run never starts a deployment (it never holds the lock): inactive.
            Outcome::Cancelled | Outcome::Skipped => DeploymentState::Inactive,
        }
    }
}

#[derive(Debug, Error)]
pub enum DeploymentError {
    #[error(
        "cannot create the GitHub deployment for {repository}: HTTP {status} ({message}). Add `permissions: \
         deployments: write` to the job (and keep the other permissions it needs, e.g. `id-token: write`, \
         `contents: read`, `actions: read`), or set github-deployment: false. The deploy goes on without it."
    )]
    PermissionDenied {
        repository: String,
        status: u16,
        message: String,
    },
    #[error("GitHub API {route}: {message}")]
    Api {
        route: String,
        status: Option<u16>,
        message: String,
    },
    #[error("GitHub API {route}: unexpected answer: {body}")]
    UnexpectedBody { route: String, body: String },
}

impl DeploymentError {
    /// The workflow lacks the permission: say it once and stop calling the API.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, DeploymentError::PermissionDenied { .. })
    }
}

/// Creates deployments and their statuses in one repository.
#[derive(Clone)]
pub struct Deployments {
    client: Octocrab,
    repository: String,
}

impl std::fmt::Debug for Deployments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Deployments({})", self.repository)
    }
}

impl Deployments {
    /// `api_url` is `GITHUB_API_URL`, `repository` is `GITHUB_REPOSITORY` (`owner/name`).
    pub fn new(api_url: &str, token: &str, repository: &str) -> Result<Self, String> {
        match repository.split_once('/') {
            Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => {
            }
            _ => return Err(format!("repository {repository:?} is not owner/name")),
        }
        let client = super::client(api_url, token)?;
        Ok(Deployments {
            client,
            repository: repository.to_string(),
        })
    }

    /// Creates a deployment of `sha` to `environment`; returns its id (the `deployment-id`
    /// output). `payload` travels with it (the correlation ID, for whoever reads deployments
    /// through the API).
    pub async fn create(
        &self,
        environment: &str,
        sha: &str,
        description: &str,
        payload: Value,
    ) -> Result<u64, DeploymentError> {
        let route = format!("/repos/{}/deployments", self.repository);
        let body = json!({
            "ref": sha,
            "task": "deploy",
            "environment": environment,
            "description": truncate(description),
            "payload": payload,
            // Deploy exactly this commit: no merge of the default branch into it, and no wait
            // for commit statuses (the workflow already decided to deploy).
            "auto_merge": false,
            "required_contexts": [],
            "transient_environment": false,
        });
        let answer: Value = self
            .client
            .post(&route, Some(&body))
            .await
            .map_err(|e| self.error(&route, e))?;
        answer
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| DeploymentError::UnexpectedBody {
                route,
                body: answer.to_string().chars().take(300).collect(),
            })
    }

    /// Adds a status to deployment `id`. `log_url` is the run's URL; `environment_url` what the
    /// environment's "View deployment" button opens.
    pub async fn set_status(
        &self,
        id: u64,
        state: DeploymentState,
        log_url: &str,
        environment_url: Option<&str>,
        description: &str,
    ) -> Result<(), DeploymentError> {
        let route = format!("/repos/{}/deployments/{id}/statuses", self.repository);
        let mut body = json!({
            "state": state.as_str(),
            "log_url": log_url,
            "description": truncate(description),
        });
        if let Some(url) = environment_url {
            body["environment_url"] = Value::String(url.to_string());
        }
        let _: Value = self
            .client
            .post(&route, Some(&body))
            .await
            .map_err(|e| self.error(&route, e))?;
        Ok(())
    }

    fn error(&self, route: &str, error: octocrab::Error) -> DeploymentError {
        match error {
            octocrab::Error::GitHub { source, .. } => {
                let status = source.status_code.as_u16();
                // A secondary rate limit is a 403 too, but adding a permission will not help.
                let rate_limited = source.message.to_lowercase().contains("rate limit");
                if matches!(status, 403 | 404) && !rate_limited {
                    DeploymentError::PermissionDenied {
                        repository: self.repository.clone(),
                        status,
                        message: source.message,
                    }
                } else {
                    DeploymentError::Api {
                        route: route.to_string(),
                        status: Some(status),
                        message: source.message,
                    }
                }
            }
            other => DeploymentError::Api {
                route: route.to_string(),
                status: None,
                message: other.to_string(),
            },
        }
    }

    /// The final status for a finished stack operation: state from the outcome, the run as log,
    /// the stack's URL output (if any) as the environment URL. Best effort: a failure is
    /// logged, never returned, because the deployment itself is over.
    pub async fn finish(
        &self,
        id: u64,
        stack: &str,
        outcome: Outcome,
        outputs: &[(String, String)],
        log_url: &str,
    ) {
        let description = format!("{stack} {outcome}");
        if let Err(e) = self
            .set_status(
                id,
                DeploymentState::for_outcome(outcome),
                log_url,
                environment_url(outputs),
                &description,
            )
            .await
        {
            tracing::warn!("could not set the GitHub deployment's final status: {e}");
        }
    }
}

fn truncate(text: &str) -> String {
    if text.chars().count() <= MAX_DESCRIPTION {
        return text.to_string();
    }
    let mut short: String = text.chars().take(MAX_DESCRIPTION - 1).collect();
    short.push('…');
    short
}

/// The stack output to show as the environment's URL: one named `EnvironmentUrl` (any case)
/// first, else the first whose name ends in `url`; only an http(s) value counts.
pub fn environment_url(outputs: &[(String, String)]) -> Option<&str> {
    let is_url = |v: &str| {
        (v.starts_with("https://") || v.starts_with("http://")) && !v.contains(char::is_whitespace)
    };
    let candidates = || outputs.iter().filter(|(_, v)| is_url(v.trim()));
    candidates()
        .find(|(k, _)| k.eq_ignore_ascii_case("environmenturl"))
        .or_else(|| candidates().find(|(k, _)| k.to_ascii_lowercase().ends_with("url")))
        .map(|(_, v)| v.trim())
}

/// The run's page: `{server}/{repository}/actions/runs/{run_id}/attempts/{attempt}`.
pub fn run_url(server_url: &str, repository: &str, run_id: u64, attempt: u32) -> String {
    format!(
        "{}/{repository}/actions/runs/{run_id}/attempts/{attempt}",
        server_url.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_url_prefers_its_own_name_then_any_url() {
        let o = outputs(&[
            ("BucketName", "https://not-a-url-name"),
            ("ApiUrl", "https://api.example.com"),
            ("EnvironmentURL", "https://app.example.com"),
        ]);
        assert_eq!(environment_url(&o), Some("https://app.example.com"));
        let o = outputs(&[
            ("DocsUrl", "not a url"),
            ("ApiUrl", " https://api.example.com "),
        ]);
        assert_eq!(environment_url(&o), Some("https://api.example.com"));
        assert_eq!(environment_url(&outputs(&[("Url", "javascript:x")])), None);
        assert_eq!(environment_url(&[]), None);
    }

    #[test]
    fn every_outcome_ends_in_a_state() {
        assert_eq!(
            DeploymentState::for_outcome(Outcome::NoChanges),
            DeploymentState::Success
        );
        assert_eq!(
            DeploymentState::for_outcome(Outcome::RolledBack),
            DeploymentState::Failure
        );
        assert_eq!(
            DeploymentState::for_outcome(Outcome::Cancelled),
            DeploymentState::Inactive
        );
    }

    #[test]
    fn descriptions_fit_githubs_limit() {
        assert_eq!(truncate("short"), "short");
        let long = truncate(&"é".repeat(300));
        assert_eq!(long.chars().count(), MAX_DESCRIPTION);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn refuses_a_repository_that_is_not_owner_name() {
        for bad in ["", "acme", "acme/", "/api", "a/b/c"] {
            assert!(
                Deployments::new("https://api.github.com", "t", bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn run_url_is_the_attempts_page() {
        assert_eq!(
            run_url("https://github.com/", "acme/api", 42, 2),
            "https://github.com/acme/api/actions/runs/42/attempts/2"
        );
    }
}
