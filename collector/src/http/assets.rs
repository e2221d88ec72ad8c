//! `GET /api/v1/assets` and `/api/v1/assets/{host}`: the asset archive. The
//! list is one line per host (identity, OS, CPU, memory, disks, how many
//! changes); one host gives its current configuration (the newest inventory),
//! the stored inventory versions and the dated list of changes, newest first.
//! Needs an API token or a session, like the hosts API; a customer's user
//! sees only the hosts labelled with their customer.

use axum::extract::{Path, State};

use super::Query;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::hosts::{authorize, may_see_host};
use crate::auth::Principal;
use crate::fleet::Host;
use crate::store::Assets;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/assets", get(list))
        .route("/api/v1/assets/{host}", get(one))
}

fn line(h: &Host) -> Value {
    let inv = h.inventory.as_ref();
    let dmi = inv.map(|i| &i.dmi);
    json!({
        "host": h.host,
        "agent_id": h.agent_id,
        "customer": h.label("customer"),
        "site": h.label("site"),
        "vendor": dmi.map(|d| d.sys_vendor.as_str()).unwrap_or(""),
        "product": dmi.map(|d| d.product_name.as_str()).unwrap_or(""),
        "serial": dmi.map(|d| d.product_serial.as_str()).unwrap_or(""),
        "os": inv.map(|i| i.os_name.as_str()).unwrap_or(""),
        "os_version": inv.map(|i| i.os_version.as_str()).unwrap_or(""),
        "kernel": inv.map(|i| i.kernel.as_str()).unwrap_or(""),
        "cpu": inv.map(|i| i.cpu_model.as_str()).unwrap_or(""),
        "cpu_sockets": inv.map_or(0, |i| i.cpu_sockets),
        "cpu_threads": inv.map_or(0, |i| i.cpu_threads.max(i.cpu_cores)),
        "memory_bytes": inv.map_or(0, |i| i.memory_bytes),
        "disk_count": inv.map_or(0, |i| i.disks.len()),
        "inventory_collected_at_ms": h.inventory_at_ms,
        "changes": h.asset_changes,
    })
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let principal = authorize(&state, &headers).await?;
    let assets: Vec<Value> = state
        .fleet
        .snapshot()
        .iter()
        .filter(|h| may_see_host(&principal, h))
        .map(|h| line(h))
        .collect();
    Ok(Json(json!({ "assets": assets })))
}

#[derive(Deserialize)]
struct ChangesQuery {
    limit: Option<u32>,
}

/// A host by agent id, else by host name (which must then be unique), among
/// the hosts the principal may see: another customer's host is "not found",
/// so its existence does not leak.
fn find(state: &AppState, principal: &Principal, key: &str) -> Result<std::sync::Arc<Host>, ApiError> {
    if let Some(h) = state.fleet.get(key).filter(|h| may_see_host(principal, h)) {
        return Ok(h);
    }
    let mut named: Vec<_> = state
        .fleet
        .snapshot()
        .into_iter()
        .filter(|h| h.host == key && may_see_host(principal, h))
        .collect();
    match named.len() {
        0 => Err(ApiError::NotFound(format!(
            "no host named {key:?} and no agent with that id"
        ))),
        1 => Ok(named.remove(0)),
        _ => Err(ApiError::BadRequest(format!(
            "{} agents report the host name {key:?} ({}); ask by agent id",
            named.len(),
            named.iter().map(|h| h.agent_id.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<ChangesQuery>,
) -> Result<Json<Value>, ApiError> {
    let principal = authorize(&state, &headers).await?;
    let h = find(&state, &principal, &key)?;
    let limit = super::page_limit(q.limit, 1_000, 100_000)?;
    let agent_id = h.agent_id.clone();
    let (changes, versions, disks) = super::read(&state, move |conn| {
        Ok((
            conn.asset_changes(&agent_id, limit)?,
            conn.inventory_versions(&agent_id)?,
            crate::disks::list(conn, Some(&agent_id))?,
        ))
    })
    .await?;
    let mut v = line(&h);
    v["labels"] = json!(h.labels);
    v["inventory"] = serde_json::to_value(&h.inventory).unwrap_or(Value::Null);
    v["versions"] = versions
        .iter()
        .map(|(seq, at)| json!({"seq": seq, "collected_at_ms": at}))
        .collect();
    v["change_count"] = v["changes"].take();
    v["changes"] = serde_json::to_value(&changes).unwrap_or_else(|_| json!([]));
    // The engineer reading the asset sees its disks' health beside their identity.
    v["disk_health"] = serde_json::to_value(&disks).unwrap_or_else(|_| json!([]));
    Ok(Json(v))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use caretaker_shared::wire::{DiskInfo, Inventory, PROTOCOL_VERSION, Report};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::fleet::Fleet;
    use crate::http::testing::API_TOKEN;
    use crate::ingest::Encoding;
    use crate::pki::hash_secret;
    use crate::store::agents::{Agents, NewAgent};
    use crate::store::testing::apart;
    use crate::writer::{Enrollment, Incoming};

    struct Harness {
        // Dropped before its directory.
        state: crate::http::testing::TestState,
        _dir: tempfile::TempDir,
    }

    async fn harness() -> Harness {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = crate::http::testing::state_with(&dir, |c| {
            let token = c.add_enrollment_token(&hash_secret("enroll"), 0);
            assert!(token.is_ok(), "{token:?}");
        })
        .await;
        let writer = &state.writer;
        for (id, host) in [("a1", "db01"), ("a2", "web01")] {
            let ok = writer
                .enroll(Enrollment {
                    token_hash: hash_secret("enroll"),
                    agent_id: id.into(),
                    credential_hash: hash_secret(&format!("cred-{id}")),
                    host: host.into(),
                    labels: None,
                })
                .await;
            assert!(ok.is_ok(), "{ok:?}");
        }
        // A second agent named web01, as a store from before one host name
        // belonged to one agent may hold: enrollment refuses it now.
        let a3 = writer
            .run(|c| {
                c.insert_agent(&NewAgent {
                    agent_id: "a3",
                    credential_hash: &hash_secret("cred-a3"),
                    host: "web01",
                    enrolled_at_ms: 0,
                    customer: None,
                    site: None,
                    token_id: None,
                    labels: "{}",
                })?;
                Ok(Value::Null)
            })
            .await;
        assert!(a3.is_ok(), "{a3:?}");
        Harness { state, _dir: dir }
    }

    fn disk(name: &str, serial: &str) -> DiskInfo {
        DiskInfo {
            name: name.into(),
            model: "ST4000NM0035-1V4".into(),
            serial: serial.into(),
            capacity_bytes: 4_000_787_030_016,
            rotational: Some(true),
            interface: "sata".into(),
            ..DiskInfo::default()
        }
    }

    fn inventory(sdb_serial: &str) -> Inventory {
        let mut inv = Inventory {
            hostname: "db01".into(),
            os_name: "Debian GNU/Linux 12 (bookworm)".into(),
            os_version: "12".into(),
            kernel: "6.1.0-18-amd64".into(),
            cpu_model: "Intel(R) Xeon(R) Silver 4210R CPU @ 2.40GHz".into(),
            cpu_cores: 40,
            cpu_threads: 40,
            memory_bytes: 64 << 30,
            disks: vec![disk("sda", "ZC1A0001"), disk("sdb", sdb_serial)],
            ..Inventory::default()
        };
        inv.dmi.sys_vendor = "Dell Inc.".into();
        inv.dmi.product_name = "PowerEdge R640".into();
        inv.dmi.product_serial = "7XK2H93".into();
        inv.content_hash = format!("hash-of-{sdb_serial}");
        inv
    }

    async fn report(state: &AppState, agent_id: &str, host: &str, seq: u64, at_ms: i64, inv: Option<Inventory>) {
        report_for(state, "acme", agent_id, host, seq, at_ms, inv).await;
    }

    async fn report_for(
        state: &AppState,
        customer: &str,
        agent_id: &str,
        host: &str,
        seq: u64,
        at_ms: i64,
        inv: Option<Inventory>,
    ) {
        let r = Report {
            version: PROTOCOL_VERSION,
            agent_id: agent_id.into(),
            seq,
            collected_at_ms: at_ms,
            interval_secs: 15,
            host: host.into(),
            labels: BTreeMap::from([("customer".into(), customer.into()), ("site".into(), "hq".into())]),
            samples: vec![],
            events: vec![],
            inventory: inv,
            disks: None,
        };
        let body = serde_json::to_vec(&r).unwrap_or_default();
        let applied = state
            .writer
            .apply(Incoming {
                credential_hash: None,
                agent_id: agent_id.into(),
                report: r,
                samples: vec![],
                sample_count: 0,
                body,
                encoding: Encoding::Identity,
                received_at_ms: at_ms,
                clock: None,
            })
            .await;
        assert!(applied.is_ok(), "{applied:?}");
    }

    async fn get(state: &AppState, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::get(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = crate::http::app(state.clone())
            .oneshot(req.body(Body::empty()).unwrap_or_default())
            .await
            .unwrap_or_else(|e| match e {});
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Two reports whose inventories differ by one disk serial, an unchanged
    /// hourly resend, and a third without inventory: one dated change.
    async fn swap_a_disk(state: &AppState) {
        report(state, "a1", "db01", 1, 1_700_000_000_000, Some(inventory("ZC1B0002"))).await;
        report(state, "a1", "db01", 2, 1_700_000_015_000, None).await;
        report(state, "a1", "db01", 3, 1_700_003_600_000, Some(inventory("ZC1B0002"))).await;
        report(state, "a1", "db01", 4, 1_700_086_400_000, Some(inventory("ZC9X0003"))).await;
        report(state, "a1", "db01", 5, 1_700_086_415_000, None).await;
        // Two more hosts, sharing a name, that never sent an inventory.
        report(state, "a2", "web01", 1, 1_700_000_000_000, None).await;
        report(state, "a3", "web01", 1, 1_700_000_000_000, None).await;
    }

    #[tokio::test]
    async fn a_customer_sees_only_its_own_assets() {
        let h = harness().await;
        crate::http::testing::set_users(&h.state);
        report_for(&h.state, "acme", "a1", "db01", 1, 1_700_000_000_000, None).await;
        report_for(&h.state, "globex", "a2", "web01", 1, 1_700_000_000_000, None).await;
        report_for(&h.state, "acme", "a3", "web01", 1, 1_700_000_000_000, None).await;
        let ids = |v: &Value| -> Vec<String> {
            let mut ids: Vec<String> = v["assets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| a["agent_id"].as_str().unwrap_or("").to_string())
                .collect();
            ids.sort();
            ids
        };

        let (status, v) = get(&h.state, "/api/v1/assets", Some("carol-token")).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(ids(&v), ["a1", "a3"]);
        let (_, v) = get(&h.state, "/api/v1/assets", Some("gus-token")).await;
        assert_eq!(ids(&v), ["a2"]);
        for staff in ["ana-token", API_TOKEN] {
            let (_, v) = get(&h.state, "/api/v1/assets", Some(staff)).await;
            assert_eq!(ids(&v), ["a1", "a2", "a3"], "{staff}");
        }

        // Another customer's asset is not found, by id or by name, with the
        // same answer as one that does not exist.
        let (status, v) = get(&h.state, "/api/v1/assets/a2", Some("carol-token")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
        let (_, missing) = get(&h.state, "/api/v1/assets/a9", Some("carol-token")).await;
        assert_eq!(
            v["reason"].as_str().map(|r| r.replace("a2", "a9")),
            missing["reason"].as_str().map(String::from)
        );
        let (status, _) = get(&h.state, "/api/v1/assets/db01", Some("gus-token")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, v) = get(&h.state, "/api/v1/assets/a1", Some("carol-token")).await;
        assert_eq!((status, v["host"].as_str()), (StatusCode::OK, Some("db01")));
        // Two hosts are called web01, but carol sees only hers.
        let (status, v) = get(&h.state, "/api/v1/assets/web01", Some("carol-token")).await;
        assert_eq!((status, v["agent_id"].as_str()), (StatusCode::OK, Some("a3")), "{v}");
        let (status, _) = get(&h.state, "/api/v1/assets/web01", Some(API_TOKEN)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // A wrong token is refused.
        let (status, v) = get(&h.state, "/api/v1/assets", Some("carol-token-x")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    }

    #[tokio::test]
    async fn a_swapped_disk_is_one_dated_change_with_both_serials() {
        let h = harness().await;
        swap_a_disk(&h.state).await;
        let (status, v) = get(&h.state, "/api/v1/assets/db01", Some(API_TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["agent_id"], "a1");
        assert_eq!(
            v["inventory"]["disks"][1]["serial"], "ZC9X0003",
            "current configuration"
        );
        assert_eq!(v["inventory_collected_at_ms"], 1_700_086_400_000i64);
        assert_eq!(v["change_count"], 1);
        let changes = v["changes"].as_array().cloned().unwrap_or_default();
        assert_eq!(changes.len(), 1, "{v}");
        let c = &changes[0];
        assert_eq!(c["at_ms"], 1_700_086_400_000i64);
        assert_eq!(c["kind"], "disk_replaced");
        assert_eq!(c["old"], "ZC1B0002");
        assert_eq!(c["new"], "ZC9X0003");
        assert_eq!(c["summary"], "disk sdb serial ZC1B0002 replaced by ZC9X0003");
        let versions: Vec<u64> = v["versions"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["seq"].as_u64()).collect())
            .unwrap_or_default();
        assert_eq!(versions, [4, 1], "two versions stored, newest first");
        // By agent id too.
        let (status, by_id) = get(&h.state, "/api/v1/assets/a1", Some(API_TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(by_id["changes"], v["changes"]);
    }

    #[tokio::test]
    async fn changes_are_listed_newest_first() {
        let h = harness().await;
        swap_a_disk(&h.state).await;
        let mut inv = inventory("ZC9X0003");
        inv.kernel = "6.1.0-21-amd64".into();
        inv.content_hash = "newer".into();
        report(&h.state, "a1", "db01", 6, 1_700_100_000_000, Some(inv)).await;
        let (_, v) = get(&h.state, "/api/v1/assets/db01", Some(API_TOKEN)).await;
        let kinds: Vec<&str> = v["changes"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["kind"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(kinds, ["kernel_changed", "disk_replaced"]);
        assert_eq!(v["changes"][0]["summary"], "kernel 6.1.0-18-amd64 → 6.1.0-21-amd64");
        let (_, v) = get(&h.state, "/api/v1/assets/db01?limit=1", Some(API_TOKEN)).await;
        assert_eq!(v["changes"].as_array().map(Vec::len), Some(1));
    }

    #[tokio::test]
    async fn the_list_has_one_line_per_host() {
        let h = harness().await;
        swap_a_disk(&h.state).await;
        let (status, v) = get(&h.state, "/api/v1/assets", Some(API_TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let list = v["assets"].as_array().cloned().unwrap_or_default();
        assert_eq!(list.len(), 3, "hosts without an inventory are listed too");
        let db = list.iter().find(|a| a["agent_id"] == "a1").cloned().unwrap_or_default();
        assert_eq!(db["host"], "db01");
        assert_eq!(db["customer"], "acme");
        assert_eq!(db["site"], "hq");
        assert_eq!(db["vendor"], "Dell Inc.");
        assert_eq!(db["product"], "PowerEdge R640");
        assert_eq!(db["serial"], "7XK2H93");
        assert_eq!(db["os"], "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(db["kernel"], "6.1.0-18-amd64");
        assert_eq!(db["cpu"], "Intel(R) Xeon(R) Silver 4210R CPU @ 2.40GHz");
        assert_eq!(db["memory_bytes"], 64u64 << 30);
        assert_eq!(db["disk_count"], 2);
        assert_eq!(db["changes"], 1);
        assert_eq!(db["inventory_collected_at_ms"], 1_700_086_400_000i64);
        let web = list.iter().find(|a| a["agent_id"] == "a2").cloned().unwrap_or_default();
        assert_eq!(web["disk_count"], 0);
        assert_eq!(web["inventory_collected_at_ms"], Value::Null);
    }

    #[tokio::test]
    async fn unknown_ambiguous_and_unauthorized() {
        let h = harness().await;
        swap_a_disk(&h.state).await;
        let (status, v) = get(&h.state, "/api/v1/assets/nosuchhost", Some(API_TOKEN)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v["reason"], "no host named \"nosuchhost\" and no agent with that id");
        let (status, v) = get(&h.state, "/api/v1/assets/web01", Some(API_TOKEN)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(v["reason"].as_str().unwrap_or("").contains("a2, a3"), "{v}");
        let (status, v) = get(&h.state, "/api/v1/assets/a2", Some(API_TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "by id it is unambiguous");
        assert_eq!(v["inventory"], Value::Null);
        assert_eq!(v["changes"], serde_json::json!([]));
        for uri in ["/api/v1/assets", "/api/v1/assets/db01"] {
            let (status, _) = get(&h.state, uri, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            let (status, _) = get(&h.state, uri, Some("wrong")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }

    #[tokio::test]
    async fn the_archive_survives_a_restart() {
        let h = harness().await;
        swap_a_disk(&h.state).await;
        let (fleet, versions, changes) = apart(|| {
            let conn = h.state._store.open();
            let fleet = Fleet::default();
            assert!(crate::fleet::load_fleet(&conn, &fleet).is_ok());
            let versions = conn.inventory_versions("a1").unwrap_or_default();
            let changes = conn.asset_changes("a1", 10).unwrap_or_default();
            (fleet, versions, changes)
        });
        let host = fleet.get("a1").unwrap_or_else(|| panic!("a1 not loaded"));
        assert_eq!(host.asset_changes, 1);
        assert_eq!(host.inventory_at_ms, Some(1_700_086_400_000));
        assert_eq!(
            host.inventory.as_ref().map(|i| i.disks[1].serial.as_str()),
            Some("ZC9X0003")
        );
        assert_eq!(versions, [(4, 1_700_086_400_000), (1, 1_700_000_000_000)]);
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].seq, changes[0].kind.as_str()), (4, "disk_replaced"));
    }

    #[tokio::test]
    async fn metrics_carry_the_asset_identity() {
        let h = harness().await;
        swap_a_disk(&h.state).await;
        let text = h.state.metrics.render().unwrap_or_default();
        assert!(
            text.contains(
                "caretaker_inventory_info{host=\"db01\",customer=\"acme\",site=\"hq\",vendor=\"Dell Inc.\",product=\"PowerEdge R640\",serial=\"7XK2H93\",os=\"Debian GNU/Linux 12 (bookworm)\",kernel=\"6.1.0-18-amd64\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("caretaker_asset_changes_total{host=\"db01\",customer=\"acme\",site=\"hq\"} 1"),
            "{text}"
        );
    }
}
