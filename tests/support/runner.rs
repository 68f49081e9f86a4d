//! A GitHub Actions runner in miniature: runs the built binary exactly as the runner runs a
//! container action's main and post steps, and reads back what the step wrote by the runner's
//! own rules.
//!
//! What it reproduces (see `../shared/reference/github-actions-contract.md`):
//! - inputs as `INPUT_<NAME>` with hyphens kept, every declared input exported (`""` when unset);
//! - a clean environment with the runner's `GITHUB_*` variables, `GITHUB_ACTIONS=true`, `CI=true`;
//! - fresh `GITHUB_OUTPUT`, `GITHUB_STATE`, `GITHUB_STEP_SUMMARY` files per step, parsed after
//!   the process exits with the runner's file-command parser (heredocs included);
//! - the post step as a separate process, started through the `-post` path (the
//!   `post-entrypoint` takes no arguments), with `STATE_*` from the main step's state file and
//!   the inputs exported again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Parses a file-command file (`GITHUB_OUTPUT`, `GITHUB_STATE`, `GITHUB_ENV`) as the runner does:
/// `name=value` split at the first `=`, or `name<<DELIM` … `DELIM`; lines end at `\n` only; an
/// empty line is skipped; anything else is an error that would fail the step.
pub fn parse_file_commands(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut records = Vec::new();
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let equals = line.find('=');
        let heredoc = line.find("<<");
        match (equals, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                let (key, value) = (&line[..e], &line[e + 1..]);
                if key.is_empty() {
                    return Err(format!("Invalid format {line:?}: name must not be empty"));
                }
                records.push((key.to_string(), value.to_string()));
            }
            (_, Some(h)) => {
                let (key, delimiter) = (&line[..h], &line[h + 2..]);
                if key.is_empty() || delimiter.is_empty() {
                    return Err(format!(
                        "Invalid format {line:?}: name and delimiter must not be empty"
                    ));
                }
                let mut value: Vec<&str> = Vec::new();
                loop {
                    match lines.next() {
                        Some(l) if l == delimiter => break,
                        Some(l) => value.push(l),
                        None => {
                            return Err(format!(
                                "Invalid value. Matching delimiter not found '{delimiter}'"
                            ));
                        }
                    }
                }
                records.push((key.to_string(), value.join("\n")));
            }
            _ => return Err(format!("Invalid format {line:?}")),
        }
    }
    Ok(records)
}

/// What one step left behind.
#[derive(Debug)]
pub struct StepRun {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub outputs: BTreeMap<String, String>,
    pub state: BTreeMap<String, String>,
    pub summary: String,
    /// Every byte the process wrote, files included (for "no secret anywhere" checks).
    pub all_bytes: Vec<u8>,
    pub elapsed: Duration,
}

impl StepRun {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    pub fn output(&self, name: &str) -> Option<&str> {
        self.outputs.get(name).map(String::as_str)
    }
    /// Both streams, as the runner's log shows them.
    pub fn log(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
    /// The workflow command lines of the log, e.g. `::error title=...::...`.
    pub fn commands(&self) -> Vec<String> {
        self.log()
            .lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with("::"))
            .map(str::to_string)
            .collect()
    }
}

/// One job's worth of runner directories and environment.
pub struct Runner {
    pub root: tempfile::TempDir,
    pub inputs: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    pub binary: PathBuf,
}

/// The binary under test: this build's, or `DC_TEST_BIN` (to show that another build, e.g. the
/// one before a fix, fails the same test).
pub fn binary() -> PathBuf {
    std::env::var_os("DC_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_deploy-coordinator")))
}

/// The inputs `action.yml` declares, with their defaults as the runner would evaluate them.
fn declared_inputs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("action.yml"))
        .expect("action.yml");
    action_yml_section(&text, "inputs")
        .into_iter()
        .map(|name| {
            let default = action_yml_default(&text, &name).unwrap_or_default();
            // `${{ github.token }}` has no value in tests.
            let default = if default.contains("${{") {
                String::new()
            } else {
                default
            };
            (name, default)
        })
        .collect()
}

/// The ids under a top-level section (`inputs:` or `outputs:`) of action.yml.
pub fn action_yml_section(text: &str, section: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            inside = line.trim_end() == format!("{section}:");
            continue;
        }
        if inside
            && let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && !name.starts_with(' ')
        {
            names.push(name.to_string());
        }
    }
    names
}

fn action_yml_default(text: &str, input: &str) -> Option<String> {
    let mut inside = false;
    for line in text.lines() {
        if line == format!("  {input}:") {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with("    ") {
                return None;
            }
            if let Some(v) = line.trim().strip_prefix("default:") {
                return Some(v.trim().trim_matches('"').to_string());
            }
        }
    }
    None
}

impl Runner {
    pub fn new() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        for dir in [
            "workspace",
            "file_commands",
            "home",
            "workflow",
            "runner_temp",
            "bin",
        ] {
            std::fs::create_dir_all(root.path().join(dir)).expect("runner dirs");
        }
        std::fs::write(root.path().join("workflow/event.json"), "{}").expect("event.json");
        let binary = binary();
        // The post-entrypoint path: a link whose name ends in `-post`, as in the image.
        std::os::unix::fs::symlink(&binary, root.path().join("bin/deploy-coordinator-post"))
            .expect("post link");
        let p = |d: &str| root.path().join(d).display().to_string();
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("GITHUB_ACTIONS", "true".to_string()),
            ("CI", "true".to_string()),
            ("HOME", p("home")),
            ("GITHUB_WORKSPACE", p("workspace")),
            ("GITHUB_EVENT_PATH", p("workflow/event.json")),
            ("RUNNER_TEMP", p("runner_temp")),
            ("GITHUB_REPOSITORY", "acme/payments".to_string()),
            ("GITHUB_REPOSITORY_OWNER", "acme".to_string()),
            ("GITHUB_RUN_ID", "4242".to_string()),
            ("GITHUB_RUN_ATTEMPT", "1".to_string()),
            ("GITHUB_RUN_NUMBER", "17".to_string()),
            ("GITHUB_JOB", "deploy".to_string()),
            ("GITHUB_WORKFLOW", "Deploy".to_string()),
            ("GITHUB_ACTOR", "octocat".to_string()),
            (
                "GITHUB_SHA",
                "abc1234def5678abc1234def5678abc1234def56".to_string(),
            ),
            ("GITHUB_REF", "refs/heads/main".to_string()),
            ("GITHUB_SERVER_URL", "https://github.com".to_string()),
            ("GITHUB_API_URL", "http://127.0.0.1:9".to_string()),
            ("GITHUB_EVENT_NAME", "push".to_string()),
            ("PATH", std::env::var("PATH").unwrap_or_default()),
        ] {
            env.insert(k.to_string(), v);
        }
        let inputs = declared_inputs().into_iter().collect();
        Runner {
            root,
            inputs,
            env,
            binary,
        }
    }

    pub fn workspace(&self) -> PathBuf {
        self.root.path().join("workspace")
    }

    /// Sets an input as the workflow's `with:` would.
    pub fn input(&mut self, name: &str, value: &str) -> &mut Self {
        self.inputs.insert(name.to_string(), value.to_string());
        self
    }

    pub fn env(&mut self, name: &str, value: &str) -> &mut Self {
        self.env.insert(name.to_string(), value.to_string());
        self
    }

    /// The command for a step, with fresh file-command files; returns it with the files' paths.
    pub fn command(&self, post: bool, state: &BTreeMap<String, String>) -> (Command, [PathBuf; 3]) {
        let id = uuid_like();
        let fc = self.root.path().join("file_commands");
        let files = [
            fc.join(format!("set_output_{id}")),
            fc.join(format!("save_state_{id}")),
            fc.join(format!("step_summary_{id}")),
        ];
        for f in &files {
            std::fs::write(f, "").expect("file command file");
        }
        let program = if post {
            self.root.path().join("bin/deploy-coordinator-post")
        } else {
            self.binary.clone()
        };
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .current_dir(self.workspace())
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (name, value) in &self.inputs {
            cmd.env(
                format!("INPUT_{}", name.replace(' ', "_").to_uppercase()),
                value,
            );
        }
        cmd.env("GITHUB_OUTPUT", &files[0])
            .env("GITHUB_STATE", &files[1])
            .env("GITHUB_STEP_SUMMARY", &files[2]);
        for (k, v) in state {
            cmd.env(format!("STATE_{k}"), v);
        }
        (cmd, files)
    }

    /// Runs the main step to completion.
    pub fn main(&self) -> StepRun {
        let (cmd, files) = self.command(false, &BTreeMap::new());
        finish(cmd, files)
    }

    /// Runs the post step of a finished main step, with its state.
    pub fn post(&self, main: &StepRun) -> StepRun {
        let (cmd, files) = self.command(true, &main.state);
        finish(cmd, files)
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn finish(mut cmd: Command, files: [PathBuf; 3]) -> StepRun {
    let start = std::time::Instant::now();
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run the binary");
    collect(status, stdout, stderr, files, start.elapsed())
}

/// Reads a finished step's streams and files by the runner's rules.
pub fn collect(
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    files: [PathBuf; 3],
    elapsed: Duration,
) -> StepRun {
    let read = |p: &PathBuf| std::fs::read(p).unwrap_or_default();
    let (out_raw, state_raw, summary_raw) = (read(&files[0]), read(&files[1]), read(&files[2]));
    let parse = |raw: &[u8], what: &str| -> BTreeMap<String, String> {
        let text =
            String::from_utf8(raw.to_vec()).unwrap_or_else(|_| panic!("{what} file is not UTF-8"));
        parse_file_commands(&text)
            .unwrap_or_else(|e| panic!("the runner would fail the step: {what} file: {e}\n{text}"))
            .into_iter()
            .collect()
    };
    let outputs = parse(&out_raw, "output");
    let state = parse(&state_raw, "state");
    let mut all_bytes = Vec::new();
    for part in [&stdout, &stderr, &out_raw, &state_raw, &summary_raw] {
        all_bytes.extend_from_slice(part);
    }
    StepRun {
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        outputs,
        state,
        summary: String::from_utf8_lossy(&summary_raw).into_owned(),
        all_bytes,
        elapsed,
    }
}

/// A step the runner cancelled.
pub struct Cancelled {
    pub run: StepRun,
    /// From the SIGINT to the step's exit.
    pub took: Duration,
    pub sigint_at: std::time::SystemTime,
    /// The step was still running 7.5 s after the SIGINT.
    pub sigterm_sent: bool,
    /// The step was still running 10 s after the SIGINT, and was killed.
    pub killed: bool,
}

/// A step running in the background, as when a job is cancelled or killed mid-step.
pub struct Running {
    child: std::process::Child,
    files: [PathBuf; 3],
    started: std::time::Instant,
}

impl Runner {
    /// Starts the main step without waiting for it.
    pub fn spawn_main(&self) -> Running {
        let (mut cmd, files) = self.command(false, &BTreeMap::new());
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the main step");
        Running {
            child,
            files,
            started: std::time::Instant::now(),
        }
    }
}

impl Running {
    /// Cancels the step as the runner does: SIGINT, SIGTERM 7.5 s later, SIGKILL (the
    /// runner kills the docker CLI) 2.5 s after that. Waits for the step and returns it with
    /// how long it took to exit after the first signal.
    pub fn terminate(self) -> (StepRun, Duration) {
        let cancelled = self.cancel_as_the_runner_does();
        (cancelled.run, cancelled.took)
    }

    /// [`Running::terminate`], telling also when the SIGINT was sent (wall clock, to compare
    /// with a server's log) and which of the runner's later signals the step lived to see.
    pub fn cancel_as_the_runner_does(mut self) -> Cancelled {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        let signal = |sig| {
            // SAFETY: kill(2) on our own child's positive pid; failure shows in the return value.
            unsafe { libc::kill(pid, sig) }
        };
        let sigint_at = std::time::SystemTime::now();
        assert_eq!(signal(libc::SIGINT), 0, "SIGINT the step");
        let signalled = std::time::Instant::now();
        let (mut sigterm_sent, mut killed) = (false, false);
        while self.child.try_wait().expect("poll the step").is_none() {
            let after = signalled.elapsed();
            if after >= Duration::from_millis(10_000) {
                killed = true;
                let _ = self.child.kill();
                break;
            }
            if after >= Duration::from_millis(7_500) && !sigterm_sent {
                sigterm_sent = true;
                signal(libc::SIGTERM);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = signalled.elapsed();
        Cancelled {
            run: self.wait(),
            took,
            sigint_at,
            sigterm_sent,
            killed,
        }
    }

    /// Whether the step is still running (it has not exited yet).
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("poll the step").is_none()
    }

    /// SIGKILL: the machine dies; nothing runs after it, not even the post step.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the step to end by itself.
    pub fn wait(self) -> StepRun {
        let out = self.child.wait_with_output().expect("wait for the step");
        collect(
            out.status,
            out.stdout,
            out.stderr,
            self.files,
            self.started.elapsed(),
        )
    }
}

/// `deploy-coordinator lock status --json` for one key, with the given environment (the
/// emulator's endpoint and credentials).
pub fn lock_status(env: &[(String, String)], table: &str, key: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_deploy-coordinator"))
        .args(["lock", "status", "--table", table, "--key", key, "--json"])
        .envs(env.iter().cloned())
        .output()
        .expect("run lock status");
    assert!(
        out.status.success(),
        "lock status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "lock status --json: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
