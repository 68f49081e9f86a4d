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

/// Prints an annotation: a workflow command in GitHub Actions, `warning: ...` elsewhere.
pub fn annotate(level: Level, title: &str, message: &str) {
    let message = redact(message);
    let title = redact(title);
    match target() {
        Target::GitHub => {
            let props: Vec<(&str, &str)> = if title.is_empty() {
                vec![]
            } else {
                vec![("title", title.as_str())]
            };
            emit(&command(level.command(), &props, &message));
        }
        Target::Terminal => {
            let prefix = level.command();
            let text = if title.is_empty() {
                message
            } else {
                format!("{title}: {message}")
            };
            emit(&format!("{prefix}: {}", sanitize(&text)));
        }
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
