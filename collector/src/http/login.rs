//! Logging in to the web pages:
//!
//! - `GET /login` shows the form (user, password).
//! - `POST /login` (form-encoded `user`, `password`, optional `next`) checks
//!   the password against the user's argon2id hash in the contracts file; on
//!   success it sets the session cookie and answers 303 to `next` (a path on
//!   this site) or `/queue`; on failure 401 with the form again.
//! - `POST /logout` (form-encoded `csrf`) ends the session and answers 303
//!   to `/login`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;

use super::AppState;
use crate::auth::{self, SESSION_COOKIE};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(form).post(login))
        .route("/logout", post(logout))
}

const FAILED: &str = "unknown user or wrong password";

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
    Html(form_markup(next, user, error).into_string())
}

fn form_markup(next: &str, user: &str, error: Option<&str>) -> Markup {
    let content = html! {
        div.narrow {
            h1 { "Caretaker" }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
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

async fn form(Query(q): Query<NextQuery>) -> Html<String> {
    page(auth::safe_next(q.next.as_deref()), "", None)
}

/// Some hash to verify against when the user is unknown, so an unknown user
/// takes as long as a wrong password.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| auth::hash_password("decoy").unwrap_or_default())
}

async fn login(State(state): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    let next = auth::safe_next(f.next.as_deref()).to_string();
    let contracts = state.contracts.get();
    let user = contracts.user(&f.user).cloned();
    let phc = user
        .as_ref()
        .map_or_else(|| decoy().to_string(), |u| u.password.clone());
    let password = f.password;
    let verified = tokio::task::spawn_blocking(move || auth::verify_password(&phc, &password))
        .await
        .unwrap_or(false);
    let user = match user {
        Some(u) if verified => u,
        _ => {
            tracing::info!(user = %f.user, "login failed");
            return (StatusCode::UNAUTHORIZED, page(&next, &f.user, Some(FAILED))).into_response();
        }
    };
    let id = match state.sessions.create(&user, caretaker_shared::now_ms()) {
        Ok(id) => id,
        Err(e) => return super::error::ApiError::Internal(e.to_string()).into_response(),
    };
    tracing::info!(user = %user.name, role = user.role.as_str(), "logged in");
    let cookie = format!("{SESSION_COOKIE}={id}; HttpOnly; Secure; SameSite=Strict; Path=/");
    with_cookie(Redirect::to(&next), &cookie)
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<LogoutForm>) -> Response {
    if let Some(id) = auth::cookie(&headers, SESSION_COOKIE) {
        if !state.sessions.csrf_ok(id, &f.csrf) {
            return (
                StatusCode::FORBIDDEN,
                "the form is stale or forged; reload the page and try again\n",
            )
                .into_response();
        }
        state.sessions.remove(id);
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
                },
                User {
                    name: "carol".into(),
                    role: Role::Customer,
                    customer: Some("acme".into()),
                    password: phc,
                    tokens: vec![],
                },
            ],
            ..Contracts::default()
        }
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
        assert!(state.sessions.is_empty());

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
        let (p, info) = auth::page_principal(&state, &headers, &uri).unwrap();
        assert_eq!((p.name.as_str(), p.role), ("mia", Role::Manager));
        let redirect = auth::page_principal(&state, &HeaderMap::new(), &uri)
            .unwrap_err()
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
}
