//! Webhook request signing (Feishu / Lark and DingTalk custom bots) and the clock that signing
//! and token caches read, injectable so tests can simulate time.
//!
//! Both providers sign with HMAC-SHA256 and base64, but differently:
//!
//! | provider | timestamp | HMAC key | HMAC message | where it goes |
//! | --- | --- | --- | --- | --- |
//! | Feishu / Lark | seconds | `timestamp + "\n" + secret` | empty | JSON body: `timestamp` (string), `sign` |
//! | DingTalk | milliseconds | `secret` | `timestamp + "\n" + secret` | query: `&timestamp=..&sign=..`, the sign URL-encoded once |
//!
//! Both providers accept a timestamp within one hour of their own clock.
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Wall-clock time as channels see it. The system clock in production; tests substitute a
/// simulated one to exercise token lifetimes without waiting.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;
    /// Whole seconds since the Unix epoch.
    fn now_secs(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A shared handle to the system clock.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

fn hmac_base64(key: &[u8], message: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Feishu / Lark custom bot signature: base64(HMAC-SHA256(key = `"{timestamp}\n{secret}"`,
/// message = empty)), with the timestamp in **seconds**.
pub fn feishu_sign(timestamp_secs: i64, secret: &str) -> String {
    hmac_base64(format!("{timestamp_secs}\n{secret}").as_bytes(), b"")
}

/// DingTalk custom robot signature: base64(HMAC-SHA256(key = secret, message =
/// `"{timestamp}\n{secret}"`)), with the timestamp in **milliseconds**. Not yet URL-encoded.
pub fn dingtalk_sign(timestamp_ms: i64, secret: &str) -> String {
    hmac_base64(
        secret.as_bytes(),
        format!("{timestamp_ms}\n{secret}").as_bytes(),
    )
}

/// The webhook URL with `timestamp` and `sign` appended to its query. `append_pair` form-encodes
/// the value exactly once (`+` → `%2B`, `/` → `%2F`, `=` → `%3D`) and leaves the existing query
/// (`access_token=…`) as it was.
pub fn dingtalk_signed_url(
    webhook_url: &str,
    timestamp_ms: i64,
    secret: &str,
) -> Result<url::Url, url::ParseError> {
    let mut url = url::Url::parse(webhook_url)?;
    let sign = dingtalk_sign(timestamp_ms, secret);
    url.query_pairs_mut()
        .append_pair("timestamp", &timestamp_ms.to_string())
        .append_pair("sign", &sign);
    Ok(url)
}
