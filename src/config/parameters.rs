//! The `parameters` input: inline `Key=Value` pairs, or `file://<path>` naming a JSON file in
//! the workspace in the AWS CLI's format (`[{"ParameterKey": …, "ParameterValue": …}]`, with
//! `UsePreviousValue`) or CodePipeline's (`{"Parameters": {…}}`), so the files teams already
//! keep for `aws cloudformation deploy` or CodePipeline work unchanged.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::validate::parse_pairs;
use super::{InputError, bad};

const INPUT: &str = "parameters";

/// What a stack parameter is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterValue {
    Value(String),
    /// Keep the stack's current value (CloudFormation's `UsePreviousValue`).
    UsePrevious,
}

/// One stack parameter, as CreateChangeSet takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackParameter {
    pub key: String,
    pub value: ParameterValue,
}

impl StackParameter {
    pub fn value(key: impl Into<String>, value: impl Into<String>) -> StackParameter {
        StackParameter {
            key: key.into(),
            value: ParameterValue::Value(value.into()),
        }
    }
}

/// One entry of the AWS CLI's format. Unknown fields are refused so that a misspelt
/// `ParameterValue` is an error at its line, not a parameter silently left at its default.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CliParameter {
    parameter_key: String,
    parameter_value: Option<String>,
    use_previous_value: Option<bool>,
}

/// CodePipeline's template configuration file; its `Tags` and `StackPolicy` have inputs or
/// tools of their own and are refused rather than ignored.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PipelineFile {
    parameters: BTreeMap<String, String>,
}

const FORMATS: &str = "the file must be a JSON array [{\"ParameterKey\": \"Env\", \"ParameterValue\": \"prod\"}] \
     (AWS CLI) or an object {\"Parameters\": {\"Env\": \"prod\"}} (CodePipeline)";

/// Parses the input; `workspace` resolves a `file://` path, which must stay inside it.
pub(super) fn parse_parameters(
    text: &str,
    workspace: &Path,
) -> Result<Vec<StackParameter>, InputError> {
    let Some(path) = text.trim().strip_prefix("file://") else {
        return Ok(parse_pairs(INPUT, text)?
            .into_iter()
            .map(|(k, v)| StackParameter::value(k, v))
            .collect());
    };
    let body = read_in_workspace(path, workspace)?;
    parse_file(path, &body)
}

fn read_in_workspace(path: &str, workspace: &Path) -> Result<String, InputError> {
    let outside = || {
        bad(
            INPUT,
            format!(
                "file://{path} is outside the workspace {}: give a path relative to the workspace, inside it",
                workspace.display()
            ),
        )
    };
    if path.is_empty() || Path::new(path).is_absolute() {
        return Err(outside());
    }
    let unreadable = |e: std::io::Error| {
        bad(
            INPUT,
            format!(
                "cannot read file://{path} (relative to the workspace {}): {e}",
                workspace.display()
            ),
        )
    };
    // Canonical paths, so neither `..` nor a symbolic link leads out of the workspace.
    let root = workspace.canonicalize().map_err(unreadable)?;
    let file = root.join(path).canonicalize().map_err(unreadable)?;
    if !file.starts_with(&root) {
        return Err(outside());
    }
    std::fs::read_to_string(&file).map_err(unreadable)
}

fn parse_file(path: &str, body: &str) -> Result<Vec<StackParameter>, InputError> {
    let malformed = |e: serde_json::Error| {
        // serde_json appends " at line L column C"; it is said once, in front, instead.
        let text = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let what = text.strip_suffix(&suffix).unwrap_or(&text);
        bad(
            INPUT,
            format!(
                "file://{path}, line {}, column {}: {what}; {FORMATS}",
                e.line(),
                e.column()
            ),
        )
    };
    match body.trim_start().chars().next() {
        Some('[') => {
            let entries: Vec<CliParameter> = serde_json::from_str(body).map_err(malformed)?;
            from_cli(path, entries)
        }
        Some('{') => {
            let file: PipelineFile = serde_json::from_str(body).map_err(malformed)?;
            Ok(file
                .parameters
                .into_iter()
                .map(|(k, v)| StackParameter::value(k, v))
                .collect())
        }
        _ => Err(bad(
            INPUT,
            format!("file://{path} is not a parameters file: {FORMATS}"),
        )),
    }
}

fn from_cli(path: &str, entries: Vec<CliParameter>) -> Result<Vec<StackParameter>, InputError> {
    let mut out: Vec<StackParameter> = Vec::with_capacity(entries.len());
    for (n, entry) in entries.into_iter().enumerate() {
        let key = entry.parameter_key;
        let at = format!("file://{path}, entry {} (ParameterKey {key:?})", n + 1);
        if key.trim().is_empty() {
            return Err(bad(INPUT, format!("{at}: the ParameterKey is empty")));
        }
        let value = match (entry.parameter_value, entry.use_previous_value) {
            (Some(_), Some(true)) => {
                return Err(bad(
                    INPUT,
                    format!("{at}: has both ParameterValue and UsePreviousValue: true; keep one"),
                ));
            }
            (None, Some(true)) => ParameterValue::UsePrevious,
            (Some(value), _) => ParameterValue::Value(value),
            (None, _) => {
                return Err(bad(
                    INPUT,
                    format!("{at}: expected a ParameterValue or UsePreviousValue: true"),
                ));
            }
        };
        if out.iter().any(|p| p.key == key) {
            return Err(bad(INPUT, format!("{at}: {key:?} is given twice")));
        }
        out.push(StackParameter { key, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(file: &str, body: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file), body).unwrap();
        dir
    }

    fn parse_file_input(body: &str) -> Result<Vec<StackParameter>, InputError> {
        let dir = workspace("params.json", body);
        parse_parameters("file://params.json", dir.path())
    }

    fn problem(body: &str) -> String {
        let err = parse_file_input(body).unwrap_err();
        assert_eq!(err.input, "parameters");
        err.problem
    }

    #[test]
    fn inline_pairs_keep_working() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            parse_parameters("Env=prod, Size=large", dir.path()).unwrap(),
            vec![
                StackParameter::value("Env", "prod"),
                StackParameter::value("Size", "large")
            ]
        );
    }

    #[test]
    fn the_aws_cli_format_with_use_previous_value() {
        let parsed = parse_file_input(
            r#"[
  {"ParameterKey": "Env", "ParameterValue": "prod"},
  {"ParameterKey": "Size", "UsePreviousValue": true},
  {"ParameterKey": "Note", "ParameterValue": "a, b = c", "UsePreviousValue": false}
]"#,
        )
        .unwrap();
        assert_eq!(
            parsed,
            vec![
                StackParameter::value("Env", "prod"),
                StackParameter {
                    key: "Size".into(),
                    value: ParameterValue::UsePrevious
                },
                StackParameter::value("Note", "a, b = c"),
            ]
        );
    }

    #[test]
    fn the_codepipeline_format() {
        let parsed =
            parse_file_input(r#"{"Parameters": {"Size": "large", "Env": "prod"}}"#).unwrap();
        assert_eq!(
            parsed,
            vec![
                StackParameter::value("Env", "prod"),
                StackParameter::value("Size", "large")
            ]
        );
    }

    #[test]
    fn a_syntax_error_names_the_file_line_and_column() {
        let p = problem(
            "[\n  {\"ParameterKey\": \"Env\", \"ParameterValue\": \"prod\"}\n  {\"ParameterKey\": \"Size\"}\n]",
        );
        assert!(
            p.starts_with("file://params.json, line 3, column 3: expected `,` or `]`"),
            "{p}"
        );
        assert!(p.contains("; the file must be a JSON array [{"), "{p}");
    }

    #[test]
    fn a_misspelt_field_is_refused_at_its_line() {
        let p = problem("[\n  {\"ParameterKey\": \"Env\",\n   \"ParameterValu\": \"prod\"}\n]");
        assert!(p.starts_with("file://params.json, line 3, column"), "{p}");
        assert!(p.contains("unknown field `ParameterValu`"), "{p}");
    }

    #[test]
    fn a_value_that_is_not_a_string_is_refused_at_its_line() {
        let p = problem("{\"Parameters\": {\n  \"Size\": 3\n}}");
        assert!(p.starts_with("file://params.json, line 2, column"), "{p}");
        assert!(p.contains("expected a string"), "{p}");
    }

    #[test]
    fn a_file_that_is_neither_format_is_refused() {
        let p = problem("Env=prod\n");
        assert!(
            p.starts_with("file://params.json is not a parameters file: the file must be"),
            "{p}"
        );
        let p = problem("{\"Env\": \"prod\"}");
        assert!(
            p.contains("unknown field `Env`, expected `Parameters`"),
            "{p}"
        );
    }

    #[test]
    fn entries_without_a_value_with_both_or_twice_are_refused() {
        let p = problem(r#"[{"ParameterKey": "Env"}]"#);
        assert_eq!(
            p,
            "file://params.json, entry 1 (ParameterKey \"Env\"): expected a ParameterValue or UsePreviousValue: true"
        );
        let p = problem(
            r#"[{"ParameterKey": "Env", "ParameterValue": "a", "UsePreviousValue": true}]"#,
        );
        assert!(
            p.contains("has both ParameterValue and UsePreviousValue"),
            "{p}"
        );
        let p = problem(
            r#"[{"ParameterKey": "A", "ParameterValue": "1"}, {"ParameterKey": "A", "ParameterValue": "2"}]"#,
        );
        assert!(p.contains("entry 2") && p.contains("given twice"), "{p}");
        let p = problem(r#"[{"ParameterKey": " ", "ParameterValue": "1"}]"#);
        assert!(p.contains("the ParameterKey is empty"), "{p}");
    }

    #[test]
    fn a_path_outside_the_workspace_is_refused() {
        let outer = tempfile::tempdir().unwrap();
        let ws = outer.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        std::fs::write(outer.path().join("secret.json"), "[]").unwrap();
        for path in ["../secret.json", "/etc/passwd"] {
            let err = parse_parameters(&format!("file://{path}"), &ws).unwrap_err();
            assert!(
                err.problem.contains("is outside the workspace"),
                "{path}: {}",
                err.problem
            );
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(outer.path().join("secret.json"), ws.join("link.json"))
                .unwrap();
            let err = parse_parameters("file://link.json", &ws).unwrap_err();
            assert!(
                err.problem.contains("is outside the workspace"),
                "{}",
                err.problem
            );
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = parse_parameters("file://nope.json", dir.path()).unwrap_err();
        assert!(
            err.problem
                .starts_with("cannot read file://nope.json (relative to the workspace"),
            "{}",
            err.problem
        );
    }
}
