//! The runner contract, end to end through the built binary: inputs as the runner exports
//! them, outputs and state parsed by the runner's rules, the post step as a separate process
//! entered through its own path. Tests that need DynamoDB are in `tests/action_lock.rs`.

mod support;

use support::runner::{Runner, action_yml_section, parse_file_commands};

#[test]
fn file_command_parser_follows_the_runner() {
    let text = "a=1\nb=x=y\n\nmulti<<EOF\nline 1\nline 2\nEOF\nc<<D\n\nD\n";
    let records = parse_file_commands(text).unwrap();
    let expected: Vec<(String, String)> = [
        ("a", "1"),
        ("b", "x=y"),
        ("multi", "line 1\nline 2"),
        ("c", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(records, expected);
    assert!(parse_file_commands("novalue\n").is_err());
    assert!(parse_file_commands("=v\n").is_err());
    assert!(parse_file_commands("x<<EOF\nunterminated\n").is_err());
    // On Linux a carriage return is part of the value.
    assert_eq!(
        parse_file_commands("a=1\r\n").unwrap(),
        vec![("a".to_string(), "1\r".to_string())]
    );
}

#[test]
fn action_yml_declares_exactly_the_inputs_and_outputs_the_code_reads() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml")).unwrap();
    let inputs = action_yml_section(&text, "inputs");
    let code: Vec<String> = deploy_coordinator::config::INPUTS
        .iter()
        .map(|i| i.name.to_string())
        .collect();
    assert_eq!(inputs, code, "action.yml inputs vs config::INPUTS");
    let outputs = action_yml_section(&text, "outputs");
    let code: Vec<String> = deploy_coordinator::outputs::OUTPUTS
        .iter()
        .map(|o| o.to_string())
        .collect();
    assert_eq!(outputs, code, "action.yml outputs vs outputs::OUTPUTS");
    assert!(text.contains("post-entrypoint: /usr/local/bin/deploy-coordinator-post"));
    assert!(text.contains("post-if: always()"));
}

/// Every malformed input we know of: exit 1, one `::error` annotation naming the input,
/// nothing recorded for the post step (nothing was taken), no panic.
#[test]
fn malformed_inputs_fail_clearly_before_any_network_call() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("stack-name", "")], "stack-name"),
        (&[("stack-name", "my_stack")], "stack-name"),
        (&[("stack-name", "app"), ("mode", "bogus")], "mode"),
        (&[("stack-name", "app"), ("mode", "deploy")], "template"),
        (
            &[("stack-name", "app"), ("template", "nowhere.yaml")],
            "template",
        ),
        (
            &[
                ("stack-name", "app"),
                ("mode", "lock"),
                ("template", "t.yaml"),
            ],
            "template",
        ),
        (
            &[
                ("stack-name", "app"),
                ("template", "t.yaml"),
                ("parameters", "Env"),
            ],
            "parameters",
        ),
        (
            &[
                ("stack-name", "app"),
                ("template", "t.yaml"),
                ("capabilities", "CAPABILITY_ROOT"),
            ],
            "capabilities",
        ),
        (
            &[
                ("stack-name", "app"),
                ("template", "t.yaml"),
                ("role-arn", "deployer"),
            ],
            "role-arn",
        ),
        (
            &[("stack-name", "app"), ("lock-timeout", "60")],
            "lock-timeout",
        ),
        (
            &[("stack-name", "app"), ("lock-lease", "forever")],
            "lock-lease",
        ),
        (
            &[("stack-name", "app"), ("deploy-timeout", "1h30")],
            "deploy-timeout",
        ),
        (
            &[("stack-name", "app"), ("start-timeout", "-5m")],
            "start-timeout",
        ),
        (
            &[("stack-name", "app"), ("registry-table", "my table")],
            "registry-table",
        ),
        (
            &[("stack-name", "app"), ("on-registry-unavailable", "ignore")],
            "on-registry-unavailable",
        ),
        (&[("stack-name", "app"), ("on-freeze", "skip")], "on-freeze"),
        (&[("stack-name", "app"), ("preflight", "yes")], "preflight"),
        (
            &[("stack-name", "app"), ("slack-bot-token", "xoxb-secret-1")],
            "slack-channel",
        ),
        (
            &[
                ("stack-name", "app"),
                ("slack-webhook-url", "http://hooks.example/T/B/secret"),
            ],
            "slack-webhook-url",
        ),
        (
            &[("stack-name", "app"), ("github-deployment", "maybe")],
            "github-deployment",
        ),
        (
            &[("stack-name", "app"), ("fail-on-empty-changeset", "yes")],
            "fail-on-empty-changeset",
        ),
        (
            &[("stack-name", "app"), ("correlation-id", "a;rm -rf")],
            "correlation-id",
        ),
        (
            &[("stack-name", "app"), ("aws-region", "mars")],
            "aws-region",
        ),
        (
            &[
                ("stack-name", "app"),
                ("template", "t.yaml"),
                ("on-risk", "ignore"),
            ],
            "on-risk",
        ),
        (
            &[
                ("stack-name", "app"),
                ("template", "t.yaml"),
                ("allow-replacement", "Orders-Table"),
            ],
            "allow-replacement",
        ),
        (
            &[("stack-name", "app"), ("change-set-name", "plan_1")],
            "change-set-name",
        ),
    ];
    for (inputs, named) in cases {
        let mut runner = Runner::new();
        std::fs::write(runner.workspace().join("t.yaml"), "Resources: {}\n").unwrap();
        for (k, v) in *inputs {
            runner.input(k, v);
        }
        let run = runner.main();
        let log = run.log();
        assert_eq!(
            run.code(),
            Some(1),
            "{inputs:?} should fail with exit 1\n{log}"
        );
        let errors: Vec<String> = run
            .commands()
            .into_iter()
            .filter(|c| c.starts_with("::error"))
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "{inputs:?}: exactly one error annotation\n{log}"
        );
        assert!(
            errors[0].starts_with(&format!("::error title=Invalid input '{named}'::")),
            "{inputs:?}: {}",
            errors[0]
        );
        assert!(
            !log.contains("panicked") && !log.contains("RUST_BACKTRACE"),
            "{inputs:?}: {log}"
        );
        assert!(
            run.state.is_empty(),
            "{inputs:?}: nothing may be recorded for the post step: {:?}",
            run.state
        );
        // The post step of a main step that took nothing has nothing to do, and says so.
        let post = runner.post(&run);
        assert_eq!(post.code(), Some(0), "{}", post.log());
    }
}

#[test]
fn secret_inputs_are_masked_before_anything_else_is_printed() {
    let mut runner = Runner::new();
    runner
        .input("stack-name", "app")
        .input("slack-bot-token", "xoxb-0000-secret-value")
        .input("mode", "bogus");
    let run = runner.main();
    let log = run.log();
    let first = log.lines().next().unwrap_or_default();
    assert_eq!(
        first, "::add-mask::xoxb-0000-secret-value",
        "the mask must come first:\n{log}"
    );
    let leaks = log
        .lines()
        .filter(|l| l.contains("xoxb-0000-secret-value") && !l.starts_with("::add-mask::"))
        .count();
    assert_eq!(leaks, 0, "{log}");
}

#[test]
fn outside_github_actions_the_binary_explains_itself() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deploy-coordinator"))
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--help"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deploy-coordinator"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("deploy-coordinator "));
}

#[test]
fn a_post_step_without_state_does_nothing() {
    let runner = Runner::new();
    let (mut cmd, _) = runner.command(true, &Default::default());
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One input as `action.yml` declares it: (name, required, default, description folded to one
/// line). A reader for this file's own layout (two-space names, four-space keys, `>-` folds).
fn action_yml_inputs(text: &str) -> Vec<(String, bool, Option<String>, String)> {
    let mut inputs: Vec<(String, bool, Option<String>, String)> = Vec::new();
    let mut in_inputs = false;
    let mut in_description = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_inputs = line == "inputs:";
            continue;
        }
        if !in_inputs {
            continue;
        }
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && !name.starts_with(' ')
        {
            inputs.push((name.to_string(), false, None, String::new()));
            in_description = false;
            continue;
        }
        let Some(input) = inputs.last_mut() else {
            continue;
        };
        if let Some(rest) = line.strip_prefix("    ")
            && !rest.starts_with(' ')
        {
            in_description = false;
            let (key, value) = rest.split_once(':').unwrap_or((rest, ""));
            let value = value.trim();
            match key {
                "description" if value == ">-" => in_description = true,
                "description" => input.3 = value.to_string(),
                "required" => input.1 = value == "true",
                "default" => input.2 = Some(value.trim_matches('"').to_string()),
                _ => {}
            }
        } else if in_description && line.starts_with("      ") {
            if !input.3.is_empty() {
                input.3.push(' ');
            }
            input.3.push_str(line.trim());
        }
    }
    inputs
}

/// Each input is declared once, in `config::INPUTS`; `action.yml` says the same, default and
/// description included (a default typed twice drifts: the code would use another value than
/// the marketplace page shows).
#[test]
fn action_yml_inputs_match_their_declaration_defaults_and_descriptions_included() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml")).unwrap();
    let declared: Vec<(String, bool, Option<String>, String)> = deploy_coordinator::config::INPUTS
        .iter()
        .map(|i| {
            (
                i.name.to_string(),
                i.required,
                i.default.declared().map(str::to_string),
                i.description.to_string(),
            )
        })
        .collect();
    let yml = action_yml_inputs(&text);
    assert_eq!(yml.len(), declared.len(), "number of inputs");
    for (yml, declared) in yml.iter().zip(&declared) {
        assert_eq!(yml, declared, "action.yml vs config::INPUTS");
    }
}
