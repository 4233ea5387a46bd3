//! A Feishu / Lark server: the custom bot webhook (`/open-apis/bot/v2/hook/{token}`) and the
//! Open API endpoints a card cover needs (`tenant_access_token/internal`, `im/v1/images`), plus a
//! cover image to download.
//!
//! The webhook checks the hook token, the JSON body (at most 20 KB), the signature when the bot
//! has a signing secret (recomputed here: base64(HMAC-SHA256(key = `"{timestamp}\n{secret}"`,
//! empty message)), timestamp in seconds within an hour of now) and the card's shape, and answers
//! like Feishu: HTTP 200 with `{"code":0,"data":{},"msg":"success"}`, or HTTP 200 with the error
//! code (19001 unknown hook, 19021 bad signature, or whatever is scripted).
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Bytes served at `/cover.png` (a PNG signature and filler).
pub const COVER_PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRtestkit-cover-image";

/// Largest webhook request body Feishu accepts.
pub const MAX_HOOK_BODY_BYTES: usize = 20 * 1024;

/// What the webhook answers, in order; when the script is empty it answers success.
#[derive(Debug, Clone)]
pub enum HookReply {
    Ok,
    /// HTTP 200 with `{"code":code,"data":{},"msg":msg}` (Feishu's way of refusing).
    Error {
        code: i64,
        msg: String,
    },
    /// Any status and raw body (a gateway error, say).
    Raw {
        status: u16,
        body: String,
    },
}

impl HookReply {
    /// Feishu's reply to a wrong signature or a stale timestamp.
    pub fn bad_signature() -> HookReply {
        HookReply::Error {
            code: 19021,
            msg: "sign match fail or timestamp is not within one hour from current time".into(),
        }
    }

    /// Feishu's reply when the bot's keyword security setting finds no keyword.
    pub fn keyword_missing() -> HookReply {
        HookReply::Error {
            code: 19024,
            msg: "Key Words Not Found".into(),
        }
    }
}

/// One image upload received.
#[derive(Debug, Clone)]
pub struct Upload {
    pub bearer: String,
    pub content_type: Option<String>,
    pub bytes: usize,
    /// The image_key answered (None when refused).
    pub image_key: Option<String>,
}

#[derive(Default)]
struct Inner {
    hooks: Vec<Value>,
    violations: Vec<String>,
    script: VecDeque<HookReply>,
    apps: HashMap<String, String>,
    issued: HashSet<String>,
    image_keys: HashSet<String>,
    uploads: Vec<Upload>,
    token_requests: usize,
}

#[derive(Clone)]
pub struct FakeFeishu {
    pub base_url: String,
    hook_token: String,
    secret: Option<String>,
    inner: Arc<Mutex<Inner>>,
}

impl FakeFeishu {
    /// Starts a server whose one bot has `hook_token` and, if given, the signing secret `secret`.
    pub async fn start(hook_token: &str, secret: Option<&str>) -> FakeFeishu {
        let fake = FakeFeishu {
            base_url: String::new(),
            hook_token: hook_token.to_string(),
            secret: secret.map(str::to_string),
            inner: Arc::new(Mutex::new(Inner::default())),
        };
        let app = Router::new()
            .route("/open-apis/bot/v2/hook/{token}", post(hook))
            .route(
                "/open-apis/auth/v3/tenant_access_token/internal",
                post(tenant_token),
            )
            .route("/open-apis/im/v1/images", post(upload))
            .route(
                "/cover.png",
                get(|| async { ([(header::CONTENT_TYPE, "image/png")], COVER_PNG) }),
            )
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeFeishu {
            base_url: format!("http://{addr}"),
            ..fake
        }
    }

    /// Lets the app `app_id` / `app_secret` get tenant_access_tokens (for cover uploads).
    pub fn accept_app(&self, app_id: &str, app_secret: &str) {
        self.inner
            .lock()
            .unwrap()
            .apps
            .insert(app_id.to_string(), app_secret.to_string());
    }

    /// The bot's webhook URL.
    pub fn webhook_url(&self) -> String {
        format!(
            "{}/open-apis/bot/v2/hook/{}",
            self.base_url, self.hook_token
        )
    }

    /// A PNG served by this server ([`COVER_PNG`]).
    pub fn cover_url(&self) -> String {
        format!("{}/cover.png", self.base_url)
    }

    /// The protocol violations seen so far (requests the real provider would refuse, or that
    /// break its rules), without asserting anything.
    pub fn violations(&self) -> Vec<String> {
        self.inner.lock().unwrap().violations.clone()
    }

    pub fn script(&self, replies: impl IntoIterator<Item = HookReply>) {
        self.inner.lock().unwrap().script.extend(replies);
    }

    fn checked(&self) -> std::sync::MutexGuard<'_, Inner> {
        let inner = self.inner.lock().unwrap();
        assert!(
            inner.violations.is_empty(),
            "Feishu protocol violations: {:?}",
            inner.violations
        );
        inner
    }

    /// Bodies of the webhook requests received, after asserting there was no protocol violation.
    pub fn requests(&self) -> Vec<Value> {
        self.checked().hooks.clone()
    }

    /// Image uploads received, after asserting there was no protocol violation.
    pub fn uploads(&self) -> Vec<Upload> {
        self.checked().uploads.clone()
    }

    /// How many tenant_access_token requests were made.
    pub fn token_requests(&self) -> usize {
        self.checked().token_requests
    }
}

/// base64(HMAC-SHA256(key = "{timestamp}\n{secret}", message = empty)), computed here.
fn expected_sign(timestamp: &str, secret: &str) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(format!("{timestamp}\n{secret}").as_bytes())
        .expect("HMAC takes any key");
    STANDARD.encode(mac.finalize().into_bytes())
}

fn feishu_error(code: i64, msg: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"code": code, "data": {}, "msg": msg})),
    )
        .into_response()
}

fn check_card(card: &Value, image_keys: &HashSet<String>, violations: &mut Vec<String>) {
    let elements = card["elements"].as_array();
    if elements.is_none_or(|e| e.is_empty()) {
        violations.push("card.elements missing or empty".into());
    }
    for element in elements.into_iter().flatten() {
        let ok = match element["tag"].as_str() {
            Some("markdown") | Some("div") => {
                element["content"].is_string() || element["text"]["content"].is_string()
            }
            Some("img") => {
                let key = element["img_key"].as_str().unwrap_or_default();
                if !image_keys.contains(key) {
                    violations.push(format!("img_key {key:?} was never uploaded"));
                }
                element["alt"]["tag"] == "plain_text"
            }
            Some("action") => element["actions"].as_array().is_some_and(|actions| {
                actions.iter().all(|a| {
                    a["tag"] == "button"
                        && a["text"]["tag"] == "plain_text"
                        && a["url"]
                            .as_str()
                            .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"))
                })
            }),
            Some("hr") => true,
            _ => false,
        };
        if !ok {
            violations.push(format!("bad card element {element}"));
        }
    }
    if let Some(header) = card.get("header") {
        if header["title"]["tag"] != "plain_text" || !header["title"]["content"].is_string() {
            violations.push(format!("bad card header {header}"));
        }
    }
}

async fn hook(
    State(fake): State<FakeFeishu>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if token != fake.hook_token {
        return feishu_error(
            19001,
            "param invalid: incoming webhook access token invalid",
        );
    }
    let mut violations = Vec::new();
    if !headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .starts_with("application/json")
    {
        violations.push("content-type is not application/json".into());
    }
    if body.len() > MAX_HOOK_BODY_BYTES {
        violations.push(format!("body of {} bytes", body.len()));
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
        violations.push(format!("body is not JSON: {e}"));
        Value::Null
    });
    let mut signature_ok = true;
    if let Some(secret) = &fake.secret {
        match (parsed["timestamp"].as_str(), parsed["sign"].as_str()) {
            (Some(ts), Some(sign)) => {
                let fresh = ts
                    .parse::<i64>()
                    .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() <= 3600);
                if !fresh {
                    violations.push(format!("timestamp {ts} is not seconds within an hour"));
                    signature_ok = false;
                }
                if sign != expected_sign(ts, secret) {
                    violations.push(format!("sign {sign} does not match timestamp {ts}"));
                    signature_ok = false;
                }
            }
            _ => {
                violations.push("timestamp (a string) or sign missing".into());
                signature_ok = false;
            }
        }
    }
    let mut inner = fake.inner.lock().unwrap();
    match parsed["msg_type"].as_str() {
        Some("interactive") => check_card(&parsed["card"], &inner.image_keys, &mut violations),
        Some("text") if parsed["content"]["text"].is_string() => {}
        other => violations.push(format!("msg_type {other:?} with body {parsed}")),
    }
    inner.violations.extend(violations);
    inner.hooks.push(parsed);
    if !signature_ok {
        drop(inner);
        return feishu_error(
            19021,
            "sign match fail or timestamp is not within one hour from current time",
        );
    }
    let reply = inner.script.pop_front().unwrap_or(HookReply::Ok);
    drop(inner);
    match reply {
        HookReply::Ok => (
            StatusCode::OK,
            axum::Json(json!({"code": 0, "data": {}, "msg": "success"})),
        )
            .into_response(),
        HookReply::Error { code, msg } => feishu_error(code, &msg),
        HookReply::Raw { status, body } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        )
            .into_response(),
    }
}

async fn tenant_token(State(fake): State<FakeFeishu>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut inner = fake.inner.lock().unwrap();
    inner.token_requests += 1;
    let (Some(app_id), Some(app_secret)) =
        (request["app_id"].as_str(), request["app_secret"].as_str())
    else {
        inner
            .violations
            .push(format!("tenant_access_token request {request}"));
        return axum::Json(json!({"code": 10003, "msg": "invalid param"})).into_response();
    };
    if inner.apps.get(app_id).map(String::as_str) != Some(app_secret) {
        return axum::Json(json!({"code": 10014, "msg": "app secret invalid"})).into_response();
    }
    let token = format!("t-g1044testkit{:04}", inner.issued.len() + 1);
    inner.issued.insert(token.clone());
    axum::Json(json!({
        "code": 0,
        "expire": 7200,
        "msg": "ok",
        "tenant_access_token": token,
    }))
    .into_response()
}

async fn upload(
    State(fake): State<FakeFeishu>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let mut violations = Vec::new();
    let mut image_type = None;
    let mut image = None;
    while let Ok(Some(field)) = form.next_field().await {
        match field.name() {
            Some("image_type") => image_type = field.text().await.ok(),
            Some("image") => {
                let has_file_name = field.file_name().is_some();
                let content_type = field.content_type().map(str::to_string);
                let bytes = field.bytes().await.map(|b| b.len()).unwrap_or(0);
                if !has_file_name {
                    violations.push("the image part has no file name".into());
                }
                image = Some((content_type, bytes));
            }
            other => violations.push(format!("unexpected form field {other:?}")),
        }
    }
    if image_type.as_deref() != Some("message") {
        violations.push(format!("image_type {image_type:?}"));
    }
    let mut inner = fake.inner.lock().unwrap();
    inner.violations.extend(violations);
    if !inner.issued.contains(&bearer) {
        inner.uploads.push(Upload {
            bearer,
            content_type: image.as_ref().and_then(|i| i.0.clone()),
            bytes: image.map_or(0, |i| i.1),
            image_key: None,
        });
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "code": 99991663,
                "msg": "Invalid access token for authorization. Please make a request with token attached."
            })),
        )
            .into_response();
    }
    let Some((content_type, bytes)) = image.filter(|(_, bytes)| *bytes > 0) else {
        inner.violations.push("no image in the upload".into());
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": 234001, "msg": "Invalid request param."})),
        )
            .into_response();
    };
    let key = format!("img_v3_testkit_{}", inner.uploads.len() + 1);
    inner.image_keys.insert(key.clone());
    inner.uploads.push(Upload {
        bearer,
        content_type,
        bytes,
        image_key: Some(key.clone()),
    });
    axum::Json(json!({"code": 0, "data": {"image_key": key}, "msg": "success"})).into_response()
}
