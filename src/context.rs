//! What the step learns from the runner's `GITHUB_*` variables before it reads its inputs.
//!
//! The lock's holder record (repository, run, attempt, actor, commit, run URL) is built from
//! the same variables by `lock::HolderInfo::from_env`; this is the rest the entry point needs.

use std::path::PathBuf;

/// The runner context of this process. Outside Actions the fields take harmless defaults.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    /// `GITHUB_ACTIONS=true`: print workflow commands and run the main step.
    pub in_actions: bool,
    /// The commit being deployed (part of the correlation ID).
    pub sha: String,
    /// Where the GitHub API is (GitHub Enterprise Server has its own).
    pub api_url: String,
    /// Relative template paths are resolved against the workspace.
    pub workspace: PathBuf,
    /// The runner's debug logging (`RUNNER_DEBUG=1`) turns on our debug logs.
    pub debug: bool,
}

impl RunContext {
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        RunContext {
            in_actions: env("GITHUB_ACTIONS").is_some_and(|v| v == "true"),
            sha: env("GITHUB_SHA").unwrap_or_default(),
            api_url: env("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()),
            workspace: env("GITHUB_WORKSPACE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".")),
            debug: env("RUNNER_DEBUG").is_some_and(|v| v == "1"),
        }
    }

    pub fn from_process_env() -> Self {
        Self::from_env(&|name| std::env::var(name).ok())
    }
}

/// The first line of the pushed commit's message, from the event payload the runner writes
/// (`GITHUB_EVENT_PATH`): people recognise a deployment by it in Slack. None for events
/// without a head commit (workflow_dispatch, schedule) or an unreadable payload.
pub fn commit_message(event_path: Option<&str>) -> Option<String> {
    let text = std::fs::read_to_string(event_path?).ok()?;
    let event: serde_json::Value = serde_json::from_str(&text).ok()?;
    let message = event.pointer("/head_commit/message")?.as_str()?;
    message
        .lines()
        .next()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
}

/// The pull request's number, from the event payload (`pull_request.number` of a
/// `pull_request` or `pull_request_target` event). None for a push, a schedule or an
/// unreadable payload.
pub fn pull_request_number(event_path: Option<&str>) -> Option<u64> {
    let text = std::fs::read_to_string(event_path?).ok()?;
    let event: serde_json::Value = serde_json::from_str(&text).ok()?;
    event.pointer("/pull_request/number")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_runner_variables_with_defaults() {
        let env = |name: &str| (name == "GITHUB_ACTIONS").then(|| "true".to_string());
        let ctx = RunContext::from_env(&env);
        assert!(ctx.in_actions);
        assert_eq!(ctx.api_url, "https://api.github.com");
        assert_eq!(ctx.workspace, PathBuf::from("."));
        assert!(!RunContext::from_env(&|_| None).in_actions);
    }

    #[test]
    fn the_commit_message_comes_from_the_push_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("event.json");
        std::fs::write(
            &path,
            r#"{"head_commit": {"message": "Fix the <!channel> bug\n\nLong body"}}"#,
        )
        .unwrap();
        let path = path.display().to_string();
        assert_eq!(
            commit_message(Some(&path)).as_deref(),
            Some("Fix the <!channel> bug")
        );
        std::fs::write(&path, r#"{"inputs": {}}"#).unwrap();
        assert_eq!(commit_message(Some(&path)), None);
        assert_eq!(commit_message(None), None);
    }

    #[test]
    fn the_pull_request_number_comes_from_a_pull_request_event_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("event.json");
        std::fs::write(
            &path,
            r#"{"action": "synchronize", "pull_request": {"number": 42}}"#,
        )
        .unwrap();
        let path = path.display().to_string();
        assert_eq!(pull_request_number(Some(&path)), Some(42));
        std::fs::write(&path, r#"{"head_commit": {"message": "x"}}"#).unwrap();
        assert_eq!(pull_request_number(Some(&path)), None);
        assert_eq!(pull_request_number(None), None);
    }
}
