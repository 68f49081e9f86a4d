//! The shipped container image, run the way the GitHub runner runs a container action.
//!
//! Each test issues the `docker run` of `../shared/reference/github-actions-contract.md` ("The
//! `docker run` the runner issues") through `scripts/container` (rootful podman here, docker on
//! GitHub-hosted runners): host temp dirs mounted at /github/workspace, /github/file_commands,
//! /github/home, /github/workflow and /github/runner_temp, `--workdir /github/workspace`, every
//! variable passed as `-e NAME` (value from the CLI's own environment, as the runner does, so
//! hyphenated `INPUT_STACK-NAME` arrives intact), every input declared in action.yml exported
//! (defaults applied, missing ones as ""). The post step is a second container from the same
//! image with `--entrypoint /usr/local/bin/deploy-coordinator-post` and `STATE_*` parsed from
//! the state file by the runner's rules.
//!
//! They need a built image, so they are ignored by default: `scripts/test` builds it and runs
//! `DC_IMAGE=<image> cargo test --test image -- --ignored`.
//!
//! The image of the other architecture (arm64 on an x86_64 machine) runs the same tests through
//! qemu's user-mode emulator: `DC_IMAGE_EMULATOR=/usr/bin/qemu-aarch64-static` (a static x86_64
//! binary, from Debian's qemu-user-static) is mounted into each container and made its
//! entrypoint, with the image's own entrypoint as its first argument. qemu gives the emulated
//! binary that path as argv[0], so the post step still starts through the `-post` link, and it
//! passes signals on, so cancellation is tested too. No binfmt_misc registration is needed
//! (this machine may not have one), and nothing else of the runner's `docker run` changes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod support;

use support::dynamo::{DynamoServer, Emulator};
use support::runner::{Runner, StepRun, collect};

use aws_sdk_dynamodb::types::AttributeValue;

/// Paths inside the image; action.yml's `runs.post-entrypoint` names the second one.
const POST_ENTRYPOINT: &str = "/usr/local/bin/deploy-coordinator-post";
/// Longer than any step below takes; a hung container fails the test instead of hanging it.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
const REGION: &str = "us-east-1";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The image under test. There is no sensible default: a stale image would test old code.
fn image() -> String {
    match std::env::var("DC_IMAGE") {
        Ok(image) if !image.trim().is_empty() => image,
        _ => panic!(
            "DC_IMAGE is not set: build the image with `scripts/build-image` and run \
             `DC_IMAGE=localhost/deploy-coordinator:test cargo test --test image -- --ignored` \
             (scripts/test does both)"
        ),
    }
}

/// The user-mode emulator for an image of another architecture than this machine's, if any.
fn emulator() -> Option<PathBuf> {
    let path = std::env::var_os("DC_IMAGE_EMULATOR").filter(|v| !v.is_empty())?;
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "DC_IMAGE_EMULATOR={} does not exist (apt-get install qemu-user-static)",
        path.display()
    );
    Some(path)
}

/// Where the emulator is mounted inside the container.
const EMULATOR_IN_CONTAINER: &str = "/.dc-emulator";
/// The image's ENTRYPOINT, which an emulated step passes to the emulator.
const MAIN_ENTRYPOINT: &str = "/usr/local/bin/deploy-coordinator";

fn container_cli() -> Command {
    Command::new(repo().join("scripts/container"))
}

/// Workflow-command lines of one kind (`error`, `warning`), from stdout and stderr: the runner
/// scans both.
fn commands(step: &StepRun, kind: &str) -> Vec<String> {
    let prefix = format!("::{kind}");
    step.commands()
        .into_iter()
        .filter(|line| line.starts_with(&prefix))
        .collect()
}

fn describe(step: &StepRun) -> String {
    format!(
        "exit: {}\n--- stdout\n{}\n--- stderr\n{}",
        step.status, step.stdout, step.stderr
    )
}

/// The host side of the runner's mounts for one job, and its fixed `GITHUB_*` environment.
struct Job {
    dir: tempfile::TempDir,
    /// Variables every step of this job gets (besides inputs, file-command paths and state).
    env: Vec<(String, String)>,
}

impl Job {
    fn new() -> Job {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in [
            "workspace",
            "file_commands",
            "home",
            "workflow",
            "runner_temp",
        ] {
            std::fs::create_dir(dir.path().join(sub)).expect("runner dir");
        }
        std::fs::write(
            dir.path().join("workflow/event.json"),
            r#"{"ref":"refs/heads/main"}"#,
        )
        .expect("event.json");
        // Each job is another workflow run, hence another lock owner.
        static JOBS: AtomicU64 = AtomicU64::new(0);
        let run_id = u64::from(std::process::id()) * 1000 + JOBS.fetch_add(1, Ordering::Relaxed);
        let env = [
            ("GITHUB_ACTIONS", "true".to_string()),
            ("CI", "true".to_string()),
            ("HOME", "/github/home".to_string()),
            ("GITHUB_WORKSPACE", "/github/workspace".to_string()),
            (
                "GITHUB_EVENT_PATH",
                "/github/workflow/event.json".to_string(),
            ),
            ("GITHUB_EVENT_NAME", "push".to_string()),
            ("RUNNER_TEMP", "/github/runner_temp".to_string()),
            ("GITHUB_REPOSITORY", "octo-org/image-test".to_string()),
            ("GITHUB_REPOSITORY_OWNER", "octo-org".to_string()),
            ("GITHUB_RUN_ID", run_id.to_string()),
            ("GITHUB_RUN_NUMBER", "7".to_string()),
            ("GITHUB_RUN_ATTEMPT", "1".to_string()),
            ("GITHUB_JOB", "deploy".to_string()),
            ("GITHUB_WORKFLOW", "image test".to_string()),
            ("GITHUB_ACTOR", "octocat".to_string()),
            (
                "GITHUB_SHA",
                "0123456789abcdef0123456789abcdef01234567".to_string(),
            ),
            ("GITHUB_REF", "refs/heads/main".to_string()),
            ("GITHUB_REF_NAME", "main".to_string()),
            ("GITHUB_SERVER_URL", "https://github.com".to_string()),
            // Nothing in these tests may reach the real GitHub API: a closed local port.
            ("GITHUB_API_URL", "http://127.0.0.1:9".to_string()),
        ];
        Job {
            dir,
            env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }

    fn host(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// Runs one step's container to its end: `entrypoint` None is the main step
    /// (action.yml's `runs.entrypoint`). `env` holds the step's own variables (inputs, AWS settings, `STATE_*`).
    fn run_step(
        &self,
        entrypoint: Option<&str>,
        env: &[(String, String)],
        args: &[&str],
    ) -> StepRun {
        self.start_step(entrypoint, env, args).finish()
    }

    /// Starts one step's container and returns while it runs.
    fn start_step(
        &self,
        entrypoint: Option<&str>,
        env: &[(String, String)],
        args: &[&str],
    ) -> RunningStep {
        // A new guid per step, as the runner does: each step gets fresh, empty files.
        let guid = uuid::Uuid::new_v4();
        let files = [
            ("GITHUB_OUTPUT", format!("set_output_{guid}")),
            ("GITHUB_STATE", format!("save_state_{guid}")),
            ("GITHUB_STEP_SUMMARY", format!("step_summary_{guid}")),
            ("GITHUB_ENV", format!("set_env_{guid}")),
            ("GITHUB_PATH", format!("add_path_{guid}")),
        ];
        for (_, name) in &files {
            std::fs::write(self.host("file_commands").join(name), "").expect("file command file");
        }

        let name = format!("dc-image-test-{guid}");
        let mut cmd = container_cli();
        cmd.args(["run", "--rm", "--pull", "never", "--name", &name])
            .args(["--label", "deploy-coordinator-test"])
            .args(["--workdir", "/github/workspace", "--network", "host"]);
        let mut vars: Vec<(String, String)> = self.env.clone();
        vars.extend(
            files
                .iter()
                .map(|(k, v)| (k.to_string(), format!("/github/file_commands/{v}"))),
        );
        vars.extend(env.iter().cloned());
        for (key, value) in &vars {
            // `-e NAME` without a value: the CLI copies it from its own environment.
            cmd.arg("-e").arg(key).env(key, value);
        }
        // action.yml sets `runs.entrypoint` (the image's ENTRYPOINT), so the runner passes
        // --entrypoint for the main step too.
        let entrypoint = entrypoint.unwrap_or(MAIN_ENTRYPOINT);
        let mut args: Vec<&str> = args.to_vec();
        if let Some(emulator) = emulator() {
            cmd.arg("-v")
                .arg(format!("{}:{EMULATOR_IN_CONTAINER}:ro", emulator.display()))
                .args(["--entrypoint", EMULATOR_IN_CONTAINER]);
            args.insert(0, entrypoint);
        } else {
            cmd.arg("--entrypoint").arg(entrypoint);
        }
        for (host, inside) in [
            ("runner_temp", "/github/runner_temp"),
            ("home", "/github/home"),
            ("workflow", "/github/workflow"),
            ("file_commands", "/github/file_commands"),
            ("workspace", "/github/workspace"),
        ] {
            cmd.arg("-v")
                .arg(format!("{}:{inside}", self.host(host).display()));
        }
        cmd.arg(image()).args(&args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let started = Instant::now();
        let mut child = cmd.spawn().expect("scripts/container must be runnable");
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        };
        let stdout = drain(Box::new(child.stdout.take().expect("stdout piped")));
        let stderr = drain(Box::new(child.stderr.take().expect("stderr piped")));
        let host = |i: usize| self.host("file_commands").join(&files[i].1);
        RunningStep {
            child,
            name,
            files: [host(0), host(1), host(2)],
            started,
            streams: Some([stdout, stderr]),
        }
    }
}

/// A step whose container CLI process is still running.
struct RunningStep {
    child: Child,
    name: String,
    files: [PathBuf; 3],
    started: Instant,
    /// Readers of the CLI's pipes (taken by `finish`).
    streams: Option<[std::thread::JoinHandle<Vec<u8>>; 2]>,
}

impl RunningStep {
    /// What the runner does on cancellation: SIGINT to the CLI process, which proxies it to
    /// the container's PID 1 (the binary).
    fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "could not signal the container CLI");
    }

    /// Waits for the container to end (killing it after `STEP_TIMEOUT`) and reads what the
    /// step left, by the runner's own rules (a record it could not parse fails the test as it
    /// would fail the step).
    fn finish(mut self) -> StepRun {
        let deadline = self.started + STEP_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the container CLI") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = container_cli().args(["rm", "-f", &self.name]).output();
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "container {} still running after {STEP_TIMEOUT:?}: killed",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let elapsed = self.started.elapsed();
        let [stdout, stderr] = self.streams.take().expect("finish is called once");
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        collect(status, stdout, stderr, self.files.clone(), elapsed)
    }
}

impl Drop for RunningStep {
    /// A test that panics while a container runs must not leave it behind.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = container_cli().args(["rm", "-f", &self.name]).output();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `INPUT_*` variables the runner would export for a step given `with:` values.
fn inputs(with: &[(&str, &str)]) -> Vec<(String, String)> {
    // Every input declared in action.yml, with its default, as the runner exports them.
    let mut values = Runner::new().inputs;
    for (name, value) in with {
        assert!(
            values.contains_key(*name),
            "input {name:?} is not declared in action.yml"
        );
        values.insert(name.to_string(), value.to_string());
    }
    values
        .into_iter()
        .map(|(name, value)| {
            (
                format!("INPUT_{}", name.replace(' ', "_").to_uppercase()),
                value,
            )
        })
        .collect()
}

/// `STATE_<name>` for each record the main step saved, as the runner exports them to the post step.
fn state_env(main: &StepRun) -> Vec<(String, String)> {
    main.state
        .iter()
        .map(|(k, v)| (format!("STATE_{k}"), v.clone()))
        .collect()
}

// --- moto -----------------------------------------------------------------------------------

/// A CloudFormation client for the emulator (moto serves CloudFormation beside DynamoDB).
async fn cloudformation(moto: &DynamoServer) -> aws_sdk_cloudformation::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto.endpoint())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test",
            "test",
            None,
            None,
            "image-test",
        ))
        .load()
        .await;
    aws_sdk_cloudformation::Client::new(&config)
}

/// Every lock item in the table (`sk = LOCK`), whatever the lock key is.
async fn registry_items(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    sk_prefix: &str,
) -> Vec<BTreeMap<String, AttributeValue>> {
    let items = ddb
        .scan()
        .table_name(table)
        .send()
        .await
        .expect("scan the registry")
        .items
        .unwrap_or_default();
    items
        .into_iter()
        .filter(|item| {
            matches!(item.get("sk"), Some(AttributeValue::S(sk)) if sk.starts_with(sk_prefix))
        })
        .map(|item| item.into_iter().collect())
        .collect()
}

/// The lock items currently held. A released lock stays in the table as `state = free`, so
/// that its fence keeps growing across acquisitions.
async fn held_locks(ddb: &aws_sdk_dynamodb::Client) -> Vec<BTreeMap<String, AttributeValue>> {
    registry_items(ddb, TABLE, "LOCK")
        .await
        .into_iter()
        .filter(|item| matches!(item.get("state"), Some(AttributeValue::S(s)) if s == "held"))
        .collect()
}

/// The fence number of a lock item.
fn fence_of(item: &BTreeMap<String, AttributeValue>) -> u64 {
    match item.get("fence") {
        Some(AttributeValue::N(n)) => n.parse().expect("numeric fence"),
        other => panic!("the lock item has no numeric fence: {other:?}"),
    }
}

const TABLE: &str = "deploy-coordinator-image-test";
const STACK: &str = "image-test-stack";

/// moto with the registry table and the stack the lock-mode steps coordinate.
async fn lock_fixture() -> (DynamoServer, aws_sdk_dynamodb::Client) {
    let moto = tokio::task::block_in_place(|| DynamoServer::start(Emulator::Moto));
    moto.create_table(TABLE).await;
    create_stack(&cloudformation(&moto).await, STACK).await;
    let ddb = moto.client().await;
    (moto, ddb)
}

/// A lock-mode step's environment: its inputs, moto, and the main step's state for a post step.
fn lock_env(moto: &DynamoServer, main: Option<&StepRun>) -> Vec<(String, String)> {
    let mut env = inputs(&[
        ("stack-name", STACK),
        ("mode", "lock"),
        ("registry-table", TABLE),
    ]);
    env.extend(moto.env());
    if let Some(main) = main {
        env.extend(state_env(main));
    }
    env
}

/// A small real stack in moto, so that the action finds the stack it coordinates.
async fn create_stack(cfn: &aws_sdk_cloudformation::Client, stack: &str) {
    let template =
        r#"{"Resources":{"Handle":{"Type":"AWS::CloudFormation::WaitConditionHandle"}}}"#;
    cfn.create_stack()
        .stack_name(stack)
        .template_body(template)
        .send()
        .await
        .expect("create a stack in moto");
}

// --- the tests ------------------------------------------------------------------------------

/// The paths these tests start the steps through are the ones action.yml gives the runner, and
/// action.yml never lets the runner fall back to the `entrypoint` and `args` inputs.
#[test]
fn action_yml_names_the_images_entrypoints_and_no_args() {
    let text = std::fs::read_to_string(repo().join("action.yml")).expect("action.yml");
    let runs: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "runs:")
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .map(str::trim)
        .collect();
    for expected in [
        format!("entrypoint: {MAIN_ENTRYPOINT}"),
        format!("post-entrypoint: {POST_ENTRYPOINT}"),
        "args: []".to_string(),
    ] {
        assert!(
            runs.contains(&expected.as_str()),
            "action.yml's runs block must have `{expected}`: {runs:?}"
        );
    }
}

#[test]
#[ignore = "needs the image: scripts/test builds it"]
fn version_runs_without_a_shell() {
    let job = Job::new();
    let step = job.run_step(None, &[], &["--version"]);
    assert!(step.status.success(), "{}", describe(&step));
    assert!(
        step.stdout.contains(env!("CARGO_PKG_VERSION")),
        "--version should print {}: {}",
        env!("CARGO_PKG_VERSION"),
        describe(&step)
    );
}

/// The image's filesystem as a container export, through `tar TAR_ARGS` (list or extract).
fn export_image(tar_args: &str) -> Vec<u8> {
    let created = container_cli()
        .args(["create", "--label", "deploy-coordinator-test", &image()])
        .output()
        .expect("create");
    assert!(
        created.status.success(),
        "create: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let id = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let export = Command::new("sh")
        .arg("-c")
        .arg(format!(r#""$0" export "$1" | tar {tar_args}"#))
        .arg(repo().join("scripts/container"))
        .arg(&id)
        .output()
        .expect("export the image's filesystem");
    let _ = container_cli().args(["rm", "-f", &id]).output();
    assert!(
        export.status.success(),
        "export: {}",
        String::from_utf8_lossy(&export.stderr)
    );
    export.stdout
}

#[test]
#[ignore = "needs the image: scripts/test builds it"]
fn image_holds_the_binary_the_post_symlink_and_tls_roots() {
    let export = export_image("-tvf -");
    let listing = String::from_utf8_lossy(&export);
    let entry = |path: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" {path}")) || l.contains(&format!(" {path} -> ")))
            .unwrap_or_else(|| panic!("{path} is not in the image:\n{listing}"))
            .to_string()
    };
    let binary = entry("usr/local/bin/deploy-coordinator");
    assert!(
        binary.starts_with("-rwx"),
        "the binary must be an executable file: {binary}"
    );
    let post = entry("usr/local/bin/deploy-coordinator-post");
    assert!(
        post.starts_with('l') && post.ends_with("-> deploy-coordinator"),
        "the post entrypoint must be a symlink to the binary (a copy doubles the image): {post}"
    );
    let roots = entry("etc/ssl/certs/ca-certificates.crt");
    let size: u64 = roots
        .split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(
        size > 100_000,
        "the CA bundle looks empty or truncated ({size} bytes): {roots}"
    );
}

/// The ELF machine of the image's binary matches the architecture the image claims, which is
/// what a runner (or a multi-arch manifest) picks it by.
#[test]
#[ignore = "needs the image: scripts/test builds it"]
fn the_binary_is_built_for_the_images_architecture() {
    let image = image();
    let inspect = container_cli()
        .args([
            "image",
            "inspect",
            "--format",
            "{{.Os}}/{{.Architecture}}",
            &image,
        ])
        .output()
        .expect("image inspect");
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let platform = String::from_utf8_lossy(&inspect.stdout).trim().to_string();
    let elf = export_image("-xOf - usr/local/bin/deploy-coordinator");
    assert!(
        elf.starts_with(b"\x7fELF"),
        "not an ELF file ({} bytes)",
        elf.len()
    );
    // e_machine, little-endian, at offset 18 of the ELF header.
    let machine = u16::from_le_bytes([elf[18], elf[19]]);
    let expected = match platform.as_str() {
        "linux/amd64" => 0x3e,
        "linux/arm64" => 0xb7,
        other => panic!("unexpected image platform {other}"),
    };
    assert_eq!(
        machine, expected,
        "the binary's ELF machine {machine:#x} does not match the image's platform {platform}"
    );
}

#[test]
#[ignore = "needs the image: scripts/test builds it"]
fn malformed_input_fails_naming_it_and_takes_nothing() {
    let job = Job::new();
    let mut env = inputs(&[("stack-name", "image-test"), ("mode", "bogus")]);
    // Never reach real AWS, whatever the binary tries: a closed local port.
    env.push(("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into()));
    env.push(("AWS_REGION".into(), REGION.into()));
    let main = job.run_step(None, &env, &[]);
    assert_eq!(
        main.status.code(),
        Some(1),
        "a bad input must fail the step with exit 1: {}",
        describe(&main)
    );
    let errors = commands(&main, "error");
    assert!(
        errors.iter().any(|line| line.contains("mode")),
        "an ::error annotation must name the input `mode`: {}",
        describe(&main)
    );
    assert!(
        main.state.is_empty(),
        "nothing was taken, so nothing is saved for the post step: {:?}",
        main.state
    );

    // The runner still runs the post step (post-if: always()): with nothing taken it has
    // nothing to release and must not fail the job a second time.
    let post = job.run_step(Some(POST_ENTRYPOINT), &env, &[]);
    assert!(
        post.status.success(),
        "post step after a failed main step: {}",
        describe(&post)
    );
    assert!(
        commands(&post, "error").is_empty(),
        "post step after a failed main step: {}",
        describe(&post)
    );
}

/// `with: args:` as the runner passes it when action.yml has no `runs.args`: the same
/// arguments to the main and the post container, and `INPUT_ARGS`.
#[test]
#[ignore = "needs the image: scripts/test builds it"]
fn with_args_is_refused_and_never_runs_as_a_command() {
    let job = Job::new();
    let mut env = inputs(&[("stack-name", "image-test"), ("mode", "lock")]);
    env.push(("INPUT_ARGS".into(), "registry create --table t".into()));
    env.push(("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into()));
    env.push(("AWS_REGION".into(), REGION.into()));
    let args = ["registry", "create", "--table", "t"];
    let main = job.run_step(None, &env, &args);
    assert_eq!(main.status.code(), Some(1), "{}", describe(&main));
    let errors = commands(&main, "error");
    assert!(
        errors.len() == 1 && errors[0].starts_with("::error title=Unsupported input 'args'::"),
        "{}",
        describe(&main)
    );
    assert!(main.state.is_empty(), "{:?}", main.state);
    let post = job.run_step(Some(POST_ENTRYPOINT), &env, &args);
    assert!(post.status.success(), "post: {}", describe(&post));
    assert!(
        commands(&post, "error").is_empty(),
        "post: {}",
        describe(&post)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the image: scripts/test builds it"]
async fn lock_mode_main_then_post_takes_and_releases_the_lock() {
    let (moto, ddb) = lock_fixture().await;
    let job = Job::new();

    let main = tokio::task::block_in_place(|| job.run_step(None, &lock_env(&moto, None), &[]));
    // What the steps printed, for `-- --nocapture` (e.g. the arm64 image's run under qemu).
    eprintln!("=== main step ({:?})\n{}", main.elapsed, describe(&main));
    assert!(main.status.success(), "lock main step: {}", describe(&main));
    assert!(
        commands(&main, "error").is_empty(),
        "lock main step: {}",
        describe(&main)
    );
    let output = |name: &str| {
        main.outputs
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("output {name} missing: {:?}", main.outputs))
    };
    assert!(
        !output("correlation-id").trim().is_empty(),
        "correlation-id must be set"
    );
    assert_eq!(output("lock-acquired"), "true");
    let fence: u64 = output("lock-fence")
        .parse()
        .unwrap_or_else(|e| panic!("lock-fence is not a number: {e}"));
    assert!(
        !main.state.is_empty(),
        "the main step must save state for the post step"
    );

    let held = held_locks(&ddb).await;
    assert_eq!(
        held.len(),
        1,
        "one lock is held between main and post: {held:?}"
    );
    assert_eq!(
        fence_of(&held[0]),
        fence,
        "the lock-fence output is the lock's fence"
    );

    let post_env = lock_env(&moto, Some(&main));
    let post = tokio::task::block_in_place(|| job.run_step(Some(POST_ENTRYPOINT), &post_env, &[]));
    eprintln!("=== post step ({:?})\n{}", post.elapsed, describe(&post));
    assert!(post.status.success(), "lock post step: {}", describe(&post));
    assert!(
        commands(&post, "error").is_empty(),
        "lock post step: {}",
        describe(&post)
    );
    assert!(
        held_locks(&ddb).await.is_empty(),
        "the post step must release the lock: {}",
        describe(&post)
    );
    assert!(
        !main.summary.is_empty() || !post.summary.is_empty(),
        "a job summary is written"
    );
}

/// Cancelling a waiting job: the runner sends SIGINT to the CLI, which proxies it to the
/// binary, PID 1 in its container (PID 1 ignores signals it has no handler for). The waiter
/// must stop before the runner escalates to SIGTERM (7.5 s), withdraw its queue ticket, and
/// its post step must leave the other job's lock alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the image: scripts/test builds it"]
async fn cancelled_waiter_stops_on_sigint_and_leaves_the_holders_lock() {
    let (moto, ddb) = lock_fixture().await;
    let (holder_job, waiter_job) = (Job::new(), Job::new());

    let holder =
        tokio::task::block_in_place(|| holder_job.run_step(None, &lock_env(&moto, None), &[]));
    assert!(
        holder.status.success(),
        "holder main step: {}",
        describe(&holder)
    );
    let held = held_locks(&ddb).await;
    assert_eq!(
        held.len(),
        1,
        "the first job holds the lock: {}",
        describe(&holder)
    );
    let fence = fence_of(&held[0]);

    let waiter = waiter_job.start_step(None, &lock_env(&moto, None), &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while registry_items(&ddb, TABLE, "QUEUE#").await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the second job never queued behind the first"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let interrupted = Instant::now();
    waiter.interrupt();
    let waiter = tokio::task::block_in_place(|| waiter.finish());
    let stop = interrupted.elapsed();
    assert!(
        stop < Duration::from_millis(7500),
        "SIGINT took {stop:?} to stop the step (the runner sends SIGTERM at 7.5 s): {}",
        describe(&waiter)
    );
    assert!(
        !waiter.status.success(),
        "a cancelled step does not report success: {}",
        describe(&waiter)
    );
    assert!(
        registry_items(&ddb, TABLE, "QUEUE#").await.is_empty(),
        "the cancelled waiter must withdraw its queue ticket: {}",
        describe(&waiter)
    );

    let waiter_post_env = lock_env(&moto, Some(&waiter));
    let waiter_post = tokio::task::block_in_place(|| {
        waiter_job.run_step(Some(POST_ENTRYPOINT), &waiter_post_env, &[])
    });
    assert!(
        waiter_post.status.success(),
        "the waiter's post step: {}",
        describe(&waiter_post)
    );
    let held = held_locks(&ddb).await;
    assert_eq!(
        held.len(),
        1,
        "the holder's lock must survive the waiter's post step"
    );
    assert_eq!(
        fence_of(&held[0]),
        fence,
        "and still be the holder's acquisition"
    );

    let holder_post_env = lock_env(&moto, Some(&holder));
    let holder_post = tokio::task::block_in_place(|| {
        holder_job.run_step(Some(POST_ENTRYPOINT), &holder_post_env, &[])
    });
    assert!(
        holder_post.status.success(),
        "holder post: {}",
        describe(&holder_post)
    );
    assert!(held_locks(&ddb).await.is_empty());
}
