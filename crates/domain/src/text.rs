//! Swedish text recognition: the "Eventuell NIS-incident" marker, the
//! category a ticket is about, and words that suggest patient harm.
//!
//! The word lists are data (`rules/lexicon.toml`, embedded as the default).
//! Recognition only raises questions and guesses categories; it must never
//! decide reportability, and it reads no files except when asked to load a
//! lexicon.

use crate::ticket::Category;
use regex::Regex;
use std::path::Path;
use std::sync::LazyLock;

/// The shipped lexicon, embedded so that a service runs without a rules
/// folder.
pub const DEFAULT_LEXICON: &str = include_str!("../../../rules/lexicon.toml");

/// Why a lexicon could not be loaded; each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The path as given.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("{file}: not valid TOML: {message}")]
    Toml {
        /// The path as given.
        file: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key is missing or has a bad value.
    #[error("{file}: {key}: {problem}")]
    Invalid {
        /// The path as given.
        file: String,
        /// The key, e.g. `category[2].id`.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// Word lists for category inference and harm signals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lexicon {
    /// The file's `version`, recorded so a changed guess can be explained.
    pub version: String,
    /// Categories in priority order with their normalised words.
    pub categories: Vec<(Category, Vec<String>)>,
    /// Normalised patient-harm signal words and phrases.
    pub harm_signals: Vec<String>,
}

impl Lexicon {
    /// The shipped Swedish lexicon.
    ///
    /// # Panics
    /// Never in a released build: a test proves the embedded file parses.
    pub fn default_sv() -> Lexicon {
        Lexicon::parse(DEFAULT_LEXICON, "rules/lexicon.toml (embedded)")
            .unwrap_or_else(|e| panic!("the embedded lexicon is broken: {e}"))
    }

    /// Loads a lexicon file with the same shape as `rules/lexicon.toml`.
    pub fn load(path: impl AsRef<Path>) -> Result<Lexicon, Error> {
        let file = path.as_ref().display().to_string();
        let text = std::fs::read_to_string(path.as_ref()).map_err(|source| Error::Read {
            file: file.clone(),
            source,
        })?;
        Lexicon::parse(&text, &file)
    }

    /// Parses lexicon text; `file` names the origin in errors.
    pub fn parse(text: &str, file: &str) -> Result<Lexicon, Error> {
        let invalid = |key: &str, problem: &str| Error::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            problem: problem.to_string(),
        };
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::Toml {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        for key in table.keys() {
            if !matches!(key.as_str(), "version" | "category" | "signals") {
                return Err(invalid(key, "unknown key (use version, category, signals)"));
            }
        }
        let version = match table.get("version") {
            Some(toml::Value::String(v)) if !v.trim().is_empty() => v.clone(),
            Some(_) => return Err(invalid("version", "must be a non-empty string")),
            None => return Err(invalid("version", "is required")),
        };
        let words = |key: &str, value: Option<&toml::Value>| -> Result<Vec<String>, Error> {
            let Some(toml::Value::Array(items)) = value else {
                return Err(invalid(key, "must be a list of strings"));
            };
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    toml::Value::String(w) if !normalise(w).is_empty() => Ok(normalise(w)),
                    _ => Err(invalid(
                        &format!("{key}[{i}]"),
                        "must be a non-empty string",
                    )),
                })
                .collect()
        };
        let mut categories = Vec::new();
        let Some(toml::Value::Array(blocks)) = table.get("category") else {
            return Err(invalid(
                "category",
                "at least one [[category]] block is required",
            ));
        };
        for (i, block) in blocks.iter().enumerate() {
            let at = format!("category[{i}]");
            let Some(block) = block.as_table() else {
                return Err(invalid(&at, "must be a table"));
            };
            let id = match block.get("id") {
                Some(toml::Value::String(id)) => id
                    .parse::<Category>()
                    .map_err(|p| invalid(&format!("{at}.id"), &p))?,
                _ => return Err(invalid(&format!("{at}.id"), "is required (a category id)")),
            };
            if categories.iter().any(|(c, _)| *c == id) {
                return Err(invalid(
                    &format!("{at}.id"),
                    &format!("{id} is listed twice"),
                ));
            }
            categories.push((id, words(&format!("{at}.words"), block.get("words"))?));
        }
        let harm_signals = match table.get("signals") {
            Some(toml::Value::Table(s)) => words("signals.patient_harm", s.get("patient_harm"))?,
            _ => return Err(invalid("signals.patient_harm", "is required")),
        };
        Ok(Lexicon {
            version,
            categories,
            harm_signals,
        })
    }

    /// Guesses the category from Swedish words, for tickets that have none.
    ///
    /// The first category (in file order) with any word match wins; `None`
    /// when nothing matches.
    pub fn infer_category(&self, text: &str) -> Option<Category> {
        let text = normalise(text);
        self.categories
            .iter()
            .find(|(_, words)| words.iter().any(|w| contains_word_start(&text, w)))
            .map(|(c, _)| *c)
    }

    /// Whether the text contains a word suggesting patient harm. Raises
    /// "needs assessment" only.
    pub fn harm_signals(&self, text: &str) -> bool {
        let text = normalise(text);
        self.harm_signals
            .iter()
            .any(|w| contains_word_start(&text, w))
    }
}

impl Default for Lexicon {
    fn default() -> Self {
        Lexicon::default_sv()
    }
}

/// Lower-cases, maps every kind of dash to `-` and collapses whitespace, so
/// that "NIS‐incident", "nis-incident" and "NIS  -  incident" compare alike.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        let c = match c {
            '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
            | '\u{2212}' | '\u{FE63}' | '\u{FF0D}' => '-',
            '\u{00AD}' => continue,
            c => c,
        };
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Whether `word` occurs in `text` at the start of a word (a stem match).
fn contains_word_start(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        text[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric())
    })
}

static SUSPECTED_NIS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\beventuell[\s\-_:.]*nis[\s\-_:.]*incident")
        .unwrap_or_else(|e| panic!("the NIS marker pattern is a constant and must compile: {e}"))
});

/// Whether a subject carries the routine's marker "Eventuell NIS-incident",
/// however it is cased, spaced or hyphenated ("eventuell nis incident",
/// "EVENTUELL NIS‐INCIDENT", "Eventuell NISincident").
pub fn is_suspected_nis(subject: &str) -> bool {
    SUSPECTED_NIS.is_match(&normalise(subject))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nis_marker_is_recognised_in_every_spelling() {
        for s in [
            "Eventuell NIS-incident",
            "eventuell nis incident",
            "EVENTUELL NIS\u{2010}INCIDENT",
            "Eventuell NISincident",
            "Eventuell   NIS -  incident: journalen nere",
            "Re: eventuell nis_incident",
            "Journal nere - Eventuell NIS\u{2013}Incident",
            "eventuell\u{00A0}NIS-incident",
        ] {
            assert!(is_suspected_nis(s), "{s}");
        }
        for s in [
            "NIS-incident",
            "journalen nere",
            "eventuellt nisse incident",
            "Oeventuell NIS-incident",
        ] {
            assert!(!is_suspected_nis(s), "{s}");
        }
    }

    #[test]
    fn categories_are_inferred_from_swedish_words() {
        let lex = Lexicon::default_sv();
        let cases = [
            ("Journalen går inte att öppna", Some(Category::RecordSystem)),
            (
                "Kan inte logga in i journalsystemet",
                Some(Category::RecordSystem),
            ),
            ("Outlook startar inte", Some(Category::Email)),
            ("E-posten är nere", Some(Category::Email)),
            ("Mejlen fungerar inte", Some(Category::Email)),
            ("Växeln svarar inte", Some(Category::Telephony)),
            ("Mobilen kan inte ringa ut", Some(Category::Telephony)),
            ("IP-telefoni nere", Some(Category::Telephony)),
            ("Nätverket är nere på enheten", Some(Category::Network)),
            ("Inget wifi", Some(Category::Network)),
            ("Inloggningen fungerar inte", Some(Category::Login)),
            ("Glömt lösenord", Some(Category::Login)),
            (
                "Planeringen visar inga besök",
                Some(Category::PlanningSystem),
            ),
            ("Skrivaren har slut på papper", None),
        ];
        for (text, want) in cases {
            assert_eq!(lex.infer_category(text), want, "{text}");
        }
    }

    #[test]
    fn harm_words_are_signals_and_others_are_not() {
        let lex = Lexicon::default_sv();
        assert!(lex.harm_signals("Patienten fick fel läkemedel"));
        assert!(lex.harm_signals("Risk för VÅRDSKADA"));
        assert!(lex.harm_signals("brukaren fick inte sin medicin i tid"));
        assert!(!lex.harm_signals("Outlook är långsamt"));
    }

    #[test]
    fn a_lexicon_file_with_problems_is_rejected_with_the_key() {
        let bad = [
            (
                "version = 1\n[[category]]\nid='email'\nwords=['x']\n[signals]\npatient_harm=['y']",
                "version",
            ),
            (
                "version = 'v'\n[[category]]\nid='printer'\nwords=['x']\n[signals]\npatient_harm=['y']",
                "category[0].id",
            ),
            (
                "version = 'v'\n[[category]]\nid='email'\nwords=['']\n[signals]\npatient_harm=['y']",
                "category[0].words[0]",
            ),
            (
                "version = 'v'\n[[category]]\nid='email'\nwords=['x']\n",
                "signals.patient_harm",
            ),
            ("version = 'v'\nwrods = 1", "wrods"),
        ];
        for (text, key) in bad {
            let err = Lexicon::parse(text, "x.toml").unwrap_err().to_string();
            assert!(err.starts_with(&format!("x.toml: {key}:")), "{err}");
        }
        let err = Lexicon::parse("version = ", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.toml: not valid TOML"), "{err}");
    }
}
