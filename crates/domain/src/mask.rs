//! Masking of Swedish personal identity numbers (personnummer) and
//! co-ordination numbers (samordningsnummer) in free text.
//!
//! Tickets are written by care staff and may name a patient. Identifiers
//! must never travel beyond the front door, so every text field is masked on
//! intake. The rule is deliberately generous: a wrong check digit is still
//! masked (a mistyped number is still personal data), but a plausible date is
//! required so that phone numbers (`031-368 68 00`, `010-240 40 40`) and
//! ticket numbers survive. This module must not log, store or return the
//! identifiers it finds; it only counts them.

use regex::Regex;
use std::sync::LazyLock;

/// What replaces every identifier found. One fixed text for all kinds, so the
/// mask itself reveals nothing (not even whether it was a samordningsnummer).
pub const MASK: &str = "[personnummer]";

/// Masking cannot fail; this enum exists to keep the one-`Error`-per-module
/// convention and is never constructed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {}

/// Masked text and how many identifiers were replaced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Masked {
    /// The text with every identifier replaced by [`MASK`].
    pub text: String,
    /// How many identifiers were replaced; the incident records only this.
    pub found: u32,
}

/// Candidate shape: optional century, YYMMDD, an optional separator, four
/// digits. Dates and digit-run boundaries are checked in code because the
/// regex crate has no look-around.
static CANDIDATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:(\d{2}))?(\d{2})(\d{2})(\d{2})(?:[-+ \u{2010}\u{2011}\u{2012}\u{2013}\u{2212}]?)(\d{4})")
        .unwrap_or_else(|e| panic!("the identifier pattern is a constant and must compile: {e}"))
});

/// Replaces every personnummer and samordningsnummer in `text` by [`MASK`].
///
/// Recognised: 10 or 12 digits (`YYMMDDNNNN`, `YYYYMMDDNNNN`), with `-`, `+`
/// (age 100+), a space, a unicode dash or nothing before the last four, and a
/// day of 01–31 or 61–91 (samordningsnummer). Never matched inside a longer
/// run of digits.
pub fn mask_identifiers(text: &str) -> Masked {
    let mut out = String::with_capacity(text.len());
    let mut found = 0u32;
    let mut copied = 0usize;
    let mut pos = 0usize;
    while let Some(caps) = CANDIDATE.captures_at(text, pos) {
        let Some(whole) = caps.get(0) else { break };
        let (start, end) = (whole.start(), whole.end());
        let before_is_digit = text[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_digit());
        let after_is_digit = text[end..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit());
        let century_ok = caps
            .get(1)
            .is_none_or(|c| matches!(c.as_str(), "18" | "19" | "20"));
        let date_ok = plausible_date(&caps[3], &caps[4]);
        if !before_is_digit && !after_is_digit && century_ok && date_ok {
            out.push_str(&text[copied..start]);
            out.push_str(MASK);
            copied = end;
            pos = end;
            found += 1;
        } else {
            pos = next_char(text, start);
        }
    }
    out.push_str(&text[copied..]);
    Masked { text: out, found }
}

fn next_char(text: &str, at: usize) -> usize {
    text[at..]
        .chars()
        .next()
        .map_or(text.len(), |c| at + c.len_utf8())
}

/// Month 01–12 and day 01–31 or 61–91 (day + 60 for samordningsnummer).
fn plausible_date(month: &str, day: &str) -> bool {
    let (Ok(m), Ok(d)) = (month.parse::<u32>(), day.parse::<u32>()) else {
        return false;
    };
    (1..=12).contains(&m) && ((1..=31).contains(&d) || (61..=91).contains(&d))
}

/// Whether the last digit of a ten-digit identifier is a correct Luhn check
/// digit.
///
/// Used to tell an operator whether the number was well-formed, never to
/// decide masking: a mistyped identifier is still personal data. Accepts
/// separators; anything but exactly ten digits is `false`.
pub fn luhn_valid(ten_digits: &str) -> bool {
    let digits: Vec<u32> = ten_digits
        .chars()
        .filter(|c| !matches!(c, '-' | '+' | ' '))
        .map(|c| c.to_digit(10))
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default();
    if digits.len() != 10 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let v = if i % 2 == 0 { d * 2 } else { d };
            v / 10 + v % 10
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn masked(text: &str) -> (String, u32) {
        let m = mask_identifiers(text);
        (m.text, m.found)
    }

    #[test]
    fn every_written_form_of_a_personnummer_is_masked() {
        for id in [
            "811218-9876",
            "811218+9876",
            "811218 9876",
            "8112189876",
            "19811218-9876",
            "19811218+9876",
            "19811218 9876",
            "198112189876",
            "811218\u{2013}9876",
        ] {
            let text = format!("Patient {id} fick fel dos.");
            assert_eq!(
                masked(&text),
                (format!("Patient {MASK} fick fel dos."), 1),
                "{id}"
            );
        }
    }

    #[test]
    fn samordningsnummer_with_day_plus_sixty_are_masked() {
        assert_eq!(masked("sn 701063-2391"), (format!("sn {MASK}"), 1));
        assert_eq!(masked("sn 197010912391"), (format!("sn {MASK}"), 1));
    }

    #[test]
    fn a_wrong_check_digit_is_still_masked() {
        assert!(!luhn_valid("8112189875"));
        assert_eq!(masked("pnr 811218-9875").1, 1);
    }

    #[test]
    fn phone_and_ticket_numbers_are_left_alone() {
        for text in [
            "Ring Intraservice 031-368 68 00",
            "CERT-SE 010-240 40 40",
            "Säpo 010-568 70 00",
            "ärende 2026-001234",
            "ärende INC0012345678",
            "0102404040",
            "order 9913451234",
            "12345678901234",
            "811218-98765",
            "1811218-9876",
        ] {
            assert_eq!(masked(text), (text.to_string(), 0), "{text}");
        }
    }

    #[test]
    fn several_identifiers_next_to_text_and_punctuation_are_all_masked() {
        let (text, found) = masked("(811218-9876),19701063-2391;och 8112189876.Slut:200001019999");
        assert_eq!(found, 4, "{text}");
        assert!(!text.chars().any(|c| c.is_ascii_digit()), "{text}");
    }

    #[test]
    fn the_luhn_check_matches_known_numbers() {
        assert!(luhn_valid("8112189876"));
        assert!(luhn_valid("811218-9876"));
        assert!(!luhn_valid("811218987"));
        assert!(!luhn_valid("81121898x6"));
    }

    fn identifier() -> impl Strategy<Value = String> {
        (
            1900u32..2030,
            1u32..=12,
            1u32..=31,
            any::<bool>(),
            0u32..10_000,
            any::<bool>(),
            prop::sample::select(vec!["-", "+", " ", "", "\u{2013}"]),
        )
            .prop_map(|(year, month, day, samordning, last4, long, sep)| {
                let day = if samordning { day + 60 } else { day };
                let date = if long {
                    format!("{year:04}{month:02}{day:02}")
                } else {
                    format!("{:02}{month:02}{day:02}", year % 100)
                };
                format!("{date}{sep}{last4:04}")
            })
    }

    proptest! {
        #[test]
        fn no_generated_identifier_survives_masking(
            prefix in "[a-zA-ZåäöÅÄÖ .,:;()\n/-]{0,30}",
            id in identifier(),
            middle in "[a-zåäö .,:;]{1,10}",
            id2 in identifier(),
            suffix in "[a-zA-ZåäöÅÄÖ .,:;()\n/-]{0,30}",
        ) {
            let text = format!("{prefix}{id}{middle}{id2}{suffix}");
            let m = mask_identifiers(&text);
            prop_assert_eq!(m.found, 2, "{:?} -> {:?}", text, m.text);
            prop_assert!(!m.text.chars().any(|c| c.is_ascii_digit()), "{:?}", m.text);
        }

        #[test]
        fn masking_is_stable_when_applied_twice(text in ".{0,80}") {
            let once = mask_identifiers(&text);
            let twice = mask_identifiers(&once.text);
            prop_assert_eq!(twice.found, 0);
            prop_assert_eq!(twice.text, once.text);
        }
    }
}
