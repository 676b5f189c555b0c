//! Personal identity numbers never get past the front door. Tickets carry
//! personnummer and samordningsnummer in every written form (10 or 12
//! digits; `-`, `+`, a space or nothing; day + 60; right and wrong check
//! digits) in subject, description, system and unit, through HTTP and the
//! NATS door. After the whole system has processed them, every message in
//! every stream, KV buckets included, is scanned: none may be found, and
//! the incident says identifiers were present.

mod common;

use std::time::Duration;

use common::{OPERATOR, System, TICKETING, all_messages};
use futures::StreamExt;
use serde_json::json;

/// The check digit that makes `nine` a valid ten-digit identifier.
fn luhn_digit(nine: &str) -> u32 {
    let sum: u32 = nine
        .chars()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            let x = if i % 2 == 0 { d * 2 } else { d };
            if x > 9 { x - 9 } else { x }
        })
        .sum();
    (10 - sum % 10) % 10
}

/// Every form of the identifiers of two people (one by personnummer, one by
/// samordningsnummer), with a correct and a wrong check digit.
fn forms() -> Vec<String> {
    let mut out = Vec::new();
    for (century, yymmdd, serial) in [("19", "850712", "123"), ("20", "120372", "456")] {
        let good = luhn_digit(&format!("{yymmdd}{serial}"));
        for check in [good, (good + 1) % 10] {
            let last4 = format!("{serial}{check}");
            for sep in ["-", "+", " ", ""] {
                out.push(format!("{yymmdd}{sep}{last4}"));
                out.push(format!("{century}{yymmdd}{sep}{last4}"));
            }
        }
    }
    out
}

#[tokio::test]
async fn no_identifier_in_any_form_reaches_any_stream_or_bucket() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let forms = forms();
    let all = forms.join(", ");
    let now = chrono::Utc::now();
    for (n, chunk) in forms.chunks(8).enumerate() {
        let list = chunk.join(" och ");
        let body = json!({
            "source": "intraservice",
            "ticket_id": format!("PNR-{n}"),
            "revision": 1,
            "subject": format!("Eventuell NIS-incident: journalen visar fel patient {list}"),
            "description": format!("Patienterna {all} fick inte sina insatser."),
            "reported_at": now.to_rfc3339(),
            "unit": format!("Hemsjukvården {}", chunk[0]),
            "system": format!("Journalsystemet {}", chunk[chunk.len() - 1]),
            "disruption_started_at": (now - chrono::Duration::hours(7)).to_rfc3339(),
            "care_blocked": true,
        });
        let r = sys
            .client
            .post(format!("{}/v1/tickets", sys.http))
            .bearer_auth(TICKETING)
            .json(&body)
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), 202, "{}", r.text().await?);
    }
    // And through the NATS door.
    let body = json!({
        "source": "intraservice", "ticket_id": "PNR-NATS",
        "subject": format!("Växeln nere, ring {}", forms[0]),
        "description": all, "reported_at": now.to_rfc3339(),
        "unit": forms[1].clone(), "system": forms[2].clone(),
    });
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        sys.nats_client
            .request("nis.v1.ticket.submit", body.to_string().into()),
    )
    .await??;
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    assert!(reply["receipt_id"].is_string(), "{reply}");

    // Wait until the whole system has worked: the incident is flagged and
    // alerts were raised (the notifier wrote its ledger).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let list: serde_json::Value = sys
            .client
            .get(format!("{}/v1/incidents", sys.http))
            .bearer_auth(OPERATOR)
            .send()
            .await?
            .json()
            .await?;
        let flagged = list["incidents"].as_array().is_some_and(|a| {
            !a.is_empty() && a.iter().all(|i| i["flags"]["personal_identifiers"] == true)
        });
        let alerts: serde_json::Value = sys
            .client
            .get(format!("{}/v1/alerts", sys.http))
            .bearer_auth(OPERATOR)
            .send()
            .await?
            .json()
            .await?;
        if flagged && alerts["alerts"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "incidents not flagged in 40 s: {list}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Let the last deliveries and timers settle.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Every stream, the KV buckets' streams (KV_*) included.
    let mut names = Vec::new();
    let mut list = sys.js.stream_names();
    while let Some(n) = list.next().await {
        names.push(n?);
    }
    assert!(names.iter().any(|n| n == "NIS_TICKETS"), "{names:?}");
    assert!(names.iter().any(|n| n == "KV_nis_incidents"), "{names:?}");
    let mut scanned = 0;
    let mut digits_only: Vec<String> = forms
        .iter()
        .map(|f| f.chars().filter(char::is_ascii_digit).collect())
        .collect();
    digits_only.sort();
    digits_only.dedup();
    for name in &names {
        for m in all_messages(&sys.js, name).await? {
            scanned += 1;
            let mut text = String::from_utf8_lossy(&m.payload).to_string();
            if let Some(h) = &m.headers {
                for (k, vs) in h.iter() {
                    for v in vs {
                        text.push_str(&format!("\n{k}: {v}"));
                    }
                }
            }
            // The notifier keeps protobuf as hex inside JSON: look there too.
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&m.payload)
                && let Some(hex) = v["alert"].as_str()
                && let Ok(bytes) = hex::decode(hex)
            {
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
            for f in &forms {
                assert!(
                    !text.contains(f.as_str()),
                    "{f} found in {name} on {}",
                    m.subject
                );
            }
            for d in &digits_only {
                // The bare ten- and twelve-digit runs too.
                assert!(
                    !text.contains(d.as_str()),
                    "{d} found in {name} on {}",
                    m.subject
                );
            }
        }
    }
    assert!(scanned > 20, "only {scanned} messages scanned");
    Ok(())
}
