//! `watch --stack S`: follow a stack's operation live from a terminal.
//!
//! The same monitor as the action's (nested stacks, root cause, the end on the ROOT stack's
//! terminal status). In a terminal the view is redrawn in place every second: resources in
//! progress with how long they have run, how many are done, the failed ones with their
//! reasons, the elapsed time. Piped, it prints one plain line per event instead.
//!
//! Everything shown from AWS (reasons, names) has its control characters removed before it
//! reaches the terminal: an escape sequence in a status reason must not drive the terminal.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::duration::human;
use crate::stack::{MonitorEvent, MonitorSettings, Outcome, StackClient, StackError, StackResult};

/// Follow the stack's running operation, or wait for the next one, until it ends.
///
/// Exit codes: 0 the operation succeeded; 1 it failed or rolled back; 2 no operation started
/// within --wait; 69 CloudFormation unreachable or its state unknown; 77 credentials expired
/// or refused; 78 not allowed or invalid; 130 interrupted (Ctrl-C).
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct WatchArgs {
    /// Stack name or id.
    #[arg(long)]
    pub stack: String,
    /// AWS region (default: the environment's, e.g. AWS_REGION).
    #[arg(long)]
    pub region: Option<String>,
    /// How long to wait for an operation to start when none is running (e.g. 30m).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub wait: Duration,
    /// Print one line per event even in a terminal.
    #[arg(long)]
    pub plain: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text).map_err(|e| e.to_string())
}

pub(crate) async fn run(args: WatchArgs) -> ExitCode {
    let conf = crate::aws::load(args.region.as_deref()).await;
    let client = StackClient::from_conf(&conf);
    let cancel = CancellationToken::new();
    let interrupt = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            interrupt.cancel();
        }
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stack = args.stack.clone();
    let wait = args.wait;
    let monitor_cancel = cancel.clone();
    let task = tokio::spawn(async move {
        let mut send = move |event| {
            let _ = tx.send(event);
        };
        crate::stack::monitor(
            &client,
            &stack,
            wait,
            Duration::from_secs(24 * 3600),
            &MonitorSettings::default(),
            &monitor_cancel,
            &mut send,
        )
        .await
    });
    let live = !args.plain && std::io::stderr().is_terminal();
    let mut view = View::new(&args.stack);
    let mut screen = Screen { lines: 0 };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(event) => {
                    if !live {
                        eprintln!("{}", view.line(&event));
                    }
                    view.apply(event);
                    if live {
                        screen.draw(&view.render(Instant::now()));
                    }
                }
                None => break,
            },
            _ = tick.tick(), if live => screen.draw(&view.render(Instant::now())),
        }
    }
    let result = match task.await {
        Ok(result) => result,
        Err(e) => {
            crate::action::log::error("watch", &format!("the monitor stopped: {e}"));
            return ExitCode::from(69);
        }
    };
    finish(&args.stack, result, cancel.is_cancelled())
}

fn finish(stack: &str, result: Result<StackResult, StackError>, interrupted: bool) -> ExitCode {
    match result {
        Ok(r) => {
            let status = r.stack_status.as_deref().unwrap_or("unknown");
            println!("{stack}: {} ({status}) in {}", r.outcome, human(r.duration));
            if let (Some(resource), Some(reason)) = (&r.failed_resource, &r.failure_reason) {
                println!("  caused by {}: {}", clean(resource), clean(reason));
            } else if let Some(reason) = &r.failure_reason {
                println!("  {}", clean(reason));
            }
            match r.outcome {
                Outcome::Succeeded | Outcome::NoChanges => ExitCode::SUCCESS,
                Outcome::Cancelled if interrupted => ExitCode::from(130),
                Outcome::TimedOut if r.started_at.is_none() => ExitCode::from(2),
                _ => ExitCode::from(1),
            }
        }
        Err(e) => {
            crate::action::log::error("watch", &e.to_string());
            let code = match &e {
                StackError::Aws(e) => match e.kind {
                    crate::stack::ErrorKind::ExpiredToken
                    | crate::stack::ErrorKind::Credentials => 77,
                    crate::stack::ErrorKind::AccessDenied | crate::stack::ErrorKind::Validation => {
                        78
                    }
                    _ => 69,
                },
                _ => 69,
            };
            ExitCode::from(code)
        }
    }
}

/// Removes control characters (escape sequences, carriage returns) and whatever could be read
/// as a workflow command.
fn clean(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    crate::action::log::sanitize(&text)
}

/// Redraws a block of lines in place.
struct Screen {
    lines: usize,
}

impl Screen {
    fn draw(&mut self, lines: &[String]) {
        let mut out = std::io::stderr().lock();
        if self.lines > 0 {
            // Up to the block's first line, then clear to the end of the screen.
            let _ = write!(out, "\x1b[{}A\x1b[J", self.lines);
        }
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
        self.lines = lines.len();
    }
}

#[derive(Debug, Clone)]
struct Running {
    status: String,
    since: Instant,
}

/// What the terminal shows, built from monitor events (pure apart from the clock passed in).
#[derive(Debug)]
pub(crate) struct View {
    stack: String,
    status: String,
    began: Instant,
    started: Option<Instant>,
    running: BTreeMap<String, Running>,
    done: u32,
    total: u32,
    failed: Vec<(String, String)>,
    cause: Option<(String, String)>,
    note: Option<String>,
    outcome: Option<Outcome>,
}

impl View {
    pub(crate) fn new(stack: &str) -> Self {
        Self {
            stack: clean(stack),
            status: "looking".into(),
            began: Instant::now(),
            started: None,
            running: BTreeMap::new(),
            done: 0,
            total: 0,
            failed: Vec::new(),
            cause: None,
            note: None,
            outcome: None,
        }
    }

    pub(crate) fn apply(&mut self, event: MonitorEvent) {
        match event {
            MonitorEvent::Waiting { timeout } => {
                self.status = format!("waiting up to {} for an operation to start", human(timeout));
            }
            MonitorEvent::Started { status, .. } => {
                self.status = clean(&status);
                self.started = Some(Instant::now());
            }
            MonitorEvent::Resource(e) => {
                let name = if e.stack_name == self.stack || e.logical_id == e.stack_name {
                    clean(&e.logical_id)
                } else {
                    format!("{}/{}", clean(&e.stack_name), clean(&e.logical_id))
                };
                if e.is_stack_level() && e.stack_name == self.stack {
                    self.status = clean(&e.status);
                    return;
                }
                if e.status.ends_with("_IN_PROGRESS") {
                    let since = self
                        .running
                        .get(&name)
                        .map_or_else(Instant::now, |r| r.since);
                    self.running.insert(
                        name,
                        Running {
                            status: clean(&e.status),
                            since,
                        },
                    );
                } else {
                    self.running.remove(&name);
                    if e.status.ends_with("_FAILED") {
                        self.failed
                            .push((name, clean(e.reason.as_deref().unwrap_or(""))));
                    }
                }
            }
            MonitorEvent::Progress { done, total } => (self.done, self.total) = (done, total),
            MonitorEvent::RootCause { resource, reason } => {
                let who = resource.as_deref().unwrap_or("the stack");
                self.cause = Some((clean(who), clean(&reason)))
            }
            MonitorEvent::Throttled { next_poll } => {
                self.note = Some(format!(
                    "throttled by AWS: next poll in {}",
                    human(next_poll)
                ));
            }
            MonitorEvent::Interrupted {
                error,
                restart,
                budget,
                retry_in,
            } => {
                self.note = Some(format!(
                    "monitoring interrupted ({restart}/{budget}), retrying in {}: {}",
                    human(retry_in),
                    clean(&error)
                ));
            }
            MonitorEvent::Resumed { .. } => self.note = None,
            // Mode deploy only (`on-cancel: cancel-update`): never while watching.
            MonitorEvent::DeletingFailedStack { .. }
            | MonitorEvent::ChangeSetCreated { .. }
            | MonitorEvent::UpdateCancelRequested { .. }
            | MonitorEvent::UpdateNotCancelled { .. } => {}
            MonitorEvent::Finished(outcome) => {
                self.outcome = Some(outcome);
                self.running.clear();
            }
        }
    }

    /// The block shown in a terminal.
    pub(crate) fn render(&self, now: Instant) -> Vec<String> {
        let elapsed = now.duration_since(self.started.unwrap_or(self.began));
        let progress = if self.total > 0 {
            format!("  {}/{}", self.done, self.total)
        } else {
            String::new()
        };
        let mut lines = vec![format!(
            "{}  {}{progress}  {}",
            self.stack,
            self.status,
            human(elapsed)
        )];
        for (name, r) in &self.running {
            lines.push(format!(
                "  … {name:<40} {:<28} {}",
                r.status,
                human(now.duration_since(r.since))
            ));
        }
        for (name, reason) in self.failed.iter().rev().take(5) {
            lines.push(format!("  ✗ {name}: {reason}"));
        }
        if let Some((resource, reason)) = &self.cause {
            lines.push(format!("  root cause: {resource}: {reason}"));
        }
        if let Some(note) = &self.note {
            lines.push(format!("  ! {note}"));
        }
        lines
    }

    /// The plain line for one event (no terminal): the narrator's words with the time of day,
    /// cleaned of control characters.
    pub(crate) fn line(&self, event: &MonitorEvent) -> String {
        let at = chrono::Utc::now().format("%H:%M:%S");
        format!(
            "{at} {}",
            clean(&crate::narrate::monitor_event(&self.stack, event).text)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Event;

    fn event(stack: &str, logical: &str, status: &str, reason: Option<&str>) -> MonitorEvent {
        MonitorEvent::Resource(Event {
            event_id: format!("{logical}-{status}"),
            stack_id: format!("arn:{stack}"),
            stack_name: stack.into(),
            logical_id: logical.into(),
            physical_id: None,
            resource_type: "AWS::SQS::Queue".into(),
            status: status.into(),
            reason: reason.map(Into::into),
            timestamp: chrono::Utc::now(),
            operation_id: None,
            client_request_token: None,
            ..Event::default()
        })
    }

    #[test]
    fn shows_what_runs_what_failed_and_progress() {
        let mut view = View::new("app");
        view.apply(MonitorEvent::Started {
            stack_id: "arn".into(),
            status: "UPDATE_IN_PROGRESS".into(),
            operation_id: None,
        });
        view.apply(event("app", "Queue", "UPDATE_IN_PROGRESS", None));
        view.apply(event("app-Net-X", "Subnet", "CREATE_IN_PROGRESS", None));
        view.apply(MonitorEvent::Progress { done: 1, total: 4 });
        let lines = view.render(Instant::now());
        assert!(
            lines[0].starts_with("app  UPDATE_IN_PROGRESS  1/4"),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("Queue") && l.contains("UPDATE_IN_PROGRESS"))
        );
        assert!(
            lines.iter().any(|l| l.contains("app-Net-X/Subnet")),
            "{lines:?}"
        );
        view.apply(event(
            "app",
            "Queue",
            "UPDATE_FAILED",
            Some("bad\x1b[2Jproperty"),
        ));
        view.apply(MonitorEvent::RootCause {
            resource: Some("Queue".into()),
            reason: "bad property".into(),
        });
        let lines = view.render(Instant::now());
        assert!(
            !lines.iter().any(|l| l.contains("Queue") && l.contains('…')),
            "no longer running: {lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("✗ Queue: bad [2Jproperty")),
            "escape removed: {lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l == "  root cause: Queue: bad property")
        );
    }

    #[test]
    fn plain_lines_cannot_inject_workflow_commands() {
        let view = View::new("app");
        let line = view.line(&event(
            "app",
            "Queue",
            "CREATE_FAILED",
            Some("x\n::set-output name=a::b"),
        ));
        assert!(
            !line.contains('\n') && line.contains("CREATE_FAILED - x"),
            "{line}"
        );
    }
}
