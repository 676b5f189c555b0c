//! The broker configuration in `deploy/nats/nats.conf`, run for real: the
//! services' user can do everything, an integrator can read incident,
//! deadline and alert events (also through JetStream consumers) and can
//! neither publish on the bus nor read tickets or commands.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use nisvakt_testkit::{NatsServer, workspace_root};

const SERVICE_PW: &str = "service-secret";
const INTEGRATOR_PW: &str = "integrator-secret";
const TICKETING_PW: &str = "ticketing-secret";

async fn server() -> anyhow::Result<NatsServer> {
    NatsServer::start_with_config(
        &workspace_root().join("deploy/nats/nats.conf"),
        &[
            ("NISVAKT_NATS_PASSWORD", SERVICE_PW),
            ("NISVAKT_INTEGRATOR_PASSWORD", INTEGRATOR_PW),
            ("NISVAKT_TICKETING_PASSWORD", TICKETING_PW),
        ],
        ("nisvakt", SERVICE_PW),
    )
    .await
}

#[tokio::test]
async fn integrators_read_the_public_areas_and_nothing_else() -> anyhow::Result<()> {
    let server = server().await?;
    // The services' own connect takes the credentials from NATS_URL.
    let service = nisvakt_bus::connect::connect(
        &server.url_as("nisvakt", SERVICE_PW),
        "test",
        &nisvakt_bus::Shutdown::new(),
    )
    .await?;
    let sjs = jetstream::new(service.clone());
    nisvakt_bus::topology::ensure(&sjs).await?;
    sjs.publish("nis.v1.alert.alt_1.raised", "alert".into())
        .await?
        .await?;
    sjs.publish("nis.v1.ticket.accepted", "ticket".into())
        .await?
        .await?;

    let integrator = server.client_as("integrator", INTEGRATOR_PW).await?;
    let ijs = jetstream::new(integrator.clone());

    // Reading alerts through a JetStream consumer works.
    let alerts = ijs.get_stream("NIS_ALERTS").await?;
    let consumer = alerts
        .create_consumer(pull::Config {
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let mut msgs = consumer.messages().await?;
    let m = tokio::time::timeout(Duration::from_secs(5), msgs.next())
        .await?
        .expect("an alert")?;
    assert_eq!(m.payload.as_ref(), b"alert");
    m.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;

    // Tickets (which stay behind the front door) cannot be read.
    assert!(ijs.get_stream("NIS_TICKETS").await.is_err());

    // Publishing on the bus is refused by the broker.
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        ijs.publish("nis.v1.ticket.accepted", "forged".into()),
    )
    .await?;
    let stored = match refused {
        Ok(ack) => tokio::time::timeout(Duration::from_secs(3), ack).await,
        Err(e) => Ok(Err(e)),
    };
    assert!(
        !matches!(stored, Ok(Ok(_))),
        "an integrator stored a message"
    );
    let info = sjs.get_stream("NIS_TICKETS").await?.get_info().await?;
    assert_eq!(info.state.messages, 1, "only the service's ticket is there");
    Ok(())
}

#[tokio::test]
async fn the_ticketing_system_may_only_use_the_ticket_door() -> anyhow::Result<()> {
    let server = server().await?;
    let service = server.client_as("nisvakt", SERVICE_PW).await?;
    nisvakt_bus::topology::ensure(&jetstream::new(service.clone())).await?;
    // A stand-in for intake's door, answering every request.
    let mut door = service.subscribe("nis.v1.ticket.submit").await?;
    let responder = service.clone();
    tokio::spawn(async move {
        while let Some(m) = door.next().await {
            if let Some(reply) = m.reply {
                let _ = responder.publish(reply, "ok".into()).await;
            }
        }
    });
    service.flush().await?;

    let ticketing = server.client_as("ticketing", TICKETING_PW).await?;
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        ticketing.request("nis.v1.ticket.submit", "{}".into()),
    )
    .await??;
    assert_eq!(answer.payload.as_ref(), b"ok");

    // Anything else is refused: nothing reaches the ticket stream.
    let _ = ticketing
        .publish("nis.v1.ticket.accepted", "forged".into())
        .await;
    ticketing.flush().await.ok();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info = jetstream::new(service)
        .get_stream("NIS_TICKETS")
        .await?
        .get_info()
        .await?;
    assert_eq!(info.state.messages, 0);
    Ok(())
}
