//! Alert texts: fills the templates in `templates/` from the wire types.
//!
//! Pure: takes an [`Incident`] (and a [`Firing`] for clock events) and
//! returns a title and a body, Swedish first, English available. Every word
//! comes from the template files and every channel, address and instruction
//! from the rule set through the incident's deadlines. This module must not
//! read the clock, hard-code regulatory text, or carry a personal
//! identifier: it never uses reporter data or free ticket text, and a last
//! pass masks anything that still looks like a personnummer.

use std::{collections::HashMap, fmt, path::Path, str::FromStr, sync::OnceLock};

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Europe::Stockholm;
use nisvakt_proto::v1::{
    Deadline, DeadlineStatus, Firing, FiringKind, Incident, IncidentStatus, Severity, TimerKind,
    TimerOverdueWatchdog,
};
use prost_types::Timestamp;

/// Why an alert is raised. The string ids are part of the contract
/// (`Alert.reason`) and name the template files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertReason {
    /// A ticket said "Eventuell NIS-incident".
    SuspectedNis,
    /// Something only a person can decide is open.
    NeedsAssessment,
    /// A rule set found the incident reportable: what to do now.
    Reportable,
    /// A deadline is near.
    Warning,
    /// A deadline is here.
    Due,
    /// A deadline has passed without a report.
    Overdue,
    /// A clock failed to fire on time: people must watch by hand.
    Watchdog,
}

impl AlertReason {
    /// Every reason, in the order of the incident's life.
    pub const ALL: [AlertReason; 7] = [
        AlertReason::SuspectedNis,
        AlertReason::NeedsAssessment,
        AlertReason::Reportable,
        AlertReason::Warning,
        AlertReason::Due,
        AlertReason::Overdue,
        AlertReason::Watchdog,
    ];

    /// The stable id used on the wire, in routing files and template names.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertReason::SuspectedNis => "suspected_nis",
            AlertReason::NeedsAssessment => "needs_assessment",
            AlertReason::Reportable => "reportable",
            AlertReason::Warning => "warning",
            AlertReason::Due => "due",
            AlertReason::Overdue => "overdue",
            AlertReason::Watchdog => "watchdog",
        }
    }

    /// How loud the alert is: the closer to a missed duty, the louder.
    pub const fn severity(self) -> Severity {
        match self {
            AlertReason::SuspectedNis | AlertReason::NeedsAssessment => Severity::Warning,
            AlertReason::Reportable | AlertReason::Warning => Severity::High,
            AlertReason::Due | AlertReason::Overdue | AlertReason::Watchdog => Severity::Critical,
        }
    }
}

impl fmt::Display for AlertReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlertReason {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AlertReason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == s)
            .ok_or_else(|| Error::UnknownReason(s.to_owned()))
    }
}

/// The language of a rendered text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// Swedish: the language people act on.
    Sv,
    /// English.
    En,
}

impl Lang {
    /// Both languages, Swedish first.
    pub const ALL: [Lang; 2] = [Lang::Sv, Lang::En];

    /// The folder name under `templates/`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Lang::Sv => "sv",
            Lang::En => "en",
        }
    }
}

/// A rendered alert text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line: the e-mail subject, the card's heading.
    pub title: String,
    /// The full text, with line breaks.
    pub body: String,
}

/// What can go wrong with templates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reason id that is not one of [`AlertReason::ALL`].
    #[error(
        "unknown alert reason `{0}`; expected one of suspected_nis, needs_assessment, \
         reportable, warning, due, overdue, watchdog"
    )]
    UnknownReason(String),
    /// A template file could not be read.
    #[error("{file}: cannot read the template: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A template file is malformed, misses a word or uses an unknown
    /// placeholder.
    #[error("{file}: {problem}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// Renders an alert with the built-in templates.
///
/// `firing` is the clock event behind `warning`, `due`, `overdue` and
/// `watchdog` alerts (for a `TimerOverdueWatchdog`, pass a `Firing` with its
/// timer, `intended_at` and `noticed_at` as `fired_at`); without one those
/// placeholders render as "–".
pub fn render(
    reason: AlertReason,
    incident: &Incident,
    firing: Option<&Firing>,
    lang: Lang,
) -> Rendered {
    Templates::builtin().render(reason, incident, firing, lang)
}

/// The [`Firing`] a `TimerOverdueWatchdog` is rendered from: its timer,
/// the missed moment as `intended_at` and the moment noticed as
/// `fired_at`.
pub fn watchdog_firing(watchdog: &TimerOverdueWatchdog) -> Firing {
    let lateness_ms = match (
        watchdog.intended_at.as_ref().and_then(utc),
        watchdog.noticed_at.as_ref().and_then(utc),
    ) {
        (Some(intended), Some(noticed)) => (noticed - intended).num_milliseconds().max(0),
        _ => 0,
    };
    Firing {
        timer: watchdog.timer.clone(),
        kind: FiringKind::Unspecified as i32,
        sequence: 0,
        intended_at: watchdog.intended_at,
        fired_at: watchdog.noticed_at,
        lateness_ms,
        late: true,
    }
}

/// Placeholders a reason template may use (see `templates/README.md`).
const REASON_VARS: &[&str] = &[
    "incident_id",
    "system",
    "category",
    "units",
    "ticket_count",
    "tickets",
    "started",
    "ended",
    "status",
    "flags",
    "next_due",
    "nis_deadlines",
    "parallel_duties",
    "criteria",
    "pending_thresholds",
    "rule_sets",
    "severity",
    "deadline",
    "label",
    "duty",
    "due",
    "remaining",
    "overdue_by",
    "firing_at",
    "reminder_number",
    "late_note",
    "timer_id",
    "timer_kind",
    "missed_at",
    "noticed_at",
];

/// The loop items of `parts.toml` and the placeholders each may use.
const ITEMS: &[(&str, &[&str])] = &[
    (
        "deadline",
        &[
            "label",
            "duty",
            "due_phrase",
            "status",
            "anchor_phrase",
            "channel",
            "instructions",
            "rule_set",
            "rule_set_version",
            "certainty",
        ],
    ),
    ("criterion", &["criterion", "rule_set", "met_at", "reason"]),
    ("threshold", &["criterion", "rule_set", "at"]),
    (
        "rule_set",
        &["rule_set", "rule_set_version", "verdict", "certainty"],
    ),
];

/// Words the renderer looks up; a template set without any of them is
/// refused at load, so rendering itself cannot fail.
const WORDS: &[&str] = &[
    "none",
    "masked",
    "ongoing",
    "unknown_system",
    "unknown_unit",
    "unknown_version",
    "invalid_time",
    "and_more",
    "phrase.due_by",
    "phrase.due_unset",
    "phrase.met",
    "phrase.anchor_at",
    "phrase.anchor_unset",
    "phrase.next_due",
    "phrase.reportable_since",
    "phrase.not_reportable",
    "phrase.late",
    "phrase.days",
    "phrase.hours",
    "phrase.same_instructions",
    "phrase.escalated_title",
    "phrase.escalated_body",
    "status.open",
    "status.resolved",
    "severity.info",
    "severity.warning",
    "severity.high",
    "severity.critical",
    "certainty.reported",
    "certainty.unverified",
    "certainty.unknown",
    "category.unspecified",
    "flag.suspected_nis",
    "flag.personal_identifiers",
    "flag.needs_assessment",
    "timer_kind.unspecified",
];

/// The built-in template files, compiled in so the binary needs nothing
/// beside it.
const BUILTIN: &[(&str, &str)] = &[
    ("sv/parts.toml", include_str!("../templates/sv/parts.toml")),
    (
        "sv/suspected_nis.txt",
        include_str!("../templates/sv/suspected_nis.txt"),
    ),
    (
        "sv/needs_assessment.txt",
        include_str!("../templates/sv/needs_assessment.txt"),
    ),
    (
        "sv/reportable.txt",
        include_str!("../templates/sv/reportable.txt"),
    ),
    (
        "sv/warning.txt",
        include_str!("../templates/sv/warning.txt"),
    ),
    ("sv/due.txt", include_str!("../templates/sv/due.txt")),
    (
        "sv/overdue.txt",
        include_str!("../templates/sv/overdue.txt"),
    ),
    (
        "sv/watchdog.txt",
        include_str!("../templates/sv/watchdog.txt"),
    ),
    ("en/parts.toml", include_str!("../templates/en/parts.toml")),
    (
        "en/suspected_nis.txt",
        include_str!("../templates/en/suspected_nis.txt"),
    ),
    (
        "en/needs_assessment.txt",
        include_str!("../templates/en/needs_assessment.txt"),
    ),
    (
        "en/reportable.txt",
        include_str!("../templates/en/reportable.txt"),
    ),
    (
        "en/warning.txt",
        include_str!("../templates/en/warning.txt"),
    ),
    ("en/due.txt", include_str!("../templates/en/due.txt")),
    (
        "en/overdue.txt",
        include_str!("../templates/en/overdue.txt"),
    ),
    (
        "en/watchdog.txt",
        include_str!("../templates/en/watchdog.txt"),
    ),
];

/// A checked set of templates for both languages.
#[derive(Debug)]
pub struct Templates {
    sv: LangSet,
    en: LangSet,
}

#[derive(Debug)]
struct LangSet {
    lang: Lang,
    reasons: HashMap<AlertReason, Template>,
    items: HashMap<String, String>,
    words: HashMap<String, String>,
}

#[derive(Debug)]
struct Template {
    title: String,
    body: String,
}

impl Templates {
    /// The templates shipped in `templates/`, compiled in.
    pub fn builtin() -> &'static Templates {
        static BUILT: OnceLock<Templates> = OnceLock::new();
        BUILT.get_or_init(|| {
            Templates::from_source(|file| {
                BUILTIN
                    .iter()
                    .find(|(name, _)| *name == file)
                    .map(|(_, text)| (*text).to_owned())
                    .ok_or_else(|| Error::Invalid {
                        file: file.to_owned(),
                        problem: "missing from the built-in set".to_owned(),
                    })
            })
            // The built-in files are checked by this module's tests.
            .expect("the built-in templates are valid")
        })
    }

    /// Loads a directory of the same shape as `templates/` (`sv/` and
    /// `en/`), so operators can change wording without a new build.
    pub fn from_dir(dir: &Path) -> Result<Templates, Error> {
        Templates::from_source(|file| {
            let path = dir.join(file);
            std::fs::read_to_string(&path).map_err(|source| Error::Read {
                file: path.display().to_string(),
                source,
            })
        })
    }

    fn from_source(load: impl Fn(&str) -> Result<String, Error>) -> Result<Templates, Error> {
        Ok(Templates {
            sv: LangSet::load(Lang::Sv, &load)?,
            en: LangSet::load(Lang::En, &load)?,
        })
    }

    /// Renders one alert text. Never fails: every template, item and word
    /// was checked when the set was loaded.
    pub fn render(
        &self,
        reason: AlertReason,
        incident: &Incident,
        firing: Option<&Firing>,
        lang: Lang,
    ) -> Rendered {
        let set = match lang {
            Lang::Sv => &self.sv,
            Lang::En => &self.en,
        };
        let ctx = Ctx {
            set,
            lang,
            incident,
        };
        let vars = ctx.vars(reason, firing);
        let lookup = |name: &str| vars.get(name).map(String::as_str);
        let masked = set.word("masked");
        let template = set.template(reason);
        Rendered {
            title: mask_identifiers(fill(&template.title, lookup).trim(), masked),
            body: mask_identifiers(fill(&template.body, lookup).trim_end(), masked),
        }
    }
}

/// The text of an alert escalated to `level` (0 first) of `levels`
/// because nobody acknowledged it within `waited`: the level in the title
/// and a first paragraph that says why. Built-in templates.
pub fn escalated(
    rendered: &Rendered,
    level: u32,
    levels: usize,
    waited: Option<TimeDelta>,
    lang: Lang,
) -> Rendered {
    Templates::builtin().escalated(rendered, level, levels, waited, lang)
}

impl Templates {
    /// As [`escalated`], with this template set. Levels are shown counted
    /// from 1, as people count them.
    pub fn escalated(
        &self,
        rendered: &Rendered,
        level: u32,
        levels: usize,
        waited: Option<TimeDelta>,
        lang: Lang,
    ) -> Rendered {
        let set = match lang {
            Lang::Sv => &self.sv,
            Lang::En => &self.en,
        };
        let shown = u64::from(level) + 1;
        let of = (levels as u64).max(shown).to_string();
        let shown = shown.to_string();
        let waited = waited.map_or_else(|| set.word("none").to_owned(), |d| set.duration(d));
        let title = set.phrase(
            "phrase.escalated_title",
            &[
                ("level", &shown),
                ("levels", &of),
                ("title", &rendered.title),
            ],
        );
        let lead = set.phrase(
            "phrase.escalated_body",
            &[("level", &shown), ("levels", &of), ("waited", &waited)],
        );
        let masked = set.word("masked");
        Rendered {
            title: mask_identifiers(title.trim(), masked),
            body: mask_identifiers(&format!("{lead}\n\n{}", rendered.body), masked),
        }
    }
}

impl LangSet {
    fn load(lang: Lang, load: &impl Fn(&str) -> Result<String, Error>) -> Result<LangSet, Error> {
        let dir = lang.as_str();
        let parts_file = format!("{dir}/parts.toml");
        let parts: toml::Table =
            toml::from_str(&load(&parts_file)?).map_err(|e| Error::Invalid {
                file: parts_file.clone(),
                problem: format!("not valid TOML: {}", e.message()),
            })?;
        let invalid = |problem: String| Error::Invalid {
            file: parts_file.clone(),
            problem,
        };

        let mut items = HashMap::new();
        let item_table = parts
            .get("items")
            .and_then(toml::Value::as_table)
            .ok_or_else(|| invalid("missing the table `[items]`".to_owned()))?;
        for (name, allowed) in ITEMS {
            let text = item_table
                .get(*name)
                .and_then(toml::Value::as_str)
                .ok_or_else(|| invalid(format!("missing the text `items.{name}`")))?;
            check_placeholders(text, allowed)
                .map_err(|problem| invalid(format!("`items.{name}`: {problem}")))?;
            items.insert((*name).to_owned(), text.trim_matches('\n').to_owned());
        }

        let mut words = HashMap::new();
        let word_table = parts
            .get("words")
            .and_then(toml::Value::as_table)
            .ok_or_else(|| invalid("missing the table `[words]`".to_owned()))?;
        flatten_words("", word_table, &mut words).map_err(invalid)?;
        if let Some(missing) = WORDS.iter().find(|word| !words.contains_key(**word)) {
            return Err(invalid(format!("missing the word `words.{missing}`")));
        }

        let mut reasons = HashMap::new();
        for reason in AlertReason::ALL {
            let file = format!("{dir}/{reason}.txt");
            let text = load(&file)?;
            let template = Template::parse(&text).map_err(|problem| Error::Invalid {
                file: file.clone(),
                problem,
            })?;
            reasons.insert(reason, template);
        }
        Ok(LangSet {
            lang,
            reasons,
            items,
            words,
        })
    }

    fn template(&self, reason: AlertReason) -> &Template {
        // Every reason was loaded in `load`.
        &self.reasons[&reason]
    }

    /// A word by its dotted key; the key itself if missing (only keys that
    /// depend on wire data can be missing, e.g. an unknown duty id).
    fn word<'a>(&'a self, key: &'a str) -> &'a str {
        self.words.get(key).map_or(key, String::as_str)
    }

    fn word_or<'a>(&'a self, key: &str, fallback: &'a str) -> &'a str {
        self.words.get(key).map_or(fallback, String::as_str)
    }

    fn phrase(&self, key: &str, vars: &[(&str, &str)]) -> String {
        fill(self.word(key), |name| {
            vars.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
        })
    }

    /// `2 h 5 min` below two days, `3 dygn 4 h` from there; never negative.
    fn duration(&self, d: TimeDelta) -> String {
        let minutes = d.num_minutes().max(0);
        let (days, hours, mins) = (minutes / 1440, (minutes / 60) % 24, minutes % 60);
        if minutes >= 48 * 60 {
            self.phrase(
                "phrase.days",
                &[("days", &days.to_string()), ("hours", &hours.to_string())],
            )
        } else {
            self.phrase(
                "phrase.hours",
                &[
                    ("hours", &(minutes / 60).to_string()),
                    ("minutes", &mins.to_string()),
                ],
            )
        }
    }
}

impl Template {
    /// First line: the title; then an empty line; then the body.
    fn parse(text: &str) -> Result<Template, String> {
        let (title, rest) = text.split_once('\n').unwrap_or((text, ""));
        let title = title.trim();
        if title.is_empty() {
            return Err("the first line (the title) is empty".to_owned());
        }
        let body = rest
            .strip_prefix('\n')
            .or_else(|| rest.strip_prefix("\r\n"))
            .ok_or("the title must be followed by one empty line")?;
        check_placeholders(title, REASON_VARS)?;
        check_placeholders(body, REASON_VARS)?;
        Ok(Template {
            title: title.to_owned(),
            body: body.to_owned(),
        })
    }
}

fn flatten_words(
    prefix: &str,
    table: &toml::Table,
    out: &mut HashMap<String, String>,
) -> Result<(), String> {
    for (key, value) in table {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::String(text) => {
                out.insert(full, text.clone());
            }
            toml::Value::Table(inner) => flatten_words(&full, inner, out)?,
            _ => return Err(format!("`words.{full}` must be a string or a table")),
        }
    }
    Ok(())
}

/// The names of the `{{placeholders}}` in a template.
fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template
        .split("{{")
        .skip(1)
        .filter_map(|rest| rest.split_once("}}").map(|(name, _)| name.trim()))
}

fn check_placeholders(template: &str, allowed: &[&str]) -> Result<(), String> {
    match placeholders(template).find(|name| !allowed.contains(name)) {
        Some(name) => Err(format!(
            "unknown placeholder `{{{{{name}}}}}`; known: {}",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

/// Replaces `{{name}}` with its value, line by line. A line that had a
/// placeholder and is blank once filled in is dropped; a multi-line value
/// after indentation keeps the indentation on its following lines.
/// Unknown names stay as they are (loaded templates have none).
fn fill<'v>(template: &str, lookup: impl Fn(&str) -> Option<&'v str>) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    for (index, line) in template.split('\n').enumerate() {
        let filled = fill_line(line, &lookup);
        if line.contains("{{") && filled.trim().is_empty() {
            continue;
        }
        if index > 0 && !out.is_empty() {
            out.push('\n');
        }
        out.push_str(filled.trim_end());
    }
    out
}

fn fill_line<'v>(line: &str, lookup: &impl Fn(&str) -> Option<&'v str>) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = after[..end].trim();
        match lookup(name) {
            Some(value) => {
                let indent: String = if out.chars().all(char::is_whitespace) {
                    out.clone()
                } else {
                    String::new()
                };
                for (i, value_line) in value.split('\n').enumerate() {
                    if i > 0 {
                        out.push('\n');
                        if !value_line.is_empty() {
                            out.push_str(&indent);
                        }
                    }
                    out.push_str(value_line);
                }
            }
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Everything a reason template can refer to, for one incident.
struct Ctx<'a> {
    set: &'a LangSet,
    lang: Lang,
    incident: &'a Incident,
}

impl Ctx<'_> {
    fn vars(&self, reason: AlertReason, firing: Option<&Firing>) -> HashMap<&'static str, String> {
        let set = self.set;
        let incident = self.incident;
        let none = set.word("none").to_owned();
        let mut vars: HashMap<&'static str, String> = HashMap::new();

        vars.insert("incident_id", incident.id.clone());
        vars.insert(
            "system",
            non_empty(&incident.system)
                .unwrap_or(set.word("unknown_system"))
                .to_owned(),
        );
        let category = incident
            .category()
            .as_str_name()
            .trim_start_matches("CATEGORY_")
            .to_ascii_lowercase();
        vars.insert(
            "category",
            set.word_or(&format!("category.{category}"), &category)
                .to_owned(),
        );
        vars.insert(
            "units",
            if incident.units.is_empty() {
                set.word("unknown_unit").to_owned()
            } else {
                incident.units.join(", ")
            },
        );
        vars.insert("ticket_count", incident.ticket_count.to_string());
        vars.insert("tickets", self.tickets());
        vars.insert(
            "started",
            self.time(incident.disruption_started_at.as_ref()),
        );
        vars.insert(
            "ended",
            match &incident.disruption_ended_at {
                Some(at) => self.time(Some(at)),
                None => set.word("ongoing").to_owned(),
            },
        );
        vars.insert(
            "status",
            set.word(match incident.status() {
                IncidentStatus::Resolved => "status.resolved",
                _ => "status.open",
            })
            .to_owned(),
        );
        vars.insert("flags", self.flags());
        vars.insert("next_due", self.next_due());
        let (nis, parallel): (Vec<&Deadline>, Vec<&Deadline>) =
            self.deadlines().into_iter().partition(|d| d.duty == "nis");
        vars.insert("nis_deadlines", self.deadline_list(&nis));
        vars.insert("parallel_duties", self.deadline_list(&parallel));
        vars.insert("criteria", self.criteria());
        vars.insert("pending_thresholds", self.thresholds());
        vars.insert("rule_sets", self.rule_sets());
        let severity = reason
            .severity()
            .as_str_name()
            .trim_start_matches("SEVERITY_")
            .to_ascii_lowercase();
        vars.insert(
            "severity",
            set.word_or(&format!("severity.{severity}"), &severity)
                .to_owned(),
        );

        for name in [
            "deadline",
            "label",
            "duty",
            "due",
            "remaining",
            "overdue_by",
            "firing_at",
            "reminder_number",
            "timer_id",
            "timer_kind",
            "missed_at",
            "noticed_at",
        ] {
            vars.insert(name, none.clone());
        }
        vars.insert("late_note", String::new());
        if let Some(firing) = firing {
            self.firing_vars(firing, &mut vars);
        }
        vars
    }

    fn firing_vars(&self, firing: &Firing, vars: &mut HashMap<&'static str, String>) {
        let set = self.set;
        let intended = firing.intended_at.as_ref().and_then(utc);
        vars.insert("firing_at", self.time(firing.intended_at.as_ref()));
        vars.insert("missed_at", self.time(firing.intended_at.as_ref()));
        vars.insert("noticed_at", self.time(firing.fired_at.as_ref()));
        vars.insert(
            "reminder_number",
            (u64::from(firing.sequence) + 1).to_string(),
        );
        if firing.late {
            let delay = self.duration(TimeDelta::milliseconds(firing.lateness_ms.max(0)));
            vars.insert("late_note", set.phrase("phrase.late", &[("delay", &delay)]));
        }
        let Some(timer) = &firing.timer else {
            return;
        };
        vars.insert("timer_id", timer.id.clone());
        let kind = match timer.kind() {
            TimerKind::Threshold => "threshold",
            TimerKind::Deadline => "deadline",
            TimerKind::Escalation => "escalation",
            TimerKind::Unspecified => "unspecified",
        };
        vars.insert(
            "timer_kind",
            set.word_or(&format!("timer_kind.{kind}"), kind).to_owned(),
        );

        // The incident's copy of the deadline is the fresher one.
        let deadline = timer.deadline.as_ref().map(|fired| {
            self.incident
                .deadlines
                .iter()
                .find(|d| d.id == fired.id)
                .unwrap_or(fired)
        });
        let due_at = deadline
            .and_then(|d| d.due_at.as_ref())
            .or(timer.due_at.as_ref());
        vars.insert("due", self.time(due_at));
        if let (Some(due), Some(intended)) = (due_at.and_then(utc), intended) {
            vars.insert("remaining", self.duration(due - intended));
            vars.insert("overdue_by", self.duration(intended - due));
        }
        if let Some(deadline) = deadline {
            vars.insert("deadline", self.deadline(deadline));
            vars.insert("label", self.label(deadline).to_owned());
            vars.insert("duty", self.duty(deadline).to_owned());
        }
    }

    /// The incident's deadlines that still matter, earliest first.
    fn deadlines(&self) -> Vec<&Deadline> {
        let mut deadlines: Vec<&Deadline> = self
            .incident
            .deadlines
            .iter()
            .filter(|d| d.status() != DeadlineStatus::Cancelled)
            .collect();
        deadlines.sort_by_key(|d| {
            (
                d.due_at.as_ref().and_then(utc).is_none(),
                d.due_at.as_ref().and_then(utc),
                d.rule_set.clone(),
                d.stage.clone(),
            )
        });
        deadlines
    }

    /// Deadlines one after another; instructions identical to an earlier
    /// deadline's are not repeated but referred to (the first that had
    /// them).
    fn deadline_list(&self, deadlines: &[&Deadline]) -> String {
        let mut shown: Vec<&Deadline> = Vec::new();
        let items = deadlines.iter().map(|d| {
            let text = self.instructions(d);
            let same = shown
                .iter()
                .find(|earlier| !text.is_empty() && self.instructions(earlier) == text)
                .copied();
            if same.is_none() {
                shown.push(d);
            }
            self.deadline_with(d, same)
        });
        self.list(items)
    }

    fn instructions<'d>(&self, d: &'d Deadline) -> &'d str {
        match self.set.lang {
            Lang::Sv => d.instructions_sv.trim(),
            Lang::En => non_empty(&d.instructions_en).unwrap_or(d.instructions_sv.trim()),
        }
    }

    fn deadline(&self, d: &Deadline) -> String {
        self.deadline_with(d, None)
    }

    /// One deadline; `same_as` is an earlier deadline with the same
    /// instructions, referred to instead of repeating them.
    fn deadline_with(&self, d: &Deadline, same_as: Option<&Deadline>) -> String {
        let set = self.set;
        let due_phrase = match d.due_at.as_ref() {
            Some(at) => set.phrase("phrase.due_by", &[("time", &self.time(Some(at)))]),
            None => set.word("phrase.due_unset").to_owned(),
        };
        let status = if d.status() == DeadlineStatus::Met {
            set.phrase("phrase.met", &[("time", &self.time(d.met_at.as_ref()))])
        } else {
            String::new()
        };
        let anchor_phrase = if d.anchor.is_empty() {
            String::new()
        } else {
            let anchor = set.word_or(&format!("anchor.{}", d.anchor), &d.anchor);
            match d.anchor_at.as_ref() {
                Some(at) => set.phrase(
                    "phrase.anchor_at",
                    &[("anchor", anchor), ("time", &self.time(Some(at)))],
                ),
                None => set.phrase("phrase.anchor_unset", &[("anchor", anchor)]),
            }
        };
        let channel = match set.lang {
            Lang::Sv => d.channel_sv.as_str(),
            Lang::En => non_empty(&d.channel_en).unwrap_or(&d.channel_sv),
        };
        let instructions = match same_as {
            Some(earlier) => set.phrase(
                "phrase.same_instructions",
                &[("label", self.label(earlier))],
            ),
            None => self.instructions(d).to_owned(),
        };
        let version = self.rule_set_version(&d.rule_set);
        let certainty = self.certainty_mark(&d.certainty);
        let label = self.label(d);
        let duty = self.duty(d);
        let vars: [(&str, &str); 10] = [
            ("label", label),
            ("duty", duty),
            ("due_phrase", &due_phrase),
            ("status", &status),
            ("anchor_phrase", &anchor_phrase),
            ("channel", channel.trim()),
            ("instructions", &instructions),
            ("rule_set", &d.rule_set),
            ("rule_set_version", version),
            ("certainty", certainty),
        ];
        self.item("deadline", &vars)
    }

    fn label<'d>(&self, d: &'d Deadline) -> &'d str {
        match self.set.lang {
            Lang::Sv => &d.label_sv,
            Lang::En => non_empty(&d.label_en).unwrap_or(&d.label_sv),
        }
    }

    fn duty<'d>(&'d self, d: &'d Deadline) -> &'d str {
        self.set.word_or(&format!("duty.{}", d.duty), &d.duty)
    }

    fn rule_set_version(&self, rule_set: &str) -> &str {
        self.incident
            .assessments
            .iter()
            .find(|a| a.rule_set == rule_set)
            .and_then(|a| non_empty(&a.rule_set_version))
            .unwrap_or(self.set.word("unknown_version"))
    }

    /// Empty for `confirmed`; a visible mark for anything less sure.
    fn certainty_mark(&self, certainty: &str) -> &str {
        match certainty {
            "confirmed" => "",
            "reported" => self.set.word("certainty.reported"),
            "unverified" => self.set.word("certainty.unverified"),
            _ => self.set.word("certainty.unknown"),
        }
    }

    fn criteria(&self) -> String {
        let set = self.set;
        let lines = self.incident.assessments.iter().flat_map(|a| {
            a.criteria.iter().filter(|c| c.met).map(move |c| {
                let met_at = self.time(c.met_at.as_ref());
                self.item(
                    "criterion",
                    &[
                        (
                            "criterion",
                            set.word_or(&format!("criterion.{}", c.id), &c.id),
                        ),
                        ("rule_set", &a.rule_set),
                        ("met_at", &met_at),
                        (
                            "reason",
                            match self.lang {
                                // Operators read Swedish; older snapshots had
                                // only the English reason.
                                Lang::Sv if !c.reason_sv.trim().is_empty() => c.reason_sv.trim(),
                                _ => c.reason.trim(),
                            },
                        ),
                    ],
                )
            })
        });
        self.list(lines)
    }

    fn thresholds(&self) -> String {
        let set = self.set;
        let lines = self.incident.assessments.iter().flat_map(|a| {
            a.pending_thresholds.iter().map(move |t| {
                let at = self.time(t.at.as_ref());
                self.item(
                    "threshold",
                    &[
                        (
                            "criterion",
                            set.word_or(&format!("criterion.{}", t.criterion), &t.criterion),
                        ),
                        ("rule_set", &a.rule_set),
                        ("at", &at),
                    ],
                )
            })
        });
        self.list(lines)
    }

    fn rule_sets(&self) -> String {
        let set = self.set;
        let lines = self.incident.assessments.iter().map(|a| {
            let verdict = if a.reportable {
                set.phrase(
                    "phrase.reportable_since",
                    &[("time", &self.time(a.identified_at.as_ref()))],
                )
            } else {
                set.word("phrase.not_reportable").to_owned()
            };
            let certainty = self.rule_set_certainty(&a.rule_set);
            self.item(
                "rule_set",
                &[
                    ("rule_set", &a.rule_set),
                    ("rule_set_version", self.rule_set_version(&a.rule_set)),
                    ("verdict", &verdict),
                    ("certainty", certainty),
                ],
            )
        });
        self.list(lines)
    }

    /// The least sure mark among a rule set's deadlines.
    fn rule_set_certainty(&self, rule_set: &str) -> &str {
        let rank = |c: &str| match c {
            "confirmed" => 0,
            "reported" => 1,
            "unverified" => 3,
            _ => 2,
        };
        self.incident
            .deadlines
            .iter()
            .filter(|d| d.rule_set == rule_set)
            .map(|d| d.certainty.as_str())
            .max_by_key(|c| rank(c))
            .map_or("", |c| self.certainty_mark(c))
    }

    fn next_due(&self) -> String {
        self.deadlines()
            .into_iter()
            .find(|d| {
                d.duty == "nis" && d.status() == DeadlineStatus::Pending && d.due_at.is_some()
            })
            .map_or_else(
                || self.set.word("phrase.due_unset").to_owned(),
                |d| {
                    self.set.phrase(
                        "phrase.next_due",
                        &[
                            ("label", self.label(d)),
                            ("time", &self.time(d.due_at.as_ref())),
                        ],
                    )
                },
            )
    }

    fn flags(&self) -> String {
        let Some(flags) = &self.incident.flags else {
            return self.set.word("none").to_owned();
        };
        let words: Vec<&str> = [
            (flags.suspected_nis, "flag.suspected_nis"),
            (flags.personal_identifiers, "flag.personal_identifiers"),
            (flags.needs_assessment, "flag.needs_assessment"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, key)| self.set.word(key))
        .collect();
        if words.is_empty() {
            self.set.word("none").to_owned()
        } else {
            words.join("; ")
        }
    }

    /// Ticket references only (system and id): never the free text.
    fn tickets(&self) -> String {
        const SHOWN: usize = 5;
        let tickets = &self.incident.tickets;
        if tickets.is_empty() {
            return self.set.word("none").to_owned();
        }
        let mut refs: Vec<String> = tickets
            .iter()
            .take(SHOWN)
            .map(|t| format!("{} {}", t.source, t.ticket_id))
            .collect();
        if tickets.len() > SHOWN {
            let count = (tickets.len() - SHOWN).to_string();
            refs.push(self.set.phrase("and_more", &[("count", &count)]));
        }
        refs.join(", ")
    }

    fn item(&self, name: &str, vars: &[(&str, &str)]) -> String {
        let template = self.set.items.get(name).map_or("", String::as_str);
        fill(template, |n| {
            vars.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
        })
    }

    fn list(&self, lines: impl Iterator<Item = String>) -> String {
        let lines: Vec<String> = lines.collect();
        if lines.is_empty() {
            self.set.word("none").to_owned()
        } else {
            lines.join("\n")
        }
    }

    /// Europe/Stockholm wall-clock time with its zone, e.g.
    /// `2026-03-29 14:05 (CEST)`.
    fn time(&self, ts: Option<&Timestamp>) -> String {
        match ts {
            None => self.set.word("none").to_owned(),
            Some(ts) => match utc(ts) {
                Some(at) => local_time(at),
                None => self.set.word("invalid_time").to_owned(),
            },
        }
    }

    fn duration(&self, d: TimeDelta) -> String {
        self.set.duration(d)
    }
}

/// Formats an instant as Europe/Stockholm wall-clock time with CET/CEST.
pub fn local_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&Stockholm)
        .format("%Y-%m-%d %H:%M (%Z)")
        .to_string()
}

fn utc(ts: &Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

fn non_empty(s: &str) -> Option<&str> {
    let trimmed = s.trim();
    (!trimmed.is_empty()).then_some(trimmed)
}

/// Replaces anything that looks like a Swedish personnummer or
/// samordningsnummer (date part valid, Luhn check digit right) with
/// `replacement`. Defence in depth: intake already masks them.
fn mask_identifiers(text: &str, replacement: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        let starts_number =
            bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
        if starts_number && let Some(len) = identifier_len(&bytes[i..]) {
            // `i` and `i + len` sit on ASCII bytes, so both are char
            // boundaries.
            out.push_str(&text[copied..i]);
            out.push_str(replacement);
            i += len;
            copied = i;
            continue;
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// The length of the identifier at the start of `b`, if there is one:
/// 10 or 12 digits, or 6 or 8 digits, `-` or `+`, and 4 digits.
fn identifier_len(b: &[u8]) -> Option<usize> {
    let run = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let lead = run(0);
    let (digits, len): (Vec<u8>, usize) = match lead {
        10 | 12 => (b[..lead].to_vec(), lead),
        6 | 8 if matches!(b.get(lead), Some(b'-' | b'+')) && run(lead + 1) == 4 => {
            let mut d = b[..lead].to_vec();
            d.extend_from_slice(&b[lead + 1..lead + 5]);
            (d, lead + 5)
        }
        _ => return None,
    };
    if b.get(len).is_some_and(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let ten: Vec<u32> = digits[digits.len() - 10..]
        .iter()
        .map(|c| u32::from(c - b'0'))
        .collect();
    let month = ten[2] * 10 + ten[3];
    let day = ten[4] * 10 + ten[5];
    let day_ok = (1..=31).contains(&day) || (61..=91).contains(&day);
    let luhn: u32 = ten
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let v = if i % 2 == 0 { d * 2 } else { *d };
            v / 10 + v % 10
        })
        .sum();
    ((1..=12).contains(&month) && day_ok && luhn.is_multiple_of(10)).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use nisvakt_proto::v1::{
        Assessment, CriterionResult, IncidentFlags, PendingThreshold, TicketRef, Timer,
    };

    fn ts(at: DateTime<Utc>) -> Timestamp {
        Timestamp {
            seconds: at.timestamp(),
            nanos: 0,
        }
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid test time")
    }

    const NIS_INSTRUCTIONS: &str = "Rapportera i IRON (iron.msb.se). Behöver ni stöd: ring CERT-SE på 010-240 40 40.\nOm IRON inte fungerar: rekommenderat brev till Myndigheten för samhällsskydd och beredskap, CERT-SE, Box 6081, 171 06 Solna. Lägg rapporten i ett separat förslutet kuvert i försändelsekuvertet (kuvert i kuvert).";

    fn deadline(stage: &str, duty: &str, due: Option<DateTime<Utc>>, certainty: &str) -> Deadline {
        Deadline {
            id: format!("inc_1.seed-routine.{duty}.{stage}"),
            rule_set: "seed-routine".into(),
            duty: duty.into(),
            stage: stage.into(),
            label_sv: format!("Skede {stage}"),
            label_en: format!("Stage {stage}"),
            due_at: due.map(ts),
            anchor: "identified".into(),
            anchor_at: Some(ts(at(2026, 3, 29, 6, 5))),
            status: DeadlineStatus::Pending as i32,
            channel_sv: match duty {
                "nis" => "IRON (iron.msb.se)".into(),
                "personal_data" => "IMY:s e-tjänst".into(),
                "lex_maria" => "IVO:s e-tjänst".into(),
                _ => "Säkerhetspolisen, sakerhetsskydd@sakerhetspolisen.se, 010-568 70 00".into(),
            },
            instructions_sv: if duty == "nis" {
                NIS_INSTRUCTIONS.into()
            } else {
                String::new()
            },
            certainty: certainty.into(),
            ..Deadline::default()
        }
    }

    /// A reportable incident identified 2026-03-29 06:05 UTC, the morning
    /// clocks went forward: 08:05 CEST.
    fn incident() -> Incident {
        Incident {
            id: "inc_01JTESTINCIDENT0000000000".into(),
            status: IncidentStatus::Open as i32,
            system: "Journalsystemet".into(),
            category: nisvakt_proto::v1::Category::RecordSystem as i32,
            units: vec!["Hemsjukvården Väster".into()],
            ticket_count: 2,
            disruption_started_at: Some(ts(at(2026, 3, 29, 0, 5))),
            flags: Some(IncidentFlags {
                suspected_nis: true,
                personal_identifiers: true,
                needs_assessment: false,
            }),
            assessments: vec![Assessment {
                rule_set: "seed-routine".into(),
                rule_set_version: "2024.1".into(),
                reportable: true,
                identified_at: Some(ts(at(2026, 3, 29, 6, 5))),
                criteria: vec![CriterionResult {
                    id: "system_disrupted_6h".into(),
                    met: true,
                    met_at: Some(ts(at(2026, 3, 29, 6, 5))),
                    reason: "disrupted since 01:05 CET, 6 h reached".into(),
                    reason_sv: "störd sedan 01:05 CET, 6h uppnått".into(),
                }],
                pending_thresholds: vec![PendingThreshold {
                    criterion: "care_interrupted_2h".into(),
                    at: Some(ts(at(2026, 3, 29, 2, 5))),
                    timer_id: "thr".into(),
                }],
                ..Assessment::default()
            }],
            deadlines: vec![
                deadline("1", "nis", Some(at(2026, 3, 29, 12, 5)), "confirmed"),
                deadline("2", "nis", Some(at(2026, 3, 30, 6, 5)), "confirmed"),
                Deadline {
                    anchor: "first_report".into(),
                    anchor_at: None,
                    ..deadline("3", "nis", None, "confirmed")
                },
                deadline(
                    "1",
                    "personal_data",
                    Some(at(2026, 4, 1, 6, 5)),
                    "confirmed",
                ),
                deadline("1", "lex_maria", None, "reported"),
                deadline("1", "security_protection", None, "unverified"),
            ],
            tickets: vec![TicketRef {
                source: "intraservice".into(),
                ticket_id: "IS-4711".into(),
                revision: 1,
                subject: "Eventuell NIS-incident: journalen nere, patient 19121212-1212".into(),
            }],
            assessed_by: vec!["Anna Andersson".into()],
            ..Incident::default()
        }
    }

    fn firing(kind: nisvakt_proto::v1::FiringKind, intended: DateTime<Utc>) -> Firing {
        let d = deadline("1", "nis", Some(at(2026, 3, 29, 12, 5)), "confirmed");
        Firing {
            timer: Some(Timer {
                id: "tmr_stage1".into(),
                kind: TimerKind::Deadline as i32,
                incident_id: "inc_01JTESTINCIDENT0000000000".into(),
                due_at: d.due_at,
                deadline: Some(d),
                ..Timer::default()
            }),
            kind: kind as i32,
            sequence: 1,
            intended_at: Some(ts(intended)),
            fired_at: Some(ts(intended)),
            ..Firing::default()
        }
    }

    #[test]
    fn builtin_templates_load_and_every_reason_renders_without_leftovers() {
        let incident = incident();
        let fire = firing(
            nisvakt_proto::v1::FiringKind::Warning,
            at(2026, 3, 29, 10, 5),
        );
        for lang in Lang::ALL {
            for reason in AlertReason::ALL {
                let out = render(reason, &incident, Some(&fire), lang);
                assert!(
                    !out.title.contains("{{"),
                    "{reason} {lang:?}: {}",
                    out.title
                );
                assert!(!out.body.contains("{{"), "{reason} {lang:?}: {}", out.body);
                assert!(!out.title.contains('\n'));
                assert!(!out.body.is_empty());
            }
        }
    }

    #[test]
    fn reportable_body_says_what_to_do_with_local_deadlines_across_the_dst_change() {
        let out = render(AlertReason::Reportable, &incident(), None, Lang::Sv);
        // 12:05 UTC on 29 March 2026 is after the 01:00 UTC switch: CEST.
        assert!(
            out.body
                .contains("Skede 1 – NIS-incidentrapport – senast 2026-03-29 14:05 (CEST)"),
            "{}",
            out.body
        );
        assert!(out.body.contains("senast 2026-03-30 08:05 (CEST)"));
        // The disruption started before the switch, in winter time.
        assert!(
            out.body
                .contains("Störningen började: 2026-03-29 01:05 (CET)")
        );
        assert!(
            out.title.contains("Skede 1 senast 2026-03-29 14:05 (CEST)"),
            "{}",
            out.title
        );
        // The playbook comes from the rule set, indented under its stage.
        assert!(out.body.contains("    Rapportera i IRON (iron.msb.se)"));
        assert!(out.body.contains("ring CERT-SE på 010-240 40 40"));
        assert!(out.body.contains("Box 6081, 171 06 Solna"));
        assert!(out.body.contains("(kuvert i kuvert)"));
        // Stage 2 has the same instructions: referred to, not repeated.
        assert_eq!(out.body.matches("(kuvert i kuvert)").count(), 1);
        assert!(
            out.body
                .contains("    Gör på samma sätt som för Skede 1 ovan.")
        );
        // Stage 3 runs from the first report, which has not happened.
        assert!(
            out.body
                .contains("Skede 3 – NIS-incidentrapport – frist ännu inte fastställd")
        );
        assert!(
            out.body
                .contains("första rapporten (skede 1), som inte har inträffat än")
        );
        // Every parallel duty with its own deadline and channel.
        assert!(
            out.body
                .contains("personuppgiftsincident (IMY) – senast 2026-04-01 08:05 (CEST)")
        );
        assert!(out.body.contains("Kanal: IMY:s e-tjänst"));
        assert!(out.body.contains("lex Maria (IVO)"));
        assert!(out.body.contains("säkerhetsskydd (Säkerhetspolisen)"));
        assert!(out.body.contains("sakerhetsskydd@sakerhetspolisen.se"));
        // Rule set and version, with the certainty mark when not confirmed.
        assert!(out.body.contains("Regelverk: seed-routine 2024.1\n"));
        assert!(out.body.contains("seed-routine 2024.1 [OBEKRÄFTAD"));
        assert!(out.body.contains("seed-routine 2024.1 [ej bekräftad"));
        assert!(out.body.contains("seed-routine version 2024.1: rapporteringspliktig sedan 2026-03-29 08:05 (CEST) [OBEKRÄFTAD"));
    }

    #[test]
    fn winter_deadlines_show_cet() {
        let mut incident = incident();
        incident.deadlines = vec![deadline(
            "1",
            "nis",
            Some(at(2026, 10, 25, 12, 0)),
            "confirmed",
        )];
        let out = render(AlertReason::Reportable, &incident, None, Lang::En);
        // The clocks went back at 01:00 UTC that day.
        assert!(
            out.body.contains("by 2026-10-25 13:00 (CET)"),
            "{}",
            out.body
        );
    }

    #[test]
    fn no_personal_identifiers_or_reporter_data_in_any_text() {
        let mut incident = incident();
        incident.system = "Journal 19121212-1212 / 121212+1212 / 1212121212".into();
        incident.units = vec!["Enhet 191212121212".into()];
        let fire = firing(nisvakt_proto::v1::FiringKind::Due, at(2026, 3, 29, 12, 5));
        for lang in Lang::ALL {
            for reason in AlertReason::ALL {
                let out = render(reason, &incident, Some(&fire), lang);
                for text in [&out.title, &out.body] {
                    for forbidden in [
                        "1212-1212",
                        "1212+1212",
                        "1212121212",
                        "191212121212",
                        "Anna Andersson",
                        "journalen nere",
                    ] {
                        assert!(
                            !text.contains(forbidden),
                            "{reason} {lang:?} leaks {forbidden}: {text}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn masking_spares_phone_numbers_dates_and_ids() {
        let text = "ring 010-240 40 40 eller 031-368 68 00, 2026-03-29 14:05, inc_01J1912121212X, IS-4711, 1234567890";
        assert_eq!(mask_identifiers(text, "[m]"), text);
        assert_eq!(mask_identifiers("pnr 19121212-1212.", "[m]"), "pnr [m].");
        // Samordningsnummer: day + 60.
        assert_eq!(mask_identifiers("701063-2391", "[m]"), "[m]");
    }

    #[test]
    fn warning_counts_down_from_the_firing_not_the_clock() {
        let fire = firing(
            nisvakt_proto::v1::FiringKind::Warning,
            at(2026, 3, 29, 10, 5),
        );
        let out = render(AlertReason::Warning, &incident(), Some(&fire), Lang::Sv);
        assert_eq!(
            out.title,
            "Påminnelse: Skede 1 (NIS-incidentrapport) ska rapporteras senast 2026-03-29 14:05 (CEST) – Journalsystemet"
        );
        assert!(out.body.contains("Det återstår 2 h 0 min"), "{}", out.body);
        assert!(!out.body.contains("Obs:"));
    }

    #[test]
    fn overdue_says_how_late_and_notes_a_late_firing() {
        let mut fire = firing(
            nisvakt_proto::v1::FiringKind::Overdue,
            at(2026, 3, 31, 14, 5),
        );
        fire.late = true;
        fire.lateness_ms = 5 * 60 * 1000;
        let out = render(AlertReason::Overdue, &incident(), Some(&fire), Lang::Sv);
        assert!(
            out.body.contains("har passerats med 2 dygn 2 h"),
            "{}",
            out.body
        );
        assert!(out.body.contains("påminnelse nr 2"));
        assert!(out.body.contains("skickades 0 h 5 min efter utsatt tid"));
    }

    #[test]
    fn english_falls_back_to_swedish_instructions_when_the_rule_set_has_none() {
        let out = render(AlertReason::Reportable, &incident(), None, Lang::En);
        assert!(
            out.body
                .contains("Stage 1 – NIS incident report – by 2026-03-29 14:05 (CEST)")
        );
        assert!(out.body.contains("kuvert i kuvert"));
    }

    #[test]
    fn a_watchdog_alert_names_the_missed_clock_and_its_deadline() {
        let fire = firing(nisvakt_proto::v1::FiringKind::Due, at(2026, 3, 29, 12, 5));
        let watchdog = TimerOverdueWatchdog {
            timer: fire.timer,
            intended_at: Some(ts(at(2026, 3, 29, 12, 5))),
            noticed_at: Some(ts(at(2026, 3, 29, 12, 7))),
        };
        let out = render(
            AlertReason::Watchdog,
            &incident(),
            Some(&watchdog_firing(&watchdog)),
            Lang::Sv,
        );
        assert!(
            out.body
                .contains("Bevakning: tmr_stage1 (rapporteringsfrist)"),
            "{}",
            out.body
        );
        assert!(
            out.body
                .contains("Missad tidpunkt: 2026-03-29 14:05 (CEST)")
        );
        assert!(out.body.contains("Upptäckt: 2026-03-29 14:07 (CEST)"));
        assert!(
            out.body
                .contains("Bevakad frist\n• Skede 1 – NIS-incidentrapport")
        );
    }

    #[test]
    fn severity_rises_towards_a_missed_duty() {
        assert_eq!(AlertReason::SuspectedNis.severity(), Severity::Warning);
        assert_eq!(AlertReason::Reportable.severity(), Severity::High);
        assert_eq!(AlertReason::Overdue.severity(), Severity::Critical);
        assert_eq!(AlertReason::Watchdog.severity(), Severity::Critical);
        for reason in AlertReason::ALL {
            assert_eq!(reason.as_str().parse::<AlertReason>().ok(), Some(reason));
        }
        assert!("panic".parse::<AlertReason>().is_err());
    }

    #[test]
    fn a_template_with_an_unknown_placeholder_is_refused() {
        let result = Templates::from_source(|file| {
            let text = BUILTIN
                .iter()
                .find(|(n, _)| *n == file)
                .map(|(_, t)| *t)
                .unwrap_or("");
            Ok(if file == "en/due.txt" {
                text.replace("{{due}}", "{{patient_name}}")
            } else {
                text.to_owned()
            })
        });
        let error = result.expect_err("unknown placeholder").to_string();
        assert!(
            error.starts_with("en/due.txt: unknown placeholder `{{patient_name}}`"),
            "{error}"
        );
    }

    #[test]
    fn fill_drops_lines_left_empty_and_keeps_indentation() {
        let vars = [("a", "x\ny"), ("empty", "")];
        let get = |n: &str| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        assert_eq!(
            fill("head\n  {{a}}\n  {{empty}}\nfoot {{b}}", get),
            "head\n  x\n  y\nfoot {{b}}"
        );
    }

    #[test]
    fn an_escalated_alert_says_its_level_and_why_in_both_languages() {
        let inc = incident();
        let base = render(AlertReason::Reportable, &inc, None, Lang::Sv);
        let sv = escalated(&base, 1, 2, Some(TimeDelta::minutes(30)), Lang::Sv);
        assert!(
            sv.title.starts_with("ESKALERAT till nivå 2 av 2: "),
            "{}",
            sv.title
        );
        assert!(sv.title.ends_with(&base.title));
        assert!(sv.body.starts_with("ESKALERAT LARM"), "{}", sv.body);
        assert!(sv.body.contains("0 h 30 min"), "{}", sv.body);
        assert!(sv.body.ends_with(&base.body));
        let en_base = render(AlertReason::Reportable, &inc, None, Lang::En);
        let en = escalated(&en_base, 2, 2, None, Lang::En);
        // A level past the configured ones is still shown truthfully.
        assert!(
            en.title.starts_with("ESCALATED to level 3 of 3: "),
            "{}",
            en.title
        );
    }
}
