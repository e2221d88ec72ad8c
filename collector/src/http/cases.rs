//! `GET /api/v1/findings`, `/api/v1/cases` and `/api/v1/{findings,cases}/{id}`:
//! what live detection found. Lists take the filters `status` (`active`, the
//! default, `all`, or a status name such as `recovered`), `severity` (the
//! minimum), `host` and `customer`; one item comes with its evidence and its
//! log (every occurrence and transition, each row with its `visibility`).
//! Needs the API token or a session.
//!
//! A customer's user sees only its own customer's items, and of one item
//! not the log but its `timeline` and `status_words` in plain words (see
//! [`crate::queue::customer_view`]): no internal comment, rule, assignment
//! or escalation row, and none of the contract's internals.

use axum::extract::{Path, State};

use super::Query;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::hosts::authorize;
use super::{path_id, read};
use crate::cases::hold::{self, Held};
use crate::cases::store::{self as cases_store, Filter, LogEntry};
use crate::cases::{Item, ItemKind, Severity, Status};
use crate::queue::customer_view;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/findings", get(list_findings))
        .route("/api/v1/findings/{id}", get(one_finding))
        .route("/api/v1/cases", get(list_cases))
        .route("/api/v1/cases/{id}", get(one_case))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    severity: Option<String>,
    host: Option<String>,
    customer: Option<String>,
    /// Page size (1 to 1000; 100 by default).
    limit: Option<u32>,
    /// The `next_before` of the previous page.
    before: Option<i64>,
}

/// Default and largest page of a list.
const PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

/// Which statuses a list keeps, beyond what the store filters.
pub(crate) enum StatusFilter {
    Active,
    All,
    Named(&'static str),
}

pub(crate) fn parse_status(kind: ItemKind, s: Option<&str>) -> Result<StatusFilter, ApiError> {
    match s {
        None | Some("active") => Ok(StatusFilter::Active),
        Some("all") => Ok(StatusFilter::All),
        Some(name) => {
            // A name alone (`on_hold`) or with its reason (`on_hold:parts`);
            // matching is on the name, so both select the same items.
            let (base, reason) = name.split_once(':').unwrap_or((name, "a"));
            if reason.is_empty() || !reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                return Err(ApiError::BadRequest(format!(
                    "status: {name:?}: the reason after ':' is lower-case letters and '_'"
                )));
            }
            let known = [
                Status::New,
                Status::Assigned,
                Status::InProgress,
                Status::Recovered,
                Status::Resolved,
                Status::Closed,
                Status::Open,
                Status::Planned,
                Status::AcceptedRisk,
                Status::Fixed,
                Status::Verified,
            ]
            .into_iter()
            .map(|s| (s.name(), s.kind()))
            .chain([("on_hold", ItemKind::Case), ("cancelled", ItemKind::Case)])
            .find(|(n, k)| *n == base && *k == kind);
            match known {
                Some((n, _)) => Ok(StatusFilter::Named(n)),
                None => Err(ApiError::BadRequest(format!(
                    "status: {name:?} is not active, all, or a {} status",
                    kind.as_str()
                ))),
            }
        }
    }
}

pub(crate) fn item_json(item: &Item) -> Value {
    let mut v = serde_json::to_value(item).unwrap_or_else(|_| json!({}));
    v["status"] = json!(item.status.to_string());
    v["active"] = json!(item.status.is_active());
    v["host"] = json!(item.key.asset);
    v["customer"] = json!(item.key.customer);
    v
}

fn log_json(e: &LogEntry) -> Value {
    json!({
        "at_ms": e.at_ms,
        "actor": e.actor,
        "from_status": e.from_status.map(|s| s.to_string()),
        "to_status": e.to_status.to_string(),
        "comment": e.comment,
        "visibility": e.visibility,
    })
}

async fn list(state: AppState, headers: HeaderMap, kind: ItemKind, q: ListQuery) -> Result<Json<Value>, ApiError> {
    let who = authorize(&state, &headers).await?;
    let status = parse_status(kind, q.status.as_deref())?;
    let severity_min = match q.severity.as_deref() {
        None => None,
        Some(s) => {
            Some(Severity::parse(s).ok_or_else(|| ApiError::BadRequest(format!("severity: {s:?} is not a severity")))?)
        }
    };
    let limit = super::page_limit(q.limit, PAGE, MAX_PAGE)?;
    let filter = Filter {
        kind: Some(kind),
        status_active_only: matches!(status, StatusFilter::Active),
        severity_min,
        // A customer sees its own items whatever it asks for.
        customer: who.scope().map(str::to_string).or(q.customer),
        asset: q.host,
        status_name: match status {
            StatusFilter::Named(n) => Some(n),
            _ => None,
        },
        before_id: q.before,
        // One more than asked tells whether there is a next page.
        limit: Some(limit + 1),
    };
    let mut items = read(&state, move |c| cases_store::list(c, &filter)).await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_before = if more { items.last().and_then(|i| i.id) } else { None };
    let items: Vec<Value> = items.iter().map(item_json).collect();
    let key = match kind {
        ItemKind::Finding => "findings",
        ItemKind::Case => "cases",
    };
    Ok(Json(json!({ key: items, "next_before": next_before })))
}

async fn one(state: AppState, headers: HeaderMap, kind: ItemKind, id: String) -> Result<Json<Value>, ApiError> {
    let who = authorize(&state, &headers).await?;
    let what = kind.as_str();
    let id = path_id(what, &id)?;
    let contracts = state.contracts.get();
    let now = caretaker_shared::now_ms();
    let found = read(&state, move |c| {
        let found = cases_store::get(c, id)?;
        // A storm case lists the signals attached to it.
        let attached = match &found {
            Some((item, _)) if item.key.check == hold::STORM_CHECK => Some(hold::held_by(c, Held::Storm, id)?),
            _ => None,
        };
        let detail = match &found {
            Some((item, _)) if item.kind == ItemKind::Case => crate::queue::case_detail(c, &contracts, id, now)?,
            _ => None,
        };
        Ok(found.map(|f| (f, attached, detail)))
    })
    .await?;
    match found {
        // Another customer's item is answered like a missing one.
        Some(((item, log), attached, detail)) if item.kind == kind && who.may_see(&item.key.customer) => {
            let mut v = item_json(&item);
            if !who.can_act() {
                // A customer's user: its timeline in plain words, public
                // comments only, and no contract internals.
                v["timeline"] = json!(customer_view::timeline(&log));
                v["status_words"] = json!(customer_view::status_words(item.status));
                if let Some(d) = detail {
                    v["queue"] = super::queue::customer_detail_json(&d);
                }
                return Ok(Json(v));
            }
            v["log"] = json!(log.iter().map(log_json).collect::<Vec<_>>());
            if let Some(a) = attached {
                v["attached"] = json!(a);
            }
            if let Some(d) = detail {
                v["queue"] = super::queue::detail_json(&d);
            }
            Ok(Json(v))
        }
        _ => Err(ApiError::NotFound(format!("no {what} with id {id}"))),
    }
}

async fn list_findings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    list(state, headers, ItemKind::Finding, q).await
}

async fn list_cases(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    list(state, headers, ItemKind::Case, q).await
}

async fn one_finding(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    one(state, headers, ItemKind::Finding, id).await
}

async fn one_case(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    one(state, headers, ItemKind::Case, id).await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;
    use crate::cases::{IdentityKey, Policy, Signal};
    use crate::http::testing::{call, get, state};

    fn signal(kind: ItemKind, check: &str, asset: &str, severity: Severity, firing: bool, at_ms: i64) -> Signal {
        Signal {
            event: None,
            key: IdentityKey {
                customer: "acme".into(),
                asset: asset.into(),
                check: check.into(),
                component: "/srv".into(),
            },
            kind,
            severity,
            rule: check.into(),
            firing,
            at_ms,
            evidence: json!({"value": 0.97}),
        }
    }

    #[tokio::test]
    async fn lists_filters_and_details() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = state(&dir).await;
        let p = Policy::default();
        let out = state
            .writer
            .signals(
                vec![
                    signal(
                        ItemKind::Case,
                        "filesystem_almost_full",
                        "db01",
                        Severity::Critical,
                        true,
                        1_000,
                    ),
                    signal(ItemKind::Case, "load_high", "web01", Severity::Warning, true, 1_000),
                    signal(
                        ItemKind::Finding,
                        "filesystem_fills_within_7d",
                        "db01",
                        Severity::Warning,
                        true,
                        1_000,
                    ),
                ],
                p,
            )
            .await;
        assert!(
            out.as_ref()
                .is_ok_and(|w| w.transitions == ["opened"; 3] && w.open.len() == 3),
            "{out:?}"
        );

        let (s, v) = get(&state, "/api/v1/cases").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["cases"].as_array().map(Vec::len), Some(2), "{v}");
        let (_, v) = get(&state, "/api/v1/cases?severity=critical").await;
        assert_eq!(v["cases"][0]["key"]["check"], "filesystem_almost_full", "{v}");
        assert_eq!(v["cases"].as_array().map(Vec::len), Some(1));
        let (_, v) = get(&state, "/api/v1/cases?host=web01&customer=acme&status=new").await;
        assert_eq!(v["cases"].as_array().map(Vec::len), Some(1), "{v}");
        let (_, v) = get(&state, "/api/v1/cases?customer=other&status=all").await;
        assert_eq!(v["cases"].as_array().map(Vec::len), Some(0), "{v}");
        let (_, v) = get(&state, "/api/v1/findings").await;
        assert_eq!(v["findings"].as_array().map(Vec::len), Some(1), "{v}");
        let id = v["findings"][0]["id"].as_i64().unwrap_or(0);

        let (s, v) = get(&state, &format!("/api/v1/findings/{id}")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["evidence"]["value"], 0.97, "{v}");
        assert_eq!(v["log"][0]["to_status"], "open", "{v}");
        // A finding's id is not a case.
        let (s, v) = get(&state, &format!("/api/v1/cases/{id}")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(v.to_string().contains(&format!("no case with id {id}")), "{v}");

        let (s, v) = get(&state, "/api/v1/cases?severity=dire").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v.to_string().contains("severity"), "{v}");
        let (s, v) = get(&state, "/api/v1/findings?status=new").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v.to_string().contains("status"), "{v}");
        let (s, _) = get(&state, "/api/v1/cases/abc").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn lists_page_newest_first() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = state(&dir).await;
        let policy = Policy {
            storm_cases: 0,
            ..Policy::default()
        };
        let signals = (0..25)
            .map(|i| {
                let mut s = signal(
                    ItemKind::Case,
                    &format!("check_{i:02}"),
                    "db01",
                    Severity::Major,
                    true,
                    1_000,
                );
                s.key.component = String::new();
                s
            })
            .collect();
        let out = state.writer.signals(signals, policy).await;
        assert!(out.is_ok(), "{out:?}");
        let mut seen = Vec::new();
        let mut uri = "/api/v1/cases?limit=10".to_string();
        loop {
            let (s, v) = get(&state, &uri).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let page: Vec<i64> = v["cases"]
                .as_array()
                .map(|a| a.iter().filter_map(|c| c["id"].as_i64()).collect())
                .unwrap_or_default();
            assert!(page.len() <= 10);
            seen.extend(page);
            match v["next_before"].as_i64() {
                Some(b) => uri = format!("/api/v1/cases?limit=10&before={b}"),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        sorted.dedup();
        assert_eq!(seen, sorted, "newest first, no repeats");
        assert_eq!(seen.len(), 25);
        let (s, v) = get(&state, "/api/v1/cases?limit=0").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v.to_string().contains("limit"), "{v}");
        let (s, _) = get(&state, "/api/v1/cases?limit=5000").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }

    /// Found by schemathesis: axum's query rejections were plain text, a
    /// `limit` above the documented maximum was served, and an id too large
    /// for any id was a 400 rather than the 404 of any id not stored.
    #[tokio::test]
    async fn query_refusals_are_json_errors_and_huge_ids_name_nothing() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = state(&dir).await;
        for uri in [
            "/api/v1/cases?limit=abc",
            "/api/v1/cases?before=yesterday",
            "/api/v1/hosts/x/reports?limit=-1",
            "/api/v1/findings?limit=1001",
            "/api/v1/maintenance?all=maybe",
            "/api/v1/queue?status=on_hold:",
            "/api/v1/cases?status=on_hold:Parts!",
        ] {
            let (s, v) = get(&state, uri).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {v}");
            assert_eq!(v["error"], "bad_request", "{uri}: {v}");
            assert!(v["reason"].is_string(), "{uri}: {v}");
        }
        for uri in [
            "/api/v1/cases/99999999999999999999",
            "/api/v1/findings/-99999999999999999999",
            "/api/v1/reports/inspection/88381847798048176309.html",
            "/api/v1/maintenance/99999999999999999999",
        ] {
            let (s, v) = get(&state, uri).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{uri}: {v}");
        }
        let (s, v) = get(&state, "/api/v1/cases/12ab").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    }

    #[tokio::test]
    async fn maintenance_windows_and_the_unmapped_list() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = state(&dir).await;
        let now = caretaker_shared::now_ms();
        let p = Policy::default();

        // Bad input is refused with the field named, and nothing is added.
        for (body, field) in [
            (
                json!({"customer": "acme", "starts_at": "soon", "ends_at": now + 60_000, "reason": "x"}),
                "starts_at",
            ),
            (
                json!({"customer": "acme", "starts_at": now, "ends_at": now - 1, "reason": "x"}),
                "ends_at",
            ),
            (
                json!({"customer": "acme", "starts_at": now, "ends_at": now + 1, "reason": ""}),
                "reason",
            ),
            (
                json!({"customer": "acme", "starts_at": now, "ends_at": now + 1, "reason": "x", "hots": "db01"}),
                "hots",
            ),
            (
                json!({"customer": "acme", "ends_at": now + 1, "reason": "x"}),
                "starts_at",
            ),
        ] {
            let (s, v) = call(&state, "POST", "/api/v1/maintenance", Some(body)).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
            assert!(v.to_string().contains(field), "{field}: {v}");
        }
        let (_, v) = get(&state, "/api/v1/maintenance?all=true").await;
        assert_eq!(v["windows"].as_array().map(Vec::len), Some(0), "{v}");

        let (s, w) = call(
            &state,
            "POST",
            "/api/v1/maintenance",
            Some(json!({"customer": "acme", "host": "db01", "starts_at": now - 1000,
                        "ends_at": now + 3_600_000, "reason": "RAID controller firmware"})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{w}");
        let wid = w["id"].as_i64().unwrap_or(0);
        // A fault on db01 is held, one on web01 opens; one on an unknown host
        // goes to the unmapped list.
        let out = state
            .writer
            .signals(
                vec![
                    signal(ItemKind::Case, "raid_degraded", "db01", Severity::Critical, true, now),
                    signal(ItemKind::Case, "raid_degraded", "web01", Severity::Critical, true, now),
                    signal(ItemKind::Case, "raid_degraded", "old-db", Severity::Critical, true, now),
                ],
                p,
            )
            .await;
        assert!(out.as_ref().is_ok_and(|w| w.transitions == ["opened"]), "{out:?}");
        assert!(out.as_ref().is_ok_and(|w| w.held.len() == 2), "{out:?}");
        let (_, v) = get(&state, "/api/v1/cases").await;
        assert_eq!(v["cases"].as_array().map(Vec::len), Some(1), "{v}");
        let (_, v) = get(&state, &format!("/api/v1/maintenance/{wid}")).await;
        assert_eq!(v["held"][0]["key"]["asset"], "db01", "{v}");
        assert_eq!(v["held"][0]["occurrences"], 1, "{v}");
        let (_, v) = get(&state, "/api/v1/unmapped").await;
        assert_eq!(v["unmapped"][0]["key"]["asset"], "old-db", "{v}");
        let uid = v["unmapped"][0]["id"].as_i64().unwrap_or(0);

        // Map the unmapped signal to web01, end the window: the next tick
        // opens both.
        let (s, v) = call(
            &state,
            "POST",
            &format!("/api/v1/unmapped/{uid}/map"),
            Some(json!({"host": "nope"})),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        let (s, v) = call(
            &state,
            "POST",
            &format!("/api/v1/unmapped/{uid}/map"),
            Some(json!({"host": "web01"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = call(&state, "DELETE", &format!("/api/v1/maintenance/{wid}"), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["ended"], true, "{v}");
        let (s, _) = call(&state, "DELETE", "/api/v1/maintenance/999", None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let out = state.writer.tick_cases(caretaker_shared::now_ms() + 1, p).await;
        assert!(out.as_ref().is_ok_and(|w| w.held.is_empty()), "{out:?}");
        let (_, v) = get(&state, "/api/v1/cases").await;
        let assets: Vec<&str> = v["cases"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["host"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(assets.len(), 2, "{v}");
        assert!(assets.contains(&"db01"), "{v}");
        // old-db's fault landed on web01's raid_degraded case, already open.
        assert_eq!(assets.iter().filter(|a| **a == "web01").count(), 1, "{v}");
        let (_, v) = get(&state, "/api/v1/unmapped").await;
        assert_eq!(v["unmapped"].as_array().map(Vec::len), Some(0), "{v}");
    }

    #[tokio::test]
    async fn needs_the_api_token() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = state(&dir).await;
        let req = Request::get("/api/v1/cases")
            .body(Body::empty())
            .unwrap_or_else(|e| panic!("{e}"));
        let resp = super::super::app(state.clone())
            .oneshot(req)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
}
