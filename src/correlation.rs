//! The correlation ID: one name for one deployment in every log line, output, lock record,
//! Slack message and history record.
//!
//! `YYYYMMDD-HHMMSS-<first 7 of GITHUB_SHA>` in UTC: sortable, readable in a Slack thread, and it
//! says which commit it deployed. The user may give their own (input `correlation-id`) to tie
//! the deployment to an ID from an outer system.

use chrono::{DateTime, Utc};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "{0:?} is not a usable correlation ID: use 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit"
)]
pub(crate) struct InvalidCorrelationId(pub String);

/// Generates the ID for a deployment started at `now` at commit `sha`.
pub(crate) fn generate(now: DateTime<Utc>, sha: Option<&str>) -> String {
    let short: String = sha
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(7)
        .collect::<String>()
        .to_ascii_lowercase();
    let short = if short.is_empty() {
        "local".to_string()
    } else {
        short
    };
    format!("{}-{short}", now.format("%Y%m%d-%H%M%S"))
}

/// Checks a user-given ID: it becomes part of DynamoDB sort keys and CloudFormation client
/// request tokens, so it must stay within a safe alphabet.
pub(crate) fn validate(id: &str) -> Result<(), InvalidCorrelationId> {
    let ok = (1..=64).contains(&id.len())
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(InvalidCorrelationId(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn format_is_utc_time_and_short_sha() {
        let now = Utc.with_ymd_and_hms(2026, 1, 14, 12, 34, 56).unwrap();
        assert_eq!(
            generate(now, Some("ABC1234def5678")),
            "20260114-123456-abc1234"
        );
        assert_eq!(generate(now, None), "20260114-123456-local");
    }

    #[test]
    fn user_ids_are_checked() {
        assert!(validate("release-42.1_a").is_ok());
        for bad in ["", "-x", "a b", "a#b", "ä", &"x".repeat(65)] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }
}
