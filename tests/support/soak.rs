//! The lock soak: many processes of the real binary take the same locks over and over with
//! `lock run`, through the fault proxy ([`super::faults`]), and some holders are SIGKILLed in
//! the middle of their hold. Shared by the suite's short soak (`tests/lock_soak.rs`) and the
//! long one (`examples/lock_soak.rs`, `scripts/lock-soak`).
//!
//! The record is independent of the lock: every critical section appends `start <fence>
//! <wall ns>` and then `end <fence> <wall ns>` (or, for a holder killed mid-hold, `killed
//! <fence> <wall ns>` just before its `lock run` process is SIGKILLed) to one file per key,
//! with `O_APPEND` writes of one line each. The checker then proves, from that file alone:
//! - the sections alternate start / end of the same fence in file order (no overlap by the
//!   order of the appends), and each starts at or after the previous one ended on the
//!   machine's wall clock (no overlap in time: the file's order and the clock agree);
//! - fences strictly increase;
//! - after a holder was killed, the next section starts within the dead holder's lease plus
//!   one poll of the head (the bound is [`Report::dead_bound`]);
//! - at the end every key is free with an empty queue (read without the proxy), after one
//!   more acquisition per key (`late`: it arrived after any kill, so it is not timed) takes
//!   over what a holder killed in the last rounds left.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::dynamo::{DynamoServer, Emulator};
use super::faults::{Chaos, Fault, FaultProxy};

/// The head's slowest poll (`FAST_POLL_MAX` in src/lock/acquire.rs, 600 ms) with its +20 %
/// jitter: a dead holder's lock is taken within this of the waiter's lease running out.
pub const HEAD_POLL_MAX: Duration = Duration::from_millis(720);
/// A dead holder's lock is next taken within its lease, one head poll and this (the takeover
/// write, `lock run` starting the command, the section's first mark) after the kill, on a
/// plain path. The kill comes after at least one heartbeat, and the lease counts from the
/// waiter's first sight of the last one, so the part of the lease that had run before the
/// kill covers the poll in which the waiter first saw it.
pub const DEAD_SLACK: Duration = Duration::from_millis(500);
/// The registry client's attempt timeout (`Registry::new`): what a hung request costs.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct Soak {
    /// The binary under test.
    pub bin: PathBuf,
    pub emulator: Emulator,
    pub keys: usize,
    /// Concurrent `lock run` loops per key.
    pub processes: usize,
    /// Acquisitions per loop.
    pub rounds: usize,
    /// How long each critical section lasts (the `sleep` between its two marks).
    pub hold: Duration,
    /// `--lease` of the ordinary holders.
    pub lease: Duration,
    /// Faults injected between every process and the backend; `None`: a plain path.
    pub chaos: Option<Chaos>,
    /// Holders per key SIGKILLed in the middle of their hold.
    pub kills: usize,
    /// `--lease` of the holders that get killed.
    pub kill_lease: Duration,
}

/// One holder killed mid-hold, and when its lock was next taken.
#[derive(Debug, Clone)]
pub struct DeadHolder {
    pub key: String,
    pub fence: u64,
    /// From the kill to the next section's start.
    pub after_kill: Duration,
}

#[derive(Debug, Default)]
pub struct Report {
    pub emulator: String,
    /// Critical sections in the records (completed and killed).
    pub sections: usize,
    /// Acquisitions the loops made (every `lock run` that ran its command).
    pub acquisitions: usize,
    /// Everything the checker found wrong: overlaps, fence order, malformed records.
    pub violations: Vec<String>,
    pub dead: Vec<DeadHolder>,
    /// The bound on a dead holder's lock beyond its lease: one head poll plus start-up of
    /// the next section, plus, with faults, the slowest fault a poll can meet; plus one more
    /// attempt timeout for each further hung request the proxy saw between the kill and the
    /// takeover (any of them may have been the takeover's: 20 processes share the proxy).
    pub dead_bound: Duration,
    /// Dead holders whose window held more than one hung request (their bound grew).
    pub hangs_in_window: usize,
    /// Dead holders kept longer than [`Report::dead_bound`] past their lease.
    pub dead_kept: Vec<String>,
    /// Dead holders whose lock was taken later than their lease, one head poll and
    /// [`DEAD_SLACK`] after the kill: only possible when a fault met the takeover (counted,
    /// not a failure).
    pub over_plain_bound: usize,
    /// `lock run` processes that failed (exit status and the end of their stderr).
    pub failures: Vec<String>,
    /// Keys not free with an empty queue at the end.
    pub unclean: Vec<String>,
    /// What the proxy did, when there was one.
    pub faults: Option<String>,
    pub elapsed: Duration,
    /// The killed holders' lease.
    pub kill_lease: Duration,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
            && self.dead_kept.is_empty()
            && self.failures.is_empty()
            && self.unclean.is_empty()
            && self.sections == self.acquisitions
    }

    pub fn max_after_kill(&self) -> Option<Duration> {
        self.dead.iter().map(|d| d.after_kill).max()
    }

    /// The dead holder whose lock waited longest, as `key fence N`.
    fn slowest_dead(&self) -> String {
        self.dead
            .iter()
            .max_by_key(|d| d.after_kill)
            .map_or_else(|| "none".into(), |d| format!("{} fence {}", d.key, d.fence))
    }

    pub fn describe(&self) -> String {
        let mut out = format!(
            "{}: {} critical sections ({} acquisitions) in {:.0} s, {} violations; {} holders killed mid-hold (lease {} ms), the next holder at most {} ms after the kill ({}; bound: lease + {} ms, + 3 s per further hung request in the window, for {}; {} past lease + {} ms), {} kept longer; {} failed processes; {} keys left unclean",
            self.emulator,
            self.sections,
            self.acquisitions,
            self.elapsed.as_secs_f64(),
            self.violations.len(),
            self.dead.len(),
            self.kill_lease.as_millis(),
            self.max_after_kill().map_or(0, |d| d.as_millis()),
            self.slowest_dead(),
            self.dead_bound.as_millis(),
            self.hangs_in_window,
            self.over_plain_bound,
            (HEAD_POLL_MAX + DEAD_SLACK).as_millis(),
            self.dead_kept.len(),
            self.failures.len(),
            self.unclean.len(),
        );
        if let Some(f) = &self.faults {
            out.push_str(&format!("\n  faults: {f}"));
        }
        for line in self
            .violations
            .iter()
            .chain(&self.dead_kept)
            .chain(&self.failures)
            .chain(&self.unclean)
            .take(20)
        {
            out.push_str(&format!("\n  {line}"));
        }
        out
    }
}

/// An ordinary critical section, and one whose `lock run` is SIGKILLed in the middle of it
/// (the time is read before the kill, the line written after: the next holder cannot start
/// before a lease has passed).
const SECTION: &str = r#"printf 'start %s %s\n' "$DEPLOY_COORDINATOR_FENCE" "$(date +%s%N)" >> "$MARKS"; sleep "$HOLD"; printf 'end %s %s\n' "$DEPLOY_COORDINATOR_FENCE" "$(date +%s%N)" >> "$MARKS""#;
/// The section of the acquisition that sweeps up after the loops: it arrived after any kill,
/// so it says so (`late`), and the checker does not time the dead holder's lock by it.
const SWEEP: &str = r#"printf 'start %s %s late\n' "$DEPLOY_COORDINATOR_FENCE" "$(date +%s%N)" >> "$MARKS"; sleep "$HOLD"; printf 'end %s %s\n' "$DEPLOY_COORDINATOR_FENCE" "$(date +%s%N)" >> "$MARKS""#;
const KILLED: &str = r#"printf 'start %s %s\n' "$DEPLOY_COORDINATOR_FENCE" "$(date +%s%N)" >> "$MARKS"; sleep "$HOLD"; t=$(date +%s%N); kill -9 "$PPID"; printf 'killed %s %s\n' "$DEPLOY_COORDINATOR_FENCE" "$t" >> "$MARKS""#;

const TABLE: &str = "soak";

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

fn arg_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

impl Soak {
    /// The rounds of loop 0 of each key whose holder is killed: spread evenly over the run.
    fn kill_rounds(&self) -> Vec<usize> {
        (0..self.kills)
            .map(|i| (i + 1) * self.rounds / (self.kills + 1))
            .collect()
    }

    pub async fn run(&self) -> Report {
        let server = DynamoServer::start(self.emulator);
        let direct = server.env();
        let proxy = self.chaos.map(|c| {
            let p = FaultProxy::start(server.port);
            p.set(Fault::Chaos(c));
            p
        });
        let through = proxy.as_ref().map_or_else(|| direct.clone(), |p| p.env());
        let created = self
            .cli(&direct, &["registry", "create", "--table", TABLE])
            .output()
            .await
            .expect("run registry create");
        assert!(
            created.status.success(),
            "registry create: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        let dir = tempfile::tempdir().expect("temporary directory");
        let started = Instant::now();
        let mut loops = Vec::new();
        for k in 0..self.keys {
            for p in 0..self.processes {
                let kills = if p == 0 { self.kill_rounds() } else { vec![] };
                loops.push(tokio::spawn(self.clone().worker(
                    through.clone(),
                    dir.path().join(format!("marks-{k}")),
                    k,
                    p,
                    kills,
                    self.rounds,
                )));
            }
        }
        let mut report = Report {
            emulator: self.emulator.name().to_string(),
            kill_lease: self.kill_lease,
            ..Report::default()
        };
        for l in loops {
            let (acquisitions, failures) = l.await.expect("soak loop");
            report.acquisitions += acquisitions;
            report.failures.extend(failures);
        }
        // One more acquisition per key once the loops are done: a holder killed in the last
        // rounds may have had nobody behind it, and its lock must be taken over too (and the
        // key left free for the final check).
        let sweepers: Vec<_> = (0..self.keys)
            .map(|k| {
                tokio::spawn(self.clone().worker(
                    through.clone(),
                    dir.path().join(format!("marks-{k}")),
                    k,
                    self.processes,
                    vec![],
                    0,
                ))
            })
            .collect();
        for l in sweepers {
            let (acquisitions, failures) = l.await.expect("soak sweeper");
            report.acquisitions += acquisitions;
            report.failures.extend(failures);
        }
        report.elapsed = started.elapsed();
        report.dead_bound = HEAD_POLL_MAX
            + DEAD_SLACK
            + self.chaos.map_or(Duration::ZERO, |c| {
                // A poll that meets a delay waits for it; one that meets a hung or half-open
                // connection waits for the client's attempt timeout (3 s) and is retried.
                if c.stall + c.half_open > 0.0 {
                    ATTEMPT_TIMEOUT
                } else {
                    c.latency_max
                }
            });
        for k in 0..self.keys {
            let key = format!("key-{k}");
            let marks = dir.path().join(format!("marks-{k}"));
            let hangs = |from: u128, to: u128| {
                proxy
                    .as_ref()
                    .map_or(0, |p| p.counts().hangs_between(from, to))
            };
            check(&key, &marks, self.kill_lease, &hangs, &mut report);
            let status = self
                .cli(
                    &direct,
                    &["lock", "status", "--table", TABLE, "--key", &key, "--json"],
                )
                .output()
                .await
                .expect("run lock status");
            let s: serde_json::Value =
                serde_json::from_slice(&status.stdout).unwrap_or(serde_json::Value::Null);
            if s["state"] != "free" || s["queue"].as_array().is_none_or(|q| !q.is_empty()) {
                report.unclean.push(format!("{key}: {s}"));
            }
        }
        report.faults = proxy.as_ref().map(|p| p.counts().describe());
        report
    }

    fn cli(&self, env: &[(String, String)], args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.bin);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .envs(env.iter().cloned())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// One loop: `rounds` acquisitions of one key, one process each; those of the rounds in
    /// `kills` are SIGKILLed mid-hold. Returns how many ran their critical section and what
    /// failed.
    async fn worker(
        self,
        env: Vec<(String, String)>,
        marks: PathBuf,
        k: usize,
        p: usize,
        kills: Vec<usize>,
        rounds: usize,
    ) -> (usize, Vec<String>) {
        let key = format!("key-{k}");
        let (mut acquisitions, mut failures) = (0, Vec::new());
        // Zero rounds: the sweeper, one acquisition after the loops.
        let sweep = rounds == 0;
        for r in 0..rounds.max(1) {
            let killed = kills.contains(&r);
            let owner = format!("k{k}-p{p}-r{r}");
            let (lease, section, hold) = if killed {
                // Killed after half its lease: after at least one heartbeat.
                (self.kill_lease, KILLED, self.kill_lease / 2)
            } else if sweep {
                (self.lease, SWEEP, self.hold)
            } else {
                (self.lease, SECTION, self.hold)
            };
            let out = self
                .cli(
                    &env,
                    &[
                        "lock",
                        "run",
                        "--table",
                        TABLE,
                        "--key",
                        &key,
                        "--owner",
                        &owner,
                        "--lease",
                        &arg_duration(lease),
                        "--wait",
                        "60m",
                        "--",
                        "sh",
                        "-c",
                        section,
                    ],
                )
                .env("MARKS", &marks)
                .env("HOLD", secs(hold))
                .output()
                .await
                .expect("run lock run");
            use std::os::unix::process::ExitStatusExt;
            let ok = if killed {
                out.status.signal() == Some(libc::SIGKILL)
            } else {
                out.status.success()
            };
            if ok {
                acquisitions += 1;
            } else {
                let err = String::from_utf8_lossy(&out.stderr);
                let tail: Vec<&str> = err.lines().rev().take(3).collect();
                failures.push(format!(
                    "{owner}: {} ({})",
                    out.status,
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ));
            }
        }
        (acquisitions, failures)
    }
}

/// Checks one key's record (see the module's documentation).
fn check(
    key: &str,
    marks: &Path,
    kill_lease: Duration,
    hangs: &dyn Fn(u128, u128) -> usize,
    report: &mut Report,
) {
    let text = std::fs::read_to_string(marks).unwrap_or_default();
    // (fence, start ns) of the section in progress; (fence, end ns, killed) of the last one.
    let mut open: Option<(u64, u128)> = None;
    let mut last: Option<(u64, u128, bool)> = None;
    for (n, line) in text.lines().enumerate() {
        let mut parts = line.split(' ');
        let late = line.ends_with(" late");
        let (kind, fence, ns) = match (parts.next(), parts.next(), parts.next()) {
            (Some(k), Some(f), Some(t)) => match (f.parse::<u64>(), t.parse::<u128>()) {
                (Ok(f), Ok(t)) => (k, f, t),
                _ => {
                    report
                        .violations
                        .push(format!("{key} line {n}: malformed {line:?}"));
                    continue;
                }
            },
            _ => {
                report
                    .violations
                    .push(format!("{key} line {n}: malformed {line:?}"));
                continue;
            }
        };
        match (kind, open) {
            ("start", None) => {
                if let Some((f, end, killed)) = last {
                    if fence <= f {
                        report.violations.push(format!(
                            "{key} line {n}: fence {fence} after fence {f}: not increasing"
                        ));
                    }
                    if ns < end {
                        report.violations.push(format!(
                            "{key} line {n}: fence {fence} started {} µs before fence {f} ended: OVERLAP",
                            (end - ns) / 1000
                        ));
                    }
                    if killed && !late {
                        let after = Duration::from_nanos(
                            u64::try_from(ns.saturating_sub(end)).unwrap_or(u64::MAX),
                        );
                        if after > kill_lease + HEAD_POLL_MAX + DEAD_SLACK {
                            report.over_plain_bound += 1;
                        }
                        // A takeover that met several hung requests waited an attempt
                        // timeout for each (the first is in dead_bound already).
                        let more = hangs(end, ns).saturating_sub(1);
                        if more > 0 {
                            report.hangs_in_window += 1;
                        }
                        let bound = report.dead_bound + ATTEMPT_TIMEOUT * more as u32;
                        if after > kill_lease + bound {
                            report.dead_kept.push(format!(
                                "{key}: the lock of fence {f}, killed mid-hold, was taken {} ms after the kill (lease {} ms)",
                                after.as_millis(),
                                kill_lease.as_millis()
                            ));
                        }
                        report.dead.push(DeadHolder {
                            key: key.to_string(),
                            fence: f,
                            after_kill: after,
                        });
                    }
                }
                open = Some((fence, ns));
            }
            ("start", Some((f, _))) => report.violations.push(format!(
                "{key} line {n}: fence {fence} started while fence {f} was inside: OVERLAP"
            )),
            ("end" | "killed", Some((f, start))) if f == fence && ns >= start => {
                open = None;
                last = Some((fence, ns, kind == "killed"));
                report.sections += 1;
            }
            _ => report.violations.push(format!(
                "{key} line {n}: unexpected {line:?} (inside {open:?})"
            )),
        }
    }
    if let Some((f, _)) = open {
        report
            .violations
            .push(format!("{key}: the section of fence {f} never ended"));
    }
}
