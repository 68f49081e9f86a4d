//! The wall clock used for the times people read (`acquired_at`, enqueue times).
//!
//! Never used to decide staleness: that is measured on each waiter's own monotonic clock
//! (`tokio::time::Instant`). Tests of the real binary skew this clock with
//! `DEPLOY_COORDINATOR_CLOCK_SKEW` (e.g. `-10m`, `+10m`) to prove exactly that; it is a
//! test-only knob and says so in a warning when set.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

pub(crate) const SKEW_ENV: &str = "DEPLOY_COORDINATOR_CLOCK_SKEW";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WallClock {
    skew_ms: i64,
}

impl WallClock {
    pub fn system() -> WallClock {
        WallClock { skew_ms: 0 }
    }

    pub fn skewed(skew_ms: i64) -> WallClock {
        WallClock { skew_ms }
    }

    /// Reads `DEPLOY_COORDINATOR_CLOCK_SKEW` (`-10m`, `+90s`, `10m`). Unset means no skew.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<WallClock, String> {
        let Some(text) = env(SKEW_ENV).filter(|t| !t.trim().is_empty()) else {
            return Ok(WallClock::system());
        };
        let t = text.trim();
        let (sign, rest) = match t.strip_prefix('-') {
            Some(rest) => (-1, rest),
            None => (1, t.strip_prefix('+').unwrap_or(t)),
        };
        let d = crate::duration::parse(rest).map_err(|e| format!("{SKEW_ENV}: {e}"))?;
        let ms = i64::try_from(d.as_millis()).map_err(|_| format!("{SKEW_ENV}: too large"))?;
        tracing::warn!("{SKEW_ENV}={t}: the wall clock is skewed (a test-only setting)");
        Ok(WallClock { skew_ms: sign * ms })
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::milliseconds(self.skew_ms)
    }

    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.now().timestamp_millis()).unwrap_or(0)
    }

    pub fn now_rfc3339(&self) -> String {
        self.now().to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_read_from_the_env() {
        let env = |v: &'static str| move |_: &str| Some(v.to_string());
        assert_eq!(
            WallClock::from_env(&env("-10m")),
            Ok(WallClock::skewed(-600_000))
        );
        assert_eq!(
            WallClock::from_env(&env("+90s")),
            Ok(WallClock::skewed(90_000))
        );
        assert_eq!(
            WallClock::from_env(&env("10m")),
            Ok(WallClock::skewed(600_000))
        );
        assert_eq!(WallClock::from_env(&|_| None), Ok(WallClock::system()));
        assert!(WallClock::from_env(&env("ten")).is_err());
        let skewed = WallClock::skewed(-600_000).now_ms() as i64;
        let real = WallClock::system().now_ms() as i64;
        assert!((real - skewed - 600_000).abs() < 5_000);
    }
}
