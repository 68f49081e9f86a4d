//! The Slack notifier against a fake Slack (wiremock) that records and checks every request,
//! and against moto for dead letters. Timings are shrunk (milliseconds) through
//! `NotifierOptions`; the behaviour is the production one.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deploy_coordinator::registry::Registry;
use deploy_coordinator::slack::blocks::check_limits;
use deploy_coordinator::slack::client::{SlackApi, Webhook};
use deploy_coordinator::slack::deadletter::{self, DeadTarget, LetterKind};
use deploy_coordinator::slack::retry::{ItemResult, RetryOptions, RetryTarget, retry_all};
use deploy_coordinator::slack::{
    Card, CardRef, DeadLetterStore, Delivery, Destination, FailedResource, Holder, Notifier,
    NotifierOptions, Outcome, Phase, RootCause, ThreadEvent,
};
use serde_json::{Value, json};
use support::dynamo::{DynamoServer, Emulator, free_port};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "xoxb-test-token-0123456789";
const CHANNEL_NAME: &str = "#deploys";
const CHANNEL_ID: &str = "C0CHANNEL";
const CORRELATION: &str = "app-prod-abc1234-42-1";
const EVIL: &str = "<!channel> <https://evil|click> & ::set-output name=outcome::succeeded";

// ---------------------------------------------------------------------------------------------
// The fake Slack

#[derive(Debug, Clone)]
struct Recorded {
    at: Instant,
    path: String,
    auth: Option<String>,
    content_type: Option<String>,
    body: Value,
}

type Behaviour = Arc<dyn Fn(&Recorded, usize) -> ResponseTemplate + Send + Sync>;

struct Recorder {
    log: Arc<Mutex<Vec<Recorded>>>,
    behaviour: Behaviour,
}

impl Respond for Recorder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let rec = Recorded {
            at: Instant::now(),
            path: request.url.path().to_string(),
            auth: header("authorization"),
            content_type: header("content-type"),
            body: serde_json::from_slice(&request.body).unwrap_or(Value::Null),
        };
        let n = {
            let mut log = self.log.lock().unwrap();
            log.push(rec.clone());
            log.len() - 1
        };
        (self.behaviour)(&rec, n)
    }
}

struct FakeSlack {
    server: MockServer,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeSlack {
    async fn start(behaviour: Behaviour) -> FakeSlack {
        let server = MockServer::start().await;
        let log = Arc::new(Mutex::new(Vec::new()));
        Mock::given(any())
            .respond_with(Recorder {
                log: log.clone(),
                behaviour,
            })
            .mount(&server)
            .await;
        FakeSlack { server, log }
    }

    fn api_url(&self) -> String {
        format!("{}/api", self.server.uri())
    }

    fn webhook_url(&self) -> String {
        format!("{}/services/T000/B000/WEBHOOKSECRET42", self.server.uri())
    }

    fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }
}

/// A working Slack: postMessage answers with the channel ID and a new ts, chat.update with
/// the same ts, webhooks with `ok`.
fn slack_ok(rec: &Recorded, n: usize) -> ResponseTemplate {
    match rec.path.as_str() {
        "/api/chat.postMessage" => ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "channel": CHANNEL_ID, "ts": format!("1700000000.{:06}", n + 1)
        })),
        "/api/chat.update" => ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "channel": CHANNEL_ID, "ts": rec.body["ts"]
        })),
        p if p.starts_with("/services/") => ResponseTemplate::new(200).set_body_string("ok"),
        _ => ResponseTemplate::new(404).set_body_string("no_service"),
    }
}

fn behaviour(
    f: impl Fn(&Recorded, usize) -> ResponseTemplate + Send + Sync + 'static,
) -> Behaviour {
    Arc::new(f)
}

fn slack_error(code: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": code}))
}

// ---------------------------------------------------------------------------------------------
// A simulated deployment

fn fast() -> NotifierOptions {
    NotifierOptions {
        backoff_base: Duration::from_millis(20),
        max_attempts: 5,
        update_interval: Duration::from_millis(100),
        request_timeout: Duration::from_millis(300),
        dead_letter_timeout: Duration::from_secs(10),
    }
}

fn card(phase: Phase) -> Card {
    Card {
        stack: "app-prod".into(),
        stack_id: None,
        environment: Some("prod".into()),
        correlation_id: CORRELATION.into(),
        mode: "deploy".into(),
        repository: Some("acme/api".into()),
        actor: Some("alice".into()),
        commit: Some("abc1234def5678".into()),
        commit_message: Some(format!("Deploy {EVIL}")),
        git_ref: Some("refs/heads/main".into()),
        server_url: Some("https://github.com".into()),
        run_url: Some("https://github.com/acme/api/actions/runs/42".into()),
        region: Some("eu-west-1".into()),
        phase,
    }
}

fn holder() -> Holder {
    Holder {
        summary: format!("acme/other run 7 by {EVIL}"),
        run_url: Some("https://github.com/acme/other/actions/runs/7".into()),
        held_for: Some(Duration::from_secs(120)),
    }
}

fn queued() -> Phase {
    Phase::Queued {
        position: 1,
        ahead: 0,
        holder: Some(holder()),
        eta: Some(Duration::from_secs(300)),
    }
}

fn running(done: u32, total: u32) -> Phase {
    Phase::Running {
        done,
        total: Some(total),
        elapsed: Duration::from_secs(u64::from(done) * 10),
        remaining: Some((Duration::from_secs(60), Duration::from_secs(120))),
        completion: None,
        slower_than_usual: false,
        in_progress: vec!["Db".into()],
    }
}

fn finished() -> Phase {
    Phase::Finished {
        outcome: Outcome::RolledBack,
        duration: Duration::from_secs(754),
        root_cause: Some(RootCause {
            resource: "Db".into(),
            resource_type: Some("AWS::RDS::DBInstance".into()),
            reason: format!("DB instance class not supported {EVIL}"),
            heading: None,
        }),
        stack_status: Some("UPDATE_ROLLBACK_COMPLETE".into()),
        mention: Some("@here".into()),
        warnings: Vec::new(),
        next_step: None,
    }
}

fn failure_detail() -> ThreadEvent {
    ThreadEvent::FailureDetail {
        failures: vec![FailedResource {
            resource: "Db".into(),
            resource_type: Some("AWS::RDS::DBInstance".into()),
            status: "UPDATE_FAILED".into(),
            reason: format!("not supported {EVIL}"),
        }],
    }
}

/// Queued → waiting → 20 progress updates → finished, with three thread events.
async fn simulate_deployment(n: &Notifier) {
    n.card(&card(queued()));
    n.thread(&ThreadEvent::QueuedBehind {
        holder: holder(),
        position: 1,
        eta: Some(Duration::from_secs(300)),
    });
    n.card(&card(Phase::WaitingForStack { stack_status: None }));
    for done in 0..=20 {
        n.card(&card(running(done, 20)));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    n.thread(&ThreadEvent::SlowerThanUsual {
        elapsed: Duration::from_secs(700),
        usual: Duration::from_secs(300),
    });
    n.card(&card(finished()));
    n.thread(&failure_detail());
}

fn bot(slack: &FakeSlack, options: &NotifierOptions) -> Destination {
    Destination::Bot {
        api: SlackApi::new(&slack.api_url(), TOKEN, options.request_timeout).unwrap(),
        channel: CHANNEL_NAME.into(),
    }
}

fn start_bot(slack: &FakeSlack, options: NotifierOptions) -> Notifier {
    Notifier::start(bot(slack, &options), "prod", CORRELATION, None, options)
}

/// What every request to Slack must look like.
fn assert_well_formed(rec: &Recorded, bot: bool) {
    if bot {
        assert_eq!(
            rec.auth.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    } else {
        assert_eq!(rec.auth, None, "webhooks carry no token");
    }
    let ct = rec.content_type.as_deref().unwrap_or("");
    assert!(
        ct.starts_with("application/json") && ct.contains("charset=utf-8"),
        "{ct}"
    );
    check_limits(&rec.body).unwrap_or_else(|e| panic!("{}: {e}: {}", rec.path, rec.body));
    let text = rec.body["text"].as_str().unwrap_or("");
    assert!(text.contains(CORRELATION), "no correlation ID in {text}");
    let raw = rec.body.to_string();
    assert!(!raw.contains("<!channel>"), "{raw}");
    assert!(!raw.contains("<https://evil"), "{raw}");
    assert!(!raw.contains(TOKEN));
}

fn assert_balanced(report: &Delivery) {
    assert!(
        report.balanced(),
        "accepted {} != delivered {} + superseded {} + dead-lettered {}",
        report.accepted,
        report.delivered,
        report.superseded,
        report.dead_lettered
    );
}

// ---------------------------------------------------------------------------------------------
// Bot and webhook modes

#[tokio::test]
async fn the_card_is_posted_once_then_updated_in_place_with_a_thread_of_events() {
    let slack = FakeSlack::start(behaviour(slack_ok)).await;
    let n = start_bot(&slack, fast());
    simulate_deployment(&n).await;
    let report = n.flush(Duration::from_secs(10), None).await;

    assert_eq!(report.dead_lettered, 0, "{report:?}");
    assert_balanced(&report);
    assert!(
        report.superseded > 0,
        "fast progress must collapse: {report:?}"
    );

    let reqs = slack.requests();
    for r in &reqs {
        assert_well_formed(r, true);
    }
    let first = &reqs[0];
    assert_eq!(first.path, "/api/chat.postMessage");
    assert_eq!(first.body["channel"], CHANNEL_NAME);
    assert!(first.body.get("thread_ts").is_none());
    let card_ts = "1700000000.000001";
    assert_eq!(
        n.card_ref(),
        Some(CardRef {
            channel: CHANNEL_ID.into(),
            ts: card_ts.into()
        })
    );
    assert_eq!(report.card, n.card_ref());

    let top_level: Vec<_> = reqs
        .iter()
        .filter(|r| r.path == "/api/chat.postMessage" && r.body.get("thread_ts").is_none())
        .collect();
    assert_eq!(top_level.len(), 1, "the card is posted once");

    let updates: Vec<_> = reqs
        .iter()
        .filter(|r| r.path == "/api/chat.update")
        .collect();
    assert!(
        updates.len() >= 3,
        "queued → running → finished: {}",
        updates.len()
    );
    for u in &updates {
        assert_eq!(u.body["channel"], CHANNEL_ID, "updates need the channel ID");
        assert_eq!(u.body["ts"], card_ts);
    }
    for pair in updates.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(90), "updates {gap:?} apart");
    }
    let last = updates.last().unwrap();
    let last_text = last.body["text"].as_str().unwrap();
    assert!(
        last_text.contains("failed and rolled back in 12m 34s"),
        "{last_text}"
    );
    assert!(
        last_text.starts_with("<!here>"),
        "mention on failure: {last_text}"
    );
    assert!(
        last.body
            .to_string()
            .contains("*Root cause:* `Db` (AWS::RDS::DBInstance)")
    );

    let thread: Vec<_> = reqs
        .iter()
        .filter(|r| r.body.get("thread_ts").is_some())
        .collect();
    assert_eq!(thread.len(), 3);
    for t in &thread {
        assert_eq!(t.body["thread_ts"], card_ts);
        assert_eq!(t.body["channel"], CHANNEL_ID);
    }
    assert!(
        thread[0].body["text"]
            .as_str()
            .unwrap()
            .contains("Queued at position 1")
    );
    assert!(
        thread[1].body["text"]
            .as_str()
            .unwrap()
            .contains("Slower than usual")
    );
    assert!(
        thread[2].body["text"]
            .as_str()
            .unwrap()
            .contains("1 resource failed")
    );
    assert_eq!(report.delivered as usize, reqs.len());
}

#[tokio::test]
async fn webhook_mode_posts_only_state_changes() {
    let slack = FakeSlack::start(behaviour(slack_ok)).await;
    let options = fast();
    let hook = Webhook::new(&slack.webhook_url(), options.request_timeout).unwrap();
    let n = Notifier::start(
        Destination::Webhook(hook),
        "prod",
        CORRELATION,
        None,
        options,
    );
    simulate_deployment(&n).await;
    let report = n.flush(Duration::from_secs(10), None).await;

    let reqs = slack.requests();
    assert_eq!(reqs.len(), 3, "queued, started, finished");
    for r in &reqs {
        assert_eq!(r.path, "/services/T000/B000/WEBHOOKSECRET42");
        assert!(r.body.get("thread_ts").is_none());
        assert_well_formed(r, false);
    }
    let text = |i: usize| reqs[i].body["text"].as_str().unwrap().to_string();
    assert!(text(0).contains("is queued"), "{}", text(0));
    assert!(text(1).contains("waiting for the stack"), "{}", text(1));
    assert!(text(2).contains("failed and rolled back"), "{}", text(2));
    assert_eq!(
        (report.accepted, report.delivered, report.dead_lettered),
        (3, 3, 0)
    );
    assert_eq!(n.card_ref(), None, "webhooks have no ts");
}

// ---------------------------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn rate_limits_are_honoured_with_retry_after() {
    let slack = FakeSlack::start(behaviour(|rec, n| match n {
        0 => ResponseTemplate::new(429).insert_header("Retry-After", "1"),
        1 => slack_error("ratelimited"),
        _ => slack_ok(rec, n),
    }))
    .await;
    let n = start_bot(&slack, fast());
    n.card(&card(queued()));
    let report = n.flush(Duration::from_secs(10), None).await;
    let reqs = slack.requests();
    assert_eq!(reqs.len(), 3);
    assert!(
        reqs[1].at - reqs[0].at >= Duration::from_millis(990),
        "Retry-After: 1 ignored"
    );
    assert_eq!((report.delivered, report.dead_lettered), (1, 0));
    assert!(n.card_ref().is_some());
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retried_with_backoff() {
    let slack = FakeSlack::start(behaviour(|rec, n| match n {
        0 => ResponseTemplate::new(500),
        // Longer than the 300 ms request timeout.
        1 => slack_ok(rec, n).set_delay(Duration::from_secs(2)),
        2 => slack_error("service_unavailable"),
        _ => slack_ok(rec, n),
    }))
    .await;
    let n = start_bot(&slack, fast());
    n.card(&card(queued()));
    n.thread(&ThreadEvent::Note("hello".into()));
    let report = n.flush(Duration::from_secs(10), None).await;
    let reqs = slack.requests();
    assert_eq!(
        reqs.len(),
        5,
        "4 attempts for the card, then the thread reply"
    );
    // Backoff 20, 40, 80 ms after failures 1, 2, 3 (the timeout itself takes 300 ms).
    assert!(reqs[1].at - reqs[0].at >= Duration::from_millis(20));
    assert!(reqs[3].at - reqs[2].at >= Duration::from_millis(80));
    assert_eq!((report.delivered, report.dead_lettered), (2, 0));
    assert_eq!(reqs[4].body["thread_ts"], "1700000000.000004");
}

#[tokio::test]
async fn errors_that_retrying_cannot_fix_stop_sending_and_keep_everything() {
    for code in [
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "missing_scope",
    ] {
        let slack = FakeSlack::start(behaviour(move |_, _| slack_error(code))).await;
        let n = start_bot(&slack, fast());
        n.card(&card(queued()));
        n.thread(&ThreadEvent::Note("a".into()));
        n.card(&card(running(1, 2)));
        n.thread(&ThreadEvent::Note("b".into()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        n.card(&card(finished()));
        let report = n.flush(Duration::from_secs(5), None).await;
        assert_eq!(
            slack.requests().len(),
            1,
            "{code}: no retry of a permanent error"
        );
        assert!(
            report.stopped_by.as_deref().unwrap_or("").contains(code),
            "{report:?}"
        );
        assert_eq!(report.delivered, 0);
        assert_eq!(
            report.dead_lettered, 3,
            "{code}: newest card + 2 replies: {report:?}"
        );
        assert_eq!(report.letters[0].kind, LetterKind::Card);
        assert!(report.letters[0].message.text.contains("rolled back"));
        assert_eq!(report.letters[1].kind, LetterKind::Thread);
        assert_balanced(&report);
        assert!(
            report.took < Duration::from_secs(1),
            "{code}: flush waited for nothing"
        );
    }
}

#[tokio::test]
async fn refused_blocks_are_resent_as_plain_text() {
    for code in ["invalid_blocks", "msg_too_long"] {
        let slack = FakeSlack::start(behaviour(move |rec, n| {
            if rec.body.get("blocks").is_some() {
                slack_error(code)
            } else {
                slack_ok(rec, n)
            }
        }))
        .await;
        let n = start_bot(&slack, fast());
        n.card(&card(queued()));
        let report = n.flush(Duration::from_secs(5), None).await;
        let reqs = slack.requests();
        assert_eq!(reqs.len(), 2, "{code}");
        assert!(reqs[1].body.get("blocks").is_none());
        assert!(reqs[1].body["text"].as_str().unwrap().contains("is queued"));
        assert_eq!((report.delivered, report.dead_lettered), (1, 0), "{code}");
    }
}

#[tokio::test]
async fn a_card_that_cannot_be_updated_is_posted_again() {
    let slack = FakeSlack::start(behaviour(|rec, n| match rec.path.as_str() {
        "/api/chat.update" => slack_error("message_not_found"),
        _ => slack_ok(rec, n),
    }))
    .await;
    let n = start_bot(&slack, fast());
    n.card(&card(queued()));
    assert!(n.wait_card_ref(Duration::from_secs(5)).await.is_some());
    // Past the update interval, so the update goes before the reply.
    tokio::time::sleep(Duration::from_millis(150)).await;
    n.card(&card(finished()));
    n.thread(&failure_detail());
    let report = n.flush(Duration::from_secs(5), None).await;
    let reqs = slack.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/chat.postMessage",
            "/api/chat.update",
            "/api/chat.postMessage",
            "/api/chat.postMessage"
        ]
    );
    assert!(reqs[2].body.get("thread_ts").is_none());
    assert_eq!(
        reqs[3].body["thread_ts"], "1700000000.000003",
        "replies go to the new card"
    );
    assert_eq!((report.delivered, report.dead_lettered), (3, 0));
}

#[tokio::test]
async fn slack_down_for_the_whole_run_loses_nothing_and_flush_is_bounded() {
    let moto = DynamoServer::start(Emulator::Moto);
    moto.create_table("registry").await;
    let registry = Registry::new(moto.client().await, "registry");

    // Every request times out, or is answered 503 (two flavours of an outage).
    for outage in ["timeout", "503"] {
        let slack = FakeSlack::start(behaviour(move |rec, n| match outage {
            "timeout" => slack_ok(rec, n).set_delay(Duration::from_secs(5)),
            _ => ResponseTemplate::new(503).set_body_string(format!("upstream down {TOKEN}")),
        }))
        .await;
        let started = Instant::now();
        let n = start_bot(&slack, fast());
        simulate_deployment(&n).await;
        let simulated = started.elapsed();
        assert!(
            simulated < Duration::from_secs(2),
            "the deployment must not wait on Slack: {simulated:?}"
        );
        let report = n.flush(Duration::from_millis(800), Some(&registry)).await;
        assert!(
            report.took < Duration::from_millis(800) + Duration::from_secs(3),
            "{:?}",
            report.took
        );
        assert_eq!(report.delivered, 0);
        assert_balanced(&report);
        assert_eq!(
            report.dead_lettered, 4,
            "{outage}: the last card state and 3 replies"
        );
        assert!(
            matches!(report.store, DeadLetterStore::Registry { .. }),
            "{:?}",
            report.store
        );
        for l in &report.letters {
            assert!(!l.error.contains(TOKEN), "{}", l.error);
            assert!(!l.error.is_empty());
        }
        assert!(!report.summary_markdown().contains(TOKEN));
        assert!(report.summary_markdown().contains("4 not delivered"));
    }

    let stored = deadletter::list(&registry).await.unwrap();
    assert_eq!(stored.len(), 2);
    for d in &stored {
        assert_eq!(d.lock_key, "prod");
        assert!(
            d.sk.starts_with("DEADLETTER#") && d.sk.ends_with(CORRELATION),
            "{}",
            d.sk
        );
        assert_eq!(
            d.target,
            DeadTarget::Bot {
                channel: CHANNEL_NAME.into()
            }
        );
        let kinds: Vec<LetterKind> = d.letters.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            [
                LetterKind::Card,
                LetterKind::Thread,
                LetterKind::Thread,
                LetterKind::Thread
            ]
        );
        assert!(!format!("{d:?}").contains(TOKEN));
    }

    // Slack is back: `slack retry` delivers every dead letter once, in order.
    let slack = FakeSlack::start(behaviour(slack_ok)).await;
    let target = RetryTarget::Bot {
        api: SlackApi::new(&slack.api_url(), TOKEN, Duration::from_secs(5)).unwrap(),
        channel: None,
    };
    let options = RetryOptions {
        attempts: 3,
        backoff: Duration::from_millis(10),
    };
    let reports = retry_all(&registry, &target, &options).await.unwrap();
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert_eq!(r.result, ItemResult::Delivered { letters: 4 });
    }
    let reqs = slack.requests();
    assert_eq!(reqs.len(), 8);
    for item in reqs.chunks(4) {
        assert!(item[0].body.get("thread_ts").is_none(), "the card first");
        assert_eq!(item[0].body["channel"], CHANNEL_NAME);
        assert!(
            item[0].body["text"]
                .as_str()
                .unwrap()
                .contains("rolled back")
        );
        let card_ts = format!(
            "1700000000.{:06}",
            reqs.iter().position(|r| std::ptr::eq(r, &item[0])).unwrap() + 1
        );
        for reply in &item[1..] {
            assert_eq!(reply.body["thread_ts"], card_ts.as_str());
        }
        for r in item {
            assert_well_formed(r, true);
        }
    }
    assert!(
        deadletter::list(&registry).await.unwrap().is_empty(),
        "delivered items are removed"
    );
    let again = retry_all(&registry, &target, &options).await.unwrap();
    assert!(again.is_empty());
    assert_eq!(slack.requests().len(), 8, "nothing sent twice");
}

#[tokio::test]
async fn a_retry_that_fails_midway_keeps_the_rest() {
    let moto = DynamoServer::start(Emulator::Moto);
    moto.create_table("registry").await;
    let registry = Registry::new(moto.client().await, "registry");
    let dead = FakeSlack::start(behaviour(|_, _| ResponseTemplate::new(503))).await;
    let n = start_bot(&dead, fast());
    n.card(&card(finished()));
    n.thread(&ThreadEvent::Note("one".into()));
    n.thread(&ThreadEvent::Note("two".into()));
    let report = n.flush(Duration::from_millis(200), Some(&registry)).await;
    assert_eq!(report.dead_lettered, 3);

    // Slack answers the card and the first reply, then fails for good.
    let flaky = FakeSlack::start(behaviour(|rec, n| {
        if n < 2 {
            slack_ok(rec, n)
        } else {
            slack_error("channel_not_found")
        }
    }))
    .await;
    let target = RetryTarget::Bot {
        api: SlackApi::new(&flaky.api_url(), TOKEN, Duration::from_secs(5)).unwrap(),
        channel: None,
    };
    let options = RetryOptions {
        attempts: 2,
        backoff: Duration::from_millis(10),
    };
    let r = retry_all(&registry, &target, &options).await.unwrap();
    assert!(
        matches!(&r[0].result, ItemResult::Partial { delivered: 2, left: 1, error } if error.contains("channel_not_found")),
        "{r:?}"
    );
    let left = deadletter::list(&registry).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].letters.len(), 1);
    assert!(left[0].letters[0].message.text.contains("two"));
}

#[tokio::test]
async fn with_the_registry_down_too_the_summary_keeps_the_messages() {
    let options = fast();
    let closed = format!("http://127.0.0.1:{}", free_port());
    let api = SlackApi::new(&format!("{closed}/api"), TOKEN, options.request_timeout).unwrap();
    let n = Notifier::start(
        Destination::Bot {
            api,
            channel: CHANNEL_NAME.into(),
        },
        "prod",
        CORRELATION,
        None,
        NotifierOptions {
            dead_letter_timeout: Duration::from_secs(3),
            ..options
        },
    );
    n.card(&card(finished()));
    n.thread(&failure_detail());
    let registry = Registry::new(support::dynamo::client_for(&closed).await, "registry");
    let report = n.flush(Duration::from_millis(300), Some(&registry)).await;
    assert_eq!(report.dead_lettered, 2);
    assert!(
        matches!(report.store, DeadLetterStore::SummaryOnly { .. }),
        "{:?}",
        report.store
    );
    let md = report.summary_markdown();
    assert!(md.contains("[card]") && md.contains("[thread]"), "{md}");
    assert!(md.contains("could not be stored in the registry"), "{md}");
    assert!(report.took < Duration::from_secs(4), "{:?}", report.took);
}

#[tokio::test]
async fn secrets_never_appear_in_errors_reports_or_dead_letters() {
    // A webhook whose URL (a secret) points at a port where nothing listens, and a bot whose
    // Slack echoes the request back in its error page.
    let port = free_port();
    let hook_url = format!("http://127.0.0.1:{port}/services/T1/B1/HOOKSECRET77");
    let options = fast();
    let hook = Webhook::new(&hook_url, options.request_timeout).unwrap();
    assert!(!format!("{hook:?}").contains("HOOKSECRET77"));
    let n = Notifier::start(
        Destination::Webhook(hook),
        "prod",
        CORRELATION,
        None,
        options.clone(),
    );
    n.card(&card(queued()));
    let report = n.flush(Duration::from_millis(300), None).await;
    assert_eq!(report.dead_lettered, 1);
    let everything = format!(
        "{report:?}{}{:?}",
        report.summary_markdown(),
        report.warning()
    );
    assert!(!everything.contains("HOOKSECRET77"), "{everything}");
    assert!(
        !everything.contains(&port.to_string()),
        "the URL leaked: {everything}"
    );

    let slack = FakeSlack::start(behaviour(|rec, _| {
        ResponseTemplate::new(502).set_body_string(format!(
            "bad gateway for {}",
            rec.auth.clone().unwrap_or_default()
        ))
    }))
    .await;
    let n = start_bot(
        &slack,
        NotifierOptions {
            max_attempts: 2,
            ..options
        },
    );
    assert!(!format!("{:?}", bot(&slack, &fast())).contains(TOKEN));
    n.card(&card(queued()));
    let report = n.flush(Duration::from_secs(2), None).await;
    assert_eq!(report.dead_lettered, 1);
    let everything = format!(
        "{report:?}{}{:?}",
        report.summary_markdown(),
        report.warning()
    );
    assert!(everything.contains("HTTP 502"), "{everything}");
    assert!(!everything.contains(TOKEN), "{everything}");
}

#[tokio::test]
async fn the_post_step_updates_the_card_the_main_step_posted() {
    let slack = FakeSlack::start(behaviour(slack_ok)).await;
    let options = fast();
    let main = start_bot(&slack, options.clone());
    main.card(&card(running(1, 3)));
    let posted = main.wait_card_ref(Duration::from_secs(5)).await.unwrap();
    let state = posted.encode();
    main.flush(Duration::from_secs(2), None).await;

    let resumed = CardRef::decode(&state);
    let post = Notifier::start(bot(&slack, &options), "prod", CORRELATION, resumed, options);
    post.card(&card(finished()));
    post.flush(Duration::from_secs(2), None).await;
    let reqs = slack.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].path, "/api/chat.update");
    assert_eq!(reqs[1].body["ts"], posted.ts.as_str());
}

#[tokio::test]
async fn a_disabled_notifier_does_nothing() {
    let n = Notifier::disabled();
    n.card(&card(queued()));
    n.thread(&ThreadEvent::Note("x".into()));
    let report = n.flush(Duration::from_secs(1), None).await;
    assert!(!report.enabled);
    assert_eq!(report.accepted, 0);
    assert_eq!(report.summary_markdown(), "");
}
