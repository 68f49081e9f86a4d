//! Durations as users write them in workflow files: `90s`, `15m`, `1h30m`, `2h`.
//!
//! A bare number is refused on purpose: some tools read it as seconds, others as minutes, and a
//! lock timeout off by a factor of 60 is a bad surprise in production.

use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DurationError {
    #[error("is empty")]
    Empty,
    #[error("{0:?} has no unit: write e.g. \"{0}s\" or \"{0}m\"")]
    NoUnit(String),
    #[error(
        "{0:?} is not a duration: use a number followed by h, m, s or ms, e.g. 90s, 15m, 1h30m"
    )]
    Invalid(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// Parses `1h30m`, `15m`, `90s`, `500ms`, `2h 5m` (spaces allowed between parts).
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.chars().all(|c| c.is_ascii_digit()) {
        return Err(DurationError::NoUnit(text.to_string()));
    }
    let invalid = || DurationError::Invalid(text.to_string());
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::TooLarge(text.to_string()))?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" | "sec" | "secs" => 1_000,
            "m" | "min" | "mins" => 60_000,
            "h" | "hr" | "hrs" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total_ms = number
            .checked_mul(unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| DurationError::TooLarge(text.to_string()))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way people read it: `1h 5m`, `4m 10s`, `12s`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) if s == 0 => format!("{m}m"),
        (0, _) => format!("{m}m {s}s"),
        _ if m == 0 => format!("{h}h"),
        _ => format!("{h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_workflows_use() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse(" 2h 5m "), Ok(Duration::from_secs(7500)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_ambiguous_or_malformed_text() {
        assert_eq!(parse("60"), Err(DurationError::NoUnit("60".into())));
        assert_eq!(parse(""), Err(DurationError::Empty));
        for bad in ["m", "1.5h", "-5m", "10 minutes", "1h30", "1x", "h1"] {
            assert!(
                matches!(parse(bad), Err(DurationError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse("99999999999999999999s"),
            Err(DurationError::TooLarge(_))
        ));
        assert!(matches!(
            parse("999999999999999h"),
            Err(DurationError::TooLarge(_))
        ));
    }

    #[test]
    fn prints_for_people() {
        assert_eq!(human(Duration::from_secs(12)), "12s");
        assert_eq!(human(Duration::from_secs(250)), "4m 10s");
        assert_eq!(human(Duration::from_secs(3900)), "1h 5m");
        assert_eq!(human(Duration::from_secs(7200)), "2h");
    }
}
