//! The configuration API against DynamoDB and Secrets Manager on moto.
use notify_testkit::env::mint_token;
use notify_testkit::TestEnv;
use serde_json::{json, Value};

fn email_source(password: &str) -> Value {
    json!({
        "name": "Team mailbox",
        "kind": "email",
        "config": {"host": "smtp.example.com", "port": 587, "username": "bot@example.com", "password": password}
    })
}

fn email_target(address: &str) -> Value {
    json!({"name": "Me", "kind": "email", "config": {"email": address}})
}

fn assert_problem(reply: &notify_testkit::env::Reply, status: u16, field: Option<&str>) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.raw);
    assert_eq!(
        reply.content_type, "application/problem+json",
        "{}",
        reply.raw
    );
    assert_eq!(reply.body["status"], status, "{}", reply.raw);
    assert!(
        reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        reply.raw
    );
    if let Some(field) = field {
        assert_eq!(reply.body["field"], field, "{}", reply.raw);
    }
}

#[tokio::test]
async fn secrets_are_stored_in_secrets_manager_and_never_returned() {
    let env = TestEnv::start().await;
    let created = env
        .call(
            "POST",
            "/sources",
            Some("alice"),
            Some(email_source("pw-Zebra-4417")),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.raw);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["secrets"], json!({"password": {"set": true}}));
    assert_eq!(
        created.body["config"],
        json!({"host": "smtp.example.com", "port": 587, "username": "bot@example.com", "tls": "auto"})
    );
    assert!(!created.raw.contains("pw-Zebra-4417"));

    let got = env
        .call("GET", &format!("/sources/{id}"), Some("alice"), None)
        .await;
    assert_eq!(got.status, 200);
    assert!(!got.raw.contains("pw-Zebra-4417"));
    let listed = env.call("GET", "/sources", Some("alice"), None).await;
    assert!(!listed.raw.contains("pw-Zebra-4417"));

    assert_eq!(
        env.stored_secret("source", &id).await.as_deref(),
        Some(r#"{"password":"pw-Zebra-4417"}"#)
    );
    let table = env.dump_table().await;
    assert!(table.contains(&id) && !table.contains("pw-Zebra-4417"));

    // A partial update without the secret keeps it; one with it replaces it.
    let patched = env
        .call(
            "PATCH",
            &format!("/sources/{id}"),
            Some("alice"),
            Some(json!({"name": "Renamed", "config": {"port": 465}})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.raw);
    assert_eq!(patched.body["name"], "Renamed");
    assert_eq!(patched.body["config"]["port"], 465);
    assert_eq!(patched.body["secrets"]["password"]["set"], true);
    assert_eq!(patched.body["version"], 2);
    assert_eq!(
        env.stored_secret("source", &id).await.as_deref(),
        Some(r#"{"password":"pw-Zebra-4417"}"#)
    );
    let rotated = env
        .call(
            "PATCH",
            &format!("/sources/{id}"),
            Some("alice"),
            Some(json!({"config": {"password": "pw-Yak-9"}})),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.raw);
    assert_eq!(
        env.stored_secret("source", &id).await.as_deref(),
        Some(r#"{"password":"pw-Yak-9"}"#)
    );

    // Deleting the resource deletes its secret.
    let deleted = env
        .call("DELETE", &format!("/sources/{id}"), Some("alice"), None)
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(env.stored_secret("source", &id).await, None);
    let gone = env
        .call("GET", &format!("/sources/{id}"), Some("alice"), None)
        .await;
    assert_problem(&gone, 404, None);
}

#[tokio::test]
async fn another_users_resources_are_not_found() {
    let env = TestEnv::start().await;
    let source = env
        .call(
            "POST",
            "/sources",
            Some("alice"),
            Some(email_source("pw-1")),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let target = env
        .call(
            "POST",
            "/targets",
            Some("alice"),
            Some(email_target("alice@example.com")),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob_target = env
        .call(
            "POST",
            "/targets",
            Some("bob"),
            Some(email_target("bob@example.com")),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob_source = env
        .call("POST", "/sources", Some("bob"), Some(email_source("pw-2")))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();

    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"name": "mine now"}))),
        ("DELETE", None),
    ] {
        let reply = env
            .call(method, &format!("/sources/{source}"), Some("bob"), body)
            .await;
        assert_problem(&reply, 404, None);
    }
    assert_problem(
        &env.call("GET", &format!("/targets/{target}"), Some("bob"), None)
            .await,
        404,
        None,
    );
    // Still there, unchanged, for its owner.
    let own = env
        .call("GET", &format!("/sources/{source}"), Some("alice"), None)
        .await;
    assert_eq!(
        (own.status.as_u16(), own.body["name"].as_str()),
        (200, Some("Team mailbox"))
    );

    // Bob cannot build a task on Alice's source or target.
    let task = |s: &str, t: &str| {
        json!({
            "title": "steal", "source_id": s, "target_id": t,
            "trigger": {"type": "event", "event": "SectionUpdated"},
            "content": {"type": "template", "template": "section_updated"}
        })
    };
    assert_problem(
        &env.call(
            "POST",
            "/tasks",
            Some("bob"),
            Some(task(&source, &bob_target)),
        )
        .await,
        404,
        Some("source_id"),
    );
    assert_problem(
        &env.call(
            "POST",
            "/tasks",
            Some("bob"),
            Some(task(&bob_source, &target)),
        )
        .await,
        404,
        Some("target_id"),
    );
    // Lists hold only the caller's own.
    let listed = env.call("GET", "/sources", Some("bob"), None).await;
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![bob_source.as_str()]);
}

#[tokio::test]
async fn identity_is_required_and_verified() {
    let env = TestEnv::start().await;
    assert_problem(&env.call("GET", "/sources", None, None).await, 401, None);
    for token in [
        mint_token("some-other-key-entirely-different", "alice", 3600),
        mint_token(notify_testkit::env::JWT_KEY, "alice", -3600),
        "not.a.jwt".to_string(),
    ] {
        let request = axum::http::Request::builder()
            .uri("/sources")
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let response = tower::ServiceExt::oneshot(env.router.clone(), request)
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
}

#[tokio::test]
async fn bad_requests_are_problems_that_name_the_field() {
    let env = TestEnv::start().await;
    let user = Some("carol");
    let email = env
        .call("POST", "/sources", user, Some(email_source("pw")))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let telegram_target = env
        .call(
            "POST",
            "/targets",
            user,
            Some(json!({"name": "chat", "kind": "telegram", "config": {"chat_id": "-100123"}})),
        )
        .await;
    assert_eq!(telegram_target.status, 201, "{}", telegram_target.raw);
    let tg = telegram_target.body["id"].as_str().unwrap().to_string();
    let mail_target = env
        .call(
            "POST",
            "/targets",
            user,
            Some(email_target("c@example.com")),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Kind mismatch: 422 naming both kinds and the allowed pairs.
    let mismatch = env
        .call(
            "POST",
            "/tasks",
            user,
            Some(json!({
                "title": "t", "source_id": email, "target_id": tg,
                "trigger": {"type": "event", "event": "SectionUpdated"},
                "content": {"type": "template", "template": "section_updated"}
            })),
        )
        .await;
    assert_problem(&mismatch, 422, Some("target_id"));
    let detail = mismatch.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("email")
            && detail.contains("telegram")
            && detail.contains("telegram→telegram"),
        "{detail}"
    );

    let task = |trigger: Value| {
        json!({
            "title": "t", "source_id": email, "target_id": mail_target, "trigger": trigger,
            "content": {"type": "custom", "title": "Hi", "body": "there"}
        })
    };
    assert_problem(
        &env.call(
            "POST",
            "/tasks",
            user,
            Some(task(json!({"type": "event", "event": "SectionDeleted"}))),
        )
        .await,
        422,
        Some("trigger"),
    );
    assert_problem(
        &env.call(
            "POST",
            "/tasks",
            user,
            Some(task(json!({"type": "schedule", "cron": "0 12 * * ? *"}))),
        )
        .await,
        422,
        Some("trigger.cron"),
    );
    assert_problem(
        &env.call(
            "POST",
            "/tasks",
            user,
            Some(task(json!({"type": "schedule", "cron": "0 0 31 2 *"}))),
        )
        .await,
        422,
        Some("trigger.cron"),
    );
    assert_problem(
        &env.call(
            "POST",
            "/tasks",
            user,
            Some(task(
                json!({"type": "schedule", "cron": "0 9 * * *", "timezone": "Europe/Atlantis"}),
            )),
        )
        .await,
        422,
        Some("trigger.timezone"),
    );

    // Field validation names the config field.
    let bad_port = env.call("POST", "/sources", user, Some(json!({"name": "x", "kind": "email", "config": {"host": "h.example", "port": 99999, "username": "u", "password": "p"}}))).await;
    assert_problem(&bad_port, 422, Some("config.port"));
    let bad_kind = env
        .call(
            "POST",
            "/sources",
            user,
            Some(json!({"name": "x", "kind": "pager", "config": {}})),
        )
        .await;
    assert_problem(&bad_kind, 422, Some("kind"));
    let bad_hook = env.call("POST", "/targets", user, Some(json!({"name": "x", "kind": "dingtalk", "config": {"webhook_url": "https://evil.example/robot/send", "sign": "SEC1"}}))).await;
    assert_problem(&bad_hook, 422, Some("config.webhook_url"));
    let bad_email = env
        .call(
            "POST",
            "/targets",
            user,
            Some(email_target("not-an-address")),
        )
        .await;
    assert_problem(&bad_email, 422, Some("config.email"));
    let wrong_type = env
        .call(
            "POST",
            "/sources",
            user,
            Some(json!({"name": 5, "kind": "email"})),
        )
        .await;
    assert_problem(&wrong_type, 422, Some("name"));
    let unknown_field = env
        .call(
            "POST",
            "/sources",
            user,
            Some(json!({"name": "x", "kind": "email", "colour": "red"})),
        )
        .await;
    assert_problem(&unknown_field, 422, Some("colour"));
    // A field missing inside the tagged `trigger` and `content` objects is named exactly.
    assert_problem(
        &env.call(
            "POST",
            "/tasks",
            user,
            Some(task(json!({"type": "schedule", "timezone": "UTC"}))),
        )
        .await,
        422,
        Some("trigger.cron"),
    );
    let no_body = env
        .call(
            "POST",
            "/tasks",
            user,
            Some(json!({
                "title": "t", "source_id": email, "target_id": mail_target,
                "trigger": {"type": "event", "event": "SectionUpdated"},
                "content": {"type": "custom", "title": "Hi"}
            })),
        )
        .await;
    assert_problem(&no_body, 422, Some("content.body"));
    // Valid JSON of the wrong shape is a 422 even where serde_json calls it a syntax error.
    let null_language = env
        .call(
            "POST",
            "/tasks",
            user,
            Some(json!({
                "title": "t", "source_id": email, "target_id": mail_target, "language": null,
                "trigger": {"type": "event", "event": "SectionUpdated"},
                "content": {"type": "custom", "title": "Hi", "body": "there"}
            })),
        )
        .await;
    assert_problem(&null_language, 422, Some("language"));

    // Malformed JSON, oversized body, wrong media type, bad paging.
    assert_problem(
        &env.call_raw(
            "POST",
            "/sources",
            user,
            Some("{\"name\": "),
            "application/json",
        )
        .await,
        400,
        None,
    );
    let huge = json!({"name": "x".repeat(70_000), "kind": "email"}).to_string();
    assert_problem(
        &env.call_raw("POST", "/sources", user, Some(&huge), "application/json")
            .await,
        413,
        None,
    );
    assert_problem(
        &env.call_raw(
            "POST",
            "/sources",
            user,
            Some("name=x"),
            "application/x-www-form-urlencoded",
        )
        .await,
        415,
        None,
    );
    assert_problem(
        &env.call("GET", "/sources?limit=0", user, None).await,
        400,
        Some("limit"),
    );
    assert_problem(
        &env.call("GET", "/sources?cursor=%%%", user, None).await,
        400,
        Some("cursor"),
    );
    assert_problem(&env.call("GET", "/nowhere", user, None).await, 404, None);
}

#[tokio::test]
async fn lists_paginate_with_an_opaque_cursor() {
    let env = TestEnv::start().await;
    let mut created = Vec::new();
    for i in 0..5 {
        let reply = env
            .call(
                "POST",
                "/targets",
                Some("dave"),
                Some(email_target(&format!("d{i}@example.com"))),
            )
            .await;
        created.push(reply.body["id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/targets?limit=2&cursor={c}"),
            None => "/targets?limit=2".to_string(),
        };
        let page = env.call("GET", &path, Some("dave"), None).await;
        assert_eq!(page.status, 200, "{}", page.raw);
        pages += 1;
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    created.sort();
    seen.sort();
    assert_eq!(seen, created);
    assert!(pages >= 3);
}

#[tokio::test]
async fn scheduled_tasks_show_upcoming_fire_times_and_catalog_describes_kinds() {
    let env = TestEnv::start().await;
    let user = Some("erin");
    let source = env
        .call("POST", "/sources", user, Some(email_source("pw")))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let target = env
        .call(
            "POST",
            "/targets",
            user,
            Some(email_target("e@example.com")),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = env
        .call("POST", "/tasks", user, Some(json!({
            "title": "Morning summary", "source_id": source, "target_id": target,
            "trigger": {"type": "schedule", "cron": "30 8 * * MON-FRI", "timezone": "Asia/Shanghai"},
            "content": {"type": "template", "template": "daily_summary"}
        })))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.raw);
    let upcoming: Vec<chrono::DateTime<chrono::Utc>> =
        serde_json::from_value(reply.body["upcoming"].clone()).unwrap();
    assert_eq!(upcoming.len(), 5);
    for t in &upcoming {
        // 08:30 in Shanghai (UTC+8, no DST) is 00:30Z, on a weekday there.
        assert_eq!(t.format("%H:%M").to_string(), "00:30");
        let local = t.with_timezone(&chrono_tz_shanghai());
        assert!(!matches!(
            local.format("%a").to_string().as_str(),
            "Sat" | "Sun"
        ));
    }
    assert!(upcoming[0] > chrono::Utc::now());
    assert_eq!(reply.body["next_fire_at"], json!(upcoming[0]));

    // A source in use cannot be deleted.
    let conflict = env
        .call("DELETE", &format!("/sources/{source}"), user, None)
        .await;
    assert_problem(&conflict, 409, None);

    let catalog = env.call("GET", "/catalog", user, None).await;
    let kinds: Vec<&str> = catalog.body["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "email",
            "feishu",
            "dingtalk",
            "apns",
            "apns_sandbox",
            "telegram"
        ]
    );
    let telegram = catalog.body["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "telegram")
        .unwrap();
    assert_eq!(telegram["source_fields"][0]["name"], "bot_token");
    assert_eq!(telegram["source_fields"][0]["secret"], true);
    assert_eq!(catalog.body["events"].as_array().unwrap().len(), 4);
    assert_eq!(catalog.body["templates"].as_array().unwrap().len(), 5);
}

fn chrono_tz_shanghai() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).unwrap()
}

/// A P-256 key generated with openssl for tests only (PKCS #8, like Apple's .p8 files).
const TEST_P8_BODY: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgsnXy+XSv4W6Utz5O\nKnRks0xYujQnF2hZa78PyhtqAA2hRANCAATC37eRiFr6D/i4FEHkSGLcob38U+Fj\nJ1xjH6ZD3JVx9UvYmBcdr2LTXa3wfMC/ulKxo1/HP8UeiM1s/fe3dGkL";

#[tokio::test]
async fn an_apns_key_is_checked_when_the_source_is_saved() {
    let env = TestEnv::start().await;
    let source = |key: &str| {
        json!({"name": "iOS app", "kind": "apns_sandbox", "config": {
        "team_id": "ABCDE12345", "key_id": "KEY9876543", "apns_topic": "com.example.notify", "private_key": key}})
    };
    let armoured =
        format!("-----BEGIN PRIVATE KEY-----\n{TEST_P8_BODY}\n-----END PRIVATE KEY-----\n");
    let pasted_flat = TEST_P8_BODY.replace('\n', "");
    for key in [armoured.as_str(), pasted_flat.as_str()] {
        let reply = env
            .call("POST", "/sources", Some("ios-dev"), Some(source(key)))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.raw);
        assert_eq!(reply.body["secrets"]["private_key"]["set"], true);
        assert!(!reply.raw.contains("MIGHAgEA"));
    }
    let broken = env
        .call(
            "POST",
            "/sources",
            Some("ios-dev"),
            Some(source("MIGHAgEAnot-a-key")),
        )
        .await;
    assert_problem(&broken, 422, Some("config.private_key"));
    assert!(
        !broken.raw.contains("MIGHAgEAnot-a-key"),
        "the error must not echo the key: {}",
        broken.raw
    );
}

#[tokio::test]
async fn hostile_identities_and_lookalike_values_are_refused() {
    let env = TestEnv::start().await;
    let send = |auth: String, method: &'static str| {
        let request = axum::http::Request::builder()
            .method(method)
            .uri("/sources")
            .header("authorization", auth)
            .body(axum::body::Body::empty())
            .unwrap();
        let router = env.router.clone();
        async move {
            tower::ServiceExt::oneshot(router, request)
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let key = notify_testkit::env::JWT_KEY;
    // The scheme is case-insensitive; the sub must be a sane storage key.
    assert_eq!(
        send(format!("bearer {}", mint_token(key, "alice", 600)), "GET").await,
        200
    );
    assert_eq!(
        send(format!("BEARER {}", mint_token(key, "alice", 600)), "GET").await,
        200
    );
    assert_eq!(
        send(
            format!("Bearer {}", mint_token(key, &"x".repeat(129), 600)),
            "GET"
        )
        .await,
        401
    );
    assert_eq!(
        send(format!("Bearer {}", mint_token(key, "ali\nce", 600)), "GET").await,
        401
    );
    // Not valid before an hour from now.
    let claims = json!({"sub": "alice", "exp": chrono::Utc::now().timestamp() + 7200, "nbf": chrono::Utc::now().timestamp() + 3600});
    let early = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap();
    assert_eq!(send(format!("Bearer {early}"), "GET").await, 401);
    // A wrong method is 405 problem+json.
    let put = env.call("PUT", "/sources", Some("alice"), None).await;
    assert_problem(&put, 405, None);

    let user = Some("alice");
    for (kind, url) in [
        (
            "dingtalk",
            "https://oapi.dingtalk.com/robot/sendfoo?access_token=t",
        ),
        (
            "feishu",
            "https://open.feishu.cn:8443/open-apis/bot/v2/hook/x",
        ),
        ("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/"),
    ] {
        let reply = env
            .call(
                "POST",
                "/targets",
                user,
                Some(
                    json!({"name": "x", "kind": kind, "config": {"webhook_url": url, "sign": "s"}}),
                ),
            )
            .await;
        assert_problem(&reply, 422, Some("config.webhook_url"));
    }
    for address in ["a@b", "a@[127.0.0.1]"] {
        assert_problem(
            &env.call("POST", "/targets", user, Some(email_target(address)))
                .await,
            422,
            Some("config.email"),
        );
    }
}

#[tokio::test]
async fn bodies_and_path_ids_are_checked_before_anything_is_stored() {
    let env = TestEnv::start().await;
    let user = Some("body-checker");
    // One JSON document and then more is not a JSON body, and nothing is created.
    let trailing = format!("{} trailing", email_source("pw"));
    let reply = env
        .call_raw(
            "POST",
            "/sources",
            user,
            Some(&trailing),
            "application/json",
        )
        .await;
    assert_problem(&reply, 400, None);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("request body is not valid JSON"),
        "{}",
        reply.raw
    );
    let list = env.call("GET", "/sources", user, None).await;
    assert_eq!(list.body["items"], json!([]), "{}", list.raw);

    // Path ids: not UTF-8 once decoded, too long, or with control characters.
    let long = "x".repeat(129);
    for path in [
        "/sources/%FF".to_string(),
        format!("/sources/{long}"),
        "/tasks/a%00b".to_string(),
        format!("/deliveries/{long}"),
    ] {
        let reply = env.call("GET", &path, user, None).await;
        assert_problem(&reply, 400, Some("id"));
    }
    // 128 characters is still an id, just not one that exists.
    let reply = env
        .call("GET", &format!("/sources/{}", "x".repeat(128)), user, None)
        .await;
    assert_problem(&reply, 404, None);

    // A saved task's preview takes no body, or a JSON one: anything else is a 415 problem.
    let source = env
        .call("POST", "/sources", user, Some(email_source("pw")))
        .await;
    let target = env
        .call(
            "POST",
            "/targets",
            user,
            Some(email_target("me@example.com")),
        )
        .await;
    let task = env
        .call(
            "POST",
            "/tasks",
            user,
            Some(json!({
                "title": "Comments", "source_id": source.body["id"], "target_id": target.body["id"],
                "trigger": {"type": "event", "event": "SectionCommented"},
                "content": {"type": "template", "template": "section_commented"}
            })),
        )
        .await;
    assert_eq!(task.status, 201, "{}", task.raw);
    let preview = format!("/tasks/{}/preview", task.body["id"].as_str().unwrap());
    let reply = env
        .call_raw("POST", &preview, user, Some("role=member"), "text/plain")
        .await;
    assert_problem(&reply, 415, None);
    let reply = env.call_raw("POST", &preview, user, None, "").await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    let reply = env
        .call_raw(
            "POST",
            &preview,
            user,
            Some(&" ".repeat(70 * 1024)),
            "application/json",
        )
        .await;
    assert_problem(&reply, 413, None);
}

#[tokio::test]
async fn a_patch_refused_as_a_conflict_changes_nothing_not_even_the_secret() {
    let env = TestEnv::start().await;
    let user = Some("racer");
    let created = env
        .call("POST", "/sources", user, Some(email_source("pw-0")))
        .await;
    assert_eq!(created.status, 201, "{}", created.raw);
    let id = created.body["id"].as_str().unwrap().to_string();
    let path = format!("/sources/{id}");
    for round in 0..3 {
        // Twelve edits of the same version at once: one wins, the rest are conflicts.
        let replies = futures::future::join_all((0..12).map(|i| {
            let body = json!({"config": {
                "username": format!("u{round}-{i}@example.com"),
                "password": format!("pw-{round}-{i}")
            }});
            let path = path.clone();
            let env = &env;
            async move { (i, env.call("PATCH", &path, user, Some(body)).await) }
        }))
        .await;
        let winners: Vec<usize> = replies
            .iter()
            .filter(|(_, r)| r.status == 200)
            .map(|(i, _)| *i)
            .collect();
        for (_, reply) in replies.iter().filter(|(_, r)| r.status != 200) {
            assert_problem(reply, 409, None);
        }
        assert!(!winners.is_empty(), "round {round}: nobody won");
        let stored = env.call("GET", &path, user, None).await;
        let username = stored.body["config"]["username"].as_str().unwrap();
        let winner = winners
            .iter()
            .find(|i| username == format!("u{round}-{i}@example.com"))
            .unwrap_or_else(|| panic!("round {round}: {username} is not a winner's"));
        let secret = env.stored_secret("source", &id).await.unwrap();
        assert!(
            secret.contains(&format!("\"pw-{round}-{winner}\"")),
            "round {round}: the username is request {winner}'s, the password another's"
        );
    }
}

#[tokio::test]
async fn a_config_field_given_twice_is_refused_not_silently_replaced() {
    let env = TestEnv::start().await;
    let body = r#"{"name": "m", "kind": "email", "config": {"host": "smtp.example.com",
        "port": 587, "username": "bot@example.com", "password": "pw", "host": "127.0.0.1"}}"#;
    let reply = env
        .call_raw(
            "POST",
            "/sources",
            Some("dup"),
            Some(body),
            "application/json",
        )
        .await;
    assert_problem(&reply, 422, Some("config.host"));
    assert!(
        reply.raw.contains("duplicate field `host`"),
        "{}",
        reply.raw
    );
    let created = env
        .call("POST", "/sources", Some("dup"), Some(email_source("pw")))
        .await;
    let id = created.body["id"].as_str().unwrap();
    let patch = r#"{"config": {"port": 465, "port": 25}}"#;
    let reply = env
        .call_raw(
            "PATCH",
            &format!("/sources/{id}"),
            Some("dup"),
            Some(patch),
            "application/json",
        )
        .await;
    assert_problem(&reply, 422, Some("config.port"));
    let stored = env
        .call("GET", &format!("/sources/{id}"), Some("dup"), None)
        .await;
    assert_eq!(stored.body["config"]["port"], 587, "{}", stored.raw);
}

/// A secret store whose writes fail, as Secrets Manager's do when it throttles or is down.
struct FailingWrites(std::sync::Arc<dyn notify_domain::SecretStore>);

#[async_trait::async_trait]
impl notify_domain::SecretStore for FailingWrites {
    async fn put_secrets(
        &self,
        _user: &str,
        _owner: notify_domain::SecretOwner<'_>,
        _bundle: &notify_domain::SecretBundle,
    ) -> Result<(), notify_domain::SecretError> {
        Err(notify_domain::SecretError::Unavailable(
            "injected: the secret store is down".into(),
        ))
    }
    async fn get_secrets(
        &self,
        owner: notify_domain::SecretOwner<'_>,
    ) -> Result<notify_domain::SecretBundle, notify_domain::SecretError> {
        self.0.get_secrets(owner).await
    }
    async fn delete_secrets(
        &self,
        owner: notify_domain::SecretOwner<'_>,
    ) -> Result<(), notify_domain::SecretError> {
        self.0.delete_secrets(owner).await
    }
}

#[tokio::test]
async fn an_edit_whose_secret_cannot_be_stored_is_undone() {
    let mut env = TestEnv::start().await;
    let user = Some("undo");
    let created = env
        .call("POST", "/sources", user, Some(email_source("pw-old")))
        .await;
    assert_eq!(created.status, 201, "{}", created.raw);
    let id = created.body["id"].as_str().unwrap().to_string();
    // From now on secret writes fail.
    let mut dispatcher = env.dispatcher.clone();
    dispatcher.secrets = std::sync::Arc::new(FailingWrites(dispatcher.secrets.clone()));
    env.router = notify_api::router(notify_api::AppState { dispatcher });
    let reply = env
        .call(
            "PATCH",
            &format!("/sources/{id}"),
            user,
            Some(json!({"config": {"username": "new@example.com", "password": "pw-new"}})),
        )
        .await;
    assert_problem(&reply, 503, None);
    // The configuration is the one before the edit (at a newer version), and the secret too.
    let stored = env.call("GET", &format!("/sources/{id}"), user, None).await;
    assert_eq!(
        stored.body["config"]["username"], "bot@example.com",
        "{}",
        stored.raw
    );
    assert_eq!(stored.body["version"], 3, "{}", stored.raw);
    let secret = env.stored_secret("source", &id).await.unwrap();
    assert!(secret.contains("pw-old"), "the stored secret changed");
}
