//! DingTalk custom robot (webhook + signing secret): one `msgtype: markdown` message.
//!
//! The request goes to the target's webhook URL with `&timestamp=…&sign=…` appended when the
//! target has a signing secret (see [`crate::sign`]). Success is the body's `errcode == 0`;
//! DingTalk answers HTTP 200 to most failures. The webhook URL holds the robot's access token:
//! reqwest errors are stripped of their URL and outcome messages are scrubbed of the token and
//! the secret.
//!
//! [`render`] makes the body for both `send` and `preview`; the signature lives only in the URL,
//! so the previewed body is exactly the sent one. It is kept within [`MAX_BODY_BYTES`].
use std::sync::Arc;

use async_trait::async_trait;
use notify_domain::{ChannelKind, FieldFormat, FieldSpec, KindSpec, Message};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::network_outcome;
use crate::sign::{dingtalk_signed_url, system_clock, Clock};
use crate::text::{excerpt, fit_with_ellipsis};
use crate::{config_str, Channel, Outcome, Preview, PreviewKind, PreviewPart, SendRequest};

pub static SPEC: KindSpec = KindSpec {
    kind: ChannelKind::Dingtalk,
    label: "DingTalk",
    source_fields: &[],
    target_fields: &[
        FieldSpec::new(
            "webhook_url",
            "Webhook URL",
            FieldFormat::WebhookUrl {
                hosts: &["oapi.dingtalk.com"],
                path_prefix: "/robot/send",
                query: &["access_token"],
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
        .help("The robot's SEC… signing secret"),
    ],
};

/// Seconds to wait after `130101`. DingTalk's documentation: a robot may send 20 messages a
/// minute; past that it is throttled for 10 minutes, so retrying after one minute would fail again.
pub const RATE_LIMIT_RETRY_SECS: u64 = 600;

/// Largest request body sent, in bytes of the serialized JSON. DingTalk's documentation gives
/// no size limit for markdown messages; its robot answers `460101 "message too long, exceed
/// 20000 bytes"` (and, in newer replies, "body 大小不合法;解决方案:请保持大小在 20000bytes 以内")
/// beyond it, as reported against several open-source senders. A longer message is cut rather
/// than split: a split would spend the robot's 20 messages a minute (then 10 minutes throttled).
pub const MAX_BODY_BYTES: usize = 20_000;

/// Label of the link when the message has none.
const DEFAULT_LINK_LABEL: &str = "Open";

/// `markdown.title` is required; used when the message has no title.
const DEFAULT_TITLE: &str = "Notification";

pub struct DingtalkChannel {
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl DingtalkChannel {
    pub fn new(http: reqwest::Client) -> Self {
        DingtalkChannel {
            http,
            clock: system_clock(),
        }
    }

    /// Signs with `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

#[async_trait]
impl Channel for DingtalkChannel {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn send(&self, request: &SendRequest<'_>) -> Outcome {
        let Some(webhook_url) = config_str(request.target_config, "webhook_url") else {
            return Outcome::bad_config("the target has no webhook_url");
        };
        let secret = request
            .target_secrets
            .get("sign")
            .map(|s| s.expose())
            .filter(|s| !s.is_empty());
        let url = match secret {
            Some(secret) => dingtalk_signed_url(webhook_url, self.clock.now_millis(), secret),
            None => url::Url::parse(webhook_url),
        };
        // The URL carries the access token: never echo it.
        let Ok(url) = url else {
            return Outcome::bad_config("the webhook_url is not a valid URL");
        };
        let mut hidden: Vec<&str> = secret.into_iter().collect();
        let token = url
            .query_pairs()
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned());
        if let Some(token) = token.as_deref() {
            hidden.push(token);
        }

        // The same body as the preview; the signature is in the URL only.
        let (payload, notes) = build(request.message);
        for note in notes {
            tracing::info!(note, "DingTalk");
        }
        let outcome = match self.http.post(url).json(&payload).send().await {
            Err(e) => network_outcome("sending the request to DingTalk failed", e),
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(body) => interpret_reply(status, &body),
                    Err(e) => network_outcome("reading DingTalk's reply failed", e),
                }
            }
        };
        // Defence in depth: the access token and the signing secret should never get there.
        outcome.scrub(&hidden)
    }

    /// The body of [`render`]; the webhook URL (with its access token) and the signature are
    /// not part of it.
    fn preview(&self, request: &SendRequest<'_>) -> Result<Preview, Outcome> {
        let Some(webhook_url) = config_str(request.target_config, "webhook_url") else {
            return Err(Outcome::bad_config("the target has no webhook_url"));
        };
        if url::Url::parse(webhook_url).is_err() {
            return Err(Outcome::bad_config("the webhook_url is not a valid URL"));
        }
        let (body, notes) = build(request.message);
        Ok(Preview {
            channel: ChannelKind::Dingtalk,
            parts: vec![PreviewPart::new(PreviewKind::DingtalkMarkdown, body)],
            notes,
        })
    }
}

/// The `msgtype: markdown` body for `message`, used by both `send` and `preview`:
///
/// ```text
/// #### {title}
///
/// ![cover]({cover_url})
///
/// {body}
///
/// [{link_label}]({link})
/// ```
///
/// Every user value is escaped with [`escape_markdown`]; blocks that are empty are left out.
/// `markdown.title` (shown in notifications and the chat list) is the plain title on one line.
/// Links and the cover are used only when they are absolute http(s) URLs.
///
/// The serialized body is kept within [`MAX_BODY_BYTES`]: the body text is cut on a character
/// boundary and ends with "…" (cut before escaping, so no escape is ever split); if even an
/// empty body does not fit, the title is cut the same way (in both places it appears).
pub fn render(message: &Message) -> Value {
    build(message).0
}

/// [`render`], with notes on what was changed or left out (for previews).
fn build(message: &Message) -> (Value, Vec<String>) {
    let mut notes = Vec::new();
    let cover = message
        .cover_url
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        .and_then(|cover| {
            let url = markdown_url(cover);
            if url.is_none() {
                notes.push("the cover is not an http(s) URL: it is left out".to_string());
            }
            url
        });
    let link = message
        .link
        .as_deref()
        .filter(|l| !l.trim().is_empty())
        .and_then(|link| {
            let url = markdown_url(link);
            if url.is_none() {
                notes.push("the link is not an http(s) URL: it is left out".to_string());
            }
            url
        })
        .map(|url| {
            let label = message
                .link_label
                .as_deref()
                .map(one_line)
                .filter(|l| !l.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_LINK_LABEL.to_string());
            (label, url)
        });
    let assemble = |title: &str, body: &str| {
        let mut blocks = Vec::new();
        if !title.trim().is_empty() {
            blocks.push(format!("#### {}", escape_markdown(title)));
        }
        if let Some(url) = &cover {
            blocks.push(format!("![cover]({url})"));
        }
        if !body.trim().is_empty() {
            blocks.push(hard_line_breaks(&escape_markdown(body)));
        }
        if let Some((label, url)) = &link {
            blocks.push(format!("[{}]({url})", escape_markdown(label)));
        }
        let title = if title.trim().is_empty() {
            DEFAULT_TITLE
        } else {
            title
        };
        json!({
            "msgtype": "markdown",
            "markdown": {
                "title": title,
                "text": blocks.join("\n\n"),
            }
        })
    };
    let fits = |title: &str, body: &str| {
        serde_json::to_vec(&assemble(title, body)).is_ok_and(|v| v.len() <= MAX_BODY_BYTES)
    };
    let title = one_line(&message.title);
    let body = normalise_newlines(&message.body);
    if fits(&title, &body) {
        return (assemble(&title, &body), notes);
    }
    let body = fit_with_ellipsis(&body, |b| fits(&title, b));
    let title = if fits(&title, &body) {
        notes.push(format!(
            "the body was shortened to fit DingTalk's {MAX_BODY_BYTES}-byte limit"
        ));
        title
    } else {
        notes.push(format!(
            "the title and body were shortened to fit DingTalk's {MAX_BODY_BYTES}-byte limit"
        ));
        fit_with_ellipsis(&title, |t| fits(t, &body))
    };
    (assemble(&title, &body), notes)
}

/// Escapes plain text for DingTalk's Markdown so that it renders literally and can form no
/// link, image, emphasis, heading, list, quote, code or HTML:
///
/// - `&` `<` `>` become the entities `&amp;` `&lt;` `&gt;` (understood by every Markdown
///   dialect; a backslash before `<` is not, in the original Markdown);
/// - `\` `` ` `` `*` `_` `[` `]` `#` `~` `|` always get a backslash;
/// - `-` `+` `=` get one only as the first character of a line after spaces (a list item, a
///   setext underline), and `.` `)` only after digits at the start of a line (an ordered list).
///
/// `(`, `)` and `!` elsewhere are left alone: with `[`, `]` and `<` escaped no link, image or
/// autolink can form around them, and every backslash that is not needed is one more character
/// a renderer might show.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut line_prefix = true; // only spaces and digits so far on this line
    let mut digits = false;
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '~' | '|' => {
                out.push('\\');
                out.push(c);
            }
            '-' | '+' | '=' if line_prefix && !digits => {
                out.push('\\');
                out.push(c);
            }
            '.' | ')' if line_prefix && digits => {
                out.push('\\');
                out.push(c);
            }
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

/// Keeps the author's line breaks: a single `\n` is a soft break in Markdown, so a line followed
/// by another non-empty line ends with two spaces (a hard break). Blank lines (paragraph breaks)
/// are left as they are.
fn hard_line_breaks(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = String::with_capacity(text.len() + lines.len() * 2);
    for (i, line) in lines.iter().enumerate() {
        out.push_str(line);
        if let Some(next) = lines.get(i + 1) {
            if !line.trim().is_empty() && !next.trim().is_empty() {
                out.push_str("  ");
            }
            out.push('\n');
        }
    }
    out
}

/// `text` on one line: line breaks become spaces.
fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn normalise_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// An absolute http(s) URL made safe inside `(…)` of a Markdown link: normalised by the `url`
/// crate (which percent-encodes spaces, quotes and angle brackets) with parentheses encoded too.
fn markdown_url(text: &str) -> Option<String> {
    let url = url::Url::parse(text.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    Some(url.as_str().replace('(', "%28").replace(')', "%29"))
}

#[derive(Deserialize)]
struct RobotReply {
    #[serde(default)]
    errcode: Option<i64>,
    #[serde(default)]
    errmsg: Option<String>,
}

/// Decides a reply from its body: success is `errcode == 0` (with HTTP 200), whatever else the
/// status says.
fn interpret_reply(status: u16, body: &[u8]) -> Outcome {
    let reply = serde_json::from_slice::<RobotReply>(body)
        .ok()
        .and_then(|r| r.errcode.map(|code| (code, r.errmsg.unwrap_or_default())));
    let Some((errcode, errmsg)) = reply else {
        let message = format!(
            "DingTalk answered HTTP {status} with a body that is not a robot reply: {}",
            excerpt(body)
        );
        let code = Some(status.to_string());
        return if status == 429 || status >= 500 {
            Outcome::retryable(code, message)
        } else {
            Outcome::permanent(code, message)
        };
    };
    if errcode == 0 && status == 200 {
        return Outcome::delivered(None);
    }
    let code = Some(errcode.to_string());
    let message = if errmsg.is_empty() {
        format!("DingTalk error {errcode} (HTTP {status})")
    } else {
        errmsg
    };
    match errcode {
        130101 => Outcome::Retryable {
            code,
            message,
            retry_after_secs: Some(RATE_LIMIT_RETRY_SECS),
        },
        // -1: "system busy, try again later".
        -1 => Outcome::retryable(code, message),
        _ if status == 429 || status >= 500 => Outcome::retryable(code, message),
        310000 => Outcome::permanent(
            code,
            format!(
                "{message} (the robot's security settings refused the message: a keyword missing, \
                 a wrong signing secret or clock more than an hour off, or an IP not on the allow-list)"
            ),
        ),
        _ => Outcome::permanent(code, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_links_html_and_emphasis() {
        assert_eq!(
            escape_markdown("<script>alert(1)</script> [x](http://evil) ![i](y)"),
            r"&lt;script&gt;alert(1)&lt;/script&gt; \[x\](http://evil) !\[i\](y)"
        );
        assert_eq!(
            escape_markdown("a_b *c* `d` ~~e~~ \\ & | ! 2026-03-02 a+b=c"),
            r"a\_b \*c\* \`d\` \~\~e\~\~ \\ &amp; \| ! 2026-03-02 a+b=c"
        );
    }

    #[test]
    fn escapes_block_syntax_only_where_it_would_apply() {
        assert_eq!(
            escape_markdown("# h\n- item\n12. n\nv1.2 ok\n  3. x"),
            "\\# h\n\\- item\n12\\. n\nv1.2 ok\n  3\\. x"
        );
        // "1)" lists, "+" lists and setext underlines.
        assert_eq!(
            escape_markdown("1) a\n + b\n===\n---\n(1) c"),
            "1\\) a\n \\+ b\n\\===\n\\---\n(1) c"
        );
    }

    #[test]
    fn hard_breaks_only_between_lines_of_text() {
        assert_eq!(hard_line_breaks("a\nb\n\nc\n"), "a  \nb\n\nc\n");
        assert_eq!(hard_line_breaks("a"), "a");
    }

    #[test]
    fn markdown_urls_are_http_only_and_parenthesis_safe() {
        assert_eq!(
            markdown_url("https://e.x/a(b)?q=<1> 2").as_deref(),
            Some("https://e.x/a%28b%29?q=%3C1%3E%202")
        );
        assert_eq!(markdown_url("javascript:alert(1)"), None);
        assert_eq!(markdown_url("not a url"), None);
    }

    #[test]
    fn reply_mapping() {
        assert!(interpret_reply(200, br#"{"errcode":0,"errmsg":"ok"}"#).is_delivered());
        let o = interpret_reply(200, br#"{"errcode":130101,"errmsg":"send too fast"}"#);
        assert!(matches!(
            o,
            Outcome::Retryable {
                retry_after_secs: Some(600),
                ..
            }
        ));
        let o = interpret_reply(502, b"<html>bad gateway</html>");
        assert!(matches!(o, Outcome::Retryable { .. }));
        assert_eq!(o.code(), Some("502"));
        let o = interpret_reply(200, b"{}");
        assert!(matches!(o, Outcome::Permanent { .. }), "{o:?}");
    }
}
