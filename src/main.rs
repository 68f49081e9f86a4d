//! Entry point: one binary, three faces.
//!
//! - started through a path whose name ends in `-post` (the image's
//!   `/usr/local/bin/deploy-coordinator-post` link): the action's post step, because the
//!   runner's `post-entrypoint` is one path and takes no arguments;
//! - with a subcommand: the operator CLI;
//! - with no arguments inside GitHub Actions: the action's main step.
//!
//! A step of the action is recognised by the inputs the runner exports for it (every input
//! declared in action.yml, `INPUT_STACK-NAME` among them, even when empty). Such a step never
//! reads its arguments as a CLI command: `with: args:` would otherwise turn a deployment step
//! into `lock break` or `registry create` (the runner hands the `args` input to the container
//! as its command line when action.yml has no `runs.args`, and to the pre, main and post
//! containers alike). The main step refuses it; the post step ignores it, since it must still
//! release whatever the main step took.

use std::process::ExitCode;

use clap::Parser;
use deploy_coordinator::action::FileCommands;
use deploy_coordinator::action::log::{self, Target};
use deploy_coordinator::{cli, context::RunContext, steps};

/// Inputs that are not the action's but that the runner reads as container settings
/// (`with: args:`, `with: entrypoint:`), with what they would have done.
const CONTAINER_INPUTS: [(&str, &str); 2] =
    [("INPUT_ARGS", "args"), ("INPUT_ENTRYPOINT", "entrypoint")];

/// Why a step of the action must not run, when the workflow gave it container arguments or
/// container inputs. `argv` is the command line after the program name.
fn container_settings_refusal(
    argv: &[std::ffi::OsString],
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(String, String)> {
    let inputs: Vec<&str> = CONTAINER_INPUTS
        .iter()
        .filter(|(var, _)| env(var).is_some_and(|v| !v.trim().is_empty()))
        .map(|(_, name)| *name)
        .collect();
    if argv.is_empty() && inputs.is_empty() {
        return None;
    }
    let name = inputs.first().copied().unwrap_or("args");
    let got = if argv.is_empty() {
        format!("`with: {name}:` is set")
    } else {
        format!(
            "the container was started with {} command-line argument(s), which is what the runner \
             does with `with: args:`",
            argv.len()
        )
    };
    Some((
        format!("Unsupported input '{name}'"),
        format!(
            "{got}. deploy-coordinator takes its settings from its own inputs only (stack-name, mode, \
             template, ...; see the README), and never runs its arguments as an operator command in a \
             step of the action. Remove `{name}` from this step's `with:`. To run an operator command \
             (lock status, lock release, ...) in a workflow, use a `run:` step with the binary, or the \
             image as `uses: docker://IMAGE` with `args:`. Nothing was locked or deployed."
        ),
    ))
}

fn files_from_env() -> FileCommands {
    FileCommands::from_env(&|name| std::env::var(name).ok())
}

fn main() -> ExitCode {
    let ctx = RunContext::from_process_env();
    let target = if ctx.in_actions {
        Target::GitHub
    } else {
        Target::Terminal
    };
    log::init(target);
    log::init_tracing(target, ctx.debug);

    let argv0 = std::env::args_os().next().unwrap_or_default();
    let is_post = std::path::Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with("-post"));

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error(
                "deploy-coordinator could not start",
                &format!("cannot start the async runtime: {e}"),
            );
            return ExitCode::FAILURE;
        }
    };

    if is_post {
        // Arguments are ignored here (see the module comment): the post-entrypoint link is
        // what makes this the post step, whatever follows it.
        let code = runtime.block_on(steps::post::run(ctx));
        log::finish_step(&files_from_env());
        return code;
    }
    let action_step = ctx.in_actions && std::env::var_os("INPUT_STACK-NAME").is_some();
    if action_step {
        let argv: Vec<_> = std::env::args_os().skip(1).collect();
        if let Some((title, message)) =
            container_settings_refusal(&argv, &|name| std::env::var(name).ok())
        {
            log::error(&title, &message);
            return ExitCode::FAILURE;
        }
        let code = runtime.block_on(steps::main::run(ctx));
        log::finish_step(&files_from_env());
        return code;
    }
    let args = cli::Cli::parse();
    match args.command {
        Some(command) => runtime.block_on(cli::run(command)),
        // GITHUB_ACTIONS=true without the action's inputs: a bare `docker run` of the image
        // in a workflow, or the binary in a `run:` step; the main step needs its inputs, and
        // says which one is missing.
        None if ctx.in_actions => {
            let code = runtime.block_on(steps::main::run(ctx));
            log::finish_step(&files_from_env());
            code
        }
        None => {
            eprintln!(
                "deploy-coordinator: no command given. Run `deploy-coordinator --help` for the operator \
                 commands; the action's main step runs only inside GitHub Actions (GITHUB_ACTIONS=true)."
            );
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn a_step_without_container_settings_runs() {
        assert_eq!(container_settings_refusal(&[], &env(&[])), None);
        // Declared-empty is how the runner exports an input nobody set.
        assert_eq!(
            container_settings_refusal(&[], &env(&[("INPUT_ARGS", " ")])),
            None
        );
    }

    #[test]
    fn arguments_are_refused_and_never_named_as_a_command() {
        let argv = ["lock".into(), "break".into(), "--key".into(), "prod".into()];
        let (title, message) =
            container_settings_refusal(&argv, &env(&[("INPUT_ARGS", "lock break --key prod")]))
                .expect("refused");
        assert_eq!(title, "Unsupported input 'args'");
        assert!(message.contains("4 command-line argument(s)"), "{message}");
        assert!(message.contains("Remove `args`"), "{message}");
        assert!(
            message.contains("Nothing was locked or deployed."),
            "{message}"
        );
        // Arguments may carry anything: they are counted, not printed.
        assert!(!message.contains("break"), "{message}");
    }

    #[test]
    fn container_inputs_are_refused_even_when_the_runner_did_not_pass_them_on() {
        let (title, message) = container_settings_refusal(
            &[],
            &env(&[("INPUT_ENTRYPOINT", "/usr/local/bin/deploy-coordinator-post")]),
        )
        .expect("refused");
        assert_eq!(title, "Unsupported input 'entrypoint'");
        assert!(
            message.starts_with("`with: entrypoint:` is set."),
            "{message}"
        );
        assert!(container_settings_refusal(&[], &env(&[("INPUT_ARGS", "lock status")])).is_some());
    }
}
