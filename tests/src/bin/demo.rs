//! Shows the service doing its job (`make demo`, with the local stack running): creates an
//! e-mail source, target and task through the HTTP API with a locally minted token, puts a
//! SectionCommented event on the EventBridge bus with PutEvents, waits for the e-mail to reach
//! the local SMTP server, and prints it with its delivery record.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api = env_or("NOTIFY_DEMO_API", "http://127.0.0.1:3000");
    let key = env_or(
        "NOTIFY_JWT_HS256_KEY",
        "local-development-key-not-for-production",
    );
    let smtp_port: u16 = env_or("SMTP_PORT", "2525").parse()?;
    let mail_dir = PathBuf::from(env_or("NOTIFY_DEMO_MAIL_DIR", ".local/mail"));
    let bus = env_or("NOTIFY_LOCAL_BUS", "notify-local");
    let user = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let token = notify_testkit::env::mint_token(&key, &user, 3600);
    let http = reqwest::Client::new();

    let post = |path: &'static str, body: Value| {
        let request = http
            .post(format!("{api}{path}"))
            .bearer_auth(&token)
            .json(&body);
        async move {
            let response = request.send().await?;
            let status = response.status();
            let body: Value = response.json().await?;
            if !status.is_success() {
                return Err(format!("POST {path} → {status}: {body}").into());
            }
            println!(
                "POST {path} → {status}  id={}",
                body["id"].as_str().unwrap_or("?")
            );
            Ok::<Value, Box<dyn std::error::Error>>(body)
        }
    };

    println!("== 1. Configure through the API as user {user}");
    let source = post("/sources", json!({
        "name": "Demo mailbox", "kind": "email",
        "config": {"host": "127.0.0.1", "port": smtp_port, "username": "notify@demo.test",
                   "password": "demo-smtp-authorization-code", "tls": "none", "sender_name": "Knowledge App"}
    })).await?;
    println!(
        "   the response says the password is set, without showing it: {}",
        source["secrets"]
    );
    let target = post(
        "/targets",
        json!({"name": "My inbox", "kind": "email", "config": {"email": "reader@demo.test"}}),
    )
    .await?;
    post("/tasks", json!({
        "title": "Comments on my sections", "source_id": source["id"], "target_id": target["id"],
        "trigger": {"type": "event", "event": "SectionCommented"},
        "content": {"type": "template", "template": "section_commented"}
    })).await?;

    let before = eml_files(&mail_dir);
    println!("\n== 2. The upstream app puts a SectionCommented event on the bus '{bus}'");
    let aws = notify_testkit::aws::moto_config().await;
    let detail = json!({
        "event_id": format!("demo-comment-{}", uuid::Uuid::new_v4()),
        "section": {"id": "rust-tips", "title": "Rust tips & <tricks>"},
        "actor": {"id": "user-ann", "name": "Ann"},
        "comment": {"id": "c-17", "text": "Great list! The part about lifetimes finally made sense to me."},
        "recipients": [{"user_id": user, "role": "creator"}, {"user_id": "user-ann", "role": "member"}]
    });
    println!("{}", serde_json::to_string_pretty(&detail)?);
    let event_id =
        notify_testkit::pipeline::put_event(&aws, &bus, "SectionCommented", &detail).await;
    println!("PutEvents → EventBridge id {event_id}");

    println!(
        "\n== 3. Waiting for the e-mail at the local SMTP server ({})",
        mail_dir.display()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let path = loop {
        if let Some(p) = eml_files(&mail_dir)
            .into_iter()
            .find(|p| !before.contains(p))
        {
            break p;
        }
        if Instant::now() > deadline {
            return Err(
                "no e-mail arrived within 60 s; is the local stack running (make up)?".into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let raw = std::fs::read(&path)?;
    let mail = mailparse::parse_mail(&raw)?;
    println!("-- {} --", path.display());
    use mailparse::MailHeaderMap;
    for header in ["Date", "From", "To", "Subject", "Message-ID"] {
        println!(
            "{header}: {}",
            mail.headers.get_first_value(header).unwrap_or_default()
        );
    }
    for part in &mail.subparts {
        println!("\n[{}]\n{}", part.ctype.mimetype, part.get_body()?.trim());
    }

    println!("\n== 4. The delivery record (GET /deliveries)");
    let deliveries: Value = http
        .get(format!("{api}/deliveries"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    println!("{}", serde_json::to_string_pretty(&deliveries["items"][0])?);
    Ok(())
}

fn eml_files(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default()
}
