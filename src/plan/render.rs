//! A plan in words: the job summary's full table and the pull-request comment, which GitHub
//! caps at 65,536 characters. Pure.
//!
//! Per resource: the action, whether it is replaced, what changes (each property with its
//! value before → after when CloudFormation gave them, the tags, the parameter or resource that
//! caused it, whether the property forces a replacement) and the risk with its reason. Every
//! value from the template, the stack or AWS is escaped (`summary::markdown::text`) and shown
//! inside `<code>`; `@` is written as an entity so a value never mentions anyone.
//!
//! Beyond the limit the comment keeps what a reviewer must see: the counts per action and per
//! risk, and every dangerous and review row; the rest is in the job summary it links to.

use std::fmt::Write as _;

use super::review::{Outcome, Review, Row};
use super::risk::Risk;
use crate::stack::client::{ChangeDetail, ResourceChange};
use crate::summary::markdown;

/// GitHub's limit for an issue or pull-request comment body.
pub(crate) const MAX_COMMENT: usize = 65_536;

/// Longest value shown for a property before or after.
const MAX_VALUE: usize = 80;

/// Most details listed in one row; the rest are counted.
const MAX_DETAILS: usize = 12;

/// The hidden first line by which the plan finds its own comment again on the next push.
pub(crate) fn marker(stack: &str) -> String {
    format!("<!-- deploy-coordinator:plan stack={stack} -->")
}

/// What the comment says about where it comes from (both already plain values from the runner).
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    /// The run's URL: where the job summary with the full table is.
    pub(crate) run_url: Option<String>,
    /// The commit planned.
    pub(crate) commit: Option<String>,
}

fn esc(raw: &str, max: usize) -> String {
    markdown::text(raw, max).replace('@', "&#64;")
}

fn code(raw: &str) -> String {
    format!("<code>{}</code>", esc(raw, MAX_VALUE))
}

fn detail_phrase(d: &ChangeDetail) -> String {
    let mut out = match (d.attribute.as_str(), d.name.as_deref()) {
        ("Tags", _) => "tags".to_string(),
        ("Properties", Some(name)) => code(name),
        ("Properties", None) if d.source.as_deref() == Some("Automatic") => {
            return "nested stack: its own changes follow".into();
        }
        (attribute, _) => esc(attribute, MAX_VALUE),
    };
    match (d.before.as_deref(), d.after.as_deref()) {
        (Some(b), Some(a)) => {
            let _ = write!(out, ": {} → {}", code(b), code(a));
        }
        (None, Some(a)) => {
            let _ = write!(out, ": → {}", code(a));
        }
        (Some(b), None) if d.evaluation.as_deref() == Some("Dynamic") => {
            let _ = write!(out, ": {} → (known when it runs)", code(b));
        }
        (Some(b), None) => {
            let _ = write!(out, ": {} → (removed)", code(b));
        }
        (None, None) => {}
    }
    let entity = d.causing_entity.as_deref().map(code);
    match (d.source.as_deref(), entity) {
        (Some("ParameterReference"), Some(e)) => {
            let _ = write!(out, " (parameter {e})");
        }
        (Some("ResourceReference" | "ResourceAttribute"), Some(e)) => {
            let _ = write!(out, " (refers to {e}, which changes)");
        }
        _ => {}
    }
    match d.requires_recreation.as_deref() {
        Some("Always") => out.push_str(" — requires replacement"),
        Some("Conditionally") => out.push_str(" — may require replacement"),
        _ => {}
    }
    out
}

/// What changes in one resource, as one table cell (`<br>` between details).
pub(crate) fn what_changes(change: &ResourceChange) -> String {
    match change.action.as_str() {
        "Add" => return "created".into(),
        "Remove" => {
            return match change.physical_id.as_deref() {
                Some(p) if !p.is_empty() => format!("deleted ({})", code(p)),
                _ => "deleted".into(),
            };
        }
        "Import" => return "imported".into(),
        _ => {}
    }
    let mut phrases: Vec<String> = Vec::new();
    for d in &change.details {
        let phrase = detail_phrase(d);
        if !phrases.contains(&phrase) {
            phrases.push(phrase);
        }
    }
    if phrases.is_empty() {
        return change
            .scope
            .iter()
            .map(|s| esc(s, MAX_VALUE))
            .collect::<Vec<_>>()
            .join(", ");
    }
    let more = phrases.len().saturating_sub(MAX_DETAILS);
    phrases.truncate(MAX_DETAILS);
    if more > 0 {
        phrases.push(format!("and {more} more"));
    }
    phrases.join("<br>")
}

fn replacement(change: &ResourceChange) -> &'static str {
    match change.replacement.as_deref() {
        Some("True") => "**yes**",
        Some("Conditional") => "**conditional**",
        Some("False") => "no",
        _ => "",
    }
}

fn risk_cell(row: &Row) -> String {
    match row.assessment.risk {
        Risk::None => "none".into(),
        Risk::Review => format!("🟡 **review**: {}", esc(&row.assessment.reason, 500)),
        Risk::Dangerous => format!("🔴 **dangerous**: {}", esc(&row.assessment.reason, 500)),
    }
}

fn table_row(row: &Row) -> String {
    format!(
        "| {} | {} | {} | {} | {} | {} |\n",
        code(&row.resource()),
        esc(&row.change.resource_type, MAX_VALUE),
        esc(&row.change.action, MAX_VALUE),
        replacement(&row.change),
        what_changes(&row.change),
        risk_cell(row)
    )
}

const TABLE_HEAD: &str =
    "| Resource | Type | Action | Replacement | What changes | Risk |\n|---|---|---|---|---|---|\n";

/// `5 changes: 1 Add, 3 Modify (1 replacement), 1 Remove. Risk: 1 dangerous, 1 review, 3 none.`
pub(crate) fn counts(rows: &[Row]) -> String {
    let mut actions: Vec<(String, usize)> = Vec::new();
    for r in rows {
        match actions.iter_mut().find(|(a, _)| *a == r.change.action) {
            Some((_, n)) => *n += 1,
            None => actions.push((r.change.action.clone(), 1)),
        }
    }
    let replaced = rows
        .iter()
        .filter(|r| {
            matches!(
                r.change.replacement.as_deref(),
                Some("True" | "Conditional")
            )
        })
        .count();
    let actions: Vec<String> = actions
        .iter()
        .map(|(a, n)| {
            if a == "Modify" && replaced > 0 {
                let s = if replaced == 1 { "" } else { "s" };
                format!("{n} {} ({replaced} replacement{s})", esc(a, 20))
            } else {
                format!("{n} {}", esc(a, 20))
            }
        })
        .collect();
    let by_risk: Vec<String> = [Risk::Dangerous, Risk::Review, Risk::None]
        .iter()
        .map(|risk| {
            (
                risk,
                rows.iter().filter(|r| r.assessment.risk == *risk).count(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .map(|(risk, n)| format!("{n} {}", risk.as_str()))
        .collect();
    let s = if rows.len() == 1 { "" } else { "s" };
    format!(
        "{} change{s}: {}. Risk: {}.",
        rows.len(),
        actions.join(", "),
        by_risk.join(", ")
    )
}

fn heading(review: &Review) -> String {
    let stack = esc(&review.stack, 128);
    match &review.outcome {
        Outcome::Changes(_) => {
            let risk = review.risk();
            let badge = match risk {
                Risk::Dangerous => "🔴 dangerous",
                Risk::Review => "🟡 review",
                Risk::None => "🟢 none",
            };
            format!("### Plan for stack `{stack}`: risk {badge}\n\n")
        }
        Outcome::NoChanges { .. } => format!("### Plan for stack `{stack}`: no changes\n\n"),
        Outcome::Failed { .. } => {
            format!("### Plan for stack `{stack}`: the change set could not be created\n\n")
        }
    }
}

/// Everything above the table: the heading, the change set, counts, expected duration, or
/// why there is nothing to review.
fn intro(review: &Review) -> String {
    let mut out = heading(review);
    let name = code(&review.change_set_name);
    match &review.outcome {
        Outcome::Changes(rows) => {
            let _ = writeln!(out, "Change set {name}, not executed. {}\n", counts(rows));
            if let Some(expected) = &review.expected {
                let _ = writeln!(out, "Expected duration: {}.\n", esc(expected, 200));
            }
        }
        Outcome::NoChanges { reason } => {
            let _ = writeln!(
                out,
                "Nothing to change: the template and parameters match the stack as it is. \
                 CloudFormation: {}\n",
                esc(reason, 500)
            );
        }
        Outcome::Failed { reason, failures } => {
            let _ = writeln!(out, "CloudFormation: {}\n", esc(reason, 1000));
            for f in failures.iter().take(20) {
                let _ = writeln!(out, "- {}", esc(f, 500));
            }
            if failures.len() > 20 {
                let _ = writeln!(out, "- and {} more", failures.len() - 20);
            }
            if !failures.is_empty() {
                out.push('\n');
            }
            out.push_str("Fix the template or the parameters and push again.\n\n");
        }
    }
    out
}

/// The job summary's section: the whole plan, every row.
pub(crate) fn summary_markdown(review: &Review) -> String {
    let mut out = intro(review);
    let rows = review.rows();
    if !rows.is_empty() {
        out.push_str(TABLE_HEAD);
        for row in rows {
            out.push_str(&table_row(row));
        }
        out.push('\n');
    }
    out
}

fn footer(origin: &Origin) -> String {
    let mut out = String::from("<sub>Nothing was executed. This comment is updated on each push");
    if let Some(commit) = &origin.commit {
        let short: String = commit.chars().take(7).collect();
        let _ = write!(out, "; commit {}", code(&short));
    }
    if let Some(url) = &origin.run_url {
        let _ = write!(out, "; {}", markdown::url_or_text(url, 300));
    }
    out.push_str(".</sub>\n");
    out
}

/// The pull-request comment: the marker, the plan, and the full table when it fits in
/// [`MAX_COMMENT`]; otherwise the counts, every dangerous and review row (as many as fit), and
/// a pointer to the job summary for the rest.
pub(crate) fn comment(review: &Review, origin: &Origin) -> String {
    let head = format!("{}\n{}", marker(&review.stack), intro(review));
    let foot = footer(origin);
    let rows = review.rows();
    let full: String = rows.iter().map(table_row).collect();
    if rows.is_empty() {
        return format!("{head}{foot}");
    }
    let whole = format!("{head}{TABLE_HEAD}{full}\n{foot}");
    if whole.len() <= MAX_COMMENT {
        return whole;
    }
    let risky: Vec<&Row> = rows
        .iter()
        .filter(|r| r.assessment.risk != Risk::None)
        .collect();
    let quiet = rows.len() - risky.len();
    let summary_link = match &origin.run_url {
        Some(url) => format!("the job summary of {}", markdown::url_or_text(url, 300)),
        None => "the job summary of this run".to_string(),
    };
    // The note's length does not depend on how many risky rows fit beyond a few digits:
    // reserve room for the longest one.
    let note = |shown: usize| {
        let hidden_risky = risky.len() - shown;
        let mut note = format!(
            "This plan is too long for one comment (GitHub's limit is {MAX_COMMENT} characters): "
        );
        if hidden_risky > 0 {
            let _ = write!(
                note,
                "{shown} of {} dangerous or review changes are listed above, the other {hidden_risky} and ",
                risky.len()
            );
        } else if !risky.is_empty() {
            note.push_str("every dangerous and review change is listed above; ");
        }
        let s = if quiet == 1 { "" } else { "s" };
        let _ = writeln!(
            note,
            "{quiet} change{s} without risk are in {summary_link}, with the full table.\n"
        );
        note
    };
    let budget =
        MAX_COMMENT.saturating_sub(head.len() + foot.len() + TABLE_HEAD.len() + note(0).len() + 64);
    let mut listed = String::new();
    let mut shown = 0;
    for row in &risky {
        let line = table_row(row);
        if listed.len() + line.len() > budget {
            break;
        }
        listed.push_str(&line);
        shown += 1;
    }
    let table = if shown > 0 {
        format!("{TABLE_HEAD}{listed}\n")
    } else {
        String::new()
    };
    format!("{head}{table}{}{foot}", note(shown))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::review::{StackChanges, change, rows};

    fn detail(name: &str, before: &str, after: &str) -> ChangeDetail {
        ChangeDetail {
            attribute: "Properties".into(),
            name: Some(name.into()),
            requires_recreation: Some("Never".into()),
            change_type: Some("Modify".into()),
            before: Some(before.into()),
            after: Some(after.into()),
            evaluation: Some("Static".into()),
            source: Some("DirectModification".into()),
            causing_entity: None,
        }
    }

    fn review_of(stacks: &[StackChanges]) -> Review {
        Review {
            stack: "app".into(),
            change_set_name: "dc-20260101-000000-abc1234".into(),
            change_set_id: Some("arn:aws:cloudformation:us-east-1:1:changeSet/dc/1".into()),
            outcome: Outcome::Changes(rows(stacks)),
            expected: Some("about 4m 10s (3m 00s–6m 20s), low confidence".into()),
        }
    }

    #[test]
    fn a_replaced_table_shows_the_property_its_values_the_parameter_and_the_danger() {
        let mut table = change("Table", "AWS::DynamoDB::Table", "Modify", Some("True"));
        let mut name = detail("TableName", "orders-dev", "orders-prod");
        name.requires_recreation = Some("Always".into());
        name.source = Some("ParameterReference".into());
        name.causing_entity = Some("Env".into());
        table.details = vec![name];
        let review = review_of(&[StackChanges {
            path: vec![],
            changes: vec![table],
        }]);
        let md = summary_markdown(&review);
        assert!(
            md.contains("### Plan for stack `app`: risk 🔴 dangerous"),
            "{md}"
        );
        assert!(
            md.contains("<code>TableName</code>: <code>orders-dev</code> → <code>orders-prod</code> (parameter <code>Env</code>) — requires replacement"),
            "{md}"
        );
        assert!(md.contains("| **yes** |"), "{md}");
        assert!(
            md.contains("🔴 **dangerous**: AWS::DynamoDB::Table is replaced"),
            "{md}"
        );
        assert!(
            md.contains("1 change: 1 Modify (1 replacement). Risk: 1 dangerous."),
            "{md}"
        );
        assert!(md.contains("Expected duration: about 4m 10s"), "{md}");
    }

    #[test]
    fn values_cannot_break_the_table_mention_anyone_or_inject_html() {
        let mut queue = change("Queue", "AWS::SQS::Queue", "Modify", Some("False"));
        queue.details = vec![detail("Policy", "a|b\nc", "<img src=x> @octocat `x`")];
        let md = summary_markdown(&review_of(&[StackChanges {
            path: vec![],
            changes: vec![queue],
        }]));
        let row = md.lines().find(|l| l.contains("Queue")).unwrap();
        assert!(row.contains("a\\|b c"), "{row}");
        assert!(row.contains("&lt;img src=x&gt;"), "{row}");
        assert!(row.contains("&#64;octocat"), "{row}");
        assert!(!row.contains("@octocat"), "{row}");
        // Six cells: the pipes of the values did not add any.
        assert_eq!(row.matches(" | ").count(), 5, "{row}");
    }

    #[test]
    fn no_changes_and_failures_say_so() {
        let mut review = review_of(&[]);
        review.outcome = Outcome::NoChanges {
            reason: "The submitted information didn't contain changes.".into(),
        };
        let c = comment(&review, &Origin::default());
        assert!(
            c.starts_with("<!-- deploy-coordinator:plan stack=app -->\n"),
            "{c}"
        );
        assert!(c.contains("no changes"), "{c}");
        assert!(c.contains("Nothing to change"), "{c}");
        review.outcome = Outcome::Failed {
            reason: "Template format error: Unresolved resource dependencies [Nope]".into(),
            failures: vec!["Bucket: NAME_CONFLICT_VALIDATION: exists".into()],
        };
        let md = summary_markdown(&review);
        assert!(md.contains("could not be created"), "{md}");
        assert!(
            md.contains("Unresolved resource dependencies \\[Nope\\]"),
            "{md}"
        );
        assert!(
            md.contains("- Bucket: NAME\\_CONFLICT\\_VALIDATION: exists"),
            "{md}"
        );
    }

    /// 100 resources in nested stacks, each with many long property changes: the whole table
    /// is far beyond GitHub's limit, the comment is not.
    #[test]
    fn a_100_resource_nested_change_set_fits_in_one_comment_with_the_full_table_in_the_summary() {
        let mut root = vec![];
        let mut stacks = vec![];
        for n in 0..4 {
            let nested = format!("Nested{n}");
            root.push(change(
                &nested,
                "AWS::CloudFormation::Stack",
                "Modify",
                Some("False"),
            ));
            let mut changes = vec![];
            for i in 0..25 {
                let (kind, replacement) = match i {
                    0 => ("AWS::DynamoDB::Table", Some("True")),
                    1 => ("AWS::IAM::Role", Some("False")),
                    _ => ("AWS::Lambda::Function", Some("False")),
                };
                let mut c = change(&format!("Function{n}x{i}"), kind, "Modify", replacement);
                c.details = (0..12)
                    .map(|p| detail(&format!("Property{p}"), &"b".repeat(200), &"a".repeat(200)))
                    .collect();
                changes.push(c);
            }
            stacks.push(StackChanges {
                path: vec![nested],
                changes,
            });
        }
        stacks.push(StackChanges {
            path: vec![],
            changes: root,
        });
        let review = review_of(&stacks);
        assert_eq!(review.rows().len(), 104);
        let origin = Origin {
            run_url: Some("https://github.com/o/r/actions/runs/1".into()),
            commit: Some("abcdef0123".into()),
        };
        let full = summary_markdown(&review);
        assert!(
            full.len() > MAX_COMMENT,
            "the test needs a plan beyond the limit"
        );
        assert!(full.contains("Nested3/Function3x24"));
        let c = comment(&review, &origin);
        assert!(c.len() <= MAX_COMMENT, "{} characters", c.len());
        assert!(c.starts_with(&marker("app")));
        assert!(
            c.contains(
                "104 changes: 104 Modify (4 replacements). Risk: 4 dangerous, 4 review, 96 none."
            ),
            "{c}"
        );
        for n in 0..4 {
            assert!(
                c.contains(&format!("<code>Nested{n}/Function{n}x0</code>")),
                "dangerous row {n}"
            );
            assert!(
                c.contains(&format!("<code>Nested{n}/Function{n}x1</code>")),
                "review row {n}"
            );
        }
        assert!(
            !c.contains("Function0x5</code>"),
            "rows without risk are left out"
        );
        assert!(c.contains("every dangerous and review change is listed above; 96 changes without risk are in the job summary of <https://github.com/o/r/actions/runs/1>"), "{c}");
    }

    #[test]
    fn when_even_the_risky_rows_do_not_fit_the_comment_says_how_many_are_left_out() {
        let changes: Vec<ResourceChange> = (0..400)
            .map(|i| {
                let mut c = change(
                    &format!("Table{i}"),
                    "AWS::DynamoDB::Table",
                    "Modify",
                    Some("True"),
                );
                c.details = (0..12)
                    .map(|p| detail(&format!("P{p}"), &"x".repeat(100), &"y".repeat(100)))
                    .collect();
                c
            })
            .collect();
        let review = review_of(&[StackChanges {
            path: vec![],
            changes,
        }]);
        let c = comment(&review, &Origin::default());
        assert!(c.len() <= MAX_COMMENT, "{}", c.len());
        let shown = c.matches("🔴 **dangerous**").count();
        assert!(shown > 0 && shown < 400, "{shown}");
        assert!(
            c.contains(&format!(
                "{shown} of 400 dangerous or review changes are listed above, the other {}",
                400 - shown
            )),
            "{}",
            &c[c.len() - 600..]
        );
    }
}
