//! Mode `plan`'s CloudFormation part: a change set from the template, with its nested stacks'
//! change sets (`IncludeNestedStacks`) and every property's before and after value
//! (`IncludePropertyValues`), read to the last page and never executed.
//!
//! A change set that CloudFormation cannot create (a template error, early validation) or that
//! contains no changes is the plan's result, not an error. A ready one is left for a reviewer
//! (and for mode deploy's `change-set-name` to execute later); an empty or failed one is
//! deleted, since nothing can execute it.

use tokio_util::sync::CancellationToken;

use super::client::{ChangeSetInfo, ErrorKind, FailedEvent, StackClient};
use super::deploy::{
    ChangeSetEnd, ChangeSetSource, DeployRequest, Plan, create_change_set, plan, template_source,
    wait_change_set,
};
use super::monitor::{MonitorSettings, StackError};
use crate::plan::review::StackChanges;

/// The most nested change sets read for one plan (CloudFormation allows 5 levels of nesting;
/// a stack rarely has more than a few dozen nested stacks).
const MAX_NESTED: usize = 500;

/// What came of creating the change set.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Preview {
    Ready {
        name: String,
        id: Option<String>,
        /// The root's changes (path `[]`) and each nested change set's.
        stacks: Vec<StackChanges>,
    },
    NoChanges {
        name: String,
        reason: String,
    },
    Failed {
        name: String,
        reason: String,
        /// Early validation's findings, one line each.
        failures: Vec<String>,
    },
}

/// Creates the change set for `req` and reads it whole; executes nothing.
pub(crate) async fn preview(
    client: &StackClient,
    req: &DeployRequest,
    settings: &MonitorSettings,
    cancel: &CancellationToken,
) -> Result<Preview, StackError> {
    let stack = req.stack_name.as_str();
    // Config guarantees a template in mode plan (change-set-name is mode deploy's).
    let ChangeSetSource::Template(template) = &req.source else {
        return Err(StackError::BadState {
            stack: stack.to_string(),
            problem: "a plan is made from a template, not from an existing change set".into(),
        });
    };
    let (template_body, template_url) = template_source(template).await?;
    let info = client.describe_stack(stack).await?;
    let create = match plan(stack, info.as_ref())? {
        Plan::Create => true,
        Plan::Update => false,
        // Mode deploy would delete it first; a plan changes nothing.
        Plan::ReplaceFailed { .. } => {
            return Err(StackError::BadState {
                stack: stack.to_string(),
                problem: "it is in ROLLBACK_COMPLETE (its first create failed): there is nothing to compare the \
                          template with; mode deploy deletes it and creates it anew"
                    .into(),
            });
        }
    };
    let mut cs = req.change_set(create, template_body, template_url);
    cs.description = Some(format!("deploy-coordinator plan {}", req.correlation_id));
    cs.include_nested_stacks = true;
    let name = cs.change_set_name.clone();
    match create_change_set(client, &mut cs, &req.correlation_id).await {
        Ok(()) => {}
        // A template CloudFormation cannot read is refused by CreateChangeSet itself.
        Err(e) if matches!(e.kind, ErrorKind::Validation | ErrorKind::Other) => {
            return Ok(Preview::Failed {
                name,
                reason: e.message,
                failures: Vec::new(),
            });
        }
        Err(e) => return Err(e.into()),
    }
    match wait_change_set(client, stack, &name, req.deploy_timeout, settings, cancel).await {
        Ok(_) => {}
        Err(ChangeSetEnd::Empty { reason }) => {
            let _ = client.delete_change_set(stack, &name).await;
            return Ok(Preview::NoChanges { name, reason });
        }
        Err(ChangeSetEnd::Failed { reason }) => {
            let failures = match client.change_set_failures(stack, &name).await {
                Ok(failures) => failures.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!("cannot read why change set {name} failed ({e})");
                    Vec::new()
                }
            };
            let _ = client.delete_change_set(stack, &name).await;
            return Ok(Preview::Failed {
                name,
                reason,
                failures: failures.iter().map(failure_line).collect(),
            });
        }
        Err(ChangeSetEnd::Error(e)) => return Err(e),
    }
    let root = client
        .describe_change_set_with(Some(stack), &name, true)
        .await?;
    let id = root.id.clone();
    let stacks = nested(client, root).await?;
    Ok(Preview::Ready { name, id, stacks })
}

/// The root change set and every nested one below it, each with its path of logical ids
/// (mode plan, and the deploy guard before it executes a change set).
pub(crate) async fn nested(
    client: &StackClient,
    root: ChangeSetInfo,
) -> Result<Vec<StackChanges>, StackError> {
    let mut out = vec![StackChanges {
        path: Vec::new(),
        changes: root.changes,
    }];
    let mut next = 0;
    while next < out.len() && out.len() <= MAX_NESTED {
        let parent = out[next].clone();
        next += 1;
        for change in &parent.changes {
            let Some(id) = change.change_set_id.as_deref() else {
                continue;
            };
            let child = client.describe_change_set_with(None, id, true).await?;
            let mut path = parent.path.clone();
            path.push(change.logical_id.clone());
            out.push(StackChanges {
                path,
                changes: child.changes,
            });
        }
    }
    Ok(out)
}

/// `Bucket (AWS::S3::Bucket): NAME_CONFLICT_VALIDATION: Resource of type ... already exists`.
fn failure_line(f: &FailedEvent) -> String {
    let mut line = String::new();
    if let Some(logical) = &f.logical_id {
        line.push_str(logical);
        if let Some(kind) = &f.resource_type {
            line.push_str(&format!(" ({kind})"));
        }
        line.push_str(": ");
    }
    if let Some(validation) = &f.validation {
        line.push_str(validation);
        line.push_str(": ");
    }
    line.push_str(f.reason.as_deref().unwrap_or(&f.kind));
    line
}
