//! The served OpenAPI document is the API's contract: schemathesis (PyPI)
//! generates requests from it, valid and invalid, runs them against a real
//! collector with a real agent reporting to it, and checks every answer
//! against the document (`--checks all`: status codes, content types,
//! response schemas, that invalid input is refused and valid input accepted,
//! and the stateful phase following the document's links where ids flow).
//! Needs `CARETAKER_TEST_SCHEMATHESIS` (the `st` program; `.ci/run` installs
//! it); when it is set, a schemathesis that cannot run fails the test.

use std::process::Command;

use serde_json::json;

use crate::util::{Agent, Collector, wait_for_host};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_mismatch_between_the_document_and_the_server() {
    let st = match std::env::var("CARETAKER_TEST_SCHEMATHESIS") {
        Ok(v) if !v.is_empty() => v,
        _ => {
            eprintln!("CARETAKER_TEST_SCHEMATHESIS is not set: skipping the API contract test");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let collector = Collector::start(dir.path()).await;
    let agent = Agent::start(dir.path(), &collector, 2, "");
    wait_for_host(&collector, &agent).await;
    // Something behind the ids the document's links carry: a maintenance
    // window, a spare, a case.
    let (status, _) = collector
        .api_post(
            "/api/v1/maintenance",
            &json!({"customer": "acme", "host": "e2e-host", "starts_at": "2030-01-01T00:00:00Z",
                    "ends_at": "2030-01-02T00:00:00Z", "reason": "contract test"}),
        )
        .await;
    assert!(status.is_success(), "maintenance window: {status}");
    let (status, body) = collector
        .api_post(
            "/api/v1/cases",
            &json!({"asset": "e2e-host", "title": "contract test", "severity": "warning"}),
        )
        .await;
    assert!(status.is_success(), "fault report: {status} {body}");

    let report = dir.path().join("schemathesis");
    // The rules the document cannot state (two fields, or a field and the
    // clock) are listed, each with its reason, in `tests/schemathesis.toml`.
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis.toml");
    let out = Command::new(&st)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", collector.url()))
        .arg("--url")
        .arg(collector.url())
        .args(["--checks", "all"])
        .args(["--max-examples", "25"])
        .args(["--seed", "1"])
        .args(["--workers", "2"])
        // A pooled keep-alive connection the collector closed as idle is
        // reopened, as any HTTP client does.
        .args(["--request-retries", "2"])
        .args(["--generation-database", "none"])
        .args(["--no-color", "--output-truncate", "false"])
        .arg("--tls-verify")
        .arg(collector.data_dir().join("ca.pem"))
        .arg("--header")
        .arg(format!("Authorization: Bearer {}", collector.api_token))
        .arg("--report-dir")
        .arg(&report)
        // Its caches go to the temporary directory, not the checkout.
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{st}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found mismatches:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
