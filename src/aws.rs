//! Loading AWS configuration, the same way for the action and the CLI.
//!
//! The default credential chain (environment, web identity, profile, IMDS) and
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` are honoured by `aws-config` itself; that is
//! how the tests reach moto, dynalite and the CloudFormation simulator with the real SDK.

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Loads the SDK configuration; `region` (input `aws-region` or `--region`) wins over the
/// environment.
pub(crate) async fn load(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    loader.load().await
}

/// An SDK error for people: each cause's message, outermost first, without the Debug dump
/// that `DisplayErrorContext` appends (hundreds of characters of struct fields in every
/// warning). Causes that repeat their inner cause's text are kept once.
pub(crate) fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("dispatch failure")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn error_text_lists_causes_without_debug_output() {
        let err = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused",
        ));
        assert_eq!(error_text(&err), "dispatch failure: Connection refused");
    }
}
