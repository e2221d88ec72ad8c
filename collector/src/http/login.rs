//! Logging in to the web pages:
//!
//! - `GET /login` shows the form (user, password).
//! - `POST /login` (form-encoded `user`, `password`, optional `next`) checks
//!   the password against the user's argon2id hash in the contracts file; on
//!   success it stores a session and sets its cookie and answers 303 to
//!   `next` (a path on this site) or `/queue`; on failure 401 with the form
//!   again. A user name or source address locked after repeated failures,
//!   or no free password check slot, answers 429 with `Retry-After` and the
//!   form, without checking the password ([`crate::login_guard`]).
//! - `POST /logout` (form-encoded `csrf`) ends the session (deletes it from
//!   the store) and answers 303 to `/login`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use crate::auth::{self, SESSION_COOKIE};
use crate::login_guard::Locked;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(form).post(login))
        .route("/logout", post(logout))
}

const FAILED: &str = "unknown user or wrong password";
const BUSY: &str = "too many logins at once; try again in a few seconds";

#[derive(Debug, Default, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
    next: Option<String>,
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: String,
}

fn page(next: &str, user: &str, error: Option<&str>) -> Html<String> {
    Html(form_markup(next, user, error, false).into_string())
}

fn form_markup(next: &str, user: &str, error: Option<&str>, no_users: bool) -> Markup {
    let content = html! {
        div.narrow {
            h1 { "Caretaker" }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            @if no_users {
                div.notice role="status" {
                    p { strong { "No one can log in yet: no users are configured." } }
                    p {
                        "Add a " code { "[[user]]" } " to the contracts file named by "
                        code { "[queue] contracts_file" } " in the collector's config, with a password hash from "
                        code { "echo 'the password' | caretaker-collector hash-password" }
                        " (README, \"Contracts and SLA\"). A running collector picks up changes to that file; "
                        "naming the file for the first time needs a restart."
                    }
                }
            }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label for="user" { "User" }
                input id="user" name="user" type="text" autocomplete="username" required value=(user);
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                button type="submit" { "Log in" }
            }
        }
    };
    super::pages::layout("log in", None, content)
}

async fn form(State(state): State<AppState>, Query(q): Query<NextQuery>) -> Html<String> {
    let no_users = state.contracts.get().users.is_empty();
    Html(form_markup(auth::safe_next(q.next.as_deref()), "", None, no_users).into_string())
}

/// Some hash to verify against when the user is unknown, so an unknown user
/// takes as long as a wrong password.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| auth::hash_password("decoy").unwrap_or_default())
}

/// The address a request came from; unknown (handler tests without a
/// socket) counts as one address.
fn source(ext: &Extensions) -> IpAddr {
    ext.get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// 429 with `Retry-After` (whole seconds, at least 1) and the form again.
fn too_many(next: &str, user: &str, retry_after: Duration, message: &str) -> Response {
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, page(next, user, Some(message))).into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    resp
}

fn locked_message(l: &Locked) -> String {
    let secs = l.remaining.as_secs().max(1);
    format!("too many failed logins; try again in {secs} s")
}

async fn login(State(state): State<AppState>, ext: Extensions, Form(f): Form<LoginForm>) -> Response {
    let next = auth::safe_next(f.next.as_deref()).to_string();
    let from = source(&ext);
    let guard = state.login.clone();
    // Checked before waiting for a slot and again after: logins queued for a
    // slot while a lock started must not all get their guess in.
    let refuse = |l: Locked| {
        state.metrics.login_refused("locked");
        tracing::debug!(user = %f.user, source = %from, scope = l.scope.as_str(), "login refused: locked");
        too_many(&next, &f.user, l.remaining, &locked_message(&l))
    };
    if let Some(l) = guard.locked(&f.user, from, guard.now()) {
        return refuse(l);
    }
    let Some(slot) = guard.slot().await else {
        state.metrics.login_refused("busy");
        tracing::warn!(user = %f.user, source = %from, "login refused: every password check slot is busy");
        return too_many(&next, &f.user, guard.busy_retry_after(), BUSY);
    };
    if let Some(l) = guard.locked(&f.user, from, guard.now()) {
        return refuse(l);
    }
    let contracts = state.contracts.get();
    let user = contracts.user(&f.user).cloned();
    let phc = user
        .as_ref()
        .map_or_else(|| decoy().to_string(), |u| u.password.clone());
    let password = f.password;
    // The slot goes with the check: a client hanging up mid-check does not
    // free it while argon2 still runs.
    let verified = tokio::task::spawn_blocking(move || {
        let ok = auth::verify_password(&phc, &password);
        drop(slot);
        ok
    })
    .await
    .unwrap_or(false);
    let user = match user {
        Some(u) if verified => u,
        _ => {
            state.metrics.login_failures.inc();
            tracing::info!(user = %f.user, source = %from, "login failed");
            for l in guard.failed(&f.user, from, guard.now()) {
                tracing::warn!(
                    user = %f.user,
                    source = %from,
                    scope = l.scope.as_str(),
                    lock_secs = l.remaining.as_secs(),
                    "login locked after repeated failures"
                );
            }
            let no_users = contracts.users.is_empty();
            let form = form_markup(&next, &f.user, Some(FAILED), no_users);
            return (StatusCode::UNAUTHORIZED, Html(form.into_string())).into_response();
        }
    };
    guard.succeeded(&user.name);
    let id = match crate::sessions::create(&state, &user, caretaker_shared::now_ms()).await {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    tracing::info!(user = %user.name, role = user.role.as_str(), source = %from, "logged in");
    let cookie = format!("{SESSION_COOKIE}={id}; HttpOnly; Secure; SameSite=Strict; Path=/");
    with_cookie(Redirect::to(&next), &cookie)
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<LogoutForm>) -> Response {
    if let Some(id) = auth::cookie(&headers, SESSION_COOKIE) {
        let session = match crate::sessions::resolve(&state, id, caretaker_shared::now_ms()).await {
            Ok(s) => s,
            Err(e) => return ApiError::from(e).into_response(),
        };
        // A live session ends only with its own CSRF token (a forged form
        // cannot log anyone out); an ended one needs nothing.
        if let Some((_, info)) = session {
            if !auth::ct_eq(info.csrf.as_bytes(), f.csrf.as_bytes()) {
                return (
                    StatusCode::FORBIDDEN,
                    "the form is stale or forged; reload the page and try again\n",
                )
                    .into_response();
            }
            if let Err(e) = crate::sessions::end(&state, id).await {
                return ApiError::from(e).into_response();
            }
        }
    }
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0");
    with_cookie(Redirect::to("/login"), &cookie)
}

fn with_cookie(redirect: Redirect, cookie: &str) -> Response {
    let mut resp = redirect.into_response();
    match HeaderValue::from_str(cookie) {
        Ok(v) => {
            resp.headers_mut().insert(header::SET_COOKIE, v);
            resp
        }
        Err(e) => super::error::ApiError::Internal(e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::auth::Role;
    use crate::contracts::{Contracts, Customer, User};
    use crate::http::testing::{self, Resp, send};

    const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

    fn users(password: &str) -> Contracts {
        let phc = auth::hash_password(password).unwrap();
        Contracts {
            customers: vec![Customer {
                name: "acme".into(),
                sites: vec![],
            }],
            users: vec![
                User {
                    name: "mia".into(),
                    role: Role::Manager,
                    customer: None,
                    password: phc.clone(),
                    tokens: vec![],
                    time_zone: None,
                },
                User {
                    name: "carol".into(),
                    role: Role::Customer,
                    customer: Some("acme".into()),
                    password: phc,
                    tokens: vec![],
                    time_zone: None,
                },
            ],
            ..Contracts::default()
        }
    }

    fn session_rows(state: &AppState) -> i64 {
        use crate::store::sessions::WebSessions;
        crate::http::testing::read(state, |c| c.session_count().unwrap())
    }

    fn session_id(r: &Resp) -> String {
        let c = r.headers.get("set-cookie").unwrap().to_str().unwrap();
        assert!(c.contains("HttpOnly; Secure; SameSite=Strict; Path=/"), "{c}");
        c.strip_prefix("caretaker_session=")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn the_login_page_says_when_no_users_are_configured_and_how_to_add_one() {
        let dir = tempfile::tempdir().unwrap();
        let state = testing::state(&dir).await;
        let notice = "No one can log in yet: no users are configured.";

        let r = send(&state, "GET", "/login", &[], "").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body.contains(notice), "{}", r.body);
        assert!(r.body.contains("[queue] contracts_file") && r.body.contains("hash-password"));
        let r = send(&state, "POST", "/login", &[FORM], "user=anyone&password=x").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.body.contains(notice), "{}", r.body);

        state.contracts.set(users("s3cret pass"));
        let r = send(&state, "GET", "/login", &[], "").await;
        assert!(!r.body.contains(notice), "{}", r.body);
        let r = send(&state, "POST", "/login", &[FORM], "user=mia&password=wrong").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(!r.body.contains(notice), "{}", r.body);
    }

    #[tokio::test]
    async fn login_session_api_and_logout() {
        let dir = tempfile::tempdir().unwrap();
        let state = testing::state(&dir).await;
        state.contracts.set(users("s3cret pass"));

        let r = send(&state, "GET", "/login?next=/cases", &[], "").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            r.body.contains("name=\"password\"") && r.body.contains("value=\"/cases\""),
            "{}",
            r.body
        );

        for body in ["user=mia&password=wrong", "user=nobody&password=s3cret+pass"] {
            let r = send(&state, "POST", "/login", &[FORM], body).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{body}");
            assert!(r.body.contains(FAILED), "{}", r.body);
            assert!(r.headers.get("set-cookie").is_none());
        }
        assert_eq!(session_rows(&state), 0);

        let r = send(&state, "POST", "/login", &[FORM], "user=mia&password=s3cret+pass").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(r.headers["location"], "/queue");
        let id = session_id(&r);

        // An unsafe `next` falls back to the queue; a relative one is kept.
        let r = send(
            &state,
            "POST",
            "/login",
            &[FORM],
            "user=mia&password=s3cret+pass&next=%2F%2Fevil.example",
        )
        .await;
        assert_eq!(r.headers["location"], "/queue");
        let r = send(
            &state,
            "POST",
            "/login",
            &[FORM],
            "user=mia&password=s3cret+pass&next=%2Fassets",
        )
        .await;
        assert_eq!(r.headers["location"], "/assets");

        // The session cookie works on the API.
        let cookie = format!("caretaker_session={id}");
        let r = send(&state, "GET", "/api/v1/assets", &[("cookie", &cookie)], "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = send(
            &state,
            "GET",
            "/api/v1/assets",
            &[("cookie", "caretaker_session=forged")],
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);

        // page_principal: the session, or a redirect to the login page.
        let mut headers = HeaderMap::new();
        headers.insert("cookie", cookie.parse().unwrap());
        let uri: axum::http::Uri = "/cases?id=4".parse().unwrap();
        let (p, info) = auth::page_principal(&state, &headers, &uri).await.ok().unwrap();
        assert_eq!((p.name.as_str(), p.role), ("mia", Role::Manager));
        let redirect = auth::page_principal(&state, &HeaderMap::new(), &uri)
            .await
            .err()
            .unwrap()
            .into_response();
        assert_eq!(redirect.status(), StatusCode::SEE_OTHER);
        assert_eq!(redirect.headers()["location"], "/login?next=/cases%3Fid%3D4");

        // Logout needs the session's CSRF token.
        let r = send(&state, "POST", "/logout", &[FORM, ("cookie", &cookie)], "csrf=forged").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let body = format!("csrf={}", info.csrf);
        let r = send(&state, "POST", "/logout", &[FORM, ("cookie", &cookie)], &body).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(r.headers["location"], "/login");
        let r = send(&state, "GET", "/api/v1/assets", &[("cookie", &cookie)], "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn a_user_removed_from_the_file_loses_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let state = testing::state(&dir).await;
        state.contracts.set(users("pw"));
        let r = send(&state, "POST", "/login", &[FORM], "user=carol&password=pw").await;
        let cookie = format!("caretaker_session={}", session_id(&r));
        let r = send(&state, "GET", "/api/v1/assets", &[("cookie", &cookie)], "").await;
        assert_eq!(r.status, StatusCode::OK);
        let mut c = users("pw");
        c.users.retain(|u| u.name != "carol");
        state.contracts.set(c);
        let r = send(&state, "GET", "/api/v1/assets", &[("cookie", &cookie)], "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }

    /// A login from `source`: status, `Retry-After`, whether a cookie was set.
    async fn login_from(state: &AppState, source: [u8; 4], body: &str) -> (StatusCode, Option<u64>, bool) {
        use axum::body::Body;
        use tower::ServiceExt;
        let mut req = axum::http::Request::post("/login")
            .header(FORM.0, FORM.1)
            .body(Body::from(body.to_string()))
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((source, 40_000))));
        let resp = crate::http::app(state.clone()).oneshot(req).await.unwrap();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        (resp.status(), retry, resp.headers().contains_key("set-cookie"))
    }

    fn with_login(state: &mut AppState, cfg: crate::config::LoginConfig) {
        state.login = std::sync::Arc::new(crate::login_guard::LoginGuard::new(&cfg));
    }

    fn counter(state: &AppState, line: &str) -> u64 {
        let text = state.metrics.render().unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(line)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {line} in\n{text}"))
    }

    #[tokio::test]
    async fn a_login_flood_is_locked_the_right_password_refused_and_accepted_after_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = testing::state(&dir).await;
        state.contracts.set(users("right pw"));
        with_login(
            &mut state,
            crate::config::LoginConfig {
                user_failures_before_lock: 5,
                source_failures_before_lock: 1000,
                lock_secs: 60,
                ..Default::default()
            },
        );
        const ATTACKER: [u8; 4] = [192, 0, 2, 66];
        let mut statuses = Vec::new();
        for i in 0..30 {
            let (status, retry, cookie) = login_from(&state, ATTACKER, &format!("user=mia&password=guess{i}")).await;
            assert!(!cookie);
            if status == StatusCode::TOO_MANY_REQUESTS {
                assert!(retry.is_some_and(|s| (1..=60).contains(&s)), "{retry:?}");
            }
            statuses.push(status.as_u16());
        }
        let expected: Vec<u16> = [401; 5].into_iter().chain([429; 25]).collect();
        assert_eq!(statuses, expected);
        assert_eq!(
            counter(&state, "caretaker_login_failures_total"),
            5,
            "only 5 passwords checked"
        );
        assert_eq!(counter(&state, "caretaker_login_refused_total{reason=\"locked\"}"), 25);
        // The user is locked from everywhere, with the right password too;
        // another user is not.
        for source in [ATTACKER, [198, 51, 100, 7]] {
            let (status, _, cookie) = login_from(&state, source, "user=mia&password=right+pw").await;
            assert_eq!((status, cookie), (StatusCode::TOO_MANY_REQUESTS, false));
        }
        let (status, _, cookie) = login_from(&state, ATTACKER, "user=carol&password=right+pw").await;
        assert_eq!((status, cookie), (StatusCode::SEE_OTHER, true));

        // After the lock, the right password is accepted (and clears the count).
        state.login.advance(std::time::Duration::from_secs(61));
        let (status, _, cookie) = login_from(&state, ATTACKER, "user=mia&password=right+pw").await;
        assert_eq!((status, cookie), (StatusCode::SEE_OTHER, true));
        let (status, _, _) = login_from(&state, ATTACKER, "user=mia&password=wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn a_flood_of_user_names_from_one_source_locks_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = testing::state(&dir).await;
        state.contracts.set(users("right pw"));
        with_login(
            &mut state,
            crate::config::LoginConfig {
                source_failures_before_lock: 4,
                ..Default::default()
            },
        );
        for i in 0..4 {
            let (status, _, _) = login_from(&state, [192, 0, 2, 1], &format!("user=u{i}&password=x")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{i}");
        }
        let (status, retry, _) = login_from(&state, [192, 0, 2, 1], "user=mia&password=right+pw").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry, Some(60));
        let (status, _, cookie) = login_from(&state, [192, 0, 2, 2], "user=mia&password=right+pw").await;
        assert_eq!((status, cookie), (StatusCode::SEE_OTHER, true));
    }

    #[tokio::test]
    async fn with_every_password_check_slot_taken_a_login_gets_429_without_a_check() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = testing::state(&dir).await;
        state.contracts.set(users("right pw"));
        with_login(
            &mut state,
            crate::config::LoginConfig {
                max_concurrent_password_checks: 2,
                password_check_wait_secs: 0,
                ..Default::default()
            },
        );
        let held = state.login.semaphore().acquire_many_owned(2).await.unwrap();
        let r = send(&state, "POST", "/login", &[FORM], "user=mia&password=right+pw").await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers["retry-after"], "1");
        assert!(r.body.contains(BUSY), "{}", r.body);
        assert!(r.headers.get("set-cookie").is_none());
        assert_eq!(counter(&state, "caretaker_login_refused_total{reason=\"busy\"}"), 1);
        assert_eq!(counter(&state, "caretaker_login_failures_total"), 0);
        drop(held);
        let r = send(&state, "POST", "/login", &[FORM], "user=mia&password=right+pw").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_logins_do_not_all_run_argon2_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = testing::state(&dir).await;
        state.contracts.set(users("right pw"));
        with_login(
            &mut state,
            crate::config::LoginConfig {
                user_failures_before_lock: 1000,
                source_failures_before_lock: 1000,
                max_concurrent_password_checks: 2,
                password_check_wait_secs: 120,
                ..Default::default()
            },
        );
        let logins: Vec<_> = (0..8)
            .map(|i| {
                let state = state.clone();
                tokio::spawn(async move {
                    send(
                        &state,
                        "POST",
                        "/login",
                        &[FORM],
                        &format!("user=mia&password=wrong{i}"),
                    )
                    .await
                    .status
                })
            })
            .collect();
        for l in logins {
            assert_eq!(l.await.unwrap(), StatusCode::UNAUTHORIZED);
        }
        // Every check ran, never more than two at once.
        assert_eq!(counter(&state, "caretaker_login_failures_total"), 8);
        let peak = state.login.peak_checks();
        assert!((1..=2).contains(&peak), "{peak} password checks ran at once");
    }

    #[tokio::test]
    async fn a_session_outlives_a_restart_from_the_same_store() {
        let dir = tempfile::tempdir().unwrap();
        let contracts = users("pw");
        let state = testing::state(&dir).await;
        state.contracts.set(contracts.clone());
        let r = send(&state, "POST", "/login", &[FORM], "user=mia&password=pw").await;
        let cookie = format!("caretaker_session={}", session_id(&r));
        // A new collector state on the same store: nothing in memory survives.
        let state = testing::restarted(state).await;
        state.contracts.set(contracts);
        let r = send(&state, "GET", "/api/v1/assets", &[("cookie", &cookie)], "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
}
