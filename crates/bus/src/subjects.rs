//! Subject names of the v1 contract (CONTRACT.md, `docs/asyncapi.yaml`).
//! Entity ids sit in the subject so subscribers can follow one entity.

/// Tickets accepted by intake.
pub const TICKET_ACCEPTED: &str = "nis.v1.ticket.accepted";
/// Raw ticket submissions over NATS (JSON as `POST /v1/tickets`), request/reply.
pub const TICKET_SUBMIT: &str = "nis.v1.ticket.submit";
/// Dead letters: `nis.v1.deadletter.<service>.<original subject>`.
pub const DEADLETTER_PREFIX: &str = "nis.v1.deadletter";

/// `nis.v1.incident.<id>.<event>`.
pub fn incident(id: &str, event: &str) -> String {
    format!("nis.v1.incident.{}.{event}", token(id))
}

/// `nis.v1.deadline.<timer_id>.<event>`.
pub fn deadline(timer_id: &str, event: &str) -> String {
    format!("nis.v1.deadline.{}.{event}", token(timer_id))
}

/// `nis.v1.alert.<alert_id>.<event>`.
pub fn alert(alert_id: &str, event: &str) -> String {
    format!("nis.v1.alert.{}.{event}", token(alert_id))
}

/// `nis.v1.delivery.<alert_id>.<channel>`.
pub fn delivery(alert_id: &str, channel: &str) -> String {
    format!("nis.v1.delivery.{}.{}", token(alert_id), token(channel))
}

/// `nis.v1.command.incident.<id>.<verb>`.
pub fn incident_command(id: &str, verb: &str) -> String {
    format!("nis.v1.command.incident.{}.{verb}", token(id))
}

/// `nis.v1.command.alert.<id>.ack`.
pub fn alert_ack(alert_id: &str) -> String {
    format!("nis.v1.command.alert.{}.ack", token(alert_id))
}

/// `nis.v1.command.timer.<id>.<verb>` (`schedule`, `cancel`).
pub fn timer_command(timer_id: &str, verb: &str) -> String {
    format!("nis.v1.command.timer.{}.{verb}", token(timer_id))
}

/// `nis.v1.timer.sched.<timer_id>.<slot>`: where a firing's schedule lives.
pub fn timer_schedule(timer_id: &str, slot: &str) -> String {
    format!("nis.v1.timer.sched.{}.{}", token(timer_id), token(slot))
}

/// `nis.v1.timer.fire.<timer_id>.<slot>`: where the broker puts a firing.
pub fn timer_fire(timer_id: &str, slot: &str) -> String {
    format!("nis.v1.timer.fire.{}.{}", token(timer_id), token(slot))
}

/// `nis.v1.deadletter.<service>.<original subject>`.
pub fn deadletter(service: &str, original: &str) -> String {
    format!("{DEADLETTER_PREFIX}.{}.{original}", token(service))
}

/// Makes any text safe as one subject token: keeps ASCII letters, digits,
/// `_` and `-`, and turns everything else (dots, wildcards, spaces) into `_`.
pub fn token(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() { "_".to_string() } else { t }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_never_contains_subject_syntax() {
        assert_eq!(token("a.b c>*"), "a_b_c__");
        assert_eq!(token(""), "_");
        assert_eq!(
            incident("inc_01H", "assessed"),
            "nis.v1.incident.inc_01H.assessed"
        );
    }
}
