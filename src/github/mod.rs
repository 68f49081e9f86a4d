//! The GitHub API, for what the coordinator needs from it: whether a run attempt is completed
//! (the lock's second staleness rule), how two commits compare (the queue policies:
//! supersede, `forbid-older`), deployments with their statuses, and mode plan's
//! pull-request comment, one per stack, updated in place (`comments.rs`).

use std::time::Duration;

use octocrab::Octocrab;
use octocrab::service::middleware::retry::RetryConfig;

pub(crate) mod comments;
mod compare;
pub mod deployments;
mod runs;

pub use deployments::{DeploymentState, Deployments};
pub use runs::GitHubRuns;

/// A client for `api_url` (`GITHUB_API_URL`: github.com, GHES, or a test server). No retries:
/// nothing we ask is worth delaying a deployment for (a waiter asks again in 30 s, a deployment
/// status is best effort), and octocrab's rate-limit retry would sleep until the limit resets.
pub(crate) fn client(api_url: &str, token: &str) -> Result<Octocrab, String> {
    Octocrab::builder()
        .base_uri(api_url)
        .map_err(|e| format!("invalid GitHub API URL {api_url:?}: {e}"))?
        .personal_token(token.to_string())
        .add_retry_config(RetryConfig::None)
        .set_connect_timeout(Some(Duration::from_secs(5)))
        .set_read_timeout(Some(Duration::from_secs(10)))
        .build()
        .map_err(|e| format!("cannot build the GitHub client: {e}"))
}
