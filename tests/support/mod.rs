//! Test support shared by the integration tests: the runner emulation, the DynamoDB backends
//! and the fault proxy. Each test binary uses part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod cfnsim;
pub mod cli;
pub mod dynamo;
pub mod faults;
pub mod real_events;
pub mod runner;
pub mod soak;

/// A Slack Web API that accepts every card and reply (`chat.postMessage`, `chat.update`) under
/// `/api`, as channel `C0DEPLOY` and message `1700000000.000100`.
pub async fn mount_slack_bot_api(slack: &wiremock::MockServer) {
    use wiremock::matchers::{method, path};
    for api in ["/api/chat.postMessage", "/api/chat.update"] {
        wiremock::Mock::given(method("POST"))
            .and(path(api))
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"ok": true, "channel": "C0DEPLOY", "ts": "1700000000.000100"}),
            ))
            .mount(slack)
            .await;
    }
}

/// A lock holder known only by its owner (library tests, no GitHub run).
pub fn holder(owner: &str) -> deploy_coordinator::lock::HolderInfo {
    deploy_coordinator::lock::HolderInfo {
        owner: owner.into(),
        correlation_id: owner.into(),
        ..Default::default()
    }
}
