//! Mode `deploy`: a change set from the template (or a reviewed one, made earlier by a plan
//! job), executed with our own token, followed to the end.
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
use crate::config::{Config, StackParameter, Template};
use crate::plan::review::StackChanges;

/// CloudFormation's limit for an inline template body.
pub(crate) const MAX_TEMPLATE_BODY: usize = 51_200;

/// The longest a token or change set name may be.
const MAX_NAME: usize = 128;

/// Where the change set to execute comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeSetSource {
    /// Created here from the template (and deleted again when it is not executed).
    Template(Template),
    /// An existing change set (name or ARN), made and reviewed before this step: executed as
    /// it is, once it is still executable and the stack has not changed since it was created.
    Reviewed(String),
}

/// Everything a deployment needs, from the inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployRequest {
    pub stack_name: String,
    pub source: ChangeSetSource,
    pub parameters: Vec<StackParameter>,
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
    /// None when the configuration has neither a template nor a change set (not mode deploy).
    pub fn from_config(config: &Config, correlation_id: &str) -> Option<Self> {
        let source = match (&config.change_set, &config.template) {
            (Some(name), _) => ChangeSetSource::Reviewed(name.clone()),
            (None, Some(template)) => ChangeSetSource::Template(template.clone()),
            (None, None) => return None,
        };
        Some(Self {
            stack_name: config.stack_name.clone(),
            source,
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

impl DeployRequest {
    /// The change set this request creates, named after the correlation ID.
    pub(crate) fn change_set(
        &self,
        create: bool,
        template_body: Option<String>,
        template_url: Option<String>,
    ) -> ChangeSetRequest {
        ChangeSetRequest {
            stack_name: self.stack_name.clone(),
            change_set_name: change_set_name(&self.correlation_id),
            create,
            template_body,
            template_url,
            parameters: self.parameters.clone(),
            capabilities: self.capabilities.clone(),
            tags: self.tags.clone(),
            role_arn: self.role_arn.clone(),
            client_token: format!("{}-cs", restricted(&self.correlation_id, MAX_NAME - 3)),
            description: Some(format!("deploy-coordinator {}", self.correlation_id)),
            include_nested_stacks: false,
        }
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

/// Why a ready change set is not executed (the deploy guard): the result's `failure_title`
/// and `failure_reason`, and whether the change set stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) title: String,
    pub(crate) reason: String,
    pub(crate) keep_change_set: bool,
}

/// Asked before ExecuteChangeSet, the one step of a deployment that cannot be taken back.
/// `review`: whether this change set may run at all (the main step's deploy guard), asked as
/// soon as it is ready. `check`: asked just before executing; `Err(why)` and nothing is
/// executed (a change set made here is deleted, the result says why). The main step proves
/// there that it still holds the deployment lock.
pub(crate) trait BeforeExecute: Send + Sync {
    fn review(&self, _name: &str, _stacks: &[StackChanges]) -> Result<(), Refusal> {
        Ok(())
    }

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

/// Why a reviewed change set can no longer be executed as it was reviewed; None when it can
/// (pure). `stack`: the stack now; `change_set`: DescribeChangeSet of it.
///
/// DescribeChangeSet's `Status` must be `CREATE_COMPLETE` and its `ExecutionStatus`
/// `AVAILABLE` ("If the change set execution status is AVAILABLE, you can execute the change
/// set. If you can't execute the change set, the status indicates why. For example, a change
/// set might be in an UNAVAILABLE state because CloudFormation is still creating it or in an
/// OBSOLETE state because the stack was already updated."
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeChangeSet.html>;
/// ExecuteChangeSet refuses the others with `InvalidChangeSetStatus`,
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ExecuteChangeSet.html>).
/// Beyond what CloudFormation checks: the stack must not have changed since the change set
/// was created (its LastUpdatedTime after the change set's CreationTime), whatever changed it,
/// since what was reviewed was computed against the stack as it was.
pub(crate) fn not_executable(stack: &StackInfo, change_set: &ChangeSetInfo) -> Option<String> {
    if let Some(id) = &change_set.stack_id
        && *id != stack.stack_id
    {
        return Some(format!(
            "it belongs to stack {id}, not to {} ({})",
            stack.name, stack.stack_id
        ));
    }
    if change_set.status != "CREATE_COMPLETE" {
        let reason = change_set
            .status_reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        return Some(format!(
            "its status is {}{reason}; only a CREATE_COMPLETE change set can be executed",
            change_set.status
        ));
    }
    let execution = change_set.execution_status.as_deref().unwrap_or("unknown");
    if execution != "AVAILABLE" {
        let meaning = match execution {
            "EXECUTE_COMPLETE" => "it was executed already",
            "EXECUTE_IN_PROGRESS" => "it is being executed now",
            "EXECUTE_FAILED" => "it was executed, and that execution failed",
            "OBSOLETE" => "the stack was updated after it was created",
            "UNAVAILABLE" => "CloudFormation cannot execute it",
            _ => "CloudFormation does not offer it for execution",
        };
        return Some(format!(
            "its execution status is {execution} ({meaning}); only an AVAILABLE change set can be executed"
        ));
    }
    if let (Some(updated), Some(created)) = (stack.last_updated, change_set.creation_time)
        && updated > created
    {
        return Some(format!(
            "the stack changed at {} (it is {} now), after the change set was created at {}: what was reviewed \
             was computed against the stack as it was then",
            updated.to_rfc3339(),
            stack.status,
            created.to_rfc3339()
        ));
    }
    None
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
    let run = Run {
        client,
        req,
        settings,
        cancel,
        cancel_update,
        began: Instant::now(),
    };
    let ready = match &req.source {
        ChangeSetSource::Template(template) => match create(&run, template, on_event).await? {
            Ok(ready) => ready,
            Err(ended) => return Ok(ended),
        },
        ChangeSetSource::Reviewed(name) => match reviewed(client, req, name).await? {
            Ok(ready) => ready,
            Err(refused) => {
                on_event(MonitorEvent::Finished(Outcome::Failed));
                return Ok(refused);
            }
        },
    };
    execute(&run, ready, on_event, before_execute).await
}

/// One deployment's call: what every part of it uses.
#[derive(Clone, Copy)]
struct Run<'a> {
    client: &'a StackClient,
    req: &'a DeployRequest,
    settings: &'a MonitorSettings,
    cancel: &'a CancellationToken,
    /// `on-cancel: cancel-update`: the runner's grace within which a cancel during the update
    /// calls CancelUpdateStack and follows the rollback.
    cancel_update: Option<&'a Grace>,
    began: Instant,
}

/// A change set ready to execute.
struct Ready {
    name: String,
    info: ChangeSetInfo,
    /// Made by this step: deleted when it is not executed. A reviewed one is left as it is
    /// (unless the guard stops it and `on-risk-change-set` says delete).
    owned: bool,
}

/// The reviewed change set, if it can still be executed as it was reviewed; else the result
/// that says why not (nothing executed, the change set left as it is).
async fn reviewed(
    client: &StackClient,
    req: &DeployRequest,
    name: &str,
) -> Result<Result<Ready, StackResult>, StackError> {
    let stack = req.stack_name.as_str();
    let refuse = |info: Option<&StackInfo>, why: String| {
        let mut result = StackResult::without_operation(Outcome::Failed, info);
        result.failure_title = Some("Change set not executable".into());
        result.failure_reason = Some(format!(
            "change set {name} of stack {stack} cannot be executed: {why}. Nothing was executed. Run the plan \
             again to make a change set from the stack as it is now, review it, and deploy that one"
        ));
        result
    };
    let Some(info) = client.describe_stack(stack).await? else {
        return Ok(Err(refuse(None, "the stack does not exist".into())));
    };
    let change_set = match client.describe_change_set(stack, name).await {
        Ok(change_set) => change_set,
        Err(e) if e.kind == ErrorKind::NotFound => {
            return Ok(Err(refuse(
                Some(&info),
                "it does not exist (it was deleted, or executed and removed, or made for another stack)".into(),
            )));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(why) = not_executable(&info, &change_set) {
        return Ok(Err(refuse(Some(&info), why)));
    }
    Ok(Ok(Ready {
        name: name.to_string(),
        info: change_set,
        owned: false,
    }))
}

/// Creates the change set from the template and waits until it is ready; `Ok(Err(result))`
/// when the deployment ends there (no changes, a change set CloudFormation could not create).
async fn create<F>(
    run: &Run<'_>,
    template: &Template,
    on_event: &mut F,
) -> Result<Result<Ready, StackResult>, StackError>
where
    F: FnMut(MonitorEvent) + Send,
{
    let Run {
        client,
        req,
        settings,
        cancel,
        began,
        ..
    } = *run;
    let stack = req.stack_name.as_str();
    let (template_body, template_url) = template_source(template).await?;
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
    let mut cs = req.change_set(create, template_body, template_url);
    // Nested stacks get change sets of their own, so that the guard sees what changes inside
    // them, as mode plan shows it.
    cs.include_nested_stacks = true;
    create_change_set(client, &mut cs, &req.correlation_id).await?;
    let ready = wait_change_set(
        client,
        stack,
        &name,
        remaining(req, began),
        settings,
        cancel,
    )
    .await;
    let info = match ready {
        Ok(info) => info,
        Err(ChangeSetEnd::Empty { .. }) => {
            client.delete_change_set(stack, &name).await?;
            let info = client.describe_stack(stack).await?;
            on_event(MonitorEvent::Finished(Outcome::NoChanges));
            let mut result = StackResult::without_operation(Outcome::NoChanges, info.as_ref());
            if req.fail_on_empty_changeset {
                result.fail_step = true;
                result.failure_reason =
                    Some("the change set contained no changes (fail-on-empty-changeset)".into());
            }
            return Ok(Err(result));
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
            return Ok(Err(result));
        }
        Err(ChangeSetEnd::Error(e)) => {
            // Best effort: the error matters more than the clean-up.
            let _ = client.delete_change_set(stack, &name).await;
            return Err(e);
        }
    };
    Ok(Ok(Ready {
        name,
        info,
        owned: true,
    }))
}

/// Executes a ready change set (after the guard and the last check) and follows it.
async fn execute<F>(
    run: &Run<'_>,
    ready: Ready,
    on_event: &mut F,
    before_execute: &dyn BeforeExecute,
) -> Result<StackResult, StackError>
where
    F: FnMut(MonitorEvent) + Send,
{
    let (client, req, cancel) = (run.client, run.req, run.cancel);
    let stack = req.stack_name.as_str();
    let Ready { name, info, owned } = ready;
    // Only a change set made here is ours to clean up.
    let discard = || async {
        if owned {
            let _ = client.delete_change_set(stack, &name).await;
        }
    };
    let changes = info.change_count;
    on_event(MonitorEvent::ChangeSetCreated {
        name: name.clone(),
        changes,
        resources: info.changes.clone(),
    });
    // The change set as the guard judges it, nested change sets included (a table replaced
    // inside a nested stack is as lost as one in the root), read again with
    // IncludePropertyValues: each change's Before/AfterContext tells whether a DeletionPolicy
    // or UpdateReplacePolicy keeps the data.
    let detailed = client
        .describe_change_set_with(Some(stack), &name, true)
        .await
        .map_err(StackError::from);
    let stacks = match detailed {
        Ok(root) => super::preview::nested(client, root).await,
        Err(e) => Err(e),
    };
    let stacks = match stacks {
        Ok(stacks) => stacks,
        Err(e) => {
            discard().await;
            return Err(e);
        }
    };
    if let Err(refusal) = before_execute.review(&name, &stacks) {
        if !refusal.keep_change_set {
            // Best effort: what matters is that nothing runs.
            if let Err(e) = client.delete_change_set(stack, &name).await {
                tracing::warn!("cannot delete change set {name} ({e})");
            }
        }
        let info = client.describe_stack(stack).await?;
        on_event(MonitorEvent::Finished(Outcome::Failed));
        let mut result = StackResult::without_operation(Outcome::Failed, info.as_ref());
        result.failure_title = Some(refusal.title);
        result.failure_reason = Some(refusal.reason);
        return Ok(result);
    }
    // Where the history stands before execution: our operation is the first one after it.
    let baseline = match read_baseline(client, stack, run.settings, cancel).await {
        Ok(baseline) => baseline,
        Err(e) => {
            // Nothing was executed: leave no change set of ours behind.
            discard().await;
            return Err(e.into());
        }
    };
    if cancel.is_cancelled() {
        discard().await;
        let info = client.describe_stack(stack).await?;
        on_event(MonitorEvent::Finished(Outcome::Cancelled));
        let mut result = StackResult::without_operation(Outcome::Cancelled, info.as_ref());
        result.failure_reason =
            Some("the step was cancelled before the change set was executed".into());
        return Ok(result);
    }
    if let Err(why) = before_execute.check().await {
        discard().await;
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
        timeout: remaining(req, run.began),
        start_timeout: None,
        expected_duration: req.expected_duration,
    };
    let when_cancelled = match run.cancel_update {
        None => WhenCancelled::Leave,
        Some(grace) => WhenCancelled::CancelUpdate {
            token: &cancel_token,
            grace,
        },
    };
    follow(client, spec, run.settings, cancel, when_cancelled, on_event).await
}

/// The ClientRequestToken of our CancelUpdateStack, from the execution's token.
fn cancel_token(execution_token: &str) -> String {
    const SUFFIX: &str = "-cancel";
    let mut base = execution_token.to_string();
    base.truncate(MAX_NAME - SUFFIX.len());
    format!("{base}{SUFFIX}")
}

/// The template as CreateChangeSet takes it: (TemplateBody, TemplateURL).
pub(crate) async fn template_source(
    template: &Template,
) -> Result<(Option<String>, Option<String>), StackError> {
    match template {
        Template::Url(url) => Ok((None, Some(url.clone()))),
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
            Ok((Some(body), None))
        }
    }
}

/// CreateChangeSet; a rerun of the step with the same correlation ID (the name exists)
/// replaces the old change set.
pub(crate) async fn create_change_set(
    client: &StackClient,
    cs: &mut ChangeSetRequest,
    correlation_id: &str,
) -> Result<(), ClientError> {
    if let Err(e) = client.create_change_set(cs).await {
        if e.kind != ErrorKind::AlreadyExists {
            return Err(e);
        }
        client
            .delete_change_set(&cs.stack_name, &cs.change_set_name)
            .await?;
        cs.client_token = format!("{}-cs2", restricted(correlation_id, MAX_NAME - 4));
        client.create_change_set(cs).await?;
    }
    Ok(())
}

fn remaining(req: &DeployRequest, began: Instant) -> Duration {
    req.deploy_timeout.saturating_sub(began.elapsed())
}

pub(crate) enum ChangeSetEnd {
    /// CloudFormation's words for "nothing to change".
    Empty {
        reason: String,
    },
    /// CloudFormation could not create it (template error, early validation): its reason.
    Failed {
        reason: String,
    },
    Error(StackError),
}

/// Waits for the change set to be ready; returns what DescribeChangeSet says of it.
pub(crate) async fn wait_change_set(
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
                        return Err(ChangeSetEnd::Empty { reason });
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

    fn change_set(status: &str, execution: &str, created: &str) -> ChangeSetInfo {
        ChangeSetInfo {
            id: Some("arn:aws:cloudformation:us-east-1:1:changeSet/dc-plan/1".into()),
            stack_id: Some("arn:aws:cloudformation:us-east-1:1:stack/app/1".into()),
            creation_time: Some(created.parse().unwrap()),
            status: status.into(),
            status_reason: None,
            execution_status: Some(execution.into()),
            change_count: 1,
            changes: Vec::new(),
        }
    }

    fn stack_updated(at: &str) -> StackInfo {
        StackInfo {
            last_updated: Some(at.parse().unwrap()),
            ..info("UPDATE_COMPLETE")
        }
    }

    #[test]
    fn a_reviewed_change_set_runs_only_while_it_is_what_was_reviewed() {
        let before = stack_updated("2026-12-03T10:00:00Z");
        let ready = change_set("CREATE_COMPLETE", "AVAILABLE", "2026-12-03T10:05:00Z");
        assert_eq!(not_executable(&before, &ready), None);

        // The stack was updated after the change set was made (by anyone, however).
        let after = stack_updated("2026-12-03T10:06:00Z");
        let why = not_executable(&after, &ready).expect("stale");
        assert!(
            why.contains("the stack changed at 2026-12-03T10:06:00+00:00")
                && why.contains("after the change set was created at 2026-12-03T10:05:00+00:00"),
            "{why}"
        );

        for (execution, meaning) in [
            ("OBSOLETE", "the stack was updated after it was created"),
            ("EXECUTE_COMPLETE", "it was executed already"),
            ("EXECUTE_IN_PROGRESS", "it is being executed now"),
            ("EXECUTE_FAILED", "that execution failed"),
            ("UNAVAILABLE", "CloudFormation cannot execute it"),
        ] {
            let cs = change_set("CREATE_COMPLETE", execution, "2026-12-03T10:05:00Z");
            let why = not_executable(&before, &cs).expect(execution);
            assert!(
                why.contains(&format!("its execution status is {execution}"))
                    && why.contains(meaning),
                "{why}"
            );
        }
        let mut failed = change_set("FAILED", "UNAVAILABLE", "2026-12-03T10:05:00Z");
        failed.status_reason = Some("Template format error".into());
        let why = not_executable(&before, &failed).expect("failed");
        assert!(
            why.contains("its status is FAILED: Template format error")
                && why.contains("only a CREATE_COMPLETE change set"),
            "{why}"
        );

        let mut other = ready.clone();
        other.stack_id = Some("arn:aws:cloudformation:us-east-1:1:stack/other/2".into());
        let why = not_executable(&before, &other).expect("another stack's");
        assert!(
            why.contains("it belongs to stack arn:aws:cloudformation:us-east-1:1:stack/other/2"),
            "{why}"
        );
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
