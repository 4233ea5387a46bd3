//! Puts a section event on the local stack's bus, as the upstream app does with PutEvents:
//! `cargo run -q -p notify-testkit --bin put-event -- events/section-commented.json`, or the
//! event on standard input (`-`). The file is an EventBridge event as in `events/` (its
//! `detail-type` and `detail` are sent); `--to USER` replaces its recipients with that user as
//! the section's creator, and the detail gets a fresh `event_id` unless `--keep-id` is given.
use std::io::Read;

use serde_json::{json, Value};

const USAGE: &str =
    "usage: put-event [--to USER] [--keep-id] FILE|-   (an EventBridge event as in events/)";

#[tokio::main]
async fn main() -> Result<(), String> {
    let mut to = None;
    let mut keep_id = false;
    let mut file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--to" => to = Some(args.next().ok_or(USAGE)?),
            "--keep-id" => keep_id = true,
            "-h" | "--help" => return Err(USAGE.into()),
            _ if file.is_none() => file = Some(arg),
            _ => return Err(USAGE.into()),
        }
    }
    let file = file.ok_or(USAGE)?;
    let text = if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("reading standard input: {e}"))?;
        text
    } else {
        std::fs::read_to_string(&file).map_err(|e| format!("reading {file}: {e}"))?
    };
    let event: Value = serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
    let detail_type = event["detail-type"]
        .as_str()
        .ok_or_else(|| format!("{file}: no \"detail-type\""))?
        .to_string();
    let mut detail = event
        .get("detail")
        .cloned()
        .filter(Value::is_object)
        .ok_or_else(|| format!("{file}: no \"detail\" object"))?;
    if let Some(user) = to {
        detail["recipients"] = json!([{"user_id": user, "role": "creator"}]);
    }
    if !keep_id {
        detail["event_id"] = json!(format!("local-{}", uuid::Uuid::new_v4()));
    }
    let bus = std::env::var("NOTIFY_LOCAL_BUS").unwrap_or_else(|_| "notify-local".into());
    notify_testkit::aws::require_moto().await;
    let aws = notify_testkit::aws::moto_config().await;
    let id = notify_testkit::pipeline::put_event(&aws, &bus, &detail_type, &detail).await;
    println!(
        "put {detail_type} (event_id {}) on bus {bus}: EventBridge id {id}",
        detail["event_id"].as_str().unwrap_or_default()
    );
    Ok(())
}
