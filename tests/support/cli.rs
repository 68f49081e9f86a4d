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
