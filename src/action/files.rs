//! The runner's file commands: `GITHUB_OUTPUT`, `GITHUB_STATE` and `GITHUB_STEP_SUMMARY`.
//!
//! The runner reads these files after the container exits, also when the step failed or was
//! cancelled, and a record it cannot parse fails the step. So every record is written in one
//! `write()` ending in `\n` (a kill between two writes cannot leave half a record), single-line
//! values use `name=value`, and multi-line values use a heredoc with a random delimiter that
//! the value is checked not to contain.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum FileCommandError {
    #[error("cannot write {kind} file {path}: {source}")]
    Io {
        kind: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{kind} name {name:?} is not usable: names must be non-empty and contain no '=', '<<' or line breaks"
    )]
    BadName { kind: &'static str, name: String },
    #[error("the value of {kind} {name:?} contains the heredoc delimiter; refusing to write it")]
    DelimiterInValue { kind: &'static str, name: String },
}

/// Where this step's file commands go. A `None` path (outside GitHub Actions) drops records.
#[derive(Debug, Clone, Default)]
pub struct FileCommands {
    pub output: Option<PathBuf>,
    pub state: Option<PathBuf>,
    pub summary: Option<PathBuf>,
}

impl FileCommands {
    /// Reads `GITHUB_OUTPUT`, `GITHUB_STATE` and `GITHUB_STEP_SUMMARY` from an environment.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let path = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        FileCommands {
            output: path("GITHUB_OUTPUT"),
            state: path("GITHUB_STATE"),
            summary: path("GITHUB_STEP_SUMMARY"),
        }
    }

    /// Sets a step output.
    pub fn set_output(&self, name: &str, value: &str) -> Result<(), FileCommandError> {
        write_record("output", self.output.as_ref(), name, value)
    }

    /// Saves a value for the post step, which sees it as `STATE_<name>`.
    pub fn save_state(&self, name: &str, value: &str) -> Result<(), FileCommandError> {
        write_record("state", self.state.as_ref(), name, value)
    }

    /// Appends Markdown to the job summary.
    pub fn append_summary(&self, markdown: &str) -> Result<(), FileCommandError> {
        let Some(path) = self.summary.as_ref() else {
            return Ok(());
        };
        let mut text = markdown.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        append("summary", path, text.as_bytes())
    }
}

/// Formats one record by the runner's rules (without writing it).
pub(crate) fn format_record(
    kind: &'static str,
    name: &str,
    value: &str,
) -> Result<String, FileCommandError> {
    if name.is_empty() || name.contains('=') || name.contains("<<") || name.contains(['\n', '\r']) {
        return Err(FileCommandError::BadName {
            kind,
            name: name.to_string(),
        });
    }
    if !value.contains(['\n', '\r']) {
        return Ok(format!("{name}={value}\n"));
    }
    let delimiter = format!("ghadelimiter_{}", uuid::Uuid::new_v4());
    if value.contains(&delimiter) {
        return Err(FileCommandError::DelimiterInValue {
            kind,
            name: name.to_string(),
        });
    }
    Ok(format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"))
}

fn write_record(
    kind: &'static str,
    path: Option<&PathBuf>,
    name: &str,
    value: &str,
) -> Result<(), FileCommandError> {
    let record = format_record(kind, name, value)?;
    match path {
        Some(path) => append(kind, path, record.as_bytes()),
        None => Ok(()),
    }
}

fn append(kind: &'static str, path: &PathBuf, bytes: &[u8]) -> Result<(), FileCommandError> {
    let io = |source| FileCommandError::Io {
        kind,
        path: path.display().to_string(),
        source,
    };
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    // One write per record: see the module comment.
    file.write_all(bytes).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_values_use_name_equals_value() {
        assert_eq!(
            format_record("output", "outcome", "succeeded").unwrap(),
            "outcome=succeeded\n"
        );
        // The runner splits at the first '=', so '=' in a value is fine.
        assert_eq!(format_record("output", "k", "a=b").unwrap(), "k=a=b\n");
    }

    #[test]
    fn multi_line_values_use_a_random_heredoc() {
        let record = format_record("output", "stack-outputs", "{\n\"a\": 1\n}").unwrap();
        let mut lines = record.lines();
        let first = lines.next().unwrap();
        let delimiter = first.strip_prefix("stack-outputs<<").unwrap();
        assert!(delimiter.starts_with("ghadelimiter_"));
        assert_eq!(
            record,
            format!("stack-outputs<<{delimiter}\n{{\n\"a\": 1\n}}\n{delimiter}\n")
        );
        // A carriage return alone also needs the heredoc, or it would become part of the value.
        assert!(
            format_record("output", "x", "a\rb")
                .unwrap()
                .starts_with("x<<ghadelimiter_")
        );
    }

    #[test]
    fn names_that_would_corrupt_the_file_are_refused() {
        for name in ["", "a=b", "a<<b", "a\nb"] {
            assert!(
                matches!(
                    format_record("state", name, "v"),
                    Err(FileCommandError::BadName { .. })
                ),
                "{name:?}"
            );
        }
    }

    #[test]
    fn records_are_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output");
        let files = FileCommands {
            output: Some(path.clone()),
            ..Default::default()
        };
        files.set_output("a", "1").unwrap();
        files.set_output("b", "2").unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), "a=1\nb=2\n");
    }
}
