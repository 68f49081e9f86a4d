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

mod declared;
mod parameters;
mod review;
mod validate;

pub use parameters::{ParameterValue, StackParameter};
pub use review::{Guard, OnRisk, StoppedChangeSet};
use validate::{
    parse_capabilities, parse_pairs, parse_slack, parse_template, validate_region,
    validate_role_arn,
};
pub use validate::{validate_lock_key, validate_stack_name, validate_table_name};

/// What the step does once it holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create and execute a change set from `template` (or execute the reviewed
    /// `change-set-name`), follow it to the end.
    Deploy,
    /// Follow the operation already running, or the next one to start.
    Monitor,
    /// Hold the lock until the post step, for jobs that deploy with other tools.
    Lock,
    /// Create a change set from `template` and show what it would do; execute nothing, take
    /// no lock.
    Plan,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Deploy => "deploy",
            Mode::Monitor => "monitor",
            Mode::Lock => "lock",
            Mode::Plan => "plan",
        }
    }

    /// Modes that read `template`, `parameters`, `tags` and `capabilities`.
    pub fn uses_template(self) -> bool {
        matches!(self, Mode::Deploy | Mode::Plan)
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

/// What a cancelled job does to the stack update it runs (input `on-cancel`, mode deploy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCancel {
    /// The update goes on in CloudFormation; the next run's stack guard waits for it.
    Leave,
    /// CancelUpdateStack, then follow the rollback for as long as the runner allows.
    CancelUpdate,
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
    /// Mode deploy: an existing change set (name or ARN) to execute instead of `template`.
    pub change_set: Option<String>,
    /// Mode deploy: whether a change set that puts stateful resources at risk may run.
    pub guard: Guard,
    pub parameters: Vec<StackParameter>,
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
    /// What a waiter does when a newer commit of its ref is queued: wait (default) or skip.
    pub on_superseded: crate::lock::OnSuperseded,
    /// Refuse to deploy an ancestor of the last commit deployed under the lock key.
    pub forbid_older: bool,
    /// The queue ticket's priority.
    pub priority: crate::lock::Priority,
    pub deploy_timeout: Duration,
    pub start_timeout: Duration,
    pub on_cancel: OnCancel,
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

pub use declared::{INPUTS, InputDefault, InputSpec};

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
        let deploy = DeployInputs::parse(inputs, workspace)?;
        let mode = deploy.mode;
        let role_arn = inputs
            .get("role-arn")
            .map(|r| validate_role_arn(r).map(|()| r.to_string()))
            .transpose()?;
        if role_arn.is_some() && deploy.change_set.is_some() {
            return Err(bad(
                "role-arn",
                "is given to CreateChangeSet, and change-set-name executes a change set that already has its role: remove role-arn from the deploy step (the plan job passes it)",
            ));
        }
        let guard = guard_inputs(inputs, mode)?;

        let environment = inputs.get("environment").map(str::to_string);
        if let Some(env) = &environment
            && (env.len() > 255 || env.chars().any(char::is_control))
        {
            return Err(bad(
                "environment",
                "must be at most 255 characters without control characters",
            ));
        }
        let lock = LockInputs::parse(inputs, mode, stack_name, environment.as_deref())?;
        let deploy_timeout = duration_input(inputs, "deploy-timeout")?;
        let start_timeout = duration_input(inputs, "start-timeout")?;
        for (name, value) in [
            ("deploy-timeout", deploy_timeout),
            ("start-timeout", start_timeout),
        ] {
            if value.is_zero() {
                let name: &'static str = name;
                return Err(bad(name, "must be longer than 0s"));
            }
        }
        let on_cancel = match value(inputs, "on-cancel").unwrap_or_default() {
            "leave" => OnCancel::Leave,
            "cancel-update" if mode != Mode::Deploy => {
                return Err(bad(
                    "on-cancel",
                    format!(
                        "cancel-update is only used in mode deploy (it cancels the update this run started), but mode is {}",
                        mode.as_str()
                    ),
                ));
            }
            "cancel-update" => OnCancel::CancelUpdate,
            other => {
                return Err(bad(
                    "on-cancel",
                    format!("{other:?} is not accepted: use leave or cancel-update"),
                ));
            }
        };

        let slack = parse_slack(inputs)?;
        let slack_mention_on_failure = inputs.get("slack-mention-on-failure").map(str::to_string);
        if slack_mention_on_failure.is_some() && slack == SlackTarget::None {
            return Err(bad(
                "slack-mention-on-failure",
                "needs Slack: set slack-bot-token and slack-channel, or slack-webhook-url",
            ));
        }
        let slack_api_url = value(inputs, "slack-api-url")
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        if !(slack_api_url.starts_with("https://") || slack_api_url.starts_with("http://")) {
            return Err(bad(
                "slack-api-url",
                format!("{slack_api_url:?} is not an http(s) URL"),
            ));
        }

        let github_token = inputs.get("github-token").map(str::to_string);
        let github_deployment = bool_input(inputs, "github-deployment")?;
        let fail_on_empty_changeset = bool_input(inputs, "fail-on-empty-changeset")?;

        let correlation_id = inputs.get("correlation-id").map(str::to_string);
        if let Some(id) = &correlation_id {
            correlation::validate(id).map_err(|e| bad("correlation-id", e.to_string()))?;
        }
        let aws_region = inputs.get("aws-region").map(str::to_string);
        if let Some(region) = &aws_region {
            validate_region(region)?;
        }
        let preflight = bool_input(inputs, "preflight")?;

        Ok(Config {
            stack_name: stack_name.to_string(),
            mode,
            template: deploy.template,
            change_set: deploy.change_set,
            guard,
            parameters: deploy.parameters,
            capabilities: deploy.capabilities,
            tags: deploy.tags,
            role_arn,
            fail_on_empty_changeset,
            environment,
            lock_key: lock.lock_key,
            registry_table: lock.registry_table,
            lock_timeout: lock.lock_timeout,
            lock_lease: lock.lock_lease,
            on_registry_unavailable: lock.on_registry_unavailable,
            on_freeze: lock.on_freeze,
            on_superseded: lock.on_superseded,
            forbid_older: lock.forbid_older,
            priority: lock.priority,
            deploy_timeout,
            start_timeout,
            on_cancel,
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

/// The mode and what only mode deploy uses: which inputs make sense depends on the mode.
struct DeployInputs {
    mode: Mode,
    template: Option<Template>,
    change_set: Option<String>,
    parameters: Vec<StackParameter>,
    tags: Vec<(String, String)>,
    capabilities: Vec<String>,
}

impl DeployInputs {
    fn parse(inputs: &Inputs, workspace: &std::path::Path) -> Result<DeployInputs, InputError> {
        let template = inputs
            .get("template")
            .map(|t| parse_template(t, workspace))
            .transpose()?;
        let change_set = inputs.get("change-set-name").map(str::to_string);
        let mode = match inputs.get("mode") {
            None if template.is_some() || change_set.is_some() => Mode::Deploy,
            None => Mode::Monitor,
            Some("deploy") => Mode::Deploy,
            Some("monitor") => Mode::Monitor,
            Some("lock") => Mode::Lock,
            Some("plan") => Mode::Plan,
            Some(other) => {
                return Err(bad(
                    "mode",
                    format!("{other:?} is not a mode: use deploy, plan, monitor or lock"),
                ));
            }
        };
        if let Some(name) = &change_set {
            if mode != Mode::Deploy {
                return Err(bad(
                    "change-set-name",
                    format!("is only used in mode deploy, but mode is {}", mode.as_str()),
                ));
            }
            review::validate_change_set(name)?;
            // The change set already holds its template, parameters, tags and capabilities:
            // the step's own would be silently ignored, so they are refused.
            for input in ["template", "parameters", "tags", "capabilities"] {
                if inputs.get(input).is_some() {
                    return Err(bad(
                        "change-set-name",
                        format!(
                            "executes an existing change set, which already holds its template, parameters, tags and \
                             capabilities: remove {input} from this step (the plan job that made the change set passes it)"
                        ),
                    ));
                }
            }
        }
        match (mode, &template) {
            (Mode::Deploy, None) if change_set.is_none() => {
                return Err(bad(
                    "template",
                    "is required in mode deploy: a template file in the workspace or an https:// URL (or change-set-name, to execute a reviewed change set)",
                ));
            }
            (Mode::Plan, None) => {
                return Err(bad(
                    "template",
                    format!(
                        "is required in mode {}: a template file in the workspace or an https:// URL",
                        mode.as_str()
                    ),
                ));
            }
            (Mode::Monitor | Mode::Lock, Some(_)) => {
                return Err(bad(
                    "template",
                    format!(
                        "is only used in mode deploy (or plan), but mode is {}: remove it or set mode: deploy",
                        mode.as_str()
                    ),
                ));
            }
            _ => {}
        }

        // Only modes deploy and plan read a parameters file: elsewhere the mode is the mistake
        // to report.
        let parameters = match inputs.get("parameters") {
            Some(_) if !mode.uses_template() => Vec::new(),
            Some(p) => parameters::parse_parameters(p, workspace)?,
            None => Vec::new(),
        };
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
        if !mode.uses_template() {
            for (name, given) in [
                ("parameters", inputs.get("parameters").is_some()),
                ("tags", !tags.is_empty()),
                ("capabilities", !capabilities.is_empty()),
            ] {
                if given {
                    let name: &'static str = name;
                    return Err(bad(
                        name,
                        format!(
                            "is only used in mode deploy (or plan), but mode is {}",
                            mode.as_str()
                        ),
                    ));
                }
            }
        }
        Ok(DeployInputs {
            mode,
            template,
            change_set,
            parameters,
            tags,
            capabilities,
        })
    }
}

/// The deploy guard's inputs: only mode deploy executes change sets, so giving them to another
/// mode is a mistake to report.
fn guard_inputs(inputs: &Inputs, mode: Mode) -> Result<Guard, InputError> {
    if mode != Mode::Deploy {
        for name in ["on-risk", "allow-replacement", "on-risk-change-set"] {
            // The runner passes declared defaults as inputs: only another value was given.
            let default = declared::spec(name).and_then(|s| s.default.value());
            if inputs.get(name).is_some_and(|v| Some(v) != default) {
                return Err(bad(
                    name,
                    format!("is only used in mode deploy, but mode is {}", mode.as_str()),
                ));
            }
        }
    }
    Ok(Guard {
        on_risk: review::parse_on_risk(value(inputs, "on-risk").unwrap_or_default())?,
        allow_replacement: inputs
            .get("allow-replacement")
            .map(review::parse_allow_replacement)
            .transpose()?
            .unwrap_or_default(),
        stopped_change_set: review::parse_stopped_change_set(
            value(inputs, "on-risk-change-set").unwrap_or_default(),
        )?,
    })
}

/// The lock's inputs: its key (default the environment, else the stack), the registry, the
/// wait, the lease (default per mode) and what to do when the registry is down or frozen.
struct LockInputs {
    lock_key: String,
    registry_table: String,
    lock_timeout: Duration,
    lock_lease: Duration,
    on_registry_unavailable: OnRegistryUnavailable,
    on_freeze: crate::lock::OnFreeze,
    on_superseded: crate::lock::OnSuperseded,
    forbid_older: bool,
    priority: crate::lock::Priority,
}

impl LockInputs {
    fn parse(
        inputs: &Inputs,
        mode: Mode,
        stack_name: &str,
        environment: Option<&str>,
    ) -> Result<LockInputs, InputError> {
        let lock_key = match inputs.get("lock-key") {
            Some(key) => key.to_string(),
            None => environment.unwrap_or(stack_name).to_string(),
        };
        validate_lock_key(&lock_key)?;

        let registry_table = value(inputs, "registry-table")
            .unwrap_or_default()
            .to_string();
        validate_table_name(&registry_table)?;

        let lock_timeout = duration_input(inputs, "lock-timeout")?;
        let lock_lease = match inputs.get("lock-lease") {
            Some(_) => duration_input(inputs, "lock-lease")?,
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
            match value(inputs, "on-registry-unavailable").unwrap_or_default() {
                "fallback" => OnRegistryUnavailable::Fallback,
                "fail" => OnRegistryUnavailable::Fail,
                other => {
                    return Err(bad(
                        "on-registry-unavailable",
                        format!("{other:?} is not accepted: use fallback or fail"),
                    ));
                }
            };
        let on_freeze =
            crate::lock::OnFreeze::parse(value(inputs, "on-freeze").unwrap_or_default())
                .map_err(|e| bad("on-freeze", e))?;
        let on_superseded =
            crate::lock::OnSuperseded::parse(value(inputs, "on-superseded").unwrap_or_default())
                .map_err(|e| bad("on-superseded", e))?;
        let forbid_older = bool_input(inputs, "forbid-older")?;
        let priority = crate::lock::Priority::parse(value(inputs, "priority").unwrap_or_default())
            .map_err(|e| bad("priority", e))?;
        Ok(LockInputs {
            lock_key,
            registry_table,
            lock_timeout,
            lock_lease,
            on_registry_unavailable,
            on_freeze,
            on_superseded,
            forbid_older,
            priority,
        })
    }
}

/// An input's value, or its declared default (`declared::INPUTS`, the one place defaults are
/// written; `action.yml` and the README are checked against it).
fn value<'a>(inputs: &'a Inputs, input: &'static str) -> Option<&'a str> {
    inputs
        .get(input)
        .or_else(|| declared::spec(input).and_then(|s| s.default.value()))
}

fn duration_input(inputs: &Inputs, input: &'static str) -> Result<Duration, InputError> {
    let text = value(inputs, input).ok_or_else(|| bad(input, "is required"))?;
    duration::parse(text).map_err(|e| bad(input, e.to_string()))
}

/// YAML 1.2 core schema booleans, as `@actions/core`'s getBooleanInput reads them.
fn bool_input(inputs: &Inputs, input: &'static str) -> Result<bool, InputError> {
    match value(inputs, input) {
        None => Ok(false),
        Some("true" | "True" | "TRUE") => Ok(true),
        Some("false" | "False" | "FALSE") => Ok(false),
        Some(other) => Err(bad(
            input,
            format!("{other:?} is not a boolean: use true or false"),
        )),
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
        assert_eq!(config.on_superseded, crate::lock::OnSuperseded::Wait);
        assert!(!config.forbid_older);
        assert_eq!(config.priority, crate::lock::Priority::Normal);
        assert_eq!(config.on_cancel, OnCancel::Leave);

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
    fn a_parameters_file_is_not_read_outside_mode_deploy() {
        // The mode is the mistake to report, not a file that only mode deploy would read.
        let err = parse(&[
            ("stack-name", "app"),
            ("mode", "monitor"),
            ("parameters", "file://missing.json"),
        ])
        .unwrap_err();
        assert_eq!(err.input, "parameters");
        assert_eq!(
            err.problem,
            "is only used in mode deploy (or plan), but mode is monitor"
        );
    }

    #[test]
    fn a_reviewed_change_set_replaces_the_template_and_the_guard_is_for_mode_deploy() {
        let config = parse(&[("stack-name", "app"), ("change-set-name", "dc-plan-1")]).unwrap();
        assert_eq!(
            config.mode,
            Mode::Deploy,
            "change-set-name implies mode deploy"
        );
        assert_eq!(config.change_set.as_deref(), Some("dc-plan-1"));
        assert_eq!(config.template, None);
        assert_eq!(config.guard, Guard::default());
        for (input, value) in [
            ("template", "stack.yaml"),
            ("parameters", "Env=prod"),
            ("tags", "team=a"),
            ("capabilities", "CAPABILITY_IAM"),
        ] {
            let err = parse(&[
                ("stack-name", "app"),
                ("change-set-name", "dc-plan-1"),
                (input, value),
            ])
            .unwrap_err();
            assert_eq!(err.input, "change-set-name", "{input}");
            assert!(err.problem.contains(&format!("remove {input}")), "{err}");
        }
        let err = parse(&[
            ("stack-name", "app"),
            ("change-set-name", "dc-plan-1"),
            ("role-arn", "arn:aws:iam::123456789012:role/deployer"),
        ])
        .unwrap_err();
        assert_eq!(err.input, "role-arn");

        let config = parse(&[
            ("stack-name", "app"),
            ("template", "stack.yaml"),
            ("on-risk", "warn"),
            ("allow-replacement", "Orders,Uploads"),
            ("on-risk-change-set", "keep"),
        ])
        .unwrap();
        assert_eq!(
            config.guard,
            Guard {
                on_risk: OnRisk::Warn,
                allow_replacement: vec!["Orders".into(), "Uploads".into()],
                stopped_change_set: StoppedChangeSet::Keep,
            }
        );
        // The runner passes the defaults to every mode; another value is a mistake.
        assert!(parse(&[("stack-name", "app"), ("on-risk", "fail")]).is_ok());
        for (input, value) in [
            ("on-risk", "warn"),
            ("allow-replacement", "Orders"),
            ("on-risk-change-set", "keep"),
            ("change-set-name", "dc-plan-1"),
        ] {
            let err =
                parse(&[("stack-name", "app"), ("mode", "monitor"), (input, value)]).unwrap_err();
            assert_eq!(err.input, input);
            assert_eq!(
                err.problem,
                "is only used in mode deploy, but mode is monitor"
            );
        }
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
                StackParameter::value("Env", "prod"),
                StackParameter::value("Size", "large")
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
                &[("stack-name", "app"), ("on-superseded", "cancel")],
                "on-superseded",
            ),
            (
                &[("stack-name", "app"), ("forbid-older", "yes")],
                "forbid-older",
            ),
            (&[("stack-name", "app"), ("priority", "urgent")], "priority"),
            (
                &[("stack-name", "app"), ("on-cancel", "rollback")],
                "on-cancel",
            ),
            (
                &[("stack-name", "app"), ("on-cancel", "cancel-update")],
                "on-cancel",
            ),
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
            (
                &[
                    ("stack-name", "app"),
                    ("template", "stack.yaml"),
                    ("on-risk", "ignore"),
                ],
                "on-risk",
            ),
            (
                &[
                    ("stack-name", "app"),
                    ("template", "stack.yaml"),
                    ("allow-replacement", "Orders-Table"),
                ],
                "allow-replacement",
            ),
            (
                &[
                    ("stack-name", "app"),
                    ("template", "stack.yaml"),
                    ("on-risk-change-set", "retain"),
                ],
                "on-risk-change-set",
            ),
            (
                &[("stack-name", "app"), ("change-set-name", "plan_1")],
                "change-set-name",
            ),
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
