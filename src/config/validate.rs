//! The checks and parsers of single inputs: what each accepts, and the error that names the
//! input and says what to write instead.

use super::{InputError, SlackTarget, Template, bad};
use crate::action::Inputs;

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

pub(super) fn validate_region(region: &str) -> Result<(), InputError> {
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

pub(super) fn validate_role_arn(arn: &str) -> Result<(), InputError> {
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

pub(super) fn parse_template(
    text: &str,
    workspace: &std::path::Path,
) -> Result<Template, InputError> {
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
pub(super) fn parse_pairs(
    input: &'static str,
    text: &str,
) -> Result<Vec<(String, String)>, InputError> {
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

pub(super) fn parse_capabilities(text: &str) -> Result<Vec<String>, InputError> {
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

pub(super) fn parse_slack(inputs: &Inputs) -> Result<SlackTarget, InputError> {
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
