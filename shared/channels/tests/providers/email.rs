//! EmailChannel against a real SMTP server: `tests/support/smtp_sink.py` (aiosmtpd), which saves
//! every message as an .eml file that these tests parse with `mailparse`.
//!
//! The sink runs with the Python of the workspace's `.venv` (`NOTIFY_PYTHON` overrides it). The
//! TLS modes against a TLS-capable sink are in `email_tls.rs`.
use std::net::TcpListener;
use std::time::{Duration, Instant};

use mailparse::{addrparse_header, dateparse, parse_mail, MailAddr, MailHeaderMap, ParsedMail};
use notify_channels::email::EmailChannel;
use notify_channels::{Channel, Endpoints, Outcome, Preview, PreviewKind, SendRequest};
use notify_domain::{Message, SecretBundle, SecretValue};
use notify_fakes::smtp::SmtpSink as Sink;
use serde_json::{json, Map, Value};

const PASSWORD: &str = "s3cret-Auth-Code";

fn endpoints(allow_local_endpoints: bool) -> Endpoints {
    Endpoints {
        timeout: Duration::from_secs(5),
        allow_local_endpoints,
        ..Endpoints::default()
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn source(port: u16, tls: &str) -> Map<String, Value> {
    obj(json!({
        "host": "127.0.0.1",
        "port": port,
        "username": "alerts@example.com",
        "tls": tls,
        "from_address": "alerts@example.com",
        "sender_name": "Doe, Jane 张",
    }))
}

async fn send(
    channel: &EmailChannel,
    source_config: Map<String, Value>,
    message: &Message,
) -> Outcome {
    let mut secrets = SecretBundle::new();
    secrets.insert("password", SecretValue::new(PASSWORD));
    let target = obj(json!({"email": "someone@example.org"}));
    let outcome = channel
        .send(&SendRequest {
            source_config: &source_config,
            source_secrets: &secrets,
            target_config: &target,
            target_secrets: &SecretBundle::new(),
            message,
        })
        .await;
    for shown in [
        format!("{outcome:?}"),
        serde_json::to_string(&outcome).unwrap(),
    ] {
        assert!(!shown.contains(PASSWORD), "password leaked: {shown}");
    }
    outcome
}

fn message(title: &str, body: &str) -> Message {
    Message {
        title: title.into(),
        body: body.into(),
        link: Some("https://example.com/runs/42?tab=log&x=1".into()),
        link_label: Some("View run".into()),
        cover_url: Some("https://cdn.example.com/cover.png".into()),
    }
}

fn part<'a>(mail: &'a ParsedMail<'a>, mimetype: &str) -> &'a ParsedMail<'a> {
    mail.subparts
        .iter()
        .find(|p| p.ctype.mimetype == mimetype)
        .unwrap_or_else(|| panic!("no {mimetype} part"))
}

#[tokio::test]
async fn delivers_a_message_that_round_trips_through_a_mail_parser() {
    let sink = Sink::start();
    let channel = EmailChannel::new(&endpoints(true));
    let m = message(
        "通知: Größe",
        "Disk on db-1 is 91% full.\nCheck it soon.\n\nSecond paragraph & more",
    );
    let outcome = send(&channel, source(sink.port, "none"), &m).await;
    let Outcome::Delivered {
        provider_message_id: Some(message_id),
        target_update: None,
    } = outcome
    else {
        panic!("not delivered: {outcome:?}");
    };

    let (path, info) = sink.next_saved();
    assert_eq!(
        info,
        "from=alerts@example.com to=someone@example.org auth=alerts@example.com tls=no"
    );
    let raw = std::fs::read(&path).unwrap();
    let mail = parse_mail(&raw).unwrap();
    let h = &mail.headers;

    assert_eq!(h.get_first_value("Subject").as_deref(), Some("通知: Größe"));
    let subject_raw =
        String::from_utf8_lossy(h.get_first_header("Subject").unwrap().get_value_raw()).to_string();
    assert!(
        subject_raw.is_ascii() && subject_raw.contains("=?utf-8?"),
        "not RFC 2047 encoded: {subject_raw}"
    );

    let from = addrparse_header(h.get_first_header("From").unwrap()).unwrap();
    match &from[..] {
        [MailAddr::Single(info)] => {
            assert_eq!(info.display_name.as_deref(), Some("Doe, Jane 张"));
            assert_eq!(info.addr, "alerts@example.com");
        }
        other => panic!("From is not one mailbox: {other:?}"),
    }
    let to = addrparse_header(h.get_first_header("To").unwrap()).unwrap();
    match &to[..] {
        [MailAddr::Single(info)] => assert_eq!(info.addr, "someone@example.org"),
        other => panic!("To is not one mailbox: {other:?}"),
    }

    assert_eq!(
        h.get_first_value("Message-ID").as_deref(),
        Some(message_id.as_str())
    );
    assert!(
        message_id.starts_with('<') && message_id.ends_with("@example.com>"),
        "{message_id}"
    );
    let date = h.get_first_value("Date").expect("a Date header");
    let when = dateparse(&date).unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((now - when).abs() < 300, "Date {date} is not now");

    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    assert_eq!(mail.subparts.len(), 2);
    let text = part(&mail, "text/plain").get_body().unwrap();
    let text = text.replace("\r\n", "\n");
    assert_eq!(
        text,
        "通知: Größe\n\nDisk on db-1 is 91% full.\nCheck it soon.\n\nSecond paragraph & more\n\nView run:\nhttps://example.com/runs/42?tab=log&x=1\n"
    );
    let html = part(&mail, "text/html").get_body().unwrap();
    assert!(html.contains(">通知: Größe</h1>"), "{html}");
    assert!(html.contains(">Disk on db-1 is 91% full.<br>"), "{html}");
    assert!(html.contains(">Second paragraph &amp; more</p>"), "{html}");
    assert!(
        html.contains("href=\"https://example.com/runs/42?tab=log&amp;x=1\""),
        "{html}"
    );
    assert!(html.contains(">View run</a>"), "{html}");
    assert!(
        html.contains("<img src=\"https://cdn.example.com/cover.png\""),
        "{html}"
    );

    // No line of the raw message is longer than RFC 5322's 998 octets.
    for line in raw.split(|b| *b == b'\n') {
        assert!(line.len() <= 998, "line of {} octets", line.len());
    }
}

#[tokio::test]
async fn hostile_title_is_escaped_in_html_and_literal_in_text() {
    let sink = Sink::start();
    let channel = EmailChannel::new(&endpoints(true));
    let m = message("<script>alert(1)</script>", "<b>not bold</b>");
    let outcome = send(&channel, source(sink.port, "none"), &m).await;
    assert!(outcome.is_delivered(), "{outcome:?}");

    let (path, _) = sink.next_saved();
    let raw = std::fs::read(path).unwrap();
    let mail = parse_mail(&raw).unwrap();
    assert_eq!(
        mail.headers.get_first_value("Subject").as_deref(),
        Some("<script>alert(1)</script>")
    );
    let html = part(&mail, "text/html").get_body().unwrap();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(html.contains("&lt;b&gt;not bold&lt;/b&gt;"), "{html}");
    assert!(
        !html.contains("<script>") && !html.contains("<b>"),
        "{html}"
    );
    let text = part(&mail, "text/plain").get_body().unwrap();
    assert!(
        text.starts_with("<script>alert(1)</script>\r\n\r\n<b>not bold</b>"),
        "{text}"
    );
}

#[tokio::test]
async fn plaintext_is_refused_unless_the_deployment_allows_it() {
    // A listener that would see any connection attempt.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let channel = EmailChannel::new(&endpoints(false));
    let outcome = send(&channel, source(port, "none"), &message("t", "b")).await;
    assert!(matches!(outcome, Outcome::Permanent { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("invalid_config"));
    assert!(
        outcome.message().unwrap().contains("plaintext"),
        "{outcome:?}"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the channel connected although it had to refuse"
    );
}

#[tokio::test]
async fn a_host_that_is_not_public_is_never_connected_to_unless_local_endpoints_are_allowed() {
    // The same listener, named two ways: a literal loopback address and a name resolving to it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let channel = EmailChannel::new(&endpoints(false));
    for host in ["127.0.0.1", "localhost", "169.254.169.254"] {
        let mut config = source(port, "starttls");
        config.insert("host".into(), json!(host));
        let outcome = send(&channel, config, &message("t", "b")).await;
        assert!(
            matches!(outcome, Outcome::Permanent { .. }),
            "{host}: {outcome:?}"
        );
        assert_eq!(outcome.code(), Some("non_public_host"), "{host}");
        assert!(
            outcome.message().unwrap().contains("must be a public host"),
            "{host}: {outcome:?}"
        );
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the channel connected to a loopback address"
    );
}

#[tokio::test]
async fn starttls_required_refuses_a_server_without_it() {
    let sink = Sink::start();
    let channel = EmailChannel::new(&endpoints(true));
    // Explicit starttls, and auto on a port other than 465: both require the upgrade.
    for tls in ["starttls", "auto"] {
        let started = Instant::now();
        let outcome = send(&channel, source(sink.port, tls), &message("t", "b")).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            matches!(outcome, Outcome::Permanent { .. }),
            "{tls}: {outcome:?}"
        );
        assert_eq!(
            outcome.code(),
            Some("starttls_unavailable"),
            "{tls}: {outcome:?}"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(sink.saved_files().is_empty(), "a message was sent in clear");
    assert!(sink.try_line().is_none(), "the sink reported a message");
}

#[tokio::test]
async fn implicit_tls_against_a_plaintext_server_fails_without_sending() {
    let sink = Sink::start();
    let channel = EmailChannel::new(&endpoints(true));
    let started = Instant::now();
    let outcome = send(&channel, source(sink.port, "implicit"), &message("t", "b")).await;
    assert!(
        started.elapsed() < Duration::from_secs(16),
        "took {:?}",
        started.elapsed()
    );
    assert!(!outcome.is_delivered(), "{outcome:?}");
    assert_eq!(outcome.code(), Some("tls_error"), "{outcome:?}");
    assert!(sink.saved_files().is_empty());
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let channel = EmailChannel::new(&endpoints(true));
    let outcome = send(&channel, source(port, "none"), &message("t", "b")).await;
    assert!(matches!(outcome, Outcome::Retryable { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("connection_failed"));
    assert!(
        outcome
            .message()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{outcome:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Preview, long lines and hostile input.

/// The channel's preview for `message`, built without the password.
fn preview_of(
    channel: &EmailChannel,
    source_config: &Map<String, Value>,
    message: &Message,
) -> Preview {
    let target = obj(json!({"email": "someone@example.org"}));
    let preview = channel
        .preview(&SendRequest {
            source_config,
            source_secrets: &SecretBundle::new(),
            target_config: &target,
            target_secrets: &SecretBundle::new(),
            message,
        })
        .unwrap();
    let kinds: Vec<PreviewKind> = preview.parts.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        vec![
            PreviewKind::EmailHeaders,
            PreviewKind::EmailText,
            PreviewKind::EmailHtml
        ]
    );
    assert!(!serde_json::to_string(&preview).unwrap().contains(PASSWORD));
    preview
}

/// Sends `message` to a fresh sink and returns the raw message it saved.
async fn send_and_read(channel: &EmailChannel, sink: &Sink, message: &Message) -> Vec<u8> {
    let outcome = send(channel, source(sink.port, "none"), message).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    let (path, _) = sink.next_saved();
    std::fs::read(path).unwrap()
}

/// The headers and both parts of a sent message, as a preview shows them: bodies decoded from
/// their transfer encoding, CRLF line ends back to LF.
fn as_preview_bodies(raw: &[u8]) -> (Value, String, String) {
    let mail = parse_mail(raw).unwrap();
    let h = &mail.headers;
    let from = addrparse_header(h.get_first_header("From").unwrap()).unwrap();
    let [MailAddr::Single(from)] = &from[..] else {
        panic!("From is not one mailbox: {from:?}")
    };
    let to = addrparse_header(h.get_first_header("To").unwrap()).unwrap();
    let [MailAddr::Single(to)] = &to[..] else {
        panic!("To is not one mailbox: {to:?}")
    };
    let mut headers = json!({
        "subject": h.get_first_value("Subject").unwrap(),
        "from": from.addr,
        "to": to.addr,
    });
    if let Some(name) = &from.display_name {
        headers["from_name"] = json!(name);
    }
    let body = |mimetype| {
        part(&mail, mimetype)
            .get_body()
            .unwrap()
            .replace("\r\n", "\n")
    };
    (headers, body("text/plain"), body("text/html"))
}

const HOSTILE_TITLE: &str = "<script>alert(1)</script> [x](http://evil)";
const HOSTILE_BODY: &str =
    r#"**bold** ![img](http://evil/x.png) <a href="http://evil">y</a> & "quotes""#;

#[tokio::test]
async fn preview_equals_what_is_sent() {
    let sink = Sink::start();
    let channel = EmailChannel::new(&endpoints(true));
    let messages = [
        message(
            "通知: Größe 😀",
            "Disk on db-1 is 91% full.\nCheck it soon.\n\nSecond paragraph & more",
        ),
        message(HOSTILE_TITLE, HOSTILE_BODY),
        // A 10,000-character line (lettre must encode it into lines of at most 998 octets).
        message("Long", &"abcd 通知 😀 ".repeat(1000)),
        Message {
            link: None,
            cover_url: None,
            ..message("No link", "")
        },
    ];
    for m in &messages {
        let raw = send_and_read(&channel, &sink, m).await;
        let preview = preview_of(&channel, &source(sink.port, "none"), m);
        let (headers, text, html) = as_preview_bodies(&raw);
        assert_eq!(headers, preview.parts[0].body);
        assert!(preview.parts[1].body == text.as_str(), "{text}");
        assert!(preview.parts[2].body == html.as_str(), "{html}");
    }
}

#[tokio::test]
async fn a_10000_character_single_line_body_is_sent_in_short_lines() {
    // "abcd 通知 😀 " is 10 characters (4 + 1 + 2 + 1 + 1 + 1) and 17 UTF-8 bytes
    // (4 + 1 + 6 + 1 + 4 + 1): × 1000 = 10,000 characters and 17,000 bytes on one line, 17 times
    // RFC 5322's 998-octet limit. lettre picks a transfer encoding that wraps it.
    let body = "abcd 通知 😀 ".repeat(1000);
    assert_eq!(body.chars().count(), 10_000);
    assert_eq!(body.len(), 17_000);
    let sink = Sink::start();
    let channel = EmailChannel::new(&endpoints(true));
    let raw = send_and_read(&channel, &sink, &message("Long", &body)).await;
    for line in raw.split(|b| *b == b'\n') {
        assert!(line.len() <= 998, "line of {} octets", line.len());
    }
    let (_, text, html) = as_preview_bodies(&raw);
    assert!(text.contains(&body), "the text part lost characters");
    assert!(html.contains(&body), "the HTML part lost characters");
}

#[test]
fn hostile_text_is_escaped_in_html_and_literal_in_text() {
    let channel = EmailChannel::new(&endpoints(true));
    let m = Message {
        link: Some("javascript:alert(1)".into()),
        link_label: Some("<b>x</b>".into()),
        cover_url: Some("javascript:alert(2)".into()),
        ..message(HOSTILE_TITLE, HOSTILE_BODY)
    };
    let preview = preview_of(&channel, &source(2525, "none"), &m);
    assert_eq!(
        preview.parts[0].body,
        json!({
            "subject": HOSTILE_TITLE,
            "from": "alerts@example.com",
            "from_name": "Doe, Jane 张",
            "to": "someone@example.org",
        })
    );
    // text/plain is never interpreted: the text as typed.
    assert_eq!(
        preview.parts[1].body,
        format!("{HOSTILE_TITLE}\n\n{HOSTILE_BODY}\n\n<b>x</b>:\njavascript:alert(1)\n")
    );
    let html = preview.parts[2].body.as_str().unwrap();
    // Every user value is escaped; Markdown means nothing in HTML. No cover image and no link:
    // neither is http(s).
    assert!(html.contains("<title>&lt;script&gt;alert(1)&lt;/script&gt; [x](http://evil)</title>"));
    assert!(html.contains(">&lt;script&gt;alert(1)&lt;/script&gt; [x](http://evil)</h1>\n"));
    assert!(html.contains(
        "<p style=\"margin:0 0 16px;\">**bold** ![img](http://evil/x.png) \
         &lt;a href=&quot;http://evil&quot;&gt;y&lt;/a&gt; &amp; &quot;quotes&quot;</p>\n"
    ));
    assert!(html
        .contains("<p style=\"margin:24px 0 0;\">&lt;b&gt;x&lt;/b&gt;: javascript:alert(1)</p>\n"));
    assert!(!html.contains("<img") && !html.contains("<a "), "{html}");
    assert_eq!(
        preview.notes,
        vec!["the cover is not an http(s) URL: it is left out"]
    );
}
