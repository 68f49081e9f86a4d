//! "Is this commit newer than that one?" through `GET /repos/{owner}/{repo}/compare/{base}...{head}`:
//! the response's `status` is `ahead` (head has commits base has not, and none the other way),
//! `behind`, `identical` or `diverged` (GitHub REST API, "Compare two commits"; the
//! `CommitComparison` schema of github/rest-api-description). Used by the queue policies: a
//! waiter superseded by a newer commit of its ref, and `forbid-older`.
//!
//! Every error (404 for a commit or repository the token cannot read, 5xx, rate limiting, a
//! timeout, an unexpected body) is `Unknown`: the callers then neither skip nor refuse.

use std::time::Duration;

use octocrab::Octocrab;

use crate::lock::Comparison;

/// A comparison that takes longer than this is unknown: a waiter at the head of the queue is
/// not polling the lock while it asks, and a deployment must not wait on GitHub for long.
pub(crate) const COMPARE_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks GitHub how `head` compares with `base` in `repository` (`owner/name`).
pub(crate) async fn compare(
    client: &Octocrab,
    repository: &str,
    base: &str,
    head: &str,
) -> Comparison {
    let Some((owner, repo)) = repository.split_once('/') else {
        return Comparison::Unknown;
    };
    let safe = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
    if !(safe(base) && safe(head)) {
        return Comparison::Unknown;
    }
    let route = format!("/repos/{owner}/{repo}/compare/{base}...{head}");
    // One commit per page: only the status is read, and a long range of commits and files
    // would make the answer large.
    let ask = client.get::<serde_json::Value, _, _>(&route, Some(&[("per_page", "1")]));
    match tokio::time::timeout(COMPARE_TIMEOUT, ask).await {
        Ok(Ok(body)) => status_of(&body),
        Ok(Err(e)) => {
            tracing::debug!("GitHub API {route}: {e}");
            Comparison::Unknown
        }
        Err(_) => {
            tracing::debug!("GitHub API {route}: no answer within {COMPARE_TIMEOUT:?}");
            Comparison::Unknown
        }
    }
}

/// Reads a comparison body.
fn status_of(body: &serde_json::Value) -> Comparison {
    body.get("status")
        .and_then(|s| s.as_str())
        .map_or(Comparison::Unknown, Comparison::from_status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    #[tokio::test]
    async fn reads_the_status_and_treats_errors_and_slowness_as_unknown() {
        let server = MockServer::start().await;
        let route = |b: &str, h: &str| format!("/repos/acme/api/compare/{b}...{h}");
        for (head, status) in [("b1", "ahead"), ("b2", "behind"), ("b3", "diverged")] {
            Mock::given(method("GET"))
                .and(path(route("a0", head)))
                .and(query_param("per_page", "1"))
                .respond_with(ResponseTemplate::new(200).set_body_json(
                    json!({"status": status, "ahead_by": 1, "behind_by": 0, "commits": []}),
                ))
                .mount(&server)
                .await;
        }
        Mock::given(method("GET"))
            .and(path(route("a0", "e5")))
            .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(route("a0", "f6")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"status": "ahead"}))
                    .set_delay(COMPARE_TIMEOUT + Duration::from_secs(1)),
            )
            .mount(&server)
            .await;
        let client = crate::github::client(&server.uri(), "t0ken").unwrap();
        assert_eq!(
            compare(&client, "acme/api", "a0", "b1").await,
            Comparison::Ahead
        );
        assert_eq!(
            compare(&client, "acme/api", "a0", "b2").await,
            Comparison::Behind
        );
        assert_eq!(
            compare(&client, "acme/api", "a0", "b3").await,
            Comparison::Diverged
        );
        assert_eq!(
            compare(&client, "acme/api", "a0", "e5").await,
            Comparison::Unknown
        );
        assert_eq!(
            compare(&client, "acme/api", "a0", "f6").await,
            Comparison::Unknown
        );
        assert_eq!(
            compare(&client, "acme", "a0", "b1").await,
            Comparison::Unknown
        );
        assert_eq!(
            compare(&client, "acme/api", "a0", "../x").await,
            Comparison::Unknown
        );
    }
}
