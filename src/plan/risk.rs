//! What a change set risks, per resource change: `none`, `review` (a person should read it:
//! access changes) or `dangerous` (data can be lost: a stateful resource replaced or removed).
//!
//! The one list of stateful resource types is [`STATEFUL`]; the one list of access types is
//! [`ACCESS`]; the guide quotes both (docs/guide.md, mode plan and the deploy guard).

use crate::stack::client::ResourceChange;

/// How much a change needs a reviewer, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Risk {
    None,
    Review,
    Dangerous,
}

impl Risk {
    /// The `risk` output's words.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Risk::None => "none",
            Risk::Review => "review",
            Risk::Dangerous => "dangerous",
        }
    }
}

/// Resource types whose replacement or removal loses data, with what is lost (said to the
/// reviewer). A replacement creates a new, empty resource and deletes the old one unless its
/// `UpdateReplacePolicy` retains it; a removal deletes it unless its `DeletionPolicy` does.
pub(crate) const STATEFUL: &[(&str, &str)] = &[
    ("AWS::RDS::DBInstance", "the database"),
    ("AWS::RDS::DBCluster", "the database cluster"),
    ("AWS::RDS::GlobalCluster", "the global database"),
    ("AWS::DocDB::DBCluster", "the database cluster"),
    ("AWS::Neptune::DBCluster", "the graph database"),
    ("AWS::Redshift::Cluster", "the warehouse"),
    ("AWS::DynamoDB::Table", "the table's items"),
    (
        "AWS::DynamoDB::GlobalTable",
        "the table's items in every region",
    ),
    ("AWS::S3::Bucket", "the bucket's objects"),
    ("AWS::EFS::FileSystem", "the file system's files"),
    ("AWS::FSx::FileSystem", "the file system's files"),
    (
        "AWS::KMS::Key",
        "the key, and with it everything encrypted under it",
    ),
    ("AWS::Cognito::UserPool", "the users and their passwords"),
    ("AWS::ElastiCache::CacheCluster", "the cache's data"),
    ("AWS::ElastiCache::ReplicationGroup", "the cache's data"),
    ("AWS::ElastiCache::ServerlessCache", "the cache's data"),
    ("AWS::MemoryDB::Cluster", "the database"),
    ("AWS::OpenSearchService::Domain", "the search indices"),
    ("AWS::Elasticsearch::Domain", "the search indices"),
    ("AWS::Logs::LogGroup", "the log events"),
    ("AWS::SecretsManager::Secret", "the secret's value"),
    ("AWS::ECR::Repository", "the images"),
    ("AWS::Backup::BackupVault", "the backups"),
    ("AWS::EC2::Volume", "the volume's data"),
    ("AWS::Timestream::Table", "the time series"),
];

/// Resource types that grant or restrict access: any change to them is for a person to read.
/// A prefix ending in `::` stands for every type of that service.
pub(crate) const ACCESS: &[&str] = &[
    "AWS::IAM::",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::EC2::SecurityGroupEgress",
    "AWS::Lambda::Permission",
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::TopicPolicy",
];

/// One resource change and what it risks, with the reason in words a reviewer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assessment {
    pub(crate) logical_id: String,
    pub(crate) resource_type: String,
    pub(crate) risk: Risk,
    /// Empty for [`Risk::None`].
    pub(crate) reason: String,
}

/// What is lost if this type's resource is replaced or removed; `None` for stateless types.
pub(crate) fn stateful(resource_type: &str) -> Option<&'static str> {
    STATEFUL
        .iter()
        .find(|(t, _)| *t == resource_type)
        .map(|(_, lost)| *lost)
}

fn grants_access(resource_type: &str) -> bool {
    ACCESS.iter().any(|a| {
        if a.ends_with("::") {
            resource_type.starts_with(a)
        } else {
            resource_type == *a
        }
    })
}

/// Classifies one change. The most severe rule wins: losing data outranks an access change.
pub(crate) fn classify(change: &ResourceChange) -> Assessment {
    let (risk, reason) = risk_of(change);
    Assessment {
        logical_id: change.logical_id.clone(),
        resource_type: change.resource_type.clone(),
        risk,
        reason,
    }
}

/// Every change of a change set (DescribeChangeSet's `Changes`, every page), classified in
/// CloudFormation's order: what mode plan renders and the deploy guard decides on.
pub(crate) fn assess(changes: &[ResourceChange]) -> Vec<Assessment> {
    changes.iter().map(classify).collect()
}

/// A resource attribute (`DeletionPolicy`, `UpdateReplacePolicy`) from a Before/AfterContext
/// (JSON text; only with `IncludePropertyValues`).
fn attribute_in(context: Option<&str>, attribute: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(context?).ok()?;
    value.get(attribute)?.as_str().map(str::to_string)
}

/// Whether a policy keeps the data when CloudFormation lets go of the resource.
fn keeps(policy: Option<&str>) -> bool {
    matches!(policy, Some("Retain" | "Snapshot" | "RetainExceptOnCreate"))
}

fn risk_of(change: &ResourceChange) -> (Risk, String) {
    let kind = &change.resource_type;
    if let Some(lost) = stateful(kind) {
        let before = change.before_context.as_deref();
        match (change.action.as_str(), change.replacement.as_deref()) {
            ("Remove", _) if keeps(attribute_in(before, "DeletionPolicy").as_deref()) => {
                let policy = attribute_in(before, "DeletionPolicy").unwrap_or_default();
                return (
                    Risk::Review,
                    format!(
                        "{kind} leaves the stack; its DeletionPolicy {policy} keeps {lost}, outside CloudFormation from now on"
                    ),
                );
            }
            ("Modify", Some("True" | "Conditional"))
                if keeps(attribute_in(before, "UpdateReplacePolicy").as_deref()) =>
            {
                let policy = attribute_in(before, "UpdateReplacePolicy").unwrap_or_default();
                return (
                    Risk::Dangerous,
                    format!(
                        "{kind} is replaced: UpdateReplacePolicy {policy} keeps the old one with {lost}, but the stack and everything referring to it move to a new, empty one"
                    ),
                );
            }
            ("Remove", _) => {
                return (
                    Risk::Dangerous,
                    format!(
                        "{kind} is removed: deleting it deletes {lost}, unless its DeletionPolicy is Retain or Snapshot"
                    ),
                );
            }
            ("Modify", Some("True")) => {
                return (
                    Risk::Dangerous,
                    format!(
                        "{kind} is replaced: a new, empty one is created and the old one is deleted with {lost}, unless its UpdateReplacePolicy is Retain or Snapshot"
                    ),
                );
            }
            ("Modify", Some("Conditional")) => {
                return (
                    Risk::Dangerous,
                    format!(
                        "{kind} may be replaced (Conditional: it depends on a value known only during the update); if it is, the old one is deleted with {lost}"
                    ),
                );
            }
            ("Modify", _)
                if change
                    .scope
                    .iter()
                    .any(|s| s == "DeletionPolicy" || s == "UpdateReplacePolicy") =>
            {
                // With values: say from what to what, and whether the data stops being kept.
                let after = change.after_context.as_deref();
                for policy in ["DeletionPolicy", "UpdateReplacePolicy"] {
                    let (was, will) = (attribute_in(before, policy), attribute_in(after, policy));
                    if keeps(was.as_deref()) && !keeps(will.as_deref()) {
                        return (
                            Risk::Review,
                            format!(
                                "{kind}'s {policy} goes from {} to {}: a later removal or replacement deletes {lost}",
                                was.unwrap_or_default(),
                                will.unwrap_or_else(|| "Delete (the default)".into())
                            ),
                        );
                    }
                }
                return (
                    Risk::Review,
                    format!(
                        "{kind}'s DeletionPolicy or UpdateReplacePolicy changes: check it still keeps {lost}"
                    ),
                );
            }
            // Dynamic: CloudFormation cannot tell yet (a nested stack, a macro); a reviewer can.
            ("Dynamic", _) => {
                return (
                    Risk::Review,
                    format!(
                        "{kind} changes in a way CloudFormation can only tell during the update (Dynamic): check it keeps {lost}"
                    ),
                );
            }
            _ => {}
        }
    }
    // A removed nested stack gets no change set of its own: everything in it is deleted
    // unseen, stateful resources included.
    if kind == "AWS::CloudFormation::Stack" && change.action == "Remove" {
        return (
            Risk::Review,
            format!(
                "{kind} is removed: every resource in the nested stack is deleted, and the plan cannot list them"
            ),
        );
    }
    if grants_access(kind) {
        let verb = match change.action.as_str() {
            "Add" => "is added",
            "Remove" => "is removed",
            _ => "changes",
        };
        return (
            Risk::Review,
            format!("{kind} {verb}: it decides who can reach or do what"),
        );
    }
    (Risk::None, String::new())
}

/// The change set's risk: its most severe change's (`none` for no changes).
pub(crate) fn overall(assessments: &[Assessment]) -> Risk {
    assessments
        .iter()
        .map(|a| a.risk)
        .max()
        .unwrap_or(Risk::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(
        kind: &str,
        action: &str,
        replacement: Option<&str>,
        scope: &[&str],
    ) -> ResourceChange {
        ResourceChange {
            logical_id: "Res".into(),
            resource_type: kind.into(),
            action: action.into(),
            replacement: replacement.map(str::to_string),
            scope: scope.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn risk(kind: &str, action: &str, replacement: Option<&str>) -> Risk {
        classify(&change(kind, action, replacement, &["Properties"])).risk
    }

    #[test]
    fn replacing_or_removing_a_stateful_resource_is_dangerous() {
        for kind in [
            "AWS::RDS::DBInstance",
            "AWS::RDS::DBCluster",
            "AWS::DynamoDB::Table",
            "AWS::DynamoDB::GlobalTable",
            "AWS::S3::Bucket",
            "AWS::EFS::FileSystem",
            "AWS::KMS::Key",
            "AWS::Cognito::UserPool",
            "AWS::ElastiCache::CacheCluster",
            "AWS::ElastiCache::ReplicationGroup",
            "AWS::OpenSearchService::Domain",
            "AWS::Elasticsearch::Domain",
            "AWS::Logs::LogGroup",
        ] {
            assert_eq!(
                risk(kind, "Modify", Some("True")),
                Risk::Dangerous,
                "{kind} replaced"
            );
            assert_eq!(
                risk(kind, "Modify", Some("Conditional")),
                Risk::Dangerous,
                "{kind} conditional"
            );
            assert_eq!(
                risk(kind, "Remove", None),
                Risk::Dangerous,
                "{kind} removed"
            );
            assert_eq!(
                risk(kind, "Modify", Some("False")),
                Risk::None,
                "{kind} updated in place"
            );
            assert_eq!(risk(kind, "Add", None), Risk::None, "{kind} added");
        }
    }

    #[test]
    fn the_reason_names_the_type_and_what_is_lost() {
        let a = classify(&change(
            "AWS::DynamoDB::Table",
            "Modify",
            Some("True"),
            &["Properties"],
        ));
        assert_eq!(a.logical_id, "Res");
        assert!(
            a.reason.starts_with("AWS::DynamoDB::Table is replaced:"),
            "{}",
            a.reason
        );
        assert!(
            a.reason
                .contains("the old one is deleted with the table's items"),
            "{}",
            a.reason
        );
        let a = classify(&change("AWS::S3::Bucket", "Remove", None, &[]));
        assert!(
            a.reason.contains("unless its DeletionPolicy is Retain"),
            "{}",
            a.reason
        );
    }

    #[test]
    fn stateless_resources_replaced_or_removed_are_none() {
        assert_eq!(
            risk("AWS::Lambda::Function", "Modify", Some("True")),
            Risk::None
        );
        assert_eq!(risk("AWS::SNS::Topic", "Remove", None), Risk::None);
        let a = classify(&change("AWS::Lambda::Function", "Remove", None, &[]));
        assert_eq!(a.reason, "");
    }

    #[test]
    fn access_changes_are_for_review() {
        for kind in [
            "AWS::IAM::Role",
            "AWS::IAM::Policy",
            "AWS::IAM::ManagedPolicy",
            "AWS::EC2::SecurityGroup",
            "AWS::EC2::SecurityGroupIngress",
            "AWS::S3::BucketPolicy",
        ] {
            for action in ["Add", "Modify", "Remove"] {
                assert_eq!(
                    risk(kind, action, Some("False")),
                    Risk::Review,
                    "{kind} {action}"
                );
            }
        }
        // A type that only shares a prefix with an access type is not one.
        assert_eq!(
            risk("AWS::EC2::SecurityGroupVpcAssociation", "Add", None),
            Risk::None
        );
        assert_eq!(risk("AWS::IAMx::Role", "Add", None), Risk::None);
    }

    #[test]
    fn a_retention_policy_change_or_a_dynamic_change_on_stateful_data_is_for_review() {
        let a = classify(&change(
            "AWS::RDS::DBCluster",
            "Modify",
            Some("False"),
            &["DeletionPolicy"],
        ));
        assert_eq!(a.risk, Risk::Review);
        assert!(a.reason.contains("DeletionPolicy"), "{}", a.reason);
        assert_eq!(risk("AWS::S3::Bucket", "Dynamic", None), Risk::Review);
        assert_eq!(risk("AWS::Lambda::Function", "Dynamic", None), Risk::None);
    }

    #[test]
    fn the_change_set_takes_its_most_severe_change() {
        let all = [
            change(
                "AWS::Lambda::Function",
                "Modify",
                Some("False"),
                &["Properties"],
            ),
            change("AWS::IAM::Role", "Modify", Some("False"), &["Properties"]),
        ]
        .iter()
        .map(classify)
        .collect::<Vec<_>>();
        assert_eq!(overall(&all), Risk::Review);
        let mut more = all.clone();
        more.push(classify(&change(
            "AWS::DynamoDB::Table",
            "Remove",
            None,
            &[],
        )));
        assert_eq!(overall(&more), Risk::Dangerous);
        assert_eq!(overall(&[]), Risk::None);
        assert_eq!(
            [Risk::None, Risk::Review, Risk::Dangerous].map(Risk::as_str),
            ["none", "review", "dangerous"]
        );
    }

    #[test]
    fn retention_policies_read_from_the_contexts_say_what_is_kept() {
        let mut removed = change("AWS::DynamoDB::Table", "Remove", None, &[]);
        removed.before_context = Some(r#"{"Properties":{},"DeletionPolicy":"Retain"}"#.into());
        let a = classify(&removed);
        assert_eq!(a.risk, Risk::Review, "{}", a.reason);
        assert!(
            a.reason
                .contains("DeletionPolicy Retain keeps the table's items"),
            "{}",
            a.reason
        );

        let mut replaced = change("AWS::S3::Bucket", "Modify", Some("True"), &["Properties"]);
        replaced.before_context = Some(r#"{"UpdateReplacePolicy":"Retain"}"#.into());
        let a = classify(&replaced);
        assert_eq!(a.risk, Risk::Dangerous);
        assert!(a.reason.contains("a new, empty one"), "{}", a.reason);

        let mut loosened = change(
            "AWS::RDS::DBInstance",
            "Modify",
            Some("False"),
            &["DeletionPolicy"],
        );
        loosened.before_context = Some(r#"{"DeletionPolicy":"Snapshot"}"#.into());
        loosened.after_context = Some(r#"{"Properties":{}}"#.into());
        let a = classify(&loosened);
        assert_eq!(a.risk, Risk::Review);
        assert!(
            a.reason
                .contains("DeletionPolicy goes from Snapshot to Delete (the default)"),
            "{}",
            a.reason
        );
        // Without values (mode deploy reads none): the removal stays dangerous.
        assert_eq!(
            classify(&change("AWS::DynamoDB::Table", "Remove", None, &[])).risk,
            Risk::Dangerous
        );
        assert_eq!(assess(&[removed.clone(), replaced.clone()]).len(), 2);
    }

    /// The guide's "Risk classes" names every type of both lists, so what users read is what
    /// the code does.
    #[test]
    fn the_guide_names_every_stateful_and_access_type() {
        let guide = include_str!("../../docs/guide.md");
        let section = guide
            .split("#### Risk classes")
            .nth(1)
            .and_then(|rest| rest.split("\n### ").next())
            .unwrap_or_default();
        for (kind, _) in STATEFUL {
            assert!(
                section.contains(&format!("`{kind}`")),
                "{kind} missing from the guide"
            );
        }
        for kind in ACCESS {
            assert!(
                section.contains(&format!("`{kind}`")),
                "{kind} missing from the guide"
            );
        }
    }

    #[test]
    fn a_removed_nested_stack_is_for_review() {
        let a = classify(&change("AWS::CloudFormation::Stack", "Remove", None, &[]));
        assert_eq!(a.risk, Risk::Review);
        assert!(
            a.reason
                .contains("every resource in the nested stack is deleted"),
            "{}",
            a.reason
        );
        assert_eq!(
            risk("AWS::CloudFormation::Stack", "Modify", Some("False")),
            Risk::None
        );
    }

    #[test]
    fn the_stateful_list_has_no_type_twice() {
        for (i, (kind, _)) in STATEFUL.iter().enumerate() {
            assert!(
                !STATEFUL[..i].iter().any(|(k, _)| k == kind),
                "{kind} twice"
            );
        }
    }
}
