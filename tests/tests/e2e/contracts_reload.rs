//! The contracts file truncated while the collector runs, as an editor does
//! mid-save: the contracts and users in force stay (users still log in),
//! and a case opened while no contract covered its host gets the contract
//! that a later edit adds.

use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{Agent, Collector, eventually, wait_for_host};

const PASSWORD: &str = "correct horse battery";
const MIA_TOKEN: &str = "mia-e2e-token-0123456789";

/// The file in force at start: another customer's contract and a manager.
fn first_file(phc: &str) -> String {
    format!(
        r#"
[[customer]]
name = "other"

[[contract]]
name = "other-gold"
customer = "other"
covers = {{ labels = {{ customer = "other" }} }}
hours = "7x24"
time_zone = "UTC"
response = {{ critical = "1h" }}
resolution = {{ critical = "8h" }}

[[user]]
name = "mia"
role = "manager"
password = "{phc}"
tokens = ["sha256:{token}"]
"#,
        token = caretaker_collector::auth::token_hash(MIA_TOKEN),
    )
}

/// The file as restored, now with a contract for the agent's customer.
fn with_acme(phc: &str) -> String {
    first_file(phc)
        + r#"
[[customer]]
name = "acme"
sites = ["hq"]

[[contract]]
name = "acme-gold"
customer = "acme"
covers = { labels = { customer = "acme" } }
hours = "7x24"
time_zone = "UTC"
response = { critical = "1h", major = "4h" }
resolution = { critical = "8h", major = "2d" }
"#
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contracts_file_truncated_mid_save_keeps_users_and_the_case_gets_its_contract_later() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let phc = caretaker_collector::auth::hash_password(PASSWORD).unwrap_or_else(|e| panic!("{e}"));
    let file = d.join("contracts.toml");
    std::fs::write(&file, first_file(&phc)).unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start_with_config(
        d,
        &format!(
            "[queue]\ncontracts_file = \"{}\"\n[detect]\ntick_secs = 1\n",
            file.display()
        ),
    )
    .await;
    let agent = Agent::start(d, &c, 1, "");
    wait_for_host(&c, &agent).await;

    // The editor truncates the file before writing it again.
    std::fs::write(&file, "").unwrap_or_else(|e| panic!("{e}"));
    eventually("the truncated file refused", Duration::from_secs(20), || async {
        c.metric_value("caretaker_contract_file_errors_total")
            .await
            .filter(|n| *n >= 1.0)
    })
    .await;
    // Users still log in, by password and by token.
    let login = c
        .client
        .post(format!("{}/login", c.url()))
        .form(&[("user", "mia"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(login.status(), reqwest::StatusCode::UNAUTHORIZED, "mia was locked out");
    let cases = c
        .client
        .get(format!("{}/api/v1/cases", c.url()))
        .bearer_auth(MIA_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cases.status(), reqwest::StatusCode::OK);

    // Meanwhile a fault is reported on a host no contract in force covers.
    let (code, v) = c
        .api_post(
            "/api/v1/cases",
            &json!({"asset": "e2e-host", "title": "Backups fail", "severity": "critical"}),
        )
        .await;
    assert_eq!(code, reqwest::StatusCode::CREATED, "{v}");
    let id = v["id"].as_i64().unwrap_or_else(|| panic!("{v}"));
    let url = format!("/api/v1/cases/{id}");
    let case = c.api(&url).await;
    assert!(case["queue"]["meta"]["contract"].is_null(), "{case}");
    assert_eq!(case["queue"]["meta"]["out_of_scope"], true, "{case}");

    // The file is written back, with a contract for the host's customer.
    std::fs::write(&file, with_acme(&phc)).unwrap_or_else(|e| panic!("{e}"));
    let case: Value = eventually("the case under the new contract", Duration::from_secs(20), || async {
        let v = c.api(&url).await;
        (v["queue"]["meta"]["contract"] == "acme-gold").then_some(v)
    })
    .await;
    assert_eq!(case["queue"]["sla"]["response"]["target_ms"], 3_600_000, "{case}");
    let log = case["log"].as_array().cloned().unwrap_or_default();
    assert!(
        log.iter().any(|e| e["comment"]
            .as_str()
            .is_some_and(|t| t.contains("matched when the contracts changed"))),
        "{case}"
    );
}
