//! What can go wrong talking to the registry table, sorted by what the caller should do.
//!
//! The main step branches on the class: `Unavailable` falls back to CloudFormation-only
//! coordination (if the user allows it), `Misconfigured` and `ExpiredCredentials` fail with a
//! message that says what to change. The SDK has already retried throttling and 5xx answers
//! (standard retry mode) by the time an error reaches this module.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RegistryError {
    /// The table could not be reached or did not answer in time: network, timeout, 5xx,
    /// throttling after the SDK's retries. Worth a fallback, not a configuration change.
    #[error("registry table {table:?} is unavailable ({operation}): {detail}")]
    Unavailable {
        table: String,
        operation: &'static str,
        detail: String,
    },
    /// The table is missing, access is denied, or DynamoDB refused the request as invalid.
    /// Retrying changes nothing; `hint` says what to do.
    #[error("registry table {table:?} cannot be used ({operation}): {detail}. {hint}")]
    Misconfigured {
        table: String,
        operation: &'static str,
        detail: String,
        hint: String,
    },
    /// The AWS credentials expired (OIDC role sessions default to one hour).
    #[error(
        "AWS credentials expired while using registry table {table:?} ({operation}): {detail}. \
         Raise `role-duration-seconds` of aws-actions/configure-aws-credentials to cover the whole \
         job; the lock's lease frees it meanwhile"
    )]
    ExpiredCredentials {
        table: String,
        operation: &'static str,
        detail: String,
    },
    /// An item in the table does not have the shape this program writes.
    #[error("registry table {table:?} holds an item this program cannot read ({detail})")]
    Corrupt { table: String, detail: String },
}

impl RegistryError {
    /// True when falling back to CloudFormation-only coordination is reasonable.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, RegistryError::Unavailable { .. })
    }
}

/// The facts [`classify`] decides on, separated from the SDK types so the decision is a pure
/// function with unit tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure<'a> {
    /// No HTTP answer: connection refused/reset, DNS, timeout.
    NoAnswer {
        timeout: bool,
        io: bool,
        text: &'a str,
    },
    /// An HTTP answer with an error code (if the body had one).
    Answer {
        status: u16,
        code: Option<&'a str>,
        text: &'a str,
    },
    /// The request could not even be built (a bug or a bad region/endpoint setting).
    NotSent { text: &'a str },
}

pub(crate) fn decide(table: &str, operation: &'static str, failure: Failure<'_>) -> RegistryError {
    let table_s = table.to_string();
    let misconfigured = |detail: &str, hint: String| RegistryError::Misconfigured {
        table: table_s.clone(),
        operation,
        detail: detail.to_string(),
        hint,
    };
    let unavailable = |detail: &str| RegistryError::Unavailable {
        table: table_s.clone(),
        operation,
        detail: detail.to_string(),
    };
    let expired = |detail: &str| RegistryError::ExpiredCredentials {
        table: table_s.clone(),
        operation,
        detail: detail.to_string(),
    };
    let credentials_hint =
        "Check the AWS credentials given to the step (aws-actions/configure-aws-credentials, \
                            or AWS_PROFILE / AWS_ACCESS_KEY_ID outside GitHub)"
            .to_string();
    match failure {
        Failure::NoAnswer { timeout, io, text } => {
            let lower = text.to_ascii_lowercase();
            if !timeout && !io && lower.contains("expired") && lower.contains("token") {
                expired(text)
            } else if !timeout && !io && lower.contains("credential") {
                // Identity resolution fails before anything is sent: no credentials at all.
                misconfigured(text, credentials_hint)
            } else {
                unavailable(text)
            }
        }
        Failure::NotSent { text } => misconfigured(
            text,
            "Check the region (`aws-region` / AWS_REGION) and AWS_ENDPOINT_URL".to_string(),
        ),
        Failure::Answer { status, code, text } => {
            let code = code.unwrap_or("");
            match code {
                "ExpiredTokenException"
                | "ExpiredToken"
                | "RequestExpired"
                | "TokenRefreshRequired" => expired(text),
                "ResourceNotFoundException" => misconfigured(
                    text,
                    format!(
                        "Create it with `deploy-coordinator registry create --table {table}` (or check `registry-table` and the region)"
                    ),
                ),
                "AccessDeniedException" => misconfigured(
                    text,
                    format!(
                        "Allow dynamodb:GetItem, PutItem, UpdateItem, DeleteItem, Query and Scan on table {table} for the role the step uses"
                    ),
                ),
                "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "MissingAuthenticationToken"
                | "IncompleteSignature"
                | "InvalidClientTokenId" => misconfigured(text, credentials_hint),
                "ValidationException" | "SerializationException" => misconfigured(
                    text,
                    format!(
                        "DynamoDB refused the request: check that table {table} has the registry's schema \
                         (partition key pk, sort key sk, both strings); otherwise this is a bug, please report it"
                    ),
                ),
                "ThrottlingException"
                | "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "InternalFailure"
                | "ServiceUnavailable"
                | "LimitExceededException"
                | "TransactionConflictException" => unavailable(text),
                _ if status >= 500 || status == 429 => unavailable(text),
                _ if status == 403 => misconfigured(text, credentials_hint),
                _ => misconfigured(
                    text,
                    "Unexpected DynamoDB error; check the table and the credentials".to_string(),
                ),
            }
        }
    }
}

/// Classifies an SDK error from any DynamoDB operation.
pub(crate) fn classify<E>(
    table: &str,
    operation: &'static str,
    err: &SdkError<E, HttpResponse>,
) -> RegistryError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = crate::aws::error_text(err);
    let failure = match err {
        SdkError::TimeoutError(_) => Failure::NoAnswer {
            timeout: true,
            io: false,
            text: &text,
        },
        SdkError::DispatchFailure(d) => Failure::NoAnswer {
            timeout: d.is_timeout(),
            io: d.is_io(),
            text: &text,
        },
        SdkError::ConstructionFailure(_) => Failure::NotSent { text: &text },
        SdkError::ResponseError(r) => Failure::Answer {
            status: r.raw().status().as_u16(),
            code: None,
            text: &text,
        },
        SdkError::ServiceError(s) => Failure::Answer {
            status: s.raw().status().as_u16(),
            code: s.err().code(),
            text: &text,
        },
        _ => Failure::NoAnswer {
            timeout: false,
            io: false,
            text: &text,
        },
    };
    decide(table, operation, failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, code: &str) -> RegistryError {
        decide(
            "reg",
            "PutItem",
            Failure::Answer {
                status,
                code: Some(code),
                text: "x",
            },
        )
    }

    #[test]
    fn outages_are_unavailable_so_the_step_can_fall_back() {
        for code in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "InternalServerError",
        ] {
            assert!(answer(400, code).is_unavailable(), "{code}");
        }
        assert!(answer(503, "").is_unavailable());
        assert!(
            decide(
                "reg",
                "GetItem",
                Failure::Answer {
                    status: 502,
                    code: None,
                    text: "bad gateway"
                }
            )
            .is_unavailable()
        );
        let refused = decide(
            "reg",
            "GetItem",
            Failure::NoAnswer {
                timeout: false,
                io: true,
                text: "dispatch failure: Connection refused",
            },
        );
        assert!(refused.is_unavailable());
        assert!(
            decide(
                "reg",
                "GetItem",
                Failure::NoAnswer {
                    timeout: true,
                    io: false,
                    text: "t"
                }
            )
            .is_unavailable()
        );
    }

    #[test]
    fn configuration_errors_say_what_to_do() {
        let missing = answer(400, "ResourceNotFoundException");
        assert!(matches!(missing, RegistryError::Misconfigured { .. }));
        assert!(
            missing
                .to_string()
                .contains("deploy-coordinator registry create --table reg"),
            "{missing}"
        );
        let denied = answer(400, "AccessDeniedException");
        assert!(
            denied.to_string().contains("dynamodb:PutItem")
                || denied.to_string().contains("PutItem")
        );
        assert!(matches!(
            answer(400, "ValidationException"),
            RegistryError::Misconfigured { .. }
        ));
        assert!(matches!(
            answer(400, "UnrecognizedClientException"),
            RegistryError::Misconfigured { .. }
        ));
        let no_credentials = decide(
            "reg",
            "GetItem",
            Failure::NoAnswer {
                timeout: false,
                io: false,
                text: "failed to load credentials: no providers in chain",
            },
        );
        assert!(matches!(
            no_credentials,
            RegistryError::Misconfigured { .. }
        ));
    }

    #[test]
    fn expired_tokens_point_at_role_duration() {
        let e = answer(400, "ExpiredTokenException");
        assert!(matches!(e, RegistryError::ExpiredCredentials { .. }));
        assert!(e.to_string().contains("role-duration-seconds"));
    }
}
