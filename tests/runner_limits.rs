//! The runner's limits, through the real binary and the runner emulation:
//! - it turns only the first 10 annotations of each kind of a step into annotations (the rest
//!   are lost silently): a step with 25 failures shows 10, one notice about the rest, and the
//!   rest in the job summary;
//! - `with: args:` reaches the action's containers (as their command line, or as `INPUT_ARGS`):
//!   the main step refuses it and takes nothing, the post step ignores it.

mod support;

use serde_json::json;
use support::cfnsim::Simulator;
use support::dynamo::{DynamoServer, Emulator};
use support::runner::{Runner, StepRun, collect};

const TABLE: &str = "deployment-registry";
const REMOVED: usize = 25;

/// A stack of one queue that stays, plus `extra` queues the next deploy removes.
fn template(extra: usize) -> String {
    let mut text = String::from("Resources:\n  Keep:\n    Type: AWS::SQS::Queue\n");
    for i in 1..=extra {
        text.push_str(&format!("  Old{i:02}:\n    Type: AWS::SQS::Queue\n"));
    }
    text
}

fn deploy(
    dynamo: &DynamoServer,
    sim: &Simulator,
    run_id: &str,
    template_text: &str,
) -> (Runner, StepRun) {
    let mut runner = Runner::new();
    for (k, v) in dynamo.env() {
        runner.env(&k, &v);
    }
    runner
        .env("AWS_ENDPOINT_URL_DYNAMODB", &dynamo.endpoint())
        .env("AWS_ENDPOINT_URL_CLOUDFORMATION", &sim.endpoint)
        .env("GITHUB_RUN_ID", run_id)
        .input("stack-name", "queues");
    std::fs::write(runner.workspace().join("stack.yaml"), template_text).unwrap();
    runner.input("template", "stack.yaml");
    let main = runner.main();
    (runner, main)
}

fn kind(step: &StepRun, kind: &str) -> Vec<String> {
    let prefix = format!("::{kind} ");
    let bare = format!("::{kind}::");
    step.commands()
        .into_iter()
        .filter(|l| l.starts_with(&prefix) || l.starts_with(&bare))
        .collect()
}

/// 25 resources whose deletes fail in the update's clean-up: 25 "could not be deleted"
/// warnings in one step, which the runner would cut to 10 without a word.
#[tokio::test]
async fn twenty_five_failed_deletes_show_ten_annotations_one_notice_and_the_rest_in_the_summary() {
    let dynamo = DynamoServer::start(Emulator::Moto);
    dynamo.create_table(TABLE).await;
    let mut resources = serde_json::Map::new();
    for i in 1..=REMOVED {
        resources.insert(
            format!("Old{i:02}"),
            json!({"fail_delete": format!("Queue Old{i:02} is in use"), "delete_attempts": 1}),
        );
    }
    let scenario = json!({
        "seed": 18, "change_set_seconds": 1, "defaults": {"duration": 2},
        "resources": resources,
    });
    let sim = Simulator::start(&scenario, 60.0);

    let (_, create) = deploy(&dynamo, &sim, "1801", &template(REMOVED));
    assert_eq!(create.code(), Some(0), "create: {}", create.log());

    let (_, update) = deploy(&dynamo, &sim, "1802", &template(0));
    assert_eq!(update.code(), Some(0), "update: {}", update.log());
    assert_eq!(update.output("outcome"), Some("succeeded"));
    let log = update.log();

    let warnings = kind(&update, "warning");
    let left_behind: Vec<&String> = warnings
        .iter()
        .filter(|l| l.contains("could not be deleted during the clean-up"))
        .collect();
    assert_eq!(
        warnings.len(),
        10,
        "at most 10 warning annotations in a step: {warnings:#?}"
    );
    assert!(
        !left_behind.is_empty(),
        "the failed deletes are annotated: {log}"
    );
    let notices = kind(&update, "notice");
    assert!(notices.len() <= 10, "{notices:#?}");
    let closing: Vec<&String> = notices
        .iter()
        .filter(|l| l.contains("not shown as annotations"))
        .collect();
    assert_eq!(closing.len(), 1, "one notice about the rest: {notices:#?}");
    let held = REMOVED - left_behind.len();
    assert!(
        closing[0].contains(&format!("title={held} warnings not shown as annotations")),
        "{}",
        closing[0]
    );

    // Every failed delete is named once, as an annotation or as a row of the summary table,
    // and each one held back is still in the log, whole, as a plain line.
    let section = update
        .summary
        .split("### Annotations not shown")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary section: {}", update.summary));
    for i in 1..=REMOVED {
        // The scenario's own reason, in every form of the message.
        let reason = format!("Queue Old{i:02} is in use");
        let annotated = left_behind.iter().filter(|l| l.contains(&reason)).count();
        let listed = section.matches(&reason).count();
        assert_eq!(
            annotated + listed,
            1,
            "{reason}: annotated {annotated}, listed {listed}\n{section}"
        );
        if listed == 1 {
            assert!(
                log.lines()
                    .any(|l| l.starts_with("warning: ") && l.contains(&reason)),
                "{reason}: held back, so printed as a plain log line:\n{log}"
            );
        }
    }
    assert_eq!(section.matches("| warning |").count(), held, "{section}");
}

/// The runner hands `with: args:` to the container as its command line (action.yml without
/// `runs.args`) and exports it as `INPUT_ARGS` either way.
#[tokio::test]
async fn with_args_the_main_step_refuses_and_the_post_step_still_runs() {
    let dynamo = DynamoServer::start(Emulator::Moto);
    dynamo.create_table(TABLE).await;
    let mut runner = Runner::new();
    for (k, v) in dynamo.env() {
        runner.env(&k, &v);
    }
    runner
        .input("stack-name", "payments")
        .input("mode", "lock")
        .input("args", "lock break --key payments");

    let step = |post: bool, state: &std::collections::BTreeMap<String, String>| {
        let (mut cmd, files) = runner.command(post, state);
        cmd.args(["lock", "break", "--key", "payments"]);
        let start = std::time::Instant::now();
        let out = cmd.output().expect("run the step");
        collect(out.status, out.stdout, out.stderr, files, start.elapsed())
    };
    let main = step(false, &Default::default());
    assert_eq!(main.code(), Some(1), "{}", main.log());
    let errors = kind(&main, "error");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("::error title=Unsupported input 'args'::"),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].contains("Nothing was locked or deployed."),
        "{}",
        errors[0]
    );
    assert!(main.state.is_empty(), "nothing taken: {:?}", main.state);
    assert!(main.outputs.is_empty(), "{:?}", main.outputs);

    // Only INPUT_ARGS (a runner that honours `runs.args: []`): refused all the same.
    let (mut cmd, files) = runner.command(false, &Default::default());
    let out = cmd.output().expect("run the main step");
    let only_input = collect(
        out.status,
        out.stdout,
        out.stderr,
        files,
        Default::default(),
    );
    assert_eq!(only_input.code(), Some(1), "{}", only_input.log());
    assert!(
        kind(&only_input, "error")
            .iter()
            .any(|l| l.contains("`with: args:` is set")),
        "{}",
        only_input.log()
    );

    let post = step(true, &main.state);
    assert_eq!(post.code(), Some(0), "post: {}", post.log());
    assert!(kind(&post, "error").is_empty(), "{}", post.log());
}
