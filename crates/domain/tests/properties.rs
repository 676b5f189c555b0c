//! Property tests of the core: monotonicity of reportability, deadline
//! arithmetic, idempotence of `apply`, and masking through validation.

use chrono::{DateTime, Duration, TimeZone, Utc};
use nisvakt_domain::assess::DeadlineStatus;
use nisvakt_domain::incident::{Fact, Incident, IncidentId, OutcomeKind, ReportChannel};
use nisvakt_domain::rules::{self, Anchor, RuleSet};
use nisvakt_domain::text::Lexicon;
use nisvakt_domain::ticket::{self, PatientHarm, Ticket, TicketInput, TicketStatus};
use proptest::prelude::*;
use std::sync::LazyLock;

static RULES: LazyLock<Vec<RuleSet>> = LazyLock::new(rules::builtin);
static LEX: LazyLock<Lexicon> = LazyLock::new(Lexicon::default_sv);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 20, 6, 0, 0).unwrap()
}

fn ticket(id: &str, rev: u64, start: i64, end: Option<i64>, care: Option<bool>) -> Ticket {
    Ticket {
        source: "intraservice".into(),
        ticket_id: id.into(),
        revision: rev,
        subject: "Journalen nere".into(),
        description: None,
        reported_at: t0() + Duration::minutes(start),
        unit: Some(format!("Enhet {id}")),
        reporter_ref: None,
        system: Some("Journalsystemet".into()),
        category: None,
        disruption_started_at: t0() + Duration::minutes(start),
        disruption_ended_at: end.map(|e| t0() + Duration::minutes(start + e)),
        care_blocked: care,
        patient_harm: None,
        status: TicketStatus::Open,
        identifiers_masked: 0,
    }
}

/// Assess one finished disruption of `minutes` reported `delay` after it
/// ended, looked at `now`.
fn finished(minutes: i64, care: Option<bool>, delay: i64, now: DateTime<Utc>) -> Incident {
    let mut inc = Incident::open(IncidentId::parse("inc_p").unwrap(), t0());
    let t = ticket("1", 1, 0, Some(minutes), care);
    let accepted = t0() + Duration::minutes(minutes + delay);
    inc.apply(
        &Fact::Ticket {
            receipt_id: "r".into(),
            ticket: t,
            accepted_at: accepted,
        },
        &RULES,
        &LEX,
        now.max(accepted),
    );
    inc
}

fn met_set(inc: &Incident, rule_set: &str) -> Vec<String> {
    inc.assessment(rule_set)
        .map(|a| {
            a.criteria
                .iter()
                .filter(|c| c.met)
                .map(|c| c.id.clone())
                .collect()
        })
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_longer_disruption_is_never_less_reportable(
        minutes in 0i64..900,
        longer_by in 0i64..900,
        care in prop::option::of(any::<bool>()),
        delay in 0i64..120,
    ) {
        let now = t0() + Duration::minutes(minutes + longer_by + delay + 1);
        let short = finished(minutes, care, delay, now);
        let long = finished(minutes + longer_by, care, delay, now);
        for rs in RULES.iter() {
            let (a, b) = (short.assessment(&rs.id).unwrap(), long.assessment(&rs.id).unwrap());
            prop_assert!(!a.reportable || b.reportable, "{}: {} min reportable, {} min not", rs.id, minutes, minutes + longer_by);
            let (ma, mb) = (met_set(&short, &rs.id), met_set(&long, &rs.id));
            prop_assert!(ma.iter().all(|c| mb.contains(c)), "{}: {:?} not within {:?}", rs.id, ma, mb);
        }
    }

    #[test]
    fn an_ongoing_disruption_is_never_less_reportable_later(
        care in prop::option::of(any::<bool>()),
        first in 0i64..900,
        later_by in 0i64..900,
    ) {
        let run = |look: i64| {
            let mut inc = Incident::open(IncidentId::parse("inc_p").unwrap(), t0());
            inc.apply(&Fact::Ticket { receipt_id: "r".into(), ticket: ticket("1", 1, 0, None, care), accepted_at: t0() }, &RULES, &LEX, t0());
            let until = t0() + Duration::minutes(look);
            loop {
                let next = inc.pending_thresholds().into_iter().filter(|(_, p)| p.at <= until).min_by_key(|(_, p)| p.at);
                let Some((rule_set, p)) = next else { break };
                let out = inc.apply(&Fact::ThresholdReached { rule_set, criterion: p.criterion, at: p.at }, &RULES, &LEX, p.at);
                assert_ne!(out.kind, OutcomeKind::Unchanged);
            }
            inc
        };
        let (a, b) = (run(first), run(first + later_by));
        for rs in RULES.iter() {
            prop_assert!(!a.assessment(&rs.id).unwrap().reportable || b.assessment(&rs.id).unwrap().reportable);
            prop_assert_eq!(a.assessment(&rs.id).unwrap().identified_at.is_some(), a.assessment(&rs.id).unwrap().reportable);
            if a.assessment(&rs.id).unwrap().reportable {
                prop_assert_eq!(a.assessment(&rs.id).unwrap().identified_at, b.assessment(&rs.id).unwrap().identified_at);
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Ticket {
        id: u8,
        rev: u64,
        start: i64,
        end: Option<i64>,
        care: Option<bool>,
        harm: Option<PatientHarm>,
        resolved: bool,
    },
    Clock(i64),
    Op {
        care: Option<bool>,
        harm: Option<PatientHarm>,
        pdb: Option<bool>,
        sec: Option<bool>,
    },
    Report {
        duty: &'static str,
        stage: &'static str,
        rule_set: Option<&'static str>,
    },
    Resolve(i64),
    Redeliver,
}

fn harm() -> impl Strategy<Value = Option<PatientHarm>> {
    prop::option::of(prop::sample::select(vec![
        PatientHarm::None,
        PatientHarm::Risk,
        PatientHarm::Occurred,
        PatientHarm::Unknown,
    ]))
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            0u8..3,
            1u64..4,
            0i64..600,
            prop::option::of(0i64..900),
            prop::option::of(any::<bool>()),
            harm(),
            any::<bool>()
        )
            .prop_map(|(id, rev, start, end, care, harm, resolved)| Step::Ticket {
                id,
                rev,
                start,
                end,
                care,
                harm,
                resolved
            }),
        (0i64..600).prop_map(Step::Clock),
        (
            prop::option::of(any::<bool>()),
            harm(),
            prop::option::of(any::<bool>()),
            prop::option::of(any::<bool>())
        )
            .prop_map(|(care, harm, pdb, sec)| Step::Op {
                care,
                harm,
                pdb,
                sec
            }),
        prop::sample::select(vec![
            ("nis", "1", None),
            ("nis", "2", None),
            ("nis", "3", None),
            ("nis", "1", Some("seed-routine")),
            ("nis", "early_warning", Some("cybersecurity-act-2025")),
            ("nis", "notification", None),
            ("personal_data", "1", None),
            ("lex_maria", "1", None),
            ("security_protection", "1", None),
        ])
        .prop_map(|(duty, stage, rule_set)| Step::Report {
            duty,
            stage,
            rule_set
        }),
        (0i64..600).prop_map(Step::Resolve),
        Just(Step::Redeliver),
    ]
}

fn check_deadlines(inc: &Incident) -> Result<(), TestCaseError> {
    for d in &inc.deadlines {
        let rs = RULES.iter().find(|r| r.id == d.rule_set).unwrap();
        let duty = rs.duty(&d.duty).unwrap();
        let stage = duty.stages.iter().find(|s| s.id == d.stage).unwrap();
        prop_assert_eq!(
            d.due_at,
            d.anchor_at + stage.due,
            "{}: due != anchor + offset",
            d.id
        );
        prop_assert!(
            d.warnings_at
                .iter()
                .all(|w| *w > d.anchor_at && *w < d.due_at),
            "{}: warning outside span",
            d.id
        );
        if d.status == DeadlineStatus::Met {
            prop_assert_eq!(d.met_at, inc.report_of(&rs.id, &d.duty, &d.stage));
        }
        // Met and cancelled deadlines of a duty that no longer applies keep
        // the anchor they had; only pending ones must follow today's facts.
        if d.status != DeadlineStatus::Pending {
            continue;
        }
        let a = inc.assessment(&rs.id).unwrap();
        let reference = match &stage.anchor {
            Anchor::Identified => {
                prop_assert_eq!(Some(d.anchor_at), a.identified_at, "{}", d.id);
                None
            }
            Anchor::Detected => {
                prop_assert_eq!(Some(d.anchor_at), inc.detected_at);
                None
            }
            Anchor::Confirmed => None,
            Anchor::FirstReport => Some(duty.stages[0].id.clone()),
            Anchor::Report(s) => Some(s.clone()),
        };
        if let Some(of) = reference {
            match inc.report_of(&rs.id, &duty.id, &of) {
                Some(r) => {
                    prop_assert_eq!(d.anchor_at, r);
                    prop_assert!(!d.provisional);
                }
                None => {
                    let prior = inc.deadline(&rs.id, &duty.id, &of).unwrap();
                    prop_assert_eq!(d.anchor_at, prior.due_at, "{}: provisional anchor", d.id);
                    prop_assert!(d.provisional);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_deadline_is_its_anchor_plus_the_offset_and_apply_is_idempotent(steps in prop::collection::vec(step(), 1..14)) {
        let mut inc = Incident::open(IncidentId::parse("inc_p").unwrap(), t0());
        let mut now = t0();
        let mut last: Option<Fact> = None;
        for (i, s) in steps.into_iter().enumerate() {
            now += Duration::minutes(7);
            let fact = match s {
                Step::Ticket { id, rev, start, end, care, harm, resolved } => {
                    let mut t = ticket(&id.to_string(), rev, start, end, care);
                    t.patient_harm = harm;
                    if resolved { t.status = TicketStatus::Resolved; }
                    now = now.max(t.disruption_started_at).max(t.disruption_ended_at.unwrap_or(now));
                    Fact::Ticket { receipt_id: format!("r{i}"), ticket: t, accepted_at: now }
                }
                Step::Clock(m) => {
                    now = now.max(t0() + Duration::minutes(m));
                    match inc.pending_thresholds().into_iter().filter(|(_, p)| p.at <= now).min_by_key(|(_, p)| p.at) {
                        Some((rule_set, p)) => Fact::ThresholdReached { rule_set, criterion: p.criterion, at: p.at },
                        None => continue,
                    }
                }
                Step::Op { care, harm, pdb, sec } => Fact::OperatorAssessment {
                    command_id: format!("c{i}"), assessed_by: "op".into(), care_blocked: care, patient_harm: harm,
                    personal_data_breach: pdb, security_protection: sec, reasoning: None, at: now,
                },
                Step::Report { duty, stage, rule_set } => Fact::StageReported {
                    command_id: format!("c{i}"), duty: duty.into(), stage: stage.into(), rule_set: rule_set.map(Into::into),
                    reported_at: now, reported_by: "op".into(), channel: ReportChannel::Tool,
                },
                Step::Resolve(m) => Fact::Resolved { command_id: Some(format!("c{i}")), resolved_at: t0() + Duration::minutes(m), resolved_by: "op".into(), note: None },
                Step::Redeliver => match last.clone() { Some(f) => f, None => continue },
            };
            let before = inc.clone();
            let out = inc.apply(&fact, &RULES, &LEX, now);
            if out.kind == OutcomeKind::Unchanged {
                prop_assert_eq!(&inc, &before, "Unchanged must leave the incident as it was");
            } else {
                prop_assert_eq!(inc.revision, before.revision + 1);
            }
            let again = inc.clone();
            let out2 = inc.apply(&fact, &RULES, &LEX, now + Duration::minutes(1));
            prop_assert_eq!(out2.kind, OutcomeKind::Unchanged, "re-applying {:?} changed something", fact);
            prop_assert_eq!(&inc, &again);
            check_deadlines(&inc)?;
            for a in &inc.assessments {
                prop_assert_eq!(a.reportable, a.identified_at.is_some());
                if let Some(b) = before.assessment(&a.rule_set)
                    && b.reportable && a.reportable
                {
                    prop_assert!(a.identified_at <= b.identified_at, "identified_at moved later");
                }
            }
            last = Some(fact);
        }
    }
}

fn identifier() -> impl Strategy<Value = String> {
    (
        1900u32..2030,
        1u32..=12,
        1u32..=28,
        any::<bool>(),
        0u32..10_000,
        any::<bool>(),
        prop::sample::select(vec!["-", "+", " ", ""]),
    )
        .prop_map(|(y, m, d, co, n, long, sep)| {
            let d = if co { d + 60 } else { d };
            if long {
                format!("{y:04}{m:02}{d:02}{sep}{n:04}")
            } else {
                format!("{:02}{m:02}{d:02}{sep}{n:04}", y % 100)
            }
        })
}

proptest! {
    #[test]
    fn masking_on_intake_leaves_no_identifier_in_any_text_field(
        ids in prop::collection::vec(identifier(), 4),
        words in prop::collection::vec("[a-zåäö ,.:]{0,12}", 8),
    ) {
        let f = |i: usize| format!("{}{}{}", words[2 * i], if words[2 * i].ends_with(|c: char| c.is_alphanumeric()) { " " } else { "" }, ids[i]) + " " + &words[2 * i + 1];
        let input = TicketInput {
            source: Some("intraservice".into()),
            ticket_id: Some("1".into()),
            subject: Some(f(0)),
            description: Some(f(1)),
            system: Some(f(2)),
            unit: Some(f(3)),
            reported_at: Some("2026-03-20T06:00:00Z".into()),
            ..TicketInput::default()
        };
        let t = ticket::validate(input).unwrap().into_masked();
        prop_assert_eq!(t.identifiers_masked, 4);
        for text in [Some(&t.subject), t.description.as_ref(), t.system.as_ref(), t.unit.as_ref()].into_iter().flatten() {
            prop_assert!(!text.chars().any(|c| c.is_ascii_digit()), "{:?}", text);
        }
    }
}

#[test]
fn a_storm_of_two_thousand_tickets_folds_quickly_enough() {
    let started = std::time::Instant::now();
    let mut inc = Incident::open(IncidentId::parse("inc_storm").unwrap(), t0());
    for k in 0..2000 {
        let mut t = ticket(&format!("S{k}"), 1, (k % 90) as i64, None, Some(k % 3 == 0));
        t.unit = Some(format!("Enhet {}", k % 40));
        let accepted = t0() + Duration::minutes(90) + Duration::seconds(k as i64);
        let out = inc.apply(
            &Fact::Ticket {
                receipt_id: format!("r{k}"),
                ticket: t,
                accepted_at: accepted,
            },
            &RULES,
            &LEX,
            accepted,
        );
        assert_ne!(out.kind, OutcomeKind::Unchanged);
    }
    assert_eq!(inc.ticket_count, 2000);
    assert_eq!(inc.units.len(), 40);
    assert_eq!(inc.revision, 2000);
    // Generous even for an unoptimised build on a shared 2-core machine.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}
