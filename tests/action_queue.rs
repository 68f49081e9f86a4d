//! The queue's policies through the real binary and the runner emulation, with a wiremock
//! GitHub answering the compare API: superseded waiters skipped (FIFO kept for other refs), a
//! high-priority run going next, an older commit refused by `forbid-older`, and GitHub errors
//! and timeouts changing nothing.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::cfnsim::Simulator;
use support::dynamo::{DynamoServer, Emulator};
use support::runner::{Runner, Running, StepRun};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TABLE: &str = "deployment-registry";
const KEY: &str = "payments";

/// A 40-hex commit made of one repeated character.
fn sha(c: char) -> String {
    std::iter::repeat_n(c, 40).collect()
}

fn run_url(run_id: u32) -> String {
    format!("https://github.com/acme/payments/actions/runs/{run_id}/attempts/1")
}

struct World {
    dynamo: DynamoServer,
    cfn: Simulator,
    github: MockServer,
}

impl World {
    async fn start(emulator: Emulator) -> World {
        let dynamo = DynamoServer::start(emulator);
        dynamo.create_table(TABLE).await;
        let scenario = json!({"seed": 5, "change_set_seconds": 1, "types": {"AWS::SQS::Queue": {"duration": 1}}});
        let cfn = Simulator::start(&scenario, 1.0);
        let github = MockServer::start().await;
        World {
            dynamo,
            cfn,
            github,
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        self.dynamo.env()
    }

    /// A run of `acme/payments` at `commit` of `git_ref`, in mode lock (no stack work).
    fn runner(&self, run_id: u32, git_ref: &str, commit: char) -> Runner {
        let mut runner = Runner::new();
        for (k, v) in self.dynamo.env() {
            runner.env(&k, &v);
        }
        runner
            .env("AWS_ENDPOINT_URL_CLOUDFORMATION", &self.cfn.endpoint)
            .env("GITHUB_API_URL", &self.github.uri())
            .env("GITHUB_RUN_ID", &run_id.to_string())
            .env("GITHUB_SHA", &sha(commit))
            .env("GITHUB_REF", git_ref)
            .input("stack-name", "payments")
            .input("mode", "lock")
            .input("github-token", "ghs_testtoken0000000000");
        runner
    }

    /// GitHub's answer to `compare/{base}...{head}`.
    async fn compare(&self, base: char, head: char, response: ResponseTemplate) {
        Mock::given(method("GET"))
            .and(path(format!(
                "/repos/acme/payments/compare/{}...{}",
                sha(base),
                sha(head)
            )))
            .and(query_param("per_page", "1"))
            .and(header("authorization", "Bearer ghs_testtoken0000000000"))
            .respond_with(response)
            .mount(&self.github)
            .await;
    }

    async fn compare_status(&self, base: char, head: char, status: &str) {
        let body = json!({"status": status, "ahead_by": 1, "behind_by": 0, "total_commits": 1, "commits": []});
        self.compare(base, head, ResponseTemplate::new(200).set_body_json(body))
            .await;
    }

    /// The (base, head) pairs of every compare request GitHub received, as commit characters.
    async fn compared(&self) -> Vec<(char, char)> {
        let requests: Vec<Request> = self.github.received_requests().await.unwrap_or_default();
        requests
            .iter()
            .filter_map(|r| {
                let rest = r.url.path().strip_prefix("/repos/acme/payments/compare/")?;
                let (base, head) = rest.split_once("...")?;
                Some((base.chars().next()?, head.chars().next()?))
            })
            .collect()
    }

    fn status(&self) -> serde_json::Value {
        support::runner::lock_status(&self.env(), TABLE, KEY)
    }

    /// The owners' run ids in the queue, in queue order, from `lock status --json`.
    fn queue(&self) -> Vec<u64> {
        self.status()["queue"]
            .as_array()
            .map(|q| q.iter().filter_map(|t| t["run_id"].as_u64()).collect())
            .unwrap_or_default()
    }

    fn holder_run(&self) -> Option<u64> {
        let st = self.status();
        (st["state"] == "held").then(|| st["holder"]["run_id"].as_u64())?
    }

    /// Waits until `run` has a ticket in the queue.
    fn wait_for_ticket(&self, run: u64) {
        let until = Instant::now() + Duration::from_secs(30);
        while !self.queue().contains(&run) {
            assert!(Instant::now() < until, "run {run} never queued");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `lock status` lists `runs` in the queue, in this order.
    fn wait_for_queue(&self, runs: &[u64]) {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let queue = self.queue();
            if queue == runs {
                return;
            }
            assert!(Instant::now() < until, "queue {queue:?}, expected {runs:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn assert_ok(run: &StepRun, what: &str) {
    assert_eq!(run.code(), Some(0), "{what} failed:\n{}", run.log());
}

/// Waits for a step that must end by itself within `within`.
fn finish(mut running: Running, within: Duration, what: &str) -> StepRun {
    let until = Instant::now() + within;
    while running.is_running() {
        if Instant::now() >= until {
            let run = running.terminate().0;
            panic!("{what} did not end within {within:?}:\n{}", run.log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    running.wait()
}

/// The holder, then on ref main three runs at commits a, b, c (each newer than the one before)
/// and a run of another ref between them, all with `on-superseded: skip`. GitHub fails the
/// comparisons of a with b (a 500) and of b with a (no answer within the client's bound): while
/// only a and b are queued, nobody is skipped. Once c is queued, a and b leave the queue with
/// outcome skipped, naming c's run, and succeed; the other ref keeps its place and goes next.
async fn older_waiters_of_a_ref_are_skipped_once_a_newer_commit_is_queued(emulator: Emulator) {
    let world = World::start(emulator).await;
    let slow = Duration::from_secs(6);
    world
        .compare('a', 'b', ResponseTemplate::new(500).set_body_string("boom"))
        .await;
    world
        .compare(
            'b',
            'a',
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "behind"}))
                .set_delay(slow),
        )
        .await;
    world.compare_status('a', 'c', "ahead").await;
    world.compare_status('b', 'c', "ahead").await;
    world.compare_status('c', 'a', "behind").await;
    world.compare_status('c', 'b', "behind").await;

    let holder = world.runner(100, "refs/heads/main", 'h');
    let held = holder.main();
    assert_ok(&held, "holder main");

    let skip = |mut r: Runner| {
        r.input("on-superseded", "skip");
        r
    };
    let a = skip(world.runner(101, "refs/heads/main", 'a'));
    let mut a_run = a.spawn_main();
    world.wait_for_queue(&[101]);
    let release = skip(world.runner(102, "refs/heads/release", 'r'));
    let release_run = release.spawn_main();
    world.wait_for_queue(&[101, 102]);
    let b = skip(world.runner(103, "refs/heads/main", 'b'));
    let mut b_run = b.spawn_main();
    world.wait_for_queue(&[101, 102, 103]);

    // Both sides asked GitHub, got an error or no answer in time: nobody skipped.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let compared = world.compared().await;
        if compared.contains(&('a', 'b')) && compared.contains(&('b', 'a')) {
            break;
        }
        assert!(Instant::now() < until, "compare requests: {compared:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(slow);
    assert!(a_run.is_running() && b_run.is_running());
    assert_eq!(world.queue(), [101, 102, 103], "API errors change nothing");

    let c = skip(world.runner(104, "refs/heads/main", 'c'));
    let c_run = c.spawn_main();
    // a and b may leave as soon as c is in: only c's ticket is waited for.
    world.wait_for_ticket(104);
    // The holder releases at once: a, at the head, must not take the lock for its older
    // commit; it learns of c before it takes anything.
    assert_ok(&holder.post(&held), "holder post");
    let a_done = finish(a_run, Duration::from_secs(20), "a");
    let b_done = finish(b_run, Duration::from_secs(20), "b");
    for (run, what) in [(&a_done, "a"), (&b_done, "b")] {
        assert_ok(run, what);
        assert_eq!(run.output("outcome"), Some("skipped"), "{}", run.log());
        assert_eq!(run.output("lock-acquired"), Some("false"));
        assert_eq!(
            run.output("superseded-by"),
            Some(run_url(104).as_str()),
            "{what} names the run that deploys instead"
        );
        let notice = run
            .commands()
            .into_iter()
            .find(|c| c.starts_with("::notice") && c.contains("Skipped"))
            .unwrap_or_else(|| panic!("{what}: a notice:\n{}", run.log()));
        assert!(
            notice.contains(&sha('c')[..7]) && notice.contains(&run_url(104)),
            "{notice}"
        );
        assert!(
            run.summary.contains("Skipped: superseded") && run.summary.contains(&sha('c')),
            "{}",
            run.summary
        );
    }
    // The other ref kept its place and got the lock; the newest commit waits behind it.
    let release_done = finish(release_run, Duration::from_secs(20), "release");
    assert_ok(&release_done, "release main");
    assert_eq!(
        release_done.output("lock-fence"),
        Some("2"),
        "FIFO for the other ref"
    );
    world.wait_for_queue(&[104]);
    // Nobody compared the other ref's commit: it is no rival.
    let compared = world.compared().await;
    assert!(
        compared.iter().all(|(x, y)| *x != 'r' && *y != 'r'),
        "{compared:?}"
    );

    // A skipped run's post step touches nothing: the holder keeps the lock.
    assert_ok(&a.post(&a_done), "a post");
    assert_eq!(world.holder_run(), Some(102));

    assert_ok(&release.post(&release_done), "release post");
    let c_done = finish(c_run, Duration::from_secs(20), "c");
    assert_ok(&c_done, "c main");
    assert_eq!(c_done.output("outcome"), Some("succeeded"));
    assert_eq!(c_done.output("lock-fence"), Some("3"));
    assert_ok(&c.post(&c_done), "c post");
}

on_all_backends!(older_waiters_of_a_ref_are_skipped_once_a_newer_commit_is_queued);

/// Without `on-superseded: skip` (the default, wait), nobody leaves the queue for a newer
/// commit and GitHub is not asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_that_wait_are_never_skipped() {
    let world = World::start(Emulator::Moto).await;
    world.compare_status('a', 'b', "ahead").await;
    let holder = world.runner(200, "refs/heads/main", 'h');
    let held = holder.main();
    assert_ok(&held, "holder main");
    let a = world.runner(201, "refs/heads/main", 'a');
    let a_run = a.spawn_main();
    world.wait_for_queue(&[201]);
    let b = world.runner(202, "refs/heads/main", 'b');
    let b_run = b.spawn_main();
    world.wait_for_queue(&[201, 202]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(world.queue(), [201, 202]);
    assert!(world.compared().await.is_empty());
    assert_ok(&holder.post(&held), "holder post");
    let a_done = finish(a_run, Duration::from_secs(20), "a");
    assert_eq!(a_done.output("outcome"), Some("succeeded"));
    assert_ok(&a.post(&a_done), "a post");
    let b_done = finish(b_run, Duration::from_secs(20), "b");
    assert_eq!(b_done.output("lock-fence"), Some("3"));
    assert_ok(&b.post(&b_done), "b post");
}

/// Two normal runs wait; a high-priority run queued after them goes next (never ahead of the
/// holder), every waiter it passed is told who went ahead, and the normal runs keep their
/// order among themselves. `lock status` lists the priority and each ticket's ref and commit.
async fn a_high_priority_run_goes_next(emulator: Emulator) {
    let world = World::start(emulator).await;
    let holder = world.runner(300, "refs/heads/main", 'h');
    let held = holder.main();
    assert_ok(&held, "holder main");

    let n1 = world.runner(301, "refs/heads/main", 'a');
    let n1_run = n1.spawn_main();
    world.wait_for_queue(&[301]);
    let n2 = world.runner(302, "refs/heads/feature", 'b');
    let n2_run = n2.spawn_main();
    world.wait_for_queue(&[301, 302]);
    let mut hotfix = world.runner(303, "refs/heads/hotfix", 'f');
    hotfix.input("priority", "high");
    let hotfix_run = hotfix.spawn_main();
    world.wait_for_queue(&[303, 301, 302]);
    assert_eq!(world.holder_run(), Some(300), "never ahead of the holder");

    let st = world.status();
    let first = &st["queue"][0];
    assert_eq!(first["priority"], "high", "{st}");
    assert_eq!(first["git_ref"], "refs/heads/hotfix");
    assert_eq!(first["sha"], sha('f'));
    assert_eq!(st["queue"][1]["priority"], "normal");
    let out = support::cli::run(
        &world.env(),
        &["lock", "status", "--table", TABLE, "--key", KEY],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("1. [high] acme/payments@hotfix ffffff")
            && text.contains("2. [normal] acme/payments@main aaaaaaa"),
        "{text}"
    );

    // Give the waiters time to read the queue and see who went ahead.
    std::thread::sleep(Duration::from_secs(2));
    let handed = Instant::now();
    assert_ok(&holder.post(&held), "holder post");
    let hotfix_done = finish(hotfix_run, Duration::from_secs(20), "hotfix");
    assert_ok(&hotfix_done, "hotfix main");
    assert_eq!(
        hotfix_done.output("lock-fence"),
        Some("2"),
        "the hotfix goes next"
    );
    assert!(
        hotfix_done
            .summary
            .contains("Priority high: this run queued ahead"),
        "{}",
        hotfix_done.summary
    );
    assert!(
        handed.elapsed() < Duration::from_secs(5),
        "hand-off took {:?}",
        handed.elapsed()
    );
    world.wait_for_queue(&[301, 302]);
    assert_ok(&hotfix.post(&hotfix_done), "hotfix post");

    let n1_done = finish(n1_run, Duration::from_secs(20), "n1");
    assert_ok(&n1_done, "n1 main");
    assert_eq!(n1_done.output("lock-fence"), Some("3"), "FIFO among equals");
    assert_ok(&n1.post(&n1_done), "n1 post");
    let n2_done = finish(n2_run, Duration::from_secs(20), "n2");
    assert_eq!(n2_done.output("lock-fence"), Some("4"));
    assert_ok(&n2.post(&n2_done), "n2 post");
    for (run, what) in [(&n1_done, "n1"), (&n2_done, "n2")] {
        let notice = run
            .commands()
            .into_iter()
            .find(|c| c.starts_with("::notice") && c.contains("went ahead of you"))
            .unwrap_or_else(|| panic!("{what} was told:\n{}", run.log()));
        assert!(
            notice.contains("a hotfix from acme/payments@hotfix run")
                && notice.contains(&run_url(303)),
            "{notice}"
        );
        assert!(
            run.summary.contains("hotfix from acme/payments@hotfix"),
            "{}",
            run.summary
        );
    }
    assert!(
        !hotfix_done.log().contains("went ahead of you"),
        "{}",
        hotfix_done.log()
    );
}

on_all_backends!(a_high_priority_run_goes_next);

/// Mode deploy with `forbid-older: true`: a run at commit c deploys and becomes the reference;
/// a run at commit a, which GitHub says is behind c, is refused with an error naming both
/// commits and the run that deployed c (in mode lock too, before the hand-over); GitHub failing (a 500, then no answer in time) only
/// warns and the deployment goes on; a newer commit deploys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_older_refuses_an_ancestor_of_the_deployed_commit() {
    let world = World::start(Emulator::Moto).await;
    world.compare_status('c', 'a', "behind").await;
    world
        .compare('c', 'e', ResponseTemplate::new(500).set_body_string("boom"))
        .await;
    world
        .compare(
            'c',
            't',
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "behind"}))
                .set_delay(Duration::from_secs(6)),
        )
        .await;
    world.compare_status('c', 'd', "ahead").await;
    let deploy = |run_id: u32, commit: char| {
        let mut r = world.runner(run_id, "refs/heads/main", commit);
        r.input("mode", "deploy")
            .input("template", "stack.yaml")
            .input("forbid-older", "true");
        std::fs::write(
            r.workspace().join("stack.yaml"),
            "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n",
        )
        .unwrap();
        r
    };

    let first = deploy(400, 'c').main();
    assert_ok(&first, "first deploy");
    assert_eq!(
        first.output("outcome"),
        Some("succeeded"),
        "{}",
        first.log()
    );
    assert!(
        world.compared().await.is_empty(),
        "nothing to compare with yet"
    );

    let older = deploy(401, 'a').main();
    assert_eq!(older.code(), Some(1), "{}", older.log());
    assert_eq!(older.output("outcome"), Some("failed"));
    let error = older
        .commands()
        .into_iter()
        .find(|c| c.starts_with("::error"))
        .expect("an error annotation");
    assert!(
        error.contains("Older commit refused")
            && error.contains(&sha('a'))
            && error.contains(&sha('c'))
            && error.contains(&run_url(400)),
        "{error}"
    );
    assert!(
        older.summary.contains("Not deployed: older"),
        "{}",
        older.summary
    );
    assert!(
        !older.log().contains("ExecuteChangeSet") && older.output("stack-status").is_none(),
        "nothing was deployed:\n{}",
        older.log()
    );
    assert_eq!(
        world.compared().await,
        [('c', 'a')],
        "base: deployed, head: ours"
    );

    // Mode lock checks before it hands over to the job's later steps, and holds nothing after.
    let mut locking = world.runner(405, "refs/heads/main", 'a');
    locking.input("forbid-older", "true");
    let refused = locking.main();
    assert_eq!(refused.code(), Some(1), "{}", refused.log());
    assert!(
        refused
            .commands()
            .iter()
            .any(|c| c.starts_with("::error") && c.contains("Older commit refused")),
        "{}",
        refused.log()
    );
    assert_eq!(
        world.holder_run(),
        None,
        "the refused run released the lock"
    );
    assert_ok(&locking.post(&refused), "refused post");

    for (run_id, commit) in [(402, 'e'), (403, 't')] {
        let run = deploy(run_id, commit).main();
        assert_ok(&run, "deploy through a GitHub failure");
        assert!(
            run.commands()
                .iter()
                .any(|c| c.starts_with("::warning") && c.contains("forbid-older not checked")),
            "{}",
            run.log()
        );
    }
    // Each of those became the last deployed: the next compares with t.
    world.compare_status('t', 'd', "ahead").await;
    let newer = deploy(404, 'd').main();
    assert_ok(&newer, "newer deploy");
    assert_eq!(
        world.compared().await.last(),
        Some(&('t', 'd')),
        "compared with the last deployed commit"
    );
}

/// The Slack side of both policies: a waiter passed by a hotfix, then superseded, gets a thread
/// reply for each (naming the other run) and a final card that says it was skipped; its post
/// step sends nothing over that card.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_shows_the_pass_and_the_skip() {
    let world = World::start(Emulator::Moto).await;
    world.compare_status('a', 'b', "ahead").await;
    let slack = MockServer::start().await;
    support::mount_slack_bot_api(&slack).await;
    let holder = world.runner(600, "refs/heads/main", 'h');
    let held = holder.main();
    assert_ok(&held, "holder main");

    let mut waiter = world.runner(601, "refs/heads/main", 'a');
    waiter
        .input("on-superseded", "skip")
        .input("slack-bot-token", "xoxb-test-0000")
        .input("slack-channel", "#deploys")
        .input("slack-api-url", &format!("{}/api", slack.uri()));
    let waiter_run = waiter.spawn_main();
    world.wait_for_queue(&[601]);
    let mut hotfix = world.runner(602, "refs/heads/hotfix", 'f');
    hotfix.input("priority", "high");
    let hotfix_run = hotfix.spawn_main();
    world.wait_for_queue(&[602, 601]);
    // The waiter, at the head until now, learns of the hotfix through the queue mark.
    std::thread::sleep(Duration::from_secs(2));
    let newer = world.runner(603, "refs/heads/main", 'b');
    let newer_run = newer.spawn_main();
    let skipped = finish(waiter_run, Duration::from_secs(20), "waiter");
    assert_ok(&skipped, "waiter");
    assert_eq!(skipped.output("outcome"), Some("skipped"));

    let bodies: Vec<String> = slack
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    let replies: Vec<&String> = bodies.iter().filter(|b| b.contains("thread_ts")).collect();
    assert!(
        replies.iter().any(
            |b| b.contains("A hotfix from acme/payments@hotfix went ahead")
                && b.contains("runs/602")
        ),
        "{replies:?}"
    );
    assert!(
        replies
            .iter()
            .any(|b| b.contains("Skipped: commit bbbbbbb") && b.contains("runs/603")),
        "{replies:?}"
    );
    let last_card = bodies
        .iter()
        .rev()
        .find(|b| !b.contains("thread_ts"))
        .expect("a card");
    assert!(
        last_card.contains("was skipped: a newer commit deploys instead"),
        "{last_card}"
    );

    let before = bodies.len();
    assert_ok(&waiter.post(&skipped), "waiter post");
    let after = slack.received_requests().await.unwrap_or_default().len();
    assert_eq!(after, before, "the post step leaves the skipped card alone");

    assert_ok(&holder.post(&held), "holder post");
    let hotfix_done = finish(hotfix_run, Duration::from_secs(20), "hotfix");
    assert_eq!(hotfix_done.output("lock-fence"), Some("2"));
    assert_ok(&hotfix.post(&hotfix_done), "hotfix post");
    let newer_done = finish(newer_run, Duration::from_secs(20), "newer");
    assert_eq!(newer_done.output("lock-fence"), Some("3"));
    assert_ok(&newer.post(&newer_done), "newer post");
}

/// Mode lock: what the job's later steps deployed becomes the reference, recorded by the post
/// step; the next run of an older commit is refused before its hand-over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_older_in_mode_lock_learns_what_the_later_steps_deployed() {
    let world = World::start(Emulator::Moto).await;
    world.compare_status('c', 'a', "behind").await;
    let mut first = world.runner(700, "refs/heads/main", 'c');
    first.input("forbid-older", "true");
    let held = first.main();
    assert_ok(&held, "first main");
    // A later step (cdk deploy) creates the stack.
    world.cfn.admin_post(
        "start?stack=payments&operation=create",
        Some(&json!({"template": "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n"})),
    );
    std::thread::sleep(Duration::from_secs(6));
    let post = first.post(&held);
    assert_ok(&post, "first post");
    assert!(
        post.log()
            .contains("while the lock was held: payments succeeded"),
        "{}",
        post.log()
    );

    let mut older = world.runner(701, "refs/heads/main", 'a');
    older.input("forbid-older", "true");
    let refused = older.main();
    assert_eq!(refused.code(), Some(1), "{}", refused.log());
    let error = refused
        .commands()
        .into_iter()
        .find(|c| c.starts_with("::error"))
        .expect("an error annotation");
    assert!(
        error.contains("Older commit refused") && error.contains(&run_url(700)),
        "{error}"
    );
    assert_eq!(world.holder_run(), None, "released, nothing handed over");
    assert_ok(&older.post(&refused), "older post");
}
