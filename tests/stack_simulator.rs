//! The stack module end to end: deploy, monitor, guard and reconstruction through the real
//! `aws_sdk_cloudformation` client against the CloudFormation simulator (simulator/cfnsim.py),
//! which plays deployments over time with per-resource events, rollbacks, nested stacks,
//! throttling and faults. Each test starts its own simulator on a free port and stops it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use deploy_coordinator::config::{StackParameter, Template};
use deploy_coordinator::stack::Baseline;
use deploy_coordinator::stack::{
    ChangeSetSource, DeployRequest, ErrorKind, GuardError, MonitorEvent, MonitorSettings, Outcome,
    PollSettings, StackClient, StackError, StackResult, deploy, monitor, reconstruct_since,
    wait_until_settled,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

mod support;
use support::cfnsim::Simulator;

/// The shared simulator harness (tests/support/cfnsim.rs) plus what these tests ask of it.
struct Sim {
    inner: Simulator,
    endpoint: String,
}

impl Sim {
    fn start(scenario: &Value, time_scale: f64) -> Result<Self> {
        let inner = Simulator::start(scenario, time_scale);
        let endpoint = inner.endpoint.clone();
        Ok(Sim { inner, endpoint })
    }

    async fn client_with(&self, retry: RetryConfig) -> StackClient {
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .retry_config(retry)
            .load()
            .await;
        StackClient::from_conf(&conf)
    }

    /// The client as the action builds it (the SDK's standard retries).
    async fn client(&self) -> StackClient {
        self.client_with(RetryConfig::standard()).await
    }

    async fn get(&self, path: &str) -> Result<Value> {
        Ok(self.inner.get(path).await)
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        Ok(self.inner.post(path, Some(&body)).await)
    }

    /// The wall-clock time (epoch seconds) at which the stack's last terminal event was written.
    async fn terminal_real_time(&self, stack: &str) -> Result<f64> {
        let stacks = self.get("stacks").await?;
        let entry = stacks["stacks"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["name"] == stack))
            .with_context(|| format!("no stack {stack} in {stacks}"))?;
        entry["terminal_events"]
            .as_array()
            .and_then(|t| t.last())
            .and_then(|t| t["real_time"].as_f64())
            .with_context(|| format!("no terminal event: {entry}"))
    }
}

/// Fast polling: the simulator plays minutes in seconds.
fn fast() -> MonitorSettings {
    MonitorSettings {
        poll: PollSettings {
            base: Duration::from_millis(200),
            max: Duration::from_secs(1),
            max_throttled: Duration::from_secs(2),
            growth: 1.5,
            imminent: Duration::from_millis(100),
        },
        restart_budget: 5,
        restart_window: Duration::from_secs(300),
        restart_backoff: Duration::from_millis(50),
    }
}

const TEMPLATE: &str = r#"
Parameters:
  Env:
    Type: String
    Default: test
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Topic:
    Type: AWS::SNS::Topic
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      Environment:
        Variables:
          QUEUE: !Ref Queue
          TOPIC: !GetAtt Topic.TopicName
Outputs:
  QueueUrl:
    Value: !Ref Queue
"#;

const NESTED_PARENT: &str = r#"
Resources:
  Network:
    Type: AWS::CloudFormation::Stack
    Properties:
      TemplateURL: https://s3.amazonaws.com/bucket/network.yaml
  App:
    Type: AWS::Lambda::Function
    Properties:
      Vpc: !GetAtt Network.Outputs.VpcId
"#;

fn nested_child(extra: Value) -> Value {
    let mut child = json!({
        "template": {
            "Resources": {
                "Vpc": {"Type": "AWS::EC2::VPC"},
                "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}}}
            },
            "Outputs": {"VpcId": {"Value": {"Ref": "Vpc"}}}
        },
        "complete_lag": 20
    });
    if let (Some(c), Some(e)) = (child.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    child
}

fn scenario(extra: Value) -> Value {
    let mut s = json!({
        "seed": 3,
        "change_set_seconds": 1,
        "stack_overhead": 1,
        "initiated_delay": [0.2, 0.5],
        "defaults": {"duration": [3, 6]}
    });
    if let (Some(base), Some(extra)) = (s.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    s
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Result<Self> {
        Ok(Self {
            dir: tempfile::tempdir()?,
        })
    }

    fn request(&self, stack: &str, template: &str, id: &str) -> Result<DeployRequest> {
        let path = self.dir.path().join(format!("{id}.yaml"));
        std::fs::write(&path, template)?;
        Ok(DeployRequest {
            stack_name: stack.into(),
            source: ChangeSetSource::Template(Template::File(path)),
            // Only templates that declare it take the parameter (CloudFormation refuses others).
            parameters: if template.contains("Env:") {
                vec![StackParameter::value("Env", "test")]
            } else {
                Vec::new()
            },
            capabilities: vec!["CAPABILITY_IAM".into()],
            tags: vec![("team".into(), "platform".into())],
            role_arn: None,
            fail_on_empty_changeset: false,
            correlation_id: id.into(),
            deploy_timeout: Duration::from_secs(120),
            expected_duration: None,
        })
    }
}

/// Collects what the monitor reports, with the wall-clock time it was reported.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(f64, MonitorEvent)>>>);

impl Seen {
    fn sink(&self) -> impl FnMut(MonitorEvent) + Send + use<> {
        let events = self.0.clone();
        move |e| {
            if let Ok(mut v) = events.lock() {
                v.push((now_epoch(), e));
            }
        }
    }

    fn all(&self) -> Vec<MonitorEvent> {
        self.0
            .lock()
            .map(|v| v.iter().map(|(_, e)| e.clone()).collect())
            .unwrap_or_default()
    }

    fn finished_at(&self) -> Option<f64> {
        let v = self.0.lock().ok()?;
        v.iter()
            .find(|(_, e)| matches!(e, MonitorEvent::Finished(_)))
            .map(|(t, _)| *t)
    }

    fn progress(&self) -> Vec<(u32, u32)> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                MonitorEvent::Progress { done, total } => Some((done, total)),
                _ => None,
            })
            .collect()
    }
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

async fn run_deploy(
    client: &StackClient,
    req: &DeployRequest,
    seen: &Seen,
) -> Result<StackResult, StackError> {
    deploy(
        client,
        req,
        &fast(),
        &CancellationToken::new(),
        &mut seen.sink(),
    )
    .await
}

#[tokio::test]
async fn deploy_succeeds_then_an_identical_deploy_has_no_changes() -> Result<()> {
    let sim = Sim::start(&scenario(json!({})), 10.0)?;
    let client = sim.client().await;
    let fx = Fixture::new()?;
    let seen = Seen::default();
    let result = run_deploy(
        &client,
        &fx.request("app", TEMPLATE, "20260114-120000-abc1234")?,
        &seen,
    )
    .await?;
    let finished_at = seen.finished_at().context("no Finished event")?;

    assert_eq!(result.outcome, Outcome::Succeeded);
    assert!(!result.fail_step);
    assert_eq!(result.stack_status.as_deref(), Some("CREATE_COMPLETE"));
    assert!(
        result
            .stack_id
            .as_deref()
            .is_some_and(|id| id.starts_with("arn:aws:cloudformation:"))
    );
    assert!(
        result
            .outputs
            .iter()
            .any(|(k, v)| k == "QueueUrl" && !v.is_empty()),
        "{:?}",
        result.outputs
    );
    assert_eq!(result.progress, (3, 3));
    assert_eq!(result.failure_reason, None);
    let mut paths: Vec<_> = result.resources.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["Fn", "Queue", "Topic"]);
    // Scenario durations are 3-6 simulated seconds; timestamps are simulated.
    for r in &result.resources {
        let d = r
            .duration()
            .with_context(|| format!("{} has no duration", r.path))?;
        assert!(
            d >= Duration::from_secs(3) && d <= Duration::from_secs(8),
            "{}: {d:?}",
            r.path
        );
    }
    assert!(
        result.duration >= Duration::from_secs(6),
        "{:?}",
        result.duration
    );

    let events = seen.all();
    let Some(MonitorEvent::ChangeSetCreated {
        changes: 3,
        resources,
        ..
    }) = events.first()
    else {
        panic!("{events:?}");
    };
    // DescribeChangeSet's resource changes, as CloudFormation words them: a new stack adds all.
    let mut added: Vec<(&str, &str, &str)> = resources
        .iter()
        .map(|c| {
            (
                c.action.as_str(),
                c.logical_id.as_str(),
                c.resource_type.as_str(),
            )
        })
        .collect();
    added.sort_unstable();
    assert_eq!(
        added,
        [
            ("Add", "Fn", "AWS::Lambda::Function"),
            ("Add", "Queue", "AWS::SQS::Queue"),
            ("Add", "Topic", "AWS::SNS::Topic")
        ]
    );
    assert!(
        matches!(events.get(1), Some(MonitorEvent::Started { status, .. }) if status == "CREATE_IN_PROGRESS")
    );
    assert_eq!(
        events.last(),
        Some(&MonitorEvent::Finished(Outcome::Succeeded))
    );
    let progress = seen.progress();
    assert_eq!(progress.first(), Some(&(0, 3)));
    assert!(
        progress
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[1].0 <= w[1].1),
        "{progress:?}"
    );
    let lag = finished_at - sim.terminal_real_time("app").await?;
    assert!(
        (0.0..1.5).contains(&lag),
        "noticed the end {lag:.2}s after it happened"
    );

    // The same template again: nothing to change.
    let seen = Seen::default();
    let req = fx.request("app", TEMPLATE, "20260114-130000-abc1234")?;
    let again = run_deploy(&client, &req, &seen).await?;
    assert_eq!(again.outcome, Outcome::NoChanges);
    assert!(!again.fail_step);
    assert_eq!(again.stack_status.as_deref(), Some("CREATE_COMPLETE"));
    assert_eq!(again.outputs, result.outputs);
    let leftover = client
        .describe_change_set("app", "dc-20260114-130000-abc1234")
        .await;
    assert!(
        leftover.is_err_and(|e| e.kind == ErrorKind::NotFound),
        "the empty change set is deleted"
    );

    let strict = DeployRequest {
        fail_on_empty_changeset: true,
        ..fx.request("app", TEMPLATE, "strict")?
    };
    let strict = run_deploy(&client, &strict, &Seen::default()).await?;
    assert_eq!(strict.outcome, Outcome::NoChanges);
    assert!(strict.fail_step, "fail-on-empty-changeset fails the step");
    Ok(())
}

#[tokio::test]
async fn failed_create_names_the_root_cause_and_is_replaced_by_the_next_deploy() -> Result<()> {
    let reason = "Resource handler returned message: \"Role arn:aws:iam::1:role/x is invalid\"";
    let sim = Sim::start(
        &scenario(json!({"resources": {"Fn": {"fail": reason}}})),
        10.0,
    )?;
    let client = sim.client().await;
    let fx = Fixture::new()?;
    let seen = Seen::default();
    let result = run_deploy(&client, &fx.request("app", TEMPLATE, "first")?, &seen).await?;
    assert_eq!(result.outcome, Outcome::Failed);
    assert!(result.fail_step);
    assert_eq!(result.stack_status.as_deref(), Some("ROLLBACK_COMPLETE"));
    assert_eq!(result.failed_resource.as_deref(), Some("Fn"));
    assert_eq!(result.failure_reason.as_deref(), Some(reason));
    assert!(seen.all().contains(&MonitorEvent::RootCause {
        resource: Some("Fn".into()),
        reason: reason.into()
    }));
    assert_eq!(
        result.progress.0,
        0,
        "everything created was deleted again: {:?}",
        seen.progress()
    );

    // Fixed: the stack left in ROLLBACK_COMPLETE is deleted and created again.
    sim.post("scenario", scenario(json!({}))).await?;
    let seen = Seen::default();
    let result = run_deploy(&client, &fx.request("app", TEMPLATE, "second")?, &seen).await?;
    assert!(
        seen.all()
            .iter()
            .any(|e| matches!(e, MonitorEvent::DeletingFailedStack { .. }))
    );
    assert_eq!(result.outcome, Outcome::Succeeded);
    assert_eq!(result.stack_status.as_deref(), Some("CREATE_COMPLETE"));
    Ok(())
}

#[tokio::test]
async fn failed_update_rolls_back_and_progress_counts_down() -> Result<()> {
    let sim = Sim::start(&scenario(json!({})), 10.0)?;
    let client = sim.client().await;
    let fx = Fixture::new()?;
    run_deploy(
        &client,
        &fx.request("app", TEMPLATE, "create")?,
        &Seen::default(),
    )
    .await?;
    sim.post(
        "scenario",
        scenario(json!({"empty_change_set": false, "resources": {"Fn": {"fail_update": "Memory size too large", "update_duration": 8}}})),
    )
    .await?;
    let seen = Seen::default();
    let result = run_deploy(&client, &fx.request("app", TEMPLATE, "update")?, &seen).await?;
    // Every resource modified in place, as the change set said before it ran.
    let changes = seen.all().into_iter().find_map(|e| match e {
        MonitorEvent::ChangeSetCreated { resources, .. } => Some(resources),
        _ => None,
    });
    let changes = changes.expect("a change set");
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(
        changes.iter().all(|c| c.action == "Modify"
            && c.replacement.as_deref() == Some("False")
            && c.scope == ["Properties"]),
        "{changes:?}"
    );
    assert_eq!(result.outcome, Outcome::RolledBack);
    assert_eq!(
        result.stack_status.as_deref(),
        Some("UPDATE_ROLLBACK_COMPLETE")
    );
    assert_eq!(result.failed_resource.as_deref(), Some("Fn"));
    assert_eq!(
        result.failure_reason.as_deref(),
        Some("Memory size too large")
    );
    let progress = seen.progress();
    let peak = progress.iter().map(|p| p.0).max().unwrap_or(0);
    assert!(peak >= 1, "{progress:?}");
    assert!(
        result.progress.0 < peak,
        "rolled-back resources are no longer counted: {progress:?}"
    );
    assert!(
        progress
            .iter()
            .all(|(done, total)| done <= total && *total == 3),
        "{progress:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_failure_inside_a_nested_stack_is_the_root_cause() -> Result<()> {
    let child = nested_child(json!({"resources": {"Subnet": {"fail": "Subnet quota exceeded"}}}));
    let sim = Sim::start(&scenario(json!({"nested": {"Network": child}})), 10.0)?;
    let client = sim.client().await;
    let fx = Fixture::new()?;
    let result = run_deploy(
        &client,
        &fx.request("app", NESTED_PARENT, "nested-fail")?,
        &Seen::default(),
    )
    .await?;
    assert_eq!(result.outcome, Outcome::Failed);
    assert_eq!(result.failed_resource.as_deref(), Some("Network/Subnet"));
    assert_eq!(
        result.failure_reason.as_deref(),
        Some("Subnet quota exceeded")
    );
    Ok(())
}

#[tokio::test]
async fn a_nested_stack_completing_first_does_not_end_monitoring() -> Result<()> {
    let sim = Sim::start(
        &scenario(json!({"nested": {"Network": nested_child(json!({}))}})),
        10.0,
    )?;
    let client = sim.client().await;
    let fx = Fixture::new()?;
    let seen = Seen::default();
    let result = run_deploy(
        &client,
        &fx.request("app", NESTED_PARENT, "nested-ok")?,
        &seen,
    )
    .await?;
    assert_eq!(result.outcome, Outcome::Succeeded);
    assert_eq!(result.stack_status.as_deref(), Some("CREATE_COMPLETE"));
    let events = seen.all();
    let child_done = events.iter().position(|e| {
        matches!(e, MonitorEvent::Resource(ev) if ev.stack_name.starts_with("app-Network-")
            && ev.logical_id == ev.stack_name && ev.status == "CREATE_COMPLETE")
    });
    let finished = events
        .iter()
        .position(|e| matches!(e, MonitorEvent::Finished(_)));
    assert!(
        child_done.is_some() && child_done < finished,
        "the nested stack's COMPLETE came first: {events:?}"
    );
    let lag = seen.finished_at().context("no end")? - sim.terminal_real_time("app").await?;
    assert!(
        lag >= 0.0,
        "ended {lag:.2}s BEFORE the root stack's terminal event"
    );
    let paths: Vec<_> = result.resources.iter().map(|r| r.path.as_str()).collect();
    assert!(
        paths.contains(&"Network/Subnet") && paths.contains(&"App"),
        "{paths:?}"
    );
    Ok(())
}

#[tokio::test]
async fn events_sharing_timestamps_across_pages_are_neither_lost_nor_repeated() -> Result<()> {
    let resources: serde_json::Map<String, Value> = (0..12)
        .map(|i| (format!("Q{i:02}"), json!({"Type": "AWS::SQS::Queue"})))
        .collect();
    let template = json!({"Resources": resources}).to_string();
    let group: Vec<String> = (0..12)
        .step_by(2)
        .map(|i| format!("Q{i:02}"))
        .chain(["app".to_string()])
        .collect();
    let sim = Sim::start(
        &scenario(
            json!({"timestamp_precision_ms": 1000, "events_page_size": 4, "same_timestamp_groups": [group]}),
        ),
        10.0,
    )?;
    let client = sim.client().await;
    let fx = Fixture::new()?;
    let seen = Seen::default();
    let result = run_deploy(&client, &fx.request("app", &template, "same-ts")?, &seen).await?;
    assert_eq!(result.outcome, Outcome::Succeeded);
    assert_eq!(result.progress, (12, 12));
    assert!(
        result
            .resources
            .iter()
            .all(|r| r.status == "CREATE_COMPLETE"),
        "{:?}",
        result.resources
    );
    // Every event of the operation reported exactly once.
    let reported: Vec<String> = seen
        .all()
        .into_iter()
        .filter_map(|e| match e {
            // The start event comes as a Resource event too (after `Started`).
            MonitorEvent::Resource(ev) => Some(ev.event_id),
            _ => None,
        })
        .collect();
    let mut unique = reported.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), reported.len(), "no event twice");
    // 1 start + 3 per resource + the stack's COMPLETE.
    assert_eq!(reported.len(), 1 + 12 * 3 + 1);
    Ok(())
}

#[tokio::test]
async fn a_throttling_storm_slows_polling_but_the_deploy_completes() -> Result<()> {
    let sim = Sim::start(
        &scenario(
            // A monitor that reads only when the end can come makes few calls: the burst
            // makes sure the storm meets it.
            json!({"throttle": {"rate": 0.6, "seed": 5, "actions": ["DescribeStackEvents", "DescribeStacks"],
                "bursts": [{"after": 1, "count": 3, "actions": ["DescribeStackEvents"]}]}}),
        ),
        10.0,
    )?;
    let client = sim.client().await;
    let fx = Fixture::new()?;
    let seen = Seen::default();
    let result = run_deploy(&client, &fx.request("app", TEMPLATE, "storm")?, &seen).await?;
    assert_eq!(result.outcome, Outcome::Succeeded);
    let stats = sim.get("stats").await?;
    assert!(
        stats["throttled"]["DescribeStackEvents"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{stats}"
    );
    assert!(
        !seen
            .all()
            .iter()
            .any(|e| matches!(e, MonitorEvent::Interrupted { .. })),
        "throttling is no failure"
    );
    Ok(())
}

#[tokio::test]
async fn deploy_timeout_ends_following_but_not_the_operation() -> Result<()> {
    let sim = Sim::start(
        &scenario(json!({"resources": {"Fn": {"duration": 900}}})),
        10.0,
    )?;
    let client = sim.client().await;
    let fx = Fixture::new()?;
    let req = DeployRequest {
        deploy_timeout: Duration::from_secs(3),
        ..fx.request("app", TEMPLATE, "slow")?
    };
    let began = Instant::now();
    let result = run_deploy(&client, &req, &Seen::default()).await?;
    assert!(
        began.elapsed() < Duration::from_secs(6),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(result.outcome, Outcome::TimedOut);
    assert!(result.fail_step);
    assert_eq!(result.stack_status.as_deref(), Some("CREATE_IN_PROGRESS"));
    assert!(
        result
            .failure_reason
            .as_deref()
            .is_some_and(|r| r.contains("deploy-timeout"))
    );
    let now = client.describe_stack("app").await?.context("stack gone")?;
    assert_eq!(now.status, "CREATE_IN_PROGRESS", "the operation goes on");
    Ok(())
}

#[tokio::test]
async fn cancellation_stops_following_and_leaves_the_operation_running() -> Result<()> {
    let sim = Sim::start(
        &scenario(json!({"resources": {"Fn": {"duration": 900}}})),
        10.0,
    )?;
    let client = sim.client().await;
    let fx = Fixture::new()?;
    let req = fx.request("app", TEMPLATE, "cancel")?;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        trigger.cancel();
    });
    let seen = Seen::default();
    let result = deploy(&client, &req, &fast(), &cancel, &mut seen.sink()).await?;
    assert_eq!(result.outcome, Outcome::Cancelled);
    assert_eq!(
        seen.all().last(),
        Some(&MonitorEvent::Finished(Outcome::Cancelled))
    );
    let now = client.describe_stack("app").await?.context("stack gone")?;
    assert_eq!(now.status, "CREATE_IN_PROGRESS");
    Ok(())
}

#[tokio::test]
async fn failures_restart_the_monitor_within_its_budget_and_beyond_it_the_state_is_unknown()
-> Result<()> {
    // Each failed poll is one SDK call (no SDK retries here): the budget counts polls.
    let sim = Sim::start(&scenario(json!({"defaults": {"duration": [20, 30]}})), 10.0)?;
    let client = sim
        .client_with(RetryConfig::standard().with_max_attempts(1))
        .await;
    let fx = Fixture::new()?;
    // Three failures while following: restarts, then it resumes and completes.
    // `after` counts matching requests from now: the baseline read and two polls succeed.
    sim.post(
        "fault",
        json!({"kind": "error", "count": 3, "action": "DescribeStackEvents", "after": 3}),
    )
    .await?;
    let seen = Seen::default();
    let result = run_deploy(&client, &fx.request("app", TEMPLATE, "restarts")?, &seen).await?;
    assert_eq!(result.outcome, Outcome::Succeeded);
    let events = seen.all();
    let restarts: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            MonitorEvent::Interrupted {
                restart, budget: 5, ..
            } => Some(*restart),
            _ => None,
        })
        .collect();
    assert_eq!(restarts, [1, 2, 3], "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, MonitorEvent::Resumed { .. }))
    );

    // Failing for good: five restarts, then an error saying the state is unknown.
    sim.post(
        "scenario",
        scenario(json!({"empty_change_set": false, "defaults": {"duration": [20, 30]}})),
    )
    .await?;
    sim.post(
        "fault",
        json!({"kind": "error", "count": 1000, "action": "DescribeStackEvents", "after": 3}),
    )
    .await?;
    let seen = Seen::default();
    let err = run_deploy(&client, &fx.request("app", TEMPLATE, "unknown")?, &seen).await;
    let Err(err @ StackError::StateUnknown { .. }) = err else {
        bail!("expected StateUnknown, got {err:?}")
    };
    assert!(err.to_string().contains("state is unknown"), "{err}");
    let restarts = seen
        .all()
        .iter()
        .filter(|e| matches!(e, MonitorEvent::Interrupted { .. }))
        .count();
    assert_eq!(restarts, 5);
    Ok(())
}

#[tokio::test]
async fn monitor_waits_for_the_next_operation_and_follows_it() -> Result<()> {
    let sim = Sim::start(&scenario(json!({})), 10.0)?;
    let client = sim.client().await;
    let fx = Fixture::new()?;
    run_deploy(
        &client,
        &fx.request("app", TEMPLATE, "create")?,
        &Seen::default(),
    )
    .await?;

    // Nothing starts: timed out after start-timeout.
    let began = Instant::now();
    let cancel = CancellationToken::new();
    let idle = monitor(
        &client,
        "app",
        Duration::from_secs(1),
        Duration::from_secs(60),
        &fast(),
        &cancel,
        &mut |_| {},
    )
    .await?;
    assert_eq!(idle.outcome, Outcome::TimedOut);
    assert!(
        idle.failure_reason
            .as_deref()
            .is_some_and(|r| r.contains("start-timeout")),
        "{idle:?}"
    );
    assert!(began.elapsed() < Duration::from_secs(4));

    // Someone else's pipeline starts an update while we wait.
    let seen = Seen::default();
    let mut sink = seen.sink();
    let settings = fast();
    let waiting = monitor(
        &client,
        "app",
        Duration::from_secs(30),
        Duration::from_secs(60),
        &settings,
        &cancel,
        &mut sink,
    );
    let (result, started) = tokio::join!(waiting, async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        sim.post("start?stack=app&operation=update&touch=Queue,Fn", json!({}))
            .await
    });
    let result = result?;
    let started = started?;
    assert_eq!(result.outcome, Outcome::Succeeded);
    assert_eq!(result.stack_status.as_deref(), Some("UPDATE_COMPLETE"));
    assert_eq!(
        result.operation_id.as_deref(),
        started["OperationId"].as_str()
    );
    assert!(matches!(
        seen.all().first(),
        Some(MonitorEvent::Waiting { .. })
    ));

    // An operation already running is followed from its start.
    let started = sim
        .post("start?stack=app&operation=update&touch=Topic", json!({}))
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let result = monitor(
        &client,
        "app",
        Duration::from_secs(5),
        Duration::from_secs(60),
        &fast(),
        &cancel,
        &mut |_| {},
    )
    .await?;
    assert_eq!(result.outcome, Outcome::Succeeded);
    assert_eq!(
        result.operation_id.as_deref(),
        started["OperationId"].as_str()
    );
    assert_eq!(
        result
            .resources
            .iter()
            .map(|r| r.path.as_str())
            .collect::<Vec<_>>(),
        ["Topic"]
    );
    Ok(())
}

#[tokio::test]
async fn guard_waits_while_someone_else_deploys() -> Result<()> {
    let sim = Sim::start(&scenario(json!({})), 10.0)?;
    let client = sim.client().await;
    let fx = Fixture::new()?;
    run_deploy(
        &client,
        &fx.request("app", TEMPLATE, "create")?,
        &Seen::default(),
    )
    .await?;
    let cancel = CancellationToken::new();
    let poll = fast().poll;

    let settled = wait_until_settled(
        &client,
        "app",
        Duration::from_secs(5),
        poll,
        &cancel,
        |_| {},
    )
    .await?;
    assert_eq!(settled.status.as_deref(), Some("CREATE_COMPLETE"));
    let missing = wait_until_settled(
        &client,
        "nope",
        Duration::from_secs(5),
        poll,
        &cancel,
        |_| {},
    )
    .await?;
    assert_eq!(missing.status, None);

    sim.post("start?stack=app&operation=update", json!({}))
        .await?;
    let mut waits = Vec::new();
    let settled = wait_until_settled(
        &client,
        "app",
        Duration::from_secs(60),
        poll,
        &cancel,
        |w| waits.push(w.status.clone()),
    )
    .await?;
    assert_eq!(settled.status.as_deref(), Some("UPDATE_COMPLETE"));
    assert!(settled.waited > Duration::from_millis(500));
    assert_eq!(
        waits.first().map(String::as_str),
        Some("UPDATE_IN_PROGRESS")
    );

    sim.post("scenario", scenario(json!({"defaults": {"duration": 900}})))
        .await?;
    sim.post("start?stack=app&operation=update", json!({}))
        .await?;
    let err = wait_until_settled(
        &client,
        "app",
        Duration::from_secs(1),
        poll,
        &cancel,
        |_| {},
    )
    .await;
    assert!(matches!(err, Err(GuardError::Timeout { .. })), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn lock_mode_reconstructs_what_ran_since_the_lock_was_taken() -> Result<()> {
    let sim = Sim::start(&scenario(json!({})), 10.0)?;
    let client = sim.client().await;
    let fx = Fixture::new()?;
    run_deploy(
        &client,
        &fx.request("app", TEMPLATE, "before")?,
        &Seen::default(),
    )
    .await?;
    let baseline = Baseline::decode(&client.baseline("app").await?.encode())?;
    let cancel = CancellationToken::new();
    let poll = fast().poll;

    // The job's later steps deploy twice, the second time with a failure.
    sim.post("start?stack=app&operation=update&touch=Queue", json!({}))
        .await?;
    wait_until_settled(
        &client,
        "app",
        Duration::from_secs(60),
        poll,
        &cancel,
        |_| {},
    )
    .await?;
    sim.post(
        "scenario",
        scenario(json!({"resources": {"Topic": {"fail_update": "Topic policy invalid"}}})),
    )
    .await?;
    sim.post(
        "start?stack=app&operation=update&touch=Topic,Queue",
        json!({}),
    )
    .await?;
    wait_until_settled(
        &client,
        "app",
        Duration::from_secs(60),
        poll,
        &cancel,
        |_| {},
    )
    .await?;

    let r = reconstruct_since(&client, "app", &baseline).await?;
    assert!(r.running.is_none());
    assert_eq!(r.stack_status.as_deref(), Some("UPDATE_ROLLBACK_COMPLETE"));
    let outcomes: Vec<_> = r.operations.iter().map(|o| o.outcome).collect();
    assert_eq!(outcomes, [Outcome::Succeeded, Outcome::RolledBack]);
    assert_eq!(r.operations[1].failed_resource.as_deref(), Some("Topic"));
    assert_eq!(
        r.operations[1].failure_reason.as_deref(),
        Some("Topic policy invalid")
    );
    assert!(
        r.operations
            .iter()
            .all(|o| o.duration > Duration::ZERO && o.started_at.is_some())
    );
    assert!(r.operations[0].outputs.is_empty() && !r.operations[1].outputs.is_empty());

    // Nothing since a fresh baseline.
    let now = client.baseline("app").await?;
    assert!(
        reconstruct_since(&client, "app", &now)
            .await?
            .operations
            .is_empty()
    );
    Ok(())
}

/// Figures for the report with the shipped schedule (2 s, ×1.5 to 30 s): how late the end is
/// noticed and how many calls a monitored minute costs. `cargo test --test stack_simulator --
/// --ignored --nocapture`.
#[tokio::test]
#[ignore = "takes about a minute; prints figures"]
async fn measure_the_default_schedule() -> Result<()> {
    let resources: serde_json::Map<String, Value> = (0..20)
        .map(|i| (format!("R{i:02}"), json!({"Type": "AWS::SQS::Queue"})))
        .collect();
    let template = json!({"Resources": resources}).to_string();
    let sim = Sim::start(
        &scenario(json!({"defaults": {"duration": [30, 400]}})),
        10.0,
    )?;
    let client = sim.client().await;
    let fx = Fixture::new()?;
    let seen = Seen::default();
    let began = Instant::now();
    let req = fx.request("app", &template, "measure")?;
    let result = deploy(
        &client,
        &req,
        &MonitorSettings::default(),
        &CancellationToken::new(),
        &mut seen.sink(),
    )
    .await?;
    let minutes = began.elapsed().as_secs_f64() / 60.0;
    let stats = sim.get("stats").await?;
    let calls = stats["total"].as_f64().unwrap_or(0.0);
    let events = stats["requests"]["DescribeStackEvents"]
        .as_f64()
        .unwrap_or(0.0);
    let lag = seen.finished_at().context("no end")? - sim.terminal_real_time("app").await?;
    println!(
        "outcome {} in {:.1}s: end noticed {lag:.2}s late; {:.1} calls/min ({:.1} DescribeStackEvents/min; fixed 2 s poller: 30)",
        result.outcome,
        minutes * 60.0,
        calls / minutes,
        events / minutes
    );
    assert_eq!(result.outcome, Outcome::Succeeded);
    Ok(())
}
