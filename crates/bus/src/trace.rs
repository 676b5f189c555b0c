//! W3C trace context (`traceparent`) carried on every message, so one trace
//! id spans a ticket's whole journey: intake → classifier → deadline-timer
//! → notifier. When OTLP export is on, the handler's span is parented on
//! the incoming context so the exported spans link up too.

use std::fmt;

use rand::Rng;

/// A parsed `traceparent`: version 00, trace id, parent span id, flags.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// 16 random bytes shared by every hop.
    pub trace_id: [u8; 16],
    /// The span that produced the message.
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

impl TraceContext {
    /// A new trace with random ids, sampled.
    pub fn new_root() -> Self {
        let mut rng = rand::rng();
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        rng.fill(&mut trace_id);
        rng.fill(&mut span_id);
        TraceContext {
            trace_id,
            span_id,
            flags: 1,
        }
    }

    /// The same trace with a new span id: the next hop.
    pub fn child(&self) -> Self {
        let mut span_id = [0u8; 8];
        rand::rng().fill(&mut span_id);
        TraceContext { span_id, ..*self }
    }

    /// Parses a `traceparent` header; `None` when malformed or all-zero.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let version = parts.next()?;
        if version.len() != 2 || version == "ff" {
            return None;
        }
        let trace_id = unhex::<16>(parts.next()?)?;
        let span_id = unhex::<8>(parts.next()?)?;
        let flags = unhex::<1>(parts.next()?)?[0];
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The trace id as 32 hex digits (for logs).
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// An OpenTelemetry context with this as the remote parent.
    pub fn to_otel(&self) -> opentelemetry::Context {
        use opentelemetry::trace::{
            SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
        };
        let sc = SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            TraceFlags::new(self.flags),
            true,
            TraceState::default(),
        );
        opentelemetry::Context::new().with_remote_span_context(sc)
    }

    /// The context of the current tracing span when OTLP export made one
    /// for this trace, else a plain child of `self`.
    pub fn next_hop(&self) -> Self {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let cx = tracing::Span::current().context();
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() && sc.trace_id().to_bytes() == self.trace_id {
            TraceContext {
                trace_id: self.trace_id,
                span_id: sc.span_id().to_bytes(),
                flags: self.flags,
            }
        } else {
            self.child()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips() {
        let h = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceContext::parse(h).unwrap();
        assert_eq!(t.to_string(), h);
        assert_eq!(t.child().trace_id, t.trace_id);
        assert_ne!(t.child().span_id, t.span_id);
    }

    #[test]
    fn malformed_traceparents_are_rejected() {
        for h in [
            "",
            "00-xyz-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse(h).is_none(), "{h}");
        }
    }
}
