//! The binary as an operator runs it from a shell: a clean environment (PATH, `RUST_LOG=info`
//! and what the test passes, so nothing of the developer's AWS or Slack settings leaks in),
//! stdin closed, output captured, killed when the test drops it.

use std::process::{Output, Stdio};

use tokio::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_deploy-coordinator");

pub fn cli(env: &[(String, String)], args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .envs(env.iter().cloned())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

pub async fn run(env: &[(String, String)], args: &[&str]) -> Output {
    cli(env, args).output().await.expect("run binary")
}

/// Everything a failed assertion needs to show.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The JSON an `--json` command printed.
pub fn json_of(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// An emulator with a registry table made by `registry create`, and the environment that
/// reaches it.
pub async fn registry_on(
    emulator: super::dynamo::Emulator,
    table: &str,
) -> (super::dynamo::DynamoServer, Vec<(String, String)>) {
    let server = super::dynamo::DynamoServer::start(emulator);
    let env = server.env();
    let o = run(&env, &["registry", "create", "--table", table]).await;
    assert!(o.status.success(), "{}", text(&o));
    (server, env)
}

/// `lock status --json` of one key.
pub async fn lock_status(env: &[(String, String)], table: &str, key: &str) -> serde_json::Value {
    let o = run(
        env,
        &["lock", "status", "--table", table, "--key", key, "--json"],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    json_of(&o)
}

/// Polls `lock status` until `pred` holds, failing the test after `within`.
pub async fn wait_for_status(
    env: &[(String, String)],
    table: &str,
    key: &str,
    what: &str,
    within: std::time::Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let s = lock_status(env, table, key).await;
        if pred(&s) {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {s}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
