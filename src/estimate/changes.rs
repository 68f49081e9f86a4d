//! What a change set tells the estimator: exactly which resources this operation will work on,
//! and how. From `describe-change-set` (the action's own call, or the AWS CLI's JSON for
//! `estimate --change-set`) to the work CloudFormation will do:
//!
//! - `Add`: the resource is created (`CREATE_*` events);
//! - `Modify`, `Replacement: False`: updated in place (`UPDATE_*`);
//! - `Modify`, `Replacement: True`: a new physical resource is created under the same logical
//!   id (`UPDATE_*` events that take as long as a create), and the old one is deleted in the
//!   cleanup phase (`DELETE_*` after every change is done);
//! - `Modify`, `Replacement: Conditional`: either of the two, unknown until it runs;
//! - `Remove`: deleted in the cleanup phase;
//! - `Import`: imported (`IMPORT_*`); `Dynamic`: may or may not be updated.

use serde::Deserialize;
use thiserror::Error;

use crate::history::record::{HistoryRecord, describe_json_error};
use crate::stack::client::ResourceChange;

/// One piece of work the change set announces.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Work {
    pub logical_id: String,
    pub resource_type: String,
    /// The action its events will carry (`CREATE`, `UPDATE`, `DELETE`, `IMPORT`).
    pub action: &'static str,
    /// The action whose durations it takes (`CREATE` for a replacement).
    pub like: &'static str,
    /// Happens in the cleanup phase, after every other change.
    pub cleanup: bool,
    /// Probability that it takes `like`'s time instead of `action`'s (a conditional
    /// replacement), else 0.
    pub maybe_like: f64,
}

/// The work a change set announces, forward changes first.
pub(crate) fn work_of(changes: &[ResourceChange]) -> Vec<Work> {
    let mut forward = Vec::new();
    let mut cleanup = Vec::new();
    for c in changes {
        let w = |action, like, cleanup, maybe_like| Work {
            logical_id: c.logical_id.clone(),
            resource_type: c.resource_type.clone(),
            action,
            like,
            cleanup,
            maybe_like,
        };
        match (c.action.as_str(), c.replacement.as_deref()) {
            ("Add", _) => forward.push(w("CREATE", "CREATE", false, 0.0)),
            ("Import", _) => forward.push(w("IMPORT", "IMPORT", false, 0.0)),
            ("Remove", _) => cleanup.push(w("DELETE", "DELETE", true, 0.0)),
            ("Modify", Some("True")) => {
                forward.push(w("UPDATE", "CREATE", false, 0.0));
                cleanup.push(w("DELETE", "DELETE", true, 0.0));
            }
            ("Modify", Some("Conditional")) => forward.push(w("UPDATE", "UPDATE", false, 0.5)),
            // Modify in place, Dynamic, and whatever CloudFormation adds later: an update.
            _ => forward.push(w("UPDATE", "UPDATE", false, 0.0)),
        }
    }
    forward.extend(cleanup);
    forward
}

/// The change set a past operation would have had: the resources it worked on, forward (a
/// CREATE is an Add; an UPDATE a Modify, a replacement when the same resource was also
/// deleted in the cleanup; a delete of its own a Remove). Used to replay history as if each
/// past run had come with its change set.
pub(crate) fn of_record(record: &HistoryRecord) -> Vec<ResourceChange> {
    let forward: Vec<_> = record.forward_resources().collect();
    let mut out: Vec<ResourceChange> = Vec::new();
    for r in &forward {
        let also = |action: &str| {
            forward
                .iter()
                .any(|o| o.logical_id == r.logical_id && o.action == action)
        };
        let (action, replacement) = match r.action.as_str() {
            "CREATE" => ("Add", None),
            "UPDATE" => (
                "Modify",
                Some(if also("DELETE") { "True" } else { "False" }),
            ),
            "DELETE" if !also("UPDATE") => ("Remove", None),
            "IMPORT" => ("Import", None),
            _ => continue,
        };
        if out.iter().any(|c| c.logical_id == r.logical_id) {
            continue;
        }
        out.push(ResourceChange {
            logical_id: r.logical_id.clone(),
            resource_type: r.resource_type.clone(),
            action: action.to_string(),
            replacement: replacement.map(str::to_string),
            scope: Vec::new(),
            ..Default::default()
        });
    }
    out
}

/// `describe-change-set` as the AWS CLI prints it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeChangeSetOutput {
    #[serde(default)]
    stack_name: Option<String>,
    changes: Vec<CliChange>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CliChange {
    #[serde(rename = "Type", default)]
    kind: Option<String>,
    #[serde(default)]
    resource_change: Option<CliResourceChange>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CliResourceChange {
    action: String,
    logical_resource_id: String,
    resource_type: String,
    #[serde(default)]
    replacement: Option<String>,
    #[serde(default)]
    scope: Vec<String>,
}

/// A parsed change set: the stack it is for (when the file says) and its resource changes.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeSetFile {
    pub stack_name: Option<String>,
    pub changes: Vec<ResourceChange>,
}

#[derive(Debug, Error)]
#[error("{}", describe_json_error(.0, CHANGE_SET_EXPECTED))]
pub struct ChangeSetParseError(serde_json::Error);

const CHANGE_SET_EXPECTED: &str = "expected the output of `aws cloudformation describe-change-set --stack-name S --change-set-name C` \
     ({\"StackName\", \"Changes\": [{\"Type\": \"Resource\", \"ResourceChange\": {\"Action\", \"LogicalResourceId\", \"ResourceType\", \"Replacement\", ...}}]})";

/// Parses `aws cloudformation describe-change-set` output. Changes other than resource
/// changes (none exist today) are ignored.
pub fn parse_describe_change_set(text: &str) -> Result<ChangeSetFile, ChangeSetParseError> {
    let out: DescribeChangeSetOutput = serde_json::from_str(text).map_err(ChangeSetParseError)?;
    let changes = out
        .changes
        .into_iter()
        .filter(|c| c.kind.as_deref().is_none_or(|k| k == "Resource"))
        .filter_map(|c| c.resource_change)
        .map(|c| ResourceChange {
            logical_id: c.logical_resource_id,
            resource_type: c.resource_type,
            action: c.action,
            replacement: c.replacement,
            scope: c.scope,
            ..Default::default()
        })
        .collect();
    Ok(ChangeSetFile {
        stack_name: out.stack_name,
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(action: &str, replacement: Option<&str>) -> ResourceChange {
        ResourceChange {
            logical_id: "X".into(),
            resource_type: "AWS::S3::Bucket".into(),
            action: action.into(),
            replacement: replacement.map(str::to_string),
            scope: vec![],
            ..Default::default()
        }
    }

    #[test]
    fn each_kind_of_change_is_the_work_cloudformation_does() {
        let work = work_of(&[
            change("Remove", None),
            change("Modify", Some("True")),
            change("Add", None),
            change("Modify", Some("False")),
            change("Modify", Some("Conditional")),
        ]);
        let summary: Vec<(&str, &str, bool)> =
            work.iter().map(|w| (w.action, w.like, w.cleanup)).collect();
        assert_eq!(
            summary,
            vec![
                ("UPDATE", "CREATE", false), // a replacement takes a create's time…
                ("CREATE", "CREATE", false),
                ("UPDATE", "UPDATE", false),
                ("UPDATE", "UPDATE", false),
                ("DELETE", "DELETE", true), // …and its old resource goes in the cleanup,
                ("DELETE", "DELETE", true), // after every forward change, as removals do
            ]
        );
        assert_eq!(work[3].maybe_like, 0.5);
    }

    #[test]
    fn the_cli_output_is_read_and_errors_say_what_was_expected() {
        let text = r#"{"StackName": "app", "ChangeSetName": "c", "Status": "CREATE_COMPLETE",
            "Changes": [{"Type": "Resource", "HookInvocationCount": 0, "ResourceChange": {
              "Action": "Modify", "LogicalResourceId": "Fn", "PhysicalResourceId": "fn-1",
              "ResourceType": "AWS::Lambda::Function", "Replacement": "False",
              "Scope": ["Properties"], "Details": [{"Target": {"Attribute": "Properties"}}]}},
              {"Type": "Resource", "ResourceChange": {"Action": "Remove",
              "LogicalResourceId": "Old", "ResourceType": "AWS::SQS::Queue"}}]}"#;
        let cs = parse_describe_change_set(text).unwrap();
        assert_eq!(cs.stack_name.as_deref(), Some("app"));
        assert_eq!(cs.changes.len(), 2);
        assert_eq!(cs.changes[0].replacement.as_deref(), Some("False"));
        assert_eq!(cs.changes[0].scope, vec!["Properties".to_string()]);
        assert_eq!(cs.changes[1].action, "Remove");

        let err = parse_describe_change_set(r#"{"StackEvents": []}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `Changes`"), "{err}");
        assert!(err.contains("describe-change-set"), "{err}");
        assert!(err.starts_with("line 1, column"), "{err}");
    }
}
