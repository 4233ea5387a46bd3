//! No secret value appears in any API response, DynamoDB item or log line, across the whole
//! path (configuration, delivery, provider errors). Uses distinctive secret values and captures
//! every log line of the run.
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify_testkit::fakes::telegram::{BotReply, FakeTelegram};
use notify_testkit::smtp::SmtpSink;
use notify_testkit::TestEnv;
use serde_json::json;

const SMTP_PASSWORD: &str = "LEAK-smtp-Pw-83e1";
const BOT_TOKEN: &str = "424242:LEAK-tg-Token-x9";
const FEISHU_SECRET: &str = "LEAK-feishu-AppSecret-77";
const FEISHU_SIGN: &str = "LEAK-feishu-sign-55";
const DING_SIGN: &str = "SECLEAK-ding-sign-31";
const ALL: [&str; 5] = [
    SMTP_PASSWORD,
    BOT_TOKEN,
    FEISHU_SECRET,
    FEISHU_SIGN,
    DING_SIGN,
];

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_clean(what: &str, text: &str) {
    for secret in ALL {
        assert!(
            !text.contains(secret),
            "{what} contains the secret {secret}:\n{text}"
        );
    }
}

#[tokio::test]
async fn no_secret_reaches_responses_items_or_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sink = SmtpSink::start();
    let bot = FakeTelegram::start(BOT_TOKEN).await;
    let base = bot.base_url.clone();
    let env = TestEnv::start_with(|s| s.endpoints.telegram_api_base = base).await;
    let user = Some("leak-user");
    let mut responses = String::new();
    let mut call = |reply: notify_testkit::env::Reply| {
        responses.push_str(&reply.raw);
        responses.push('\n');
        reply
    };

    let email_source = call(env.call("POST", "/sources", user, Some(json!({"name": "m", "kind": "email",
        "config": {"host": "127.0.0.1", "port": sink.port, "username": "u@example.test", "password": SMTP_PASSWORD, "tls": "none"}}))).await);
    let email_target = call(
        env.call(
            "POST",
            "/targets",
            user,
            Some(json!({"name": "t", "kind": "email", "config": {"email": "x@example.test"}})),
        )
        .await,
    );
    let bot_source = call(
        env.call(
            "POST",
            "/sources",
            user,
            Some(json!({"name": "b", "kind": "telegram", "config": {"bot_token": BOT_TOKEN}})),
        )
        .await,
    );
    let chat = call(
        env.call(
            "POST",
            "/targets",
            user,
            Some(json!({"name": "c", "kind": "telegram", "config": {"chat_id": "-100777"}})),
        )
        .await,
    );
    call(env.call("POST", "/sources", user, Some(json!({"name": "f", "kind": "feishu", "config": {"app_id": "cli_1", "app_secret": FEISHU_SECRET}}))).await);
    call(env.call("POST", "/targets", user, Some(json!({"name": "f", "kind": "feishu", "config": {"webhook_url": "https://open.feishu.cn/open-apis/bot/v2/hook/abc", "sign": FEISHU_SIGN}}))).await);
    let ding = call(env.call("POST", "/targets", user, Some(json!({"name": "d", "kind": "dingtalk", "config": {"webhook_url": "https://oapi.dingtalk.com/robot/send?access_token=t", "sign": DING_SIGN}}))).await);
    // A bad value next to a secret: the error must name the field, not echo the secret.
    call(
        env.call(
            "POST",
            "/sources",
            user,
            Some(json!({"name": "m", "kind": "email",
        "config": {"host": "bad host", "port": 25, "username": "u", "password": SMTP_PASSWORD}})),
        )
        .await,
    );
    let ding_id = ding.body["id"].as_str().unwrap();
    call(
        env.call(
            "PATCH",
            &format!("/targets/{ding_id}"),
            user,
            Some(json!({"config": {"sign": DING_SIGN}})),
        )
        .await,
    );
    for path in ["/sources", "/targets", "/catalog"] {
        call(env.call("GET", path, user, None).await);
    }

    for (source, target, event) in [
        (&email_source, &email_target, "SectionUpdated"),
        (&bot_source, &chat, "SectionSubscribed"),
    ] {
        let template = if event == "SectionUpdated" {
            "section_updated"
        } else {
            "section_subscribed"
        };
        call(env.call("POST", "/tasks", user, Some(json!({"title": "t", "source_id": source.body["id"], "target_id": target.body["id"],
            "trigger": {"type": "event", "event": event}, "content": {"type": "template", "template": template}}))).await);
    }
    let event = |name: &str, id: &str| {
        serde_json::to_value(json!({
        "id": id, "detail-type": name, "source": "app",
        "detail": {"section": {"id": "s", "title": "T"}, "actor": {"id": "a", "name": "A"}, "recipients": [{"user_id": "leak-user", "role": "creator"}]}
    })).unwrap()
    };
    notify_events::handle(
        &env.dispatcher,
        None,
        notify_testkit::deadline(),
        event("SectionUpdated", "e1"),
    )
    .await
    .unwrap();
    sink.next_message(Duration::from_secs(10));
    // Telegram: success, then the provider rejecting the token, then the provider unreachable.
    notify_events::handle(
        &env.dispatcher,
        None,
        notify_testkit::deadline(),
        event("SectionSubscribed", "e2"),
    )
    .await
    .unwrap();
    bot.script([BotReply::Error {
        code: 401,
        description: "Unauthorized".into(),
        retry_after: None,
    }]);
    notify_events::handle(
        &env.dispatcher,
        None,
        notify_testkit::deadline(),
        event("SectionSubscribed", "e3"),
    )
    .await
    .unwrap();
    // Same stores, channels pointed at a closed port.
    let mut dispatcher = env.dispatcher.clone();
    let mut endpoints = dispatcher.settings.endpoints.clone();
    endpoints.telegram_api_base = "http://127.0.0.1:9".into();
    dispatcher.channels = notify_channels::ChannelRegistry::new(&endpoints).unwrap();
    let retry = notify_events::handle(
        &dispatcher,
        None,
        notify_testkit::deadline(),
        event("SectionSubscribed", "e4"),
    )
    .await;
    assert!(retry.is_err(), "an unreachable provider asks for a retry");
    call(env.call("GET", "/deliveries", user, None).await);

    let deliveries = env.call("GET", "/deliveries", user, None).await;
    let statuses: Vec<&str> = deliveries.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["failed", "failed", "sent", "sent"],
        "newest first: unreachable, 401, telegram ok, email ok"
    );

    assert_clean("API responses", &responses);
    assert_clean("DynamoDB items", &env.dump_table().await);
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("notification attempt"),
        "the run was logged: {logs}"
    );
    assert_clean("logs", &logs);
}
