//! Loading AWS configuration, the same way for the action and the CLI.
//!
//! The default credential chain (environment, web identity, profile, IMDS) and
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` are honoured by `aws-config` itself; that is
//! how the tests reach moto, dynalite and the CloudFormation simulator with the real SDK.

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Loads the SDK configuration; `region` (input `aws-region` or `--region`) wins over the
/// environment.
pub async fn load(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    loader.load().await
}
