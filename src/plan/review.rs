//! A plan as a reviewer reads it: the change set (and its nested change sets) flattened into
//! rows, each resource change with its risk; or why there is nothing to review. Pure: mode plan
//! builds it from what CloudFormation said, `render.rs` turns it into words.

use serde::Serialize;

use super::risk::{self, Assessment, Risk};
use crate::stack::client::ResourceChange;

/// One stack's changes: the root's, or a nested stack's (`path` the logical ids from the root
/// down, e.g. `["Data"]`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StackChanges {
    pub(crate) path: Vec<String>,
    pub(crate) changes: Vec<ResourceChange>,
}

/// One resource change and what it risks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// `Data/Inner` for a nested stack's resource; empty for the root's.
    pub(crate) stack_path: String,
    pub(crate) change: ResourceChange,
    pub(crate) assessment: Assessment,
}

impl Row {
    /// The resource as a reviewer names it: `Data/Table`, or `Table` in the root stack.
    pub(crate) fn resource(&self) -> String {
        if self.stack_path.is_empty() {
            self.change.logical_id.clone()
        } else {
            format!("{}/{}", self.stack_path, self.change.logical_id)
        }
    }
}

/// What came of creating the change set.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// Ready to review (and to execute later by name): every change, nested ones after the
    /// nested stack's own row.
    Changes(Vec<Row>),
    /// CloudFormation says the template and parameters change nothing.
    NoChanges { reason: String },
    /// CloudFormation could not create it: its reason, and what DescribeEvents said (early
    /// validation: which resource and why).
    Failed {
        reason: String,
        failures: Vec<String>,
    },
}

/// The plan of one stack.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Review {
    pub(crate) stack: String,
    pub(crate) change_set_name: String,
    pub(crate) change_set_id: Option<String>,
    pub(crate) outcome: Outcome,
    /// The estimator's expectation for this change set, in words (`about 4m 10s (3m 00s–6m
    /// 20s), low confidence`); None when the plan has no changes.
    pub(crate) expected: Option<String>,
}

impl Review {
    /// The most severe risk of any change (`none` without changes).
    pub(crate) fn risk(&self) -> Risk {
        let assessments: Vec<Assessment> =
            self.rows().iter().map(|r| r.assessment.clone()).collect();
        risk::overall(&assessments)
    }

    pub(crate) fn rows(&self) -> &[Row] {
        match &self.outcome {
            Outcome::Changes(rows) => rows,
            _ => &[],
        }
    }
}

/// The rows of a change set tree, in the order a reviewer reads it: each stack's changes in
/// CloudFormation's order, a nested stack's own changes right after the row of the
/// `AWS::CloudFormation::Stack` resource that holds them.
pub(crate) fn rows(stacks: &[StackChanges]) -> Vec<Row> {
    let mut out = Vec::new();
    if let Some(root) = stacks.iter().find(|s| s.path.is_empty()) {
        push_stack(root, stacks, &mut out);
    }
    out
}

fn push_stack(stack: &StackChanges, all: &[StackChanges], out: &mut Vec<Row>) {
    let path = stack.path.join("/");
    for (change, assessment) in stack.changes.iter().zip(risk::assess(&stack.changes)) {
        out.push(Row {
            stack_path: path.clone(),
            change: change.clone(),
            assessment,
        });
        let mut child_path = stack.path.clone();
        child_path.push(change.logical_id.clone());
        if let Some(child) = all.iter().find(|s| s.path == child_path) {
            push_stack(child, all, out);
        }
    }
}

/// The `changes` output: one JSON object per resource change, for later steps to read.
#[derive(Debug, Serialize)]
struct JsonRow<'a> {
    /// `""` for the root stack, `Data/Inner` for nested ones.
    stack_path: &'a str,
    #[serde(flatten)]
    change: &'a ResourceChange,
    risk: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
}

/// GitHub keeps a step output up to 1 MB; a little less leaves room for the other outputs.
pub(crate) const MAX_CHANGES_OUTPUT: usize = 900_000;

/// The `changes` output (a JSON array; `[]` without changes). Without the resources' whole
/// Before/AfterContext (the summary has the values that change); beyond
/// [`MAX_CHANGES_OUTPUT`] without the details either, so every change is still listed.
pub(crate) fn changes_json(review: &Review) -> String {
    let json = |details: bool| {
        let changes: Vec<ResourceChange> = review
            .rows()
            .iter()
            .map(|r| ResourceChange {
                before_context: None,
                after_context: None,
                details: if details {
                    r.change.details.clone()
                } else {
                    Vec::new()
                },
                ..r.change.clone()
            })
            .collect();
        let rows: Vec<JsonRow<'_>> = review
            .rows()
            .iter()
            .zip(&changes)
            .map(|(r, change)| JsonRow {
                stack_path: &r.stack_path,
                change,
                risk: r.assessment.risk.as_str(),
                reason: &r.assessment.reason,
            })
            .collect();
        serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into())
    };
    let full = json(true);
    if full.len() <= MAX_CHANGES_OUTPUT {
        full
    } else {
        json(false)
    }
}

/// A resource change as the tests of `plan` write it.
#[cfg(test)]
pub(crate) fn change(
    id: &str,
    kind: &str,
    action: &str,
    replacement: Option<&str>,
) -> ResourceChange {
    ResourceChange {
        logical_id: id.into(),
        resource_type: kind.into(),
        action: action.into(),
        replacement: replacement.map(str::to_string),
        scope: vec!["Properties".into()],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_changes_follow_their_stack_row_and_the_worst_risk_wins() {
        let stacks = vec![
            StackChanges {
                path: vec!["Data".into()],
                changes: vec![change(
                    "Table",
                    "AWS::DynamoDB::Table",
                    "Modify",
                    Some("True"),
                )],
            },
            StackChanges {
                path: vec![],
                changes: vec![
                    change(
                        "Data",
                        "AWS::CloudFormation::Stack",
                        "Modify",
                        Some("False"),
                    ),
                    change("Role", "AWS::IAM::Role", "Add", None),
                ],
            },
        ];
        let rows = rows(&stacks);
        let names: Vec<String> = rows.iter().map(Row::resource).collect();
        assert_eq!(names, ["Data", "Data/Table", "Role"]);
        let review = Review {
            stack: "app".into(),
            change_set_name: "dc-1".into(),
            change_set_id: None,
            outcome: Outcome::Changes(rows),
            expected: None,
        };
        assert_eq!(review.risk(), Risk::Dangerous);
        let json: serde_json::Value = serde_json::from_str(&changes_json(&review)).unwrap();
        assert_eq!(json[1]["stack_path"], "Data");
        assert_eq!(json[1]["logical_id"], "Table");
        assert_eq!(json[1]["risk"], "dangerous");
        assert_eq!(json[2]["risk"], "review");
        assert!(json[0].get("reason").is_none());
    }

    #[test]
    fn the_changes_output_stays_within_githubs_limit_for_outputs() {
        let detail = crate::stack::client::ChangeDetail {
            attribute: "Properties".into(),
            name: Some("Code".into()),
            before: Some("b".repeat(5_000)),
            after: Some("a".repeat(5_000)),
            ..Default::default()
        };
        let changes: Vec<ResourceChange> = (0..200)
            .map(|i| ResourceChange {
                details: vec![detail.clone()],
                before_context: Some("{}".into()),
                ..change(
                    &format!("Fn{i}"),
                    "AWS::Lambda::Function",
                    "Modify",
                    Some("False"),
                )
            })
            .collect();
        let review = Review {
            stack: "app".into(),
            change_set_name: "dc-1".into(),
            change_set_id: None,
            outcome: Outcome::Changes(rows(&[StackChanges {
                path: vec![],
                changes,
            }])),
            expected: None,
        };
        let out = changes_json(&review);
        assert!(out.len() <= MAX_CHANGES_OUTPUT, "{}", out.len());
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            json.as_array().map(Vec::len),
            Some(200),
            "every change listed"
        );
        assert!(json[0].get("before_context").is_none());
    }

    #[test]
    fn no_changes_and_failures_have_no_risk() {
        let review = Review {
            stack: "app".into(),
            change_set_name: "dc-1".into(),
            change_set_id: None,
            outcome: Outcome::NoChanges {
                reason: "didn't contain changes".into(),
            },
            expected: None,
        };
        assert_eq!(review.risk(), Risk::None);
        assert_eq!(changes_json(&review), "[]");
    }
}
