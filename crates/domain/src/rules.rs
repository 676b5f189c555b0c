//! Rule sets: criteria, duties, stages, clocks, recipients and texts as
//! versioned TOML files, loaded and validated here.
//!
//! The law moves (NIS 2018:1174 → cybersäkerhetslagen 2025:1506), so nothing
//! the law decides lives in code. Every error names the file, the key and the
//! problem, so the person editing a rule set can fix it without reading Rust.
//! Any value may be written as `{ value = …, certainty = …, source = … }` to
//! say how sure we are of it; the weakest mark reaches every deadline an
//! operator sees. This module reads files only when asked and must not
//! assess incidents.

use crate::time::{format_duration, parse_duration};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// The shipped seed routine (the default rule set).
pub const SEED_ROUTINE: &str = include_str!("../../../rules/seed-routine.toml");
/// The shipped cybersecurity-act rule set.
pub const CYBERSECURITY_ACT_2025: &str = include_str!("../../../rules/cybersecurity-act-2025.toml");

/// Why rule sets could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file or folder could not be read.
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
    /// A key is missing, unknown or has a bad value.
    #[error("{file}: {key}: {problem}")]
    Invalid {
        /// The path as given.
        file: String,
        /// The key path, e.g. `criteria[1].threshold`.
        key: String,
        /// What is wrong and how to write it instead.
        problem: String,
    },
    /// Two files declare the same rule-set id.
    #[error("{file}: id: {id:?} is already declared by {other}")]
    DuplicateId {
        /// The second file.
        file: String,
        /// The id.
        id: String,
        /// The first file.
        other: String,
    },
    /// The spec named nothing loadable.
    #[error("{spec:?}: no rule-set files found (give .toml files or folders, comma-separated)")]
    Empty {
        /// The spec as given.
        spec: String,
    },
}

/// How sure we are of a value: operators must see when a deadline rests on
/// an unverified reading of the law. Ordered from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Certainty {
    /// A single unofficial source.
    Unverified,
    /// Consistent secondary sources.
    Reported,
    /// Read in official text.
    Confirmed,
}

impl Certainty {
    /// The file and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Certainty::Unverified => "unverified",
            Certainty::Reported => "reported",
            Certainty::Confirmed => "confirmed",
        }
    }
}

/// A value in the file that carried its own certainty mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Key path of the value, e.g. `criteria[0].threshold`.
    pub key: String,
    /// Its certainty.
    pub certainty: Certainty,
    /// Where it comes from.
    pub source: Option<String>,
}

/// A free-text note in the rule set (for example a citation that looks wrong).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// The note (English or Swedish).
    pub text: String,
    /// How sure the note is.
    pub certainty: Certainty,
    /// Where it comes from.
    pub source: Option<String>,
}

/// A versioned set of criteria and duties. Several can be active at once;
/// every assessment records the id and version that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    /// Stable id, e.g. `seed-routine`.
    pub id: String,
    /// Version of this file's content; bump on every change.
    pub version: String,
    /// Swedish name shown to operators.
    pub name_sv: String,
    /// English name.
    pub name_en: String,
    /// Whether this is the default rule set when none is configured.
    pub default: bool,
    /// Certainty of the rule set as a whole (default for its values).
    pub certainty: Certainty,
    /// Source of the rule set as a whole.
    pub source: Option<String>,
    /// What "awareness" means for stages anchored on it, when the law is
    /// unclear (`identified` or `detected`).
    pub awareness: Option<Anchor>,
    /// Notes for readers, e.g. doubtful citations.
    pub notes: Vec<Note>,
    /// Every value that carried its own certainty mark.
    pub marks: Vec<Mark>,
    /// What makes an incident reportable: any one met suffices.
    pub criteria: Vec<Criterion>,
    /// What must be reported, to whom, by when.
    pub duties: Vec<Duty>,
    /// The file it came from (for errors and for operators).
    pub file: String,
}

impl RuleSet {
    /// The duty with this id.
    pub fn duty(&self, id: &str) -> Option<&Duty> {
        self.duties.iter().find(|d| d.id == id)
    }

    /// Whether the rule set has this duty and stage (to check a report).
    pub fn has_stage(&self, duty: &str, stage: &str) -> bool {
        self.duty(duty)
            .is_some_and(|d| d.stages.iter().any(|s| s.id == stage))
    }
}

/// One reportability criterion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criterion {
    /// Stable id, e.g. `care_interrupted_2h`.
    pub id: String,
    /// Swedish label.
    pub label_sv: String,
    /// English label.
    pub label_en: String,
    /// How it is decided.
    pub kind: CriterionKind,
    /// Weakest certainty of the criterion and its values.
    pub certainty: Certainty,
    /// Where it comes from.
    pub source: Option<String>,
}

/// How a criterion is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CriterionKind {
    /// Met when the disruption, measured from its start, lasts long enough.
    Duration {
        /// The length that must be reached.
        threshold: Duration,
        /// Whether reaching it exactly suffices.
        comparison: Comparison,
        /// A further fact that must hold.
        requires: Option<Requirement>,
    },
    /// Met only by an operator's confirmation of a fact.
    Judgement {
        /// The fact the operator confirms.
        fact: JudgedFact,
    },
}

/// Whether a duration threshold is inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Duration ≥ threshold ("2 hours or more").
    AtLeast,
    /// Duration > threshold ("more than 1 h"); met one second after.
    MoreThan,
}

/// A fact a duration criterion additionally needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    /// Intended care measures could not be carried out.
    CareBlocked,
}

/// A fact that only a person can establish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgedFact {
    /// Serious care injury occurred or was risked (`risk` or `occurred`).
    PatientHarm,
    /// The incident concerns security-sensitive activity.
    SecurityProtection,
    /// Personal data were exposed, lost or altered.
    PersonalDataBreach,
    /// Care measures were blocked.
    CareBlocked,
}

impl JudgedFact {
    /// The file name of the fact.
    pub fn as_str(self) -> &'static str {
        match self {
            JudgedFact::PatientHarm => "patient_harm",
            JudgedFact::SecurityProtection => "security_protection",
            JudgedFact::PersonalDataBreach => "personal_data_breach",
            JudgedFact::CareBlocked => "care_blocked",
        }
    }
}

/// What starts a duty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Any criterion of the rule set is met.
    Reportable,
    /// An operator confirmed a personal-data breach.
    PersonalDataBreach,
    /// An operator confirmed patient harm (risk or occurred).
    PatientHarm,
    /// An operator confirmed a security-protection incident.
    SecurityProtection,
}

/// A reporting duty with its stages (the NIS stages, IMY, IVO, Säpo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duty {
    /// `nis`, `personal_data`, `lex_maria`, `security_protection`, …
    pub id: String,
    /// Swedish label.
    pub label_sv: String,
    /// English label.
    pub label_en: String,
    /// Who receives the reports (Swedish).
    pub recipient_sv: String,
    /// Who receives the reports (English).
    pub recipient_en: String,
    /// What starts the duty.
    pub trigger: Trigger,
    /// Certainty of the duty as a whole.
    pub certainty: Certainty,
    /// Where it comes from.
    pub source: Option<String>,
    /// The stages, each with its own clock.
    pub stages: Vec<Stage>,
}

/// One report with its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Stable id, e.g. `1` or `early_warning`.
    pub id: String,
    /// Swedish label (`Skede 1`).
    pub label_sv: String,
    /// English label (`Stage 1`).
    pub label_en: String,
    /// Time from the anchor to the deadline.
    pub due: Duration,
    /// The moment the clock starts.
    pub anchor: Anchor,
    /// When to warn before the deadline.
    pub warn_before: Vec<Lead>,
    /// How often to repeat once overdue.
    pub overdue_every: Option<Duration>,
    /// Where to report (Swedish).
    pub channel_sv: String,
    /// Where to report (English).
    pub channel_en: String,
    /// What to do (Swedish).
    pub instructions_sv: String,
    /// What to do (English).
    pub instructions_en: String,
    /// The deadline is the organisation's own target, not the law's number.
    pub internal_target: bool,
    /// Weakest certainty of the stage, its values and its anchor.
    pub certainty: Certainty,
    /// Where it comes from.
    pub source: Option<String>,
}

/// The moment a stage's clock starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Anchor {
    /// When the incident was identified as reportable under this rule set.
    Identified,
    /// When nisvakt first learned of the incident (first ticket accepted).
    Detected,
    /// When an operator confirmed the duty's trigger fact.
    Confirmed,
    /// When the duty's first stage was reported; until then provisional,
    /// counted from that stage's deadline.
    FirstReport,
    /// When the named stage of the same duty was reported (provisional as
    /// above until then).
    Report(String),
}

impl Anchor {
    /// The name written in files and shown in deadlines.
    pub fn name(&self) -> String {
        match self {
            Anchor::Identified => "identified".into(),
            Anchor::Detected => "detected".into(),
            Anchor::Confirmed => "confirmed".into(),
            Anchor::FirstReport => "first_report".into(),
            Anchor::Report(s) => format!("report:{s}"),
        }
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A warning lead before a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lead {
    /// This share (1–99 %) of the anchor-to-deadline span before the deadline;
    /// `50%` is half time.
    Percent(u32),
    /// This long before the deadline.
    Before(Duration),
}

impl fmt::Display for Lead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lead::Percent(p) => write!(f, "{p}%"),
            Lead::Before(d) => f.write_str(&format_duration(*d)),
        }
    }
}

/// Loads and validates one rule-set file.
pub fn load_file(path: impl AsRef<Path>) -> Result<RuleSet, Error> {
    let file = path.as_ref().display().to_string();
    let text = std::fs::read_to_string(path.as_ref()).map_err(|source| Error::Read {
        file: file.clone(),
        source,
    })?;
    parse(&text, &file)
}

/// Loads every rule set named by `spec`: a comma-separated list of files and
/// folders (a folder contributes every `*.toml` in it except `lexicon.toml`,
/// sorted by name); the word `builtin` stands for the shipped files. Rejects
/// two rule sets with the same id.
pub fn load_spec(spec: &str) -> Result<Vec<RuleSet>, Error> {
    let mut sets = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part == "builtin" {
            sets.extend(builtin());
            continue;
        }
        let path = PathBuf::from(part);
        if path.is_dir() {
            let entries = std::fs::read_dir(&path).map_err(|source| Error::Read {
                file: part.to_string(),
                source,
            })?;
            let mut files = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|source| Error::Read {
                    file: part.to_string(),
                    source,
                })?;
                let p = entry.path();
                let is_toml = p.extension().is_some_and(|e| e == "toml");
                let is_lexicon = p.file_name().is_some_and(|n| n == "lexicon.toml");
                if is_toml && !is_lexicon && p.is_file() {
                    files.push(p);
                }
            }
            files.sort();
            for f in files {
                sets.push(load_file(f)?);
            }
        } else {
            sets.push(load_file(&path)?);
        }
    }
    if sets.is_empty() {
        return Err(Error::Empty {
            spec: spec.to_string(),
        });
    }
    check_unique(&sets)?;
    Ok(sets)
}

/// Rejects two rule sets with the same id: assessments are keyed by it.
pub fn check_unique(sets: &[RuleSet]) -> Result<(), Error> {
    for (i, s) in sets.iter().enumerate() {
        if let Some(first) = sets[..i].iter().find(|o| o.id == s.id) {
            return Err(Error::DuplicateId {
                file: s.file.clone(),
                id: s.id.clone(),
                other: first.file.clone(),
            });
        }
    }
    Ok(())
}

/// The two shipped rule sets, embedded: the seed routine (default) first.
///
/// # Panics
/// Never in a released build: a test proves both embedded files load.
pub fn builtin() -> Vec<RuleSet> {
    [
        (SEED_ROUTINE, "rules/seed-routine.toml"),
        (CYBERSECURITY_ACT_2025, "rules/cybersecurity-act-2025.toml"),
    ]
    .into_iter()
    .map(|(text, file)| {
        parse(text, file).unwrap_or_else(|e| panic!("a shipped rule set is broken: {e}"))
    })
    .collect()
}

/// Parses rule-set text; `file` names its origin in errors.
pub fn parse(text: &str, file: &str) -> Result<RuleSet, Error> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::Toml {
        file: file.to_string(),
        message: e.to_string().trim().to_string(),
    })?;
    let mut marks = Vec::new();
    let root = Obj {
        t: &table,
        path: String::new(),
        file,
    };
    root.allow(&[
        "id",
        "version",
        "name_sv",
        "name_en",
        "default",
        "certainty",
        "source",
        "awareness",
        "notes",
        "criteria",
        "duties",
    ])?;
    let id = root.string("id", &mut marks)?;
    // Ids end up in deadline ids, KV keys and NATS subjects: no dots.
    if !id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'))
    {
        return Err(root.invalid("id", format!("{id:?} may only use a-z, 0-9, '-' and '_'")));
    }
    let version = root.string("version", &mut marks)?;
    let name_sv = root.string("name_sv", &mut marks)?;
    let name_en = root.string("name_en", &mut marks)?;
    let default = root.opt_bool("default")?.unwrap_or(false);
    let certainty = root.certainty("certainty")?.ok_or_else(|| {
        root.invalid(
            "certainty",
            "is required (confirmed, reported or unverified)".into(),
        )
    })?;
    let source = root.opt_string("source", &mut marks)?;
    let mut awareness_certainty = certainty;
    let awareness = match root.opt_string("awareness", &mut marks)? {
        None => None,
        Some(a) => {
            if let Some(m) = marks.iter().find(|m| m.key == "awareness") {
                awareness_certainty = m.certainty;
            }
            Some(match a.as_str() {
                "identified" => Anchor::Identified,
                "detected" => Anchor::Detected,
                other => {
                    return Err(root.invalid(
                        "awareness",
                        format!(
                            "{other:?} is not an awareness moment (use identified or detected)"
                        ),
                    ));
                }
            })
        }
    };

    let mut notes = Vec::new();
    for n in root.tables("notes")? {
        n.allow(&["text", "certainty", "source"])?;
        notes.push(Note {
            text: n.string("text", &mut marks)?,
            certainty: n.certainty("certainty")?.unwrap_or(certainty),
            source: n.opt_string("source", &mut marks)?,
        });
    }

    let mut criteria: Vec<Criterion> = Vec::new();
    for c in root.tables("criteria")? {
        c.allow(&[
            "id",
            "kind",
            "label_sv",
            "label_en",
            "threshold",
            "comparison",
            "requires",
            "fact",
            "certainty",
            "source",
        ])?;
        let cid = c.string("id", &mut marks)?;
        if !is_slug(&cid) {
            return Err(c.invalid("id", format!("{cid:?} may only use a-z, 0-9 and '_'")));
        }
        if criteria.iter().any(|o| o.id == cid) {
            return Err(c.invalid("id", format!("{cid:?} is used by two criteria")));
        }
        let kind = match c.string("kind", &mut marks)?.as_str() {
            "duration" => {
                c.forbid(&["fact"], "a duration criterion")?;
                let threshold = c.duration("threshold", &mut marks)?.ok_or_else(|| {
                    c.invalid(
                        "threshold",
                        "is required for a duration criterion (e.g. \"2h\")".into(),
                    )
                })?;
                if threshold <= Duration::zero() {
                    return Err(c.invalid("threshold", "must be longer than zero".into()));
                }
                let comparison = match c.opt_string("comparison", &mut marks)?.as_deref() {
                    None | Some("at_least") => Comparison::AtLeast,
                    Some("more_than") => Comparison::MoreThan,
                    Some(other) => {
                        return Err(c.invalid(
                            "comparison",
                            format!("{other:?} is not a comparison (use at_least or more_than)"),
                        ));
                    }
                };
                let requires = match c.opt_string("requires", &mut marks)?.as_deref() {
                    None => None,
                    Some("care_blocked") => Some(Requirement::CareBlocked),
                    Some(other) => {
                        return Err(c.invalid(
                            "requires",
                            format!("{other:?} is not a requirement (use care_blocked)"),
                        ));
                    }
                };
                CriterionKind::Duration {
                    threshold,
                    comparison,
                    requires,
                }
            }
            "judgement" => {
                c.forbid(
                    &["threshold", "comparison", "requires"],
                    "a judgement criterion",
                )?;
                let fact = match c.string("fact", &mut marks)?.as_str() {
                    "patient_harm" => JudgedFact::PatientHarm,
                    "security_protection" => JudgedFact::SecurityProtection,
                    "personal_data_breach" => JudgedFact::PersonalDataBreach,
                    "care_blocked" => JudgedFact::CareBlocked,
                    other => {
                        return Err(c.invalid(
                            "fact",
                            format!(
                                "{other:?} is not a fact an operator confirms (use patient_harm, \
                                 security_protection, personal_data_breach or care_blocked)"
                            ),
                        ));
                    }
                };
                CriterionKind::Judgement { fact }
            }
            other => {
                return Err(c.invalid(
                    "kind",
                    format!("{other:?} is not a criterion kind (use duration or judgement)"),
                ));
            }
        };
        let own = c.certainty("certainty")?.unwrap_or(certainty);
        criteria.push(Criterion {
            label_sv: c.string("label_sv", &mut marks)?,
            label_en: c.string("label_en", &mut marks)?,
            kind,
            source: c.opt_string("source", &mut marks)?,
            certainty: weakest(own, &marks, &c.path),
            id: cid,
        });
    }

    let mut duties: Vec<Duty> = Vec::new();
    let duty_tables = root.tables("duties")?;
    if duty_tables.is_empty() {
        return Err(root.invalid("duties", "at least one [[duties]] block is required".into()));
    }
    for d in duty_tables {
        d.allow(&[
            "id",
            "trigger",
            "label_sv",
            "label_en",
            "recipient_sv",
            "recipient_en",
            "certainty",
            "source",
            "stages",
        ])?;
        let did = d.string("id", &mut marks)?;
        if !is_slug(&did) {
            return Err(d.invalid("id", format!("{did:?} may only use a-z, 0-9 and '_'")));
        }
        if duties.iter().any(|o| o.id == did) {
            return Err(d.invalid("id", format!("{did:?} is used by two duties")));
        }
        let trigger = match d.string("trigger", &mut marks)?.as_str() {
            "reportable" => Trigger::Reportable,
            "personal_data_breach" => Trigger::PersonalDataBreach,
            "patient_harm" => Trigger::PatientHarm,
            "security_protection" => Trigger::SecurityProtection,
            other => {
                return Err(d.invalid(
                    "trigger",
                    format!(
                        "{other:?} is not a trigger (use reportable, personal_data_breach, \
                         patient_harm or security_protection)"
                    ),
                ));
            }
        };
        let duty_certainty = d.certainty("certainty")?.unwrap_or(certainty);
        let mut stages: Vec<Stage> = Vec::new();
        let stage_tables = d.tables("stages")?;
        if stage_tables.is_empty() {
            return Err(d.invalid(
                "stages",
                "at least one [[duties.stages]] block is required".into(),
            ));
        }
        for s in stage_tables {
            s.allow(&[
                "id",
                "label_sv",
                "label_en",
                "due",
                "anchor",
                "warn_before",
                "overdue_every",
                "channel_sv",
                "channel_en",
                "instructions_sv",
                "instructions_en",
                "internal_target",
                "certainty",
                "source",
            ])?;
            let sid = s.string("id", &mut marks)?;
            if !is_slug(&sid) {
                return Err(s.invalid("id", format!("{sid:?} may only use a-z, 0-9 and '_'")));
            }
            if stages.iter().any(|o| o.id == sid) {
                return Err(s.invalid("id", format!("{sid:?} is used by two stages of this duty")));
            }
            let due = s
                .duration("due", &mut marks)?
                .ok_or_else(|| s.invalid("due", "is required (e.g. \"6h\")".into()))?;
            if due <= Duration::zero() {
                return Err(s.invalid("due", "must be longer than zero".into()));
            }
            let anchor_text = s.string("anchor", &mut marks)?;
            let mut stage_certainty = weakest(
                s.certainty("certainty")?.unwrap_or(duty_certainty),
                &marks,
                &s.path,
            );
            let anchor = match anchor_text.as_str() {
                "identified" | "awareness" if trigger != Trigger::Reportable => {
                    return Err(s.invalid(
                        "anchor",
                        format!(
                            "{anchor_text:?} needs trigger = \"reportable\"; a confirmed duty \
                             counts from \"confirmed\""
                        ),
                    ));
                }
                "confirmed" if trigger == Trigger::Reportable => {
                    return Err(s.invalid(
                        "anchor",
                        "\"confirmed\" needs a confirmed trigger; a reportable duty counts from \
                         \"identified\", \"awareness\" or \"detected\""
                            .into(),
                    ));
                }
                "identified" => Anchor::Identified,
                "detected" => Anchor::Detected,
                "confirmed" => Anchor::Confirmed,
                "awareness" => {
                    stage_certainty = stage_certainty.min(awareness_certainty);
                    awareness.clone().ok_or_else(|| {
                        s.invalid(
                            "anchor",
                            "\"awareness\" needs a top-level awareness = \"identified\" or \"detected\""
                                .into(),
                        )
                    })?
                }
                "first_report" => {
                    if stages.is_empty() {
                        return Err(s.invalid(
                            "anchor",
                            "\"first_report\" cannot anchor the duty's first stage on itself"
                                .into(),
                        ));
                    }
                    Anchor::FirstReport
                }
                other => match other.strip_prefix("report:") {
                    Some(prev) if stages.iter().any(|p| p.id == prev) => {
                        Anchor::Report(prev.to_string())
                    }
                    Some(prev) => {
                        return Err(s.invalid(
                            "anchor",
                            format!("\"report:{prev}\" must name an earlier stage of this duty"),
                        ));
                    }
                    None => {
                        return Err(s.invalid(
                            "anchor",
                            format!(
                                "{other:?} is not an anchor (use identified, awareness, detected, \
                                 confirmed, first_report or report:<stage>)"
                            ),
                        ));
                    }
                },
            };
            let mut warn_before = Vec::new();
            for (i, lead) in s.string_list("warn_before")?.into_iter().enumerate() {
                let key = format!("warn_before[{i}]");
                let parsed = match lead.strip_suffix('%') {
                    Some(p) => match p.trim().parse::<u32>() {
                        Ok(p) if (1..=99).contains(&p) => Lead::Percent(p),
                        _ => {
                            return Err(s.invalid(
                                &key,
                                format!("{lead:?} is not a share between 1% and 99%"),
                            ));
                        }
                    },
                    None => {
                        let d =
                            parse_duration(&lead).map_err(|e| s.invalid(&key, e.to_string()))?;
                        if d <= Duration::zero() {
                            return Err(s.invalid(&key, "must be longer than zero".into()));
                        }
                        Lead::Before(d)
                    }
                };
                warn_before.push(parsed);
            }
            let overdue_every = s.duration("overdue_every", &mut marks)?;
            if overdue_every.is_some_and(|d| d <= Duration::zero()) {
                return Err(s.invalid("overdue_every", "must be longer than zero".into()));
            }
            stages.push(Stage {
                label_sv: s.string("label_sv", &mut marks)?,
                label_en: s.string("label_en", &mut marks)?,
                due,
                anchor,
                warn_before,
                overdue_every,
                channel_sv: s.string("channel_sv", &mut marks)?,
                channel_en: s.string("channel_en", &mut marks)?,
                instructions_sv: s.string("instructions_sv", &mut marks)?,
                instructions_en: s.string("instructions_en", &mut marks)?,
                internal_target: s.opt_bool("internal_target")?.unwrap_or(false),
                source: s.opt_string("source", &mut marks)?,
                certainty: weakest(stage_certainty, &marks, &s.path),
                id: sid,
            });
        }
        duties.push(Duty {
            label_sv: d.string("label_sv", &mut marks)?,
            label_en: d.string("label_en", &mut marks)?,
            recipient_sv: d.string("recipient_sv", &mut marks)?,
            recipient_en: d.string("recipient_en", &mut marks)?,
            trigger,
            source: d.opt_string("source", &mut marks)?,
            certainty: weakest(
                duty_certainty,
                &marks
                    .iter()
                    .filter(|m| !m.key.starts_with(&format!("{}.stages", d.path)))
                    .cloned()
                    .collect::<Vec<_>>(),
                &d.path,
            ),
            stages,
            id: did,
        });
    }
    // Marks on the duty's own keys (recipient, label) also weaken its stages.
    for duty in &mut duties {
        for stage in &mut duty.stages {
            stage.certainty = stage.certainty.min(duty.certainty);
        }
    }

    Ok(RuleSet {
        id,
        version,
        name_sv,
        name_en,
        default,
        certainty,
        source,
        awareness,
        notes,
        marks,
        criteria,
        duties,
        file: file.to_string(),
    })
}

/// Ids of criteria, duties and stages: they appear in deadline ids, KV keys
/// and NATS subjects.
fn is_slug(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The weakest of `own` and every mark on a key under `path`.
fn weakest(own: Certainty, marks: &[Mark], path: &str) -> Certainty {
    marks
        .iter()
        .filter(|m| {
            m.key
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('.'))
        })
        .map(|m| m.certainty)
        .fold(own, Certainty::min)
}

/// A table in the file with its key path, for precise errors.
struct Obj<'a> {
    t: &'a toml::Table,
    path: String,
    file: &'a str,
}

impl<'a> Obj<'a> {
    fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn invalid(&self, key: &str, problem: String) -> Error {
        Error::Invalid {
            file: self.file.to_string(),
            key: self.key(key),
            problem,
        }
    }

    /// Rejects unknown keys, so that a typo (`treshold`) is not silently
    /// ignored.
    fn allow(&self, keys: &[&str]) -> Result<(), Error> {
        match self.t.keys().find(|k| !keys.contains(&k.as_str())) {
            Some(k) => Err(self.invalid(
                k,
                format!("unknown key (allowed here: {})", keys.join(", ")),
            )),
            None => Ok(()),
        }
    }

    fn forbid(&self, keys: &[&str], what: &str) -> Result<(), Error> {
        match keys.iter().find(|k| self.t.contains_key(**k)) {
            Some(k) => Err(self.invalid(k, format!("does not apply to {what}"))),
            None => Ok(()),
        }
    }

    /// The raw value, unwrapping `{ value, certainty, source }` and recording
    /// the mark.
    fn value(&self, key: &str, marks: &mut Vec<Mark>) -> Result<Option<&'a toml::Value>, Error> {
        let Some(v) = self.t.get(key) else {
            return Ok(None);
        };
        let toml::Value::Table(inner) = v else {
            return Ok(Some(v));
        };
        let at = Obj {
            t: inner,
            path: self.key(key),
            file: self.file,
        };
        at.allow(&["value", "certainty", "source"])?;
        let value = inner.get("value").ok_or_else(|| {
            at.invalid(
                "value",
                "is required when a value is written as { value = …, certainty = …, source = … }"
                    .into(),
            )
        })?;
        let certainty = at.certainty("certainty")?.ok_or_else(|| {
            at.invalid(
                "certainty",
                "is required in a marked value (confirmed, reported or unverified)".into(),
            )
        })?;
        let source = match inner.get("source") {
            None => None,
            Some(toml::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(at.invalid("source", "must be a string".into())),
        };
        marks.push(Mark {
            key: self.key(key),
            certainty,
            source,
        });
        Ok(Some(value))
    }

    fn opt_string(&self, key: &str, marks: &mut Vec<Mark>) -> Result<Option<String>, Error> {
        match self.value(key, marks)? {
            None => Ok(None),
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
            Some(toml::Value::String(_)) => Err(self.invalid(key, "must not be empty".into())),
            Some(other) => {
                Err(self.invalid(key, format!("must be a string, not {}", other.type_str())))
            }
        }
    }

    fn string(&self, key: &str, marks: &mut Vec<Mark>) -> Result<String, Error> {
        self.opt_string(key, marks)?
            .ok_or_else(|| self.invalid(key, "is required".into()))
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>, Error> {
        match self.t.get(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(self.invalid(
                key,
                format!("must be true or false, not {}", other.type_str()),
            )),
        }
    }

    fn certainty(&self, key: &str) -> Result<Option<Certainty>, Error> {
        match self.t.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => match s.as_str() {
                "confirmed" => Ok(Some(Certainty::Confirmed)),
                "reported" => Ok(Some(Certainty::Reported)),
                "unverified" => Ok(Some(Certainty::Unverified)),
                other => Err(self.invalid(
                    key,
                    format!("{other:?} is not a certainty (use confirmed, reported or unverified)"),
                )),
            },
            Some(other) => {
                Err(self.invalid(key, format!("must be a string, not {}", other.type_str())))
            }
        }
    }

    fn duration(&self, key: &str, marks: &mut Vec<Mark>) -> Result<Option<Duration>, Error> {
        match self.value(key, marks)? {
            None => Ok(None),
            Some(toml::Value::String(s)) => parse_duration(s)
                .map(Some)
                .map_err(|e| self.invalid(key, e.to_string())),
            Some(other) => Err(self.invalid(
                key,
                format!(
                    "must be a duration string like \"2h\", not {} (use 15m, 2h, 28d)",
                    other.type_str()
                ),
            )),
        }
    }

    fn string_list(&self, key: &str) -> Result<Vec<String>, Error> {
        match self.t.get(key) {
            None => Ok(Vec::new()),
            Some(toml::Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    toml::Value::String(s) => Ok(s.trim().to_string()),
                    _ => Err(self.invalid(&format!("{key}[{i}]"), "must be a string".into())),
                })
                .collect(),
            Some(_) => Err(self.invalid(key, "must be a list of strings".into())),
        }
    }

    fn tables(&self, key: &str) -> Result<Vec<Obj<'a>>, Error> {
        match self.t.get(key) {
            None => Ok(Vec::new()),
            Some(toml::Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    toml::Value::Table(t) => Ok(Obj {
                        t,
                        path: format!("{}[{i}]", self.key(key)),
                        file: self.file,
                    }),
                    _ => Err(self.invalid(&format!("{key}[{i}]"), "must be a table".into())),
                })
                .collect(),
            Some(_) => Err(self.invalid(
                key,
                format!("must be a list of tables ([[{}]])", self.key(key)),
            )),
        }
    }
}

/// Every stage id of every duty, for error messages and console menus.
pub fn stage_ids(set: &RuleSet) -> BTreeSet<(String, String)> {
    set.duties
        .iter()
        .flat_map(|d| d.stages.iter().map(|s| (d.id.clone(), s.id.clone())))
        .collect()
}
