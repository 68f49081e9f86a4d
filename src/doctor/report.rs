//! The doctor's results: one [`Check`] per question, a [`Report`] of all of them, and their text
//! and JSON renderings. Pure: no I/O, so the layout people and scripts rely on is unit-tested.
//!
//! Text and JSON may hold what remote services said (an AWS error message, a Slack error code):
//! rendering passes every string through the secret redaction, and the text form through
//! `sanitize`, so a report never prints a registered secret nor a line the runner would read as
//! a workflow command.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::action::log;

/// What one check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Verdict {
    /// Nothing to check (Slack not configured, no stack name, an earlier check failed).
    Skip,
    Pass,
    /// Works now, but something will bite (credentials about to expire, a stack in progress).
    Warn,
    /// The action would fail, or would not coordinate, as configured.
    Fail,
}

impl Verdict {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        }
    }
}

/// One answered question: a stable name (scripts match on it), what was found, and for a
/// warning or a failure the one thing to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// How long the probe took (0 for checks that make no call).
    #[serde(rename = "elapsed_ms")]
    pub elapsed_ms: u64,
}

impl Check {
    pub(crate) fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check::new(name, Verdict::Pass, detail, None)
    }

    pub(crate) fn skip(name: &'static str, detail: impl Into<String>) -> Check {
        Check::new(name, Verdict::Skip, detail, None)
    }

    pub(crate) fn warn(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::new(name, Verdict::Warn, detail, Some(fix.into()))
    }

    pub(crate) fn fail(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::new(name, Verdict::Fail, detail, Some(fix.into()))
    }

    fn new(
        name: &'static str,
        verdict: Verdict,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Check {
        Check {
            name,
            verdict,
            detail: detail.into(),
            fix,
            elapsed_ms: 0,
        }
    }

    /// Records how long the probe behind this check took.
    pub(crate) fn took(mut self, elapsed: Duration) -> Check {
        self.elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        self
    }
}

/// Every check of one doctor run, in the order they are reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    pub checks: Vec<Check>,
    pub elapsed: Duration,
}

/// How many checks ended with each verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Counts {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub skip: usize,
}

impl Report {
    /// True when no check failed: the only case in which `doctor` exits 0 and a preflight
    /// lets the step continue. Warnings do not block.
    pub(crate) fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.verdict != Verdict::Fail)
    }

    pub(crate) fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for check in &self.checks {
            match check.verdict {
                Verdict::Pass => counts.pass += 1,
                Verdict::Warn => counts.warn += 1,
                Verdict::Fail => counts.fail += 1,
                Verdict::Skip => counts.skip += 1,
            }
        }
        counts
    }

    /// The checks with a given verdict, in report order.
    pub(crate) fn with(&self, verdict: Verdict) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(move |c| c.verdict == verdict)
    }

    /// One line per check, `PASS  <name>  <detail>`, names aligned, then `fix: …` under each
    /// warning and failure, and a last line with the counts and the time taken.
    pub(crate) fn to_text(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for check in &self.checks {
            let line = format!(
                "{}  {:width$}  {}",
                check.verdict.label(),
                check.name,
                one_line(&check.detail)
            );
            out.push_str(&log::sanitize(line.trim_end()));
            out.push('\n');
            if let Some(fix) = &check.fix {
                out.push_str(&log::sanitize(&format!(
                    "      {:width$}  fix: {}",
                    "",
                    one_line(fix)
                )));
                out.push('\n');
            }
        }
        let c = self.counts();
        out.push_str(&format!(
            "doctor: {} passed, {} warning(s), {} failed, {} skipped in {:.1} s{}\n",
            c.pass,
            c.warn,
            c.fail,
            c.skip,
            self.elapsed.as_secs_f64(),
            if self.ok() { "" } else { ": NOT ready" }
        ));
        out
    }

    /// The whole report as one JSON document (secrets redacted).
    pub(crate) fn to_json(&self) -> String {
        let value = json!({
            "ok": self.ok(),
            "counts": self.counts(),
            "elapsed_ms": u64::try_from(self.elapsed.as_millis()).unwrap_or(u64::MAX),
            "checks": self.checks,
        });
        log::redact(&value.to_string())
    }
}

/// Remote texts can span lines; a report line must stay one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(checks: Vec<Check>) -> Report {
        Report {
            checks,
            elapsed: Duration::from_millis(1234),
        }
    }

    #[test]
    fn only_a_failure_makes_the_report_not_ok() {
        let mut r = report(vec![
            Check::pass("a", "fine"),
            Check::warn("b", "soon", "do x"),
            Check::skip("c", "not configured"),
        ]);
        assert!(r.ok());
        r.checks.push(Check::fail("d", "broken", "do y"));
        assert!(!r.ok());
        assert_eq!(
            r.counts(),
            Counts {
                pass: 1,
                warn: 1,
                fail: 1,
                skip: 1
            }
        );
        assert_eq!(r.with(Verdict::Fail).count(), 1);
    }

    #[test]
    fn text_has_one_aligned_line_per_check_and_a_fix_under_problems() {
        let r = report(vec![
            Check::pass("aws-region", "eu-west-1"),
            Check::fail(
                "registry-ttl",
                "TTL is off\non table x",
                "run `deploy-coordinator registry create --table x`",
            ),
        ]);
        let text = r.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "PASS  aws-region    eu-west-1");
        assert_eq!(lines[1], "FAIL  registry-ttl  TTL is off on table x");
        assert_eq!(
            lines[2],
            "                    fix: run `deploy-coordinator registry create --table x`"
        );
        assert_eq!(
            lines[3],
            "doctor: 1 passed, 0 warning(s), 1 failed, 0 skipped in 1.2 s: NOT ready"
        );
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn remote_text_cannot_become_a_workflow_command() {
        let r = report(vec![Check::fail(
            "slack",
            "::set-output name=x::y",
            "::stop-commands::z",
        )]);
        for line in r.to_text().lines() {
            assert!(!line.trim_start().starts_with("::"), "{line}");
        }
    }

    #[test]
    fn json_lists_every_check_with_its_verdict_and_fix() {
        let r = report(vec![
            Check::pass("aws-region", "eu-west-1").took(Duration::from_millis(7)),
            Check::fail("registry-table", "missing", "create it"),
        ]);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["counts"]["fail"], 1);
        assert_eq!(v["elapsed_ms"], 1234);
        assert_eq!(v["checks"][0]["verdict"], "pass");
        assert_eq!(v["checks"][0]["elapsed_ms"], 7);
        assert!(v["checks"][0].get("fix").is_none());
        assert_eq!(v["checks"][1]["name"], "registry-table");
        assert_eq!(v["checks"][1]["fix"], "create it");
    }
}
