//! The live feed behind `GET /v1/stream` and the gRPC `WatchIncidents`:
//! one core-NATS subscription per intake process on the integrator
//! subjects, fanned out to every watcher. Watchers that fall behind lose
//! the oldest events and are told to reload; the projection in KV stays the
//! truth.

use async_nats::HeaderMap;
use futures::StreamExt;
use nisvakt_bus::publish::headers;
use nisvakt_proto::Event;
use nisvakt_proto::v1 as pb;
use prost::Message as _;
use tokio::sync::broadcast;

/// One event as it passed on the bus.
#[derive(Debug, Clone)]
pub struct Item {
    /// Its subject.
    pub subject: String,
    /// Its `ce-type`.
    pub ce_type: String,
    /// Its protobuf payload.
    pub payload: bytes::Bytes,
}

impl Item {
    /// The incident the event concerns, when it names one.
    pub fn incident_id(&self) -> Option<String> {
        match self.decode() {
            Some(pb::watch_event::Event::Incident(i)) => Some(i.id),
            Some(pb::watch_event::Event::Firing(f)) => f.timer.map(|t| t.incident_id),
            Some(pb::watch_event::Event::Alert(a)) => Some(a.incident_id),
            Some(pb::watch_event::Event::Acknowledged(a)) => Some(a.incident_id),
            None => None,
        }
    }

    /// The event decoded for the gRPC stream; `None` for types the watch
    /// does not carry (scheduled, met, cancelled, deliveries).
    pub fn decode(&self) -> Option<pb::watch_event::Event> {
        use pb::watch_event::Event as W;
        let p = self.payload.as_ref();
        let t = self.ce_type.as_str();
        let incident = |i: Option<pb::Incident>| i.map(W::Incident);
        let firing = |f: Option<pb::Firing>| f.map(W::Firing);
        match t {
            x if x == pb::IncidentOpened::TYPE => {
                incident(pb::IncidentOpened::decode(p).ok()?.incident)
            }
            x if x == pb::IncidentUpdated::TYPE => {
                incident(pb::IncidentUpdated::decode(p).ok()?.incident)
            }
            x if x == pb::IncidentAssessed::TYPE => {
                incident(pb::IncidentAssessed::decode(p).ok()?.incident)
            }
            x if x == pb::IncidentResolved::TYPE => {
                incident(pb::IncidentResolved::decode(p).ok()?.incident)
            }
            x if x == pb::DeadlineWarning::TYPE => {
                firing(pb::DeadlineWarning::decode(p).ok()?.firing)
            }
            x if x == pb::DeadlineDue::TYPE => firing(pb::DeadlineDue::decode(p).ok()?.firing),
            x if x == pb::DeadlineOverdue::TYPE => {
                firing(pb::DeadlineOverdue::decode(p).ok()?.firing)
            }
            x if x == pb::ThresholdReached::TYPE => {
                firing(pb::ThresholdReached::decode(p).ok()?.firing)
            }
            x if x == pb::AlertRaised::TYPE => pb::AlertRaised::decode(p).ok()?.alert.map(W::Alert),
            x if x == pb::AlertEscalated::TYPE => {
                pb::AlertEscalated::decode(p).ok()?.alert.map(W::Alert)
            }
            x if x == pb::AlertAcknowledged::TYPE => {
                Some(W::Acknowledged(pb::AlertAcknowledged::decode(p).ok()?))
            }
            _ => None,
        }
    }
}

/// The fan-out.
#[derive(Debug, Clone)]
pub struct Hub {
    tx: broadcast::Sender<Item>,
}

/// Subjects the watch follows: what integrators may read.
pub const SUBJECTS: [&str; 3] = ["nis.v1.incident.>", "nis.v1.deadline.>", "nis.v1.alert.>"];

impl Hub {
    /// Subscribes and starts forwarding until shutdown.
    pub async fn start(
        client: async_nats::Client,
        shutdown: nisvakt_bus::Shutdown,
    ) -> Result<Hub, nisvakt_bus::Error> {
        let (tx, _) = broadcast::channel(1024);
        for subject in SUBJECTS {
            let mut sub = client
                .subscribe(subject)
                .await
                .map_err(|e| nisvakt_bus::Error::Nats(e.to_string()))?;
            let tx = tx.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    let msg = tokio::select! {
                        _ = shutdown.wait() => break,
                        m = sub.next() => m,
                    };
                    let Some(msg) = msg else { break };
                    let ce_type = msg
                        .headers
                        .as_ref()
                        .and_then(|h: &HeaderMap| h.get(headers::CE_TYPE))
                        .map(|v| v.to_string())
                        .unwrap_or_default();
                    let _ = tx.send(Item {
                        subject: msg.subject.to_string(),
                        ce_type,
                        payload: msg.payload,
                    });
                }
            });
        }
        Ok(Hub { tx })
    }

    /// A new watcher.
    pub fn subscribe(&self) -> broadcast::Receiver<Item> {
        self.tx.subscribe()
    }
}
