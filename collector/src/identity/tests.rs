#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::store::ErrorClass;
use crate::store::agents::Agents;
use crate::store::testing::on_both;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn token(conn: &dyn Sql, hash: &str, customer: Option<&str>, site: Option<&str>) -> TokenInfo {
    let spec = TokenSpec {
        customer: customer.map(String::from),
        site: site.map(String::from),
        ..TokenSpec::default()
    };
    create_token(conn, hash, &spec, 1_000).unwrap()
}

fn enrollment(token_hash: &str, agent_id: &str, host: &str, claim: Option<&[(&str, &str)]>) -> Enrollment {
    Enrollment {
        token_hash: token_hash.into(),
        agent_id: agent_id.into(),
        credential_hash: format!("cred-{agent_id}"),
        host: host.into(),
        labels: claim.map(labels),
    }
}

#[test]
fn a_token_bound_to_a_customer_fixes_the_agents_customer_and_refuses_another_claim() {
    on_both(|conn| {
        token(conn, "alpha-token", Some("alpha"), Some("hq"));
        let e = enroll(
            conn,
            &enrollment(
                "alpha-token",
                "a1",
                "alpha-a1",
                Some(&[("customer", "alpha"), ("site", "hq")]),
            ),
            2_000,
        )
        .unwrap();
        assert_eq!(e.identity.customer.as_deref(), Some("alpha"));
        assert_eq!(e.identity.site.as_deref(), Some("hq"));
        assert_eq!(e.token_id, token_id("alpha-token"));

        let refused = enroll(
            conn,
            &enrollment(
                "alpha-token",
                "a2",
                "beta-b3",
                Some(&[("customer", "beta"), ("site", "hq")]),
            ),
            2_000,
        )
        .unwrap_err();
        assert_eq!(refused.class(), ErrorClass::Forbidden);
        assert_eq!(
            refused.to_string(),
            "agent claims customer \"beta\"; its enrollment token is bound to customer \"alpha\""
        );
        let other_site = enroll(
            conn,
            &enrollment(
                "alpha-token",
                "a3",
                "alpha-a3",
                Some(&[("customer", "alpha"), ("site", "branch")]),
            ),
            2_000,
        )
        .unwrap_err();
        assert!(
            matches!(&other_site, StoreError::Identity(m) if m.path == "labels.site"),
            "{other_site}"
        );
        // An older agent (no labels) takes the token's customer.
        let old = enroll(conn, &enrollment("alpha-token", "a4", "alpha-a4", None), 2_000).unwrap();
        assert_eq!(old.identity.customer.as_deref(), Some("alpha"));
        assert_eq!(token_of(conn, "alpha-token").uses, 2, "refusals use nothing up");
    });
}

fn token_of(conn: &dyn Sql, hash: &str) -> TokenInfo {
    super::token(conn, &token_id(hash)).unwrap()
}

#[test]
fn expired_used_up_and_revoked_tokens_are_refused_with_the_reason() {
    on_both(|conn| {
        let spec = TokenSpec {
            customer: Some("acme".into()),
            max_uses: Some(1),
            expires_at_ms: Some(10_000),
            ..TokenSpec::default()
        };
        create_token(conn, "t", &spec, 1_000).unwrap();
        enroll(conn, &enrollment("t", "a1", "h1", None), 2_000).unwrap();
        let used_up = enroll(conn, &enrollment("t", "a2", "h2", None), 2_000).unwrap_err();
        assert_eq!(used_up.class(), ErrorClass::Unauthorized);
        assert!(used_up.to_string().contains("is used up (1 of 1 uses)"), "{used_up}");

        create_token(
            conn,
            "e",
            &TokenSpec {
                expires_at_ms: Some(10_000),
                ..TokenSpec::default()
            },
            1_000,
        )
        .unwrap();
        let expired = enroll(conn, &enrollment("e", "a3", "h3", None), 10_000).unwrap_err();
        assert!(expired.to_string().contains("has expired"), "{expired}");

        token(conn, "r", Some("acme"), None);
        revoke_token(conn, &token_id("r"), 3_000).unwrap();
        let revoked = enroll(conn, &enrollment("r", "a4", "h4", None), 4_000).unwrap_err();
        assert!(revoked.to_string().contains("was revoked"), "{revoked}");
        let unknown = enroll(conn, &enrollment("nope", "a5", "h5", None), 4_000).unwrap_err();
        assert_eq!(unknown.to_string(), "unknown enrollment token");

        let listed = list_tokens(conn).unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(
            listed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["e", "r", "t"],
            "oldest first, then by id (the start of the hash)"
        );
        assert!(matches!(
            revoke_token(conn, "no-such", 1).unwrap_err(),
            StoreError::NoSuchToken(_)
        ));
    });
}

#[test]
fn one_host_name_belongs_to_one_active_agent() {
    on_both(|conn| {
        token(conn, "t", None, None);
        enroll(conn, &enrollment("t", "a1", "db1", None), 1).unwrap();
        let taken = enroll(conn, &enrollment("t", "a2", "db1", None), 2).unwrap_err();
        assert_eq!(taken.class(), ErrorClass::Conflict);
        assert!(taken.to_string().contains("held by agent a1"), "{taken}");
        // Once the operator decommissions it, the name is free again.
        let d = decommission(conn, "db1", 3).unwrap();
        assert_eq!(
            (d.agent_id.as_str(), d.revoked_at_ms, d.archived_at_ms),
            ("a1", Some(3), Some(3))
        );
        enroll(conn, &enrollment("t", "a2", "db1", None), 4).unwrap();
        // By name, the archived one no longer counts.
        assert_eq!(decommission(conn, "db1", 5).unwrap().agent_id, "a2");
    });
}

#[test]
fn a_report_claiming_another_identity_is_refused_naming_the_field() {
    on_both(|conn| {
        token(conn, "t", Some("alpha"), Some("hq"));
        enroll(conn, &enrollment("t", "a1", "alpha-a1", None), 1).unwrap();
        let ok = labels(&[("customer", "alpha"), ("site", "hq"), ("role", "db")]);
        let a = admit(conn, "a1", Some("cred-a1"), "alpha-a1", &ok, 2).unwrap();
        assert_eq!((a.promoted, a.offer), (None, None));

        let refuse =
            |host: &str, l: &[(&str, &str)]| admit(conn, "a1", Some("cred-a1"), host, &labels(l), 2).unwrap_err();
        let e = refuse("beta-b3", &[("customer", "alpha"), ("site", "hq")]);
        assert_eq!(e.class(), ErrorClass::Forbidden);
        assert_eq!(
            e.to_string(),
            "report claims host \"beta-b3\"; this agent is enrolled as \"alpha-a1\""
        );
        let e = refuse("alpha-a1", &[("customer", "beta"), ("site", "hq")]);
        assert!(
            matches!(&e, StoreError::Identity(m) if m.path == "labels.customer"),
            "{e}"
        );
        let e = refuse("alpha-a1", &[("site", "hq")]);
        assert!(
            matches!(&e, StoreError::Identity(m) if m.path == "labels.customer"),
            "no customer is another customer"
        );
        let e = refuse("alpha-a1", &[("customer", "alpha"), ("site", "branch")]);
        assert!(matches!(&e, StoreError::Identity(m) if m.path == "labels.site"), "{e}");
    });
}

#[test]
fn an_unbound_agent_is_fixed_by_its_first_report() {
    on_both(|conn| {
        token(conn, "t", None, None);
        let e = enroll(conn, &enrollment("t", "a1", "h1", None), 1).unwrap();
        assert_eq!(e.identity.customer, None);
        let a = admit(conn, "a1", None, "h1", &labels(&[("customer", "acme")]), 2).unwrap();
        assert_eq!(a.identity.customer.as_deref(), Some("acme"));
        let later = admit(conn, "a1", None, "h1", &labels(&[("customer", "beta")]), 3).unwrap_err();
        assert_eq!(later.class(), ErrorClass::Forbidden);
        // A new agent's claim at enrollment fixes it at once, site unbound.
        let e = enroll(
            conn,
            &enrollment("t", "a2", "h2", Some(&[("customer", "beta"), ("site", "x")])),
            1,
        )
        .unwrap();
        assert_eq!((e.identity.customer.as_deref(), e.identity.site), (Some("beta"), None));
    });
}

#[test]
fn a_revoked_or_unknown_agent_is_refused_as_unauthorized() {
    on_both(|conn| {
        token(conn, "t", Some("acme"), None);
        enroll(conn, &enrollment("t", "a1", "h1", None), 1).unwrap();
        let l = labels(&[("customer", "acme")]);
        revoke_agent(conn, "a1", 5).unwrap();
        let e = admit(conn, "a1", Some("cred-a1"), "h1", &l, 6).unwrap_err();
        assert!(matches!(e, StoreError::Revoked(_)), "{e}");
        assert_eq!(e.class(), ErrorClass::Unauthorized);
        // A deleted row: the agent is unknown, which is the caller's problem, not ours.
        crate::store::testing::remove_agent(conn, "a1");
        let e = admit(conn, "a1", Some("cred-a1"), "h1", &l, 6).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Unauthorized, "{e}");
        assert_eq!(
            agent_by_credential(conn, "cred-a1").unwrap(),
            None,
            "and its credential is unknown"
        );
    });
}

#[test]
fn a_rotated_credential_is_offered_until_first_used_then_replaces_the_old() {
    on_both(|conn| {
        token(conn, "t", Some("acme"), None);
        enroll(conn, &enrollment("t", "a1", "h1", None), 1).unwrap();
        let l = labels(&[("customer", "acme")]);
        let r = rotate_agent(conn, "a1", "new-secret").unwrap();
        let new_hash = crate::pki::hash_secret("new-secret");
        assert!(r.rotation_pending);
        // The old credential still works, and each answer offers the new one.
        for _ in 0..2 {
            let a = admit(conn, "a1", Some("cred-a1"), "h1", &l, 2).unwrap();
            assert_eq!(a.offer.as_deref(), Some("new-secret"));
        }
        assert_eq!(
            agent_by_credential(conn, &new_hash).unwrap().map(|(a, _)| a),
            Some("a1".into())
        );
        // First use of the new one: it replaces the old.
        let a = admit(conn, "a1", Some(&new_hash), "h1", &l, 3).unwrap();
        assert_eq!(a.promoted, Some(("cred-a1".into(), new_hash.clone())));
        assert_eq!(a.offer, None);
        let old = admit(conn, "a1", Some("cred-a1"), "h1", &l, 4).unwrap_err();
        assert!(matches!(old, StoreError::StaleCredential(_)), "{old}");
        let info = agent(conn, "a1").unwrap();
        assert!(!info.rotation_pending);
        assert_eq!(info.rotated_at_ms, Some(3));
        let stored = conn.agent_credentials("a1").unwrap().unwrap().pending;
        assert_eq!(stored, None, "no secret stays in clear once taken");
        // A revoked agent cannot be rotated.
        revoke_agent(conn, "a1", 5).unwrap();
        assert!(rotate_agent(conn, "a1", "s").is_err());
    });
}

/// The identity lifecycle through the agents store, on both databases.
mod through_the_store {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use crate::identity::{self, Enrollment, TokenInfo, TokenSpec};
    use crate::store::StoreError;
    use crate::store::agents::Agents;
    use crate::store::testing::on_both;

    fn enrollment(token_hash: &str, agent_id: &str, host: &str) -> Enrollment {
        Enrollment {
            token_hash: token_hash.into(),
            agent_id: agent_id.into(),
            credential_hash: format!("cred-{agent_id}"),
            host: host.into(),
            labels: Some([("customer".to_string(), "acme".to_string())].into()),
        }
    }

    #[test]
    fn tokens_are_created_listed_and_revoked() {
        on_both(|db| {
            let spec = TokenSpec {
                customer: Some("acme".into()),
                site: Some("hq".into()),
                expires_at_ms: Some(9_000),
                max_uses: Some(2),
            };
            let t = identity::create_token(db, "bbbbbbbbbbbbbbbb", &spec, 1_000).unwrap();
            assert_eq!(
                t,
                TokenInfo {
                    id: "bbbbbbbbbbbb".into(),
                    customer: Some("acme".into()),
                    site: Some("hq".into()),
                    created_at_ms: 1_000,
                    expires_at_ms: Some(9_000),
                    max_uses: Some(2),
                    uses: 0,
                    revoked_at_ms: None,
                }
            );
            // An older `init`'s token: bound to nothing, stored once.
            db.add_enrollment_token("aaaaaaaaaaaaaaaa", 2_000).unwrap();
            db.add_enrollment_token("aaaaaaaaaaaaaaaa", 3_000).unwrap();
            let listed = identity::list_tokens(db).unwrap();
            assert_eq!(
                listed
                    .iter()
                    .map(|t| (t.id.as_str(), t.created_at_ms))
                    .collect::<Vec<_>>(),
                [("bbbbbbbbbbbb", 1_000), ("aaaaaaaaaaaa", 2_000)]
            );
            assert_eq!(listed[1].customer, None);
            assert_eq!(
                db.token_by_hash("aaaaaaaaaaaaaaaa").unwrap().unwrap().id,
                "aaaaaaaaaaaa"
            );
            assert_eq!(db.token_by_hash("nope").unwrap(), None);

            let r = identity::revoke_token(db, "bbbbbbbbbbbb", 4_000).unwrap();
            assert_eq!(r.revoked_at_ms, Some(4_000));
            let again = identity::revoke_token(db, "bbbbbbbbbbbb", 5_000).unwrap();
            assert_eq!(again.revoked_at_ms, Some(4_000), "revoked once");
            assert!(matches!(
                identity::revoke_token(db, "no-such", 1),
                Err(StoreError::NoSuchToken(_))
            ));

            db.add_api_token("api-hash", "ops", 1).unwrap();
            db.add_api_token("api-hash", "other", 2).unwrap();
            assert_eq!(db.api_tokens().unwrap(), [("api-hash".to_string(), "ops".to_string())]);
        });
    }

    #[test]
    fn agents_enroll_report_rotate_revoke_and_decommission() {
        on_both(|db| {
            let spec = TokenSpec {
                customer: Some("acme".into()),
                ..TokenSpec::default()
            };
            identity::create_token(db, "token-hash-1", &spec, 1).unwrap();
            let e = identity::enroll(db, &enrollment("token-hash-1", "a1", "db01"), 10).unwrap();
            assert_eq!(e.token_id, "token-hash-1");
            assert_eq!(e.identity.customer.as_deref(), Some("acme"));
            assert_eq!(identity::token(db, "token-hash-1").unwrap().uses, 1);
            assert!(matches!(
                identity::enroll(db, &enrollment("token-hash-1", "a2", "db01"), 11),
                Err(StoreError::HostTaken { .. })
            ));
            identity::enroll(db, &enrollment("token-hash-1", "a2", "web01"), 12).unwrap();

            let info = identity::agent(db, "a1").unwrap();
            assert_eq!(
                (info.host.as_str(), info.token_id.as_deref(), info.enrolled_at_ms),
                ("db01", Some("token-hash-1"), 10)
            );
            assert_eq!(
                (info.last_seq, info.last_seen_ms, info.rotation_pending),
                (0, None, false)
            );
            let labels = [("customer".to_string(), "acme".to_string())].into();
            let a = identity::admit(db, "a1", Some("cred-a1"), "db01", &labels, 20).unwrap();
            assert_eq!((a.promoted, a.offer), (None, None));

            // Rotation: offered until first used, then the only credential.
            let r = identity::rotate_agent(db, "a1", "fresh").unwrap();
            assert!(r.rotation_pending);
            let fresh = crate::pki::hash_secret("fresh");
            let a = identity::admit(db, "a1", Some("cred-a1"), "db01", &labels, 21).unwrap();
            assert_eq!(a.offer.as_deref(), Some("fresh"));
            assert_eq!(db.agent_with_credential(&fresh).unwrap().as_deref(), Some("a1"));
            let a = identity::admit(db, "a1", Some(&fresh), "db01", &labels, 22).unwrap();
            assert_eq!(a.promoted, Some(("cred-a1".to_string(), fresh.clone())));
            let creds = db.agent_credentials("a1").unwrap().unwrap();
            assert_eq!(
                (creds.credential_hash.as_str(), creds.pending_hash, creds.pending),
                (fresh.as_str(), None, None)
            );
            assert_eq!(identity::agent(db, "a1").unwrap().rotated_at_ms, Some(22));
            assert!(identity::agent_by_credential(db, "cred-a1").unwrap().is_none());

            // Revocation: refused from then on, its row kept.
            let r = identity::revoke_agent(db, "a2", 30).unwrap();
            assert_eq!(r.revoked_at_ms, Some(30));
            assert!(matches!(
                identity::admit(db, "a2", Some("cred-a2"), "web01", &labels, 31),
                Err(StoreError::Revoked(_))
            ));
            assert!(identity::rotate_agent(db, "a2", "x").is_err());

            // Decommission by host name: revoked, archived, the name free.
            let d = identity::decommission(db, "db01", 40).unwrap();
            assert_eq!(
                (d.agent_id.as_str(), d.revoked_at_ms, d.archived_at_ms),
                ("a1", Some(40), Some(40))
            );
            assert_eq!(db.unarchived_agents_on_host("db01").unwrap(), Vec::<String>::new());
            assert_eq!(db.active_agent_on_host("db01").unwrap(), None);
            identity::enroll(db, &enrollment("token-hash-1", "a3", "db01"), 50).unwrap();
            assert_eq!(db.newest_agent_on_host("db01").unwrap().as_deref(), Some("a3"));

            let listed: Vec<_> = identity::list_agents(db)
                .unwrap()
                .into_iter()
                .map(|a| (a.agent_id, a.revoked_at_ms.is_some(), a.archived_at_ms.is_some()))
                .collect();
            assert_eq!(
                listed,
                [
                    ("a1".to_string(), true, true),
                    ("a3".to_string(), false, false),
                    ("a2".to_string(), true, false)
                ]
            );
            let ids = identity::identities(db).unwrap();
            let a1 = ids.iter().find(|(id, _, _)| id == "a1").unwrap();
            assert_eq!(
                (a1.1.as_str(), a1.2.revoked, a1.2.archived),
                (fresh.as_str(), true, true)
            );
            assert!(matches!(identity::agent(db, "zz"), Err(StoreError::NoSuchAgent(_))));
        });
    }
}
