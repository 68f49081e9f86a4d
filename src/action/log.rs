//! Logging and workflow commands, safe against injection.
//!
//! The runner scans every line the step prints, on stdout and stderr, for workflow commands:
//! `::cmd::data` after leading white space, and the legacy `##[cmd]data` anywhere in a line. A
//! stack event reason, a commit message or a Slack error body printed raw could therefore set
//! outputs, add masks or stop command processing. Two rules keep that from happening:
//! - workflow commands are only produced by [`command`], which escapes data and properties;
//! - every other line goes through [`sanitize`], which makes sure no line of it can start a
//!   command and breaks up `##[`, and replaces every registered secret by `***`.
//!
//! All of it goes to stderr: stdout belongs to the CLI's results (`--json`), and the runner
//! reads commands from both streams alike.
//!
//! Annotations stay within what the runner keeps (see [`AnnotationBudget`]): it turns only the
//! first 10 errors, 10 warnings and 10 notices of a step into annotations and cuts each message
//! at 4,096 characters, silently. So each step prints at most that many, cuts long messages
//! itself (the whole text goes to the log first), prints the rest as plain log lines, and
//! [`finish_step`] ends the step with one notice that says how many more there were and a job
//! summary section listing them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Mutex, OnceLock, RwLock};

/// Where the process runs, which decides how annotations look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A step of a GitHub Actions job: workflow commands.
    GitHub,
    /// A terminal or a plain pipe: `warning: ...` lines.
    Terminal,
}

/// The level of an annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Notice,
}

impl Level {
    fn command(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
        }
    }
}

/// How many annotations of one kind the runner keeps per step (`_maxIssueCount` in the
/// runner's ExecutionContext; ../shared/reference/github-actions-contract.md).
pub const ANNOTATIONS_PER_KIND: usize = 10;

/// The longest annotation message the runner keeps, in UTF-16 code units (it cuts longer ones:
/// `_maxIssueMessageLength`, a C# string length).
pub const MAX_ANNOTATION_MESSAGE: usize = 4096;

/// Held-back annotations listed in the job summary, at most; the rest are counted. Each one is
/// also in the step's log, whole.
const MAX_SUMMARY_ROWS: usize = 100;
/// Characters of one held-back message in the summary table.
const MAX_SUMMARY_MESSAGE: usize = 1000;

const LEVELS: [Level; 3] = [Level::Error, Level::Warning, Level::Notice];

impl Level {
    fn index(self) -> usize {
        match self {
            Level::Error => 0,
            Level::Warning => 1,
            Level::Notice => 2,
        }
    }

    /// The noun for a count of this kind: "3 errors".
    fn noun(self, count: usize) -> String {
        let word = self.command();
        if count == 1 {
            format!("1 {word}")
        } else {
            format!("{count} {word}s")
        }
    }
}

/// An annotation that did not fit into the step's budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub level: Level,
    pub title: String,
    pub message: String,
}

/// Which annotations of one step are shown and which are held back.
///
/// Errors and warnings get the runner's 10 each. Notices get 9: the tenth notice slot is kept
/// for the one notice that [`finish_step`] prints about everything held back, so that it is
/// never itself the annotation the runner drops.
#[derive(Debug, Default)]
pub struct AnnotationBudget {
    shown: [usize; 3],
    held_count: [usize; 3],
    /// The first [`MAX_SUMMARY_ROWS`] held-back annotations, for the job summary.
    held: Vec<Held>,
}

impl AnnotationBudget {
    fn limit(level: Level) -> usize {
        match level {
            Level::Notice => ANNOTATIONS_PER_KIND - 1,
            Level::Error | Level::Warning => ANNOTATIONS_PER_KIND,
        }
    }

    /// Counts one annotation: true when it may be printed as one, false when it is held back
    /// (and kept for the summary).
    pub fn admit(&mut self, level: Level, title: &str, message: &str) -> bool {
        let i = level.index();
        if self.shown[i] < Self::limit(level) {
            self.shown[i] += 1;
            return true;
        }
        self.held_count[i] += 1;
        if self.held.len() < MAX_SUMMARY_ROWS {
            self.held.push(Held {
                level,
                title: title.to_string(),
                message: message.to_string(),
            });
        }
        false
    }

    /// How many annotations were held back, all kinds together.
    pub fn held_total(&self) -> usize {
        self.held_count.iter().sum()
    }

    /// "15 more warnings and 2 more errors": what was held back, most severe first.
    fn held_counts(&self) -> String {
        let parts: Vec<String> = LEVELS
            .iter()
            .filter(|l| self.held_count[l.index()] > 0)
            .map(|l| l.noun(self.held_count[l.index()]))
            .collect();
        match parts.as_slice() {
            [] => String::new(),
            [one] => one.clone(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        }
    }

    /// The closing notice's title and message, when something was held back.
    pub fn closing_notice(&self) -> Option<(String, String)> {
        if self.held_total() == 0 {
            return None;
        }
        let counts = self.held_counts();
        Some((
            format!("{counts} not shown as annotations"),
            format!(
                "GitHub shows at most {ANNOTATIONS_PER_KIND} errors, {ANNOTATIONS_PER_KIND} warnings and \
                 {ANNOTATIONS_PER_KIND} notices per step: the other {counts} of this step are listed in the \
                 job summary (\"Annotations not shown\") and printed whole in this step's log."
            ),
        ))
    }

    /// The job summary section listing what was held back (Markdown, untrusted text escaped).
    pub fn summary_markdown(&self) -> Option<String> {
        use crate::summary::markdown::text;
        if self.held_total() == 0 {
            return None;
        }
        let mut out = format!(
            "### Annotations not shown\n\nGitHub shows at most {ANNOTATIONS_PER_KIND} annotations of \
             each kind per step; here are the other {} of this step, printed whole in its log:\n\n\
             | kind | title | message |\n|---|---|---|\n",
            self.held_counts()
        );
        for held in &self.held {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                held.level.command(),
                text(&held.title, crate::summary::markdown::MAX_CELL_CHARS),
                text(&held.message, MAX_SUMMARY_MESSAGE)
            );
        }
        let unlisted = self.held_total() - self.held.len();
        if unlisted > 0 {
            let _ = writeln!(out, "\n… and {unlisted} more, in the step's log only.");
        }
        Some(out)
    }
}

/// Cuts an annotation message to what the runner keeps, saying so at the end. None when it
/// fits already.
pub fn cut_message(message: &str) -> Option<String> {
    if message.encode_utf16().count() <= MAX_ANNOTATION_MESSAGE {
        return None;
    }
    const MARK: &str = " … (cut: the whole message is in the step's log)";
    let room = MAX_ANNOTATION_MESSAGE - MARK.encode_utf16().count();
    let mut used = 0;
    let mut cut = String::with_capacity(message.len().min(room * 4));
    for c in message.chars() {
        used += c.len_utf16();
        if used > room {
            break;
        }
        cut.push(c);
    }
    cut.push_str(MARK);
    Some(cut)
}

static BUDGET: Mutex<Option<AnnotationBudget>> = Mutex::new(None);

static TARGET: OnceLock<Target> = OnceLock::new();
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());
static STDERR: Mutex<()> = Mutex::new(());

/// Alias kept so callers can write `action::Log` in signatures that take the target.
pub type Log = Target;

/// Decides, once, whether workflow commands are printed.
pub fn init(target: Target) {
    let _ = TARGET.set(target);
}

fn target() -> Target {
    *TARGET.get().unwrap_or(&Target::Terminal)
}

/// Escapes the data part of a workflow command (`%` first, then line breaks).
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value of a workflow command.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Formats a workflow command. The only way this crate produces one.
pub fn command(name: &str, properties: &[(&str, &str)], data: &str) -> String {
    let mut line = format!("::{name}");
    let mut first = true;
    for (key, value) in properties {
        line.push(if first { ' ' } else { ',' });
        first = false;
        let _ = write!(line, "{key}={}", escape_property(value));
    }
    let _ = write!(line, "::{}", escape_data(data));
    line
}

/// Registers a secret: masked by the runner from now on, and replaced by `***` in everything
/// this process prints through this module and the tracing writer. Values shorter than 4
/// characters are not masked: they would turn ordinary words into `***` everywhere.
pub fn add_mask(secret: &str) {
    let secret = secret.trim();
    if secret.len() < 4 {
        return;
    }
    if let Ok(mut secrets) = SECRETS.write() {
        if secrets.iter().any(|s| s == secret) {
            return;
        }
        secrets.push(secret.to_string());
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
    if target() == Target::GitHub {
        // Each line separately: the runner masks line by line.
        for line in secret.lines().filter(|l| !l.trim().is_empty()) {
            emit(&command("add-mask", &[], line));
        }
    }
}

/// Replaces every registered secret in `text` by `***`.
pub fn redact(text: &str) -> String {
    let Ok(secrets) = SECRETS.read() else {
        return text.to_string();
    };
    let mut out = text.to_string();
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "***");
        }
    }
    out
}

/// Makes text safe to print as ordinary log lines: secrets redacted, no line can be read as a
/// workflow command. Lines after the first get a `| ` prefix, which keeps multi-line text
/// readable and makes sure no line starts with `::`.
pub fn sanitize(text: &str) -> String {
    let text = redact(text).replace("##[", "##\u{200B}[");
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line).replace('\r', " ");
        if i > 0 {
            out.push_str("\n  | ");
        }
        if i == 0 && line.trim_start().starts_with("::") {
            out.push_str("| ");
        }
        out.push_str(&line);
    }
    out
}

/// Prints an annotation: a workflow command in GitHub Actions (within the step's budget, else
/// a plain log line), `warning: ...` elsewhere.
pub fn annotate(level: Level, title: &str, message: &str) {
    let message = redact(message);
    let title = redact(title);
    let plain = |text: &str| {
        let prefix = level.command();
        let text = if title.is_empty() {
            text.to_string()
        } else {
            format!("{title}: {text}")
        };
        format!("{prefix}: {}", sanitize(&text))
    };
    match target() {
        Target::GitHub => {
            let admitted = match BUDGET.lock() {
                Ok(mut budget) => budget
                    .get_or_insert_with(AnnotationBudget::default)
                    .admit(level, &title, &message),
                // A panic elsewhere while counting: better one annotation too many than none.
                Err(_) => true,
            };
            if !admitted {
                emit(&plain(&message));
                return;
            }
            let props: Vec<(&str, &str)> = if title.is_empty() {
                vec![]
            } else {
                vec![("title", title.as_str())]
            };
            match cut_message(&message) {
                Some(cut) => {
                    // The whole text first, as plain lines: the annotation keeps only its start.
                    emit(&plain(&message));
                    emit(&command(level.command(), &props, &cut));
                }
                None => emit(&command(level.command(), &props, &message)),
            }
        }
        Target::Terminal => emit(&plain(&message)),
    }
}

/// Ends a step's annotations: when some were held back, one notice saying how many (it has the
/// notice slot kept for it) and a job summary section listing them. The entry point calls it
/// after the main or the post step; it does nothing outside GitHub Actions.
pub fn finish_step(files: &super::FileCommands) {
    if target() != Target::GitHub {
        return;
    }
    let Some(budget) = BUDGET.lock().ok().and_then(|mut b| b.take()) else {
        return;
    };
    if let Some((title, message)) = budget.closing_notice() {
        emit(&command(
            Level::Notice.command(),
            &[("title", title.as_str())],
            &message,
        ));
    }
    if let Some(markdown) = budget.summary_markdown()
        && let Err(e) = files.append_summary(&markdown)
    {
        emit(&sanitize(&format!(
            "cannot write the held-back annotations to the job summary: {e}"
        )));
    }
}

pub fn error(title: &str, message: &str) {
    annotate(Level::Error, title, message);
}

pub fn warning(title: &str, message: &str) {
    annotate(Level::Warning, title, message);
}

pub fn notice(title: &str, message: &str) {
    annotate(Level::Notice, title, message);
}

/// A collapsible group in the GitHub log; ends when dropped.
#[must_use = "the group ends when this guard is dropped"]
pub struct Group(bool);

pub fn group(title: &str) -> Group {
    let github = target() == Target::GitHub;
    if github {
        emit(&command("group", &[], &redact(title)));
    }
    Group(github)
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.0 {
            emit("::endgroup::");
        }
    }
}

/// Prints one or more lines of our own (already safe) text on stderr, atomically.
fn emit(line: &str) {
    let _guard = STDERR.lock();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// A `tracing` writer that passes every formatted log line through [`sanitize`].
#[derive(Clone, Copy, Default)]
pub struct SafeWriter;

pub struct SafeWriterHandle(Vec<u8>);

impl std::io::Write for SafeWriterHandle {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SafeWriterHandle {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        if !text.is_empty() {
            emit(&sanitize(text));
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SafeWriter {
    type Writer = SafeWriterHandle;
    fn make_writer(&'a self) -> Self::Writer {
        SafeWriterHandle(Vec::new())
    }
}

/// Installs the process's `tracing` subscriber: level from `RUST_LOG` (`target=level` pairs,
/// default `info`, `debug` for our own code when the runner's debug logging is on), no
/// timestamps in GitHub Actions (the runner adds its own), colours only on a terminal.
///
/// `Targets` rather than `EnvFilter`: the latter's span and regex matching costs most of a
/// megabyte of binary, and every job pulls the image.
pub fn init_tracing(target: Target, debug: bool) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let default = if debug {
        "deploy_coordinator=debug,info"
    } else {
        "info"
    };
    let filter: Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| default.parse().unwrap_or_default());
    let ansi = target == Target::Terminal && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_ansi(ansi)
        .with_writer(SafeWriter);
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_and_properties_are_escaped_percent_first() {
        assert_eq!(escape_data("100%\r\ndone"), "100%25%0D%0Adone");
        assert_eq!(escape_property("a:b,c%"), "a%3Ab%2Cc%25");
        assert_eq!(
            command(
                "error",
                &[("title", "Invalid input 'mode'")],
                "got \"x\"\nexpected deploy"
            ),
            "::error title=Invalid input 'mode'::got \"x\"%0Aexpected deploy"
        );
    }

    #[test]
    fn untrusted_text_cannot_start_a_command() {
        let evil = "Resource failed\n::set-output name=outcome::succeeded\n  ::add-mask::x\r\n##[error]boom";
        let safe = sanitize(evil);
        for line in safe.lines() {
            assert!(!line.trim_start().starts_with("::"), "{line:?}");
            assert!(!line.contains("##["), "{line:?}");
        }
        assert!(!sanitize("::error::x").trim_start().starts_with("::"));
        // The text itself stays readable.
        assert!(safe.contains("::set-output name=outcome::succeeded"));
    }

    #[test]
    fn twenty_five_errors_give_ten_annotations_and_the_rest_in_the_summary() {
        let mut budget = AnnotationBudget::default();
        let admitted: Vec<bool> = (1..=25)
            .map(|i| budget.admit(Level::Error, &format!("Res{i} failed"), "Access denied"))
            .collect();
        assert_eq!(admitted.iter().filter(|a| **a).count(), 10);
        assert!(
            admitted[..10].iter().all(|a| *a),
            "the first ten are shown, as the runner would"
        );
        assert_eq!(budget.held_total(), 15);
        let (title, message) = budget.closing_notice().expect("a closing notice");
        assert_eq!(title, "15 errors not shown as annotations");
        assert!(
            message.contains("the other 15 errors of this step"),
            "{message}"
        );
        let summary = budget.summary_markdown().expect("a summary section");
        for i in 11..=25 {
            assert!(summary.contains(&format!("| error | Res{i} failed | Access denied |")));
        }
        assert!(!summary.contains("Res10 failed"), "{summary}");
    }

    #[test]
    fn each_kind_has_its_own_budget_and_notices_keep_a_slot_for_the_closing_one() {
        let mut budget = AnnotationBudget::default();
        for _ in 0..10 {
            assert!(budget.admit(Level::Warning, "w", "m"));
        }
        assert!(!budget.admit(Level::Warning, "w", "m"));
        assert!(budget.admit(Level::Error, "e", "m"), "errors count apart");
        for _ in 0..9 {
            assert!(budget.admit(Level::Notice, "n", "m"));
        }
        assert!(
            !budget.admit(Level::Notice, "n", "m"),
            "the tenth notice is the closing one"
        );
        assert_eq!(
            budget.closing_notice().unwrap().0,
            "1 warning and 1 notice not shown as annotations"
        );
        assert_eq!(AnnotationBudget::default().closing_notice(), None);
        assert_eq!(AnnotationBudget::default().summary_markdown(), None);
    }

    #[test]
    fn the_summary_lists_at_most_a_hundred_and_escapes_untrusted_text() {
        let mut budget = AnnotationBudget::default();
        for i in 0..160 {
            budget.admit(
                Level::Warning,
                "Bucket",
                &format!("<img src=x> [{i}](https://evil)|"),
            );
        }
        let summary = budget.summary_markdown().unwrap();
        assert_eq!(summary.matches("| warning |").count(), MAX_SUMMARY_ROWS);
        assert!(summary.contains("… and 50 more, in the step's log only."));
        assert!(!summary.contains("<img"), "{summary}");
        assert!(summary.contains("&lt;img src=x&gt; \\[10\\](https://evil)\\|"));
    }

    #[test]
    fn long_messages_are_cut_to_what_the_runner_keeps() {
        assert_eq!(cut_message(&"a".repeat(MAX_ANNOTATION_MESSAGE)), None);
        let cut = cut_message(&"a".repeat(10_000)).unwrap();
        assert_eq!(cut.encode_utf16().count(), MAX_ANNOTATION_MESSAGE);
        assert!(cut.ends_with("(cut: the whole message is in the step's log)"));
        // The runner counts UTF-16 code units: an emoji is two of them, and is never split.
        let cut = cut_message(&"😀".repeat(3000)).unwrap();
        assert!(cut.encode_utf16().count() <= MAX_ANNOTATION_MESSAGE);
        assert!(cut.starts_with("😀😀"));
    }

    #[test]
    fn registered_secrets_are_redacted() {
        add_mask("xoxb-1234-secret-token");
        add_mask("ab"); // too short to mask safely
        assert_eq!(
            redact("token xoxb-1234-secret-token sent"),
            "token *** sent"
        );
        assert_eq!(sanitize("a xoxb-1234-secret-token\n::b"), "a ***\n  | ::b");
        assert_eq!(redact("ab cd"), "ab cd");
    }
}
