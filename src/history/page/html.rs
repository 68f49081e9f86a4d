//! The HTML page: header, the stacks at a glance, then one section per stack with its charts
//! and the sentences that say what they show (including what is missing and why).

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::charts;
use super::stats::{StackStats, by_stack};
use super::svg::esc;
use crate::estimate::fmt_secs;
use crate::history::HistoryRecord;

/// What the page says about where its records came from and when it was made.
#[derive(Debug, Clone)]
pub struct PageOptions {
    /// E.g. `table deployment-registry (eu-west-1)` or `file history.json`.
    pub source: String,
    pub generated_at: DateTime<Utc>,
}

/// Inline, so the file needs nothing else; the CSP forbids every fetch, so a report that
/// tried to load something would show it as an error instead of quietly phoning home.
const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="generator" content="deploy-coordinator history report">
"#;

const STYLE: &str = r#"<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; margin: 0 auto; max-width: 980px; padding: 16px 20px 40px; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 20px; margin: 36px 0 6px; border-top: 1px solid #d0d7de; padding-top: 18px; }
h3 { font-size: 15px; margin: 20px 0 4px; }
.meta, .note-text { color: #57606a; } .missing { color: #9a6700; background: #fff8c5; padding: 6px 10px; border-radius: 6px; }
table { border-collapse: collapse; margin: 8px 0; } th, td { text-align: left; padding: 3px 10px 3px 0; border-bottom: 1px solid #eaeef2; } td.num, th.num { text-align: right; white-space: nowrap; }
.pair { display: flex; gap: 16px; flex-wrap: wrap; } .pair > div { flex: 1 1 440px; }
.legend span { display: inline-block; margin-right: 14px; } details.unsuccessful { margin: 6px 0 0; } details.unsuccessful td:not(:last-child) { white-space: nowrap; } i.dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%; margin-right: 5px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 4px; }
svg.chart { display: block; max-width: 100%; height: auto; font: 11px system-ui, sans-serif; }
svg .grid { stroke: #eaeef2; } svg .domain, svg .tick { stroke: #8c959f; } svg text { fill: #424a53; } svg .axis-title { fill: #57606a; font-size: 12px; }
svg .band { fill: #0969da; fill-opacity: 0.13; stroke: none; } svg .range { stroke: #0969da; stroke-opacity: 0.45; stroke-width: 2; }
svg .median { stroke: #6e7781; stroke-dasharray: 4 3; } svg .note { fill: #6e7781; font-size: 10px; }
svg .diagonal { stroke: #8c959f; stroke-dasharray: 5 4; } svg .stem { stroke: #8250df; stroke-opacity: 0.5; }
svg .pt { stroke: #fff; stroke-width: 1; }
.succeeded, svg .succeeded { fill: #1a7f37; background: #1a7f37; } .rolled_back, svg .rolled_back { fill: #bc4c00; background: #bc4c00; }
.failed, svg .failed { fill: #cf222e; background: #cf222e; } .cancelled, svg .cancelled { fill: #8c959f; background: #8c959f; }
svg .inside { fill: #0969da; } svg .outside { fill: #bc4c00; } svg .wait { fill: #8250df; }
svg .bar { fill: #54aeff; } svg .p90 { stroke: #0550ae; stroke-width: 2; } svg .spark { fill: none; stroke: #8c959f; stroke-width: 1; } svg .spark-pt { fill: #0969da; }
svg .label { fill: #1f2328; font-size: 12px; } svg .type { fill: #6e7781; font-size: 10px; } svg .heading text { fill: #57606a; }
svg .trend.slower { fill: #cf222e; font-weight: 600; } svg .trend.faster { fill: #1a7f37; font-weight: 600; } svg .trend.flat { fill: #57606a; }
</style>
"#;

/// The whole report for `records` (any number of stacks).
pub fn render(records: &[HistoryRecord], options: &PageOptions) -> String {
    let stacks = by_stack(records);
    let mut out = String::with_capacity(64 * 1024 + records.len() * 4 * 1024);
    out.push_str(HEAD);
    let title = match stacks.as_slice() {
        [one] => format!("Deployment history: {}", one.stack),
        _ => "Deployment history".to_string(),
    };
    let _ = write!(
        out,
        "<title>{}</title>\n{STYLE}</head>\n<body>\n",
        esc(&title)
    );
    let _ = write!(
        out,
        "<h1>{}</h1>\n<p class=\"meta\">{} record(s) of {} stack(s) from {}; generated {} UTC. \
         Times are UTC. Hover a point for its deployment.</p>\n",
        esc(&title),
        records.len(),
        stacks.len(),
        esc(&options.source),
        options.generated_at.format("%Y-%m-%d %H:%M"),
    );
    if stacks.is_empty() {
        out.push_str(
            "<p class=\"missing\">No history records. The action records one per deployment; \
             <code>history collect</code> builds them from a stack's past CloudFormation events.</p>\n",
        );
    } else {
        overview(&mut out, &stacks);
        for (i, s) in stacks.iter().enumerate() {
            section(&mut out, i, s);
        }
    }
    out.push_str(
        "<p class=\"meta\">Made by <code>deploy-coordinator history report</code>: one file, \
         no scripts, nothing fetched.</p>\n</body>\n</html>\n",
    );
    out
}

fn pct(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

fn overview(out: &mut String, stacks: &[StackStats]) {
    out.push_str(
        "<table class=\"overview\"><thead><tr><th>stack</th><th class=\"num\">deployments</th>\
         <th class=\"num\">succeeded</th><th class=\"num\">median</th><th class=\"num\">P90</th>\
         <th class=\"num\">estimate in range</th><th class=\"num\">median lock wait</th>\
         <th class=\"num\">P90 lock wait</th><th>last deployment</th></tr></thead><tbody>\n",
    );
    for (i, s) in stacks.iter().enumerate() {
        let ok = s.outcomes.get("succeeded").copied().unwrap_or(0);
        let dash = || "–".to_string();
        let last = s
            .records
            .last()
            .map(|r| r.started_at.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(dash);
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#stack-{i}\">{}</a></td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(s.stack),
            s.records.len(),
            pct(ok as f64 / s.records.len().max(1) as f64),
            s.succeeded.map(|d| fmt_secs(d.median)).unwrap_or_else(dash),
            s.succeeded.map(|d| fmt_secs(d.p90)).unwrap_or_else(dash),
            s.accuracy.inside_share.map(pct).unwrap_or_else(dash),
            s.waits
                .spread
                .map(|w| fmt_secs(w.median))
                .unwrap_or_else(dash),
            s.waits.spread.map(|w| fmt_secs(w.p90)).unwrap_or_else(dash),
            last,
        );
    }
    out.push_str("</tbody></table>\n");
}

/// The deployments that did not succeed, with what failed first.
fn unsuccessful(out: &mut String, s: &StackStats) {
    if s.unsuccessful.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<details class=\"unsuccessful\" open><summary>{} deployment(s) did not succeed</summary>\n\
         <table><thead><tr><th>started (UTC)</th><th>correlation id</th><th>outcome</th>\
         <th class=\"num\">duration</th><th>failed first</th></tr></thead><tbody>\n",
        s.unsuccessful.len()
    );
    for (r, failed) in &s.unsuccessful {
        let cause = match failed {
            Some(f) => format!(
                "{} ({}), {}",
                esc(&f.logical_id),
                esc(&f.resource_type),
                esc(&f.status)
            ),
            None => "–".into(),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td><i class=\"dot {o}\"></i>{}</td>\
             <td class=\"num\">{}</td><td>{cause}</td></tr>",
            r.started_at.format("%Y-%m-%d %H:%M"),
            esc(&r.correlation_id),
            r.outcome.as_str().replace('_', " "),
            fmt_secs(r.seconds()),
            o = r.outcome.as_str(),
        );
    }
    out.push_str("</tbody></table></details>\n");
}

fn section(out: &mut String, i: usize, s: &StackStats) {
    let _ = write!(
        out,
        "<section class=\"stack\" id=\"stack-{i}\" data-stack=\"{name}\" data-records=\"{n}\">\n\
         <h2>{name}</h2>\n",
        name = esc(s.stack),
        n = s.records.len(),
    );
    let (first, last) = match (s.records.first(), s.records.last()) {
        (Some(a), Some(b)) => (a.started_at, b.finished_at),
        _ => return,
    };
    let outcomes: Vec<String> = s
        .outcomes
        .iter()
        .map(|(k, v)| format!("{v} {}", k.replace('_', " ")))
        .collect();
    let _ = writeln!(
        out,
        "<p>{} deployment(s) from {} to {}: {}.{}</p>",
        s.records.len(),
        first.format("%Y-%m-%d"),
        last.format("%Y-%m-%d"),
        outcomes.join(", "),
        s.succeeded
            .map(|d| format!(
                " Successful ones took {} at the median, {} at the 90th percentile, {} at most.",
                fmt_secs(d.median),
                fmt_secs(d.p90),
                fmt_secs(d.max)
            ))
            .unwrap_or_default(),
    );

    out.push_str("<h3>Deployments over time</h3>\n<p class=\"legend\">");
    for k in ["succeeded", "rolled_back", "failed", "cancelled"] {
        let _ = write!(
            out,
            "<span><i class=\"{k}\"></i>{}</span>",
            k.replace('_', " ")
        );
    }
    out.push_str("<span>shaded: estimate's P10–P90 range</span></p>\n");
    charts::durations(out, s);
    let with_estimate = s.records.len() - s.accuracy.missing;
    if with_estimate == 0 {
        out.push_str(
            "<p class=\"missing\">No deployment of this stack has a recorded estimate (records from \
             <code>history collect</code>, or from before the action recorded estimates): no band is drawn.</p>\n",
        );
    } else if s.accuracy.missing > 0 {
        let _ = writeln!(
            out,
            "<p class=\"note-text\">{} of {} deployment(s) have no recorded estimate and no band.</p>",
            s.accuracy.missing,
            s.records.len()
        );
    }

    unsuccessful(out, s);

    out.push_str("<h3>Slowest resources</h3>\n");
    if s.resources.is_empty() {
        out.push_str("<p class=\"missing\">No completed resource timings in these records.</p>\n");
    } else {
        out.push_str(
            "<p class=\"note-text\">Completed runs in the deployment itself (a rollback's undoing \
             and failed runs are left out). Trend: the median of the newer half of a resource's \
             runs against the older half's.</p>\n",
        );
        charts::resources(out, s);
    }

    out.push_str("<div class=\"pair\"><div>\n<h3>Estimated against actual</h3>\n");
    let a = &s.accuracy;
    match (a.inside_share, a.median_relative_error, a.median_bias) {
        (Some(inside), Some(rel), Some(bias)) => {
            let lean = if bias >= 0.0 {
                "longer (pessimistic)"
            } else {
                "shorter (optimistic)"
            };
            let _ = writeln!(
                out,
                "<p>{} of {} successful deployment(s) ({}) ended inside the first estimate's \
                 range [low, high] (P10–P90, which aims at 80 %). Median error {}; at the median \
                 the estimate was {} {lean}.</p>",
                a.judged.iter().filter(|j| j.inside).count(),
                a.judged.len(),
                pct(inside),
                pct(rel),
                fmt_secs(bias.abs()),
            );
            charts::accuracy(out, s, a);
        }
        _ => out.push_str(
            "<p class=\"missing\">No successful deployment with a recorded estimate: nothing to \
             compare. Records from <code>history collect</code> have none.</p>\n",
        ),
    }
    out.push_str("</div><div>\n<h3>Lock wait</h3>\n");
    let w = &s.waits;
    match w.spread {
        Some(spread) => {
            let _ = writeln!(
                out,
                "<p>{} of {} recorded run(s) ({}) found the lock taken. Wait: median {}, \
                 90th percentile {}, longest {}.{}</p>",
                w.queued,
                w.recorded.len(),
                pct(w.queued as f64 / w.recorded.len().max(1) as f64),
                fmt_secs(spread.median),
                fmt_secs(spread.p90),
                fmt_secs(spread.max),
                if w.missing > 0 {
                    format!(" {} record(s) have no lock wait.", w.missing)
                } else {
                    String::new()
                },
            );
            charts::waits(out, s, w, &spread);
        }
        None => out.push_str(
            "<p class=\"missing\">No recorded lock wait: these records come from \
             <code>history collect</code> or from before the action recorded waits.</p>\n",
        ),
    }
    out.push_str("</div></div>\n</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Operation, Outcome, PredictedDuration, ResourceTiming};
    use chrono::TimeDelta;

    fn options() -> PageOptions {
        PageOptions {
            source: "file <h.json>".into(),
            generated_at: DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap(),
        }
    }

    fn record(stack: &str, i: i64, logical_id: &str) -> HistoryRecord {
        let start =
            DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap() + TimeDelta::hours(i);
        HistoryRecord {
            stack: stack.into(),
            correlation_id: format!("20260101-{i:06}-abc1234"),
            operation: Operation::Update,
            outcome: Outcome::Succeeded,
            started_at: start,
            finished_at: start + TimeDelta::seconds(300 + 10 * i),
            rollback_started_at: None,
            resources: vec![ResourceTiming {
                logical_id: logical_id.into(),
                resource_type: "AWS::ECS::Service".into(),
                action: "UPDATE".into(),
                started_at: start + TimeDelta::seconds(2),
                finished_at: start + TimeDelta::seconds(250 + 10 * i),
                status: "UPDATE_COMPLETE".into(),
            }],
            estimate: None,
            lock_wait_seconds: None,
        }
    }

    fn count(html: &str, needle: &str) -> usize {
        html.matches(needle).count()
    }

    #[test]
    fn user_strings_are_escaped_everywhere() {
        let evil_stack = "app\"><script>alert(1)</script>";
        let evil_id = "Svc<img src=x onerror=alert(2)>";
        let records: Vec<_> = (0..3).map(|i| record(evil_stack, i, evil_id)).collect();
        let html = render(&records, &options());
        assert!(
            !html.contains("<script"),
            "no script element, even from a stack name"
        );
        assert!(!html.contains("<img"));
        assert!(html.contains("app&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("data-resource=\"Svc&lt;img src=x onerror=alert(2)&gt;\""));
        assert!(html.contains("file &lt;h.json&gt;"));
    }

    #[test]
    fn every_record_is_one_point_and_missing_data_is_said_not_drawn() {
        let records: Vec<_> = (0..5).map(|i| record("app", i, "Service")).collect();
        let html = render(&records, &options());
        assert_eq!(count(&html, "data-point=\"duration\""), 5);
        assert_eq!(count(&html, "data-point=\"resource\""), 5);
        // Collected records have no estimate and no lock wait: no chart, a sentence instead.
        assert_eq!(count(&html, "data-chart=\"estimate\""), 0);
        assert_eq!(count(&html, "data-chart=\"wait\""), 0);
        assert!(html.contains("No successful deployment with a recorded estimate"));
        assert!(html.contains("No recorded lock wait"));
        assert!(!html.contains("class=\"band\""));
    }

    #[test]
    fn estimates_and_waits_are_charted_when_recorded() {
        let mut records: Vec<_> = (0..6).map(|i| record("app", i, "Service")).collect();
        for r in &mut records[2..] {
            r.estimate = Some(PredictedDuration {
                seconds: 320,
                low_seconds: 280,
                high_seconds: 340,
            });
            r.lock_wait_seconds = Some(12.5);
        }
        records[5].outcome = Outcome::RolledBack;
        let html = render(&records, &options());
        assert_eq!(
            count(&html, "data-point=\"estimate\""),
            3,
            "successful ones only"
        );
        assert_eq!(count(&html, "data-point=\"wait\""), 4);
        assert_eq!(
            count(&html, "class=\"band\""),
            1,
            "one run of estimated records"
        );
        assert!(html.contains("2 of 6 deployment(s) have no recorded estimate"));
        // Durations 320, 330, 340 s: all inside [280, 340].
        assert!(html.contains("3 of 3 successful deployment(s) (100 %) ended inside"));
        assert!(html.contains("1 deployment(s) did not succeed"));
    }

    #[test]
    fn stacks_get_their_own_sections_and_an_empty_history_says_so() {
        let records = vec![record("b", 1, "X"), record("a", 2, "Y")];
        let html = render(&records, &options());
        let a = html.find("data-stack=\"a\"").unwrap();
        let b = html.find("data-stack=\"b\"").unwrap();
        assert!(a < b, "sections in stack order");
        assert_eq!(count(&html, "<svg"), 4, "durations and resources per stack");
        let empty = render(&[], &options());
        assert!(empty.contains("No history records"));
        assert!(!empty.contains("<svg"));
    }
}
