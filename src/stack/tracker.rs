//! Following ONE operation chain among a stack's events: it starts at the operation's first
//! stack-level event, keeps the events of the chain (the forward operation, then the rollback
//! and clean-up phases that real CloudFormation runs as operations of their own:
//! [`super::chain`]), follows nested stacks, counts progress, finds the root cause
//! ([`super::cause`]), and ends only on the ROOT stack's terminal status. Pure: chronological
//! events in, updates out.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::cause::{Cause, Causes, Leftover, Stage};
use super::chain::{Chain, Verdict};
use super::events::{Event, NESTED_TOLERANCE, STACK_TYPE};
use super::status::{self, ResourceClass};

/// What one new event changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// The operation's first event.
    Started(Event),
    /// An event of the operation (root or nested stack), resource or stack level.
    Resource(Event),
    /// Completed resources out of the expected total changed.
    Progress { done: u32, total: u32 },
    /// The root cause changed (a nested stack's own failure refines the parent's summary).
    RootCause(Cause),
    /// A nested stack to follow (its stack id).
    NestedStack(String),
    /// The ROOT stack reached a terminal status, or another operation took the stack over
    /// ([`Tracker::interrupted_by`]).
    Finished(Event),
}

/// How the followed operation is recognised among the stack's events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    /// The operation's id, when known before its first event.
    pub operation_id: Option<String>,
    /// Our ClientRequestToken, when we started the operation.
    pub client_request_token: Option<String>,
}

impl Matcher {
    /// Whether `event` can be the operation's first event: OperationId first, then our
    /// ClientRequestToken; an event carrying neither cannot be told apart and is accepted
    /// (the first operation after the baseline is ours).
    fn accepts_start(&self, event: &Event) -> bool {
        if let (Some(ours), Some(theirs)) = (&self.operation_id, &event.operation_id) {
            return ours == theirs;
        }
        if let (Some(ours), Some(theirs)) =
            (&self.client_request_token, &event.client_request_token)
        {
            return ours == theirs;
        }
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Running,
    Finished,
}

/// One resource's part in the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceTiming {
    /// `Logical` for the root stack, `Nested/Logical` inside nested stacks.
    pub path: String,
    pub resource_type: String,
    /// Its last status in the operation.
    pub status: String,
    pub started: Option<DateTime<Utc>>,
    /// When it first reached a completed status going forward (not in a rollback).
    pub completed: Option<DateTime<Utc>>,
}

impl ResourceTiming {
    pub fn duration(&self) -> Option<std::time::Duration> {
        (self.completed? - self.started?).to_std().ok()
    }
}

#[derive(Debug, Clone)]
struct Resource {
    timing: ResourceTiming,
    last_seen: DateTime<Utc>,
    in_progress: bool,
    /// Counted as done: completed going forward and not rolled back since.
    done: bool,
    root: bool,
}

/// A nested stack being followed.
#[derive(Debug, Clone)]
struct Nested {
    /// Path prefix of its resources (`Parent/Logical`).
    path: String,
    /// First event of its parent's resource in this operation.
    since: DateTime<Utc>,
    phase: Phase,
    /// Its own operation chain (nested stacks run operations of their own).
    chain: Option<Chain>,
    stage: Stage,
    /// Its parent's resource is no longer in progress: one more read, then stop.
    parent_settled: bool,
    done: bool,
}

/// Follows one operation chain. Feed it chronological events with [`Tracker::apply_root`]
/// and [`Tracker::apply_nested`].
#[derive(Debug, Clone)]
pub struct Tracker {
    root_name: String,
    matcher: Matcher,
    phase: Phase,
    root_id: Option<String>,
    /// The root stack's chain, from its first event on.
    chain: Option<Chain>,
    start: Option<Event>,
    end: Option<Event>,
    /// Another operation's first event, when one took the stack over before our end.
    interrupted_by: Option<Event>,
    /// Followed from a later event: the operation's start was not in the history.
    joined_late: bool,
    root_status: Option<String>,
    /// Where the root stack is: forward, rolling back, or cleaning up.
    stage: Stage,
    resources: BTreeMap<(String, String), Resource>,
    nested: BTreeMap<String, Nested>,
    total_hint: Option<u32>,
    causes: Causes,
    last_progress: Option<(u32, u32)>,
    /// Tokens of later requests of ours on the operation (CancelUpdateStack), for the chain.
    adopted: Vec<String>,
}

/// A stack-level event that ends its stack's chain: a terminal status, except the
/// `CREATE_FAILED`/`UPDATE_FAILED` of a failed early validation (DetailedStatus
/// VALIDATION_FAILED), which the rollback follows as an operation of its own
/// (simulator/README.md, "Where each behaviour comes from": a real CreateStack capture).
fn ends_chain(event: &Event) -> bool {
    status::is_terminal(&event.status)
        && !(event.status.ends_with("_FAILED")
            && event.detailed_status.as_deref() == Some("VALIDATION_FAILED"))
}

impl Tracker {
    /// `root_name`: the stack's name; `total_hint`: the expected number of resource changes
    /// (a change set's size), if known.
    pub fn new(root_name: &str, matcher: Matcher, total_hint: Option<u32>) -> Self {
        Self {
            root_name: root_name.to_string(),
            matcher,
            phase: Phase::Waiting,
            root_id: None,
            chain: None,
            start: None,
            end: None,
            interrupted_by: None,
            joined_late: false,
            root_status: None,
            stage: Stage::Forward,
            resources: BTreeMap::new(),
            nested: BTreeMap::new(),
            total_hint,
            causes: Causes::default(),
            last_progress: None,
            adopted: Vec::new(),
        }
    }

    /// Events carrying `token`, the ClientRequestToken of a later request of ours on this
    /// operation (CancelUpdateStack), belong to the chain: the rollback it starts carries it.
    pub fn adopt_token(&mut self, token: &str) {
        self.adopted.push(token.to_string());
        if let Some(chain) = self.chain.as_mut() {
            chain.adopt_token(token);
        }
    }

    pub fn started(&self) -> Option<&Event> {
        self.start.as_ref()
    }

    pub fn is_started(&self) -> bool {
        self.phase != Phase::Waiting
    }

    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// The ROOT stack's terminal event (None when the chain was interrupted).
    pub fn end(&self) -> Option<&Event> {
        self.end.as_ref()
    }

    /// The first event of another operation that took the stack over before the chain's end
    /// (a DeleteStack during the rollback).
    pub fn interrupted_by(&self) -> Option<&Event> {
        self.interrupted_by.as_ref()
    }

    pub fn root_id(&self) -> Option<&str> {
        self.root_id.as_deref()
    }

    /// The forward operation's id (the first of the chain).
    pub fn operation_id(&self) -> Option<&str> {
        self.operation_ids().first().map(String::as_str)
    }

    /// Every OperationId of the root stack's chain, forward operation first.
    pub fn operation_ids(&self) -> &[String] {
        self.chain.as_ref().map(Chain::operations).unwrap_or(&[])
    }

    /// The root stack's last status seen in the chain's events.
    pub fn root_status(&self) -> Option<&str> {
        self.root_status.as_deref()
    }

    /// Why it failed, when something failed or the stack said why it rolled back.
    pub fn root_cause(&self) -> Option<&Cause> {
        self.causes.best()
    }

    /// Failures while rolling back or cleaning up: what was left behind.
    pub fn leftovers(&self) -> &[Leftover] {
        self.causes.leftovers()
    }

    /// Completed resources of the root stack, out of the expected total. Rolled-back resources
    /// are no longer counted; the total grows when more resources show up than expected.
    pub fn progress(&self) -> (u32, u32) {
        let roots = self.resources.values().filter(|r| r.root);
        let (mut seen, mut done) = (0u32, 0u32);
        for r in roots {
            seen += 1;
            done += u32::from(r.done);
        }
        (done, self.total_hint.unwrap_or(0).max(seen))
    }

    /// Resources (root and nested) in progress now.
    pub fn in_progress(&self) -> Vec<&ResourceTiming> {
        self.resources
            .values()
            .filter(|r| r.in_progress)
            .map(|r| &r.timing)
            .collect()
    }

    /// Every resource the operation touched, in path order.
    pub fn resources(&self) -> Vec<ResourceTiming> {
        self.resources.values().map(|r| r.timing.clone()).collect()
    }

    /// The end should be seconds away: nothing is in progress and either every expected
    /// change is done, or the stack is cleaning up or rolling back.
    pub fn end_is_imminent(&self) -> bool {
        if self.phase != Phase::Running || self.resources.values().any(|r| r.in_progress) {
            return false;
        }
        let (done, total) = self.progress();
        (self.total_hint.is_some() && done >= total) || self.stage != Stage::Forward
    }

    /// Nested stacks (stack ids) whose events must still be read.
    pub fn nested_to_poll(&self) -> Vec<String> {
        if self.phase == Phase::Waiting {
            return Vec::new();
        }
        self.nested
            .iter()
            .filter(|(_, n)| !n.done)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The nested stack's resource in its parent is no longer in progress: one more read
    /// of its events is all it needs.
    pub fn nested_settled(&self, stack_id: &str) -> bool {
        self.nested.get(stack_id).is_some_and(|n| n.parent_settled)
    }

    /// Where reading a nested stack's events starts.
    pub fn nested_since(&self, stack_id: &str) -> Option<DateTime<Utc>> {
        self.nested.get(stack_id).map(|n| n.since)
    }

    /// Tells the tracker a nested stack's events were read completely: once its parent's
    /// resource has settled, that read was the last one needed.
    pub fn nested_read(&mut self, stack_id: &str) {
        if let Some(n) = self.nested.get_mut(stack_id)
            && n.parent_settled
        {
            n.done = true;
        }
    }

    /// A nested stack whose events cannot be read (it is gone and was never seen by its
    /// id): its parent's events are all we will know.
    pub fn nested_unreadable(&mut self, stack_id: &str) {
        if let Some(n) = self.nested.get_mut(stack_id) {
            n.done = true;
        }
    }

    /// Applies one event of the root stack.
    pub fn apply_root(&mut self, event: &Event) -> Vec<Update> {
        let mut updates = Vec::new();
        match self.phase {
            Phase::Finished => {}
            Phase::Waiting => self.start_with(event, &mut updates),
            Phase::Running => self.continue_with(event, &mut updates),
        }
        updates
    }

    /// Follows the operation running now although its first event is not among `events`
    /// (the whole history, oldest first, with no start in it): from the oldest event after
    /// the root stack's last terminal status. Timings then count from there.
    pub fn join_running(&mut self, events: &[Event]) -> Vec<Update> {
        let mut updates = Vec::new();
        if self.phase != Phase::Waiting {
            return updates;
        }
        let from = events
            .iter()
            .rposition(|e| e.is_stack_level() && status::is_terminal(&e.status))
            .map_or(0, |i| i + 1);
        let Some((first, rest)) = events[from..].split_first() else {
            return updates;
        };
        self.joined_late = true;
        self.begin(first, &mut updates);
        // `Started` already carries the event.
        let mut more = Vec::new();
        self.apply_ours(first, &mut more);
        updates.extend(
            more.into_iter()
                .filter(|u| !matches!(u, Update::Resource(e) if e == first)),
        );
        for event in rest {
            if self.phase == Phase::Running {
                self.continue_with(event, &mut updates);
            }
        }
        updates
    }

    /// The operation's start was not seen: [`Self::join_running`] began at a later event.
    pub fn joined_late(&self) -> bool {
        self.joined_late
    }

    fn start_with(&mut self, event: &Event, updates: &mut Vec<Update>) {
        // Also the root's own name: events of the stack we follow, not a nested one.
        if !event.starts_operation()
            || !self.matcher.accepts_start(event)
            || !self.is_root_event(event)
        {
            return;
        }
        self.begin(event, updates);
        self.root_status = Some(event.status.clone());
        self.push_progress(updates);
    }

    fn begin(&mut self, event: &Event, updates: &mut Vec<Update>) {
        self.phase = Phase::Running;
        self.root_id = Some(event.stack_id.clone());
        let mut chain = Chain::starting_with(event, self.matcher.client_request_token.as_deref());
        for token in &self.adopted {
            chain.adopt_token(token);
        }
        self.chain = Some(chain);
        self.start = Some(event.clone());
        updates.push(Update::Started(event.clone()));
    }

    fn continue_with(&mut self, event: &Event, updates: &mut Vec<Update>) {
        if self
            .root_id
            .as_deref()
            .is_some_and(|id| id != event.stack_id)
        {
            return;
        }
        let Some(chain) = self.chain.as_mut() else {
            return;
        };
        match chain.classify(event) {
            Verdict::Ours { released } => {
                self.apply_ours(event, updates);
                for held in released {
                    if self.phase == Phase::Running {
                        self.apply_ours(&held, updates);
                    }
                }
            }
            Verdict::Foreign | Verdict::Held => {}
            Verdict::Interrupted => {
                updates.push(Update::Resource(event.clone()));
                self.interrupted_by = Some(event.clone());
                self.settle(event, updates);
            }
        }
    }

    /// An event of the chain on the root stack.
    fn apply_ours(&mut self, event: &Event, updates: &mut Vec<Update>) {
        updates.push(Update::Resource(event.clone()));
        if event.is_stack_level() {
            self.root_status = Some(event.status.clone());
            if let Some(stage) = Stage::after(&event.status) {
                self.stage = stage;
            }
            self.consider_cause(event, "", Stage::Forward, true, updates);
            if ends_chain(event) {
                self.end = Some(event.clone());
                self.settle(event, updates);
            }
            return;
        }
        let stack_id = event.stack_id.clone();
        let stage = self.stage;
        self.apply_resource(event, &stack_id, "", stage, true, updates);
    }

    /// The chain is over: nothing runs any more.
    fn settle(&mut self, event: &Event, updates: &mut Vec<Update>) {
        self.phase = Phase::Finished;
        for resource in self.resources.values_mut() {
            resource.in_progress = false;
        }
        updates.push(Update::Finished(event.clone()));
    }

    /// Applies one event of the nested stack `stack_id` (as returned by [`Self::nested_to_poll`]).
    pub fn apply_nested(&mut self, stack_id: &str, event: &Event) -> Vec<Update> {
        let mut updates = Vec::new();
        if self.phase == Phase::Waiting {
            return updates;
        }
        let Some(nested) = self.nested.get_mut(stack_id) else {
            return updates;
        };
        if event.timestamp < nested.since - NESTED_TOLERANCE {
            return updates;
        }
        let released = match (nested.phase, nested.chain.as_mut()) {
            (Phase::Finished, _) => return updates,
            (Phase::Running, Some(chain)) => match chain.classify(event) {
                Verdict::Ours { released } => released,
                Verdict::Foreign | Verdict::Held | Verdict::Interrupted => return updates,
            },
            _ => {
                // A nested stack's operations carry their own ids and tokens: its first
                // stack-level event after its parent's resource started is the one.
                if !(event.is_stack_level() && status::starts_operation(&event.status)) {
                    return updates;
                }
                nested.phase = Phase::Running;
                nested.chain = Some(Chain::starting_with(event, None));
                updates.push(Update::Resource(event.clone()));
                return updates;
            }
        };
        self.apply_nested_ours(stack_id, event, &mut updates);
        for held in released {
            self.apply_nested_ours(stack_id, &held, &mut updates);
        }
        updates
    }

    fn apply_nested_ours(&mut self, stack_id: &str, event: &Event, updates: &mut Vec<Update>) {
        let Some(nested) = self.nested.get_mut(stack_id) else {
            return;
        };
        if nested.phase == Phase::Finished {
            return;
        }
        let path = nested.path.clone();
        updates.push(Update::Resource(event.clone()));
        if event.is_stack_level() {
            if let Some(stage) = Stage::after(&event.status) {
                nested.stage = stage;
            }
            if ends_chain(event) {
                nested.phase = Phase::Finished;
                nested.done = true;
                // Its resources settled with it.
                for ((sid, _), r) in self.resources.iter_mut() {
                    if sid == stack_id {
                        r.in_progress = false;
                    }
                }
            }
            self.consider_cause(event, &path, Stage::Forward, false, updates);
            return;
        }
        let stage = nested.stage;
        self.apply_resource(event, stack_id, &path, stage, false, updates);
    }

    fn is_root_event(&self, event: &Event) -> bool {
        event.stack_name == self.root_name
            || self.root_id.as_deref() == Some(event.stack_id.as_str())
    }

    fn apply_resource(
        &mut self,
        event: &Event,
        stack_id: &str,
        prefix: &str,
        stage: Stage,
        root: bool,
        updates: &mut Vec<Update>,
    ) {
        let path = if prefix.is_empty() {
            event.logical_id.clone()
        } else {
            format!("{prefix}/{}", event.logical_id)
        };
        let key = (stack_id.to_string(), event.logical_id.clone());
        // Undoing the operation: the stage of the resource's own stack, as its events say
        // (a nested stack's events are read after its parent's: the root's stage then is no
        // guide to when they were written).
        let rolling_back = stage == Stage::Rollback;
        let resource = self.resources.entry(key).or_insert_with(|| Resource {
            timing: ResourceTiming {
                path: path.clone(),
                resource_type: event.resource_type.clone(),
                status: event.status.clone(),
                started: None,
                completed: None,
            },
            last_seen: event.timestamp,
            in_progress: false,
            done: false,
            root,
        });
        // Events come in the order they were written; only an older "in progress" that
        // became visible late must not reopen a resource that has finished since.
        let class = status::classify_resource(&event.status);
        let stale = class == ResourceClass::InProgress
            && !resource.in_progress
            && event.timestamp < resource.last_seen;
        if !stale {
            resource.last_seen = resource.last_seen.max(event.timestamp);
            resource.timing.status = event.status.clone();
            resource.in_progress = class == ResourceClass::InProgress;
            if rolling_back && root {
                // Undoing it: whatever it had reached no longer counts.
                resource.done = false;
            } else if !rolling_back {
                match class {
                    ResourceClass::InProgress => {
                        if resource.timing.started.is_none() {
                            resource.timing.started = Some(event.timestamp);
                        }
                    }
                    ResourceClass::Complete | ResourceClass::Skipped => {
                        if !resource.done && resource.timing.completed.is_none() {
                            resource.timing.completed = Some(event.timestamp);
                        }
                        resource.done = true;
                    }
                    ResourceClass::Failed => {}
                }
            }
        }
        let settled = !resource.in_progress;
        if event.resource_type == STACK_TYPE {
            self.track_nested(event, &path, settled, updates);
        }
        self.consider_cause(event, prefix, stage, root, updates);
        if root {
            self.push_progress(updates);
        }
    }

    fn track_nested(
        &mut self,
        event: &Event,
        path: &str,
        settled: bool,
        updates: &mut Vec<Update>,
    ) {
        // The first CREATE_IN_PROGRESS may not carry the nested stack's id yet; a later
        // event does. Its start is the parent's first event about it in this operation.
        let Some(child_id) = event.nested_stack_id() else {
            return;
        };
        let since = self
            .resources
            .iter()
            .find(|(_, r)| r.timing.path == path)
            .and_then(|(_, r)| r.timing.started)
            .unwrap_or(event.timestamp);
        match self.nested.get_mut(child_id) {
            Some(n) => n.parent_settled = settled,
            None => {
                self.nested.insert(
                    child_id.to_string(),
                    Nested {
                        path: path.to_string(),
                        since,
                        phase: Phase::Waiting,
                        chain: None,
                        stage: Stage::Forward,
                        parent_settled: settled,
                        done: false,
                    },
                );
                updates.push(Update::NestedStack(child_id.to_string()));
            }
        }
    }

    fn consider_cause(
        &mut self,
        event: &Event,
        prefix: &str,
        stage: Stage,
        root: bool,
        updates: &mut Vec<Update>,
    ) {
        if self.causes.consider(event, prefix, stage, root)
            && let Some(cause) = self.causes.best()
        {
            updates.push(Update::RootCause(cause.clone()));
        }
    }

    fn push_progress(&mut self, updates: &mut Vec<Update>) {
        let progress = self.progress();
        if self.last_progress != Some(progress) {
            self.last_progress = Some(progress);
            updates.push(Update::Progress {
                done: progress.0,
                total: progress.1,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::cursor::{Baseline, Cursor};
    use crate::stack::events::tests::*;

    #[test]
    fn an_event_written_late_with_an_older_timestamp_is_caught_and_applied_in_order() {
        // CloudFormation can stamp several COMPLETE events with the first one's timestamp
        // while writing them at their own times: a reader that keeps only events newer than
        // the last timestamp it saw loses them.
        let mut ev = Ev::new();
        let mut cursor = Cursor::after(&Baseline::default());
        let start = ev.stack(0.0, "CREATE_IN_PROGRESS", Some("User Initiated"));
        let q1 = ev.res(1.0, "Queue", "CREATE_IN_PROGRESS", None);
        let q2 = ev.res(5.0, "Queue", "CREATE_COMPLETE", None);
        let t1 = ev.res(6.0, "Topic", "CREATE_IN_PROGRESS", None);
        let db = ev.res(30.0, "Db", "CREATE_IN_PROGRESS", None);
        let first = read(
            &mut cursor,
            &[vec![
                db.clone(),
                t1.clone(),
                q2.clone(),
                q1.clone(),
                start.clone(),
            ]],
        );
        assert_eq!(
            ids(&first),
            ids(&[
                start.clone(),
                q1.clone(),
                q2.clone(),
                t1.clone(),
                db.clone()
            ])
        );
        // Written after Db's event, stamped with Queue's completion time.
        let t2 = ev.res(5.0, "Topic", "CREATE_COMPLETE", None);
        let second = read(
            &mut cursor,
            &[vec![
                t2.clone(),
                db.clone(),
                t1.clone(),
                q2.clone(),
                q1,
                start,
            ]],
        );
        assert_eq!(ids(&second), ids(std::slice::from_ref(&t2)));
        let mut t = Tracker::new("app", Matcher::default(), Some(3));
        feed(&mut t, &first);
        feed(&mut t, &second);
        let topic = t
            .resources()
            .into_iter()
            .find(|r| r.path == "Topic")
            .map(|r| r.status);
        assert_eq!(
            topic.as_deref(),
            Some("CREATE_COMPLETE"),
            "complete, although stamped before it started"
        );
        assert_eq!(t.progress(), (2, 3));
        assert_eq!(t.in_progress().len(), 1);
    }

    #[test]
    fn current_operation_reads_back_to_its_start_only() {
        let mut ev = Ev::new();
        let prev_start = ev.stack(0.0, "UPDATE_IN_PROGRESS", Some("User Initiated"));
        let prev_end = ev.stack(10.0, "UPDATE_COMPLETE", None);
        let start = ev.stack(20.0, "UPDATE_IN_PROGRESS", Some("User Initiated"));
        let r = ev.res(21.0, "A", "UPDATE_IN_PROGRESS", None);
        let mut cursor = Cursor::current_operation();
        let got = read(
            &mut cursor,
            &[
                vec![r.clone(), start.clone()],
                vec![prev_end.clone(), prev_start.clone()],
            ],
        );
        assert_eq!(ids(&got), ids(&[start.clone(), r.clone()]));
        let mut t = Tracker::new("app", Matcher::default(), None);
        let updates = feed(&mut t, &got);
        assert!(
            matches!(updates.first(), Some(Update::Started(e)) if e.event_id == start.event_id)
        );
    }

    #[test]
    fn keeps_only_our_operation_by_token_then_operation_id() {
        let mut ev = Ev::new();
        let with = |mut e: Event, token: &str, op: &str| {
            e.client_request_token = Some(token.into());
            e.operation_id = Some(op.into());
            e
        };
        // Someone else's operation runs first (after the baseline), then ours.
        let theirs = [
            with(
                ev.stack(1.0, "UPDATE_IN_PROGRESS", Some("User Initiated")),
                "other",
                "op-1",
            ),
            with(ev.res(2.0, "A", "UPDATE_COMPLETE", None), "other", "op-1"),
            with(ev.stack(3.0, "UPDATE_COMPLETE", None), "other", "op-1"),
        ];
        let ours = [
            with(
                ev.stack(4.0, "UPDATE_IN_PROGRESS", Some("User Initiated")),
                "dc-1",
                "op-2",
            ),
            with(ev.res(5.0, "B", "UPDATE_IN_PROGRESS", None), "dc-1", "op-2"),
            with(ev.res(6.0, "B", "UPDATE_COMPLETE", None), "dc-1", "op-2"),
            with(ev.stack(7.0, "UPDATE_COMPLETE", None), "dc-1", "op-2"),
        ];
        let matcher = Matcher {
            operation_id: None,
            client_request_token: Some("dc-1".into()),
        };
        let mut t = Tracker::new("app", matcher, Some(1));
        let mut all: Vec<Event> = theirs.to_vec();
        all.extend(ours.iter().cloned());
        let updates = feed(&mut t, &all);
        assert_eq!(
            t.started().map(|e| e.event_id.clone()),
            Some(ours[0].event_id.clone())
        );
        assert_eq!(
            t.operation_id(),
            Some("op-2"),
            "learned from our first event"
        );
        assert_eq!(finished(&updates).as_deref(), Some("UPDATE_COMPLETE"));
        assert_eq!(
            t.end().map(|e| e.event_id.clone()),
            Some(ours[3].event_id.clone())
        );
        assert_eq!(
            t.resources()
                .iter()
                .map(|r| r.path.as_str())
                .collect::<Vec<_>>(),
            ["B"]
        );
        assert_eq!(t.progress(), (1, 1));
    }

    #[test]
    fn without_ids_the_first_user_initiated_stack_event_starts_the_operation() {
        let mut ev = Ev::new();
        let events = [
            // A leftover of the previous operation, after the baseline (same second).
            ev.res(0.5, "Z", "DELETE_COMPLETE", None),
            ev.stack(1.0, "REVIEW_IN_PROGRESS", Some("User Initiated")),
            ev.stack(2.0, "CREATE_IN_PROGRESS", Some("User Initiated")),
            ev.res(3.0, "A", "CREATE_IN_PROGRESS", None),
        ];
        let mut t = Tracker::new("app", Matcher::default(), None);
        feed(&mut t, &events);
        assert_eq!(
            t.started().map(|e| e.status.as_str()),
            Some("CREATE_IN_PROGRESS")
        );
        assert_eq!(
            t.resources().len(),
            1,
            "Z belonged to the previous operation"
        );
    }

    #[test]
    fn a_failed_update_counts_back_down_during_rollback_and_never_exceeds_the_total() {
        let mut ev = Ev::new();
        let mut t = Tracker::new("app", Matcher::default(), Some(3));
        let mut progress = Vec::new();
        let events = [
            ev.stack(0.0, "UPDATE_IN_PROGRESS", Some("User Initiated")),
            ev.res(1.0, "A", "UPDATE_IN_PROGRESS", None),
            ev.res(2.0, "A", "UPDATE_COMPLETE", None),
            ev.res(2.0, "B", "UPDATE_IN_PROGRESS", None),
            ev.res(3.0, "B", "UPDATE_COMPLETE", None),
            ev.res(3.0, "C", "UPDATE_IN_PROGRESS", None),
            ev.res(4.0, "C", "UPDATE_FAILED", Some("Bad property")),
            ev.stack(
                5.0,
                "UPDATE_ROLLBACK_IN_PROGRESS",
                Some("The following resource(s) failed to update: [C]."),
            ),
            ev.res(6.0, "B", "UPDATE_IN_PROGRESS", None),
            ev.res(7.0, "B", "UPDATE_COMPLETE", None),
            ev.res(8.0, "A", "UPDATE_IN_PROGRESS", None),
            ev.res(9.0, "A", "UPDATE_COMPLETE", None),
            ev.stack(10.0, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", None),
            ev.stack(11.0, "UPDATE_ROLLBACK_COMPLETE", None),
        ];
        for e in &events {
            for u in t.apply_root(e) {
                if let Update::Progress { done, total } = u {
                    assert!(done <= total, "{done}/{total}");
                    progress.push(done);
                }
            }
        }
        assert_eq!(progress, [0, 1, 2, 1, 0]);
        assert_eq!(t.progress(), (0, 3));
        assert_eq!(
            t.end().map(|e| e.status.as_str()),
            Some("UPDATE_ROLLBACK_COMPLETE")
        );
        assert_eq!(
            t.root_cause().and_then(|c| c.resource.as_deref()),
            Some("C")
        );
        // Forward timings survive the rollback (history wants how long they took to update).
        let a = t.resources().into_iter().find(|r| r.path == "A");
        assert_eq!(
            a.and_then(|a| a.duration()),
            Some(std::time::Duration::from_secs(1))
        );
    }

    #[test]
    fn the_total_grows_when_more_resources_show_up_than_expected() {
        let mut ev = Ev::new();
        let mut t = Tracker::new("app", Matcher::default(), Some(1));
        feed(
            &mut t,
            &[
                ev.stack(0.0, "CREATE_IN_PROGRESS", Some("User Initiated")),
                ev.res(1.0, "A", "CREATE_COMPLETE", None),
                ev.res(1.0, "B", "CREATE_COMPLETE", None),
            ],
        );
        assert_eq!(t.progress(), (2, 2));
    }

    #[test]
    fn root_cause_ignores_cancellations_and_prefers_a_resource_to_a_summary() {
        let mut ev = Ev::new();
        let mut t = Tracker::new("app", Matcher::default(), None);
        feed(
            &mut t,
            &[
                ev.stack(0.0, "CREATE_IN_PROGRESS", Some("User Initiated")),
                ev.res(
                    1.0,
                    "Other",
                    "CREATE_FAILED",
                    Some("Resource creation cancelled"),
                ),
                ev.res(
                    2.0,
                    "Db",
                    "CREATE_FAILED",
                    Some("DBInstance quota exceeded"),
                ),
                ev.res(3.0, "Later", "CREATE_FAILED", Some("something else")),
                ev.stack(
                    4.0,
                    "ROLLBACK_IN_PROGRESS",
                    Some("The following resource(s) failed to create: [Db]."),
                ),
                ev.stack(9.0, "ROLLBACK_COMPLETE", None),
            ],
        );
        assert_eq!(
            t.root_cause().map(|c| c.reason.as_str()),
            Some("DBInstance quota exceeded")
        );
        assert_eq!(
            t.root_cause().and_then(|c| c.resource.as_deref()),
            Some("Db")
        );
        assert!(t.is_finished());
    }

    #[test]
    fn a_nested_stack_completing_does_not_end_the_operation() {
        let mut ev = Ev::new();
        let mut t = Tracker::new("app", Matcher::default(), Some(2));
        let root = [
            ev.stack(0.0, "CREATE_IN_PROGRESS", Some("User Initiated")),
            // The first event about the nested stack has no physical id yet.
            ev.nested_res(1.0, "CREATE_IN_PROGRESS", None, None),
            ev.nested_res(
                1.5,
                "CREATE_IN_PROGRESS",
                Some(CHILD),
                Some("Resource creation Initiated"),
            ),
        ];
        let updates = feed(&mut t, &root);
        assert!(updates.contains(&Update::NestedStack(CHILD.into())));
        assert_eq!(t.nested_to_poll(), [CHILD.to_string()]);
        assert_eq!(
            t.nested_since(CHILD),
            Some(at(1.0)),
            "from the parent's first event about it"
        );
        // The nested stack's own events, read from its own stack id, include its COMPLETE.
        let child = [
            ev.child(
                1.6,
                "app-Net-X",
                "CREATE_IN_PROGRESS",
                Some("User Initiated"),
            ),
            ev.child(2.0, "Subnet", "CREATE_IN_PROGRESS", None),
            ev.child(3.0, "Subnet", "CREATE_COMPLETE", None),
            ev.child(4.0, "app-Net-X", "CREATE_COMPLETE", None),
        ];
        let updates = feed(&mut t, &child);
        assert_eq!(
            finished(&updates),
            None,
            "a nested stack's COMPLETE is not the end"
        );
        assert!(!t.is_finished());
        assert!(
            t.nested_to_poll().is_empty(),
            "nothing more to read from a finished nested stack"
        );
        assert!(
            t.resources()
                .iter()
                .any(|r| r.path == "Net/Subnet" && r.status == "CREATE_COMPLETE")
        );
        let rest = [
            ev.nested_res(4.5, "CREATE_COMPLETE", Some(CHILD), None),
            ev.res(5.0, "Api", "CREATE_COMPLETE", None),
            ev.stack(6.0, "CREATE_COMPLETE", None),
        ];
        let updates = feed(&mut t, &rest);
        assert_eq!(finished(&updates).as_deref(), Some("CREATE_COMPLETE"));
        assert_eq!(
            t.progress(),
            (2, 2),
            "progress counts the root stack's resources"
        );
    }

    #[test]
    fn a_failure_inside_a_nested_stack_is_the_root_cause_even_when_read_after_the_parent() {
        let mut ev = Ev::new();
        let mut t = Tracker::new("app", Matcher::default(), None);
        feed(
            &mut t,
            &[
                ev.stack(0.0, "CREATE_IN_PROGRESS", Some("User Initiated")),
                ev.nested_res(1.0, "CREATE_IN_PROGRESS", Some(CHILD), None),
            ],
        );
        let child_failure = ev.child(3.0, "Subnet", "CREATE_FAILED", Some("CIDR conflicts"));
        let parent_summary = ev.nested_res(
            4.0,
            "CREATE_FAILED",
            Some(CHILD),
            Some("Embedded stack was not successfully created: The following resource(s) failed to create: [Subnet]."),
        );
        // The parent's summary is read first (the nested stack is read afterwards).
        feed(&mut t, std::slice::from_ref(&parent_summary));
        assert_eq!(
            t.root_cause().and_then(|c| c.resource.as_deref()),
            Some("Net")
        );
        assert_eq!(
            t.nested_to_poll(),
            [CHILD.to_string()],
            "one last read of the nested stack"
        );
        let child = [
            ev.child(
                1.5,
                "app-Net-X",
                "CREATE_IN_PROGRESS",
                Some("User Initiated"),
            ),
            child_failure,
        ];
        let updates = feed(&mut t, &child);
        assert!(
            updates
                .iter()
                .any(|u| matches!(u, Update::RootCause(c) if c.event.logical_id == "Subnet"))
        );
        assert_eq!(
            t.root_cause().and_then(|c| c.resource.as_deref()),
            Some("Net/Subnet")
        );
        assert_eq!(
            t.root_cause().map(|c| c.reason.as_str()),
            Some("CIDR conflicts")
        );
        t.nested_read(CHILD);
        assert!(t.nested_to_poll().is_empty());
    }

    #[test]
    fn a_nested_stack_ignores_its_previous_operations() {
        let mut ev = Ev::new();
        let mut t = Tracker::new("app", Matcher::default(), None);
        feed(
            &mut t,
            &[
                ev.stack(100.0, "UPDATE_IN_PROGRESS", Some("User Initiated")),
                ev.nested_res(101.0, "UPDATE_IN_PROGRESS", Some(CHILD), None),
            ],
        );
        let old = ev.child(50.0, "Subnet", "UPDATE_FAILED", Some("old failure"));
        let updates = t.apply_nested(CHILD, &old);
        assert!(updates.is_empty());
        assert!(t.root_cause().is_none());
    }

    #[test]
    fn imminent_when_every_expected_change_is_done() {
        let mut ev = Ev::new();
        let mut t = Tracker::new("app", Matcher::default(), Some(1));
        feed(
            &mut t,
            &[
                ev.stack(0.0, "UPDATE_IN_PROGRESS", Some("User Initiated")),
                ev.res(1.0, "A", "UPDATE_IN_PROGRESS", None),
            ],
        );
        assert!(!t.end_is_imminent());
        feed(&mut t, &[ev.res(2.0, "A", "UPDATE_COMPLETE", None)]);
        assert!(t.end_is_imminent());
    }

    /// A failed update as real CloudFormation writes it since OperationIds exist: the
    /// automatic rollback is an operation of its own (new OperationId, same
    /// ClientRequestToken). `token`: the token every event carries, if any.
    fn failed_update_with_rollback_operation(ev: &mut Ev, token: Option<&str>) -> Vec<Event> {
        let tag = |mut e: Event, op: &str| {
            e.operation_id = Some(op.into());
            e.client_request_token = token.map(Into::into);
            e
        };
        vec![
            tag(
                ev.stack(0.0, "UPDATE_IN_PROGRESS", Some("User Initiated")),
                "op-fwd",
            ),
            tag(ev.res(1.0, "Fn", "UPDATE_IN_PROGRESS", None), "op-fwd"),
            tag(
                ev.res(2.0, "Fn", "UPDATE_FAILED", Some("Role is invalid")),
                "op-fwd",
            ),
            tag(
                ev.stack(
                    3.0,
                    "UPDATE_ROLLBACK_IN_PROGRESS",
                    Some("The following resource(s) failed to update: [Fn]. "),
                ),
                "op-rollback",
            ),
            tag(ev.res(4.0, "Fn", "UPDATE_IN_PROGRESS", None), "op-rollback"),
            tag(ev.res(5.0, "Fn", "UPDATE_COMPLETE", None), "op-rollback"),
            tag(
                ev.stack(6.0, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", None),
                "op-rollback",
            ),
            tag(
                ev.stack(7.0, "UPDATE_ROLLBACK_COMPLETE", None),
                "op-rollback",
            ),
        ]
    }

    #[test]
    fn the_rollback_with_its_own_operation_id_is_followed_by_our_token() {
        let mut ev = Ev::new();
        let events = failed_update_with_rollback_operation(&mut ev, Some("dc-1"));
        let matcher = Matcher {
            operation_id: None,
            client_request_token: Some("dc-1".into()),
        };
        let mut t = Tracker::new("app", matcher, Some(1));
        let updates = feed(&mut t, &events);
        assert_eq!(
            finished(&updates).as_deref(),
            Some("UPDATE_ROLLBACK_COMPLETE"),
            "the chain ends on the rollback's terminal status"
        );
        assert_eq!(
            t.root_cause().and_then(|c| c.resource.as_deref()),
            Some("Fn")
        );
        assert_eq!(t.progress(), (0, 1), "the rollback undid the update");
    }

    #[test]
    fn the_rollback_with_its_own_operation_id_is_followed_without_our_token() {
        // Monitor mode: someone else's operation, with their token or none at all.
        for token in [Some("console-123"), None] {
            let mut ev = Ev::new();
            let events = failed_update_with_rollback_operation(&mut ev, token);
            let mut t = Tracker::new("app", Matcher::default(), None);
            let updates = feed(&mut t, &events);
            assert_eq!(
                finished(&updates).as_deref(),
                Some("UPDATE_ROLLBACK_COMPLETE"),
                "token {token:?}"
            );
            assert_eq!(
                t.root_cause().map(|c| c.reason.as_str()),
                Some("Role is invalid")
            );
        }
    }

    #[test]
    fn a_failure_whose_only_reason_is_on_the_root_rollback_event_is_the_root_cause() {
        // No resource failed: the template itself was wrong (a real stream: an invalid
        // Fn::GetAtt attribute is reported only on the stack's ROLLBACK_IN_PROGRESS).
        let mut ev = Ev::new();
        let reason = "Attribute 'PublicIp' does not exist. Rollback requested by user.";
        let mut t = Tracker::new("app", Matcher::default(), None);
        feed(
            &mut t,
            &[
                ev.stack(0.0, "CREATE_IN_PROGRESS", Some("User Initiated")),
                ev.res(1.0, "Ip", "CREATE_IN_PROGRESS", None),
                ev.res(2.0, "Ip", "CREATE_COMPLETE", None),
                ev.stack(3.0, "ROLLBACK_IN_PROGRESS", Some(reason)),
                ev.res(4.0, "Ip", "DELETE_IN_PROGRESS", None),
                ev.res(5.0, "Ip", "DELETE_COMPLETE", None),
                ev.stack(6.0, "ROLLBACK_COMPLETE", None),
            ],
        );
        assert!(t.is_finished());
        assert_eq!(t.root_cause().map(|c| c.reason.as_str()), Some(reason));
        assert_eq!(
            t.root_cause().and_then(|c| c.resource.as_deref()),
            None,
            "no resource failed"
        );
    }

    #[test]
    fn configuration_complete_is_not_done_and_an_eventual_consistency_event_starts_nothing() {
        // Real streams (FINDINGS §4): CREATE_IN_PROGRESS with DetailedStatus
        // CONFIGURATION_COMPLETE, reason "Eventual consistency check initiated", long before
        // the resource's CREATE_COMPLETE.
        let mut ev = Ev::new();
        let mut t = Tracker::new("app", Matcher::default(), Some(1));
        let mut configured = ev.res(
            2.0,
            "Queue",
            "CREATE_IN_PROGRESS",
            Some("Eventual consistency check initiated"),
        );
        configured.detailed_status = Some("CONFIGURATION_COMPLETE".into());
        feed(
            &mut t,
            &[
                ev.stack(0.0, "CREATE_IN_PROGRESS", Some("User Initiated")),
                ev.res(1.0, "Queue", "CREATE_IN_PROGRESS", None),
                configured,
            ],
        );
        assert_eq!(t.progress(), (0, 1), "configured is not created");
        assert_eq!(t.in_progress().len(), 1);
        feed(&mut t, &[ev.res(63.0, "Queue", "CREATE_COMPLETE", None)]);
        let queue = t.resources().into_iter().find(|r| r.path == "Queue");
        assert_eq!(
            queue.and_then(|q| q.duration()),
            Some(std::time::Duration::from_secs(62)),
            "its time runs to CREATE_COMPLETE"
        );
    }

    #[test]
    fn a_delete_started_during_the_rollback_ends_the_chain_as_failed() {
        // real-events/25: the user's DeleteStack takes the stack over; no ROLLBACK_COMPLETE.
        let mut ev = Ev::new();
        let tag = |mut e: Event, op: &str| {
            e.operation_id = Some(op.into());
            e
        };
        let mut t = Tracker::new("app", Matcher::default(), None);
        let updates = feed(
            &mut t,
            &[
                tag(ev.stack(0.0, "CREATE_IN_PROGRESS", Some("User Initiated")), "create"),
                tag(
                    ev.res(5.0, "Db", "CREATE_FAILED", Some("instance type not eligible")),
                    "create",
                ),
                tag(
                    ev.stack(6.0, "ROLLBACK_IN_PROGRESS", Some("The following resource(s) failed to create: [Db]. Rollback requested by user.")),
                    "rollback",
                ),
                tag(ev.res(7.0, "Redis", "DELETE_IN_PROGRESS", None), "rollback"),
                tag(ev.stack(250.0, "DELETE_IN_PROGRESS", Some("User Initiated")), "delete"),
                tag(ev.res(480.0, "Redis", "DELETE_COMPLETE", None), "delete"),
            ],
        );
        assert!(t.is_finished(), "the chain cannot reach its own end");
        assert_eq!(
            t.interrupted_by().map(|e| e.status.as_str()),
            Some("DELETE_IN_PROGRESS")
        );
        assert!(finished(&updates).is_some());
        let r = crate::stack::result::result_of(&t, None, std::time::Duration::ZERO);
        assert_eq!(r.outcome, crate::stack::Outcome::Failed);
        assert_eq!(r.failed_resource.as_deref(), Some("Db"));
        assert!(r.warnings.iter().any(|w| w.contains("another operation")));
    }

    #[test]
    fn a_retained_resource_is_a_warning_with_what_it_means_for_the_next_create() {
        let mut ev = Ev::new();
        let mut t = Tracker::new("app", Matcher::default(), None);
        feed(
            &mut t,
            &[
                ev.stack(0.0, "CREATE_IN_PROGRESS", Some("User Initiated")),
                ev.res(1.0, "Table", "CREATE_COMPLETE", None),
                ev.res(2.0, "Fn", "CREATE_FAILED", Some("bad code")),
                ev.stack(3.0, "ROLLBACK_IN_PROGRESS", Some("The following resource(s) failed to create: [Fn]. Rollback requested by user.")),
                ev.res(4.0, "Table", "DELETE_SKIPPED", None),
                ev.stack(5.0, "ROLLBACK_COMPLETE", None),
            ],
        );
        let r = crate::stack::result::result_of(&t, None, std::time::Duration::ZERO);
        assert_eq!(r.failed_resource.as_deref(), Some("Fn"));
        assert!(
            r.warnings
                .iter()
                .any(|w| w.starts_with("Table") && w.contains("already exists")),
            "{:?}",
            r.warnings
        );
    }
}
