//! The scenario table: every boundary of DOMAIN.md driven through
//! `Incident::apply`, the way the classifier and the deadline-timer drive it
//! (thresholds are fed back as `ThresholdReached` at their instant).

use chrono::{DateTime, Duration, TimeZone, Utc};
use nisvakt_domain::assess::DeadlineStatus as S;
use nisvakt_domain::incident::{Fact, Incident, IncidentId, OutcomeKind, Question, ReportChannel};
use nisvakt_domain::rules::{self, RuleSet};
use nisvakt_domain::text::Lexicon;
use nisvakt_domain::ticket::{Category, PatientHarm, Ticket, TicketStatus};
use nisvakt_domain::time::local;

const SEED: &str = "seed-routine";
const CSL: &str = "cybersecurity-act-2025";

/// 2026-03-10 08:00 UTC plus hours and minutes: a Tuesday with no DST change.
fn at(h: i64, m: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 8, 0, 0).unwrap() + Duration::hours(h) + Duration::minutes(m)
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[derive(Clone)]
struct Tk(Ticket, DateTime<Utc>);

fn tk(id: &str) -> Tk {
    Tk(
        Ticket {
            source: "intraservice".into(),
            ticket_id: id.into(),
            revision: 1,
            subject: "Journalen går inte att öppna".into(),
            description: None,
            reported_at: at(0, 0),
            unit: Some("Hemsjukvård Väster".into()),
            reporter_ref: None,
            system: Some("Journalsystemet".into()),
            category: None,
            disruption_started_at: at(0, 0),
            disruption_ended_at: None,
            care_blocked: None,
            patient_harm: None,
            status: TicketStatus::Open,
            identifiers_masked: 0,
        },
        at(0, 0),
    )
}

impl Tk {
    fn rev(mut self, r: u64) -> Self {
        self.0.revision = r;
        self
    }
    fn start(mut self, t: DateTime<Utc>) -> Self {
        self.0.disruption_started_at = t;
        self.0.reported_at = self.0.reported_at.max(t);
        self.1 = self.1.max(t);
        self
    }
    fn end(mut self, t: DateTime<Utc>) -> Self {
        self.0.disruption_ended_at = Some(t);
        self
    }
    fn care(mut self, b: bool) -> Self {
        self.0.care_blocked = Some(b);
        self
    }
    fn harm(mut self, h: PatientHarm) -> Self {
        self.0.patient_harm = Some(h);
        self
    }
    fn subject(mut self, s: &str) -> Self {
        self.0.subject = s.into();
        self
    }
    fn no_system(mut self) -> Self {
        self.0.system = None;
        self
    }
    fn unit(mut self, u: &str) -> Self {
        self.0.unit = Some(u.into());
        self
    }
    fn resolved(mut self) -> Self {
        self.0.status = TicketStatus::Resolved;
        self
    }
    fn identifiers(mut self, n: u32) -> Self {
        self.0.identifiers_masked = n;
        self
    }
    fn accepted(mut self, t: DateTime<Utc>) -> Self {
        self.1 = t;
        self
    }
}

#[derive(Clone)]
enum Step {
    /// Apply a ticket at its accepted time.
    T(Tk),
    /// Fire every pending threshold up to this instant, each at its own time,
    /// as the deadline-timer would.
    Clock(DateTime<Utc>),
    /// A threshold fact delivered at `now` (which may differ from its `at`).
    Threshold(&'static str, &'static str, DateTime<Utc>, DateTime<Utc>),
    /// An operator's assessment.
    Op(Op),
    /// A stage reported: duty, stage, rule set, when.
    Report(
        &'static str,
        &'static str,
        Option<&'static str>,
        DateTime<Utc>,
    ),
    /// Resolved by an operator at this time.
    Resolve(DateTime<Utc>),
    /// Apply the previous fact again; it must change nothing.
    Redeliver,
    /// Many tickets about one outage from several units.
    Storm(usize, usize),
    /// Check expectations now.
    Check(Vec<E>),
}

#[derive(Clone, Default)]
struct Op {
    id: &'static str,
    at: Option<DateTime<Utc>>,
    care: Option<bool>,
    harm: Option<PatientHarm>,
    pdb: Option<bool>,
    sec: Option<bool>,
}

fn op(id: &'static str, t: DateTime<Utc>) -> Op {
    Op {
        id,
        at: Some(t),
        ..Op::default()
    }
}
impl Op {
    fn care(mut self, b: bool) -> Self {
        self.care = Some(b);
        self
    }
    fn harm(mut self, h: PatientHarm) -> Self {
        self.harm = Some(h);
        self
    }
    fn pdb(mut self, b: bool) -> Self {
        self.pdb = Some(b);
        self
    }
    fn sec(mut self, b: bool) -> Self {
        self.sec = Some(b);
        self
    }
}

#[derive(Clone, Debug)]
enum E {
    Reportable(&'static str, bool),
    Identified(&'static str, Option<DateTime<Utc>>),
    Met(&'static str, &'static str, Option<DateTime<Utc>>),
    PendingAt(&'static str, &'static str, Option<DateTime<Utc>>),
    Due(&'static str, &'static str, &'static str, DateTime<Utc>),
    Status(&'static str, &'static str, &'static str, S),
    NoDeadline(&'static str, &'static str, &'static str),
    Provisional(&'static str, &'static str, &'static str, bool),
    MetAt(&'static str, &'static str, &'static str, DateTime<Utc>),
    Question(Question, bool),
    NeedsAssessment(bool),
    SuspectedNis(bool),
    PersonalIdentifiers(bool),
    Tickets(u32),
    Units(usize),
    Revision(u64),
    Last(OutcomeKind),
    Resolved(bool),
    Category(Option<Category>),
    Ended(Option<DateTime<Utc>>),
    DueLocal(&'static str, &'static str, &'static str, &'static str),
    DueMinusAnchor(&'static str, &'static str, &'static str, Duration),
}

enum Rules {
    Seed,
    Both,
}

struct Scenario {
    name: &'static str,
    rules: Rules,
    steps: Vec<Step>,
}

fn sc(name: &'static str, steps: Vec<Step>) -> Scenario {
    Scenario {
        name,
        rules: Rules::Seed,
        steps,
    }
}

fn both(name: &'static str, steps: Vec<Step>) -> Scenario {
    Scenario {
        name,
        rules: Rules::Both,
        steps,
    }
}

use E::*;
use Step::*;

fn scenarios() -> Vec<Scenario> {
    let dst_start = utc("2026-03-28T18:30:00Z");
    vec![
        sc(
            "An ongoing disruption with care blocked becomes reportable by the clock at exactly 2h",
            vec![
                T(tk("1").care(true).accepted(at(0, 5))),
                Clock(at(3, 0)),
                Check(vec![
                    Met(SEED, "care_interrupted_2h", Some(at(2, 0))),
                    Identified(SEED, Some(at(2, 0))),
                    Due(SEED, "nis", "1", at(8, 0)),
                    Due(SEED, "nis", "2", at(26, 0)),
                    Last(OutcomeKind::Assessed),
                ]),
            ],
        ),
        sc(
            "A care-blocked disruption that ended after 1h59m does not meet care_interrupted_2h",
            vec![
                T(tk("1").care(true).end(at(1, 59)).accepted(at(2, 10))),
                Check(vec![
                    Reportable(SEED, false),
                    Met(SEED, "care_interrupted_2h", None),
                    PendingAt(SEED, "care_interrupted_2h", None),
                    NoDeadline(SEED, "nis", "1"),
                ]),
            ],
        ),
        sc(
            "A care-blocked disruption that ended after exactly 2h00m is reportable, identified when the ticket arrived",
            vec![
                T(tk("1").care(true).end(at(2, 0)).accepted(at(2, 10))),
                Check(vec![
                    Met(SEED, "care_interrupted_2h", Some(at(2, 0))),
                    Identified(SEED, Some(at(2, 10))),
                    Due(SEED, "nis", "1", at(8, 10)),
                    Due(SEED, "nis", "2", at(26, 10)),
                ]),
            ],
        ),
        sc(
            "A system disruption that ended after 5h59m is not reportable",
            vec![
                T(tk("1").end(at(5, 59)).accepted(at(6, 0))),
                Check(vec![
                    Reportable(SEED, false),
                    Met(SEED, "system_disrupted_6h", None),
                ]),
            ],
        ),
        sc(
            "A system disruption that ended after exactly 6h is reportable when its ticket arrives",
            vec![
                T(tk("1").end(at(6, 0)).accepted(at(6, 30))),
                Check(vec![
                    Met(SEED, "system_disrupted_6h", Some(at(6, 0))),
                    Identified(SEED, Some(at(6, 30))),
                    Due(SEED, "nis", "1", at(12, 30)),
                ]),
            ],
        ),
        sc(
            "An ongoing system disruption is not reportable at 5h59m and is at exactly 6h",
            vec![
                T(tk("1").care(false)),
                Clock(at(5, 59)),
                Check(vec![
                    Reportable(SEED, false),
                    PendingAt(SEED, "system_disrupted_6h", Some(at(6, 0))),
                ]),
                Clock(at(6, 0)),
                Check(vec![
                    Met(SEED, "system_disrupted_6h", Some(at(6, 0))),
                    Identified(SEED, Some(at(6, 0))),
                    PendingAt(SEED, "system_disrupted_6h", None),
                ]),
            ],
        ),
        sc(
            "Before any threshold an ongoing care-blocked disruption lists both thresholds and is not reportable",
            vec![
                T(tk("1").care(true)),
                Check(vec![
                    Reportable(SEED, false),
                    PendingAt(SEED, "care_interrupted_2h", Some(at(2, 0))),
                    PendingAt(SEED, "system_disrupted_6h", Some(at(6, 0))),
                    Last(OutcomeKind::Opened),
                ]),
            ],
        ),
        sc(
            "A threshold timer delivered by a slightly lagging clock still counts at its own instant",
            vec![
                T(tk("1").care(true)),
                Threshold(
                    SEED,
                    "care_interrupted_2h",
                    at(2, 0),
                    at(2, 0) - Duration::seconds(2),
                ),
                Check(vec![
                    Met(SEED, "care_interrupted_2h", Some(at(2, 0))),
                    Identified(SEED, Some(at(2, 0))),
                ]),
            ],
        ),
        sc(
            "A stale threshold timer that changes nothing is Unchanged",
            vec![
                T(tk("1").care(true).end(at(1, 0)).accepted(at(1, 5))),
                Threshold(SEED, "care_interrupted_2h", at(2, 0), at(2, 0)),
                Check(vec![
                    Last(OutcomeKind::Unchanged),
                    Revision(1),
                    Reportable(SEED, false),
                ]),
            ],
        ),
        sc(
            "A late ticket about a long ongoing disruption is identified at its arrival, not at the threshold",
            vec![
                T(tk("1").accepted(at(7, 0))),
                Check(vec![
                    Met(SEED, "system_disrupted_6h", Some(at(6, 0))),
                    Identified(SEED, Some(at(7, 0))),
                    Due(SEED, "nis", "1", at(13, 0)),
                ]),
            ],
        ),
        sc(
            "A ticket update backdating the start counts from the earlier start and is identified at the update",
            vec![
                T(tk("1").care(true).start(at(3, 0))),
                T(tk("1").rev(2).care(true).start(at(0, 0)).accepted(at(4, 0))),
                Check(vec![
                    Met(SEED, "care_interrupted_2h", Some(at(2, 0))),
                    Identified(SEED, Some(at(4, 0))),
                    Due(SEED, "nis", "1", at(10, 0)),
                    PendingAt(SEED, "system_disrupted_6h", Some(at(6, 0))),
                ]),
            ],
        ),
        sc(
            "A second ticket with an earlier start moves the pending thresholds earlier",
            vec![
                T(tk("A").care(true).start(at(3, 0))),
                Check(vec![PendingAt(SEED, "care_interrupted_2h", Some(at(5, 0)))]),
                T(tk("B").start(at(2, 0)).accepted(at(3, 30))),
                Check(vec![
                    PendingAt(SEED, "care_interrupted_2h", Some(at(4, 0))),
                    PendingAt(SEED, "system_disrupted_6h", Some(at(8, 0))),
                    Tickets(2),
                ]),
            ],
        ),
        sc(
            "With care_blocked unknown the 2h threshold raises the care question but not reportability",
            vec![
                T(tk("1")),
                Clock(at(3, 0)),
                Check(vec![
                    Reportable(SEED, false),
                    Question(Question::CareBlocked, true),
                    NeedsAssessment(true),
                    PendingAt(SEED, "system_disrupted_6h", Some(at(6, 0))),
                ]),
            ],
        ),
        sc(
            "An operator confirming care blocked after the fact makes it reportable from the confirmation",
            vec![
                T(tk("1")),
                Clock(at(3, 0)),
                Op(op("c1", at(3, 30)).care(true)),
                Check(vec![
                    Met(SEED, "care_interrupted_2h", Some(at(2, 0))),
                    Identified(SEED, Some(at(3, 30))),
                    Due(SEED, "nis", "1", at(9, 30)),
                    Question(Question::CareBlocked, false),
                ]),
            ],
        ),
        sc(
            "An operator's care_blocked=false overrides the ticket and drops the care threshold",
            vec![
                T(tk("1").care(true)),
                Op(op("c1", at(0, 30)).care(false)),
                Clock(at(3, 0)),
                Check(vec![
                    Reportable(SEED, false),
                    PendingAt(SEED, "care_interrupted_2h", None),
                    PendingAt(SEED, "system_disrupted_6h", Some(at(6, 0))),
                ]),
            ],
        ),
        sc(
            "Not reportable after an operator's correction: care_blocked=false cancels every pending deadline",
            vec![
                T(tk("1").care(true).end(at(3, 0)).accepted(at(3, 10))),
                Check(vec![
                    Reportable(SEED, true),
                    Status(SEED, "nis", "1", S::Pending),
                ]),
                Op(op("c1", at(4, 0)).care(false)),
                Check(vec![
                    Reportable(SEED, false),
                    Identified(SEED, None),
                    Status(SEED, "nis", "1", S::Cancelled),
                    Status(SEED, "nis", "2", S::Cancelled),
                    Status(SEED, "nis", "3", S::Cancelled),
                ]),
            ],
        ),
        sc(
            "Re-confirming care blocked after a correction makes the deadlines pending again from the new confirmation",
            vec![
                T(tk("1").care(true).end(at(3, 0)).accepted(at(3, 10))),
                Op(op("c1", at(4, 0)).care(false)),
                Op(op("c2", at(5, 0)).care(true)),
                Check(vec![
                    Reportable(SEED, true),
                    Identified(SEED, Some(at(5, 0))),
                    Status(SEED, "nis", "1", S::Pending),
                    Due(SEED, "nis", "1", at(11, 0)),
                ]),
            ],
        ),
        sc(
            "A ticket's patient_harm=occurred alone never makes the incident reportable",
            vec![
                T(tk("1")
                    .harm(PatientHarm::Occurred)
                    .end(at(0, 30))
                    .accepted(at(0, 40))),
                Check(vec![
                    Reportable(SEED, false),
                    Met(SEED, "patient_harm", None),
                    Question(Question::PatientHarm, true),
                    NeedsAssessment(true),
                    NoDeadline(SEED, "lex_maria", "1"),
                ]),
            ],
        ),
        sc(
            "Harm words in a ticket only raise the patient-harm question",
            vec![
                T(tk("1")
                    .subject("Patienten fick fel läkemedel när journalen var nere")
                    .end(at(0, 30))
                    .accepted(at(0, 40))),
                Check(vec![
                    Reportable(SEED, false),
                    Question(Question::PatientHarm, true),
                ]),
            ],
        ),
        sc(
            "An operator confirming patient harm makes it reportable at the confirmation and starts lex Maria",
            vec![
                T(tk("1")
                    .harm(PatientHarm::Risk)
                    .end(at(0, 30))
                    .accepted(at(0, 40))),
                Op(op("c1", at(1, 0)).harm(PatientHarm::Risk)),
                Check(vec![
                    Met(SEED, "patient_harm", Some(at(1, 0))),
                    Identified(SEED, Some(at(1, 0))),
                    Due(SEED, "nis", "1", at(7, 0)),
                    Due(SEED, "lex_maria", "1", at(25, 0)),
                    Question(Question::PatientHarm, false),
                    Last(OutcomeKind::Assessed),
                ]),
            ],
        ),
        sc(
            "An operator answering patient_harm=none closes the question and leaves it not reportable",
            vec![
                T(tk("1")
                    .harm(PatientHarm::Occurred)
                    .end(at(0, 30))
                    .accepted(at(0, 40))),
                Op(op("c1", at(1, 0)).harm(PatientHarm::None)),
                Check(vec![
                    Reportable(SEED, false),
                    Question(Question::PatientHarm, false),
                    NoDeadline(SEED, "lex_maria", "1"),
                ]),
            ],
        ),
        sc(
            "A personal-data breach confirmed by an operator is due at IMY 72h after the confirmation",
            vec![
                T(tk("1").end(at(0, 30)).accepted(at(0, 40))),
                Op(op("c1", at(2, 0)).pdb(true)),
                Check(vec![
                    Due(SEED, "personal_data", "1", at(74, 0)),
                    Reportable(SEED, false),
                    NoDeadline(SEED, "nis", "1"),
                    Question(Question::PersonalDataBreach, false),
                ]),
            ],
        ),
        sc(
            "Re-confirming a personal-data breach later does not move its 72h deadline",
            vec![
                T(tk("1")),
                Op(op("c1", at(1, 0)).pdb(true)),
                Op(op("c2", at(5, 0)).pdb(true)),
                Check(vec![Due(SEED, "personal_data", "1", at(73, 0))]),
            ],
        ),
        sc(
            "Identifiers found in a ticket raise the personal-data question without starting a deadline",
            vec![
                T(tk("1").identifiers(2)),
                Check(vec![
                    PersonalIdentifiers(true),
                    Question(Question::PersonalDataBreach, true),
                    NoDeadline(SEED, "personal_data", "1"),
                ]),
            ],
        ),
        sc(
            "A reportable incident asks whether it is also a personal-data breach",
            vec![
                T(tk("1").end(at(6, 0)).accepted(at(6, 5))),
                Check(vec![
                    Reportable(SEED, true),
                    Question(Question::PersonalDataBreach, true),
                ]),
            ],
        ),
        sc(
            "Security protection confirmed by an operator starts the Säkerhetspolisen duty",
            vec![
                T(tk("1")),
                Op(op("c1", at(1, 0)).sec(true)),
                Check(vec![
                    Due(SEED, "security_protection", "1", at(25, 0)),
                    Reportable(SEED, false),
                ]),
            ],
        ),
        sc(
            "Before skede 1 is reported skede 3 is provisional: skede 1's deadline plus 28 days",
            vec![
                T(tk("1").care(true).end(at(2, 0)).accepted(at(2, 10))),
                Check(vec![
                    Due(SEED, "nis", "3", at(8, 10) + Duration::days(28)),
                    Provisional(SEED, "nis", "3", true),
                ]),
            ],
        ),
        sc(
            "Reporting skede 1 marks it met and moves skede 3 to four weeks after the report",
            vec![
                T(tk("1").end(at(6, 0)).accepted(at(6, 30))),
                Report("nis", "1", None, at(9, 0)),
                Check(vec![
                    Status(SEED, "nis", "1", S::Met),
                    MetAt(SEED, "nis", "1", at(9, 0)),
                    Due(SEED, "nis", "3", at(9, 0) + Duration::days(28)),
                    Provisional(SEED, "nis", "3", false),
                    Status(SEED, "nis", "2", S::Pending),
                    Last(OutcomeKind::Assessed),
                ]),
            ],
        ),
        sc(
            "A skede 1 reported after its deadline still anchors skede 3 on the actual report",
            vec![
                T(tk("1").care(true).end(at(2, 0)).accepted(at(2, 10))),
                Report("nis", "1", Some(SEED), at(10, 0)),
                Check(vec![
                    Due(SEED, "nis", "3", at(10, 0) + Duration::days(28)),
                    Status(SEED, "nis", "1", S::Met),
                ]),
            ],
        ),
        sc(
            "Reporting skede 2 marks only skede 2 met",
            vec![
                T(tk("1").end(at(6, 0)).accepted(at(6, 30))),
                Report("nis", "2", None, at(9, 0)),
                Check(vec![
                    Status(SEED, "nis", "2", S::Met),
                    Status(SEED, "nis", "1", S::Pending),
                    Provisional(SEED, "nis", "3", true),
                ]),
            ],
        ),
        sc(
            "A redelivered ticket is Unchanged and does not count twice",
            vec![
                T(tk("1")),
                Redeliver,
                Check(vec![Last(OutcomeKind::Unchanged), Tickets(1), Revision(1)]),
            ],
        ),
        sc(
            "An older ticket revision is ignored",
            vec![
                T(tk("1").rev(2).start(at(1, 0))),
                T(tk("1").rev(1).start(at(0, 0))),
                Check(vec![
                    Last(OutcomeKind::Unchanged),
                    Revision(1),
                    PendingAt(SEED, "system_disrupted_6h", Some(at(7, 0))),
                ]),
            ],
        ),
        sc(
            "A newer revision of a ticket replaces its contribution without counting it twice",
            vec![
                T(tk("1")),
                T(tk("1").rev(2).end(at(1, 0)).resolved().accepted(at(1, 5))),
                Check(vec![
                    Tickets(1),
                    Ended(Some(at(1, 0))),
                    PendingAt(SEED, "system_disrupted_6h", None),
                    Resolved(true),
                    Last(OutcomeKind::Resolved),
                    Revision(2),
                ]),
            ],
        ),
        sc(
            "A redelivered operator command is Unchanged",
            vec![
                T(tk("1")),
                Op(op("c1", at(0, 30)).care(true)),
                Redeliver,
                Check(vec![Last(OutcomeKind::Unchanged), Revision(2)]),
            ],
        ),
        sc(
            "A redelivered stage report is Unchanged",
            vec![
                T(tk("1").end(at(6, 0)).accepted(at(6, 30))),
                Report("nis", "1", None, at(9, 0)),
                Redeliver,
                Check(vec![
                    Last(OutcomeKind::Unchanged),
                    Revision(2),
                    Status(SEED, "nis", "1", S::Met),
                ]),
            ],
        ),
        sc(
            "A storm of 300 tickets about one outage is one incident counting its tickets and units",
            vec![
                Storm(300, 12),
                Redeliver,
                Check(vec![
                    Tickets(300),
                    Units(12),
                    Revision(300),
                    Last(OutcomeKind::Unchanged),
                ]),
            ],
        ),
        sc(
            "Resolving an ongoing disruption before 2h ends it and drops its thresholds",
            vec![
                T(tk("1").care(true)),
                Resolve(at(1, 30)),
                Clock(at(7, 0)),
                Check(vec![
                    Reportable(SEED, false),
                    PendingAt(SEED, "care_interrupted_2h", None),
                    Resolved(true),
                    Ended(Some(at(1, 30))),
                ]),
            ],
        ),
        sc(
            "Resolving after the incident became reportable keeps its deadlines pending",
            vec![
                T(tk("1").care(true)),
                Clock(at(2, 30)),
                Resolve(at(3, 0)),
                Check(vec![
                    Reportable(SEED, true),
                    Status(SEED, "nis", "1", S::Pending),
                    Resolved(true),
                    Last(OutcomeKind::Resolved),
                ]),
            ],
        ),
        sc(
            "An operator's resolution time corrects a ticket's end time",
            vec![
                T(tk("1").end(at(7, 0)).accepted(at(7, 5))),
                Check(vec![Reportable(SEED, true)]),
                Resolve(at(4, 0)),
                Check(vec![
                    Reportable(SEED, false),
                    Ended(Some(at(4, 0))),
                    Status(SEED, "nis", "1", S::Cancelled),
                ]),
            ],
        ),
        sc(
            "A resolved ticket without an end time counts as ended when it arrived",
            vec![
                T(tk("1").resolved().accepted(at(6, 10))),
                Check(vec![
                    Ended(Some(at(6, 10))),
                    Met(SEED, "system_disrupted_6h", Some(at(6, 0))),
                    Identified(SEED, Some(at(6, 10))),
                ]),
            ],
        ),
        sc(
            "A new ongoing ticket reopens a resolved incident and the clock runs again",
            vec![
                T(tk("A").care(true)),
                Resolve(at(1, 0)),
                T(tk("B").care(true).start(at(1, 30))),
                Check(vec![
                    Resolved(false),
                    Ended(None),
                    PendingAt(SEED, "care_interrupted_2h", Some(at(2, 0))),
                ]),
            ],
        ),
        sc(
            "identified_at never moves later when a later ticket would identify it later",
            vec![
                T(tk("A").care(true)),
                Clock(at(2, 30)),
                T(tk("B").start(at(0, 30)).care(true).accepted(at(5, 0))),
                Check(vec![
                    Identified(SEED, Some(at(2, 0))),
                    Due(SEED, "nis", "1", at(8, 0)),
                    Tickets(2),
                ]),
            ],
        ),
        sc(
            "The NIS marker in a subject raises suspected_nis and a question until an operator assesses",
            vec![
                T(tk("1")
                    .subject("EVENTUELL NIS\u{2010}INCIDENT: växeln svarar inte")
                    .no_system()),
                Check(vec![
                    SuspectedNis(true),
                    Question(Question::SuspectedNis, true),
                    NeedsAssessment(true),
                    Category(Some(Category::Telephony)),
                    Reportable(SEED, false),
                ]),
                Op(op("c1", at(0, 20)).care(false)),
                Check(vec![
                    Question(Question::SuspectedNis, false),
                    NeedsAssessment(false),
                    SuspectedNis(true),
                ]),
            ],
        ),
        sc(
            "Confirmed patient harm after the disruption ended still makes it reportable with lex Maria",
            vec![
                T(tk("1").end(at(1, 0)).accepted(at(1, 5))),
                Op(op("c1", at(20, 0)).harm(PatientHarm::Occurred)),
                Check(vec![
                    Identified(SEED, Some(at(20, 0))),
                    Due(SEED, "nis", "2", at(44, 0)),
                    Due(SEED, "lex_maria", "1", at(44, 0)),
                ]),
            ],
        ),
        both(
            "Both rule sets active give each their own assessment and deadlines for the same incident",
            vec![
                T(tk("1").care(true)),
                Clock(at(3, 0)),
                Check(vec![
                    Met(
                        CSL,
                        "care_limited_1h",
                        Some(at(1, 0) + Duration::seconds(1)),
                    ),
                    Identified(CSL, Some(at(1, 0) + Duration::seconds(1))),
                    Due(
                        CSL,
                        "nis",
                        "early_warning",
                        at(25, 0) + Duration::seconds(1),
                    ),
                    Due(CSL, "nis", "notification", at(73, 0) + Duration::seconds(1)),
                    Due(
                        CSL,
                        "nis",
                        "final",
                        at(73, 0) + Duration::seconds(1) + Duration::days(28),
                    ),
                    Provisional(CSL, "nis", "final", true),
                    Identified(SEED, Some(at(2, 0))),
                    Due(SEED, "nis", "1", at(8, 0)),
                ]),
            ],
        ),
        both(
            "Under the cybersecurity act care limited for exactly 1h is not 'more than 1h'",
            vec![
                T(tk("1").care(true).end(at(1, 0)).accepted(at(1, 5))),
                Check(vec![Reportable(CSL, false), Reportable(SEED, false)]),
                T(tk("1").rev(2).care(true).end(at(1, 1)).accepted(at(1, 10))),
                Check(vec![
                    Reportable(CSL, true),
                    Identified(CSL, Some(at(1, 10))),
                    Reportable(SEED, false),
                ]),
            ],
        ),
        both(
            "Under the cybersecurity act reporting the notification anchors the final report; the seed routine is untouched",
            vec![
                T(tk("1").end(at(7, 0)).accepted(at(7, 5))),
                Report("nis", "notification", Some(CSL), at(30, 0)),
                Check(vec![
                    Status(CSL, "nis", "notification", S::Met),
                    Due(CSL, "nis", "final", at(30, 0) + Duration::days(28)),
                    Provisional(CSL, "nis", "final", false),
                    Status(SEED, "nis", "1", S::Pending),
                    Provisional(SEED, "nis", "3", true),
                ]),
            ],
        ),
        both(
            "A stage report naming no rule set counts for every rule set with that duty and stage",
            vec![
                T(tk("1").end(at(7, 0)).accepted(at(7, 5))),
                Op(op("c1", at(8, 0)).pdb(true)),
                Report("personal_data", "1", None, at(9, 0)),
                Check(vec![
                    Status(SEED, "personal_data", "1", S::Met),
                    Status(CSL, "personal_data", "1", S::Met),
                    Due(
                        CSL,
                        "personal_data",
                        "supplement",
                        at(9, 0) + Duration::days(28),
                    ),
                ]),
            ],
        ),
        both(
            "A personal-data breach under both rule sets is due 72h after confirmation in each",
            vec![
                T(tk("1")),
                Op(op("c1", at(2, 0)).pdb(true)),
                Check(vec![
                    Due(SEED, "personal_data", "1", at(74, 0)),
                    Due(CSL, "personal_data", "1", at(74, 0)),
                ]),
            ],
        ),
        sc(
            "DST: a skede 1 deadline across the last Sunday of March stays exactly 6h in UTC",
            vec![
                T(tk("1").start(dst_start).accepted(dst_start)),
                Clock(dst_start + Duration::hours(7)),
                Check(vec![
                    Identified(SEED, Some(utc("2026-03-29T00:30:00Z"))),
                    Due(SEED, "nis", "1", utc("2026-03-29T06:30:00Z")),
                    DueLocal(SEED, "nis", "1", "2026-03-29 08:30 (CEST)"),
                    DueMinusAnchor(SEED, "nis", "1", Duration::hours(6)),
                    DueMinusAnchor(SEED, "nis", "2", Duration::hours(24)),
                ]),
            ],
        ),
        sc(
            "DST: a 28-day skede 3 across the last Sunday of October stays exactly 672h",
            vec![
                T(tk("1")
                    .start(utc("2026-10-09T00:00:00Z"))
                    .end(utc("2026-10-09T07:00:00Z"))
                    .accepted(utc("2026-10-09T08:00:00Z"))),
                Report("nis", "1", None, utc("2026-10-09T12:00:00Z")),
                Check(vec![
                    Due(SEED, "nis", "3", utc("2026-11-06T12:00:00Z")),
                    DueLocal(SEED, "nis", "3", "2026-11-06 13:00 (CET)"),
                    DueMinusAnchor(SEED, "nis", "3", Duration::hours(672)),
                ]),
            ],
        ),
        sc(
            "Outcome kinds: a first ticket opens, an unrelated update updates, a threshold assesses",
            vec![
                T(tk("1").care(true)),
                Check(vec![Last(OutcomeKind::Opened)]),
                T(tk("1")
                    .rev(2)
                    .care(true)
                    .unit("Korttidsboende Öster")
                    .accepted(at(0, 30))),
                Check(vec![Last(OutcomeKind::Updated), Units(1)]),
                Clock(at(2, 0)),
                Check(vec![Last(OutcomeKind::Assessed), Revision(3)]),
            ],
        ),
        sc(
            "Moving a confirmed harm from risk to occurred does not restart the lex Maria clock",
            vec![
                T(tk("1").end(at(0, 30)).accepted(at(0, 40))),
                Op(op("c1", at(1, 0)).harm(PatientHarm::Risk)),
                Op(op("c2", at(6, 0)).harm(PatientHarm::Occurred)),
                Check(vec![
                    Due(SEED, "lex_maria", "1", at(25, 0)),
                    Identified(SEED, Some(at(1, 0))),
                ]),
            ],
        ),
        sc(
            "An operator assessment confirming no fact still answers the suspected-NIS question",
            vec![
                T(tk("1").subject("Eventuell NIS-incident")),
                Op(op("c1", at(0, 10))),
                Check(vec![
                    Question(Question::SuspectedNis, false),
                    Revision(2),
                    Last(OutcomeKind::Updated),
                ]),
            ],
        ),
        sc(
            "A threshold fact claiming an instant far ahead of the clock is not trusted",
            vec![
                T(tk("1").care(true)),
                Threshold(SEED, "care_interrupted_2h", at(2, 0), at(1, 0)),
                Check(vec![Last(OutcomeKind::Unchanged), Reportable(SEED, false)]),
            ],
        ),
        sc(
            "Another ticket about a reportable ongoing outage updates the incident without re-assessing it",
            vec![
                T(tk("A").care(true)),
                Clock(at(2, 30)),
                T(tk("B").care(true).start(at(1, 0)).accepted(at(3, 0))),
                Check(vec![
                    Last(OutcomeKind::Updated),
                    Tickets(2),
                    Identified(SEED, Some(at(2, 0))),
                ]),
            ],
        ),
        sc(
            "A ticket naming no system gets its category from Swedish words",
            vec![
                T(tk("1")
                    .subject("Outlook och mejlen fungerar inte")
                    .no_system()),
                Check(vec![Category(Some(Category::Email))]),
            ],
        ),
    ]
}

struct World {
    inc: Incident,
    rules: Vec<RuleSet>,
    lex: Lexicon,
    last_fact: Option<(Fact, DateTime<Utc>)>,
    last_kind: OutcomeKind,
}

impl World {
    fn apply(&mut self, fact: Fact, now: DateTime<Utc>) {
        let out = self.inc.apply(&fact, &self.rules, &self.lex, now);
        self.last_kind = out.kind;
        self.last_fact = Some((fact, now));
    }
}

fn run(s: &Scenario) {
    let all = rules::builtin();
    let rules = match s.rules {
        Rules::Seed => vec![all[0].clone()],
        Rules::Both => all,
    };
    let mut w = World {
        inc: Incident::open(IncidentId::parse("inc_test").unwrap(), at(0, 0)),
        rules,
        lex: Lexicon::default_sv(),
        last_fact: None,
        last_kind: OutcomeKind::Unchanged,
    };
    for (i, step) in s.steps.iter().enumerate() {
        match step.clone() {
            T(Tk(ticket, accepted)) => w.apply(
                Fact::Ticket {
                    receipt_id: format!("r{i}"),
                    ticket,
                    accepted_at: accepted,
                },
                accepted,
            ),
            Clock(until) => loop {
                let next = w
                    .inc
                    .pending_thresholds()
                    .into_iter()
                    .filter(|(_, p)| p.at <= until)
                    .min_by_key(|(_, p)| p.at);
                let Some((rule_set, p)) = next else { break };
                w.apply(
                    Fact::ThresholdReached {
                        rule_set,
                        criterion: p.criterion,
                        at: p.at,
                    },
                    p.at,
                );
                assert_ne!(
                    w.last_kind,
                    OutcomeKind::Unchanged,
                    "{}: a due threshold must change something",
                    s.name
                );
            },
            Threshold(rs, c, t, now) => w.apply(
                Fact::ThresholdReached {
                    rule_set: rs.into(),
                    criterion: c.into(),
                    at: t,
                },
                now,
            ),
            Op(o) => {
                let t = o.at.unwrap_or(at(0, 0));
                w.apply(
                    Fact::OperatorAssessment {
                        command_id: o.id.into(),
                        assessed_by: "nis.bedomare".into(),
                        care_blocked: o.care,
                        patient_harm: o.harm,
                        personal_data_breach: o.pdb,
                        security_protection: o.sec,
                        reasoning: Some("Bedömt efter samtal med enhetschef".into()),
                        at: t,
                    },
                    t,
                )
            }
            Report(duty, stage, rs, t) => w.apply(
                Fact::StageReported {
                    command_id: format!("rep{i}"),
                    duty: duty.into(),
                    stage: stage.into(),
                    rule_set: rs.map(Into::into),
                    reported_at: t,
                    reported_by: "sakerhetsenheten".into(),
                    channel: ReportChannel::Tool,
                },
                t,
            ),
            Resolve(t) => w.apply(
                Fact::Resolved {
                    command_id: Some(format!("res{i}")),
                    resolved_at: t,
                    resolved_by: "intraservice".into(),
                    note: None,
                },
                t,
            ),
            Redeliver => {
                let (fact, now) = w.last_fact.clone().expect("nothing to redeliver");
                let before = w.inc.clone();
                w.apply(fact, now + Duration::minutes(1));
                assert_eq!(
                    w.inc, before,
                    "{}: a redelivery changed the incident",
                    s.name
                );
            }
            Storm(n, units) => {
                for k in 0..n {
                    let t = tk(&format!("S{k}"))
                        .unit(&format!("Enhet {}", k % units))
                        .accepted(at(0, 0) + Duration::seconds(k as i64));
                    w.apply(
                        Fact::Ticket {
                            receipt_id: format!("r{k}"),
                            ticket: t.0,
                            accepted_at: t.1,
                        },
                        t.1,
                    );
                }
            }
            Check(expectations) => {
                for e in expectations {
                    check(&w, &e).unwrap_or_else(|msg| {
                        panic!(
                            "{} (step {i}): {e:?}: {msg}\n{}",
                            s.name,
                            serde_json::to_string_pretty(&w.inc).unwrap()
                        )
                    });
                }
            }
        }
    }
}

fn check(w: &World, e: &E) -> Result<(), String> {
    let inc = &w.inc;
    let a = |rs: &str| inc.assessment(rs).ok_or(format!("no assessment for {rs}"));
    let d = |rs: &str, duty: &str, st: &str| {
        inc.deadline(rs, duty, st)
            .ok_or(format!("no deadline {rs}/{duty}/{st}"))
    };
    let eq = |what: String, got: String, want: String| {
        if got == want {
            Ok(())
        } else {
            Err(format!("{what}: got {got}, want {want}"))
        }
    };
    match e {
        Reportable(rs, want) => eq(
            "reportable".into(),
            a(rs)?.reportable.to_string(),
            want.to_string(),
        ),
        Identified(rs, want) => eq(
            "identified_at".into(),
            format!("{:?}", a(rs)?.identified_at),
            format!("{want:?}"),
        ),
        Met(rs, c, want) => {
            let r = a(rs)?
                .criteria
                .iter()
                .find(|x| x.id == *c)
                .ok_or("no such criterion")?;
            if r.reason.is_empty() {
                return Err("empty reason".into());
            }
            eq(
                format!("{c} met_at (reason: {})", r.reason),
                format!("{:?}", r.met_at),
                format!("{want:?}"),
            )?;
            eq("met".into(), r.met.to_string(), want.is_some().to_string())
        }
        PendingAt(rs, c, want) => {
            let got = a(rs)?
                .pending_thresholds
                .iter()
                .find(|p| p.criterion == *c)
                .map(|p| p.at);
            eq(
                format!("pending {c}"),
                format!("{got:?}"),
                format!("{want:?}"),
            )
        }
        Due(rs, duty, st, want) => {
            let dl = d(rs, duty, st)?;
            eq(
                "status".into(),
                format!("{:?}", dl.status),
                "Pending".into(),
            )?;
            eq("due_at".into(), dl.due_at.to_rfc3339(), want.to_rfc3339())
        }
        Status(rs, duty, st, want) => eq(
            "status".into(),
            format!("{:?}", d(rs, duty, st)?.status),
            format!("{want:?}"),
        ),
        NoDeadline(rs, duty, st) => match inc.deadline(rs, duty, st) {
            None => Ok(()),
            Some(dl) => Err(format!("unexpected deadline {dl:?}")),
        },
        Provisional(rs, duty, st, want) => eq(
            "provisional".into(),
            d(rs, duty, st)?.provisional.to_string(),
            want.to_string(),
        ),
        MetAt(rs, duty, st, want) => eq(
            "met_at".into(),
            format!("{:?}", d(rs, duty, st)?.met_at),
            format!("{:?}", Some(*want)),
        ),
        Question(q, want) => eq(
            format!("question {q:?}"),
            inc.open_questions.contains(q).to_string(),
            want.to_string(),
        ),
        NeedsAssessment(want) => eq(
            "needs_assessment".into(),
            inc.flags.needs_assessment.to_string(),
            want.to_string(),
        ),
        SuspectedNis(want) => eq(
            "suspected_nis".into(),
            inc.flags.suspected_nis.to_string(),
            want.to_string(),
        ),
        PersonalIdentifiers(want) => eq(
            "personal_identifiers".into(),
            inc.flags.personal_identifiers.to_string(),
            want.to_string(),
        ),
        Tickets(n) => eq(
            "ticket_count".into(),
            inc.ticket_count.to_string(),
            n.to_string(),
        ),
        Units(n) => eq("units".into(), inc.units.len().to_string(), n.to_string()),
        Revision(n) => eq("revision".into(), inc.revision.to_string(), n.to_string()),
        Last(k) => eq(
            "last outcome".into(),
            format!("{:?}", w.last_kind),
            format!("{k:?}"),
        ),
        Resolved(want) => eq(
            "resolved".into(),
            (inc.resolved_at.is_some()).to_string(),
            want.to_string(),
        ),
        Category(want) => eq(
            "category".into(),
            format!("{:?}", inc.category),
            format!("{want:?}"),
        ),
        Ended(want) => eq(
            "disruption_ended_at".into(),
            format!("{:?}", inc.disruption_ended_at),
            format!("{want:?}"),
        ),
        DueLocal(rs, duty, st, want) => eq(
            "local due".into(),
            local(d(rs, duty, st)?.due_at),
            want.to_string(),
        ),
        DueMinusAnchor(rs, duty, st, want) => {
            let dl = d(rs, duty, st)?;
            eq(
                "due - anchor".into(),
                (dl.due_at - dl.anchor_at).to_string(),
                want.to_string(),
            )
        }
    }
}

#[test]
fn every_scenario_of_the_table_holds() {
    let all = scenarios();
    assert!(
        all.len() >= 40,
        "the table must cover at least 40 scenarios, has {}",
        all.len()
    );
    let mut names = std::collections::BTreeSet::new();
    for s in &all {
        assert!(names.insert(s.name), "duplicate scenario name {}", s.name);
    }
    let mut failures = Vec::new();
    for s in &all {
        if let Err(e) = std::panic::catch_unwind(|| run(s)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!(
                "{}: {}",
                s.name,
                msg.lines().take(3).collect::<Vec<_>>().join(" | ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}
