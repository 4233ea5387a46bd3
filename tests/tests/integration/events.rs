//! Section events end to end: PutEvents on a custom bus (moto) → rule → SQS → the events
//! handler → real SMTP delivery or a local Bot API server → delivery records in DynamoDB.
use std::time::Duration;

use mailparse::{parse_mail, MailHeaderMap, ParsedMail};
use notify_aws::dead_letter::SqsDeadLetters;
use notify_testkit::fakes::telegram::{BotReply, FakeTelegram};
use notify_testkit::pipeline::{self, poll_once};
use notify_testkit::smtp::SmtpSink;
use notify_testkit::TestEnv;
use serde_json::{json, Value};

async fn id_of(env: &TestEnv, user: &str, path: &str, body: Value) -> String {
    let reply = env.call("POST", path, Some(user), Some(body)).await;
    assert_eq!(reply.status, 201, "{}", reply.raw);
    reply.body["id"].as_str().unwrap().to_string()
}

async fn email_task(
    env: &TestEnv,
    sink: &SmtpSink,
    user: &str,
    address: &str,
    event: &str,
    template: &str,
) -> String {
    let source = id_of(env, user, "/sources", json!({
        "name": "Local SMTP", "kind": "email",
        "config": {"host": "127.0.0.1", "port": sink.port, "username": "notify@example.test", "password": "smtp-pass-Q7",
                   "tls": "none", "sender_name": "Knowledge App"}
    })).await;
    let target = id_of(
        env,
        user,
        "/targets",
        json!({"name": "Inbox", "kind": "email", "config": {"email": address}}),
    )
    .await;
    id_of(
        env,
        user,
        "/tasks",
        json!({
            "title": "Tell me", "source_id": source, "target_id": target,
            "trigger": {"type": "event", "event": event},
            "content": {"type": "template", "template": template}
        }),
    )
    .await
}

fn commented(event_id: &str, recipients: Value) -> Value {
    json!({
        "event_id": event_id,
        "section": {"id": "sec-42", "title": "Weekly <notes> & plans"},
        "actor": {"id": "u-ann", "name": "Ann"},
        "comment": {"id": "c-9", "text": "Looks good — ship it"},
        "recipients": recipients
    })
}

fn part<'a>(mail: &'a ParsedMail<'a>, mimetype: &str) -> String {
    fn find<'a>(m: &'a ParsedMail<'a>, t: &str) -> Option<&'a ParsedMail<'a>> {
        if m.ctype.mimetype == t {
            return Some(m);
        }
        m.subparts.iter().find_map(|p| find(p, t))
    }
    find(mail, mimetype)
        .unwrap_or_else(|| panic!("no {mimetype} part"))
        .get_body()
        .unwrap()
}

async fn deliveries(env: &TestEnv, user: &str) -> Vec<Value> {
    env.call("GET", "/deliveries", Some(user), None).await.body["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_comment_event_on_the_bus_arrives_as_a_formatted_email_once() {
    let sink = SmtpSink::start();
    let env = TestEnv::start().await;
    let pipe = pipeline::create(&env.aws, &format!("bus-{}", &env.table[12..24])).await;
    email_task(
        &env,
        &sink,
        "u-olga",
        "olga@example.test",
        "SectionCommented",
        "section_commented",
    )
    .await;

    let detail = commented(
        "comment-c-9",
        json!([{"user_id": "u-olga", "role": "creator"}, {"user_id": "u-ann", "role": "member"}]),
    );
    pipeline::put_event(&env.aws, &pipe.bus, "SectionCommented", &detail).await;
    // The upstream app retries its PutEvents: same occurrence, new EventBridge id.
    pipeline::put_event(&env.aws, &pipe.bus, "SectionCommented", &detail).await;

    let mut received = 0;
    for _ in 0..10 {
        received += poll_once(&env.aws, &pipe.queue_url, &env.dispatcher, None, 1)
            .await
            .received;
        if received >= 2 {
            break;
        }
    }
    assert_eq!(received, 2, "both puts reach the queue");

    let raw = sink.next_message(Duration::from_secs(10));
    let mail = parse_mail(raw.as_bytes()).unwrap();
    assert_eq!(
        mail.headers.get_first_value("Subject").unwrap(),
        "New comment on “Weekly <notes> & plans”"
    );
    assert_eq!(
        mail.headers.get_first_value("To").unwrap(),
        "olga@example.test"
    );
    assert!(mail
        .headers
        .get_first_value("From")
        .unwrap()
        .contains("Knowledge App"));
    let text = part(&mail, "text/plain");
    assert!(
        text.contains("Ann commented on a section you created, “Weekly <notes> & plans”:"),
        "{text}"
    );
    assert!(text.contains("“Looks good — ship it”"), "{text}");
    assert!(
        text.contains("https://app.example.test/section/detail/sec-42?comment_id=c-9"),
        "{text}"
    );
    let html = part(&mail, "text/html");
    assert!(
        html.contains("Weekly &lt;notes&gt; &amp; plans") && !html.contains("<notes>"),
        "{html}"
    );
    assert!(
        html.contains("https://app.example.test/section/detail/sec-42?comment_id=c-9"),
        "{html}"
    );

    // Exactly one message and one delivery record; the commenter (u-ann) got nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 1);
    let records = deliveries(&env, "u-olga").await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["status"], "sent");
    assert_eq!(
        records[0]["cause"],
        json!({"type": "event", "event": "SectionCommented", "event_id": "comment-c-9"})
    );
    assert_eq!(
        records[0]["title"],
        "New comment on “Weekly <notes> & plans”"
    );
    assert!(records[0]["provider_message_id"]
        .as_str()
        .is_some_and(|id| id.starts_with('<')));
    assert!(deliveries(&env, "u-ann").await.is_empty());
}

#[tokio::test]
async fn telegram_gets_the_exact_request_and_provider_errors_are_failures() {
    const TOKEN: &str = "7000000001:AAH-test-token_value";
    let bot = FakeTelegram::start(TOKEN).await;
    let base = bot.base_url.clone();
    let env = TestEnv::start_with(|s| s.endpoints.telegram_api_base = base).await;
    let user = "u-tom";
    let source = id_of(
        &env,
        user,
        "/sources",
        json!({"name": "Bot", "kind": "telegram", "config": {"bot_token": TOKEN}}),
    )
    .await;
    let target = id_of(&env, user, "/targets", json!({"name": "Team", "kind": "telegram", "config": {"chat_id": -1001234567890_i64, "message_thread_id": 7}})).await;
    id_of(
        &env,
        user,
        "/tasks",
        json!({
            "title": "Updates", "source_id": source, "target_id": target,
            "trigger": {"type": "event", "event": "SectionUpdated"},
            "content": {"type": "template", "template": "section_updated"}
        }),
    )
    .await;

    let event = |id: &str| {
        serde_json::from_value::<notify_domain::EventEnvelope>(json!({
            "id": format!("eb-{id}"), "detail-type": "SectionUpdated", "source": "knowledge.app",
            "detail": {"event_id": id, "section": {"id": "s1", "title": "Rust & <Go>"},
                       "actor": {"id": "u-x", "name": "Xi"}, "recipients": [{"user_id": user, "role": "subscriber"}]}
        }))
        .unwrap()
    };
    // Delivered directly by a rule (no SQS).
    let direct = serde_json::to_value(event("upd-1")).unwrap();
    notify_events::handle(&env.dispatcher, None, notify_testkit::deadline(), direct)
        .await
        .unwrap();
    let requests = bot.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0],
        json!({
            "chat_id": "-1001234567890",
            "message_thread_id": 7,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
            "text": "<b>“Rust &amp; &lt;Go&gt;” was updated</b>\n\nXi updated a section you subscribe to, “Rust &amp; &lt;Go&gt;”.\n\n<a href=\"https://app.example.test/section/detail/s1\">View section</a>"
        })
    );

    // "chat not found" with HTTP 400: a failed delivery with the provider's code, not a retry.
    bot.script([BotReply::Error {
        code: 400,
        description: "Bad Request: chat not found".into(),
        retry_after: None,
    }]);
    notify_events::handle(
        &env.dispatcher,
        None,
        notify_testkit::deadline(),
        serde_json::to_value(event("upd-2")).unwrap(),
    )
    .await
    .unwrap();
    let records = deliveries(&env, user).await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["status"], "failed", "{records:?}");
    assert_eq!(records[0]["provider_code"], "400");
    assert_eq!(
        records[0]["provider_message"],
        "Bad Request: chat not found"
    );
    assert_eq!(records[1]["status"], "sent");

    // 429: the event is handed back for a retry, and the retry sends it once.
    bot.script([BotReply::Error {
        code: 429,
        description: "Too Many Requests: retry after 35".into(),
        retry_after: Some(35),
    }]);
    let first = notify_events::handle(
        &env.dispatcher,
        None,
        notify_testkit::deadline(),
        serde_json::to_value(event("upd-3")).unwrap(),
    )
    .await;
    assert!(
        matches!(first, Err(notify_events::EventsError::Retry(_))),
        "{first:?}"
    );
    notify_events::handle(
        &env.dispatcher,
        None,
        notify_testkit::deadline(),
        serde_json::to_value(event("upd-3")).unwrap(),
    )
    .await
    .unwrap();
    notify_events::handle(
        &env.dispatcher,
        None,
        notify_testkit::deadline(),
        serde_json::to_value(event("upd-3")).unwrap(),
    )
    .await
    .unwrap();
    let texts: Vec<Value> = bot
        .requests()
        .into_iter()
        .map(|r| r["text"].clone())
        .collect();
    assert_eq!(
        texts.len(),
        4,
        "upd-1, upd-2, upd-3 refused with 429, upd-3 resent; the third handling is a duplicate"
    );
    let records = deliveries(&env, user).await;
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["status"], "sent");
    assert_eq!(records[0]["attempts"], 2);
}

#[tokio::test]
async fn a_malformed_record_is_dead_lettered_without_holding_up_the_batch() {
    let sink = SmtpSink::start();
    let env = TestEnv::start().await;
    let pipe = pipeline::create(&env.aws, &format!("bus-{}", &env.table[12..24])).await;
    email_task(
        &env,
        &sink,
        "u-pia",
        "pia@example.test",
        "SectionSubscribed",
        "section_subscribed",
    )
    .await;

    // Missing section title, and a recipient role that does not exist.
    pipeline::put_event(
        &env.aws,
        &pipe.bus,
        "SectionSubscribed",
        &json!({"section": {"id": "s"}, "recipients": [{"user_id": "u-pia", "role": "owner"}]}),
    )
    .await;
    pipeline::put_event(&env.aws, &pipe.bus, "SectionSubscribed", &json!({
        "event_id": "sub-1", "section": {"id": "s2", "title": "Garden"}, "actor": {"id": "u-z", "name": "Zed"},
        "recipients": [{"user_id": "u-pia", "role": "member"}]
    })).await;

    let sqs = aws_sdk_sqs::Client::new(&env.aws);
    let dead_letters = SqsDeadLetters::new(sqs.clone(), pipe.dlq_url.clone());
    let mut polled = pipeline::Polled::default();
    for _ in 0..10 {
        let p = poll_once(
            &env.aws,
            &pipe.queue_url,
            &env.dispatcher,
            Some(&dead_letters),
            1,
        )
        .await;
        polled.received += p.received;
        polled.failed += p.failed;
        if polled.received >= 2 {
            break;
        }
    }
    assert_eq!(
        polled,
        pipeline::Polled {
            received: 2,
            failed: 0
        }
    );
    let mail = sink.next_message(Duration::from_secs(10));
    assert!(mail.contains("Garden"));

    let parked = sqs
        .receive_message()
        .queue_url(&pipe.dlq_url)
        .message_attribute_names("All")
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(parked.len(), 1);
    let reason = parked[0].message_attributes().unwrap()["refused_because"]
        .string_value()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("owner") || reason.contains("title"),
        "{reason}"
    );
    let body: Value = serde_json::from_str(parked[0].body().unwrap()).unwrap();
    assert_eq!(body["detail"]["section"]["id"], "s");

    // Without a dead-letter queue configured, the bad record is reported as a batch failure.
    let batch: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_value(json!({"Records": [
            {"messageId": "m-bad", "body": "{not json", "eventSource": "aws:sqs"},
        ]}))
        .unwrap();
    let response =
        notify_events::handle_sqs(&env.dispatcher, None, notify_testkit::deadline(), batch).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(response.batch_item_failures[0].item_identifier, "m-bad");
}

/// Records requested waits instead of spending them.
#[derive(Default)]
struct RecordingSleeper(std::sync::Mutex<Vec<Duration>>);

#[async_trait::async_trait]
impl notify_service::dispatch::Sleeper for RecordingSleeper {
    async fn sleep(&self, duration: Duration) {
        self.0.lock().unwrap().push(duration);
    }
}

#[tokio::test]
async fn a_rate_limit_wait_that_fits_the_budget_is_waited_out_and_sent_once() {
    const TOKEN: &str = "7000000002:AAH-wait-token";
    let bot = FakeTelegram::start(TOKEN).await;
    let base = bot.base_url.clone();
    let mut env = TestEnv::start_with(|s| s.endpoints.telegram_api_base = base).await;
    let sleeper = std::sync::Arc::new(RecordingSleeper::default());
    env.dispatcher.sleeper = sleeper.clone();
    let user = "u-wait";
    let source = id_of(
        &env,
        user,
        "/sources",
        json!({"name": "Bot", "kind": "telegram", "config": {"bot_token": TOKEN}}),
    )
    .await;
    let target = id_of(
        &env,
        user,
        "/targets",
        json!({"name": "Team", "kind": "telegram", "config": {"chat_id": "-100555"}}),
    )
    .await;
    id_of(
        &env,
        user,
        "/tasks",
        json!({
            "title": "Updates", "source_id": source, "target_id": target,
            "trigger": {"type": "event", "event": "SectionUpdated"},
            "content": {"type": "template", "template": "section_updated"}
        }),
    )
    .await;
    let event = |id: &str| {
        json!({"id": id, "detail-type": "SectionUpdated", "detail": {
        "section": {"id": "s", "title": "T"}, "recipients": [{"user_id": user, "role": "member"}]}})
    };

    // 429 with retry_after 3, then success: waited 3 s (recorded, not spent), delivered once.
    bot.script([BotReply::Error {
        code: 429,
        description: "Too Many Requests: retry after 3".into(),
        retry_after: Some(3),
    }]);
    notify_events::handle(
        &env.dispatcher,
        None,
        notify_testkit::deadline(),
        event("w-1"),
    )
    .await
    .unwrap();
    assert_eq!(*sleeper.0.lock().unwrap(), vec![Duration::from_secs(3)]);
    assert_eq!(bot.requests().len(), 2);
    let records = deliveries(&env, user).await;
    assert_eq!(
        (records.len(), records[0]["status"].as_str()),
        (1, Some("sent"))
    );

    // A wait that does not fit the time left is not waited: the event goes back for a retry.
    bot.script([BotReply::Error {
        code: 429,
        description: "Too Many Requests: retry after 20".into(),
        retry_after: Some(20),
    }]);
    let short = std::time::Instant::now() + Duration::from_secs(10);
    let outcome = notify_events::handle(&env.dispatcher, None, short, event("w-2")).await;
    assert!(
        matches!(outcome, Err(notify_events::EventsError::Retry(_))),
        "{outcome:?}"
    );
    assert_eq!(sleeper.0.lock().unwrap().len(), 1, "no second wait");
}

#[tokio::test]
async fn an_event_put_again_is_one_entry_of_the_daily_summary_and_never_in_the_future() {
    let env = TestEnv::start().await;
    let user = "summary-once";
    let put = |time: &str| {
        json!({
            "id": format!("eb-{time}"), "detail-type": "SectionCommented", "source": "knowledge.app",
            "time": time,
            "detail": commented("again-1", json!([{"user_id": user, "role": "creator"}]))
        })
    };
    // The same event id put twice, minutes apart, as an upstream retry would (times in the
    // past, whole seconds, so the entry keeps the first one exactly).
    let first = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() - 600, 0).unwrap();
    let second = first + chrono::Duration::seconds(275);
    for time in [first, second] {
        let time = time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        notify_events::handle(
            &env.dispatcher,
            None,
            notify_testkit::deadline(),
            put(&time),
        )
        .await
        .unwrap();
    }
    let to = chrono::Utc::now();
    let items = env
        .dispatcher
        .activity
        .activity_between(user, to - chrono::Duration::hours(24), to, 100)
        .await
        .unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].at, first);

    // An event from a clock running years ahead is recorded at the time it arrived.
    let before = chrono::Utc::now();
    let mut future = put("9999-12-31T23:59:59Z");
    future["detail"]["event_id"] = json!("from-the-future");
    notify_events::handle(&env.dispatcher, None, notify_testkit::deadline(), future)
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let items = env
        .dispatcher
        .activity
        .activity_between(user, before - chrono::Duration::seconds(1), now, 100)
        .await
        .unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(items[0].at >= before && items[0].at <= now, "{items:?}");
}

#[tokio::test]
async fn a_late_finisher_cannot_shorten_the_lease_of_the_worker_that_took_its_claim_over() {
    use notify_domain::{Claim, ClaimEnd, Delivery, DeliveryCause, DeliveryStatus};
    let env = TestEnv::start().await;
    let store = &env.dispatcher.deliveries;
    let now = chrono::Utc::now();
    let pending = Delivery {
        id: "dlv-late".into(),
        user_id: "late-user".into(),
        task_id: "t".into(),
        source_id: "s".into(),
        target_id: "g".into(),
        kind: notify_domain::ChannelKind::Telegram,
        cause: DeliveryCause::Event {
            event: notify_domain::SectionEventName::SectionUpdated,
            event_id: "e-late".into(),
        },
        status: DeliveryStatus::Pending,
        provider_code: None,
        provider_message: None,
        provider_message_id: None,
        title: "t".into(),
        body: "b".into(),
        link: None,
        cover_url: None,
        attempts: 0,
        read: false,
        created_at: now,
        updated_at: now,
    };
    let key = "event:e-late:t";
    let claim = |lease_secs: i64| {
        let pending = pending.clone();
        async move {
            store
                .claim_delivery(
                    key,
                    &pending,
                    chrono::Utc::now() + chrono::Duration::seconds(lease_secs),
                )
                .await
                .unwrap()
        }
    };
    // A claims with a 1 s lease and stalls; B takes the claim over once that has run out.
    let a_lease = chrono::Utc::now() + chrono::Duration::seconds(1);
    let granted = store.claim_delivery(key, &pending, a_lease).await.unwrap();
    assert!(matches!(granted, Claim::Granted(_)), "{granted:?}");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert!(matches!(claim(60).await, Claim::Granted(_)));

    // A wakes up and ends its attempt as retryable: due again in a second, it says.
    let mut failed = pending.clone();
    failed.status = DeliveryStatus::Failed;
    failed.provider_code = Some("A-late".into());
    store
        .finish_delivery(
            key,
            &failed,
            a_lease,
            ClaimEnd::RetryAt(chrono::Utc::now() + chrono::Duration::seconds(1)),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    // B's lease stands: nobody else may take the claim, and B's record is not A's.
    assert!(matches!(claim(60).await, Claim::InProgress));
    let record = store
        .get_delivery("late-user", "dlv-late")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(
        record.provider_code.as_deref(),
        Some("A-late"),
        "{record:?}"
    );
}
