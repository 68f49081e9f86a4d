//! "Is the holder's run completed?" through `GET /repos/{owner}/{repo}/actions/runs/{id}/attempts/{n}`.
//!
//! Only `status == "completed"` counts as completed. Every error (404 for a repository the
//! token cannot read, 5xx, rate limiting, a timeout, an unexpected body) is `Unknown`: a
//! transient API problem must never free a live holder's lock.

use octocrab::Octocrab;

use crate::lock::Comparison;
use crate::lock::liveness::{BoxFuture, RunLiveness, RunState};

/// Asks the GitHub REST API with a token (`github-token`).
#[derive(Clone)]
pub struct GitHubRuns {
    client: Octocrab,
}

impl std::fmt::Debug for GitHubRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GitHubRuns")
    }
}

impl GitHubRuns {
    /// `api_url` is `GITHUB_API_URL` (https://api.github.com, or a GHES / test server).
    pub fn new(api_url: &str, token: &str) -> Result<GitHubRuns, String> {
        let client = super::client(api_url, token)?;
        Ok(GitHubRuns { client })
    }

    async fn ask(&self, repository: &str, run_id: u64, attempt: u32) -> RunState {
        let Some((owner, repo)) = repository.split_once('/') else {
            return RunState::Unknown;
        };
        let route = format!("/repos/{owner}/{repo}/actions/runs/{run_id}/attempts/{attempt}");
        match self
            .client
            .get::<serde_json::Value, _, ()>(&route, None)
            .await
        {
            Ok(body) => state_of(&body),
            Err(e) => {
                tracing::debug!("GitHub API {route}: {e} (the lease decides)");
                RunState::Unknown
            }
        }
    }
}

/// Reads a workflow run (attempt) body.
fn state_of(body: &serde_json::Value) -> RunState {
    match body.get("status").and_then(|s| s.as_str()) {
        Some("completed") => RunState::Completed,
        Some(_) => RunState::Running,
        None => RunState::Unknown,
    }
}

impl RunLiveness for GitHubRuns {
    fn run_state<'a>(
        &'a self,
        repository: &'a str,
        run_id: u64,
        attempt: u32,
    ) -> BoxFuture<'a, RunState> {
        Box::pin(self.ask(repository, run_id, attempt))
    }

    fn compare<'a>(
        &'a self,
        repository: &'a str,
        base: &'a str,
        head: &'a str,
    ) -> BoxFuture<'a, Comparison> {
        Box::pin(super::compare::compare(
            &self.client,
            repository,
            base,
            head,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    #[test]
    fn only_completed_is_completed() {
        assert_eq!(
            state_of(&json!({"status": "completed", "conclusion": "cancelled"})),
            RunState::Completed
        );
        assert_eq!(
            state_of(&json!({"status": "in_progress"})),
            RunState::Running
        );
        assert_eq!(state_of(&json!({"status": "queued"})), RunState::Running);
        assert_eq!(
            state_of(&json!({"message": "Not Found"})),
            RunState::Unknown
        );
    }

    #[tokio::test]
    async fn asks_the_attempt_endpoint_and_treats_errors_as_unknown() {
        let server = MockServer::start().await;
        let runs = "/repos/acme/api/actions/runs";
        Mock::given(method("GET"))
            .and(path(format!("{runs}/1/attempts/1")))
            .and(header("authorization", "Bearer t0ken"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"id": 1, "status": "completed"})),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("{runs}/2/attempts/1")))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"id": 2, "status": "in_progress"})),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("{runs}/3/attempts/1")))
            .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("{runs}/4/attempts/1")))
            .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
            .mount(&server)
            .await;
        let gh = GitHubRuns::new(&server.uri(), "t0ken").unwrap();
        assert_eq!(gh.run_state("acme/api", 1, 1).await, RunState::Completed);
        assert_eq!(gh.run_state("acme/api", 2, 1).await, RunState::Running);
        assert_eq!(gh.run_state("acme/api", 3, 1).await, RunState::Unknown);
        assert_eq!(gh.run_state("acme/api", 4, 1).await, RunState::Unknown);
        assert_eq!(gh.run_state("not-a-repo", 1, 1).await, RunState::Unknown);
        // Nothing listens here: a connection error is Unknown too.
        let down = GitHubRuns::new("http://127.0.0.1:9", "t").unwrap();
        assert_eq!(down.run_state("acme/api", 1, 1).await, RunState::Unknown);
    }
}
