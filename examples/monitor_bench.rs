//! Monitor benchmark (issue 4): how late the step ends after CloudFormation's terminal event,
//! how many CloudFormation calls following a deployment costs, side by side with a fixed 2 s
//! poller (CDK's strategy), and the binary's peak RSS following a 500-resource nested stack.
//!
//!     scripts/bench-monitor            (builds what it needs, then runs this)
//!     cargo run --example monitor_bench -- --bin target/debug/deploy-coordinator \
//!         [--rss-bin PATH]... [--deployments 12] [--stagger 4] [--skip-latency] [--skip-rss]
//!
//! Latency and calls: `--deployments` creates of realistic stacks (IAM roles, Lambda, a NAT
//! gateway ~90 s, an ALB 120-150 s, in dependency waves; 2-3.5 minutes each), started
//! `--stagger` seconds apart on different stacks and lock keys, at `--time-scale 1`: the poll
//! schedule runs in real time, so the simulated deployment must too. Each one runs twice in
//! the same moment: the REAL binary in mode `deploy` (as the GitHub runner starts it: `INPUT_*`,
//! `GITHUB_*`, file-command files) against simulator A with moto for the lock table, and a fixed
//! 2 s poller (aws_sdk_cloudformation: DescribeStackEvents + DescribeStacks every 2 s until the
//! root stack is terminal) against simulator B with the same scenario. Stack names are the same
//! in both, so the simulators draw the same durations. The delay is measured from the root
//! stack's terminal event (`/_sim/stacks` `terminal_events[].real_time`, wall clock) to the step
//! process's exit (ours) or to the poll that saw the terminal status (the fixed poller). Calls are
//! each simulator's `/_sim/stats` DescribeStackEvents + DescribeStacks (ours include the calls
//! before the operation and the final read of the outputs), divided by the summed operation
//! time (start of the operation → its terminal event).
//!
//! Replay: the same deployments' events (read back from simulator A) are fed through
//! `PollSchedule` offline, first with the binary's own settings (which must reproduce the
//! measured delays, validating the replay), then with candidate changes, so a proposal for
//! `src/stack/poll.rs` comes with figures from the same deployments.
//!
//! RSS: one deployment of a stack with 5 nested stacks × 100 resources (505 resources, in waves
//! of 10) at time scale 10, per `--rss-bin`: peak `VmHWM` from `/proc/PID/status` polled every
//! 5 ms, then a second deployment under `/usr/bin/time -f %M` when it exists.

// Shared with the integration tests: start and stop the servers, never orphaned.
#[allow(dead_code)]
#[path = "../tests/support/cfnsim.rs"]
mod cfnsim;
#[allow(dead_code)]
#[path = "../tests/support/dynamo.rs"]
mod dynamo;

#[path = "common/args.rs"]
mod args;
use args::arg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_cloudformation::types::{Capability, ChangeSetStatus, ChangeSetType};
use serde_json::{Value, json};

const TABLE: &str = "deployment-registry";

/// A service behind an ALB, with a NAT gateway for its Lambda: the ALB (120-150 s) is last.
const WEB_TEMPLATE: &str = r#"
Resources:
  ExecRole:
    Type: AWS::IAM::Role
    Properties: {AssumeRolePolicyDocument: {}}
  TaskRole:
    Type: AWS::IAM::Role
    Properties: {AssumeRolePolicyDocument: {}}
  Logs:
    Type: AWS::Logs::LogGroup
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
  SubnetA:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc}
  SubnetB:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc}
  Igw:
    Type: AWS::EC2::InternetGateway
  IgwAttach:
    Type: AWS::EC2::VPCGatewayAttachment
    Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}
  Eip:
    Type: AWS::EC2::EIP
    DependsOn: IgwAttach
  Nat:
    Type: AWS::EC2::NatGateway
    Properties: {SubnetId: !Ref SubnetA, AllocationId: !GetAtt Eip.AllocationId}
  Route:
    Type: AWS::EC2::Route
    Properties: {NatGatewayId: !Ref Nat}
  AlbSg:
    Type: AWS::EC2::SecurityGroup
    Properties: {VpcId: !Ref Vpc}
  Alb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: {Subnets: [!Ref SubnetA, !Ref SubnetB], SecurityGroups: [!Ref AlbSg]}
  TargetGroup:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties: {VpcId: !Ref Vpc}
  Listener:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties: {LoadBalancerArn: !Ref Alb, TargetGroupArn: !Ref TargetGroup}
  Fn:
    Type: AWS::Lambda::Function
    Properties: {Role: !GetAtt ExecRole.Arn, SubnetId: !Ref SubnetA, Logs: !Ref Logs}
  Queue:
    Type: AWS::SQS::Queue
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties: {FunctionName: !Ref Fn, EventSourceArn: !GetAtt Queue.Arn}
Outputs:
  AlbDns:
    Value: !GetAtt Alb.DNSName
"#;

/// A queue worker in a private subnet: the NAT gateway (~90 s) and its route are last.
const WORKER_TEMPLATE: &str = r#"
Resources:
  ExecRole:
    Type: AWS::IAM::Role
    Properties: {AssumeRolePolicyDocument: {}}
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.1.0.0/16}
  Subnet:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc}
  Igw:
    Type: AWS::EC2::InternetGateway
  IgwAttach:
    Type: AWS::EC2::VPCGatewayAttachment
    Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}
  Eip:
    Type: AWS::EC2::EIP
    DependsOn: IgwAttach
  Nat:
    Type: AWS::EC2::NatGateway
    Properties: {SubnetId: !Ref Subnet, AllocationId: !GetAtt Eip.AllocationId}
  Route:
    Type: AWS::EC2::Route
    Properties: {NatGatewayId: !Ref Nat}
  Queue:
    Type: AWS::SQS::Queue
  DeadLetters:
    Type: AWS::SQS::Queue
  Fn:
    Type: AWS::Lambda::Function
    Properties: {Role: !GetAtt ExecRole.Arn, SubnetId: !Ref Subnet}
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties: {FunctionName: !Ref Fn, EventSourceArn: !GetAtt Queue.Arn}
  Alarm:
    Type: AWS::CloudWatch::Alarm
    Properties: {Dimensions: [!GetAtt DeadLetters.QueueName]}
"#;

/// Durations (simulated seconds = real seconds at time scale 1) from the issue's shape.
fn latency_scenario(seed: u64) -> Value {
    json!({
        "seed": seed,
        "change_set_seconds": [2, 5],
        "types": {
            "AWS::IAM::Role": {"duration": [10, 20]},
            "AWS::Lambda::Function": {"duration": [10, 30]},
            "AWS::EC2::NatGateway": {"duration": [85, 100]},
            "AWS::ElasticLoadBalancingV2::LoadBalancer": {"duration": [120, 150]},
            "AWS::ElasticLoadBalancingV2::TargetGroup": {"duration": [10, 15]},
            "AWS::ElasticLoadBalancingV2::Listener": {"duration": [1, 3]},
            "AWS::EC2::Route": {"duration": [1, 3]},
            "AWS::EC2::EIP": {"duration": [2, 5]},
            "AWS::Lambda::EventSourceMapping": {"duration": [2, 6]},
            "AWS::CloudWatch::Alarm": {"duration": [1, 3]}
        }
    })
}

fn args_all(name: &str) -> Vec<String> {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].clone())
        .collect()
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Median (mean of the middle two for an even count).
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Nearest-rank percentile: the smallest value with at least p % of the values at or below it.
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ------------------------------------------------------------------------------------------
// The step, started as the GitHub runner starts a container action's main step.

/// The inputs action.yml declares, with their defaults (the runner exports every one).
fn declared_inputs(action_yml: &str) -> BTreeMap<String, String> {
    let mut inputs = BTreeMap::new();
    let mut in_inputs = false;
    let mut current: Option<String> = None;
    for line in action_yml.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_inputs = line.trim_end() == "inputs:";
            current = None;
            continue;
        }
        if !in_inputs {
            continue;
        }
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && !name.starts_with(' ')
        {
            inputs.insert(name.to_string(), String::new());
            current = Some(name.to_string());
            continue;
        }
        if let (Some(name), Some(default)) = (&current, line.trim().strip_prefix("default:")) {
            let default = default.trim().trim_matches('"');
            // `${{ github.token }}` has no value here.
            if !default.contains("${{") {
                inputs.insert(name.clone(), default.to_string());
            }
        }
    }
    inputs
}

/// The runner's file-command format: `name=value` or `name<<DELIM` … `DELIM`.
fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.split('\n');
    while let Some(line) = lines.next() {
        let heredoc = line.find("<<");
        match (line.find('='), heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                out.insert(line[..e].to_string(), line[e + 1..].to_string());
            }
            (_, Some(h)) => {
                let delimiter = &line[h + 2..];
                let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delimiter).collect();
                out.insert(line[..h].to_string(), value.join("\n"));
            }
            _ => {}
        }
    }
    out
}

/// Where the servers are.
struct World {
    dynamo: String,
    cfn: String,
}

struct Step {
    dir: tempfile::TempDir,
    command: tokio::process::Command,
}

impl Step {
    /// The main step of mode `deploy` for `stack`, wrapped in `wrapper` (e.g. /usr/bin/time).
    fn deploy(
        bin: &Path,
        world: &World,
        run_id: u64,
        stack: &str,
        template: &str,
        wrapper: &[String],
    ) -> Result<Step> {
        let dir = tempfile::tempdir().context("step directory")?;
        let root = dir.path();
        for d in ["workspace", "home", "runner_temp", "file_commands"] {
            std::fs::create_dir_all(root.join(d)).context("step directories")?;
        }
        std::fs::write(root.join("event.json"), "{}").context("event.json")?;
        std::fs::write(root.join("workspace/stack.yaml"), template).context("template")?;
        for f in ["output", "state", "summary"] {
            std::fs::write(root.join("file_commands").join(f), "").context("file commands")?;
        }
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let action = std::fs::read_to_string(manifest.join("action.yml")).context("action.yml")?;
        let mut inputs = declared_inputs(&action);
        inputs.insert("stack-name".into(), stack.into());
        inputs.insert("template".into(), "stack.yaml".into());
        inputs.insert("capabilities".into(), "CAPABILITY_IAM".into());
        inputs.insert("registry-table".into(), TABLE.into());

        let p = |d: &str| root.join(d).display().to_string();
        let (program, args) = match wrapper.split_first() {
            Some((w, rest)) => {
                let mut args: Vec<String> = rest.to_vec();
                args.push(bin.display().to_string());
                (PathBuf::from(w), args)
            }
            None => (bin.to_path_buf(), Vec::new()),
        };
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env_clear()
            .current_dir(root.join("workspace"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(root.join("stdout")).context("stdout")?)
            .stderr(std::fs::File::create(root.join("stderr")).context("stderr")?)
            .kill_on_drop(true);
        let run_id = run_id.to_string();
        let vars = [
            ("GITHUB_ACTIONS", "true".to_string()),
            ("CI", "true".into()),
            ("HOME", p("home")),
            ("GITHUB_WORKSPACE", p("workspace")),
            ("GITHUB_EVENT_PATH", p("event.json")),
            ("RUNNER_TEMP", p("runner_temp")),
            ("GITHUB_REPOSITORY", "acme/bench".into()),
            ("GITHUB_REPOSITORY_OWNER", "acme".into()),
            ("GITHUB_RUN_ID", run_id),
            ("GITHUB_RUN_ATTEMPT", "1".into()),
            ("GITHUB_RUN_NUMBER", "1".into()),
            ("GITHUB_JOB", "deploy".into()),
            ("GITHUB_WORKFLOW", "Deploy".into()),
            ("GITHUB_ACTOR", "octocat".into()),
            (
                "GITHUB_SHA",
                "abc1234def5678abc1234def5678abc1234def56".into(),
            ),
            ("GITHUB_REF", "refs/heads/main".into()),
            ("GITHUB_SERVER_URL", "https://github.com".into()),
            // Nothing listens there: no GitHub API in a benchmark.
            ("GITHUB_API_URL", "http://127.0.0.1:9".into()),
            ("GITHUB_EVENT_NAME", "push".into()),
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("GITHUB_OUTPUT", p("file_commands/output")),
            ("GITHUB_STATE", p("file_commands/state")),
            ("GITHUB_STEP_SUMMARY", p("file_commands/summary")),
            ("AWS_ENDPOINT_URL_DYNAMODB", world.dynamo.clone()),
            ("AWS_ENDPOINT_URL_CLOUDFORMATION", world.cfn.clone()),
        ];
        command.envs(vars);
        command.envs(dynamo::endpoint_env(&world.dynamo));
        for (name, value) in inputs {
            command.env(format!("INPUT_{}", name.to_uppercase()), value);
        }
        Ok(Step { dir, command })
    }

    fn outputs(&self) -> BTreeMap<String, String> {
        let text = std::fs::read_to_string(self.dir.path().join("file_commands/output"))
            .unwrap_or_default();
        parse_outputs(&text)
    }

    /// Both streams, as the runner's log shows them.
    fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("stdout"), read("stderr"))
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn check(&self, status: ExitStatus, stack: &str) -> Result<BTreeMap<String, String>> {
        let outputs = self.outputs();
        if !status.success() || outputs.get("outcome").map(String::as_str) != Some("succeeded") {
            bail!(
                "deployment of {stack} did not succeed ({status}, outcome {:?}):\n{}",
                outputs.get("outcome"),
                self.log_tail()
            );
        }
        Ok(outputs)
    }
}

// ------------------------------------------------------------------------------------------
// Part 1 and 2: delay and calls, ours against a fixed 2 s poller.

/// One deployment as the step saw it.
struct Ours {
    stack: String,
    exited_at: f64,
}

async fn run_ours(
    bin: PathBuf,
    world: Arc<World>,
    i: u64,
    stack: String,
    template: &'static str,
) -> Result<Ours> {
    let mut step = Step::deploy(&bin, &world, 5000 + i, &stack, template, &[])?;
    let mut child = step.command.spawn().context("start the binary")?;
    let status = child.wait().await.context("wait for the binary")?;
    let exited_at = epoch_now();
    step.check(status, &stack)?;
    Ok(Ours { stack, exited_at })
}

fn is_terminal(status: &str) -> bool {
    !status.ends_with("_IN_PROGRESS")
        && (status.ends_with("_COMPLETE") || status.ends_with("_FAILED"))
}

/// CDK's strategy: create and execute the change set, then DescribeStackEvents +
/// DescribeStacks every 2 s (after each round, as CDK's activity monitor schedules itself)
/// until the root stack is terminal. Returns when it saw the terminal status.
async fn run_fixed_poller(
    cfn: aws_sdk_cloudformation::Client,
    stack: String,
    template: &'static str,
) -> Result<f64> {
    cfn.create_change_set()
        .stack_name(&stack)
        .change_set_name("bench")
        .change_set_type(ChangeSetType::Create)
        .capabilities(Capability::CapabilityIam)
        .template_body(template)
        .send()
        .await
        .context("CreateChangeSet")?;
    loop {
        let cs = cfn
            .describe_change_set()
            .stack_name(&stack)
            .change_set_name("bench")
            .send()
            .await
            .context("DescribeChangeSet")?;
        match cs.status() {
            Some(ChangeSetStatus::CreateComplete) => break,
            Some(ChangeSetStatus::Failed) => {
                bail!("change set of {stack} failed: {:?}", cs.status_reason())
            }
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    cfn.execute_change_set()
        .stack_name(&stack)
        .change_set_name("bench")
        .send()
        .await
        .context("ExecuteChangeSet")?;
    loop {
        cfn.describe_stack_events()
            .stack_name(&stack)
            .send()
            .await
            .context("DescribeStackEvents")?;
        let out = cfn
            .describe_stacks()
            .stack_name(&stack)
            .send()
            .await
            .context("DescribeStacks")?;
        let status = out
            .stacks()
            .first()
            .and_then(|s| s.stack_status())
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        if is_terminal(&status) {
            let noticed = epoch_now();
            if status != "CREATE_COMPLETE" {
                bail!("fixed poller: {stack} ended {status}");
            }
            return Ok(noticed);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn cfn_client(endpoint: &str) -> aws_sdk_cloudformation::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "bench",
        ))
        .load()
        .await;
    aws_sdk_cloudformation::Client::new(&config)
}

/// A root stack's operation as the simulator recorded it: (started, terminal) in epoch seconds.
fn root_operation(stacks: &Value, name: &str) -> Result<(f64, f64)> {
    let stack = stacks["stacks"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|s| s["name"] == name && s["parent_id"].is_null())
        })
        .ok_or_else(|| anyhow!("stack {name} not in /_sim/stacks"))?;
    let terminal = stack["terminal_events"]
        .as_array()
        .and_then(|t| t.last())
        .and_then(|t| t["real_time"].as_f64())
        .ok_or_else(|| anyhow!("stack {name} has no terminal event"))?;
    let started = stack["operations"]
        .as_array()
        .and_then(|o| o.last())
        .and_then(|o| o["started_real_time"].as_f64())
        .ok_or_else(|| anyhow!("stack {name} has no operation"))?;
    Ok((started, terminal))
}

/// DescribeStackEvents + DescribeStacks answered by a simulator, and the two separately.
fn describe_calls(stats: &Value) -> (u64, u64) {
    let n = |a: &str| stats["requests"][a].as_u64().unwrap_or(0);
    (n("DescribeStackEvents"), n("DescribeStacks"))
}

struct Side {
    delays: Vec<f64>,
    events_calls: u64,
    stacks_calls: u64,
    monitored_seconds: f64,
}

impl Side {
    fn calls(&self) -> u64 {
        self.events_calls + self.stacks_calls
    }
    fn per_minute(&self) -> f64 {
        self.calls() as f64 / (self.monitored_seconds / 60.0)
    }
    fn sorted(&self) -> Vec<f64> {
        let mut d = self.delays.clone();
        d.sort_by(f64::total_cmp);
        d
    }
}

async fn latency(
    bin: &Path,
    deployments: u64,
    stagger: f64,
    seed: u64,
) -> Result<(Side, Side, Vec<Timeline>)> {
    let dynamo = dynamo::DynamoServer::start(dynamo::Emulator::Moto);
    dynamo.create_table(TABLE).await;
    let scenario = latency_scenario(seed);
    // A: used only by our binaries. B: only by the fixed poller. Same scenario, same names.
    let sim_a = cfnsim::Simulator::start(&scenario, 1.0);
    let sim_b = cfnsim::Simulator::start(&scenario, 1.0);
    let world = Arc::new(World {
        dynamo: dynamo.endpoint(),
        cfn: sim_a.endpoint.clone(),
    });
    let poller_client = cfn_client(&sim_b.endpoint).await;
    eprintln!(
        "latency: {deployments} deployments, {stagger} s apart, binary {}",
        bin.display()
    );
    let began = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..deployments {
        let stack = format!("bench-{i:02}");
        let template = if i % 2 == 0 {
            WEB_TEMPLATE
        } else {
            WORKER_TEMPLATE
        };
        let (bin, world, cfn) = (bin.to_path_buf(), world.clone(), poller_client.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(stagger * i as f64)).await;
            let ours = tokio::spawn(run_ours(bin, world, i, stack.clone(), template));
            let fixed = run_fixed_poller(cfn, stack.clone(), template).await;
            let ours = ours.await.context("our deployment's task")?;
            eprintln!(
                "  {stack}: done after {:.0} s",
                began.elapsed().as_secs_f64()
            );
            Ok::<_, anyhow::Error>((ours?, fixed?))
        }));
    }
    let mut runs = Vec::new();
    for task in tasks {
        runs.push(task.await.context("deployment task")??);
    }
    let (stacks_a, stacks_b) = (sim_a.admin_get("stacks"), sim_b.admin_get("stacks"));
    let (stats_a, stats_b) = (sim_a.admin_get("stats"), sim_b.admin_get("stats"));
    let mut ours = Side {
        delays: Vec::new(),
        events_calls: 0,
        stacks_calls: 0,
        monitored_seconds: 0.0,
    };
    let mut fixed = Side {
        delays: Vec::new(),
        events_calls: 0,
        stacks_calls: 0,
        monitored_seconds: 0.0,
    };
    println!(
        "\n| stack | shape | operation, ours | delay, ours | operation, fixed 2 s | delay, fixed 2 s |"
    );
    println!("|---|---|---|---|---|---|");
    for (i, (o, noticed)) in runs.iter().enumerate() {
        let (start_a, end_a) = root_operation(&stacks_a, &o.stack)?;
        let (start_b, end_b) = root_operation(&stacks_b, &o.stack)?;
        let (d_ours, d_fixed) = (o.exited_at - end_a, noticed - end_b);
        ours.delays.push(d_ours);
        ours.monitored_seconds += end_a - start_a;
        fixed.delays.push(d_fixed);
        fixed.monitored_seconds += end_b - start_b;
        println!(
            "| {} | {} | {:.0} s | {d_ours:.2} s | {:.0} s | {d_fixed:.2} s |",
            o.stack,
            if i % 2 == 0 {
                "web (ALB last)"
            } else {
                "worker (NAT last)"
            },
            end_a - start_a,
            end_b - start_b
        );
    }
    (ours.events_calls, ours.stacks_calls) = describe_calls(&stats_a);
    (fixed.events_calls, fixed.stacks_calls) = describe_calls(&stats_b);
    // Read after the counts: what our binaries followed, for the replay.
    let client_a = cfn_client(&sim_a.endpoint).await;
    let mut timelines = Vec::new();
    for (o, _) in &runs {
        timelines.push(Timeline::read(&client_a, &o.stack).await?);
    }
    eprintln!("latency: done in {:.0} s", began.elapsed().as_secs_f64());
    Ok((ours, fixed, timelines))
}

// ------------------------------------------------------------------------------------------
// Replay: the same deployments' events against polling policies, without waiting for them.
// Validated by replaying the binary's own schedule (`PollSchedule` with its defaults and the
// "end is imminent" hint) and comparing with what was measured; then candidate changes.

/// One root stack's operation: its resource events (epoch seconds, oldest first).
struct Timeline {
    /// (timestamp, logical id, resource type, status) of resource events.
    events: Vec<(f64, String, String, String)>,
    start: f64,
    end: f64,
    resources: usize,
}

impl Timeline {
    /// Reads the stack's events (timestamps are wall-clock at time scale 1).
    async fn read(cfn: &aws_sdk_cloudformation::Client, stack: &str) -> Result<Timeline> {
        let mut all = Vec::new();
        let mut token = None;
        loop {
            let out = cfn
                .describe_stack_events()
                .stack_name(stack)
                .set_next_token(token)
                .send()
                .await
                .context("DescribeStackEvents for the replay")?;
            all.extend(out.stack_events().iter().cloned());
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        all.reverse();
        let ts = |e: &aws_sdk_cloudformation::types::StackEvent| {
            e.timestamp().map(|t| t.as_secs_f64()).unwrap_or(f64::NAN)
        };
        let status = |e: &aws_sdk_cloudformation::types::StackEvent| {
            e.resource_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default()
        };
        let stack_level =
            |e: &aws_sdk_cloudformation::types::StackEvent| e.logical_resource_id() == Some(stack);
        let start = all
            .iter()
            .find(|e| stack_level(e) && status(e) == "CREATE_IN_PROGRESS")
            .map(ts)
            .ok_or_else(|| anyhow!("{stack}: no CREATE_IN_PROGRESS"))?;
        let end = all
            .iter()
            .find(|e| stack_level(e) && status(e) == "CREATE_COMPLETE")
            .map(ts)
            .ok_or_else(|| anyhow!("{stack}: no CREATE_COMPLETE"))?;
        let events: Vec<_> = all
            .iter()
            .filter(|e| !stack_level(e))
            .map(|e| {
                (
                    ts(e),
                    e.logical_resource_id().unwrap_or_default().to_string(),
                    e.resource_type().unwrap_or_default().to_string(),
                    status(e),
                )
            })
            .collect();
        let mut logical: Vec<&String> = events.iter().map(|e| &e.1).collect();
        logical.sort();
        logical.dedup();
        Ok(Timeline {
            resources: logical.len(),
            events,
            start,
            end,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Policy {
    /// The binary's schedule as it is (defaults, "end is imminent" hint).
    Current,
    /// The same with the quiet backoff capped lower.
    Cap(u64),
    /// The same, plus a hint from the type priors (src/estimate/priors.rs): while a resource
    /// runs, the next news is expected once it has run its type's 10th-percentile duration;
    /// between its 10th and 90th percentiles poll at the base rate; past the 90th, no hint
    /// (back to the backoff).
    PriorWindow,
}

impl Policy {
    fn name(self) -> String {
        match self {
            Policy::Current => "current: 2 s ×1.5 → 30 s, 1 s when the end is imminent".into(),
            Policy::Cap(s) => format!("quiet backoff capped at {s} s"),
            Policy::PriorWindow => {
                "current + type-prior window (base rate from p10 to p90 of a running resource)"
                    .into()
            }
        }
    }
}

/// The delay from the terminal event to the poll that sees it, and the number of polls
/// (one DescribeStackEvents each: the binary's monitor reads only events while following).
fn replay(tl: &Timeline, policy: Policy) -> (f64, u32) {
    use deploy_coordinator::estimate::priors::prior;
    use deploy_coordinator::stack::poll::{Hint, PollResult, PollSchedule};

    let mut settings = deploy_coordinator::stack::PollSettings::default();
    if let Policy::Cap(s) = policy {
        settings.max = Duration::from_secs(s);
    }
    let mut schedule = PollSchedule::new(settings);
    let (mut t, mut seen_until, mut polls) = (tl.start, f64::NEG_INFINITY, 0u32);
    let mut started: BTreeMap<&str, (f64, &str)> = BTreeMap::new();
    let mut done: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    loop {
        polls += 1;
        if tl.end <= t {
            return (t - tl.end, polls);
        }
        // The start event itself is news for the first poll.
        let mut news = seen_until == f64::NEG_INFINITY;
        for (ts, logical, rtype, status) in &tl.events {
            if *ts > seen_until && *ts <= t {
                news = true;
                if status == "CREATE_COMPLETE" {
                    done.insert(logical);
                } else {
                    started.entry(logical).or_insert((*ts, rtype));
                }
            }
        }
        let running: Vec<(f64, &str)> = started
            .iter()
            .filter(|(l, _)| !done.contains(*l))
            .map(|(_, v)| *v)
            .collect();
        let mut hint = Hint {
            imminent: running.is_empty() && done.len() >= tl.resources,
            expected_in: None,
        };
        if let Policy::PriorWindow = policy {
            hint.expected_in = running
                .iter()
                .filter_map(|(since, rtype)| {
                    let (median, sigma) = prior(rtype, "CREATE");
                    let (p10, p90) = (
                        median * (-1.2816 * sigma).exp(),
                        median * (1.2816 * sigma).exp(),
                    );
                    let ran = t - since;
                    if ran < p10 {
                        Some(p10 - ran)
                    } else if ran <= p90 {
                        Some(0.0)
                    } else {
                        None
                    }
                })
                .min_by(f64::total_cmp)
                .map(Duration::from_secs_f64);
        }
        let delay = schedule.next(
            if news {
                PollResult::News
            } else {
                PollResult::Quiet
            },
            hint,
        );
        seen_until = t;
        t += delay.as_secs_f64();
    }
}

/// Markdown rows: per policy, median / p95 notice delay and polls per monitored minute.
fn replay_table(timelines: &[Timeline], measured: &Side) {
    let minutes: f64 = timelines.iter().map(|t| (t.end - t.start) / 60.0).sum();
    println!();
    println!(
        "| policy (replayed on the {} deployments' events) | notice delay, median | p95 | DescribeStackEvents per monitored minute |",
        timelines.len()
    );
    println!("|---|---|---|---|");
    let m = measured.sorted();
    println!(
        "| measured above (step exit; all DescribeStackEvents + DescribeStacks of the step) | {:.2} s | {:.2} s | {:.1} |",
        median(&m),
        nearest_rank(&m, 95.0),
        measured.per_minute()
    );
    for policy in [
        Policy::Current,
        Policy::Cap(10),
        Policy::Cap(6),
        Policy::PriorWindow,
    ] {
        let mut delays = Vec::new();
        let mut polls = 0u32;
        for tl in timelines {
            let (d, n) = replay(tl, policy);
            delays.push(d);
            polls += n;
        }
        delays.sort_by(f64::total_cmp);
        println!(
            "| {} | {:.2} s | {:.2} s | {:.1} |",
            policy.name(),
            median(&delays),
            nearest_rank(&delays, 95.0),
            f64::from(polls) / minutes
        );
    }
}

// ------------------------------------------------------------------------------------------
// Part 3: peak RSS following a 500-resource stack with nested stacks.

const NESTED: usize = 5;
const PER_NESTED: usize = 100;

fn rss_template() -> String {
    let mut t = String::from("Resources:\n");
    for n in 1..=NESTED {
        t.push_str(&format!(
            "  Part{n}:\n    Type: AWS::CloudFormation::Stack\n    Properties: {{TemplateURL: https://example.com/part{n}.yaml}}\n"
        ));
    }
    t
}

fn rss_scenario() -> Value {
    let types = [
        "AWS::SQS::Queue",
        "AWS::SNS::Topic",
        "AWS::Logs::LogGroup",
        "AWS::SSM::Parameter",
        "AWS::Lambda::Permission",
    ];
    let mut nested = serde_json::Map::new();
    for n in 1..=NESTED {
        let mut resources = serde_json::Map::new();
        for r in 0..PER_NESTED {
            // Waves of 10: each resource waits for the one 10 before it.
            let mut res = json!({"Type": types[r % types.len()], "Properties": {"Index": r}});
            if r >= 10 {
                res["DependsOn"] = json!(format!("R{:03}", r - 10));
            }
            resources.insert(format!("R{r:03}"), res);
        }
        nested.insert(
            format!("Part{n}"),
            json!({"template": {"Resources": resources}, "complete_lag": [2, 5]}),
        );
    }
    json!({
        "seed": 500,
        "change_set_seconds": [2, 3],
        "defaults": {"duration": [5, 20]},
        "nested": nested
    })
}

/// Log lines of a nested resource (`R000`…) reaching CREATE_COMPLETE.
fn nested_completions(log: &str) -> usize {
    log.lines()
        .filter(|l| {
            l.split_whitespace().last() == Some("CREATE_COMPLETE")
                && l.split_whitespace().any(|t| {
                    t.len() == 4 && t.starts_with('R') && t[1..].bytes().all(|b| b.is_ascii_digit())
                })
        })
        .count()
}

/// Peak RSS of one deployment, KiB: (VmHWM polled, /usr/bin/time's maximum).
async fn rss(bin: &Path, label: &str) -> Result<(u64, Option<u64>)> {
    let dynamo = dynamo::DynamoServer::start(dynamo::Emulator::Moto);
    dynamo.create_table(TABLE).await;
    let sim = cfnsim::Simulator::start(&rss_scenario(), 10.0);
    let world = World {
        dynamo: dynamo.endpoint(),
        cfn: sim.endpoint.clone(),
    };
    let template = rss_template();

    let began = std::time::Instant::now();
    let mut step = Step::deploy(bin, &world, 9001, "rss-polled", &template, &[])?;
    let mut child = step.command.spawn().context("start the binary")?;
    let pid = child.id().ok_or_else(|| anyhow!("no pid"))?;
    let (stop, peak) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            let path = format!("/proc/{pid}/status");
            while !stop.load(Ordering::Relaxed) {
                // Gone or a zombie (no Vm* lines): keep the last reading.
                if let Some(kb) = std::fs::read_to_string(&path).ok().and_then(|text| {
                    text.lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                }) {
                    peak.fetch_max(kb, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let status = child.wait().await.context("wait for the binary")?;
    stop.store(true, Ordering::Relaxed);
    sampler
        .join()
        .map_err(|_| anyhow!("sampler thread panicked"))?;
    let outputs = step.check(status, "rss-polled")?;
    // The figure only means something if the binary followed every nested resource.
    let followed = nested_completions(&step.log());
    if followed != NESTED * PER_NESTED {
        bail!(
            "the binary logged {followed} nested CREATE_COMPLETE events, expected {}:\n{}",
            NESTED * PER_NESTED,
            step.log_tail()
        );
    }
    if let Ok(dir) = std::env::var("MONITOR_BENCH_KEEP_LOG") {
        std::fs::write(Path::new(&dir).join("rss-polled.log"), step.log()).context("keep log")?;
    }
    let progress_line = step
        .log()
        .lines()
        .rev()
        .find(|l| l.contains("progress"))
        .map(str::to_string)
        .unwrap_or_default();
    eprintln!(
        "rss ({label}): VmHWM {} KiB, {:.0} s, outcome {:?}, last progress line: {}",
        peak.load(Ordering::Relaxed),
        began.elapsed().as_secs_f64(),
        outputs.get("outcome"),
        progress_line.trim()
    );

    let time = Path::new("/usr/bin/time");
    let mut runs = 1;
    let timed = if time.exists() {
        runs += 1;
        let out = tempfile::NamedTempFile::new().context("time output")?;
        let wrapper = [
            time.display().to_string(),
            "-f".into(),
            "%M".into(),
            "-o".into(),
            out.path().display().to_string(),
        ];
        let mut step = Step::deploy(bin, &world, 9002, "rss-timed", &template, &wrapper)?;
        let status = step
            .command
            .status()
            .await
            .context("run under /usr/bin/time")?;
        step.check(status, "rss-timed")?;
        let text = std::fs::read_to_string(out.path()).context("read /usr/bin/time output")?;
        text.lines()
            .last()
            .and_then(|l| l.trim().parse::<u64>().ok())
    } else {
        None
    };
    let stacks = sim.admin_get("stacks");
    let nested = stacks["stacks"]
        .as_array()
        .map(|a| a.iter().filter(|s| !s["parent_id"].is_null()).count())
        .unwrap_or(0);
    if nested != runs * NESTED {
        bail!(
            "expected {} nested stacks in the simulator, found {nested}",
            runs * NESTED
        );
    }
    Ok((peak.load(Ordering::Relaxed), timed))
}

/// A path as the reader would type it: relative to the repository when inside it.
fn shown(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .display()
        .to_string()
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    // On Ctrl-C or SIGTERM, drop the work: every process it started is killed on drop (the
    // binaries) or sees its stdin pipe close (simulators, moto). The default action would end
    // this process without running any destructor, leaving the binaries running.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    tokio::select! {
        result = bench() => result,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        _ = term.recv() => bail!("terminated"),
    }
}

async fn bench() -> Result<()> {
    let bin = PathBuf::from(arg("--bin", "target/debug/deploy-coordinator"));
    let deployments: u64 = arg("--deployments", "12")
        .parse()
        .context("--deployments")?;
    let stagger: f64 = arg("--stagger", "4").parse().context("--stagger")?;
    let seed: u64 = arg("--seed", "4").parse().context("--seed")?;
    let mut rss_bins: Vec<String> = args_all("--rss-bin");
    // Default: the binary under test.
    if rss_bins.is_empty() {
        rss_bins.push(bin.display().to_string());
    }
    // Absolute: the step runs in its own workspace directory.
    let bin = std::fs::canonicalize(&bin)
        .with_context(|| format!("{}: build it first", bin.display()))?;
    let rss_bins = rss_bins
        .iter()
        .map(|b| std::fs::canonicalize(b).with_context(|| format!("{b}: build it first")))
        .collect::<Result<Vec<_>>>()?;

    let mut rss_rows = Vec::new();
    if !flag("--skip-rss") {
        for b in &rss_bins {
            let label = shown(b);
            let (polled, timed) = rss(b, &label).await?;
            rss_rows.push((label, polled, timed));
        }
    }
    let latency = if flag("--skip-latency") {
        None
    } else {
        Some(latency(&bin, deployments, stagger, seed).await?)
    };

    println!();
    if let Some((ours, fixed, timelines)) = &latency {
        let (o, f) = (ours.sorted(), fixed.sorted());
        println!(
            "| {} deployments (binary: `{}`) | deploy-coordinator | fixed 2 s poller (CDK) | goal |",
            o.len(),
            shown(&bin)
        );
        println!("|---|---|---|---|");
        println!(
            "| delay, terminal event → step exit (ours) / → poll that saw it (fixed): median | {:.2} s | {:.2} s | ≤ 3 s |",
            median(&o),
            median(&f)
        );
        println!(
            "| same, p95 (nearest rank) | {:.2} s | {:.2} s | |",
            nearest_rank(&o, 95.0),
            nearest_rank(&f, 95.0)
        );
        println!(
            "| same, min / max | {:.2} / {:.2} s | {:.2} / {:.2} s | |",
            o.first().copied().unwrap_or(f64::NAN),
            o.last().copied().unwrap_or(f64::NAN),
            f.first().copied().unwrap_or(f64::NAN),
            f.last().copied().unwrap_or(f64::NAN)
        );
        println!(
            "| DescribeStackEvents + DescribeStacks | {} ({} + {}) | {} ({} + {}) | |",
            ours.calls(),
            ours.events_calls,
            ours.stacks_calls,
            fixed.calls(),
            fixed.events_calls,
            fixed.stacks_calls
        );
        println!(
            "| monitored minutes (operation start → terminal event, summed) | {:.1} | {:.1} | |",
            ours.monitored_seconds / 60.0,
            fixed.monitored_seconds / 60.0
        );
        println!(
            "| calls per monitored minute | {:.1} | {:.1} | ≤ half the fixed poller's ({:.1}) |",
            ours.per_minute(),
            fixed.per_minute(),
            fixed.per_minute() / 2.0
        );
        println!(
            "| ours ÷ fixed | {:.2} | | ≤ 0.50 |",
            ours.per_minute() / fixed.per_minute()
        );
        replay_table(timelines, ours);
    }
    if !rss_rows.is_empty() {
        println!();
        println!(
            "| binary, {NESTED} nested stacks × {PER_NESTED} resources | peak RSS, VmHWM polled every 5 ms | peak RSS, `/usr/bin/time -f %M` | goal |"
        );
        println!("|---|---|---|---|");
        for (b, polled, timed) in &rss_rows {
            println!(
                "| `{b}` | {} ({polled} KiB) | {} | ≤ 25 MB |",
                mib(*polled),
                timed
                    .map(|t| format!("{} ({t} KiB)", mib(t)))
                    .unwrap_or_else(|| "n/a".into())
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=12).map(f64::from).collect();
        assert_eq!(median(&v), 6.5);
        assert_eq!(nearest_rank(&v, 95.0), 12.0);
        assert_eq!(nearest_rank(&v, 50.0), 6.0);
    }

    /// A NAT gateway alone: created from 0.5 s to 100 s, the stack complete at 101 s.
    fn nat_only() -> Timeline {
        let nat = |ts: f64, status: &str| {
            (
                ts,
                "Nat".to_string(),
                "AWS::EC2::NatGateway".to_string(),
                status.to_string(),
            )
        };
        Timeline {
            events: vec![
                nat(0.5, "CREATE_IN_PROGRESS"),
                nat(1.0, "CREATE_IN_PROGRESS"),
                nat(100.0, "CREATE_COMPLETE"),
            ],
            start: 0.0,
            end: 101.0,
            resources: 1,
        }
    }

    #[test]
    fn replay_follows_the_binary_schedule() {
        // Polls at 0, 2 (news), 4, 7, 11.5, 18.25, 28.375, 43.5625, 66.34375, 96.34375
        // (backoff 2 ×1.5 up to 30 s), then 126.34375 sees the end: 25.34 s late.
        let (delay, polls) = replay(&nat_only(), Policy::Current);
        assert!((delay - 25.34375).abs() < 1e-6, "{delay}");
        assert_eq!(polls, 11);
        // A 6 s cap notices within 6 s, with more polls.
        let (delay, more) = replay(&nat_only(), Policy::Cap(6));
        assert!(delay <= 6.0, "{delay}");
        assert!(more > polls);
    }

    #[test]
    fn the_prior_window_polls_fast_only_when_the_nat_can_finish() {
        // NAT prior: median 105 s, σ 0.15 → p10 86.6 s: the backoff is cut at 86.6 s, then
        // base-rate polls until it completes.
        let (delay, polls) = replay(&nat_only(), Policy::PriorWindow);
        assert!(delay <= 2.0, "{delay}");
        assert!(polls <= 11 + 8, "{polls}");
    }

    #[test]
    fn outputs_are_read_like_the_runner() {
        let o = parse_outputs("outcome=succeeded\nstack-outputs<<EOF\n{\"a\":\n1}\nEOF\nx=a=b\n");
        assert_eq!(o["outcome"], "succeeded");
        assert_eq!(o["stack-outputs"], "{\"a\":\n1}");
        assert_eq!(o["x"], "a=b");
    }
}
