//! DingtalkChannel against the shared DingTalk robot fake (`notify_fakes::dingtalk`).
//!
//! The fake recomputes the signature itself (not the crate's `sign` module), checks the body
//! shape and answers with DingTalk's real reply bodies, all with HTTP 200 as DingTalk does.
//! Expected Markdown texts are written out by hand.
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify_channels::dingtalk::{DingtalkChannel, MAX_BODY_BYTES, RATE_LIMIT_RETRY_SECS};
use notify_channels::sign::{dingtalk_sign, dingtalk_signed_url, Clock};
use notify_channels::{Channel, Outcome, Preview, PreviewKind, SendRequest};
use notify_domain::{Message, SecretBundle, SecretValue};
use notify_fakes::dingtalk::{FakeDingtalk, RobotReply};
use serde_json::{json, Map, Value};

const ACCESS_TOKEN: &str = "f3c1a9e07b2d4c58a6e1d0b9c8f7a6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9";
const SECRET: &str = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";

/// A robot with `secret` (if any) that answers `reply` to the first message; the channel only
/// ever sends Markdown.
async fn start_robot(reply: RobotReply, secret: Option<&str>) -> FakeDingtalk {
    let robot = FakeDingtalk::start(ACCESS_TOKEN, secret).await;
    robot.expect_msgtype("markdown");
    robot.script([reply]);
    robot
}

fn raw_queries(robot: &FakeDingtalk) -> Vec<String> {
    robot.received().into_iter().map(|r| r.raw_query).collect()
}

fn texts(robot: &FakeDingtalk) -> Vec<String> {
    robot
        .requests()
        .iter()
        .map(|b| b["markdown"]["text"].as_str().unwrap().to_string())
        .collect()
}

struct FixedClock(AtomicI64);

impl Clock for FixedClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn channel(timeout: Duration) -> DingtalkChannel {
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .unwrap();
    DingtalkChannel::new(http)
}

fn message(title: &str, body: &str) -> Message {
    Message {
        title: title.into(),
        body: body.into(),
        link: None,
        link_label: None,
        cover_url: None,
    }
}

async fn send_to(
    ch: &DingtalkChannel,
    webhook: &str,
    secret: Option<&str>,
    message: &Message,
) -> Outcome {
    let target = json!({"webhook_url": webhook});
    let target_config: Map<String, Value> = target.as_object().unwrap().clone();
    let mut target_secrets = SecretBundle::new();
    if let Some(secret) = secret {
        target_secrets.insert("sign", SecretValue::new(secret));
    }
    let outcome = ch
        .send(&SendRequest {
            source_config: &Map::new(),
            source_secrets: &SecretBundle::new(),
            target_config: &target_config,
            target_secrets: &target_secrets,
            message,
        })
        .await;
    let shown = format!("{outcome:?} {}", serde_json::to_string(&outcome).unwrap());
    assert!(
        !shown.contains(ACCESS_TOKEN) && !shown.contains(SECRET),
        "secret leaked: {shown}"
    );
    outcome
}

async fn send(robot: &FakeDingtalk, message: &Message) -> Outcome {
    let outcome = send_to(
        &channel(Duration::from_secs(5)),
        &robot.webhook_url(),
        Some(SECRET),
        message,
    )
    .await;
    // A scripted refusal only tests the channel if DingTalk would have accepted the request.
    assert_eq!(robot.violations(), Vec::<String>::new());
    outcome
}

#[test]
fn sign_matches_the_reference_vector() {
    assert_eq!(
        dingtalk_sign(1_700_000_000_000, "SECtest0002abcdef"),
        "bnaE5c+eN6pyvegK3vFiITh/R62HdwWXiAagCzLi8hk="
    );
    let url = dingtalk_signed_url(
        "https://oapi.dingtalk.com/robot/send?access_token=abc123",
        1_700_000_000_000,
        "SECtest0002abcdef",
    )
    .unwrap();
    let raw = url.as_str();
    assert_eq!(
        raw,
        "https://oapi.dingtalk.com/robot/send?access_token=abc123&timestamp=1700000000000\
         &sign=bnaE5c%2BeN6pyvegK3vFiITh%2FR62HdwWXiAagCzLi8hk%3D"
    );
    assert!(raw.contains("sign=bnaE5c%2BeN6pyvegK3vFiITh%2FR62HdwWXiAagCzLi8hk%3D"));
    assert!(!raw.contains("%25"), "double-encoded: {raw}");
    assert!(!raw.contains('+'), "raw '+': {raw}");
}

#[tokio::test]
async fn the_channel_signs_with_its_clock_and_encodes_once() {
    let robot = start_robot(RobotReply::Ok, Some("SECtest0002abcdef")).await;
    robot.pin_clock(1_700_000_000_000);
    let ch = channel(Duration::from_secs(5))
        .with_clock(Arc::new(FixedClock(AtomicI64::new(1_700_000_000_000))));
    let outcome = send_to(
        &ch,
        &robot.webhook_url(),
        Some("SECtest0002abcdef"),
        &message("T", "b"),
    )
    .await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    assert_eq!(
        raw_queries(&robot),
        vec![format!(
            "access_token={ACCESS_TOKEN}&timestamp=1700000000000\
             &sign=bnaE5c%2BeN6pyvegK3vFiITh%2FR62HdwWXiAagCzLi8hk%3D"
        )]
    );
}

#[tokio::test]
async fn sends_a_signed_markdown_message_with_the_system_clock() {
    let robot = start_robot(RobotReply::Ok, Some(SECRET)).await;
    let m = Message {
        link: Some("https://example.com/report?id=7&x=(y)".into()),
        link_label: Some("View report".into()),
        cover_url: Some("https://cdn.example.com/cover.png".into()),
        ..message("Deploy done", "All 3 services are up.\nNext: 2.0")
    };
    let outcome = send(&robot, &m).await;
    assert_eq!(outcome, Outcome::delivered(None));
    assert_eq!(
        robot.requests(),
        vec![json!({
            "msgtype": "markdown",
            "markdown": {
                "title": "Deploy done",
                "text": "#### Deploy done\n\n\
                         ![cover](https://cdn.example.com/cover.png)\n\n\
                         All 3 services are up.  \nNext: 2.0\n\n\
                         [View report](https://example.com/report?id=7&x=%28y%29)",
            }
        })]
    );
    // The signature is fresh: DingTalk refuses timestamps more than an hour off.
    let query = raw_queries(&robot).remove(0);
    let ts: i64 = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "timestamp")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((now - ts).abs() < 60_000, "timestamp {ts} vs now {now}");
}

#[tokio::test]
async fn hostile_text_stays_literal() {
    let robot = start_robot(RobotReply::Ok, Some(SECRET)).await;
    let hostile = "<script>alert(1)</script> [x](http://evil)";
    let m = Message {
        link: Some("https://example.com/".into()),
        link_label: Some("![img](http://evil/i.png)".into()),
        ..message(hostile, hostile)
    };
    assert!(send(&robot, &m).await.is_delivered());
    // With '[', ']' and '<' escaped, no link or image can form around '(' ')' '!'.
    let escaped = r"&lt;script&gt;alert(1)&lt;/script&gt; \[x\](http://evil)";
    assert_eq!(
        texts(&robot),
        vec![format!(
            "#### {escaped}\n\n{escaped}\n\n[!\\[img\\](http://evil/i.png)](https://example.com/)"
        )]
    );
    // The notification title is plain text, not Markdown.
    assert_eq!(robot.requests()[0]["markdown"]["title"], hostile);
}

#[tokio::test]
async fn a_title_on_several_lines_and_markdown_in_the_body() {
    let robot = start_robot(RobotReply::Ok, Some(SECRET)).await;
    let m = message(
        "Line one\nline two",
        "# not a heading\n- not a list\n1. not a list\n**not bold** _nor this_ `nor code`",
    );
    assert!(send(&robot, &m).await.is_delivered());
    assert_eq!(
        texts(&robot),
        vec![
            "#### Line one line two\n\n\
              \\# not a heading  \n\\- not a list  \n1\\. not a list  \n\
              \\*\\*not bold\\*\\* \\_nor this\\_ \\`nor code\\`"
        ]
    );
    assert_eq!(
        robot.requests()[0]["markdown"]["title"],
        "Line one line two"
    );
}

#[tokio::test]
async fn links_that_are_not_http_are_left_out() {
    let robot = start_robot(RobotReply::Ok, Some(SECRET)).await;
    let m = Message {
        link: Some("javascript:alert(1)".into()),
        cover_url: Some("file:///etc/passwd".into()),
        ..message("T", "b")
    };
    assert!(send(&robot, &m).await.is_delivered());
    assert_eq!(texts(&robot), vec!["#### T\n\nb"]);
}

#[tokio::test]
async fn without_a_secret_the_url_is_not_signed() {
    let robot = start_robot(RobotReply::Ok, None).await;
    let outcome = send_to(
        &channel(Duration::from_secs(5)),
        &robot.webhook_url(),
        None,
        &message("T", "b"),
    )
    .await;
    assert!(outcome.is_delivered());
    assert_eq!(
        raw_queries(&robot),
        vec![format!("access_token={ACCESS_TOKEN}")]
    );
}

#[tokio::test]
async fn sign_mismatch_is_permanent_with_its_code() {
    let robot = start_robot(RobotReply::sign_mismatch(), Some(SECRET)).await;
    let outcome = send(&robot, &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Permanent { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("310000"));
    assert!(
        outcome.message().unwrap().starts_with("sign not match"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn missing_parameter_is_permanent_with_its_code() {
    // The code is DingTalk's "missing parameter"; this errmsg text is not a captured one.
    let robot = start_robot(
        RobotReply::Error {
            errcode: 400402,
            errmsg: "missing parameter".into(),
        },
        Some(SECRET),
    )
    .await;
    let outcome = send(&robot, &message("T", "b")).await;
    assert_eq!(
        outcome,
        Outcome::Permanent {
            code: Some("400402".into()),
            message: "missing parameter".into()
        }
    );
}

#[tokio::test]
async fn too_fast_is_retryable_after_the_throttle_window() {
    let robot = start_robot(RobotReply::too_fast(), Some(SECRET)).await;
    let outcome = send(&robot, &message("T", "b")).await;
    assert_eq!(
        outcome,
        Outcome::Retryable {
            code: Some("130101".into()),
            message: "send too fast, exceed 20 times per minute".into(),
            retry_after_secs: Some(RATE_LIMIT_RETRY_SECS)
        }
    );
    assert_eq!(RATE_LIMIT_RETRY_SECS, 600);
}

#[tokio::test]
async fn a_proxy_error_page_is_retryable() {
    let robot = start_robot(RobotReply::bad_gateway(), Some(SECRET)).await;
    let outcome = send(&robot, &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Retryable { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("502"));
}

#[tokio::test]
async fn network_failures_are_retryable_and_never_show_the_url() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let webhook = format!("http://{closed}/robot/send?access_token={ACCESS_TOKEN}");
    let outcome = send_to(
        &channel(Duration::from_secs(5)),
        &webhook,
        Some(SECRET),
        &message("T", "b"),
    )
    .await;
    assert!(matches!(outcome, Outcome::Retryable { .. }), "{outcome:?}");
    assert!(!outcome.message().unwrap().contains("robot/send"));

    let robot = start_robot(RobotReply::Hang, Some(SECRET)).await;
    let outcome = send_to(
        &channel(Duration::from_millis(300)),
        &robot.webhook_url(),
        Some(SECRET),
        &message("T", "b"),
    )
    .await;
    assert_eq!(outcome.code(), Some("timeout"));
}

#[tokio::test]
async fn a_missing_webhook_is_a_configuration_error() {
    let ch = channel(Duration::from_secs(5));
    let m = message("T", "b");
    let outcome = ch
        .send(&SendRequest {
            source_config: &Map::new(),
            source_secrets: &SecretBundle::new(),
            target_config: &Map::new(),
            target_secrets: &SecretBundle::new(),
            message: &m,
        })
        .await;
    assert_eq!(outcome.code(), Some("invalid_config"));
}

// ---------------------------------------------------------------------------------------------
// Preview, the 20,000-byte limit and hostile input.

/// The channel's preview for `message`, built without any secret.
fn preview_of(ch: &DingtalkChannel, webhook: &str, message: &Message) -> Preview {
    let target_config: Map<String, Value> =
        json!({"webhook_url": webhook}).as_object().unwrap().clone();
    let preview = ch
        .preview(&SendRequest {
            source_config: &Map::new(),
            source_secrets: &SecretBundle::new(),
            target_config: &target_config,
            target_secrets: &SecretBundle::new(),
            message,
        })
        .unwrap();
    let shown = serde_json::to_string(&preview).unwrap();
    assert!(
        !shown.contains(ACCESS_TOKEN) && !shown.contains(SECRET),
        "secret in the preview: {shown}"
    );
    assert_eq!(preview.parts.len(), 1);
    assert_eq!(preview.parts[0].kind, PreviewKind::DingtalkMarkdown);
    preview
}

const HOSTILE_TITLE: &str = "<script>alert(1)</script> [x](http://evil)";
const HOSTILE_BODY: &str =
    r#"**bold** ![img](http://evil/x.png) <a href="http://evil">y</a> & "quotes""#;

/// Compares long texts without printing them whole.
fn assert_same_text(actual: &str, expected: &str) {
    let tail = |s: &str| {
        let chars: Vec<char> = s.chars().collect();
        chars[chars.len().saturating_sub(8)..]
            .iter()
            .collect::<String>()
    };
    assert!(
        actual == expected,
        "{} bytes ending in {:?}, expected {} bytes ending in {:?}",
        actual.len(),
        tail(actual),
        expected.len(),
        tail(expected)
    );
}

#[tokio::test]
async fn preview_equals_what_is_sent() {
    let robot = start_robot(RobotReply::Ok, Some(SECRET)).await;
    let ch = channel(Duration::from_secs(5));
    let messages = [
        Message {
            link: Some("https://example.com/report?id=7&x=(y)".into()),
            link_label: Some("View report".into()),
            cover_url: Some("https://cdn.example.com/cover.png".into()),
            ..message(HOSTILE_TITLE, HOSTILE_BODY)
        },
        message("长消息", &"通知😀\n".repeat(3000)),
        message("", "no title"),
    ];
    for m in &messages {
        assert!(send_to(&ch, &robot.webhook_url(), Some(SECRET), m)
            .await
            .is_delivered());
        let sent = robot.requests().last().unwrap().clone();
        // DingTalk signs in the URL: the body is compared whole.
        assert!(
            sent == preview_of(&ch, &robot.webhook_url(), m).parts[0].body,
            "{m:?}"
        );
    }
}

// The body for title "T" and a body text B:
//
//   {"markdown":{"text":"#### T\n\n<B>","title":"T"},"msgtype":"markdown"}
//
// `{"markdown":{"text":"` 21 + `#### T` 6 + `\n\n` 4 (each newline is 2 bytes in JSON) +
// `","title":"T"},` 15 + `"msgtype":"markdown"}` 21 = 67 bytes around B, which may so have
// 20,000 − 67 = 19,933 bytes.

#[tokio::test]
async fn a_body_of_exactly_20000_bytes_is_sent_whole() {
    // "通" 3 bytes + "😀" 4 bytes = 7; 7 × 2847 + 4 (one more "😀") = 19,933. Neither needs
    // escaping in Markdown or JSON.
    let robot = start_robot(RobotReply::Ok, Some(SECRET)).await;
    let body = format!("{}😀", "通😀".repeat(2847));
    assert!(send(&robot, &message("T", &body)).await.is_delivered());
    let received = robot.requests();
    let sent = &received[0];
    assert_same_text(
        sent["markdown"]["text"].as_str().unwrap(),
        &format!("#### T\n\n{body}"),
    );
    assert_eq!(serde_json::to_vec(sent).unwrap().len(), MAX_BODY_BYTES);
}

#[tokio::test]
async fn one_byte_more_is_cut_on_a_character_with_an_ellipsis() {
    // 19,934 bytes do not fit. With "…" (3 bytes) B may keep 19,930: the 2847 pairs (19,929);
    // the "😀" after them would make 19,933. B is 19,929 + 3 = 19,932 bytes, the body 19,999.
    let robot = start_robot(RobotReply::Ok, Some(SECRET)).await;
    let ch = channel(Duration::from_secs(5));
    let m = message("T", &format!("{}😀a", "通😀".repeat(2847)));
    assert!(send_to(&ch, &robot.webhook_url(), Some(SECRET), &m)
        .await
        .is_delivered());
    let received = robot.requests();
    let sent = &received[0];
    let expected = format!("#### T\n\n{}…", "通😀".repeat(2847));
    assert_same_text(sent["markdown"]["text"].as_str().unwrap(), &expected);
    assert_eq!(serde_json::to_vec(sent).unwrap().len(), 19_999);
    let preview = preview_of(&ch, &robot.webhook_url(), &m);
    assert!(preview.parts[0].body == *sent);
    assert_eq!(
        preview.notes,
        vec!["the body was shortened to fit DingTalk's 20000-byte limit"]
    );
}

#[tokio::test]
async fn a_title_too_long_for_the_body_is_cut_in_both_places() {
    // A 10,000-character CJK title is 30,000 bytes, twice (markdown.title and the heading): the
    // body is dropped first, then the title is cut with "…".
    let robot = start_robot(RobotReply::Ok, Some(SECRET)).await;
    let title = "通".repeat(10_000);
    assert!(send(&robot, &message(&title, "body")).await.is_delivered());
    let received = robot.requests();
    let sent = &received[0];
    let size = serde_json::to_vec(sent).unwrap().len();
    assert!(
        (MAX_BODY_BYTES - 6..=MAX_BODY_BYTES).contains(&size),
        "{size}"
    );
    let shown = sent["markdown"]["title"].as_str().unwrap();
    assert!(shown.ends_with("通…"), "{}", shown.len());
    assert_eq!(
        sent["markdown"]["text"].as_str().unwrap(),
        format!("#### {shown}")
    );
}

#[tokio::test]
async fn hostile_text_arrives_as_literal_text_in_the_preview() {
    let ch = channel(Duration::from_secs(5));
    let webhook = format!("https://oapi.dingtalk.com/robot/send?access_token={ACCESS_TOKEN}");
    let m = Message {
        link: Some("javascript:alert(1)".into()),
        link_label: Some("[x](http://evil)".into()),
        cover_url: Some("https://cdn.example.com/a b(c).png".into()),
        ..message(HOSTILE_TITLE, HOSTILE_BODY)
    };
    let preview = preview_of(&ch, &webhook, &m);
    assert_eq!(
        preview.parts[0].body,
        json!({
            "msgtype": "markdown",
            "markdown": {
                // Shown in notifications and the chat list as plain text.
                "title": HOSTILE_TITLE,
                // '<', '>' and '&' are entities; brackets, emphasis and code markers have a
                // backslash, so no link, image, emphasis or tag forms ('(' ')' '!' alone cannot).
                // Only our own cover is an image: its URL normalised, parentheses encoded. The
                // link is not http(s): left out.
                "text": "#### &lt;script&gt;alert(1)&lt;/script&gt; \\[x\\](http://evil)\n\n\
                         ![cover](https://cdn.example.com/a%20b%28c%29.png)\n\n\
                         \\*\\*bold\\*\\* !\\[img\\](http://evil/x.png) \
                         &lt;a href=\"http://evil\"&gt;y&lt;/a&gt; &amp; \"quotes\"",
            }
        })
    );
    assert_eq!(
        preview.notes,
        vec!["the link is not an http(s) URL: it is left out"]
    );
}
