//! Web sessions, kept in the store: a restart of the collector logs nobody
//! out, and collectors sharing a store share the sessions. The cookie's
//! value is a random id; the store keeps only its SHA-256, so a copy of the
//! store opens no session. Each session carries its CSRF token (what the
//! pages' forms and cookie-authenticated API writes send back).
//!
//! A session names a user and is resolved against the contracts in force at
//! every request, so a user removed from the file, or whose password was
//! changed, loses access at the next reload. Expiry, a changed password and
//! logout delete the row; the pruner sweeps expired rows left behind.

use crate::auth::{self, Principal, SESSION_TTL_MS, SessionInfo};
use crate::contracts::User;
use crate::http::AppState;
use crate::store::sessions::WebSessions;
use crate::store::sql::Sql;
use crate::store::{self, StoreError};

pub use crate::store::sessions::{MIGRATION, StoredSession as Stored};

/// The fingerprint of a password hash kept with a session.
fn password_fp(phc: &str) -> String {
    auth::token_hash(phc)
}

/// Stores a session (and sweeps the expired ones).
pub fn insert(db: &dyn Sql, id_hash: &str, s: &Stored, now_ms: i64) -> Result<(), StoreError> {
    prune(db, now_ms)?;
    Ok(db.insert_session(id_hash, s, now_ms)?)
}

/// The stored session with this id hash, expired or not.
pub fn get(db: &dyn Sql, id_hash: &str) -> Result<Option<Stored>, StoreError> {
    Ok(db.session(id_hash)?)
}

/// Deletes the session with this id hash; how many rows went.
pub fn delete(db: &dyn Sql, id_hash: &str) -> Result<u64, StoreError> {
    Ok(db.delete_session(id_hash)?)
}

/// Deletes the sessions expired at `now_ms`; answers how many.
pub fn prune(db: &dyn Sql, now_ms: i64) -> Result<u64, StoreError> {
    Ok(db.prune_sessions(now_ms)?)
}

/// Starts a session for `user`; answers its id (for the cookie).
pub async fn create(state: &AppState, user: &User, now_ms: i64) -> Result<String, crate::http::error::ApiError> {
    let internal = |e: auth::AuthError| crate::http::error::ApiError::Internal(e.to_string());
    let id = auth::random_hex(32).map_err(internal)?;
    let stored = Stored {
        user: user.name.clone(),
        password_fp: password_fp(&user.password),
        csrf: auth::random_hex(32).map_err(internal)?,
        expires_at_ms: now_ms + SESSION_TTL_MS,
    };
    let id_hash = auth::token_hash(&id);
    state
        .writer
        .run(move |c| {
            insert(c, &id_hash, &stored, now_ms)?;
            Ok(serde_json::Value::Null)
        })
        .await?;
    Ok(id)
}

/// The user of a live session, as the contracts in force have them now,
/// with the session's CSRF token. A session that expired, whose user is
/// gone or whose password changed is ended (its row deleted).
pub async fn resolve(state: &AppState, id: &str, now_ms: i64) -> Result<Option<(Principal, SessionInfo)>, StoreError> {
    let id_hash = auth::token_hash(id);
    let key = id_hash.clone();
    let Some(s) = store::read_on(&state.reader, move |c| get(c, &key)).await? else {
        return Ok(None);
    };
    let contracts = state.contracts.get();
    let user = contracts.user(&s.user).filter(|u| {
        s.expires_at_ms > now_ms && auth::ct_eq(password_fp(&u.password).as_bytes(), s.password_fp.as_bytes())
    });
    match user {
        Some(u) => Ok(Some((Principal::of(u), SessionInfo { csrf: s.csrf }))),
        None => {
            end_hashed(state, id_hash).await?;
            Ok(None)
        }
    }
}

/// Ends the session with cookie value `id` (logout).
pub async fn end(state: &AppState, id: &str) -> Result<(), StoreError> {
    end_hashed(state, auth::token_hash(id)).await
}

async fn end_hashed(state: &AppState, id_hash: String) -> Result<(), StoreError> {
    state
        .writer
        .run(move |c| {
            delete(c, &id_hash)?;
            Ok(serde_json::Value::Null)
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::auth::Role;
    use crate::contracts::Contracts;
    use crate::http::testing;

    fn user(name: &str, password: &str) -> User {
        User {
            name: name.into(),
            role: Role::Engineer,
            customer: None,
            password: password.into(),
            tokens: Vec::new(),
            time_zone: None,
        }
    }

    fn rows(state: &AppState) -> i64 {
        testing::read(state, |c| c.session_count().unwrap())
    }

    #[tokio::test]
    async fn sessions_follow_the_file_expire_and_keep_only_a_hash() {
        let dir = tempfile::tempdir().unwrap();
        let state = testing::state(&dir).await;
        let t0 = caretaker_shared::now_ms();
        let ana = user("ana", "hash-1");
        state.contracts.set(Contracts {
            users: vec![ana.clone()],
            ..Contracts::default()
        });
        let id = create(&state, &ana, t0).await.unwrap();
        let (p, info) = resolve(&state, &id, t0 + 1_000).await.unwrap().unwrap();
        assert_eq!((p.name.as_str(), p.role), ("ana", Role::Engineer));
        assert_eq!(info.csrf.len(), 64);
        assert!(resolve(&state, "no-such-session", t0).await.unwrap().is_none());
        // Only the id's hash is stored, never the id.
        {
            let stored = testing::read(&state, |c| c.session_id_hashes().unwrap());
            assert_eq!(stored, [auth::token_hash(&id)]);
            assert_ne!(stored[0], id);
        }

        // A role change applies at once; a changed password ends the session.
        let mut c = state.contracts.get().as_ref().clone();
        c.users[0].role = Role::Manager;
        state.contracts.set(c.clone());
        let (p, _) = resolve(&state, &id, t0 + 2_000).await.unwrap().unwrap();
        assert_eq!(p.role, Role::Manager);
        c.users[0].password = "hash-2".into();
        state.contracts.set(c.clone());
        assert!(resolve(&state, &id, t0 + 2_000).await.unwrap().is_none());
        assert_eq!(rows(&state), 0, "the ended session's row is gone");

        // Expiry after 12 h removes the row; logout too; a removed user loses access.
        let ana = c.users[0].clone();
        let id = create(&state, &ana, t0).await.unwrap();
        assert!(resolve(&state, &id, t0 + SESSION_TTL_MS - 1).await.unwrap().is_some());
        assert!(resolve(&state, &id, t0 + SESSION_TTL_MS).await.unwrap().is_none());
        assert_eq!(rows(&state), 0);
        let id = create(&state, &ana, t0).await.unwrap();
        end(&state, &id).await.unwrap();
        assert_eq!(rows(&state), 0);
        assert!(resolve(&state, &id, t0 + 1).await.unwrap().is_none());
        let id = create(&state, &ana, t0).await.unwrap();
        state.contracts.set(Contracts::default());
        assert!(resolve(&state, &id, t0 + 1).await.unwrap().is_none());

        // Creating a session sweeps the expired ones.
        state.contracts.set(c);
        let old = create(&state, &ana, t0).await.unwrap();
        let _new = create(&state, &ana, t0 + SESSION_TTL_MS).await.unwrap();
        assert_eq!(rows(&state), 1);
        assert!(resolve(&state, &old, t0 + 1).await.unwrap().is_none());
    }
}
