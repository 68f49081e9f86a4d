//! One pull-request comment per stack, updated in place (mode plan): the comment is found again
//! by the hidden marker its body starts with, among the pull request's issue comments
//! (`GET /repos/{owner}/{repo}/issues/{number}/comments`, 100 per page, every page), then
//! edited (`PATCH /repos/{owner}/{repo}/issues/comments/{id}`) or, the first time, created
//! (`POST /repos/{owner}/{repo}/issues/{number}/comments`). Never a new comment per push.
//!
//! Never a reason to fail the plan: the caller warns once. A workflow without
//! `permissions: pull-requests: write` gets 403 (404 when the token cannot see the repository):
//! [`CommentError::PermissionDenied`] says what to add.

use octocrab::Octocrab;
use serde_json::{Value, json};
use thiserror::Error;

/// GitHub's largest page of comments.
const PER_PAGE: usize = 100;
/// A pull request with more than 10,000 comments is not looked through further: a new comment
/// is made rather than none.
const MAX_PAGES: usize = 100;

#[derive(Debug, Error)]
pub(crate) enum CommentError {
    #[error(
        "cannot write the plan's comment on pull request #{number} of {repository}: HTTP {status} ({message}). \
         Add `permissions: pull-requests: write` to the job (and keep the other permissions it needs, e.g. \
         `id-token: write`, `contents: read`). The plan is in the job summary either way."
    )]
    PermissionDenied {
        repository: String,
        number: u64,
        status: u16,
        message: String,
    },
    #[error("GitHub API {route}: {message}")]
    Api { route: String, message: String },
    #[error("GitHub API {route}: unexpected answer: {body}")]
    UnexpectedBody { route: String, body: String },
}

/// What was done with the comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    Created { id: u64 },
    Updated { id: u64 },
}

/// The comments of one pull request.
pub(crate) struct PullRequestComments {
    client: Octocrab,
    repository: String,
    number: u64,
}

impl PullRequestComments {
    /// `api_url` is `GITHUB_API_URL`, `repository` `GITHUB_REPOSITORY` (`owner/name`).
    pub(crate) fn new(
        api_url: &str,
        token: &str,
        repository: &str,
        number: u64,
    ) -> Result<Self, String> {
        match repository.split_once('/') {
            Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => {
            }
            _ => return Err(format!("repository {repository:?} is not owner/name")),
        }
        Ok(PullRequestComments {
            client: super::client(api_url, token)?,
            repository: repository.to_string(),
            number,
        })
    }

    /// The id of the first comment whose body starts with `marker`.
    async fn find(&self, marker: &str) -> Result<Option<u64>, CommentError> {
        for page in 1..=MAX_PAGES {
            let route = format!("/repos/{}/issues/{}/comments", self.repository, self.number);
            let query = [
                ("per_page", PER_PAGE.to_string()),
                ("page", page.to_string()),
            ];
            let answer: Value = self
                .client
                .get(&route, Some(&query))
                .await
                .map_err(|e| self.error(&route, e))?;
            let Some(comments) = answer.as_array() else {
                return Err(CommentError::UnexpectedBody {
                    route,
                    body: answer.to_string().chars().take(300).collect(),
                });
            };
            let found = comments.iter().find(|c| {
                c.get("body")
                    .and_then(Value::as_str)
                    .is_some_and(|b| b.starts_with(marker))
            });
            if let Some(id) = found.and_then(|c| c.get("id")).and_then(Value::as_u64) {
                return Ok(Some(id));
            }
            if comments.len() < PER_PAGE {
                break;
            }
        }
        Ok(None)
    }

    /// Edits the comment that starts with `marker`, or creates it; `body` must start with it.
    pub(crate) async fn upsert(&self, marker: &str, body: &str) -> Result<Written, CommentError> {
        let payload = json!({ "body": body });
        if let Some(id) = self.find(marker).await? {
            let route = format!("/repos/{}/issues/comments/{id}", self.repository);
            let _: Value = self
                .client
                .patch(&route, Some(&payload))
                .await
                .map_err(|e| self.error(&route, e))?;
            return Ok(Written::Updated { id });
        }
        let route = format!("/repos/{}/issues/{}/comments", self.repository, self.number);
        let answer: Value = self
            .client
            .post(&route, Some(&payload))
            .await
            .map_err(|e| self.error(&route, e))?;
        answer
            .get("id")
            .and_then(Value::as_u64)
            .map(|id| Written::Created { id })
            .ok_or_else(|| CommentError::UnexpectedBody {
                route,
                body: answer.to_string().chars().take(300).collect(),
            })
    }

    fn error(&self, route: &str, error: octocrab::Error) -> CommentError {
        match error {
            octocrab::Error::GitHub { source, .. } => {
                let status = source.status_code.as_u16();
                let rate_limited = source.message.to_lowercase().contains("rate limit");
                if matches!(status, 403 | 404) && !rate_limited {
                    CommentError::PermissionDenied {
                        repository: self.repository.clone(),
                        number: self.number,
                        status,
                        message: source.message,
                    }
                } else {
                    CommentError::Api {
                        route: route.to_string(),
                        message: format!("HTTP {status}: {}", source.message),
                    }
                }
            }
            other => CommentError::Api {
                route: route.to_string(),
                message: other.to_string(),
            },
        }
    }
}
