//! The collector's web and scrape authentication on the real binary: an
//! anonymous scrape of `/metrics` is refused.

use reqwest::StatusCode;
use serde_json::Value;

use crate::util::Collector;

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
