//! When to poll CloudFormation next.
//!
//! Fast when something happens, slower while nothing does, much slower when AWS throttles us:
//! 2 s, ×1.5 per quiet poll up to 30 s, ×2 per throttled poll (up to 60 s), back to 2 s on news.
//! A quiet stack costs few calls; a busy one is followed closely. Two hints pull the next poll
//! earlier: the end looks imminent (every resource is done and only the stack's own event is
//! missing), or an estimated completion time approaches. Throttling always wins over the hints:
//! polling faster into throttling only makes it worse.

use std::time::Duration;

/// The schedule's constants; the defaults are the design's, tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollSettings {
    pub base: Duration,
    pub max: Duration,
    pub max_throttled: Duration,
    pub growth: f64,
    /// How often to poll when the end is imminent.
    pub imminent: Duration,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            max: Duration::from_secs(30),
            max_throttled: Duration::from_secs(60),
            growth: 1.5,
            imminent: Duration::from_secs(1),
        }
    }
}

/// What the last poll saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollResult {
    /// New events (or a status change).
    News,
    /// Nothing new.
    Quiet,
    /// AWS answered `Throttling`.
    Throttled,
}

/// What the caller knows about when the operation should end.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Hint {
    /// Every counted resource is done and only the stack's terminal event is missing, or the
    /// stack is in a clean-up phase: the end is seconds away.
    pub imminent: bool,
    /// The estimated time until completion, if an estimate exists (None: unknown). Zero or
    /// negative estimates are passed as zero (overdue).
    pub expected_in: Option<Duration>,
}

/// The polling schedule. Pure: it returns delays, the caller sleeps.
#[derive(Debug, Clone)]
pub struct PollSchedule {
    settings: PollSettings,
    current: Duration,
    throttled: bool,
}

impl PollSchedule {
    pub fn new(settings: PollSettings) -> Self {
        Self {
            current: settings.base,
            settings,
            throttled: false,
        }
    }

    pub fn settings(&self) -> &PollSettings {
        &self.settings
    }

    /// The delay before the next poll, given what the last one saw.
    pub fn next(&mut self, result: PollResult, hint: Hint) -> Duration {
        let s = self.settings;
        match result {
            PollResult::News => {
                self.current = s.base;
                self.throttled = false;
            }
            PollResult::Quiet => {
                let cap = if self.throttled {
                    s.max_throttled
                } else {
                    s.max
                };
                self.current = mul(self.current, s.growth).min(cap).max(s.base);
            }
            PollResult::Throttled => {
                self.current = mul(self.current, 2.0).min(s.max_throttled).max(s.base);
                self.throttled = true;
            }
        }
        if self.throttled {
            return self.current;
        }
        let mut delay = self.current;
        if hint.imminent {
            delay = delay.min(s.imminent);
        }
        if let Some(expected) = hint.expected_in {
            if expected.is_zero() {
                // Overdue: it may end any moment, but not necessarily soon; stay attentive.
                delay = delay.min(s.base);
            } else if expected < delay {
                // Poll right when it is expected to end, not up to `delay - expected` later.
                delay = expected.max(s.imminent);
            }
        }
        delay
    }
}

/// When a running resource may next finish, from its type's usual duration (the priors of
/// `estimate::priors`, as a log-normal): before its 10th percentile, news is expected at the 10th
/// percentile; inside the 10th–90th percentile window, every twentieth of the window (so a NAT
/// gateway is watched every ~2 s while it may finish, an RDS instance every ~30 s); past the 90th
/// percentile it says nothing and the quiet backoff goes on. The earliest of all running
/// resources is the hint. `elapsed` is how long each has run as seen here (our own clock, never
/// CloudFormation's timestamps).
pub fn resource_window_hint<'a>(
    running: impl IntoIterator<Item = (&'a str, &'a str, Duration)>,
) -> Option<Duration> {
    // z for the 10th/90th percentile of a normal distribution.
    const Z90: f64 = 1.2816;
    running
        .into_iter()
        .filter_map(|(resource_type, action, elapsed)| {
            let (median, sigma) = crate::estimate::priors::prior(resource_type, action);
            let (p10, p90) = (median * (-Z90 * sigma).exp(), median * (Z90 * sigma).exp());
            let t = elapsed.as_secs_f64();
            if t < p10 {
                Some(Duration::from_secs_f64(p10 - t))
            } else if t < p90 {
                Some(Duration::from_secs_f64(((p90 - p10) / 20.0).max(0.5)))
            } else {
                None
            }
        })
        .min()
}

fn mul(d: Duration, factor: f64) -> Duration {
    Duration::from_secs_f64((d.as_secs_f64() * factor).min(86_400.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Duration) -> f64 {
        (d.as_secs_f64() * 1000.0).round() / 1000.0
    }

    #[test]
    fn grows_while_quiet_up_to_thirty_seconds() {
        let mut p = PollSchedule::new(PollSettings::default());
        let delays: Vec<f64> = (0..10)
            .map(|_| secs(p.next(PollResult::Quiet, Hint::default())))
            .collect();
        assert_eq!(
            delays,
            [
                3.0, 4.5, 6.75, 10.125, 15.188, 22.781, 30.0, 30.0, 30.0, 30.0
            ]
        );
    }

    #[test]
    fn news_resets_to_two_seconds() {
        let mut p = PollSchedule::new(PollSettings::default());
        for _ in 0..6 {
            p.next(PollResult::Quiet, Hint::default());
        }
        assert_eq!(
            p.next(PollResult::News, Hint::default()),
            Duration::from_secs(2)
        );
        assert_eq!(secs(p.next(PollResult::Quiet, Hint::default())), 3.0);
    }

    #[test]
    fn throttling_doubles_beyond_the_quiet_cap_and_ignores_hints() {
        let mut p = PollSchedule::new(PollSettings::default());
        let hint = Hint {
            imminent: true,
            expected_in: Some(Duration::ZERO),
        };
        let delays: Vec<f64> = (0..6)
            .map(|_| secs(p.next(PollResult::Throttled, hint)))
            .collect();
        assert_eq!(delays, [4.0, 8.0, 16.0, 32.0, 60.0, 60.0]);
        // Still careful after a quiet poll that follows throttling.
        assert_eq!(secs(p.next(PollResult::Quiet, hint)), 60.0);
        // News ends the throttled regime.
        assert_eq!(secs(p.next(PollResult::News, hint)), 1.0);
    }

    #[test]
    fn imminent_end_polls_every_second() {
        let mut p = PollSchedule::new(PollSettings::default());
        for _ in 0..8 {
            p.next(PollResult::Quiet, Hint::default());
        }
        let hint = Hint {
            imminent: true,
            expected_in: None,
        };
        assert_eq!(p.next(PollResult::Quiet, hint), Duration::from_secs(1));
    }

    #[test]
    fn expected_completion_pulls_the_next_poll_to_that_moment() {
        let mut p = PollSchedule::new(PollSettings::default());
        for _ in 0..8 {
            p.next(PollResult::Quiet, Hint::default());
        }
        let far = Hint {
            imminent: false,
            expected_in: Some(Duration::from_secs(600)),
        };
        assert_eq!(p.next(PollResult::Quiet, far), Duration::from_secs(30));
        let near = Hint {
            imminent: false,
            expected_in: Some(Duration::from_secs(7)),
        };
        assert_eq!(p.next(PollResult::Quiet, near), Duration::from_secs(7));
        let very_near = Hint {
            imminent: false,
            expected_in: Some(Duration::from_millis(100)),
        };
        assert_eq!(p.next(PollResult::Quiet, very_near), Duration::from_secs(1));
        let overdue = Hint {
            imminent: false,
            expected_in: Some(Duration::ZERO),
        };
        assert_eq!(p.next(PollResult::Quiet, overdue), Duration::from_secs(2));
    }

    #[test]
    fn a_running_resource_is_watched_closely_only_while_it_may_finish() {
        let nat = "AWS::EC2::NatGateway";
        // Before its usual window: wake up when the window opens (~86 s for a NAT gateway).
        let early = resource_window_hint([(nat, "CREATE", Duration::from_secs(20))]).unwrap();
        assert!((60.0..70.0).contains(&early.as_secs_f64()), "{early:?}");
        // Inside it: a couple of seconds.
        let inside = resource_window_hint([(nat, "CREATE", Duration::from_secs(100))]).unwrap();
        assert!(inside <= Duration::from_secs(3), "{inside:?}");
        // Long past it: no hint, the quiet backoff decides.
        assert_eq!(
            resource_window_hint([(nat, "CREATE", Duration::from_secs(600))]),
            None
        );
        // A slow resource's window is wide: it is not watched every 2 s for minutes.
        let rds =
            resource_window_hint([("AWS::RDS::DBInstance", "CREATE", Duration::from_secs(500))])
                .unwrap();
        assert!(rds >= Duration::from_secs(20), "{rds:?}");
        // The earliest of several wins.
        let both = resource_window_hint([
            (nat, "CREATE", Duration::from_secs(100)),
            ("AWS::RDS::DBInstance", "CREATE", Duration::from_secs(10)),
        ]);
        assert_eq!(both, Some(inside));
        assert_eq!(resource_window_hint([]), None);
    }

    #[test]
    fn the_window_hint_pulls_a_long_quiet_wait_in() {
        let mut p = PollSchedule::new(PollSettings::default());
        for _ in 0..10 {
            p.next(PollResult::Quiet, Hint::default());
        }
        let hint = Hint {
            imminent: false,
            expected_in: Some(Duration::from_secs(2)),
        };
        assert_eq!(p.next(PollResult::Quiet, hint), Duration::from_secs(2));
    }
}
