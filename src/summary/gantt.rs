//! The resources of one operation as a Mermaid `gantt` chart (GitHub renders it in the summary).
//!
//! One task per resource, one section per stack (the root, then each nested stack by its path),
//! times as epoch milliseconds (`dateFormat x`: mermaid 11 draws every `X`
//! date at the same instant). Failed resources are `crit`, the ones that had not
//! finished when the operation ended are `active` and drawn up to its end, completed ones `done`.
//! Large stacks are capped: failed and unfinished resources first, then the slowest; the caller
//! says how many were left out. Every name comes from a template or AWS and is made safe for
//! mermaid's lexer (see [`super::mermaid`] for why each rule exists).

use chrono::{DateTime, Utc};

use crate::stack::ResourceTiming;
use crate::stack::StackResult;
use crate::stack::status::{ResourceClass, classify_resource};

/// Most tasks drawn: the chart stays readable and far below mermaid's 50,000 characters.
pub(crate) const MAX_TASKS: usize = 100;

/// Longest task or section name, in characters.
const MAX_NAME: usize = 60;

/// A chart and what it left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chart {
    /// The mermaid text, without the ``` fences.
    pub text: String,
    pub shown: usize,
    /// Resources with a start time that were left out (the fastest ones).
    pub hidden: usize,
    /// Resources without a start time (nothing to draw).
    pub undated: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Failed,
    Unfinished,
    Done,
}

struct Bar<'a> {
    timing: &'a ResourceTiming,
    state: State,
    start: i64,
    end: i64,
}

/// The chart of `result`'s resources, or None when no resource has a start time.
pub(crate) fn chart(stack_name: &str, result: &StackResult, max_tasks: usize) -> Option<Chart> {
    let operation_end = result
        .finished_at
        .or_else(|| latest(&result.resources))
        .map(|t| t.timestamp_millis());
    let mut bars: Vec<Bar> = result
        .resources
        .iter()
        .filter_map(|r| {
            let start = r.started?.timestamp_millis();
            let failed = classify_resource(&r.status) == ResourceClass::Failed
                || result.failed_resource.as_deref() == Some(r.path.as_str());
            let (state, end) = match r.completed {
                _ if failed => (
                    State::Failed,
                    r.completed.map(|c| c.timestamp_millis()).or(operation_end),
                ),
                Some(done) => (State::Done, Some(done.timestamp_millis())),
                None => (State::Unfinished, operation_end),
            };
            // At least one second wide: a zero-width bar is invisible.
            let end = end.unwrap_or(start).max(start + 1_000);
            Some(Bar {
                timing: r,
                state,
                start,
                end,
            })
        })
        .collect();
    let undated = result.resources.len() - bars.len();
    if bars.is_empty() {
        return None;
    }
    let total = bars.len();
    // What matters first: failures, then what was still running, then where the time went.
    bars.sort_by_key(|b| {
        let rank = match b.state {
            State::Failed => 0,
            State::Unfinished => 1,
            State::Done => 2,
        };
        (rank, std::cmp::Reverse(b.end - b.start), b.start)
    });
    bars.truncate(max_tasks.max(1));
    let shown = bars.len();

    // Sections: the root first, then nested stacks in the order they started.
    let mut sections: Vec<(String, Vec<Bar>)> = Vec::new();
    bars.sort_by_key(|b| (b.start, b.timing.path.clone()));
    for bar in bars {
        let section = match bar.timing.path.rsplit_once('/') {
            Some((parent, _)) => format!("{stack_name}/{parent}"),
            None => stack_name.to_string(),
        };
        match sections.iter_mut().find(|(name, _)| *name == section) {
            Some((_, list)) => list.push(bar),
            None => sections.push((section, vec![bar])),
        }
    }
    if let Some(root) = sections.iter().position(|(name, _)| name == stack_name) {
        let root = sections.remove(root);
        sections.insert(0, root);
    }

    let mut text = format!(
        "gantt\n    title {}\n    dateFormat x\n    axisFormat %H:%M:%S\n",
        name(&format!("{stack_name} {}", result.outcome))
    );
    for (section, list) in &sections {
        text.push_str(&format!("    section {}\n", name(section)));
        for bar in list {
            let tag = match bar.state {
                State::Failed => "crit, ",
                State::Unfinished => "active, ",
                State::Done => "done, ",
            };
            text.push_str(&format!(
                "    {} :{tag}{}, {}\n",
                task_name(bar.timing),
                bar.start,
                bar.end
            ));
        }
    }
    Some(Chart {
        text,
        shown,
        hidden: total - shown,
        undated,
    })
}

fn latest(resources: &[ResourceTiming]) -> Option<DateTime<Utc>> {
    resources
        .iter()
        .flat_map(|r| [r.started, r.completed])
        .flatten()
        .max()
}

/// `Logical (Service Type)`: the section already says which stack.
fn task_name(timing: &ResourceTiming) -> String {
    let logical = timing.path.rsplit('/').next().unwrap_or(&timing.path);
    let kind = timing
        .resource_type
        .strip_prefix("AWS::")
        .unwrap_or(&timing.resource_type)
        .replace("::", " ");
    if kind.trim().is_empty() {
        name(logical)
    } else {
        name(&format!("{logical} ({kind})"))
    }
}

/// Statement keywords of mermaid's gantt lexer: a name starting with one of them (and what its
/// rule needs next) would be read as that statement, whatever follows.
const KEYWORDS_NEEDING_SPACE: &[&str] = &[
    "dateformat",
    "axisformat",
    "tickinterval",
    "includes",
    "excludes",
    "todaymarker",
    "weekday",
    "title",
    "accdescription",
    "section",
    "click",
    "call",
];
const KEYWORDS_ALONE: &[&str] = &["gantt", "inclusiveenddates", "topaxis"];

/// Makes untrusted text a safe mermaid task, section or title name: only characters that no
/// lexer rule treats specially, one line, at most [`MAX_NAME`] characters, never empty, never
/// starting like a keyword or a date.
pub(crate) fn name(raw: &str) -> String {
    let mut out = String::new();
    let mut last_space = true;
    for c in raw.chars() {
        // `:` ends a task name, `#` and `;` end a statement, `%` starts a comment, a backtick
        // could close the Markdown fence, `<>&"` are HTML; anything else unusual becomes `_`.
        let keep = c.is_alphanumeric() || "-_./()+=@[],'".contains(c);
        if c.is_whitespace() || c == ':' {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(if keep { c } else { '_' });
            last_space = false;
        }
        if out.chars().count() >= MAX_NAME {
            break;
        }
    }
    let out = out.trim().to_string();
    if out.is_empty() {
        return "(unnamed)".to_string();
    }
    let lower = out.to_lowercase();
    let keyword = KEYWORDS_ALONE.iter().any(|k| lower.starts_with(k))
        || KEYWORDS_NEEDING_SPACE
            .iter()
            .any(|k| lower.starts_with(k) && lower[k.len()..].starts_with(char::is_whitespace));
    if keyword || super::mermaid::starts_with_date(&out) {
        format!("_{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::mermaid::validate_gantt;
    use super::*;
    use crate::stack::Outcome;
    use chrono::TimeZone;
    use std::time::Duration;

    fn at(s: i64) -> Option<DateTime<Utc>> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).single()
    }

    fn timing(path: &str, status: &str, start: i64, end: Option<i64>) -> ResourceTiming {
        ResourceTiming {
            path: path.to_string(),
            resource_type: "AWS::S3::Bucket".to_string(),
            status: status.to_string(),
            started: at(start),
            completed: end.and_then(at),
        }
    }

    fn result(resources: Vec<ResourceTiming>) -> StackResult {
        StackResult {
            outcome: Outcome::RolledBack,
            stack_status: Some("UPDATE_ROLLBACK_COMPLETE".into()),
            stack_id: None,
            operation_id: None,
            operation_ids: Vec::new(),
            duration: Duration::from_secs(100),
            started_at: at(0),
            finished_at: at(100),
            failure_reason: Some("boom".into()),
            failure_title: None,
            failed_resource: Some("Net/Db".into()),
            warnings: Vec::new(),
            recovery: None,
            outputs: vec![],
            resources,
            progress: (1, 3),
            fail_step: true,
            cancel: None,
        }
    }

    #[test]
    fn draws_each_resource_in_its_stack_with_its_state() {
        let r = result(vec![
            timing("Bucket", "UPDATE_COMPLETE", 1, Some(11)),
            timing("Net", "UPDATE_FAILED", 2, None),
            timing("Net/Db", "UPDATE_FAILED", 3, Some(3)),
            timing("Net/Queue", "UPDATE_IN_PROGRESS", 4, None),
            timing("Undated", "UPDATE_IN_PROGRESS", 0, None),
        ]);
        let mut r = r;
        r.resources[4].started = None;
        let chart = chart("api", &r, 100).expect("chart");
        let gantt = validate_gantt(&chart.text).expect(&chart.text);
        assert_eq!(gantt.sections, ["api", "api/Net"]);
        let task = |n: &str| {
            gantt
                .tasks
                .iter()
                .find(|t| t.name.starts_with(n))
                .unwrap_or_else(|| panic!("{n} in {}", chart.text))
        };
        let base = 1_700_000_000_000;
        assert_eq!(task("Bucket").tags, ["done"]);
        assert_eq!(task("Bucket").end_ms, Some(base + 11_000));
        assert_eq!(task("Net ").tags, ["crit"], "failed, no completion");
        assert_eq!(
            task("Net ").end_ms,
            Some(base + 100_000),
            "drawn to the end"
        );
        assert_eq!(task("Db").tags, ["crit"]);
        assert_eq!(task("Db").end_ms, Some(base + 4_000), "at least 1 s wide");
        assert_eq!(task("Queue").tags, ["active"]);
        assert_eq!(task("Queue").section.as_deref(), Some("api/Net"));
        assert_eq!((chart.shown, chart.hidden, chart.undated), (4, 0, 1));
    }

    #[test]
    fn a_capped_chart_keeps_failures_and_the_slowest() {
        let mut resources: Vec<ResourceTiming> = (0..50)
            .map(|i| timing(&format!("R{i}"), "CREATE_COMPLETE", 0, Some(i + 1)))
            .collect();
        resources.push(timing("Late", "CREATE_FAILED", 10, Some(11)));
        let chart = chart("api", &result(resources), 5).expect("chart");
        let gantt = validate_gantt(&chart.text).expect(&chart.text);
        let names: Vec<&str> = gantt.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names.len(), 5);
        assert!(names.iter().any(|n| n.starts_with("Late")), "{names:?}");
        for slow in ["R49", "R48", "R47", "R46"] {
            assert!(names.iter().any(|n| n.starts_with(slow)), "{names:?}");
        }
        assert_eq!(chart.hidden, 46);
    }

    #[test]
    fn hostile_names_stay_valid_mermaid() {
        let hostile = [
            "GanttBucket",
            "Section A",
            "section x",
            "title: x",
            "2024-01-01Db",
            "click me",
            "a:b#c;d%e`f<g>&\"h",
            "5% off",
            "\n\n",
            "",
            "%%{init}%%",
            "```",
            "x\ny: crit, 1, 2",
            "accTitle: x",
            "call me()",
            "inclusiveEndDates",
        ];
        let resources: Vec<ResourceTiming> = hostile
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut t = timing(n, "CREATE_COMPLETE", i as i64, Some(i as i64 + 5));
                t.resource_type = n.to_string();
                t
            })
            .chain([timing("Nest;ed#:/Inner", "CREATE_FAILED", 1, Some(2))])
            .collect();
        let chart = chart("section x:y", &result(resources), 100).expect("chart");
        let gantt = validate_gantt(&chart.text).expect(&chart.text);
        assert_eq!(gantt.tasks.len(), hostile.len() + 1, "{}", chart.text);
        assert!(!chart.text.contains('`') && !chart.text.contains('<'));
    }

    #[test]
    fn names_are_short_and_never_empty() {
        assert_eq!(name(""), "(unnamed)");
        assert_eq!(name("  \n "), "(unnamed)");
        assert_eq!(name(&"x".repeat(200)).chars().count(), MAX_NAME);
        assert_eq!(name("Gantt"), "_Gantt");
        assert_eq!(
            name("Sectioned"),
            "Sectioned",
            "not a keyword: no space after"
        );
        assert_eq!(name("AWS::S3::Bucket"), "AWS S3 Bucket");
    }

    #[test]
    fn nothing_to_draw_without_start_times() {
        let mut t = timing("A", "CREATE_IN_PROGRESS", 0, None);
        t.started = None;
        assert_eq!(chart("api", &result(vec![t]), 10), None);
    }
}
