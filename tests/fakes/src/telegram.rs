//! A Bot API server for `sendMessage` and `sendPhoto`: checks each request against Telegram's
//! documented rules and answers with Telegram's payloads.
//!
//! Checked: the `/bot<token>/<method>` path; a JSON body with only the fields the method
//! documents (Telegram silently ignores others, so a misspelt field would go unnoticed);
//! `chat_id`; `message_thread_id`; `parse_mode` HTML (the one mode the service writes) with
//! markup Telegram can parse; a photo URL; 1-4096 UTF-16 units of text and at most 1024 of
//! caption, counted before entities are parsed (Telegram counts after: this is the stricter
//! count). A breach is a violation, which [`FakeTelegram::requests`] asserts away; where Telegram
//! would refuse the request, the fake also answers with Telegram's refusal.
use std::cmp::Reverse;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

const MAX_TEXT_UNITS: usize = 4096;
const MAX_CAPTION_UNITS: usize = 1024;

const SEND_MESSAGE_FIELDS: &[&str] = &[
    "business_connection_id",
    "chat_id",
    "message_thread_id",
    "direct_messages_topic_id",
    "text",
    "parse_mode",
    "entities",
    "link_preview_options",
    "disable_notification",
    "protect_content",
    "allow_paid_broadcast",
    "message_effect_id",
    "suggested_post_parameters",
    "reply_parameters",
    "reply_markup",
];

const SEND_PHOTO_FIELDS: &[&str] = &[
    "business_connection_id",
    "chat_id",
    "message_thread_id",
    "direct_messages_topic_id",
    "photo",
    "caption",
    "parse_mode",
    "caption_entities",
    "show_caption_above_media",
    "has_spoiler",
    "disable_notification",
    "protect_content",
    "allow_paid_broadcast",
    "message_effect_id",
    "suggested_post_parameters",
    "reply_parameters",
    "reply_markup",
];

const LINK_PREVIEW_FIELDS: &[&str] = &[
    "is_disabled",
    "url",
    "prefer_small_media",
    "prefer_large_media",
    "show_above_text",
];

/// What the nginx in front of the Bot API serves with a 502.
const BAD_GATEWAY_PAGE: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// What the server answers, in order; when the script is empty it answers success.
#[derive(Debug, Clone)]
pub enum BotReply {
    Ok,
    /// `{"ok":false,"error_code":code,"description":...}` with HTTP status `code`.
    Error {
        code: u16,
        description: String,
        retry_after: Option<u64>,
    },
    /// The group was upgraded to a supergroup: Telegram's 400 with `migrate_to_chat_id`.
    Migrated {
        to_chat_id: i64,
    },
    /// Success, but only after a minute: longer than any client timeout.
    Hang,
    /// A 502 from the nginx in front of the Bot API: an HTML page, not JSON.
    BadGatewayPage,
}

impl BotReply {
    pub fn chat_not_found() -> BotReply {
        BotReply::error(400, "Bad Request: chat not found")
    }

    pub fn blocked_by_user() -> BotReply {
        BotReply::error(403, "Forbidden: bot was blocked by the user")
    }

    /// Telegram's flood control.
    pub fn too_many_requests(retry_after: u64) -> BotReply {
        BotReply::Error {
            code: 429,
            description: format!("Too Many Requests: retry after {retry_after}"),
            retry_after: Some(retry_after),
        }
    }

    fn error(code: u16, description: &str) -> BotReply {
        BotReply::Error {
            code,
            description: description.into(),
            retry_after: None,
        }
    }
}

/// One request received.
#[derive(Debug, Clone)]
pub struct BotRequest {
    /// `sendMessage` or `sendPhoto`; the whole path when it is not `/bot<token>/<method>`.
    pub method: String,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    requests: Vec<BotRequest>,
    violations: Vec<String>,
    script: VecDeque<BotReply>,
    /// Basic group → the supergroup it became: Telegram refuses every later send to the group.
    upgraded_groups: HashMap<i64, i64>,
    unreachable_photos: HashSet<String>,
}

#[derive(Clone)]
pub struct FakeTelegram {
    /// Only in the test's copies; see [`crate::ViolationCheck`].
    _check: Option<Arc<crate::ViolationCheck>>,
    pub base_url: String,
    token: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeTelegram {
    /// Starts a server that accepts only `token`; any other gets Telegram's 401.
    pub async fn start(token: &str) -> FakeTelegram {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let fake = FakeTelegram {
            _check: None,
            base_url: String::new(),
            token: token.to_string(),
            inner,
        };
        let app = Router::new()
            .route("/{*path}", post(handle))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTelegram {
            base_url: format!("http://{addr}"),
            _check: Some(crate::ViolationCheck::new(
                "Bot API",
                &fake.inner,
                |inner| &mut inner.violations,
            )),
            ..fake
        }
    }

    pub fn script(&self, replies: impl IntoIterator<Item = BotReply>) {
        self.inner.lock().unwrap().script.extend(replies);
    }

    /// From now on every send to `group` gets Telegram's "upgraded to a supergroup" refusal
    /// naming `supergroup`, without using up the script.
    pub fn upgrade_group(&self, group: i64, supergroup: i64) {
        let mut inner = self.inner.lock().unwrap();
        inner.upgraded_groups.insert(group, supergroup);
    }

    /// Telegram downloads a photo URL itself; from now on it fails to download `url`, without
    /// using up the script.
    pub fn make_photo_unreachable(&self, url: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.unreachable_photos.insert(url.to_string());
    }

    /// The protocol violations seen so far. Takes them: a test that provokes violations on
    /// purpose checks them here, and they no longer fail it when the fake is dropped.
    pub fn violations(&self) -> Vec<String> {
        std::mem::take(&mut self.inner.lock().unwrap().violations)
    }

    /// Every request received, after asserting there was no protocol violation.
    pub fn received(&self) -> Vec<BotRequest> {
        let inner = self.inner.lock().unwrap();
        assert!(
            inner.violations.is_empty(),
            "Bot API protocol violations: {:?}",
            inner.violations
        );
        inner.requests.clone()
    }

    /// Bodies of every request received, after asserting there was no protocol violation.
    pub fn requests(&self) -> Vec<Value> {
        self.received().into_iter().map(|r| r.body).collect()
    }

    /// The bot's user id: the digits before the token's ':'.
    fn bot_id(&self) -> i64 {
        let digits = self.token.split(':').next().unwrap_or_default();
        digits.parse().unwrap_or(1)
    }

    /// The reply to a request that passed the checks: the chat's or the photo's state first,
    /// then the script.
    fn next_reply(&self, method: &str, body: &Value) -> BotReply {
        let mut inner = self.inner.lock().unwrap();
        let upgraded = chat_id_number(&body["chat_id"])
            .and_then(|chat| inner.upgraded_groups.get(&chat).copied());
        if let Some(to_chat_id) = upgraded {
            return BotReply::Migrated { to_chat_id };
        }
        let photo = body["photo"].as_str().unwrap_or_default();
        if method == "sendPhoto" && inner.unreachable_photos.contains(photo) {
            return BotReply::error(400, "Bad Request: failed to get HTTP URL content");
        }
        inner.script.pop_front().unwrap_or(BotReply::Ok)
    }
}

/// What the checks of one request found.
#[derive(Default)]
struct Findings {
    violations: Vec<String>,
    /// Telegram's answer if Telegram would refuse the request (the first reason found).
    refusal: Option<BotReply>,
}

impl Findings {
    fn breach(&mut self, what: String) {
        self.violations.push(what);
    }

    fn refuse(&mut self, code: u16, description: &str) {
        self.refusal
            .get_or_insert_with(|| BotReply::error(code, description));
    }
}

/// A text as Telegram keeps it: the markup parsed into entities.
#[derive(Default)]
struct Formatted {
    text: String,
    entities: Vec<Value>,
}

async fn handle(
    State(fake): State<FakeTelegram>,
    uri: Uri,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let mut findings = Findings::default();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        findings.breach(format!(
            "content-type {content_type:?} is not application/json"
        ));
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        findings.breach(format!("body is not JSON: {e}"));
        Value::Null
    });
    let route = uri
        .path()
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(_, method)| !method.contains('/'));
    let (method, formatted) = match route {
        Some((_, method)) => (method, check_call(method, &body, &mut findings)),
        None => {
            findings.breach("not /bot<token>/<method>".into());
            (uri.path(), Formatted::default())
        }
    };
    let message_id = {
        let mut inner = fake.inner.lock().unwrap();
        inner.requests.push(BotRequest {
            method: method.to_string(),
            body: body.clone(),
        });
        let number = inner.requests.len();
        let violations = findings.violations.iter();
        inner
            .violations
            .extend(violations.map(|v| format!("request {number} ({method}): {v}")));
        // Every request received counts, from 100, so a test can tell which one a reply answers.
        99 + number as i64
    };
    let reply = match (route, findings.refusal) {
        (None, _) => BotReply::error(404, "Not Found"),
        (Some((token, _)), _) if token != fake.token => BotReply::error(401, "Unauthorized"),
        (_, Some(refusal)) => refusal,
        _ => fake.next_reply(method, &body),
    };
    let json_reply = |status: u16, payload: Value| {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, axum::Json(payload)).into_response()
    };
    if matches!(reply, BotReply::Hang) {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    match reply {
        BotReply::Ok | BotReply::Hang => {
            let message = sent_message(&fake, method, &body, formatted, message_id);
            json_reply(200, json!({"ok": true, "result": message}))
        }
        BotReply::Migrated { to_chat_id } => json_reply(
            400,
            json!({"ok": false, "error_code": 400,
                "description": "Bad Request: group chat was upgraded to a supergroup chat",
                "parameters": {"migrate_to_chat_id": to_chat_id}}),
        ),
        BotReply::Error {
            code,
            description,
            retry_after,
        } => {
            let mut payload = json!({"ok": false, "error_code": code, "description": description});
            if let Some(wait) = retry_after {
                payload["parameters"] = json!({"retry_after": wait});
            }
            json_reply(code, payload)
        }
        BotReply::BadGatewayPage => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            BAD_GATEWAY_PAGE,
        )
            .into_response(),
    }
}

/// Checks a `sendMessage` or `sendPhoto` body; returns its text or caption as Telegram keeps it.
fn check_call(method: &str, body: &Value, findings: &mut Findings) -> Formatted {
    let (fields, text_field, limit) = match method {
        "sendMessage" => (SEND_MESSAGE_FIELDS, "text", MAX_TEXT_UNITS),
        "sendPhoto" => (SEND_PHOTO_FIELDS, "caption", MAX_CAPTION_UNITS),
        _ => {
            findings.breach("not a method this fake plays".into());
            findings.refuse(404, "Not Found");
            return Formatted::default();
        }
    };
    let Some(object) = body.as_object() else {
        findings.breach(format!("body {body} is not a JSON object"));
        findings.refuse(400, "Bad Request: chat_id is empty");
        return Formatted::default();
    };
    for name in object.keys().filter(|k| !fields.contains(&k.as_str())) {
        findings.breach(format!("{name} is not a {method} field"));
    }
    if let Some(options) = body.get("link_preview_options") {
        let known = |k: &String| LINK_PREVIEW_FIELDS.contains(&k.as_str());
        if !options.as_object().is_some_and(|o| o.keys().all(known)) {
            findings.breach(format!(
                "link_preview_options {options} is not a LinkPreviewOptions"
            ));
        }
    }
    check_chat(body, findings);

    if method == "sendPhoto" {
        match &body["photo"] {
            Value::String(url) if is_http_url(url) => {}
            Value::Null => {
                findings.breach("photo missing".into());
                findings.refuse(400, "Bad Request: there is no photo in the request");
            }
            other => {
                // A file_id would do for Telegram, but this fake has no uploaded files.
                findings.breach(format!("photo {other} is not an http(s) URL"));
                findings.refuse(400, "Bad Request: wrong file identifier/HTTP URL specified");
            }
        }
    }
    let raw = match body.get(text_field) {
        Some(Value::String(text)) => text.as_str(),
        None if method == "sendPhoto" => "",
        other => {
            findings.breach(format!("{text_field} {other:?} is not a string"));
            findings.refuse(400, "Bad Request: message text is empty");
            return Formatted::default();
        }
    };
    let units = utf16_len(raw);
    if units > limit || (method == "sendMessage" && units == 0) {
        findings.breach(format!(
            "{text_field} has {units} UTF-16 units before entity parsing (limit {limit})"
        ));
    }
    let formatted = if body["parse_mode"] == "HTML" {
        match parse_html(raw, findings) {
            Ok(formatted) => formatted,
            Err(reason) => {
                findings.breach(format!("{text_field}: {reason}"));
                findings.refuse(400, &format!("Bad Request: can't parse entities: {reason}"));
                return Formatted::default();
            }
        }
    } else {
        findings.breach(format!("parse_mode {} is not HTML", body["parse_mode"]));
        Formatted {
            text: raw.to_string(),
            entities: Vec::new(),
        }
    };
    if method == "sendMessage" && formatted.text.trim().is_empty() {
        findings.breach("the text is empty once its markup is parsed".into());
        findings.refuse(400, "Bad Request: message text is empty");
    }
    if utf16_len(&formatted.text) > limit {
        findings.refuse(
            400,
            if method == "sendMessage" {
                "Bad Request: message is too long"
            } else {
                "Bad Request: message caption is too long"
            },
        );
    }
    formatted
}

fn check_chat(body: &Value, findings: &mut Findings) {
    match &body["chat_id"] {
        Value::Null => {
            findings.breach("chat_id missing".into());
            findings.refuse(400, "Bad Request: chat_id is empty");
        }
        chat if chat_id_number(chat).is_some() => {}
        Value::String(name) if is_channel_username(name) => {}
        other => {
            findings.breach(format!(
                "chat_id {other} is neither an integer nor @username"
            ));
            findings.refuse(400, "Bad Request: chat not found");
        }
    }
    if let Some(thread) = body.get("message_thread_id") {
        if thread.as_i64().is_none_or(|id| id <= 0) {
            findings.breach(format!(
                "message_thread_id {thread} is not a positive integer"
            ));
        }
    }
}

/// Telegram accepts a chat id as a number or as a string of one.
fn chat_id_number(chat_id: &Value) -> Option<i64> {
    chat_id.as_i64().or_else(|| chat_id.as_str()?.parse().ok())
}

/// `@` and a public username: 5-32 letters, digits and '_', starting with a letter.
fn is_channel_username(chat_id: &str) -> bool {
    chat_id.strip_prefix('@').is_some_and(|name| {
        (5..=32).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn is_http_url(url: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        url.strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty())
    })
}

fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// The `result` of a successful send, shaped like Telegram's `Message`.
fn sent_message(
    fake: &FakeTelegram,
    method: &str,
    body: &Value,
    formatted: Formatted,
    message_id: i64,
) -> Value {
    let mut message = json!({
        "message_id": message_id,
        "from": {"id": fake.bot_id(), "is_bot": true, "first_name": "Notify", "username": "notify_test_bot"},
        "chat": chat(&body["chat_id"]),
        "date": chrono::Utc::now().timestamp(),
    });
    if let Some(thread) = body.get("message_thread_id") {
        message["message_thread_id"] = thread.clone();
        message["is_topic_message"] = json!(true);
    }
    let (text_key, entities_key) = if method == "sendPhoto" {
        let size = |side: u32, bytes: u32| {
            json!({"file_id": format!("AgACAgQAAxkDAAI{message_id}x{side}"),
                "file_unique_id": format!("AQAD{message_id}x{side}"),
                "file_size": bytes, "width": side, "height": side})
        };
        message["photo"] = json!([size(90, 1261), size(320, 20410)]);
        ("caption", "caption_entities")
    } else {
        ("text", "entities")
    };
    if !formatted.text.is_empty() {
        message[text_key] = json!(formatted.text);
    }
    if !formatted.entities.is_empty() {
        message[entities_key] = json!(formatted.entities);
    }
    if let Some(options) = body.get("link_preview_options") {
        message["link_preview_options"] = options.clone();
    }
    message
}

/// The `chat` of a sent message: Telegram names it by its numeric id, whatever was sent.
fn chat(chat_id: &Value) -> Value {
    match chat_id_number(chat_id) {
        Some(id) if id > 0 => json!({"id": id, "first_name": "Ann", "type": "private"}),
        // Supergroup and channel ids are -100 followed by the id.
        Some(id) if id <= -1_000_000_000_000 => {
            json!({"id": id, "title": "Team", "type": "supergroup"})
        }
        Some(id) => json!({"id": id, "title": "Team", "type": "group"}),
        None => json!({
            "id": -1_009_876_543_210_i64,
            "title": "Channel",
            "username": chat_id.as_str().unwrap_or_default().trim_start_matches('@'),
            "type": "channel",
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Telegram's HTML mode, as documented: the supported tags, properly nested, and '<', '>' and '&'
// only as markup or as one of the entities &lt; &gt; &amp; &quot; &#N; &#xH;.

struct Tag {
    name: String,
    closing: bool,
    attributes: Vec<(String, String)>,
    /// The byte after its '>'.
    end: usize,
}

impl Tag {
    fn attribute(&self, name: &str) -> Option<&str> {
        let mut found = self.attributes.iter().filter(|(n, _)| n == name);
        found.next().map(|(_, value)| value.as_str())
    }
}

struct OpenTag {
    name: String,
    offset: usize,
    entity: Value,
}

/// The text and entities Telegram makes of `html`, or Telegram's reason to refuse it.
fn parse_html(html: &str, findings: &mut Findings) -> Result<Formatted, String> {
    let mut text = String::new();
    let mut entities = Vec::new();
    let mut open: Vec<OpenTag> = Vec::new();
    let mut at = 0;
    while let Some(c) = html[at..].chars().next() {
        match c {
            '<' => {
                let tag = read_tag(html, at, findings)?;
                if tag.closing {
                    match open.pop() {
                        Some(started) if started.name == tag.name => {
                            let length = utf16_len(&text) - started.offset;
                            if length > 0 && !started.entity.is_null() {
                                let mut entity = started.entity;
                                entity["offset"] = json!(started.offset);
                                entity["length"] = json!(length);
                                entities.push(entity);
                            }
                        }
                        Some(started) => {
                            return Err(format!(
                                "Unmatched end tag at byte offset {at}, expected \"</{}>\", found \"</{}>\"",
                                started.name, tag.name
                            ))
                        }
                        None => return Err(format!("Unexpected end tag at byte offset {at}")),
                    }
                } else {
                    open.push(OpenTag {
                        entity: entity_of(&tag, at, findings)?,
                        name: tag.name,
                        offset: utf16_len(&text),
                    });
                }
                at = tag.end;
            }
            '&' => {
                let (decoded, length) = decode_entity(&html[at..], at, findings);
                text.push(decoded);
                at += length;
            }
            '>' => {
                findings.breach(format!("a bare '>' at byte {at} (write &gt;)"));
                text.push('>');
                at += 1;
            }
            c => {
                text.push(c);
                at += c.len_utf8();
            }
        }
    }
    if let Some(started) = open.last() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{}\"",
            started.name
        ));
    }
    entities.sort_by_key(|e| (e["offset"].as_u64(), Reverse(e["length"].as_u64())));
    Ok(Formatted { text, entities })
}

/// Reads the tag that starts at `html[start]` (a '<').
fn read_tag(html: &str, start: usize, findings: &mut Findings) -> Result<Tag, String> {
    let bytes = html.as_bytes();
    let mut i = start + 1;
    let closing = bytes.get(i) == Some(&b'/');
    if closing {
        i += 1;
    }
    let word = |i: &mut usize| {
        let from = *i;
        while bytes
            .get(*i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        {
            *i += 1;
        }
        html[from..*i].to_ascii_lowercase()
    };
    let skip_spaces = |i: &mut usize| {
        while bytes.get(*i).is_some_and(u8::is_ascii_whitespace) {
            *i += 1;
        }
    };
    let name = word(&mut i);
    if name.is_empty() {
        return Err(format!("Unsupported start tag \"\" at byte offset {start}"));
    }
    let mut attributes = Vec::new();
    loop {
        skip_spaces(&mut i);
        match bytes.get(i) {
            None => return Err(format!("Unclosed start tag at byte offset {start}")),
            Some(b'>') => {
                return Ok(Tag {
                    name,
                    closing,
                    attributes,
                    end: i + 1,
                })
            }
            Some(_) if closing => {
                return Err(format!("Unclosed end tag at byte offset {start}"));
            }
            Some(_) => {}
        }
        let attribute = word(&mut i);
        if attribute.is_empty() {
            return Err(format!(
                "Empty attribute name in the tag \"{name}\" at byte offset {start}"
            ));
        }
        skip_spaces(&mut i);
        let mut value = String::new();
        if bytes.get(i) == Some(&b'=') {
            i += 1;
            skip_spaces(&mut i);
            let raw = match bytes.get(i) {
                Some(&quote @ (b'"' | b'\'')) => {
                    let length = html[i + 1..].find(quote as char).ok_or_else(|| {
                        format!("Unclosed end of attribute value at byte offset {start}")
                    })?;
                    i += length + 2;
                    &html[i - length - 1..i - 1]
                }
                _ => {
                    let from = i;
                    while bytes
                        .get(i)
                        .is_some_and(|b| !b.is_ascii_whitespace() && *b != b'>')
                    {
                        i += 1;
                    }
                    &html[from..i]
                }
            };
            let mut j = 0;
            while let Some(c) = raw[j..].chars().next() {
                let (decoded, length) = if c == '&' {
                    decode_entity(&raw[j..], start, findings)
                } else {
                    (c, c.len_utf8())
                };
                value.push(decoded);
                j += length;
            }
        }
        attributes.push((attribute, value));
    }
}

/// The entity an opening tag starts; null for one Telegram drops.
fn entity_of(tag: &Tag, at: usize, findings: &mut Findings) -> Result<Value, String> {
    let entity = match tag.name.as_str() {
        "b" | "strong" => json!({"type": "bold"}),
        "i" | "em" => json!({"type": "italic"}),
        "u" | "ins" => json!({"type": "underline"}),
        "s" | "strike" | "del" => json!({"type": "strikethrough"}),
        "tg-spoiler" => json!({"type": "spoiler"}),
        "span" if tag.attribute("class") == Some("tg-spoiler") => json!({"type": "spoiler"}),
        "span" => {
            return Err(format!(
                "Tag \"span\" must have class \"tg-spoiler\" at byte offset {at}"
            ))
        }
        "code" => json!({"type": "code"}),
        "pre" => json!({"type": "pre"}),
        "blockquote" if tag.attribute("expandable").is_some() => {
            json!({"type": "expandable_blockquote"})
        }
        "blockquote" => json!({"type": "blockquote"}),
        "tg-emoji" => match tag.attribute("emoji-id") {
            Some(id) => json!({"type": "custom_emoji", "custom_emoji_id": id}),
            None => {
                return Err(format!(
                    "Tag \"tg-emoji\" must have attribute \"emoji-id\" at byte offset {at}"
                ))
            }
        },
        "a" => {
            let href = tag.attribute("href").unwrap_or_default();
            if !is_http_url(href) && !href.starts_with("tg://") {
                findings.breach(format!("<a href={href:?}> at byte {at} is not a URL"));
                // Telegram keeps the text and silently drops the link.
                return Ok(Value::Null);
            }
            json!({"type": "text_link", "url": href})
        }
        other => {
            return Err(format!(
                "Unsupported start tag \"{other}\" at byte offset {at}"
            ))
        }
    };
    Ok(entity)
}

/// The character of the entity at the start of `text` (a '&') and its length in bytes; a '&'
/// that starts no entity stands for itself, as Telegram reads it, but breaks the documented rule.
fn decode_entity(text: &str, at: usize, findings: &mut Findings) -> (char, usize) {
    let entity = text.find(';').and_then(|end| {
        let decoded = match &text[1..end] {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            name => {
                let number = name.strip_prefix('#')?;
                let code = match number.strip_prefix(['x', 'X']) {
                    Some(hex) if hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                        u32::from_str_radix(hex, 16).ok()?
                    }
                    None if number.chars().all(|c| c.is_ascii_digit()) => number.parse().ok()?,
                    _ => return None,
                };
                char::from_u32(code)?
            }
        };
        Some((decoded, end + 1))
    });
    entity.unwrap_or_else(|| {
        findings.breach(format!("a bare '&' at byte {at} (write &amp;)"));
        ('&', 1)
    })
}
