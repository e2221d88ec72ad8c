//! Webhook sink: the [`CaseEvent`] as a signed JSON POST.
//!
//! Headers:
//! - `Content-Type: application/json`
//! - `X-Caretaker-Event: case.opened | case.changed | case.ended`
//! - `X-Caretaker-Delivery: <outbox_id>`: the same for every attempt of one
//!   change; receivers dedupe on it.
//! - `X-Caretaker-Signature: sha256=<hex>`: HMAC-SHA256 of the raw body
//!   under the shared secret; check it with [`verify_signature`].
//!
//! Any 2xx answer is a delivery.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{CaseEvent, Delivered, EventKind, SinkError, send};

pub const EVENT_HEADER: &str = "X-Caretaker-Event";
pub const DELIVERY_HEADER: &str = "X-Caretaker-Delivery";
pub const SIGNATURE_HEADER: &str = "X-Caretaker-Signature";

pub(crate) struct Webhook {
    pub(crate) url: String,
    pub(crate) secret: Vec<u8>,
}

type HmacSha256 = Hmac<Sha256>;

/// The `X-Caretaker-Signature` value of `body`: `sha256=` and the lowercase
/// hex HMAC-SHA256 of the raw bytes under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a webhook delivery on the receiving side: `header` is the
/// `X-Caretaker-Signature` value, `body` the raw request body (before any
/// JSON parsing), `secret` the key configured in `secret_file`. True only
/// for `sha256=<64 hex digits>` matching the body; the comparison is
/// constant-time.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_mac) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_mac) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Header names and values, in sending order.
pub(crate) type Headers = Vec<(&'static str, String)>;

/// The body (the event as JSON) and the headers to send with it.
pub(crate) fn request(secret: &[u8], ev: &CaseEvent) -> Result<(Vec<u8>, Headers), SinkError> {
    let body = serde_json::to_vec(ev).map_err(|e| SinkError::Permanent(format!("cannot serialize the event: {e}")))?;
    let headers = vec![
        ("Content-Type", "application/json".to_string()),
        (EVENT_HEADER, EventKind::of(&ev.change).as_str().to_string()),
        (DELIVERY_HEADER, ev.outbox_id.to_string()),
        (SIGNATURE_HEADER, sign(secret, &body)),
    ];
    Ok((body, headers))
}

impl Webhook {
    pub(crate) async fn deliver(&self, client: &reqwest::Client, ev: &CaseEvent) -> Result<Delivered, SinkError> {
        let (body, headers) = request(&self.secret, ev)?;
        let mut req = client.post(&self.url).body(body);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        send("POST webhook", req).await?;
        Ok(Delivered { external_id: None })
    }
}
