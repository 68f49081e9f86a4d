//! The deploy guard's verdict (mode deploy, #16): may this change set run? Pure: the change
//! set's resource changes, classified by [`super::risk`], against `on-risk` and
//! `allow-replacement`.
//!
//! Only `dangerous` changes (a stateful resource replaced or removed) can stop a deployment;
//! `review` changes (access) are reported, never stopped: a reviewer reads them in the plan.
//! A dangerous change whose logical ID `allow-replacement` lists proceeds and is said to be
//! allowed. An entry of `allow-replacement` that this change set does not use is reported, so
//! that a permanent allowance left in a workflow is noticed before it allows a later mistake.

use super::review::{StackChanges, rows};
use super::risk::{Assessment, Risk, overall};
use crate::config::{Guard, OnRisk};

/// What the guard decided, with every resource that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// The change set's risk: its most severe change's.
    pub(crate) risk: Risk,
    /// Dangerous changes that `allow-replacement` does not list.
    pub(crate) at_risk: Vec<Assessment>,
    /// Dangerous changes that `allow-replacement` lists: they proceed.
    pub(crate) allowed: Vec<Assessment>,
    /// Changes a reviewer should read (access); never a reason to stop.
    pub(crate) review: Vec<Assessment>,
    /// `allow-replacement` entries this change set neither replaces nor removes.
    pub(crate) unused_allowances: Vec<String>,
    /// Stop before executing: something is at risk and `on-risk` is `fail`.
    pub(crate) stop: bool,
}

/// The verdict on a change set's resource changes, nested change sets included: a nested
/// stack's resource is named `Nested/Logical`, as the plan names it and `allow-replacement`
/// lists it.
pub(crate) fn judge(stacks: &[StackChanges], guard: &Guard) -> Verdict {
    let assessments: Vec<Assessment> = rows(stacks)
        .into_iter()
        .map(|row| Assessment {
            logical_id: row.resource(),
            ..row.assessment
        })
        .collect();
    let mut verdict = Verdict {
        risk: overall(&assessments),
        at_risk: Vec::new(),
        allowed: Vec::new(),
        review: Vec::new(),
        unused_allowances: Vec::new(),
        stop: false,
    };
    for assessment in assessments {
        match assessment.risk {
            Risk::Dangerous if guard.allow_replacement.contains(&assessment.logical_id) => {
                verdict.allowed.push(assessment)
            }
            Risk::Dangerous => verdict.at_risk.push(assessment),
            Risk::Review => verdict.review.push(assessment),
            Risk::None => {}
        }
    }
    verdict.unused_allowances = guard
        .allow_replacement
        .iter()
        .filter(|id| !verdict.allowed.iter().any(|a| &a.logical_id == *id))
        .cloned()
        .collect();
    verdict.stop = !verdict.at_risk.is_empty() && guard.on_risk == OnRisk::Fail;
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoppedChangeSet;
    use crate::stack::client::ResourceChange;

    fn root(changes: &[ResourceChange]) -> Vec<StackChanges> {
        vec![StackChanges {
            path: Vec::new(),
            changes: changes.to_vec(),
        }]
    }

    use crate::plan::review::change;

    fn guard(on_risk: OnRisk, allow: &[&str]) -> Guard {
        Guard {
            on_risk,
            allow_replacement: allow.iter().map(|s| s.to_string()).collect(),
            stopped_change_set: StoppedChangeSet::Delete,
        }
    }

    fn ids(assessments: &[Assessment]) -> Vec<&str> {
        assessments.iter().map(|a| a.logical_id.as_str()).collect()
    }

    fn changes() -> Vec<ResourceChange> {
        vec![
            change("Orders", "AWS::DynamoDB::Table", "Modify", Some("True")),
            change("Uploads", "AWS::S3::Bucket", "Remove", None),
            change("Fn", "AWS::Lambda::Function", "Modify", Some("True")),
            change("Role", "AWS::IAM::Role", "Modify", Some("False")),
            change("Logs", "AWS::Logs::LogGroup", "Modify", Some("False")),
        ]
    }

    #[test]
    fn a_stateful_replacement_or_removal_not_allowed_stops_the_deployment() {
        let verdict = judge(&root(&changes()), &guard(OnRisk::Fail, &[]));
        assert!(verdict.stop);
        assert_eq!(verdict.risk, Risk::Dangerous);
        assert_eq!(ids(&verdict.at_risk), ["Orders", "Uploads"]);
        assert!(verdict.at_risk[0].reason.contains("the table's items"));
        // Replacing a function loses nothing; an IAM change is for review, never a stop.
        assert_eq!(ids(&verdict.review), ["Role"]);
        assert!(verdict.allowed.is_empty());
    }

    #[test]
    fn allowed_resources_proceed_and_only_those() {
        let verdict = judge(&root(&changes()), &guard(OnRisk::Fail, &["Orders"]));
        assert!(verdict.stop, "Uploads is still at risk");
        assert_eq!(ids(&verdict.allowed), ["Orders"]);
        assert_eq!(ids(&verdict.at_risk), ["Uploads"]);

        let verdict = judge(
            &root(&changes()),
            &guard(OnRisk::Fail, &["Orders", "Uploads"]),
        );
        assert!(!verdict.stop);
        assert_eq!(ids(&verdict.allowed), ["Orders", "Uploads"]);
        assert!(verdict.at_risk.is_empty());
    }

    #[test]
    fn warn_proceeds_but_keeps_what_is_at_risk() {
        let verdict = judge(&root(&changes()), &guard(OnRisk::Warn, &[]));
        assert!(!verdict.stop);
        assert_eq!(ids(&verdict.at_risk), ["Orders", "Uploads"]);
    }

    #[test]
    fn nothing_at_risk_never_stops_and_an_unused_allowance_is_reported() {
        let safe = [
            change("Fn", "AWS::Lambda::Function", "Modify", Some("True")),
            change("Orders", "AWS::DynamoDB::Table", "Modify", Some("False")),
        ];
        let verdict = judge(&root(&safe), &guard(OnRisk::Fail, &["Orders", "Gone"]));
        assert!(!verdict.stop);
        assert_eq!(verdict.risk, Risk::None);
        assert!(verdict.at_risk.is_empty() && verdict.allowed.is_empty());
        assert_eq!(verdict.unused_allowances, ["Orders", "Gone"]);
        assert!(!judge(&[], &guard(OnRisk::Fail, &[])).stop);
    }

    #[test]
    fn a_conditional_replacement_counts_as_one() {
        let maybe = [change(
            "Db",
            "AWS::RDS::DBInstance",
            "Modify",
            Some("Conditional"),
        )];
        assert!(judge(&root(&maybe), &guard(OnRisk::Fail, &[])).stop);
        assert!(!judge(&root(&maybe), &guard(OnRisk::Fail, &["Db"])).stop);
    }

    #[test]
    fn a_nested_stacks_resource_is_named_by_its_path() {
        let stacks = vec![
            StackChanges {
                path: Vec::new(),
                changes: vec![ResourceChange {
                    change_set_id: Some("arn:aws:cloudformation:us-east-1:1:changeSet/n/1".into()),
                    ..change(
                        "Data",
                        "AWS::CloudFormation::Stack",
                        "Modify",
                        Some("False"),
                    )
                }],
            },
            StackChanges {
                path: vec!["Data".into()],
                changes: vec![change(
                    "Orders",
                    "AWS::DynamoDB::Table",
                    "Modify",
                    Some("True"),
                )],
            },
        ];
        let verdict = judge(&stacks, &guard(OnRisk::Fail, &["Orders"]));
        assert!(verdict.stop, "Orders of the root is not Data/Orders");
        assert_eq!(ids(&verdict.at_risk), ["Data/Orders"]);
        assert_eq!(verdict.unused_allowances, ["Orders"]);
        let verdict = judge(&stacks, &guard(OnRisk::Fail, &["Data/Orders"]));
        assert!(!verdict.stop);
        assert_eq!(ids(&verdict.allowed), ["Data/Orders"]);
    }
}
