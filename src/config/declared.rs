//! Every input the action declares, in `action.yml` order: name, whether it is required or
//! secret, its default and its description, side by side and written only here. `action.yml`
//! and the README's Inputs table are checked against this list, defaults and descriptions
//! included (`tests/runner_contract.rs`, `tests/docs_consistency.rs`); `Config::from_inputs`
//! reads defaults from it.

/// One declared input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSpec {
    pub name: &'static str,
    pub required: bool,
    /// Registered with the runner's masking before anything is printed.
    pub secret: bool,
    pub default: InputDefault,
    /// As `action.yml` gives it (folded to one line) and the README repeats it.
    pub description: &'static str,
}

/// An input's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputDefault {
    /// None: absent means "not given" (what that means is in the description).
    None,
    /// This text, when the input is absent.
    Value(&'static str),
    /// An expression the runner evaluates (`${{ github.token }}`): the step sees its value
    /// as the input, never the expression.
    Runner(&'static str),
}

impl InputDefault {
    /// The text the step uses when the input is absent.
    pub fn value(self) -> Option<&'static str> {
        match self {
            InputDefault::Value(v) => Some(v),
            InputDefault::None | InputDefault::Runner(_) => None,
        }
    }

    /// The text `action.yml` writes after `default:`.
    pub fn declared(self) -> Option<&'static str> {
        match self {
            InputDefault::Value(v) | InputDefault::Runner(v) => Some(v),
            InputDefault::None => None,
        }
    }
}

/// The declaration of one input, by name.
pub(super) fn spec(name: &str) -> Option<&'static InputSpec> {
    INPUTS.iter().find(|s| s.name == name)
}

pub const INPUTS: &[InputSpec] = &[
    InputSpec {
        name: "stack-name",
        required: true,
        secret: false,
        default: InputDefault::None,
        description: "Name of the CloudFormation stack to deploy, watch or lock.",
    },
    InputSpec {
        name: "mode",
        required: false,
        secret: false,
        default: InputDefault::None,
        description: "deploy (create and execute a change set from `template`), plan (create the change set and show what it would change and risk, in the job summary and a pull-request comment; execute nothing, take no lock), monitor (follow the operation already running or the next one to start), or lock (hold the lock until the post step, for jobs that deploy with CDK, SAM or the AWS CLI). Default: deploy when `template` or `change-set-name` is set, otherwise monitor.",
    },
    InputSpec {
        name: "template",
        required: false,
        secret: false,
        default: InputDefault::None,
        description: "Template file, relative to the workspace, or an https:// URL of a template in S3. Modes deploy and plan.",
    },
    InputSpec {
        name: "change-set-name",
        required: false,
        secret: false,
        default: InputDefault::None,
        description: "Mode deploy: execute this existing change set (its name, or its ARN such as a plan job's change-set-id output) instead of creating one from template, under the lock, once it is checked to be still executable and the stack unchanged since it was created.",
    },
    InputSpec {
        name: "parameters",
        required: false,
        secret: false,
        default: InputDefault::None,
        description: "Stack parameters as Key=Value pairs (separated by commas or one per line), or file://params.json for a JSON file in the workspace in the AWS CLI's format (with UsePreviousValue) or CodePipeline's. Modes deploy and plan.",
    },
    InputSpec {
        name: "capabilities",
        required: false,
        secret: false,
        default: InputDefault::None,
        description: "Comma-separated capabilities (CAPABILITY_IAM, CAPABILITY_NAMED_IAM, CAPABILITY_AUTO_EXPAND). Modes deploy and plan.",
    },
    InputSpec {
        name: "tags",
        required: false,
        secret: false,
        default: InputDefault::None,
        description: "Stack tags as Key=Value pairs, separated by commas or one per line. Modes deploy and plan.",
    },
    InputSpec {
        name: "role-arn",
        required: false,
        secret: false,
        default: InputDefault::None,
        description: "IAM role that CloudFormation assumes to deploy the stack (its service role).",
    },
    InputSpec {
        name: "fail-on-empty-changeset",
        required: false,
        secret: false,
        default: InputDefault::Value("false"),
        description: "Fail when the change set contains no changes (outcome no-changes). Default false.",
    },
    InputSpec {
        name: "on-risk",
        required: false,
        secret: false,
        default: InputDefault::Value("fail"),
        description: "Mode deploy, when the change set would replace or remove a stateful resource (a database, table, bucket, file system, key, user pool, cache, search domain, log group …) that allow-replacement does not list: fail (stop before executing it; nothing runs) or warn (execute it with a warning).",
    },
    InputSpec {
        name: "allow-replacement",
        required: false,
        secret: false,
        default: InputDefault::None,
        description: "Mode deploy: logical IDs of stateful resources this deployment may replace or remove (separated by commas or one per line; Nested/Logical inside a nested stack). Each one is reported as allowed when it happens.",
    },
    InputSpec {
        name: "on-risk-change-set",
        required: false,
        secret: false,
        default: InputDefault::Value("delete"),
        description: "Mode deploy, when on-risk stopped a deployment: delete the change set (nothing is left that someone could execute by mistake) or keep it (to inspect in the console).",
    },
    InputSpec {
        name: "environment",
        required: false,
        secret: false,
        default: InputDefault::None,
        description: "Name of the environment being deployed (for example prod). The default lock key, and the GitHub deployment's environment.",
    },
    InputSpec {
        name: "lock-key",
        required: false,
        secret: false,
        default: InputDefault::None,
        description: "What the lock protects. Runs with the same key, in any repository, deploy one at a time. Default the environment, else the stack name.",
    },
    InputSpec {
        name: "registry-table",
        required: false,
        secret: false,
        default: InputDefault::Value("deployment-registry"),
        description: "DynamoDB table holding locks, queue tickets, history and dead letters (create it with `deploy-coordinator registry create`).",
    },
    InputSpec {
        name: "lock-timeout",
        required: false,
        secret: false,
        default: InputDefault::Value("60m"),
        description: "How long to wait in the queue for the lock before failing, for example 30m or 1h30m.",
    },
    InputSpec {
        name: "lock-lease",
        required: false,
        secret: false,
        default: InputDefault::None,
        description: "How long a lock stays valid without a heartbeat; a crashed holder blocks others at most this long. Default 60s in modes deploy and monitor (renewed by a heartbeat), 6h in mode lock (nothing renews it; dead runs are detected through the GitHub API sooner).",
    },
    InputSpec {
        name: "on-registry-unavailable",
        required: false,
        secret: false,
        default: InputDefault::Value("fallback"),
        description: "fallback (coordinate through CloudFormation alone, with a warning) or fail, when DynamoDB cannot be reached.",
    },
    InputSpec {
        name: "on-freeze",
        required: false,
        secret: false,
        default: InputDefault::Value("wait"),
        description: "wait (in the queue, up to lock-timeout) or fail (at once, with who froze the lock, why and until when), when an operator has frozen deployments with `lock freeze`.",
    },
    InputSpec {
        name: "on-superseded",
        required: false,
        secret: false,
        default: InputDefault::Value("wait"),
        description: "wait (deploy in turn) or skip (leave the queue with outcome skipped, and succeed), when a newer commit of the same repository and ref is queued for the same lock; newer is what the GitHub compare API says (needs github-token), and an API error means wait.",
    },
    InputSpec {
        name: "forbid-older",
        required: false,
        secret: false,
        default: InputDefault::Value("false"),
        description: "true: before deploying, refuse a commit that the GitHub compare API says is an ancestor of the last commit deployed successfully under this lock key (never deploy backwards); an API error only warns.",
    },
    InputSpec {
        name: "priority",
        required: false,
        secret: false,
        default: InputDefault::Value("normal"),
        description: "normal or high: a high-priority run (a hotfix) goes ahead of every normal waiter in the lock's queue, never ahead of the holder; first come, first served among equals.",
    },
    InputSpec {
        name: "deploy-timeout",
        required: false,
        secret: false,
        default: InputDefault::Value("120m"),
        description: "Longest time to follow the stack operation before giving up with outcome timed-out.",
    },
    InputSpec {
        name: "start-timeout",
        required: false,
        secret: false,
        default: InputDefault::Value("15m"),
        description: "Mode monitor, how long to wait for an operation to start when none is running.",
    },
    InputSpec {
        name: "on-cancel",
        required: false,
        secret: false,
        default: InputDefault::Value("leave"),
        description: "Mode deploy, what a cancelled job does to its stack update, leave (it goes on in CloudFormation) or cancel-update (CancelUpdateStack, then follow the rollback within the runner's 10 s grace; a create cannot be cancelled and goes on).",
    },
    InputSpec {
        name: "slack-bot-token",
        required: false,
        secret: true,
        default: InputDefault::None,
        description: "Slack bot token (xoxb-…) to post one message per deployment and update it live. Needs slack-channel.",
    },
    InputSpec {
        name: "slack-channel",
        required: false,
        secret: false,
        default: InputDefault::None,
        description: "Slack channel ID or name for the bot token.",
    },
    InputSpec {
        name: "slack-webhook-url",
        required: false,
        secret: true,
        default: InputDefault::None,
        description: "Slack incoming webhook URL, https (plain http only to a loopback address, for proxies and tests). Posts state changes only, since webhooks cannot update messages. Alternative to the bot token.",
    },
    InputSpec {
        name: "slack-mention-on-failure",
        required: false,
        secret: false,
        default: InputDefault::None,
        description: "Who to mention in Slack when the deployment fails, for example <!subteam^S0123> or <!here>.",
    },
    InputSpec {
        name: "slack-api-url",
        required: false,
        secret: false,
        default: InputDefault::Value("https://slack.com/api"),
        description: "Base URL of the Slack Web API (for proxies and tests).",
    },
    InputSpec {
        name: "github-token",
        required: false,
        secret: true,
        default: InputDefault::Runner("${{ github.token }}"),
        description: "Token to ask the GitHub API whether a lock holder's run is still alive, to create deployments, and to write mode plan's pull-request comment (needs `pull-requests: write`).",
    },
    InputSpec {
        name: "github-deployment",
        required: false,
        secret: false,
        default: InputDefault::Value("false"),
        description: "Create a GitHub deployment for `environment` with statuses (needs `deployments write` permission).",
    },
    InputSpec {
        name: "correlation-id",
        required: false,
        secret: false,
        default: InputDefault::None,
        description: "Use this ID for the deployment instead of the generated YYYYMMDD-HHMMSS-<sha7>.",
    },
    InputSpec {
        name: "aws-region",
        required: false,
        secret: false,
        default: InputDefault::None,
        description: "AWS region of the stack and the registry table. Default the region from the environment (AWS_REGION).",
    },
    InputSpec {
        name: "preflight",
        required: false,
        secret: false,
        default: InputDefault::Value("false"),
        description: "Run the `doctor` checks (credentials, registry table, permissions, stack, Slack, GitHub token) first, and fail before touching the lock if one fails.",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_the_parser_reads_is_declared() {
        for name in [
            "registry-table",
            "lock-timeout",
            "on-registry-unavailable",
            "on-freeze",
            "on-risk",
            "on-risk-change-set",
            "on-superseded",
            "forbid-older",
            "priority",
            "deploy-timeout",
            "start-timeout",
            "on-cancel",
            "slack-api-url",
        ] {
            assert!(
                spec(name).and_then(|s| s.default.value()).is_some(),
                "{name} has no declared default"
            );
        }
        assert_eq!(spec("github-token").and_then(|s| s.default.value()), None);
    }
}
