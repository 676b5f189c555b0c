//! The pure core of the deadline-timer: which timers an incident snapshot
//! asks for, which moments (slots) each timer fires at, how late a firing
//! was, what the reconciler must repair and which slots the watchdog must
//! fire. No I/O and no clock: `now` is always a parameter, and the shell
//! performs the returned actions.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use nisvakt_bus::clock::{from_timestamp, to_timestamp};
use nisvakt_bus::subjects::{timer_schedule, token};
use nisvakt_proto::v1::{DeadlineStatus, FiringKind, Incident, IncidentStatus, Timer, TimerKind};

use crate::record::{TimerRecord, TimerState, claim_key};

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

/// The slots to schedule for a new generation of `t`: [`slots`] without
/// the moments that already fired, so a re-plan never fires a moment twice.
pub fn slots_to_schedule(t: &Timer, now: DateTime<Utc>, claimed: &BTreeSet<String>) -> Vec<Slot> {
    slots(t, now)
        .into_iter()
        .filter(|s| !claimed.contains(&claim_key(s.kind, s.sequence, s.at)))
        .collect()
}

/// The name of a slot's schedule within its generation, as used in the
/// schedule and fire subjects: `g<generation>-<slot>`.
pub fn slot_id(generation: u64, slot_name: &str) -> String {
    format!("g{generation}-{slot_name}")
}

/// One incident as the reconciler sees it: its projection and the
/// snapshot revision the timer service last applied for it.
#[derive(Debug, Clone)]
pub struct Projection {
    /// The incident as stored in the `nis_incidents` bucket.
    pub incident: Incident,
    /// The revision recorded in `i.<incident>` (`None`: never applied).
    pub applied_revision: Option<u64>,
}

/// How long the reconciler leaves a just-changed projection to the live
/// snapshot path.
pub const FRESH: Duration = Duration::seconds(30);

/// A repair the reconciler asks the shell to perform.
#[derive(Debug, Clone, PartialEq)]
pub enum Repair {
    /// Plan the timer (new, changed, or wrongly ended): a new generation.
    Schedule(Timer),
    /// End a pending timer the incident no longer asks for.
    Finish {
        /// The timer.
        timer_id: String,
        /// `Met` when the projection says its deadline was met, else `Cancelled`.
        state: TimerState,
        /// Why, for the `cancelled` event.
        reason: String,
        /// When the duty was met (for `Met`).
        met_at: Option<DateTime<Utc>>,
    },
    /// A future slot's schedule message is missing from the stream: put it
    /// back (only if the record is still at `generation` and unclaimed).
    Republish {
        /// The timer as recorded, with its generation.
        timer: Timer,
        /// The slot to schedule again.
        slot: Slot,
    },
}

/// Compares the open duties and thresholds of every incident with the
/// timer records and the schedule subjects present in the stream, and says
/// what to repair.
///
/// - An incident whose projection is older than the snapshot already
///   applied is skipped (the service knows better).
/// - A wanted timer without a record, or with another plan, is scheduled;
///   one that was ended is scheduled again only when the projection is
///   newer than what the service applied (never fight a fresh snapshot).
/// - A pending deadline or threshold timer of a projected incident that the
///   incident no longer asks for is finished. Timers of incidents with no
///   projection, and escalations, are left alone: absence proves nothing.
/// - A pending slot still ahead of `now` whose schedule subject is missing
///   is republished. Slots already past belong to the watchdog.
///
/// - A projection newer than the applied snapshot that changed less than
///   [`FRESH`] ago is left alone: its snapshot event is on its way, and the
///   live path (which carries the change's trace) should plan it.
///
/// `schedules_present` must be listed *before* `now` was taken, so a slot
/// ahead of `now` cannot have fired between the two.
pub fn reconcile(
    projections: &[Projection],
    records: &BTreeMap<String, TimerRecord>,
    schedules_present: &BTreeSet<String>,
    now: DateTime<Utc>,
) -> Vec<Repair> {
    let mut out = Vec::new();
    let mut touched: BTreeSet<String> = BTreeSet::new();
    for p in projections {
        let applied = p.applied_revision.unwrap_or(0);
        if p.applied_revision.is_some() && p.incident.revision < applied {
            continue;
        }
        let newer = p.applied_revision.is_none() || p.incident.revision > applied;
        let changed_at = p.incident.updated_at.as_ref().and_then(from_timestamp);
        if newer && changed_at.is_some_and(|t| now - t < FRESH) {
            continue;
        }
        let wanted = timers_for(&p.incident);
        let wanted_ids: BTreeSet<&str> = wanted.iter().map(|t| t.id.as_str()).collect();
        for t in &wanted {
            let redo = match records.get(&t.id) {
                None => true,
                Some(r) if r.state == TimerState::Pending => r.fingerprint != fingerprint(t),
                Some(_) => newer,
            };
            if redo {
                touched.insert(t.id.clone());
                out.push(Repair::Schedule(t.clone()));
            }
        }
        for (id, r) in records {
            if r.state != TimerState::Pending
                || r.incident_id != p.incident.id
                || wanted_ids.contains(id.as_str())
            {
                continue;
            }
            let Some(timer) = r.timer() else { continue };
            if !matches!(timer.kind(), TimerKind::Deadline | TimerKind::Threshold) {
                continue;
            }
            let met = p
                .incident
                .deadlines
                .iter()
                .find(|d| deadline_timer_id(&d.id) == *id && d.status() == DeadlineStatus::Met);
            touched.insert(id.clone());
            out.push(match met {
                Some(d) => Repair::Finish {
                    timer_id: id.clone(),
                    state: TimerState::Met,
                    reason: "met".into(),
                    met_at: d.met_at.as_ref().and_then(from_timestamp),
                },
                None => Repair::Finish {
                    timer_id: id.clone(),
                    state: TimerState::Cancelled,
                    reason: "no_longer_planned".into(),
                    met_at: None,
                },
            });
        }
    }
    for (id, r) in records {
        if r.state != TimerState::Pending || touched.contains(id) {
            continue;
        }
        let Some(timer) = r.timer() else { continue };
        for s in r.unclaimed() {
            let subject = timer_schedule(id, &slot_id(r.generation, &s.name));
            if s.at > now && !schedules_present.contains(&subject) {
                out.push(Repair::Republish {
                    timer: timer.clone(),
                    slot: s.slot(),
                });
            }
        }
    }
    out
}

/// A slot whose moment passed more than the tolerance ago without being
/// claimed: the watchdog's candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Missed {
    /// The timer as recorded, with its generation.
    pub timer: Timer,
    /// The slot that should have fired.
    pub slot: Slot,
    /// How long ago its moment was.
    pub overdue_by: Duration,
}

/// Every pending, unclaimed slot whose moment is more than `tolerance`
/// before `now`. The shell then asks [`should_repair`] per candidate.
pub fn missed_slots(
    records: &BTreeMap<String, TimerRecord>,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Vec<Missed> {
    let mut out = Vec::new();
    for r in records.values() {
        if r.state != TimerState::Pending {
            continue;
        }
        let Some(timer) = r.timer() else { continue };
        for s in r.unclaimed() {
            if s.at + tolerance < now {
                out.push(Missed {
                    timer: timer.clone(),
                    slot: s.slot(),
                    overdue_by: now - s.at,
                });
            }
        }
    }
    out
}

/// Whether the watchdog fires a missed slot itself: always when the broker
/// never produced its firing (the schedule was lost), and also when the
/// firing is in the stream but still unhandled after `stuck_after` (the
/// service fell behind or dropped it). A firing merely waiting in the
/// stream, e.g. right after a restart, is left to the consumer.
pub fn should_repair(m: &Missed, fire_present: bool, stuck_after: Duration) -> bool {
    !fire_present || m.overdue_by > stuck_after
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

    fn record_for(t: &Timer, now: DateTime<Utc>) -> TimerRecord {
        let mut t = t.clone();
        t.generation = 1;
        TimerRecord {
            generation: 1,
            fingerprint: fingerprint(&t),
            state: TimerState::Pending,
            reason: None,
            claimed: Default::default(),
            watchdog: Default::default(),
            slots: slots(&t, now)
                .iter()
                .map(crate::record::SlotRecord::from)
                .collect(),
            incident_id: t.incident_id.clone(),
            timer: TimerRecord::encode_timer(&t),
        }
    }

    fn incident(revision: u64, deadlines: Vec<Deadline>) -> Incident {
        Incident {
            id: "inc_1".into(),
            revision,
            status: IncidentStatus::Open as i32,
            deadlines,
            ..Default::default()
        }
    }

    fn deadline(n: u32, due: DateTime<Utc>, status: DeadlineStatus) -> Deadline {
        Deadline {
            id: format!("inc_1.seed-routine.nis.{n}"),
            status: status as i32,
            due_at: Some(ts(due)),
            ..Default::default()
        }
    }

    fn present_for(records: &BTreeMap<String, TimerRecord>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (id, r) in records {
            for s in &r.slots {
                out.insert(timer_schedule(id, &slot_id(r.generation, &s.name)));
            }
        }
        out
    }

    #[test]
    fn a_projection_changed_moments_ago_is_left_to_its_snapshot() {
        let now = at(6, 0);
        let mut fresh = incident(3, vec![deadline(1, at(12, 0), DeadlineStatus::Pending)]);
        fresh.updated_at = Some(ts(now - Duration::seconds(5)));
        let records = BTreeMap::new();
        let present = BTreeSet::new();
        let p = [Projection {
            incident: fresh.clone(),
            applied_revision: Some(2),
        }];
        assert!(reconcile(&p, &records, &present, now).is_empty());
        // Once it has had time to arrive, drift is repaired.
        let later = now + FRESH + Duration::seconds(1);
        assert_eq!(reconcile(&p, &records, &present, later).len(), 1);
    }

    #[test]
    fn the_reconciler_schedules_what_is_missing_and_cancels_what_is_gone() {
        let now = at(6, 0);
        let kept = incident(3, vec![deadline(1, at(12, 0), DeadlineStatus::Pending)]);
        let gone_timer = timers_for(&incident(
            2,
            vec![deadline(2, at(18, 0), DeadlineStatus::Pending)],
        ))
        .remove(0);
        let mut records = BTreeMap::new();
        records.insert(gone_timer.id.clone(), record_for(&gone_timer, now));
        let present = present_for(&records);
        let p = [Projection {
            incident: kept.clone(),
            applied_revision: Some(2),
        }];
        let repairs = reconcile(&p, &records, &present, now);
        assert_eq!(repairs.len(), 2, "{repairs:?}");
        assert!(
            matches!(&repairs[0], Repair::Schedule(t) if t.id == "dl-inc_1_seed-routine_nis_1")
        );
        assert!(
            matches!(&repairs[1], Repair::Finish { timer_id, state: TimerState::Cancelled, .. }
            if *timer_id == gone_timer.id)
        );
    }

    #[test]
    fn the_reconciler_leaves_a_consistent_state_alone() {
        let now = at(6, 0);
        let inc = incident(3, vec![deadline(1, at(12, 0), DeadlineStatus::Pending)]);
        let t = timers_for(&inc).remove(0);
        let mut records = BTreeMap::new();
        records.insert(t.id.clone(), record_for(&t, now));
        let present = present_for(&records);
        let p = [Projection {
            incident: inc,
            applied_revision: Some(3),
        }];
        assert_eq!(reconcile(&p, &records, &present, now), []);
    }

    #[test]
    fn a_met_deadline_is_finished_as_met_and_an_older_projection_is_ignored() {
        let now = at(6, 0);
        let pending = incident(3, vec![deadline(1, at(12, 0), DeadlineStatus::Pending)]);
        let t = timers_for(&pending).remove(0);
        let mut records = BTreeMap::new();
        records.insert(t.id.clone(), record_for(&t, now));
        let present = present_for(&records);
        let mut met = deadline(1, at(12, 0), DeadlineStatus::Met);
        met.met_at = Some(ts(at(5, 0)));
        let newer = [Projection {
            incident: incident(4, vec![met.clone()]),
            applied_revision: Some(3),
        }];
        let r = reconcile(&newer, &records, &present, now);
        assert!(
            matches!(&r[..], [Repair::Finish { state: TimerState::Met, met_at: Some(m), .. }] if *m == at(5, 0)),
            "{r:?}"
        );
        let older = [Projection {
            incident: incident(2, vec![met]),
            applied_revision: Some(3),
        }];
        assert_eq!(reconcile(&older, &records, &present, now), []);
    }

    #[test]
    fn an_ended_timer_is_revived_only_by_a_newer_projection() {
        let now = at(6, 0);
        let inc = incident(3, vec![deadline(1, at(12, 0), DeadlineStatus::Pending)]);
        let t = timers_for(&inc).remove(0);
        let mut r = record_for(&t, now);
        r.state = TimerState::Cancelled;
        let records = BTreeMap::from([(t.id.clone(), r)]);
        let same = [Projection {
            incident: inc.clone(),
            applied_revision: Some(3),
        }];
        assert_eq!(reconcile(&same, &records, &BTreeSet::new(), now), []);
        let newer = [Projection {
            incident: incident(4, inc.deadlines.clone()),
            applied_revision: Some(3),
        }];
        assert!(matches!(
            &reconcile(&newer, &records, &BTreeSet::new(), now)[..],
            [Repair::Schedule(_)]
        ));
    }

    #[test]
    fn timers_of_incidents_without_projection_are_not_cancelled_but_their_schedules_are_repaired() {
        let now = at(6, 0);
        let inc = incident(3, vec![deadline(1, at(12, 0), DeadlineStatus::Pending)]);
        let t = timers_for(&inc).remove(0);
        let records = BTreeMap::from([(t.id.clone(), record_for(&t, now))]);
        // The due schedule is missing from the stream; nothing is projected.
        let r = reconcile(&[], &records, &BTreeSet::new(), now);
        assert!(
            matches!(&r[..], [Repair::Republish { slot, .. }] if slot.name == "due"),
            "{r:?}"
        );
        // Once its moment passed it is the watchdog's, not the reconciler's.
        assert_eq!(reconcile(&[], &records, &BTreeSet::new(), at(12, 0)), []);
    }

    #[test]
    fn a_replan_never_schedules_a_moment_that_already_fired() {
        let t = deadline_timer(at(12, 0), &[at(9, 0)], 0);
        let claimed = BTreeSet::from([claim_key(FiringKind::Warning, 0, at(9, 0))]);
        let names: Vec<String> = slots_to_schedule(&t, at(6, 0), &claimed)
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["due"]);
    }

    #[test]
    fn the_watchdog_selects_unclaimed_moments_past_the_tolerance_only() {
        let t = deadline_timer(at(12, 0), &[at(9, 0)], 0);
        let mut r = record_for(&t, at(6, 0));
        r.claimed
            .insert(claim_key(FiringKind::Warning, 0, at(9, 0)));
        let records = BTreeMap::from([("t".to_string(), r.clone())]);
        let tol = Duration::seconds(30);
        // 20 s after due: within tolerance.
        assert_eq!(
            missed_slots(&records, at(12, 0) + Duration::seconds(20), tol),
            []
        );
        let m = missed_slots(&records, at(12, 1), tol);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].slot.name, "due");
        assert_eq!(m[0].overdue_by, Duration::seconds(60));
        // A cancelled timer never raises the watchdog.
        r.state = TimerState::Cancelled;
        let records = BTreeMap::from([("t".to_string(), r)]);
        assert_eq!(missed_slots(&records, at(13, 0), tol), []);
    }

    #[test]
    fn a_firing_waiting_in_the_stream_is_left_to_the_consumer_until_it_is_stuck() {
        let m = Missed {
            timer: Timer::default(),
            slot: Slot {
                name: "due".into(),
                kind: FiringKind::Due,
                sequence: 0,
                at: at(12, 0),
            },
            overdue_by: Duration::minutes(2),
        };
        let stuck = Duration::minutes(5);
        assert!(should_repair(&m, false, stuck));
        assert!(!should_repair(&m, true, stuck));
        assert!(should_repair(
            &Missed {
                overdue_by: Duration::minutes(6),
                ..m
            },
            true,
            stuck
        ));
    }

    #[test]
    fn the_autumn_dst_change_does_not_move_a_deadline() {
        // 2026-10-25 01:00 UTC Stockholm falls back from 03:00 CEST to 02:00 CET.
        let start = Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap();
        let t = deadline_timer(start + Duration::hours(6), &[], 0);
        let due = slots(&t, start)[0].at;
        assert_eq!(due - start, Duration::hours(6));
        assert_eq!(
            nisvakt_domain::time::local(start),
            "2026-10-25 02:30 (CEST)"
        );
        assert_eq!(nisvakt_domain::time::local(due), "2026-10-25 07:30 (CET)");
    }
}
