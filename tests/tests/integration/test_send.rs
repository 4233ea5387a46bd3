//! `POST /targets/{id}/test` sends now and answers with the provider's outcome.
use std::time::Duration;

use notify_testkit::fakes::telegram::{BotReply, FakeTelegram};
use notify_testkit::smtp::SmtpSink;
use notify_testkit::TestEnv;
use serde_json::json;

#[tokio::test]
async fn test_send_delivers_and_reports_provider_failures() {
    const TOKEN: &str = "6000001:test-send-token";
    let sink = SmtpSink::start();
    let bot = FakeTelegram::start(TOKEN).await;
    let base = bot.base_url.clone();
    let env = TestEnv::start_with(|s| s.endpoints.telegram_api_base = base).await;
    let user = Some("ts-user");
    let id = |r: notify_testkit::env::Reply| r.body["id"].as_str().unwrap().to_string();

    let mail_source = id(env.call("POST", "/sources", user, Some(json!({"name": "Mailbox", "kind": "email",
        "config": {"host": "127.0.0.1", "port": sink.port, "username": "n@example.test", "password": "pw", "tls": "none"}}))).await);
    let mail_target = id(env
        .call(
            "POST",
            "/targets",
            user,
            Some(json!({"name": "Inbox", "kind": "email", "config": {"email": "me@example.test"}})),
        )
        .await);
    let reply = env
        .call(
            "POST",
            &format!("/targets/{mail_target}/test"),
            user,
            Some(json!({"source_id": mail_source})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert_eq!(reply.body["outcome"], "delivered");
    let mail = sink.next_message(Duration::from_secs(10));
    assert!(mail.contains("Subject: Test notification"), "{mail}");

    let bot_source = id(env
        .call(
            "POST",
            "/sources",
            user,
            Some(json!({"name": "Bot", "kind": "telegram", "config": {"bot_token": TOKEN}})),
        )
        .await);
    let chat = id(env
        .call(
            "POST",
            "/targets",
            user,
            Some(json!({"name": "Chat", "kind": "telegram", "config": {"chat_id": "-1004"}})),
        )
        .await);
    let reply = env
        .call(
            "POST",
            &format!("/targets/{chat}/test"),
            user,
            Some(json!({"source_id": bot_source, "language": "zh-CN"})),
        )
        .await;
    assert_eq!(reply.body["outcome"], "delivered", "{}", reply.raw);
    assert_eq!(bot.requests()[0]["text"], "<b>测试通知</b>\n\n如果你看到这条消息，说明通过来源“Bot”发送到目标“Chat”的通知可以正常送达。");

    // The provider says the bot was removed: reported, and the target is disabled with the reason.
    bot.script([BotReply::Error {
        code: 403,
        description: "Forbidden: bot was kicked from the supergroup chat".into(),
        retry_after: None,
    }]);
    let reply = env
        .call(
            "POST",
            &format!("/targets/{chat}/test"),
            user,
            Some(json!({"source_id": bot_source})),
        )
        .await;
    assert_eq!(reply.body["outcome"], "dead_target", "{}", reply.raw);
    assert_eq!(reply.body["code"], "403");
    let target = env
        .call("GET", &format!("/targets/{chat}"), user, None)
        .await;
    assert_eq!(target.body["disabled"]["reason"], reply.body["message"]);
    // While disabled nothing is sent; fixing the target (any update) re-enables it.
    let blocked = env
        .call(
            "POST",
            &format!("/targets/{chat}/test"),
            user,
            Some(json!({"source_id": bot_source})),
        )
        .await;
    assert_eq!(
        (
            blocked.body["outcome"].as_str(),
            blocked.body["code"].as_str()
        ),
        (Some("permanent"), Some("target_disabled"))
    );
    let requests_before = bot.requests().len();
    assert_eq!(requests_before, 2);
    let fixed = env
        .call(
            "PATCH",
            &format!("/targets/{chat}"),
            user,
            Some(json!({"config": {"chat_id": "-1005"}})),
        )
        .await;
    assert!(fixed.body.get("disabled").is_none(), "{}", fixed.raw);
    let again = env
        .call(
            "POST",
            &format!("/targets/{chat}/test"),
            user,
            Some(json!({"source_id": bot_source})),
        )
        .await;
    assert_eq!(again.body["outcome"], "delivered");

    // Mismatched kinds and another user's source are refused before anything is sent.
    let mismatch = env
        .call(
            "POST",
            &format!("/targets/{chat}/test"),
            user,
            Some(json!({"source_id": mail_source})),
        )
        .await;
    assert_eq!(
        (mismatch.status.as_u16(), mismatch.body["field"].as_str()),
        (422, Some("source_id"))
    );
    let foreign = env
        .call(
            "POST",
            &format!("/targets/{chat}/test"),
            Some("someone-else"),
            Some(json!({"source_id": bot_source})),
        )
        .await;
    assert_eq!(foreign.status, 404);
}

#[tokio::test]
async fn a_group_upgraded_to_a_supergroup_is_followed_and_the_target_updated() {
    const TOKEN: &str = "6000002:migrate-token";
    let bot = FakeTelegram::start(TOKEN).await;
    let base = bot.base_url.clone();
    let env = TestEnv::start_with(|s| s.endpoints.telegram_api_base = base).await;
    let user = Some("mig-user");
    let source = env
        .call(
            "POST",
            "/sources",
            user,
            Some(json!({"name": "Bot", "kind": "telegram", "config": {"bot_token": TOKEN}})),
        )
        .await
        .body["id"]
        .clone();
    let chat = env
        .call(
            "POST",
            "/targets",
            user,
            Some(json!({"name": "Group", "kind": "telegram", "config": {"chat_id": "-4012345"}})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    bot.script([BotReply::Migrated {
        to_chat_id: -1009876543210,
    }]);
    let reply = env
        .call(
            "POST",
            &format!("/targets/{chat}/test"),
            user,
            Some(json!({"source_id": source})),
        )
        .await;
    assert_eq!(reply.body["outcome"], "delivered", "{}", reply.raw);
    let chats: Vec<String> = bot
        .requests()
        .iter()
        .map(|r| r["chat_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(chats, ["-4012345", "-1009876543210"]);
    let target = env
        .call("GET", &format!("/targets/{chat}"), user, None)
        .await;
    assert_eq!(target.body["config"]["chat_id"], "-1009876543210");
    assert_eq!(target.body["version"], 2);
}
