//! A strict check of Mermaid `gantt` text, so a chart we write is known to render on GitHub.
//!
//! It follows mermaid's own grammar (`diagrams/gantt/parser/gantt.jison`): the same lexer
//! rules in the same order, first match wins (jison's default, not the longest match), keywords
//! case-insensitive. That order is what makes untrusted names dangerous: a task named
//! `GanttBucket` lexes as the `gantt` keyword, `Section A` as a section, `2024-01-01x` as a date
//! token that no rule accepts. On top of the grammar it checks what mermaid only finds while
//! rendering (and then shows an error instead of the chart): dates that do not parse with the
//! `dateFormat`, an end before its start, an unknown `axisFormat` directive, text longer than
//! mermaid's default `maxTextSize` of 50,000 characters.
//!
//! Two mermaid versions are in use: 10 (the grammar above) and 11, whose lexer differs (`gantt\b`
//! with a word boundary, `#` and `;` allowed in task and section names, `#` no longer a
//! comment). A chart is accepted only if both read it the same way, as its author meant:
//! every task line a task. Checked against mermaid 11.17 in headless Chromium
//! (`tests/summary_mermaid_real.rs`).
//!
//! Strict: it accepts a subset of valid gantt charts. Interactivity (`click`, `call`, `href`),
//! directives (`%%{...}%%`) and accessibility statements are refused; `dateFormat` must be `x`
//! (epoch milliseconds) or `YYYY-MM-DD`, and is required before the first
//! task.
//!
//! `dateFormat X` (epoch seconds) is refused although both grammars accept it: mermaid 11 draws
//! every such date at the same instant. `x` (epoch milliseconds) works in both.

use std::collections::HashSet;

use thiserror::Error;

/// Mermaid's default `maxTextSize`: longer diagram text is not rendered at all.
pub const MAX_TEXT_SIZE: usize = 50_000;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GanttError {
    #[error("line {line}: {problem}")]
    Syntax { line: usize, problem: String },
    #[error("the chart is {0} characters; mermaid renders at most {MAX_TEXT_SIZE}")]
    TooLarge(usize),
    #[error("the chart has no task")]
    NoTask,
}

/// What a valid chart holds (for tests and callers that want to look inside).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gantt {
    pub title: Option<String>,
    pub date_format: String,
    pub axis_format: Option<String>,
    pub sections: Vec<String>,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub name: String,
    pub section: Option<String>,
    pub tags: Vec<String>,
    pub id: Option<String>,
    /// Absolute start in milliseconds since the epoch, when given as a date.
    pub start_ms: Option<i64>,
    /// Absolute end in milliseconds since the epoch, when given as a date.
    pub end_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Gantt,
    Nl,
    /// A statement keyword with its value (`dateFormat X` → ("dateformat", "X")).
    Keyword(&'static str, String),
    TaskTxt(String),
    TaskData(String),
}

/// Validates `text` (the content of a ```mermaid block, without the fences).
pub fn validate_gantt(text: &str) -> Result<Gantt, GanttError> {
    let chars = text.chars().count();
    if chars > MAX_TEXT_SIZE {
        return Err(GanttError::TooLarge(chars));
    }
    // Mermaid trims the text before picking the diagram type and parsing it.
    let text = text.trim_start();
    let tokens = lex(text)?;
    parse(&tokens)
}

const WEEKDAYS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Keywords whose rule is `"keyword"\s[^#\n;]+` (value to the end of the statement).
/// (`dateFormat`, `inclusiveEndDates` and `topAxis` come before these in the lexer.)
const VALUE_KEYWORDS: &[(&str, &str)] = &[
    ("axisformat", "#\n;"),
    ("tickinterval", "#\n;"),
    ("includes", "#\n;"),
    ("excludes", "#\n;"),
    ("todaymarker", "\n;"),
];

fn is_js_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Length in bytes of the longest prefix of `s` made of chars not in `stop`.
fn run_until(s: &str, stop: &str) -> usize {
    s.find(|c: char| stop.contains(c)).unwrap_or(s.len())
}

/// `"keyword"\s[^stop]+`: the keyword, ONE whitespace char, then at least one allowed char.
/// Returns the token's length and its value.
fn keyword_with_value<'a>(s: &'a str, keyword: &str, stop: &str) -> Option<(usize, &'a str)> {
    if !starts_with_ci(s, keyword) {
        return None;
    }
    let rest = &s[keyword.len()..];
    let space = rest.chars().next().filter(|c| is_js_space(*c))?;
    let after = &rest[space.len_utf8()..];
    let value = run_until(after, stop);
    (value > 0).then_some((keyword.len() + space.len_utf8() + value, &after[..value]))
}

/// `keyword\s*":"` (or another opening char): the accessibility statements.
fn keyword_then(s: &str, keyword: &str, opening: &[char]) -> bool {
    starts_with_ci(s, keyword)
        && s[keyword.len()..]
            .trim_start_matches(is_js_space)
            .starts_with(opening)
}

/// `\d\d\d\d-\d\d-\d\d`: mermaid 10 lexes it as a date token wherever a statement starts.
pub(crate) fn starts_with_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

fn line_of(text: &str, pos: usize) -> usize {
    text[..pos].matches('\n').count() + 1
}

fn lex(text: &str) -> Result<Vec<Token>, GanttError> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    let syntax = |pos: usize, problem: String| GanttError::Syntax {
        line: line_of(text, pos),
        problem,
    };
    while pos < text.len() {
        let s = &text[pos..];
        let first = s.chars().next().unwrap_or('\0');
        // The rules of gantt.jison, in order.
        if s.starts_with("%%{") {
            return Err(syntax(
                pos,
                "directives (%%{...}%%) are not accepted".into(),
            ));
        }
        if keyword_then(s, "acctitle", &[':']) || keyword_then(s, "accdescr", &[':', '{']) {
            return Err(syntax(
                pos,
                "accessibility statements are not accepted".into(),
            ));
        }
        if s.starts_with("%%") {
            pos += run_until(s, "\n");
            continue;
        }
        // `[^\}]\%\%*[^\n]*`: any char but `}` (a newline too) followed by `%`: a comment.
        if first != '}' && s[first.len_utf8()..].starts_with('%') {
            pos += first.len_utf8() + run_until(&s[first.len_utf8()..], "\n");
            continue;
        }
        // `\%\%*[^\n]*[\n]*`
        if first == '%' {
            let line = run_until(s, "\n");
            let newlines = s[line..].len() - s[line..].trim_start_matches('\n').len();
            pos += line + newlines;
            continue;
        }
        if first == '\n' {
            pos += s.len() - s.trim_start_matches('\n').len();
            tokens.push(Token::Nl);
            continue;
        }
        if is_js_space(first) {
            // `\s+` also swallows newlines that follow other whitespace, as in mermaid.
            pos += s.len() - s.trim_start_matches(is_js_space).len();
            continue;
        }
        // Mermaid 10 reads `#` and `;` as the end of a statement (and `#` as a comment);
        // mermaid 11 reads them as part of a task name. A chart that uses them means different
        // things on different GitHub versions: refused.
        if first == '#' || first == ';' {
            return Err(syntax(
                pos,
                format!("{first:?} is read differently by mermaid 10 and 11"),
            ));
        }
        for keyword in ["call", "click"] {
            if starts_with_ci(s, keyword) && s[keyword.len()..].starts_with(is_js_space) {
                return Err(syntax(
                    pos,
                    format!("interactivity ({keyword}) is not accepted"),
                ));
            }
        }
        if keyword_then(s, "href", &['"']) && s[4..].starts_with(is_js_space) {
            return Err(syntax(pos, "interactivity (href) is not accepted".into()));
        }
        if starts_with_ci(s, "gantt") {
            tokens.push(Token::Gantt);
            pos += "gantt".len();
            continue;
        }
        if let Some((n, value)) = keyword_with_value(s, "dateformat", "#\n;") {
            tokens.push(Token::Keyword("dateformat", value.to_string()));
            pos += n;
            continue;
        }
        if starts_with_ci(s, "inclusiveenddates") {
            tokens.push(Token::Keyword("inclusiveenddates", String::new()));
            pos += "inclusiveenddates".len();
            continue;
        }
        if starts_with_ci(s, "topaxis") {
            tokens.push(Token::Keyword("topaxis", String::new()));
            pos += "topaxis".len();
            continue;
        }
        if let Some((keyword, (n, value))) = VALUE_KEYWORDS
            .iter()
            .find_map(|(k, stop)| keyword_with_value(s, k, stop).map(|found| (*k, found)))
        {
            tokens.push(Token::Keyword(keyword, value.to_string()));
            pos += n;
            continue;
        }
        if starts_with_ci(s, "weekday") {
            let rest = &s["weekday".len()..];
            let spaces = rest.len() - rest.trim_start_matches(is_js_space).len();
            if spaces > 0 {
                let rest = &rest[spaces..];
                if let Some(day) = WEEKDAYS.iter().find(|d| starts_with_ci(rest, d)) {
                    tokens.push(Token::Keyword("weekday", day.to_string()));
                    pos += "weekday".len() + spaces + day.len();
                    continue;
                }
            }
        }
        if starts_with_date(s) {
            return Err(syntax(
                pos,
                format!(
                    "a line starting with a date ({:?}) is a date token, not a task name",
                    &s[..10]
                ),
            ));
        }
        if let Some((n, value)) = keyword_with_value(s, "title", "#\n;") {
            tokens.push(Token::Keyword("title", value.to_string()));
            pos += n;
            continue;
        }
        if keyword_with_value(s, "accdescription", "#\n;").is_some() {
            return Err(syntax(
                pos,
                "accDescription is not a gantt statement".into(),
            ));
        }
        if let Some((n, value)) = keyword_with_value(s, "section", "#:\n;") {
            tokens.push(Token::Keyword("section", value.to_string()));
            pos += n;
            continue;
        }
        let n = run_until(s, "#:\n;");
        if n > 0 {
            if s[n..].starts_with(['#', ';']) {
                return Err(syntax(
                    pos + n,
                    "'#' or ';' in a task name is read differently by mermaid 10 and 11".into(),
                ));
            }
            tokens.push(Token::TaskTxt(s[..n].to_string()));
            pos += n;
            continue;
        }
        if first == ':' {
            let n = run_until(&s[1..], "#\n;");
            if n == 0 {
                return Err(syntax(pos, "a task needs data after its ':'".into()));
            }
            if s[1 + n..].starts_with(['#', ';']) {
                return Err(syntax(
                    pos + 1 + n,
                    "'#' or ';' after task data is read differently by mermaid 10 and 11".into(),
                ));
            }
            tokens.push(Token::TaskData(s[1..1 + n].to_string()));
            pos += 1 + n;
            continue;
        }
        return Err(syntax(pos, format!("unexpected {first:?}")));
    }
    Ok(tokens)
}

/// The grammar (`start: gantt document EOF`, a document is lines of statements) and the checks
/// mermaid makes only while rendering.
fn parse(tokens: &[Token]) -> Result<Gantt, GanttError> {
    let mut line = 1;
    let err = |line: usize, problem: String| GanttError::Syntax { line, problem };
    let mut iter = tokens.iter().peekable();
    // Mermaid removes comment lines before parsing: the newlines they leave do not count.
    while iter.next_if_eq(&&Token::Nl).is_some() {
        line += 1;
    }
    if iter.next() != Some(&Token::Gantt) {
        return Err(err(1, "a gantt chart starts with `gantt`".into()));
    }
    let mut chart = Gantt::default();
    let mut ids: HashSet<String> = HashSet::new();
    let mut section: Option<String> = None;
    let mut previous_end: Option<Option<i64>> = None;
    while let Some(token) = iter.next() {
        match token {
            Token::Nl => line += 1,
            Token::Gantt => return Err(err(line, "a second `gantt`".into())),
            Token::TaskData(data) => {
                return Err(err(
                    line,
                    format!("task data without a task name: {data:?}"),
                ));
            }
            Token::Keyword(keyword, value) => {
                let value = value.trim();
                match *keyword {
                    "dateformat" => {
                        if value == "X" {
                            return Err(err(
                                line,
                                "dateFormat X: mermaid 11 draws every date at the same instant; use x (milliseconds)"
                                    .into(),
                            ));
                        }
                        if !matches!(value, "x" | "YYYY-MM-DD") {
                            return Err(err(
                                line,
                                format!("dateFormat {value:?}: only x and YYYY-MM-DD are accepted"),
                            ));
                        }
                        chart.date_format = value.to_string();
                    }
                    "axisformat" => {
                        check_axis_format(value).map_err(|p| err(line, p))?;
                        chart.axis_format = Some(value.to_string());
                    }
                    "tickinterval" => check_tick_interval(value).map_err(|p| err(line, p))?,
                    "title" => chart.title = Some(value.to_string()),
                    "section" => {
                        if value.is_empty() {
                            return Err(err(line, "empty section name".into()));
                        }
                        section = Some(value.to_string());
                        chart.sections.push(value.to_string());
                    }
                    _ => {}
                }
            }
            Token::TaskTxt(name) => {
                let Some(Token::TaskData(data)) = iter.next() else {
                    return Err(err(
                        line,
                        format!("task {:?} has no ':' and data after it", name.trim()),
                    ));
                };
                let name = name.trim();
                if name.is_empty() {
                    return Err(err(line, "empty task name".into()));
                }
                if chart.date_format.is_empty() {
                    return Err(err(
                        line,
                        "dateFormat must come before the first task".into(),
                    ));
                }
                let task = task_of(
                    name,
                    data,
                    &chart.date_format,
                    &ids,
                    previous_end,
                    section.clone(),
                )
                .map_err(|p| err(line, p))?;
                if let Some(id) = &task.id {
                    ids.insert(id.clone());
                }
                previous_end = Some(task.end_ms);
                chart.tasks.push(task);
            }
        }
    }
    if chart.tasks.is_empty() {
        return Err(GanttError::NoTask);
    }
    Ok(chart)
}

const TAGS: &[&str] = &["active", "done", "crit", "milestone"];

fn task_of(
    name: &str,
    data: &str,
    date_format: &str,
    ids: &HashSet<String>,
    previous_end: Option<Option<i64>>,
    section: Option<String>,
) -> Result<Task, String> {
    let mut fields: Vec<&str> = data.split(',').map(str::trim).collect();
    let mut tags = Vec::new();
    while let Some(first) = fields.first()
        && TAGS.contains(first)
    {
        tags.push(first.to_string());
        fields.remove(0);
    }
    let (id, start, end) = match fields.as_slice() {
        [end] => {
            if previous_end.is_none() {
                return Err(format!(
                    "task {name:?} has only an end: the first task needs a start"
                ));
            }
            (None, None, *end)
        }
        [start, end] => (None, Some(*start), *end),
        [id, start, end] => {
            if id.is_empty() || id.contains(char::is_whitespace) {
                return Err(format!("task {name:?}: invalid id {id:?}"));
            }
            (Some(id.to_string()), Some(*start), *end)
        }
        _ => {
            return Err(format!(
                "task {name:?}: expected [tags,] [id,] start, end; got {data:?}"
            ));
        }
    };
    let start_ms = match start {
        None => previous_end.flatten(),
        Some(start) => {
            if let Some(after) = start.strip_prefix("after ") {
                check_references(after, ids, name)?;
                None
            } else {
                Some(parse_date(start, date_format).ok_or_else(|| {
                    format!("task {name:?}: start {start:?} is not a date in format {date_format}")
                })?)
            }
        }
    };
    let end_ms = if let Some(until) = end.strip_prefix("until ") {
        check_references(until, ids, name)?;
        None
    } else if let Some(ms) = parse_date(end, date_format) {
        Some(ms)
    } else if let Some(duration) = parse_duration_ms(end) {
        start_ms.map(|s| s + duration)
    } else {
        return Err(format!(
            "task {name:?}: end {end:?} is neither a date in format {date_format} nor a duration"
        ));
    };
    if let (Some(s), Some(e)) = (start_ms, end_ms)
        && e < s
    {
        return Err(format!("task {name:?} ends before it starts"));
    }
    Ok(Task {
        name: name.to_string(),
        section,
        tags,
        id,
        start_ms,
        end_ms,
    })
}

fn check_references(list: &str, ids: &HashSet<String>, name: &str) -> Result<(), String> {
    for id in list.split_whitespace() {
        if !ids.contains(id) {
            return Err(format!("task {name:?} refers to unknown task id {id:?}"));
        }
    }
    Ok(())
}

fn parse_date(text: &str, format: &str) -> Option<i64> {
    let digits = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit());
    match format {
        "x" if digits(text) => text.parse().ok(),
        "YYYY-MM-DD" => {
            let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
            // dayjs strict mode: the text must read back the same (no single-digit months).
            (date.format("%Y-%m-%d").to_string() == text)
                .then(|| date.and_hms_opt(0, 0, 0))
                .flatten()
                .map(|d| d.and_utc().timestamp_millis())
        }
        _ => None,
    }
}

/// mermaid's `/^(\d+(?:\.\d+)?)([Mdhmswy]|ms)$/`.
fn parse_duration_ms(text: &str) -> Option<i64> {
    let (number, unit) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else {
        let unit = text.chars().last()?;
        let ms = match unit {
            's' => 1_000.0,
            'm' => 60_000.0,
            'h' => 3_600_000.0,
            'd' => 86_400_000.0,
            'w' => 604_800_000.0,
            'M' => 2_592_000_000.0,
            'y' => 31_536_000_000.0,
            _ => return None,
        };
        (&text[..text.len() - 1], ms)
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, "0"));
    let all_digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !all_digits(int) || !all_digits(frac) {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    Some((value * unit) as i64)
}

/// d3-time-format directives (`%` + optional padding `-`, `_`, `0` + one of these).
const AXIS_DIRECTIVES: &str = "aAbBcdefgGHIjLmMpqQsSuUVwWxXyYZ%";

fn check_axis_format(value: &str) -> Result<(), String> {
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        let mut d = chars.next();
        if matches!(d, Some('-' | '_' | '0')) {
            d = chars.next();
        }
        match d {
            Some(d) if AXIS_DIRECTIVES.contains(d) => {}
            other => {
                return Err(format!(
                    "axisFormat {value:?}: unknown directive %{}",
                    other.map(String::from).unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}

/// mermaid's `/^([1-9][0-9]*)(millisecond|second|minute|hour|day|week|month)$/`.
fn check_tick_interval(value: &str) -> Result<(), String> {
    let digits = value.chars().take_while(char::is_ascii_digit).count();
    let ok = digits > 0
        && !value.starts_with('0')
        && matches!(
            &value[digits..],
            "millisecond" | "second" | "minute" | "hour" | "day" | "week" | "month"
        );
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tickInterval {value:?} is not like 30second or 5minute"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "gantt
    title Deploy of api
    dateFormat x
    axisFormat %H:%M:%S
    section api
    Bucket (S3 Bucket) :done, 1700000000000, 1700000012000
    DB (RDS DBInstance) :crit, db, 1700000001000, 1700000400000
    section api/Network
    Vpc :active, 1700000002000, 1700000100000
    After the DB :after db, 30s
    Next one :5m
";

    #[test]
    fn accepts_the_charts_we_write() {
        let chart = validate_gantt(VALID).expect("valid");
        assert_eq!(chart.title.as_deref(), Some("Deploy of api"));
        assert_eq!(chart.sections, ["api", "api/Network"]);
        assert_eq!(chart.tasks.len(), 5);
        assert_eq!(chart.tasks[1].tags, ["crit"]);
        assert_eq!(chart.tasks[1].id.as_deref(), Some("db"));
        assert_eq!(chart.tasks[1].end_ms, Some(1_700_000_400_000));
        assert_eq!(chart.tasks[2].section.as_deref(), Some("api/Network"));
        assert_eq!(chart.tasks[4].start_ms, None, "after db: not computed");
    }

    #[test]
    fn accepts_comments_and_day_dates() {
        let text = "%% a comment\ngantt\n  dateFormat YYYY-MM-DD\n  %% another\n  A task :2024-01-01, 3d\n  B :2024-01-04, 2024-01-09\n";
        let chart = validate_gantt(text).expect("valid");
        assert_eq!(chart.tasks.len(), 2);
    }

    fn problem(text: &str) -> String {
        match validate_gantt(text) {
            Ok(chart) => panic!("accepted {text:?}: {chart:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn with_task(line: &str) -> String {
        format!("gantt\n dateFormat x\n section s\n {line}\n")
    }

    #[test]
    fn refuses_task_names_that_lex_as_something_else() {
        // Each of these is a real logical id or status text that would break the chart.
        assert!(problem(&with_task("GanttBucket :1, 2")).contains("second `gantt`"));
        assert!(problem(&with_task("Section A :1, 2")).contains("task data without"));
        assert!(problem(&with_task("2024-01-01x :1, 2")).contains("date token"));
        assert!(problem(&with_task("click me :1, 2")).contains("interactivity"));
        // `AWS` becomes the name, the rest its (unreadable) data.
        assert!(problem(&with_task("AWS::S3::Bucket :1, 2")).contains("not a date"));
        // A title statement that swallows the task.
        assert!(problem(&with_task("Title Page :1, 2")).contains("no task"));
        assert!(problem(&with_task("accTitle : x")).contains("accessibility"));
        // Only the keyword followed by what its rule needs is a keyword.
        assert!(validate_gantt(&with_task("AccTitleBucket :1, 2")).is_ok());
        assert!(validate_gantt(&with_task("Callback :1, 2")).is_ok());
        assert!(validate_gantt(&with_task("Sectioned :1, 2")).is_ok());
    }

    #[test]
    fn a_hash_or_semicolon_in_a_name_cuts_the_task() {
        assert!(problem(&with_task("Rule #1 :1, 2")).contains("differently"));
        assert!(problem(&with_task("a;b :1, 2")).contains("differently"));
        assert!(problem(&with_task("A :1, 2 # note")).contains("differently"));
        assert!(problem("gantt\n dateFormat x\n # note\n A :1, 2\n").contains("differently"));
        // `%` right after the first char starts a comment: the task disappears, the next
        // line's data has no name.
        assert!(problem(&with_task("5% :1, 2")).contains("no task"));
    }

    #[test]
    fn refuses_data_that_does_not_render() {
        assert!(problem(&with_task("A :1, x")).contains("neither a date"));
        assert!(problem(&with_task("A :abc, 2")).contains("start \"abc\""));
        assert!(problem(&with_task("A :5, 2")).contains("ends before"));
        assert!(problem(&with_task("A :1, 2, 3, 4")).contains("expected"));
        assert!(problem(&with_task("A :2")).contains("first task needs a start"));
        assert!(problem(&with_task("A :after nope, 2s")).contains("unknown task id"));
        assert!(problem(&with_task("A :")).contains("needs data"));
        assert!(problem("gantt\n section s\n A :1, 2\n").contains("dateFormat must come"));
        assert!(problem("gantt\n dateFormat HH:mm\n").contains("dateFormat"));
        assert!(problem("gantt\n dateFormat X\n A :1, 2\n").contains("same instant"));
        assert!(problem("gantt\n dateFormat x\n axisFormat %H:%k\n A :1, 2").contains("%k"));
        assert!(problem("gantt\n dateFormat x\n tickInterval 0second\n").contains("tickInterval"));
        assert!(problem("gantt\n dateFormat x\n").contains("no task"));
        assert!(problem("graph TD\n A --> B").contains("starts with `gantt`"));
    }

    #[test]
    fn refuses_text_mermaid_will_not_render() {
        let mut text = String::from("gantt\n dateFormat x\n");
        while text.len() <= MAX_TEXT_SIZE {
            text.push_str(" A task :1, 2\n");
        }
        assert!(matches!(
            validate_gantt(&text),
            Err(GanttError::TooLarge(_))
        ));
    }

    #[test]
    fn durations_follow_mermaids_pattern() {
        assert_eq!(parse_duration_ms("30s"), Some(30_000));
        assert_eq!(parse_duration_ms("1.5h"), Some(5_400_000));
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        assert_eq!(parse_duration_ms("3"), None);
        assert_eq!(parse_duration_ms("s"), None);
        assert_eq!(parse_duration_ms("-3s"), None);
        assert_eq!(parse_duration_ms("1.s"), None);
    }
}
