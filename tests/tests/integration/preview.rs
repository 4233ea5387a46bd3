//! Previews render exactly what a task would send, without sending.
use notify_testkit::fakes::telegram::FakeTelegram;
use notify_testkit::TestEnv;
use serde_json::{json, Value};

const TOKEN: &str = "6000003:preview-token";

async fn telegram_task(env: &TestEnv, user: &str) -> (Value, Value, String) {
    let source = env
        .call(
            "POST",
            "/sources",
            Some(user),
            Some(json!({"name": "Bot", "kind": "telegram", "config": {"bot_token": TOKEN}})),
        )
        .await
        .body["id"]
        .clone();
    let target = env
        .call(
            "POST",
            "/targets",
            Some(user),
            Some(json!({"name": "Chat", "kind": "telegram", "config": {"chat_id": "-1007"}})),
        )
        .await
        .body["id"]
        .clone();
    let task = env.call("POST", "/tasks", Some(user), Some(json!({"title": "Comments", "source_id": source, "target_id": target,
        "trigger": {"type": "event", "event": "SectionCommented"}, "content": {"type": "template", "template": "section_commented"}}))).await;
    (
        source,
        target,
        task.body["id"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_preview_equals_what_the_provider_then_receives() {
    let bot = FakeTelegram::start(TOKEN).await;
    let base = bot.base_url.clone();
    let env = TestEnv::start_with(|s| s.endpoints.telegram_api_base = base).await;
    let user = "pv-user";
    let (_, _, task) = telegram_task(&env, user).await;
    let detail = json!({"event_id": "pv-1", "section": {"id": "s9", "title": "<script>alert(1)</script> [x](http://evil)"},
        "actor": {"id": "u-b", "name": "Bea & Co"}, "comment": {"id": "c3", "text": "**bold** <b>not bold</b>"},
        "recipients": [{"user_id": user, "role": "member"}]});
    let preview = env
        .call("POST", &format!("/tasks/{task}/preview"), Some(user), Some(json!({"event": {"detail-type": "SectionCommented", "detail": detail}, "role": "member"})))
        .await;
    assert_eq!(preview.status, 200, "{}", preview.raw);
    assert_eq!(preview.body["kind"], "telegram");
    assert_eq!(preview.body["parts"][0]["kind"], "telegram_sendMessage");
    assert!(!preview.raw.contains(TOKEN));
    assert!(bot.requests().is_empty(), "a preview sends nothing");

    let event = json!({"id": "eb-1", "detail-type": "SectionCommented", "detail": detail});
    notify_events::handle(&env.dispatcher, None, notify_testkit::deadline(), event)
        .await
        .unwrap();
    let sent = bot.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0], preview.body["parts"][0]["body"]);
    // And the hostile text stayed text.
    assert!(
        sent[0]["text"]
            .as_str()
            .unwrap()
            .contains("&lt;script&gt;alert(1)&lt;/script&gt; [x](http://evil)"),
        "{}",
        sent[0]
    );
}

#[tokio::test]
async fn previews_use_a_sample_event_or_an_unsaved_task_and_explain_bad_input() {
    let bot = FakeTelegram::start(TOKEN).await;
    let base = bot.base_url.clone();
    let env = TestEnv::start_with(|s| s.endpoints.telegram_api_base = base).await;
    let user = "pv-two";
    let (source, target, task) = telegram_task(&env, user).await;

    // No body: a sample event.
    let sample = env
        .call_raw(
            "POST",
            &format!("/tasks/{task}/preview"),
            Some(user),
            None,
            "application/json",
        )
        .await;
    assert_eq!(sample.status, 200, "{}", sample.raw);
    assert_eq!(
        sample.body["message"]["title"],
        "New comment on “Sample section”"
    );

    // An unsaved scheduled task in Chinese.
    let unsaved = env
        .call("POST", "/tasks/preview", Some(user), Some(json!({"title": "Daily", "source_id": source, "target_id": target, "language": "zh-CN",
            "trigger": {"type": "schedule", "cron": "0 8 * * *", "timezone": "Asia/Shanghai"}, "content": {"type": "template", "template": "daily_summary"}})))
        .await;
    assert_eq!(unsaved.status, 200, "{}", unsaved.raw);
    assert!(
        unsaved.body["message"]["title"]
            .as_str()
            .unwrap()
            .ends_with("每日摘要"),
        "{}",
        unsaved.raw
    );
    assert_eq!(
        unsaved.body["message"]["body"],
        "今天没有新动态，享受安静的一天吧！"
    );

    let wrong_event = env
        .call("POST", &format!("/tasks/{task}/preview"), Some(user), Some(json!({"event": {"detail-type": "SectionUpdated", "detail": {"section": {"id": "s", "title": "t"}}}})))
        .await;
    assert_eq!(
        (
            wrong_event.status.as_u16(),
            wrong_event.body["field"].as_str()
        ),
        (422, Some("event.detail-type"))
    );
    let bad_event = env
        .call("POST", &format!("/tasks/{task}/preview"), Some(user), Some(json!({"event": {"detail-type": "SectionCommented", "detail": {"section": {"id": "s", "title": "t"}}}})))
        .await;
    assert_eq!(
        (bad_event.status.as_u16(), bad_event.body["field"].as_str()),
        (422, Some("event.detail.comment"))
    );
    assert_eq!(
        env.call(
            "POST",
            &format!("/tasks/{task}/preview"),
            Some("stranger"),
            None
        )
        .await
        .status,
        404
    );
    assert!(bot.requests().is_empty());
}
