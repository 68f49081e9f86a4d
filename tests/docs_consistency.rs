//! The documentation checked against the code (issue 7), so that the README, the guide, the
//! runbook and the IAM policy cannot drift from what the action and the binary really do:
//!
//! (a) every input and output declared in `action.yml` has a row in the README's tables, and
//!     every row names a declared one;
//! (b) every `deploy-coordinator <command> [<subcommand>]` written in `docs/guide.md` and
//!     `docs/runbook.md` exists (asked from the built binary's `--help`), every `--flag` shown
//!     with it appears in that command's `--help`, and every command of the binary has an
//!     example in the guide;
//! (c) `docs/iam-policy.json` allows every DynamoDB and CloudFormation operation the code calls
//!     (found by scanning `src/` for the SDKs' fluent-builder calls, named as the SDKs name their
//!     operations) and nothing of those services that the code never calls;
//! (d) no "known limitation" the guide lists is contradicted by the README or the code.
//!
//! Each check is a function over texts, so the tests can also show that it fails when a row,
//! a command or a policy action is missing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

// ------------------------------------------------------------------------------------------
// (a) action.yml ↔ README tables
// ------------------------------------------------------------------------------------------

/// The keys declared directly under a top-level mapping of `action.yml` (`inputs:` or
/// `outputs:`): two-space-indented `name:` lines until the next top-level key.
fn action_names(action_yml: &str, section: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut inside = false;
    for line in action_yml.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            inside = line.trim_end() == format!("{section}:");
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(rest) = line.strip_prefix("  ") {
            if rest.starts_with(' ') || rest.starts_with('#') {
                continue;
            }
            if let Some((name, _)) = rest.split_once(':') {
                names.insert(name.trim().trim_matches(['"', '\'']).to_string());
            }
        }
    }
    names
}

/// The first-column names (`` `name` ``) of the first table under `## <heading>` in the README,
/// with the names that appear more than once.
fn readme_table(readme: &str, heading: &str) -> (BTreeSet<String>, Vec<String>) {
    let mut names = BTreeSet::new();
    let mut duplicates = Vec::new();
    let mut in_section = false;
    let mut seen_table = false;
    for line in readme.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            in_section = h.trim() == heading;
            seen_table = false;
            continue;
        }
        if !in_section {
            continue;
        }
        let trimmed = line.trim();
        if !trimmed.starts_with('|') {
            if seen_table {
                // The first table has ended.
                in_section = false;
            }
            continue;
        }
        seen_table = true;
        let first = trimmed
            .trim_start_matches('|')
            .split('|')
            .next()
            .unwrap_or("")
            .trim();
        if let Some(name) = first.strip_prefix('`').and_then(|f| f.strip_suffix('`'))
            && !names.insert(name.to_string())
        {
            duplicates.push(name.to_string());
        }
    }
    (names, duplicates)
}

/// Every way the README's Inputs and Outputs tables disagree with `action.yml`.
fn readme_vs_action(action_yml: &str, readme: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (section, heading) in [("inputs", "Inputs"), ("outputs", "Outputs")] {
        let declared = action_names(action_yml, section);
        let (documented, duplicates) = readme_table(readme, heading);
        if declared.is_empty() {
            problems.push(format!("action.yml declares no {section}"));
        }
        for name in declared.difference(&documented) {
            problems.push(format!(
                "{section}: `{name}` is declared in action.yml but has no row in the README's {heading} table"
            ));
        }
        for name in documented.difference(&declared) {
            problems.push(format!(
                "{section}: the README's {heading} table has a row for `{name}`, which action.yml does not declare"
            ));
        }
        for name in duplicates {
            problems.push(format!(
                "{section}: `{name}` has more than one row in the README's {heading} table"
            ));
        }
    }
    problems
}

#[test]
fn readme_tables_list_exactly_the_inputs_and_outputs_of_action_yml() {
    let problems = readme_vs_action(&read("action.yml"), &read("README.md"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn removing_or_adding_a_readme_row_fails_the_check() {
    let action = read("action.yml");
    let readme = read("README.md");
    let mut checked = 0;
    for (section, heading) in [("inputs", "Inputs"), ("outputs", "Outputs")] {
        for name in action_names(&action, section) {
            let row = format!("| `{name}` |");
            let without: String = readme
                .lines()
                .filter(|l| !l.starts_with(&row))
                .map(|l| format!("{l}\n"))
                .collect();
            assert_ne!(without, readme, "no README row starts with {row}");
            let problems = readme_vs_action(&action, &without);
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains(&format!("`{name}` is declared")) && p.contains(heading)),
                "removing the row of {section} `{name}` was not noticed: {problems:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "nothing was checked");

    // A row for something action.yml does not declare.
    let extra = readme.replacen(
        "| `stack-name` |",
        "| `stack-nam` | a typo |\n| `stack-name` |",
        1,
    );
    let problems = readme_vs_action(&action, &extra);
    assert!(
        problems.iter().any(|p| p.contains("`stack-nam`")),
        "{problems:?}"
    );
    // The same row twice.
    let twice = readme.replacen("| `outcome` |", "| `outcome` | again |\n| `outcome` |", 1);
    let problems = readme_vs_action(&action, &twice);
    assert!(
        problems.iter().any(|p| p.contains("more than one row")),
        "{problems:?}"
    );
}

// ------------------------------------------------------------------------------------------
// (b) CLI commands in the guide and the runbook
// ------------------------------------------------------------------------------------------

/// The binary's command tree, read from its `--help` output.
struct CliTree {
    /// Command path (`""`, `"lock"`, `"lock status"`) → its `--help` text.
    help: BTreeMap<String, String>,
    /// Command path → its subcommands (empty for a leaf).
    children: BTreeMap<String, Vec<String>>,
}

fn help_of(path: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_deploy-coordinator"))
        .args(path.split_whitespace())
        .arg("--help")
        .env_remove("GITHUB_ACTIONS")
        .output()
        .expect("run deploy-coordinator --help");
    assert!(
        out.status.success(),
        "`deploy-coordinator {path} --help` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Subcommand names listed under `Commands:` in a clap help text (without `help`).
fn commands_in_help(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line.trim_end() == "Commands:" {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if line.trim().is_empty() {
            break;
        }
        // Names are indented by two spaces; wrapped descriptions by more.
        if let Some(rest) = line.strip_prefix("  ")
            && !rest.starts_with(' ')
        {
            let name = rest.split_whitespace().next().unwrap_or("");
            if name != "help" {
                out.push(name.to_string());
            }
        }
    }
    out
}

impl CliTree {
    fn load() -> CliTree {
        let mut help = BTreeMap::new();
        let mut children = BTreeMap::new();
        let mut todo = vec![String::new()];
        while let Some(path) = todo.pop() {
            let text = help_of(&path);
            let subs = commands_in_help(&text);
            for sub in &subs {
                todo.push(format!("{path} {sub}").trim().to_string());
            }
            children.insert(path.clone(), subs);
            help.insert(path, text);
        }
        CliTree { help, children }
    }

    fn leaves(&self) -> Vec<&str> {
        self.children
            .iter()
            .filter(|(path, subs)| subs.is_empty() && !path.is_empty())
            .map(|(path, _)| path.as_str())
            .collect()
    }
}

/// One `deploy-coordinator …` command line found in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DocCommand {
    /// Where: `file:line`.
    at: String,
    /// The words after `deploy-coordinator` up to the end of the command.
    words: Vec<String>,
}

/// The code in a Markdown text, with line numbers: every line of a fenced block (a line
/// ending in `\` joined with the next), and every inline code span elsewhere.
fn code_of(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    // The fence that opened the current block (``` or ~~~): only the same one closes it, so a
    // ~~~ block shown inside a ``` block stays code.
    let mut fence: Option<&str> = None;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let n = i + 1;
        let marker = ["```", "~~~"]
            .into_iter()
            .find(|m| line.trim_start().starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => {
                fence = Some(m);
                continue;
            }
            (Some(open), Some(m)) if open == m => {
                fence = None;
                continue;
            }
            _ => {}
        }
        let fenced = fence.is_some();
        if fenced {
            let (start, mut text) = pending.take().unwrap_or((n, String::new()));
            match line.trim_end().strip_suffix('\\') {
                Some(head) => {
                    text.push_str(head);
                    text.push(' ');
                    pending = Some((start, text));
                }
                None => {
                    text.push_str(line);
                    out.push((start, text));
                }
            }
            continue;
        }
        // Inline spans: the text between pairs of backticks (double backticks too).
        let parts: Vec<&str> = line.split('`').collect();
        for (j, part) in parts.iter().enumerate() {
            if j % 2 == 1 && j + 1 < parts.len() && !part.is_empty() {
                out.push((n, (*part).to_string()));
            }
        }
    }
    out
}

/// Tokens that end a command on a shell line.
fn ends_command(token: &str) -> bool {
    matches!(
        token,
        "|" | "||" | "&&" | ";" | "#" | ">" | "2>&1" | ")" | "&"
    ) || token.starts_with('#')
}

/// Every `deploy-coordinator <words…>` in the code of a Markdown document.
fn doc_commands(file: &str, markdown: &str) -> Vec<DocCommand> {
    let mut out = Vec::new();
    for (line, code) in code_of(markdown) {
        let mut rest = code.as_str();
        while let Some(i) = rest.find("deploy-coordinator") {
            let before = rest[..i].chars().next_back();
            let after = &rest[i + "deploy-coordinator".len()..];
            rest = after;
            // `deploy-coordinator-post`, `deploy-coordinator/deploy-coordinator@v1`, or part of
            // a longer word: not a command line.
            let is_command = before
                .is_none_or(|c| c.is_whitespace() || matches!(c, '/' | '(' | '$' | '"' | '\''))
                && (after.is_empty() || after.starts_with(' '));
            if !is_command {
                continue;
            }
            let words: Vec<String> = after
                .split_whitespace()
                .take_while(|t| !ends_command(t))
                .map(|t| t.trim_matches(['"', '\'']).to_string())
                .collect();
            out.push(DocCommand {
                at: format!("{file}:{line}"),
                words,
            });
        }
    }
    out
}

/// What is wrong with the commands a document shows, checked against the binary's help.
fn check_commands(tree: &CliTree, commands: &[DocCommand]) -> Vec<String> {
    let mut problems = Vec::new();
    for cmd in commands {
        let mut path = String::new();
        let mut i = 0;
        let mut unknown = false;
        // Descend through the subcommands.
        while let Some(word) = cmd.words.get(i) {
            let subs = &tree.children[&path];
            if subs.is_empty() || word.starts_with('-') {
                break;
            }
            if !subs.contains(word) {
                problems.push(format!(
                    "{}: `deploy-coordinator {}`: `{word}` is not a subcommand of `deploy-coordinator {path}` (it has: {})",
                    cmd.at,
                    cmd.words.join(" "),
                    subs.join(", ")
                ));
                unknown = true;
                break;
            }
            path = format!("{path} {word}").trim().to_string();
            i += 1;
        }
        if unknown {
            continue;
        }
        let help = &tree.help[&path];
        for token in &cmd.words[i..] {
            if token == "--" {
                // What follows belongs to the command `lock run` runs.
                break;
            }
            let Some(flag) = token.strip_prefix("--") else {
                continue;
            };
            let flag = flag.split('=').next().unwrap_or(flag);
            if flag.is_empty() {
                continue;
            }
            let shown = format!("--{flag}");
            let listed = help
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .any(|w| w == shown);
            if !listed {
                problems.push(format!(
                    "{}: `deploy-coordinator {}`: `{shown}` is not an option of `deploy-coordinator {path}`",
                    cmd.at,
                    cmd.words.join(" ")
                ));
            }
        }
    }
    problems
}

#[test]
fn every_command_and_flag_in_the_guide_and_runbook_exists() {
    let tree = CliTree::load();
    let mut all = Vec::new();
    for file in ["docs/guide.md", "docs/runbook.md"] {
        let commands = doc_commands(file, &read(file));
        assert!(
            commands.len() >= 5,
            "{file} shows only {} deploy-coordinator commands",
            commands.len()
        );
        all.extend(commands);
    }
    let problems = check_commands(&tree, &all);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Every command of the binary has an example in the guide.
    let guide: BTreeSet<String> = doc_commands("docs/guide.md", &read("docs/guide.md"))
        .into_iter()
        .map(|c| {
            c.words
                .iter()
                .take(2)
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let missing: Vec<&str> = tree
        .leaves()
        .into_iter()
        .filter(|leaf| {
            !guide
                .iter()
                .any(|g| g == leaf || g.starts_with(&format!("{leaf} ")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "commands without an example in docs/guide.md: {missing:?}"
    );
}

#[test]
fn a_command_or_flag_the_binary_does_not_have_fails_the_check() {
    let tree = CliTree::load();
    let doc = "Run `deploy-coordinator lock status --key prod --json`, then\n\
               ```sh\n\
               deploy-coordinator lock unlock-everything --key prod\n\
               deploy-coordinator lock force-unlock --key prod \\\n  --reason x --yes-really\n\
               deploy-coordinator lock run --key prod -- ./deploy.sh --not-ours\n\
               deploy-coordinator estimat --events e.json\n\
               ```\n";
    let commands = doc_commands("t.md", doc);
    assert_eq!(commands.len(), 5, "{commands:?}");
    let problems = check_commands(&tree, &commands);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].contains("`unlock-everything` is not a subcommand"));
    assert!(problems[1].contains("t.md:4") && problems[1].contains("`--yes-really`"));
    assert!(problems[2].contains("`estimat` is not a subcommand"));
    // Not commands: the action reference, the post-step path.
    let not = doc_commands(
        "t.md",
        "`uses: deploy-coordinator/deploy-coordinator@v1` and `/usr/local/bin/deploy-coordinator-post`",
    );
    assert!(not.is_empty(), "{not:?}");
}

// ------------------------------------------------------------------------------------------
// (c) the IAM policy against the SDK operations the code calls
// ------------------------------------------------------------------------------------------

/// The AWS services whose SDK calls the code makes, with their IAM prefix.
const SERVICES: &[(&str, &str)] = &[
    ("aws-sdk-dynamodb", "dynamodb"),
    ("aws-sdk-cloudformation", "cloudformation"),
];

/// Permissions the policy grants that are not SDK calls of ours but that AWS checks on our
/// behalf: CloudFormation checks `iam:PassRole` when `role-arn` is given and reads an
/// `https://` template with the caller's `s3:GetObject`.
const IMPLIED: &[&str] = &["iam:PassRole", "s3:GetObject"];

/// Fluent-builder method name (`put_item`) → API operation name (`PutItem`), per service
/// prefix, from the sources of the SDK versions `Cargo.lock` pins (in Cargo's registry, where
/// building this crate put them): each operation is a module `src/operation/<snake>.rs`
/// declaring `pub struct <Name>;`.
fn sdk_operations() -> HashMap<&'static str, HashMap<String, String>> {
    let lock = read("Cargo.lock");
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let registries: Vec<PathBuf> = std::fs::read_dir(cargo_home.join("registry/src"))
        .expect("Cargo's registry sources")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let mut ops = HashMap::new();
    for (crate_name, prefix) in SERVICES {
        // `name = "<crate>"` followed by `version = "<v>"` in Cargo.lock.
        let versions: Vec<&str> = lock
            .split("[[package]]")
            .filter(|p| {
                p.lines()
                    .any(|l| l.trim() == format!("name = \"{crate_name}\""))
            })
            .filter_map(|p| {
                p.lines()
                    .find_map(|l| l.trim().strip_prefix("version = \""))
                    .and_then(|v| v.strip_suffix('"'))
            })
            .collect();
        assert_eq!(
            versions.len(),
            1,
            "{crate_name} in Cargo.lock: {versions:?}"
        );
        let dir = registries
            .iter()
            .map(|r| {
                r.join(format!("{crate_name}-{}", versions[0]))
                    .join("src/operation")
            })
            .find(|d| d.is_dir())
            .unwrap_or_else(|| {
                panic!(
                    "the sources of {crate_name} {} are not in {registries:?}",
                    versions[0]
                )
            });
        let mut names = HashMap::new();
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("dir entry").path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let snake = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_string();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let name = text.lines().find_map(|l| {
                l.strip_prefix("pub struct ")
                    .and_then(|r| r.strip_suffix(';'))
                    .map(str::to_string)
            });
            if let Some(name) = name {
                names.insert(snake, name);
            }
        }
        assert!(
            names.len() > 10,
            "{}: only {} operations",
            dir.display(),
            names.len()
        );
        ops.insert(*prefix, names);
    }
    ops
}

/// The Rust files of `src/` that are compiled outside tests, with their text minus comment
/// lines and minus `#[cfg(test)]` modules.
fn production_sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo().join("src"), &mut files);
    files.sort();
    let texts: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|p| {
            let t = std::fs::read_to_string(&p).unwrap_or_default();
            (p, t)
        })
        .collect();
    // Files that are test modules (`#[cfg(test)] mod tests;`).
    let mut test_files = BTreeSet::new();
    for (path, text) in &texts {
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.windows(2) {
            if pair[0].trim() == "#[cfg(test)]"
                && let Some(name) = pair[1]
                    .trim()
                    .strip_prefix("mod ")
                    .and_then(|r| r.strip_suffix(';'))
            {
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                let base = if matches!(stem, "mod" | "lib" | "main") {
                    path.parent().map(Path::to_path_buf)
                } else {
                    path.parent().map(|p| p.join(stem))
                };
                if let Some(base) = base {
                    test_files.insert(base.join(format!("{name}.rs")));
                    test_files.insert(base.join(name).join("mod.rs"));
                }
            }
        }
    }
    texts
        .into_iter()
        .filter(|(p, _)| !test_files.contains(p))
        .map(|(p, text)| {
            let mut kept = String::new();
            let mut lines = text.lines().peekable();
            while let Some(line) = lines.next() {
                // An inline test module runs to the end of the file (this crate's layout).
                if line.trim() == "#[cfg(test)]"
                    && lines
                        .peek()
                        .is_some_and(|next| next.trim_start().starts_with("mod "))
                {
                    break;
                }
                if line.trim_start().starts_with("//") {
                    continue;
                }
                kept.push_str(line);
                kept.push('\n');
            }
            (p, kept)
        })
        .collect()
}

/// Method names called without arguments, `.name()`, with whitespace (line breaks of a
/// builder chain) allowed around the dot.
fn zero_arg_calls(code: &str) -> Vec<String> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(pos) = code[i..].find("()") {
        let end = i + pos;
        i = end + 2;
        let mut start = end;
        while start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            start -= 1;
        }
        if start == end {
            continue;
        }
        let mut dot = start;
        while dot > 0 && bytes[dot - 1].is_ascii_whitespace() {
            dot -= 1;
        }
        if dot > 0 && bytes[dot - 1] == b'.' {
            out.push(code[start..end].to_string());
        }
    }
    out
}

/// `prefix:Operation` for every SDK operation called in `sources`, with where it is called;
/// a name that is an operation of two services is an error (it would need a closer look).
fn called_actions(
    ops: &HashMap<&'static str, HashMap<String, String>>,
    sources: &[(PathBuf, String)],
) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, code) in sources {
        let file = path
            .strip_prefix(repo())
            .unwrap_or(path)
            .display()
            .to_string();
        for call in zero_arg_calls(code) {
            let matches: Vec<String> = ops
                .iter()
                .filter_map(|(prefix, names)| names.get(&call).map(|n| format!("{prefix}:{n}")))
                .collect();
            match matches.len() {
                0 => {}
                1 => {
                    found
                        .entry(matches[0].clone())
                        .or_default()
                        .insert(file.clone());
                }
                _ => {
                    return Err(format!(
                        "{file}: `.{call}()` is an operation of several services ({matches:?}): extend this check"
                    ));
                }
            }
        }
    }
    Ok(found)
}

/// The actions a policy document allows (`Effect: Allow`), as written.
fn allowed_actions(policy: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let statements = match &policy["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    for st in statements {
        if st["Effect"] != "Allow" {
            continue;
        }
        match &st["Action"] {
            serde_json::Value::String(a) => out.push(a.clone()),
            serde_json::Value::Array(a) => {
                out.extend(a.iter().filter_map(|v| v.as_str()).map(str::to_string))
            }
            _ => {}
        }
    }
    out
}

/// IAM action matching: case-insensitive, `*` and `?` wildcards.
fn action_matches(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        match (p.first(), a.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], a) || (!a.is_empty() && go(p, &a[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &a[1..]),
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => go(&p[1..], &a[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), action.as_bytes())
}

/// Calls the policy does not allow, and allowed actions of our services (or beyond the
/// implied ones) that the code never calls.
fn policy_vs_calls(
    policy: &serde_json::Value,
    calls: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let allowed = allowed_actions(policy);
    let mut problems = Vec::new();
    for (action, files) in calls {
        if !allowed.iter().any(|p| action_matches(p, action)) {
            problems.push(format!(
                "the code calls {action} ({}) but docs/iam-policy.json does not allow it",
                files.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    for pattern in &allowed {
        if IMPLIED.iter().any(|i| i.eq_ignore_ascii_case(pattern)) {
            continue;
        }
        if !calls.keys().any(|a| action_matches(pattern, a)) {
            problems.push(format!(
                "docs/iam-policy.json allows {pattern}, which the code never calls (least privilege)"
            ));
        }
    }
    problems
}

#[test]
fn the_iam_policy_allows_every_aws_call_the_code_makes_and_no_more() {
    let ops = sdk_operations();
    let calls = called_actions(&ops, &production_sources()).unwrap_or_else(|e| panic!("{e}"));
    // The scanner finds the calls the lock and the monitor cannot do without.
    for needed in ["dynamodb:PutItem", "cloudformation:DescribeStackEvents"] {
        assert!(
            calls.contains_key(needed),
            "scan found no {needed}: {calls:?}"
        );
    }
    let policy: serde_json::Value =
        serde_json::from_str(&read("docs/iam-policy.json")).expect("docs/iam-policy.json is JSON");
    assert_eq!(policy["Version"], "2012-10-17");
    let problems = policy_vs_calls(&policy, &calls);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_policy_missing_one_action_fails_the_check() {
    let ops = sdk_operations();
    let calls = called_actions(&ops, &production_sources()).unwrap_or_else(|e| panic!("{e}"));
    let policy: serde_json::Value =
        serde_json::from_str(&read("docs/iam-policy.json")).expect("JSON");
    for action in calls.keys() {
        // The policy without this one action, wherever it is written.
        let mut cut = policy.clone();
        for st in cut["Statement"].as_array_mut().expect("statements") {
            match &mut st["Action"] {
                serde_json::Value::Array(a) => a.retain(|v| v.as_str() != Some(action.as_str())),
                serde_json::Value::String(s) if s == action => {
                    st["Action"] = serde_json::Value::Array(Vec::new())
                }
                _ => {}
            }
        }
        let problems = policy_vs_calls(&cut, &calls);
        assert!(
            problems
                .iter()
                .any(|p| p.contains(&format!("calls {action} "))),
            "removing {action} was not noticed: {problems:?}"
        );
    }
    // An action of ours that nothing calls is over-privilege.
    let mut more = policy.clone();
    more["Statement"][0]["Action"]
        .as_array_mut()
        .expect("array")
        .push("dynamodb:DeleteTable".into());
    let problems = policy_vs_calls(&more, &calls);
    assert!(
        problems.iter().any(|p| p.contains("dynamodb:DeleteTable")),
        "{problems:?}"
    );
}

#[test]
fn the_source_scan_sees_multi_line_builder_chains_and_skips_tests_and_comments() {
    let ops = sdk_operations();
    let code = "let out = reg\n    .client()\n    .update_item()\n    .table_name(t)\n    .send()\n    .await?;\n\
                let x = cfn.describe_stacks().stack_name(s).send().await;\n";
    let src = vec![(repo().join("src/x.rs"), code.to_string())];
    let calls = called_actions(&ops, &src).expect("scan");
    let names: Vec<&str> = calls.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["cloudformation:DescribeStacks", "dynamodb:UpdateItem"]
    );
    assert!(action_matches("dynamodb:Get*", "dynamodb:GetItem"));
    assert!(action_matches("DynamoDB:getitem", "dynamodb:GetItem"));
    assert!(!action_matches("dynamodb:Get*", "dynamodb:PutItem"));
    // Comment lines and test modules of the real sources do not count.
    for (path, text) in production_sources() {
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with("//")),
            "{}",
            path.display()
        );
        assert!(
            !text.contains("#[cfg(test)]\nmod tests {"),
            "{}",
            path.display()
        );
        assert!(!path.ends_with("estimate/tests.rs"), "{}", path.display());
    }
}

// ------------------------------------------------------------------------------------------
// (d) the guide's "Known limitations" ↔ the README and the code
// ------------------------------------------------------------------------------------------

/// A limitation the guide may list, how to recognise it there, and the evidence (in the
/// README, action.yml or the code) that would make listing it false.
struct Limitation {
    name: &'static str,
    /// Words of the guide's bullet (all of them, case-insensitive).
    says: &'static [&'static str],
    /// True when the limitation no longer holds.
    lifted: fn(&Texts) -> bool,
}

struct Texts {
    readme: String,
    action: String,
    /// Every production source file, concatenated.
    src: String,
}

fn texts() -> Texts {
    Texts {
        readme: read("README.md"),
        action: read("action.yml"),
        src: production_sources()
            .into_iter()
            .map(|(_, code)| code)
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

const LIMITATIONS: &[Limitation] = &[
    Limitation {
        name: "github-deployment does nothing",
        says: &["github-deployment", "does nothing"],
        lifted: |t| {
            action_names(&t.action, "outputs").contains("deployment-id")
                && t.src.contains(".create(environment")
        },
    },
    Limitation {
        name: "mode monitor does not follow an operation already running",
        says: &["monitor", "does not follow an operation", "already running"],
        lifted: |t| {
            t.readme.contains("follow the operation already running")
                && t.src.contains("Start::Current")
        },
    },
    Limitation {
        name: "the outcome skipped is never produced",
        says: &["skipped", "never produced"],
        lifted: |t| t.src.contains("Outcome::Skipped =>") || t.src.contains("Outcome::Skipped)"),
    },
    Limitation {
        name: "parameters does not read file:// files",
        says: &["parameters", "file://"],
        lifted: |t| t.src.contains("\"file://\"") && t.readme.contains("file://"),
    },
];

/// The bullets of the guide's "Known limitations" section.
fn limitation_bullets(guide: &str) -> Vec<String> {
    let Some(start) = guide.find("## Known limitations") else {
        return Vec::new();
    };
    let section = &guide[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let mut bullets: Vec<String> = Vec::new();
    for line in section[..end].lines() {
        if let Some(rest) = line.strip_prefix("- ") {
            bullets.push(rest.to_string());
        } else if line.starts_with("  ")
            && let Some(last) = bullets.last_mut()
        {
            last.push(' ');
            last.push_str(line.trim());
        }
    }
    bullets
}

/// The limitations the guide lists although the README or the code says otherwise.
fn contradicted(guide: &str, texts: &Texts) -> Vec<String> {
    let bullets = limitation_bullets(guide);
    LIMITATIONS
        .iter()
        .filter(|l| {
            bullets.iter().any(|b| {
                let b = b.to_lowercase();
                l.says.iter().all(|w| b.contains(&w.to_lowercase()))
            })
        })
        .filter(|l| (l.lifted)(texts))
        .map(|l| {
            format!(
                "the guide still lists \"{}\", which no longer holds",
                l.name
            )
        })
        .collect()
}

#[test]
fn no_known_limitation_in_the_guide_is_contradicted_by_the_readme_or_the_code() {
    let problems = contradicted(&read("docs/guide.md"), &texts());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_limitation_the_code_has_lifted_fails_the_check() {
    let guide = "# Guide\n\n## Known limitations of this version\n\n- **`github-deployment` is \
                 accepted and validated but does nothing yet**: no GitHub deployment\n  is created.\n- Mode \
                 monitor does not follow an operation that is already running when the\n  step starts.\n";
    let problems = contradicted(guide, &texts());
    assert_eq!(problems.len(), 2, "{problems:?}");
}
