//! The scheduler tick against moto: due slots fire exactly once, even with overlapping
//! invocations; saving a task never fires it; missed slots are caught up or skipped.
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
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
    let mut slot = None;
    for user in ["s-ann", "s-ben", "s-cai"] {
        let (_, next) = scheduled_task(&env, &sink, user, "* * * * *").await;
        slot = Some(next);
    }
    let slot = slot.unwrap();

    // Saving never fires: the slot is strictly in the future, so a tick now finds nothing.
    let now_report = env.dispatcher.tick(Utc::now(), deadline()).await.unwrap();
    assert_eq!(now_report.sent, 0);

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
    // The task moved on to the following minute.
    let tasks = env.call("GET", "/tasks", Some("s-ann"), None).await;
    let next: DateTime<Utc> =
        serde_json::from_value(tasks.body["items"][0]["next_fire_at"].clone()).unwrap();
    assert_eq!(next, slot + chrono::Duration::minutes(1));
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
