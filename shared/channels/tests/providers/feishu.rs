//! FeishuChannel against `notify_fakes::feishu`, which plays the custom bot webhook and the Open
//! API endpoints the cover image needs (tenant_access_token, image upload), and serves the cover.
//!
//! The fake recomputes the signature itself (not with the crate's `sign` module), checks the card
//! shape, the Bearer token and the multipart form, and answers with Feishu's real reply bodies
//! (HTTP 200 for the bot's errors, as Feishu does). Expected cards and escaped texts are written
//! out by hand.
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify_channels::feishu::{FeishuChannel, MAX_BODY_BYTES};
use notify_channels::sign::{feishu_sign, Clock};
use notify_channels::{Channel, Endpoints, Outcome, Preview, PreviewKind, SendRequest};
use notify_domain::{Message, SecretBundle, SecretValue};
use notify_fakes::feishu::{FakeFeishu, HookReply, UploadReply};
use serde_json::{json, Map, Value};

const HOOK_TOKEN: &str = "8c2f6a1e-5b7d-4e3a-9f10-2d4c6b8a0e12";
const SECRET: &str = "qZ3vK8pLx2Wm9RtY4uHb7c";
const APP_ID: &str = "cli_a1b2c3d4e5f60789";
const APP_SECRET: &str = "Xy7Qw2Er5Ty8Ui1Op4As6Df9Gh3Jk0Lz";

/// A fake whose bot signs with `secret` and whose app is [`APP_ID`].
async fn start_fake(secret: &str) -> FakeFeishu {
    let fake = FakeFeishu::start(HOOK_TOKEN, Some(secret)).await;
    fake.accept_app(APP_ID, APP_SECRET);
    fake
}

/// The Bearer token of each upload, in order.
fn upload_bearers(fake: &FakeFeishu) -> Vec<String> {
    fake.uploads().into_iter().map(|u| u.bearer).collect()
}

struct SimClock(AtomicI64);

impl SimClock {
    fn at_secs(secs: i64) -> Arc<SimClock> {
        Arc::new(SimClock(AtomicI64::new(secs * 1000)))
    }
    fn advance_secs(&self, secs: i64) {
        self.0.fetch_add(secs * 1000, Ordering::SeqCst);
    }
    /// This clock as the fake reads it, so it judges timestamps and token lifetimes by it too.
    fn for_fake(self: &Arc<Self>) -> impl Fn() -> i64 + Send + Sync + 'static {
        let clock = Arc::clone(self);
        move || clock.now_secs()
    }
}

impl Clock for SimClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn channel_with(feishu_base: &str, lark_base: &str, timeout: Duration) -> FeishuChannel {
    let endpoints = Endpoints {
        feishu_api_base: format!("{feishu_base}/"), // a trailing slash must not matter
        lark_api_base: lark_base.to_string(),
        timeout,
        // The fake's cover images are served from 127.0.0.1.
        allow_local_endpoints: true,
        ..Endpoints::default()
    };
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .unwrap();
    FeishuChannel::new(http, &endpoints).unwrap()
}

fn channel(fake: &FakeFeishu) -> FeishuChannel {
    channel_with(&fake.base_url, "http://127.0.0.1:9", Duration::from_secs(5))
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

async fn send_full(
    ch: &FeishuChannel,
    webhook: &str,
    domain: &str,
    secret: &str,
    message: &Message,
) -> Outcome {
    let source_config: Map<String, Value> = json!({"app_id": APP_ID, "domain": domain})
        .as_object()
        .unwrap()
        .clone();
    let mut source_secrets = SecretBundle::new();
    source_secrets.insert("app_secret", SecretValue::new(APP_SECRET));
    let target_config: Map<String, Value> =
        json!({"webhook_url": webhook}).as_object().unwrap().clone();
    let mut target_secrets = SecretBundle::new();
    target_secrets.insert("sign", SecretValue::new(secret));
    let outcome = ch
        .send(&SendRequest {
            source_config: &source_config,
            source_secrets: &source_secrets,
            target_config: &target_config,
            target_secrets: &target_secrets,
            message,
        })
        .await;
    let shown = format!("{outcome:?} {}", serde_json::to_string(&outcome).unwrap());
    for secret in [HOOK_TOKEN, SECRET, APP_SECRET] {
        assert!(!shown.contains(secret), "secret leaked: {shown}");
    }
    outcome
}

async fn send(ch: &FeishuChannel, fake: &FakeFeishu, message: &Message) -> Outcome {
    send_full(ch, &fake.webhook_url(), "feishu", SECRET, message).await
}

/// The card without the signature fields.
fn card_of(hook: &Value) -> Value {
    let mut hook = hook.clone();
    let object = hook.as_object_mut().unwrap();
    object.remove("timestamp");
    object.remove("sign");
    hook
}

#[test]
fn sign_matches_the_reference_vector() {
    assert_eq!(
        feishu_sign(1_700_000_000, "fs-test-secret-000"),
        "MFKw5eAWVQ2Y1uO26s/QYvj7+fByOpw0vEpa6beh8h0="
    );
}

#[tokio::test]
async fn the_channel_signs_in_the_body_with_its_clock() {
    let fake = start_fake("fs-test-secret-000").await;
    let clock = SimClock::at_secs(1_700_000_000);
    fake.use_clock(clock.for_fake());
    let ch = channel(&fake).with_clock(clock);
    let outcome = send_full(
        &ch,
        &fake.webhook_url(),
        "feishu",
        "fs-test-secret-000",
        &message("T", "b"),
    )
    .await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    let hook = &fake.requests()[0];
    assert_eq!(hook["timestamp"], "1700000000");
    assert_eq!(hook["sign"], "MFKw5eAWVQ2Y1uO26s/QYvj7+fByOpw0vEpa6beh8h0=");
}

#[tokio::test]
async fn sends_the_exact_card_signed_with_the_system_clock() {
    let fake = start_fake(SECRET).await;
    let m = Message {
        link: Some("https://example.com/r?a=1&b=2".into()),
        link_label: Some("Open report".into()),
        ..message("Deploy done", "Version 2.0 is live.\nAll good")
    };
    let outcome = send(&channel(&fake), &fake, &m).await;
    assert_eq!(outcome, Outcome::delivered(None));
    let hooks = fake.requests();
    assert_eq!(
        card_of(&hooks[0]),
        json!({
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": true},
                "header": {
                    "template": "blue",
                    "title": {"tag": "plain_text", "content": "Deploy done"}
                },
                "elements": [
                    {"tag": "markdown", "content": "Version 2.0 is live.\nAll good"},
                    {"tag": "action", "actions": [{
                        "tag": "button",
                        "text": {"tag": "plain_text", "content": "Open report"},
                        "type": "primary",
                        "url": "https://example.com/r?a=1&b=2"
                    }]}
                ]
            }
        })
    );
    let ts: i64 = hooks[0]["timestamp"].as_str().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - ts).abs() < 60, "timestamp {ts} vs now {now}");
}

#[tokio::test]
async fn hostile_text_cannot_form_markdown() {
    let fake = start_fake(SECRET).await;
    let hostile = "<script>alert(1)</script> [x](http://evil)";
    let outcome = send(&channel(&fake), &fake, &message(hostile, hostile)).await;
    assert!(outcome.is_delivered());
    let hook = &fake.requests()[0];
    assert_eq!(
        hook["card"]["elements"][0]["content"],
        "&#60;script&#62;alert&#40;1&#41;&#60;/script&#62; &#91;x&#93;&#40;http&#58;//evil&#41;"
    );
    // The header is plain_text: shown as typed, never parsed.
    assert_eq!(hook["card"]["header"]["title"]["content"], hostile);

    let fake = start_fake(SECRET).await;
    let m = message(
        "T",
        "**b** _i_ ~~s~~ `c` ![i](k) <at id=all></at> :OK: ${v} &#91; a|b\n# h\n- l\n1. n",
    );
    send(&channel(&fake), &fake, &m).await;
    assert_eq!(
        fake.requests()[0]["card"]["elements"][0]["content"],
        "&#42;&#42;b&#42;&#42; &#95;i&#95; &#126;&#126;s&#126;&#126; &#96;c&#96; \
         &#33;&#91;i&#93;&#40;k&#41; &#60;at id&#61;all&#62;&#60;/at&#62; &#58;OK&#58; \
         &#36;{v} &#38;&#35;91; a&#124;b\n&#35; h\n&#45; l\n1&#46; n"
    );
}

#[tokio::test]
async fn old_style_success_bodies_count_as_delivered() {
    let fake = start_fake(SECRET).await;
    fake.script([HookReply::legacy_ok()]);
    assert!(send(&channel(&fake), &fake, &message("T", "b"))
        .await
        .is_delivered());
}

#[tokio::test]
async fn uploads_the_cover_and_puts_its_key_in_the_card() {
    let fake = start_fake(SECRET).await;
    let ch = channel(&fake);
    let m = Message {
        cover_url: Some(fake.cover_url()),
        ..message("T", "b")
    };
    assert!(send(&ch, &fake, &m).await.is_delivered());
    assert!(send(&ch, &fake, &m).await.is_delivered());
    let hooks = fake.requests();
    assert_eq!(
        hooks[0]["card"]["elements"][0],
        json!({"tag": "img", "img_key": "img_v3_fake_1", "alt": {"tag": "plain_text", "content": ""}})
    );
    assert_eq!(hooks[1]["card"]["elements"][0]["img_key"], "img_v3_fake_2");
    assert_eq!(fake.token_requests(), 1, "the token is cached across sends");
    assert_eq!(
        upload_bearers(&fake),
        vec!["t-g1044fake0001".to_string(), "t-g1044fake0001".to_string()]
    );
}

#[tokio::test]
async fn the_token_is_fetched_again_five_minutes_before_it_expires() {
    let fake = start_fake(SECRET).await;
    let clock = SimClock::at_secs(1_800_000_000);
    fake.use_clock(clock.for_fake());
    let ch = channel(&fake).with_clock(clock.clone());
    let m = Message {
        cover_url: Some(fake.cover_url()),
        ..message("T", "b")
    };
    send(&ch, &fake, &m).await;
    clock.advance_secs(7200 - 300 - 1); // still within its life less the margin
    send(&ch, &fake, &m).await;
    assert_eq!(fake.token_requests(), 1);
    clock.advance_secs(1); // 6900 s after it was issued: replaced
    send(&ch, &fake, &m).await;
    assert_eq!(fake.token_requests(), 2);
    assert_eq!(upload_bearers(&fake)[2], "t-g1044fake0002");
}

#[tokio::test]
async fn an_expired_token_is_replaced_once_and_the_upload_retried() {
    let fake = start_fake(SECRET).await;
    fake.script_uploads([UploadReply::TokenExpired]);
    let ch = channel(&fake);
    let m = Message {
        cover_url: Some(fake.cover_url()),
        ..message("T", "b")
    };
    assert!(send(&ch, &fake, &m).await.is_delivered());
    assert_eq!(
        fake.requests()[0]["card"]["elements"][0]["img_key"],
        "img_v3_fake_2"
    );
    assert_eq!(fake.token_requests(), 2);
    assert_eq!(
        upload_bearers(&fake),
        vec!["t-g1044fake0001".to_string(), "t-g1044fake0002".to_string()]
    );
    // The replacement is what the cache now holds.
    send(&ch, &fake, &m).await;
    assert_eq!(fake.token_requests(), 2);
    assert_eq!(upload_bearers(&fake)[2], "t-g1044fake0002");
}

#[tokio::test]
async fn a_failed_upload_sends_the_card_without_the_image() {
    let fake = start_fake(SECRET).await;
    fake.script_uploads([UploadReply::invalid_param()]);
    let m = Message {
        cover_url: Some(fake.cover_url()),
        ..message("T", "b")
    };
    assert!(send(&channel(&fake), &fake, &m).await.is_delivered());
    let hook = &fake.requests()[0];
    assert_eq!(
        hook["card"]["elements"],
        json!([{"tag": "markdown", "content": "b"}])
    );
}

#[tokio::test]
async fn a_cover_that_is_not_an_image_is_not_uploaded() {
    let fake = start_fake(SECRET).await;
    let m = Message {
        cover_url: Some(fake.html_page_url()),
        ..message("T", "b")
    };
    assert!(send(&channel(&fake), &fake, &m).await.is_delivered());
    assert_eq!(fake.requests()[0]["card"]["elements"][0]["tag"], "markdown");
    assert_eq!(fake.token_requests(), 0);
    assert!(fake.uploads().is_empty());
}

#[tokio::test]
async fn a_cover_on_a_private_address_is_not_fetched_unless_local_endpoints_are_allowed() {
    let fake = start_fake(SECRET).await;
    let endpoints = Endpoints {
        feishu_api_base: fake.base_url.clone(),
        timeout: Duration::from_secs(5),
        allow_local_endpoints: false,
        ..Endpoints::default()
    };
    let ch = FeishuChannel::new(reqwest::Client::new(), &endpoints).unwrap();
    // The fake serves a real image at this loopback URL: it must not be downloaded.
    let m = Message {
        cover_url: Some(fake.cover_url()),
        ..message("T", "b")
    };
    assert!(send(&ch, &fake, &m).await.is_delivered());
    assert_eq!(fake.requests()[0]["card"]["elements"][0]["tag"], "markdown");
    assert_eq!(fake.token_requests(), 0);
    assert!(fake.uploads().is_empty());
}

#[tokio::test]
async fn a_lark_source_uses_the_lark_api_base() {
    let fake = start_fake(SECRET).await;
    // The Feishu base is a closed port: only the Lark base works.
    let ch = channel_with("http://127.0.0.1:9", &fake.base_url, Duration::from_secs(5));
    let m = Message {
        cover_url: Some(fake.cover_url()),
        ..message("T", "b")
    };
    assert!(send_full(&ch, &fake.webhook_url(), "lark", SECRET, &m)
        .await
        .is_delivered());
    assert_eq!(
        fake.requests()[0]["card"]["elements"][0]["img_key"],
        "img_v3_fake_1"
    );
}

#[tokio::test]
async fn bad_signature_is_permanent_with_its_code() {
    let fake = start_fake(SECRET).await;
    fake.script([HookReply::bad_signature()]);
    let outcome = send(&channel(&fake), &fake, &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Permanent { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("19021"));
    assert!(outcome
        .message()
        .unwrap()
        .starts_with("sign match fail or timestamp is not within one hour from current time"));
}

#[tokio::test]
async fn missing_keyword_is_permanent_with_its_code() {
    let fake = start_fake(SECRET).await;
    fake.script([HookReply::keyword_missing()]);
    let outcome = send(&channel(&fake), &fake, &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Permanent { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("19024"));
    assert!(outcome
        .message()
        .unwrap()
        .starts_with("Key Words Not Found"));
}

#[tokio::test]
async fn throttling_and_server_errors_are_retryable() {
    let fake = start_fake(SECRET).await;
    fake.script([HookReply::throttled()]);
    let outcome = send(&channel(&fake), &fake, &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Retryable { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("11232"));

    let fake = start_fake(SECRET).await;
    fake.script([HookReply::server_error()]);
    let outcome = send(&channel(&fake), &fake, &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Retryable { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("500"));
}

#[tokio::test]
async fn a_long_body_is_cut_to_fit_20_kb() {
    let fake = start_fake(SECRET).await;
    // '<' escapes to 5 bytes: the cut must count the escaped size and never split an entity.
    let body = "<".repeat(10_000);
    assert!(send(&channel(&fake), &fake, &message("T", &body))
        .await
        .is_delivered());
    let hook = &fake.requests()[0];
    let size = serde_json::to_vec(hook).unwrap().len();
    assert!(size <= MAX_BODY_BYTES, "{size}");
    let content = hook["card"]["elements"][0]["content"].as_str().unwrap();
    assert!(
        content.ends_with("&#60;…"),
        "{}",
        &content[content.len() - 20..]
    );
    assert_eq!(content.trim_end_matches('…').len() % 5, 0);
}

#[tokio::test]
async fn connection_failures_are_retryable_and_never_show_the_webhook() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let ch = channel_with(
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        Duration::from_secs(5),
    );
    let webhook = format!("http://{closed}/open-apis/bot/v2/hook/{HOOK_TOKEN}");
    let outcome = send_full(&ch, &webhook, "feishu", SECRET, &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Retryable { .. }), "{outcome:?}");
    assert!(!outcome.message().unwrap().contains("/hook/"));
}

// ---------------------------------------------------------------------------------------------
// Preview, the 20,000-byte limit and hostile input.

/// The channel's preview for `message`, built without any secret.
fn preview_of(ch: &FeishuChannel, webhook: &str, message: &Message) -> Preview {
    let source_config: Map<String, Value> = json!({"app_id": APP_ID, "domain": "feishu"})
        .as_object()
        .unwrap()
        .clone();
    let target_config: Map<String, Value> =
        json!({"webhook_url": webhook}).as_object().unwrap().clone();
    let preview = ch
        .preview(&SendRequest {
            source_config: &source_config,
            source_secrets: &SecretBundle::new(),
            target_config: &target_config,
            target_secrets: &SecretBundle::new(),
            message,
        })
        .unwrap();
    let shown = serde_json::to_string(&preview).unwrap();
    for secret in [HOOK_TOKEN, SECRET, APP_SECRET] {
        assert!(!shown.contains(secret), "secret in the preview: {shown}");
    }
    assert!(!shown.contains("\"sign\"") && !shown.contains("\"timestamp\""));
    assert_eq!(preview.parts.len(), 1);
    assert_eq!(preview.parts[0].kind, PreviewKind::FeishuCard);
    preview
}

const HOSTILE_TITLE: &str = "<script>alert(1)</script> [x](http://evil)";
const HOSTILE_BODY: &str =
    r#"**bold** ![img](http://evil/x.png) <a href="http://evil">y</a> & "quotes""#;

#[tokio::test]
async fn preview_equals_what_is_sent() {
    let fake = start_fake(SECRET).await;
    let ch = channel(&fake);
    let plain = Message {
        link: Some("https://example.com/r?a=1&b=2".into()),
        link_label: Some("Open report".into()),
        ..message(HOSTILE_TITLE, HOSTILE_BODY)
    };
    let long = message("T", &"通😀\n".repeat(4000));
    for m in [&plain, &long] {
        assert!(send(&ch, &fake, m).await.is_delivered());
        let sent = fake.requests().pop().unwrap();
        assert_eq!(
            card_of(&sent),
            preview_of(&ch, &fake.webhook_url(), m).parts[0].body
        );
    }

    // With a cover, the preview shows a placeholder where the uploaded key goes; nothing else
    // differs.
    let covered = Message {
        cover_url: Some(fake.cover_url()),
        ..plain.clone()
    };
    assert!(send(&ch, &fake, &covered).await.is_delivered());
    let sent = fake.requests().pop().unwrap();
    let preview = preview_of(&ch, &fake.webhook_url(), &covered);
    let mut expected = preview.parts[0].body.clone();
    assert_eq!(
        expected["card"]["elements"][0]["img_key"],
        "<uploaded at send time>"
    );
    expected["card"]["elements"][0]["img_key"] = json!("img_v3_fake_1");
    assert_eq!(card_of(&sent), expected);
    assert_eq!(preview.notes.len(), 1, "{:?}", preview.notes);
    assert!(preview.notes[0].contains("uploaded"), "{:?}", preview.notes);
}

/// Bytes of a signed body for title "T", a markdown body of `content_bytes` and nothing else:
///
/// ```text
/// {"card":                                                                   8
/// {"config":{"wide_screen_mode":true},                                      36
/// "elements":[{"content":"                                                  24
/// <content>
/// ","tag":"markdown"}],                                                     21
/// "header":{"template":"blue","title":{"content":"T","tag":"plain_text"}}}  72
/// ,"msg_type":"interactive"                                                 25
/// ,"sign":"<44 characters of base64>"                                       54
/// ,"timestamp":"<10 digits>"                                                25
/// }                                                                          1
/// ```
///
/// 266 bytes in all, so the content may have 20,000 − 266 = 19,734 bytes.
const SIGNED_OVERHEAD: usize = 266;

/// Compares long texts without printing them whole.
fn assert_same_text(actual: &Value, expected: &str) {
    let actual = actual.as_str().expect("a string");
    let tail = |s: &str| {
        s.chars()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
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
async fn a_body_of_exactly_20000_bytes_is_sent_whole() {
    // "通" is 3 bytes and "😀" 4 in UTF-8 (JSON leaves both as they are): 7 × 2819 + 1 ("a")
    // = 19,734.
    let fake = start_fake(SECRET).await;
    let body = format!("{}a", "通😀".repeat(2819));
    assert!(send(&channel(&fake), &fake, &message("T", &body))
        .await
        .is_delivered());
    let hook = &fake.requests()[0];
    assert_same_text(&hook["card"]["elements"][0]["content"], &body);
    assert_eq!(
        serde_json::to_vec(hook).unwrap().len(),
        SIGNED_OVERHEAD + 19_734
    );
    assert_eq!(serde_json::to_vec(hook).unwrap().len(), MAX_BODY_BYTES);
}

#[tokio::test]
async fn one_byte_more_is_cut_on_a_character_with_an_ellipsis() {
    // 19,735 bytes of content do not fit. With "…" (3 bytes) the text may keep 19,731 bytes:
    // 2818 pairs (19,726) and one "通" (19,729); the next "😀" would make 19,733. The content is
    // 19,729 + 3 = 19,732 bytes and the body 266 + 19,732 = 19,998.
    let fake = start_fake(SECRET).await;
    let ch = channel(&fake);
    let m = message("T", &format!("{}ab", "通😀".repeat(2819)));
    assert!(send(&ch, &fake, &m).await.is_delivered());
    let hook = &fake.requests()[0];
    let expected = format!("{}通…", "通😀".repeat(2818));
    assert_same_text(&hook["card"]["elements"][0]["content"], &expected);
    assert_eq!(serde_json::to_vec(hook).unwrap().len(), 19_998);
    // The preview cuts at the same place (room for the signature is kept either way) and says so.
    let preview = preview_of(&ch, &fake.webhook_url(), &m);
    assert_same_text(
        &preview.parts[0].body["card"]["elements"][0]["content"],
        &expected,
    );
    assert_eq!(
        serde_json::to_vec(&preview.parts[0].body).unwrap().len(),
        19_998 - 79
    );
    assert_eq!(
        preview.notes,
        vec!["the body was shortened to fit Feishu's 20000-byte limit"]
    );
}

#[tokio::test]
async fn hostile_text_arrives_as_literal_text() {
    let ch = channel_with(
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        Duration::from_secs(5),
    );
    let webhook = format!("https://open.feishu.cn/open-apis/bot/v2/hook/{HOOK_TOKEN}");
    let m = Message {
        link: Some("javascript:alert(1)".into()),
        link_label: Some("[x](http://evil)".into()),
        cover_url: Some("javascript:alert(2)".into()),
        ..message(HOSTILE_TITLE, HOSTILE_BODY)
    };
    let preview = preview_of(&ch, &webhook, &m);
    assert_eq!(
        preview.parts[0].body,
        json!({
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": true},
                // plain_text: shown as typed, never parsed.
                "header": {
                    "template": "blue",
                    "title": {"tag": "plain_text", "content": HOSTILE_TITLE}
                },
                // Every Markdown and HTML trigger is a numeric entity: no emphasis, image, tag
                // or link can form. The link and the cover are not http(s): left out.
                "elements": [{
                    "tag": "markdown",
                    "content": "&#42;&#42;bold&#42;&#42; &#33;&#91;img&#93;&#40;http&#58;//evil/x.png&#41; \
                                &#60;a href&#61;\"http&#58;//evil\"&#62;y&#60;/a&#62; &#38; \"quotes\""
                }]
            }
        })
    );
    assert_eq!(
        preview.notes,
        vec![
            "the cover is not an http(s) URL: it is left out",
            "the link is not an http(s) URL: it is left out"
        ]
    );
}
