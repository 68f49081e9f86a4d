//! Stack and resource statuses, and what they mean for the action's outcome.
//!
//! Pure: strings in, classes out. The SDK's enums are not used here on purpose: a status
//! CloudFormation adds later arrives as an unknown string, and the suffix rules below still
//! classify it sensibly instead of failing.

use std::fmt;

/// What a stack status says about the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackClass {
    /// An operation is running: wait.
    InProgress,
    /// A change set was created for a new stack and nothing was executed yet.
    Review,
    /// The last operation succeeded.
    Succeeded,
    /// The last operation failed and was rolled back; the stack is usable.
    RolledBack,
    /// The last operation failed and the stack needs attention.
    Failed,
}

/// Classifies a stack status (every status of the 2010-05-15 API, and unknown ones by suffix).
pub fn classify(status: &str) -> StackClass {
    match status {
        "REVIEW_IN_PROGRESS" => StackClass::Review,
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "DELETE_COMPLETE" | "IMPORT_COMPLETE" => {
            StackClass::Succeeded
        }
        "UPDATE_ROLLBACK_COMPLETE" | "IMPORT_ROLLBACK_COMPLETE" => StackClass::RolledBack,
        // A failed first create: rolled back, but the stack can only be deleted.
        "ROLLBACK_COMPLETE" => StackClass::Failed,
        s if s.ends_with("_IN_PROGRESS") => StackClass::InProgress,
        s if s.ends_with("_FAILED") => StackClass::Failed,
        // An unknown *_COMPLETE: rollbacks are named as such, anything else finished normally.
        s if s.ends_with("_COMPLETE") && s.contains("ROLLBACK") => StackClass::RolledBack,
        s if s.ends_with("_COMPLETE") => StackClass::Succeeded,
        _ => StackClass::Failed,
    }
}

/// True while an operation runs on the stack (REVIEW_IN_PROGRESS is not one: nothing runs).
pub fn is_in_progress(status: &str) -> bool {
    classify(status) == StackClass::InProgress
}

/// True when the stack status ends an operation.
pub fn is_terminal(status: &str) -> bool {
    !matches!(
        classify(status),
        StackClass::InProgress | StackClass::Review
    )
}

/// True for the statuses in which CloudFormation undoes the operation.
pub fn is_rollback(status: &str) -> bool {
    status.contains("ROLLBACK") && status.ends_with("_IN_PROGRESS")
}

/// The statuses with which a stack-level event starts an operation.
pub fn starts_operation(status: &str) -> bool {
    matches!(
        status,
        "CREATE_IN_PROGRESS"
            | "UPDATE_IN_PROGRESS"
            | "DELETE_IN_PROGRESS"
            | "IMPORT_IN_PROGRESS"
            // RollbackStack and CancelUpdateStack start an operation of their own.
            | "ROLLBACK_IN_PROGRESS"
            | "UPDATE_ROLLBACK_IN_PROGRESS"
    )
}

/// What happened to one resource, from its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceClass {
    InProgress,
    Complete,
    Failed,
    /// DELETE_SKIPPED (retained) and the like: finished without doing anything.
    Skipped,
}

pub fn classify_resource(status: &str) -> ResourceClass {
    if status.ends_with("_IN_PROGRESS") {
        ResourceClass::InProgress
    } else if status.ends_with("_FAILED") {
        ResourceClass::Failed
    } else if status.ends_with("_SKIPPED") {
        ResourceClass::Skipped
    } else {
        ResourceClass::Complete
    }
}

/// The action's `outcome` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Succeeded,
    Failed,
    RolledBack,
    NoChanges,
    TimedOut,
    Cancelled,
    /// `on-superseded: skip`: a newer commit of the same ref was queued behind this run, which
    /// left the queue without deploying.
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::RolledBack => "rolled-back",
            Outcome::NoChanges => "no-changes",
            Outcome::TimedOut => "timed-out",
            Outcome::Cancelled => "cancelled",
            Outcome::Skipped => "skipped",
        }
    }

    /// Whether the step should succeed with this outcome (a cancelled step fails: the runner
    /// marks it cancelled anyway).
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Outcome::Succeeded | Outcome::NoChanges | Outcome::Skipped
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of an operation that ended with the ROOT stack in `status`; None while the
/// status is not terminal.
pub fn outcome_of(status: &str) -> Option<Outcome> {
    match classify(status) {
        StackClass::InProgress | StackClass::Review => None,
        StackClass::Succeeded => Some(Outcome::Succeeded),
        StackClass::RolledBack => Some(Outcome::RolledBack),
        StackClass::Failed => Some(Outcome::Failed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IN_PROGRESS: &[&str] = &[
        "CREATE_IN_PROGRESS",
        "DELETE_IN_PROGRESS",
        "UPDATE_IN_PROGRESS",
        "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
        "ROLLBACK_IN_PROGRESS",
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
        "IMPORT_IN_PROGRESS",
        "IMPORT_ROLLBACK_IN_PROGRESS",
    ];

    #[test]
    fn every_documented_status_has_its_class() {
        for s in IN_PROGRESS {
            assert_eq!(classify(s), StackClass::InProgress, "{s}");
            assert!(!is_terminal(s), "{s}");
            assert_eq!(outcome_of(s), None, "{s}");
        }
        assert_eq!(classify("REVIEW_IN_PROGRESS"), StackClass::Review);
        assert!(
            !is_in_progress("REVIEW_IN_PROGRESS"),
            "nothing runs in review: the guard must not wait on it"
        );
        for s in [
            "CREATE_COMPLETE",
            "UPDATE_COMPLETE",
            "DELETE_COMPLETE",
            "IMPORT_COMPLETE",
        ] {
            assert_eq!(outcome_of(s), Some(Outcome::Succeeded), "{s}");
        }
        for s in ["UPDATE_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"] {
            assert_eq!(outcome_of(s), Some(Outcome::RolledBack), "{s}");
        }
        for s in [
            "ROLLBACK_COMPLETE",
            "ROLLBACK_FAILED",
            "DELETE_FAILED",
            "UPDATE_ROLLBACK_FAILED",
            "IMPORT_ROLLBACK_FAILED",
            "CREATE_FAILED",
            "UPDATE_FAILED",
        ] {
            assert_eq!(outcome_of(s), Some(Outcome::Failed), "{s}");
        }
    }

    #[test]
    fn unknown_statuses_fall_back_on_their_suffix() {
        assert_eq!(classify("EXPORT_IN_PROGRESS"), StackClass::InProgress);
        assert_eq!(classify("EXPORT_COMPLETE"), StackClass::Succeeded);
        assert_eq!(classify("EXPORT_ROLLBACK_COMPLETE"), StackClass::RolledBack);
        assert_eq!(classify("EXPORT_FAILED"), StackClass::Failed);
        assert_eq!(classify("SOMETHING_ELSE"), StackClass::Failed);
    }

    #[test]
    fn operation_starts_and_rollbacks() {
        assert!(starts_operation("UPDATE_IN_PROGRESS"));
        assert!(!starts_operation("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"));
        assert!(!starts_operation("REVIEW_IN_PROGRESS"));
        assert!(is_rollback("UPDATE_ROLLBACK_IN_PROGRESS"));
        assert!(is_rollback("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"));
        assert!(!is_rollback("UPDATE_ROLLBACK_COMPLETE"));
        assert!(!is_rollback("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"));
    }

    #[test]
    fn resource_statuses() {
        assert_eq!(
            classify_resource("CREATE_IN_PROGRESS"),
            ResourceClass::InProgress
        );
        assert_eq!(
            classify_resource("UPDATE_COMPLETE"),
            ResourceClass::Complete
        );
        assert_eq!(classify_resource("DELETE_FAILED"), ResourceClass::Failed);
        assert_eq!(classify_resource("DELETE_SKIPPED"), ResourceClass::Skipped);
    }

    #[test]
    fn outcome_names_match_the_action_outputs() {
        let all = [
            Outcome::Succeeded,
            Outcome::Failed,
            Outcome::RolledBack,
            Outcome::NoChanges,
            Outcome::TimedOut,
            Outcome::Cancelled,
        ];
        let names: Vec<_> = all.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            names,
            [
                "succeeded",
                "failed",
                "rolled-back",
                "no-changes",
                "timed-out",
                "cancelled"
            ]
        );
        for o in all {
            assert_eq!(serde_json::to_string(&o).ok(), Some(format!("\"{o}\"")));
        }
        assert!(Outcome::NoChanges.is_success());
        assert!(!Outcome::RolledBack.is_success());
    }
}
