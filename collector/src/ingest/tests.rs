#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use crate::store::testing::SharedTestDb;

use super::*;
use crate::config::IngestConfig;
use crate::identity::Enrollment;

fn report_json(agent: &str, host: &str) -> String {
    format!(
        r#"{{"version":1,"agent_id":"{agent}","seq":1,"collected_at_ms":1800000000000,"interval_secs":60,"host":"{host}","labels":{{"customer":"acme"}},"samples":[{{"metric":"caretaker_memory_total_bytes","labels":{{}},"value":1}},{{"metric":"caretaker_from_a_newer_agent","labels":{{}},"value":2}}]}}"#
    )
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(b).unwrap();
    enc.finish().unwrap()
}

/// A store in memory with agent `a1` (host db01, credential `secret`)
/// enrolled, and an empty fleet.
fn enrolled() -> (SharedTestDb, Fleet) {
    let conn = SharedTestDb::new();
    conn.with(|c| {
        crate::store::agents::Agents::add_enrollment_token(c, "t", 0).unwrap();
        let e = Enrollment {
            token_hash: "t".into(),
            agent_id: "a1".into(),
            credential_hash: crate::pki::hash_secret("secret"),
            host: "db01".into(),
            labels: None,
        };
        crate::identity::enroll(c, &e, 1).unwrap();
    });
    (conn, Fleet::default())
}

/// Authenticates `secret` against the store of [`enrolled`].
async fn authenticate_on(conn: &SharedTestDb, fleet: &Fleet, secret: Option<&str>) -> Result<Authenticated, Refused> {
    authenticate(fleet, secret, |hash| async move {
        conn.with(|c| crate::identity::agent_by_credential(c, &hash))
    })
    .await
}

#[tokio::test]
async fn a_credential_names_its_agent_and_an_unknown_one_is_refused() {
    let (conn, fleet) = enrolled();
    let a = authenticate_on(&conn, &fleet, Some("secret")).await.unwrap();
    assert_eq!(a.agent_id, "a1");
    assert_eq!(a.credential_hash, crate::pki::hash_secret("secret"));
    assert_eq!(
        fleet.agent_for_credential(&a.credential_hash).as_deref(),
        Some("a1"),
        "cached for the next report"
    );

    let e = authenticate_on(&conn, &fleet, Some("guessed")).await.unwrap_err();
    assert!(
        matches!(&e, Refused::Unauthorized(r) if r == "unknown credential"),
        "{e:?}"
    );
    let e = authenticate_on(&conn, &fleet, None).await.unwrap_err();
    assert!(
        matches!(&e, Refused::Unauthorized(r) if r == "missing bearer credential"),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_revoked_agent_is_told_so_whether_cached_or_not() {
    let (conn, fleet) = enrolled();
    authenticate_on(&conn, &fleet, Some("secret")).await.unwrap();
    conn.with(|c| crate::identity::revoke_agent(c, "a1", 2)).unwrap();
    // The fleet learns of the revocation, and its cache drops the credential.
    let mut identity = fleet.identity("a1").unwrap();
    identity.revoked = true;
    fleet.set_identity("a1", identity);
    let e = authenticate_on(&conn, &fleet, Some("secret")).await.unwrap_err();
    assert!(
        matches!(e, Refused::Store(StoreError::Revoked(ref id)) if id == "a1"),
        "{e:?}"
    );
    // A collector that never saw it asks the store.
    let e = authenticate_on(&conn, &Fleet::default(), Some("secret"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Refused::Store(StoreError::Revoked(ref id)) if id == "a1"),
        "{e:?}"
    );
}

#[test]
fn only_gzip_and_identity_are_taken() {
    assert_eq!(encoding(None).unwrap(), Encoding::Identity);
    assert_eq!(encoding(Some("identity")).unwrap(), Encoding::Identity);
    assert_eq!(encoding(Some("gzip")).unwrap(), Encoding::Gzip);
    let e = encoding(Some("br")).unwrap_err();
    assert!(
        matches!(&e, Refused::UnsupportedEncoding(r) if r.contains("\"br\"")),
        "{e:?}"
    );
}

#[test]
fn a_body_declared_too_large_is_refused_before_it_is_read() {
    let cfg = IngestConfig {
        max_body_bytes: 1000,
        ..IngestConfig::default()
    };
    assert!(check_declared_size(None, &cfg).is_ok());
    assert!(check_declared_size(Some(1000), &cfg).is_ok());
    let e = check_declared_size(Some(1001), &cfg).unwrap_err();
    assert!(
        matches!(&e, Refused::TooLarge(r) if r == "body of 1001 bytes is larger than 1000 bytes"),
        "{e:?}"
    );
}

#[test]
fn gzip_bomb_is_refused() {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![b'a'; 10_000_000]).unwrap();
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 20_000);
    assert_eq!(
        decompress(&bomb, Encoding::Gzip, 1_000_000),
        Err(DecompressError::TooLarge(1_000_000))
    );
    let e = decode_body(&bomb, Encoding::Gzip, 1_000_000).unwrap_err();
    assert!(
        matches!(&e, Refused::TooLarge(r) if r == "report is larger than 1000000 bytes once decompressed"),
        "{e:?}"
    );
}

#[test]
fn a_body_that_is_not_gzip_is_malformed_as_a_whole() {
    assert!(matches!(
        decompress(b"not gzip", Encoding::Gzip, 100),
        Err(DecompressError::Corrupt(_))
    ));
    let e = decode_body(report_json("a1", "db01").as_bytes(), Encoding::Gzip, 1 << 20).unwrap_err();
    assert!(
        matches!(&e, Refused::Malformed { path, reason } if path == "." && reason.starts_with("body is not valid gzip")),
        "{e:?}"
    );
}

#[test]
fn bad_json_names_the_field_and_position() {
    let json = report_json("a1", "db01").replace(r#""value":1}"#, r#""value":"one"}"#);
    let e = decode_body(&gzip(json.as_bytes()), Encoding::Gzip, 1 << 20).unwrap_err();
    let Refused::Malformed { path, reason } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(path, "samples[0].value");
    assert!(reason.contains("line 1 column"), "{reason}");

    let e = decode(b"{\"version\":1,").unwrap_err();
    assert!(
        matches!(&e, Refused::Malformed { reason, .. } if reason.contains("EOF") && reason.contains("line 1 column 13")),
        "{e:?}"
    );
}

#[test]
fn an_invalid_report_is_refused_with_every_problem() {
    let json = report_json("", "db01").replace(r#""interval_secs":60"#, r#""interval_secs":0"#);
    let e = decode_body(json.as_bytes(), Encoding::Identity, 1 << 20).unwrap_err();
    let Refused::Invalid(problems) = &e else {
        panic!("{e:?}")
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["agent_id", "interval_secs"], "{e}");
    // A stored body is read back without being judged again.
    assert_eq!(
        decode_stored(json.as_bytes(), Encoding::Identity)
            .unwrap()
            .interval_secs,
        0
    );
}

#[test]
fn a_decoded_report_keeps_the_catalogue_samples_and_counts_all() {
    let json = report_json("a1", "db01");
    let gz = decode_body(&gzip(json.as_bytes()), Encoding::Gzip, 1 << 20).unwrap();
    let plain = decode_body(json.as_bytes(), Encoding::Identity, 1 << 20).unwrap();
    assert_eq!(gz, plain, "the encoding changes nothing");
    assert_eq!(gz.sample_count, 2);
    assert_eq!(gz.samples.len(), 1);
    assert_eq!(gz.samples[0].metric, "caretaker_memory_total_bytes");
    assert!(gz.report.samples.is_empty(), "moved out of the report");
}

#[tokio::test]
async fn a_report_must_be_its_agents_own_and_claim_its_identity() {
    let (conn, fleet) = enrolled();
    let agent = authenticate_on(&conn, &fleet, Some("secret")).await.unwrap();
    let cfg = IngestConfig::default();
    let received = |agent: &Authenticated| Received {
        agent: agent.clone(),
        body: Vec::new(),
        encoding: Encoding::Identity,
        sent_at_ms: None,
        received_at_ms: 1_800_000_000_500,
    };
    let decoded = |agent: &str, host: &str| {
        decode_body(report_json(agent, host).as_bytes(), Encoding::Identity, 1 << 20).unwrap()
    };

    let e = accept(&fleet, decoded("a2", "db01"), received(&agent), &cfg).unwrap_err();
    assert!(
        matches!(&e, Refused::Unauthorized(r) if r == "the credential does not belong to agent \"a2\""),
        "{e:?}"
    );
    let e = accept(&fleet, decoded("a1", "web01"), received(&agent), &cfg).unwrap_err();
    assert!(
        matches!(&e, Refused::Store(StoreError::Identity(m)) if m.path == "host"),
        "{e:?}"
    );

    let inc = accept(&fleet, decoded("a1", "db01"), received(&agent), &cfg).unwrap();
    assert_eq!(inc.agent_id, "a1");
    assert_eq!(inc.credential_hash, Some(agent.credential_hash.clone()));
    assert_eq!((inc.sample_count, inc.samples.len()), (2, 1));
    let clock = inc.clock.unwrap();
    assert!(!clock.skewed, "{clock:?}");
    assert_eq!(
        inc.report.collected_at_ms, 1_800_000_000_000,
        "a good clock is believed"
    );
}

#[tokio::test]
async fn a_clock_far_ahead_is_dated_at_receipt() {
    let (conn, fleet) = enrolled();
    let agent = authenticate_on(&conn, &fleet, Some("secret")).await.unwrap();
    let decoded = decode_body(report_json("a1", "db01").as_bytes(), Encoding::Identity, 1 << 20).unwrap();
    let received = Received {
        agent,
        body: Vec::new(),
        encoding: Encoding::Identity,
        sent_at_ms: None,
        // An hour before the report says it was collected.
        received_at_ms: 1_800_000_000_000 - 3_600_000,
    };
    let inc = accept(&fleet, decoded, received, &IngestConfig::default()).unwrap();
    let clock = inc.clock.unwrap();
    assert!(clock.skewed);
    assert_eq!(clock.claimed_collected_at_ms, 1_800_000_000_000);
    assert_eq!(inc.report.collected_at_ms, inc.received_at_ms);
}

/// A report whose host name holds a NUL is refused whole, naming the field:
/// PostgreSQL cannot store it, and an agent told 500 would resend it forever.
#[test]
fn a_nul_character_in_a_report_is_refused_by_its_path() {
    let json = report_json("a1", "db\\u000001");
    let Err(Refused::Invalid(problems)) = decode(json.as_bytes()) else {
        panic!("a NUL in the host name must be refused");
    };
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "host");
    assert!(problems[0].reason.contains("NUL"), "{}", problems[0].reason);
    assert!(decode(report_json("a1", "db01").as_bytes()).is_ok());
}
