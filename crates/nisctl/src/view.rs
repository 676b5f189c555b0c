//! Text views of the projection for a terminal: tables with Swedish (or
//! English) headings and every time in Europe/Stockholm. Pure functions of
//! JSON and an explicit `now`; no I/O here, and no judgement: what is
//! reportable or due is read from the projection as it is.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use chrono_tz::Europe::Stockholm;
use serde_json::Value;

use crate::{Lang, time};

fn l(lang: Lang, sv: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Sv => sv,
        Lang::En => en,
    }
}

/// `2026-03-01 14:05` in Swedish time, or `–`.
pub fn local(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| {
        t.with_timezone(&Stockholm)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    })
    .unwrap_or_else(|| "–".into())
}

/// `om 5 h 12 min` / `försenad 3 min`.
pub fn left(due: DateTime<Utc>, now: DateTime<Utc>, lang: Lang) -> String {
    let secs = (due - now).num_seconds();
    let a = secs.unsigned_abs();
    let (d, h, m) = (a / 86_400, a / 3600 % 24, a / 60 % 60);
    let span = if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else {
        format!("{m} min")
    };
    if secs >= 0 {
        format!("{} {span}", l(lang, "om", "in"))
    } else {
        format!("{} {span}", l(lang, "försenad", "overdue"))
    }
}

/// Columns padded to their widest cell (counted in characters).
fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = w
                .get(i)
                .copied()
                .unwrap_or(0)
                .saturating_sub(c.chars().count());
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(head.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

fn reportable(i: &Value) -> bool {
    i["assessments"]
        .as_array()
        .is_some_and(|a| a.iter().any(|a| a["reportable"] == true))
}

fn next_deadline(i: &Value) -> Option<&Value> {
    i["deadlines"]
        .as_array()?
        .iter()
        .filter(|d| d["status"] == "pending")
        .min_by_key(|d| time(&d["due_at"]))
}

fn label(d: &Value, lang: Lang) -> String {
    let key = l(lang, "label_sv", "label_en");
    format!("{} {}", str_of(&d["duty"]).to_uppercase(), str_of(&d[key]))
}

/// The `list` table.
pub fn list(incidents: &[Value], lang: Lang, now: DateTime<Utc>) -> String {
    if incidents.is_empty() {
        return format!(
            "{}\n",
            l(lang, "Inga öppna incidenter.", "No open incidents.")
        );
    }
    let rows: Vec<Vec<String>> = incidents
        .iter()
        .map(|i| {
            let next = next_deadline(i);
            vec![
                str_of(&i["id"]),
                str_of(&i["status"]),
                str_of(&i["system"]),
                if reportable(i) {
                    l(lang, "JA", "YES")
                } else {
                    l(lang, "nej", "no")
                }
                .into(),
                next.map(|d| format!("{} {}", label(d, lang), local(time(&d["due_at"]))))
                    .unwrap_or_else(|| "–".into()),
                next.and_then(|d| time(&d["due_at"]))
                    .map(|t| left(t, now, lang))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "STATUS",
            "SYSTEM",
            l(lang, "RAPPORTERINGSPLIKTIG", "REPORTABLE"),
            l(lang, "NÄSTA TIDSGRÄNS", "NEXT DEADLINE"),
            l(lang, "KVAR", "LEFT"),
        ],
        &rows,
    )
}

/// The `show` text.
pub fn show(i: &Value, lang: Lang, now: DateTime<Utc>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}  {}", str_of(&i["id"]), str_of(&i["system"]));
    let units = i["units"]
        .as_array()
        .map(|u| u.iter().map(str_of).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "{}: {}   {}: {}   {}: {}",
        l(lang, "Status", "Status"),
        str_of(&i["status"]),
        l(lang, "Kategori", "Category"),
        str_of(&i["category"]),
        l(lang, "Enheter", "Units"),
        units
    );
    let _ = writeln!(
        o,
        "{}: {}   {}: {}   {}: {}",
        l(lang, "Störningen började", "Disruption began"),
        local(time(&i["disruption_started_at"])),
        l(lang, "slutade", "ended"),
        i["disruption_ended_at"]
            .as_str()
            .map(|_| local(time(&i["disruption_ended_at"])))
            .unwrap_or_else(|| l(lang, "pågår", "ongoing").into()),
        l(lang, "ärenden", "tickets"),
        i["ticket_count"]
    );
    let f = &i["flags"];
    let mut flags = Vec::new();
    if f["suspected_nis"] == true {
        flags.push(l(lang, "misstänkt NIS-incident", "suspected NIS incident"));
    }
    if f["needs_assessment"] == true {
        flags.push(l(lang, "behöver bedömning", "needs assessment"));
    }
    if f["personal_identifiers"] == true {
        flags.push(l(
            lang,
            "personnummer fanns i ärendet",
            "identity numbers were in the ticket",
        ));
    }
    if !flags.is_empty() {
        let _ = writeln!(o, "{}: {}", l(lang, "Flaggor", "Flags"), flags.join(", "));
    }
    for a in i["assessments"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "\n{} {} {}: {}{}",
            l(lang, "Regelverk", "Rule set"),
            str_of(&a["rule_set"]),
            str_of(&a["rule_set_version"]),
            if a["reportable"] == true {
                l(lang, "RAPPORTERINGSPLIKTIG", "REPORTABLE")
            } else {
                l(lang, "inte rapporteringspliktig", "not reportable")
            },
            a["identified_at"]
                .as_str()
                .map(|_| format!(
                    " ({} {})",
                    l(lang, "identifierad", "identified"),
                    local(time(&a["identified_at"]))
                ))
                .unwrap_or_default()
        );
        for c in a["criteria"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["met"] == true)
        {
            let _ = writeln!(o, "  ✔ {}: {}", str_of(&c["id"]), str_of(&c["reason"]));
        }
        for p in a["pending_thresholds"].as_array().into_iter().flatten() {
            let _ = writeln!(
                o,
                "  … {}: {} {}",
                str_of(&p["criterion"]),
                l(lang, "uppfylls", "met at"),
                local(time(&p["at"]))
            );
        }
    }
    let deadlines = i["deadlines"].as_array().cloned().unwrap_or_default();
    if !deadlines.is_empty() {
        let _ = writeln!(o);
        let rows: Vec<Vec<String>> = deadlines
            .iter()
            .map(|d| {
                let status = match d["status"].as_str() {
                    Some("pending") => time(&d["due_at"])
                        .map(|t| left(t, now, lang))
                        .unwrap_or_default(),
                    Some("met") => format!(
                        "{} {}",
                        l(lang, "rapporterad", "reported"),
                        local(time(&d["met_at"]))
                    ),
                    Some(s) => s.to_string(),
                    None => String::new(),
                };
                vec![
                    str_of(&d["rule_set"]),
                    label(d, lang),
                    format!(
                        "{}{}",
                        local(time(&d["due_at"])),
                        if d["provisional"] == true {
                            l(lang, " (prel.)", " (prov.)")
                        } else {
                            ""
                        }
                    ),
                    status,
                    str_of(&d[l(lang, "channel_sv", "channel_en")]),
                ]
            })
            .collect();
        o.push_str(&table(
            &[
                l(lang, "REGELVERK", "RULE SET"),
                l(lang, "SKEDE", "STAGE"),
                l(lang, "SENAST", "DUE"),
                l(lang, "KVAR/STATUS", "LEFT/STATUS"),
                l(lang, "KANAL", "CHANNEL"),
            ],
            &rows,
        ));
    }
    let timeline = i["timeline"].as_array().cloned().unwrap_or_default();
    if !timeline.is_empty() {
        let _ = writeln!(
            o,
            "\n{}",
            l(lang, "Händelser (senaste 10):", "Timeline (last 10):")
        );
        for e in timeline.iter().rev().take(10).rev() {
            let _ = writeln!(o, "  {}  {}", local(time(&e["at"])), str_of(&e["text"]));
        }
    }
    o
}

/// The `alerts` table.
pub fn alerts(alerts: &[Value], lang: Lang) -> String {
    if alerts.is_empty() {
        return format!(
            "{}\n",
            l(lang, "Inga okvitterade larm.", "No unacknowledged alerts.")
        );
    }
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            vec![
                str_of(&a["id"]),
                local(time(&a["raised_at"])),
                str_of(&a["severity"]),
                str_of(&a["incident_id"]),
                str_of(&a[l(lang, "title_sv", "title_en")]),
                a["acked_by"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            l(lang, "LARMAT", "RAISED"),
            l(lang, "NIVÅ", "SEVERITY"),
            "INCIDENT",
            l(lang, "RUBRIK", "TITLE"),
            l(lang, "KVITTERAT AV", "ACKED BY"),
        ],
        &rows,
    )
}

/// One line for `watch`: local time, what happened, the incident.
pub fn event_line(v: &Value, lang: Lang, now: DateTime<Utc>) -> String {
    let kind = v["type"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("nisvakt.v1.");
    let what = match kind {
        "IncidentOpened" => l(lang, "incident öppnad", "incident opened"),
        "IncidentUpdated" => l(lang, "incident uppdaterad", "incident updated"),
        "IncidentAssessed" => l(lang, "ny bedömning", "new assessment"),
        "IncidentResolved" => l(lang, "incident avslutad", "incident resolved"),
        "DeadlineScheduled" => l(lang, "tidsgräns satt", "deadline scheduled"),
        "DeadlineWarning" => l(
            lang,
            "VARNING: tidsgräns närmar sig",
            "WARNING: deadline approaching",
        ),
        "DeadlineDue" => l(lang, "TIDSGRÄNS NU", "DEADLINE DUE"),
        "DeadlineOverdue" => l(lang, "TIDSGRÄNS PASSERAD", "DEADLINE OVERDUE"),
        "DeadlineMet" => l(lang, "skede rapporterat", "stage reported"),
        "ThresholdReached" => l(lang, "tröskel nådd", "threshold reached"),
        "AlertRaised" => l(lang, "LARM", "ALERT"),
        "AlertEscalated" => l(lang, "LARM ESKALERAT", "ALERT ESCALATED"),
        "AlertAcknowledged" => l(lang, "larm kvitterat", "alert acknowledged"),
        "" => l(lang, "händelse", "event"),
        other => other,
    };
    let clock = now.with_timezone(&Stockholm).format("%H:%M:%S");
    format!(
        "{clock}  {what:<32}  {}  {}",
        v["incident_id"].as_str().unwrap_or("–"),
        v["subject"].as_str().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_are_swedish_local_and_countdowns_read_naturally() {
        let t = DateTime::parse_from_rfc3339("2026-07-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(local(Some(t)), "2026-07-01 12:00");
        let w = DateTime::parse_from_rfc3339("2026-01-15T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(local(Some(w)), "2026-01-15 11:00");
        assert_eq!(
            left(t + chrono::Duration::minutes(312), t, Lang::Sv),
            "om 5 h 12 min"
        );
        assert_eq!(
            left(t - chrono::Duration::minutes(3), t, Lang::En),
            "overdue 3 min"
        );
    }

    #[test]
    fn the_list_names_the_next_pending_deadline() {
        let now = Utc::now();
        let i = json!({
            "id": "inc_1", "status": "open", "system": "Journalsystemet",
            "assessments": [{"reportable": true}],
            "deadlines": [
                {"status": "met", "duty": "nis", "label_sv": "Skede 1", "due_at": "2026-01-01T00:00:00Z"},
                {"status": "pending", "duty": "nis", "label_sv": "Skede 2", "due_at": (now + chrono::Duration::hours(3)).to_rfc3339()}
            ]
        });
        let out = list(&[i], Lang::Sv, now);
        assert!(out.starts_with("ID"), "{out}");
        assert!(out.contains("NIS Skede 2") && out.contains("JA"), "{out}");
    }
}
