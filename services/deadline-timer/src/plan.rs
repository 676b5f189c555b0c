//! The pure core of the deadline-timer: which timers an incident snapshot
//! asks for, which moments (slots) each timer fires at, and how late a
//! firing was. No I/O and no clock: `now` is always a parameter.

use chrono::{DateTime, Duration, Utc};
use nisvakt_bus::clock::{from_timestamp, to_timestamp};
use nisvakt_bus::subjects::token;
use nisvakt_proto::v1::{DeadlineStatus, FiringKind, Incident, IncidentStatus, Timer, TimerKind};

/// One moment at which a timer fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Unique within one generation of the timer: `w0`, `w1`, `due`,
    /// `od0`, `od1`, …, `thr`, `esc`.
    pub name: String,
    /// Which event it produces.
    pub kind: FiringKind,
    /// Order among warnings or overdue reminders (0 first).
    pub sequence: u32,
    /// The intended instant.
    pub at: DateTime<Utc>,
}

/// The timer id of a threshold: stable per incident, rule set and criterion.
pub fn threshold_timer_id(incident_id: &str, rule_set: &str, criterion: &str) -> String {
    token(&format!("thr-{incident_id}-{rule_set}-{criterion}"))
}

/// The timer id of a deadline: stable per incident, rule set, duty and stage.
pub fn deadline_timer_id(deadline_id: &str) -> String {
    token(&format!("dl-{deadline_id}"))
}

/// The timers an incident snapshot asks for: a threshold timer for every
/// pending threshold, a deadline timer for every pending deadline.
pub fn timers_for(incident: &Incident) -> Vec<Timer> {
    let mut out = Vec::new();
    if incident.status() != IncidentStatus::Resolved || incident.disruption_ended_at.is_none() {
        for a in &incident.assessments {
            for t in &a.pending_thresholds {
                let id = if t.timer_id.is_empty() {
                    threshold_timer_id(&incident.id, &a.rule_set, &t.criterion)
                } else {
                    token(&t.timer_id)
                };
                out.push(Timer {
                    id,
                    kind: TimerKind::Threshold as i32,
                    incident_id: incident.id.clone(),
                    rule_set: a.rule_set.clone(),
                    criterion: t.criterion.clone(),
                    due_at: t.at,
                    ..Default::default()
                });
            }
        }
    }
    for d in &incident.deadlines {
        if d.status() != DeadlineStatus::Pending {
            continue;
        }
        out.push(Timer {
            id: deadline_timer_id(&d.id),
            kind: TimerKind::Deadline as i32,
            incident_id: incident.id.clone(),
            rule_set: d.rule_set.clone(),
            deadline: Some(d.clone()),
            due_at: d.due_at,
            warnings_at: d.warnings_at.clone(),
            overdue_every: d.overdue_every,
            ..Default::default()
        });
    }
    out
}

/// What makes two plans of one timer the same: kind, moments and the
/// deadline's content. A changed fingerprint means a new generation.
pub fn fingerprint(t: &Timer) -> String {
    let ts = |x: &Option<prost_types::Timestamp>| {
        x.as_ref()
            .map(|t| format!("{}.{}", t.seconds, t.nanos))
            .unwrap_or_default()
    };
    let warnings: Vec<String> = t.warnings_at.iter().map(|w| ts(&Some(*w))).collect();
    let every = t.overdue_every.map(|d| d.seconds).unwrap_or(0);
    format!(
        "{}|{}|{}|{}|{}|{}|{}",
        t.kind,
        ts(&t.due_at),
        warnings.join(","),
        every,
        t.alert_id,
        t.escalation_level,
        t.deadline
            .as_ref()
            .map(|d| format!("{}:{}:{}", d.duty, d.stage, d.label_sv))
            .unwrap_or_default()
    )
}

fn overdue_every(t: &Timer) -> Option<Duration> {
    t.overdue_every
        .filter(|d| d.seconds > 0)
        .map(|d| Duration::seconds(d.seconds))
}

/// The slots to schedule for a timer planned at `now`: warnings still
/// ahead, the main moment (even when past: it then fires at once, late),
/// and the first overdue reminder after `now`. Later reminders are chained
/// one at a time as each fires.
pub fn slots(t: &Timer, now: DateTime<Utc>) -> Vec<Slot> {
    let Some(due) = t.due_at.as_ref().and_then(from_timestamp) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match t.kind() {
        TimerKind::Threshold => out.push(Slot {
            name: "thr".into(),
            kind: FiringKind::ThresholdReached,
            sequence: 0,
            at: due,
        }),
        TimerKind::Escalation => out.push(Slot {
            name: "esc".into(),
            kind: FiringKind::EscalationDue,
            sequence: 0,
            at: due,
        }),
        TimerKind::Deadline | TimerKind::Unspecified => {
            let mut warnings: Vec<DateTime<Utc>> =
                t.warnings_at.iter().filter_map(from_timestamp).collect();
            warnings.sort();
            for (i, w) in warnings.iter().enumerate() {
                if *w > now && *w < due {
                    out.push(Slot {
                        name: format!("w{i}"),
                        kind: FiringKind::Warning,
                        sequence: i as u32,
                        at: *w,
                    });
                }
            }
            out.push(Slot {
                name: "due".into(),
                kind: FiringKind::Due,
                sequence: 0,
                at: due,
            });
            if let Some(every) = overdue_every(t) {
                let n = if now < due {
                    0
                } else {
                    ((now - due).num_seconds() / every.num_seconds().max(1)) as u32
                };
                out.push(overdue_slot(t, n).unwrap_or_else(|| Slot {
                    name: "od0".into(),
                    kind: FiringKind::Overdue,
                    sequence: 0,
                    at: due + every,
                }));
            }
        }
    }
    out
}

/// The n-th overdue reminder (0 first): due + (n + 1) × every.
pub fn overdue_slot(t: &Timer, n: u32) -> Option<Slot> {
    let due = t.due_at.as_ref().and_then(from_timestamp)?;
    let every = overdue_every(t)?;
    Some(Slot {
        name: format!("od{n}"),
        kind: FiringKind::Overdue,
        sequence: n,
        at: due + every * (n as i32 + 1),
    })
}

/// Milliseconds between the intended and the actual moment (never negative).
pub fn lateness_ms(intended: DateTime<Utc>, fired: DateTime<Utc>) -> i64 {
    (fired - intended).num_milliseconds().max(0)
}

/// A protobuf timestamp.
pub fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    to_timestamp(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use nisvakt_proto::v1::{Assessment, Deadline, PendingThreshold};

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 29, h, m, 0).unwrap()
    }

    fn deadline_timer(due: DateTime<Utc>, warnings: &[DateTime<Utc>], every_h: i64) -> Timer {
        Timer {
            id: "t".into(),
            kind: TimerKind::Deadline as i32,
            due_at: Some(ts(due)),
            warnings_at: warnings.iter().map(|w| ts(*w)).collect(),
            overdue_every: Some(prost_types::Duration {
                seconds: every_h * 3600,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_fresh_deadline_fires_every_warning_then_due_then_overdue() {
        let t = deadline_timer(at(12, 0), &[at(9, 0), at(11, 0), at(11, 45)], 1);
        let s = slots(&t, at(6, 0));
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["w0", "w1", "w2", "due", "od0"]);
        assert_eq!(s[4].at, at(13, 0));
    }

    #[test]
    fn past_warnings_are_skipped_but_a_past_due_still_fires() {
        let t = deadline_timer(at(12, 0), &[at(9, 0), at(11, 0)], 1);
        let s = slots(&t, at(14, 30));
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        // due fires at once (late); the next reminder is the third hour.
        assert_eq!(names, ["due", "od2"]);
        assert_eq!(s[1].at, at(15, 0));
    }

    #[test]
    fn the_plan_across_the_spring_dst_change_is_an_exact_utc_offset() {
        // 2026-03-29 01:00 UTC is when Stockholm jumps from 02:00 to 03:00.
        let t = deadline_timer(at(0, 30) + Duration::hours(6), &[], 0);
        assert_eq!(slots(&t, at(0, 30))[0].at, at(6, 30));
    }

    #[test]
    fn a_snapshot_asks_for_thresholds_and_pending_deadlines_only() {
        let inc = Incident {
            id: "inc_1".into(),
            status: IncidentStatus::Open as i32,
            assessments: vec![Assessment {
                rule_set: "seed-routine".into(),
                pending_thresholds: vec![PendingThreshold {
                    criterion: "system_disrupted_6h".into(),
                    at: Some(ts(at(18, 0))),
                    timer_id: String::new(),
                }],
                ..Default::default()
            }],
            deadlines: vec![
                Deadline {
                    id: "inc_1.seed-routine.nis.1".into(),
                    status: DeadlineStatus::Pending as i32,
                    due_at: Some(ts(at(18, 0))),
                    ..Default::default()
                },
                Deadline {
                    id: "inc_1.seed-routine.nis.2".into(),
                    status: DeadlineStatus::Met as i32,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let ids: Vec<String> = timers_for(&inc).into_iter().map(|t| t.id).collect();
        assert_eq!(
            ids,
            [
                "thr-inc_1-seed-routine-system_disrupted_6h",
                "dl-inc_1_seed-routine_nis_1"
            ]
        );
    }

    #[test]
    fn lateness_is_never_negative() {
        assert_eq!(lateness_ms(at(12, 0), at(11, 59)), 0);
        assert_eq!(lateness_ms(at(12, 0), at(12, 1)), 60_000);
    }
}
