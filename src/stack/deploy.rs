//! Mode `deploy`: a change set from the template, executed with our own token, followed to
//! the end.
//!
//! A change set rather than UpdateStack: it says how many resources will change (progress
//! N/M), tells an empty deployment apart before anything runs, and is the same path for a new
//! and an existing stack. Our ClientRequestToken on the execution marks every event of our
//! operation, which is how the monitor tells it apart from anyone else's.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::client::{
    ChangeSetInfo, ChangeSetRequest, ClientError, ErrorKind, StackClient, StackInfo,
};
use super::cursor::Baseline;
use super::monitor::{
    Follow, MonitorEvent, MonitorSettings, StackError, Start, WhenCancelled, follow,
};
use super::poll::{Hint, PollResult, PollSchedule};
use super::result::{StackResult, change_set_failed};
use super::status::{self, Outcome};
use super::tracker::Matcher;
use crate::config::{Config, Template};

/// CloudFormation's limit for an inline template body.
pub(crate) const MAX_TEMPLATE_BODY: usize = 51_200;

/// The longest a token or change set name may be.
const MAX_NAME: usize = 128;

/// Everything a deployment needs, from the inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployRequest {
    pub stack_name: String,
    pub template: Template,
    pub parameters: Vec<(String, String)>,
    pub capabilities: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub role_arn: Option<String>,
    pub fail_on_empty_changeset: bool,
    pub correlation_id: String,
    pub deploy_timeout: Duration,
    /// Usual duration from history, when known (polls faster near the expected end).
    pub expected_duration: Option<Duration>,
}

impl DeployRequest {
    /// None when the configuration has no template (not mode deploy).
    pub fn from_config(config: &Config, correlation_id: &str) -> Option<Self> {
        Some(Self {
            stack_name: config.stack_name.clone(),
            template: config.template.clone()?,
            parameters: config.parameters.clone(),
            capabilities: config.capabilities.clone(),
            tags: config.tags.clone(),
            role_arn: config.role_arn.clone(),
            fail_on_empty_changeset: config.fail_on_empty_changeset,
            correlation_id: correlation_id.to_string(),
            deploy_timeout: config.deploy_timeout,
            expected_duration: None,
        })
    }
}

/// Turns a correlation ID into `[a-zA-Z][-a-zA-Z0-9]*`, prefixed `dc-` (change set names must
/// start with a letter; tokens accept it too), at most `max` characters.
fn restricted(correlation_id: &str, max: usize) -> String {
    let mut out = String::from("dc-");
    for c in correlation_id.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        // No doubled or trailing separators: easier to read in the console.
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    out.truncate(max);
    while out.ends_with('-') && out.len() > 3 {
        out.pop();
    }
    out
}

/// The change set's name: readable in the console, one per run.
pub(crate) fn change_set_name(correlation_id: &str) -> String {
    restricted(correlation_id, MAX_NAME)
}

/// Our ClientRequestToken: the correlation ID plus a random part, so a correlation ID reused
/// by hand can never make CloudFormation take a new execution for a retry of an old one.
pub(crate) fn client_request_token(correlation_id: &str) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{}-{}",
        restricted(correlation_id, MAX_NAME - 9),
        &random[..8]
    )
}

/// Whether a failed change set only says there was nothing to change.
pub(crate) fn is_empty_change_set(reason: &str) -> bool {
    reason.contains("didn't contain changes")
        || reason.contains("did not contain changes")
        || reason.contains("No updates are to be performed")
}

/// What to do with the stack as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    Create,
    Update,
    /// A first create failed and rolled back: it can only be deleted, then created again.
    ReplaceFailed {
        stack_id: String,
    },
}

/// Decides between CREATE and UPDATE from the stack's status (pure).
pub(crate) fn plan(stack: &str, info: Option<&StackInfo>) -> Result<Plan, StackError> {
    let Some(info) = info else {
        return Ok(Plan::Create);
    };
    let bad = |problem: String| {
        Err(StackError::BadState {
            stack: stack.to_string(),
            problem,
        })
    };
    match info.status.as_str() {
        // A change set was created for a new stack and never executed: still new.
        "REVIEW_IN_PROGRESS" => Ok(Plan::Create),
        "ROLLBACK_COMPLETE" => Ok(Plan::ReplaceFailed { stack_id: info.stack_id.clone() }),
        "UPDATE_ROLLBACK_FAILED" => bad(
            "it is in UPDATE_ROLLBACK_FAILED: continue the rollback first (ContinueUpdateRollback, \
             skipping the resources that cannot roll back)"
                .into(),
        ),
        "ROLLBACK_FAILED" | "DELETE_FAILED" | "IMPORT_ROLLBACK_FAILED" => {
            bad(format!("it is in {}: delete it (retaining what cannot be deleted) and deploy again", info.status))
        }
        s if status::is_in_progress(s) => bad(format!("an operation is still running ({s})")),
        _ => Ok(Plan::Update),
    }
}

/// Asked just before ExecuteChangeSet, the one step of a deployment that cannot be taken
/// back: `Err(why)` and nothing is executed (the change set is deleted, the result says why).
/// The main step proves there that it still holds the deployment lock.
pub(crate) trait BeforeExecute: Send + Sync {
    fn check(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// `on-cancel: cancel-update`: asked at the cancel, how much longer the rollback may be
/// followed (the runner's time left, less the step's wind-down).
pub(crate) type Grace = dyn Fn() -> Duration + Send + Sync;

/// No check: execute when the change set is ready.
pub(crate) struct ExecuteFreely;

impl BeforeExecute for ExecuteFreely {
    fn check(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async { Ok(()) })
    }
}

/// Deploys the template and follows the operation to its end.
pub async fn deploy<F>(
    client: &StackClient,
    req: &DeployRequest,
    settings: &MonitorSettings,
    cancel: &CancellationToken,
    on_event: &mut F,
) -> Result<StackResult, StackError>
where
    F: FnMut(MonitorEvent) + Send,
{
    deploy_checked(
        client,
        req,
        settings,
        cancel,
        on_event,
        &ExecuteFreely,
        None,
    )
    .await
}

/// [`deploy`], asking `before_execute` just before ExecuteChangeSet; with `cancel_update`,
/// a cancel during the update calls CancelUpdateStack and follows the rollback within it.
pub(crate) async fn deploy_checked<F>(
    client: &StackClient,
    req: &DeployRequest,
    settings: &MonitorSettings,
    cancel: &CancellationToken,
    on_event: &mut F,
    before_execute: &dyn BeforeExecute,
    cancel_update: Option<&Grace>,
) -> Result<StackResult, StackError>
where
    F: FnMut(MonitorEvent) + Send,
{
    let began = Instant::now();
    let stack = req.stack_name.as_str();
    let (template_body, template_url) = match &req.template {
        Template::Url(url) => (None, Some(url.clone())),
        Template::File(path) => {
            let shown = path.display().to_string();
            let body =
                tokio::fs::read_to_string(path)
                    .await
                    .map_err(|source| StackError::Template {
                        path: shown.clone(),
                        source,
                    })?;
            if body.len() > MAX_TEMPLATE_BODY {
                return Err(StackError::TemplateTooLarge {
                    path: shown,
                    size: body.len(),
                });
            }
            (Some(body), None)
        }
    };
    let info = client.describe_stack(stack).await?;
    let create = match plan(stack, info.as_ref())? {
        Plan::Create => true,
        Plan::Update => false,
        Plan::ReplaceFailed { stack_id } => {
            on_event(MonitorEvent::DeletingFailedStack {
                stack_id: stack_id.clone(),
            });
            let token = format!("{}-delete", restricted(&req.correlation_id, MAX_NAME - 16));
            client.delete_stack(&stack_id, &token).await?;
            wait_deleted(
                client,
                stack,
                &stack_id,
                remaining(req, began),
                settings,
                cancel,
            )
            .await?;
            true
        }
    };
    let name = change_set_name(&req.correlation_id);
    let mut cs = ChangeSetRequest {
        stack_name: stack.to_string(),
        change_set_name: name.clone(),
        create,
        template_body,
        template_url,
        parameters: req.parameters.clone(),
        capabilities: req.capabilities.clone(),
        tags: req.tags.clone(),
        role_arn: req.role_arn.clone(),
        client_token: format!("{}-cs", restricted(&req.correlation_id, MAX_NAME - 3)),
        description: Some(format!("deploy-coordinator {}", req.correlation_id)),
    };
    if let Err(e) = client.create_change_set(&cs).await {
        if e.kind != ErrorKind::AlreadyExists {
            return Err(e.into());
        }
        // A rerun of the step with the same correlation ID: replace the old change set.
        client.delete_change_set(stack, &name).await?;
        cs.client_token = format!("{}-cs2", restricted(&req.correlation_id, MAX_NAME - 4));
        client.create_change_set(&cs).await?;
    }
    let ready = wait_change_set(
        client,
        stack,
        &name,
        remaining(req, began),
        settings,
        cancel,
    )
    .await;
    let (changes, resource_changes) = match ready {
        Ok(info) => (info.change_count, info.changes),
        Err(ChangeSetEnd::Empty) => {
            client.delete_change_set(stack, &name).await?;
            let info = client.describe_stack(stack).await?;
            on_event(MonitorEvent::Finished(Outcome::NoChanges));
            let mut result = StackResult::without_operation(Outcome::NoChanges, info.as_ref());
            if req.fail_on_empty_changeset {
                result.fail_step = true;
                result.failure_reason =
                    Some("the change set contained no changes (fail-on-empty-changeset)".into());
            }
            return Ok(result);
        }
        Err(ChangeSetEnd::Failed { reason }) => {
            // Early validation says which resource and why (DescribeEvents); best effort:
            // the change set's own reason stands without it.
            let failures = match client.change_set_failures(stack, &name).await {
                Ok(failures) => failures,
                Err(e) => {
                    tracing::warn!("cannot read why change set {name} failed ({e})");
                    None
                }
            };
            let _ = client.delete_change_set(stack, &name).await;
            let info = client.describe_stack(stack).await.ok().flatten();
            let result = change_set_failed(info.as_ref(), &reason, failures.as_deref());
            on_event(MonitorEvent::RootCause {
                resource: result.failed_resource.clone(),
                reason: result.failure_reason.clone().unwrap_or_default(),
            });
            on_event(MonitorEvent::Finished(Outcome::Failed));
            return Ok(result);
        }
        Err(ChangeSetEnd::Error(e)) => {
            // Best effort: the error matters more than the clean-up.
            let _ = client.delete_change_set(stack, &name).await;
            return Err(e);
        }
    };
    on_event(MonitorEvent::ChangeSetCreated {
        name: name.clone(),
        changes,
        resources: resource_changes,
    });
    // Where the history stands before execution: our operation is the first one after it.
    let baseline = match read_baseline(client, stack, settings, cancel).await {
        Ok(baseline) => baseline,
        Err(e) => {
            // Nothing was executed: leave no change set behind.
            let _ = client.delete_change_set(stack, &name).await;
            return Err(e.into());
        }
    };
    if cancel.is_cancelled() {
        let _ = client.delete_change_set(stack, &name).await;
        let info = client.describe_stack(stack).await?;
        on_event(MonitorEvent::Finished(Outcome::Cancelled));
        let mut result = StackResult::without_operation(Outcome::Cancelled, info.as_ref());
        result.failure_reason =
            Some("the step was cancelled before the change set was executed".into());
        return Ok(result);
    }
    if let Err(why) = before_execute.check().await {
        let _ = client.delete_change_set(stack, &name).await;
        let info = client.describe_stack(stack).await?;
        // Failed, not cancelled: nobody cancelled the run; what it needed (the lock) was
        // gone, and the summary, the card and the `outcome` output must all say the same.
        on_event(MonitorEvent::Finished(Outcome::Failed));
        let mut result = StackResult::without_operation(Outcome::Failed, info.as_ref());
        result.failure_reason = Some(why);
        return Ok(result);
    }
    let token = client_request_token(&req.correlation_id);
    client.execute_change_set(stack, &name, &token).await?;
    // The cancel's own token, from the execution's (random part included, so a rerun never
    // reuses it): a retried CancelUpdateStack is the same request, and the rollback it starts
    // carries it.
    let cancel_token = cancel_token(&token);
    let spec = Follow {
        stack: stack.to_string(),
        start: Start::After(baseline),
        matcher: Matcher {
            operation_id: None,
            client_request_token: Some(token),
        },
        total_hint: Some(changes),
        timeout: remaining(req, began),
        start_timeout: None,
        expected_duration: req.expected_duration,
    };
    let when_cancelled = match cancel_update {
        None => WhenCancelled::Leave,
        Some(grace) => WhenCancelled::CancelUpdate {
            token: &cancel_token,
            grace,
        },
    };
    follow(client, spec, settings, cancel, when_cancelled, on_event).await
}

/// The ClientRequestToken of our CancelUpdateStack, from the execution's token.
fn cancel_token(execution_token: &str) -> String {
    const SUFFIX: &str = "-cancel";
    let mut base = execution_token.to_string();
    base.truncate(MAX_NAME - SUFFIX.len());
    format!("{base}{SUFFIX}")
}

fn remaining(req: &DeployRequest, began: Instant) -> Duration {
    req.deploy_timeout.saturating_sub(began.elapsed())
}

enum ChangeSetEnd {
    Empty,
    /// CloudFormation could not create it (template error, early validation): its reason.
    Failed {
        reason: String,
    },
    Error(StackError),
}

/// Waits for the change set to be ready; returns what DescribeChangeSet says of it.
async fn wait_change_set(
    client: &StackClient,
    stack: &str,
    name: &str,
    timeout: Duration,
    settings: &MonitorSettings,
    cancel: &CancellationToken,
) -> Result<ChangeSetInfo, ChangeSetEnd> {
    let began = Instant::now();
    // Change sets take seconds: poll at 1 s growing slowly, never slower than 5 s.
    let mut poll = settings.poll;
    poll.base = poll.imminent;
    poll.max = poll.max.min(Duration::from_secs(5)).max(poll.base);
    let mut schedule = PollSchedule::new(poll);
    loop {
        let result = match client.describe_change_set(stack, name).await {
            Ok(info) => match info.status.as_str() {
                "CREATE_COMPLETE" => return Ok(info),
                "FAILED" => {
                    let reason = info.status_reason.unwrap_or_default();
                    if is_empty_change_set(&reason) {
                        return Err(ChangeSetEnd::Empty);
                    }
                    return Err(ChangeSetEnd::Failed { reason });
                }
                _ => PollResult::Quiet,
            },
            Err(e) if e.kind == ErrorKind::Throttling => PollResult::Throttled,
            Err(e) => return Err(ChangeSetEnd::Error(e.into())),
        };
        if began.elapsed() >= timeout {
            return Err(ChangeSetEnd::Error(StackError::ChangeSetFailed {
                stack: stack.to_string(),
                name: name.to_string(),
                reason: format!(
                    "not ready after {} (deploy-timeout)",
                    crate::duration::human(timeout)
                ),
            }));
        }
        let delay = schedule.next(result, Hint::default());
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancel.cancelled() => return Err(ChangeSetEnd::Error(StackError::Cancelled)),
        }
    }
}

/// Waits until the stack `stack_id` is deleted.
async fn wait_deleted(
    client: &StackClient,
    stack: &str,
    stack_id: &str,
    timeout: Duration,
    settings: &MonitorSettings,
    cancel: &CancellationToken,
) -> Result<(), StackError> {
    let began = Instant::now();
    let mut schedule = PollSchedule::new(settings.poll);
    loop {
        let result = match client.describe_stack(stack_id).await {
            Ok(None) => return Ok(()),
            Ok(Some(info)) if info.status == "DELETE_COMPLETE" => return Ok(()),
            Ok(Some(info)) if !status::is_in_progress(&info.status) => {
                return Err(StackError::BadState {
                    stack: stack.to_string(),
                    problem: format!(
                        "deleting the stack left by a failed first create ended in {}: {}",
                        info.status,
                        info.status_reason.unwrap_or_default()
                    ),
                });
            }
            Ok(Some(_)) => PollResult::Quiet,
            Err(e) if e.kind == ErrorKind::Throttling => PollResult::Throttled,
            Err(e) => return Err(e.into()),
        };
        if began.elapsed() >= timeout {
            return Err(StackError::BadState {
                stack: stack.to_string(),
                problem: "deleting the stack left by a failed first create did not finish within deploy-timeout".into(),
            });
        }
        let delay = schedule.next(
            result,
            Hint {
                imminent: false,
                expected_in: None,
            },
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancel.cancelled() => return Err(StackError::Cancelled),
        }
    }
}

/// Reads the baseline before execution, riding out a few transient errors (the SDK has
/// already retried each call): failing here would abandon a ready change set for a blip.
async fn read_baseline(
    client: &StackClient,
    stack: &str,
    settings: &MonitorSettings,
    cancel: &CancellationToken,
) -> Result<Baseline, ClientError> {
    let mut delay = settings.restart_backoff;
    let mut attempt = 1;
    loop {
        match client.baseline(stack).await {
            Ok(baseline) => return Ok(baseline),
            Err(e) if e.is_retryable() && attempt < 3 && !cancel.is_cancelled() => {
                tracing::warn!(
                    "reading stack {stack}'s events failed ({e}); retrying in {}",
                    crate::duration::human(delay)
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = cancel.cancelled() => {}
                }
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(status: &str) -> StackInfo {
        StackInfo {
            stack_id: "arn:aws:cloudformation:us-east-1:1:stack/app/1".into(),
            name: "app".into(),
            status: status.into(),
            status_reason: None,
            last_updated: None,
            outputs: Vec::new(),
            last_operations: Vec::new(),
        }
    }

    fn valid(s: &str, first: fn(char) -> bool) -> bool {
        s.len() <= 128
            && s.chars().next().is_some_and(first)
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    }

    #[test]
    fn names_and_tokens_follow_cloudformation_rules() {
        for id in [
            "20260114-123456-abc1234",
            "my_run.42/attempt 2",
            "--",
            &"x".repeat(300),
            "é",
        ] {
            let name = change_set_name(id);
            assert!(valid(&name, |c| c.is_ascii_alphabetic()), "{name}");
            let token = client_request_token(id);
            assert!(valid(&token, |c| c.is_ascii_alphanumeric()), "{token}");
            let cancel = cancel_token(&token);
            assert!(valid(&cancel, |c| c.is_ascii_alphanumeric()), "{cancel}");
            assert_ne!(cancel, token);
        }
        assert_eq!(
            change_set_name("20260114-123456-abc1234"),
            "dc-20260114-123456-abc1234"
        );
        assert_eq!(change_set_name("my_run.42"), "dc-my-run-42");
        let (a, b) = (client_request_token("x"), client_request_token("x"));
        assert!(
            a.starts_with("dc-x-") && a != b,
            "derived from the ID, never reused: {a} {b}"
        );
    }

    #[test]
    fn recognises_empty_change_sets() {
        assert!(is_empty_change_set(
            "The submitted information didn't contain changes. Submit different information to create a change set."
        ));
        assert!(is_empty_change_set("No updates are to be performed."));
        assert!(!is_empty_change_set(
            "Template format error: unresolved resource dependencies"
        ));
    }

    #[test]
    fn plans_create_update_or_replace_from_the_status() {
        assert_eq!(plan("app", None).ok(), Some(Plan::Create));
        assert_eq!(
            plan("app", Some(&info("REVIEW_IN_PROGRESS"))).ok(),
            Some(Plan::Create)
        );
        assert_eq!(
            plan("app", Some(&info("UPDATE_ROLLBACK_COMPLETE"))).ok(),
            Some(Plan::Update)
        );
        assert_eq!(
            plan("app", Some(&info("CREATE_COMPLETE"))).ok(),
            Some(Plan::Update)
        );
        assert!(matches!(
            plan("app", Some(&info("ROLLBACK_COMPLETE"))),
            Ok(Plan::ReplaceFailed { .. })
        ));
        let err = plan("app", Some(&info("UPDATE_ROLLBACK_FAILED")))
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("ContinueUpdateRollback")));
        assert!(plan("app", Some(&info("UPDATE_IN_PROGRESS"))).is_err());
    }
}
