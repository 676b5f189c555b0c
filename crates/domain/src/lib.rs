//! nisvakt-domain: the pure core of nisvakt.
//!
//! Tickets and their validation and masking, Swedish text recognition,
//! versioned rule sets, the incident fold, assessment and deadline
//! arithmetic, and correlation. Everything here is a function of its inputs:
//! time is always a parameter `now`, ids are made by the caller, and the only
//! I/O is reading rule-set and lexicon files on request. This crate must not
//! depend on tokio, NATS or any clock.
//!
//! The flow the services follow, end to end:
//!
//! ```
//! use chrono::{DateTime, Duration, Utc};
//! use nisvakt_domain::{incident::*, rules, text::Lexicon, ticket};
//!
//! // intake: validate and mask the body of POST /v1/tickets
//! let body = r#"{"source":"intraservice","ticket_id":"INC-7","subject":
//!     "Eventuell NIS-incident: journalen nere, pat 811218-9876",
//!     "reported_at":"2026-03-10T08:00:00Z","care_blocked":true}"#;
//! let t = ticket::parse_json(body).unwrap().into_masked();
//! assert_eq!(t.identifiers_masked, 1);
//!
//! // classifier: fold the ticket into a (new) incident under the rule sets
//! let rules = rules::builtin();
//! let lexicon = Lexicon::default_sv();
//! let accepted: DateTime<Utc> = "2026-03-10T08:01:00Z".parse().unwrap();
//! let mut inc = Incident::open(IncidentId::parse("inc_01").unwrap(), accepted);
//! let out = inc.apply(
//!     &Fact::Ticket { receipt_id: "r1".into(), ticket: t, accepted_at: accepted },
//!     &rules, &lexicon, accepted,
//! );
//! assert_eq!(out.kind, OutcomeKind::Opened);
//! assert!(inc.flags.suspected_nis && inc.flags.needs_assessment);
//!
//! // deadline-timer: a pending threshold fires and is fed back
//! let (rule_set, p) = inc.pending_thresholds().into_iter().min_by_key(|(_, p)| p.at).unwrap();
//! let out = inc.apply(
//!     &Fact::ThresholdReached { rule_set, criterion: p.criterion, at: p.at },
//!     &rules, &lexicon, p.at,
//! );
//! assert_eq!(out.became_reportable, ["cybersecurity-act-2025"]);
//! let early = inc.deadline("cybersecurity-act-2025", "nis", "early_warning").unwrap();
//! assert_eq!(early.due_at - early.anchor_at, Duration::hours(24));
//! ```

#![warn(missing_docs)]

pub mod assess;
pub mod correlate;
pub mod incident;
pub mod mask;
pub mod rules;
pub mod text;
pub mod ticket;
pub mod time;
