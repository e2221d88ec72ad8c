//! Inspection reports (see [`crate::report`]):
//!
//! - `POST /api/v1/reports/inspection` with `{"customer", "from"?, "to"?}`
//!   (RFC 3339 or ms since the epoch; both or neither, default the last full
//!   calendar month, UTC) generates and stores a report: 201 with its id and
//!   download links. A `to` in the future, or a customer the collector does
//!   not know (no agent label, finding, case, contract or configured report
//!   customer names it), is a 400 naming the field.
//! - `GET /api/v1/reports/inspection` lists the stored reports, newest first
//!   (`?customer=` narrows it).
//! - `GET /api/v1/reports/inspection/{id}` gives one as JSON; `{id}.html`,
//!   `{id}.md` and `{id}.json` download it (`Content-Disposition` names the
//!   file; HTML is shown inline, so the link is also the report's web page).
//!
//! These live beside agent ingest (`POST /api/v1/reports`), which has no
//! deeper paths. All need an API token or a session. Generating is for staff;
//! a customer's user lists and reads only their own customer's reports, and
//! another customer's report is "not found".

use axum::body::Bytes;
use axum::extract::{Path, State};

use super::Query;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::hosts::authorize;
use super::{json_body, read};
use crate::cases::hold::TimeArg;
use crate::report::stored::{self, Stored, Trigger};
use crate::report::{self, Options, format_date};

const BASE: &str = "/api/v1/reports/inspection";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(BASE, get(list).post(generate))
        .route("/api/v1/reports/inspection/{id}", get(one))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateBody {
    customer: String,
    from: Option<TimeArg>,
    to: Option<TimeArg>,
}

/// A time field of the request in ms, or what is wrong with it.
fn time_field(name: &str, t: Option<&TimeArg>) -> Result<Option<i64>, ApiError> {
    t.map(|t| t.ms().map_err(|e| ApiError::BadRequest(format!("{name}: {e}"))))
        .transpose()
}

fn links(id: i64) -> Value {
    json!({
        "json": format!("{BASE}/{id}.json"),
        "html": format!("{BASE}/{id}.html"),
        "markdown": format!("{BASE}/{id}.md"),
    })
}

async fn generate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &headers).await?.require_staff()?;
    let b: GenerateBody = json_body(&body)?;
    let from = time_field("from", b.from.as_ref())?;
    let to = time_field("to", b.to.as_ref())?;
    let made = make_report(&state, b.customer, from, to).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": made.id,
            "customer": made.customer,
            "from_ms": made.from_ms,
            "to_ms": made.to_ms,
            "generated_at_ms": made.generated_at_ms,
            "trigger": Trigger::OnDemand,
            "links": links(made.id),
        })),
    ))
}

/// A report made on demand and stored.
pub(crate) struct Made {
    pub id: i64,
    pub customer: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub generated_at_ms: i64,
}

/// Makes and stores the inspection report of `asked` for `[from, to)`
/// (both or neither; neither: the last full calendar month), the API's and
/// the reports page's one way to do it. A customer the collector does not
/// know or a period it cannot have is a bad request naming the field.
pub(crate) async fn make_report(
    state: &AppState,
    asked: String,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<Made, ApiError> {
    let now = caretaker_shared::now_ms();
    let period = report::requested_period(from, to, now)?;
    let mut known = state.contracts.get().customer_names();
    known.extend(state.config.reports.customers.iter().flatten().cloned());
    let customer = read(state, move |c| Ok(report::requested_customer(c, &asked, &known))).await??;
    let options = Options {
        down_after_intervals: state.config.hosts.down_after_intervals,
        ..Options::default()
    };
    // Built on a read connection, so neither ingest (the writer) nor the
    // queue page (another reader) waits for a long report; one read
    // transaction gives every query of the report the same snapshot. Only
    // storing it takes the writer.
    let c = customer.clone();
    let built = read(state, move |conn| {
        let snapshot = conn.snapshot()?;
        report::build_with(&snapshot, &c, period, now, &options)
    })
    .await?;
    let v = state
        .writer
        .run(move |conn| Ok(json!(stored::save(conn, &built, Trigger::OnDemand)?)))
        .await?;
    let id = v.as_i64().unwrap_or_default();
    tracing::info!(id, customer = %customer, "inspection report generated");
    Ok(Made {
        id,
        customer,
        from_ms: period.from_ms,
        to_ms: period.to_ms,
        generated_at_ms: now,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    customer: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let principal = authorize(&state, &headers).await?;
    // A customer sees its own reports whatever it asks for.
    let customer = principal.scope().map(str::to_string).or(q.customer);
    let reports = read(&state, move |c| stored::list(c, customer.as_deref())).await?;
    let reports: Vec<Value> = reports
        .into_iter()
        .map(|s| {
            let mut v = json!(s);
            v["links"] = links(s.id);
            v
        })
        .collect();
    Ok(Json(json!({ "reports": reports })))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// The bare id: JSON shown, not downloaded.
    Plain,
    Json,
    Html,
    Markdown,
}

fn parse_id(s: &str) -> Result<(i64, Format), ApiError> {
    let (id, format) = if let Some(id) = s.strip_suffix(".html") {
        (id, Format::Html)
    } else if let Some(id) = s.strip_suffix(".md") {
        (id, Format::Markdown)
    } else if let Some(id) = s.strip_suffix(".json") {
        (id, Format::Json)
    } else {
        (s, Format::Plain)
    };
    let id = id
        .parse()
        .map_err(|e| super::id_error("inspection report", s, &e, " (optionally with .html, .md or .json)"))?;
    Ok((id, format))
}

/// `inspection-acme-2026-11-01.html`: the customer reduced to safe characters.
fn file_name(s: &Stored, ext: &str) -> String {
    let customer: String = s
        .summary
        .customer
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "inspection-{customer}-{}-{}.{ext}",
        format_date(s.summary.from_ms),
        s.summary.id
    )
}

async fn one(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let principal = authorize(&state, &headers).await?;
    let (id, format) = parse_id(&id)?;
    let found = read(&state, move |c| stored::get(c, id)).await?;
    // Another customer's report is answered like a missing one.
    let s = found
        .filter(|s| principal.may_see(&s.summary.customer))
        .ok_or_else(|| ApiError::NotFound(format!("no inspection report {id}")))?;
    let (body, content_type, disposition) = match format {
        Format::Plain => (s.json.clone(), "application/json", None),
        Format::Json => (
            s.json.clone(),
            "application/json",
            Some(format!("attachment; filename=\"{}\"", file_name(&s, "json"))),
        ),
        Format::Html => (
            s.html.clone(),
            "text/html; charset=utf-8",
            Some(format!("inline; filename=\"{}\"", file_name(&s, "html"))),
        ),
        Format::Markdown => (
            s.markdown.clone(),
            "text/markdown; charset=utf-8",
            Some(format!("attachment; filename=\"{}\"", file_name(&s, "md"))),
        ),
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(d) = disposition.and_then(|d| HeaderValue::from_str(&d).ok()) {
        h.insert(header::CONTENT_DISPOSITION, d);
    }
    // The stored page has no scripts or outside resources; say so to browsers too.
    if format == Format::Html {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
        );
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::http::testing::API_TOKEN;

    async fn state(dir: &tempfile::TempDir) -> crate::http::testing::TestState {
        crate::http::testing::state_with(dir, |c| {
            crate::report::tests::fleet(c);
        })
        .await
    }

    async fn call(state: &AppState, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, HeaderMap, String) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {API_TOKEN}"))
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let resp = crate::http::app(state.clone()).oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    #[tokio::test]
    async fn generate_list_and_download() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let (status, _, body) = call(
            &s,
            "POST",
            BASE,
            Some(json!({"customer": "acme", "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let id = v["id"].as_i64().unwrap();
        assert_eq!(v["links"]["html"], format!("{BASE}/{id}.html"));
        assert_eq!(v["trigger"], "on_demand");

        let (status, _, body) = call(&s, "GET", &format!("{BASE}?customer=acme"), None).await;
        assert_eq!(status, StatusCode::OK);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["reports"].as_array().unwrap().len(), 1);
        let (_, _, body) = call(&s, "GET", &format!("{BASE}?customer=globex"), None).await;
        assert!(body.contains("\"reports\":[]"), "{body}");

        let (status, h, body) = call(&s, "GET", &format!("{BASE}/{id}"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["systems"].as_array().unwrap().len(), 2);
        assert_eq!(v["cases"]["count"], 2);

        let (status, h, body) = call(&s, "GET", &format!("{BASE}/{id}.html"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(
            h[header::CONTENT_DISPOSITION],
            format!("inline; filename=\"inspection-acme-2026-11-01-{id}.html\"").as_str()
        );
        assert!(body.starts_with("<!DOCTYPE html>") && body.contains("db01"));

        let (status, h, body) = call(&s, "GET", &format!("{BASE}/{id}.md"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "text/markdown; charset=utf-8");
        assert!(
            h[header::CONTENT_DISPOSITION]
                .to_str()
                .unwrap()
                .starts_with("attachment; ")
        );
        assert!(body.contains("### db01"));

        let (_, h, _) = call(&s, "GET", &format!("{BASE}/{id}.json"), None).await;
        assert!(h[header::CONTENT_DISPOSITION].to_str().unwrap().ends_with(".json\""));

        let (status, _, _) = call(&s, "GET", &format!("{BASE}/999.html"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, body) = call(&s, "GET", &format!("{BASE}/x.pdf"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }

    #[tokio::test]
    async fn a_future_end_or_an_unknown_customer_is_a_400_not_an_empty_report() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let future = caretaker_shared::now_ms() + 3_600_000;
        for (body, want) in [
            (
                json!({"customer": "acme", "from": "2026-11-01T00:00:00Z", "to": future}),
                "to: ",
            ),
            (json!({"customer": "initech"}), "is not a known customer"),
        ] {
            let (status, _, text) = call(&s, "POST", BASE, Some(body.clone())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {text}");
            assert!(text.contains(want), "{body} → {text}");
        }
        assert!(
            call(
                &s,
                "POST",
                BASE,
                Some(json!({"customer": "acme", "from": 1, "to": future}))
            )
            .await
            .2
            .contains("is in the future")
        );
        let (_, _, body) = call(&s, "GET", BASE, None).await;
        assert!(body.contains("\"reports\":[]"), "nothing stored: {body}");
        // A customer the contracts name has a report, even without hosts.
        s.contracts.set(crate::contracts::Contracts {
            customers: vec![crate::contracts::Customer {
                name: "initech".into(),
                sites: vec![],
            }],
            ..Default::default()
        });
        let (status, _, text) = call(&s, "POST", BASE, Some(json!({"customer": "initech"}))).await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
    }

    #[tokio::test]
    async fn bad_requests_name_the_field_and_the_token_is_needed() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        for (body, want) in [
            (json!({"customer": "acme", "from": "yesterday", "to": 1}), "from:"),
            (
                json!({"customer": "acme", "from": 10, "to": 5}),
                "to: must be after the start of the period",
            ),
            (json!({"customer": "acme", "from": 10}), "give both"),
            (json!({"customer": " "}), "customer"),
            (json!({"customer": "acme", "form": 1}), "form"),
        ] {
            let (status, _, text) = call(&s, "POST", BASE, Some(body.clone())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {text}");
            assert!(text.contains(want), "{body} → {text}");
        }
        // Neither: the last full calendar month.
        let (status, _, text) = call(&s, "POST", BASE, Some(json!({"customer": "acme"}))).await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        let want = report::schedule::previous_month(caretaker_shared::now_ms());
        assert_eq!(v["from_ms"], want.from_ms);

        let req = Request::builder().uri(BASE).body(Body::empty()).unwrap();
        let resp = crate::http::app(s.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        // Agent ingest still answers at its own path.
        let req = Request::builder()
            .method("POST")
            .uri("/api/v1/reports")
            .body(Body::empty())
            .unwrap();
        let resp = crate::http::app(s.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
}
