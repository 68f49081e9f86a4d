//! From what a probe found to a [`Check`]: the verdict and the one-line fix. Pure, so every
//! rule a release manager relies on ("a table without TTL fails and says how to turn it on")
//! is a unit test.

use std::time::Duration;

use crate::config::Mode;
use crate::lock::{LockState, LockStatus};
use crate::registry::{TTL_ATTRIBUTE, keys};
use crate::slack::client::{ChannelInfo, Identity, SendError};
use crate::stack::StackInfo;
use crate::stack::deploy::{Plan, plan};
use crate::stack::status::{StackClass, classify};

use super::report::Check;

/// Credentials that expire sooner than this get a warning: a lock wait plus a deployment
/// easily outlasts it, and the post step must still release the lock.
pub(crate) const EXPIRY_WARNING: Duration = Duration::from_secs(15 * 60);

/// Where the policy the fixes point at lives.
const POLICY: &str = "docs/iam-policy.json";

/// Why an AWS call failed, reduced to what decides the verdict and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    /// No answer: connection refused, DNS, timeout, 5xx or throttling after retries.
    Unreachable(String),
    /// The session expired.
    Expired(String),
    /// The caller's credentials were refused or none were found.
    BadCredentials(String),
    /// IAM said no to this action.
    Denied(String),
    /// The table, stack or change set does not exist.
    NotFound(String),
    /// Anything else; the text says what.
    Other(String),
}

impl Fault {
    fn text(&self) -> &str {
        match self {
            Fault::Unreachable(t)
            | Fault::Expired(t)
            | Fault::BadCredentials(t)
            | Fault::Denied(t)
            | Fault::NotFound(t)
            | Fault::Other(t) => t,
        }
    }
}

const CREDENTIALS_FIX: &str = "check the AWS credentials given to the step \
    (aws-actions/configure-aws-credentials; AWS_PROFILE or AWS_ACCESS_KEY_ID outside GitHub)";
const EXPIRED_FIX: &str = "raise `role-duration-seconds` of aws-actions/configure-aws-credentials \
    (1 hour by default) above the lock wait plus the deployment, or refresh the session";

/// The failure of a probe that is not about the probed thing itself (network, credentials):
/// the same verdict and fix whichever service answered.
fn common(name: &'static str, what: &str, fault: &Fault) -> Option<Check> {
    Some(match fault {
        Fault::Unreachable(t) => Check::fail(
            name,
            format!("{what} did not answer: {t}"),
            if what == "DynamoDB" {
                "check the network path to DynamoDB from the runner (region, proxy, VPC endpoint, \
                 AWS_ENDPOINT_URL if set); until then the action falls back to CloudFormation-only \
                 coordination, or fails with on-registry-unavailable: fail"
            } else {
                "check the network path to AWS from the runner (region, proxy, VPC endpoint, \
                 AWS_ENDPOINT_URL if set)"
            },
        ),
        Fault::Expired(t) => Check::fail(name, format!("credentials expired: {t}"), EXPIRED_FIX),
        Fault::BadCredentials(t) => {
            Check::fail(name, format!("credentials refused: {t}"), CREDENTIALS_FIX)
        }
        _ => return None,
    })
}

pub(crate) fn region(region: Option<&str>) -> Check {
    match region {
        Some(r) => Check::pass("aws-region", r),
        None => Check::fail(
            "aws-region",
            "no region: neither the `aws-region` input (--region) nor AWS_REGION is set",
            "set `aws-region` (or AWS_REGION / AWS_DEFAULT_REGION, which configure-aws-credentials exports)",
        ),
    }
}

/// What resolving the credentials gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// Resolved; `expires_in` is None for long-term keys, negative once expired.
    Resolved {
        expires_in: Option<i64>,
    },
    Failed(String),
    TimedOut(Duration),
}

pub(crate) fn credentials(found: &Credentials) -> Check {
    const NAME: &str = "aws-credentials";
    match found {
        Credentials::Resolved { expires_in: None } => {
            Check::pass(NAME, "resolved (long-term keys, no expiry)")
        }
        Credentials::Resolved {
            expires_in: Some(secs),
        } if *secs <= 0 => Check::fail(
            NAME,
            format!(
                "resolved but expired {} ago",
                human_secs(secs.unsigned_abs())
            ),
            EXPIRED_FIX,
        ),
        Credentials::Resolved {
            expires_in: Some(secs),
        } => {
            let left = secs.unsigned_abs();
            let detail = format!("resolved, valid for {} more", human_secs(left));
            if Duration::from_secs(left) < EXPIRY_WARNING {
                Check::warn(
                    NAME,
                    format!(
                        "{detail}: the lock wait, the deployment and the post step's release may outlast them"
                    ),
                    EXPIRED_FIX,
                )
            } else {
                Check::pass(NAME, detail)
            }
        }
        Credentials::Failed(text) => {
            Check::fail(NAME, format!("no credentials: {text}"), CREDENTIALS_FIX)
        }
        Credentials::TimedOut(after) => Check::fail(
            NAME,
            format!(
                "no credentials within {}: the provider chain (web identity, IMDS) hangs",
                human_secs(after.as_secs())
            ),
            CREDENTIALS_FIX,
        ),
    }
}

/// One element of a table's key schema: attribute, HASH or RANGE, and its type (S, N, B).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyElement {
    pub name: String,
    pub key_type: String,
    pub attr_type: Option<String>,
}

fn create_fix(table: &str, region: Option<&str>) -> String {
    let region = region.map(|r| format!(" --region {r}")).unwrap_or_default();
    format!(
        "create it: `deploy-coordinator registry create --table {table}{region}` (or correct `registry-table` / the region)"
    )
}

/// DescribeTable's answer: status and key schema, or the fault.
pub(crate) fn table(
    table: &str,
    region: Option<&str>,
    found: &Result<(String, Vec<KeyElement>), Fault>,
) -> Check {
    const NAME: &str = "registry-table";
    let (status, schema) = match found {
        Ok(found) => found,
        Err(Fault::NotFound(_)) => {
            return Check::fail(
                NAME,
                format!("table {table} does not exist"),
                create_fix(table, region),
            );
        }
        Err(Fault::Denied(t)) => {
            // The action itself never calls DescribeTable: the probes below still prove what
            // it needs, so this only costs the key schema and TTL checks.
            return Check::warn(
                NAME,
                format!("cannot inspect table {table} (DescribeTable denied: {t})"),
                format!(
                    "allow dynamodb:DescribeTable and dynamodb:DescribeTimeToLive on the table (statement DoctorInspectRegistry in {POLICY})"
                ),
            );
        }
        Err(fault) => {
            return common(NAME, "DynamoDB", fault).unwrap_or_else(|| {
                Check::fail(
                    NAME,
                    format!("cannot describe table {table}: {}", fault.text()),
                    "check `registry-table`, the region and the credentials",
                )
            });
        }
    };
    let expected = [(keys::PARTITION_KEY, "HASH"), (keys::SORT_KEY, "RANGE")];
    let matches = schema.len() == expected.len()
        && expected.iter().all(|(name, kind)| {
            schema.iter().any(|k| {
                k.name == *name && k.key_type == *kind && k.attr_type.as_deref() == Some("S")
            })
        });
    if !matches {
        let have: Vec<String> = schema
            .iter()
            .map(|k| {
                format!(
                    "{} {} ({})",
                    k.key_type,
                    k.name,
                    k.attr_type.as_deref().unwrap_or("?")
                )
            })
            .collect();
        return Check::fail(
            NAME,
            format!(
                "table {table} has key schema [{}]; the registry needs HASH {} (S) and RANGE {} (S)",
                have.join(", "),
                keys::PARTITION_KEY,
                keys::SORT_KEY
            ),
            "a key schema cannot be changed: point `registry-table` at a new table made with \
             `deploy-coordinator registry create --table <new-name>` (this one belongs to something else)",
        );
    }
    match status.as_str() {
        "ACTIVE" => Check::pass(
            NAME,
            format!(
                "table {table} is ACTIVE with HASH {} and RANGE {} (strings)",
                keys::PARTITION_KEY,
                keys::SORT_KEY
            ),
        ),
        "CREATING" | "UPDATING" => Check::warn(
            NAME,
            format!("table {table} is {status}"),
            "wait a minute until it is ACTIVE, then run the doctor again",
        ),
        _ => Check::fail(
            NAME,
            format!("table {table} is {status}: it cannot be used"),
            format!(
                "restore access to the table (KMS key, archive) or {}",
                create_fix(table, region)
            ),
        ),
    }
}

/// DescribeTimeToLive's answer: status and attribute.
pub(crate) fn ttl(table: &str, found: &Result<(String, Option<String>), Fault>) -> Check {
    const NAME: &str = "registry-ttl";
    let enable = format!(
        "turn it on: `deploy-coordinator registry create --table {table}` (it completes an existing table's TTL), \
         or UpdateTimeToLive with AttributeName={TTL_ATTRIBUTE}"
    );
    let (status, attribute) = match found {
        Ok(found) => found,
        Err(Fault::Denied(t)) => {
            return Check::warn(
                NAME,
                format!("cannot read the TTL setting (DescribeTimeToLive denied: {t})"),
                format!(
                    "allow dynamodb:DescribeTimeToLive on the table (statement DoctorInspectRegistry in {POLICY})"
                ),
            );
        }
        Err(fault) => {
            return common(NAME, "DynamoDB", fault).unwrap_or_else(|| {
                Check::fail(
                    NAME,
                    format!("cannot read the TTL setting: {}", fault.text()),
                    enable,
                )
            });
        }
    };
    let on = matches!(status.as_str(), "ENABLED" | "ENABLING");
    match attribute.as_deref() {
        Some(a) if on && a == TTL_ATTRIBUTE => Check::pass(
            NAME,
            format!("TTL {} on {TTL_ATTRIBUTE}", status.to_ascii_lowercase()),
        ),
        Some(other) if on => Check::fail(
            NAME,
            format!(
                "TTL is on attribute {other}, not {TTL_ATTRIBUTE}: old queue tickets, audit records and dead letters are never removed"
            ),
            format!(
                "a table has one TTL attribute: disable TTL on {other}, then {}",
                enable.trim_start_matches("turn it on: ")
            ),
        ),
        _ => Check::fail(
            NAME,
            format!(
                "TTL is {} on table {table}: old queue tickets, audit records and dead letters pile up forever",
                status.to_ascii_lowercase()
            ),
            enable,
        ),
    }
}

/// The permission probes on the table: each action with Ok when the answer proves the caller
/// may call it (a designed-to-fail conditional write fails on its condition, after IAM).
pub(crate) fn registry_permissions(
    table: &str,
    region: Option<&str>,
    probes: &[(&'static str, Result<(), Fault>)],
) -> Check {
    const NAME: &str = "registry-permissions";
    let denied: Vec<&str> = probes
        .iter()
        .filter(|(_, r)| matches!(r, Err(Fault::Denied(_))))
        .map(|(action, _)| *action)
        .collect();
    if !denied.is_empty() {
        let actions: Vec<String> = denied.iter().map(|a| format!("dynamodb:{a}")).collect();
        return Check::fail(
            NAME,
            format!("denied on table {table}: {}", actions.join(", ")),
            format!(
                "allow {} on table {table} for the role the step uses (statement AllModesRegistryLockQueueHistoryDeadLetters in {POLICY})",
                actions.join(", ")
            ),
        );
    }
    if let Some((action, Err(fault))) = probes.iter().find(|(_, r)| r.is_err()) {
        if let Fault::NotFound(_) = fault {
            // Only reached when DescribeTable was denied: the probes are what found out.
            return Check::fail(
                NAME,
                format!("{action}: table {table} does not exist"),
                create_fix(table, region),
            );
        }
        return common(NAME, "DynamoDB", fault).unwrap_or_else(|| {
            Check::fail(
                NAME,
                format!("{action} failed: {}", fault.text()),
                "check that the table is the registry (pk/sk strings) and the credentials",
            )
        });
    }
    let actions: Vec<&str> = probes.iter().map(|(a, _)| *a).collect();
    Check::pass(
        NAME,
        format!(
            "{} allowed (writes proved with conditions designed to fail: nothing was written)",
            actions.join(", ")
        ),
    )
}

/// The lock as it stands (informative: a held lock is what the lock is for).
pub(crate) fn lock(key: &str, status: &LockStatus) -> Check {
    const NAME: &str = "lock";
    let queued = status.queue.len();
    let queue = match queued {
        0 => String::new(),
        1 => ", 1 run queued".to_string(),
        n => format!(", {n} runs queued"),
    };
    match &status.lock {
        LockState::Absent => Check::pass(NAME, format!("{key:?} has never been taken{queue}")),
        LockState::Free(f) => {
            Check::pass(NAME, format!("{key:?} is free (fence {}){queue}", f.fence))
        }
        LockState::Held(r) => Check::pass(
            NAME,
            format!(
                "{key:?} is held by {} since {} (fence {}){queue}: a run now would queue",
                r.info.describe(),
                r.acquired_at,
                r.fence
            ),
        ),
    }
}

/// The stack as it stands, judged for the mode the action runs in.
pub(crate) fn stack(name: &str, mode: Mode, found: &Result<Option<StackInfo>, Fault>) -> Check {
    const NAME: &str = "stack";
    let info = match found {
        Ok(info) => info,
        Err(Fault::Denied(t)) => {
            return Check::fail(
                NAME,
                format!("cloudformation:DescribeStacks denied: {t}"),
                format!(
                    "allow cloudformation:DescribeStacks on the stack (statement AllModesReadStackAndNestedStacks in {POLICY})"
                ),
            );
        }
        Err(fault) => {
            return common(NAME, "CloudFormation", fault).unwrap_or_else(|| {
                Check::fail(
                    NAME,
                    format!("cannot describe stack {name}: {}", fault.text()),
                    "check `stack-name` and the region",
                )
            });
        }
    };
    let Some(info) = info else {
        return match mode {
            Mode::Deploy => Check::pass(
                NAME,
                format!("{name} does not exist yet: the deployment creates it"),
            ),
            Mode::Plan => Check::pass(
                NAME,
                format!("{name} does not exist yet: the plan shows every resource as added"),
            ),
            Mode::Monitor | Mode::Lock => Check::warn(
                NAME,
                format!(
                    "{name} does not exist: mode {} waits for something else to create it",
                    mode.as_str()
                ),
                "check `stack-name` and the region if the stack should exist",
            ),
        };
    };
    let since = info
        .last_updated
        .map(|t| {
            format!(
                " since {}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        })
        .unwrap_or_default();
    let status = info.status.as_str();
    match classify(status) {
        StackClass::InProgress if mode == Mode::Monitor => Check::pass(
            NAME,
            format!("{name} is {status}{since}: the step follows this operation"),
        ),
        StackClass::InProgress => Check::warn(
            NAME,
            format!(
                "{name} is {status}{since}: the step waits for it to settle (up to deploy-timeout)"
            ),
            "find who runs this operation outside the lock (console, another pipeline) and let it end",
        ),
        StackClass::Succeeded | StackClass::RolledBack | StackClass::Review => {
            Check::pass(NAME, format!("{name} is {status}{since}"))
        }
        StackClass::Failed => match (mode, plan(name, Some(info))) {
            (Mode::Deploy, Ok(Plan::ReplaceFailed { .. })) => Check::warn(
                NAME,
                format!(
                    "{name} is {status}{since}: its first create failed; the deployment deletes it and creates it again"
                ),
                "nothing to do if that is intended; otherwise look at its events before deploying",
            ),
            (_, Err(e)) => {
                let problem = e.to_string();
                let detail = format!("{name} is {status}{since}");
                if mode == Mode::Deploy {
                    Check::fail(NAME, detail, problem)
                } else {
                    Check::warn(NAME, detail, problem)
                }
            }
            (_, Ok(_)) => Check::warn(
                NAME,
                format!("{name} is {status}{since}: its last operation failed"),
                "look at the stack's events before the next deployment",
            ),
        },
    }
}

/// The read-only probes on CloudFormation; `NotFound` answers prove the permission (IAM
/// decides before CloudFormation looks the stack or change set up).
pub(crate) fn stack_permissions(mode: Mode, probes: &[(&'static str, Result<(), Fault>)]) -> Check {
    const NAME: &str = "stack-permissions";
    let denied: Vec<String> = probes
        .iter()
        .filter(|(_, r)| matches!(r, Err(Fault::Denied(_))))
        .map(|(action, _)| format!("cloudformation:{action}"))
        .collect();
    if !denied.is_empty() {
        return Check::fail(
            NAME,
            format!("denied: {}", denied.join(", ")),
            format!(
                "allow {} on the stack for the role the step uses ({POLICY})",
                denied.join(", ")
            ),
        );
    }
    for (action, result) in probes {
        match result {
            Ok(()) | Err(Fault::NotFound(_)) => {}
            Err(fault) => {
                return common(NAME, "CloudFormation", fault).unwrap_or_else(|| {
                    Check::fail(
                        NAME,
                        format!("{action} failed: {}", fault.text()),
                        "check `stack-name`, the region and the credentials",
                    )
                });
            }
        }
    }
    let proved: Vec<&str> = probes.iter().map(|(a, _)| *a).collect();
    let mut detail = format!("{} allowed", proved.join(", "));
    if mode.uses_template() {
        detail.push_str(
            "; CreateChangeSet, ExecuteChangeSet, DeleteChangeSet and DeleteStack cannot be proved \
             without side effects: compare the role with statement DeployModeChangeSets",
        );
    }
    Check::pass(NAME, detail)
}

const SLACK_TOKEN_FIX: &str = "store a working bot token (xoxb-…) in the secret given as \
    slack-bot-token: reinstall the Slack app to the workspace if it was revoked";

/// A Slack failure that is about reaching Slack, not about the token or channel.
fn slack_transport(name: &'static str, api_url: &str, e: &SendError) -> Option<Check> {
    Some(match e {
        SendError::Timeout | SendError::Connection(_) | SendError::BadAnswer(_) => Check::fail(
            name,
            format!("cannot talk to Slack at {api_url}: {e}"),
            "check slack-api-url and the runner's network (the deployment itself never waits for Slack)",
        ),
        SendError::RateLimited { .. } => Check::warn(
            name,
            e.to_string(),
            "nothing to do: the notifier honours Retry-After; run the doctor again later",
        ),
        SendError::Status { status, .. } if *status >= 500 => Check::warn(
            name,
            e.to_string(),
            "Slack has a problem (https://slack-status.com); messages are retried and dead-lettered",
        ),
        _ => return None,
    })
}

/// `auth.test`'s answer for the bot token.
pub(crate) fn slack_auth(api_url: &str, found: &Result<Identity, SendError>) -> Check {
    const NAME: &str = "slack-auth";
    match found {
        Ok(id) => Check::pass(
            NAME,
            format!(
                "token works: bot {} in workspace {}",
                id.user.as_deref().unwrap_or("?"),
                id.team.as_deref().unwrap_or("?")
            ),
        ),
        Err(e) => slack_transport(NAME, api_url, e).unwrap_or_else(|| {
            Check::fail(
                NAME,
                format!("Slack refused the token: {e}"),
                SLACK_TOKEN_FIX,
            )
        }),
    }
}

/// Whether `channel` looks like a conversation ID (C…, G…, D…) rather than a name: only IDs
/// can be looked up without listing every channel of the workspace.
pub(crate) fn is_channel_id(channel: &str) -> bool {
    channel.len() >= 9
        && channel.starts_with(['C', 'G', 'D'])
        && channel
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// `conversations.info`'s answer for the configured channel.
pub(crate) fn slack_channel(
    channel: &str,
    api_url: &str,
    identity: Option<&Identity>,
    found: &Result<ChannelInfo, SendError>,
) -> Check {
    const NAME: &str = "slack-channel";
    let bot = identity
        .and_then(|i| i.user.as_deref())
        .map(|u| format!("@{u}"))
        .unwrap_or_else(|| "the bot".to_string());
    let info = match found {
        Ok(info) => info,
        Err(SendError::Api { code }) if code == "missing_scope" => {
            return Check::warn(
                NAME,
                format!("cannot check channel {channel}: the token lacks the scope to read it"),
                "add channels:read (groups:read for a private channel) to the Slack app, or check by hand that the bot is in the channel",
            );
        }
        Err(SendError::Api { code }) if code == "channel_not_found" => {
            return Check::fail(
                NAME,
                format!("channel {channel} not found (or private without {bot} in it)"),
                format!(
                    "check slack-channel, and invite {bot} with `/invite {bot}` in the channel"
                ),
            );
        }
        Err(e) => {
            return slack_transport(NAME, api_url, e).unwrap_or_else(|| {
                Check::fail(
                    NAME,
                    format!("cannot check channel {channel}: {e}"),
                    "check slack-channel and the token's scopes",
                )
            });
        }
    };
    let shown = info
        .name
        .as_deref()
        .map(|n| format!("#{n} ({})", info.id))
        .unwrap_or_else(|| info.id.clone());
    if info.is_archived {
        return Check::fail(
            NAME,
            format!("{shown} is archived: nothing can be posted there"),
            "unarchive it or set slack-channel to another channel",
        );
    }
    if info.is_member {
        return Check::pass(NAME, format!("{bot} is a member of {shown}"));
    }
    let public_scope = identity
        .and_then(|i| i.scopes.as_ref())
        .is_some_and(|s| s.iter().any(|s| s == "chat:write.public"));
    if public_scope && !info.is_private {
        return Check::pass(
            NAME,
            format!("{bot} is not in {shown}, but chat:write.public lets it post there"),
        );
    }
    Check::fail(
        NAME,
        format!("{bot} is not a member of {shown}: posting fails with not_in_channel"),
        format!("invite it: `/invite {bot}` in {shown}"),
    )
}

/// The channel is a name: membership cannot be checked without listing the workspace.
pub(crate) fn slack_channel_name(channel: &str) -> Check {
    Check::warn(
        "slack-channel",
        format!("{channel} is a channel name: only a channel ID can be checked for membership"),
        "use the channel ID (C0123456789: channel details, at the bottom) as slack-channel",
    )
}

/// A webhook probe (an empty payload): HTTP status and body.
pub(crate) fn slack_webhook(found: &Result<(u16, String), SendError>) -> Check {
    const NAME: &str = "slack-webhook";
    let renew = "create a new incoming webhook for the channel and store its URL in the secret given as slack-webhook-url";
    match found {
        // A live webhook refuses an empty payload before posting anything.
        Ok((400, body))
            if ["no_text", "invalid_payload", "missing_text"]
                .iter()
                .any(|c| body.contains(c)) =>
        {
            Check::pass(
                NAME,
                format!(
                    "webhook is live (an empty probe was refused with {body}; nothing was posted)"
                ),
            )
        }
        Ok((200, _)) => Check::pass(NAME, "webhook is live"),
        Ok((status @ (403 | 404 | 410), body)) => Check::fail(
            NAME,
            format!("webhook refused with HTTP {status} {body}: revoked, or its channel archived"),
            renew,
        ),
        Ok((status, body)) => Check::fail(
            NAME,
            format!("webhook answered HTTP {status} {body}"),
            renew,
        ),
        Err(e) => slack_transport(NAME, "the webhook", e)
            .unwrap_or_else(|| Check::fail(NAME, format!("webhook failed: {e}"), renew)),
    }
}

/// What asking GitHub for the run gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GitHubAnswer {
    /// 200 with the run's status.
    Read {
        what: String,
        status: Option<String>,
    },
    /// An HTTP error status with GitHub's message.
    Status { code: u16, message: String },
    /// No answer (network, timeout).
    Unreachable(String),
}

const CROSS_REPO: &str = "a lock shared with other repositories also needs a token that reads \
    their runs (GitHub App or fine-grained token with actions: read on each)";

pub(crate) fn github(token_given: bool, answer: Option<&GitHubAnswer>) -> Check {
    const NAME: &str = "github";
    if !token_given {
        return Check::warn(
            NAME,
            "no github-token: a holder whose run died keeps the lock until its lease ends",
            "pass `github-token: ${{ github.token }}` with `permissions: actions: read`",
        );
    }
    let Some(answer) = answer else {
        return Check::skip(
            NAME,
            "no run to read: set GITHUB_REPOSITORY and GITHUB_RUN_ID (or --repository / --run-id)",
        );
    };
    match answer {
        GitHubAnswer::Read { what, status } => {
            let status = status
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            Check::pass(
                NAME,
                format!("the token reads {what}{status}; {CROSS_REPO}"),
            )
        }
        GitHubAnswer::Status { code: 401, message } => Check::fail(
            NAME,
            format!("GitHub refused the token (401 {message})"),
            "pass a valid token: `github-token: ${{ github.token }}` or a GitHub App token",
        ),
        GitHubAnswer::Status { code, message } => Check::warn(
            NAME,
            format!(
                "the token cannot read workflow runs ({code} {message}): dead holders are freed only by their lease"
            ),
            "grant `permissions: actions: read` to the job (and `deployments: write` for github-deployment)",
        ),
        GitHubAnswer::Unreachable(t) => Check::warn(
            NAME,
            format!("GitHub API did not answer: {t}"),
            "check GITHUB_API_URL and the network; the lock then relies on its lease alone",
        ),
    }
}

fn human_secs(secs: u64) -> String {
    crate::duration::human(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Verdict;

    fn key(name: &str, kind: &str, ty: &str) -> KeyElement {
        KeyElement {
            name: name.into(),
            key_type: kind.into(),
            attr_type: Some(ty.into()),
        }
    }

    fn registry_keys() -> Vec<KeyElement> {
        vec![key("pk", "HASH", "S"), key("sk", "RANGE", "S")]
    }

    #[test]
    fn credentials_warn_below_fifteen_minutes_and_fail_once_expired() {
        let at = |secs| {
            credentials(&Credentials::Resolved {
                expires_in: Some(secs),
            })
        };
        assert_eq!(at(3600).verdict, Verdict::Pass);
        assert!(at(3600).detail.contains("1h"), "{}", at(3600).detail);
        let soon = at(14 * 60);
        assert_eq!(soon.verdict, Verdict::Warn);
        assert!(soon.fix.unwrap().contains("role-duration-seconds"));
        assert_eq!(at(15 * 60).verdict, Verdict::Pass);
        assert_eq!(at(-5).verdict, Verdict::Fail);
        assert_eq!(
            credentials(&Credentials::Resolved { expires_in: None }).verdict,
            Verdict::Pass
        );
        assert_eq!(
            credentials(&Credentials::Failed("no providers in chain".into())).verdict,
            Verdict::Fail
        );
    }

    #[test]
    fn region_must_resolve() {
        assert_eq!(region(Some("eu-west-1")).verdict, Verdict::Pass);
        let none = region(None);
        assert_eq!(none.verdict, Verdict::Fail);
        assert!(none.fix.unwrap().contains("aws-region"));
    }

    #[test]
    fn the_table_needs_pk_and_sk_strings_and_to_be_active() {
        let ok = table("reg", None, &Ok(("ACTIVE".into(), registry_keys())));
        assert_eq!(ok.verdict, Verdict::Pass);
        for wrong in [
            vec![key("id", "HASH", "S")],
            vec![key("pk", "HASH", "S")],
            vec![key("pk", "HASH", "S"), key("sk", "RANGE", "N")],
            vec![key("sk", "HASH", "S"), key("pk", "RANGE", "S")],
        ] {
            let c = table("reg", None, &Ok(("ACTIVE".into(), wrong.clone())));
            assert_eq!(c.verdict, Verdict::Fail, "{wrong:?}");
            assert!(c.fix.unwrap().contains("registry create --table"));
        }
        assert_eq!(
            table("reg", None, &Ok(("CREATING".into(), registry_keys()))).verdict,
            Verdict::Warn
        );
        assert_eq!(
            table("reg", None, &Ok(("DELETING".into(), registry_keys()))).verdict,
            Verdict::Fail
        );
        let missing = table("reg", Some("eu-west-1"), &Err(Fault::NotFound("x".into())));
        assert_eq!(missing.verdict, Verdict::Fail);
        assert!(
            missing
                .fix
                .unwrap()
                .contains("deploy-coordinator registry create --table reg --region eu-west-1")
        );
        // The action never calls DescribeTable: being unable to is a warning, not a blocker.
        assert_eq!(
            table("reg", None, &Err(Fault::Denied("no".into()))).verdict,
            Verdict::Warn
        );
        let down = table("reg", None, &Err(Fault::Unreachable("refused".into())));
        assert_eq!(down.verdict, Verdict::Fail);
        assert!(down.fix.unwrap().contains("falls back"));
    }

    #[test]
    fn ttl_must_be_on_expires_at() {
        let ttl_of = |status: &str, attr: Option<&str>| {
            ttl("reg", &Ok((status.to_string(), attr.map(str::to_string))))
        };
        assert_eq!(ttl_of("ENABLED", Some("expires_at")).verdict, Verdict::Pass);
        assert_eq!(
            ttl_of("ENABLING", Some("expires_at")).verdict,
            Verdict::Pass
        );
        let off = ttl_of("DISABLED", None);
        assert_eq!(off.verdict, Verdict::Fail);
        assert!(
            off.fix
                .unwrap()
                .contains("deploy-coordinator registry create --table reg")
        );
        let other = ttl_of("ENABLED", Some("ttl"));
        assert_eq!(other.verdict, Verdict::Fail);
        assert!(other.fix.unwrap().contains("disable TTL on ttl"));
    }

    #[test]
    fn denied_table_actions_are_named_in_the_fix() {
        let probes = [
            ("GetItem", Ok(())),
            ("Query", Ok(())),
            (
                "PutItem",
                Err(Fault::Denied("AccessDeniedException".into())),
            ),
            ("UpdateItem", Ok(())),
            (
                "DeleteItem",
                Err(Fault::Denied("AccessDeniedException".into())),
            ),
        ];
        let c = registry_permissions("reg", None, &probes);
        assert_eq!(c.verdict, Verdict::Fail);
        let fix = c.fix.unwrap();
        assert!(
            fix.contains("dynamodb:PutItem, dynamodb:DeleteItem"),
            "{fix}"
        );
        assert!(fix.contains("docs/iam-policy.json"));
        let all_ok: Vec<(&'static str, Result<(), Fault>)> = ["GetItem", "Query"]
            .into_iter()
            .map(|a| (a, Ok(())))
            .collect();
        assert_eq!(
            registry_permissions("reg", None, &all_ok).verdict,
            Verdict::Pass
        );
    }

    fn info(status: &str) -> StackInfo {
        StackInfo {
            stack_id: "arn:aws:cloudformation:eu-west-1:1:stack/app/1".into(),
            name: "app".into(),
            status: status.into(),
            status_reason: None,
            last_updated: None,
            outputs: vec![],
            last_operations: vec![],
        }
    }

    #[test]
    fn the_stack_state_is_judged_for_the_mode() {
        let at = |mode, status: Option<&str>| stack("app", mode, &Ok(status.map(info))).verdict;
        assert_eq!(at(Mode::Deploy, None), Verdict::Pass);
        assert_eq!(at(Mode::Monitor, None), Verdict::Warn);
        assert_eq!(at(Mode::Deploy, Some("UPDATE_COMPLETE")), Verdict::Pass);
        assert_eq!(
            at(Mode::Deploy, Some("UPDATE_ROLLBACK_COMPLETE")),
            Verdict::Pass
        );
        assert_eq!(at(Mode::Deploy, Some("UPDATE_IN_PROGRESS")), Verdict::Warn);
        assert_eq!(at(Mode::Monitor, Some("UPDATE_IN_PROGRESS")), Verdict::Pass);
        assert_eq!(at(Mode::Deploy, Some("ROLLBACK_COMPLETE")), Verdict::Warn);
        assert_eq!(
            at(Mode::Monitor, Some("UPDATE_ROLLBACK_FAILED")),
            Verdict::Warn
        );
        let stuck = stack(
            "app",
            Mode::Deploy,
            &Ok(Some(info("UPDATE_ROLLBACK_FAILED"))),
        );
        assert_eq!(stuck.verdict, Verdict::Fail);
        assert!(stuck.fix.unwrap().contains("ContinueUpdateRollback"));
        let denied = stack("app", Mode::Lock, &Err(Fault::Denied("no".into())));
        assert_eq!(denied.verdict, Verdict::Fail);
        assert!(
            denied
                .fix
                .unwrap()
                .contains("cloudformation:DescribeStacks")
        );
    }

    #[test]
    fn stack_permission_probes_accept_not_found_and_name_denials() {
        let probes = [
            ("DescribeStacks", Ok(())),
            ("DescribeStackEvents", Err(Fault::NotFound("gone".into()))),
            ("DescribeChangeSet", Err(Fault::Denied("no".into()))),
        ];
        let c = stack_permissions(Mode::Deploy, &probes);
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.fix.unwrap().contains("cloudformation:DescribeChangeSet"));
        let c = stack_permissions(Mode::Deploy, &probes[..2]);
        assert_eq!(c.verdict, Verdict::Pass);
        assert!(c.detail.contains("CreateChangeSet"), "{}", c.detail);
        assert!(
            !stack_permissions(Mode::Lock, &probes[..2])
                .detail
                .contains("CreateChangeSet")
        );
    }

    fn identity(scopes: &[&str]) -> Identity {
        Identity {
            user: Some("deploybot".into()),
            user_id: Some("U1".into()),
            team: Some("Acme".into()),
            scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn channel_info(member: bool, archived: bool) -> ChannelInfo {
        ChannelInfo {
            id: "C0123456789".into(),
            name: Some("deploys".into()),
            is_member: member,
            is_archived: archived,
            is_private: false,
        }
    }

    #[test]
    fn slack_token_and_channel_membership() {
        let api = "https://slack.com/api";
        assert_eq!(slack_auth(api, &Ok(identity(&[]))).verdict, Verdict::Pass);
        let bad = slack_auth(
            api,
            &Err(SendError::Api {
                code: "invalid_auth".into(),
            }),
        );
        assert_eq!(bad.verdict, Verdict::Fail);
        assert!(bad.detail.contains("invalid_auth"));
        assert!(bad.fix.unwrap().contains("slack-bot-token"));
        let id = identity(&["chat:write"]);
        let check = |found| slack_channel("C0123456789", api, Some(&id), &found);
        assert_eq!(check(Ok(channel_info(true, false))).verdict, Verdict::Pass);
        let out = check(Ok(channel_info(false, false)));
        assert_eq!(out.verdict, Verdict::Fail);
        assert!(out.fix.unwrap().contains("/invite @deploybot"));
        assert_eq!(check(Ok(channel_info(true, true))).verdict, Verdict::Fail);
        let public = identity(&["chat:write", "chat:write.public"]);
        assert_eq!(
            slack_channel(
                "C0123456789",
                api,
                Some(&public),
                &Ok(channel_info(false, false))
            )
            .verdict,
            Verdict::Pass
        );
        assert_eq!(
            check(Err(SendError::Api {
                code: "missing_scope".into()
            }))
            .verdict,
            Verdict::Warn
        );
        assert_eq!(
            check(Err(SendError::Api {
                code: "channel_not_found".into()
            }))
            .verdict,
            Verdict::Fail
        );
        assert!(is_channel_id("C0123456789"));
        assert!(!is_channel_id("#deploys"));
        assert!(!is_channel_id("deploys"));
    }

    #[test]
    fn webhook_probe_answers() {
        assert_eq!(
            slack_webhook(&Ok((400, "no_text".into()))).verdict,
            Verdict::Pass
        );
        for status in [403, 404, 410] {
            let c = slack_webhook(&Ok((status, "no_service".into())));
            assert_eq!(c.verdict, Verdict::Fail, "{status}");
            assert!(c.fix.unwrap().contains("new incoming webhook"));
        }
        assert_eq!(
            slack_webhook(&Err(SendError::Timeout)).verdict,
            Verdict::Fail
        );
    }

    #[test]
    fn github_token_checks_say_what_a_cross_repository_lock_needs() {
        assert_eq!(github(false, None).verdict, Verdict::Warn);
        assert_eq!(github(true, None).verdict, Verdict::Skip);
        let read = github(
            true,
            Some(&GitHubAnswer::Read {
                what: "run 1 of acme/api".into(),
                status: Some("in_progress".into()),
            }),
        );
        assert_eq!(read.verdict, Verdict::Pass);
        assert!(read.detail.contains("actions: read on each"));
        let refused = github(
            true,
            Some(&GitHubAnswer::Status {
                code: 401,
                message: "Bad credentials".into(),
            }),
        );
        assert_eq!(refused.verdict, Verdict::Fail);
        let forbidden = github(
            true,
            Some(&GitHubAnswer::Status {
                code: 403,
                message: "Resource not accessible by integration".into(),
            }),
        );
        assert_eq!(forbidden.verdict, Verdict::Warn);
        assert!(forbidden.fix.unwrap().contains("actions: read"));
    }
}
