//! TelegramChannel against a local server that plays the Bot API's `sendMessage`.
//!
//! Expected texts are written out by hand: `<b>T</b>\n\n` is 10 UTF-16 units (3 + 1 + 4 + 2),
//! '😀' is 2 units (a surrogate pair), '通' and '知' are 1 unit each, `&amp;` is 5.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use notify_channels::telegram::TelegramChannel;
use notify_channels::{Channel, Endpoints, Outcome, SendRequest};
use notify_domain::{Message, SecretBundle, SecretValue};
use serde_json::{json, Map, Value};

const TOKEN: &str = "123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-ra";
const CHAT: &str = "-1001234567890";
/// A basic group that was upgraded to the supergroup [`CHAT`].
const OLD_GROUP: &str = "-4081234567";

#[derive(Clone, Copy)]
enum Reply {
    Ok,
    ChatNotFound,
    TooManyRequests,
    Blocked,
    Unauthorized,
    BadGatewayHtml,
    Hang,
    /// The first call succeeds, later ones get 429.
    OkThenTooManyRequests,
    /// Requests to any chat but [`CHAT`] get Telegram's "upgraded to a supergroup" error; those
    /// to [`CHAT`] get the reply given.
    Migrated(AfterMigration),
}

#[derive(Clone, Copy)]
enum AfterMigration {
    Ok,
    Blocked,
    /// The supergroup claims to have migrated too.
    MigratedAgain,
}

#[derive(Default)]
struct Recorded {
    bodies: Vec<Value>,
    /// Protocol violations seen by the fake server (asserted empty by the tests).
    violations: Vec<String>,
}

struct FakeBotApi {
    base: String,
    recorded: Arc<Mutex<Recorded>>,
}

impl FakeBotApi {
    async fn start(reply: Reply) -> FakeBotApi {
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let app = Router::new()
            .route("/{*path}", post(handle))
            .with_state((reply, recorded.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeBotApi {
            base: format!("http://{addr}"),
            recorded,
        }
    }

    fn bodies(&self) -> Vec<Value> {
        let recorded = self.recorded.lock().unwrap();
        assert!(
            recorded.violations.is_empty(),
            "protocol violations: {:?}",
            recorded.violations
        );
        recorded.bodies.clone()
    }

    fn texts(&self) -> Vec<String> {
        self.bodies()
            .iter()
            .map(|b| b["text"].as_str().unwrap().to_string())
            .collect()
    }
}

type AppState = (Reply, Arc<Mutex<Recorded>>);

async fn handle(
    State((reply, recorded)): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut violations = Vec::new();
    if uri.path() != format!("/bot{TOKEN}/sendMessage") {
        violations.push(format!("unexpected path {}", uri.path()));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        violations.push(format!("content-type {content_type:?}"));
    }
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            violations.push(format!("body is not JSON: {e}"));
            Value::Null
        }
    };
    if parsed["parse_mode"] != "HTML" {
        violations.push(format!("parse_mode {}", parsed["parse_mode"]));
    }
    let text = parsed["text"].as_str().unwrap_or_default().to_string();
    let units = text.encode_utf16().count();
    if units == 0 || units > 4096 {
        violations.push(format!("text has {units} UTF-16 units"));
    }
    let message_id = {
        let mut r = recorded.lock().unwrap();
        r.violations.extend(violations);
        r.bodies.push(parsed.clone());
        99 + r.bodies.len() as i64
    };
    let to_supergroup = parsed["chat_id"] == json!(CHAT);
    let reply = match reply {
        Reply::OkThenTooManyRequests if message_id == 100 => Reply::Ok,
        Reply::OkThenTooManyRequests => Reply::TooManyRequests,
        Reply::Migrated(AfterMigration::Ok) if to_supergroup => Reply::Ok,
        Reply::Migrated(AfterMigration::Blocked) if to_supergroup => Reply::Blocked,
        other => other,
    };
    let (status, payload) = match reply {
        Reply::Ok => (
            StatusCode::OK,
            json!({
                "ok": true,
                "result": {
                    "message_id": message_id,
                    "from": {"id": 123456789, "is_bot": true, "first_name": "Notify", "username": "notify_test_bot"},
                    "chat": {"id": -1001234567890i64, "title": "Ops", "type": "supergroup"},
                    "date": 1764780000,
                    "text": text,
                }
            }),
        ),
        Reply::ChatNotFound => (
            StatusCode::BAD_REQUEST,
            json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
        ),
        Reply::TooManyRequests => (
            StatusCode::TOO_MANY_REQUESTS,
            json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 35", "parameters": {"retry_after": 35}}),
        ),
        Reply::Blocked => (
            StatusCode::FORBIDDEN,
            json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
        ),
        Reply::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
        ),
        Reply::BadGatewayHtml => {
            return (
                StatusCode::BAD_GATEWAY,
                [(header::CONTENT_TYPE, "text/html")],
                "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
            )
                .into_response()
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            (StatusCode::OK, json!({"ok": true, "result": {"message_id": 1}}))
        }
        // The real payload, as Telegram sends it for a group upgraded to a supergroup.
        Reply::Migrated(_) => (
            StatusCode::BAD_REQUEST,
            json!({
                "ok": false,
                "error_code": 400,
                "description": "Bad Request: group chat was upgraded to a supergroup chat",
                "parameters": {"migrate_to_chat_id": -1001234567890i64},
            }),
        ),
        Reply::OkThenTooManyRequests => unreachable!(),
    };
    (status, axum::Json(payload)).into_response()
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

async fn send(api: &FakeBotApi, message: &Message) -> Outcome {
    send_with(
        &channel(&api.base, Duration::from_secs(5)),
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
    let api = FakeBotApi::start(Reply::Ok).await;
    let outcome = send(&api, &message("Deploy", "That's broken & this is <b>")).await;
    assert_eq!(outcome, delivered("100"));
    assert_eq!(
        api.bodies(),
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
    let api = FakeBotApi::start(Reply::Ok).await;
    let m = Message {
        link: Some("https://example.com/r?a=1&b=<2>".into()),
        ..message("Build <7>", "done")
    };
    assert_eq!(send(&api, &m).await, delivered("100"));
    assert_eq!(
        api.texts(),
        vec!["<b>Build &lt;7&gt;</b>\n\ndone\n\n<a href=\"https://example.com/r?a=1&amp;b=&lt;2&gt;\">Open</a>"]
    );

    let api = FakeBotApi::start(Reply::Ok).await;
    let m = Message {
        link: Some("https://example.com/x".into()),
        link_label: Some("View \"report\" & more".into()),
        ..message("T", "b")
    };
    send(&api, &m).await;
    assert_eq!(
        api.texts(),
        vec!["<b>T</b>\n\nb\n\n<a href=\"https://example.com/x\">View \"report\" &amp; more</a>"]
    );
}

#[tokio::test]
async fn message_thread_id_is_sent_only_when_configured() {
    let api = FakeBotApi::start(Reply::Ok).await;
    let ch = channel(&api.base, Duration::from_secs(5));
    send_with(
        &ch,
        json!({"chat_id": CHAT, "message_thread_id": 42}),
        &message("T", "b"),
    )
    .await;
    send_with(&ch, json!({"chat_id": "@my_channel"}), &message("T", "b")).await;
    let bodies = api.bodies();
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
    let api = FakeBotApi::start(Reply::Ok).await;
    let outcome = send(&api, &message("T", &"😀".repeat(2049))).await;
    assert_eq!(outcome, delivered("100"), "the first part's id is reported");
    assert_eq!(
        api.texts(),
        vec![format!("<b>T</b>\n\n{}", "😀".repeat(2043)), "😀".repeat(6)]
    );
}

#[tokio::test]
async fn exactly_4096_units_is_one_message() {
    // 10 + 2043 × "通知" (2 units each) = 10 + 4086 = 4096.
    let api = FakeBotApi::start(Reply::Ok).await;
    let body = "通知".repeat(2043);
    assert_eq!(send(&api, &message("T", &body)).await, delivered("100"));
    assert_eq!(api.texts(), vec![format!("<b>T</b>\n\n{body}")]);
}

#[tokio::test]
async fn one_unit_over_moves_a_line_that_fits_alone_to_the_next_message() {
    // 10 + 4087 = 4097. The body is one line of 4087 units: it fits a message of its own, so it is
    // not cut; the title goes alone.
    let api = FakeBotApi::start(Reply::Ok).await;
    let body = format!("{}!", "通知".repeat(2043));
    send(&api, &message("T", &body)).await;
    assert_eq!(api.texts(), vec!["<b>T</b>".to_string(), body]);
}

#[tokio::test]
async fn splits_at_a_line_break() {
    // 10 + 3000 + 1 (newline) = 3011; the 3000 B's do not fit in the remaining 1085.
    let api = FakeBotApi::start(Reply::Ok).await;
    let body = format!("{}\n{}", "A".repeat(3000), "B".repeat(3000));
    assert_eq!(send(&api, &message("T", &body)).await, delivered("100"));
    assert_eq!(
        api.texts(),
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
    let api = FakeBotApi::start(Reply::Ok).await;
    send(&api, &message("T", &"&".repeat(820))).await;
    assert_eq!(
        api.texts(),
        vec![
            format!("<b>T</b>\n\n{}", "&amp;".repeat(817)),
            "&amp;".repeat(3)
        ]
    );
}

#[tokio::test]
async fn chat_not_found_is_permanent() {
    let api = FakeBotApi::start(Reply::ChatNotFound).await;
    let outcome = send(&api, &message("T", "b")).await;
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
    let api = FakeBotApi::start(Reply::TooManyRequests).await;
    let outcome = send(&api, &message("T", "b")).await;
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
    let api = FakeBotApi::start(Reply::Blocked).await;
    let outcome = send(&api, &message("T", "b")).await;
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
    let api = FakeBotApi::start(Reply::Unauthorized).await;
    let outcome = send(&api, &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Permanent { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("401"));
    assert!(
        outcome.message().unwrap().starts_with("Unauthorized"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn html_error_page_from_a_proxy_is_retryable() {
    let api = FakeBotApi::start(Reply::BadGatewayHtml).await;
    let outcome = send(&api, &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Retryable { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("502"));
    assert!(
        outcome.message().unwrap().contains("502 Bad Gateway"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_failed_later_part_reports_what_was_already_delivered() {
    let api = FakeBotApi::start(Reply::OkThenTooManyRequests).await;
    let outcome = send(&api, &message("T", &"😀".repeat(2049))).await;
    assert_eq!(
        outcome,
        Outcome::Retryable {
            code: Some("429".into()),
            message: "Too Many Requests: retry after 35 (1 of 2 parts were already delivered)"
                .into(),
            retry_after_secs: Some(35)
        }
    );
    assert_eq!(api.bodies().len(), 2);
}

#[tokio::test]
async fn stops_at_the_first_failed_part() {
    let api = FakeBotApi::start(Reply::TooManyRequests).await;
    let outcome = send(&api, &message("T", &"😀".repeat(2049))).await;
    assert_eq!(outcome.code(), Some("429"));
    assert!(
        !outcome.message().unwrap().contains("already delivered"),
        "{outcome:?}"
    );
    assert_eq!(api.bodies().len(), 1);
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
    let api = FakeBotApi::start(Reply::Hang).await;
    let ch = channel(&api.base, Duration::from_millis(300));
    let started = std::time::Instant::now();
    let outcome = send_with(&ch, json!({"chat_id": CHAT}), &message("T", "b")).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(outcome, Outcome::Retryable { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("timeout"));
}

#[tokio::test]
async fn a_token_that_would_change_the_url_is_refused_before_sending() {
    let api = FakeBotApi::start(Reply::Ok).await;
    let ch = channel(&api.base, Duration::from_secs(5));
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
    assert!(api.bodies().is_empty());
}

async fn send_to_old_group(api: &FakeBotApi, message: &Message) -> Outcome {
    send_with(
        &channel(&api.base, Duration::from_secs(5)),
        json!({"chat_id": OLD_GROUP}),
        message,
    )
    .await
}

#[tokio::test]
async fn a_group_upgraded_to_a_supergroup_is_resent_there_and_the_new_id_reported() {
    let api = FakeBotApi::start(Reply::Migrated(AfterMigration::Ok)).await;
    let outcome = send_to_old_group(&api, &message("T", "b")).await;
    assert_eq!(
        outcome,
        Outcome::Delivered {
            provider_message_id: Some("101".into()),
            target_update: Some(obj(json!({"chat_id": CHAT}))),
        }
    );
    let bodies = api.bodies();
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
    let api = FakeBotApi::start(Reply::Migrated(AfterMigration::Ok)).await;
    let outcome = send_to_old_group(&api, &message("T", &"😀".repeat(2049))).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    let Outcome::Delivered { target_update, .. } = &outcome else {
        unreachable!()
    };
    assert_eq!(target_update, &Some(obj(json!({"chat_id": CHAT}))));
    let chats: Vec<Value> = api.bodies().iter().map(|b| b["chat_id"].clone()).collect();
    assert_eq!(chats, vec![json!(OLD_GROUP), json!(CHAT), json!(CHAT)]);
}

#[tokio::test]
async fn a_failed_resend_to_the_supergroup_is_that_failure() {
    let api = FakeBotApi::start(Reply::Migrated(AfterMigration::Blocked)).await;
    let outcome = send_to_old_group(&api, &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::DeadTarget { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("403"));
    let text = outcome.message().unwrap();
    assert!(
        text.starts_with("Forbidden: bot was blocked by the user") && text.contains(CHAT),
        "{outcome:?}"
    );
    let chats: Vec<Value> = api.bodies().iter().map(|b| b["chat_id"].clone()).collect();
    assert_eq!(chats, vec![json!(OLD_GROUP), json!(CHAT)]);
}

#[tokio::test]
async fn a_migration_is_followed_only_once() {
    let api = FakeBotApi::start(Reply::Migrated(AfterMigration::MigratedAgain)).await;
    let outcome = send_to_old_group(&api, &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Permanent { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("400"));
    assert!(
        outcome
            .message()
            .unwrap()
            .contains("upgraded to a supergroup"),
        "{outcome:?}"
    );
    assert_eq!(api.bodies().len(), 2, "resent more than once");
}
