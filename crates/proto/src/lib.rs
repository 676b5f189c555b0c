//! The wire contract of nisvakt, generated from `proto/nisvakt/v1`.
//!
//! This crate only carries generated types and the small table that ties
//! each event message to its CloudEvents type name; it holds no logic.
//! `proto/` is the authoritative form of the contract.

#![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]

/// Version 1 of the contract (`nisvakt.v1`).
pub mod v1 {
    tonic::include_proto!("nisvakt.v1");
}

/// A protobuf message that travels on the bus as a CloudEvent.
pub trait Event: prost::Message + Default {
    /// The fully-qualified protobuf name, used as `ce-type`.
    const TYPE: &'static str;
}

macro_rules! events {
    ($($name:ident),* $(,)?) => {
        $(impl Event for v1::$name {
            const TYPE: &'static str = concat!("nisvakt.v1.", stringify!($name));
        })*
    };
}

events!(
    TicketAccepted,
    TicketSubmission,
    IncidentOpened,
    IncidentUpdated,
    IncidentAssessed,
    IncidentResolved,
    RecordAssessment,
    ReportStage,
    ResolveIncident,
    AcknowledgeAlert,
    DeadlineScheduled,
    DeadlineWarning,
    DeadlineDue,
    DeadlineOverdue,
    DeadlineMet,
    DeadlineCancelled,
    ThresholdReached,
    EscalationDue,
    TimerOverdueWatchdog,
    ScheduleTimer,
    CancelTimer,
    Timer,
    Firing,
    AlertRaised,
    AlertEscalated,
    AlertAcknowledged,
    DeliveryResult,
);
