//! The job summary's section on the deploy guard: each stateful resource the change set
//! replaces or removes (stopped, allowed or executed with a warning), the changes for review,
//! and allowances the change set did not use. Pure; every name from the template is escaped.

use super::markdown::{MAX_CELL_CHARS, text};
use crate::config::OnRisk;
use crate::plan::guard::Verdict;
use crate::plan::risk::Assessment;

/// The section, or an empty string when the guard has nothing to say.
pub(crate) fn section(change_set: &str, verdict: &Verdict, on_risk: OnRisk) -> String {
    if verdict.at_risk.is_empty()
        && verdict.allowed.is_empty()
        && verdict.review.is_empty()
        && verdict.unused_allowances.is_empty()
    {
        return String::new();
    }
    let mut md = format!(
        "\n#### Deploy guard\n\nChange set `{}`: risk **{}**.\n\n",
        text(change_set, 128),
        verdict.risk.as_str()
    );
    let at_risk = if verdict.stop {
        "⛔ stopped: not in allow-replacement"
    } else if on_risk == OnRisk::Warn {
        "⚠️ executed with a warning (on-risk: warn)"
    } else {
        "⛔ not in allow-replacement"
    };
    for a in &verdict.at_risk {
        md.push_str(&item(a, at_risk));
    }
    for a in &verdict.allowed {
        md.push_str(&item(a, "✅ allowed by allow-replacement"));
    }
    for a in &verdict.review {
        md.push_str(&item(a, "👀 for review"));
    }
    for id in &verdict.unused_allowances {
        md.push_str(&format!(
            "- allow-replacement lists **{}**, which this change set neither replaces nor removes\n",
            text(id, 255)
        ));
    }
    md
}

fn item(a: &Assessment, verdict: &str) -> String {
    format!(
        "- **{}** ({}): {verdict}. {}\n",
        text(&a.logical_id, 255),
        text(&a.resource_type, 255),
        text(&a.reason, MAX_CELL_CHARS)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Guard, StoppedChangeSet};
    use crate::plan::guard::judge;
    use crate::stack::client::ResourceChange;

    fn table(id: &str) -> ResourceChange {
        ResourceChange {
            logical_id: id.into(),
            resource_type: "AWS::DynamoDB::Table".into(),
            action: "Modify".into(),
            replacement: Some("True".into()),
            scope: vec!["Properties".into()],
            ..ResourceChange::default()
        }
    }

    #[test]
    fn each_resource_is_listed_with_its_verdict_and_names_are_escaped() {
        let guard = Guard {
            on_risk: OnRisk::Fail,
            allow_replacement: vec!["Cache".into(), "Old".into()],
            stopped_change_set: StoppedChangeSet::Delete,
        };
        let stacks = [crate::plan::review::StackChanges {
            path: Vec::new(),
            changes: vec![table("Orders_1"), table("Cache")],
        }];
        let verdict = judge(&stacks, &guard);
        let md = section("dc-1", &verdict, OnRisk::Fail);
        assert!(md.contains("risk **dangerous**"), "{md}");
        assert!(
            md.contains(
                "- **Orders\\_1** (AWS::DynamoDB::Table): ⛔ stopped: not in allow-replacement."
            ),
            "{md}"
        );
        assert!(
            md.contains("- **Cache** (AWS::DynamoDB::Table): ✅ allowed"),
            "{md}"
        );
        assert!(
            md.contains("lists **Old**, which this change set neither"),
            "{md}"
        );
        assert_eq!(
            section("dc-1", &judge(&[], &guard_without()), OnRisk::Fail),
            ""
        );
    }

    fn guard_without() -> Guard {
        Guard::default()
    }
}
