//! The history record: one finished operation on one stack, with the timings of every resource.
//!
//! This is the ONE schema for the registry items, `history export`/`import` and the estimator:
//!
//! ```json
//! {"stack": "S", "correlation_id": "20260114-123456-abc1234", "operation": "UPDATE",
//!  "outcome": "succeeded", "started_at": "2026-01-14T12:34:56Z", "finished_at": "2026-01-14T12:47:01Z",
//!  "resources": [{"logical_id": "Db", "type": "AWS::RDS::DBInstance", "action": "CREATE",
//!                 "started_at": "…", "finished_at": "…", "status": "CREATE_COMPLETE"}]}
//! ```
//!
//! Optional extensions, all absent from records built by `history collect`:
//! - `rollback_started_at`, present when the operation rolled back; the resources that started
//!   at or after it are the rollback's own work (undoing), not the deployment's, and the
//!   estimator keeps the two apart;
//! - `estimate`: what the estimator predicted for the whole operation when it began
//!   (`seconds`, `low_seconds`, `high_seconds`), so estimates can be judged against what happened;
//! - `lock_wait_seconds`: how long the run queued for the lock before this operation.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What the operation did to the stack, from its first stack-level status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Import,
    /// A rollback the user asked for (`RollbackStack`, or `CancelUpdateStack`'s rollback).
    Rollback,
}

impl Operation {
    /// From a stack-level `*_IN_PROGRESS` status that starts an operation.
    pub fn from_start_status(status: &str) -> Option<Operation> {
        let op = match status {
            "CREATE_IN_PROGRESS" | "REVIEW_IN_PROGRESS" => Operation::Create,
            "UPDATE_IN_PROGRESS" => Operation::Update,
            "DELETE_IN_PROGRESS" => Operation::Delete,
            "IMPORT_IN_PROGRESS" => Operation::Import,
            "ROLLBACK_IN_PROGRESS" | "UPDATE_ROLLBACK_IN_PROGRESS" => Operation::Rollback,
            _ => return None,
        };
        Some(op)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Import => "IMPORT",
            Operation::Rollback => "ROLLBACK",
        }
    }
}

/// How the operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The stack reached the operation's `*_COMPLETE` status.
    Succeeded,
    /// A resource failed and the stack rolled back (`*_ROLLBACK_COMPLETE`/`_FAILED`).
    RolledBack,
    /// The stack ended in a `*_FAILED` status without rolling back (or the rollback failed).
    Failed,
    /// Someone cancelled it (`CancelUpdateStack`, a cancelled workflow): its timings say
    /// nothing about how long the deployment takes.
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack => "rolled_back",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// The timing of one resource within an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceTiming {
    pub logical_id: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    /// `CREATE`, `UPDATE`, `DELETE`, `IMPORT`… (the prefix of the resource's status).
    pub action: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The final status, e.g. `CREATE_COMPLETE`, `UPDATE_FAILED`.
    pub status: String,
}

impl ResourceTiming {
    /// Never negative, whatever the timestamps say.
    pub fn seconds(&self) -> f64 {
        seconds_between(self.started_at, self.finished_at)
    }

    pub fn completed(&self) -> bool {
        self.status.ends_with("_COMPLETE")
    }
}

/// One finished operation. See the module docs for the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    pub stack: String,
    pub correlation_id: String,
    pub operation: Operation,
    pub outcome: Outcome,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub resources: Vec<ResourceTiming>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<PredictedDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_wait_seconds: Option<f64>,
}

/// The estimator's first prediction of an operation's whole duration (elapsed + remaining at
/// its first estimate), kept in the record it becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictedDuration {
    pub seconds: u64,
    pub low_seconds: u64,
    pub high_seconds: u64,
}

/// Records come from other machines and from files people edit: a few seconds of disagreement
/// between timestamps is tolerated (and clamped), more is an error.
const SKEW_TOLERANCE: TimeDelta = TimeDelta::minutes(5);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidRecord {
    #[error("`{0}` is empty")]
    Empty(&'static str),
    #[error("finished_at {finished} is before started_at {started}")]
    FinishedBeforeStart { started: String, finished: String },
    #[error("resource {index} ({logical_id}): {problem}")]
    Resource {
        index: usize,
        logical_id: String,
        problem: String,
    },
}

impl HistoryRecord {
    /// Whole-operation duration in seconds (never negative).
    pub fn seconds(&self) -> f64 {
        seconds_between(self.started_at, self.finished_at)
    }

    /// Checks what serde cannot: non-empty names, times in order. Small disagreements between
    /// clocks (a resource "finishing" a second before it started) are tolerated; see
    /// [`SKEW_TOLERANCE`].
    pub fn validate(&self) -> Result<(), InvalidRecord> {
        if self.stack.trim().is_empty() {
            return Err(InvalidRecord::Empty("stack"));
        }
        if self.correlation_id.trim().is_empty() {
            return Err(InvalidRecord::Empty("correlation_id"));
        }
        if self.finished_at + SKEW_TOLERANCE < self.started_at {
            return Err(InvalidRecord::FinishedBeforeStart {
                started: self.started_at.to_rfc3339(),
                finished: self.finished_at.to_rfc3339(),
            });
        }
        for (index, r) in self.resources.iter().enumerate() {
            let problem = |p: String| InvalidRecord::Resource {
                index,
                logical_id: r.logical_id.clone(),
                problem: p,
            };
            if r.logical_id.trim().is_empty() {
                return Err(problem("`logical_id` is empty".into()));
            }
            if r.action.trim().is_empty() {
                return Err(problem("`action` is empty".into()));
            }
            if r.finished_at + SKEW_TOLERANCE < r.started_at {
                return Err(problem(format!(
                    "finished_at {} is before started_at {}",
                    r.finished_at.to_rfc3339(),
                    r.started_at.to_rfc3339()
                )));
            }
        }
        Ok(())
    }

    /// The resources of the deployment itself, without the rollback's undoing.
    pub fn forward_resources(&self) -> impl Iterator<Item = &ResourceTiming> {
        let cut = self.rollback_started_at;
        self.resources
            .iter()
            .filter(move |r| cut.is_none_or(|c| r.started_at < c))
    }

    /// The rollback's own work (empty unless the operation rolled back).
    pub fn rollback_resources(&self) -> impl Iterator<Item = &ResourceTiming> {
        let cut = self.rollback_started_at;
        self.resources
            .iter()
            .filter(move |r| cut.is_some_and(|c| r.started_at >= c))
    }
}

/// Seconds from `a` to `b`, clamped at zero (skewed timestamps never make time run backwards).
pub fn seconds_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    ((b - a).num_milliseconds() as f64 / 1000.0).max(0.0)
}

/// Parses a JSON array of records (the `history export` format) and validates each. Errors
/// say where: serde's line and column, or the record's index.
pub fn parse_records(text: &str) -> Result<Vec<HistoryRecord>, ParseError> {
    let records: Vec<HistoryRecord> = serde_json::from_str(text).map_err(ParseError::Json)?;
    for (index, record) in records.iter().enumerate() {
        record.validate().map_err(|problem| ParseError::Invalid {
            index,
            correlation_id: record.correlation_id.clone(),
            problem,
        })?;
    }
    Ok(records)
}

#[derive(Debug, Error)]
pub enum ParseError {
    #[error("{}", describe_json_error(.0, HISTORY_EXPECTED))]
    Json(serde_json::Error),
    #[error("record {index} (correlation_id {correlation_id:?}): {problem}")]
    Invalid {
        index: usize,
        correlation_id: String,
        problem: InvalidRecord,
    },
}

const HISTORY_EXPECTED: &str = "expected a JSON array of history records as printed by `history export` \
     ([{\"stack\", \"correlation_id\", \"operation\", \"outcome\", \"started_at\", \"finished_at\", \"resources\": [...]}])";

/// `line 3, column 17: missing field `stack` (expected …)`: serde_json's message without its
/// own " at line … column …" suffix, the position first, and what the file should hold.
pub fn describe_json_error(e: &serde_json::Error, expected: &str) -> String {
    let full = e.to_string();
    let message = match full.rfind(" at line ") {
        Some(i) => &full[..i],
        None => full.as_str(),
    };
    format!(
        "line {}, column {}: {message}; {expected}",
        e.line(),
        e.column()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> &'static str {
        r#"[{"stack": "S", "correlation_id": "20260114-123456-abc1234", "operation": "UPDATE",
             "outcome": "succeeded", "started_at": "2026-01-14T12:34:56Z",
             "finished_at": "2026-01-14T12:47:01Z",
             "resources": [{"logical_id": "Db", "type": "AWS::RDS::DBInstance", "action": "CREATE",
                            "started_at": "2026-01-14T12:35:00Z", "finished_at": "2026-01-14T12:45:00Z",
                            "status": "CREATE_COMPLETE"}]}]"#
    }

    #[test]
    fn the_issue_schema_round_trips() {
        let records = parse_records(sample()).unwrap();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.operation, Operation::Update);
        assert_eq!(r.outcome, Outcome::Succeeded);
        assert_eq!(r.seconds(), 725.0);
        assert_eq!(r.resources[0].seconds(), 600.0);
        let json = serde_json::to_value(r).unwrap();
        assert_eq!(json["resources"][0]["type"], "AWS::RDS::DBInstance");
        assert_eq!(json["outcome"], "succeeded");
        assert!(json.get("rollback_started_at").is_none());
        let back: HistoryRecord = serde_json::from_value(json).unwrap();
        assert_eq!(&back, r);
    }

    #[test]
    fn errors_say_where_and_what_was_expected() {
        let missing = sample().replace(r#""stack": "S", "#, "");
        let err = parse_records(&missing).unwrap_err().to_string();
        assert!(err.contains("missing field `stack`"), "{err}");
        // serde reports a missing field where the object ends.
        assert!(err.starts_with("line 6, column"), "{err}");
        assert!(err.contains("expected a JSON array"), "{err}");

        let bad_outcome = sample().replace("\"succeeded\"", "\"great\"");
        let err = parse_records(&bad_outcome).unwrap_err().to_string();
        assert!(err.contains("unknown variant `great`"), "{err}");
        assert!(err.contains("line 2"), "{err}");

        let err = parse_records("{}").unwrap_err().to_string();
        assert!(err.contains("line 1, column"), "{err}");
    }

    #[test]
    fn validation_rejects_what_serde_accepts() {
        let backwards = sample().replace("12:47:01Z", "11:00:00Z");
        let err = parse_records(&backwards).unwrap_err().to_string();
        assert!(
            err.contains("record 0") && err.contains("before started_at"),
            "{err}"
        );

        let empty_id = sample().replace(r#""logical_id": "Db""#, r#""logical_id": " ""#);
        let err = parse_records(&empty_id).unwrap_err().to_string();
        assert!(
            err.contains("resource 0") && err.contains("logical_id"),
            "{err}"
        );
    }

    #[test]
    fn small_skew_is_tolerated_and_clamped() {
        // A resource that "finished" two seconds before it started (two CloudFormation
        // workers' clocks) is kept, with a zero duration.
        let skewed = sample().replace("12:45:00Z", "12:34:58Z");
        let records = parse_records(&skewed).unwrap();
        assert_eq!(records[0].resources[0].seconds(), 0.0);
    }

    #[test]
    fn forward_and_rollback_work_are_kept_apart() {
        let mut r = parse_records(sample()).unwrap().remove(0);
        let mut undo = r.resources[0].clone();
        undo.action = "DELETE".into();
        undo.status = "DELETE_COMPLETE".into();
        undo.started_at = r.resources[0].finished_at + TimeDelta::seconds(5);
        undo.finished_at = undo.started_at + TimeDelta::seconds(60);
        r.rollback_started_at = Some(undo.started_at - TimeDelta::seconds(1));
        r.resources.push(undo);
        assert_eq!(r.forward_resources().count(), 1);
        assert_eq!(r.rollback_resources().next().unwrap().action, "DELETE");
    }
}
