//! Durations: one parser for every duration a user types or the kubelet writes, and one way of
//! showing an elapsed time.
//!
//! Parsing is jiff's "friendly" format, so `90s`, `5m`, `1h30m`, `1d`, `2d12h`, `1w`, `500ms`,
//! `1.5h`, Go's `1h0m0s` and ISO 8601's `PT1H30M` all read; days and weeks are 24 hours and 7 days
//! (there is no calendar to consult). Months and years have no fixed length and are refused.

use std::fmt;

use jiff::{SignedDuration, Span, SpanRelativeTo};

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    text: String,
    why: String,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a duration: {}", self.text, self.why)
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration: `90s`, `5m`, `1h30m`, `1d`, `2d12h`, `500ms`, `1h0m0s`, `PT90S`.
pub fn parse(text: &str) -> Result<SignedDuration, DurationError> {
    let err = |why: String| DurationError {
        text: text.to_string(),
        why,
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(err("empty".into()));
    }
    // A bare number has no unit; jiff would refuse it too, with a longer message.
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!("no unit (write {s}s, {s}m, {s}h or {s}d)")));
    }
    let span: Span = s.parse().map_err(|e: jiff::Error| err(e.to_string()))?;
    if span.get_years() != 0 || span.get_months() != 0 {
        return Err(err(
            "months and years have no fixed length; use days (30d)".into()
        ));
    }
    span.to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|e| err(e.to_string()))
}

/// Parses a duration that must be above zero (a TTL, an interval, a window).
pub fn parse_positive(text: &str) -> Result<SignedDuration, DurationError> {
    let d = parse(text)?;
    if d.is_positive() {
        Ok(d)
    } else {
        Err(DurationError {
            text: text.to_string(),
            why: "must be more than zero".into(),
        })
    }
}

/// An elapsed time for a reader: `0.4s`, `12s`, `3m05s`, `2h10m`, `3d4h`.
pub fn human(secs: f64) -> String {
    if secs < 10.0 {
        format!("{secs:.1}s")
    } else if secs < 60.0 {
        format!("{}s", secs.round() as u64)
    } else {
        human_whole(secs.round() as u64)
    }
}

/// [`human`] for whole seconds: `7s`, `3m05s`, `2h10m`, `3d4h`.
pub fn human_whole(s: u64) -> String {
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d{}h", s / 86_400, (s % 86_400) / 3600)
    }
}

/// Go's `time.Duration` spelling, as the kubelet writes back-off delays: `40s`, `1m20s`, `5m0s`.
pub fn go(secs: u64) -> String {
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else {
        format!("{}h{}m{}s", secs / 3600, (secs % 3600) / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(text: &str) -> Option<i64> {
        parse(text).ok().map(|d| d.as_secs())
    }

    #[test]
    fn friendly_forms() {
        assert_eq!(secs("90s"), Some(90));
        assert_eq!(secs("5m"), Some(300));
        assert_eq!(secs("1h30m"), Some(5400));
        assert_eq!(secs("1d"), Some(86_400));
        assert_eq!(secs("2d12h"), Some(216_000));
        assert_eq!(secs("7d"), Some(604_800));
        assert_eq!(secs("1w"), Some(604_800));
        assert_eq!(secs("15s"), Some(15));
        assert_eq!(secs("1.5h"), Some(5400));
        assert_eq!(secs("1h 30m"), Some(5400));
        assert_eq!(secs("PT1H30M"), Some(5400));
        // The kubelet's (Go's) spelling.
        assert_eq!(secs("1m20s"), Some(80));
        assert_eq!(secs("5m0s"), Some(300));
        assert_eq!(secs("1h0m0s"), Some(3600));
        assert_eq!(parse("500ms").map(|d| d.as_millis()), Ok(500));
    }

    #[test]
    fn refusals() {
        for bad in ["", "15", "x", "1mo", "1y", "5 parsecs", "-", "1h30", "ms"] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse("15").is_err_and(|e| e.to_string().contains("no unit")));
        assert!(parse_positive("0s").is_err());
        assert!(parse_positive("-5m").is_err());
        assert_eq!(parse_positive("1d").map(|d| d.as_hours()), Ok(24));
    }

    #[test]
    fn display() {
        assert_eq!(human(0.44), "0.4s");
        assert_eq!(human(4.0), "4.0s");
        assert_eq!(human(12.4), "12s");
        assert_eq!(human(185.0), "3m05s");
        assert_eq!(human(7800.0), "2h10m");
        assert_eq!(human(3.0 * 86_400.0 + 4.0 * 3600.0), "3d4h");
        assert_eq!(human_whole(7), "7s");
        assert_eq!(go(40), "40s");
        assert_eq!(go(80), "1m20s");
        assert_eq!(go(3725), "1h2m5s");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_near_the_grammar(s in "[-+]?([0-9]{1,25}(\\.[0-9]{0,12})?(ns|us|ms|s|m|h|d|w) ?){1,5}") {
            let _ = parse(&s);
        }

        /// What we write, we read: Go spelling, the whole-second display above a minute, and
        /// `NdNhNmNs` built from parts.
        #[test]
        fn round_trips(d in 0u64..100_000, h in 0u64..24, m in 0u64..60, s in 0u64..60) {
            let total = d * 86_400 + h * 3600 + m * 60 + s;
            prop_assert_eq!(secs(&format!("{d}d{h}h{m}m{s}s")), Some(total as i64));
            prop_assert_eq!(secs(&go(total)), Some(total as i64));
        }
    }
}
