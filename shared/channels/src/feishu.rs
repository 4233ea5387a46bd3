//! Feishu / Lark custom bot (webhook + signing secret); the source's app credentials upload
//! cover images.
//!
//! One `msg_type: interactive` card per message, signed in the body (see [`crate::sign`]).
//! Success is HTTP 200 **and** `code == 0`: the bot answers HTTP 200 to most failures.
//!
//! A cover image needs an `img_key`, which only an app can make: with the source's `app_id` and
//! `app_secret` the channel gets a tenant_access_token (cached per app until five minutes before
//! it expires, shared by all sends of the container), downloads the cover and uploads it. If any
//! of that fails the card is sent without the image and a warning is logged.
//!
//! The webhook URL's last segment is the bot's access token: reqwest errors are stripped of their
//! URL and outcome messages are scrubbed of the token and the secrets.
//!
//! [`build_body`] makes the request body for both `send` and `preview`; `send` adds the image key
//! it uploaded and the signature.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use notify_domain::{ChannelKind, FieldFormat, FieldSpec, KindSpec, Message};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::http::{describe_error, fetch_client, network_outcome, refuse_fetch};
use crate::sign::{feishu_sign, system_clock, Clock};
use crate::text::{excerpt, fit_with_ellipsis, redact, REDACTED};
use crate::{
    config_str, Channel, Endpoints, Outcome, Preview, PreviewKind, PreviewPart, SendRequest,
};

pub static SPEC: KindSpec = KindSpec {
    kind: ChannelKind::Feishu,
    label: "Feishu / Lark",
    source_fields: &[
        FieldSpec::new("app_id", "App ID", FieldFormat::Text { max_chars: 64 })
            .help("App ID of a self-built app with the image upload permission"),
        FieldSpec::new(
            "app_secret",
            "App secret",
            FieldFormat::Secret {
                max_chars: 128,
                multiline: false,
            },
        )
        .secret(),
        FieldSpec::new(
            "domain",
            "Deployment",
            FieldFormat::Choice {
                options: &["feishu", "lark"],
                local_only: &[],
            },
        )
        .default_value("feishu")
        .help("feishu (open.feishu.cn) or lark (open.larksuite.com)"),
    ],
    target_fields: &[
        FieldSpec::new(
            "webhook_url",
            "Webhook URL",
            FieldFormat::WebhookUrl {
                hosts: &["open.feishu.cn", "open.larksuite.com"],
                path_prefix: "/open-apis/bot/v2/hook/",
                query: &[],
            },
        ),
        FieldSpec::new(
            "sign",
            "Signing secret",
            FieldFormat::Secret {
                max_chars: 128,
                multiline: false,
            },
        )
        .secret()
        .help("The bot's signature verification secret"),
    ],
};

/// Largest webhook request body Feishu accepts is 20 KB; we stay under 20,000 bytes.
pub const MAX_BODY_BYTES: usize = 20_000;

/// Largest cover image downloaded and uploaded (Feishu's limit for message images).
pub const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;

/// A cached tenant_access_token is replaced this long before Feishu says it expires.
pub const TOKEN_REFRESH_MARGIN_SECS: i64 = 300;

/// Codes for an expired or invalid tenant_access_token: drop it, fetch a new one, retry once.
const TOKEN_INVALID_CODES: [i64; 2] = [99991663, 99991661];

/// Codes of the webhook's reply.
const CODE_THROTTLED: i64 = 11232;
const CODE_BAD_SIGNATURE: i64 = 19021;
const CODE_IP_NOT_ALLOWED: i64 = 19022;
const CODE_KEYWORD_MISSING: i64 = 19024;

/// Label of the link button when the message has none.
const DEFAULT_LINK_LABEL: &str = "Open";

struct CachedToken {
    token: String,
    /// Seconds since the epoch after which the token is fetched again.
    refresh_at: i64,
}

pub struct FeishuChannel {
    http: reqwest::Client,
    /// Downloads covers: URLs from users and events, so public addresses only (see
    /// [`crate::http::fetch_client`]).
    fetch: reqwest::Client,
    endpoints: Endpoints,
    feishu_api_base: String,
    lark_api_base: String,
    /// Timeout of each cover download and image upload request.
    timeout: Duration,
    clock: Arc<dyn Clock>,
    /// tenant_access_token per (API base, app_id), shared by all sends of this container.
    tokens: Mutex<HashMap<(String, String), CachedToken>>,
}

impl FeishuChannel {
    pub fn new(http: reqwest::Client, endpoints: &Endpoints) -> Result<Self, reqwest::Error> {
        Ok(FeishuChannel {
            http,
            fetch: fetch_client(endpoints)?,
            endpoints: endpoints.clone(),
            feishu_api_base: endpoints.feishu_api_base.trim_end_matches('/').to_string(),
            lark_api_base: endpoints.lark_api_base.trim_end_matches('/').to_string(),
            timeout: endpoints.timeout,
            clock: system_clock(),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// Signs and expires tokens with `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn api_base(&self, source_config: &serde_json::Map<String, Value>) -> &str {
        match config_str(source_config, "domain") {
            Some("lark") => &self.lark_api_base,
            _ => &self.feishu_api_base,
        }
    }

    /// A tenant_access_token for the app, from the cache while it has more than
    /// [`TOKEN_REFRESH_MARGIN_SECS`] left, else freshly fetched.
    async fn tenant_token(
        &self,
        base: &str,
        app_id: &str,
        app_secret: &str,
    ) -> Result<String, String> {
        let key = (base.to_string(), app_id.to_string());
        if let Some(cached) = self.tokens.lock().await.get(&key) {
            if self.clock.now_secs() < cached.refresh_at {
                return Ok(cached.token.clone());
            }
        }
        let response = self
            .http
            .post(format!(
                "{base}/open-apis/auth/v3/tenant_access_token/internal"
            ))
            .json(&json!({"app_id": app_id, "app_secret": app_secret}))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| describe_error("the tenant_access_token request failed", e))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| describe_error("reading the tenant_access_token reply failed", e))?;
        let reply: TokenReply = serde_json::from_slice(&body).map_err(|_| {
            format!(
                "the tenant_access_token request answered HTTP {status}: {}",
                excerpt(&body)
            )
        })?;
        let token = match (reply.code, reply.tenant_access_token) {
            (Some(0), Some(token)) if !token.is_empty() => token,
            (code, _) => {
                return Err(format!(
                    "the tenant_access_token request failed: code {}: {}",
                    code.unwrap_or(-1),
                    reply.msg.unwrap_or_default()
                ))
            }
        };
        let expire = reply.expire.unwrap_or(7200);
        let refresh_at = self.clock.now_secs() + (expire - TOKEN_REFRESH_MARGIN_SECS).max(0);
        self.tokens.lock().await.insert(
            key,
            CachedToken {
                token: token.clone(),
                refresh_at,
            },
        );
        Ok(token)
    }

    /// Forgets `token` (only if it is still the cached one: another send may have replaced it).
    async fn drop_token(&self, base: &str, app_id: &str, token: &str) {
        let key = (base.to_string(), app_id.to_string());
        let mut tokens = self.tokens.lock().await;
        if tokens.get(&key).is_some_and(|c| c.token == token) {
            tokens.remove(&key);
        }
    }

    /// Downloads the cover (http(s) only, an `image/*` reply of at most [`MAX_IMAGE_BYTES`]).
    async fn download_cover(&self, cover_url: &str) -> Result<(Vec<u8>, String), String> {
        let url = url::Url::parse(cover_url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or("the cover is not an http(s) URL")?;
        if let Some(reason) = refuse_fetch(&url, &self.endpoints) {
            return Err(format!("the cover is not fetched: {reason}"));
        }
        let mut response = self
            .fetch
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| describe_error("downloading the cover failed", e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!(
                "downloading the cover answered HTTP {}",
                status.as_u16()
            ));
        }
        let mime = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if !mime.starts_with("image/") {
            return Err(format!("the cover is not an image (content-type {mime:?})"));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_IMAGE_BYTES as u64)
        {
            return Err(format!("the cover is larger than {MAX_IMAGE_BYTES} bytes"));
        }
        let mut data = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| describe_error("downloading the cover failed", e))?
        {
            if data.len() + chunk.len() > MAX_IMAGE_BYTES {
                return Err(format!("the cover is larger than {MAX_IMAGE_BYTES} bytes"));
            }
            data.extend_from_slice(&chunk);
        }
        Ok((data, mime))
    }

    async fn upload_image(
        &self,
        base: &str,
        token: &str,
        data: &[u8],
        mime: &str,
    ) -> Result<String, UploadError> {
        let part = reqwest::multipart::Part::bytes(data.to_vec()).file_name("cover");
        let part = part
            .mime_str(mime)
            .unwrap_or_else(|_| reqwest::multipart::Part::bytes(data.to_vec()).file_name("cover"));
        let form = reqwest::multipart::Form::new()
            .text("image_type", "message")
            .part("image", part);
        let response = self
            .http
            .post(format!("{base}/open-apis/im/v1/images"))
            .bearer_auth(token)
            .multipart(form)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| UploadError::Other(describe_error("the image upload failed", e)))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| {
            UploadError::Other(describe_error("reading the image upload reply failed", e))
        })?;
        let Ok(reply) = serde_json::from_slice::<UploadReply>(&body) else {
            return Err(UploadError::Other(format!(
                "the image upload answered HTTP {status}: {}",
                excerpt(&body)
            )));
        };
        match reply.code {
            Some(code) if TOKEN_INVALID_CODES.contains(&code) => Err(UploadError::TokenInvalid),
            Some(0) => reply
                .data
                .and_then(|d| d.image_key)
                .filter(|k| !k.is_empty())
                .ok_or_else(|| {
                    UploadError::Other("the image upload answered without data.image_key".into())
                }),
            code => Err(UploadError::Other(format!(
                "the image upload failed (HTTP {status}): code {}: {}",
                code.unwrap_or(-1),
                reply.msg.unwrap_or_default()
            ))),
        }
    }

    /// Downloads the cover and uploads it with the app's credentials; the image_key. An
    /// expired or invalid token is replaced once.
    async fn upload_cover(
        &self,
        base: &str,
        app_id: &str,
        app_secret: &str,
        cover_url: &str,
    ) -> Result<String, String> {
        let (data, mime) = self.download_cover(cover_url).await?;
        let token = self.tenant_token(base, app_id, app_secret).await?;
        match self.upload_image(base, &token, &data, &mime).await {
            Ok(key) => Ok(key),
            Err(UploadError::Other(reason)) => Err(reason),
            Err(UploadError::TokenInvalid) => {
                self.drop_token(base, app_id, &token).await;
                let token = self.tenant_token(base, app_id, app_secret).await?;
                match self.upload_image(base, &token, &data, &mime).await {
                    Ok(key) => Ok(key),
                    Err(UploadError::Other(reason)) => Err(reason),
                    Err(UploadError::TokenInvalid) => {
                        self.drop_token(base, app_id, &token).await;
                        Err("a freshly fetched tenant_access_token was refused too".into())
                    }
                }
            }
        }
    }
}

enum UploadError {
    TokenInvalid,
    Other(String),
}

#[derive(Deserialize)]
struct TokenReply {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    tenant_access_token: Option<String>,
    #[serde(default)]
    expire: Option<i64>,
}

#[derive(Deserialize)]
struct UploadReply {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    data: Option<UploadData>,
}

#[derive(Deserialize)]
struct UploadData {
    #[serde(default)]
    image_key: Option<String>,
}

#[async_trait]
impl Channel for FeishuChannel {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn send(&self, request: &SendRequest<'_>) -> Outcome {
        let Some(webhook_url) = config_str(request.target_config, "webhook_url") else {
            return Outcome::bad_config("the target has no webhook_url");
        };
        // The last path segment of the webhook URL is the bot's access token.
        let Ok(url) = url::Url::parse(webhook_url) else {
            return Outcome::bad_config("the webhook_url is not a valid URL");
        };
        let webhook_token = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .unwrap_or_default()
            .to_string();
        let secret = request
            .target_secrets
            .get("sign")
            .map(|s| s.expose())
            .filter(|s| !s.is_empty());
        let app_id = config_str(request.source_config, "app_id").filter(|s| !s.is_empty());
        let app_secret = request
            .source_secrets
            .get("app_secret")
            .map(|s| s.expose())
            .filter(|s| !s.is_empty());

        let cover = request
            .message
            .cover_url
            .as_deref()
            .filter(|c| !c.trim().is_empty());
        let image_key = match (cover, app_id, app_secret) {
            (Some(cover), Some(app_id), Some(app_secret)) => {
                let base = self.api_base(request.source_config);
                match self.upload_cover(base, app_id, app_secret, cover).await {
                    Ok(key) => Some(key),
                    Err(reason) => {
                        tracing::warn!(
                            reason = %redact(reason, &[app_secret], REDACTED),
                            "Feishu: the cover image could not be uploaded; sending the card without it"
                        );
                        None
                    }
                }
            }
            (Some(_), _, _) => {
                tracing::warn!("Feishu: the source has no app credentials to upload the cover; sending the card without it");
                None
            }
            _ => None,
        };

        // The same body as the preview, with the real image key; then the signature.
        let mut payload = build_body(request.message, image_key.as_deref());
        if let Some(secret) = secret {
            let timestamp = self.clock.now_secs();
            payload["timestamp"] = json!(timestamp.to_string());
            payload["sign"] = json!(feishu_sign(timestamp, secret));
        }
        let outcome = match self.http.post(url).json(&payload).send().await {
            Err(e) => network_outcome("sending the request to Feishu failed", e),
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("x-ogw-ratelimit-reset")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                match response.bytes().await {
                    Ok(body) => interpret_reply(status, retry_after, &body),
                    Err(e) => network_outcome("reading Feishu's reply failed", e),
                }
            }
        };
        let mut hidden = vec![webhook_token.as_str()];
        hidden.extend(secret);
        hidden.extend(app_secret);
        // Defence in depth: the webhook token and the secrets should never get there.
        outcome.scrub(&hidden)
    }

    /// The body of [`build_body`] without `timestamp` and `sign`. A cover that will be uploaded
    /// (the message has an http(s) cover and the source an `app_id`) shows as an `img` element
    /// whose `img_key` is [`PREVIEW_IMAGE_KEY`]: the real key exists only once the image is
    /// uploaded, at send time. Room for the real key and the signature is reserved either way, so
    /// the text is cut exactly where the send cuts it.
    fn preview(&self, request: &SendRequest<'_>) -> Result<Preview, Outcome> {
        let Some(webhook_url) = config_str(request.target_config, "webhook_url") else {
            return Err(Outcome::bad_config("the target has no webhook_url"));
        };
        if url::Url::parse(webhook_url).is_err() {
            return Err(Outcome::bad_config("the webhook_url is not a valid URL"));
        }
        let has_app = config_str(request.source_config, "app_id").is_some_and(|s| !s.is_empty());
        let mut notes = Vec::new();
        let image_key = match cover_url(request.message) {
            Some(Ok(_)) if has_app => {
                notes.push(format!(
                    "the cover is downloaded and uploaded with the source's app credentials at \
                     send time, and its image key replaces \"{PREVIEW_IMAGE_KEY}\"; if that \
                     fails, the card is sent without the image"
                ));
                Some(PREVIEW_IMAGE_KEY)
            }
            Some(Ok(_)) => {
                notes.push(
                    "the source has no app credentials to upload the cover: it is left out".into(),
                );
                None
            }
            Some(Err(())) => {
                notes.push("the cover is not an http(s) URL: it is left out".into());
                None
            }
            None => None,
        };
        let (body, more) = build(request.message, image_key);
        notes.extend(more);
        Ok(Preview {
            channel: ChannelKind::Feishu,
            parts: vec![PreviewPart::new(PreviewKind::FeishuCard, body)],
            notes,
        })
    }
}

/// The message's cover: `None` without one, `Err` when it is not an absolute http(s) URL.
fn cover_url(message: &Message) -> Option<Result<url::Url, ()>> {
    let text = message
        .cover_url
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())?;
    Some(
        url::Url::parse(text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or(()),
    )
}

/// The webhook request body without `timestamp` and `sign`: `msg_type: interactive` with the
/// card from [`card`]. Used by both `send` (which adds the signature) and `preview` (which passes
/// [`PREVIEW_IMAGE_KEY`] for a cover to be uploaded).
///
/// The serialized body is kept within [`MAX_BODY_BYTES`] **including** the signature fields and
/// an image key of up to [`IMAGE_KEY_RESERVE`] bytes, whatever the actual ones: the body text is
/// cut on a character boundary and ends with "…" (before escaping, so no entity is ever split);
/// if even an empty body does not fit, the title is cut the same way.
pub fn build_body(message: &Message, image_key: Option<&str>) -> Value {
    build(message, image_key).0
}

/// `"timestamp"` and `"sign"` as long as they ever are: seconds have 10 digits until 2286, and
/// the signature is the base64 of a 32-byte HMAC (44 characters).
const TIMESTAMP_PLACEHOLDER: &str = "0000000000";
const SIGN_PLACEHOLDER: &str = "0000000000000000000000000000000000000000000=";

/// Bytes reserved for the image key when the card has an image. Feishu's keys are about 40-60
/// ASCII characters (`img_v3_02…`); a longer one gets its own room.
pub const IMAGE_KEY_RESERVE: usize = 128;

/// The `img_key` a preview shows for a cover that is uploaded at send time.
pub const PREVIEW_IMAGE_KEY: &str = "<uploaded at send time>";

/// [`build_body`], with notes on what was shortened or left out (for previews).
fn build(message: &Message, image_key: Option<&str>) -> (Value, Vec<String>) {
    let mut notes = Vec::new();
    if message
        .link
        .as_deref()
        .is_some_and(|l| !l.trim().is_empty())
        && message.link.as_deref().and_then(http_url).is_none()
    {
        notes.push("the link is not an http(s) URL: it is left out".to_string());
    }
    let envelope = |title: &str, body: &str, image_key: Option<&str>| {
        json!({
            "msg_type": "interactive",
            "card": card(title, body, message, image_key),
        })
    };
    let reserved_key = image_key.map(|key| "k".repeat(key.len().max(IMAGE_KEY_RESERVE)));
    let fits = |title: &str, body: &str| {
        let mut sized = envelope(title, body, reserved_key.as_deref());
        sized["timestamp"] = json!(TIMESTAMP_PLACEHOLDER);
        sized["sign"] = json!(SIGN_PLACEHOLDER);
        serde_json::to_vec(&sized).is_ok_and(|v| v.len() <= MAX_BODY_BYTES)
    };
    let title = message.title.clone();
    let body = normalise_newlines(&message.body);
    if fits(&title, &body) {
        return (envelope(&title, &body, image_key), notes);
    }
    let body = fit_with_ellipsis(&body, |b| fits(&title, b));
    let title = if fits(&title, &body) {
        notes.push(format!(
            "the body was shortened to fit Feishu's {MAX_BODY_BYTES}-byte limit"
        ));
        title
    } else {
        notes.push(format!(
            "the title and body were shortened to fit Feishu's {MAX_BODY_BYTES}-byte limit"
        ));
        fit_with_ellipsis(&title, |t| fits(t, &body))
    };
    (envelope(&title, &body, image_key), notes)
}

/// The card (JSON 1.0 structure): a blue header with the plain-text title; then the cover
/// (`img` with the uploaded `img_key`), the body as a `markdown` element escaped with
/// [`escape_markdown`], and a primary button opening the link (absolute http(s) links only).
pub fn card(title: &str, body: &str, message: &Message, image_key: Option<&str>) -> Value {
    let mut elements = Vec::new();
    if let Some(key) = image_key {
        elements.push(json!({
            "tag": "img",
            "img_key": key,
            "alt": {"tag": "plain_text", "content": ""},
        }));
    }
    if !body.trim().is_empty() {
        elements.push(json!({"tag": "markdown", "content": escape_markdown(body)}));
    }
    // A link that is not http(s) is left out (a preview says so).
    if let Some(url) = message
        .link
        .as_deref()
        .filter(|l| !l.trim().is_empty())
        .and_then(http_url)
    {
        let label = message
            .link_label
            .as_deref()
            .filter(|l| !l.trim().is_empty())
            .unwrap_or(DEFAULT_LINK_LABEL);
        elements.push(json!({
            "tag": "action",
            "actions": [{
                "tag": "button",
                "text": {"tag": "plain_text", "content": label},
                "type": "primary",
                "url": url,
            }],
        }));
    }
    if elements.is_empty() {
        // A card needs at least one element.
        let text = if title.trim().is_empty() {
            "(empty message)"
        } else {
            title
        };
        elements.push(json!({"tag": "markdown", "content": escape_markdown(text)}));
    }
    let mut card = json!({
        "config": {"wide_screen_mode": true},
        "elements": elements,
    });
    if !title.trim().is_empty() {
        card["header"] = json!({
            "template": "blue",
            "title": {"tag": "plain_text", "content": title},
        });
    }
    card
}

/// Escapes plain text for a Feishu card `markdown` element. Feishu's documentation ("特殊字符转义
/// 说明", card rich-text component) says special characters are shown by HTML-escaping them as
/// `&#<code>;`; it documents no backslash escapes. These characters become numeric entities:
///
/// `&` `<` `>` `\` `` ` `` `*` `_` `~` `[` `]` `(` `)` `#` `!` `+` `-` `|` `$` `:` `=`, and `.`
/// only after digits at the start of a line (an ordered list).
///
/// That rules out links and images (`[`, `]`, `(`, `)`, `!`), `<a>`/`<at>`/`<font>` tags (`<`),
/// emphasis and strike-through (`*`, `_`, `~`), code (`` ` ``), headings, quotes and lists
/// (`#`, `>`, `-`, `+`, `=`), tables (`|`), `:emoji:` codes (`:`), `${var}` (`$`) and
/// entity tricks (`&`: typed `&#91;` stays visible as typed).
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut line_prefix = true; // only spaces and digits so far on this line
    let mut digits = false;
    for c in text.chars() {
        match c {
            '&' | '<' | '>' | '\\' | '`' | '*' | '_' | '~' | '[' | ']' | '(' | ')' | '#' | '!'
            | '+' | '-' | '|' | '$' | ':' | '=' => {
                out.push_str(&format!("&#{};", c as u32));
            }
            '.' if line_prefix && digits => out.push_str("&#46;"),
            _ => out.push(c),
        }
        if c == '\n' {
            line_prefix = true;
            digits = false;
        } else if line_prefix && c.is_ascii_digit() {
            digits = true;
        } else if !(line_prefix && c == ' ' && !digits) {
            line_prefix = false;
        }
    }
    out
}

fn normalise_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

fn http_url(text: &str) -> Option<String> {
    let url = url::Url::parse(text.trim()).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host().is_some()).then(|| url.to_string())
}

#[derive(Deserialize)]
struct BotReply {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default, rename = "StatusCode")]
    status_code: Option<i64>,
    #[serde(default, rename = "StatusMessage")]
    status_message: Option<String>,
}

/// Decides the webhook's reply: delivered only with HTTP 200 **and** `code == 0` (or the old
/// `StatusCode == 0`).
fn interpret_reply(status: u16, retry_after: Option<u64>, body: &[u8]) -> Outcome {
    let reply = serde_json::from_slice::<BotReply>(body).ok().and_then(|r| {
        let code = r.code.or(r.status_code)?;
        Some((code, r.msg.or(r.status_message).unwrap_or_default()))
    });
    let transient = status == 429 || status >= 500;
    let Some((code, msg)) = reply else {
        let message = format!(
            "Feishu answered HTTP {status} with a body that is not a bot reply: {}",
            excerpt(body)
        );
        let code = Some(status.to_string());
        return if transient {
            Outcome::Retryable {
                code,
                message,
                retry_after_secs: retry_after,
            }
        } else {
            Outcome::permanent(code, message)
        };
    };
    if code == 0 && status == 200 {
        return Outcome::delivered(None);
    }
    let message = if msg.is_empty() {
        format!("Feishu error {code} (HTTP {status})")
    } else {
        msg
    };
    let with = |hint: &str| format!("{message} ({hint})");
    match code {
        CODE_THROTTLED => Outcome::Retryable {
            code: Some(code.to_string()),
            message,
            retry_after_secs: retry_after,
        },
        _ if transient => Outcome::Retryable {
            code: Some(if code == 0 { status.to_string() } else { code.to_string() }),
            message,
            retry_after_secs: retry_after,
        },
        CODE_BAD_SIGNATURE => Outcome::permanent(
            Some(code.to_string()),
            with("check the target's signing secret, and that this service's clock is within an hour of Feishu's"),
        ),
        CODE_KEYWORD_MISSING => Outcome::permanent(
            Some(code.to_string()),
            with("the bot's keyword security setting: the message must contain one of its keywords"),
        ),
        CODE_IP_NOT_ALLOWED => Outcome::permanent(
            Some(code.to_string()),
            with("the bot's IP allow-list does not include this service"),
        ),
        0 => Outcome::permanent(Some(status.to_string()), message),
        _ => Outcome::permanent(Some(code.to_string()), message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(title: &str, body: &str) -> Message {
        Message {
            title: title.into(),
            body: body.into(),
            link: None,
            link_label: None,
            cover_url: None,
        }
    }

    #[test]
    fn escapes_every_markdown_trigger_as_an_entity() {
        assert_eq!(
            escape_markdown("<script>alert(1)</script> [x](http://evil)"),
            "&#60;script&#62;alert&#40;1&#41;&#60;/script&#62; &#91;x&#93;&#40;http&#58;//evil&#41;"
        );
        assert_eq!(
            escape_markdown("a*b_c~d`e\\f"),
            "a&#42;b&#95;c&#126;d&#96;e&#92;f"
        );
        assert_eq!(escape_markdown("&#91;"), "&#38;&#35;91;");
        assert_eq!(
            escape_markdown("# h\n1. one\nv1.2"),
            "&#35; h\n1&#46; one\nv1.2"
        );
    }

    #[test]
    fn reply_mapping() {
        assert!(
            interpret_reply(200, None, br#"{"code":0,"data":{},"msg":"success"}"#).is_delivered()
        );
        assert!(
            interpret_reply(200, None, br#"{"StatusCode":0,"StatusMessage":"success"}"#)
                .is_delivered()
        );
        let o = interpret_reply(200, None, br#"{"code":11232,"msg":"frequency limited"}"#);
        assert!(matches!(o, Outcome::Retryable { .. }));
        let o = interpret_reply(429, Some(7), b"too many");
        assert_eq!(
            o,
            Outcome::Retryable {
                code: Some("429".into()),
                message: "Feishu answered HTTP 429 with a body that is not a bot reply: too many"
                    .into(),
                retry_after_secs: Some(7)
            }
        );
        let o = interpret_reply(200, None, br#"{"code":9499,"msg":"Bad Request"}"#);
        assert_eq!(o.code(), Some("9499"));
        assert!(matches!(o, Outcome::Permanent { .. }));
        let o = interpret_reply(200, None, b"{}");
        assert!(matches!(o, Outcome::Permanent { .. }));
    }

    #[test]
    fn truncates_the_body_to_fit_with_an_ellipsis() {
        let body = "é".repeat(30_000);
        let payload = build_body(&msg("T", &body), None);
        // The signature fields are added at send time: 79 bytes are kept for them.
        let size = serde_json::to_vec(&payload).unwrap().len() + 79;
        assert!(size <= MAX_BODY_BYTES, "{size}");
        assert!(size > MAX_BODY_BYTES - 10, "{size} wastes room");
        let content = payload["card"]["elements"][0]["content"].as_str().unwrap();
        assert!(
            content.ends_with("é…"),
            "{}",
            &content[content.len() - 10..]
        );
    }

    #[test]
    fn a_huge_title_is_cut_too() {
        let payload = build_body(&msg(&"t".repeat(50_000), "body"), None);
        assert!(serde_json::to_vec(&payload).unwrap().len() <= MAX_BODY_BYTES);
        assert!(payload["card"]["header"]["title"]["content"]
            .as_str()
            .unwrap()
            .ends_with("t…"));
    }
}
