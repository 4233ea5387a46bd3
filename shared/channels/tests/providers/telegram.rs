//! TelegramChannel against `notify_fakes::telegram`, which plays the Bot API's `sendMessage`
//! and `sendPhoto`.
//!
//! Expected texts are written out by hand: `<b>T</b>\n\n` is 10 UTF-16 units (3 + 1 + 4 + 2),
//! '😀' is 2 units (a surrogate pair), '通' and '知' are 1 unit each, `&amp;` is 5.
use std::time::Duration;

use notify_channels::telegram::{TelegramChannel, MAX_CAPTION_UNITS, MAX_TEXT_UNITS};
use notify_channels::{Channel, Endpoints, Outcome, Preview, PreviewKind, SendRequest};
use notify_domain::{Message, SecretBundle, SecretValue};
use notify_fakes::telegram::{BotReply, FakeTelegram};
use serde_json::{json, Map, Value};

const TOKEN: &str = "123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-ra";
const CHAT: &str = "-1001234567890";
/// A basic group that was upgraded to the supergroup [`CHAT`].
const OLD_GROUP: &str = "-4081234567";
const COVER_URL: &str = "https://cdn.example.com/covers/42.png";

/// A Bot API that knows [`TOKEN`] and answers `replies` in order, then success.
async fn bot_answering(replies: impl IntoIterator<Item = BotReply>) -> FakeTelegram {
    let bot = FakeTelegram::start(TOKEN).await;
    bot.script(replies);
    bot
}

async fn start_bot() -> FakeTelegram {
    bot_answering([]).await
}

/// A Bot API where [`OLD_GROUP`] was upgraded to [`CHAT`]; sends to [`CHAT`] get `replies`.
async fn bot_with_upgraded_group(replies: impl IntoIterator<Item = BotReply>) -> FakeTelegram {
    let bot = bot_answering(replies).await;
    bot.upgrade_group(OLD_GROUP.parse().unwrap(), CHAT.parse().unwrap());
    bot
}

/// The `text` of each request.
fn texts(bot: &FakeTelegram) -> Vec<String> {
    bot.requests()
        .iter()
        .map(|b| b["text"].as_str().unwrap().to_string())
        .collect()
}

/// Each request as `(method, body)`.
fn calls(bot: &FakeTelegram) -> Vec<(String, Value)> {
    bot.received()
        .into_iter()
        .map(|r| (r.method, r.body))
        .collect()
}

fn channel(base: &str, timeout: Duration) -> TelegramChannel {
    let endpoints = Endpoints {
        telegram_api_base: format!("{base}/"), // a trailing slash must not matter
        timeout,
        ..Endpoints::default()
    };
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .unwrap();
    TelegramChannel::new(http, &endpoints)
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

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

async fn send_with(channel: &TelegramChannel, target: Value, message: &Message) -> Outcome {
    let mut source_secrets = SecretBundle::new();
    source_secrets.insert("bot_token", SecretValue::new(TOKEN));
    let source_config = Map::new();
    let target_config = obj(target);
    let target_secrets = SecretBundle::new();
    let request = SendRequest {
        source_config: &source_config,
        source_secrets: &source_secrets,
        target_config: &target_config,
        target_secrets: &target_secrets,
        message,
    };
    let outcome = channel.send(&request).await;
    assert_no_token(&outcome);
    outcome
}

async fn send(bot: &FakeTelegram, message: &Message) -> Outcome {
    send_with(
        &channel(&bot.base_url, Duration::from_secs(5)),
        json!({"chat_id": CHAT}),
        message,
    )
    .await
}

fn assert_no_token(outcome: &Outcome) {
    let secret_half = TOKEN.split_once(':').unwrap().1;
    for shown in [
        format!("{outcome:?}"),
        serde_json::to_string(outcome).unwrap(),
    ] {
        assert!(
            !shown.contains(TOKEN) && !shown.contains(secret_half),
            "token leaked: {shown}"
        );
    }
}

fn delivered(id: &str) -> Outcome {
    Outcome::delivered(Some(id.into()))
}

#[tokio::test]
async fn escapes_user_text_and_sends_the_exact_payload() {
    let bot = start_bot().await;
    let outcome = send(&bot, &message("Deploy", "That's broken & this is <b>")).await;
    assert_eq!(outcome, delivered("100"));
    assert_eq!(
        bot.requests(),
        vec![json!({
            "chat_id": CHAT,
            "text": "<b>Deploy</b>\n\nThat's broken &amp; this is &lt;b&gt;",
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
        })]
    );
}

#[tokio::test]
async fn renders_the_link_with_an_escaped_href_and_default_label() {
    let bot = start_bot().await;
    let m = Message {
        link: Some("https://example.com/r?a=1&b=<2>".into()),
        ..message("Build <7>", "done")
    };
    assert_eq!(send(&bot, &m).await, delivered("100"));
    assert_eq!(
        texts(&bot),
        vec!["<b>Build &lt;7&gt;</b>\n\ndone\n\n<a href=\"https://example.com/r?a=1&amp;b=&lt;2&gt;\">Open</a>"]
    );

    let bot = start_bot().await;
    let m = Message {
        link: Some("https://example.com/x".into()),
        link_label: Some("View \"report\" & more".into()),
        ..message("T", "b")
    };
    send(&bot, &m).await;
    assert_eq!(
        texts(&bot),
        vec!["<b>T</b>\n\nb\n\n<a href=\"https://example.com/x\">View \"report\" &amp; more</a>"]
    );
}

#[tokio::test]
async fn message_thread_id_is_sent_only_when_configured() {
    let bot = start_bot().await;
    let ch = channel(&bot.base_url, Duration::from_secs(5));
    send_with(
        &ch,
        json!({"chat_id": CHAT, "message_thread_id": 42}),
        &message("T", "b"),
    )
    .await;
    send_with(&ch, json!({"chat_id": "@my_channel"}), &message("T", "b")).await;
    let bodies = bot.requests();
    assert_eq!(bodies[0]["message_thread_id"], json!(42));
    assert_eq!(bodies[0]["chat_id"], json!(CHAT));
    assert!(
        bodies[1].get("message_thread_id").is_none(),
        "{}",
        bodies[1]
    );
    assert_eq!(bodies[1]["chat_id"], json!("@my_channel"));
}

#[tokio::test]
async fn emoji_over_the_limit_split_into_two_messages_without_breaking_a_pair() {
    // 10 units of title + 2049 × 2 units = 4108 > 4096. The first part takes (4096 − 10) / 2 =
    // 2043 emoji; the remaining 6 go in the second.
    let bot = start_bot().await;
    let outcome = send(&bot, &message("T", &"😀".repeat(2049))).await;
    assert_eq!(outcome, delivered("100"), "the first part's id is reported");
    assert_eq!(
        texts(&bot),
        vec![format!("<b>T</b>\n\n{}", "😀".repeat(2043)), "😀".repeat(6)]
    );
}

#[tokio::test]
async fn exactly_4096_units_is_one_message() {
    // 10 + 2043 × "通知" (2 units each) = 10 + 4086 = 4096.
    let bot = start_bot().await;
    let body = "通知".repeat(2043);
    assert_eq!(send(&bot, &message("T", &body)).await, delivered("100"));
    assert_eq!(texts(&bot), vec![format!("<b>T</b>\n\n{body}")]);
}

#[tokio::test]
async fn one_unit_over_moves_a_line_that_fits_alone_to_the_next_message() {
    // 10 + 4087 = 4097. The body is one line of 4087 units: it fits a message of its own, so it is
    // not cut; the title goes alone.
    let bot = start_bot().await;
    let body = format!("{}!", "通知".repeat(2043));
    send(&bot, &message("T", &body)).await;
    assert_eq!(texts(&bot), vec!["<b>T</b>".to_string(), body]);
}

#[tokio::test]
async fn splits_at_a_line_break() {
    // 10 + 3000 + 1 (newline) = 3011; the 3000 B's do not fit in the remaining 1085.
    let bot = start_bot().await;
    let body = format!("{}\n{}", "A".repeat(3000), "B".repeat(3000));
    assert_eq!(send(&bot, &message("T", &body)).await, delivered("100"));
    assert_eq!(
        texts(&bot),
        vec![
            format!("<b>T</b>\n\n{}", "A".repeat(3000)),
            "B".repeat(3000)
        ]
    );
}

#[tokio::test]
async fn never_splits_an_entity() {
    // 820 '&' escape to 820 × 5 = 4100 units. After the 10-unit title 4086 remain: 817 entities
    // (4085 units); the other 3 go in the second message.
    let bot = start_bot().await;
    send(&bot, &message("T", &"&".repeat(820))).await;
    assert_eq!(
        texts(&bot),
        vec![
            format!("<b>T</b>\n\n{}", "&amp;".repeat(817)),
            "&amp;".repeat(3)
        ]
    );
}

#[tokio::test]
async fn chat_not_found_is_permanent() {
    let bot = bot_answering([BotReply::chat_not_found()]).await;
    let outcome = send(&bot, &message("T", "b")).await;
    assert_eq!(
        outcome,
        Outcome::Permanent {
            code: Some("400".into()),
            message: "Bad Request: chat not found".into()
        }
    );
}

#[tokio::test]
async fn too_many_requests_is_retryable_after_the_given_seconds() {
    let bot = bot_answering([BotReply::too_many_requests(35)]).await;
    let outcome = send(&bot, &message("T", "b")).await;
    assert_eq!(
        outcome,
        Outcome::Retryable {
            code: Some("429".into()),
            message: "Too Many Requests: retry after 35".into(),
            retry_after_secs: Some(35)
        }
    );
}

#[tokio::test]
async fn blocked_bot_is_a_dead_target() {
    let bot = bot_answering([BotReply::blocked_by_user()]).await;
    let outcome = send(&bot, &message("T", "b")).await;
    assert_eq!(
        outcome,
        Outcome::DeadTarget {
            code: Some("403".into()),
            message: "Forbidden: bot was blocked by the user".into()
        }
    );
}

#[tokio::test]
async fn bad_token_is_permanent() {
    // Telegram knows only another bot's token.
    let bot = FakeTelegram::start("987654321:AAFotherBotsToken_abcdefghijklmnopq").await;
    let outcome = send(&bot, &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Permanent { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("401"));
    assert!(
        outcome.message().unwrap().starts_with("Unauthorized"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn html_error_page_from_a_proxy_is_retryable() {
    let bot = bot_answering([BotReply::BadGatewayPage]).await;
    let outcome = send(&bot, &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Retryable { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("502"));
    assert!(
        outcome.message().unwrap().contains("502 Bad Gateway"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_failed_later_part_reports_what_was_already_delivered() {
    let bot = bot_answering([BotReply::Ok, BotReply::too_many_requests(35)]).await;
    let outcome = send(&bot, &message("T", &"😀".repeat(2049))).await;
    assert_eq!(
        outcome,
        Outcome::Retryable {
            code: Some("429".into()),
            message: "Too Many Requests: retry after 35 (1 of 2 parts were already delivered)"
                .into(),
            retry_after_secs: Some(35)
        }
    );
    assert_eq!(bot.requests().len(), 2);
}

#[tokio::test]
async fn stops_at_the_first_failed_part() {
    // Telegram would refuse every part.
    let bot = bot_answering([
        BotReply::too_many_requests(35),
        BotReply::too_many_requests(35),
    ])
    .await;
    let outcome = send(&bot, &message("T", &"😀".repeat(2049))).await;
    assert_eq!(outcome.code(), Some("429"));
    assert!(
        !outcome.message().unwrap().contains("already delivered"),
        "{outcome:?}"
    );
    assert_eq!(bot.requests().len(), 1);
}

#[tokio::test]
async fn connection_refused_is_retryable_and_never_shows_the_token() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let ch = channel(&format!("http://{closed}"), Duration::from_secs(5));
    let outcome = send_with(&ch, json!({"chat_id": CHAT}), &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Retryable { .. }), "{outcome:?}");
    // assert_no_token ran inside send_with; the message still says what happened.
    assert!(!outcome.message().unwrap().contains("/bot"), "{outcome:?}");
}

#[tokio::test]
async fn timeout_is_retryable_and_never_shows_the_token() {
    let bot = bot_answering([BotReply::Hang]).await;
    let ch = channel(&bot.base_url, Duration::from_millis(300));
    let started = std::time::Instant::now();
    let outcome = send_with(&ch, json!({"chat_id": CHAT}), &message("T", "b")).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(outcome, Outcome::Retryable { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("timeout"));
}

#[tokio::test]
async fn a_token_that_would_change_the_url_is_refused_before_sending() {
    let bot = start_bot().await;
    let ch = channel(&bot.base_url, Duration::from_secs(5));
    let mut secrets = SecretBundle::new();
    secrets.insert("bot_token", SecretValue::new("123:abc/../../other"));
    let target = obj(json!({"chat_id": CHAT}));
    let m = message("T", "b");
    let outcome = ch
        .send(&SendRequest {
            source_config: &Map::new(),
            source_secrets: &secrets,
            target_config: &target,
            target_secrets: &SecretBundle::new(),
            message: &m,
        })
        .await;
    assert_eq!(outcome.code(), Some("invalid_config"));
    assert!(!outcome.message().unwrap().contains("abc"), "{outcome:?}");
    assert!(bot.requests().is_empty());
}

async fn send_to_old_group(bot: &FakeTelegram, message: &Message) -> Outcome {
    send_with(
        &channel(&bot.base_url, Duration::from_secs(5)),
        json!({"chat_id": OLD_GROUP}),
        message,
    )
    .await
}

#[tokio::test]
async fn a_group_upgraded_to_a_supergroup_is_resent_there_and_the_new_id_reported() {
    let bot = bot_with_upgraded_group([]).await;
    let outcome = send_to_old_group(&bot, &message("T", "b")).await;
    assert_eq!(
        outcome,
        Outcome::Delivered {
            provider_message_id: Some("101".into()),
            target_update: Some(obj(json!({"chat_id": CHAT}))),
        }
    );
    let bodies = bot.requests();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[0]["chat_id"], json!(OLD_GROUP));
    assert_eq!(bodies[1]["chat_id"], json!(CHAT));
    // The same message, only the chat changed.
    assert_eq!(bodies[0]["text"], bodies[1]["text"]);
    // The dispatcher sees the update in the serialized outcome.
    assert_eq!(
        serde_json::to_value(&outcome).unwrap(),
        json!({
            "outcome": "delivered",
            "provider_message_id": "101",
            "target_update": {"chat_id": CHAT},
        })
    );
}

#[tokio::test]
async fn after_a_migration_every_later_part_goes_to_the_supergroup() {
    let bot = bot_with_upgraded_group([]).await;
    let outcome = send_to_old_group(&bot, &message("T", &"😀".repeat(2049))).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    let Outcome::Delivered { target_update, .. } = &outcome else {
        unreachable!()
    };
    assert_eq!(target_update, &Some(obj(json!({"chat_id": CHAT}))));
    let chats: Vec<Value> = bot
        .requests()
        .iter()
        .map(|b| b["chat_id"].clone())
        .collect();
    assert_eq!(chats, vec![json!(OLD_GROUP), json!(CHAT), json!(CHAT)]);
}

#[tokio::test]
async fn a_failed_resend_to_the_supergroup_is_that_failure() {
    let bot = bot_with_upgraded_group([BotReply::blocked_by_user()]).await;
    let outcome = send_to_old_group(&bot, &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::DeadTarget { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("403"));
    let text = outcome.message().unwrap();
    assert!(
        text.starts_with("Forbidden: bot was blocked by the user") && text.contains(CHAT),
        "{outcome:?}"
    );
    let chats: Vec<Value> = bot
        .requests()
        .iter()
        .map(|b| b["chat_id"].clone())
        .collect();
    assert_eq!(chats, vec![json!(OLD_GROUP), json!(CHAT)]);
}

#[tokio::test]
async fn a_migration_is_followed_only_once() {
    let bot = bot_with_upgraded_group([BotReply::Migrated {
        to_chat_id: CHAT.parse().unwrap(),
    }])
    .await;
    let outcome = send_to_old_group(&bot, &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Permanent { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("400"));
    assert!(
        outcome
            .message()
            .unwrap()
            .contains("upgraded to a supergroup"),
        "{outcome:?}"
    );
    assert_eq!(bot.requests().len(), 2, "resent more than once");
}

// ---------------------------------------------------------------------------------------------
// Preview, covers (sendPhoto), caption limits and hostile input.

/// The channel's preview of `message` for `target`, built without any secret.
fn preview_with(ch: &TelegramChannel, target: Value, message: &Message) -> Preview {
    let target_config = obj(target);
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
    assert!(!shown.contains(TOKEN.split_once(':').unwrap().1), "{shown}");
    preview
}

/// A preview as the `(method, body)` calls it stands for.
fn as_calls(preview: &Preview) -> Vec<(String, Value)> {
    preview
        .parts
        .iter()
        .map(|part| {
            let method = match part.kind {
                PreviewKind::TelegramSendMessage => "sendMessage",
                PreviewKind::TelegramSendPhoto => "sendPhoto",
                other => panic!("not a Telegram part: {other:?}"),
            };
            (method.to_string(), part.body.clone())
        })
        .collect()
}

fn with_cover(m: Message) -> Message {
    Message {
        cover_url: Some(COVER_URL.into()),
        ..m
    }
}

const HOSTILE_TITLE: &str = "<script>alert(1)</script> [x](http://evil)";
const HOSTILE_BODY: &str =
    r#"**bold** ![img](http://evil/x.png) <a href="http://evil">y</a> & "quotes""#;

#[tokio::test]
async fn preview_equals_what_is_sent() {
    let linked = Message {
        link: Some("https://example.com/r?a=1&b=<2>".into()),
        link_label: Some("View \"report\"".into()),
        ..message("Deploy & <ok>", "line one\nline two")
    };
    let cases: Vec<(Value, Message)> = vec![
        (json!({"chat_id": CHAT}), linked.clone()),
        // Split into three messages.
        (json!({"chat_id": CHAT}), message("T", &"😀".repeat(4100))),
        // A photo with the whole message as its caption.
        (json!({"chat_id": CHAT}), with_cover(linked.clone())),
        // A photo with the title as its caption, then the body in two messages.
        (
            json!({"chat_id": CHAT, "message_thread_id": 7}),
            with_cover(Message {
                link: Some("https://example.com/x".into()),
                ..message("Title", &"通知\n".repeat(3000))
            }),
        ),
        (
            json!({"chat_id": "@my_channel"}),
            message(HOSTILE_TITLE, HOSTILE_BODY),
        ),
    ];
    for (target, m) in cases {
        let bot = start_bot().await;
        let ch = channel(&bot.base_url, Duration::from_secs(5));
        let outcome = send_with(&ch, target.clone(), &m).await;
        assert_eq!(outcome, delivered("100"));
        let preview = preview_with(&ch, target, &m);
        assert_eq!(preview.channel, notify_domain::ChannelKind::Telegram);
        assert_eq!(calls(&bot), as_calls(&preview), "{m:?}");
    }
}

#[tokio::test]
async fn a_cover_is_sent_as_a_photo_with_the_message_as_caption() {
    let bot = start_bot().await;
    let m = with_cover(Message {
        link: Some("https://example.com/s/1".into()),
        link_label: Some("View".into()),
        ..message("New comment", "Ann: nice & short")
    });
    let ch = channel(&bot.base_url, Duration::from_secs(5));
    let outcome = send_with(&ch, json!({"chat_id": CHAT, "message_thread_id": 3}), &m).await;
    assert_eq!(outcome, delivered("100"));
    assert_eq!(
        calls(&bot),
        vec![(
            "sendPhoto".to_string(),
            json!({
                "chat_id": CHAT,
                "message_thread_id": 3,
                "photo": "https://cdn.example.com/covers/42.png",
                "caption": "<b>New comment</b>\n\nAnn: nice &amp; short\n\n<a href=\"https://example.com/s/1\">View</a>",
                "parse_mode": "HTML",
            })
        )]
    );
}

#[tokio::test]
async fn a_caption_of_exactly_1024_units_is_one_photo() {
    // "<b>T</b>\n\n" is 10 units; "通😀" is 1 + 2 = 3 units, × 338 = 1014: 1024 in all.
    let bot = start_bot().await;
    let body = "通😀".repeat(338);
    let outcome = send(&bot, &with_cover(message("T", &body))).await;
    assert_eq!(outcome, delivered("100"));
    let calls = calls(&bot);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "sendPhoto");
    let caption = calls[0].1["caption"].as_str().unwrap();
    assert_eq!(caption, format!("<b>T</b>\n\n{body}"));
    assert_eq!(caption.encode_utf16().count(), MAX_CAPTION_UNITS);
}

#[tokio::test]
async fn one_unit_over_the_caption_limit_moves_the_body_to_a_message() {
    // 10 + 1014 + 1 ("!") = 1025 > 1024: the caption is the title alone and the body (1015
    // units, under 4096) follows as one sendMessage.
    let bot = start_bot().await;
    let body = format!("{}!", "通😀".repeat(338));
    let outcome = send(&bot, &with_cover(message("T", &body))).await;
    assert_eq!(outcome, delivered("100"), "the photo's id is reported");
    let calls = calls(&bot);
    let methods: Vec<&str> = calls.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(methods, vec!["sendPhoto", "sendMessage"]);
    assert_eq!(calls[0].1["caption"], "<b>T</b>");
    assert_eq!(calls[1].1["text"], body);
    assert_eq!(body.encode_utf16().count(), 1015);
}

#[tokio::test]
async fn a_title_longer_than_a_caption_continues_in_the_first_message() {
    // A 1030-character title: the caption holds "<b>" + 1017 × '通' + "</b>" = 1024 units, the
    // remaining 13 characters open the next message (bold again), then the body.
    let bot = start_bot().await;
    let title = "通".repeat(1030);
    send(&bot, &with_cover(message(&title, "body"))).await;
    let calls = calls(&bot);
    assert_eq!(
        calls[0].1["caption"],
        format!("<b>{}</b>", "通".repeat(1017))
    );
    assert_eq!(calls[1].1["text"], format!("<b>{}</b>", "通".repeat(13)));
    assert_eq!(calls[2].1["text"], "body");
    assert_eq!(calls.len(), 3);
}

#[tokio::test]
async fn a_long_message_with_a_cover_splits_its_text_at_4096_units() {
    // The title is the caption; 2049 emoji (4098 units) do not fit one message: 2048 (4096
    // units) and 1.
    let bot = start_bot().await;
    send(&bot, &with_cover(message("T", &"😀".repeat(2049)))).await;
    let calls = calls(&bot);
    assert_eq!(calls[0].1["caption"], "<b>T</b>");
    assert_eq!(calls[1].1["text"], "😀".repeat(2048));
    assert_eq!(
        calls[1].1["text"].as_str().unwrap().encode_utf16().count(),
        MAX_TEXT_UNITS
    );
    assert_eq!(calls[2].1["text"], "😀");
}

#[tokio::test]
async fn a_photo_telegram_cannot_fetch_falls_back_to_text() {
    let bot = start_bot().await;
    bot.make_photo_unreachable(COVER_URL);
    let m = with_cover(message("T", "b"));
    let outcome = send(&bot, &m).await;
    assert_eq!(outcome, delivered("101"));
    let calls = calls(&bot);
    assert_eq!(calls[0].0, "sendPhoto");
    assert_eq!(
        calls[1],
        (
            "sendMessage".to_string(),
            json!({
                "chat_id": CHAT,
                "text": "<b>T</b>\n\nb",
                "parse_mode": "HTML",
                "link_preview_options": {"is_disabled": true},
            })
        )
    );
    assert_eq!(calls.len(), 2);
}

#[tokio::test]
async fn hostile_text_arrives_as_literal_text() {
    let ch = channel("http://127.0.0.1:9", Duration::from_secs(5));
    let m = Message {
        link: Some("https://example.com/s/1?a=1&b=2".into()),
        link_label: Some("View <it>".into()),
        ..message(HOSTILE_TITLE, HOSTILE_BODY)
    };
    let preview = preview_with(&ch, json!({"chat_id": CHAT}), &m);
    // Telegram's HTML mode: '<', '>' and '&' are entities, so no tag from the user survives;
    // Markdown syntax means nothing in HTML mode. The only tags are ours (<b>, <a>).
    assert_eq!(
        preview.parts[0].body["text"],
        "<b>&lt;script&gt;alert(1)&lt;/script&gt; [x](http://evil)</b>\n\n\
         **bold** ![img](http://evil/x.png) &lt;a href=\"http://evil\"&gt;y&lt;/a&gt; &amp; \"quotes\"\n\n\
         <a href=\"https://example.com/s/1?a=1&amp;b=2\">View &lt;it&gt;</a>"
    );
    assert_eq!(preview.parts.len(), 1);

    // A link or cover that is not http(s) is never a link or a photo.
    let m = Message {
        link: Some("javascript:alert(1)".into()),
        cover_url: Some("javascript:alert(2)".into()),
        ..message("T", "b")
    };
    let preview = preview_with(&ch, json!({"chat_id": CHAT}), &m);
    assert_eq!(preview.parts.len(), 1);
    assert_eq!(preview.parts[0].kind, PreviewKind::TelegramSendMessage);
    assert_eq!(
        preview.parts[0].body["text"],
        "<b>T</b>\n\nb\n\njavascript:alert(1)"
    );
    assert_eq!(
        preview.notes,
        vec!["the cover is not an http(s) URL: it is left out"]
    );

    // The caption is escaped the same way.
    let preview = preview_with(
        &ch,
        json!({"chat_id": CHAT}),
        &with_cover(message(HOSTILE_TITLE, "")),
    );
    assert_eq!(
        preview.parts[0].body["caption"],
        "<b>&lt;script&gt;alert(1)&lt;/script&gt; [x](http://evil)</b>"
    );
}

#[tokio::test]
async fn preview_needs_a_chat_id_but_no_secret() {
    let ch = channel("http://127.0.0.1:9", Duration::from_secs(5));
    let m = message("T", "b");
    let err = ch
        .preview(&SendRequest {
            source_config: &Map::new(),
            source_secrets: &SecretBundle::new(),
            target_config: &Map::new(),
            target_secrets: &SecretBundle::new(),
            message: &m,
        })
        .unwrap_err();
    assert_eq!(err.code(), Some("invalid_config"));
}
