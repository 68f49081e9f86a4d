//! SVG building blocks for the report's charts: escaping, linear scales, tick choice, axes.
//!
//! Pure string building. Every chart is drawn into a [`Frame`] (the plot area inside the
//! margins that hold the axes' labels), so the axes of all charts look alike.

use std::fmt::Write;

use chrono::{DateTime, TimeDelta, Utc};

/// Escapes text for HTML and SVG, in element content and in attribute values alike (both
/// quotes too): stack names, logical IDs and correlation IDs come from users.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML (SVG) even escaped as references.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A linear map from data values to pixels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
}

impl Scale {
    /// A zero-width domain (one value) is widened so it maps to the middle, never to NaN.
    pub(crate) fn new(domain: (f64, f64), range: (f64, f64)) -> Scale {
        let (mut d0, mut d1) = domain;
        if (d1 - d0).abs() < 1e-9 {
            d0 -= 1.0;
            d1 += 1.0;
        }
        Scale {
            d0,
            d1,
            r0: range.0,
            r1: range.1,
        }
    }

    pub(crate) fn at(&self, v: f64) -> f64 {
        self.r0 + (v - self.d0) / (self.d1 - self.d0) * (self.r1 - self.r0)
    }
}

/// The plot area of a chart inside its margins.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
}

impl Frame {
    /// A chart of the given size with room for a y axis' labels on the left, an x axis'
    /// labels and title below, and half of the last x label ("10 min", centred on its tick)
    /// on the right.
    pub(crate) fn new(width: f64, height: f64) -> Frame {
        Frame {
            width,
            height,
            left: 72.0,
            right: width - 28.0,
            top: 14.0,
            bottom: height - 44.0,
        }
    }

    pub(crate) fn x_scale(&self, domain: (f64, f64)) -> Scale {
        Scale::new(domain, (self.left, self.right))
    }

    pub(crate) fn y_scale(&self, domain: (f64, f64)) -> Scale {
        Scale::new(domain, (self.bottom, self.top))
    }
}

/// Opens an `<svg>` element with its accessible title (shown as a tooltip too) and a
/// description of what it shows; the caller closes it with `</svg>`.
pub(crate) fn open(out: &mut String, chart: &str, frame: &Frame, title: &str, desc: &str) {
    let _ = write!(
        out,
        "<svg class=\"chart\" data-chart=\"{chart}\" xmlns=\"http://www.w3.org/2000/svg\" \
         viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\">\
         <title>{t}</title><desc>{d}</desc>",
        w = frame.width,
        h = frame.height,
        t = esc(title),
        d = esc(desc),
    );
}

/// Steps for duration axes, in seconds: values people read at a glance.
const DURATION_STEPS: [f64; 17] = [
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    10800.0, 21600.0, 43200.0,
];

/// Ticks from 0 to at least `max` seconds, about `target` of them, on a readable step.
pub(crate) fn duration_ticks(max: f64, target: usize) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let wanted = max / target.max(1) as f64;
    let step = DURATION_STEPS
        .iter()
        .copied()
        .find(|s| *s >= wanted)
        .unwrap_or_else(|| (wanted / 86400.0).ceil() * 86400.0);
    let n = (max / step).ceil().max(1.0) as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

/// A tick label for a duration: `0`, `45 s`, `5 min`, `1 h`, `1 h 30`.
pub(crate) fn duration_label(seconds: f64) -> String {
    let s = seconds.round() as i64;
    match s {
        0 => "0".into(),
        1..=59 => format!("{s} s"),
        60..=3599 if s % 60 == 0 => format!("{} min", s / 60),
        60..=3599 => format!("{}:{:02} min", s / 60, s % 60),
        _ if s % 3600 == 0 => format!("{} h", s / 3600),
        _ => format!("{} h {:02}", s / 3600, (s % 3600) / 60),
    }
}

/// Steps for time axes, in hours.
const TIME_STEPS_HOURS: [i64; 11] = [1, 3, 6, 12, 24, 48, 72, 168, 336, 720, 2160];

/// About `target` ticks between two instants, on whole hours or days (UTC), with labels.
pub(crate) fn time_ticks(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    target: usize,
) -> Vec<(DateTime<Utc>, String)> {
    let span_hours = (to - from).num_minutes() as f64 / 60.0;
    // The step whose number of ticks comes closest to the target.
    let step_h = TIME_STEPS_HOURS
        .iter()
        .copied()
        .min_by(|a, b| {
            let off = |h: i64| (span_hours / h as f64 - target as f64).abs();
            off(*a).total_cmp(&off(*b))
        })
        .unwrap_or(24);
    let step = step_h * 3600;
    // First multiple of the step (from the epoch, so days start at midnight UTC) not before
    // `from`.
    let first = from.timestamp().div_euclid(step) * step
        + if from.timestamp().rem_euclid(step) == 0 {
            0
        } else {
            step
        };
    let format = if step_h >= 24 { "%b %d" } else { "%b %d %H:%M" };
    (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= to.timestamp())
        .filter_map(|t| DateTime::<Utc>::from_timestamp(t, 0))
        .map(|t| (t, t.format(format).to_string()))
        .collect()
}

/// The horizontal extent of a time axis: the records' span, padded so the first and last
/// points are not drawn on the axes.
pub(crate) fn time_domain(times: &[DateTime<Utc>]) -> (DateTime<Utc>, DateTime<Utc>) {
    let (Some(lo), Some(hi)) = (times.iter().min(), times.iter().max()) else {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        return (now, now + TimeDelta::hours(1));
    };
    let pad = ((*hi - *lo) / 40).max(TimeDelta::minutes(30));
    (*lo - pad, *hi + pad)
}

/// Seconds since the epoch, as an x coordinate's domain value.
pub(crate) fn ts(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// A y axis: grid lines, labelled ticks and the axis title (rotated).
pub(crate) fn y_axis(
    out: &mut String,
    frame: &Frame,
    y: &Scale,
    ticks: &[f64],
    label: impl Fn(f64) -> String,
    title: &str,
) {
    out.push_str("<g class=\"axis y\">");
    for v in ticks {
        let py = y.at(*v);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{l}\" x2=\"{r}\" y1=\"{py:.1}\" y2=\"{py:.1}\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{}</text>",
            esc(&label(*v)),
            l = frame.left,
            r = frame.right,
            tx = frame.left - 6.0,
            ty = py + 4.0,
        );
    }
    let _ = write!(
        out,
        "<line class=\"domain\" x1=\"{l}\" x2=\"{l}\" y1=\"{t}\" y2=\"{b}\"/>\
         <text class=\"axis-title\" transform=\"translate(14 {my:.1}) rotate(-90)\" \
         text-anchor=\"middle\">{}</text></g>",
        esc(title),
        l = frame.left,
        t = frame.top,
        b = frame.bottom,
        my = (frame.top + frame.bottom) / 2.0,
    );
}

/// An x axis: tick marks with labels at the given positions (data values) and the title.
pub(crate) fn x_axis(
    out: &mut String,
    frame: &Frame,
    x: &Scale,
    ticks: &[(f64, String)],
    title: &str,
) {
    out.push_str("<g class=\"axis x\">");
    for (v, text) in ticks {
        let px = x.at(*v);
        let _ = write!(
            out,
            "<line class=\"tick\" x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{b}\" y2=\"{b5}\"/>\
             <text x=\"{px:.1}\" y=\"{ty}\" text-anchor=\"middle\">{}</text>",
            esc(text),
            b = frame.bottom,
            b5 = frame.bottom + 5.0,
            ty = frame.bottom + 18.0,
        );
    }
    let _ = write!(
        out,
        "<line class=\"domain\" x1=\"{l}\" x2=\"{r}\" y1=\"{b}\" y2=\"{b}\"/>\
         <text class=\"axis-title\" x=\"{mx:.1}\" y=\"{ty}\" text-anchor=\"middle\">{}</text></g>",
        esc(title),
        l = frame.left,
        r = frame.right,
        b = frame.bottom,
        mx = (frame.left + frame.right) / 2.0,
        ty = frame.height - 6.0,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_quotes_and_control_characters() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(esc("a\u{0}b"), "a\u{FFFD}b");
        assert_eq!(esc("plain-Stack_1"), "plain-Stack_1");
    }

    #[test]
    fn scales_map_ends_and_survive_a_single_value() {
        let s = Scale::new((0.0, 10.0), (100.0, 0.0));
        assert_eq!(s.at(0.0), 100.0);
        assert_eq!(s.at(10.0), 0.0);
        assert_eq!(s.at(5.0), 50.0);
        let flat = Scale::new((3.0, 3.0), (0.0, 100.0));
        assert_eq!(flat.at(3.0), 50.0);
    }

    #[test]
    fn duration_ticks_cover_the_maximum_on_readable_steps() {
        let ticks = duration_ticks(1000.0, 5);
        assert_eq!(ticks.first(), Some(&0.0));
        assert!(ticks.last().is_some_and(|t| *t >= 1000.0));
        assert_eq!(ticks[1], 300.0, "{ticks:?}");
        assert!(ticks.len() <= 6);
        assert_eq!(duration_ticks(0.0, 5), vec![0.0, 1.0]);
        assert_eq!(duration_label(300.0), "5 min");
        assert_eq!(duration_label(90.0), "1:30 min");
        assert_eq!(duration_label(5400.0), "1 h 30");
        assert_eq!(duration_label(30.0), "30 s");
    }

    #[test]
    fn time_ticks_fall_on_midnight_for_multi_day_spans() {
        let from: DateTime<Utc> = "2026-01-01T10:00:00Z".parse().unwrap();
        let to: DateTime<Utc> = "2026-01-20T10:00:00Z".parse().unwrap();
        let ticks = time_ticks(from, to, 6);
        assert!((4..=8).contains(&ticks.len()), "{ticks:?}");
        assert!(ticks.iter().all(|(t, _)| *t >= from && *t <= to));
        assert!(ticks.iter().all(|(t, _)| t.timestamp() % 86400 == 0));
        assert!(ticks[0].1.starts_with("Jan 0"), "{ticks:?}");
        let hours = time_ticks(from, from + TimeDelta::hours(6), 6);
        assert_eq!(hours[0].1, "Jan 01 10:00");
    }
}
