//! The operation being followed, as history sees it: its root-stack events so far, the
//! estimate they give, and the history record it becomes at the end.
//!
//! Pure: the steps load the history before and store the record after; everything in between
//! (what the estimate says now, whether it is slower than usual, a waiter's ETA) is computed
//! here from what was passed in, so it is tested without servers.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::estimate::{self, Calibration, Estimate, Options};
use crate::history::{self, HistoryRecord, Operation};
use crate::lock::LockRecord;
use crate::stack;
use crate::stack::client::ResourceChange;

pub(crate) struct LiveEstimate {
    stack: String,
    history: Vec<HistoryRecord>,
    events: Vec<history::StackEvent>,
    /// Mode deploy: what the change set says will change.
    change_set: Option<Vec<ResourceChange>>,
    /// The estimator calibrated on this stack's history, for the operation followed (and
    /// whether with a change set): replayed once, at the step's first estimate.
    calibration: Option<(Operation, bool, Calibration)>,
    /// The first estimate of this operation: what history predicted before it ran.
    first: Option<Estimate>,
}

impl LiveEstimate {
    pub(crate) fn new(stack: &str, history: Vec<HistoryRecord>) -> LiveEstimate {
        LiveEstimate {
            stack: stack.to_string(),
            history,
            events: Vec::new(),
            change_set: None,
            calibration: None,
            first: None,
        }
    }

    /// What the change set will change (mode deploy): the estimates' plan and progress total.
    pub(crate) fn set_change_set(&mut self, changes: Vec<ResourceChange>) {
        self.change_set = Some(changes);
    }

    /// What the estimator expects of a change set that has not run (mode plan): the
    /// estimator's change-set path over this stack's history, as `estimate --change-set` does.
    pub(crate) fn planned(
        &self,
        changes: &[ResourceChange],
        now: DateTime<Utc>,
    ) -> Option<Estimate> {
        let file = crate::estimate::ChangeSetFile {
            stack_name: Some(self.stack.clone()),
            changes: changes.to_vec(),
        };
        crate::estimate::offline::estimate_offline(
            self.history.clone(),
            &[],
            Some(&file),
            now,
            None,
        )
        .ok()
    }

    /// Takes an event of the followed operation. Only the root stack's: a nested stack's own
    /// "User Initiated" start would read as a new operation.
    pub(crate) fn push(&mut self, event: &stack::Event) {
        if event.stack_name == self.stack {
            self.events.push(history::StackEvent::from(event));
        }
    }

    /// The estimate now; the first one is kept as the prediction.
    pub(crate) fn estimate(&mut self, now: DateTime<Utc>) -> Option<Estimate> {
        let current = history::trace(&history::events::current_operation(&self.events)?)?;
        let with_change_set = self.change_set.is_some();
        let calibrated = self
            .calibration
            .as_ref()
            .is_some_and(|(op, cs, _)| *op == current.operation && *cs == with_change_set);
        if !calibrated {
            let calibration = Calibration::of(
                &self.history,
                &self.stack,
                current.operation,
                with_change_set,
            );
            self.calibration = Some((current.operation, with_change_set, calibration));
        }
        let options = Options {
            expected_total: None,
            change_set: self.change_set.clone(),
            calibration: self.calibration.as_ref().map(|(_, _, c)| c.clone()),
        };
        let estimate = estimate::estimate_with(&self.history, &current, now, &options);
        if self.first.is_none() {
            self.first = Some(estimate.clone());
        }
        Some(estimate)
    }

    /// What history predicted for the whole operation, in seconds (output
    /// `estimated-duration-seconds`).
    pub(crate) fn predicted_seconds(&self) -> Option<u64> {
        self.first
            .as_ref()
            .map(|e| e.elapsed_seconds + e.remaining_seconds)
    }

    /// The operation's history record, once it has ended, with what history predicted for it
    /// and how long the run queued for the lock first.
    pub(crate) fn record(
        &self,
        correlation_id: &str,
        lock_wait: Option<Duration>,
    ) -> Option<HistoryRecord> {
        let mut record = history::trace(&self.events)?.to_record(correlation_id)?;
        record.estimate = self.first.as_ref().map(history::PredictedDuration::from);
        record.lock_wait_seconds = lock_wait.map(|w| (w.as_secs_f64() * 10.0).round() / 10.0);
        Some(record)
    }

    /// How long an operation on this stack usually takes (polls faster near the end).
    pub(crate) fn usual_duration(&self) -> Option<Duration> {
        estimate::typical_duration(&self.history, &self.stack, None)
            .map(|r| Duration::from_secs_f64(r.median_seconds.max(0.0)))
    }

    /// A waiter's ETA: the holder's remaining time (from its stack's history and how long it
    /// has held the lock) plus a usual operation for each ticket ahead. The holder's elapsed
    /// time comes from its own clock: an ETA is for people, never for decisions.
    pub(crate) fn queue_eta(
        &self,
        holder: Option<&LockRecord>,
        ahead: usize,
        now: DateTime<Utc>,
    ) -> Duration {
        // No holder: the lock is being handed over, nothing to wait for but the tickets ahead.
        let holder_range = match holder {
            Some(h) => {
                let stack = h.info.stack.as_deref().unwrap_or(&self.stack);
                let elapsed = DateTime::parse_from_rfc3339(&h.acquired_at)
                    .map(|t| (now - t.with_timezone(&Utc)).num_seconds().max(0) as f64)
                    .unwrap_or(0.0);
                estimate::holder_remaining(&self.history, stack, None, elapsed)
            }
            None => estimate::DurationRange {
                low_seconds: 0.0,
                median_seconds: 0.0,
                high_seconds: 0.0,
            },
        };
        let usual = estimate::typical_duration(&self.history, &self.stack, None);
        let ahead: Vec<_> = (0..ahead).map(|_| usual).collect();
        Duration::from_secs(estimate::queue_eta(Some(holder_range), &ahead, now).wait_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::client::ResourceChange;
    use chrono::TimeZone;

    fn event(stack: &str, logical: &str, kind: &str, status: &str, at: i64) -> stack::Event {
        stack::Event {
            event_id: format!("{logical}-{status}-{at}"),
            stack_id: format!("arn:aws:cloudformation:us-east-1:1:stack/{stack}/x"),
            stack_name: stack.into(),
            logical_id: logical.into(),
            physical_id: None,
            resource_type: kind.into(),
            status: status.into(),
            reason: (logical == stack && status.ends_with("IN_PROGRESS"))
                .then(|| "User Initiated".into()),
            timestamp: Utc.timestamp_opt(1_700_000_000 + at, 0).unwrap(),
            operation_id: None,
            client_request_token: None,
            ..stack::Event::default()
        }
    }

    fn run(timeline: &mut LiveEstimate, offset: i64) {
        for e in [
            event(
                "app",
                "app",
                "AWS::CloudFormation::Stack",
                "CREATE_IN_PROGRESS",
                offset,
            ),
            event(
                "app",
                "Queue",
                "AWS::SQS::Queue",
                "CREATE_IN_PROGRESS",
                offset + 1,
            ),
            event(
                "app",
                "Queue",
                "AWS::SQS::Queue",
                "CREATE_COMPLETE",
                offset + 61,
            ),
            event(
                "nested",
                "Inner",
                "AWS::SQS::Queue",
                "CREATE_COMPLETE",
                offset + 62,
            ),
            event(
                "app",
                "app",
                "AWS::CloudFormation::Stack",
                "CREATE_COMPLETE",
                offset + 62,
            ),
        ] {
            timeline.push(&e);
        }
    }

    #[test]
    fn a_finished_operation_becomes_a_history_record_and_feeds_the_next_estimate() {
        let mut first = LiveEstimate::new("app", Vec::new());
        run(&mut first, 0);
        let record = first
            .record("20260114-123456-abc1234", Some(Duration::from_millis(1234)))
            .expect("a record");
        assert_eq!(record.stack, "app");
        assert_eq!(
            record.resources.len(),
            1,
            "nested stacks' own events are not root resources"
        );
        assert_eq!(record.seconds() as u64, 62);
        assert_eq!(
            record.lock_wait_seconds,
            Some(1.2),
            "the lock wait, to 0.1 s"
        );
        assert_eq!(
            record.estimate, None,
            "nothing was estimated during the run"
        );

        let mut second = LiveEstimate::new("app", vec![record]);
        let usual = second
            .usual_duration()
            .expect("a usual duration from one record")
            .as_secs();
        assert!((50..=80).contains(&usual), "{usual}s");
        second.push(&event(
            "app",
            "app",
            "AWS::CloudFormation::Stack",
            "CREATE_IN_PROGRESS",
            1000,
        ));
        let now = Utc.timestamp_opt(1_700_000_000 + 1010, 0).unwrap();
        let estimate = second.estimate(now).expect("an estimate");
        assert_eq!(estimate.elapsed_seconds, 10);
        assert!(
            second
                .predicted_seconds()
                .is_some_and(|p| (40..=120).contains(&p)),
            "{:?}",
            second.predicted_seconds()
        );
        assert!(
            second.record("x", None).is_none(),
            "no record while the operation runs"
        );
        run(&mut second, 2000);
        let predicted = second.predicted_seconds().expect("a prediction");
        let kept = second.record("y", None).expect("a record").estimate;
        let kept = kept.expect("the first estimate is kept in the record");
        assert_eq!(kept.seconds, predicted);
        assert!(kept.low_seconds <= kept.seconds && kept.seconds <= kept.high_seconds);
    }

    #[test]
    fn the_change_set_is_the_plan_and_history_calibrates_the_estimate() {
        // Twelve past creates of the queue, each recorded the way the action records them.
        let mut history = Vec::new();
        for i in 0..12 {
            let mut t = LiveEstimate::new("app", history.clone());
            run(&mut t, i * 10_000);
            history.push(t.record(&format!("r{i}"), None).expect("a record"));
        }
        let mut timeline = LiveEstimate::new("app", history);
        timeline.set_change_set(vec![
            ResourceChange {
                logical_id: "Queue".into(),
                resource_type: "AWS::SQS::Queue".into(),
                action: "Add".into(),
                replacement: None,
                scope: vec![],
                ..Default::default()
            },
            ResourceChange {
                logical_id: "Topic".into(),
                resource_type: "AWS::SNS::Topic".into(),
                action: "Add".into(),
                replacement: None,
                scope: vec![],
                ..Default::default()
            },
        ]);
        timeline.push(&event(
            "app",
            "app",
            "AWS::CloudFormation::Stack",
            "CREATE_IN_PROGRESS",
            500_000,
        ));
        let now = Utc.timestamp_opt(1_700_000_000 + 500_000, 0).unwrap();
        let e = timeline.estimate(now).expect("an estimate");
        assert_eq!(e.progress.total, 2, "the change set's two resources");
        assert!(e.basis.contains("change set: 2 to add"), "{}", e.basis);
        // The topic was never created before: the calibration, learnt on runs without it,
        // is left out and the basis says why.
        assert!(e.basis.contains("not calibrated"), "{}", e.basis);
        assert!(e.remaining_seconds >= 55, "the queue's usual minute: {e:?}");
    }

    #[test]
    fn without_events_there_is_no_estimate() {
        let mut timeline = LiveEstimate::new("app", Vec::new());
        assert!(timeline.estimate(Utc::now()).is_none());
        assert_eq!(timeline.predicted_seconds(), None);
        // A waiter with nobody ahead and no holder waits for nothing.
        assert_eq!(timeline.queue_eta(None, 0, Utc::now()), Duration::ZERO);
    }
}
