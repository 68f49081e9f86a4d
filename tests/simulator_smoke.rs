//! The CloudFormation simulator (simulator/cfnsim.py) driven by the real
//! `aws_sdk_cloudformation::Client`: proves the simulator's XML is what the Rust SDK parses
//! (every field a deployment monitor reads), that its errors map to SDK error codes, and that
//! its throttling is retried by the SDK like real CloudFormation's.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{ChangeSetStatus, ChangeSetType, StackEvent, StackStatus};

mod support;
use support::cfnsim::Simulator;

/// The shared simulator harness (tests/support/cfnsim.rs) with a client for the SDK.
struct Sim(Simulator);

impl Sim {
    async fn client(&self) -> Client {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.0.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .load()
            .await;
        Client::new(&config)
    }

    async fn admin(&self, path: &str) -> Result<serde_json::Value> {
        Ok(self.0.get(path).await)
    }
}

const TEMPLATE: &str = r#"
AWSTemplateFormatVersion: "2010-09-09"
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
  Endpoint:
    Value: !Sub "https://${Fn}.example/${Env}"
"#;

async fn all_events(client: &Client, stack: &str) -> Result<(Vec<StackEvent>, usize)> {
    let mut events = Vec::new();
    let mut pages = 0;
    let mut token: Option<String> = None;
    loop {
        let page = client
            .describe_stack_events()
            .stack_name(stack)
            .set_next_token(token.clone())
            .send()
            .await
            .context("DescribeStackEvents")?;
        pages += 1;
        events.extend(page.stack_events().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok((events, pages));
        }
    }
}

#[tokio::test]
async fn real_sdk_parses_a_change_set_deployment_played_by_the_simulator() -> Result<()> {
    let scenario = serde_json::json!({
        "seed": 7,
        "events_page_size": 4,
        "change_set_seconds": 2,
        "defaults": {"duration": [10, 20]},
        "outputs": {"QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/q"},
    });
    let sim = Sim(Simulator::start(&scenario, 20.0));
    let client = sim.client().await;
    let stack = "smoke-stack";
    let token = "deploy-coordinator-smoke-1";

    let created = client
        .create_change_set()
        .stack_name(stack)
        .change_set_name("cs-1")
        .change_set_type(ChangeSetType::Create)
        .template_body(TEMPLATE)
        .parameters(
            aws_sdk_cloudformation::types::Parameter::builder()
                .parameter_key("Env")
                .parameter_value("prod")
                .build(),
        )
        .tags(
            aws_sdk_cloudformation::types::Tag::builder()
                .key("team")
                .value("platform")
                .build(),
        )
        .send()
        .await
        .context("CreateChangeSet")?;
    let change_set_id = created.id().context("change set id")?.to_string();
    let stack_id = created.stack_id().context("stack id")?.to_string();
    ensure!(stack_id.starts_with("arn:aws:cloudformation:us-east-1:"));

    let described = loop {
        let d = client
            .describe_change_set()
            .change_set_name(&change_set_id)
            .send()
            .await
            .context("DescribeChangeSet")?;
        match d.status() {
            Some(ChangeSetStatus::CreateComplete) => break d,
            Some(ChangeSetStatus::Failed) => bail!("change set failed: {:?}", d.status_reason()),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let mut logical: Vec<&str> = described
        .changes()
        .iter()
        .filter_map(|c| c.resource_change())
        .filter_map(|rc| rc.logical_resource_id())
        .collect();
    logical.sort_unstable();
    assert_eq!(logical, ["Fn", "Queue", "Topic"]);
    assert!(
        described
            .changes()
            .iter()
            .filter_map(|c| c.resource_change())
            .all(|rc| rc.action().map(|a| a.as_str()) == Some("Add"))
    );

    client
        .execute_change_set()
        .change_set_name(&change_set_id)
        .client_request_token(token)
        .send()
        .await
        .context("ExecuteChangeSet")?;

    let final_stack = loop {
        let out = client
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .context("DescribeStacks")?;
        let s = out.stacks().first().context("no stack")?.clone();
        match s.stack_status() {
            Some(StackStatus::CreateInProgress) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            _ => break s,
        }
    };
    assert_eq!(
        final_stack.stack_status(),
        Some(&StackStatus::CreateComplete)
    );
    assert_eq!(final_stack.stack_id(), Some(stack_id.as_str()));
    assert!(final_stack.creation_time().is_some());
    let operation_id = final_stack
        .last_operations()
        .first()
        .and_then(|op| op.operation_id())
        .context("LastOperations[0].OperationId")?
        .to_string();
    let outputs: Vec<(&str, &str)> = final_stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?, o.output_value()?)))
        .collect();
    assert!(outputs.contains(&(
        "QueueUrl",
        "https://sqs.us-east-1.amazonaws.com/123456789012/q"
    )));
    let endpoint = outputs
        .iter()
        .find(|(k, _)| *k == "Endpoint")
        .context("Endpoint output")?;
    assert!(
        endpoint.1.starts_with("https://smoke-stack-Fn-") && endpoint.1.ends_with(".example/prod"),
        "{endpoint:?}"
    );
    assert_eq!(final_stack.tags().len(), 1);
    assert_eq!(final_stack.parameters().len(), 1);

    // Every event, across pages: REVIEW, stack CREATE_IN_PROGRESS, three per resource, COMPLETE.
    let (events, pages) = all_events(&client, stack).await?;
    assert_eq!(events.len(), 3 + 3 * 3, "{events:#?}");
    assert!(
        pages >= 3,
        "page size 4 must force paging, got {pages} page(s)"
    );
    let mut ids: Vec<&str> = events.iter().filter_map(|e| e.event_id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "EventIds must be unique");
    let stamps: Vec<_> = events.iter().filter_map(|e| e.timestamp()).collect();
    assert_eq!(stamps.len(), events.len());
    assert!(
        stamps.windows(2).all(|w| w[0] >= w[1]),
        "newest first across pages"
    );
    assert!(
        stamps
            .iter()
            .any(|t| t.subsec_nanos() % 1_000_000 == 0 && t.subsec_nanos() != 0),
        "millisecond timestamps"
    );
    let newest = events.first().context("no events")?;
    assert_eq!(
        newest.resource_status().map(|s| s.as_str()),
        Some("CREATE_COMPLETE")
    );
    assert_eq!(newest.logical_resource_id(), Some(stack));
    let oldest = events.last().context("no events")?;
    assert_eq!(
        oldest.resource_status().map(|s| s.as_str()),
        Some("REVIEW_IN_PROGRESS")
    );
    for e in &events[..events.len() - 1] {
        assert_eq!(e.client_request_token(), Some(token), "{e:?}");
        assert_eq!(e.operation_id(), Some(operation_id.as_str()), "{e:?}");
        assert_eq!(e.stack_id(), Some(stack_id.as_str()));
        assert_eq!(e.stack_name(), Some(stack));
        assert!(e.resource_type().is_some());
    }
    let initiated = events
        .iter()
        .filter(|e| e.resource_status_reason() == Some("Resource creation Initiated"))
        .count();
    assert_eq!(initiated, 3);

    // The benchmark hook sees the same terminal event the SDK saw.
    let report = sim.admin("stacks").await?;
    let terminal = &report["stacks"][0]["terminal_events"][0];
    assert_eq!(terminal["status"], "CREATE_COMPLETE");
    assert!(terminal["real_time"].as_f64().is_some());
    Ok(())
}

#[tokio::test]
async fn errors_and_throttling_reach_the_sdk_as_cloudformation_would_send_them() -> Result<()> {
    // The first two DescribeStacks calls are throttled: the SDK's standard retry (3 attempts)
    // must classify `Throttling` as retryable and succeed on the third.
    let scenario = serde_json::json!({
        "throttle": {"bursts": [{"after": 0, "count": 2, "actions": ["DescribeStacks"]}]},
    });
    let sim = Sim(Simulator::start(&scenario, 50.0));
    let client = sim.client().await;

    let err = client
        .describe_stacks()
        .stack_name("missing")
        .send()
        .await
        .err()
        .context("DescribeStacks on a missing stack must fail")?;
    let service = err.into_service_error();
    assert_eq!(service.code(), Some("ValidationError"));
    assert_eq!(
        service.message(),
        Some("Stack with id missing does not exist")
    );
    let stats = sim.admin("stats").await?;
    assert_eq!(stats["throttled"]["DescribeStacks"], 2);
    assert_eq!(stats["requests"]["DescribeStacks"], 3);

    let err = client
        .describe_change_set()
        .change_set_name("arn:aws:cloudformation:us-east-1:123456789012:changeSet/nope/x")
        .send()
        .await
        .err()
        .context("DescribeChangeSet on a missing change set must fail")?;
    assert!(err.into_service_error().is_change_set_not_found_exception());
    Ok(())
}
