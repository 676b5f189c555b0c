//! Intake's doors and every way they say no: 401 without valid
//! credentials, 403 for the wrong role, 400 naming the field, 413 over the
//! limit, a duplicate, the NATS door, gRPC credentials, and 503 (quickly,
//! never 202) when the broker is gone. Intake runs in-process over a real
//! nats-server.

mod common;

use std::time::Duration;

use common::{InProcess, OPERATOR, SECRET, TICKETING, VIEWER, ticket};
use serde_json::{Value, json};

async fn post(
    s: &InProcess,
    path: &str,
    body: &Value,
    token: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let mut req = s.client.post(format!("{}{path}", s.http)).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

async fn get(s: &InProcess, path: &str, token: Option<&str>) -> anyhow::Result<u16> {
    let mut req = s.client.get(format!("{}{path}", s.http));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    Ok(req.send().await?.status().as_u16())
}

#[tokio::test]
async fn without_valid_credentials_every_api_route_answers_401_and_the_console_page_is_public()
-> anyhow::Result<()> {
    let s = InProcess::start(false, &[]).await?;
    let t = ticket("T-401", "Journalsystemet", 1);
    let (status, body) = post(&s, "/v1/tickets", &t, None).await?;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "unauthenticated");
    assert!(body["message_sv"].as_str().is_some_and(|m| !m.is_empty()));
    let (status, _) = post(&s, "/v1/tickets", &t, Some("not-a-token")).await?;
    assert_eq!(status, 401);
    for path in [
        "/v1/incidents",
        "/v1/incidents/inc_x",
        "/v1/alerts",
        "/v1/stream",
    ] {
        assert_eq!(get(&s, path, None).await?, 401, "{path}");
    }
    let (status, _) = post(
        &s,
        "/v1/alerts/alt_x/ack",
        &json!({"acked_by": "Eva"}),
        None,
    )
    .await?;
    assert_eq!(status, 401);
    // A signature that does not match the body is no credential.
    let body = serde_json::to_vec(&t)?;
    let r = s
        .client
        .post(format!("{}/v1/tickets", s.http))
        .header("content-type", "application/json")
        .header(
            "x-nisvakt-signature",
            nisvakt_intake::auth::sign(b"wrong", &body),
        )
        .body(body)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(get(&s, "/", None).await?, 200);
    Ok(())
}

#[tokio::test]
async fn each_role_may_do_its_own_part_and_gets_403_for_the_rest() -> anyhow::Result<()> {
    let s = InProcess::start(false, &[]).await?;
    let (status, body) = post(
        &s,
        "/v1/tickets",
        &ticket("T-403", "Växeln", 1),
        Some(VIEWER),
    )
    .await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "forbidden");
    assert_eq!(get(&s, "/v1/incidents", Some(TICKETING)).await?, 403);
    assert_eq!(get(&s, "/v1/alerts", Some(TICKETING)).await?, 403);
    let (status, _) = post(
        &s,
        "/v1/incidents/inc_x/resolve",
        &json!({"resolved_by": "Eva"}),
        Some(VIEWER),
    )
    .await?;
    assert_eq!(status, 403);
    assert_eq!(get(&s, "/v1/incidents", Some(VIEWER)).await?, 200);
    assert_eq!(get(&s, "/v1/alerts", Some(OPERATOR)).await?, 200);
    let (status, body) = post(
        &s,
        "/v1/tickets",
        &ticket("T-403", "Växeln", 1),
        Some(TICKETING),
    )
    .await?;
    assert_eq!(status, 202, "{body}");
    // The webhook signature stands in for the ticketing token.
    let body = serde_json::to_vec(&ticket("T-404", "Växeln", 1))?;
    let r = s
        .client
        .post(format!("{}/v1/tickets", s.http))
        .header("content-type", "application/json")
        .header(
            "x-nisvakt-signature",
            nisvakt_intake::auth::sign(SECRET.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 202);
    // An operator acting on an unknown incident is let in and told 404.
    let (status, _) = post(
        &s,
        "/v1/incidents/inc_nope/resolve",
        &json!({"resolved_by": "Eva"}),
        Some(OPERATOR),
    )
    .await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn a_bad_ticket_gets_400_naming_each_field_a_big_one_413_and_a_repeat_is_a_duplicate()
-> anyhow::Result<()> {
    let s = InProcess::start(false, &["--max-body-bytes", "4096"]).await?;
    let bad = json!({
        "source": "intraservice",
        "ticket_id": "T-400",
        "reported_at": "igår",
        "patient_harm": "maybe",
    });
    let (status, body) = post(&s, "/v1/tickets", &bad, Some(TICKETING)).await?;
    assert_eq!(status, 400, "{body}");
    let fields: Vec<&str> = body["fields"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["field"].as_str()).collect())
        .unwrap_or_default();
    for f in ["subject", "reported_at", "patient_harm"] {
        assert!(fields.contains(&f), "{f} not named in {body}");
    }
    let mut big = ticket("T-413", "Journalsystemet", 1);
    big["description"] = json!("x".repeat(10_000));
    let (status, body) = post(&s, "/v1/tickets", &big, Some(TICKETING)).await?;
    assert_eq!(status, 413, "{body}");
    let t = ticket("T-202", "Journalsystemet", 1);
    let (s1, b1) = post(&s, "/v1/tickets", &t, Some(TICKETING)).await?;
    let (s2, b2) = post(&s, "/v1/tickets", &t, Some(TICKETING)).await?;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(
        (b1["duplicate"].clone(), b2["duplicate"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(b1["receipt_id"], b2["receipt_id"]);
    Ok(())
}

#[tokio::test]
async fn the_nats_door_accepts_the_same_json_through_the_same_validation() -> anyhow::Result<()> {
    let s = InProcess::start(false, &[]).await?;
    let client = s.nats.client().await?;
    let ask = |body: Vec<u8>| {
        let client = client.clone();
        async move {
            let reply = tokio::time::timeout(
                Duration::from_secs(10),
                client.request(nisvakt_bus::subjects::TICKET_SUBMIT, body.into()),
            )
            .await??;
            anyhow::Ok(serde_json::from_slice::<Value>(&reply.payload)?)
        }
    };
    let t = serde_json::to_vec(&ticket("T-NATS", "E-posten", 1))?;
    let first = ask(t.clone()).await?;
    assert_eq!(first["duplicate"], false, "{first}");
    assert!(
        first["receipt_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("rcp_"))
    );
    let again = ask(t).await?;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["receipt_id"], first["receipt_id"]);
    let bad = ask(br#"{"source":"intraservice","ticket_id":"T-NATS-2"}"#.to_vec()).await?;
    assert_eq!(bad["error"], "invalid_request", "{bad}");
    assert!(bad["fields"].to_string().contains("subject"));
    // The same ticket over HTTP is the same receipt: one key, one path.
    let (status, body) = post(
        &s,
        "/v1/tickets",
        &ticket("T-NATS", "E-posten", 1),
        Some(TICKETING),
    )
    .await?;
    assert_eq!(status, 202);
    assert_eq!(body["receipt_id"], first["receipt_id"]);
    assert_eq!(body["duplicate"], true);
    Ok(())
}

#[tokio::test]
async fn grpc_takes_the_same_tokens_in_its_metadata() -> anyhow::Result<()> {
    use nisvakt_proto::v1 as pb;
    use nisvakt_proto::v1::intake_client::IntakeClient;
    let s = InProcess::start(false, &[]).await?;
    let mut client = IntakeClient::connect(s.grpc.clone()).await?;
    let list = |token: Option<&str>| {
        let mut req = tonic::Request::new(pb::ListIncidentsRequest::default());
        if let Some(t) = token {
            req.metadata_mut().insert(
                "authorization",
                format!("Bearer {t}").parse().expect("ascii"),
            );
        }
        req
    };
    let e = client
        .list_incidents(list(None))
        .await
        .expect_err("no token");
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let e = client
        .list_incidents(list(Some(TICKETING)))
        .await
        .expect_err("wrong role");
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(client.list_incidents(list(Some(VIEWER))).await.is_ok());
    Ok(())
}

#[tokio::test]
async fn with_the_broker_gone_a_ticket_gets_503_within_the_timeout_and_never_202()
-> anyhow::Result<()> {
    let mut s = InProcess::start(false, &["--persist-timeout-ms", "1500"]).await?;
    s.nats.kill();
    let t = ticket("T-503", "Journalsystemet", 1);
    // Bounded: intake's persist timeout is 1.5 s; allow generous slack
    // for a loaded machine, but not an unbounded hang.
    let (status, body) = tokio::time::timeout(
        Duration::from_secs(15),
        post(&s, "/v1/tickets", &t, Some(TICKETING)),
    )
    .await??;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "unavailable");
    // Commands too.
    let (status, _) = tokio::time::timeout(
        Duration::from_secs(15),
        post(
            &s,
            "/v1/alerts/alt_x/ack",
            &json!({"acked_by": "Eva"}),
            Some(OPERATOR),
        ),
    )
    .await??;
    assert_eq!(status, 503);
    // Back again: the sender's retry is accepted. (A publish the client
    // buffered may have reached the stream on reconnect; then the retry is
    // answered `duplicate: true`, which is just as safe.)
    s.nats.restart().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = post(&s, "/v1/tickets", &t, Some(TICKETING)).await?;
        if status == 202 {
            assert!(body["receipt_id"].is_string(), "{body}");
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(tokio::time::Instant::now() < deadline, "not back in 30 s");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}
