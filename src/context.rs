//! Who is running: the GitHub run this step belongs to, read from the runner's `GITHUB_*`
//! variables. It identifies the lock's owner, links the run in Slack and in the lock record,
//! and is what another waiter asks the GitHub API about to tell whether this run is dead.

use std::path::PathBuf;

/// The GitHub run of this step. Outside Actions most fields are empty.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    pub in_actions: bool,
    pub repository: String,
    pub run_id: String,
    pub run_attempt: String,
    pub job: String,
    pub workflow: String,
    pub actor: String,
    pub sha: String,
    pub git_ref: String,
    pub server_url: String,
    pub api_url: String,
    pub workspace: PathBuf,
    pub debug: bool,
}

impl RunContext {
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| env(name).unwrap_or_default();
        RunContext {
            in_actions: get("GITHUB_ACTIONS") == "true",
            repository: get("GITHUB_REPOSITORY"),
            run_id: get("GITHUB_RUN_ID"),
            run_attempt: env("GITHUB_RUN_ATTEMPT").unwrap_or_else(|| "1".into()),
            job: get("GITHUB_JOB"),
            workflow: get("GITHUB_WORKFLOW"),
            actor: get("GITHUB_ACTOR"),
            sha: get("GITHUB_SHA"),
            git_ref: get("GITHUB_REF"),
            server_url: env("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into()),
            api_url: env("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()),
            workspace: env("GITHUB_WORKSPACE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".")),
            debug: get("RUNNER_DEBUG") == "1",
        }
    }

    pub fn from_process_env() -> Self {
        Self::from_env(&|name| std::env::var(name).ok())
    }

    /// The run's page, linked from the lock record, Slack and the summary.
    pub fn run_url(&self) -> Option<String> {
        (!self.repository.is_empty() && !self.run_id.is_empty()).then(|| {
            format!(
                "{}/{}/actions/runs/{}/attempts/{}",
                self.server_url, self.repository, self.run_id, self.run_attempt
            )
        })
    }

    /// The lock owner: unique per correlation ID and run attempt, so a rerun of a failed
    /// attempt is a new owner (it takes over the dead attempt's lock through the liveness check)
    /// while a retry of the same step inside one attempt is the same owner (reentrant).
    pub fn owner(&self, correlation_id: &str) -> String {
        if self.run_id.is_empty() {
            correlation_id.to_string()
        } else {
            format!("{correlation_id}/{}/{}", self.run_id, self.run_attempt)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_url_and_owner_come_from_the_runner_variables() {
        let env = |name: &str| {
            Some(
                match name {
                    "GITHUB_REPOSITORY" => "acme/app",
                    "GITHUB_RUN_ID" => "42",
                    "GITHUB_RUN_ATTEMPT" => "2",
                    "GITHUB_SERVER_URL" => "https://github.com",
                    _ => return None,
                }
                .to_string(),
            )
        };
        let ctx = RunContext::from_env(&env);
        assert_eq!(
            ctx.run_url().as_deref(),
            Some("https://github.com/acme/app/actions/runs/42/attempts/2")
        );
        assert_eq!(
            ctx.owner("20260114-123456-abc1234"),
            "20260114-123456-abc1234/42/2"
        );
        assert_eq!(RunContext::default().run_url(), None);
    }
}
