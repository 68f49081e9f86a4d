//! The thin layer over the CloudFormation API: typed answers in, typed errors out, no policy.
//!
//! Everything that decides (what is new, when to poll, what an outcome is) lives in the pure
//! modules; this one only translates. Errors are classified so callers can act on them:
//! throttling slows polling down, expired credentials and missing permissions fail with what to
//! change, transient failures are retried by the supervisor.
//!
//! Error messages include text from AWS: log them through `action::log::sanitize`.

use std::fmt;

use crate::config::{ParameterValue, StackParameter};
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::types::{Capability, ChangeSetType, Parameter, Tag};
use chrono::{DateTime, Utc};
use thiserror::Error;

use super::cursor::{Baseline, Cursor, Scan};
use super::events::Event;

/// Reading more pages than this in one poll means something is off (a stack with a huge
/// history and no start found): stop and use what was read.
const MAX_PAGES: usize = 200;

/// What kind of failure, for deciding what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `Throttling`: slow down, not a failure.
    Throttling,
    /// The session's credentials expired (OIDC roles last 1 hour by default).
    ExpiredToken,
    /// Invalid credentials or signature.
    Credentials,
    /// An IAM permission is missing.
    AccessDenied,
    /// The stack or change set does not exist.
    NotFound,
    /// A change set with that name exists already.
    AlreadyExists,
    /// CloudFormation refused the request (bad template, wrong state …).
    Validation,
    /// Network, timeout or a 5xx: worth retrying.
    Transient,
    Other,
}

/// A failed CloudFormation call.
#[derive(Debug, Clone, Error)]
pub struct ClientError {
    pub kind: ErrorKind,
    /// The API action, as IAM names it (`DescribeStackEvents`).
    pub action: &'static str,
    pub code: Option<String>,
    pub message: String,
}

impl ClientError {
    /// Worth trying again later (the supervisor restarts on these).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Throttling | ErrorKind::Transient | ErrorKind::Other
        )
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = self.action;
        let code = self.code.as_deref().unwrap_or("error");
        match self.kind {
            ErrorKind::ExpiredToken => write!(
                f,
                "cloudformation:{action}: the AWS credentials expired ({code}). Raise `role-duration-seconds` \
                 of aws-actions/configure-aws-credentials (1 hour by default) above the lock wait plus the \
                 deployment time, and allow it in the role's MaxSessionDuration"
            ),
            ErrorKind::AccessDenied => write!(
                f,
                "cloudformation:{action} was denied ({code}): allow \"cloudformation:{action}\" on the stack in \
                 the policy of the role the job uses. AWS said: {}",
                self.message
            ),
            ErrorKind::Credentials => write!(
                f,
                "cloudformation:{action}: the AWS credentials were refused ({code}): check the \
                 configure-aws-credentials step. AWS said: {}",
                self.message
            ),
            _ => write!(
                f,
                "cloudformation:{action} failed: {code}: {}",
                self.message
            ),
        }
    }
}

/// Classifies an SDK error (pure: also used by tests on hand-built codes).
pub(crate) fn classify(code: Option<&str>, message: &str, http_status: Option<u16>) -> ErrorKind {
    match code {
        Some(
            "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException",
        ) => ErrorKind::Throttling,
        Some("ExpiredToken" | "ExpiredTokenException" | "RequestExpired") => {
            ErrorKind::ExpiredToken
        }
        Some("AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation") => {
            ErrorKind::AccessDenied
        }
        Some(
            "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "MissingAuthenticationToken",
        ) => ErrorKind::Credentials,
        Some("ChangeSetNotFound" | "ChangeSetNotFoundException" | "StackNotFoundException") => {
            ErrorKind::NotFound
        }
        Some("AlreadyExistsException") => ErrorKind::AlreadyExists,
        Some("ValidationError") if message.contains("does not exist") => ErrorKind::NotFound,
        Some(
            "ValidationError"
            | "InsufficientCapabilitiesException"
            | "LimitExceededException"
            | "TokenAlreadyExistsException"
            | "InvalidChangeSetStatus"
            | "InvalidChangeSetStatusException",
        ) => ErrorKind::Validation,
        _ if http_status.is_some_and(|s| s >= 500) => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

fn to_error<E, R>(action: &'static str, err: SdkError<E, R>) -> ClientError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug + HttpStatus + 'static,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ClientError {
                kind: ErrorKind::Transient,
                action,
                code: None,
                message: crate::aws::error_text(&err),
            }
        }
        _ => {
            let code = err.code().map(str::to_string);
            let message = err.message().unwrap_or("").to_string();
            let status = err.raw_response().map(HttpStatus::status_code);
            let message = if message.is_empty() && code.is_none() {
                crate::aws::error_text(&err)
            } else {
                message
            };
            ClientError {
                kind: classify(code.as_deref(), &message, status),
                action,
                code,
                message,
            }
        }
    }
}

/// An action the endpoint does not know: a region without it yet, or an emulator
/// (`InvalidAction`, `UnknownOperationException`, or a 404 for the action itself).
fn is_unsupported(e: &ClientError) -> bool {
    matches!(
        e.code.as_deref(),
        Some("InvalidAction" | "UnknownOperationException" | "UnknownOperation")
    )
}

/// The HTTP status of a raw response, whatever its type.
pub(crate) trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// What DescribeStacks says about a stack.
#[derive(Debug, Clone, PartialEq)]
pub struct StackInfo {
    pub stack_id: String,
    pub name: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub last_updated: Option<DateTime<Utc>>,
    pub outputs: Vec<(String, String)>,
    /// `LastOperations`: (type, id), newest first, when the service provides them.
    pub last_operations: Vec<(String, String)>,
}

/// What DescribeChangeSet says.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeSetInfo {
    pub id: Option<String>,
    /// The stack it belongs to (its ARN).
    pub stack_id: Option<String>,
    /// When it was created (CloudFormation's clock): a stack changed after it is no longer what
    /// the change set was computed from.
    pub creation_time: Option<DateTime<Utc>>,
    pub status: String,
    pub status_reason: Option<String>,
    pub execution_status: Option<String>,
    /// Every change, across pages.
    pub change_count: u32,
    /// The resource changes, across pages, in CloudFormation's order.
    pub changes: Vec<ResourceChange>,
}

/// One resource change of a change set, in CloudFormation's own words (`Changes[].ResourceChange`
/// of DescribeChangeSet), so that what the operator reads is what the console shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResourceChange {
    pub logical_id: String,
    pub resource_type: String,
    /// `Add`, `Modify`, `Remove`, `Import`, `Dynamic`.
    pub action: String,
    /// For `Modify`: `True`, `False` or `Conditional` (whether a new physical resource
    /// replaces the old one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// What changes: `Properties`, `Metadata`, `Tags`, `CreationPolicy`, `UpdatePolicy`,
    /// `DeletionPolicy`, `UpdateReplacePolicy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scope: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_id: Option<String>,
    /// What exactly changes and why (`Details`), with values when the change set was read
    /// with `IncludePropertyValues`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ChangeDetail>,
    /// A nested stack's change: the ARN of its own change set (`IncludeNestedStacks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_set_id: Option<String>,
    /// The resource before and after, as JSON text (`BeforeContext`, `AfterContext`; only
    /// with `IncludePropertyValues`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_context: Option<String>,
}

/// One entry of a resource change's `Details`: the `Target` that changes (a property, an
/// attribute such as `DeletionPolicy`, the tags), how it is evaluated and what caused it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChangeDetail {
    /// `Properties`, `Metadata`, `CreationPolicy`, `UpdatePolicy`, `DeletionPolicy`,
    /// `UpdateReplacePolicy`, `Tags`.
    pub attribute: String,
    /// The property's name (attribute `Properties` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `Never`, `Always`, `Conditionally` (attribute `Properties` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_recreation: Option<String>,
    /// `Add`, `Remove`, `Modify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// `Static` or `Dynamic` (known only when the update runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<String>,
    /// `DirectModification`, `ParameterReference`, `ResourceReference`, `ResourceAttribute`,
    /// `Automatic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The parameter or resource that caused it (`Env`, `Table`, `Table.Arn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causing_entity: Option<String>,
}

impl ResourceChange {
    fn from_sdk(c: &aws_sdk_cloudformation::types::ResourceChange) -> ResourceChange {
        let text = |s: Option<&str>| s.map(str::to_string);
        ResourceChange {
            logical_id: c.logical_resource_id().unwrap_or_default().to_string(),
            resource_type: c.resource_type().unwrap_or_default().to_string(),
            action: c
                .action()
                .map(|a| a.as_str().to_string())
                .unwrap_or_default(),
            replacement: c.replacement().map(|r| r.as_str().to_string()),
            scope: c.scope().iter().map(|s| s.as_str().to_string()).collect(),
            physical_id: text(c.physical_resource_id()),
            details: c
                .details()
                .iter()
                .map(|d| {
                    let target = d.target();
                    ChangeDetail {
                        attribute: target
                            .and_then(|t| t.attribute())
                            .map(|a| a.as_str().to_string())
                            .unwrap_or_default(),
                        name: text(target.and_then(|t| t.name())),
                        requires_recreation: target
                            .and_then(|t| t.requires_recreation())
                            .map(|r| r.as_str().to_string()),
                        change_type: target
                            .and_then(|t| t.attribute_change_type())
                            .map(|r| r.as_str().to_string()),
                        before: text(target.and_then(|t| t.before_value())),
                        after: text(target.and_then(|t| t.after_value())),
                        evaluation: d.evaluation().map(|e| e.as_str().to_string()),
                        source: d.change_source().map(|e| e.as_str().to_string()),
                        causing_entity: text(d.causing_entity()),
                    }
                })
                .collect(),
            change_set_id: text(c.change_set_id()),
            before_context: text(c.before_context()),
            after_context: text(c.after_context()),
        }
    }
}

/// One failure CloudFormation reports through `DescribeEvents` for a change set or an
/// operation: an early-validation error (`VALIDATION_ERROR`), a provisioning or Hook error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEvent {
    /// `VALIDATION_ERROR`, `PROVISIONING_ERROR`, `HOOK_INVOCATION_ERROR`, ...
    pub kind: String,
    pub logical_id: Option<String>,
    pub resource_type: Option<String>,
    /// `NAME_CONFLICT_VALIDATION`, ... (validation errors).
    pub validation: Option<String>,
    /// Where in the template (`/Resources/Bucket/Properties/BucketName`).
    pub path: Option<String>,
    /// `FAIL` stops the deployment; `WARN` only warns.
    pub mode: Option<String>,
    /// CloudFormation's words (from AWS: sanitize before logging).
    pub reason: Option<String>,
}

impl FailedEvent {
    /// A `WARN` validation does not stop anything.
    pub fn is_warning(&self) -> bool {
        self.mode
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case("WARN"))
    }
}

/// A change set to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSetRequest {
    pub stack_name: String,
    pub change_set_name: String,
    pub create: bool,
    pub template_body: Option<String>,
    pub template_url: Option<String>,
    pub parameters: Vec<StackParameter>,
    pub capabilities: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub role_arn: Option<String>,
    pub client_token: String,
    pub description: Option<String>,
    /// `IncludeNestedStacks`: a change set for each nested stack too (mode plan).
    pub include_nested_stacks: bool,
}

fn time(t: Option<&aws_smithy_types::DateTime>) -> Option<DateTime<Utc>> {
    let t = t?;
    DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos())
}

/// Converts an SDK event; None for an event without the fields every event has.
pub(crate) fn convert_event(e: &aws_sdk_cloudformation::types::StackEvent) -> Option<Event> {
    Some(Event {
        event_id: e.event_id()?.to_string(),
        stack_id: e.stack_id().unwrap_or_default().to_string(),
        stack_name: e.stack_name().unwrap_or_default().to_string(),
        logical_id: e.logical_resource_id().unwrap_or_default().to_string(),
        physical_id: e
            .physical_resource_id()
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        resource_type: e.resource_type().unwrap_or_default().to_string(),
        status: e
            .resource_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        reason: e.resource_status_reason().map(str::to_string),
        timestamp: time(e.timestamp())?,
        operation_id: e
            .operation_id()
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        client_request_token: e
            .client_request_token()
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        detailed_status: e.detailed_status().map(|s| s.as_str().to_string()),
        hook_type: e.hook_type().map(str::to_string),
        hook_status: e.hook_status().map(|s| s.as_str().to_string()),
        hook_status_reason: e.hook_status_reason().map(str::to_string),
        hook_failure_mode: e.hook_failure_mode().map(|s| s.as_str().to_string()),
    })
}

/// CloudFormation, as the rest of the crate needs it.
#[derive(Debug, Clone)]
pub struct StackClient {
    cfn: Client,
}

impl StackClient {
    pub fn new(cfn: Client) -> Self {
        Self { cfn }
    }

    pub fn from_conf(conf: &aws_config::SdkConfig) -> Self {
        Self::new(Client::new(conf))
    }

    /// The stack, or None when it does not exist. `stack` is a name or a stack id (a deleted
    /// stack is only found by its id).
    pub async fn describe_stack(&self, stack: &str) -> Result<Option<StackInfo>, ClientError> {
        let out = match self.cfn.describe_stacks().stack_name(stack).send().await {
            Ok(out) => out,
            Err(err) => {
                let err = to_error("DescribeStacks", err);
                return if err.kind == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                };
            }
        };
        let Some(s) = out.stacks().first() else {
            return Ok(None);
        };
        Ok(Some(StackInfo {
            stack_id: s.stack_id().unwrap_or_default().to_string(),
            name: s.stack_name().unwrap_or_default().to_string(),
            status: s
                .stack_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            status_reason: s.stack_status_reason().map(str::to_string),
            last_updated: time(s.last_updated_time()).or_else(|| time(s.creation_time())),
            outputs: s
                .outputs()
                .iter()
                .filter_map(|o| {
                    Some((
                        o.output_key()?.to_string(),
                        o.output_value().unwrap_or_default().to_string(),
                    ))
                })
                .collect(),
            last_operations: s
                .last_operations()
                .iter()
                .filter_map(|o| {
                    let kind = o
                        .operation_type()
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_default();
                    Some((kind, o.operation_id()?.to_string()))
                })
                .collect(),
        }))
    }

    /// One page of events (newest first) and the token of the next one.
    pub async fn events_page(
        &self,
        stack: &str,
        next_token: Option<String>,
    ) -> Result<(Vec<Event>, Option<String>), ClientError> {
        let out = self
            .cfn
            .describe_stack_events()
            .stack_name(stack)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| to_error("DescribeStackEvents", e))?;
        let events = out
            .stack_events()
            .iter()
            .filter_map(convert_event)
            .collect();
        Ok((events, out.next_token().map(str::to_string)))
    }

    /// The stack's whole event history (CloudFormation keeps 90 days), newest first.
    pub async fn all_events(&self, stack: &str) -> Result<Vec<Event>, ClientError> {
        let mut events = Vec::new();
        let mut token = None;
        // 100 events a page: a million events is more than any stack's 90 days.
        for _ in 0..10_000 {
            let (page, next) = self.events_page(stack, token).await?;
            events.extend(page);
            match next {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        Ok(events)
    }

    /// The events new to `cursor`, oldest first, reading as many pages as the cursor needs.
    pub async fn read_new_events(
        &self,
        stack: &str,
        cursor: &mut Cursor,
    ) -> Result<Vec<Event>, ClientError> {
        let mut batch = Vec::new();
        let mut token = None;
        for _ in 0..MAX_PAGES {
            let (page, next) = self.events_page(stack, token).await?;
            if cursor.scan_page(&page, &mut batch) == Scan::Done || next.is_none() {
                break;
            }
            token = next;
        }
        Ok(cursor.finish(batch))
    }

    /// Where the stack's history stands now (empty when the stack does not exist).
    pub async fn baseline(&self, stack: &str) -> Result<Baseline, ClientError> {
        match self.events_page(stack, None).await {
            Ok((page, _)) => Ok(Baseline::from_newest_page(&page)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(Baseline::default()),
            Err(e) => Err(e),
        }
    }

    /// The number of resources the stack has now (ListStackResources, every page).
    pub async fn resource_count(&self, stack: &str) -> Result<u32, ClientError> {
        let mut count = 0u32;
        let mut token = None;
        for _ in 0..MAX_PAGES {
            let out = self
                .cfn
                .list_stack_resources()
                .stack_name(stack)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| to_error("ListStackResources", e))?;
            count = count.saturating_add(
                u32::try_from(out.stack_resource_summaries().len()).unwrap_or(u32::MAX),
            );
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(count)
    }

    /// Creates a change set; returns its id.
    pub async fn create_change_set(&self, req: &ChangeSetRequest) -> Result<String, ClientError> {
        let kind = if req.create {
            ChangeSetType::Create
        } else {
            ChangeSetType::Update
        };
        let mut call = self
            .cfn
            .create_change_set()
            .stack_name(&req.stack_name)
            .change_set_name(&req.change_set_name)
            .change_set_type(kind)
            .client_token(&req.client_token)
            .set_template_body(req.template_body.clone())
            .set_template_url(req.template_url.clone())
            .set_role_arn(req.role_arn.clone())
            .set_description(req.description.clone())
            .set_include_nested_stacks(req.include_nested_stacks.then_some(true));
        for parameter in &req.parameters {
            let built = Parameter::builder().parameter_key(&parameter.key);
            let built = match &parameter.value {
                ParameterValue::Value(value) => built.parameter_value(value),
                ParameterValue::UsePrevious => built.use_previous_value(true),
            };
            call = call.parameters(built.build());
        }
        for capability in &req.capabilities {
            call = call.capabilities(Capability::from(capability.as_str()));
        }
        for (key, value) in &req.tags {
            call = call.tags(Tag::builder().key(key).value(value).build());
        }
        let out = call
            .send()
            .await
            .map_err(|e| to_error("CreateChangeSet", e))?;
        Ok(out.id().unwrap_or_default().to_string())
    }

    pub async fn describe_change_set(
        &self,
        stack: &str,
        change_set: &str,
    ) -> Result<ChangeSetInfo, ClientError> {
        self.describe_change_set_with(Some(stack), change_set, false)
            .await
    }

    /// DescribeChangeSet, every page. `stack` may be None when `change_set` is an ARN (a
    /// nested change set's, which belongs to the nested stack); `values` asks for
    /// `IncludePropertyValues` (each property's before and after value).
    pub async fn describe_change_set_with(
        &self,
        stack: Option<&str>,
        change_set: &str,
        values: bool,
    ) -> Result<ChangeSetInfo, ClientError> {
        let mut info: Option<ChangeSetInfo> = None;
        let mut token = None;
        for _ in 0..MAX_PAGES {
            let out = self
                .cfn
                .describe_change_set()
                .set_stack_name(stack.map(str::to_string))
                .change_set_name(change_set)
                .set_include_property_values(values.then_some(true))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| to_error("DescribeChangeSet", e))?;
            let changes = u32::try_from(out.changes().len()).unwrap_or(u32::MAX);
            let resources = out
                .changes()
                .iter()
                .filter_map(|c| c.resource_change())
                .map(ResourceChange::from_sdk);
            match info.as_mut() {
                Some(i) => {
                    i.change_count = i.change_count.saturating_add(changes);
                    i.changes.extend(resources);
                }
                None => {
                    info = Some(ChangeSetInfo {
                        id: out.change_set_id().map(str::to_string),
                        stack_id: out.stack_id().map(str::to_string),
                        creation_time: time(out.creation_time()),
                        status: out
                            .status()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default(),
                        status_reason: out.status_reason().map(str::to_string),
                        execution_status: out.execution_status().map(|s| s.as_str().to_string()),
                        change_count: changes,
                        changes: resources.collect(),
                    });
                }
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        info.ok_or_else(|| ClientError {
            kind: ErrorKind::Other,
            action: "DescribeChangeSet",
            code: None,
            message: "no answer".into(),
        })
    }

    /// The failures `DescribeEvents` reports for a change set (early validation), oldest
    /// first. None when the endpoint has no DescribeEvents (an older region, an emulator):
    /// the change set's StatusReason is then all there is.
    pub async fn change_set_failures(
        &self,
        stack: &str,
        change_set: &str,
    ) -> Result<Option<Vec<FailedEvent>>, ClientError> {
        let mut failures = Vec::new();
        let mut token = None;
        for _ in 0..MAX_PAGES {
            let out = match self
                .cfn
                .describe_events()
                .stack_name(stack)
                .change_set_name(change_set)
                .filters(
                    aws_sdk_cloudformation::types::EventFilter::builder()
                        .failed_events(true)
                        .build(),
                )
                .set_next_token(token)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    let e = to_error("DescribeEvents", e);
                    if is_unsupported(&e) {
                        return Ok(None);
                    }
                    return Err(e);
                }
            };
            for e in out.operation_events() {
                let kind = e
                    .event_type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default();
                // Operation start and end markers are no failures (FailedEvents keeps them).
                if kind == "STACK_EVENT" {
                    continue;
                }
                failures.push(FailedEvent {
                    kind,
                    logical_id: e.logical_resource_id().map(str::to_string),
                    resource_type: e.resource_type().map(str::to_string),
                    validation: e.validation_name().map(str::to_string),
                    path: e.validation_path().map(str::to_string),
                    mode: e.validation_failure_mode().map(|m| m.as_str().to_string()),
                    reason: e
                        .validation_status_reason()
                        .or(e.hook_status_reason())
                        .or(e.resource_status_reason())
                        .map(str::to_string),
                });
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        // The API answers newest first.
        failures.reverse();
        Ok(Some(failures))
    }

    pub async fn execute_change_set(
        &self,
        stack: &str,
        change_set: &str,
        token: &str,
    ) -> Result<(), ClientError> {
        self.cfn
            .execute_change_set()
            .stack_name(stack)
            .change_set_name(change_set)
            .client_request_token(token)
            .send()
            .await
            .map_err(|e| to_error("ExecuteChangeSet", e))?;
        Ok(())
    }

    pub async fn delete_change_set(
        &self,
        stack: &str,
        change_set: &str,
    ) -> Result<(), ClientError> {
        match self
            .cfn
            .delete_change_set()
            .stack_name(stack)
            .change_set_name(change_set)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = to_error("DeleteChangeSet", e);
                if e.kind == ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    pub async fn delete_stack(&self, stack: &str, token: &str) -> Result<(), ClientError> {
        self.cfn
            .delete_stack()
            .stack_name(stack)
            .client_request_token(token)
            .send()
            .await
            .map_err(|e| to_error("DeleteStack", e))?;
        Ok(())
    }

    /// CancelUpdateStack: the update in progress rolls back. Only valid in
    /// `UPDATE_IN_PROGRESS` (else a `ValidationError`); `token` marks the rollback's events
    /// (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CancelUpdateStack.html).
    pub async fn cancel_update_stack(&self, stack: &str, token: &str) -> Result<(), ClientError> {
        self.cfn
            .cancel_update_stack()
            .stack_name(stack)
            .client_request_token(token)
            .send()
            .await
            .map_err(|e| to_error("CancelUpdateStack", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_what_callers_act_on() {
        assert_eq!(
            classify(Some("Throttling"), "Rate exceeded", Some(400)),
            ErrorKind::Throttling
        );
        assert_eq!(
            classify(
                Some("ExpiredToken"),
                "The security token included in the request is expired",
                Some(403)
            ),
            ErrorKind::ExpiredToken
        );
        assert_eq!(
            classify(Some("AccessDenied"), "not authorized", Some(403)),
            ErrorKind::AccessDenied
        );
        assert_eq!(
            classify(
                Some("ValidationError"),
                "Stack with id x does not exist",
                Some(400)
            ),
            ErrorKind::NotFound
        );
        assert_eq!(
            classify(Some("ValidationError"), "Template format error", Some(400)),
            ErrorKind::Validation
        );
        assert_eq!(
            classify(Some("InternalFailure"), "", Some(500)),
            ErrorKind::Transient
        );
        assert_eq!(classify(None, "", Some(503)), ErrorKind::Transient);
        assert_eq!(
            classify(Some("AlreadyExistsException"), "", Some(400)),
            ErrorKind::AlreadyExists
        );
    }

    #[test]
    fn tells_what_to_change() {
        let err = |kind, code: &str| ClientError {
            kind,
            action: "DescribeStackEvents",
            code: Some(code.into()),
            message: "User: arn:aws:sts::1:assumed-role/r is not authorized".into(),
        };
        let expired = err(ErrorKind::ExpiredToken, "ExpiredToken").to_string();
        assert!(expired.contains("role-duration-seconds"), "{expired}");
        let denied = err(ErrorKind::AccessDenied, "AccessDenied").to_string();
        assert!(
            denied.contains("\"cloudformation:DescribeStackEvents\""),
            "{denied}"
        );
        assert!(!err(ErrorKind::ExpiredToken, "ExpiredToken").is_retryable());
        assert!(err(ErrorKind::Transient, "InternalFailure").is_retryable());
    }
}
