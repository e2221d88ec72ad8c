#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::auth::{hash_password, percent_encode};
use crate::http::AppState;
use crate::http::testing::{Resp, queue_state, send};

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

pub(super) async fn state(dir: &tempfile::TempDir) -> crate::http::testing::TestState {
    queue_state(dir, &hash_password("pw").unwrap()).await
}

/// A logged-in browser: its cookie and the CSRF token its pages carry.
pub(super) struct Browser {
    pub(super) cookie: String,
    csrf: String,
}

pub(super) async fn login(s: &AppState, user: &str) -> Browser {
    let r = send(s, "POST", "/login", &[FORM], &format!("user={user}&password=pw")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let set = r.headers["set-cookie"].to_str().unwrap();
    let cookie = set.split(';').next().unwrap().to_string();
    // Home: the queue for staff, the portal for a customer's user.
    let r = send(s, "GET", "/", &[("cookie", &cookie)], "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let home = r.headers["location"].to_str().unwrap().to_string();
    let r = send(s, "GET", &home, &[("cookie", &cookie)], "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let csrf = r
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    Browser { cookie, csrf }
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Browser {
    pub(super) async fn get(&self, s: &AppState, uri: &str) -> Resp {
        send(s, "GET", uri, &[("cookie", &self.cookie)], "").await
    }

    /// Posts the form with the session's CSRF token.
    pub(super) async fn post(&self, s: &AppState, uri: &str, pairs: &[(&str, &str)]) -> Resp {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(pairs);
        send(s, "POST", uri, &[FORM, ("cookie", &self.cookie)], &form(&all)).await
    }
}

pub(super) async fn report(s: &AppState, b: &Browser, asset: &str, title: &str) -> i64 {
    let r = b
        .post(
            s,
            "/faults",
            &[
                ("asset", asset),
                ("title", title),
                ("description", "from the test"),
                ("severity", "major"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let location = r.headers["location"].to_str().unwrap();
    location.strip_prefix("/cases/").unwrap().parse().unwrap()
}

/// The case as the API has it (engineer ana's token).
async fn api_case(s: &AppState, id: i64) -> Value {
    let r = send(
        s,
        "GET",
        &format!("/api/v1/cases/{id}"),
        &[("authorization", "Bearer ana-token")],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

#[tokio::test]
async fn without_a_session_pages_send_to_the_login() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    for (method, uri, want) in [
        ("GET", "/", "/login?next=/"),
        ("GET", "/portal", "/login?next=/portal"),
        ("GET", "/queue?status=new", "/login?next=/queue%3Fstatus%3Dnew"),
        ("GET", "/cases/1", "/login?next=/cases/1"),
        ("GET", "/assets/db01", "/login?next=/assets/db01"),
        ("GET", "/faults/new", "/login?next=/faults/new"),
        ("POST", "/cases/1", "/login?next=/cases/1"),
    ] {
        let r = send(
            &s,
            method,
            uri,
            &[FORM, ("cookie", "caretaker_session=forged")],
            "action=resume",
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(r.headers["location"].to_str().unwrap(), want);
    }
}

#[tokio::test]
async fn an_engineer_works_a_case_through_the_pages() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    // The fault form, and a report with a bad severity changes nothing.
    let r = ana.get(&s, "/faults/new?asset=db01").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("value=\"db01\""), "{}", r.body);
    let r = ana
        .post(
            &s,
            "/faults",
            &[("asset", "db01"), ("title", "Mail down"), ("severity", "dire")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("severity: &quot;dire&quot;"), "{}", r.body);
    let r = ana.post(&s, "/faults", &[("asset", "db01"), ("title", " ")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("title: must not be empty"), "{}", r.body);
    // A NUL in a field is refused by name, on every store (PostgreSQL text cannot hold one).
    let r = ana
        .post(&s, "/faults", &[("asset", "db01"), ("title", "Mail\u{0}down")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("title: holds a NUL character"), "{}", r.body);
    let r = ana.get(&s, "/queue").await;
    assert!(r.body.contains("No cases."), "{}", r.body);

    let id = report(&s, &ana, "db01", "Mail down").await;
    let r = ana.get(&s, "/queue").await;
    assert_eq!(r.status, StatusCode::OK);
    for want in [
        format!("href=\"/cases/{id}\""),
        "Mail down".to_string(),
        "href=\"/assets/db01\"".to_string(),
        "acme-24".to_string(),
        "Logged in as <strong>ana</strong> (engineer)".to_string(),
        "in 3h 59m".to_string(),
    ] {
        assert!(r.body.contains(&want), "{want}: {}", r.body);
    }
    // The filters: another status hides it; a bad severity is named.
    let r = ana.get(&s, "/queue?status=resolved&assignee=-").await;
    assert!(!r.body.contains("Mail down"), "{}", r.body);
    let r = ana.get(&s, "/queue?severity=dire").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("severity: &quot;dire&quot; is not a severity"),
        "{}",
        r.body
    );

    let case_uri = format!("/cases/{id}");
    let r = ana.get(&s, &case_uri).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains(&format!("Case #{id}: Mail down")), "{}", r.body);
    assert!(r.body.contains("name=\"action\" value=\"acknowledge\""), "{}", r.body);

    let r = ana.post(&s, &case_uri, &[("action", "acknowledge")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers["location"].to_str().unwrap(), case_uri);
    assert_eq!(api_case(&s, id).await["status"], "in_progress");

    // A resolve whose minutes do not parse, or whose report the queue
    // refuses: 400 naming the field, the case as it was.
    let resolve = |minutes: &'static str, mode: &'static str| {
        vec![
            ("action", "resolve"),
            ("mode", mode),
            ("symptom", "disk reallocating sectors"),
            ("work_done", "replaced the disk"),
            ("minutes", minutes),
            ("part_type", "disk"),
            ("slot", "/dev/sda"),
            ("old_model", "WDC WD40"),
            ("old_serial", "WD-OLD"),
            ("new_model", "WDC WD40"),
            ("new_serial", "WD-NEW"),
        ]
    };
    let r = ana.post(&s, &case_uri, &resolve("forty", "on_site")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("minutes: &quot;forty&quot;"), "{}", r.body);
    assert!(r.body.contains(&format!("Case #{id}")), "the page again: {}", r.body);
    let r = ana.post(&s, &case_uri, &resolve("40", "telepathy")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("report.mode"), "{}", r.body);
    let v = api_case(&s, id).await;
    assert_eq!(v["status"], "in_progress");
    assert_eq!(v["queue"]["service_reports"], json!([]));

    // Closing before resolving is refused with the reason.
    let r = ana.post(&s, &case_uri, &[("action", "close"), ("score", "4")]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("only a resolved case can be closed"), "{}", r.body);

    let r = ana.post(&s, &case_uri, &resolve("40", "on_site")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let v = api_case(&s, id).await;
    assert_eq!(v["status"], "resolved");
    let report = &v["queue"]["service_reports"][0];
    assert_eq!(
        (report["minutes"].as_i64(), report["engineer"].as_str()),
        (Some(40), Some("ana"))
    );
    assert_eq!(report["parts"][0]["new_serial"], "WD-NEW");

    let r = ana.get(&s, "/assets/db01").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("disk /dev/sda WDC WD40 WD-OLD → WDC WD40 WD-NEW"),
        "{}",
        r.body
    );
    assert!(r.body.contains(&format!("href=\"/cases/{id}\"")), "{}", r.body);
    assert!(r.body.contains("href=\"/faults/new?asset=db01\""), "{}", r.body);

    let r = ana
        .post(
            &s,
            &case_uri,
            &[("action", "close"), ("score", "5"), ("comment", "quick")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = ana.get(&s, &case_uri).await;
    for want in ["5/5: quick", "closed", "WD-OLD → WDC WD40 WD-NEW", "replaced the disk"] {
        assert!(r.body.contains(want), "{want}: {}", r.body);
    }
}

#[tokio::test]
async fn paused_sla_clock_shows_paused_not_a_huge_duration() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    let id = report(&s, &ana, "db01", "Mail down").await;
    // acme's contract pauses the clock while awaiting the customer.
    let r = ana
        .post(
            &s,
            &format!("/cases/{id}"),
            &[("action", "hold"), ("reason", "awaiting_customer")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = ana.get(&s, "/queue").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("<td>paused<small> (resolution)</small></td>"),
        "{}",
        r.body
    );
    assert!(
        !r.body.contains("response in ") && !r.body.contains("resolution in "),
        "no made-up deadline: {}",
        r.body
    );
    let r = ana.get(&s, &format!("/cases/{id}")).await;
    assert!(r.body.contains("paused"), "{}", r.body);
}

#[tokio::test]
async fn actions_name_their_bad_fields_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    let id = report(&s, &ana, "db01", "Disk noisy").await;
    let uri = format!("/cases/{id}");
    let before = api_case(&s, id).await;
    for (pairs, want) in [
        (
            vec![("action", "assign"), ("to", "zed")],
            "to: &quot;zed&quot; is not an engineer",
        ),
        (
            vec![("action", "escalate"), ("comment", "")],
            "comment: must not be empty",
        ),
        (
            vec![("action", "hold"), ("reason", "lunch")],
            "reason: &quot;lunch&quot;",
        ),
        (
            vec![("action", "comment"), ("comment", "  ")],
            "comment: must not be empty",
        ),
        (vec![("action", "teleport")], "action: &quot;teleport&quot;"),
    ] {
        let r = ana.post(&s, &uri, &pairs).await;
        // An engineer the contracts do not name is not found, like any
        // unknown name the API is given; the rest are bad fields.
        let status = if pairs.contains(&("to", "zed")) {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(r.status, status, "{pairs:?}");
        assert!(r.body.contains(want), "{want}: {}", r.body);
    }
    assert_eq!(api_case(&s, id).await["log"], before["log"]);
    // Forms that work: assign to bo, escalate, hold and resume, comment.
    for pairs in [
        vec![("action", "assign"), ("to", "bo")],
        vec![("action", "escalate"), ("to", ""), ("comment", "needs L2")],
        vec![("action", "hold"), ("reason", "awaiting_parts")],
        vec![("action", "resume")],
        vec![("action", "comment"), ("comment", "spare ordered")],
    ] {
        let r = ana.post(&s, &uri, &pairs).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{pairs:?}: {}", r.body);
    }
    let r = ana.get(&s, &uri).await;
    for want in [
        "needs L2",
        "spare ordered",
        "awaiting_parts",
        "<dd id=\"assignee\">bo</dd>",
    ] {
        assert!(r.body.contains(want), "{want}: {}", r.body);
    }
    let r = ana.get(&s, &format!("/cases/{}", id + 100)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = ana
        .post(&s, &format!("/cases/{}", id + 100), &[("action", "resume")])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// The part of a page inside the form of `action`.
fn form_of<'a>(body: &'a str, action: &str) -> &'a str {
    body.split(&format!("id=\"{action}-form\""))
        .nth(1)
        .and_then(|rest| rest.split("</form>").next())
        .unwrap_or_else(|| panic!("no {action} form: {body}"))
}

/// A case a rule opened on db01 two days ago whose signal cleared a day
/// later: recovered, and assigned by the rule.
async fn recovered_case(s: &AppState) -> i64 {
    use crate::cases::{IdentityKey, ItemKind, Policy, Severity, Signal, store as items};
    let contracts = s.contracts.get();
    let t0 = caretaker_shared::now_ms() - 2 * 86_400_000;
    let signal = move |firing, at_ms| Signal {
        event: None,
        key: IdentityKey {
            customer: "acme".into(),
            asset: "db01".into(),
            check: "disk_failing".into(),
            component: "/dev/sda".into(),
        },
        kind: ItemKind::Case,
        severity: Severity::Major,
        rule: "disk_failing".into(),
        firing,
        at_ms,
        evidence: json!({"summary": "Disk /dev/sda on db01 is failing"}),
    };
    let v = s
        .writer
        .run(move |conn| {
            let mark = items::log_high_water(conn)?;
            let id = items::apply_signal(conn, &signal(true, t0), &Policy::default())?.item_id();
            crate::queue::settle(conn, &contracts, mark, t0)?;
            items::apply_signal(conn, &signal(false, t0 + 86_400_000), &Policy::default())?;
            Ok(json!(id))
        })
        .await
        .unwrap();
    v.as_i64().unwrap()
}

#[tokio::test]
async fn refused_case_forms_come_back_filled_as_typed() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    let id = report(&s, &ana, "db01", "Disk noisy").await;
    let uri = format!("/cases/{id}");
    let r = ana.post(&s, &uri, &[("action", "acknowledge")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    // Resolve: a symptom typed, "forty" in Minutes.
    let resolve = |minutes: &'static str| {
        vec![
            ("action", "resolve"),
            ("mode", "remote"),
            ("symptom", "disk reallocating sectors"),
            ("work_done", "replaced the disk"),
            ("minutes", minutes),
            ("part_type", "disk"),
            ("slot", "/dev/sda"),
            ("old_model", "WDC WD40"),
            ("old_serial", "WD-OLD"),
            ("new_model", "WDC WD40"),
            ("new_serial", "WD-NEW"),
        ]
    };
    let r = ana.post(&s, &uri, &resolve("forty")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("minutes: &quot;forty&quot;"), "{}", r.body);
    let form = form_of(&r.body, "resolve");
    for want in [
        "<option value=\"remote\" selected>",
        "id=\"symptom\" value=\"disk reallocating sectors\"",
        ">replaced the disk</textarea>",
        "id=\"minutes\" value=\"forty\"",
        "id=\"part_type\" value=\"disk\"",
        "id=\"slot\" value=\"/dev/sda\"",
        "id=\"old_serial\" value=\"WD-OLD\"",
        "id=\"new_serial\" value=\"WD-NEW\"",
    ] {
        assert!(form.contains(want), "{want}: {form}");
    }
    // Only the refused form is filled: the others stay blank.
    assert!(
        form_of(&r.body, "comment").contains("id=\"comment-text\" required></textarea>"),
        "{}",
        r.body
    );

    // Escalate: to L2 again once there.
    let r = ana
        .post(
            &s,
            &uri,
            &[("action", "escalate"), ("to", "L2"), ("comment", "needs L2")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = ana
        .post(
            &s,
            &uri,
            &[("action", "escalate"), ("to", "L2"), ("comment", "still stuck")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let form = form_of(&r.body, "escalate");
    assert!(form.contains("<option value=\"L2\" selected>"), "{form}");
    assert!(form.contains(">still stuck</textarea>"), "{form}");

    // Comment: blank is refused, and comes back as typed.
    let r = ana.post(&s, &uri, &[("action", "comment"), ("comment", "   ")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        form_of(&r.body, "comment").contains("required>   </textarea>"),
        "{}",
        r.body
    );

    // Close: a score and "no answer" both.
    let r = ana.post(&s, &uri, &resolve("40")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = ana
        .post(
            &s,
            &uri,
            &[
                ("action", "close"),
                ("score", "5"),
                ("no_answer", "on"),
                ("comment", "slow but fine"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let form = form_of(&r.body, "close");
    for want in [
        "<option value=\"5\" selected>",
        "name=\"no_answer\" value=\"on\" checked",
        ">slow but fine</textarea>",
    ] {
        assert!(form.contains(want), "{want}: {form}");
    }

    // Assign and hold: a recovered case takes neither.
    let rec = recovered_case(&s).await;
    let uri = format!("/cases/{rec}");
    assert_eq!(api_case(&s, rec).await["status"], "recovered");
    let r = ana.post(&s, &uri, &[("action", "assign"), ("to", "bo")]).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(
        form_of(&r.body, "assign").contains("<option value=\"bo\" selected>"),
        "{}",
        r.body
    );
    let r = ana
        .post(&s, &uri, &[("action", "hold"), ("reason", "awaiting_vendor")])
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(
        form_of(&r.body, "hold").contains("<option value=\"awaiting_vendor\" selected>"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn forms_without_the_session_csrf_token_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    let id = report(&s, &ana, "db01", "Disk noisy").await;
    let uri = format!("/cases/{id}");
    let before = api_case(&s, id).await;
    let cookie = [FORM, ("cookie", ana.cookie.as_str())];
    for body in ["action=comment&comment=x", "csrf=forged&action=comment&comment=x"] {
        let r = send(&s, "POST", &uri, &cookie, body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{body}");
        assert!(r.body.contains("csrf"), "{}", r.body);
        let r = send(&s, "POST", "/faults", &cookie, "csrf=forged&asset=db01&title=Other").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    // Another session's token is no good either.
    let other = login(&s, "ana").await;
    let body = form(&[("csrf", &other.csrf), ("action", "comment"), ("comment", "x")]);
    let r = send(&s, "POST", &uri, &cookie, &body).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(api_case(&s, id).await["log"], before["log"]);
    let r = ana.get(&s, "/queue").await;
    assert!(!r.body.contains("Other"), "{}", r.body);
}

#[tokio::test]
async fn a_customer_lands_on_its_portal_and_staff_on_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    let own = report(&s, &ana, "db01", "Mail down").await;
    let other = report(&s, &ana, "web01", "Shop slow").await;
    // A risk on each customer's asset.
    let finding = |asset: &str, customer: &str| crate::cases::Signal {
        event: None,
        key: crate::cases::IdentityKey {
            customer: customer.into(),
            asset: asset.into(),
            check: "filesystem_fills_within_7d".into(),
            component: format!("/srv-{asset}"),
        },
        kind: crate::cases::ItemKind::Finding,
        severity: crate::cases::Severity::Warning,
        rule: "filesystem_fills_within_7d".into(),
        firing: true,
        at_ms: caretaker_shared::now_ms(),
        evidence: json!({}),
    };
    let out = s
        .writer
        .signals(
            vec![finding("db01", "acme"), finding("web01", "globex")],
            crate::cases::Policy::default(),
        )
        .await;
    assert!(out.is_ok(), "{out:?}");
    // An inspection report for each customer.
    let mut reports = Vec::new();
    for customer in ["acme", "globex"] {
        let body = json!({"customer": customer, "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"});
        let r = send(
            &s,
            "POST",
            "/api/v1/reports/inspection",
            &[
                ("authorization", "Bearer ana-token"),
                ("content-type", "application/json"),
            ],
            &body.to_string(),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        reports.push(v["id"].as_i64().unwrap());
    }

    let carol = login(&s, "carol").await;
    for uri in ["/", "/queue", "/queue?customer=globex"] {
        let r = carol.get(&s, uri).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(r.headers["location"].to_str().unwrap(), "/portal", "{uri}");
    }
    let r = carol.get(&s, "/portal").await;
    assert_eq!(r.status, StatusCode::OK);
    for want in [
        format!("href=\"/cases/{own}\""),
        "Mail down".to_string(),
        "<td>open</td>".to_string(),
        "href=\"/assets/db01\"".to_string(),
        "/srv-db01".to_string(),
        format!("href=\"/api/v1/reports/inspection/{}.html\"", reports[0]),
        format!("href=\"/api/v1/reports/inspection/{}.md\"", reports[0]),
        "href=\"/faults/new\"".to_string(),
        "Report a fault".to_string(),
    ] {
        assert!(r.body.contains(&want), "{want}: {}", r.body);
    }
    for unwanted in [
        "Shop slow".to_string(),
        format!("/cases/{other}\""),
        "/assets/web01".to_string(),
        "/srv-web01".to_string(),
        format!("/api/v1/reports/inspection/{}.", reports[1]),
        "acme-24".to_string(),
    ] {
        assert!(!r.body.contains(&unwanted), "{unwanted}: {}", r.body);
    }
    // The download links work with her session, for her own report only.
    let r = carol
        .get(&s, &format!("/api/v1/reports/inspection/{}.html", reports[0]))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = carol
        .get(&s, &format!("/api/v1/reports/inspection/{}.html", reports[1]))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Her asset's page; another customer's is not found.
    let r = carol.get(&s, "/assets/db01").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("href=\"/faults/new?asset=db01\""), "{}", r.body);
    let r = carol.get(&s, "/assets/web01").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = carol.get(&s, &format!("/cases/{other}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(!r.body.contains("Shop slow"));

    // Staff have the queue, and no portal.
    let r = ana.get(&s, "/portal").await;
    assert_eq!(
        (r.status, r.headers["location"].to_str().unwrap()),
        (StatusCode::SEE_OTHER, "/queue")
    );
}

#[tokio::test]
async fn a_customer_reports_a_fault_on_its_own_assets_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let carol = login(&s, "carol").await;
    let r = carol.get(&s, "/faults/new?asset=db01").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Her own assets to choose from, and no other.
    assert!(r.body.contains("<option value=\"db01\" selected>"), "{}", r.body);
    assert!(!r.body.contains("web01"), "{}", r.body);
    assert!(r.body.contains("<label for=\"asset\">"), "{}", r.body);
    let id = report(&s, &carol, "db01", "Printer on fire").await;
    let v = api_case(&s, id).await;
    assert_eq!(v["customer"], "acme");
    assert_eq!(v["queue"]["meta"]["reported_by"], "carol");
    // Another customer's asset is refused exactly like an unknown one.
    let mut answers = Vec::new();
    for asset in ["web01", "nowhere01"] {
        let r = carol
            .post(&s, "/faults", &[("asset", asset), ("title", "Shop slow")])
            .await;
        answers.push((r.status, r.body.replace(asset, "HOST")));
    }
    assert_eq!(answers[0].0, StatusCode::NOT_FOUND);
    assert_eq!(answers[0], answers[1]);
    let r = send(&s, "GET", "/api/v1/queue", &[("authorization", "Bearer ana-token")], "").await;
    assert!(!r.body.contains("Shop slow"), "{}", r.body);
}

/// A case on db01 an engineer worked: acknowledged, commented on both
/// ways, escalated, held for parts.
async fn worked_case(s: &AppState, ana: &Browser) -> i64 {
    let id = report(s, ana, "db01", "Mail down").await;
    let uri = format!("/cases/{id}");
    for pairs in [
        vec![("action", "acknowledge"), ("comment", "ACK-NOTE")],
        vec![("action", "comment"), ("comment", "vendor is slow INTERNAL-DEFAULT")],
        vec![
            ("action", "comment"),
            ("comment", "margin is thin INTERNAL-CHOSEN"),
            ("visibility", "internal"),
        ],
        vec![
            ("action", "comment"),
            ("comment", "a new disk arrives tomorrow"),
            ("visibility", "public"),
        ],
        vec![("action", "escalate"), ("to", "L2"), ("comment", "ESCALATION-NOTE")],
        vec![("action", "hold"), ("reason", "awaiting_parts")],
    ] {
        let r = ana.post(s, &uri, &pairs).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{pairs:?}: {}", r.body);
    }
    id
}

#[tokio::test]
async fn staff_comment_internal_by_default_and_public_by_choice() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    let id = worked_case(&s, &ana).await;
    let r = ana.get(&s, &format!("/cases/{id}")).await;
    // The choice is on the form, internal checked.
    let form = form_of(&r.body, "comment");
    assert!(form.contains("<legend>Who sees it</legend>"), "{form}");
    assert!(
        form.contains("name=\"visibility\" value=\"internal\" checked"),
        "{form}"
    );
    assert!(!form.contains("value=\"public\" checked"), "{form}");
    // Staff see every comment, each with who sees it.
    for want in [
        "INTERNAL-DEFAULT",
        "INTERNAL-CHOSEN",
        "a new disk arrives tomorrow",
        "customer too (public)",
    ] {
        assert!(r.body.contains(want), "{want}: {}", r.body);
    }
    let log = api_case(&s, id).await["log"].clone();
    let vis = |text: &str| {
        log.as_array()
            .unwrap()
            .iter()
            .find(|e| e["comment"].as_str().is_some_and(|c| c.contains(text)))
            .map(|e| e["visibility"].clone())
    };
    assert_eq!(vis("INTERNAL-DEFAULT"), Some(json!("internal")));
    assert_eq!(vis("INTERNAL-CHOSEN"), Some(json!("internal")));
    assert_eq!(vis("a new disk"), Some(json!("public")));
    // A visibility that is neither is named, and nothing is added.
    let r = ana
        .post(
            &s,
            &format!("/cases/{id}"),
            &[("action", "comment"), ("comment", "x"), ("visibility", "world")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("visibility: &quot;world&quot;"), "{}", r.body);
    assert_eq!(api_case(&s, id).await["log"], log);
}

#[tokio::test]
async fn a_customer_never_sees_internal_rows_or_contract_internals_on_its_case_page() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    let id = worked_case(&s, &ana).await;
    let carol = login(&s, "carol").await;
    let r = carol.get(&s, &format!("/cases/{id}")).await;
    assert_eq!(r.status, StatusCode::OK);
    for want in [
        "Mail down",
        "a new disk arrives tomorrow",
        "<dd id=\"status\">on hold, awaiting parts</dd>",
        "<td>acknowledged</td>",
        "<td>opened</td>",
    ] {
        assert!(r.body.contains(want), "{want}: {}", r.body);
    }
    for secret in [
        "INTERNAL-DEFAULT",
        "INTERNAL-CHOSEN",
        "ACK-NOTE",
        "ESCALATION-NOTE",
        "rule:",
        "acme-24",
        "Level",
        "Assignee",
        "Escalat",
        "assigned to",
        "SLA",
        "name=\"visibility\"",
        "acknowledge-form",
        "resolve-form",
        "survey-form",
    ] {
        assert!(!r.body.contains(secret), "{secret}: {}", r.body);
    }
}

#[tokio::test]
async fn a_customer_comments_publicly_and_cannot_act() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    let own = report(&s, &ana, "db01", "Mail down").await;
    let other = report(&s, &ana, "web01", "Shop slow").await;
    let carol = login(&s, "carol").await;
    let uri = format!("/cases/{own}");
    let r = carol.get(&s, &uri).await;
    assert!(
        form_of(&r.body, "comment").contains("<label for=\"comment-text\">"),
        "{}",
        r.body
    );
    let before = api_case(&s, own).await;
    // Staff forms: 403, whatever their fields.
    for pairs in [
        vec![("action", "acknowledge")],
        vec![("action", "assign"), ("to", "bo")],
        vec![("action", "hold"), ("reason", "awaiting_vendor")],
        vec![("action", "resolve"), ("minutes", "3")],
        vec![("action", "resolve")],
        vec![("action", "hold"), ("reason", "lunch")],
        vec![("action", "teleport")],
        vec![("action", "close"), ("score", "5")],
        vec![("action", "cancel"), ("reason", "duplicate")],
    ] {
        let r = carol.post(&s, &uri, &pairs).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{pairs:?}: {}", r.body);
    }
    // She cannot choose internal.
    let r = carol
        .post(
            &s,
            &uri,
            &[("action", "comment"), ("comment", "psst"), ("visibility", "internal")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("always public"), "{}", r.body);
    // Another customer's case: not found.
    let r = carol
        .post(
            &s,
            &format!("/cases/{other}"),
            &[("action", "comment"), ("comment", "hi")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let after = api_case(&s, own).await;
    assert_eq!(after["log"], before["log"]);
    assert_eq!(after["status"], before["status"]);

    // Her comment: public, and in her timeline with her name.
    let r = carol
        .post(&s, &uri, &[("action", "comment"), ("comment", "the mail still waits")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let v = api_case(&s, own).await;
    let last = v["log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["actor"].as_str(), last["visibility"].as_str()),
        (Some("customer:carol"), Some("public"))
    );
    let r = carol.get(&s, &uri).await;
    assert!(
        r.body
            .contains("<td>carol</td><td>comment</td><td>the mail still waits</td>"),
        "{}",
        r.body
    );
    // A blank one is named.
    let r = carol.post(&s, &uri, &[("action", "comment"), ("comment", " ")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("comment: must not be empty"), "{}", r.body);
}

#[tokio::test]
async fn the_survey_shows_once_the_case_is_resolved_and_takes_one_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let carol = login(&s, "carol").await;
    let id = report(&s, &carol, "db01", "Mail down").await;
    let uri = format!("/cases/{id}");
    let answer = [("action", "survey"), ("score", "4"), ("comment", "quick fix")];
    // No survey before it is resolved, and answering is refused.
    let r = carol.get(&s, &uri).await;
    assert!(!r.body.contains("survey-form"), "{}", r.body);
    let r = carol.post(&s, &uri, &answer).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("once it is resolved"), "{}", r.body);

    let ana = login(&s, "ana").await;
    for pairs in [
        vec![("action", "acknowledge")],
        vec![
            ("action", "resolve"),
            ("mode", "remote"),
            ("symptom", "mail stuck"),
            ("work_done", "restarted postfix"),
            ("minutes", "20"),
        ],
    ] {
        let r = ana.post(&s, &uri, &pairs).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{pairs:?}: {}", r.body);
    }
    // The portal points to the survey waiting for her.
    let r = carol.get(&s, "/portal").await;
    assert!(r.body.contains("id=\"to-rate\""), "{}", r.body);
    assert!(
        r.body
            .contains(&format!("href=\"/cases/{id}\">Case #{id}: Mail down</a>")),
        "{}",
        r.body
    );
    let r = carol.get(&s, &uri).await;
    let form = form_of(&r.body, "survey");
    for want in [
        "<legend>How satisfied are you with how this fault was handled?</legend>",
        "type=\"radio\" name=\"score\" id=\"score-1\" value=\"1\" required",
        "<label for=\"score-5\"",
        "5 — very satisfied",
        "<label for=\"survey-comment\">Comment (optional)</label>",
    ] {
        assert!(form.contains(want), "{want}: {form}");
    }
    assert!(r.body.contains("<dd id=\"status\">resolved</dd>"), "{}", r.body);
    // No score: named, and the comment comes back as typed.
    let r = carol
        .post(&s, &uri, &[("action", "survey"), ("comment", "quick fix")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("score: required"), "{}", r.body);
    assert!(
        form_of(&r.body, "survey").contains(">quick fix</textarea>"),
        "{}",
        r.body
    );

    let r = carol.post(&s, &uri, &answer).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let v = api_case(&s, id).await;
    assert_eq!(
        v["status"], "closed",
        "answering confirms the repair and closes the case"
    );
    let sat = &v["queue"]["satisfaction"];
    assert_eq!(
        (
            sat["score"].as_i64(),
            sat["comment"].as_str(),
            sat["recorded_by"].as_str()
        ),
        (Some(4), Some("quick fix"), Some("customer:carol"))
    );
    let r = carol.get(&s, &uri).await;
    assert!(!r.body.contains("survey-form"), "{}", r.body);
    assert!(r.body.contains("4/5: quick fix"), "{}", r.body);
    let r = carol.get(&s, "/portal").await;
    assert!(!r.body.contains("to-rate"), "{}", r.body);
    // A second answer: 409 with the reason, nothing changed.
    let r = carol.post(&s, &uri, &answer).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("already answered"), "{}", r.body);
    assert_eq!(api_case(&s, id).await["log"], v["log"]);
}

#[tokio::test]
async fn staff_still_record_a_phone_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let carol = login(&s, "carol").await;
    let id = report(&s, &carol, "db01", "Mail down").await;
    let uri = format!("/cases/{id}");
    let ana = login(&s, "ana").await;
    for pairs in [
        vec![("action", "acknowledge")],
        vec![
            ("action", "resolve"),
            ("mode", "remote"),
            ("symptom", "mail stuck"),
            ("work_done", "restarted postfix"),
            ("minutes", "20"),
        ],
        vec![("action", "close"), ("score", "3"), ("comment", "by phone")],
    ] {
        let r = ana.post(&s, &uri, &pairs).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{pairs:?}: {}", r.body);
    }
    assert_eq!(
        api_case(&s, id).await["queue"]["satisfaction"]["recorded_by"],
        "person:ana"
    );
    // The customer can no longer answer.
    let r = carol.post(&s, &uri, &[("action", "survey"), ("score", "5")]).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("already answered"), "{}", r.body);
}

#[tokio::test]
async fn case_titles_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    let id = report(&s, &ana, "db01", "<script>alert(1)</script>").await;
    for uri in [format!("/cases/{id}"), "/queue".to_string(), "/assets/db01".to_string()] {
        let r = ana.get(&s, &uri).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(!r.body.contains("<script>"), "{uri}: {}", r.body);
    }
    let r = ana.get(&s, &format!("/cases/{id}")).await;
    assert!(r.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", r.body);
}

/// Faults reported through the form with a severity; their ids.
async fn report_with(s: &AppState, b: &Browser, asset: &str, title: &str, severity: &str) -> i64 {
    let r = b
        .post(
            s,
            "/faults",
            &[("asset", asset), ("title", title), ("severity", severity)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let location = r.headers["location"].to_str().unwrap();
    location
        .strip_prefix("/cases/")
        .unwrap_or_else(|| panic!("{location}"))
        .parse()
        .unwrap()
}

/// The rows of the queue's table.
fn rows(body: &str) -> usize {
    body.split("<tbody>")
        .nth(1)
        .map_or(0, |t| t.split("</tbody>").next().unwrap_or("").matches("<tr>").count())
}

#[tokio::test]
async fn the_queue_pages_with_every_filter_kept_in_its_links() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    for n in 0..120 {
        let asset = if n % 2 == 0 { "db01" } else { "web01" };
        report_with(&s, &ana, asset, &format!("Fault {n:03}"), "major").await;
    }
    report_with(&s, &ana, "db01", "Printer jam", "info").await;
    let base = "/queue?severity=major&amp;q=fault&amp;per_page=50";
    let sorted = |by: &str, dir: &str| {
        format!("href=\"/queue?severity=major&amp;q=fault&amp;sort={by}&amp;dir={dir}&amp;per_page=50\"")
    };
    let r = ana.get(&s, "/queue?severity=major&q=fault&per_page=50").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("1–50 of 120"), "{}", r.body);
    assert_eq!(rows(&r.body), 50);
    assert!(
        r.body.contains(&format!("<a rel=\"next\" href=\"{base}&amp;page=2\">")),
        "{}",
        r.body
    );
    assert!(!r.body.contains("rel=\"prev\""), "{}", r.body);
    // The headers sort, keeping the filters, from the first page.
    assert!(r.body.contains(&sorted("age", "desc")), "{}", r.body);
    assert!(
        r.body.contains("<th scope=\"col\" aria-sort=\"ascending\">"),
        "{}",
        r.body
    );
    // The filter form keeps the page size.
    assert!(r.body.contains("name=\"per_page\" value=\"50\""), "{}", r.body);
    assert!(!r.body.contains("Printer jam"), "{}", r.body);

    let r = ana.get(&s, "/queue?severity=major&q=fault&per_page=50&page=2").await;
    assert!(r.body.contains("51–100 of 120"), "{}", r.body);
    assert_eq!(rows(&r.body), 50);
    assert!(
        r.body.contains(&format!("<a rel=\"prev\" href=\"{base}&amp;page=1\">")),
        "{}",
        r.body
    );
    assert!(
        r.body.contains(&format!("<a rel=\"next\" href=\"{base}&amp;page=3\">")),
        "{}",
        r.body
    );
    assert!(
        r.body.contains(&sorted("case", "asc")),
        "sorting goes back to the first page: {}",
        r.body
    );
    let r = ana.get(&s, "/queue?severity=major&q=fault&per_page=50&page=3").await;
    assert!(r.body.contains("101–120 of 120"), "{}", r.body);
    assert_eq!(rows(&r.body), 20);
    assert!(!r.body.contains("rel=\"next\""), "{}", r.body);
    // Sorted by case number, descending: the last one reported first.
    let r = ana.get(&s, "/queue?q=fault&sort=case&dir=desc&per_page=5").await;
    let first = r.body.split("<tbody>").nth(1).unwrap();
    assert!(
        first.find("Fault 119").unwrap() < first.find("Fault 118").unwrap(),
        "{}",
        r.body
    );
    assert!(r.body.contains("<th scope=\"col\" aria-sort=\"descending\"><a href=\"/queue?q=fault&amp;sort=case&amp;dir=asc&amp;per_page=5\">Case"), "{}", r.body);
    // Fifty a page unless asked; a bad page size or order is named.
    let r = ana.get(&s, "/queue").await;
    assert!(r.body.contains("1–50 of 121"), "{}", r.body);
    for (uri, want) in [
        ("/queue?per_page=1000", "per_page: &quot;1000&quot;"),
        ("/queue?sort=urgency", "sort: &quot;urgency&quot;"),
        ("/queue?page=0", "page: &quot;0&quot;"),
    ] {
        let r = ana.get(&s, uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(r.body.contains(want), "{uri}: {}", r.body);
    }
}

#[tokio::test]
async fn the_queue_shows_severity_age_and_which_clock_breaches_next() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    let id = report_with(&s, &ana, "db01", "Array degraded", "critical").await;
    let r = ana.get(&s, "/queue").await;
    for want in [
        // Colour, shape and name.
        "<span class=\"sev sev-critical\"><span class=\"icon\" aria-hidden=\"true\">■</span> critical</span>",
        "<td>response in 59m<br><small>due ",
        " UTC</small>",
        "under a minute",
    ] {
        assert!(r.body.contains(want), "{want}: {}", r.body);
    }
    // Answered: the critical case goes by its resolution clock (8h).
    let r = ana
        .post(&s, &format!("/cases/{id}"), &[("action", "acknowledge")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = ana.get(&s, "/queue").await;
    assert!(r.body.contains("<td>resolution in 7h 59m<br>"), "{}", r.body);
    // On a 5x8 contract durations are service hours, times on its zone's clock.
    let file = crate::http::testing::queue_contracts(&hash_password("pw").unwrap()).replacen(
        "hours = \"7x24\"\ntime_zone = \"UTC\"",
        "hours = \"5x8\"\ntime_zone = \"Europe/Berlin\"",
        1,
    );
    s.contracts
        .set(crate::contracts::parse_file(&file, std::path::Path::new("c.toml")).unwrap());
    // A new password hash ends the session: log in again.
    let ana = login(&s, "ana").await;
    report_with(&s, &ana, "db01", "Backup failed", "major").await;
    let r = ana.get(&s, "/queue?q=backup").await;
    assert!(r.body.contains(" service hours<br><small>due "), "{}", r.body);
    assert!(r.body.contains(" Europe/Berlin</small>"), "{}", r.body);
}

/// A case on db01 whose check needs a skill nobody has: nobody gets it.
async fn unassigned_case(s: &AppState) -> i64 {
    use crate::cases::{IdentityKey, ItemKind, Policy, Severity, Signal, store as items};
    let contracts = s.contracts.get();
    let now = caretaker_shared::now_ms();
    let signal = Signal {
        event: None,
        key: IdentityKey {
            customer: "acme".into(),
            asset: "db01".into(),
            check: "pg_replication_lag".into(),
            component: "main".into(),
        },
        kind: ItemKind::Case,
        severity: Severity::Warning,
        rule: "pg_replication_lag".into(),
        firing: true,
        at_ms: now,
        evidence: json!({"summary": "Replica lagging on db01"}),
    };
    let v = s
        .writer
        .run(move |conn| {
            let mark = items::log_high_water(conn)?;
            let id = items::apply_signal(conn, &signal, &Policy::default())?.item_id();
            crate::queue::settle(conn, &contracts, mark, now)?;
            Ok(json!(id))
        })
        .await
        .unwrap();
    v.as_i64().unwrap()
}

#[tokio::test]
async fn views_mine_and_unassigned_and_no_internal_columns_for_customers() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    report(&s, &ana, "db01", "Mail down").await;
    unassigned_case(&s).await;
    let r = ana.get(&s, "/queue?severity=warning").await;
    for want in [
        "<nav class=\"views\" aria-label=\"Views\"><a href=\"/queue?severity=warning\" aria-current=\"page\">All</a>",
        "<a href=\"/queue?severity=warning&amp;assignee=ana\">Mine</a>",
        "<a href=\"/queue?severity=warning&amp;assignee=-\">Unassigned</a>",
        "Mail down",
        "Replica lagging on db01",
        "<th scope=\"col\">Level</th><th scope=\"col\">Contract</th>",
        "acme-24",
    ] {
        assert!(r.body.contains(want), "{want}: {}", r.body);
    }
    let r = ana.get(&s, "/queue?assignee=ana").await;
    assert!(
        r.body.contains("Mail down") && !r.body.contains("Replica lagging"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("<a href=\"/queue?assignee=ana\" aria-current=\"page\">Mine</a>"),
        "{}",
        r.body
    );
    let r = ana.get(&s, "/queue?assignee=-").await;
    assert!(
        !r.body.contains("Mail down") && r.body.contains("Replica lagging"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("<a href=\"/queue?assignee=-\" aria-current=\"page\">Unassigned</a>"),
        "{}",
        r.body
    );

    // A customer's user is sent to its portal, which shows its cases
    // without the level and contract, and no views.
    let carol = login(&s, "carol").await;
    let r = carol.get(&s, "/queue").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/portal");
    let r = carol.get(&s, "/portal").await;
    assert!(r.body.contains("Mail down"), "{}", r.body);
    for hidden in [
        ">Level</th>",
        ">Contract</th>",
        "acme-24",
        "<td>L1</td>",
        "aria-label=\"Views\"",
    ] {
        assert!(!r.body.contains(hidden), "{hidden}: {}", r.body);
    }
}

#[tokio::test]
async fn auto_refresh_is_asked_for_keeps_the_filters_and_shows_no_search_box() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    report(&s, &ana, "db01", "Mail down").await;
    let r = ana.get(&s, "/queue?q=mail&sort=age").await;
    assert!(!r.body.contains("http-equiv=\"refresh\""), "{}", r.body);
    assert!(r.body.contains("name=\"q\""), "{}", r.body);
    assert!(
        r.body.contains("href=\"/queue?q=mail&amp;sort=age&amp;refresh=on\""),
        "{}",
        r.body
    );
    let r = ana.get(&s, "/queue?q=mail&sort=age&refresh=on").await;
    assert!(
        r.body.contains("<meta http-equiv=\"refresh\" content=\"60\">"),
        "{}",
        r.body
    );
    assert!(r.body.contains("Mail down"), "{}", r.body);
    assert!(
        !r.body.contains("name=\"q\""),
        "no box to type into while it reloads: {}",
        r.body
    );
    assert!(
        r.body
            .contains("<a href=\"/queue?q=mail&amp;sort=age\">Stop auto-refresh</a>"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn the_layout_has_landmarks_and_every_queue_input_a_label() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    report(&s, &ana, "db01", "Mail down").await;
    let r = ana.get(&s, "/queue").await;
    for want in [
        "<header>",
        "<nav aria-label=\"Main\">",
        "<main>",
        "@media (prefers-color-scheme:dark)",
        "<div class=\"table-wrap\" role=\"region\" aria-label=\"Cases\" tabindex=\"0\">",
        "<caption class=\"visually-hidden\">",
        "<nav class=\"pager\" aria-label=\"Pages, above the cases\">",
    ] {
        assert!(r.body.contains(want), "{want}: {}", r.body);
    }
    // Every field of the filter form has its label.
    let form = r
        .body
        .split("role=\"search\"")
        .nth(1)
        .unwrap()
        .split("</form>")
        .next()
        .unwrap();
    for id in form.split(" id=\"").skip(1).map(|rest| rest.split('"').next().unwrap()) {
        assert!(form.contains(&format!("<label for=\"{id}\">")), "{id}: {form}");
    }
    assert!(!r.body.contains("<th>"), "every header cell has its scope: {}", r.body);
}

/// Where each action's form starts on a page (`None`: not there).
fn form_at(body: &str, action: &str) -> Option<usize> {
    body.find(&format!("id=\"{action}-form\""))
}

#[test]
fn actions_come_in_the_order_of_what_is_next_for_the_status() {
    use super::render::action_order;
    use crate::cases::{HoldReason, Status};
    let taking = [
        "acknowledge",
        "resolve",
        "comment",
        "hold",
        "assign",
        "escalate",
        "cancel",
    ];
    for status in [Status::New, Status::Assigned, Status::Recovered] {
        assert_eq!(action_order(status), taking, "{status}");
    }
    assert_eq!(
        action_order(Status::InProgress),
        ["resolve", "comment", "hold", "assign", "escalate", "cancel"]
    );
    assert_eq!(
        action_order(Status::OnHold(HoldReason::AwaitingParts)),
        ["resume", "resolve", "comment", "assign", "escalate", "cancel"]
    );
    assert_eq!(action_order(Status::Resolved), ["close", "comment"]);
    assert_eq!(action_order(Status::Closed), ["comment"]);
    // Cancel is always last where it is offered.
    for status in [
        Status::New,
        Status::InProgress,
        Status::OnHold(HoldReason::AwaitingVendor),
    ] {
        assert_eq!(action_order(status).last(), Some(&"cancel"), "{status}");
    }
}

#[tokio::test]
async fn the_case_page_puts_the_summary_first_and_the_actions_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    let id = report(&s, &ana, "db01", "Mail down").await;
    let uri = format!("/cases/{id}");
    let r = ana.get(&s, &uri).await;
    assert_eq!(r.status, StatusCode::OK);
    let body = &r.body;
    // The summary, then what was found, the raw evidence folded, then the actions.
    let at = |what: &str| body.find(what).unwrap_or_else(|| panic!("{what}: {body}"));
    assert!(at("id=\"summary\"") < at("What was found"));
    assert!(at("What was found") < at("<details id=\"evidence\"><summary>Details</summary>"));
    assert!(at("id=\"evidence\"") < at("id=\"actions\""));
    assert!(at("id=\"next-clock\"") < at("What was found"));
    assert!(body.contains("<dd id=\"next-clock\">response in 3h 59m"), "{body}");
    assert!(
        body.contains("<li>from the test</li>"),
        "the description in words: {body}"
    );
    let order: Vec<usize> = [
        "acknowledge",
        "resolve",
        "comment",
        "hold",
        "assign",
        "escalate",
        "cancel",
    ]
    .iter()
    .map(|a| form_at(body, a).unwrap_or_else(|| panic!("no {a} form: {body}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    // Acknowledged: resolve comes first, acknowledge is gone.
    ana.post(&s, &uri, &[("action", "acknowledge")]).await;
    let r = ana.get(&s, &uri).await;
    assert!(form_at(&r.body, "acknowledge").is_none(), "{}", r.body);
    assert!(form_at(&r.body, "resolve") < form_at(&r.body, "comment"));
    // On hold: resume first.
    ana.post(&s, &uri, &[("action", "hold"), ("reason", "awaiting_parts")])
        .await;
    let r = ana.get(&s, &uri).await;
    assert!(form_at(&r.body, "resume") < form_at(&r.body, "resolve"), "{}", r.body);
    assert!(form_at(&r.body, "hold").is_none());
}

#[tokio::test]
async fn cancelling_asks_to_confirm_and_is_refused_without() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    let id = report(&s, &ana, "db01", "Mail down").await;
    let uri = format!("/cases/{id}");
    let r = ana.get(&s, &uri).await;
    let form = form_of(&r.body, "cancel");
    assert!(
        form.contains("type=\"checkbox\" name=\"confirm\" value=\"yes\" id=\"cancel-confirm\" required"),
        "{form}"
    );
    let before = api_case(&s, id).await;
    let r = ana
        .post(&s, &uri, &[("action", "cancel"), ("reason", "duplicate")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body
            .contains("confirm: tick &quot;Yes, cancel this case&quot; to cancel it"),
        "{}",
        r.body
    );
    // The refused form comes back open, its reason as chosen.
    assert!(
        r.body
            .contains("<details class=\"action\" open><summary>Cancel</summary>"),
        "{}",
        r.body
    );
    assert!(
        form_of(&r.body, "cancel").contains("<option value=\"duplicate\" selected>"),
        "{}",
        r.body
    );
    assert_eq!(api_case(&s, id).await["log"], before["log"], "nothing changed");
    let r = ana
        .post(
            &s,
            &uri,
            &[("action", "cancel"), ("reason", "duplicate"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(api_case(&s, id).await["status"], "cancelled:duplicate");
}

#[tokio::test]
async fn acknowledging_on_the_page_makes_the_engineer_the_assignee() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    let id = report(&s, &ana, "db01", "Mail down").await;
    let uri = format!("/cases/{id}");
    let r = ana.post(&s, &uri, &[("action", "assign"), ("to", "bo")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(ana.get(&s, &uri).await.body.contains("<dd id=\"assignee\">bo</dd>"));
    let r = ana.post(&s, &uri, &[("action", "acknowledge")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = ana.get(&s, &uri).await;
    assert!(r.body.contains("<dd id=\"assignee\">ana</dd>"), "{}", r.body);
    assert!(r.body.contains("<dd id=\"status\">in_progress</dd>"), "{}", r.body);
    let v = api_case(&s, id).await;
    assert_eq!(v["queue"]["meta"]["assignee"], "ana", "{v}");
}

/// A disk case on db01: its disk (from a real smartctl reading, failing
/// with reallocated sectors) recorded for the host, and a `disk_failing`
/// case opened by the rule on the disk's key.
async fn disk_case(s: &AppState) -> (i64, caretaker_shared::disk_health::Disk) {
    use caretaker_shared::wire::DiskScan;

    use crate::cases::{IdentityKey, ItemKind, Policy, Severity, Signal, store as items};
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/smartctl/ata/hitachi-hds721050dle630-usbjmicron-reallocated-failing.json");
    let text = std::fs::read_to_string(fixture).unwrap();
    let disk = caretaker_shared::smartctl::parse(&text).unwrap();
    let contracts = s.contracts.get();
    let now = caretaker_shared::now_ms();
    let d = disk.clone();
    let v = s
        .writer
        .run(move |conn| {
            let scan = DiskScan {
                scanned_at_ms: now,
                disks: vec![d.clone()],
                error: None,
            };
            crate::disks::record_scan(conn, "db01", &scan)?;
            let signal = Signal {
                event: None,
                key: IdentityKey {
                    customer: "acme".into(),
                    asset: "db01".into(),
                    check: "disk_failing".into(),
                    component: d.key.clone(),
                },
                kind: ItemKind::Case,
                severity: Severity::Critical,
                rule: "disk_failing".into(),
                firing: true,
                at_ms: now,
                evidence: json!({
                    "rule": "disk_failing",
                    "metric": "caretaker_disk_health_verdict",
                    "labels": {"disk": d.key, "verdict": "failing"},
                    "value": 1.0,
                    "equals": 1.0,
                    "at_ms": now,
                    "summary": format!("Disk {} on db01 is failing", d.key),
                }),
            };
            let mark = items::log_high_water(conn)?;
            let id = items::apply_signal(conn, &signal, &Policy::default())?.item_id();
            crate::queue::settle(conn, &contracts, mark, now)?;
            Ok(json!(id))
        })
        .await
        .unwrap();
    (v.as_i64().unwrap(), disk)
}

#[tokio::test]
async fn a_disk_case_reads_in_words_and_its_resolve_form_names_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let ana = login(&s, "ana").await;
    let (id, disk) = disk_case(&s).await;
    assert!(!disk.model.is_empty() && !disk.serial.is_empty(), "{disk:?}");
    let uri = format!("/cases/{id}");
    let r = ana.get(&s, &uri).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The title is the rule's summary; the disk in words, then its verdict.
    assert!(
        r.body
            .contains(&format!("Case #{id}: Disk {} on db01 is failing", disk.key)),
        "{}",
        r.body
    );
    let words = format!("disk {} {} serial {}: ", disk.device, disk.model, disk.serial);
    let line = r
        .body
        .split("<li>")
        .find(|l| l.starts_with(&words))
        .unwrap_or_else(|| panic!("{words}: {}", r.body));
    assert!(
        line.contains("reallocated sectors") && line.contains("verdict failing"),
        "{line}"
    );
    // The resolve form: the part is the disk; the new one is left to type.
    let form = form_of(&r.body, "resolve");
    for want in [
        "id=\"part_type\" value=\"disk\"".to_string(),
        format!("id=\"slot\" value=\"{}\"", disk.device),
        format!("id=\"old_model\" value=\"{}\"", disk.model),
        format!("id=\"old_serial\" value=\"{}\"", disk.serial),
        "id=\"new_model\" value=\"\"".to_string(),
        "id=\"new_serial\" value=\"\"".to_string(),
    ] {
        assert!(form.contains(&want), "{want}: {form}");
    }
    // A case about no part leaves the part empty.
    let other = report(&s, &ana, "db01", "Mail down").await;
    let r = ana.get(&s, &format!("/cases/{other}")).await;
    let form = form_of(&r.body, "resolve");
    for field in ["part_type", "slot", "old_model", "old_serial"] {
        assert!(form.contains(&format!("id=\"{field}\" value=\"\"")), "{field}: {form}");
    }
}

#[tokio::test]
async fn case_times_are_in_the_contracts_time_zone_named() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir).await;
    let berlin = crate::http::testing::queue_contracts(&hash_password("pw").unwrap()).replacen(
        "time_zone = \"UTC\"",
        "time_zone = \"Europe/Berlin\"",
        1,
    );
    s.contracts
        .set(crate::contracts::parse_file(&berlin, std::path::Path::new("c.toml")).unwrap());
    let ana = login(&s, "ana").await;
    let id = report(&s, &ana, "db01", "Mail down").await;
    let r = ana.get(&s, &format!("/cases/{id}")).await;
    let opened = api_case(&s, id).await["opened_at_ms"].as_i64().unwrap();
    let want = crate::queue::format_ms_in(opened, "Europe/Berlin");
    assert!(want.ends_with(" Europe/Berlin"), "{want}");
    assert!(
        r.body.contains(&format!("<dt>Opened</dt><dd>{want}</dd>")),
        "{want}: {}",
        r.body
    );
    assert!(r.body.contains("<dt>Times</dt><dd>Europe/Berlin</dd>"), "{}", r.body);
    // The timeline and the clocks too (a comment keeps what it says).
    let times: Vec<&str> = r
        .body
        .split("<tr><td>")
        .skip(1)
        .filter_map(|row| row.split("</td>").next())
        .filter(|cell| cell.starts_with("20"))
        .collect();
    assert!(!times.is_empty(), "{}", r.body);
    assert!(times.iter().all(|t| t.ends_with(" Europe/Berlin")), "{times:?}");
    assert!(
        r.body.contains("Europe/Berlin</td><td>used "),
        "the clocks' due times: {}",
        r.body
    );
    assert!(
        r.body.contains("Europe/Berlin</small>"),
        "the next clock's due time: {}",
        r.body
    );
}
