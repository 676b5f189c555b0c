//! What the deadline-timer relies on from JetStream message schedules,
//! checked against the real broker: a schedule fires its payload on the
//! target subject at the named second, a schedule in the past fires at
//! once, and purging the schedule's subject cancels it.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use nisvakt_testkit::NatsServer;

async fn setup() -> anyhow::Result<(NatsServer, jetstream::Context)> {
    let server = NatsServer::start().await?;
    let js = jetstream::new(server.client().await?);
    nisvakt_bus::topology::ensure(&js).await?;
    Ok((server, js))
}

async fn schedule(
    js: &jetstream::Context,
    slot: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let mut h = HeaderMap::new();
    h.insert(
        "Nats-Schedule",
        format!(
            "@at {}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
        .as_str(),
    );
    h.insert(
        "Nats-Schedule-Target",
        format!("nis.v1.timer.fire.t1.{slot}").as_str(),
    );
    h.insert("x-probe", slot);
    js.publish_with_headers(
        format!("nis.v1.timer.sched.t1.{slot}"),
        h,
        slot.to_string().into(),
    )
    .await?
    .await?;
    Ok(())
}

#[tokio::test]
async fn schedules_fire_on_time_and_purge_cancels() -> anyhow::Result<()> {
    let (_server, js) = setup().await?;
    let now = chrono::Utc::now();
    schedule(&js, "past", now - chrono::Duration::seconds(30)).await?;
    schedule(&js, "soon", now + chrono::Duration::seconds(2)).await?;
    schedule(&js, "cancelled", now + chrono::Duration::seconds(2)).await?;
    let stream = js.get_stream(nisvakt_bus::topology::TIMERS).await?;
    stream
        .purge()
        .filter("nis.v1.timer.sched.t1.cancelled")
        .await?;

    let consumer = stream
        .create_consumer(pull::Config {
            filter_subject: "nis.v1.timer.fire.>".into(),
            ..Default::default()
        })
        .await?;
    let mut msgs = consumer.messages().await?;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, msgs.next()).await {
        let m = m?;
        let payload = String::from_utf8(m.payload.to_vec())?;
        let header = m
            .headers
            .as_ref()
            .and_then(|h| h.get("x-probe"))
            .map(|v| v.to_string());
        got.push((payload, header, chrono::Utc::now()));
        m.ack().await.ok();
    }
    let names: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(names, ["past", "soon"], "{got:?}");
    // Headers travel with the payload.
    assert_eq!(got[1].1.as_deref(), Some("soon"));
    // The future one fired no earlier than its second.
    assert!(got[1].2 >= now + chrono::Duration::seconds(1), "{got:?}");
    Ok(())
}
