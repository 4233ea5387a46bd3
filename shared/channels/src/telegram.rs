//! Telegram Bot API: `sendMessage` (and `sendPhoto` for a cover) with `parse_mode=HTML`, user
//! text escaped.
//!
//! The text is `<b>{title}</b>\n\n{body}` and, with a link, `\n\n<a href="{link}">{label}</a>`,
//! every user value escaped for Telegram's HTML mode. A text longer than 4096 UTF-16 code units
//! (counted before Telegram parses entities, which is the safe side) is sent as several messages,
//! cut at line ends where possible and never inside a character, an entity or a tag.
//!
//! With a cover (an http(s) URL) the message starts with a `sendPhoto` whose caption is at most
//! 1024 UTF-16 units, counted the same way; what does not fit follows as text (see
//! [`build_requests`]). Telegram fetches the photo itself; if it cannot, the message is sent as
//! text only.
//!
//! [`build_requests`] makes the request bodies for both `send` and `preview`.
//!
//! A group that was upgraded to a supergroup answers with `parameters.migrate_to_chat_id`: the
//! message is sent again, once, to the new chat, and a delivery then carries the new `chat_id` as
//! a target update (the dispatcher stores it, so later sends go there directly).
//!
//! The bot token is part of the request URL. It never reaches an [`Outcome`]: reqwest errors are
//! stripped of their URL and every outcome message is scrubbed of the token.
use async_trait::async_trait;
use notify_domain::{ChannelKind, FieldFormat, FieldSpec, KindSpec, Message};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::network_outcome;
use crate::text::{
    cost_of, cut_within, escape_html_text, escaped_text_utf16_units, excerpt, first_line, utf16_len,
};
use crate::{
    config_str, Channel, Endpoints, Outcome, Preview, PreviewKind, PreviewPart, SendRequest,
};

pub static SPEC: KindSpec = KindSpec {
    kind: ChannelKind::Telegram,
    label: "Telegram",
    source_fields: &[FieldSpec::new(
        "bot_token",
        "Bot token",
        FieldFormat::Secret {
            max_chars: 128,
            multiline: false,
        },
    )
    .secret()
    .help("The token @BotFather gave you, like 123456:ABC-DEF…")],
    target_fields: &[
        FieldSpec::new("chat_id", "Chat id", FieldFormat::TelegramChatId)
            .help("Numeric chat id (groups are negative) or @channelusername"),
        FieldSpec::new(
            "message_thread_id",
            "Forum topic id",
            FieldFormat::Integer {
                min: 1,
                max: i64::MAX,
            },
        )
        .optional()
        .help("Only for forum supergroups: the topic to post in"),
    ],
};

/// Telegram's limit for a message text, in UTF-16 code units.
pub const MAX_TEXT_UNITS: usize = 4096;

/// Telegram's limit for a photo caption, in UTF-16 code units.
pub const MAX_CAPTION_UNITS: usize = 1024;

/// Label of the link when the message has none.
const DEFAULT_LINK_LABEL: &str = "Open";

pub struct TelegramChannel {
    http: reqwest::Client,
    api_base: String,
}

impl TelegramChannel {
    pub fn new(http: reqwest::Client, endpoints: &Endpoints) -> Self {
        TelegramChannel {
            http,
            api_base: endpoints
                .telegram_api_base
                .trim_end_matches('/')
                .to_string(),
        }
    }

    /// Makes one Bot API call and decides its outcome from the reply body. Messages may
    /// contain the token; the caller scrubs them.
    async fn send_one(&self, url: &str, payload: &Value) -> Result<String, Failure> {
        let response = self
            .http
            .post(url)
            .json(payload)
            .send()
            .await
            .map_err(|e| {
                Failure::from(network_outcome("sending the request to Telegram failed", e))
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| Failure::from(network_outcome("reading Telegram's reply failed", e)))?;
        interpret_reply(status.as_u16(), &body).map_err(|outcome| Failure {
            outcome,
            migrate_to_chat_id: migrate_to_chat_id(&body),
        })
    }

    /// Sends `payload` (addressed to `chat_id`); if the group was upgraded to a supergroup (and
    /// `chat_id` has not been switched before), switches `chat_id` to the supergroup and sends
    /// there once.
    async fn send_to_chat(
        &self,
        url: &str,
        payload: &mut Value,
        chat_id: &mut String,
        migrated: &mut bool,
    ) -> Result<String, Outcome> {
        let failure = match self.send_one(url, payload).await {
            Ok(id) => return Ok(id),
            Err(failure) => failure,
        };
        let new_id = match failure.migrate_to_chat_id {
            Some(new_id) if !*migrated => new_id,
            _ => return Err(failure.outcome),
        };
        tracing::info!(
            new_chat_id = new_id,
            "Telegram: the group was upgraded to a supergroup; sending there"
        );
        *migrated = true;
        *chat_id = new_id.to_string();
        payload["chat_id"] = json!(chat_id.as_str());
        self.send_one(url, payload).await.map_err(|f| {
            annotate(
                f.outcome,
                &format!(" (sent to the supergroup {new_id} that the group was upgraded to)"),
            )
        })
    }
}

#[async_trait]
impl Channel for TelegramChannel {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    /// The requests of [`build_requests`], sent in order; the outcome carries the **first**
    /// request's `message_id` (the one with the title, or the photo). If a later request fails,
    /// that failure is returned and its message says how many parts were already delivered.
    ///
    /// A `sendPhoto` that Telegram refuses because of the photo (it could not fetch or process
    /// the cover URL) is replaced by the text-only requests, so the message still arrives.
    ///
    /// A group upgraded to a supergroup is followed once: the part goes to the supergroup, so do
    /// the parts after it, and a delivery carries `target_update: {"chat_id": "<new id>"}`.
    async fn send(&self, request: &SendRequest<'_>) -> Outcome {
        let Some(token) = request.source_secrets.get("bot_token").map(|s| s.expose()) else {
            return Outcome::bad_config("the source has no bot_token");
        };
        if !is_plausible_token(token) {
            return Outcome::bad_config(
                "the bot token has an unexpected format (expected digits, ':', then letters, digits, '_' or '-')",
            );
        }
        let (chat_id, thread_id) = match target(request) {
            Ok(target) => target,
            Err(outcome) => return outcome,
        };
        let mut requests = build_requests(request.message, chat_id, thread_id);
        let mut first_id = None;
        let mut chat_id = chat_id.to_string();
        let mut migrated = false;
        let mut index = 0;
        while index < requests.len() {
            let call = &requests[index];
            let url = format!("{}/bot{}/{}", self.api_base, token, call.method.as_str());
            let mut payload = call.body.clone();
            // After a migration, later parts go to the supergroup.
            payload["chat_id"] = json!(chat_id.as_str());
            let sent = self
                .send_to_chat(&url, &mut payload, &mut chat_id, &mut migrated)
                .await;
            match sent {
                Ok(id) => {
                    first_id.get_or_insert(id);
                }
                Err(outcome) if call.method == Method::SendPhoto && is_photo_problem(&outcome) => {
                    tracing::warn!(
                        reason = outcome.message().unwrap_or_default(),
                        "Telegram could not use the cover as a photo; sending the message as text"
                    );
                    // Only the first request is a sendPhoto, and text requests have none: this
                    // happens at most once.
                    requests = text_requests(request.message, &chat_id, thread_id);
                    index = 0;
                    continue;
                }
                Err(outcome) => {
                    let total = requests.len();
                    let outcome = if index > 0 {
                        annotate(
                            outcome,
                            &format!(" ({index} of {total} parts were already delivered)"),
                        )
                    } else {
                        outcome
                    };
                    return scrub(outcome, token);
                }
            }
            index += 1;
        }
        let target_update = migrated.then(|| {
            let mut update = serde_json::Map::new();
            update.insert("chat_id".into(), Value::String(chat_id));
            update
        });
        Outcome::Delivered {
            provider_message_id: first_id,
            target_update,
        }
    }

    /// The bodies of [`build_requests`]. They hold the target's `chat_id` (public config); the
    /// bot token is only ever in the URL, which a preview does not show.
    fn preview(&self, request: &SendRequest<'_>) -> Result<Preview, Outcome> {
        let (chat_id, thread_id) = target(request)?;
        let requests = build_requests(request.message, chat_id, thread_id);
        let mut notes = Vec::new();
        match cover(request.message) {
            Some(Ok(_)) => notes.push(
                "Telegram downloads the photo from the cover URL; if it cannot, the message is \
                 sent as text only (sendMessage)"
                    .to_string(),
            ),
            Some(Err(())) => {
                notes.push("the cover is not an http(s) URL: it is left out".to_string())
            }
            None => {}
        }
        Ok(Preview {
            channel: ChannelKind::Telegram,
            parts: requests
                .into_iter()
                .map(|call| PreviewPart::new(call.method.preview_kind(), call.body))
                .collect(),
            notes,
        })
    }
}

/// The target's `chat_id` and optional `message_thread_id`.
fn target<'a>(request: &SendRequest<'a>) -> Result<(&'a str, Option<i64>), Outcome> {
    let chat_id = config_str(request.target_config, "chat_id")
        .ok_or_else(|| Outcome::bad_config("the target has no chat_id"))?;
    let thread_id = request
        .target_config
        .get("message_thread_id")
        .and_then(Value::as_i64);
    Ok((chat_id, thread_id))
}

/// A Bot API method this channel calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    SendMessage,
    SendPhoto,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::SendMessage => "sendMessage",
            Method::SendPhoto => "sendPhoto",
        }
    }

    fn preview_kind(self) -> PreviewKind {
        match self {
            Method::SendMessage => PreviewKind::TelegramSendMessage,
            Method::SendPhoto => PreviewKind::TelegramSendPhoto,
        }
    }
}

/// One Bot API call: the method and its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    pub method: Method,
    pub body: Value,
}

/// The calls that deliver `message` to `chat_id`, in order. Both `send` and `preview` use it.
///
/// - Without a cover: one `sendMessage` per part of [`MAX_TEXT_UNITS`] (see the module docs).
/// - With an http(s) cover: a `sendPhoto` with the cover URL as `photo` and the message as its
///   `caption` when the whole rendered message fits in [`MAX_CAPTION_UNITS`]. Otherwise the
///   caption is the title alone (bold) and the body and link follow in `sendMessage` calls of
///   up to [`MAX_TEXT_UNITS`]: the photo keeps its headline and the text reads as one piece
///   rather than breaking off mid-paragraph at 1024 units. (A title longer than the caption limit
///   continues in the first `sendMessage`.)
pub fn build_requests(message: &Message, chat_id: &str, thread_id: Option<i64>) -> Vec<ApiCall> {
    let Some(Ok(photo)) = cover(message) else {
        return text_requests(message, chat_id, thread_id);
    };
    let (caption, rest) = render_with_caption(message);
    let mut body = json!({
        "chat_id": chat_id,
        "photo": photo,
        "caption": caption,
        "parse_mode": "HTML",
    });
    if let Some(thread_id) = thread_id {
        body["message_thread_id"] = json!(thread_id);
    }
    let mut calls = vec![ApiCall {
        method: Method::SendPhoto,
        body,
    }];
    calls.extend(rest.iter().map(|text| text_call(text, chat_id, thread_id)));
    calls
}

/// The `sendMessage` calls for `message` without a photo.
fn text_requests(message: &Message, chat_id: &str, thread_id: Option<i64>) -> Vec<ApiCall> {
    render_parts(message, MAX_TEXT_UNITS)
        .iter()
        .map(|text| text_call(text, chat_id, thread_id))
        .collect()
}

fn text_call(text: &str, chat_id: &str, thread_id: Option<i64>) -> ApiCall {
    let mut body = json!({
        "chat_id": chat_id,
        "text": text,
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": true},
    });
    if let Some(thread_id) = thread_id {
        body["message_thread_id"] = json!(thread_id);
    }
    ApiCall {
        method: Method::SendMessage,
        body,
    }
}

/// The message's cover: `None` without one, `Err` when it is not an absolute http(s) URL (it
/// is then left out), else the URL to give Telegram.
fn cover(message: &Message) -> Option<Result<String, ()>> {
    let text = message
        .cover_url
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())?;
    Some(
        url::Url::parse(text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .map(String::from)
            .ok_or(()),
    )
}

/// Whether a failed `sendPhoto` failed because of the photo (Telegram could not fetch, read or
/// process the URL), so that the message can go out as text instead.
fn is_photo_problem(outcome: &Outcome) -> bool {
    const PHOTO_ERRORS: [&str; 6] = [
        "http url",
        "web page content",
        "file identifier",
        "image_process_failed",
        "photo_",
        "wrong type of the web page",
    ];
    matches!(outcome, Outcome::Permanent { .. })
        && outcome.code() == Some("400")
        && outcome.message().is_some_and(|m| {
            let m = m.to_ascii_lowercase();
            PHOTO_ERRORS.iter().any(|e| m.contains(e))
        })
}

/// A token looks like `123456:ABC-DEF…`. Anything else could change the URL's path.
fn is_plausible_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))
}

/// A failed `sendMessage` call: its outcome, and the supergroup to resend to if the reply named
/// one.
struct Failure {
    outcome: Outcome,
    migrate_to_chat_id: Option<i64>,
}

impl From<Outcome> for Failure {
    fn from(outcome: Outcome) -> Self {
        Failure {
            outcome,
            migrate_to_chat_id: None,
        }
    }
}

/// `parameters.migrate_to_chat_id` of a failed reply.
fn migrate_to_chat_id(body: &[u8]) -> Option<i64> {
    let reply = serde_json::from_slice::<ApiReply>(body).ok()?;
    if reply.ok {
        return None;
    }
    reply.parameters?.migrate_to_chat_id
}

#[derive(Deserialize)]
struct ApiReply {
    ok: bool,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ReplyParameters>,
}

#[derive(Deserialize)]
struct ReplyParameters {
    #[serde(default)]
    retry_after: Option<u64>,
    #[serde(default)]
    migrate_to_chat_id: Option<i64>,
}

/// Decides a reply: `Ok(message_id)` or the failure's outcome. Success comes from the body's
/// `ok` field, never from the HTTP status alone.
fn interpret_reply(status: u16, body: &[u8]) -> Result<String, Outcome> {
    let Ok(reply) = serde_json::from_slice::<ApiReply>(body) else {
        let message = format!(
            "Telegram answered HTTP {status} with a body that is not a Bot API reply: {}",
            excerpt(body)
        );
        let code = Some(status.to_string());
        return Err(if status >= 500 || status == 429 {
            Outcome::retryable(code, message)
        } else {
            Outcome::permanent(code, message)
        });
    };
    if reply.ok {
        return match reply.result.as_ref().and_then(|r| r.get("message_id")) {
            Some(Value::Number(id)) => Ok(id.to_string()),
            _ => Err(Outcome::retryable(
                None,
                "Telegram answered ok but without result.message_id",
            )),
        };
    }
    let error_code = reply.error_code.unwrap_or(i64::from(status));
    let code = Some(error_code.to_string());
    let description = reply
        .description
        .unwrap_or_else(|| format!("error {error_code} without a description"));
    let parameters = reply.parameters;
    Err(match error_code {
        429 => Outcome::Retryable {
            code,
            message: description,
            retry_after_secs: parameters.and_then(|p| p.retry_after),
        },
        500..=599 => Outcome::retryable(code, description),
        403 => Outcome::DeadTarget {
            code,
            message: description,
        },
        401 => Outcome::permanent(code, format!("{description} (the bot token is not valid)")),
        _ => match parameters.and_then(|p| p.migrate_to_chat_id) {
            Some(new_id) => Outcome::permanent(
                code,
                format!("{description} (the group is now the supergroup {new_id}: update the target's chat_id)"),
            ),
            None => Outcome::permanent(code, description),
        },
    })
}

/// Appends `note` to a failure's message.
fn annotate(outcome: Outcome, note: &str) -> Outcome {
    outcome.map_message(|message| message + note)
}

/// Removes the token from an outcome's message (defence in depth: nothing should carry it).
fn scrub(outcome: Outcome, token: &str) -> Outcome {
    outcome.scrub_as(&[token], "<bot token>")
}

/// One piece of the message, as plain text; rendering escapes it.
enum Segment<'a> {
    Bold(&'a str),
    Plain(&'a str),
    /// Rendered whole or not at all.
    Link {
        href: &'a str,
        label: &'a str,
    },
}

fn render_link(href: &str, label: &str) -> String {
    let href = escape_html_text(href).replace('"', "&quot;");
    format!("<a href=\"{href}\">{}</a>", escape_html_text(label))
}

fn is_http_url(text: &str) -> bool {
    url::Url::parse(text.trim())
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// The title, the body and the link of `message` as segments (empty ones left out). A link
/// element longer than `link_max` units is shown as its URL in plain text instead (Telegram
/// links it itself), so that it always fits one part; so is a link that is not an absolute
/// http(s) URL.
fn blocks(message: &Message, link_max: usize) -> (Option<Segment<'_>>, Vec<Segment<'_>>) {
    let label = message
        .link_label
        .as_deref()
        .filter(|l| !l.trim().is_empty())
        .unwrap_or(DEFAULT_LINK_LABEL);
    let title = (!message.title.trim().is_empty()).then(|| Segment::Bold(&message.title));
    let mut rest = Vec::new();
    if !message.body.trim().is_empty() {
        rest.push(Segment::Plain(&message.body));
    }
    if let Some(href) = message.link.as_deref().filter(|l| !l.trim().is_empty()) {
        if is_http_url(href) && utf16_len(&render_link(href, label)) <= link_max {
            rest.push(Segment::Link { href, label });
        } else {
            // Not an http(s) URL, or too long for one part: the URL as text, never a link.
            rest.push(Segment::Plain(href));
        }
    }
    (title, rest)
}

/// Adds `segments` to `packer` with a blank line between them (`separate_first`: before the
/// first one too).
fn push_segments(packer: &mut Packer, segments: Vec<Segment<'_>>, separate_first: bool) {
    for (i, segment) in segments.into_iter().enumerate() {
        if i > 0 || separate_first {
            packer.push_text("\n\n", "", "");
        }
        match segment {
            Segment::Bold(text) => packer.push_text(text, "<b>", "</b>"),
            Segment::Plain(text) => packer.push_text(text, "", ""),
            Segment::Link { href, label } => packer.push_atom(&render_link(href, label)),
        }
    }
}

fn or_empty_notice(parts: Vec<String>) -> Vec<String> {
    if parts.is_empty() {
        // Telegram rejects an empty text; say so rather than send nothing.
        vec![escape_html_text("(empty message)")]
    } else {
        parts
    }
}

/// Renders `message` as one or more Telegram HTML texts of at most `max_units` UTF-16 units.
fn render_parts(message: &Message, max_units: usize) -> Vec<String> {
    let (title, rest) = blocks(message, max_units);
    let mut packer = Packer::new(max_units, max_units);
    let mut segments: Vec<Segment<'_>> = title.into_iter().collect();
    segments.extend(rest);
    push_segments(&mut packer, segments, false);
    or_empty_notice(packer.finish())
}

/// The caption (at most [`MAX_CAPTION_UNITS`]) and the texts that follow the photo (each at
/// most [`MAX_TEXT_UNITS`]); see [`build_requests`].
fn render_with_caption(message: &Message) -> (String, Vec<String>) {
    let whole = render_parts(message, MAX_CAPTION_UNITS);
    if let [caption] = &whole[..] {
        return (caption.clone(), Vec::new());
    }
    // The link element must fit the smallest part it could land in.
    let (title, rest) = blocks(message, MAX_CAPTION_UNITS);
    let mut packer = Packer::new(MAX_CAPTION_UNITS, MAX_TEXT_UNITS);
    push_segments(&mut packer, title.into_iter().collect(), false);
    // The title alone is the caption; the body starts a message of its own.
    packer.flush();
    push_segments(&mut packer, rest, false);
    let mut parts = or_empty_notice(packer.finish()).into_iter();
    let caption = parts.next().unwrap_or_default();
    (caption, parts.collect())
}

/// Fills parts greedily with rendered segments: the first part up to `first_max` units, the
/// others up to `max`.
struct Packer {
    first_max: usize,
    max: usize,
    parts: Vec<String>,
    current: String,
    units: usize,
}

impl Packer {
    fn new(first_max: usize, max: usize) -> Self {
        Packer {
            first_max,
            max,
            parts: Vec::new(),
            current: String::new(),
            units: 0,
        }
    }

    /// The limit of the part being filled.
    fn limit(&self) -> usize {
        if self.parts.is_empty() {
            self.first_max
        } else {
            self.max
        }
    }

    /// Ends the current part (if it has anything to send).
    fn flush(&mut self) {
        let part = std::mem::take(&mut self.current);
        self.units = 0;
        // Line breaks at a cut are dropped; a part of only whitespace is not sent.
        let trimmed = part.trim_matches('\n');
        if !trimmed.trim().is_empty() {
            self.parts.push(trimmed.to_string());
        }
    }

    fn push_atom(&mut self, rendered: &str) {
        let units = utf16_len(rendered);
        if self.units + units > self.limit() {
            self.flush();
        }
        self.current.push_str(rendered);
        self.units += units;
    }

    /// Adds plain `text`, escaped and wrapped in `open`/`close` (ASCII tags) in every part it
    /// lands in.
    fn push_text(&mut self, mut text: &str, open: &str, close: &str) {
        let overhead = open.len() + close.len();
        while !text.is_empty() {
            if self.units == 0 {
                // Line breaks at the start of a part would be trimmed anyway.
                text = text.trim_start_matches('\n');
                if text.is_empty() {
                    return;
                }
            }
            let limit = self.limit();
            let budget = limit.saturating_sub(self.units + overhead);
            let cut = cut_within(text, budget, escaped_text_utf16_units);
            let end = if cut.at_char == text.len() {
                text.len()
            } else if cut.at_line > 0 {
                cut.at_line
            } else if self.units > 0
                && overhead + cost_of(first_line(text), escaped_text_utf16_units) <= self.max
            {
                // The line fits a fresh part whole: start one rather than cut the line.
                self.flush();
                continue;
            } else if cut.at_char > 0 {
                cut.at_char
            } else if self.units > 0 {
                // Not even one character fits after what is already here.
                self.flush();
                continue;
            } else {
                // Not even in an empty part (a limit below one character): take one anyway.
                text.chars().next().map_or(text.len(), char::len_utf8)
            };
            let (piece, rest) = text.split_at(end);
            let rendered = format!("{open}{}{close}", escape_html_text(piece));
            self.units += utf16_len(&rendered);
            self.current.push_str(&rendered);
            text = rest;
            if !text.is_empty() {
                self.flush();
            }
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.flush();
        self.parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(title: &str, body: &str, link: Option<&str>, label: Option<&str>) -> Message {
        Message {
            title: title.into(),
            body: body.into(),
            link: link.map(Into::into),
            link_label: label.map(Into::into),
            cover_url: None,
        }
    }

    #[test]
    fn renders_title_body_and_link() {
        let m = msg(
            "Hi & <you>",
            "a < b\nc > d",
            Some("https://x.example/?a=1&b=\"2\""),
            None,
        );
        assert_eq!(
            render_parts(&m, MAX_TEXT_UNITS),
            vec!["<b>Hi &amp; &lt;you&gt;</b>\n\na &lt; b\nc &gt; d\n\n<a href=\"https://x.example/?a=1&amp;b=&quot;2&quot;\">Open</a>"]
        );
        let m = msg("T", "B", Some("https://x.example"), Some("See <it>"));
        assert_eq!(
            render_parts(&m, MAX_TEXT_UNITS),
            vec!["<b>T</b>\n\nB\n\n<a href=\"https://x.example\">See &lt;it&gt;</a>"]
        );
    }

    #[test]
    fn splits_at_lines_and_repeats_bold_for_a_split_title() {
        // max 20: "<b>T</b>\n\n" is 10 units; "line one\n" 9 fits (19); "line two" (8) goes on.
        let m = msg("T", "line one\nline two", None, None);
        assert_eq!(
            render_parts(&m, 20),
            vec!["<b>T</b>\n\nline one", "line two"]
        );
        // A 10-character title with max 12: 7 units of tags leave 5 characters a part.
        let m = msg("abcdefghij", "", None, None);
        assert_eq!(render_parts(&m, 12), vec!["<b>abcde</b>", "<b>fghij</b>"]);
    }

    #[test]
    fn a_link_that_does_not_fit_starts_a_new_part() {
        let m = msg("T", "body", Some("https://e.x"), Some("L"));
        // Link element: <a href="https://e.x">L</a> = 9 + 11 + 2 + 1 + 4 = 27 units.
        let parts = render_parts(&m, 30);
        assert_eq!(
            parts,
            vec!["<b>T</b>\n\nbody", "<a href=\"https://e.x\">L</a>"]
        );
    }

    #[test]
    fn maps_error_replies() {
        let r = interpret_reply(429, br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#);
        assert_eq!(
            r,
            Err(Outcome::Retryable {
                code: Some("429".into()),
                message: "Too Many Requests: retry after 7".into(),
                retry_after_secs: Some(7)
            })
        );
        let r = interpret_reply(403, br#"{"ok":false,"error_code":403,"description":"Forbidden: bot was kicked from the group chat"}"#);
        assert!(matches!(r, Err(Outcome::DeadTarget { .. })));
        let r = interpret_reply(502, b"<html>Bad Gateway</html>");
        assert!(
            matches!(r, Err(Outcome::Retryable { ref code, .. }) if code.as_deref() == Some("502"))
        );
        let r = interpret_reply(404, b"not found");
        assert!(matches!(r, Err(Outcome::Permanent { .. })));
        // HTTP 200 but ok:false is a failure.
        let r = interpret_reply(
            200,
            br#"{"ok":false,"error_code":400,"description":"Bad Request: message text is empty"}"#,
        );
        assert!(matches!(r, Err(Outcome::Permanent { .. })));
        let r = interpret_reply(200, br#"{"ok":true,"result":{"message_id":42}}"#);
        assert_eq!(r, Ok("42".into()));
    }

    #[test]
    fn token_format() {
        assert!(is_plausible_token("123456:ABC-DEF_ghi"));
        assert!(!is_plausible_token("123:abc/../x"));
        assert!(!is_plausible_token("123:abc?x=1"));
        assert!(!is_plausible_token(""));
    }

    #[test]
    fn scrub_removes_the_token() {
        let o = Outcome::retryable(None, "oops at /bot1:tok/sendMessage");
        assert_eq!(
            scrub(o, "1:tok").message(),
            Some("oops at /bot<bot token>/sendMessage")
        );
    }
}
