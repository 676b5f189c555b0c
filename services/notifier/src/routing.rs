//! Who gets an alert: roles, their contacts and the escalation levels, read
//! from a TOML file (`deploy/routing.example.toml` shows every key).
//!
//! Loading checks the whole file once — unknown keys, roles, reasons and
//! webhooks, durations, addresses, and the environment variables that hold
//! webhook secrets — and every error names the file, the key and the
//! problem, so a bad file stops the service before it binds anything.
//! Selection ([`Routing::recipients`], [`Routing::escalation`]) is pure.
//! This module must not send anything, read the clock, or accept a secret
//! written in the file itself.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    path::Path,
    str::FromStr,
};

use chrono::TimeDelta;
use nisvakt_proto::v1::Recipient;

use crate::render::AlertReason;

/// A routing role: a function in the organisation, not a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Intraservice support, the city's IT service desk.
    IntraserviceDesk,
    /// The reporting unit's closest manager (närmaste chef).
    Manager,
    /// The administration's NIS assessors (NIS-bedömare).
    NisAssessor,
    /// The administration's security unit (säkerhetsenheten).
    SecurityUnit,
    /// The on-call manager (jour, beredskap).
    OnCall,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::IntraserviceDesk,
        Role::Manager,
        Role::NisAssessor,
        Role::SecurityUnit,
        Role::OnCall,
    ];

    /// The stable id used in the routing file and in `Recipient.role`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::IntraserviceDesk => "intraservice_desk",
            Role::Manager => "manager",
            Role::NisAssessor => "nis_assessor",
            Role::SecurityUnit => "security_unit",
            Role::OnCall => "on_call",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown role `{s}`; expected one of {}",
                    Role::ALL.map(Role::as_str).join(", ")
                )
            })
    }
}

/// Why a routing file was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{file}: cannot read the routing file: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("{file}: line {line}: not valid TOML: {problem}")]
    Syntax {
        /// The file.
        file: String,
        /// The line of the first error (1-based).
        line: usize,
        /// What the parser said.
        problem: String,
    },
    /// A key has a value the notifier cannot use.
    #[error("{file}: `{key}`: {problem}")]
    Invalid {
        /// The file.
        file: String,
        /// The dotted key, e.g. `escalation.reportable[0].ack_within`.
        key: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

/// A webhook secret, taken from the environment. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for signing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// nisvakt's generic JSON alert.
    Json,
    /// A Microsoft Teams–compatible Adaptive Card message.
    Teams,
}

/// A webhook defined by name in the routing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The name roles refer to.
    pub name: String,
    /// Where to POST.
    pub url: String,
    /// Which body to send.
    pub format: WebhookFormat,
    /// The HMAC-SHA256 key, when the receiver checks signatures.
    pub secret: Option<Secret>,
}

/// Who to reach for a role: a role mailbox or a channel, never a patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Display name.
    pub name: String,
    /// E-mail addresses.
    pub emails: Vec<String>,
    /// Webhook names (defined under `[webhooks]`).
    pub webhooks: Vec<String>,
    /// A phone number for people reading the file or the console; alerts
    /// are not delivered by phone.
    pub phone: Option<String>,
}

/// One role's contacts: a default and per-unit overrides.
#[derive(Debug, Clone)]
struct RoleContacts {
    default: Contact,
    /// Keyed by the normalised unit name (see [`unit_key`]).
    units: BTreeMap<String, Contact>,
}

impl RoleContacts {
    /// The contacts for the given units: each unit's own, or the default
    /// for a unit without one (and when no unit is known).
    fn for_units<'a>(&'a self, units: &[&str]) -> Vec<&'a Contact> {
        if units.is_empty() {
            return vec![&self.default];
        }
        units
            .iter()
            .map(|unit| self.units.get(&unit_key(unit)).unwrap_or(&self.default))
            .collect()
    }
}

/// One escalation level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// Who is alerted at this level.
    pub roles: Vec<Role>,
    /// How long to wait for an acknowledgement before the next level;
    /// `None` on the last level.
    pub ack_within: Option<TimeDelta>,
}

/// The routing: who gets which alert at which level.
#[derive(Debug, Clone)]
pub struct Routing {
    file: String,
    roles: BTreeMap<Role, RoleContacts>,
    webhooks: BTreeMap<String, Webhook>,
    escalation: BTreeMap<AlertReason, Vec<Level>>,
}

impl Routing {
    /// Reads and checks a routing file; webhook secrets come from the
    /// process environment.
    pub fn load(path: impl AsRef<Path>) -> Result<Routing, Error> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            file: file.clone(),
            source,
        })?;
        Routing::parse(&text, &file, &|name| std::env::var(name).ok())
    }

    /// Checks routing TOML given as a string (named `<inline>` in errors);
    /// webhook secrets come from the process environment.
    pub fn from_toml_str(text: &str) -> Result<Routing, Error> {
        Routing::parse(text, "<inline>", &|name| std::env::var(name).ok())
    }

    /// As [`Routing::from_toml_str`], with the environment given, for
    /// tests and tools.
    pub fn from_toml_str_with_env(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Routing, Error> {
        Routing::parse(text, "<inline>", &env)
    }

    /// Who gets an alert for `reason` at escalation `level` (0 first) about
    /// an incident of `unit`. A level past the last gives the last level's
    /// recipients, so a late escalation never reaches nobody. One
    /// [`Recipient`] per address or webhook, each once.
    pub fn recipients(
        &self,
        reason: AlertReason,
        unit: Option<&str>,
        level: u32,
    ) -> Vec<Recipient> {
        self.recipients_for_units(reason, unit, level)
    }

    /// As [`Routing::recipients`] for an incident reported by several
    /// units: each unit's manager (or the default) is included, once.
    pub fn recipients_for_units<'u>(
        &self,
        reason: AlertReason,
        units: impl IntoIterator<Item = &'u str>,
        level: u32,
    ) -> Vec<Recipient> {
        let units: Vec<&str> = units.into_iter().collect();
        let Some(levels) = self.escalation.get(&reason) else {
            return Vec::new();
        };
        let Some(level) = usize::try_from(level)
            .ok()
            .and_then(|l| levels.get(l))
            .or(levels.last())
        else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for role in &level.roles {
            let Some(contacts) = self.roles.get(role) else {
                continue;
            };
            for contact in contacts.for_units(&units) {
                for email in &contact.emails {
                    if seen.insert(format!("email:{}", email.to_lowercase())) {
                        out.push(Recipient {
                            role: role.as_str().to_owned(),
                            name: contact.name.clone(),
                            email: email.clone(),
                            webhook: String::new(),
                        });
                    }
                }
                for webhook in &contact.webhooks {
                    if seen.insert(format!("webhook:{webhook}")) {
                        out.push(Recipient {
                            role: role.as_str().to_owned(),
                            name: contact.name.clone(),
                            email: String::new(),
                            webhook: webhook.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// How long an alert for `reason` at `level` waits for an
    /// acknowledgement before it goes to `level + 1`; `None` at (or past)
    /// the last level.
    pub fn escalation(&self, reason: AlertReason, level: u32) -> Option<TimeDelta> {
        let level = usize::try_from(level).ok()?;
        self.escalation.get(&reason)?.get(level)?.ack_within
    }

    /// The escalation levels of a reason.
    pub fn levels(&self, reason: AlertReason) -> &[Level] {
        self.escalation.get(&reason).map_or(&[], Vec::as_slice)
    }

    /// A webhook by name.
    pub fn webhook(&self, name: &str) -> Option<&Webhook> {
        self.webhooks.get(name)
    }

    /// Every webhook, by name.
    pub fn webhooks(&self) -> impl Iterator<Item = &Webhook> {
        self.webhooks.values()
    }

    /// The file this routing came from (`<inline>` for a string).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Addresses under the reserved `.invalid` domain: placeholders that
    /// must be replaced before production. Worth a warning at start-up.
    pub fn placeholder_addresses(&self) -> Vec<String> {
        let mut found: Vec<String> = self
            .roles
            .values()
            .flat_map(|r| std::iter::once(&r.default).chain(r.units.values()))
            .flat_map(|c| c.emails.iter())
            .filter(|e| e.to_ascii_lowercase().ends_with(".invalid"))
            .cloned()
            .collect();
        found.sort();
        found.dedup();
        found
    }

    fn parse(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Routing, Error> {
        let root: toml::Table = toml::from_str(text).map_err(|e| Error::Syntax {
            file: file.to_owned(),
            line: e.span().map_or(1, |span| {
                text[..span.start.min(text.len())].matches('\n').count() + 1
            }),
            problem: e.message().to_owned(),
        })?;
        let p = Parser { file, env };
        p.known_keys(&root, "", &["roles", "webhooks", "escalation"])?;

        let mut webhooks = BTreeMap::new();
        if let Some(value) = root.get("webhooks") {
            for (name, value) in p.table(value, "webhooks")? {
                let webhook = p.webhook(name, value)?;
                webhooks.insert(name.clone(), webhook);
            }
        }

        let mut roles = BTreeMap::new();
        let roles_table = p.table(p.required(&root, "", "roles")?, "roles")?;
        for (name, value) in roles_table {
            let key = format!("roles.{name}");
            let role = Role::from_str(name).map_err(|problem| p.invalid(&key, problem))?;
            roles.insert(role, p.role(&key, value, &webhooks)?);
        }

        let mut escalation = BTreeMap::new();
        let escalation_table = p.table(p.required(&root, "", "escalation")?, "escalation")?;
        for (name, value) in escalation_table {
            let key = format!("escalation.{name}");
            let reason = AlertReason::from_str(name).map_err(|e| p.invalid(&key, e.to_string()))?;
            escalation.insert(reason, p.levels(&key, value, &roles)?);
        }
        if let Some(missing) = AlertReason::ALL
            .into_iter()
            .find(|r| !escalation.contains_key(r))
        {
            return Err(p.invalid(
                &format!("escalation.{missing}"),
                "missing: every alert reason needs at least one level \
                 (`[[escalation.<reason>]]` with `roles`)",
            ));
        }

        Ok(Routing {
            file: file.to_owned(),
            roles,
            webhooks,
            escalation,
        })
    }
}

/// Walks the TOML tree, naming the key of every problem.
struct Parser<'a> {
    file: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Parser<'_> {
    fn invalid(&self, key: &str, problem: impl Into<String>) -> Error {
        Error::Invalid {
            file: self.file.to_owned(),
            key: key.to_owned(),
            problem: problem.into(),
        }
    }

    fn join(prefix: &str, key: &str) -> String {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        }
    }

    fn known_keys(&self, table: &toml::Table, prefix: &str, allowed: &[&str]) -> Result<(), Error> {
        match table.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(unknown) => Err(self.invalid(
                &Self::join(prefix, unknown),
                format!("unknown key; expected one of {}", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    fn required<'t>(
        &self,
        table: &'t toml::Table,
        prefix: &str,
        key: &str,
    ) -> Result<&'t toml::Value, Error> {
        table
            .get(key)
            .ok_or_else(|| self.invalid(&Self::join(prefix, key), "missing"))
    }

    fn table<'t>(&self, value: &'t toml::Value, key: &str) -> Result<&'t toml::Table, Error> {
        value
            .as_table()
            .ok_or_else(|| self.invalid(key, format!("must be a table, not {}", value.type_str())))
    }

    fn string<'t>(&self, value: &'t toml::Value, key: &str) -> Result<&'t str, Error> {
        let s = value.as_str().ok_or_else(|| {
            self.invalid(key, format!("must be a string, not {}", value.type_str()))
        })?;
        if s.trim().is_empty() {
            return Err(self.invalid(key, "must not be empty"));
        }
        Ok(s.trim())
    }

    /// A string or an array of strings.
    fn strings(&self, value: &toml::Value, key: &str) -> Result<Vec<String>, Error> {
        match value {
            toml::Value::String(_) => Ok(vec![self.string(value, key)?.to_owned()]),
            toml::Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.string(item, &format!("{key}[{i}]")).map(str::to_owned))
                .collect(),
            other => Err(self.invalid(
                key,
                format!(
                    "must be a string or an array of strings, not {}",
                    other.type_str()
                ),
            )),
        }
    }

    fn webhook(&self, name: &str, value: &toml::Value) -> Result<Webhook, Error> {
        let key = format!("webhooks.{name}");
        let table = self.table(value, &key)?;
        if table.contains_key("secret") {
            return Err(self.invalid(
                &format!("{key}.secret"),
                "a secret never goes in the routing file; put it in an environment \
                 variable and name that variable with `secret_env`",
            ));
        }
        self.known_keys(table, &key, &["url", "format", "secret_env"])?;
        let url_key = format!("{key}.url");
        let url = self.string(self.required(table, &key, "url")?, &url_key)?;
        check_url(url).map_err(|problem| self.invalid(&url_key, problem))?;
        let format = match table.get("format") {
            None => WebhookFormat::Json,
            Some(v) => match self.string(v, &format!("{key}.format"))? {
                "json" => WebhookFormat::Json,
                "teams" => WebhookFormat::Teams,
                other => {
                    return Err(self.invalid(
                        &format!("{key}.format"),
                        format!("unknown format `{other}`; expected `json` or `teams`"),
                    ));
                }
            },
        };
        let secret = match table.get("secret_env") {
            None => None,
            Some(v) => {
                let env_key = format!("{key}.secret_env");
                let var = self.string(v, &env_key)?;
                match (self.env)(var) {
                    Some(secret) if !secret.is_empty() => Some(Secret(secret)),
                    _ => {
                        return Err(self.invalid(
                            &env_key,
                            format!("the environment variable `{var}` is not set or empty"),
                        ));
                    }
                }
            }
        };
        Ok(Webhook {
            name: name.to_owned(),
            url: url.to_owned(),
            format,
            secret,
        })
    }

    fn role(
        &self,
        key: &str,
        value: &toml::Value,
        webhooks: &BTreeMap<String, Webhook>,
    ) -> Result<RoleContacts, Error> {
        let table = self.table(value, key)?;
        self.known_keys(table, key, &["name", "email", "webhooks", "phone", "units"])?;
        let default = self.contact(key, table, webhooks)?;
        let mut units = BTreeMap::new();
        if let Some(value) = table.get("units") {
            let units_key = format!("{key}.units");
            for (unit, value) in self.table(value, &units_key)? {
                let unit_key_path = format!("{units_key}.\"{unit}\"");
                let unit_table = self.table(value, &unit_key_path)?;
                self.known_keys(
                    unit_table,
                    &unit_key_path,
                    &["name", "email", "webhooks", "phone"],
                )?;
                let contact = self.contact(&unit_key_path, unit_table, webhooks)?;
                let normalised = unit_key(unit);
                if normalised.is_empty() {
                    return Err(self.invalid(&unit_key_path, "the unit name is empty"));
                }
                if units.insert(normalised, contact).is_some() {
                    return Err(self.invalid(
                        &unit_key_path,
                        "the same unit appears twice (names are compared ignoring case and spaces)",
                    ));
                }
            }
        }
        Ok(RoleContacts { default, units })
    }

    fn contact(
        &self,
        key: &str,
        table: &toml::Table,
        webhooks: &BTreeMap<String, Webhook>,
    ) -> Result<Contact, Error> {
        let name = self
            .string(self.required(table, key, "name")?, &format!("{key}.name"))?
            .to_owned();
        let emails = match table.get("email") {
            None => Vec::new(),
            Some(v) => self.strings(v, &format!("{key}.email"))?,
        };
        for (i, email) in emails.iter().enumerate() {
            if email.parse::<lettre::Address>().is_err() {
                return Err(self.invalid(
                    &format!("{key}.email[{i}]"),
                    format!("`{email}` is not an e-mail address"),
                ));
            }
        }
        let hooks = match table.get("webhooks") {
            None => Vec::new(),
            Some(v) => self.strings(v, &format!("{key}.webhooks"))?,
        };
        for (i, hook) in hooks.iter().enumerate() {
            if !webhooks.contains_key(hook) {
                return Err(self.invalid(
                    &format!("{key}.webhooks[{i}]"),
                    format!("no webhook named `{hook}` under [webhooks]"),
                ));
            }
        }
        if emails.is_empty() && hooks.is_empty() {
            return Err(self.invalid(
                key,
                "reaches nobody: give at least one `email` or `webhooks` entry",
            ));
        }
        let phone = match table.get("phone") {
            None => None,
            Some(v) => Some(self.string(v, &format!("{key}.phone"))?.to_owned()),
        };
        Ok(Contact {
            name,
            emails,
            webhooks: hooks,
            phone,
        })
    }

    fn levels(
        &self,
        key: &str,
        value: &toml::Value,
        roles: &BTreeMap<Role, RoleContacts>,
    ) -> Result<Vec<Level>, Error> {
        let items = value.as_array().ok_or_else(|| {
            self.invalid(
                key,
                "must be an array of tables: write each level as `[[escalation.<reason>]]`",
            )
        })?;
        if items.is_empty() {
            return Err(self.invalid(key, "needs at least one level"));
        }
        let last = items.len() - 1;
        let mut levels = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let level_key = format!("{key}[{i}]");
            let table = self.table(item, &level_key)?;
            self.known_keys(table, &level_key, &["roles", "ack_within"])?;
            let roles_key = format!("{level_key}.roles");
            let names = self.strings(self.required(table, &level_key, "roles")?, &roles_key)?;
            if names.is_empty() {
                return Err(self.invalid(&roles_key, "needs at least one role"));
            }
            let mut level_roles = Vec::with_capacity(names.len());
            for (j, name) in names.iter().enumerate() {
                let role_key = format!("{roles_key}[{j}]");
                let role = Role::from_str(name).map_err(|p| self.invalid(&role_key, p))?;
                if !roles.contains_key(&role) {
                    return Err(self.invalid(
                        &role_key,
                        format!("the role `{role}` has no contacts under [roles.{role}]"),
                    ));
                }
                if !level_roles.contains(&role) {
                    level_roles.push(role);
                }
            }
            let ack_key = format!("{level_key}.ack_within");
            let ack_within = match (table.get("ack_within"), i == last) {
                (Some(_), true) => {
                    return Err(self.invalid(
                        &ack_key,
                        "the last level has no next level to escalate to; remove `ack_within` \
                         or add a level after it",
                    ));
                }
                (None, true) => None,
                (None, false) => {
                    return Err(self.invalid(
                        &ack_key,
                        "missing: every level but the last says how long to wait, e.g. \"30m\"",
                    ));
                }
                (Some(v), false) => Some(
                    parse_duration(self.string(v, &ack_key)?)
                        .map_err(|problem| self.invalid(&ack_key, problem))?,
                ),
            };
            levels.push(Level {
                roles: level_roles,
                ack_within,
            });
        }
        Ok(levels)
    }
}

/// Unit names are compared ignoring case and runs of spaces.
fn unit_key(unit: &str) -> String {
    unit.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// `https://…` anywhere; `http://…` only to loopback, since alerts carry
/// incident details.
fn check_url(url: &str) -> Result<(), String> {
    let host_part = |rest: &str| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        if let Some(v6) = host.strip_prefix('[') {
            v6.split(']').next().unwrap_or("").to_owned()
        } else {
            host.split(':').next().unwrap_or("").to_owned()
        }
    };
    if let Some(rest) = url.strip_prefix("https://") {
        if host_part(rest).is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        Ok(())
    } else if let Some(rest) = url.strip_prefix("http://") {
        match host_part(rest).as_str() {
            "127.0.0.1" | "localhost" | "::1" => Ok(()),
            "" => Err(format!("`{url}` has no host")),
            _ => Err(format!(
                "`{url}`: use https; plain http is allowed only to a loopback address"
            )),
        }
    } else {
        Err(format!("`{url}` is not an http(s) URL"))
    }
}

/// Parses `30m`, `2h`, `1h30m`, `90s`, `1d`: whole numbers with a unit.
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let usage = || format!("`{text}` is not a duration; write e.g. \"30m\", \"2h\" or \"1h30m\"");
    let mut total = TimeDelta::zero();
    let mut number = String::new();
    let mut parts = 0;
    for ch in text.trim().chars() {
        if ch.is_ascii_digit() {
            number.push(ch);
        } else if ch.is_whitespace() && number.is_empty() {
            continue;
        } else {
            let n: i64 = number.parse().map_err(|_| usage())?;
            let part = match ch {
                'd' => TimeDelta::try_days(n),
                'h' => TimeDelta::try_hours(n),
                'm' => TimeDelta::try_minutes(n),
                's' => TimeDelta::try_seconds(n),
                _ => None,
            }
            .ok_or_else(usage)?;
            total = total.checked_add(&part).ok_or_else(usage)?;
            number.clear();
            parts += 1;
        }
    }
    if !number.is_empty() || parts == 0 {
        return Err(usage());
    }
    if total <= TimeDelta::zero() {
        return Err(format!("`{text}` must be longer than zero"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../deploy/routing.example.toml");

    /// A small routing with a unit manager and a signed webhook.
    const TEST: &str = r#"
[webhooks.teams]
url = "https://example.invalid/teams"
format = "teams"
secret_env = "TEST_TEAMS_SECRET"

[roles.intraservice_desk]
name = "Intraservice"
email = "desk@example.invalid"

[roles.manager]
name = "Chef (standard)"
email = ["chef@example.invalid"]

[roles.manager.units."Hemsjukvården  Väster"]
name = "Chef Hemsjukvården Väster"
email = ["chef.vaster@example.invalid"]

[roles.nis_assessor]
name = "NIS-bedömare"
email = ["nis@example.invalid", "NIS@example.invalid"]

[roles.security_unit]
name = "Säkerhetsenheten"
email = ["sakerhet@example.invalid"]
webhooks = ["teams"]

[roles.on_call]
name = "Jour"
email = ["jour@example.invalid"]

[[escalation.suspected_nis]]
roles = ["intraservice_desk", "manager"]
ack_within = "30m"
[[escalation.suspected_nis]]
roles = ["intraservice_desk", "manager", "nis_assessor"]

[[escalation.needs_assessment]]
roles = ["manager", "nis_assessor"]

[[escalation.reportable]]
roles = ["nis_assessor", "security_unit", "manager"]
ack_within = "1h30m"
[[escalation.reportable]]
roles = ["nis_assessor", "security_unit", "manager", "on_call"]

[[escalation.warning]]
roles = ["nis_assessor", "manager"]
[[escalation.due]]
roles = ["nis_assessor", "manager", "security_unit"]
[[escalation.overdue]]
roles = ["nis_assessor", "manager", "security_unit", "on_call"]
[[escalation.watchdog]]
roles = ["security_unit", "on_call"]
"#;

    fn env(name: &str) -> Option<String> {
        name.ends_with("SECRET").then(|| "s3cret".to_owned())
    }

    fn routing() -> Routing {
        Routing::from_toml_str_with_env(TEST, env).expect("test routing is valid")
    }

    fn roles(recipients: &[Recipient]) -> Vec<&str> {
        let mut roles: Vec<&str> = recipients.iter().map(|r| r.role.as_str()).collect();
        roles.dedup();
        roles
    }

    fn emails(recipients: &[Recipient]) -> Vec<&str> {
        recipients
            .iter()
            .filter(|r| !r.email.is_empty())
            .map(|r| r.email.as_str())
            .collect()
    }

    fn error(text: &str) -> String {
        Routing::from_toml_str_with_env(text, env)
            .expect_err("the routing should be refused")
            .to_string()
    }

    #[test]
    fn the_example_file_routes_as_issue_5_says() {
        let r = Routing::from_toml_str_with_env(EXAMPLE, env).expect("example is valid");
        let first = |reason| {
            let mut roles: Vec<String> = r.levels(reason)[0]
                .roles
                .iter()
                .map(|role| role.as_str().to_owned())
                .collect();
            roles.sort();
            roles
        };
        assert_eq!(
            first(AlertReason::SuspectedNis),
            ["intraservice_desk", "manager"]
        );
        assert_eq!(
            first(AlertReason::NeedsAssessment),
            ["manager", "nis_assessor"]
        );
        assert_eq!(
            first(AlertReason::Reportable),
            ["manager", "nis_assessor", "security_unit"]
        );
        assert_eq!(first(AlertReason::Warning), ["manager", "nis_assessor"]);
        assert_eq!(
            first(AlertReason::Due),
            ["manager", "nis_assessor", "security_unit"]
        );
        assert_eq!(
            first(AlertReason::Overdue),
            ["manager", "nis_assessor", "on_call", "security_unit"]
        );
        assert_eq!(first(AlertReason::Watchdog), ["on_call", "security_unit"]);
        let desk = r.recipients(AlertReason::SuspectedNis, None, 0);
        assert!(emails(&desk).contains(&"support.intraservice@intraservice.goteborg.se"));
        let security = r.recipients(AlertReason::Watchdog, None, 0);
        assert!(emails(&security).contains(&"sakerhet@aldrevardomsorg.goteborg.se"));
        assert!(!r.placeholder_addresses().is_empty());
        assert!(
            !r.placeholder_addresses()
                .iter()
                .any(|a| a.ends_with("goteborg.se"))
        );
    }

    #[test]
    fn a_units_own_manager_is_alerted_and_others_get_the_default() {
        let r = routing();
        let own = r.recipients(AlertReason::SuspectedNis, Some("hemsjukvården väster"), 0);
        assert_eq!(
            emails(&own),
            ["desk@example.invalid", "chef.vaster@example.invalid"]
        );
        let other = r.recipients(AlertReason::SuspectedNis, Some("Okänd enhet"), 0);
        assert_eq!(
            emails(&other),
            ["desk@example.invalid", "chef@example.invalid"]
        );
        let none = r.recipients(AlertReason::SuspectedNis, None, 0);
        assert_eq!(
            emails(&none),
            ["desk@example.invalid", "chef@example.invalid"]
        );
        let both = r.recipients_for_units(
            AlertReason::NeedsAssessment,
            ["Hemsjukvården Väster", "Annan"],
            0,
        );
        assert_eq!(
            emails(&both),
            [
                "chef.vaster@example.invalid",
                "chef@example.invalid",
                "nis@example.invalid"
            ]
        );
    }

    #[test]
    fn each_address_and_webhook_is_a_recipient_once() {
        let r = routing();
        let reportable = r.recipients(AlertReason::Reportable, None, 0);
        assert_eq!(
            roles(&reportable),
            ["nis_assessor", "security_unit", "manager"]
        );
        // NIS@ and nis@ are one mailbox.
        assert_eq!(
            emails(&reportable),
            [
                "nis@example.invalid",
                "sakerhet@example.invalid",
                "chef@example.invalid"
            ]
        );
        let hooks: Vec<&str> = reportable
            .iter()
            .filter(|r| !r.webhook.is_empty())
            .map(|r| r.webhook.as_str())
            .collect();
        assert_eq!(hooks, ["teams"]);
        assert!(
            reportable
                .iter()
                .all(|r| r.email.is_empty() != r.webhook.is_empty())
        );
    }

    #[test]
    fn escalation_widens_the_circle_until_the_last_level() {
        let r = routing();
        assert_eq!(
            r.escalation(AlertReason::Reportable, 0),
            Some(TimeDelta::minutes(90))
        );
        assert_eq!(r.escalation(AlertReason::Reportable, 1), None);
        assert_eq!(r.escalation(AlertReason::Reportable, 7), None);
        assert_eq!(r.escalation(AlertReason::Overdue, 0), None);
        let level1 = r.recipients(AlertReason::Reportable, None, 1);
        assert!(roles(&level1).contains(&"on_call"));
        // Past the last level: still the last level's people, never nobody.
        assert_eq!(r.recipients(AlertReason::Reportable, None, 9), level1);
        assert_eq!(
            roles(&r.recipients(AlertReason::Overdue, None, 0)),
            ["nis_assessor", "manager", "security_unit", "on_call"]
        );
        assert_eq!(
            roles(&r.recipients(AlertReason::Watchdog, None, 0)),
            ["security_unit", "on_call"]
        );
    }

    #[test]
    fn webhooks_carry_their_secret_from_the_environment_only() {
        let r = routing();
        let teams = r.webhook("teams").expect("defined");
        assert_eq!(teams.format, WebhookFormat::Teams);
        assert_eq!(teams.secret.as_ref().map(Secret::expose), Some("s3cret"));
        assert!(!format!("{teams:?}").contains("s3cret"));

        let in_file = TEST.replace("secret_env = \"TEST_TEAMS_SECRET\"", "secret = \"oops\"");
        assert!(
            error(&in_file).starts_with("<inline>: `webhooks.teams.secret`: a secret never goes")
        );
        let unset = TEST.replace("TEST_TEAMS_SECRET", "TEST_TEAMS_KEY");
        assert_eq!(
            error(&unset),
            "<inline>: `webhooks.teams.secret_env`: the environment variable `TEST_TEAMS_KEY` is not set or empty"
        );
    }

    #[test]
    fn config_errors_name_the_file_the_key_and_the_problem() {
        let cases = [
            (
                TEST.replace("ack_within = \"30m\"", "ack_within = \"half an hour\""),
                "`escalation.suspected_nis[0].ack_within`: `half an hour` is not a duration",
            ),
            (
                TEST.replace(
                    "roles = [\"security_unit\", \"on_call\"]",
                    "roles = [\"security_unit\", \"janitor\"]",
                ),
                "`escalation.watchdog[0].roles[1]`: unknown role `janitor`",
            ),
            (
                TEST.replace("[[escalation.watchdog]]", "[[escalation.panic]]"),
                "`escalation.panic`: unknown alert reason `panic`",
            ),
            (
                TEST.replace("webhooks = [\"teams\"]", "webhooks = [\"slack\"]"),
                "`roles.security_unit.webhooks[0]`: no webhook named `slack`",
            ),
            (
                TEST.replace(
                    "email = [\"jour@example.invalid\"]",
                    "email = [\"jour at example\"]",
                ),
                "`roles.on_call.email[0]`: `jour at example` is not an e-mail address",
            ),
            (
                TEST.replace(
                    "email = [\"jour@example.invalid\"]",
                    "mail = [\"jour@example.invalid\"]",
                ),
                "`roles.on_call.mail`: unknown key",
            ),
            (
                TEST.replace(
                    "url = \"https://example.invalid/teams\"",
                    "url = \"http://teams.example/\"",
                ),
                "`webhooks.teams.url`: `http://teams.example/`: use https",
            ),
            (
                TEST.replace("format = \"teams\"", "format = \"slack\""),
                "`webhooks.teams.format`: unknown format `slack`",
            ),
            (
                TEST.replace(
                    "roles = [\"intraservice_desk\", \"manager\", \"nis_assessor\"]",
                    "roles = [\"manager\"]\nack_within = \"1h\"",
                ),
                "`escalation.suspected_nis[1].ack_within`: the last level has no next level",
            ),
            (
                TEST.replace(
                    "[[escalation.watchdog]]\nroles = [\"security_unit\", \"on_call\"]",
                    "",
                ),
                "`escalation.watchdog`: missing",
            ),
            (
                TEST.replace(
                    "[roles.on_call]\nname = \"Jour\"\nemail = [\"jour@example.invalid\"]",
                    "",
                ),
                "`escalation.overdue[0].roles[3]`: the role `on_call` has no contacts",
            ),
            (
                TEST.replace("email = \"desk@example.invalid\"", ""),
                "`roles.intraservice_desk`: reaches nobody",
            ),
        ];
        for (text, expected) in cases {
            let got = error(&text);
            assert!(
                got.starts_with(&format!("<inline>: {expected}")),
                "expected {expected}\n     got {got}"
            );
        }
        let syntax = error("[roles\nname = 1");
        assert!(
            syntax.starts_with("<inline>: line 1: not valid TOML"),
            "{syntax}"
        );
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("routing.toml");
        let missing = Routing::load(&path).expect_err("no file").to_string();
        assert!(missing.starts_with(&format!("{}: cannot read", path.display())));
        let text = TEST
            .replace("1h30m", "0m")
            .replace("secret_env = \"TEST_TEAMS_SECRET\"", "");
        std::fs::write(&path, text).expect("write");
        let zero = Routing::load(&path).expect_err("zero duration").to_string();
        assert_eq!(
            zero,
            format!(
                "{}: `escalation.reportable[0].ack_within`: `0m` must be longer than zero",
                path.display()
            )
        );
    }

    #[test]
    fn durations_parse_as_written() {
        assert_eq!(parse_duration("30m"), Ok(TimeDelta::minutes(30)));
        assert_eq!(parse_duration("1h30m"), Ok(TimeDelta::minutes(90)));
        assert_eq!(parse_duration("1h 30m"), Ok(TimeDelta::minutes(90)));
        assert_eq!(parse_duration("1d"), Ok(TimeDelta::hours(24)));
        assert_eq!(parse_duration("45s"), Ok(TimeDelta::seconds(45)));
        for bad in ["", "30", "m", "30x", "-5m", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
