//! Cross-site request forgery on the API. A browser attaches the session
//! cookie to any request to the collector, including a form post or a
//! `fetch` from another page the user has open (`SameSite=Strict` does not
//! stop a page on another port of the same host). So an API write (any
//! method but GET, HEAD, OPTIONS) that a session cookie authenticates must
//! also show it came from the collector's own pages, by one of:
//!
//! - the session's CSRF token in `X-CSRF-Token` (the token the pages' forms
//!   carry in their `csrf` field), or
//! - `Content-Type: application/json` together with an `Origin` (or, without
//!   one, a `Referer`) on the collector's own origin: `queue.public_url`, or
//!   `https://` and the request's `Host`. Another origin cannot send JSON
//!   without a CORS preflight, which the collector never grants.
//!
//! Anything else is refused with 403 and the reason. Requests with a bearer
//! token (API clients, agents) carry no ambient credential and pass as
//! before; the HTML pages check their forms' `csrf` field themselves.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::{AppState, bearer};
use crate::auth;

/// The header an API client sends the session's CSRF token in.
pub const HEADER: &str = "x-csrf-token";

/// Middleware over the whole router: checks cookie-authenticated API writes.
pub async fn api_writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !needs_check(&req) {
        return next.run(req).await;
    }
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    match check(&state, req.headers(), authority.as_deref()).await {
        Ok(()) => next.run(req).await,
        Err(e) => {
            if let ApiError::Forbidden(reason) = &e {
                tracing::info!(method = %req.method(), path = req.uri().path(), %reason, "API write refused: CSRF");
            }
            e.into_response()
        }
    }
}

/// An API write that the session cookie would authenticate: the same choice
/// as [`super::hosts::authorize`] (a bearer token wins over the cookie).
fn needs_check(req: &Request) -> bool {
    let safe = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    !safe
        && req.uri().path().starts_with("/api/")
        && bearer(req.headers()).is_none()
        && auth::cookie(req.headers(), auth::SESSION_COOKIE).is_some()
}

/// `authority`: the request URI's, where HTTP/2 names the host (no `Host`).
async fn check(state: &AppState, headers: &HeaderMap, authority: Option<&str>) -> Result<(), ApiError> {
    if let Some(given) = headers.get(HEADER) {
        let id = auth::cookie(headers, auth::SESSION_COOKIE).unwrap_or_default();
        return match crate::sessions::resolve(state, id, caretaker_shared::now_ms()).await? {
            Some((_, info)) if auth::ct_eq(info.csrf.as_bytes(), given.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError::Forbidden(
                "X-CSRF-Token is not this session's CSRF token; reload the page and try again".into(),
            )),
            // The handler answers that the session has ended.
            None => Ok(()),
        };
    }
    if !is_json(headers) {
        return Err(ApiError::Forbidden(
            "a write with the session cookie needs the session's CSRF token in X-CSRF-Token, or \
             Content-Type: application/json from this collector's own pages"
                .into(),
        ));
    }
    let Some(origin) = request_origin(headers) else {
        return Err(ApiError::Forbidden(
            "a JSON write with the session cookie needs an Origin or Referer header naming this collector".into(),
        ));
    };
    if own_origins(state, headers, authority).contains(&origin) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "origin {origin:?} is not this collector's; a write with the session cookie must come from its own pages"
        )))
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// The request's origin: its `Origin` header, else the origin of its
/// `Referer`; normalized.
fn request_origin(headers: &HeaderMap) -> Option<String> {
    let text = |h| headers.get(h).and_then(|v| v.to_str().ok());
    match text(header::ORIGIN) {
        Some(o) => origin_of(o),
        None => text(header::REFERER).and_then(origin_of),
    }
}

/// `scheme://host[:port]` of a URL, lowercased, without the scheme's
/// default port; `None` for anything else (`null`, a path, `data:`).
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    if authority.is_empty() || authority.contains('@') || !matches!(scheme.as_str(), "http" | "https") {
        return None;
    }
    let default = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}"))
}

/// The origins the collector's own pages are served from: the public URL's,
/// and the one the request was sent to (`Host`, or the HTTP/2 authority).
fn own_origins(state: &AppState, headers: &HeaderMap, authority: Option<&str>) -> Vec<String> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let mut out: Vec<String> = [host, authority]
        .into_iter()
        .flatten()
        .filter_map(|h| origin_of(&format!("https://{h}")))
        .collect();
    if let Some(o) = state.config.queue.public_url.as_deref().and_then(origin_of) {
        out.push(o);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use axum::http::StatusCode;
    use serde_json::{Value, json};

    use super::*;
    use crate::http::testing::{queue_state, send};

    /// A hash nobody logs in with: these tests start sessions directly.
    const NO_LOGIN: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$3M9P3xy4m9nE6tW3J0Wz0b1W6ts6xh3I8kzqE9c9cUo";
    const HOST: &str = "collector.example:8443";

    #[test]
    fn origins_are_normalized() {
        for (url, want) in [
            (
                "https://Collector.Example:8443/cases/1?x",
                Some("https://collector.example:8443"),
            ),
            ("https://collector.example:443", Some("https://collector.example")),
            ("http://collector.example:80/", Some("http://collector.example")),
            ("https://[::1]:8443", Some("https://[::1]:8443")),
            ("null", None),
            ("data:text/html,x", None),
            ("/cases/1", None),
            ("https://user@evil.example", None),
            ("ftp://collector.example", None),
        ] {
            assert_eq!(origin_of(url).as_deref(), want, "{url}");
        }
    }

    /// A state with ana's live session: the state, her cookie and her CSRF token.
    async fn logged_in(dir: &tempfile::TempDir) -> (crate::http::testing::TestState, String, String) {
        let s = queue_state(dir, NO_LOGIN).await;
        let ana = s.contracts.get().user("ana").cloned().unwrap();
        let id = crate::sessions::create(&s, &ana, caretaker_shared::now_ms())
            .await
            .unwrap();
        let (_, info) = crate::sessions::resolve(&s, &id, caretaker_shared::now_ms())
            .await
            .unwrap()
            .unwrap();
        (s, format!("caretaker_session={id}"), info.csrf)
    }

    fn cases(s: &AppState) -> i64 {
        crate::http::testing::read(s, crate::store::testing::item_count)
    }

    /// What a page on `origin` could send: a JSON text in any content type.
    fn fault(n: usize) -> String {
        json!({"asset": "db01", "title": format!("forged {n}"), "severity": "critical"}).to_string()
    }

    #[tokio::test]
    async fn cookie_writes_need_the_csrf_token_or_json_from_the_own_origin() {
        let dir = tempfile::tempdir().unwrap();
        let (s, cookie, csrf) = logged_in(&dir).await;
        let ck = ("cookie", cookie.as_str());
        let host = ("host", HOST);
        let json = ("content-type", "application/json");
        let own = ("origin", "https://collector.example:8443");
        let evil = ("origin", "https://collector.example:9999");
        let refused: Vec<(&str, Vec<(&str, &str)>)> = vec![
            (
                "text/plain from another origin",
                vec![ck, host, ("content-type", "text/plain"), evil],
            ),
            (
                "a form from another origin",
                vec![ck, host, ("content-type", "application/x-www-form-urlencoded"), evil],
            ),
            (
                "a form with no origin",
                vec![ck, host, ("content-type", "multipart/form-data; boundary=x")],
            ),
            (
                "text/plain from the own origin",
                vec![ck, host, ("content-type", "text/plain"), own],
            ),
            ("JSON from another origin", vec![ck, host, json, evil]),
            ("JSON from a null origin", vec![ck, host, json, ("origin", "null")]),
            ("JSON with no Origin or Referer", vec![ck, host, json]),
            (
                "JSON with a foreign Referer",
                vec![ck, host, json, ("referer", "https://evil.example/x")],
            ),
            (
                "a wrong CSRF token",
                vec![ck, host, json, own, ("x-csrf-token", "forged")],
            ),
            (
                "a Basic header does not count as a token",
                vec![
                    ck,
                    host,
                    ("content-type", "text/plain"),
                    evil,
                    ("authorization", "Basic eDp5"),
                ],
            ),
        ];
        for (n, (what, headers)) in refused.iter().enumerate() {
            let r = send(&s, "POST", "/api/v1/cases", headers, &fault(n)).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {}", r.body);
            let v: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(v["error"], "forbidden", "{what}");
            assert!(!v["reason"].as_str().unwrap_or_default().is_empty(), "{what}");
        }
        assert_eq!(cases(&s), 0, "no forged write went through");
        // The same for the other API writes.
        for (method, uri) in [
            ("POST", "/api/v1/cases/1/actions"),
            ("POST", "/api/v1/maintenance"),
            ("DELETE", "/api/v1/maintenance/1"),
            ("PUT", "/api/v1/spares/models/x"),
        ] {
            let r = send(&s, method, uri, &[ck, host, ("content-type", "text/plain"), evil], "{}").await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {uri}: {}", r.body);
        }

        let allowed: Vec<(&str, Vec<(&str, &str)>)> = vec![
            (
                "the CSRF token",
                vec![
                    ck,
                    host,
                    ("content-type", "text/plain"),
                    ("x-csrf-token", csrf.as_str()),
                ],
            ),
            ("JSON from the own origin", vec![ck, host, json, own]),
            (
                "JSON with the own Referer",
                vec![
                    ck,
                    host,
                    ("content-type", "Application/JSON; charset=utf-8"),
                    ("referer", "https://collector.example:8443/cases/3"),
                ],
            ),
            (
                "a bearer token, whatever the origin",
                vec![
                    ck,
                    ("authorization", "Bearer ana-token"),
                    ("content-type", "text/plain"),
                    evil,
                ],
            ),
        ];
        for (n, (what, headers)) in allowed.iter().enumerate() {
            let r = send(&s, "POST", "/api/v1/cases", headers, &fault(100 + n)).await;
            assert_eq!(r.status, StatusCode::CREATED, "{what}: {}", r.body);
        }
        assert_eq!(cases(&s), 4);
        // Over HTTP/2 the host is the URI's authority (no Host header).
        let r = send(
            &s,
            "POST",
            "https://collector.example:8443/api/v1/cases",
            &[ck, json, own],
            &fault(200),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let r = send(
            &s,
            "POST",
            "https://collector.example:8443/api/v1/cases",
            &[ck, json, evil],
            &fault(201),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(cases(&s), 5);
        // Reads need nothing more than the cookie.
        let r = send(&s, "GET", "/api/v1/cases", &[ck, host, evil], "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }

    #[tokio::test]
    async fn the_public_url_is_an_own_origin_and_an_ended_session_is_unauthorized() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cookie, _) = logged_in(&dir).await;
        let mut cfg = (*s.config).clone();
        cfg.queue.public_url = Some("https://caretaker.example/".into());
        s.config = Arc::new(cfg);
        // Behind a proxy the Host may be internal; the public URL counts.
        let headers = [
            ("cookie", cookie.as_str()),
            ("host", "127.0.0.1:8443"),
            ("content-type", "application/json"),
            ("origin", "https://caretaker.example"),
        ];
        let r = send(&s, "POST", "/api/v1/cases", &headers, &fault(1)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

        let id = cookie.strip_prefix("caretaker_session=").unwrap();
        crate::sessions::end(&s, id).await.unwrap();
        let r = send(&s, "POST", "/api/v1/cases", &headers, &fault(2)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        let with_token = [headers[0], headers[1], ("x-csrf-token", "anything")];
        let r = send(&s, "POST", "/api/v1/cases", &with_token, &fault(3)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    }
}
