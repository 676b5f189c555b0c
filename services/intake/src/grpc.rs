//! The gRPC surface, `nisvakt.v1.Intake`: the same operations as REST,
//! through the same validation (`TicketSubmission` becomes the JSON
//! ticket input, so both doors accept and reject exactly the same).
//! Credentials come in the `authorization` metadata (`Bearer <token>`),
//! checked by `auth` exactly as over REST.

use std::pin::Pin;

use futures::Stream;
use nisvakt_bus::clock::from_timestamp;
use nisvakt_bus::{Shutdown, TraceContext};
use nisvakt_domain::ticket::{ReporterInput, TicketInput};
use nisvakt_proto::v1 as pb;
use nisvakt_proto::v1::intake_server::{Intake as IntakeApi, IntakeServer};
use tonic::{Request, Response, Status};

use crate::auth::{self, Action, Auth};
use crate::ops::{Error, Intake};
use crate::watch::Hub;

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct Service {
    intake: Intake,
    hub: Hub,
    auth: Auth,
}

impl Service {
    /// Checks the call's `authorization` metadata for `action`.
    fn authorize<T>(&self, request: &Request<T>, action: Action) -> Result<(), Status> {
        let value = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match self.auth.check(action, value, None) {
            Ok(_) => Ok(()),
            Err(e @ auth::Error::Unauthenticated(_)) => Err(Status::unauthenticated(e.to_string())),
            Err(e @ auth::Error::Forbidden { .. }) => Err(Status::permission_denied(e.to_string())),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }
}

/// Serves gRPC on `listener` until shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    intake: Intake,
    hub: Hub,
    auth: Auth,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .add_service(IntakeServer::new(Service { intake, hub, auth }))
        .serve_with_incoming_shutdown(incoming, async move { shutdown.wait().await })
        .await?;
    Ok(())
}

fn status(e: Error) -> Status {
    match e {
        Error::Invalid(v) => Status::invalid_argument(v.to_string()),
        Error::NotFound(w) => Status::not_found(format!("{w} not found")),
        Error::Unavailable(w) => Status::unavailable(format!("cannot persist now: {w}")),
    }
}

fn trace_of<T>(r: &Request<T>) -> TraceContext {
    r.metadata()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse)
        .unwrap_or_else(TraceContext::new_root)
}

fn rfc3339(t: &Option<prost_types::Timestamp>) -> Option<String> {
    t.as_ref()
        .and_then(from_timestamp)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// A gRPC submission as the JSON input, so one validation path serves both.
pub fn to_input(s: pb::TicketSubmission) -> TicketInput {
    let category = match s.category() {
        pb::Category::Unspecified => None,
        c => Some(
            c.as_str_name()
                .trim_start_matches("CATEGORY_")
                .to_lowercase(),
        ),
    };
    let harm = match s.patient_harm() {
        pb::PatientHarm::Unspecified => None,
        h => Some(
            h.as_str_name()
                .trim_start_matches("PATIENT_HARM_")
                .to_lowercase(),
        ),
    };
    let status = match s.status() {
        pb::TicketStatus::Unspecified => None,
        t => Some(
            t.as_str_name()
                .trim_start_matches("TICKET_STATUS_")
                .to_lowercase(),
        ),
    };
    let reporter =
        (!s.reporter_name.is_empty() || !s.reporter_email.is_empty()).then(|| ReporterInput {
            name: non_empty(s.reporter_name.clone()),
            email: non_empty(s.reporter_email.clone()),
        });
    TicketInput {
        source: non_empty(s.source),
        ticket_id: non_empty(s.ticket_id),
        revision: s.revision.map(|r| r.min(i64::MAX as u64) as i64),
        subject: non_empty(s.subject),
        description: non_empty(s.description),
        reported_at: rfc3339(&s.reported_at),
        unit: non_empty(s.unit),
        reporter,
        system: non_empty(s.system),
        category,
        disruption_started_at: rfc3339(&s.disruption_started_at),
        disruption_ended_at: rfc3339(&s.disruption_ended_at),
        care_blocked: s.care_blocked,
        patient_harm: harm,
        status,
    }
}

fn incident_from_json(v: serde_json::Value) -> Result<pb::Incident, Status> {
    nisvakt_bus::convert::incident_json_to_pb(&v)
        .map_err(|e| Status::internal(format!("stored incident unreadable: {e}")))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl IntakeApi for Service {
    async fn submit_ticket(
        &self,
        request: Request<pb::TicketSubmission>,
    ) -> Result<Response<pb::SubmitTicketResponse>, Status> {
        self.authorize(&request, Action::SubmitTicket)?;
        let trace = trace_of(&request);
        let valid = nisvakt_domain::ticket::validate(to_input(request.into_inner()))
            .map_err(|v| status(Error::Invalid(v)))?;
        let r = self
            .intake
            .submit(valid, "grpc", &trace)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SubmitTicketResponse {
            receipt_id: r.receipt_id,
            duplicate: r.duplicate,
        }))
    }

    async fn record_assessment(
        &self,
        request: Request<pb::RecordAssessment>,
    ) -> Result<Response<pb::CommandAccepted>, Status> {
        self.authorize(&request, Action::Act)?;
        let trace = trace_of(&request);
        let id = self
            .intake
            .record_assessment(request.into_inner(), &trace)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CommandAccepted { command_id: id }))
    }

    async fn report_stage(
        &self,
        request: Request<pb::ReportStage>,
    ) -> Result<Response<pb::CommandAccepted>, Status> {
        self.authorize(&request, Action::Act)?;
        let trace = trace_of(&request);
        let id = self
            .intake
            .report_stage(request.into_inner(), &trace)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CommandAccepted { command_id: id }))
    }

    async fn resolve_incident(
        &self,
        request: Request<pb::ResolveIncident>,
    ) -> Result<Response<pb::CommandAccepted>, Status> {
        self.authorize(&request, Action::Act)?;
        let trace = trace_of(&request);
        let id = self
            .intake
            .resolve(request.into_inner(), &trace)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CommandAccepted { command_id: id }))
    }

    async fn acknowledge_alert(
        &self,
        request: Request<pb::AcknowledgeAlert>,
    ) -> Result<Response<pb::CommandAccepted>, Status> {
        self.authorize(&request, Action::Act)?;
        let trace = trace_of(&request);
        let id = self
            .intake
            .acknowledge(request.into_inner(), &trace)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CommandAccepted { command_id: id }))
    }

    async fn get_incident(
        &self,
        request: Request<pb::GetIncidentRequest>,
    ) -> Result<Response<pb::Incident>, Status> {
        self.authorize(&request, Action::Read)?;
        let id = request.into_inner().id;
        match self.intake.incident(&id).await.map_err(status)? {
            Some(v) => Ok(Response::new(incident_from_json(v)?)),
            None => Err(Status::not_found(format!("incident {id} not found"))),
        }
    }

    async fn list_incidents(
        &self,
        request: Request<pb::ListIncidentsRequest>,
    ) -> Result<Response<pb::ListIncidentsResponse>, Status> {
        self.authorize(&request, Action::Read)?;
        let all = request.into_inner().include_resolved;
        let list = self.intake.incidents(all).await.map_err(status)?;
        let incidents = list
            .into_iter()
            .map(incident_from_json)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Response::new(pb::ListIncidentsResponse { incidents }))
    }

    type WatchIncidentsStream = WatchStream;

    async fn watch_incidents(
        &self,
        request: Request<pb::WatchIncidentsRequest>,
    ) -> Result<Response<Self::WatchIncidentsStream>, Status> {
        self.authorize(&request, Action::Read)?;
        let only = request.into_inner().incident_id;
        let rx = self.hub.subscribe();
        let stream = futures::stream::unfold((rx, only), |(mut rx, only)| async move {
            loop {
                match rx.recv().await {
                    Ok(item) => {
                        if !only.is_empty() && item.incident_id().as_deref() != Some(only.as_str())
                        {
                            continue;
                        }
                        let Some(event) = item.decode() else { continue };
                        let ev = pb::WatchEvent {
                            subject: item.subject.clone(),
                            r#type: item.ce_type.clone(),
                            event: Some(event),
                        };
                        return Some((Ok(ev), (rx, only)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        return Some((
                            Err(Status::data_loss(format!(
                                "watcher fell {n} events behind; reload and watch again"
                            ))),
                            (rx, only),
                        ));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
