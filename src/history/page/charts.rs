//! The four charts of a stack's section, as inline SVG: deployments over time, the slowest
//! resources, estimated against actual, lock waits.
//!
//! Every data point is an element with `data-point` (the chart's series) and a `<title>`
//! (the browser's tooltip, and what a screen reader says), so the page is readable without
//! JavaScript and a test can count the points against the records.

use std::fmt::Write;

use super::stats::{Accuracy, ResourceStats, Spread, StackStats, Waits};
use super::svg::{
    self, Frame, Scale, duration_label, duration_ticks, esc, time_domain, time_ticks, ts,
};
use crate::estimate::fmt_secs;
use crate::history::HistoryRecord;

/// The page's layout width for full-width charts, and for the two side by side.
pub(crate) const WIDE: f64 = 940.0;
pub(crate) const HALF: f64 = 462.0;

/// What a point's tooltip says about its deployment, first line.
fn describe(r: &HistoryRecord) -> String {
    format!(
        "{} · {} · {}\nstarted {} UTC",
        r.correlation_id,
        r.operation.as_str(),
        r.outcome.as_str().replace('_', " "),
        r.started_at.format("%Y-%m-%d %H:%M"),
    )
}

/// Deployments over time: duration, outcome colour, the estimate's P10–P90 band where the
/// action recorded one, and the median of successful runs.
pub(crate) fn durations(out: &mut String, s: &StackStats) {
    let frame = Frame::new(WIDE, 300.0);
    let times: Vec<_> = s.records.iter().map(|r| r.started_at).collect();
    let (t0, t1) = time_domain(&times);
    let x = frame.x_scale((ts(t0), ts(t1)));
    let top = s
        .records
        .iter()
        .map(|r| {
            let high = r.estimate.map_or(0.0, |e| e.high_seconds as f64);
            r.seconds().max(high)
        })
        .fold(0.0, f64::max);
    let ticks = duration_ticks(top, 5);
    let y = frame.y_scale((0.0, ticks.last().copied().unwrap_or(1.0)));
    svg::open(
        out,
        "duration",
        &frame,
        &format!("{}: duration of each deployment over time", s.stack),
        "One point per deployment, coloured by outcome; the shaded band is the estimate's \
         10th to 90th percentile range when the action recorded one.",
    );
    svg::y_axis(out, &frame, &y, &ticks, duration_label, "duration");
    let xt: Vec<(f64, String)> = time_ticks(t0, t1, 8)
        .into_iter()
        .map(|(t, l)| (ts(t), l))
        .collect();
    svg::x_axis(out, &frame, &x, &xt, "deployment started (UTC)");

    // The band: one shape per run of consecutive estimated deployments; a lone estimate is a
    // whisker, as a band needs two ends.
    let mut band = String::new();
    for run in s
        .records
        .split(|r| r.estimate.is_none())
        .filter(|run| !run.is_empty())
    {
        let pts: Vec<(f64, f64, f64)> = run
            .iter()
            .filter_map(|r| {
                r.estimate.map(|e| {
                    (
                        x.at(ts(r.started_at)),
                        y.at(e.high_seconds as f64),
                        y.at(e.low_seconds as f64),
                    )
                })
            })
            .collect();
        if let [(px, hi, lo)] = pts.as_slice() {
            let _ = write!(
                band,
                "<line class=\"range\" x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{hi:.1}\" y2=\"{lo:.1}\"/>"
            );
            continue;
        }
        let upper = pts.iter().map(|(px, hi, _)| format!("{px:.1},{hi:.1}"));
        let lower = pts
            .iter()
            .rev()
            .map(|(px, _, lo)| format!("{px:.1},{lo:.1}"));
        let _ = write!(
            band,
            "<polygon class=\"band\" points=\"{}\"/>",
            upper.chain(lower).collect::<Vec<_>>().join(" ")
        );
    }
    out.push_str(&band);

    if let Some(ok) = s.succeeded {
        let py = y.at(ok.median);
        let _ = write!(
            out,
            "<line class=\"median\" x1=\"{l}\" x2=\"{r}\" y1=\"{py:.1}\" y2=\"{py:.1}\">\
             <title>median of successful deployments: {}</title></line>\
             <text class=\"note\" x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">median {}</text>",
            fmt_secs(ok.median),
            fmt_secs(ok.median),
            l = frame.left,
            r = frame.right,
            tx = frame.right - 4.0,
            ty = py - 4.0,
        );
    }

    for r in &s.records {
        let estimate = match r.estimate {
            Some(e) => format!(
                "\nestimated {} ({}–{})",
                fmt_secs(e.seconds as f64),
                fmt_secs(e.low_seconds as f64),
                fmt_secs(e.high_seconds as f64)
            ),
            None => "\nno estimate recorded".into(),
        };
        let _ = write!(
            out,
            "<circle class=\"pt {cls}\" data-point=\"duration\" data-id=\"{id}\" cx=\"{cx:.1}\" \
             cy=\"{cy:.1}\" r=\"4.5\"><title>{t}</title></circle>",
            cls = r.outcome.as_str(),
            id = esc(&r.correlation_id),
            cx = x.at(ts(r.started_at)),
            cy = y.at(r.seconds()),
            t = esc(&format!(
                "{}\ntook {}{estimate}",
                describe(r),
                fmt_secs(r.seconds())
            )),
        );
    }
    out.push_str("</svg>");
}

/// Trend in words and as a CSS class: `+25 %` slower lately, `−10 %` faster.
pub(crate) fn trend_text(trend: Option<f64>) -> (String, &'static str) {
    let Some(t) = trend else {
        return ("too few runs".into(), "flat");
    };
    // Whole percents; `+ 0.0` turns a rounded −0 into 0.
    let p = (t * 100.0).round() + 0.0;
    match p {
        _ if p == 0.0 => ("0 %".into(), "flat"),
        _ if p.abs() < 10.0 => (format!("{p:+.0} %"), "flat"),
        _ if p > 0.0 => (format!("▲ {p:+.0} %"), "slower"),
        _ => (format!("▼ {p:+.0} %"), "faster"),
    }
}

/// The slowest resources: median bar with a P90 tick on a shared axis, the trend (newer half
/// of its runs against the older half) and a sparkline of every run.
pub(crate) fn resources(out: &mut String, s: &StackStats) {
    let rows = &s.resources;
    let row_h = 30.0;
    let frame = Frame {
        width: WIDE,
        height: 30.0 + row_h * rows.len() as f64 + 44.0,
        left: 230.0,
        right: 560.0,
        top: 30.0,
        bottom: 30.0 + row_h * rows.len() as f64,
    };
    let top = rows.iter().map(|r| r.spread.p90).fold(0.0, f64::max);
    let ticks = duration_ticks(top, 5);
    let x = frame.x_scale((0.0, ticks.last().copied().unwrap_or(1.0)));
    let (spark_l, spark_r) = (700.0, WIDE - 12.0);
    // Sparklines share the stack's deployments as their x axis, so a gap is a deployment
    // that did not touch the resource.
    let index = Scale::new(
        (0.0, s.records.len().saturating_sub(1) as f64),
        (spark_l, spark_r),
    );
    svg::open(
        out,
        "resources",
        &frame,
        &format!("{}: slowest resources", s.stack),
        "Median duration (bar) and 90th percentile (tick) of each resource's completed runs, \
         its trend (newer half of its runs against the older half) and every run over the \
         stack's deployments.",
    );
    let _ = write!(
        out,
        "<g class=\"heading\"><text x=\"{l}\" y=\"16\">median (bar), 90th percentile (tick)</text>\
         <text x=\"640\" y=\"16\" text-anchor=\"middle\">trend</text>\
         <text x=\"{spark_l}\" y=\"16\">each run, oldest to newest deployment</text></g>",
        l = frame.left,
    );
    let xt: Vec<(f64, String)> = ticks.iter().map(|t| (*t, duration_label(*t))).collect();
    svg::x_axis(out, &frame, &x, &xt, "resource duration");
    for (i, r) in rows.iter().enumerate() {
        let y0 = frame.top + row_h * i as f64;
        resource_row(out, r, &x, &index, y0, row_h, s);
    }
    out.push_str("</svg>");
}

fn resource_row(
    out: &mut String,
    r: &ResourceStats,
    x: &Scale,
    index: &Scale,
    y0: f64,
    row_h: f64,
    s: &StackStats,
) {
    let mid = y0 + row_h / 2.0;
    let (trend, trend_class) = trend_text(r.trend);
    let summary = format!(
        "{} ({}): median {}, 90th percentile {}, longest {} over {} run(s); trend {trend}",
        r.logical_id,
        r.resource_type,
        fmt_secs(r.spread.median),
        fmt_secs(r.spread.p90),
        fmt_secs(r.spread.max),
        r.spread.count,
    );
    let _ = write!(
        out,
        "<g class=\"resource\" data-resource=\"{id}\"><title>{sum}</title>\
         <text x=\"8\" y=\"{ty:.1}\" class=\"label\">{id}<tspan class=\"type\" x=\"8\" dy=\"11\">{rt}</tspan></text>\
         <rect class=\"bar\" x=\"{bx:.1}\" y=\"{by:.1}\" width=\"{bw:.1}\" height=\"12\"/>\
         <line class=\"p90\" x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{p0:.1}\" y2=\"{p1:.1}\"/>\
         <text x=\"640\" y=\"{tt:.1}\" text-anchor=\"middle\" class=\"trend {trend_class}\">{trend}</text>",
        id = esc(r.logical_id),
        sum = esc(&summary),
        // The full type is in the row's title; the label keeps what fits beside the bar.
        rt = esc(r.resource_type.trim_start_matches("AWS::")),
        ty = mid - 2.0,
        bx = x.at(0.0),
        by = mid - 6.0,
        bw = (x.at(r.spread.median) - x.at(0.0)).max(1.0),
        px = x.at(r.spread.p90),
        p0 = mid - 9.0,
        p1 = mid + 9.0,
        tt = mid + 4.0,
        trend = esc(&trend),
    );
    let lo = r.runs.iter().map(|p| p.seconds).fold(f64::MAX, f64::min);
    let hi = r.runs.iter().map(|p| p.seconds).fold(0.0, f64::max);
    let y = Scale::new((lo, hi), (y0 + row_h - 5.0, y0 + 5.0));
    let position = |rec: &HistoryRecord| {
        s.records
            .iter()
            .position(|x| std::ptr::eq(*x, rec))
            .unwrap_or(0) as f64
    };
    let pts: Vec<(f64, f64)> = r
        .runs
        .iter()
        .map(|p| (index.at(position(p.record)), y.at(p.seconds)))
        .collect();
    let line: Vec<String> = pts.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
    let _ = write!(
        out,
        "<polyline class=\"spark\" points=\"{}\"/>",
        line.join(" ")
    );
    for (p, (cx, cy)) in r.runs.iter().zip(&pts) {
        let _ = write!(
            out,
            "<circle class=\"spark-pt\" data-point=\"resource\" data-id=\"{id}\" cx=\"{cx:.1}\" \
             cy=\"{cy:.1}\" r=\"2\"><title>{t}</title></circle>",
            id = esc(&p.record.correlation_id),
            t = esc(&format!(
                "{}: {}\n{}",
                r.logical_id,
                fmt_secs(p.seconds),
                describe(p.record)
            )),
        );
    }
    out.push_str("</g>");
}

/// Estimated against actual: one point per judged deployment, its [low, high] range as a
/// horizontal whisker, and the diagonal where the estimate was exact.
pub(crate) fn accuracy(out: &mut String, s: &StackStats, a: &Accuracy) {
    let frame = Frame::new(HALF, 380.0);
    let top = a
        .judged
        .iter()
        .map(|j| j.actual.max(j.estimate.high_seconds as f64))
        .fold(0.0, f64::max);
    let ticks = duration_ticks(top, 5);
    let m = ticks.last().copied().unwrap_or(1.0);
    let x = frame.x_scale((0.0, m));
    let y = frame.y_scale((0.0, m));
    svg::open(
        out,
        "estimate",
        &frame,
        &format!("{}: estimated against actual duration", s.stack),
        "One point per successful deployment with a recorded estimate: the estimate across, \
         the actual duration up; the whisker is the estimate's range; on the diagonal the \
         estimate was exact, above it the deployment took longer.",
    );
    svg::y_axis(out, &frame, &y, &ticks, duration_label, "actual duration");
    let xt: Vec<(f64, String)> = ticks.iter().map(|t| (*t, duration_label(*t))).collect();
    svg::x_axis(out, &frame, &x, &xt, "estimated duration (first estimate)");
    let _ = write!(
        out,
        "<line class=\"diagonal\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\">\
         <title>estimate = actual</title></line>",
        x.at(0.0),
        y.at(0.0),
        x.at(m),
        y.at(m)
    );
    for j in &a.judged {
        let e = j.estimate;
        let cy = y.at(j.actual);
        let verdict = if j.inside {
            "inside the range"
        } else {
            "outside the range"
        };
        let _ = write!(
            out,
            "<line class=\"range\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{cy:.1}\" y2=\"{cy:.1}\"/>\
             <circle class=\"pt {cls}\" data-point=\"estimate\" data-id=\"{id}\" cx=\"{cx:.1}\" \
             cy=\"{cy:.1}\" r=\"4\"><title>{t}</title></circle>",
            x.at(e.low_seconds as f64),
            x.at(e.high_seconds as f64),
            cls = if j.inside { "inside" } else { "outside" },
            id = esc(&j.record.correlation_id),
            cx = x.at(e.seconds as f64),
            t = esc(&format!(
                "{}\nestimated {} ({}–{}), took {}: {verdict}",
                describe(j.record),
                fmt_secs(e.seconds as f64),
                fmt_secs(e.low_seconds as f64),
                fmt_secs(e.high_seconds as f64),
                fmt_secs(j.actual)
            )),
        );
    }
    out.push_str("</svg>");
}

/// Lock waits over time, as stems from zero, with the median and 90th percentile marked.
pub(crate) fn waits(out: &mut String, s: &StackStats, w: &Waits, spread: &Spread) {
    let frame = Frame::new(HALF, 380.0);
    let times: Vec<_> = w.recorded.iter().map(|(r, _)| r.started_at).collect();
    let (t0, t1) = time_domain(&times);
    let x = frame.x_scale((ts(t0), ts(t1)));
    let ticks = duration_ticks(spread.max, 5);
    let y = frame.y_scale((0.0, ticks.last().copied().unwrap_or(1.0)));
    svg::open(
        out,
        "wait",
        &frame,
        &format!("{}: time queued for the lock", s.stack),
        "One stem per deployment with a recorded lock wait, at the time the deployment \
         started; dashed lines: median and 90th percentile.",
    );
    svg::y_axis(out, &frame, &y, &ticks, duration_label, "lock wait");
    let xt: Vec<(f64, String)> = time_ticks(t0, t1, 4)
        .into_iter()
        .map(|(t, l)| (ts(t), l))
        .collect();
    svg::x_axis(out, &frame, &x, &xt, "deployment started (UTC)");
    let median_y = y.at(spread.median);
    for (label, v) in [("median", spread.median), ("P90", spread.p90)] {
        let py = y.at(v);
        // Two labels at nearly the same height would print over each other: the P90's goes
        // above the median's.
        let ty = if label == "P90" && median_y - py < 14.0 {
            median_y - 17.0
        } else {
            py - 3.0
        };
        let _ = write!(
            out,
            "<line class=\"median\" x1=\"{l}\" x2=\"{r}\" y1=\"{py:.1}\" y2=\"{py:.1}\">\
             <title>{label}: {}</title></line>\
             <text class=\"note\" x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{label} {}</text>",
            fmt_secs(v),
            fmt_secs(v),
            l = frame.left,
            r = frame.right,
            tx = frame.right - 4.0,
        );
    }
    for (r, wait) in &w.recorded {
        let cx = x.at(ts(r.started_at));
        let _ = write!(
            out,
            "<line class=\"stem\" x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"{b:.1}\" y2=\"{cy:.1}\"/>\
             <circle class=\"pt wait\" data-point=\"wait\" data-id=\"{id}\" cx=\"{cx:.1}\" \
             cy=\"{cy:.1}\" r=\"3.5\"><title>{t}</title></circle>",
            b = y.at(0.0),
            cy = y.at(*wait),
            id = esc(&r.correlation_id),
            t = esc(&format!(
                "{}\nwaited {} for the lock",
                describe(r),
                fmt_secs(*wait)
            )),
        );
    }
    out.push_str("</svg>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trends_read_as_slower_faster_or_flat() {
        assert_eq!(trend_text(Some(0.25)), ("▲ +25 %".into(), "slower"));
        assert_eq!(trend_text(Some(-0.3)), ("▼ -30 %".into(), "faster"));
        assert_eq!(trend_text(Some(0.04)), ("+4 %".into(), "flat"));
        assert_eq!(
            trend_text(Some(-0.001)),
            ("0 %".into(), "flat"),
            "never -0 %"
        );
        assert_eq!(trend_text(None).1, "flat");
    }
}
