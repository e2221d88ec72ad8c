//! The collector's web and scrape authentication on the real binary: an
//! anonymous scrape of `/metrics` is refused; a login flood from one address
//! is locked (the right password refused while locked), logged and counted;
//! a session outlives a restart of the collector; a cookie-authenticated API
//! write without the CSRF token or a JSON body from the collector's own
//! origin is refused.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::{Collector, browserless, login};

const PASSWORD: &str = "correct horse battery";

/// A contracts file with customer acme and the engineer `ana`.
fn contracts(phc: &str) -> String {
    format!(
        r#"
[[customer]]
name = "acme"
sites = ["hq"]

[[engineer]]
name = "ana"
skills = ["hardware"]
sites = ["hq"]
level = "L1"

[[user]]
name = "ana"
role = "engineer"
password = "{phc}"
"#
    )
}

/// A collector with `ana` able to log in and `extra` in its config.
async fn collector(dir: &Path, extra: &str) -> Collector {
    let phc = caretaker_collector::auth::hash_password(PASSWORD).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("contracts.toml");
    std::fs::write(&file, contracts(&phc)).unwrap_or_else(|e| panic!("{e}"));
    let config = format!("[queue]\ncontracts_file = \"{}\"\n{extra}", file.display());
    Collector::start_with_config(dir, &config).await
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("collector.log")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_scrape_of_metrics_is_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start(dir.path()).await;
    assert_eq!(c.metrics_token.len(), 64, "init writes metrics-token");
    for token in [None, Some("wrong"), Some(c.api_token.as_str())] {
        let mut req = c.client.get(format!("{}/metrics", c.url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(v["error"], "unauthorized", "{v}");
        assert!(v["reason"].as_str().is_some_and(|r| r.contains("token")), "{v}");
    }
    assert!(c.metrics().await.contains("caretaker_hosts_known"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_from_one_address_is_locked_and_the_right_password_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Per user name a higher bar than per address: this flood is stopped by
    // the address's lock; the lock is long so nothing here can outlast it.
    let c = collector(
        dir.path(),
        "[login]\nuser_failures_before_lock = 1000\nsource_failures_before_lock = 5\nlock_secs = 3600\nmax_lock_secs = 7200\n",
    )
    .await;
    let client = browserless(&c);
    let mut statuses = Vec::new();
    for i in 0..30 {
        let (status, retry, cookie) = login(&client, &c, "ana", &format!("guess {i}")).await;
        assert!(cookie.is_none());
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(retry.is_some_and(|s| s > 3000 && s <= 3600), "Retry-After {retry:?}");
        }
        statuses.push(status.as_u16());
    }
    let expected: Vec<u16> = [401; 5].into_iter().chain([429; 25]).collect();
    assert_eq!(statuses, expected, "5 guesses checked, the rest refused unchecked");
    // Locked: the right password is refused too, for any user name.
    for user in ["ana", "someone"] {
        let (status, _, cookie) = login(&client, &c, user, PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{user}");
        assert!(cookie.is_none());
    }
    let m = c.metrics().await;
    assert!(m.contains("caretaker_login_failures_total 5\n"), "{m}");
    assert!(
        m.contains("caretaker_login_refused_total{reason=\"locked\"} 27\n"),
        "{m}"
    );
    let log = log(dir.path());
    let locked = log
        .lines()
        .find(|l| l.contains("login locked after repeated failures"))
        .unwrap_or_else(|| panic!("no lock logged:\n{log}"));
    assert!(
        locked.contains("WARN") && locked.contains("user=ana") && locked.contains("source=127.0.0.1"),
        "{locked}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_outlives_a_restart_of_the_collector_and_ends_at_logout() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = collector(dir.path(), "").await;
    let client = browserless(&c);
    let (status, _, cookie) = login(&client, &c, "ana", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.unwrap_or_else(|| panic!("no session cookie"));
    let base = c.url();
    let get = |path: &'static str| {
        let client = client.clone();
        let url = format!("{base}{path}");
        let cookie = cookie.clone();
        async move {
            let r = client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let status = r.status();
            (status, r.text().await.unwrap_or_default())
        }
    };
    assert_eq!(get("/api/v1/assets").await.0, StatusCode::OK);

    c.stop();
    c.spawn().await;
    let (status, body) = get("/api/v1/assets").await;
    assert_eq!(status, StatusCode::OK, "the session is lost on restart: {body}");
    let (status, page) = get("/queue").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Logged in as"), "{page}");
    // The store holds the session by the hash of its id, never the id.
    let id = cookie.trim_start_matches("caretaker_session=");
    let db = std::fs::read(c.data_dir().join("caretaker.db")).unwrap_or_default();
    assert!(
        !db.windows(id.len()).any(|w| w == id.as_bytes()),
        "the session id is in the store"
    );

    // Logout (with the page's CSRF token) ends it, on every restart after.
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no csrf field: {page}"))
        .to_string();
    let resp = client
        .post(format!("{}/logout", c.url()))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    c.stop();
    c.spawn().await;
    assert_eq!(get("/api/v1/assets").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_write_without_csrf_proof_is_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = collector(dir.path(), "").await;
    let client = browserless(&c);
    let (_, _, cookie) = login(&client, &c, "ana", PASSWORD).await;
    let cookie = cookie.unwrap_or_else(|| panic!("no session cookie"));
    let window = |n: u32| {
        json!({"customer": "acme", "starts_at": "2030-01-01T00:00:00Z",
            "ends_at": "2030-01-01T02:00:00Z", "reason": format!("forged {n}")})
        .to_string()
    };
    let own = c.url();
    let post = |content_type: &'static str, origin: Option<String>, body: String| {
        let mut req = client
            .post(format!("{}/api/v1/maintenance", c.url()))
            .header("cookie", &cookie)
            .header("content-type", content_type)
            .body(body);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        async move { req.send().await.unwrap_or_else(|e| panic!("{e}")) }
    };
    let foreign = format!("https://127.0.0.1:{}", c.port.wrapping_add(1));
    for (n, (ct, origin)) in [
        ("text/plain", Some(foreign.clone())),
        ("application/x-www-form-urlencoded", Some(foreign.clone())),
        ("application/json", Some(foreign.clone())),
        ("application/json", None),
    ]
    .into_iter()
    .enumerate()
    {
        let resp = post(ct, origin.clone(), window(n as u32)).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{ct} from {origin:?}");
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(v["error"], "forbidden", "{v}");
    }
    let v = c.api("/api/v1/maintenance?all=true").await;
    assert_eq!(v["windows"].as_array().map(Vec::len), Some(0), "{v}");
    let resp = post("application/json", Some(own), window(99)).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    // A bearer API client is unaffected.
    let (status, _) = c
        .api_post(
            "/api/v1/maintenance",
            &serde_json::from_str(&window(100)).unwrap_or(Value::Null),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}
