//! The doctor's calls: AWS through the SDK (with the doctor's short timeouts), Slack through
//! `slack::client`, GitHub through `github::client`. Every call is harmless: reads, and writes
//! whose condition is designed to fail after IAM has allowed them.

use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::report::{Check, Report, Verdict};
use super::verdicts::{self, Credentials, Fault, GitHubAnswer, KeyElement};
use super::{GitHub, Settings};
use crate::config::SlackTarget;
use crate::registry::item::Item;
use crate::registry::{Registry, RegistryError};
use crate::slack::client::{SlackApi, Webhook};
use crate::stack::{ClientError, ErrorKind, StackClient};

/// The sort key the permission probes aim at, in the lock key's own partition (so a policy
/// that limits `dynamodb:LeadingKeys` to the lock keys judges the probes as it judges the lock).
/// Never written: every probe's condition names an attribute no item has, so it fails on the
/// condition, which DynamoDB checks after IAM. It sorts before `LOCK`, out of the lock's reads.
const PROBE_SORT_KEY: &str = "DOCTOR#probe";
const NEVER_WRITTEN: &str = "doctor_probe_never_written";
/// A change set name that is never created, for the DescribeChangeSet probe.
const PROBE_CHANGE_SET: &str = "deploy-coordinator-doctor-probe";

pub(super) async fn run(settings: &Settings) -> Report {
    let started = Instant::now();
    let base = crate::aws::load(settings.region.as_deref()).await;
    let sdk = with_short_timeouts(&base, settings.probe_timeout);
    let region = sdk.region().map(|r| r.as_ref().to_string());

    let mut checks = vec![verdicts::region(region.as_deref())];
    let t = Instant::now();
    let credentials = resolve_credentials(&sdk, settings.probe_timeout).await;
    let credentials_check = verdicts::credentials(&credentials).took(t.elapsed());
    let aws_usable = region.is_some() && matches!(credentials, Credentials::Resolved { .. });
    checks.push(credentials_check);

    // The services are independent: ask them at the same time, so the doctor takes as long
    // as its slowest probe rather than the sum.
    let (aws_checks, slack_checks, github_check) = futures::join!(
        async {
            if aws_usable {
                aws_checks(settings, &sdk, region.as_deref()).await
            } else {
                let why = "needs a region and AWS credentials (see above)";
                [
                    "registry-table",
                    "registry-ttl",
                    "registry-permissions",
                    "lock",
                    "stack",
                    "stack-permissions",
                ]
                .into_iter()
                .map(|name| Check::skip(name, why))
                .collect()
            }
        },
        slack_checks(settings),
        github_check(&settings.github, settings.probe_timeout),
    );
    checks.extend(aws_checks);
    checks.extend(slack_checks);
    checks.push(github_check);
    Report {
        checks,
        elapsed: started.elapsed(),
    }
}

/// The SDK configuration with the doctor's timeouts and at most two attempts per call.
fn with_short_timeouts(base: &SdkConfig, timeout: Duration) -> SdkConfig {
    base.to_builder()
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(timeout.min(Duration::from_secs(2)))
                .operation_attempt_timeout(timeout)
                .operation_timeout(timeout + timeout / 2)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .build()
}

async fn resolve_credentials(sdk: &SdkConfig, timeout: Duration) -> Credentials {
    let Some(provider) = sdk.credentials_provider() else {
        return Credentials::Failed("no credentials provider is configured".into());
    };
    match tokio::time::timeout(timeout, provider.provide_credentials()).await {
        Err(_) => Credentials::TimedOut(timeout),
        Ok(Err(e)) => Credentials::Failed(crate::aws::error_text(&e)),
        Ok(Ok(c)) => Credentials::Resolved {
            expires_in: c
                .expiry()
                .map(|at| match at.duration_since(SystemTime::now()) {
                    Ok(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                    Err(past) => -i64::try_from(past.duration().as_secs()).unwrap_or(i64::MAX),
                }),
        },
    }
}

async fn aws_checks(settings: &Settings, sdk: &SdkConfig, region: Option<&str>) -> Vec<Check> {
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let stacks = StackClient::from_conf(sdk);
    let (registry, stack) = futures::join!(
        registry_checks(settings, ddb, region),
        stack_checks(settings, &stacks)
    );
    registry.into_iter().chain(stack).collect()
}

/// The table, its TTL, the permissions the lock needs, and the lock as it stands.
async fn registry_checks(
    settings: &Settings,
    ddb: aws_sdk_dynamodb::Client,
    region: Option<&str>,
) -> Vec<Check> {
    let table = settings.table.as_str();
    let ((described, t_table), (ttl, t_ttl)) = futures::join!(
        timed(describe_table(&ddb, table)),
        timed(describe_ttl(&ddb, table)),
    );
    let table_check = verdicts::table(table, region, &described).took(t_table);
    if table_check.verdict == Verdict::Fail {
        // Missing, not a registry, or unreachable: every further check would repeat it.
        let why = "needs a usable registry table (see registry-table)";
        return vec![
            table_check,
            Check::skip("registry-ttl", why),
            Check::skip("registry-permissions", why),
            Check::skip("lock", why),
        ];
    }
    let ttl_check = verdicts::ttl(table, &ttl).took(t_ttl);

    let registry = Registry::new(ddb.clone(), table);
    let t = Instant::now();
    let (get, put, update, delete, status) = futures::join!(
        probe_get(&ddb, table, &settings.lock_key),
        probe_put(&ddb, table, &settings.lock_key),
        probe_update(&ddb, table, &settings.lock_key),
        probe_delete(&ddb, table, &settings.lock_key),
        crate::lock::status(&registry, &settings.lock_key),
    );
    let query = match &status {
        Ok(_) => Ok(()),
        Err(e) => Err(registry_fault(e, None)),
    };
    let probes = [
        ("GetItem", get),
        ("Query", query),
        ("PutItem", put),
        ("UpdateItem", update),
        ("DeleteItem", delete),
    ];
    let permissions = verdicts::registry_permissions(table, region, &probes).took(t.elapsed());
    let lock_check = match &status {
        Ok(status) => verdicts::lock(&settings.lock_key, status),
        Err(RegistryError::Corrupt { detail, .. }) => Check::fail(
            "lock",
            format!(
                "the lock item of {:?} cannot be read: {detail}",
                settings.lock_key
            ),
            format!(
                "inspect it with `deploy-coordinator lock status --table {table} --key <key>`; \
                 the table may belong to another program"
            ),
        ),
        Err(_) => Check::skip("lock", "cannot read the lock (see registry-permissions)"),
    };
    vec![table_check, ttl_check, permissions, lock_check]
}

/// A future's output and how long it took.
async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let t = Instant::now();
    let out = f.await;
    (out, t.elapsed())
}

async fn describe_table(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(String, Vec<KeyElement>), Fault> {
    let out = ddb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| sdk_fault(table, "DescribeTable", &e))?;
    let Some(t) = out.table() else {
        return Err(Fault::Other(
            "DescribeTable answered without a table".into(),
        ));
    };
    let status = t
        .table_status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| "UNKNOWN".into());
    let keys = t
        .key_schema()
        .iter()
        .map(|k| KeyElement {
            name: k.attribute_name().to_string(),
            key_type: k.key_type().as_str().to_string(),
            attr_type: t
                .attribute_definitions()
                .iter()
                .find(|d| d.attribute_name() == k.attribute_name())
                .map(|d| d.attribute_type().as_str().to_string()),
        })
        .collect();
    Ok((status, keys))
}

async fn describe_ttl(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(String, Option<String>), Fault> {
    let out = ddb
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| sdk_fault(table, "DescribeTimeToLive", &e))?;
    let d = out.time_to_live_description();
    Ok((
        d.and_then(|d| d.time_to_live_status())
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "DISABLED".into()),
        d.and_then(|d| d.attribute_name()).map(str::to_string),
    ))
}

fn probe_key(lock_key: &str) -> Item {
    crate::registry::item::key(lock_key, PROBE_SORT_KEY)
}

const NEVER: &str = "attribute_exists(#never)";

async fn probe_get(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    lock_key: &str,
) -> Result<(), Fault> {
    ddb.get_item()
        .table_name(table)
        .set_key(Some(probe_key(lock_key)))
        .consistent_read(true)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk_fault(table, "GetItem", &e))
}

/// Ok when the write was refused on its condition: IAM allowed it, and nothing was written.
fn condition_failed<E>(
    table: &str,
    operation: &'static str,
    result: Result<impl Sized, SdkError<E, HttpResponse>>,
    is_condition: impl Fn(&E) -> bool,
) -> Result<(), Fault>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Err(e) if e.as_service_error().is_some_and(&is_condition) => Ok(()),
        Err(e) => Err(sdk_fault(table, operation, &e)),
        // The condition names an attribute nothing writes: success means an item with it
        // exists, which is not ours to judge; IAM allowed the call either way.
        Ok(_) => Ok(()),
    }
}

async fn probe_put(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    lock_key: &str,
) -> Result<(), Fault> {
    let result = ddb
        .put_item()
        .table_name(table)
        .set_item(Some(probe_key(lock_key)))
        .condition_expression(NEVER)
        .expression_attribute_names("#never", NEVER_WRITTEN)
        .send()
        .await;
    condition_failed(table, "PutItem", result, |e| {
        e.is_conditional_check_failed_exception()
    })
}

async fn probe_update(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    lock_key: &str,
) -> Result<(), Fault> {
    let result = ddb
        .update_item()
        .table_name(table)
        .set_key(Some(probe_key(lock_key)))
        .update_expression("SET #never = :never")
        .condition_expression(NEVER)
        .expression_attribute_names("#never", NEVER_WRITTEN)
        .expression_attribute_values(":never", AttributeValue::Bool(true))
        .send()
        .await;
    condition_failed(table, "UpdateItem", result, |e| {
        e.is_conditional_check_failed_exception()
    })
}

async fn probe_delete(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    lock_key: &str,
) -> Result<(), Fault> {
    let result = ddb
        .delete_item()
        .table_name(table)
        .set_key(Some(probe_key(lock_key)))
        .condition_expression(NEVER)
        .expression_attribute_names("#never", NEVER_WRITTEN)
        .send()
        .await;
    condition_failed(table, "DeleteItem", result, |e| {
        e.is_conditional_check_failed_exception()
    })
}

/// A DynamoDB SDK error as a [`Fault`], using the registry's own classification.
fn sdk_fault<E>(table: &str, operation: &'static str, err: &SdkError<E, HttpResponse>) -> Fault
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = err
        .as_service_error()
        .and_then(|e| e.code())
        .map(str::to_string);
    registry_fault(
        &crate::registry::classify(table, operation, err),
        code.as_deref(),
    )
}

fn registry_fault(err: &RegistryError, code: Option<&str>) -> Fault {
    let text = err.to_string();
    match err {
        RegistryError::Unavailable { detail, .. } => Fault::Unreachable(detail.clone()),
        RegistryError::ExpiredCredentials { detail, .. } => Fault::Expired(detail.clone()),
        RegistryError::Corrupt { .. } => Fault::Other(text),
        RegistryError::Misconfigured { detail, .. } => match code {
            Some("AccessDeniedException") => Fault::Denied(detail.clone()),
            Some("ResourceNotFoundException") => Fault::NotFound(detail.clone()),
            Some(
                "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "MissingAuthenticationToken"
                | "IncompleteSignature"
                | "InvalidClientTokenId",
            ) => Fault::BadCredentials(detail.clone()),
            None if detail.contains("AccessDenied") => Fault::Denied(detail.clone()),
            None if detail.contains("ResourceNotFound") => Fault::NotFound(detail.clone()),
            _ => Fault::Other(text),
        },
    }
}

fn stack_fault(e: &ClientError) -> Fault {
    let text = if e.message.is_empty() {
        e.code.clone().unwrap_or_default()
    } else {
        e.message.clone()
    };
    match e.kind {
        ErrorKind::Transient | ErrorKind::Throttling => Fault::Unreachable(text),
        ErrorKind::ExpiredToken => Fault::Expired(text),
        ErrorKind::Credentials => Fault::BadCredentials(text),
        ErrorKind::AccessDenied => Fault::Denied(text),
        ErrorKind::NotFound => Fault::NotFound(text),
        _ => Fault::Other(e.to_string()),
    }
}

/// The stack's state, and proof of the read permissions every mode needs (plus
/// DescribeChangeSet in mode deploy).
async fn stack_checks(settings: &Settings, stacks: &StackClient) -> Vec<Check> {
    let stack = settings.stack.as_str();
    let t = Instant::now();
    let described = stacks
        .describe_stack(stack)
        .await
        .map_err(|e| stack_fault(&e));
    let stack_check = verdicts::stack(stack, settings.mode, &described).took(t.elapsed());
    if let Err(fault) = &described
        && !matches!(fault, Fault::Denied(_))
    {
        return vec![
            stack_check,
            Check::skip(
                "stack-permissions",
                "CloudFormation cannot be used (see stack)",
            ),
        ];
    }
    let t = Instant::now();
    let ok = |r: Result<(), ClientError>| r.map_err(|e| stack_fault(&e));
    let (events, resources, change_set) = futures::join!(
        async { ok(stacks.events_page(stack, None).await.map(|_| ())) },
        async { ok(stacks.resource_count(stack).await.map(|_| ())) },
        async {
            if settings.mode.uses_template() {
                Some(ok(stacks
                    .describe_change_set(stack, PROBE_CHANGE_SET)
                    .await
                    .map(|_| ())))
            } else {
                None
            }
        },
    );
    let mut probes = vec![
        ("DescribeStacks", described.map(|_| ())),
        ("DescribeStackEvents", events),
        ("ListStackResources", resources),
    ];
    if let Some(change_set) = change_set {
        probes.push(("DescribeChangeSet", change_set));
    }
    let permissions = verdicts::stack_permissions(settings.mode, &probes).took(t.elapsed());
    vec![stack_check, permissions]
}

async fn slack_checks(settings: &Settings) -> Vec<Check> {
    let timeout = settings.probe_timeout;
    let api_url = settings.slack_api_url.as_str();
    match &settings.slack {
        SlackTarget::None => vec![Check::skip(
            "slack",
            "not configured (slack-bot-token with slack-channel, or slack-webhook-url)",
        )],
        SlackTarget::Bot { token, channel } => {
            let api = match SlackApi::new(api_url, token, timeout) {
                Ok(api) => api,
                Err(e) => {
                    return vec![Check::fail(
                        "slack-auth",
                        format!("cannot set up the Slack client: {e}"),
                        "check slack-api-url",
                    )];
                }
            };
            let t = Instant::now();
            let identity = api.auth_test().await;
            let auth = verdicts::slack_auth(api_url, &identity).took(t.elapsed());
            let channel_check = match &identity {
                Err(_) => Check::skip("slack-channel", "needs a working token (see slack-auth)"),
                Ok(_) if !verdicts::is_channel_id(channel) => verdicts::slack_channel_name(channel),
                Ok(id) => {
                    let t = Instant::now();
                    let info = api.conversations_info(channel).await;
                    verdicts::slack_channel(channel, api_url, Some(id), &info).took(t.elapsed())
                }
            };
            vec![auth, channel_check]
        }
        SlackTarget::Webhook { url } => {
            let t = Instant::now();
            let answer = match Webhook::new(url, timeout) {
                Ok(hook) => hook.probe().await,
                Err(e) => Err(e),
            };
            vec![verdicts::slack_webhook(&answer).took(t.elapsed())]
        }
    }
}

async fn github_check(github: &GitHub, timeout: Duration) -> Check {
    let Some(token) = github.token.as_deref() else {
        return verdicts::github(false, None);
    };
    let route = match (&github.repository, github.run_id, github.run_attempt) {
        (Some(repo), Some(id), Some(attempt)) => {
            format!("/repos/{repo}/actions/runs/{id}/attempts/{attempt}")
        }
        (Some(repo), Some(id), None) => format!("/repos/{repo}/actions/runs/{id}"),
        (Some(repo), None, _) => format!("/repos/{repo}/actions/runs?per_page=1"),
        (None, ..) => return verdicts::github(true, None),
    };
    let what = match (&github.repository, github.run_id) {
        (Some(repo), Some(id)) => format!("run {id} of {repo}"),
        (Some(repo), None) => format!("the workflow runs of {repo}"),
        _ => String::new(),
    };
    let t = Instant::now();
    let answer = match crate::github::client(&github.api_url, token) {
        Err(e) => GitHubAnswer::Unreachable(e),
        Ok(client) => {
            match tokio::time::timeout(
                timeout,
                client.get::<serde_json::Value, _, ()>(&route, None),
            )
            .await
            {
                Err(_) => GitHubAnswer::Unreachable(format!(
                    "no answer within {}",
                    crate::duration::human(timeout)
                )),
                Ok(Ok(body)) => GitHubAnswer::Read {
                    what,
                    status: body
                        .get("status")
                        .and_then(|s| s.as_str())
                        .map(str::to_string),
                },
                Ok(Err(octocrab::Error::GitHub { source, .. })) => GitHubAnswer::Status {
                    code: source.status_code.as_u16(),
                    message: source.message.clone(),
                },
                Ok(Err(e)) => GitHubAnswer::Unreachable(e.to_string()),
            }
        }
    };
    verdicts::github(true, Some(&answer)).took(t.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::keys;

    #[test]
    fn the_probe_key_stays_out_of_every_read_of_the_lock_partition() {
        // The lock reads `sk >= LOCK`; history, audit and dead letters read their prefixes.
        assert!(PROBE_SORT_KEY < keys::LOCK);
        for prefix in [
            keys::QUEUE_PREFIX,
            keys::AUDIT_PREFIX,
            "HIST#",
            "DEADLETTER#",
        ] {
            assert!(!PROBE_SORT_KEY.starts_with(prefix), "{prefix}");
        }
    }
}
