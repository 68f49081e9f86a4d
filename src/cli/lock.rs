//! `lock …` subcommands: acquire, release, status, force-unlock, freeze, unfreeze, run.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::registry::{registry_exit_code, registry_failure};
use crate::github::GitHubRuns;
use crate::lock::{
    self, AcquireError, AcquireOptions, Acquired, Freeze, HolderInfo, LockEvent, LockRecord,
    LockState, NoLiveness, OnFreeze, ReleaseOutcome, RunLiveness, WallClock,
};
use crate::registry::Registry;

/// `--on-freeze fail` met a freeze.
const EXIT_FROZEN: u8 = 76;

const EXIT_CODES: &str = "Exit codes:
  0    success
  1    the lock is held by another owner (release), or the command failed
  2    invalid arguments
  69   DynamoDB unreachable (network, 5xx, throttling after retries)
  75   --wait ran out before the lock was free (acquire, run), also behind a freeze
  76   the lock is frozen and --on-freeze fail was given (acquire, run)
  77   AWS credentials expired
  78   registry misconfigured: table missing, access denied (the message says what to do)
  130  interrupted by SIGINT/SIGTERM (the queue ticket and the lock are cleaned up)
`lock run` exits with the command's own exit code (128+N when a signal N ended it).";

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Take a lock, queueing behind earlier waiters for up to --wait, and print the holder
    /// record. Nothing heartbeats afterwards: the lock is yours until you release it or
    /// until waiters have seen it unchanged for --lease.
    #[command(after_long_help = EXIT_CODES)]
    Acquire {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        wait: WaitArgs,
        /// How long the lock stays yours without a heartbeat (e.g. 30m, 6h; at least 1s).
        #[arg(long, default_value = "1h", value_parser = parse_lease)]
        lease: Duration,
        #[arg(long)]
        json: bool,
    },
    /// Release a lock if OWNER holds it (an owner-checked write; never removes someone
    /// else's lock). Releasing a free lock succeeds and says so.
    #[command(after_long_help = EXIT_CODES)]
    Release {
        #[command(flatten)]
        target: Target,
        /// The owner printed by `lock acquire`.
        #[arg(long)]
        owner: String,
        #[arg(long)]
        json: bool,
    },
    /// Show who holds a lock (owner, run URL, actor, commit, since when, lease) and who is
    /// queued; without --key, every lock in the table.
    #[command(after_long_help = EXIT_CODES)]
    Status {
        #[arg(long, default_value = "deployment-registry")]
        table: String,
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a lock whoever holds it, recording who (GITHUB_ACTOR or USER) and why. The
    /// removed holder notices at its next heartbeat and reports the loss.
    #[command(after_long_help = EXIT_CODES)]
    ForceUnlock {
        #[command(flatten)]
        target: Target,
        /// Why: kept on the lock item and in its audit trail.
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Freeze deployments on a lock for a while, with a reason: from now on nobody acquires
    /// it. A run holding it finishes; queued runs keep their places and go in order once the
    /// freeze ends (at --for, or `lock unfreeze`). Waiting runs show who froze it, why and
    /// until when; runs with on-freeze: fail stop at once. Freezing a frozen lock replaces
    /// the freeze (a new end or reason).
    #[command(after_long_help = EXIT_CODES)]
    Freeze {
        #[command(flatten)]
        target: Target,
        /// Why: shown in every waiting run's log, Slack card and job summary.
        #[arg(long)]
        reason: String,
        /// How long (e.g. 2h, 90m, 3d is 72h); at most 90 days.
        #[arg(long = "for", value_parser = parse_duration)]
        length: Duration,
        /// Who freezes (default: GITHUB_ACTOR, else USER@host).
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// End a freeze early. The first queued run takes the lock within about a second.
    #[command(after_long_help = EXIT_CODES)]
    Unfreeze {
        #[command(flatten)]
        target: Target,
        /// Why (kept in the audit trail).
        #[arg(long)]
        reason: Option<String>,
        /// Who unfreezes (default: GITHUB_ACTOR, else USER@host).
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run a command while holding a lock: queue for it, heartbeat it while the command runs
    /// (env DEPLOY_COORDINATOR_FENCE, DEPLOY_COORDINATOR_OWNER, DEPLOY_COORDINATOR_LOCK_KEY),
    /// release it afterwards. SIGINT/SIGTERM are forwarded to the command (SIGKILL after
    /// 4 s), then the lock is released. A lost lock (taken over, force-unlocked, or no
    /// heartbeat got through for nearly a lease) stops the command the same way, and the run
    /// exits 1.
    #[command(after_long_help = EXIT_CODES)]
    Run {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        wait: WaitArgs,
        /// Waiters take the lock over after seeing no heartbeat for this long; the
        /// heartbeat runs every third of it (at least 1s).
        #[arg(long, default_value = "1m", value_parser = parse_lease)]
        lease: Duration,
        /// The command and its arguments.
        #[arg(last = true, required = true, num_args = 1..)]
        command: Vec<String>,
    },
}

/// Table, region, key, owner: what every lock command addresses.
#[derive(Debug, Args)]
pub struct Target {
    /// Registry table.
    #[arg(long, default_value = "deployment-registry")]
    table: String,
    /// Lock key (an environment or stack name).
    #[arg(long)]
    key: String,
    /// AWS region (default: the environment's, e.g. AWS_REGION).
    #[arg(long)]
    region: Option<String>,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Owner identity (letters, digits, - _ . / @ :). Default: a new correlation ID, plus the
    /// run id and attempt inside GitHub Actions.
    #[arg(long)]
    owner: Option<String>,
    /// How long to wait in the queue; 0s tries once.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    wait: Duration,
    /// The slowest a waiter further back checks the queue (each check is one DynamoDB
    /// request; closer to the front it checks sooner, and the first two in line poll every
    /// 200–600 ms).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    queue_poll: Duration,
    /// GitHub token used to ask whether the holder's run is completed (then the lock is
    /// taken over at once). Without one, only the lease frees a dead holder's lock.
    #[arg(long, env = "GITHUB_TOKEN", hide_env_values = true)]
    github_token: Option<String>,
    /// GitHub API URL.
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    github_api_url: String,
    /// When the lock is frozen: wait (up to --wait) or fail at once (exit 76).
    #[arg(long, default_value = "wait", value_parser = parse_on_freeze)]
    on_freeze: OnFreeze,
    /// normal or high: a high-priority waiter (a hotfix) goes ahead of every normal one in
    /// the queue, never ahead of the holder; first come, first served among equals.
    #[arg(long, default_value = "normal", value_parser = parse_priority)]
    priority: lock::Priority,
}

fn parse_priority(text: &str) -> Result<lock::Priority, String> {
    lock::Priority::parse(text)
}

fn parse_on_freeze(text: &str) -> Result<OnFreeze, String> {
    OnFreeze::parse(text)
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text).map_err(|e| e.to_string())
}

/// A lease of at least a second: waiters take over a lock whose version they have seen
/// unchanged for a lease, so `0s` would hand it to the first waiter at first sight.
fn parse_lease(text: &str) -> Result<Duration, String> {
    let lease = parse_duration(text)?;
    if lease < Duration::from_secs(1) {
        return Err(format!(
            "{text:?} is shorter than 1s: waiters take over a lock whose version did not change for a lease, \
             so this lease would hand it to the first waiter at once; use e.g. 30s, 10m or 6h"
        ));
    }
    Ok(lease)
}

pub(crate) async fn run(cmd: LockCommand) -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let clock = match WallClock::from_env(&env) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    match cmd {
        LockCommand::Acquire {
            target,
            wait,
            lease,
            json,
        } => {
            let reg = registry(&target.table, target.region.as_deref(), clock).await;
            acquire_cmd(&reg, &target.key, &wait, lease, json).await
        }
        LockCommand::Release {
            target,
            owner,
            json,
        } => {
            let reg = registry(&target.table, target.region.as_deref(), clock).await;
            release_cmd(&reg, &target.key, &owner, json).await
        }
        LockCommand::Status {
            table,
            key,
            region,
            json,
        } => {
            let reg = registry(&table, region.as_deref(), clock).await;
            status_cmd(&reg, key.as_deref(), json).await
        }
        LockCommand::ForceUnlock {
            target,
            reason,
            json,
        } => {
            let reg = registry(&target.table, target.region.as_deref(), clock).await;
            force_unlock_cmd(&reg, &target.key, &reason, json).await
        }
        LockCommand::Freeze {
            target,
            reason,
            length,
            by,
            json,
        } => {
            let reg = registry(&target.table, target.region.as_deref(), clock).await;
            freeze_cmd(&reg, &target.key, &reason, length, by.as_deref(), json).await
        }
        LockCommand::Unfreeze {
            target,
            reason,
            by,
            json,
        } => {
            let reg = registry(&target.table, target.region.as_deref(), clock).await;
            unfreeze_cmd(&reg, &target.key, reason.as_deref(), by.as_deref(), json).await
        }
        LockCommand::Run {
            target,
            wait,
            lease,
            command,
        } => {
            let reg = registry(&target.table, target.region.as_deref(), clock).await;
            run_cmd(&reg, &target.key, &wait, lease, &command).await
        }
    }
}

async fn registry(table: &str, region: Option<&str>, clock: WallClock) -> Registry {
    let config = crate::aws::load(region).await;
    Registry::new(aws_sdk_dynamodb::Client::new(&config), table).with_clock(clock)
}

fn usage(message: &str) -> ExitCode {
    crate::action::log::error("Invalid arguments", message);
    ExitCode::from(2)
}

/// Who we are: `--owner`, or a fresh correlation ID (+ run id and attempt inside Actions).
fn holder(args: &WaitArgs, clock: &WallClock) -> Result<HolderInfo, String> {
    let env = |name: &str| std::env::var(name).ok();
    match &args.owner {
        Some(owner) => {
            let ok = !owner.is_empty()
                && owner.len() <= 200
                && owner
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./@:".contains(c));
            if !ok {
                return Err(format!(
                    "--owner {owner:?}: use 1 to 200 letters, digits, '-', '_', '.', '/', '@' or ':'"
                ));
            }
            let mut info = HolderInfo::from_env(owner, &env);
            info.owner = owner.clone();
            Ok(info)
        }
        None => {
            let sha = env("GITHUB_SHA");
            let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
            let id = format!(
                "{}-{suffix}",
                crate::correlation::generate(clock.now(), sha.as_deref())
            );
            Ok(HolderInfo::from_env(&id, &env))
        }
    }
}

fn liveness(args: &WaitArgs) -> Box<dyn RunLiveness> {
    match args.github_token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => {
            crate::action::log::add_mask(token);
            match GitHubRuns::new(&args.github_api_url, token) {
                Ok(gh) => Box::new(gh),
                Err(e) => {
                    tracing::warn!("{e}: only the lease will free a dead holder's lock");
                    Box::new(NoLiveness)
                }
            }
        }
        None => Box::new(NoLiveness),
    }
}

/// Acquires with signal handling; maps failures to exit codes (printed).
async fn take(
    reg: &Registry,
    key: &str,
    args: &WaitArgs,
    lease: Duration,
    cancel: &CancellationToken,
) -> Result<(HolderInfo, Acquired), ExitCode> {
    let me = holder(args, reg.clock()).map_err(|e| usage(&e))?;
    let mut opts = AcquireOptions::new(lease, args.wait);
    opts.queue_poll = args.queue_poll.max(Duration::from_millis(100));
    opts.on_freeze = args.on_freeze;
    opts.priority = args.priority;
    let live = liveness(args);
    let key_owned = key.to_string();
    let clock = *reg.clock();
    let on_event = move |e: LockEvent| {
        crate::narrate::say(&crate::narrate::lock_event(&key_owned, &e, clock.now_ms()))
    };
    match lock::acquire(reg, key, &me, &opts, live.as_ref(), &on_event, cancel).await {
        Ok(a) => Ok((me, a)),
        Err(AcquireError::TimedOut { holder }) => {
            let who = holder.map(|h| format!("held by {} (fence {})", h.info.describe(), h.fence));
            crate::action::log::error(
                "Lock not acquired",
                &format!(
                    "lock {key:?} not acquired within {}: {}",
                    crate::duration::human(args.wait),
                    who.unwrap_or_else(|| "still taken".into())
                ),
            );
            Err(ExitCode::from(75))
        }
        Err(AcquireError::Frozen {
            freeze,
            holder,
            timed_out,
        }) => {
            let finishing = holder
                .map(|h| format!("; {} holds it and finishes first", h.info.describe()))
                .unwrap_or_default();
            let text = format!(
                "lock {key:?} is {}{finishing}",
                freeze.describe(reg.clock().now_ms())
            );
            if timed_out {
                crate::action::log::error(
                    "Lock not acquired",
                    &format!("waited {} and {text}", crate::duration::human(args.wait)),
                );
                Err(ExitCode::from(75))
            } else {
                crate::action::log::error("Deployments are frozen", &text);
                Err(ExitCode::from(EXIT_FROZEN))
            }
        }
        Err(AcquireError::Cancelled) => {
            tracing::warn!("interrupted: left the queue for lock {key:?}");
            Err(ExitCode::from(130))
        }
        // The CLI waits with `on-superseded: wait` (the default): it is never superseded.
        Err(e @ AcquireError::Superseded { .. }) => {
            crate::action::log::error("Lock not acquired", &e.to_string());
            Err(ExitCode::from(75))
        }
        Err(AcquireError::Registry(e)) => Err(registry_failure("Lock not acquired", &e)),
    }
}

fn record_json(key: &str, r: &LockRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("key".into(), json!(key));
    }
    v
}

async fn acquire_cmd(
    reg: &Registry,
    key: &str,
    args: &WaitArgs,
    lease: Duration,
    json_out: bool,
) -> ExitCode {
    let cancel = match crate::shutdown::install() {
        Ok(s) => s.token().clone(),
        Err(e) => return usage(&format!("cannot install signal handlers: {e}")),
    };
    let (_, a) = match take(reg, key, args, lease, &cancel).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    if json_out {
        let mut v = record_json(key, &a.record);
        if let Some(o) = v.as_object_mut() {
            o.insert("waited_ms".into(), json!(a.waited.as_millis() as u64));
            o.insert("reentrant".into(), json!(a.reentrant));
            o.insert(
                "took_over".into(),
                a.took_over
                    .as_ref()
                    .map(|p| record_json(key, p))
                    .unwrap_or_default(),
            );
        }
        println!("{v}");
    } else {
        let r = &a.record;
        println!("acquired lock {key:?}");
        println!("  owner:    {}", r.info.owner);
        println!("  fence:    {}", r.fence);
        println!("  version:  {}", r.version);
        println!("  lease:    {}", crate::duration::human(r.lease()));
        println!("  waited:   {}", crate::duration::human(a.waited));
        if a.reentrant {
            println!("  (already held by this owner: reentered)");
        }
        println!(
            "release it with: deploy-coordinator lock release --table {} --key {key} --owner {}",
            reg.table(),
            r.info.owner
        );
    }
    ExitCode::SUCCESS
}

async fn release_cmd(reg: &Registry, key: &str, owner: &str, json_out: bool) -> ExitCode {
    match lock::release(reg, key, owner).await {
        Ok(outcome) => {
            let (code, text, v) = match &outcome {
                ReleaseOutcome::Released(r) => (
                    0,
                    format!("released lock {key:?} (fence {})", r.fence),
                    json!({"key": key, "outcome": "released", "released": record_json(key, r)}),
                ),
                ReleaseOutcome::AlreadyFree => (
                    0,
                    format!("lock {key:?} is not held: nothing to release"),
                    json!({"key": key, "outcome": "already_free"}),
                ),
                ReleaseOutcome::HeldByOther(h) => (
                    1,
                    format!(
                        "lock {key:?} is held by another owner, left untouched: {} (owner {}, fence {})",
                        h.info.describe(),
                        h.info.owner,
                        h.fence
                    ),
                    json!({"key": key, "outcome": "held_by_other", "holder": record_json(key, h)}),
                ),
            };
            if json_out {
                println!("{v}");
            } else if code == 0 {
                println!("{text}");
            }
            if code != 0 {
                crate::action::log::error("Lock not released", &text);
            }
            ExitCode::from(code)
        }
        Err(e) => registry_failure("Lock not released", &e),
    }
}

async fn status_cmd(reg: &Registry, key: Option<&str>, json_out: bool) -> ExitCode {
    let Some(key) = key else {
        return match lock::list(reg).await {
            Ok(locks) => {
                if json_out {
                    let now_ms = reg.clock().now_ms();
                    let v: Vec<_> = locks
                        .iter()
                        .map(|(k, s)| state_json(k, s, now_ms))
                        .collect();
                    println!("{}", json!(v));
                } else if locks.is_empty() {
                    println!("no locks in table {}", reg.table());
                } else {
                    let now_ms = reg.clock().now_ms();
                    for (k, s) in &locks {
                        let frozen = s
                            .active_freeze(now_ms)
                            .map(|f| {
                                format!(
                                    "; FROZEN {}",
                                    crate::action::log::sanitize(&f.describe(now_ms))
                                )
                            })
                            .unwrap_or_default();
                        match s {
                            LockState::Held(r) => println!(
                                "{k}: held by {} (fence {}){frozen}",
                                r.info.describe(),
                                r.fence
                            ),
                            _ => println!("{k}: free (fence {}){frozen}", s.fence()),
                        }
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => registry_failure("Cannot read the locks", &e),
        };
    };
    match lock::status(reg, key).await {
        Ok(st) => {
            if json_out {
                let mut v = state_json(key, &st.lock, reg.clock().now_ms());
                if let Some(o) = v.as_object_mut() {
                    let queue: Vec<_> = st
                        .queue
                        .iter()
                        .enumerate()
                        .map(|(i, t)| {
                            let priority = t.priority.as_str();
                            let mut t = serde_json::to_value(t).unwrap_or_default();
                            if let Some(t) = t.as_object_mut() {
                                t.insert("position".into(), json!(i + 1));
                                t.insert("priority".into(), json!(priority));
                            }
                            t
                        })
                        .collect();
                    o.insert("queue".into(), json!(queue));
                    o.insert("audit".into(), json!(st.audit));
                }
                println!("{v}");
            } else {
                print_status(&st, reg.table(), reg.clock().now_ms());
            }
            ExitCode::SUCCESS
        }
        Err(e) => registry_failure("Cannot read the lock", &e),
    }
}

/// A lock as JSON. `state` is `held`, `frozen` (free, but frozen) or `free`; `frozen` says
/// whether a freeze is in force (also while a run holds the lock) and `freeze` describes it.
fn state_json(key: &str, s: &LockState, now_ms: u64) -> serde_json::Value {
    let mut v = match s {
        LockState::Absent => json!({"key": key, "state": "free", "fence": 0}),
        LockState::Free(f) => json!({"key": key, "state": "free", "fence": f.fence, "last": f}),
        LockState::Held(r) => {
            json!({"key": key, "state": "held", "fence": r.fence, "holder": record_json(key, r)})
        }
    };
    let active = s.active_freeze(now_ms);
    if let Some(o) = v.as_object_mut() {
        o.insert("frozen".into(), json!(active.is_some()));
        if let Some(f) = active {
            if s.holder().is_none() {
                o.insert("state".into(), json!("frozen"));
            }
            o.insert("freeze".into(), freeze_json(f, now_ms));
        }
    }
    v
}

fn freeze_json(f: &Freeze, now_ms: u64) -> serde_json::Value {
    let mut v = serde_json::to_value(f).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("label".into(), json!(lock::freeze::label(&f.by)));
        o.insert(
            "remaining_seconds".into(),
            json!(f.remaining(now_ms).as_secs()),
        );
    }
    v
}

fn print_status(st: &lock::LockStatus, table: &str, now_ms: u64) {
    let key = &st.key;
    let line = |label: &str, value: Option<&str>| {
        if let Some(v) = value {
            println!("  {label:<11}{}", crate::action::log::sanitize(v));
        }
    };
    if let Some(f) = st.lock.active_freeze(now_ms) {
        println!("lock {key:?}: FROZEN");
        line("Reason", Some(&f.reason));
        line("Frozen by", Some(&f.by));
        line("Until", Some(&format!("{} ({})", f.until, f.left(now_ms))));
        line("Since", Some(&f.at));
        match st.lock.holder() {
            Some(_) => {
                println!("  the run holding it finishes; nobody else gets it until the freeze ends")
            }
            None => println!("  nobody gets it until the freeze ends"),
        }
        println!(
            "  end it early with: deploy-coordinator lock unfreeze --table {table} --key {key} --reason ..."
        );
    }
    match &st.lock {
        LockState::Held(r) => {
            println!("lock {key:?}: HELD");
            line("ID", Some(&r.info.owner));
            line("Who", r.info.actor.as_deref().or(r.info.host.as_deref()));
            line("Run", r.info.run_url.as_deref());
            line("Repository", r.info.repository.as_deref());
            line("Commit", r.info.sha.as_deref());
            line("Ref", r.info.git_ref.as_deref());
            line("Stack", r.info.stack.as_deref());
            line("Operation", r.info.mode.as_deref());
            line("Host", r.info.host.as_deref());
            line(
                "Created",
                Some(&format!("{} (holder's clock)", r.acquired_at)),
            );
            line("Heartbeat", r.heartbeat_at.as_deref());
            line("Cancelled", r.cancelling.as_deref());
            line("Lease", Some(&crate::duration::human(r.lease())));
            line("Fence", Some(&r.fence.to_string()));
            line("Version", Some(&r.version));
        }
        LockState::Free(f) => {
            println!("lock {key:?}: free (fence {})", f.fence);
            if let Some(o) = &f.last_owner {
                let at = f.released_at.as_deref().unwrap_or("?");
                match &f.force_reason {
                    Some(why) => println!(
                        "  force-unlocked at {at} by {}: {} (holder was {o})",
                        f.released_by.as_deref().unwrap_or("?"),
                        crate::action::log::sanitize(why)
                    ),
                    None => println!("  last held by {o}, released at {at}"),
                }
            }
        }
        LockState::Absent => println!("lock {key:?}: free (never taken)"),
    }
    if st.queue.is_empty() {
        println!("queue: empty");
    } else {
        println!("queue ({}):", st.queue.len());
        for (i, t) in st.queue.iter().enumerate() {
            println!(
                "  {}. [{}] {} {}: {}",
                i + 1,
                t.priority.as_str(),
                crate::action::log::sanitize(&t.info.origin()),
                crate::action::log::sanitize(t.info.short_sha().unwrap_or("(no commit)")),
                crate::action::log::sanitize(&t.info.describe())
            );
        }
    }
    if !st.audit.is_empty() {
        println!("recent events:");
        for a in &st.audit {
            println!(
                "  {} {} by {}{}{}{}",
                a.at,
                a.what,
                a.by.as_deref().unwrap_or("?"),
                a.until
                    .as_deref()
                    .map(|u| format!(" until {u}"))
                    .unwrap_or_default(),
                a.previous_owner
                    .as_deref()
                    .map(|o| format!(" (holder {o})"))
                    .unwrap_or_default(),
                a.reason
                    .as_deref()
                    .map(|r| format!(": {}", crate::action::log::sanitize(r)))
                    .unwrap_or_default()
            );
        }
    }
}

async fn force_unlock_cmd(reg: &Registry, key: &str, reason: &str, json_out: bool) -> ExitCode {
    if reason.trim().is_empty() {
        return usage("--reason must say why the lock is removed");
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let who = env("GITHUB_ACTOR")
        .or_else(|| env("USER"))
        .unwrap_or_else(|| "unknown".into());
    match lock::force_unlock_all(reg, key, reason, &who).await {
        Ok(lock::ForceUnlocked {
            removed,
            freeze_ended,
        }) => {
            if json_out {
                println!(
                    "{}",
                    json!({"key": key, "removed": removed.as_ref().map(|r| record_json(key, r)), "freeze_ended": freeze_ended, "by": who, "reason": reason})
                );
            } else {
                match &removed {
                    Some(r) => println!(
                        "removed lock {key:?} held by {} (fence {}); recorded as done by {who}: {reason}",
                        r.info.describe(),
                        r.fence
                    ),
                    None if freeze_ended.is_some() => {}
                    None => println!("lock {key:?} is not held: nothing removed"),
                }
                if let Some(f) = &freeze_ended {
                    println!(
                        "ended the freeze by {} (until {}); recorded as done by {who}",
                        f.by, f.until
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => registry_failure("Lock not removed", &e),
    }
}

async fn freeze_cmd(
    reg: &Registry,
    key: &str,
    reason: &str,
    length: Duration,
    by: Option<&str>,
    json_out: bool,
) -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let who = lock::freeze::freezer(by, &env);
    let freeze = match Freeze::new(reason, &who, reg.clock().now(), length) {
        Ok(f) => f,
        Err(e) => return usage(&e),
    };
    match lock::freeze(reg, key, &freeze).await {
        Ok(done) => {
            let now_ms = reg.clock().now_ms();
            if json_out {
                println!(
                    "{}",
                    json!({
                        "key": key,
                        "state": "frozen",
                        "freeze": freeze_json(&done.freeze, now_ms),
                        "holder": done.holder.as_ref().map(|r| record_json(key, r)),
                        "replaced": done.replaced,
                        "waiting": done.waiting,
                    })
                );
            } else {
                let f = &done.freeze;
                println!(
                    "froze lock {key:?} until {} (for {}) by {}: {}",
                    f.until,
                    crate::duration::human(length),
                    f.by,
                    crate::action::log::sanitize(&f.reason)
                );
                if let Some(old) = &done.replaced {
                    println!("  replaces the freeze by {} until {}", old.by, old.until);
                }
                match &done.holder {
                    Some(h) => println!(
                        "  {} holds the lock and finishes; nobody else gets it until the freeze ends",
                        h.info.describe()
                    ),
                    None => println!("  nobody gets the lock until the freeze ends"),
                }
                println!(
                    "  {} queued run(s) keep their places; end it early with: deploy-coordinator lock unfreeze --table {} --key {key}",
                    done.waiting,
                    reg.table()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => registry_failure("Lock not frozen", &e),
    }
}

async fn unfreeze_cmd(
    reg: &Registry,
    key: &str,
    reason: Option<&str>,
    by: Option<&str>,
    json_out: bool,
) -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let who = lock::freeze::freezer(by, &env);
    match lock::unfreeze(reg, key, &who, reason).await {
        Ok(ended) => {
            if json_out {
                println!("{}", json!({"key": key, "ended": ended, "by": who}));
            } else {
                match &ended {
                    Some(f) => println!(
                        "unfroze lock {key:?} (frozen by {} until {}); recorded as done by {who}",
                        f.by, f.until
                    ),
                    None => println!("lock {key:?} is not frozen: nothing to end"),
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => registry_failure("Lock not unfrozen", &e),
    }
}

async fn run_cmd(
    reg: &Registry,
    key: &str,
    args: &WaitArgs,
    lease: Duration,
    command: &[String],
) -> ExitCode {
    let cancel = match crate::shutdown::install() {
        Ok(s) => s.token().clone(),
        Err(e) => return usage(&format!("cannot install signal handlers: {e}")),
    };
    let (me, acquired) = match take(reg, key, args, lease, &cancel).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let record = acquired.record;
    let heartbeat = lock::spawn_heartbeat(reg.clone(), key, record.clone());
    let (program, rest) = match command.split_first() {
        Some(x) => x,
        None => return usage("no command given"),
    };
    let spawned = tokio::process::Command::new(program)
        .args(rest)
        .env("DEPLOY_COORDINATOR_FENCE", record.fence.to_string())
        .env("DEPLOY_COORDINATOR_OWNER", &me.owner)
        .env("DEPLOY_COORDINATOR_LOCK_KEY", key)
        .spawn();
    // A lost lock stops the command as a cancellation does: it no longer runs under the lock.
    let stop = cancel.child_token();
    let lost_token = heartbeat.lost_token();
    let stop_on_loss = stop.clone();
    let watcher = tokio::spawn(async move {
        lost_token.cancelled().await;
        stop_on_loss.cancel();
    });
    let code = match spawned {
        Ok(mut child) => supervise(&mut child, &stop).await,
        Err(e) => {
            crate::action::log::error(
                "Command not started",
                &format!("cannot run {program:?}: {e}"),
            );
            127
        }
    };
    watcher.abort();
    let lost = heartbeat.stop().await.is_err();
    if lost {
        crate::action::log::error(
            "Lock lost",
            &format!(
                "lock {key:?} (fence {}) was lost while the command ran; the command was stopped (SIGTERM) if it was still running",
                record.fence
            ),
        );
    }
    match lock::release(reg, key, &me.owner).await {
        Ok(ReleaseOutcome::Released(_)) => {
            tracing::info!("released lock {key:?} (fence {})", record.fence)
        }
        Ok(ReleaseOutcome::AlreadyFree) => {
            tracing::warn!("lock {key:?} was already free at release")
        }
        Ok(ReleaseOutcome::HeldByOther(h)) => {
            tracing::warn!(
                "lock {key:?} is held by {} now: left untouched",
                h.info.describe()
            )
        }
        Err(e) => {
            crate::action::log::error(
                "Lock not released",
                &format!("{e}; waiters take it over after the lease"),
            );
            if code == 0 {
                return ExitCode::from(registry_exit_code(&e));
            }
        }
    }
    if lost && !cancel.is_cancelled() {
        // Not under the lock all the way (and stopped if it was still running): the run
        // failed, whatever the command's own exit, and scripts must know.
        return ExitCode::from(1);
    }
    ExitCode::from(code)
}

/// Waits for the child; on SIGINT/SIGTERM (or a lost lock: `cancel`) forwards SIGTERM, and
/// kills it 4 s later.
async fn supervise(child: &mut tokio::process::Child, cancel: &CancellationToken) -> u8 {
    let status = tokio::select! {
        s = child.wait() => s,
        _ = cancel.cancelled() => {
            if let Some(pid) = child.id() {
                forward_sigterm(pid).await;
            }
            match tokio::time::timeout(Duration::from_secs(4), child.wait()).await {
                Ok(s) => s,
                Err(_) => {
                    tracing::warn!("the command did not stop within 4 s of SIGTERM: killing it");
                    let _ = child.start_kill();
                    child.wait().await
                }
            }
        }
    };
    match status {
        Ok(s) => exit_code_of(s),
        Err(e) => {
            tracing::error!("lost track of the command: {e}");
            1
        }
    }
}

fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => u8::try_from(c).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(1),
        _ => 1,
    }
}

/// Forwards SIGTERM to the command. Through libc, not kill(1): the action's image is
/// `FROM scratch` and has no `kill` program.
async fn forward_sigterm(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) with a positive pid of our own child and a valid signal number has no
    // memory effects; a failure is reported through its return value.
    let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
    if sent != 0 {
        tracing::warn!(
            "could not forward SIGTERM to the command (pid {pid}): {}",
            std::io::Error::last_os_error()
        );
    }
}
