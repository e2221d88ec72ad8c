//! A customer's user sees only their own customer's data through every API
//! endpoint: lists are filtered, another customer's single resource is "not
//! found", and the provider's own data is for staff only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::StatusCode;
use caretaker_shared::disk_health::Disk;
use caretaker_shared::wire::DiskScan;
use serde_json::{Value, json};

use super::AppState;
use super::testing::{send, set_users, state_with};
use crate::predict::{Part, PartType, Raise, Urgency};
use crate::store::agents::{Agents, NewAgent};

/// Two hosts, `db01` of acme and `web01` of globex, each with a disk and a
/// recommendation; the users of [`set_users`].
async fn state(dir: &tempfile::TempDir) -> crate::http::testing::TestState {
    let s = state_with(dir, |conn| {
        for (agent, host, customer) in [("a-acme", "db01", "acme"), ("a-globex", "web01", "globex")] {
            conn.insert_agent(&NewAgent {
                agent_id: agent,
                credential_hash: &format!("h-{agent}"),
                host,
                enrolled_at_ms: 0,
                customer: None,
                site: None,
                token_id: None,
                labels: &json!({"customer": customer, "site": "hq"}).to_string(),
            })
            .unwrap();
            let scan = DiskScan {
                scanned_at_ms: 1_000,
                disks: vec![Disk {
                    key: format!("wwn-{customer}"),
                    device: "/dev/sda".into(),
                    ..Disk::default()
                }],
                error: None,
            };
            crate::disks::record_scan(conn, agent, &scan).unwrap();
            crate::predict::records::raise(
                conn,
                &Raise {
                    agent_id: agent.into(),
                    host: host.into(),
                    customer: customer.into(),
                    part_type: PartType::Disk,
                    part: Part {
                        model: "WDC WD20EFRX".into(),
                        serial: format!("S-{customer}"),
                        slot: "/dev/sda".into(),
                        interface: "ata".into(),
                        capacity_bytes: Some(2_000_398_934_016),
                    },
                    reason: "second_rise_within_30d".into(),
                    evidence: json!({}),
                    risk: "high".into(),
                    urgency: Urgency::ReplaceNow,
                    item_id: None,
                    at_ms: 1_000,
                },
            )
            .unwrap();
        }
    })
    .await;
    set_users(&s);
    s
}

/// A request as `who` (`carol`, `gus`, `ana`): status and JSON body.
async fn as_user(s: &AppState, who: &str, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let auth = format!("Bearer {who}-token");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let r = send(
        s,
        method,
        uri,
        &[("authorization", auth.as_str()), ("content-type", "application/json")],
        &body,
    )
    .await;
    (r.status, serde_json::from_str(&r.body).unwrap_or(Value::Null))
}

async fn get(s: &AppState, who: &str, uri: &str) -> (StatusCode, Value) {
    as_user(s, who, "GET", uri, None).await
}

/// The `field` of every item of the list `key`, sorted.
fn values(v: &Value, key: &str, field: &str) -> Vec<String> {
    let mut out: Vec<String> = v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no list {key:?} in {v}"))
        .iter()
        .map(|i| i[field].as_str().unwrap_or_default().to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn hosts_and_disks() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;

    let (st, v) = get(&s, "carol", "/api/v1/hosts").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(values(&v, "hosts", "agent_id"), ["a-acme"]);
    let (_, v) = get(&s, "gus", "/api/v1/hosts").await;
    assert_eq!(values(&v, "hosts", "agent_id"), ["a-globex"]);
    let (_, v) = get(&s, "ana", "/api/v1/hosts").await;
    assert_eq!(values(&v, "hosts", "agent_id"), ["a-acme", "a-globex"]);

    for uri in ["/api/v1/hosts/a-acme", "/api/v1/hosts/a-acme/reports"] {
        assert_eq!(get(&s, "carol", uri).await.0, StatusCode::OK, "{uri}");
    }
    // Another customer's host answers like a missing one.
    let (_, missing) = get(&s, "carol", "/api/v1/hosts/a-nope").await;
    for uri in ["/api/v1/hosts/a-globex", "/api/v1/hosts/a-globex/reports"] {
        let (st, v) = get(&s, "carol", uri).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{uri}: {v}");
        assert_eq!(
            v["reason"].as_str().map(|r| r.replace("a-globex", "a-nope")),
            missing["reason"].as_str().map(String::from)
        );
        assert_eq!(get(&s, "gus", uri).await.0, StatusCode::OK, "{uri}");
    }

    let (st, v) = get(&s, "carol", "/api/v1/disks").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(values(&v, "disks", "agent_id"), ["a-acme"]);
    let (_, v) = get(&s, "ana", "/api/v1/disks").await;
    assert_eq!(values(&v, "disks", "agent_id"), ["a-acme", "a-globex"]);
    let (st, v) = get(&s, "carol", "/api/v1/disks?agent_id=a-acme").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(values(&v, "disks", "key"), ["wwn-acme"]);
    assert_eq!(
        get(&s, "carol", "/api/v1/disks?agent_id=a-globex").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&s, "carol", "/api/v1/hosts/a-acme/disks/wwn-acme").await.0,
        StatusCode::OK
    );
    let uri = "/api/v1/hosts/a-globex/disks/wwn-globex";
    assert_eq!(get(&s, "carol", uri).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&s, "gus", uri).await.0, StatusCode::OK);
}

#[tokio::test]
async fn inspection_reports() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let base = "/api/v1/reports/inspection";
    let mut ids = Vec::new();
    for customer in ["acme", "globex"] {
        let (st, v) = as_user(&s, "ana", "POST", base, Some(json!({"customer": customer}))).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        ids.push(v["id"].as_i64().unwrap());
    }
    let (st, v) = as_user(&s, "carol", "POST", base, Some(json!({"customer": "acme"}))).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");

    for uri in [base.to_string(), format!("{base}?customer=globex")] {
        let (st, v) = get(&s, "carol", &uri).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(values(&v, "reports", "customer"), ["acme"], "{uri}");
    }
    let (_, v) = get(&s, "ana", base).await;
    assert_eq!(values(&v, "reports", "customer"), ["acme", "globex"]);

    let (own, other) = (ids[0], ids[1]);
    assert_eq!(get(&s, "carol", &format!("{base}/{own}")).await.0, StatusCode::OK);
    for ext in ["", ".json", ".html", ".md"] {
        let uri = format!("{base}/{other}{ext}");
        assert_eq!(get(&s, "carol", &uri).await.0, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(get(&s, "gus", &uri).await.0, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn maintenance_and_unmapped() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let mut ids = Vec::new();
    for customer in ["acme", "globex"] {
        let window = json!({"customer": customer, "starts_at": "2030-01-01T00:00:00Z",
            "ends_at": "2030-01-01T02:00:00Z", "reason": "patching"});
        let (st, v) = as_user(&s, "ana", "POST", "/api/v1/maintenance", Some(window)).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        ids.push(v["id"].as_i64().unwrap());
    }
    for uri in ["/api/v1/maintenance", "/api/v1/maintenance?all=true&customer=globex"] {
        let (st, v) = get(&s, "carol", uri).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(values(&v, "windows", "customer"), ["acme"], "{uri}");
    }
    let (_, v) = get(&s, "ana", "/api/v1/maintenance").await;
    assert_eq!(values(&v, "windows", "customer"), ["acme", "globex"]);
    let (own, other) = (ids[0], ids[1]);
    assert_eq!(
        get(&s, "carol", &format!("/api/v1/maintenance/{own}")).await.0,
        StatusCode::OK
    );
    let uri = format!("/api/v1/maintenance/{other}");
    assert_eq!(get(&s, "carol", &uri).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&s, "gus", &uri).await.0, StatusCode::OK);

    assert_eq!(get(&s, "carol", "/api/v1/unmapped").await.0, StatusCode::FORBIDDEN);
    assert_eq!(get(&s, "ana", "/api/v1/unmapped").await.0, StatusCode::OK);
}

#[tokio::test]
async fn recommendations() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    for uri in ["/api/v1/recommendations", "/api/v1/recommendations?customer=globex"] {
        let (st, v) = get(&s, "carol", uri).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(values(&v, "recommendations", "customer"), ["acme"], "{uri}");
    }
    let (_, v) = get(&s, "ana", "/api/v1/recommendations").await;
    assert_eq!(values(&v, "recommendations", "customer"), ["acme", "globex"]);
    for rec in v["recommendations"].as_array().unwrap() {
        let uri = format!("/api/v1/recommendations/{}", rec["id"]);
        let (acme, globex) = match rec["customer"].as_str() {
            Some("acme") => (StatusCode::OK, StatusCode::NOT_FOUND),
            _ => (StatusCode::NOT_FOUND, StatusCode::OK),
        };
        assert_eq!(get(&s, "carol", &uri).await.0, acme, "{uri}");
        assert_eq!(get(&s, "gus", &uri).await.0, globex, "{uri}");
    }
}

#[tokio::test]
async fn spares_and_service_reports() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    for host in ["db01", "web01"] {
        let report = json!({"host": host, "mode": "remote", "symptom": "s", "work_done": "w",
            "engineer": "kim", "minutes": 5});
        let (st, v) = as_user(&s, "ana", "POST", "/api/v1/service-reports", Some(report)).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    let (st, v) = get(&s, "carol", "/api/v1/service-reports").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(values(&v, "service_reports", "host"), ["db01"]);
    let (_, v) = get(&s, "carol", "/api/v1/service-reports?host=web01").await;
    assert_eq!(values(&v, "service_reports", "host"), Vec::<String>::new());
    let (_, v) = get(&s, "ana", "/api/v1/service-reports").await;
    assert_eq!(values(&v, "service_reports", "host"), ["db01", "web01"]);

    // The provider's stock is for staff.
    for uri in ["/api/v1/spares", "/api/v1/spares/replenishment"] {
        assert_eq!(get(&s, "carol", uri).await.0, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(get(&s, "ana", uri).await.0, StatusCode::OK, "{uri}");
    }
    // Coverage: a customer gets its own, whatever it asks for.
    for uri in ["/api/v1/spares/coverage", "/api/v1/spares/coverage?customer=globex"] {
        let (st, v) = get(&s, "carol", uri).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["customer"], "acme", "{uri}");
    }
    let (_, v) = get(&s, "ana", "/api/v1/spares/coverage?customer=globex").await;
    assert_eq!(v["customer"], "globex");
}
