//! An APNs server (`POST /3/device/{device_token}`) speaking HTTP/2 in clear text (h2c with
//! prior knowledge, as the channel does for `http://` bases).
//!
//! Checks, as APNs does: HTTP/2, the path, the provider token (an ES256 JWT verified with the
//! public half of the app's key, `kid` = the key id, claims `iss` = the team id and `iat` within
//! the last hour, nothing else), the `apns-topic`, `apns-push-type`, `apns-priority` and `apns-id`
//! headers, the device token (hex), and the payload (a JSON object with `aps`, an alert push with
//! `aps.alert`, at most 4096 bytes). It answers 200 with the request's `apns-id` echoed, or APNs'
//! error replies (`{"reason":…}`; 410 with a `timestamp`). A provider token once answered
//! `ExpiredProviderToken` or `InvalidProviderToken` stays refused, as at Apple.
//!
//! Production and sandbox are two separate servers: start one of each.
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

/// A P-256 key generated with openssl for tests only (PKCS #8, like Apple's .p8 files). Never
/// use it for anything else.
pub const TEST_PRIVATE_KEY_P8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgsnXy+XSv4W6Utz5O
KnRks0xYujQnF2hZa78PyhtqAA2hRANCAATC37eRiFr6D/i4FEHkSGLcob38U+Fj
J1xjH6ZD3JVx9UvYmBcdr2LTXa3wfMC/ulKxo1/HP8UeiM1s/fe3dGkL
-----END PRIVATE KEY-----
";
/// The public half of [`TEST_PRIVATE_KEY_P8`].
pub const TEST_PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEwt+3kYha+g/4uBRB5Ehi3KG9/FPh
YydcYx+mQ9yVcfVL2JgXHa9i012t8HzAv7pSsaNfxz/FHojNbP33t3RpCw==
-----END PUBLIC KEY-----
";

/// Largest payload APNs accepts.
pub const MAX_PAYLOAD_BYTES: usize = 4096;

/// What the server answers, in order; when the script is empty it answers success.
#[derive(Debug, Clone)]
pub enum ApnsReply {
    Ok,
    /// `status` with `{"reason":reason}` (and `"timestamp"` when given, as 410 replies have).
    Error {
        status: u16,
        reason: String,
        timestamp: Option<i64>,
    },
}

impl ApnsReply {
    /// 410 Unregistered: the app was removed from the device.
    pub fn unregistered() -> ApnsReply {
        ApnsReply::Error {
            status: 410,
            reason: "Unregistered".into(),
            timestamp: Some(1_700_000_000_000),
        }
    }

    /// 400 BadDeviceToken: a sandbox token sent to production or the reverse, say.
    pub fn bad_device_token() -> ApnsReply {
        ApnsReply::error(400, "BadDeviceToken")
    }

    /// 403 ExpiredProviderToken: Apple judged the token too old (clock skew, say).
    pub fn expired_provider_token() -> ApnsReply {
        ApnsReply::error(403, "ExpiredProviderToken")
    }

    /// 403 InvalidProviderToken: the key was revoked, say.
    pub fn invalid_provider_token() -> ApnsReply {
        ApnsReply::error(403, "InvalidProviderToken")
    }

    /// 429 TooManyRequests: too many notifications to one device in a short time.
    pub fn too_many_requests() -> ApnsReply {
        ApnsReply::error(429, "TooManyRequests")
    }

    pub fn error(status: u16, reason: &str) -> ApnsReply {
        ApnsReply::Error {
            status,
            reason: reason.into(),
            timestamp: None,
        }
    }
}

/// One notification request received.
#[derive(Debug, Clone)]
pub struct ApnsRequest {
    pub device_token: String,
    /// The request's `apns-id` header (echoed in the reply).
    pub apns_id: Option<String>,
    pub topic: String,
    pub push_type: String,
    pub priority: String,
    /// The provider token's `kid` and `iss` (empty when the token was refused).
    pub key_id: String,
    pub team_id: String,
    /// The provider token's `iat` (0 when the token was refused).
    pub issued_at: i64,
    /// The JWT as sent, to tell when a client mints a new one.
    pub provider_token: String,
    /// The fake's clock, in seconds, when the request arrived.
    pub received_at: i64,
    pub payload: Value,
    pub payload_bytes: usize,
    /// The payload exactly as it arrived.
    pub raw_payload: Vec<u8>,
}

/// Seconds since the Unix epoch.
type NowSecs = Arc<dyn Fn() -> i64 + Send + Sync>;

#[derive(Default)]
struct Inner {
    requests: Vec<ApnsRequest>,
    violations: Vec<String>,
    script: VecDeque<ApnsReply>,
    /// Provider tokens answered 403 by the script, with the reason, refused again if reused.
    refused_tokens: HashMap<String, &'static str>,
    /// The clock the token's age is judged by; the system clock when unset.
    now_secs: Option<NowSecs>,
    /// The apns-id answered instead of the request's.
    answer_apns_id: Option<String>,
}

#[derive(Clone)]
pub struct FakeApns {
    /// Only in the test's copies; see [`crate::ViolationCheck`].
    _check: Option<Arc<crate::ViolationCheck>>,
    pub base_url: String,
    team_id: String,
    key_id: String,
    topic: String,
    public_key_pem: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeApns {
    /// Starts a server for one app: provider tokens from `team_id` / `key_id` signed with
    /// [`TEST_PRIVATE_KEY_P8`], notifications for `topic`.
    pub async fn start(team_id: &str, key_id: &str, topic: &str) -> FakeApns {
        FakeApns::start_with_key(team_id, key_id, topic, TEST_PUBLIC_KEY_PEM).await
    }

    /// Like [`FakeApns::start`], verifying tokens with another public key (PEM).
    pub async fn start_with_key(
        team_id: &str,
        key_id: &str,
        topic: &str,
        public_key_pem: &str,
    ) -> FakeApns {
        DecodingKey::from_ec_pem(public_key_pem.as_bytes()).expect("an EC public key in PEM");
        let fake = FakeApns {
            _check: None,
            base_url: String::new(),
            team_id: team_id.to_string(),
            key_id: key_id.to_string(),
            topic: topic.to_string(),
            public_key_pem: public_key_pem.to_string(),
            inner: Arc::new(Mutex::new(Inner::default())),
        };
        let app = Router::new()
            .route("/3/device/{token}", any(handle))
            .fallback(bad_path)
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            // With axum's `http2` feature, serve() recognises the HTTP/2 preface (h2c); the
            // handler refuses anything else.
            let _ = axum::serve(listener, app).await;
        });
        FakeApns {
            base_url: format!("http://{addr}"),
            _check: Some(crate::ViolationCheck::new("APNs", &fake.inner, |inner| {
                &mut inner.violations
            })),
            ..fake
        }
    }

    /// The protocol violations seen so far (requests the real provider would refuse, or that
    /// break its rules), without asserting anything.
    ///
    /// Takes them: a test that provokes violations on purpose checks them here, and they no
    /// longer fail it when the fake is dropped.
    pub fn violations(&self) -> Vec<String> {
        std::mem::take(&mut self.inner.lock().unwrap().violations)
    }

    pub fn script(&self, replies: impl IntoIterator<Item = ApnsReply>) {
        self.inner.lock().unwrap().script.extend(replies);
    }

    /// Judges provider tokens' `iat` by `now_secs` instead of the system clock, for clients
    /// running on a simulated clock.
    pub fn set_clock(&self, now_secs: impl Fn() -> i64 + Send + Sync + 'static) {
        self.inner.lock().unwrap().now_secs = Some(Arc::new(now_secs));
    }

    /// Answers every request with `apns_id` instead of echoing the request's, so a test can tell
    /// which of the two the client reports.
    pub fn answer_apns_id(&self, apns_id: &str) {
        assert!(is_canonical_uuid(apns_id), "apns-id {apns_id:?}");
        self.inner.lock().unwrap().answer_apns_id = Some(apns_id.to_string());
    }

    /// How many different provider tokens the requests carried (after asserting there was no
    /// protocol violation).
    pub fn distinct_provider_tokens(&self) -> usize {
        let requests = self.requests();
        let tokens: BTreeSet<&str> = requests.iter().map(|r| r.provider_token.as_str()).collect();
        tokens.len()
    }

    /// Requests received, after asserting there was no protocol violation.
    pub fn requests(&self) -> Vec<ApnsRequest> {
        let inner = self.inner.lock().unwrap();
        assert!(
            inner.violations.is_empty(),
            "APNs protocol violations: {:?}",
            inner.violations
        );
        inner.requests.clone()
    }
}

fn apns_error(status: StatusCode, reason: &str, apns_id: &str) -> Response {
    (
        status,
        [("apns-id", apns_id.to_string())],
        axum::Json(json!({ "reason": reason })),
    )
        .into_response()
}

/// Anything but `/3/device/{token}`: APNs' 404, and a violation.
async fn bad_path(State(fake): State<FakeApns>, method: Method, uri: Uri) -> Response {
    fake.inner
        .lock()
        .unwrap()
        .violations
        .push(format!("{method} {uri}: not /3/device/{{token}}"));
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"reason": "BadPath"})),
    )
        .into_response()
}

/// APNs' form of an apns-id: 8-4-4-4-12 lowercase hexadecimal digits.
fn is_canonical_uuid(id: &str) -> bool {
    id.len() == 36
        && uuid::Uuid::parse_str(id).is_ok()
        && !id.bytes().any(|b| b.is_ascii_uppercase())
}

/// What a verified provider token says.
#[derive(Default)]
struct ProviderClaims {
    key_id: String,
    team_id: String,
    issued_at: i64,
}

/// Verifies the provider token; the APNs reason to refuse it with, if any.
fn check_token(fake: &FakeApns, jwt: &str, now: i64) -> Result<ProviderClaims, &'static str> {
    if jwt.is_empty() {
        return Err("MissingProviderToken");
    }
    let header = decode_header(jwt).map_err(|_| "InvalidProviderToken")?;
    if header.alg != Algorithm::ES256 {
        return Err("InvalidProviderToken");
    }
    let key_id = header.kid.unwrap_or_default();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let key = DecodingKey::from_ec_pem(fake.public_key_pem.as_bytes())
        .map_err(|_| "InvalidProviderToken")?;
    let claims = decode::<Value>(jwt, &key, &validation)
        .map_err(|_| "InvalidProviderToken")?
        .claims;
    // Apple's provider token carries exactly these two claims.
    if claims.as_object().map(|o| o.len()) != Some(2) {
        return Err("InvalidProviderToken");
    }
    let team_id = claims["iss"].as_str().unwrap_or_default().to_string();
    if key_id != fake.key_id || team_id != fake.team_id {
        return Err("InvalidProviderToken");
    }
    let issued_at = claims["iat"].as_i64().ok_or("InvalidProviderToken")?;
    let age = now - issued_at;
    if age >= 3600 {
        return Err("ExpiredProviderToken");
    }
    if age < 0 {
        return Err("InvalidProviderToken");
    }
    Ok(ProviderClaims {
        key_id,
        team_id,
        issued_at,
    })
}

/// Why APNs would refuse `aps.alert`: a string, or a dictionary whose texts are strings.
fn alert_problem(alert: &Value) -> Option<String> {
    match alert {
        Value::String(_) => None,
        Value::Object(fields) => ["title", "subtitle", "body"]
            .into_iter()
            .find(|name| fields.get(*name).is_some_and(|v| !v.is_string()))
            .map(|name| format!("aps.alert.{name} is not a string: {alert}")),
        Value::Null => Some("an alert push without aps.alert".into()),
        other => Some(format!(
            "aps.alert is neither a string nor a dictionary: {other}"
        )),
    }
}

/// A scripted 403 that condemns the token itself, so APNs refuses it from then on.
fn token_refusal(status: u16, reason: &str) -> Option<&'static str> {
    match (status, reason) {
        (403, "ExpiredProviderToken") => Some("ExpiredProviderToken"),
        (403, "InvalidProviderToken") => Some("InvalidProviderToken"),
        _ => None,
    }
}

async fn handle(
    State(fake): State<FakeApns>,
    method: Method,
    version: Version,
    Path(device_token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let apns_id = header("apns-id");
    let provider_token = header("authorization")
        .and_then(|v| v.strip_prefix("bearer ").map(str::to_string))
        .unwrap_or_default();
    let (now_secs, answer_apns_id, refused_before) = {
        let inner = fake.inner.lock().unwrap();
        (
            inner.now_secs.clone(),
            inner.answer_apns_id.clone(),
            inner.refused_tokens.get(&provider_token).copied(),
        )
    };
    let now = now_secs.map_or_else(|| chrono::Utc::now().timestamp(), |now| now());
    let answer_id = answer_apns_id
        .or_else(|| apns_id.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let topic = header("apns-topic").unwrap_or_default();
    let push_type = header("apns-push-type").unwrap_or_default();
    let priority = header("apns-priority").unwrap_or_default();
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);

    // Each check: (the status and reason APNs answers, the violation recorded).
    let mut refusal: Option<(StatusCode, &str)> = None;
    let mut violations = Vec::new();
    let mut refuse = |status: StatusCode, reason: &'static str, violation: String| {
        refusal.get_or_insert((status, reason));
        violations.push(violation);
    };
    if version != Version::HTTP_2 {
        refuse(
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "BadRequest",
            format!("{version:?} instead of HTTP/2"),
        );
    }
    if method != Method::POST {
        refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("method {method}"),
        );
    }
    let claims = match (check_token(&fake, &provider_token, now), refused_before) {
        (Ok(_), Some(reason)) => {
            refuse(
                StatusCode::FORBIDDEN,
                reason,
                format!("provider token reused after APNs refused it: {reason}"),
            );
            Default::default()
        }
        (Ok(claims), None) => claims,
        (Err(reason), _) => {
            refuse(
                StatusCode::FORBIDDEN,
                reason,
                format!("provider token refused: {reason}"),
            );
            Default::default()
        }
    };
    if topic.is_empty() {
        refuse(
            StatusCode::BAD_REQUEST,
            "MissingTopic",
            "no apns-topic".into(),
        );
    } else if topic != fake.topic {
        refuse(
            StatusCode::BAD_REQUEST,
            "TopicDisallowed",
            format!("apns-topic {topic:?}"),
        );
    }
    let known_types = [
        "alert",
        "background",
        "location",
        "voip",
        "complication",
        "fileprovider",
        "mdm",
        "liveactivity",
        "pushtotalk",
    ];
    if !known_types.contains(&push_type.as_str()) {
        refuse(
            StatusCode::BAD_REQUEST,
            "InvalidPushType",
            format!("apns-push-type {push_type:?}"),
        );
    }
    if !matches!(priority.as_str(), "" | "1" | "5" | "10")
        || (push_type == "background" && priority == "10")
    {
        refuse(
            StatusCode::BAD_REQUEST,
            "BadPriority",
            format!("apns-priority {priority:?} for {push_type}"),
        );
    }
    if apns_id.as_deref().is_some_and(|id| !is_canonical_uuid(id)) {
        refuse(
            StatusCode::BAD_REQUEST,
            "BadMessageId",
            format!("apns-id {apns_id:?}"),
        );
    }
    if device_token.len() < 64 || !device_token.bytes().all(|b| b.is_ascii_hexdigit()) {
        refuse(
            StatusCode::BAD_REQUEST,
            "BadDeviceToken",
            format!("device token {device_token:?}"),
        );
    }
    if body.len() > MAX_PAYLOAD_BYTES {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("payload of {} bytes", body.len()),
        );
    } else if body.is_empty() {
        refuse(
            StatusCode::BAD_REQUEST,
            "PayloadEmpty",
            "empty payload".into(),
        );
    } else if !payload["aps"].is_object() {
        refuse(
            StatusCode::BAD_REQUEST,
            "BadPayload",
            format!("payload without aps: {}", String::from_utf8_lossy(&body)),
        );
    } else if let Some(problem) = (push_type == "alert")
        .then(|| alert_problem(&payload["aps"]["alert"]))
        .flatten()
    {
        refuse(StatusCode::BAD_REQUEST, "BadPayload", problem);
    }

    let reply = {
        let mut inner = fake.inner.lock().unwrap();
        inner.violations.extend(violations);
        let reply = match refusal {
            Some(_) => None,
            None => Some(inner.script.pop_front().unwrap_or(ApnsReply::Ok)),
        };
        if let Some(ApnsReply::Error { status, reason, .. }) = &reply {
            if let Some(refused) = token_refusal(*status, reason) {
                inner.refused_tokens.insert(provider_token.clone(), refused);
            }
        }
        inner.requests.push(ApnsRequest {
            device_token,
            apns_id,
            topic,
            push_type,
            priority,
            key_id: claims.key_id,
            team_id: claims.team_id,
            issued_at: claims.issued_at,
            provider_token,
            received_at: now,
            payload,
            payload_bytes: body.len(),
            raw_payload: body.to_vec(),
        });
        reply
    };
    match (refusal, reply) {
        (Some((status, reason)), _) => apns_error(status, reason, &answer_id),
        (None, None | Some(ApnsReply::Ok)) => {
            (StatusCode::OK, [("apns-id", answer_id)]).into_response()
        }
        (
            None,
            Some(ApnsReply::Error {
                status,
                reason,
                timestamp,
            }),
        ) => {
            let mut body = json!({ "reason": reason });
            if let Some(timestamp) = timestamp {
                body["timestamp"] = json!(timestamp);
            }
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                [("apns-id", answer_id)],
                axum::Json(body),
            )
                .into_response()
        }
    }
}
