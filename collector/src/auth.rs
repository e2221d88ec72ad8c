//! Who is asking, and what they may do. A request is made by a
//! [`Principal`]: the machine API token (a manager without a customer), a
//! user of the contracts file by one of their API tokens, or a user logged in
//! to the web pages with a session cookie. Staff (engineers, managers) see
//! every customer and may change things; a customer's user sees only that
//! customer, reports faults on its assets, comments publicly on its cases
//! and answers their satisfaction survey ([`crate::queue::act_as`] decides).
//!
//! Sessions live in the store ([`crate::sessions`]): a restart logs nobody
//! out. A session names a user and is resolved against the contracts in
//! force at every request, so a user removed from the file, or whose
//! password was changed, loses access at the next reload.

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use axum::http::{HeaderMap, Uri};
use axum::response::Redirect;
use sha2::{Digest, Sha256};

use crate::contracts::User;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::pages::PageError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "caretaker_session";

/// How long a session lasts after login.
pub const SESSION_TTL_MS: i64 = 12 * 3_600_000;

/// What a user may do, as given in the contracts file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Engineer,
    Manager,
    Customer,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "engineer" => Some(Role::Engineer),
            "manager" => Some(Role::Manager),
            "customer" => Some(Role::Customer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Engineer => "engineer",
            Role::Manager => "manager",
            Role::Customer => "customer",
        }
    }
}

/// The one making a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// The customer of a customer's user; `None` for staff.
    pub customer: Option<String>,
}

impl Principal {
    /// A machine API token (from `init`, kept in the store), named
    /// `api:<token name>` in what it does.
    pub fn machine(token_name: &str) -> Principal {
        Principal {
            name: format!("api:{token_name}"),
            role: Role::Manager,
            customer: None,
        }
    }

    pub fn of(user: &User) -> Principal {
        Principal {
            name: user.name.clone(),
            role: user.role,
            customer: user.customer.clone(),
        }
    }

    /// Whether this principal may see the assets and cases of `customer`.
    /// A customer's user sees only their own customer; staff see all.
    pub fn may_see(&self, customer: &str) -> bool {
        match self.role {
            Role::Customer => self.customer.as_deref() == Some(customer),
            Role::Engineer | Role::Manager => true,
        }
    }

    /// The customer a listing must be limited to; `None`: no limit.
    pub fn scope(&self) -> Option<&str> {
        match self.role {
            // A customer user always has a customer (the parser checks it);
            // an empty scope would match nothing, which is the safe side.
            Role::Customer => Some(self.customer.as_deref().unwrap_or("")),
            Role::Engineer | Role::Manager => None,
        }
    }

    /// Who this principal is to the queue: staff, or a customer's user
    /// bound to its customer.
    pub fn actor(&self) -> crate::queue::Actor<'_> {
        match self.role {
            Role::Customer => crate::queue::Actor::Customer {
                name: &self.name,
                // As for `scope`: no customer matches nothing.
                customer: self.customer.as_deref().unwrap_or(""),
            },
            Role::Engineer | Role::Manager => crate::queue::Actor::Staff(&self.name),
        }
    }

    /// Whether this principal is staff, who may do everything; a customer's
    /// user only reports, comments and answers surveys (see [`Self::actor`]).
    pub fn can_act(&self) -> bool {
        matches!(self.role, Role::Engineer | Role::Manager)
    }

    /// 403 unless this principal is staff.
    pub fn require_staff(&self) -> Result<(), ApiError> {
        if self.can_act() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "user {:?} has role {}: this needs an engineer or a manager",
                self.name,
                self.role.as_str()
            )))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no random numbers from the operating system: {0}")]
    Random(getrandom::Error),
    #[error("hashing the password: {0}")]
    Hash(String),
}

/// `n` random bytes from the operating system, in hex.
pub fn random_hex(n: usize) -> Result<String, AuthError> {
    let mut buf = vec![0u8; n];
    getrandom::getrandom(&mut buf).map_err(AuthError::Random)?;
    Ok(hex::encode(buf))
}

/// Compares two byte strings in time depending only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SHA-256 of a token, in lowercase hex (as listed in a user's `tokens`).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// An argon2id PHC string for a password, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(AuthError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `phc`. Slow on purpose: call it
/// off the async workers.
pub fn verify_password(phc: &str, password: &str) -> bool {
    argon2::PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A new API token for a user: the token, and its `sha256:` line for the
/// contracts file.
pub fn new_token() -> Result<(String, String), AuthError> {
    let token = random_hex(32)?;
    let line = format!("sha256:{}", token_hash(&token));
    Ok((token, line))
}

/// What a page needs from the session: the token its forms must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub csrf: String,
}

/// The value of cookie `name` in a request.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The principal of an HTML page request with its session; without a live
/// session, a 303 to the login page that comes back to `uri` afterwards.
pub(crate) async fn page_principal(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<(Principal, SessionInfo), PageError> {
    let found = match cookie(headers, SESSION_COOKIE) {
        Some(id) => crate::sessions::resolve(state, id, caretaker_shared::now_ms())
            .await
            .map_err(ApiError::from)?,
        None => None,
    };
    found.ok_or_else(|| {
        let next = uri.path_and_query().map_or("/", |p| p.as_str());
        PageError::Login(Redirect::to(&format!("/login?next={}", percent_encode(next))))
    })
}

/// Percent-encodes everything but unreserved characters and `/`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where to go after login: a relative path on this site, else `/queue`.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.chars().any(char::is_control) =>
        {
            n
        }
        _ => "/queue",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn user(name: &str, role: Role, customer: Option<&str>, password: &str) -> User {
        User {
            name: name.into(),
            role,
            customer: customer.map(Into::into),
            password: password.into(),
            tokens: Vec::new(),
            time_zone: None,
        }
    }

    #[test]
    fn roles_decide_what_is_seen_and_done() {
        let c = Principal::of(&user("carol", Role::Customer, Some("acme"), "x"));
        assert!(c.may_see("acme"));
        assert!(!c.may_see("globex"));
        assert_eq!(c.scope(), Some("acme"));
        assert!(!c.can_act());
        assert!(matches!(c.require_staff(), Err(ApiError::Forbidden(m)) if m.contains("carol")));
        for staff in [
            Principal::machine("init"),
            Principal::of(&user("ana", Role::Engineer, None, "x")),
        ] {
            assert!(staff.may_see("acme") && staff.may_see("globex"));
            assert_eq!(staff.scope(), None);
            assert!(staff.require_staff().is_ok());
        }
    }

    #[test]
    fn passwords_hash_and_verify() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(verify_password(&phc, "correct horse"));
        assert!(!verify_password(&phc, "correct horsE"));
        assert!(!verify_password("not a hash", "correct horse"));
        assert_ne!(hash_password("correct horse").unwrap(), phc, "salted");
    }

    #[test]
    fn tokens_and_comparison() {
        let (token, line) = new_token().unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(line, format!("sha256:{}", token_hash(&token)));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }

    #[test]
    fn cookies_and_next() {
        let mut h = HeaderMap::new();
        h.insert("cookie", "a=1; caretaker_session=abc ; b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        assert_eq!(safe_next(Some("/queue?x=1")), "/queue?x=1");
        for bad in ["//evil.example", "https://evil.example", "/\\evil.example", "queue", ""] {
            assert_eq!(safe_next(Some(bad)), "/queue", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/queue");
        assert_eq!(percent_encode("/cases?id=1&x=a b"), "/cases%3Fid%3D1%26x%3Da%20b");
    }
}
