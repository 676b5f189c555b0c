//! nisvakt-domain: the pure core of nisvakt.
//!
//! Tickets and their validation and masking, Swedish text recognition,
//! versioned rule sets, the incident fold, assessment and deadline
//! arithmetic, and correlation. Everything here is a function of its inputs:
//! time is always a parameter `now`, ids are made by the caller, and the only
//! I/O is reading rule-set and lexicon files on request. This crate must not
//! depend on tokio, NATS or any clock.

pub mod assess;
pub mod correlate;
pub mod incident;
pub mod mask;
pub mod rules;
pub mod text;
pub mod ticket;
pub mod time;
