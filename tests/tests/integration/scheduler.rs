//! The scheduler tick against moto: due slots fire exactly once, even with overlapping
//! invocations; saving a task never fires it; missed slots are caught up or skipped.
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use notify_testkit::fakes::telegram::{BotReply, FakeTelegram};
use notify_testkit::smtp::SmtpSink;
use notify_testkit::TestEnv;
use serde_json::{json, Value};

async fn scheduled_task(
    env: &TestEnv,
    sink: &SmtpSink,
    user: &str,
    cron: &str,
) -> (String, DateTime<Utc>) {
    let source = env.call("POST", "/sources", Some(user), Some(json!({
        "name": "SMTP", "kind": "email",
        "config": {"host": "127.0.0.1", "port": sink.port, "username": "n@example.test", "password": "pw", "tls": "none"}
    }))).await.body["id"].as_str().unwrap().to_string();
    let target = env.call("POST", "/targets", Some(user), Some(json!({"name": "Me", "kind": "email", "config": {"email": format!("{user}@example.test")}})))
        .await.body["id"].as_str().unwrap().to_string();
    let reply = env
        .call(
            "POST",
            "/tasks",
            Some(user),
            Some(json!({
                "title": "Summary", "source_id": source, "target_id": target,
                "trigger": {"type": "schedule", "cron": cron, "timezone": "UTC"},
                "content": {"type": "template", "template": "daily_summary"}
            })),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.raw);
    let next: DateTime<Utc> = serde_json::from_value(reply.body["next_fire_at"].clone()).unwrap();
    (reply.body["id"].as_str().unwrap().to_string(), next)
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

async fn records(env: &TestEnv, user: &str) -> Vec<Value> {
    env.call("GET", "/deliveries?limit=100", Some(user), None)
        .await
        .body["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn overlapping_ticks_fire_each_due_slot_once() {
    let sink = SmtpSink::start();
    let env = TestEnv::start().await;
    // Hourly, so the three tasks share their first slot (unless the test straddles an hour).
    let mut slots = Vec::new();
    for user in ["s-ann", "s-ben", "s-cai"] {
        slots.push(scheduled_task(&env, &sink, user, "0 * * * *").await.1);
    }
    slots.dedup();
    assert_eq!(
        slots.len(),
        1,
        "the tasks were created across an hour boundary; run again"
    );
    let slot = slots[0];

    // Saving never fires: just before the first slot there is nothing due.
    let before = env
        .dispatcher
        .tick(slot - chrono::Duration::seconds(1), deadline())
        .await
        .unwrap();
    assert_eq!((before.due, before.sent), (0, 0), "{before:?}");

    let at = slot + chrono::Duration::seconds(5);
    let (a, b) = tokio::join!(
        env.dispatcher.tick(at, deadline()),
        env.dispatcher.tick(at, deadline())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.sent + b.sent, 3, "{a:?} {b:?}");
    // A third, late invocation for the same minute finds nothing left to do.
    let again = env.dispatcher.tick(at, deadline()).await.unwrap();
    assert_eq!(again.sent, 0, "{again:?}");

    for _ in 0..3 {
        sink.next_message(Duration::from_secs(10));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 3);
    for user in ["s-ann", "s-ben", "s-cai"] {
        let r = records(&env, user).await;
        assert_eq!(r.len(), 1, "{user}: {r:?}");
        assert_eq!(r[0]["status"], "sent");
        assert_eq!(
            r[0]["title"],
            format!("Daily Summary for {}", slot.format("%Y-%m-%d"))
        );
        assert_eq!(r[0]["cause"]["slot"], json!(slot));
    }
    // The task moved on to the following hour.
    let tasks = env.call("GET", "/tasks", Some("s-ann"), None).await;
    let next: DateTime<Utc> =
        serde_json::from_value(tasks.body["items"][0]["next_fire_at"].clone()).unwrap();
    assert_eq!(next, slot + chrono::Duration::hours(1));
}

#[tokio::test]
async fn missed_slots_inside_the_window_are_sent_once_and_older_ones_skipped() {
    let sink = SmtpSink::start();
    let env = TestEnv::start().await;
    // Hourly, and the scheduler was down for 3 hours and 10 minutes after the first slot.
    let (_, first) = scheduled_task(&env, &sink, "s-dee", "0 * * * *").await;
    let now = first + chrono::Duration::minutes(190);
    // The window (15 min by default) starts at first+2h55m: the slots first, +1h and +2h are
    // older (one skipped record, then a jump), first+3h is inside it and is sent.
    let report = env.dispatcher.tick(now, deadline()).await.unwrap();
    assert_eq!((report.sent, report.skipped), (1, 1), "{report:?}");
    let r = records(&env, "s-dee").await;
    assert_eq!(r.len(), 2);
    let statuses: Vec<&str> = r.iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["sent", "skipped"], "newest first");
    assert_eq!(
        r[0]["cause"]["slot"],
        json!(first + chrono::Duration::hours(3))
    );
    assert_eq!(r[1]["cause"]["slot"], json!(first));
    let task = &env.call("GET", "/tasks", Some("s-dee"), None).await.body["items"][0];
    let next: DateTime<Utc> = serde_json::from_value(task["next_fire_at"].clone()).unwrap();
    assert_eq!(next, first + chrono::Duration::hours(4));

    // Every minute, 10 minutes behind: all 10 missed slots (inside the window) go out once.
    let (_, slot) = scheduled_task(&env, &sink, "s-eve", "* * * * *").await;
    let now = slot + chrono::Duration::minutes(9) + chrono::Duration::seconds(30);
    let report = env.dispatcher.tick(now, deadline()).await.unwrap();
    assert_eq!(report.sent, 10, "{report:?}");
    let again = env.dispatcher.tick(now, deadline()).await.unwrap();
    assert_eq!(again.sent, 0);
    assert_eq!(records(&env, "s-eve").await.len(), 10);
}

#[tokio::test]
async fn disabling_a_task_stops_it_and_reenabling_never_fires_a_past_slot() {
    let sink = SmtpSink::start();
    let env = TestEnv::start().await;
    let (id, slot) = scheduled_task(&env, &sink, "s-fay", "* * * * *").await;
    let off = env
        .call(
            "PATCH",
            &format!("/tasks/{id}"),
            Some("s-fay"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.raw);
    let report = env
        .dispatcher
        .tick(slot + chrono::Duration::seconds(5), deadline())
        .await
        .unwrap();
    assert_eq!(report.due, 0);
    let on = env
        .call(
            "PATCH",
            &format!("/tasks/{id}"),
            Some("s-fay"),
            Some(json!({"enabled": true})),
        )
        .await;
    let next: DateTime<Utc> = serde_json::from_value(on.body["next_fire_at"].clone()).unwrap();
    assert!(
        next > Utc::now(),
        "re-enabling schedules from now, not from the past"
    );
}

#[tokio::test]
async fn a_tick_reads_the_due_tasks_not_all_tasks() {
    use futures::StreamExt;
    use notify_domain::{ConfigStore, Content, Task, TemplateId, Trigger};
    let env = TestEnv::start().await;
    let store = notify_aws::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&env.aws),
        env.table.clone(),
        chrono::Duration::days(1),
    );
    let now = Utc::now();
    let task = |i: usize| {
        let due = i < 100;
        Task {
            id: format!("bulk-{i:05}"),
            user_id: format!("bulk-user-{}", i % 50),
            title: "bulk".into(),
            enabled: true,
            source_id: "s".into(),
            target_id: "t".into(),
            kind: notify_domain::ChannelKind::Email,
            trigger: Trigger::Schedule {
                cron: "0 9 * * *".into(),
                timezone: "UTC".into(),
                jitter_minutes: 0,
            },
            content: Content::Template {
                template: TemplateId::DailySummary,
            },
            language: Default::default(),
            next_fire_at: Some(if due {
                now - chrono::Duration::seconds(30)
            } else {
                now + chrono::Duration::hours(20)
            }),
            created_at: now,
            updated_at: now,
            version: 1,
        }
    };
    // Stored with BatchWriteItem (25 per request), with the same key and index attributes
    // the store writes for an enabled scheduled task.
    let dynamo = aws_sdk_dynamodb::Client::new(&env.aws);
    let batches: Vec<Vec<aws_sdk_dynamodb::types::WriteRequest>> = (0..10_000)
        .map(|i| {
            let t = task(i);
            let mut item: std::collections::HashMap<
                String,
                aws_sdk_dynamodb::types::AttributeValue,
            > = serde_dynamo::to_item(&t).unwrap();
            let s = aws_sdk_dynamodb::types::AttributeValue::S;
            item.insert("pk".into(), s(notify_aws::schema::user_pk(&t.user_id)));
            item.insert("sk".into(), s(format!("TASK#{}", t.id)));
            item.insert(
                "due_shard".into(),
                s(notify_aws::schema::due_shard_for(&t.id)),
            );
            item.insert(
                "due_at".into(),
                aws_sdk_dynamodb::types::AttributeValue::N(
                    t.next_fire_at.unwrap().timestamp().to_string(),
                ),
            );
            aws_sdk_dynamodb::types::WriteRequest::builder()
                .put_request(
                    aws_sdk_dynamodb::types::PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .collect::<Vec<_>>()
        .chunks(25)
        .map(|c| c.to_vec())
        .collect();
    futures::stream::iter(batches)
        .map(|batch| {
            let dynamo = dynamo.clone();
            let table = env.table.clone();
            async move {
                let out = dynamo
                    .batch_write_item()
                    .request_items(table, batch)
                    .send()
                    .await
                    .unwrap();
                assert!(out.unprocessed_items.is_none_or(|u| u.is_empty()));
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;

    let due = store.due_tasks(now, 500).await.unwrap();
    assert_eq!(due.len(), 100);
    assert!(due.iter().all(|t| t.id.as_str() < "bulk-00100"));
    let (queries, items) = store.due_reads().snapshot();
    // One query per index shard; DynamoDB read exactly the 100 due items of 10 000 stored.
    assert_eq!(
        (queries, items),
        (notify_aws::schema::DUE_SHARDS as u64, 100)
    );
    // Slot retries are one more query on the same index, reading only claims due for a retry.
    use notify_domain::DeliveryLog;
    assert!(store.due_slot_retries(now, 500).await.unwrap().is_empty());
    assert_eq!(
        store.due_reads().snapshot(),
        (notify_aws::schema::DUE_SHARDS as u64 + 1, 100)
    );
}

#[tokio::test]
async fn jitter_spreads_a_minute_over_the_window_with_a_stable_offset_per_task() {
    let sink = SmtpSink::start();
    let env = TestEnv::start().await;
    let user = "s-jit";
    let source = env.call("POST", "/sources", Some(user), Some(json!({"name": "SMTP", "kind": "email",
        "config": {"host": "127.0.0.1", "port": sink.port, "username": "n@example.test", "password": "pw", "tls": "none"}}))).await.body["id"].clone();
    let target = env
        .call(
            "POST",
            "/targets",
            Some(user),
            Some(json!({"name": "Me", "kind": "email", "config": {"email": "j@example.test"}})),
        )
        .await
        .body["id"]
        .clone();
    let too_much = env.call("POST", "/tasks", Some(user), Some(json!({"title": "x", "source_id": source, "target_id": target,
        "trigger": {"type": "schedule", "cron": "0 9 * * *", "jitter_minutes": 6}, "content": {"type": "template", "template": "daily_summary"}}))).await;
    assert_eq!(
        (too_much.status.as_u16(), too_much.body["field"].as_str()),
        (422, Some("trigger.jitter_minutes"))
    );

    let mut offsets = std::collections::BTreeSet::new();
    let dynamo = aws_sdk_dynamodb::Client::new(&env.aws);
    for _ in 0..40 {
        let task = env.call("POST", "/tasks", Some(user), Some(json!({"title": "x", "source_id": source, "target_id": target,
            "trigger": {"type": "schedule", "cron": "0 9 * * *", "jitter_minutes": 5}, "content": {"type": "template", "template": "daily_summary"}}))).await;
        assert_eq!(task.status, 201, "{}", task.raw);
        let slot: DateTime<Utc> =
            serde_json::from_value(task.body["next_fire_at"].clone()).unwrap();
        let item = dynamo
            .get_item()
            .table_name(&env.table)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("USER#{user}")),
            )
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!(
                    "TASK#{}",
                    task.body["id"].as_str().unwrap()
                )),
            )
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        let due_at: i64 = item["due_at"].as_n().unwrap().parse().unwrap();
        let offset = due_at - slot.timestamp();
        assert!(
            (0..300).contains(&offset),
            "offset {offset} outside the 5-minute window"
        );
        offsets.insert(offset);
    }
    assert!(
        offsets.len() >= 30,
        "40 tasks got only {} distinct offsets",
        offsets.len()
    );
}

#[tokio::test]
async fn the_daily_summary_reports_the_users_day_and_leads_with_the_published_text() {
    let sink = SmtpSink::start();
    let env = TestEnv::start().await;
    let user = "s-sum";
    let (_, slot) = scheduled_task(&env, &sink, user, "0 9 * * *").await;
    let event = |id: &str, name: &str, title: &str, at: DateTime<Utc>| {
        let mut detail = json!({"section": {"id": format!("sec-{title}"), "title": title}, "actor": {"id": "u-ann", "name": "Ann"},
                                "recipients": [{"user_id": user, "role": "creator"}]});
        if name == "SectionCommented" {
            detail["comment"] = json!({"id": "c1", "text": "hi"});
        }
        json!({"id": id, "detail-type": name, "time": at, "detail": detail})
    };
    // Two inside the 24 hours before the slot, one older (not counted).
    for (id, name, title, hours_before) in [
        ("a1", "SectionCommented", "Rust", 2),
        ("a2", "SectionUpdated", "Go", 5),
        ("a3", "SectionUpdated", "Old", 30),
    ] {
        let at = slot - chrono::Duration::hours(hours_before);
        notify_events::handle(
            &env.dispatcher,
            None,
            notify_testkit::deadline(),
            event(id, name, title, at),
        )
        .await
        .unwrap();
    }
    let published = json!({"id": "p1", "detail-type": "DailySummaryPublished",
        "detail": {"user_id": user, "date": slot.format("%Y-%m-%d").to_string(), "summary": "You saved 4 documents today."}});
    notify_events::handle(&env.dispatcher, None, notify_testkit::deadline(), published)
        .await
        .unwrap();

    let report = env
        .dispatcher
        .tick(slot + chrono::Duration::seconds(3), deadline())
        .await
        .unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    let raw = sink.next_message(Duration::from_secs(10));
    let mail = mailparse::parse_mail(raw.as_bytes()).unwrap();
    // E-mail lines end in CRLF on the wire.
    let text = mail
        .subparts
        .iter()
        .find(|p| p.ctype.mimetype == "text/plain")
        .unwrap()
        .get_body()
        .unwrap()
        .replace("\r\n", "\n");
    let at = |h: i64| {
        (slot - chrono::Duration::hours(h))
            .format("%m-%d %H:%M")
            .to_string()
    };
    let expected = format!(
        "You saved 4 documents today.\n\nIn the last 24 hours: 1 comment, 1 update.\n\n• Go: 1 notification\n• Rust: 1 notification\n\nLatest:\n\
         • {} Ann commented on “Rust” — https://app.example.test/section/detail/sec-Rust?comment_id=c1\n\
         • {} Ann updated “Go” — https://app.example.test/section/detail/sec-Go",
        at(2),
        at(5)
    );
    assert!(
        text.contains(&expected),
        "expected:\n{expected:?}\n\ngot:\n{text:?}"
    );
    assert!(!text.contains("Old"));
}

// ---------------------------------------------------------------- retries of scheduled slots

const BOT_TOKEN: &str = "123456:retry-test-token";

/// A fake Bot API and a service sending to it, with settings adjusted by `adjust`.
async fn with_bot(adjust: impl FnOnce(&mut notify_service::Settings)) -> (FakeTelegram, TestEnv) {
    let bot = FakeTelegram::start(BOT_TOKEN).await;
    let base = bot.base_url.clone();
    let env = TestEnv::start_with(|s| {
        s.endpoints.telegram_api_base = base;
        adjust(s);
    })
    .await;
    (bot, env)
}

/// A Telegram source and target and a task on `cron` (UTC) with custom content; returns the
/// task id and its first slot.
async fn telegram_task(env: &TestEnv, user: &str, cron: &str) -> (String, DateTime<Utc>) {
    let id = |reply: notify_testkit::env::Reply| {
        assert_eq!(reply.status, 201, "{}", reply.raw);
        reply.body["id"].as_str().unwrap().to_string()
    };
    let source = id(env
        .call(
            "POST",
            "/sources",
            Some(user),
            Some(json!({"name": "Bot", "kind": "telegram", "config": {"bot_token": BOT_TOKEN}})),
        )
        .await);
    let target = id(env
        .call(
            "POST",
            "/targets",
            Some(user),
            Some(json!({"name": "Team", "kind": "telegram", "config": {"chat_id": "-100777"}})),
        )
        .await);
    let reply = env
        .call(
            "POST",
            "/tasks",
            Some(user),
            Some(json!({
                "title": "Hourly", "source_id": source, "target_id": target,
                "trigger": {"type": "schedule", "cron": cron, "timezone": "UTC"},
                "content": {"type": "custom", "title": "Stand-up", "body": "Time to write your notes."}
            })),
        )
        .await;
    let next: DateTime<Utc> = serde_json::from_value(reply.body["next_fire_at"].clone()).unwrap();
    (id(reply), next)
}

fn bad_gateway() -> BotReply {
    BotReply::Error {
        code: 502,
        description: "Bad Gateway".into(),
        retry_after: None,
    }
}

/// Long enough for a lease or retry wait of `secs` seconds to have run out (the store keeps
/// lease ends in whole seconds, rounded up).
async fn wait_out(secs: u64) {
    tokio::time::sleep(Duration::from_millis(secs * 1000 + 1100)).await;
}

#[tokio::test]
async fn a_slot_that_fails_retryably_is_sent_by_a_later_tick_once_its_wait_is_over() {
    let (bot, env) = with_bot(|s| {
        s.slot_retry.attempts = 3;
        // Long enough for the checks below to run before the wait is over, even on a busy
        // machine.
        s.slot_retry.first_wait = chrono::Duration::seconds(4);
    })
    .await;
    let user = "r-ada";
    let (_, slot) = telegram_task(&env, user, "0 * * * *").await;
    bot.script([
        bad_gateway(),
        BotReply::Error {
            code: 500,
            description: "Internal Server Error".into(),
            retry_after: None,
        },
    ]);
    let at = slot + chrono::Duration::seconds(5);

    let first = env.dispatcher.tick(at, deadline()).await.unwrap();
    assert_eq!((first.sent, first.retrying), (0, 1), "{first:?}");
    let r = records(&env, user).await;
    assert_eq!(r.len(), 1);
    assert_eq!(
        (&r[0]["status"], &r[0]["provider_code"], &r[0]["attempts"]),
        (&json!("failed"), &json!("502"), &json!(1))
    );

    // Its claim is due again when its wait is over, not before.
    let due_now = || env.dispatcher.deliveries.due_slot_retries(Utc::now(), 10);
    assert_eq!(due_now().await.unwrap().len(), 0);
    // A tick whose clock runs ahead finds it, but may not take it before the wait is over.
    let early = env.dispatcher.tick(at, deadline()).await.unwrap();
    assert_eq!(
        (early.retries_due, early.already_claimed, early.sent),
        (1, 1, 0),
        "{early:?}"
    );
    assert_eq!(bot.requests().len(), 1);

    wait_out(4).await;
    assert_eq!(due_now().await.unwrap().len(), 1);
    let second = env.dispatcher.tick(at, deadline()).await.unwrap();
    assert_eq!((second.retries_due, second.retrying), (1, 1), "{second:?}");
    // The second wait is twice the first.
    wait_out(8).await;
    let third = env.dispatcher.tick(at, deadline()).await.unwrap();
    assert_eq!((third.retries_due, third.sent), (1, 1), "{third:?}");
    let again = env.dispatcher.tick(at, deadline()).await.unwrap();
    assert_eq!((again.retries_due, again.sent), (0, 0), "{again:?}");

    // Three sends of the same message; one record, sent on the third attempt.
    let sent = bot.requests();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|body| body == &sent[0]), "{sent:?}");
    assert_eq!(
        sent[0]["text"],
        "<b>Stand-up</b>\n\nTime to write your notes."
    );
    let r = records(&env, user).await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (&r[0]["status"], &r[0]["attempts"]),
        (&json!("sent"), &json!(3))
    );
    assert_eq!(r[0]["cause"]["slot"], json!(slot));
    // Retrying never moved the task: its next slot is still the following hour.
    let task = &env.call("GET", "/tasks", Some(user), None).await.body["items"][0];
    let next: DateTime<Utc> = serde_json::from_value(task["next_fire_at"].clone()).unwrap();
    assert_eq!(next, slot + chrono::Duration::hours(1));
}

#[tokio::test]
async fn a_slot_stops_being_retried_after_the_last_attempt_or_when_its_task_is_deleted() {
    let (bot, env) = with_bot(|s| {
        s.slot_retry.attempts = 2;
        s.slot_retry.first_wait = chrono::Duration::seconds(1);
    })
    .await;
    // Yearly, so both tasks share their slot (unless created across New Year).
    let (_, slot) = telegram_task(&env, "r-bo", "0 0 1 1 *").await;
    let (deleted_task, other_slot) = telegram_task(&env, "r-cy", "0 0 1 1 *").await;
    assert_eq!(slot, other_slot, "created across New Year; run again");
    bot.script([bad_gateway(), bad_gateway(), bad_gateway()]);
    let at = slot + chrono::Duration::seconds(5);

    let first = env.dispatcher.tick(at, deadline()).await.unwrap();
    assert_eq!(first.retrying, 2, "{first:?}");
    let reply = env
        .call(
            "DELETE",
            &format!("/tasks/{deleted_task}"),
            Some("r-cy"),
            None,
        )
        .await;
    assert_eq!(reply.status, 204, "{}", reply.raw);

    wait_out(1).await;
    // r-bo's second and last attempt fails for good; r-cy's task is gone, so nothing is sent.
    let second = env.dispatcher.tick(at, deadline()).await.unwrap();
    assert_eq!(
        (second.retries_due, second.failed, second.retrying),
        (2, 2, 0),
        "{second:?}"
    );
    assert_eq!(bot.requests().len(), 3, "two for r-bo, one for r-cy");
    wait_out(2).await;
    let after = env.dispatcher.tick(at, deadline()).await.unwrap();
    assert_eq!(after.retries_due, 0, "{after:?}");

    let bo = records(&env, "r-bo").await;
    assert_eq!(bo.len(), 1);
    assert_eq!(
        (
            &bo[0]["status"],
            &bo[0]["provider_code"],
            &bo[0]["attempts"]
        ),
        (&json!("failed"), &json!("502"), &json!(2))
    );
    let cy = records(&env, "r-cy").await;
    assert_eq!(cy.len(), 1);
    assert_eq!(
        (
            &cy[0]["status"],
            &cy[0]["provider_code"],
            &cy[0]["attempts"]
        ),
        (&json!("failed"), &json!("task_gone"), &json!(1))
    );
}

#[tokio::test]
async fn a_slot_whose_worker_died_after_claiming_it_is_sent_once_its_lease_runs_out() {
    let (bot, env) = with_bot(|s| s.lease = chrono::Duration::seconds(4)).await;
    let user = "r-dot";
    let (task_id, slot) = telegram_task(&env, user, "0 * * * *").await;
    // A worker claims the slot (moving the task on) and dies before sending.
    crash_after_claiming(&env, user, &task_id, slot, 4).await;

    let at = slot + chrono::Duration::seconds(5);
    // The task itself is no longer due; the claim is, but its lease is still running.
    let during = env.dispatcher.tick(at, deadline()).await.unwrap();
    assert_eq!(
        (
            during.due,
            during.retries_due,
            during.already_claimed,
            during.sent
        ),
        (0, 1, 1, 0),
        "{during:?}"
    );
    assert!(bot.requests().is_empty());

    wait_out(4).await;
    let after = env.dispatcher.tick(at, deadline()).await.unwrap();
    assert_eq!((after.retries_due, after.sent), (1, 1), "{after:?}");
    let again = env.dispatcher.tick(at, deadline()).await.unwrap();
    assert_eq!((again.retries_due, again.sent), (0, 0), "{again:?}");
    assert_eq!(bot.requests().len(), 1);
    let r = records(&env, user).await;
    assert_eq!(r.len(), 1, "{r:?}");
    // Two attempts: the one cut short by the crash, and the send.
    assert_eq!(
        (&r[0]["id"], &r[0]["status"], &r[0]["attempts"]),
        (&json!("dlv-crashed"), &json!("sent"), &json!(2))
    );
}

#[tokio::test]
async fn a_slow_send_is_never_taken_over_while_its_worker_is_still_running() {
    // A configured lease shorter than the provider takes to answer: the claim must still hold
    // for as long as the invocation that took it can run.
    let (bot, env) = with_bot(|s| s.lease = chrono::Duration::seconds(1)).await;
    let user = "r-gus";
    let (_, slot) = telegram_task(&env, user, "0 0 1 1 *").await;
    // The Bot API hangs: the client gives up after the provider timeout (5 s here).
    bot.script([BotReply::Hang]);
    let at = slot + chrono::Duration::seconds(5);
    let slow = env.dispatcher.tick(at, deadline());
    let meanwhile = async {
        wait_out(1).await; // past the configured lease, while the first send still waits
        env.dispatcher.tick(at, deadline()).await.unwrap()
    };
    let (slow, meanwhile) = tokio::join!(slow, meanwhile);
    let slow = slow.unwrap();
    assert_eq!((slow.due, slow.retrying), (1, 1), "{slow:?}");
    assert_eq!(
        (
            meanwhile.retries_due,
            meanwhile.already_claimed,
            meanwhile.sent
        ),
        (1, 1, 0),
        "{meanwhile:?}"
    );
    assert_eq!(bot.requests().len(), 1, "sent twice in parallel");
}

/// What a worker leaves behind when it dies right after claiming `slot`: the task moved on,
/// and a pending claim with a lease of `lease_secs`.
async fn crash_after_claiming(
    env: &TestEnv,
    user: &str,
    task_id: &str,
    slot: DateTime<Utc>,
    lease_secs: i64,
) {
    use notify_domain::{Delivery, DeliveryCause, DeliveryStatus};
    let task = env
        .dispatcher
        .config
        .get_task(user, task_id)
        .await
        .unwrap()
        .unwrap();
    let now = Utc::now();
    let pending = Delivery {
        id: "dlv-crashed".into(),
        user_id: user.into(),
        task_id: task.id.clone(),
        source_id: task.source_id.clone(),
        target_id: task.target_id.clone(),
        kind: task.kind,
        cause: DeliveryCause::Schedule { slot },
        status: DeliveryStatus::Pending,
        provider_code: None,
        provider_message: None,
        provider_message_id: None,
        title: "Stand-up".into(),
        body: "Time to write your notes.".into(),
        link: None,
        cover_url: None,
        attempts: 0,
        read: false,
        created_at: now,
        updated_at: now,
    };
    let notify_domain::Trigger::Schedule { cron, timezone, .. } = &task.trigger else {
        panic!("{task:?} is not scheduled");
    };
    let next = notify_domain::schedule::Schedule::parse(cron, timezone)
        .unwrap()
        .next_after(slot);
    let claim = env
        .dispatcher
        .deliveries
        .claim_schedule_slot(
            &task,
            slot,
            next,
            &pending,
            now + chrono::Duration::seconds(lease_secs),
        )
        .await
        .unwrap();
    assert!(
        matches!(claim, notify_domain::Claim::Granted(_)),
        "{claim:?}"
    );
}

#[tokio::test]
async fn a_slot_whose_worker_keeps_dying_is_given_up_after_the_last_attempt() {
    // One attempt in all: the one cut short by the crash.
    let (bot, env) = with_bot(|s| {
        s.lease = chrono::Duration::seconds(2);
        s.slot_retry.attempts = 1;
    })
    .await;
    let user = "r-eli";
    let (task_id, slot) = telegram_task(&env, user, "0 0 1 1 *").await;
    crash_after_claiming(&env, user, &task_id, slot, 2).await;
    wait_out(2).await;
    let tick = env
        .dispatcher
        .tick(slot + chrono::Duration::seconds(5), deadline())
        .await
        .unwrap();
    assert_eq!(
        (tick.retries_due, tick.failed, tick.sent),
        (1, 1, 0),
        "{tick:?}"
    );
    assert!(bot.requests().is_empty());
    let r = records(&env, user).await;
    assert_eq!(
        (&r[0]["status"], &r[0]["provider_code"], &r[0]["attempts"]),
        (&json!("failed"), &json!("retries_exhausted"), &json!(1))
    );
}

#[tokio::test]
async fn a_slot_left_pending_through_a_long_outage_is_skipped_like_a_missed_slot() {
    // Defaults: a 15-minute catch-up window and waits of 1 + 2 + 4 + 8 minutes.
    let (bot, env) = with_bot(|s| s.lease = chrono::Duration::seconds(2)).await;
    let user = "r-fay";
    let (task_id, slot) = telegram_task(&env, user, "0 0 1 1 *").await;
    crash_after_claiming(&env, user, &task_id, slot, 2).await;
    wait_out(2).await;
    // Back 31 minutes after the slot: one minute past the window plus the retry schedule.
    let tick = env
        .dispatcher
        .tick(slot + chrono::Duration::minutes(31), deadline())
        .await
        .unwrap();
    assert_eq!(
        (tick.retries_due, tick.skipped, tick.sent),
        (1, 1, 0),
        "{tick:?}"
    );
    assert!(bot.requests().is_empty());
    let r = records(&env, user).await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["status"], "skipped");
}
