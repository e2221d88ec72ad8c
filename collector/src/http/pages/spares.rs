//! Spare parts on a page:
//! - `GET /spares`: the spare coverage of the assets (every customer's, or
//!   `customer`'s; a customer's user sees its own and nothing else here):
//!   how many parts a compatible spare covers and the parts none does; for
//!   staff also the stock by model and location (below its minimum
//!   marked) and the open replenishment requests.
//! - `POST /spares` (staff, with the session's CSRF token): `model`,
//!   `location`, `quantity`, `min_stock` set a stock line (a count, or
//!   parts received), the way `PUT /api/v1/spares/stock/...` does; then
//!   303 back. Bad input answers 400 with the page and the field.

use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::forms::Fields;
use super::paging::{self, Paged, given};
use super::{PageError, Viewer, html_page, layout, problem};
use crate::auth::{self, percent_encode};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::spares::{self, Coverage, Gap, SpareModel};
use crate::store::spares::{Replenishment, Stock};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SparesQuery {
    customer: Option<String>,
    q: Option<String>,
    page: Option<String>,
}

/// `/spares` with the query's filters and page `page`.
fn href(q: &SparesQuery, page: usize) -> String {
    paging::href("/spares", &[("customer", &q.customer), ("q", &q.q)], page)
}

/// What the page shows: the coverage, a page of its gaps, and the stock
/// parts only for staff (the stock lines and requests are one per model
/// and location, a short list: searched, not paged).
struct Shown {
    coverage: Coverage,
    gaps: Paged<Gap>,
    stock: Option<(Vec<SpareModel>, Vec<Stock>, Vec<Replenishment>)>,
}

async fn load(
    state: &AppState,
    customer: Option<String>,
    staff: bool,
    words: Vec<String>,
    page: usize,
) -> Result<Shown, PageError> {
    Ok(crate::http::read(state, move |c| {
        let mut coverage = spares::coverage(c, customer.as_deref())?;
        let mut gaps = std::mem::take(&mut coverage.gaps);
        gaps.retain(|g| {
            let p = &g.part;
            let text = format!("{} {} {} {} {}", g.host, p.part_type, p.slot, p.model, p.serial).to_lowercase();
            paging::has_words(&words, &text)
        });
        let stock = if staff {
            let mut lines = spares::stock(c)?;
            lines.retain(|s| paging::has_words(&words, &format!("{} {}", s.model, s.location).to_lowercase()));
            let mut requests = spares::replenishments(c, false)?;
            requests.retain(|r| paging::has_words(&words, &format!("{} {}", r.model, r.location).to_lowercase()));
            Some((spares::models(c)?, lines, requests))
        } else {
            None
        };
        Ok(Shown {
            coverage,
            gaps: Paged::of(gaps, page),
            stock,
        })
    })
    .await?)
}

pub(super) async fn spares_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<SparesQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let (who, session) = auth::page_principal(&state, &headers, &uri).await?;
    let viewer = Viewer::new(&state, &who, &session.csrf);
    let customers = super::customer_choices(&state);
    let staff = who.scope().is_none();
    let checked = paging::checked(query, |q| &q.page);
    let (q, page, code, error) = match checked {
        Ok((q, page)) => (q, page, StatusCode::OK, None),
        Err(e) => (SparesQuery::default(), 1, StatusCode::BAD_REQUEST, Some(e)),
    };
    // A customer's user sees its own coverage whatever it asks for.
    let customer = who.scope().map(str::to_string).or_else(|| given(&q.customer));
    let shown = load(&state, customer, staff, paging::search_words(&q.q), page).await?;
    let blank = Fields::new(vec![]);
    Ok(html_page(
        code,
        render(&viewer, &customers, &q, &shown, &blank, error.as_deref()),
    ))
}

/// A whole number of parts, or what is wrong with field `name`.
fn count(fields: &Fields, name: &str) -> Result<i64, String> {
    let v = fields.get(name).trim();
    if v.is_empty() && name == "min_stock" {
        return Ok(0);
    }
    v.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| format!("{name}: {v:?} is not a number of parts (0 or more)"))
}

pub(super) async fn spares_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, PageError> {
    let (who, session, fields) = super::staff_form(&state, &headers, &uri, form).await?;
    let model = fields.get("model").trim().to_string();
    let location = fields.get("location").trim().to_string();
    let parsed = if model.is_empty() {
        Err("model: choose the spare model".to_string())
    } else {
        count(&fields, "quantity").and_then(|q| count(&fields, "min_stock").map(|m| (q, m)))
    };
    let (code, message) = match parsed {
        Err(message) => (StatusCode::BAD_REQUEST, message),
        Ok((quantity, min_stock)) => {
            let now = caretaker_shared::now_ms();
            let (m, l) = (model.clone(), location.clone());
            let done = state
                .writer
                .run(move |c| spares::set_stock(c, &m, &l, quantity, min_stock, now))
                .await;
            match done {
                Ok(()) => {
                    tracing::info!(model = %model, location = %location, quantity, min_stock, user = %who.name, "spare stock set from the web");
                    return Ok(Redirect::to(&format!("/spares#stock-{}", percent_encode(&model))).into_response());
                }
                Err(e) => problem(ApiError::from(e)),
            }
        }
    };
    if code.is_server_error() {
        return Err(PageError::Status(code, message));
    }
    let viewer = Viewer::new(&state, &who, &session.csrf);
    let customers = super::customer_choices(&state);
    let shown = load(&state, None, true, Vec::new(), 1).await?;
    Ok(html_page(
        code,
        render(
            &viewer,
            &customers,
            &SparesQuery::default(),
            &shown,
            &fields,
            Some(&message),
        ),
    ))
}

fn render(
    viewer: &Viewer<'_>,
    customers: &[String],
    q: &SparesQuery,
    shown: &Shown,
    posted: &Fields,
    error: Option<&str>,
) -> Markup {
    let cov = &shown.coverage;
    let chosen = given(&q.customer).unwrap_or_default();
    let staff = viewer.who.scope().is_none();
    let content = html! {
        h1 { "Spare parts" }
        @if let Some(e) = error {
            p.error role="alert" { (e) }
        }
        @if staff {
            div.filters {
                form method="get" action="/spares" {
                    (super::customer_choice("Coverage of", "every customer", customers, &chosen))
                    (super::search_box(&given(&q.q).unwrap_or_default(), "host, model, serial, location"))
                    div { button type="submit" { "Show" } }
                }
            }
        }
        section aria-labelledby="coverage-heading" {
            h2 #coverage-heading { "Coverage" }
            p #coverage {
                (cov.covered) " of " (cov.parts) " parts on " (cov.assets) @if cov.assets == 1 { " asset" } @else { " assets" } " have a compatible spare in stock ("
                (format!("{:.0}", cov.ratio * 100.0)) " %)."
            }
            @if shown.gaps.total > 0 && shown.gaps.rows.is_empty() {
                (shown.gaps.empty("parts no spare covers", &href(q, 1)))
            } @else if shown.gaps.total > 0 {
                p #gaps-count { (shown.gaps.counted("part no spare covers", "parts no spare covers")) }
                div.table-wrap role="region" aria-label="Parts no spare covers" tabindex="0" {
                    table #gaps {
                        caption { "Parts no spare covers" }
                        thead { tr {
                            th scope="col" { "Host" } th scope="col" { "Part" } th scope="col" { "Where" }
                            th scope="col" { "Model" } th scope="col" { "Serial" }
                        } }
                        tbody {
                            @for g in &shown.gaps.rows {
                                tr {
                                    td { a href=(format!("/assets/{}", percent_encode(&g.host))) { (g.host) } }
                                    td { (g.part.part_type) }
                                    td { (g.part.slot) }
                                    td { (g.part.model) }
                                    td { (g.part.serial) }
                                }
                            }
                        }
                    }
                }
                (shown.gaps.nav(|n| href(q, n)))
            }
        }
        @if let Some((models, stock, requests)) = &shown.stock {
            section aria-labelledby="stock-heading" {
                h2 #stock-heading { "Stock" }
                @if stock.is_empty() {
                    p { "No stock recorded yet." }
                } @else {
                    div.table-wrap role="region" aria-label="Stock" tabindex="0" {
                        table #stock {
                            thead { tr {
                                th scope="col" { "Model" } th scope="col" { "Location" } th scope="col" { "In stock" }
                                th scope="col" { "Minimum" } th scope="col" { "Reserved" } th scope="col" { "Available" }
                            } }
                            tbody {
                                @for s in stock {
                                    tr id=(format!("stock-{}", percent_encode(&s.model))) class=[s.below_minimum.then_some("below-minimum")] {
                                        td { (s.model) }
                                        td { (s.location) }
                                        td { (s.quantity) }
                                        td { (s.min_stock) @if s.below_minimum { " " strong { "below minimum" } } }
                                        td { (s.reserved) }
                                        td { (s.available) }
                                    }
                                }
                            }
                        }
                    }
                }
                @if viewer.who.can_act() && !models.is_empty() {
                    form #set-stock method="post" action="/spares" {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        h3 { "Count or receive parts" }
                        div.filters {
                            div {
                                label for="model" { "Model" }
                                select #model name="model" required {
                                    option value="" { "choose" }
                                    @for m in models {
                                        option value=(m.model) selected[posted.get("model") == m.model] { (m.model) " (" (m.part_type) ")" }
                                    }
                                }
                            }
                            div { label for="location" { "Location" } input #location name="location" required value=(posted.get("location")); }
                            div { label for="quantity" { "In stock" } input #quantity name="quantity" type="number" min="0" required value=(posted.get("quantity")); }
                            div { label for="min_stock" { "Minimum" } input #min_stock name="min_stock" type="number" min="0" value=(posted.get("min_stock")); }
                            div { button type="submit" { "Save" } }
                        }
                    }
                }
            }
            section aria-labelledby="requests-heading" {
                h2 #requests-heading { "Replenishment requests" }
                @if requests.is_empty() {
                    p { "None open: every stock line is at its minimum." }
                } @else {
                    div.table-wrap role="region" aria-label="Replenishment requests" tabindex="0" {
                        table #requests {
                            thead { tr { th scope="col" { "Order" } th scope="col" { "Model" } th scope="col" { "For" } th scope="col" { "Since" } } }
                            tbody {
                                @for r in requests {
                                    tr { td { (r.quantity) } td { (r.model) } td { (r.location) } td { (viewer.time(r.created_at_ms)) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout("spares", Some(viewer), content)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::StatusCode;

    use crate::http::pages::tests::{login, state};
    use crate::http::testing::send;

    #[tokio::test]
    async fn staff_count_spares_and_see_replenishment_and_a_customer_sees_only_its_coverage() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let r = send(
            &s,
            "PUT",
            "/api/v1/spares/models/ST8000NM",
            &[
                ("authorization", "Bearer ana-token"),
                ("content-type", "application/json"),
            ],
            r#"{"part_type": "disk", "interface": "sata", "capacity_bytes": 8000000000000}"#,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let ana = login(&s, "ana").await;
        let r = ana.get(&s, "/spares").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(
            r.body.contains("No stock recorded yet.") && r.body.contains("id=\"set-stock\""),
            "{}",
            r.body
        );
        assert!(r.body.contains("0 of 0 parts on"), "{}", r.body);

        // One on the shelf, three wanted: below the minimum, two to order.
        let set = |q: &'static str, m: &'static str| {
            [
                ("model", "ST8000NM"),
                ("location", "hq"),
                ("quantity", q),
                ("min_stock", m),
            ]
        };
        let r = ana.post(&s, "/spares", &set("1", "3")).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let r = ana.get(&s, "/spares").await;
        assert!(r.body.contains("class=\"below-minimum\""), "{}", r.body);
        let requests = r.body.split("id=\"requests\"").nth(1).unwrap();
        assert!(
            requests.contains("<td>2</td><td>ST8000NM</td><td>hq</td>"),
            "{}",
            r.body
        );
        // Parts received: back at the minimum, the request closes.
        let r = ana.post(&s, "/spares", &set("3", "3")).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let r = ana.get(&s, "/spares").await;
        assert!(!r.body.contains("class=\"below-minimum\""), "{}", r.body);
        assert!(r.body.contains("None open"), "{}", r.body);

        // Bad input names the field and changes nothing.
        for (fields, why) in [
            (set("-1", "3"), "quantity: &quot;-1&quot; is not a number of parts"),
            (set("2", "x"), "min_stock: &quot;x&quot; is not a number of parts"),
            (
                [("model", ""), ("location", "hq"), ("quantity", "1"), ("min_stock", "0")],
                "model: choose the spare model",
            ),
            (
                [
                    ("model", "ST8000NM"),
                    ("location", " "),
                    ("quantity", "1"),
                    ("min_stock", "0"),
                ],
                "location must not be empty",
            ),
            (
                [
                    ("model", "NOPE"),
                    ("location", "hq"),
                    ("quantity", "1"),
                    ("min_stock", "0"),
                ],
                "NOPE",
            ),
        ] {
            let r = ana.post(&s, "/spares", &fields).await;
            assert!(r.status.is_client_error(), "{why}: {}", r.body);
            assert!(
                r.body.contains(why) && r.body.contains("role=\"alert\""),
                "{why}: {}",
                r.body
            );
        }
        let r = ana.get(&s, "/spares").await;
        assert!(r.body.contains("<td>ST8000NM</td><td>hq</td><td>3</td>"), "{}", r.body);

        // A customer's user: its coverage only.
        let carol = login(&s, "carol").await;
        let r = carol.get(&s, "/spares?customer=globex").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            r.body.contains("id=\"coverage\"") && !r.body.contains("id=\"stock\""),
            "{}",
            r.body
        );
        assert!(!r.body.contains("Replenishment"), "{}", r.body);
        let r = carol.post(&s, "/spares", &set("9", "0")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }

    /// Host db01 (customer acme) reports an inventory of 60 disks of a
    /// model no spare is kept for.
    async fn sixty_uncovered_disks(s: &crate::http::AppState) {
        use caretaker_shared::wire::{DiskInfo, Inventory, PROTOCOL_VERSION, Report};
        let disks = (0..60)
            .map(|i| DiskInfo {
                name: format!("sd{i:02}"),
                model: "ST4000NM0035-1V4".into(),
                serial: format!("ZC{i:06}"),
                capacity_bytes: 4_000_787_030_016,
                rotational: Some(true),
                interface: "sata".into(),
                ..DiskInfo::default()
            })
            .collect();
        let inventory = Inventory {
            hostname: "db01".into(),
            disks,
            content_hash: "sixty".into(),
            ..Inventory::default()
        };
        let report = Report {
            version: PROTOCOL_VERSION,
            agent_id: "db01".into(),
            seq: 1,
            collected_at_ms: caretaker_shared::now_ms(),
            interval_secs: 15,
            host: "db01".into(),
            labels: [
                ("customer".to_string(), "acme".to_string()),
                ("site".into(), "hq".into()),
            ]
            .into(),
            samples: vec![],
            events: vec![],
            inventory: Some(inventory),
            disks: None,
        };
        let body = serde_json::to_vec(&report).unwrap();
        s.writer
            .apply(crate::writer::Incoming {
                credential_hash: None,
                agent_id: "db01".into(),
                report,
                samples: vec![],
                sample_count: 0,
                body,
                encoding: crate::ingest::Encoding::Identity,
                received_at_ms: caretaker_shared::now_ms(),
                clock: None,
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_parts_no_spare_covers_are_paged_and_searched() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        sixty_uncovered_disks(&s).await;
        let ana = login(&s, "ana").await;
        let gaps = |body: &str| {
            body.split("id=\"gaps\"")
                .nth(1)
                .map_or(0, |t| t.matches("<tr><td>").count())
        };
        let r = ana.get(&s, "/spares").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains("0 of 60 parts on 1 asset have"), "{}", r.body);
        assert!(r.body.contains("1–50 of 60 parts no spare covers"), "{}", r.body);
        assert_eq!(gaps(&r.body), 50, "{}", r.body);
        assert!(r.body.contains("href=\"/spares?page=2\""), "{}", r.body);
        let r = ana.get(&s, "/spares?page=2").await;
        assert_eq!(gaps(&r.body), 10, "{}", r.body);
        let r = ana.get(&s, "/spares?q=zc00005").await;
        assert_eq!(gaps(&r.body), 10, "{}", r.body);
        let r = ana.get(&s, "/spares?page=9").await;
        assert!(r.body.contains("Nothing on page 9"), "{}", r.body);
        let r = ana.get(&s, "/spares?page=x").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
}
