//! What the API's in-process tests share: a collector state on a temporary
//! store, and a request helper.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::AppState;
use crate::config::Config;
use crate::fleet::Fleet;
use crate::metrics::Metrics;
use crate::pki::hash_secret;
use crate::store;
use crate::store::agents::{Agents, NewAgent};
use crate::store::sql::Sql;
use crate::store::testing::{TestStore, apart};
use crate::writer::Writer;

pub const API_TOKEN: &str = "api-token-for-tests";

/// A collector state for a test, on the store the tests run on
/// ([`TestStore`]), which lives as long as it. It stands for its
/// [`AppState`].
pub struct TestState {
    // Dropped first: the writer and the readers let go of the store before
    // a PostgreSQL database of its own is dropped.
    pub state: AppState,
    pub _store: TestStore,
}

impl std::ops::Deref for TestState {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.state
    }
}

impl std::ops::DerefMut for TestState {
    fn deref_mut(&mut self) -> &mut AppState {
        &mut self.state
    }
}

pub async fn state(dir: &tempfile::TempDir) -> TestState {
    state_with(dir, |_| {}).await
}

/// [`state`] with `setup` run on the store before the writer starts.
pub async fn state_with(dir: &tempfile::TempDir, setup: impl FnOnce(&dyn Sql) + Send) -> TestState {
    state_on(TestStore::new(dir.path()), setup)
}

/// A new collector state on the store of `previous`, which ends first:
/// what a restart keeps is what the store holds.
pub async fn restarted(previous: TestState) -> TestState {
    let TestState { state, _store: store } = previous;
    drop(state);
    state_on(store, |_| {})
}

fn state_on(store: TestStore, setup: impl FnOnce(&dyn Sql) + Send) -> TestState {
    let conn = store.open();
    let fleet = Arc::new(Fleet::default());
    let (conn, setup) = apart(|| {
        setup(&conn);
        let done = conn
            .add_api_token(&hash_secret(API_TOKEN), "tests", 0)
            .map_err(store::StoreError::from)
            .and_then(|_| crate::cases::hold::mark_known(&conn, "db01", None, &[], 0))
            .and_then(|_| crate::cases::hold::mark_known(&conn, "web01", None, &[], 0))
            .and_then(|_| crate::fleet::load_fleet(&conn, &fleet));
        (conn, done)
    });
    assert!(setup.is_ok(), "{setup:?}");
    let reader = store.readers(2);
    let (writer, _thread) = Writer::start(conn, fleet.clone()).unwrap_or_else(|e| panic!("{e}"));
    TestState {
        state: app_state(fleet, writer, reader),
        _store: store,
    }
}

/// A collector state around a started writer and a read pool, with the
/// default configuration and no detection engine.
pub fn app_state(fleet: Arc<Fleet>, writer: Writer, reader: store::Readers) -> AppState {
    let metrics = Arc::new(Metrics::new(fleet.clone(), 3).unwrap_or_else(|e| panic!("{e}")));
    AppState {
        fleet,
        writer,
        metrics,
        config: Arc::new(Config::default()),
        reader,
        detect: None,
        contracts: crate::contracts::Shared::default(),
        login: Default::default(),
    }
}

/// `f` on a connection of `state`'s read pool, apart from the async runtime
/// (see [`apart`]): for a test that looks into the store itself.
pub fn read<T: Send>(state: &AppState, f: impl FnOnce(&dyn Sql) -> T + Send) -> T {
    apart(|| {
        f(&*state
            .reader
            .try_lease()
            .unwrap_or_else(|| panic!("no free read connection")))
    })
}

pub async fn get(state: &AppState, uri: &str) -> (StatusCode, Value) {
    call(state, "GET", uri, None).await
}

pub async fn call(state: &AppState, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    call_raw(state, method, uri, body.map(|b| b.to_string()).as_deref()).await
}

/// A request with a body as given (malformed JSON included).
pub async fn call_raw(state: &AppState, method: &str, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {API_TOKEN}"))
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap_or_else(|e| panic!("{e}"));
    let resp = super::app(state.clone())
        .oneshot(req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A response as text, with its headers.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// Any request, with the headers given (no token unless given).
pub async fn send(state: &AppState, method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = crate::http::app(state.clone())
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Users for role tests, with their API tokens: `carol` (customer acme),
/// `gus` (customer globex), `ana` (engineer). Their passwords are not
/// usable; tests that log in set their own.
pub fn set_users(state: &AppState) {
    use crate::auth::{Role, token_hash};
    use crate::contracts::{Contracts, Customer, User};
    let user = |name: &str, role, customer: Option<&str>| User {
        name: name.into(),
        role,
        customer: customer.map(Into::into),
        password: "no password".into(),
        tokens: vec![token_hash(&format!("{name}-token"))],
        time_zone: None,
    };
    let customer = |name: &str| Customer {
        name: name.into(),
        sites: vec![],
    };
    state.contracts.set(Contracts {
        customers: vec![customer("acme"), customer("globex")],
        users: vec![
            user("carol", Role::Customer, Some("acme")),
            user("gus", Role::Customer, Some("globex")),
            user("ana", Role::Engineer, None),
        ],
        ..Contracts::default()
    });
}

/// A contracts file for queue and page tests: customers `acme` (site hq)
/// and `globex`, a 7×24 contract for each (by the `customer` label; acme's
/// clock pauses while awaiting the customer),
/// engineers `ana` (L1, hardware and os) and `bo` (L2, hardware), users
/// `ana` (engineer), `carol` (customer acme) and `gus` (customer globex),
/// each with the password hash `phc` and the API token `<name>-token`.
pub fn queue_contracts(phc: &str) -> String {
    use crate::auth::token_hash;
    let token = |n: &str| format!("sha256:{}", token_hash(&format!("{n}-token")));
    format!(
        r#"
[[customer]]
name = "acme"
sites = ["hq"]

[[customer]]
name = "globex"

[[contract]]
name = "acme-24"
customer = "acme"
covers = {{ labels = {{ customer = "acme" }} }}
hours = "7x24"
time_zone = "UTC"
response = {{ critical = "1h", major = "4h" }}
resolution = {{ critical = "8h", major = "2d" }}
pausing_holds = ["awaiting_customer"]

[[contract]]
name = "globex-24"
customer = "globex"
covers = {{ labels = {{ customer = "globex" }} }}
hours = "7x24"
time_zone = "UTC"
response = {{ major = "4h" }}

[[engineer]]
name = "ana"
skills = ["hardware", "os"]
sites = ["hq"]
level = "L1"

[[engineer]]
name = "bo"
skills = ["hardware"]
sites = ["hq"]
level = "L2"

[[user]]
name = "ana"
role = "engineer"
password = "{phc}"
tokens = ["{}"]

[[user]]
name = "carol"
role = "customer"
customer = "acme"
password = "{phc}"
tokens = ["{}"]

[[user]]
name = "gus"
role = "customer"
customer = "globex"
password = "{phc}"
tokens = ["{}"]
"#,
        token("ana"),
        token("carol"),
        token("gus")
    )
}

/// A state with hosts `db01` (customer acme) and `web01` (customer globex),
/// both at site hq, and the [`queue_contracts`] in force.
pub async fn queue_state(dir: &tempfile::TempDir, phc: &str) -> TestState {
    let s = state_with(dir, |conn| {
        for (host, customer) in [("db01", "acme"), ("web01", "globex")] {
            conn.insert_agent(&NewAgent {
                agent_id: host,
                credential_hash: &format!("h-{host}"),
                host,
                enrolled_at_ms: 0,
                customer: None,
                site: None,
                token_id: None,
                labels: &serde_json::json!({"customer": customer, "site": "hq"}).to_string(),
            })
            .unwrap();
        }
    })
    .await;
    let contracts = crate::contracts::parse_file(&queue_contracts(phc), std::path::Path::new("c.toml")).unwrap();
    s.contracts.set(contracts);
    s
}
