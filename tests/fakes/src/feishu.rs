//! A Feishu / Lark server: the custom bot webhook (`/open-apis/bot/v2/hook/{token}`) and the
//! Open API endpoints a card cover needs (`tenant_access_token/internal`, `im/v1/images`), plus a
//! cover image and an HTML page to download. Lark serves the same paths, so one fake plays both.
//!
//! The webhook checks the hook token, the JSON body (at most 20,000 bytes), the signature when the
//! bot has a signing secret (recomputed here: base64(HMAC-SHA256(key = `"{timestamp}\n{secret}"`,
//! empty message)), timestamp in seconds within an hour of now) and the card's shape, and answers
//! like Feishu: HTTP 200 with `{"code":0,"data":{},"msg":"success"}`, or HTTP 200 with the error
//! code (19001 unknown hook, 19021 bad signature, or whatever is scripted).
//!
//! The token endpoint gives the accepted apps two-hour tenant_access_tokens; the upload checks the
//! Bearer token (issued here, not expired), the multipart form, and that the image is the cover
//! served here, unaltered.
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
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

/// Largest webhook request body Feishu accepts: it documents "20 K", read here the strict way.
pub const MAX_HOOK_BODY_BYTES: usize = 20_000;

/// Lifetime Feishu gives a tenant_access_token (the `expire` of its reply).
pub const TOKEN_LIFETIME_SECS: i64 = 7200;

const BAD_SIGNATURE_MSG: &str =
    "sign match fail or timestamp is not within one hour from current time";
const INVALID_PARAM_CODE: i64 = 234001;
const INVALID_PARAM_MSG: &str = "Invalid request param.";

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
    /// Any status and a JSON body.
    Json {
        status: u16,
        body: Value,
    },
}

impl HookReply {
    /// Feishu's reply to a wrong signature or a stale timestamp.
    pub fn bad_signature() -> HookReply {
        HookReply::Error {
            code: 19021,
            msg: BAD_SIGNATURE_MSG.into(),
        }
    }

    /// Feishu's reply when the bot's keyword security setting finds no keyword.
    pub fn keyword_missing() -> HookReply {
        HookReply::Error {
            code: 19024,
            msg: "Key Words Not Found".into(),
        }
    }

    /// Feishu's throttling code; the msg text is not a captured one.
    pub fn throttled() -> HookReply {
        HookReply::Error {
            code: 11232,
            msg: "frequency limited".into(),
        }
    }

    /// The older success body, which still carries `StatusCode` / `StatusMessage` beside
    /// `code` / `msg`.
    pub fn legacy_ok() -> HookReply {
        HookReply::Json {
            status: 200,
            body: json!({
                "StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"
            }),
        }
    }

    /// A failure in front of the bot: HTTP 500 with a body that is not a bot reply.
    pub fn server_error() -> HookReply {
        HookReply::Raw {
            status: 500,
            body: "upstream error".into(),
        }
    }
}

/// What an image upload with a valid token answers, in order; when the script is empty it
/// answers success.
#[derive(Debug, Clone)]
pub enum UploadReply {
    Ok,
    /// The upload's token dies now (Feishu can end one before its `expire`): this and every later
    /// use of it gets 99991663.
    TokenExpired,
    /// HTTP `status` with `{"code":code,"msg":msg}`.
    Error {
        status: u16,
        code: i64,
        msg: String,
    },
}

impl UploadReply {
    /// Feishu's reply to an upload it will not take.
    pub fn invalid_param() -> UploadReply {
        UploadReply::Error {
            status: 400,
            code: INVALID_PARAM_CODE,
            msg: INVALID_PARAM_MSG.into(),
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

/// Unix seconds.
type Clock = Box<dyn Fn() -> i64 + Send + Sync>;

#[derive(Default)]
struct Inner {
    hooks: Vec<Value>,
    violations: Vec<String>,
    script: VecDeque<HookReply>,
    upload_script: VecDeque<UploadReply>,
    apps: HashMap<String, String>,
    /// Token → when it expires (Unix seconds).
    issued: HashMap<String, i64>,
    killed_tokens: HashSet<String>,
    image_keys: HashSet<String>,
    uploads: Vec<Upload>,
    token_requests: usize,
    clock: Option<Clock>,
}

impl Inner {
    fn now(&self) -> i64 {
        match &self.clock {
            Some(clock) => clock(),
            None => chrono::Utc::now().timestamp(),
        }
    }
}

#[derive(Clone)]
pub struct FakeFeishu {
    /// Only in the test's copies; see [`crate::ViolationCheck`].
    _check: Option<Arc<crate::ViolationCheck>>,
    pub base_url: String,
    hook_token: String,
    secret: Option<String>,
    inner: Arc<Mutex<Inner>>,
}

impl FakeFeishu {
    /// Starts a server whose one bot has `hook_token` and, if given, the signing secret `secret`.
    pub async fn start(hook_token: &str, secret: Option<&str>) -> FakeFeishu {
        let fake = FakeFeishu {
            _check: None,
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
            .route(
                "/page.html",
                get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<html></html>") }),
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
            _check: Some(crate::ViolationCheck::new("Feishu", &fake.inner, |inner| {
                &mut inner.violations
            })),
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

    /// Judges signature timestamps and token lifetimes by `now_secs` (Unix seconds) instead of
    /// the system clock, for a sender running on a simulated clock.
    pub fn use_clock(&self, now_secs: impl Fn() -> i64 + Send + Sync + 'static) {
        self.inner.lock().unwrap().clock = Some(Box::new(now_secs));
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

    /// An HTML page served by this server: a cover URL that is not an image.
    pub fn html_page_url(&self) -> String {
        format!("{}/page.html", self.base_url)
    }

    /// The protocol violations seen so far (requests the real provider would refuse, or that
    /// break its rules), without asserting anything.
    ///
    /// Takes them: a test that provokes violations on purpose checks them here, and they no
    /// longer fail it when the fake is dropped.
    pub fn violations(&self) -> Vec<String> {
        std::mem::take(&mut self.inner.lock().unwrap().violations)
    }

    pub fn script(&self, replies: impl IntoIterator<Item = HookReply>) {
        self.inner.lock().unwrap().script.extend(replies);
    }

    pub fn script_uploads(&self, replies: impl IntoIterator<Item = UploadReply>) {
        self.inner.lock().unwrap().upload_script.extend(replies);
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

    /// Image uploads received (refused ones too), after asserting there was no protocol
    /// violation.
    pub fn uploads(&self) -> Vec<Upload> {
        self.checked().uploads.clone()
    }

    /// How many tenant_access_token requests were made, after asserting there was no protocol
    /// violation.
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

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .starts_with("application/json")
}

fn feishu_error(code: i64, msg: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"code": code, "data": {}, "msg": msg})),
    )
        .into_response()
}

fn api_error(status: u16, code: i64, msg: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({"code": code, "msg": msg})),
    )
        .into_response()
}

fn is_http_url(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"))
}

/// Only the elements a notification card is made of are accepted: Feishu has more, but one of
/// those arriving here means the card is not the one the sender meant to build.
fn check_card(card: &Value, image_keys: &HashSet<String>, violations: &mut Vec<String>) {
    let elements = card["elements"].as_array();
    if elements.is_none_or(|e| e.is_empty()) {
        violations.push("card.elements missing or empty".into());
    }
    for element in elements.into_iter().flatten() {
        let ok = match element["tag"].as_str() {
            Some("markdown") => element["content"].is_string(),
            Some("img") => {
                let key = element["img_key"].as_str().unwrap_or_default();
                if !image_keys.contains(key) {
                    violations.push(format!("img_key {key:?} was never uploaded"));
                }
                element["alt"]["tag"] == "plain_text" && element["alt"]["content"].is_string()
            }
            Some("action") => element["actions"].as_array().is_some_and(|actions| {
                !actions.is_empty()
                    && actions.iter().all(|a| {
                        a["tag"] == "button"
                            && a["text"]["tag"] == "plain_text"
                            && a["text"]["content"].is_string()
                            && is_http_url(&a["url"])
                    })
            }),
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
        fake.inner
            .lock()
            .unwrap()
            .violations
            .push(format!("hook token {token:?} is not the bot's"));
        return feishu_error(
            19001,
            "param invalid: incoming webhook access token invalid",
        );
    }
    let mut violations = Vec::new();
    if !is_json(&headers) {
        violations.push("content-type is not application/json".into());
    }
    if body.len() > MAX_HOOK_BODY_BYTES {
        violations.push(format!("body of {} bytes", body.len()));
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
        violations.push(format!("body is not JSON: {e}"));
        Value::Null
    });
    let mut inner = fake.inner.lock().unwrap();
    let mut signature_ok = true;
    if let Some(secret) = &fake.secret {
        match (parsed["timestamp"].as_str(), parsed["sign"].as_str()) {
            (Some(ts), Some(sign)) => {
                let now = inner.now();
                let fresh = ts.parse::<i64>().is_ok_and(|t| (now - t).abs() <= 3600);
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
    if parsed["msg_type"] == "interactive" {
        check_card(&parsed["card"], &inner.image_keys, &mut violations);
    } else {
        violations.push(format!("msg_type {} is not a card", parsed["msg_type"]));
    }
    inner.violations.extend(violations);
    inner.hooks.push(parsed);
    if !signature_ok {
        return feishu_error(19021, BAD_SIGNATURE_MSG);
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
        HookReply::Json { status, body } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(body),
        )
            .into_response(),
    }
}

async fn tenant_token(State(fake): State<FakeFeishu>, headers: HeaderMap, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut inner = fake.inner.lock().unwrap();
    inner.token_requests += 1;
    if !is_json(&headers) {
        inner
            .violations
            .push("tenant_access_token request content-type is not application/json".into());
    }
    let (Some(app_id), Some(app_secret)) =
        (request["app_id"].as_str(), request["app_secret"].as_str())
    else {
        inner
            .violations
            .push(format!("tenant_access_token request {request}"));
        return axum::Json(json!({"code": 10003, "msg": "invalid param"})).into_response();
    };
    let extra: Vec<&String> = request
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .filter(|k| *k != "app_id" && *k != "app_secret")
        .collect();
    if !extra.is_empty() {
        let violation = format!("tenant_access_token request with extra fields {extra:?}");
        inner.violations.push(violation);
    }
    if inner.apps.get(app_id).map(String::as_str) != Some(app_secret) {
        let violation = format!("tenant_access_token for {app_id:?} with a wrong app_secret");
        inner.violations.push(violation);
        return axum::Json(json!({"code": 10014, "msg": "app secret invalid"})).into_response();
    }
    let token = format!("t-g1044fake{:04}", inner.issued.len() + 1);
    let expires_at = inner.now() + TOKEN_LIFETIME_SECS;
    inner.issued.insert(token.clone(), expires_at);
    axum::Json(json!({
        "code": 0,
        "expire": TOKEN_LIFETIME_SECS,
        "msg": "ok",
        "tenant_access_token": token,
    }))
    .into_response()
}

/// The image part of an upload.
struct ImagePart {
    file_name: Option<String>,
    content_type: Option<String>,
    data: Bytes,
}

/// Reads the form's `image_type` and `image`, noting anything else.
async fn read_upload_form(
    mut form: Multipart,
    violations: &mut Vec<String>,
) -> (Option<String>, Option<ImagePart>) {
    let mut image_type = None;
    let mut image = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => {
                violations.push(format!("malformed multipart body: {e}"));
                break;
            }
        };
        match field.name() {
            Some("image_type") => image_type = field.text().await.ok(),
            Some("image") => {
                let file_name = field.file_name().map(str::to_string);
                let content_type = field.content_type().map(str::to_string);
                let data = field.bytes().await.unwrap_or_default();
                if image.is_some() {
                    violations.push("two image parts".into());
                }
                image = Some(ImagePart {
                    file_name,
                    content_type,
                    data,
                });
            }
            other => violations.push(format!("unexpected form field {other:?}")),
        }
    }
    (image_type, image)
}

async fn upload(
    State(fake): State<FakeFeishu>,
    headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let bearer = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let mut violations = Vec::new();
    let (image_type, image) = match form {
        Ok(form) => read_upload_form(form, &mut violations).await,
        Err(rejection) => {
            violations.push(format!("not a multipart/form-data upload: {rejection}"));
            (None, None)
        }
    };
    let mut form_ok = true;
    if image_type.as_deref() != Some("message") {
        violations.push(format!("image_type {image_type:?}"));
        form_ok = false;
    }
    match &image {
        None => {
            violations.push("no image in the upload".into());
            form_ok = false;
        }
        Some(part) if part.file_name.is_none() || part.data.is_empty() => {
            violations.push("the image part has no file name or no bytes".into());
            form_ok = false;
        }
        // Feishu would take other images; this one must arrive exactly as downloaded.
        Some(part)
            if part.content_type.as_deref() != Some("image/png") || part.data != COVER_PNG =>
        {
            violations.push(format!(
                "the image is not the cover served here: {:?}, {} bytes",
                part.content_type,
                part.data.len()
            ));
        }
        Some(_) => {}
    }

    let mut inner = fake.inner.lock().unwrap();
    let now = inner.now();
    let token_refusal = if bearer.is_empty() {
        violations.push(format!(
            "Authorization {authorization:?} is no Bearer token"
        ));
        Some(api_error(
            400,
            99991661,
            "Missing access token for authorization. Please make a request with token attached.",
        ))
    } else {
        let live = match inner.issued.get(&bearer) {
            None => {
                violations.push(format!("Bearer token {bearer:?} was never issued here"));
                false
            }
            Some(expires_at) => *expires_at > now && !inner.killed_tokens.contains(&bearer),
        };
        (!live).then(invalid_token)
    };
    inner.violations.extend(violations);

    let ordinal = inner.uploads.len() + 1;
    let mut image_key = None;
    let reply = if let Some(refusal) = token_refusal {
        refusal
    } else if !form_ok {
        api_error(400, INVALID_PARAM_CODE, INVALID_PARAM_MSG)
    } else {
        match inner.upload_script.pop_front().unwrap_or(UploadReply::Ok) {
            UploadReply::Ok => {
                let key = format!("img_v3_fake_{ordinal}");
                inner.image_keys.insert(key.clone());
                image_key = Some(key.clone());
                axum::Json(json!({"code": 0, "data": {"image_key": key}, "msg": "success"}))
                    .into_response()
            }
            UploadReply::TokenExpired => {
                inner.killed_tokens.insert(bearer.clone());
                invalid_token()
            }
            UploadReply::Error { status, code, msg } => api_error(status, code, &msg),
        }
    };
    inner.uploads.push(Upload {
        bearer,
        content_type: image.as_ref().and_then(|i| i.content_type.clone()),
        bytes: image.map_or(0, |i| i.data.len()),
        image_key,
    });
    reply
}

/// Feishu's reply to a tenant_access_token that is unknown or expired.
fn invalid_token() -> Response {
    api_error(
        400,
        99991663,
        "Invalid access token for authorization. Please make a request with token attached.",
    )
}
