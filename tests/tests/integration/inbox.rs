//! The in-app inbox: delivery records with read state, on moto.
use notify_testkit::fakes::telegram::FakeTelegram;
use notify_testkit::TestEnv;
use serde_json::{json, Value};

const TOKEN: &str = "5550001:inbox-test-token";

async fn setup() -> (TestEnv, FakeTelegram) {
    let bot = FakeTelegram::start(TOKEN).await;
    let base = bot.base_url.clone();
    let env = TestEnv::start_with(|s| s.endpoints.telegram_api_base = base).await;
    (env, bot)
}

async fn deliver(env: &TestEnv, user: &str, count: usize) {
    let source = env
        .call(
            "POST",
            "/sources",
            Some(user),
            Some(json!({"name": "b", "kind": "telegram", "config": {"bot_token": TOKEN}})),
        )
        .await
        .body["id"]
        .clone();
    let target = env
        .call(
            "POST",
            "/targets",
            Some(user),
            Some(json!({"name": "c", "kind": "telegram", "config": {"chat_id": "-1009"}})),
        )
        .await
        .body["id"]
        .clone();
    let task = env.call("POST", "/tasks", Some(user), Some(json!({"title": "t", "source_id": source, "target_id": target,
        "trigger": {"type": "event", "event": "SectionUpdated"}, "content": {"type": "template", "template": "section_updated"}}))).await;
    assert_eq!(task.status, 201, "{}", task.raw);
    for i in 0..count {
        let event = json!({"id": format!("{user}-{i}"), "detail-type": "SectionUpdated", "detail": {
            "section": {"id": format!("s{i}"), "title": format!("Section {i}")}, "recipients": [{"user_id": user, "role": "member"}]}});
        notify_events::handle(&env.dispatcher, None, notify_testkit::deadline(), event)
            .await
            .unwrap();
    }
}

fn titles(reply: &Value) -> Vec<String> {
    reply["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["title"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn read_state_unread_filter_count_mark_all_and_delete() {
    let (env, _bot) = setup().await;
    let user = Some("inbox-ida");
    deliver(&env, "inbox-ida", 4).await;
    deliver(&env, "inbox-other", 1).await;

    let all = env.call("GET", "/deliveries", user, None).await;
    assert_eq!(
        titles(&all.body),
        [
            "“Section 3” was updated",
            "“Section 2” was updated",
            "“Section 1” was updated",
            "“Section 0” was updated"
        ]
    );
    assert_eq!(
        env.call("GET", "/deliveries/unread-count", user, None)
            .await
            .body,
        json!({"unread": 4})
    );
    let ids: Vec<String> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();

    let read = env
        .call(
            "PATCH",
            &format!("/deliveries/{}", ids[1]),
            user,
            Some(json!({"read": true})),
        )
        .await;
    assert_eq!(
        (read.status.as_u16(), read.body["read"].clone()),
        (200, json!(true)),
        "{}",
        read.raw
    );
    let unread = env.call("GET", "/deliveries?unread=true", user, None).await;
    assert_eq!(
        titles(&unread.body),
        [
            "“Section 3” was updated",
            "“Section 1” was updated",
            "“Section 0” was updated"
        ]
    );
    // Unread pages with a cursor too.
    let first = env
        .call("GET", "/deliveries?unread=true&limit=2", user, None)
        .await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_string();
    let second = env
        .call(
            "GET",
            &format!("/deliveries?unread=true&limit=2&cursor={cursor}"),
            user,
            None,
        )
        .await;
    assert_eq!(titles(&second.body), ["“Section 0” was updated"]);

    // Back to unread, then everything read.
    env.call(
        "PATCH",
        &format!("/deliveries/{}", ids[1]),
        user,
        Some(json!({"read": false})),
    )
    .await;
    assert_eq!(
        env.call("GET", "/deliveries/unread-count", user, None)
            .await
            .body,
        json!({"unread": 4})
    );
    let marked = env.call("POST", "/deliveries/read-all", user, None).await;
    assert_eq!(marked.body, json!({"updated": 4}));
    assert_eq!(
        env.call("GET", "/deliveries/unread-count", user, None)
            .await
            .body,
        json!({"unread": 0})
    );
    // Another user's inbox is untouched and invisible.
    assert_eq!(
        env.call("GET", "/deliveries/unread-count", Some("inbox-other"), None)
            .await
            .body,
        json!({"unread": 1})
    );
    assert_eq!(
        env.call(
            "GET",
            &format!("/deliveries/{}", ids[0]),
            Some("inbox-other"),
            None
        )
        .await
        .status,
        404
    );
    assert_eq!(
        env.call(
            "PATCH",
            &format!("/deliveries/{}", ids[0]),
            Some("inbox-other"),
            Some(json!({"read": false}))
        )
        .await
        .status,
        404
    );
    assert_eq!(
        env.call(
            "DELETE",
            &format!("/deliveries/{}", ids[0]),
            Some("inbox-other"),
            None
        )
        .await
        .status,
        404
    );

    assert_eq!(
        env.call("DELETE", &format!("/deliveries/{}", ids[0]), user, None)
            .await
            .status,
        204
    );
    assert_eq!(
        env.call("GET", &format!("/deliveries/{}", ids[0]), user, None)
            .await
            .status,
        404
    );
    assert_eq!(
        titles(&env.call("GET", "/deliveries", user, None).await.body).len(),
        3
    );
    assert_eq!(
        env.call("GET", "/deliveries?unread=maybe", user, None)
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn records_expire_after_the_retention_period() {
    let bot = FakeTelegram::start(TOKEN).await;
    let base = bot.base_url.clone();
    let env = TestEnv::start_with(|s| {
        s.endpoints.telegram_api_base = base;
        s.delivery_retention = chrono::Duration::days(30);
    })
    .await;
    deliver(&env, "inbox-jo", 1).await;
    let record = &env
        .call("GET", "/deliveries", Some("inbox-jo"), None)
        .await
        .body["items"][0];
    let created: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(record["created_at"].clone()).unwrap();
    let item = aws_sdk_dynamodb::Client::new(&env.aws)
        .get_item()
        .table_name(&env.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("USER#inbox-jo".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!(
                "DELIVERY#{}",
                record["id"].as_str().unwrap()
            )),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let expires: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    assert_eq!(expires, created.timestamp() + 30 * 86_400);
    let ttl = aws_sdk_dynamodb::Client::new(&env.aws)
        .describe_time_to_live()
        .table_name(&env.table)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("expires_at")
    );
}
