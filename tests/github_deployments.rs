//! GitHub Deployments against a wiremock GitHub API: the exact requests (method, path, auth,
//! JSON body) and the answers a workflow without `deployments: write` gets.

use deploy_coordinator::github::deployments::{DeploymentError, DeploymentState, Deployments};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const RUN: &str = "https://github.com/acme/api/actions/runs/42/attempts/1";

async fn github() -> (MockServer, Deployments) {
    let server = MockServer::start().await;
    let deployments = Deployments::new(&server.uri(), "ghs_t0ken", "acme/api").expect("client");
    (server, deployments)
}

#[tokio::test]
async fn creates_the_deployment_then_its_statuses() {
    let (server, deployments) = github().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/api/deployments"))
        .and(header("authorization", "Bearer ghs_t0ken"))
        .and(body_json(json!({
            "ref": SHA,
            "task": "deploy",
            "environment": "prod",
            "description": "api: deploy-coordinator",
            "payload": {"correlation_id": "api-20240101-abcd"},
            "auto_merge": false,
            "required_contexts": [],
            "transient_environment": false,
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": 1_234_567_890_u64, "sha": SHA, "environment": "prod"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/api/deployments/1234567890/statuses"))
        .and(header("authorization", "Bearer ghs_t0ken"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1, "state": "x"})))
        .expect(2)
        .mount(&server)
        .await;

    let id = deployments
        .create(
            "prod",
            SHA,
            "api: deploy-coordinator",
            json!({"correlation_id": "api-20240101-abcd"}),
        )
        .await
        .expect("created");
    assert_eq!(id, 1_234_567_890);
    deployments
        .set_status(id, DeploymentState::InProgress, RUN, None, "deploying api")
        .await
        .expect("in progress");
    let long = "x".repeat(300);
    deployments
        .set_status(
            id,
            DeploymentState::Success,
            RUN,
            Some("https://app.example.com"),
            &long,
        )
        .await
        .expect("success");

    let requests = server.received_requests().await.expect("recorded");
    let statuses: Vec<Value> = requests
        .iter()
        .filter(|r| r.url.path().ends_with("/statuses"))
        .map(|r| serde_json::from_slice(&r.body).expect("json body"))
        .collect();
    assert_eq!(
        statuses[0],
        json!({"state": "in_progress", "log_url": RUN, "description": "deploying api"})
    );
    assert_eq!(statuses[1]["state"], "success");
    assert_eq!(statuses[1]["environment_url"], "https://app.example.com");
    assert_eq!(statuses[1]["log_url"], RUN);
    let description = statuses[1]["description"].as_str().expect("description");
    assert_eq!(
        description.chars().count(),
        140,
        "GitHub refuses longer descriptions"
    );
}

#[tokio::test]
async fn without_deployments_write_it_says_which_permission_to_add() {
    let (server, deployments) = github().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/api/deployments"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "message": "Resource not accessible by integration",
            "documentation_url": "https://docs.github.com/rest/deployments/deployments#create-a-deployment"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let error = deployments
        .create("prod", SHA, "d", json!({}))
        .await
        .expect_err("403");
    assert!(error.is_permission_denied(), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("permissions: deployments: write"),
        "{message}"
    );
    assert!(
        message.contains("Resource not accessible by integration"),
        "{message}"
    );
    assert!(message.contains("The deploy goes on"), "{message}");
}

#[tokio::test]
async fn a_repository_the_token_cannot_see_is_a_permission_problem_too() {
    let (server, deployments) = github().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/api/deployments/7/statuses"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .mount(&server)
        .await;
    let error = deployments
        .set_status(7, DeploymentState::Failure, RUN, None, "failed")
        .await
        .expect_err("404");
    assert!(error.is_permission_denied(), "{error:?}");
}

#[tokio::test]
async fn other_failures_are_reported_as_they_are() {
    let (server, deployments) = github().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/api/deployments"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/api/deployments"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "Validation Failed", "errors": [{"field": "ref"}]
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/api/deployments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"message": "no id"})))
        .mount(&server)
        .await;

    let rate_limited = deployments.create("prod", SHA, "d", json!({})).await;
    assert!(
        matches!(
            rate_limited,
            Err(DeploymentError::Api {
                status: Some(403),
                ..
            })
        ),
        "a rate limit is not a missing permission: {rate_limited:?}"
    );
    let invalid = deployments.create("prod", SHA, "d", json!({})).await;
    assert!(
        matches!(
            invalid,
            Err(DeploymentError::Api {
                status: Some(422),
                ..
            })
        ),
        "{invalid:?}"
    );
    let no_id = deployments.create("prod", SHA, "d", json!({})).await;
    assert!(
        matches!(no_id, Err(DeploymentError::UnexpectedBody { .. })),
        "{no_id:?}"
    );

    // Nothing listens: an error, never a hang or a panic.
    let down = Deployments::new("http://127.0.0.1:9", "t", "acme/api").expect("client");
    let error = down
        .create("prod", SHA, "d", json!({}))
        .await
        .expect_err("connection refused");
    assert!(matches!(error, DeploymentError::Api { status: None, .. }));
}
