//! Durations as people write them (`15m`, `2h`, `28d`, `1h30m`) and instants
//! as Swedish operators read them (Europe/Stockholm, with the DST abbreviation).
//!
//! This module must not read a clock: every instant is passed in. Deadline
//! arithmetic stays in UTC; Stockholm time is for display only, so a deadline
//! across a DST change remains an exact number of hours away.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Europe::Stockholm;

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text is not a sequence of `<number><unit>` parts.
    #[error("{text:?} is not a duration (use 15m, 2h, 28d)")]
    NotADuration {
        /// The offending text, quoted back so the writer can find it.
        text: String,
    },
}

/// Reads `90s`, `15m`, `2h`, `1h30m`, `28d` or `4w` into a duration.
///
/// Rule-set files and configuration write durations this way so that a
/// reader sees "6h" rather than "21600". Parts may be combined from the
/// largest unit down; a bare number is rejected because its unit would be a
/// guess.
pub fn parse_duration(s: &str) -> Result<Duration, Error> {
    let bad = || Error::NotADuration {
        text: s.to_string(),
    };
    let text = s.trim();
    if text.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::zero();
    let mut digits = String::new();
    let mut last_rank = usize::MAX;
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let (rank, seconds) = match c {
            'w' => (4, 7 * 86_400),
            'd' => (3, 86_400),
            'h' => (2, 3_600),
            'm' => (1, 60),
            's' => (0, 1),
            _ => return Err(bad()),
        };
        if digits.is_empty() || rank >= last_rank {
            return Err(bad());
        }
        last_rank = rank;
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        let part = n
            .checked_mul(seconds)
            .and_then(Duration::try_seconds)
            .ok_or_else(bad)?;
        total = total.checked_add(&part).ok_or_else(bad)?;
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// Writes a duration the way [`parse_duration`] reads it (`1h30m`, `28d`).
///
/// Used to echo rule-set values back in reasons and timelines, so that a
/// person sees the same notation as in the file.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.num_seconds();
    if secs == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    if secs < 0 {
        out.push('-');
        secs = -secs;
    }
    for (unit, size) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// Formats an instant in Swedish local time, e.g. `2026-03-29 14:05 (CEST)`.
///
/// Operators think in wall-clock time; the abbreviation shows whether summer
/// time applied, so two deadlines on either side of a DST change can be told
/// apart.
pub fn local(dt: DateTime<Utc>) -> String {
    dt.with_timezone(&Stockholm)
        .format("%Y-%m-%d %H:%M (%Z)")
        .to_string()
}

/// Serde helper for a duration written as a string (`#[serde(with = "...")]`).
///
/// Keeps configuration and rule files readable (`"6h"`) instead of counting
/// seconds.
pub mod duration_str {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the duration as e.g. `"1h30m"`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    /// Reads a duration such as `"15m"`, naming the bad text on failure.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde helper for an optional duration written as a string.
pub mod option_duration_str {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `Some` as e.g. `"1h"` and `None` as null.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&super::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    /// Reads an optional duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| super::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn every_documented_form_parses_to_the_right_length() {
        let cases = [
            ("15m", 15 * 60),
            ("2h", 2 * 3600),
            ("6h", 6 * 3600),
            ("24h", 24 * 3600),
            ("72h", 72 * 3600),
            ("28d", 28 * 86_400),
            ("1h30m", 5400),
            ("90s", 90),
            ("4w", 28 * 86_400),
            (" 2h ", 7200),
        ];
        for (text, secs) in cases {
            assert_eq!(parse_duration(text), Ok(Duration::seconds(secs)), "{text}");
        }
    }

    #[test]
    fn bad_durations_are_rejected_and_named() {
        for text in [
            "", "2", "2x", "h", "2h2h", "30m1h", "-2h", "2.5h", "1 h", "2H",
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(
                err.to_string().contains(&format!("{text:?}")),
                "error for {text:?} must quote it: {err}"
            );
        }
    }

    #[test]
    fn formatting_round_trips() {
        for text in ["15m", "2h", "1h30m", "28d", "90s", "1d1h1m1s"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::minutes(90)), "1h30m");
    }

    #[test]
    fn local_time_shows_summer_and_winter_time() {
        let winter = Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap();
        let summer = Utc.with_ymd_and_hms(2026, 3, 29, 12, 5, 0).unwrap();
        assert_eq!(local(winter), "2026-03-29 01:30 (CET)");
        assert_eq!(local(summer), "2026-03-29 14:05 (CEST)");
        let october = Utc.with_ymd_and_hms(2026, 10, 25, 1, 30, 0).unwrap();
        assert_eq!(local(october), "2026-10-25 02:30 (CET)");
    }

    #[test]
    fn the_serde_helper_reads_and_writes_strings() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Conf {
            #[serde(with = "duration_str")]
            every: Duration,
        }
        let c: Conf = serde_json::from_str(r#"{"every":"1h30m"}"#).unwrap();
        assert_eq!(c.every, Duration::minutes(90));
        assert_eq!(serde_json::to_string(&c).unwrap(), r#"{"every":"1h30m"}"#);
        let err = serde_json::from_str::<Conf>(r#"{"every":"soon"}"#).unwrap_err();
        assert!(err.to_string().contains("\"soon\""));
    }
}
