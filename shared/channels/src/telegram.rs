//! Telegram Bot API: `sendMessage` with `parse_mode=HTML`, user text escaped.
//!
//! The text is `<b>{title}</b>\n\n{body}` and, with a link, `\n\n<a href="{link}">{label}</a>`,
//! every user value escaped for Telegram's HTML mode. A text longer than 4096 UTF-16 code units
//! (counted before Telegram parses entities, which is the safe side) is sent as several messages,
//! cut at line ends where possible and never inside a character, an entity or a tag.
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
use crate::{config_str, Channel, Endpoints, Outcome, SendRequest};

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

    /// Sends one `sendMessage` call and decides its outcome from the reply body. Messages may
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

    /// With several parts, they are sent in order and the outcome carries the **first** part's
    /// `message_id` (the one with the title). If a later part fails, that failure is returned and
    /// its message says how many parts were already delivered.
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
        let Some(chat_id) = config_str(request.target_config, "chat_id") else {
            return Outcome::bad_config("the target has no chat_id");
        };
        let thread_id = request
            .target_config
            .get("message_thread_id")
            .and_then(Value::as_i64);

        let url = format!("{}/bot{}/sendMessage", self.api_base, token);
        let parts = render_parts(request.message, MAX_TEXT_UNITS);
        let total = parts.len();
        let mut first_id = None;
        let mut chat_id = chat_id.to_string();
        let mut migrated = false;
        for (index, text) in parts.iter().enumerate() {
            let mut payload = json!({
                "chat_id": chat_id,
                "text": text,
                "parse_mode": "HTML",
                "link_preview_options": {"is_disabled": true},
            });
            if let Some(thread_id) = thread_id {
                payload["message_thread_id"] = json!(thread_id);
            }
            let sent = self
                .send_to_chat(&url, &mut payload, &mut chat_id, &mut migrated)
                .await;
            match sent {
                Ok(id) => {
                    first_id.get_or_insert(id);
                }
                Err(outcome) => {
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

/// Renders `message` as one or more Telegram HTML texts of at most `max_units` UTF-16 units.
fn render_parts(message: &Message, max_units: usize) -> Vec<String> {
    let label = message
        .link_label
        .as_deref()
        .filter(|l| !l.trim().is_empty())
        .unwrap_or(DEFAULT_LINK_LABEL);
    let mut blocks = Vec::new();
    if !message.title.trim().is_empty() {
        blocks.push(Segment::Bold(&message.title));
    }
    if !message.body.trim().is_empty() {
        blocks.push(Segment::Plain(&message.body));
    }
    if let Some(href) = message.link.as_deref().filter(|l| !l.trim().is_empty()) {
        if utf16_len(&render_link(href, label)) <= max_units {
            blocks.push(Segment::Link { href, label });
        } else {
            // Too long to send as one element: the URL as text (Telegram links it itself).
            blocks.push(Segment::Plain(href));
        }
    }
    let mut segments = Vec::new();
    for (i, block) in blocks.into_iter().enumerate() {
        if i > 0 {
            segments.push(Segment::Plain("\n\n"));
        }
        segments.push(block);
    }
    let mut packer = Packer::new(max_units);
    for segment in segments {
        match segment {
            Segment::Bold(text) => packer.push_text(text, "<b>", "</b>"),
            Segment::Plain(text) => packer.push_text(text, "", ""),
            Segment::Link { href, label } => packer.push_atom(&render_link(href, label)),
        }
    }
    let parts = packer.finish();
    if parts.is_empty() {
        // Telegram rejects an empty text; say so rather than send nothing.
        vec![escape_html_text("(empty message)")]
    } else {
        parts
    }
}

/// Fills parts greedily with rendered segments.
struct Packer {
    max: usize,
    parts: Vec<String>,
    current: String,
    units: usize,
}

impl Packer {
    fn new(max: usize) -> Self {
        Packer {
            max,
            parts: Vec::new(),
            current: String::new(),
            units: 0,
        }
    }

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
        if self.units + units > self.max {
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
            let budget = self.max.saturating_sub(self.units + overhead);
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
