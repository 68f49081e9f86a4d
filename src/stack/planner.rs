//! When to read a followed operation's events next: the poll schedule ([`super::poll`]) fed
//! with what the tracker knows (the end looks imminent; a running resource may finish soon;
//! history's usual duration). Pure: the caller passes `now`, the time since it began following
//! on its own monotonic clock, so the same code runs live and in the offline benchmark over
//! real event streams (`examples/corpus_monitor.rs`).

use std::collections::HashMap;
use std::time::Duration;

use super::events::STACK_TYPE;
use super::poll::{Hint, PollResult, PollSchedule, PollSettings};
use super::tracker::Tracker;

/// How often to read while the end may come any moment: the median notice is half of it.
const WATCH: Duration = Duration::from_secs(3);

/// Nothing running: the end (or the next wave) is a second away, unless nothing has happened
/// for this long (a clean-up retrying a failed delete every 3 minutes: real-events/23).
const IMMINENT_FOR: Duration = Duration::from_secs(10);

/// A nested stack's events say how its own resources are doing, not when the root ends:
/// read at most this often, and once more when its resource in the parent settles (its
/// failure, if any, is then the root cause).
const NESTED_EVERY: Duration = Duration::from_secs(10);

/// The poll schedule of one follow, focused on the END: a deployment ends a second or so after
/// its last resource completes (tests/fixtures/real-events/FINDINGS.md §6.6), so the reads
/// that matter are the ones around then. For the slowest resource running now, from its type's
/// usual duration (`estimate::priors`, a log-normal): before its 10th percentile it cannot
/// have finished: read at half the time left until then (so a type that runs faster than
/// usual is still caught early); between its 10th and 90th percentile, every tenth of that
/// window, but not more often than every [`WATCH`]; past its 90th percentile (longer than its
/// type ever takes) the quiet backoff, from the start. Nothing running once resources ran
/// (between waves, or the end): every `imminent`, for a while. History's usual duration adds
/// one read when the whole operation usually ends.
#[derive(Debug, Clone)]
pub struct Planner {
    /// The quiet backoff and throttling.
    schedule: PollSchedule,
    /// When each running resource was first seen in progress (our clock, never
    /// CloudFormation's timestamps).
    first_seen: HashMap<String, Duration>,
    /// When the operation's first event was seen.
    started: Option<Duration>,
    /// The stack's usual duration, from history.
    expected: Option<Duration>,
    /// The last read was throttled: back off until a read brings news.
    throttled: bool,
    /// When the last read brought news.
    last_news: Duration,
    /// When each nested stack was last read.
    nested_read: HashMap<String, Duration>,
    /// Every running resource is past its 90th percentile: the backoff decides.
    overdue: bool,
}

impl Planner {
    pub fn new(settings: PollSettings, expected: Option<Duration>) -> Planner {
        Planner {
            schedule: PollSchedule::new(settings),
            first_seen: HashMap::new(),
            started: None,
            expected,
            throttled: false,
            last_news: Duration::ZERO,
            nested_read: HashMap::new(),
            overdue: false,
        }
    }

    /// The nested stacks (stack ids) to read now: never read yet, their resource in the
    /// parent has settled (the last read they need), or not read for [`NESTED_EVERY`].
    pub fn nested_due(&mut self, tracker: &Tracker, now: Duration) -> Vec<String> {
        let due: Vec<String> = tracker
            .nested_to_poll()
            .into_iter()
            .filter(|id| {
                tracker.nested_settled(id)
                    || self
                        .nested_read
                        .get(id)
                        .is_none_or(|at| now.saturating_sub(*at) >= NESTED_EVERY)
            })
            .collect();
        for id in &due {
            self.nested_read.insert(id.clone(), now);
        }
        due
    }

    /// The delay before the next read, after one that brought `news` (or not).
    pub fn after_read(&mut self, tracker: &Tracker, news: bool, now: Duration) -> Duration {
        let settings = *self.schedule.settings();
        let result = if news {
            PollResult::News
        } else {
            PollResult::Quiet
        };
        if news {
            self.throttled = false;
            self.last_news = now;
        }
        if !tracker.is_started() {
            // Waiting for someone else's operation: notice its start quickly.
            return self
                .schedule
                .next(result, Hint::default())
                .min(settings.max / 3);
        }
        if self.started.is_none() {
            self.started = Some(now);
        }
        // The quiet backoff keeps its state whatever decides this read.
        let backoff = self.schedule.next(result, Hint::default());
        if self.throttled {
            return backoff;
        }
        let running = tracker.in_progress();
        self.first_seen
            .retain(|path, _| running.iter().any(|r| &r.path == path));
        let recent = now.saturating_sub(self.last_news) < IMMINENT_FOR;
        if running.is_empty() {
            // The first resources start a few seconds after the stack's own event; after
            // that, nothing running means the end or the next wave.
            if tracker.resources().is_empty() {
                return settings.base;
            }
            if recent {
                return settings.imminent;
            }
        } else if tracker.end_is_imminent() && recent {
            return settings.imminent;
        }
        // A nested stack's resource lasts as long as its own resources, which are watched
        // themselves: its type says nothing about when it ends.
        let slowest = running
            .iter()
            .filter(|r| r.resource_type != STACK_TYPE)
            .map(|r| {
                let seen = *self.first_seen.entry(r.path.clone()).or_insert(now);
                let elapsed = now.saturating_sub(seen).as_secs_f64();
                let (p10, p90) = percentiles(&r.resource_type, action_of(&r.status));
                (p10 - elapsed, p90 - elapsed, p90 - p10)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        // Settings with a cap under WATCH (tests) keep their cap.
        let cap = settings.max.max(settings.base);
        let delay = match slowest {
            Some((to_p10, _, _)) if to_p10 > 0.0 => {
                self.overdue = false;
                Duration::from_secs_f64(to_p10 / 2.0)
                    .max(settings.base)
                    .min(cap)
            }
            Some((_, to_p90, window)) if to_p90 > 0.0 => {
                self.overdue = false;
                Duration::from_secs_f64(window / 10.0)
                    .max(WATCH.min(cap))
                    .min(cap)
            }
            // Only overdue resources, or only nested stacks: nothing to go on but the
            // backoff, which starts again from its base when this begins.
            _ => {
                if !std::mem::replace(&mut self.overdue, true) {
                    self.schedule = PollSchedule::new(settings);
                }
                backoff.min(self.schedule.next(PollResult::Quiet, Hint::default()))
            }
        };
        // History: read right when the operation usually ends, then leave it to the rest
        // (a deployment later than usual is not ending any second).
        let operation_end = self
            .expected
            .zip(self.started)
            .map(|(expected, at)| expected.saturating_sub(now.saturating_sub(at)));
        match operation_end {
            Some(end) if end >= settings.imminent && end < delay => end,
            _ => delay,
        }
    }

    /// The delay after CloudFormation throttled a read: slower, until a read brings news.
    pub fn after_throttling(&mut self) -> Duration {
        self.throttled = true;
        self.schedule.next(PollResult::Throttled, Hint::default())
    }
}

/// A resource type's 10th and 90th percentile duration for `action` (seconds), from the
/// priors (a log-normal per type).
fn percentiles(resource_type: &str, action: &str) -> (f64, f64) {
    // z of the 10th/90th percentile of a normal distribution.
    const Z90: f64 = 1.2816;
    let (median, sigma) = crate::estimate::priors::prior(resource_type, action);
    (median * (-Z90 * sigma).exp(), median * (Z90 * sigma).exp())
}

fn action_of(status: &str) -> &str {
    status.split('_').next().unwrap_or("CREATE")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::events::tests::{CHILD, Ev};
    use crate::stack::tracker::Matcher;

    fn secs(d: Duration) -> f64 {
        (d.as_secs_f64() * 100.0).round() / 100.0
    }

    fn at(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn started(resource_type: &str) -> (Ev, Tracker) {
        let mut ev = Ev::new();
        let mut t = Tracker::new("app", Matcher::default(), None);
        t.apply_root(&ev.stack(0.0, "CREATE_IN_PROGRESS", Some("User Initiated")));
        let mut r = ev.res(1.0, "Db", "CREATE_IN_PROGRESS", None);
        r.resource_type = resource_type.into();
        t.apply_root(&r);
        (ev, t)
    }

    #[test]
    fn a_resource_that_cannot_have_finished_is_read_at_half_the_time_to_its_10th_percentile() {
        // RDS: 10th percentile about 360 s.
        let (_, t) = started("AWS::RDS::DBInstance");
        let mut p = Planner::new(PollSettings::default(), None);
        assert_eq!(secs(p.after_read(&t, true, at(0.0))), 30.0, "capped at max");
        assert_eq!(secs(p.after_read(&t, false, at(330.0))), 14.67);
        assert_eq!(
            secs(p.after_read(&t, false, at(356.0))),
            2.0,
            "never under base"
        );
    }

    #[test]
    fn inside_the_usual_window_the_slowest_resource_is_watched_every_few_seconds() {
        let (_, t) = started("AWS::EC2::NatGateway");
        let mut p = Planner::new(PollSettings::default(), None);
        p.after_read(&t, true, at(0.0));
        // NAT gateway: 10th–90th percentile about 87–127 s: a tenth of it, 4 s.
        assert_eq!(secs(p.after_read(&t, false, at(100.0))), 4.06);
    }

    #[test]
    fn an_overdue_resource_backs_off_from_the_base_again() {
        let (_, t) = started("AWS::Lambda::Function");
        let mut p = Planner::new(PollSettings::default(), None);
        p.after_read(&t, true, at(0.0));
        for s in [10.0, 13.0, 16.0, 19.0, 22.0, 25.0, 28.0] {
            p.after_read(&t, false, at(s));
        }
        // Past its 90th percentile (about 33 s): the backoff from its base, 2 s ×1.5.
        let d1 = p.after_read(&t, false, at(40.0));
        let d2 = p.after_read(&t, false, at(43.0));
        assert_eq!((secs(d1), secs(d2)), (3.0, 4.5));
    }

    #[test]
    fn nothing_running_is_the_end_or_the_next_wave_for_a_while_only() {
        let (mut ev, mut t) = started("AWS::SQS::Queue");
        let mut p = Planner::new(PollSettings::default(), None);
        p.after_read(&t, true, at(0.0));
        t.apply_root(&ev.res(5.0, "Db", "CREATE_COMPLETE", None));
        assert_eq!(secs(p.after_read(&t, true, at(5.0))), 1.0);
        // A clean-up retrying a delete every 3 minutes: nothing for minutes.
        assert!(p.after_read(&t, false, at(16.0)) > Duration::from_secs(1));
    }

    #[test]
    fn before_the_first_resource_the_base_not_the_imminent_rate() {
        let mut ev = Ev::new();
        let mut t = Tracker::new("app", Matcher::default(), None);
        t.apply_root(&ev.stack(0.0, "UPDATE_IN_PROGRESS", Some("User Initiated")));
        let mut p = Planner::new(PollSettings::default(), None);
        assert_eq!(secs(p.after_read(&t, true, at(0.0))), 2.0);
    }

    #[test]
    fn a_nested_stack_is_read_every_ten_seconds_and_once_when_it_settles() {
        let mut ev = Ev::new();
        let mut t = Tracker::new("app", Matcher::default(), None);
        t.apply_root(&ev.stack(0.0, "CREATE_IN_PROGRESS", Some("User Initiated")));
        t.apply_root(&ev.nested_res(1.0, "CREATE_IN_PROGRESS", Some(CHILD), None));
        let mut p = Planner::new(PollSettings::default(), None);
        assert_eq!(p.nested_due(&t, at(1.0)), [CHILD.to_string()]);
        assert!(p.nested_due(&t, at(5.0)).is_empty());
        assert_eq!(p.nested_due(&t, at(11.0)), [CHILD.to_string()]);
        t.apply_root(&ev.nested_res(12.0, "CREATE_COMPLETE", Some(CHILD), None));
        assert_eq!(
            p.nested_due(&t, at(12.0)),
            [CHILD.to_string()],
            "its last read"
        );
    }
}
