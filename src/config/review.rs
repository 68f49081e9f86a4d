//! The inputs that decide whether a change set may run: the deploy guard (`on-risk`,
//! `allow-replacement`, `on-risk-change-set`) and the reviewed change set to execute
//! (`change-set-name`). Parsed here; the guard's verdict is `plan::guard`, the execution
//! `stack::deploy`.

use super::{InputError, bad};

/// What the deploy guard does when a change set would replace or remove a stateful resource
/// that `allow-replacement` does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRisk {
    /// Stop before ExecuteChangeSet: nothing runs, the step fails.
    Fail,
    /// Execute, with a warning naming each resource.
    Warn,
}

/// What happens to a change set the guard stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoppedChangeSet {
    /// Deleted: nothing is left that someone could execute by mistake.
    Delete,
    /// Left for inspection in the console (or to execute once allowed).
    Keep,
}

/// The deploy guard's inputs, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub on_risk: OnRisk,
    /// Logical IDs (`Nested/Logical` inside nested stacks) that may be replaced or removed.
    pub allow_replacement: Vec<String>,
    pub stopped_change_set: StoppedChangeSet,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            on_risk: OnRisk::Fail,
            allow_replacement: Vec::new(),
            stopped_change_set: StoppedChangeSet::Delete,
        }
    }
}

pub(super) fn parse_on_risk(text: &str) -> Result<OnRisk, InputError> {
    match text.trim() {
        "fail" => Ok(OnRisk::Fail),
        "warn" => Ok(OnRisk::Warn),
        other => Err(bad(
            "on-risk",
            format!(
                "{other:?} is not accepted: use fail (stop before executing) or warn (execute with a warning)"
            ),
        )),
    }
}

pub(super) fn parse_stopped_change_set(text: &str) -> Result<StoppedChangeSet, InputError> {
    match text.trim() {
        "delete" => Ok(StoppedChangeSet::Delete),
        "keep" => Ok(StoppedChangeSet::Keep),
        other => Err(bad(
            "on-risk-change-set",
            format!("{other:?} is not accepted: use delete or keep"),
        )),
    }
}

/// Logical IDs separated by commas, spaces or new lines. A logical ID is alphanumeric
/// (CloudFormation's rule); a resource inside nested stacks is written `Nested/Logical`.
pub(super) fn parse_allow_replacement(text: &str) -> Result<Vec<String>, InputError> {
    let mut ids: Vec<String> = Vec::new();
    for id in text
        .split([',', ' ', '\n', '\r', '\t'])
        .filter(|s| !s.is_empty())
    {
        let valid = id.len() <= 1024
            && id.split('/').all(|part| {
                !part.is_empty()
                    && part.len() <= 255
                    && part.chars().all(|c| c.is_ascii_alphanumeric())
            });
        if !valid {
            return Err(bad(
                "allow-replacement",
                format!(
                    "{id:?} is not a logical ID: write the resource's logical ID as in the template (letters and digits, \
                     e.g. OrdersTable), Nested/Logical for a resource of a nested stack, separated by commas or one per line"
                ),
            ));
        }
        if !ids.iter().any(|known| known == id) {
            ids.push(id.to_string());
        }
    }
    Ok(ids)
}

/// A change set's name (`[a-zA-Z][-a-zA-Z0-9]*`, at most 128) or its ARN (the ChangeSetId,
/// `arn:…:cloudformation:REGION:ACCOUNT:changeSet/NAME/UUID`), as DescribeChangeSet and
/// ExecuteChangeSet accept either.
pub(super) fn validate_change_set(text: &str) -> Result<(), InputError> {
    let name_ok = |name: &str| {
        !name.is_empty()
            && name.len() <= 128
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let ok = match text.strip_prefix("arn:") {
        Some(_) => {
            let parts: Vec<&str> = text.splitn(6, ':').collect();
            parts.len() == 6
                && parts[1].starts_with("aws")
                && parts[2] == "cloudformation"
                && parts[5]
                    .strip_prefix("changeSet/")
                    .and_then(|rest| rest.split_once('/'))
                    .is_some_and(|(name, id)| name_ok(name) && !id.is_empty())
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '/'))
        }
        None => name_ok(text),
    };
    if ok {
        Ok(())
    } else {
        Err(bad(
            "change-set-name",
            format!(
                "{text:?} is neither a change set name (a letter, then letters, digits and hyphens, 128 at most) nor a \
                 change set ARN (arn:aws:cloudformation:REGION:ACCOUNT:changeSet/NAME/ID): pass the plan job's \
                 change-set-name or change-set-id output"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_replacement_takes_logical_ids_and_nested_paths() {
        assert_eq!(
            parse_allow_replacement("OrdersTable, Bucket\nNetwork/Vpc,OrdersTable").unwrap(),
            vec!["OrdersTable", "Bucket", "Network/Vpc"]
        );
        assert!(parse_allow_replacement("").unwrap().is_empty());
        for wrong in ["Orders-Table", "Network//Vpc", "/Vpc", "arn:aws:dynamodb:x"] {
            let err = parse_allow_replacement(wrong).unwrap_err();
            assert_eq!(err.input, "allow-replacement");
            assert!(err.problem.contains("is not a logical ID"), "{err}");
        }
    }

    #[test]
    fn a_change_set_is_named_or_given_by_its_arn() {
        for ok in [
            "dc-plan-20261203-101500-abc1234",
            "arn:aws:cloudformation:eu-west-1:123456789012:changeSet/dc-plan-1/8a7e4f6e-2b1c-4d7a-9f0e-1a2b3c4d5e6f",
        ] {
            assert_eq!(validate_change_set(ok), Ok(()), "{ok}");
        }
        for wrong in [
            "1plan",
            "plan_1",
            &"x".repeat(129),
            "arn:aws:cloudformation:eu-west-1:123456789012:stack/app/1",
            "arn:aws:s3:::bucket/changeSet/x/y",
        ] {
            let err = validate_change_set(wrong).unwrap_err();
            assert_eq!(err.input, "change-set-name", "{wrong}");
        }
    }

    #[test]
    fn on_risk_and_what_becomes_of_a_stopped_change_set() {
        assert_eq!(parse_on_risk("fail"), Ok(OnRisk::Fail));
        assert_eq!(parse_on_risk("warn"), Ok(OnRisk::Warn));
        assert!(
            parse_on_risk("ignore")
                .unwrap_err()
                .problem
                .contains("use fail")
        );
        assert_eq!(parse_stopped_change_set("keep"), Ok(StoppedChangeSet::Keep));
        assert_eq!(
            parse_stopped_change_set("delete"),
            Ok(StoppedChangeSet::Delete)
        );
        assert_eq!(
            parse_stopped_change_set("retain").unwrap_err().input,
            "on-risk-change-set"
        );
    }
}
