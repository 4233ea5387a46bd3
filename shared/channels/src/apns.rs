//! Apple Push Notification service, token-based (production and sandbox).
//!
//! `POST {base}/3/device/{device_token}` over HTTP/2 with an ES256 provider token (JWT) signed by
//! the source's .p8 key. One token per (team_id, key_id, key) is minted and reused for
//! [`TOKEN_REUSE_SECS`] (Apple: refresh no more often than every 20 minutes and no less often
//! than every 60; minting per request gets `TooManyProviderTokenUpdates`). The cache lives in the
//! channel, so each container (each [`ApnsChannel`]) mints its own.
//!
//! Each channel has its own HTTP client. Against Apple (`https://`) reqwest negotiates HTTP/2 by
//! ALPN during the TLS handshake. A plain `http://` base (a local test server) has no TLS and so
//! no ALPN: reqwest would speak HTTP/1.1, which APNs does not accept, so for `http://` bases the
//! client is built with `http2_prior_knowledge()` (h2c). The registry's shared client is not used
//! for that reason.
//!
//! The payload is `{"aps":{"alert":{"title","body"},"sound":"default"},"link":…}`, serialized by
//! serde_json and kept within [`MAX_PAYLOAD_BYTES`] by cutting the body, then the title, on a
//! character boundary with "…". No `apns-expiration` header is sent: APNs then stores the
//! notification and retries delivery per its default policy.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use notify_domain::{ChannelKind, FieldFormat, FieldSpec, KindSpec, Message, SecretBundle};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::http::network_outcome;
use crate::sign::{system_clock, Clock};
use crate::text::{excerpt, fit_with_ellipsis};
use crate::{
    config_str, Channel, Endpoints, Outcome, Preview, PreviewKind, PreviewPart, SendRequest,
};

const SOURCE_FIELDS: &[FieldSpec] = &[
    FieldSpec::new("team_id", "Team ID", FieldFormat::Text { max_chars: 10 })
        .help("Membership details → Team ID"),
    FieldSpec::new("key_id", "Key ID", FieldFormat::Text { max_chars: 10 })
        .help("Certificates, Identifiers & Profiles → Keys → Key ID"),
    FieldSpec::new(
        "apns_topic",
        "Bundle ID",
        FieldFormat::Text { max_chars: 200 },
    )
    .help("The bundle id of the app that receives the pushes"),
    FieldSpec::new(
        "private_key",
        "Private key (.p8)",
        FieldFormat::Secret {
            max_chars: 4096,
            multiline: true,
        },
    )
    .secret()
    .help("Contents of the downloaded AuthKey_XXXXXXXXXX.p8 file"),
];
const TARGET_FIELDS: &[FieldSpec] = &[FieldSpec::new(
    "device_token",
    "Device token",
    FieldFormat::HexToken {
        min_len: 64,
        max_len: 200,
    },
)];

pub static PRODUCTION_SPEC: KindSpec = KindSpec {
    kind: ChannelKind::Apns,
    label: "Apple APNs",
    source_fields: SOURCE_FIELDS,
    target_fields: TARGET_FIELDS,
};
pub static SANDBOX_SPEC: KindSpec = KindSpec {
    kind: ChannelKind::ApnsSandbox,
    label: "Apple APNs (sandbox)",
    source_fields: SOURCE_FIELDS,
    target_fields: TARGET_FIELDS,
};

/// How long one provider token is reused: between Apple's 20-minute floor and 60-minute ceiling.
pub const TOKEN_REUSE_SECS: i64 = 40 * 60;

/// Largest notification payload APNs accepts.
pub const MAX_PAYLOAD_BYTES: usize = 4096;

/// Which APNs environment a channel sends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApnsEnvironment {
    Production,
    Sandbox,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    team_id: String,
    key_id: String,
    /// SHA-256 of the normalised key: a re-pasted key under the same key id gets its own token.
    key_digest: [u8; 32],
}

struct CachedJwt {
    jwt: String,
    issued_at: i64,
}

pub struct ApnsChannel {
    spec: &'static KindSpec,
    http: reqwest::Client,
    base: String,
    clock: Arc<dyn Clock>,
    tokens: Mutex<HashMap<TokenKey, CachedJwt>>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: i64,
}

#[derive(Deserialize)]
struct ErrorReply {
    #[serde(default)]
    reason: Option<String>,
}

impl ApnsChannel {
    /// A channel for `environment`, with its own HTTP/2 client (see the module docs).
    pub fn new(
        environment: ApnsEnvironment,
        endpoints: &Endpoints,
    ) -> Result<ApnsChannel, reqwest::Error> {
        let (spec, base) = match environment {
            ApnsEnvironment::Production => (&PRODUCTION_SPEC, &endpoints.apns_production_base),
            ApnsEnvironment::Sandbox => (&SANDBOX_SPEC, &endpoints.apns_sandbox_base),
        };
        let base = base.trim_end_matches('/').to_string();
        let mut builder = reqwest::Client::builder()
            .timeout(endpoints.timeout)
            .connect_timeout(endpoints.timeout)
            .user_agent(concat!("notify-service/", env!("CARGO_PKG_VERSION")));
        if base.starts_with("http://") {
            // No TLS, so no ALPN to agree on HTTP/2: speak it from the first byte (h2c).
            builder = builder.http2_prior_knowledge();
        }
        Ok(ApnsChannel {
            spec,
            http: builder.build()?,
            base,
            clock: system_clock(),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    pub fn production(endpoints: &Endpoints) -> Result<ApnsChannel, reqwest::Error> {
        ApnsChannel::new(ApnsEnvironment::Production, endpoints)
    }

    pub fn sandbox(endpoints: &Endpoints) -> Result<ApnsChannel, reqwest::Error> {
        ApnsChannel::new(ApnsEnvironment::Sandbox, endpoints)
    }

    /// Mints and ages provider tokens with `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The cached provider token for `key` while it is younger than [`TOKEN_REUSE_SECS`], else a
    /// new one (minted under the lock, so concurrent sends never mint twice).
    fn provider_token(&self, key: &TokenKey, pem: &str) -> Result<String, String> {
        let now = self.clock.now_secs();
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cached) = tokens.get(key) {
            let age = now - cached.issued_at;
            if (0..TOKEN_REUSE_SECS).contains(&age) {
                return Ok(cached.jwt.clone());
            }
        }
        let jwt = mint_jwt(&key.team_id, &key.key_id, pem, now)?;
        tokens.insert(
            key.clone(),
            CachedJwt {
                jwt: jwt.clone(),
                issued_at: now,
            },
        );
        Ok(jwt)
    }

    /// Forgets `jwt` (only if it is still the cached one).
    fn drop_token(&self, key: &TokenKey, jwt: &str) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if tokens.get(key).is_some_and(|c| c.jwt == jwt) {
            tokens.remove(key);
        }
    }
}

#[async_trait]
impl Channel for ApnsChannel {
    fn check_source_secrets(&self, secrets: &SecretBundle) -> Result<(), (&'static str, String)> {
        match secrets.get("private_key") {
            Some(key) => {
                validate_private_key(key.expose()).map_err(|problem| ("private_key", problem))
            }
            None => Ok(()),
        }
    }

    fn spec(&self) -> &'static KindSpec {
        self.spec
    }

    async fn send(&self, request: &SendRequest<'_>) -> Outcome {
        let source = request.source_config;
        let (Some(team_id), Some(key_id), Some(topic)) = (
            config_str(source, "team_id"),
            config_str(source, "key_id"),
            config_str(source, "apns_topic"),
        ) else {
            return Outcome::bad_config("the source needs team_id, key_id and apns_topic");
        };
        let Some(private_key) = request.source_secrets.get("private_key") else {
            return Outcome::bad_config("the source has no private_key");
        };
        let Some(device_token) = config_str(request.target_config, "device_token") else {
            return Outcome::bad_config("the target has no device_token");
        };
        if device_token.is_empty() || !device_token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Outcome::bad_config("the device token must be hexadecimal");
        }
        let Ok(topic_header) = reqwest::header::HeaderValue::from_str(topic) else {
            return Outcome::bad_config("the apns_topic is not a valid header value");
        };
        let pem = match normalise_p8(private_key.expose()) {
            Ok(pem) => pem,
            Err(problem) => return Outcome::bad_config(format!("the private key: {problem}")),
        };
        let key = TokenKey {
            team_id: team_id.to_string(),
            key_id: key_id.to_string(),
            key_digest: Sha256::digest(pem.as_bytes()).into(),
        };
        // The same payload as the preview, serialized once.
        let payload = match serde_json::to_vec(&build_payload(request.message)) {
            Ok(bytes) => bytes,
            Err(e) => return Outcome::permanent(Some("invalid_message".into()), e.to_string()),
        };
        let url = format!("{}/3/device/{device_token}", self.base);

        // A second attempt only after ExpiredProviderToken, with a freshly minted token.
        let mut retried = false;
        loop {
            let jwt = match self.provider_token(&key, &pem) {
                Ok(jwt) => jwt,
                Err(problem) => return Outcome::bad_config(format!("the private key: {problem}")),
            };
            let apns_id = uuid::Uuid::new_v4().to_string();
            let sent = self
                .http
                .post(&url)
                .header(reqwest::header::AUTHORIZATION, format!("bearer {jwt}"))
                .header("apns-topic", topic_header.clone())
                .header("apns-push-type", "alert")
                .header("apns-priority", "10")
                .header("apns-id", &apns_id)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(payload.clone())
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(e) => return network_outcome("sending the notification to APNs failed", e),
            };
            let status = response.status().as_u16();
            if status == 200 {
                let id = response
                    .headers()
                    .get("apns-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .unwrap_or(apns_id);
                return Outcome::delivered(Some(id));
            }
            let body = response.bytes().await.unwrap_or_default();
            let reason = serde_json::from_slice::<ErrorReply>(&body)
                .ok()
                .and_then(|r| r.reason)
                .filter(|r| !r.is_empty());
            if status == 403
                && matches!(
                    reason.as_deref(),
                    Some("ExpiredProviderToken" | "InvalidProviderToken")
                )
            {
                self.drop_token(&key, &jwt);
                if reason.as_deref() == Some("ExpiredProviderToken") && !retried {
                    retried = true;
                    continue;
                }
            }
            return interpret_error(status, reason, &body);
        }
    }

    /// The payload of [`build_payload`]. The device token (in the URL) and the provider token
    /// (a header) are not part of it.
    fn preview(&self, request: &SendRequest<'_>) -> Result<Preview, Outcome> {
        let source = request.source_config;
        if config_str(source, "team_id").is_none()
            || config_str(source, "key_id").is_none()
            || config_str(source, "apns_topic").is_none()
        {
            return Err(Outcome::bad_config(
                "the source needs team_id, key_id and apns_topic",
            ));
        }
        match config_str(request.target_config, "device_token") {
            None => return Err(Outcome::bad_config("the target has no device_token")),
            Some(token) if token.is_empty() || !token.bytes().all(|b| b.is_ascii_hexdigit()) => {
                return Err(Outcome::bad_config("the device token must be hexadecimal"))
            }
            Some(_) => {}
        }
        let (payload, mut notes) = build(request.message);
        if request
            .message
            .cover_url
            .as_deref()
            .is_some_and(|c| !c.trim().is_empty())
        {
            notes.push("notifications carry no cover image: it is left out".to_string());
        }
        Ok(Preview {
            channel: self.spec.kind,
            parts: vec![PreviewPart::new(PreviewKind::ApnsPayload, payload)],
            notes,
        })
    }
}

/// The outcome of a non-200 answer; the `reason` from the JSON body is the code.
fn interpret_error(status: u16, reason: Option<String>, body: &[u8]) -> Outcome {
    let code = reason.clone().unwrap_or_else(|| status.to_string());
    let reason_text = reason.unwrap_or_else(|| {
        let text = excerpt(body);
        if text.trim().is_empty() {
            "no reason given".into()
        } else {
            text
        }
    });
    let message = |hint: &str| {
        if hint.is_empty() {
            format!("APNs answered HTTP {status}: {reason_text}")
        } else {
            format!("APNs answered HTTP {status}: {reason_text} ({hint})")
        }
    };
    match (status, code.as_str()) {
        (410, _) => Outcome::DeadTarget {
            code: Some(code.clone()),
            message: message(
                "the device token is no longer valid for this topic: stop sending to it",
            ),
        },
        (400, "BadDeviceToken") => Outcome::permanent(
            Some(code.clone()),
            message("a sandbox token sent to production or the reverse, or a malformed token"),
        ),
        (400, "DeviceTokenNotForTopic") => Outcome::permanent(
            Some(code.clone()),
            message("the token belongs to another app than the source's apns_topic"),
        ),
        (403, "InvalidProviderToken") => Outcome::permanent(
            Some(code.clone()),
            message("check the source's team_id, key_id and private key"),
        ),
        (403, "ExpiredProviderToken") => Outcome::permanent(
            Some(code.clone()),
            message("refused again with a fresh token: is this service's clock right?"),
        ),
        (429, _) | (500..=599, _) => Outcome::retryable(Some(code.clone()), message("")),
        _ => Outcome::permanent(Some(code.clone()), message("")),
    }
}

fn mint_jwt(team_id: &str, key_id: &str, pem: &str, iat: i64) -> Result<String, String> {
    let key = EncodingKey::from_ec_pem(pem.as_bytes())
        .map_err(|_| "not a PKCS #8 EC private key".to_string())?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key_id.to_string());
    jsonwebtoken::encode(&header, &Claims { iss: team_id, iat }, &key)
        .map_err(|_| "cannot sign ES256 tokens (APNs keys are P-256 keys)".to_string())
}

/// Turns a .p8 key as pasted (with or without the `-----BEGIN PRIVATE KEY-----` armour, with or
/// without line breaks, spaces or literal `\n` sequences) into canonical PEM: the armour and the
/// base64 of the DER wrapped at 64 characters. Errors never contain key material.
pub fn normalise_p8(text: &str) -> Result<String, String> {
    let text = text.replace("\\n", "\n").replace("\\r", "\n");
    let content = match text.find("-----BEGIN ") {
        Some(begin) => {
            let after = &text[begin + "-----BEGIN ".len()..];
            let label_end = after
                .find("-----")
                .ok_or("the BEGIN line is not closed by -----")?;
            let label = after[..label_end].trim();
            if label != "PRIVATE KEY" {
                return Err(format!(
                    "expected an Apple .p8 key (-----BEGIN PRIVATE KEY-----), found -----BEGIN {label}-----"
                ));
            }
            let inner = &after[label_end + "-----".len()..];
            let end = inner
                .find("-----END ")
                .ok_or("the -----END PRIVATE KEY----- line is missing")?;
            inner[..end].to_string()
        }
        None => {
            if text.contains("-----END ") {
                return Err("the -----BEGIN PRIVATE KEY----- line is missing".into());
            }
            text
        }
    };
    let compact: String = content.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err("the key is empty".into());
    }
    if !compact
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return Err("the key contains characters that are not base64".into());
    }
    let der = STANDARD
        .decode(&compact)
        .or_else(|_| STANDARD_NO_PAD.decode(compact.trim_end_matches('=')))
        .map_err(|_| "the key is not valid base64".to_string())?;
    if der.first() != Some(&0x30) || !(32..=1024).contains(&der.len()) {
        return Err("the key is not a DER-encoded private key".into());
    }
    let encoded = STANDARD.encode(&der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

/// Checks that `text` is a usable APNs signing key: a PKCS #8 P-256 key that signs an ES256
/// token. For the API to call when a source is saved. Errors never contain key material.
pub fn validate_private_key(text: &str) -> Result<(), String> {
    let pem = normalise_p8(text)?;
    mint_jwt("VALIDATION", "VALIDATION", &pem, 0).map(|_| ())
}

/// The notification payload, used by both `send` (which sends its serialization) and
/// `preview`: at most [`MAX_PAYLOAD_BYTES`] bytes once serialized. The body is cut first, then
/// the title, each on a character boundary and ending with "…". An empty title is left out; a
/// link too long to fit even with an empty alert is left out.
pub fn build_payload(message: &Message) -> Value {
    build(message).0
}

/// [`build_payload`], with notes on what was shortened or left out (for previews).
fn build(message: &Message) -> (Value, Vec<String>) {
    let mut notes = Vec::new();
    let link = message.link.as_deref().filter(|l| !l.trim().is_empty());
    let payload = |title: &str, body: &str, link: Option<&str>| {
        let mut alert = json!({"body": body});
        if !title.is_empty() {
            alert["title"] = json!(title);
        }
        let mut payload = json!({"aps": {"alert": alert, "sound": "default"}});
        if let Some(link) = link {
            payload["link"] = Value::String(link.to_string());
        }
        payload
    };
    let size = |value: &Value| serde_json::to_vec(value).map_or(usize::MAX, |v| v.len());
    let link = link.filter(|l| {
        let fits = size(&payload("", "", Some(l))) <= MAX_PAYLOAD_BYTES;
        if !fits {
            notes.push("the link is too long for the payload: it is left out".to_string());
        }
        fits
    });
    let fits = |title: &str, body: &str| size(&payload(title, body, link)) <= MAX_PAYLOAD_BYTES;
    let title = message.title.as_str();
    let body = message.body.as_str();
    if fits(title, body) {
        return (payload(title, body, link), notes);
    }
    let body = fit_with_ellipsis(body, |b| fits(title, b));
    let title = if fits(title, &body) {
        notes.push(format!(
            "the body was shortened to fit APNs' {MAX_PAYLOAD_BYTES}-byte payload limit"
        ));
        title.to_string()
    } else {
        notes.push(format!(
            "the title and body were shortened to fit APNs' {MAX_PAYLOAD_BYTES}-byte payload limit"
        ));
        fit_with_ellipsis(title, |t| fits(t, &body))
    };
    (payload(&title, &body, link), notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_mapping() {
        let o = interpret_error(410, Some("Unregistered".into()), b"");
        assert!(matches!(o, Outcome::DeadTarget { .. }));
        assert_eq!(o.code(), Some("Unregistered"));
        let o = interpret_error(413, Some("PayloadTooLarge".into()), b"");
        assert!(matches!(o, Outcome::Permanent { .. }));
        let o = interpret_error(429, Some("TooManyProviderTokenUpdates".into()), b"");
        assert!(matches!(o, Outcome::Retryable { .. }));
        let o = interpret_error(503, None, b"");
        assert_eq!(o.code(), Some("503"));
        assert!(matches!(o, Outcome::Retryable { .. }));
    }

    #[test]
    fn normalise_rejects_other_armour_and_garbage_without_echoing_it() {
        let e = normalise_p8("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----")
            .unwrap_err();
        assert!(e.contains("EC PRIVATE KEY"), "{e}");
        let e = normalise_p8("secret?key!").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        assert!(normalise_p8("   ").is_err());
    }
}
