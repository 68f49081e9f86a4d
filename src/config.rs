//! The action's inputs, parsed and validated before anything touches the network.
//!
//! Every input is checked here, at once, so a typo fails the step in a second with an error that
//! names the input and says what is accepted, with nothing taken (no lock, no change set, no
//! Slack message). What each value drives is implemented elsewhere; this module only turns
//! text into types.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::action::Inputs;
use crate::{correlation, duration};

/// What the step does once it holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create and execute a change set from `template`, follow it to the end.
    Deploy,
    /// Follow the operation already running, or the next one to start.
    Monitor,
    /// Hold the lock until the post step, for jobs that deploy with other tools.
    Lock,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Deploy => "deploy",
            Mode::Monitor => "monitor",
            Mode::Lock => "lock",
        }
    }
}

/// What to do when the registry table cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRegistryUnavailable {
    /// Coordinate through CloudFormation alone (wait while the stack is busy), with a warning.
    Fallback,
    /// Fail the step.
    Fail,
}

/// Where the template comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    /// A file in the workspace.
    File(PathBuf),
    /// An `https://` URL (S3), passed to CloudFormation as `TemplateURL`.
    Url(String),
}

/// How Slack is reached, if at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackTarget {
    None,
    Bot { token: String, channel: String },
    Webhook { url: String },
}

/// Every input of the action, typed.
#[derive(Debug, Clone)]
pub struct Config {
    pub stack_name: String,
    pub mode: Mode,
    pub template: Option<Template>,
    pub parameters: Vec<(String, String)>,
    pub capabilities: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub role_arn: Option<String>,
    pub fail_on_empty_changeset: bool,
    pub environment: Option<String>,
    pub lock_key: String,
    pub registry_table: String,
    pub lock_timeout: Duration,
    pub lock_lease: Duration,
    pub on_registry_unavailable: OnRegistryUnavailable,
    /// What a run does when the lock is frozen: wait (default) or fail at once.
    pub on_freeze: crate::lock::OnFreeze,
    pub deploy_timeout: Duration,
    pub start_timeout: Duration,
    pub slack: SlackTarget,
    pub slack_mention_on_failure: Option<String>,
    pub slack_api_url: String,
    pub github_token: Option<String>,
    pub github_deployment: bool,
    pub correlation_id: Option<String>,
    pub aws_region: Option<String>,
    /// Run the doctor's checks before touching the lock, and fail the step if one fails.
    pub preflight: bool,
}

/// A bad input: which one, what it was, and what is accepted.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("input '{input}': {problem}")]
pub struct InputError {
    pub input: &'static str,
    pub problem: String,
}

fn bad(input: &'static str, problem: impl Into<String>) -> InputError {
    InputError {
        input,
        problem: problem.into(),
    }
}

/// One declared input: the list `action.yml` must match (a test checks it).
pub struct InputSpec {
    pub name: &'static str,
    pub secret: bool,
}

const fn spec(name: &'static str) -> InputSpec {
    InputSpec {
        name,
        secret: false,
    }
}
const fn secret(name: &'static str) -> InputSpec {
    InputSpec { name, secret: true }
}

/// Every input the action declares, in `action.yml` order.
pub const INPUTS: &[InputSpec] = &[
    spec("stack-name"),
    spec("mode"),
    spec("template"),
    spec("parameters"),
    spec("capabilities"),
    spec("tags"),
    spec("role-arn"),
    spec("fail-on-empty-changeset"),
    spec("environment"),
    spec("lock-key"),
    spec("registry-table"),
    spec("lock-timeout"),
    spec("lock-lease"),
    spec("on-registry-unavailable"),
    spec("on-freeze"),
    spec("deploy-timeout"),
    spec("start-timeout"),
    secret("slack-bot-token"),
    spec("slack-channel"),
    secret("slack-webhook-url"),
    spec("slack-mention-on-failure"),
    spec("slack-api-url"),
    secret("github-token"),
    spec("github-deployment"),
    spec("correlation-id"),
    spec("aws-region"),
    spec("preflight"),
];

/// The lease when a heartbeat keeps the lock alive (modes deploy and monitor): a crashed
/// holder blocks the queue for at most this long.
pub const DEFAULT_LEASE_WITH_HEARTBEAT: Duration = Duration::from_secs(60);
/// The lease in mode `lock`, where nothing runs between the main and the post step to renew
/// it: GitHub-hosted jobs end after 6 hours at most, and a dead run is found earlier through
/// the GitHub API.
pub const DEFAULT_LEASE_LOCK_MODE: Duration = Duration::from_secs(6 * 3600);

impl Config {
    /// What a lease longer than the wait means, when it is (mode lock's defaults: 6 h lease,
    /// 60 min lock-timeout). Not an error: waiters hand on how long they watched a dead holder,
    /// so it is freed once they have watched it for a lease between them; a dead run that the
    /// GitHub API can report on is freed at once.
    pub fn lease_note(&self) -> Option<String> {
        (self.lock_lease > self.lock_timeout).then(|| {
            format!(
                "lock-lease ({}) is longer than lock-timeout ({}): a holder that died where the GitHub API cannot tell \
                 (another repository without a token that can read it) is freed only once waiters have watched it \
                 for a whole lease between them. A shorter lock-lease frees it sooner.",
                crate::duration::human(self.lock_lease),
                crate::duration::human(self.lock_timeout)
            )
        })
    }
}

/// Registers every secret input with the runner's masking before anything is printed.
pub fn mask_secrets(inputs: &Inputs) {
    for input in INPUTS.iter().filter(|i| i.secret) {
        if let Some(value) = inputs.get(input.name) {
            crate::action::log::add_mask(value);
        }
    }
}

impl Config {
    /// Parses and validates every input. `workspace` resolves a relative template path.
    pub fn from_inputs(inputs: &Inputs, workspace: &std::path::Path) -> Result<Config, InputError> {
        let stack_name = inputs.get("stack-name").ok_or_else(|| {
            bad(
                "stack-name",
                "is required: the name of the CloudFormation stack to deploy or watch",
            )
        })?;
        validate_stack_name(stack_name)?;

        let template = inputs
            .get("template")
            .map(|t| parse_template(t, workspace))
            .transpose()?;
        let mode = match inputs.get("mode") {
            None if template.is_some() => Mode::Deploy,
            None => Mode::Monitor,
            Some("deploy") => Mode::Deploy,
            Some("monitor") => Mode::Monitor,
            Some("lock") => Mode::Lock,
            Some(other) => {
                return Err(bad(
                    "mode",
                    format!("{other:?} is not a mode: use deploy, monitor or lock"),
                ));
            }
        };
        match (mode, &template) {
            (Mode::Deploy, None) => {
                return Err(bad(
                    "template",
                    "is required in mode deploy: a template file in the workspace or an https:// URL",
                ));
            }
            (Mode::Monitor | Mode::Lock, Some(_)) => {
                return Err(bad(
                    "template",
                    format!(
                        "is only used in mode deploy, but mode is {}: remove it or set mode: deploy",
                        mode.as_str()
                    ),
                ));
            }
            _ => {}
        }

        let parameters = inputs
            .get("parameters")
            .map(|p| parse_pairs("parameters", p))
            .transpose()?
            .unwrap_or_default();
        let tags = inputs
            .get("tags")
            .map(|p| parse_pairs("tags", p))
            .transpose()?
            .unwrap_or_default();
        let capabilities = inputs
            .get("capabilities")
            .map(parse_capabilities)
            .transpose()?
            .unwrap_or_default();
        if mode != Mode::Deploy {
            for (name, given) in [
                ("parameters", !parameters.is_empty()),
                ("tags", !tags.is_empty()),
                ("capabilities", !capabilities.is_empty()),
            ] {
                if given {
                    let name: &'static str = name;
                    return Err(bad(
                        name,
                        format!("is only used in mode deploy, but mode is {}", mode.as_str()),
                    ));
                }
            }
        }
        let role_arn = inputs
            .get("role-arn")
            .map(|r| validate_role_arn(r).map(|()| r.to_string()))
            .transpose()?;

        let environment = inputs.get("environment").map(str::to_string);
        if let Some(env) = &environment
            && (env.len() > 255 || env.chars().any(char::is_control))
        {
            return Err(bad(
                "environment",
                "must be at most 255 characters without control characters",
            ));
        }
        let lock_key = match inputs.get("lock-key") {
            Some(key) => key.to_string(),
            None => environment
                .clone()
                .unwrap_or_else(|| stack_name.to_string()),
        };
        validate_lock_key(&lock_key)?;

        let registry_table = inputs
            .get("registry-table")
            .unwrap_or("deployment-registry")
            .to_string();
        validate_table_name(&registry_table)?;

        let lock_timeout = duration_input(inputs, "lock-timeout", "60m")?;
        let lock_lease = match inputs.get("lock-lease") {
            Some(_) => duration_input(inputs, "lock-lease", "")?,
            None if mode == Mode::Lock => DEFAULT_LEASE_LOCK_MODE,
            None => DEFAULT_LEASE_WITH_HEARTBEAT,
        };
        if lock_lease < Duration::from_secs(1) {
            return Err(bad(
                "lock-lease",
                "must be at least 1s: the heartbeat renews the lock every third of it",
            ));
        }
        let on_registry_unavailable =
            match inputs.get("on-registry-unavailable").unwrap_or("fallback") {
                "fallback" => OnRegistryUnavailable::Fallback,
                "fail" => OnRegistryUnavailable::Fail,
                other => {
                    return Err(bad(
                        "on-registry-unavailable",
                        format!("{other:?} is not accepted: use fallback or fail"),
                    ));
                }
            };
        let on_freeze = crate::lock::OnFreeze::parse(inputs.get("on-freeze").unwrap_or("wait"))
            .map_err(|e| bad("on-freeze", e))?;
        let deploy_timeout = duration_input(inputs, "deploy-timeout", "120m")?;
        let start_timeout = duration_input(inputs, "start-timeout", "15m")?;
        for (name, value) in [
            ("deploy-timeout", deploy_timeout),
            ("start-timeout", start_timeout),
        ] {
            if value.is_zero() {
                let name: &'static str = name;
                return Err(bad(name, "must be longer than 0s"));
            }
        }

        let slack = parse_slack(inputs)?;
        let slack_mention_on_failure = inputs.get("slack-mention-on-failure").map(str::to_string);
        if slack_mention_on_failure.is_some() && slack == SlackTarget::None {
            return Err(bad(
                "slack-mention-on-failure",
                "needs Slack: set slack-bot-token and slack-channel, or slack-webhook-url",
            ));
        }
        let slack_api_url = inputs
            .get("slack-api-url")
            .unwrap_or("https://slack.com/api")
            .trim_end_matches('/')
            .to_string();
        if !(slack_api_url.starts_with("https://") || slack_api_url.starts_with("http://")) {
            return Err(bad(
                "slack-api-url",
                format!("{slack_api_url:?} is not an http(s) URL"),
            ));
        }

        let github_token = inputs.get("github-token").map(str::to_string);
        let github_deployment = bool_input(inputs, "github-deployment", false)?;
        let fail_on_empty_changeset = bool_input(inputs, "fail-on-empty-changeset", false)?;

        let correlation_id = inputs.get("correlation-id").map(str::to_string);
        if let Some(id) = &correlation_id {
            correlation::validate(id).map_err(|e| bad("correlation-id", e.to_string()))?;
        }
        let aws_region = inputs.get("aws-region").map(str::to_string);
        if let Some(region) = &aws_region {
            validate_region(region)?;
        }
        let preflight = bool_input(inputs, "preflight", false)?;

        Ok(Config {
            stack_name: stack_name.to_string(),
            mode,
            template,
            parameters,
            capabilities,
            tags,
            role_arn,
            fail_on_empty_changeset,
            environment,
            lock_key,
            registry_table,
            lock_timeout,
            lock_lease,
            on_registry_unavailable,
            on_freeze,
            deploy_timeout,
            start_timeout,
            slack,
            slack_mention_on_failure,
            slack_api_url,
            github_token,
            github_deployment,
            correlation_id,
            aws_region,
            preflight,
        })
    }
}

fn duration_input(
    inputs: &Inputs,
    input: &'static str,
    default: &str,
) -> Result<Duration, InputError> {
    let text = inputs.get(input).unwrap_or(default);
    duration::parse(text).map_err(|e| bad(input, e.to_string()))
}

/// YAML 1.2 core schema booleans, as `@actions/core`'s getBooleanInput reads them.
fn bool_input(inputs: &Inputs, input: &'static str, default: bool) -> Result<bool, InputError> {
    match inputs.get(input) {
        None => Ok(default),
        Some("true" | "True" | "TRUE") => Ok(true),
        Some("false" | "False" | "FALSE") => Ok(false),
        Some(other) => Err(bad(
            input,
            format!("{other:?} is not a boolean: use true or false"),
        )),
    }
}

/// CloudFormation stack names: a letter, then letters, digits and hyphens, 128 at most.
pub fn validate_stack_name(name: &str) -> Result<(), InputError> {
    let ok = name.len() <= 128
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(bad(
            "stack-name",
            format!(
                "{name:?} is not a valid stack name: start with a letter, then letters, digits and hyphens, 128 characters at most"
            ),
        ))
    }
}

/// DynamoDB table names: 3 to 255 of letters, digits, `_`, `-`, `.`.
pub fn validate_table_name(name: &str) -> Result<(), InputError> {
    let ok = (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "registry-table",
            format!(
                "{name:?} is not a valid DynamoDB table name: 3 to 255 letters, digits, '_', '-' or '.'"
            ),
        ))
    }
}

/// Lock keys become a DynamoDB partition key and appear in logs and Slack: printable, short.
pub fn validate_lock_key(key: &str) -> Result<(), InputError> {
    if key.is_empty() || key.len() > 512 || key.chars().any(char::is_control) {
        return Err(bad(
            "lock-key",
            format!("{key:?} is not usable: 1 to 512 printable characters"),
        ));
    }
    Ok(())
}

fn validate_region(region: &str) -> Result<(), InputError> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "aws-region",
            format!("{region:?} is not an AWS region name like us-east-1 or eu-central-2"),
        ))
    }
}

fn validate_role_arn(arn: &str) -> Result<(), InputError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5]
            .strip_prefix("role/")
            .is_some_and(|r| !r.is_empty());
    if ok {
        Ok(())
    } else {
        Err(bad(
            "role-arn",
            format!(
                "{arn:?} is not an IAM role ARN like arn:aws:iam::123456789012:role/cloudformation-deployer"
            ),
        ))
    }
}

fn parse_template(text: &str, workspace: &std::path::Path) -> Result<Template, InputError> {
    if let Some(rest) = text.strip_prefix("https://") {
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(bad("template", format!("{text:?} is not a valid URL")));
        }
        return Ok(Template::Url(text.to_string()));
    }
    if text.starts_with("http://") || text.starts_with("s3://") {
        return Err(bad(
            "template",
            format!(
                "{text:?}: CloudFormation reads templates from https:// URLs only (use the object's https URL)"
            ),
        ));
    }
    let path = workspace.join(text);
    let meta = std::fs::metadata(&path).map_err(|e| {
        bad(
            "template",
            format!(
                "cannot read {:?} (relative to the workspace {}): {e}",
                text,
                workspace.display()
            ),
        )
    })?;
    if !meta.is_file() {
        return Err(bad("template", format!("{text:?} is not a file")));
    }
    // CloudFormation's limit for TemplateBody; larger templates must go through S3.
    if meta.len() > 51_200 {
        return Err(bad(
            "template",
            format!(
                "{text:?} is {} bytes, over CloudFormation's 51,200-byte limit for an inline template: upload it to S3 and pass its https:// URL",
                meta.len()
            ),
        ));
    }
    Ok(Template::File(path))
}

/// `Key=Value` pairs separated by commas or new lines (new lines let values contain commas).
fn parse_pairs(input: &'static str, text: &str) -> Result<Vec<(String, String)>, InputError> {
    let separator = if text.contains('\n') { '\n' } else { ',' };
    let mut pairs: Vec<(String, String)> = Vec::new();
    for item in text
        .split(separator)
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (key, value) = item.split_once('=').ok_or_else(|| {
            bad(
                input,
                format!(
                    "{item:?} is not Key=Value: write e.g. Env=prod,Size=large (or one per line)"
                ),
            )
        })?;
        let key = key.trim();
        if key.is_empty() {
            return Err(bad(input, format!("{item:?} has an empty key")));
        }
        if pairs.iter().any(|(k, _)| k == key) {
            return Err(bad(input, format!("{key:?} is given twice")));
        }
        pairs.push((key.to_string(), value.trim().to_string()));
    }
    Ok(pairs)
}

const CAPABILITIES: [&str; 3] = [
    "CAPABILITY_IAM",
    "CAPABILITY_NAMED_IAM",
    "CAPABILITY_AUTO_EXPAND",
];

fn parse_capabilities(text: &str) -> Result<Vec<String>, InputError> {
    let mut out = Vec::new();
    for cap in text
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if !CAPABILITIES.contains(&cap) {
            return Err(bad(
                "capabilities",
                format!(
                    "{cap:?} is not a capability: use {}",
                    CAPABILITIES.join(", ")
                ),
            ));
        }
        if !out.iter().any(|c| c == cap) {
            out.push(cap.to_string());
        }
    }
    Ok(out)
}

fn parse_slack(inputs: &Inputs) -> Result<SlackTarget, InputError> {
    let token = inputs.get("slack-bot-token");
    let channel = inputs.get("slack-channel");
    let webhook = inputs.get("slack-webhook-url");
    if let Some(url) = webhook {
        // A plain-http webhook would send the message (and the URL, a secret) in clear text;
        // loopback is allowed for local proxies and tests.
        let loopback = [
            "http://127.0.0.1:",
            "http://127.0.0.1/",
            "http://localhost:",
            "http://localhost/",
            "http://[::1]:",
        ];
        if !url.starts_with("https://") && !loopback.iter().any(|p| url.starts_with(p)) {
            // Never echo the value: a webhook URL is a secret.
            return Err(bad(
                "slack-webhook-url",
                "must be an https:// URL (the value is not shown: it is a secret)",
            ));
        }
    }
    match (token, channel, webhook) {
        (Some(_), _, Some(_)) => Err(bad(
            "slack-webhook-url",
            "give either slack-bot-token (with slack-channel) or slack-webhook-url, not both",
        )),
        (Some(token), Some(channel), None) => {
            if !token.starts_with("xox") {
                return Err(bad(
                    "slack-bot-token",
                    "does not look like a Slack bot token (xoxb-…); the value is not shown: it is a secret",
                ));
            }
            Ok(SlackTarget::Bot {
                token: token.to_string(),
                channel: channel.to_string(),
            })
        }
        (Some(_), None, None) => Err(bad(
            "slack-channel",
            "is required with slack-bot-token: a channel ID like C0123456789 or a name like #deploys",
        )),
        (None, Some(_), None) => Err(bad(
            "slack-bot-token",
            "is required with slack-channel (a webhook needs no channel: use slack-webhook-url alone)",
        )),
        (None, Some(_), Some(_)) => Err(bad(
            "slack-channel",
            "is not used with slack-webhook-url: a webhook posts to its own channel",
        )),
        (None, None, Some(url)) => Ok(SlackTarget::Webhook {
            url: url.to_string(),
        }),
        (None, None, None) => Ok(SlackTarget::None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> Inputs {
        let mut inputs = Inputs::default();
        for (k, v) in pairs {
            inputs.set(k, v);
        }
        inputs
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, InputError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stack.yaml"), "Resources: {}\n").unwrap();
        Config::from_inputs(&inputs(pairs), dir.path())
    }

    #[test]
    fn defaults_follow_the_design() {
        let config = parse(&[("stack-name", "app")]).unwrap();
        assert_eq!(config.mode, Mode::Monitor);
        assert_eq!(config.lock_key, "app");
        assert_eq!(config.registry_table, "deployment-registry");
        assert_eq!(config.lock_timeout, Duration::from_secs(3600));
        assert_eq!(config.lock_lease, DEFAULT_LEASE_WITH_HEARTBEAT);
        assert_eq!(config.deploy_timeout, Duration::from_secs(7200));
        assert_eq!(config.start_timeout, Duration::from_secs(900));
        assert_eq!(
            config.on_registry_unavailable,
            OnRegistryUnavailable::Fallback
        );
        assert_eq!(config.on_freeze, crate::lock::OnFreeze::Wait);

        let config = parse(&[
            ("stack-name", "app"),
            ("template", "stack.yaml"),
            ("environment", "prod"),
        ])
        .unwrap();
        assert_eq!(config.mode, Mode::Deploy);
        assert_eq!(config.lock_key, "prod");

        let config = parse(&[("stack-name", "app"), ("mode", "lock")]).unwrap();
        assert_eq!(config.lock_lease, DEFAULT_LEASE_LOCK_MODE);
    }

    #[test]
    fn pairs_and_capabilities_parse() {
        let config = parse(&[
            ("stack-name", "app"),
            ("template", "stack.yaml"),
            ("parameters", "Env=prod, Size = large"),
            ("tags", "team=platform\nnote=a,b"),
            (
                "capabilities",
                "CAPABILITY_IAM,CAPABILITY_AUTO_EXPAND CAPABILITY_IAM",
            ),
        ])
        .unwrap();
        assert_eq!(
            config.parameters,
            vec![
                ("Env".into(), "prod".into()),
                ("Size".into(), "large".into())
            ]
        );
        assert_eq!(
            config.tags,
            vec![
                ("team".into(), "platform".into()),
                ("note".into(), "a,b".into())
            ]
        );
        assert_eq!(
            config.capabilities,
            vec!["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
        );
    }

    /// Every malformed input we know of names the input in its error. The same list runs
    /// through the real binary in `tests/runner_contract.rs`.
    #[test]
    fn malformed_inputs_name_the_input() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "stack-name"),
            (&[("stack-name", "1app")], "stack-name"),
            (&[("stack-name", "app_1")], "stack-name"),
            (&[("stack-name", "app"), ("mode", "bogus")], "mode"),
            (&[("stack-name", "app"), ("mode", "deploy")], "template"),
            (
                &[
                    ("stack-name", "app"),
                    ("mode", "lock"),
                    ("template", "stack.yaml"),
                ],
                "template",
            ),
            (
                &[("stack-name", "app"), ("template", "missing.yaml")],
                "template",
            ),
            (
                &[("stack-name", "app"), ("template", "s3://b/k")],
                "template",
            ),
            (
                &[
                    ("stack-name", "app"),
                    ("template", "stack.yaml"),
                    ("parameters", "Env"),
                ],
                "parameters",
            ),
            (
                &[
                    ("stack-name", "app"),
                    ("template", "stack.yaml"),
                    ("parameters", "A=1,A=2"),
                ],
                "parameters",
            ),
            (
                &[("stack-name", "app"), ("parameters", "A=1")],
                "parameters",
            ),
            (
                &[
                    ("stack-name", "app"),
                    ("template", "stack.yaml"),
                    ("capabilities", "CAPABILITY_ALL"),
                ],
                "capabilities",
            ),
            (
                &[
                    ("stack-name", "app"),
                    ("template", "stack.yaml"),
                    ("role-arn", "arn:aws:iam::123:role/x"),
                ],
                "role-arn",
            ),
            (
                &[("stack-name", "app"), ("lock-timeout", "60")],
                "lock-timeout",
            ),
            (
                &[("stack-name", "app"), ("lock-timeout", "soon")],
                "lock-timeout",
            ),
            (
                &[("stack-name", "app"), ("lock-lease", "500ms")],
                "lock-lease",
            ),
            (
                &[("stack-name", "app"), ("deploy-timeout", "0s")],
                "deploy-timeout",
            ),
            (
                &[("stack-name", "app"), ("start-timeout", "1h30")],
                "start-timeout",
            ),
            (
                &[("stack-name", "app"), ("registry-table", "a/b")],
                "registry-table",
            ),
            (
                &[("stack-name", "app"), ("registry-table", "ab")],
                "registry-table",
            ),
            (
                &[("stack-name", "app"), ("lock-key", "a\u{7}b")],
                "lock-key",
            ),
            (
                &[("stack-name", "app"), ("on-registry-unavailable", "ignore")],
                "on-registry-unavailable",
            ),
            (&[("stack-name", "app"), ("on-freeze", "skip")], "on-freeze"),
            (
                &[("stack-name", "app"), ("slack-bot-token", "xoxb-1")],
                "slack-channel",
            ),
            (
                &[("stack-name", "app"), ("slack-channel", "#d")],
                "slack-bot-token",
            ),
            (
                &[
                    ("stack-name", "app"),
                    ("slack-bot-token", "abc"),
                    ("slack-channel", "#d"),
                ],
                "slack-bot-token",
            ),
            (
                &[
                    ("stack-name", "app"),
                    ("slack-webhook-url", "http://hooks.example/x"),
                ],
                "slack-webhook-url",
            ),
            (
                &[
                    ("stack-name", "app"),
                    ("slack-webhook-url", "https://h/x"),
                    ("slack-bot-token", "xoxb-1"),
                ],
                "slack-webhook-url",
            ),
            (
                &[("stack-name", "app"), ("slack-mention-on-failure", "@here")],
                "slack-mention-on-failure",
            ),
            (
                &[("stack-name", "app"), ("slack-api-url", "slack.com")],
                "slack-api-url",
            ),
            (
                &[("stack-name", "app"), ("github-deployment", "yes")],
                "github-deployment",
            ),
            (
                &[("stack-name", "app"), ("fail-on-empty-changeset", "1")],
                "fail-on-empty-changeset",
            ),
            (
                &[("stack-name", "app"), ("correlation-id", "a b")],
                "correlation-id",
            ),
            (
                &[("stack-name", "app"), ("aws-region", "useast1")],
                "aws-region",
            ),
            (&[("stack-name", "app"), ("preflight", "yes")], "preflight"),
        ];
        for (pairs, input) in cases {
            let err = parse(pairs).expect_err(&format!("{pairs:?} should be refused"));
            assert_eq!(err.input, *input, "{pairs:?}: {err}");
        }
    }

    #[test]
    fn secret_values_are_never_echoed_in_errors() {
        let err = parse(&[
            ("stack-name", "app"),
            (
                "slack-webhook-url",
                "http://hooks.slack.com/services/T/B/SECRET",
            ),
        ])
        .unwrap_err();
        assert!(!err.to_string().contains("SECRET"));
        let err = parse(&[
            ("stack-name", "app"),
            ("slack-bot-token", "not-a-token-SECRET"),
            ("slack-channel", "#d"),
        ])
        .unwrap_err();
        assert!(!err.to_string().contains("SECRET"));
    }
}
