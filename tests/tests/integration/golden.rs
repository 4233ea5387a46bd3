//! Golden files: every built-in template × channel × language, rendered with
//! `Templates::render` and then `Channel::preview`, compared exactly with
//! `tests/golden/{template}.{channel}.{lang}.txt`.
//!
//! Run with `UPDATE_GOLDEN=1` to (re)write the files (the test then passes); review the diff by
//! eye before committing it. Without it, a missing, different or stale file fails the test.
//!
//! File format: for each part of the preview, a `--- {kind} ---` line and its body: text bodies
//! (the e-mail parts) as they are, JSON bodies pretty-printed. Notes come first as `# note:` lines.
//! Channels: `email_text` (headers and the text/plain part), `email_html` (the text/html part),
//! `telegram`, `feishu`, `dingtalk`, `apns` (`apns_sandbox` renders the same payload).
//!
//! No network is used: previews never send, and the registry is built with the default
//! endpoints. Every config value is a plausible fake; secrets are passed too, and the test checks
//! that none of them (nor the webhook access tokens or the device token) shows in a preview.
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use notify_channels::{ChannelRegistry, Endpoints, Preview, PreviewKind, SendRequest};
use notify_domain::event::{Actor, CommentRef, SectionEvent, SectionRef};
use notify_domain::schedule::Schedule;
use notify_domain::{
    ActivityItem, ChannelKind, Content, Language, Message, RecipientRole, SecretBundle,
    SecretValue, SectionEventName, TemplateId,
};
use notify_service::templates::DailySummaryData;
use notify_service::{RenderInput, Templates};
use serde_json::{json, Map, Value};

const BOT_TOKEN: &str = "7012345678:AAHk3xQe9vR2mZ8pL4tY6wN1cB5dF7gJ0sU";
const FEISHU_HOOK_TOKEN: &str = "3f9a1c2e-8b4d-4e6f-a0b2-c4d6e8f0a1b3";
const FEISHU_SIGN: &str = "gH7kL2mN9pQ4rS6tV8wX1y";
const FEISHU_APP_SECRET: &str = "Zq8Wx3Ec6Rv9Tb2Yn5Um7Ik0Ol4Pa1Sd";
const DINGTALK_ACCESS_TOKEN: &str =
    "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const DINGTALK_SIGN: &str = "SECf0e1d2c3b4a5968778695a4b3c2d1e0f0e1d2c3b4a5968778695a4b3c2d1e0f";
const DEVICE_TOKEN: &str = "8c1e4a7d0b3f6e9c2a5d8b1e4f7a0c3d6e9b2a5c8f1d4e7a0b3c6d9e2f5a8b1c";
const SMTP_PASSWORD: &str = "smtp-auth-code-9f3k2";
const APNS_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgFAKEFAKEFAKEFAKE\n-----END PRIVATE KEY-----\n";

/// Every value that must never show in a preview.
const HIDDEN: [&str; 9] = [
    BOT_TOKEN,
    FEISHU_HOOK_TOKEN,
    FEISHU_SIGN,
    FEISHU_APP_SECRET,
    DINGTALK_ACCESS_TOKEN,
    DINGTALK_SIGN,
    DEVICE_TOKEN,
    SMTP_PASSWORD,
    "FAKEFAKEFAKE",
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

fn obj(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

fn secrets(pairs: &[(&str, &str)]) -> SecretBundle {
    let mut bundle = SecretBundle::new();
    for (field, value) in pairs {
        bundle.insert(*field, SecretValue::new(*value));
    }
    bundle
}

/// A source and a target of one kind: public config and secrets.
struct Endpoint {
    source_config: Map<String, Value>,
    source_secrets: SecretBundle,
    target_config: Map<String, Value>,
    target_secrets: SecretBundle,
}

fn endpoint(kind: ChannelKind) -> Endpoint {
    match kind {
        ChannelKind::Email => Endpoint {
            source_config: obj(json!({
                "host": "smtp.example.com",
                "port": 465,
                "username": "notify@example.com",
                "tls": "auto",
                "from_address": "notify@example.com",
                "sender_name": "Notify",
            })),
            source_secrets: secrets(&[("password", SMTP_PASSWORD)]),
            target_config: obj(json!({"email": "ann.lee@example.org"})),
            target_secrets: SecretBundle::new(),
        },
        ChannelKind::Telegram => Endpoint {
            source_config: Map::new(),
            source_secrets: secrets(&[("bot_token", BOT_TOKEN)]),
            target_config: obj(json!({"chat_id": "-1001234567890"})),
            target_secrets: SecretBundle::new(),
        },
        ChannelKind::Feishu => Endpoint {
            source_config: obj(json!({"app_id": "cli_a5f1e2d3c4b56789", "domain": "feishu"})),
            source_secrets: secrets(&[("app_secret", FEISHU_APP_SECRET)]),
            target_config: obj(json!({
                "webhook_url": format!("https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_HOOK_TOKEN}"),
            })),
            target_secrets: secrets(&[("sign", FEISHU_SIGN)]),
        },
        ChannelKind::Dingtalk => Endpoint {
            source_config: Map::new(),
            source_secrets: SecretBundle::new(),
            target_config: obj(json!({
                "webhook_url": format!("https://oapi.dingtalk.com/robot/send?access_token={DINGTALK_ACCESS_TOKEN}"),
            })),
            target_secrets: secrets(&[("sign", DINGTALK_SIGN)]),
        },
        ChannelKind::Apns | ChannelKind::ApnsSandbox => Endpoint {
            source_config: obj(json!({
                "team_id": "ABCDE12345",
                "key_id": "KEY9876543",
                "apns_topic": "com.example.notify",
            })),
            source_secrets: secrets(&[("private_key", APNS_KEY)]),
            target_config: obj(json!({"device_token": DEVICE_TOKEN})),
            target_secrets: SecretBundle::new(),
        },
    }
}

/// A golden "channel": which channel renders it and which preview parts it shows.
struct GoldenChannel {
    name: &'static str,
    kind: ChannelKind,
    parts: &'static [PreviewKind],
}

const CHANNELS: [GoldenChannel; 6] = [
    GoldenChannel {
        name: "email_text",
        kind: ChannelKind::Email,
        parts: &[PreviewKind::EmailHeaders, PreviewKind::EmailText],
    },
    GoldenChannel {
        name: "email_html",
        kind: ChannelKind::Email,
        parts: &[PreviewKind::EmailHtml],
    },
    GoldenChannel {
        name: "telegram",
        kind: ChannelKind::Telegram,
        parts: &[
            PreviewKind::TelegramSendPhoto,
            PreviewKind::TelegramSendMessage,
        ],
    },
    GoldenChannel {
        name: "feishu",
        kind: ChannelKind::Feishu,
        parts: &[PreviewKind::FeishuCard],
    },
    GoldenChannel {
        name: "dingtalk",
        kind: ChannelKind::Dingtalk,
        parts: &[PreviewKind::DingtalkMarkdown],
    },
    GoldenChannel {
        name: "apns",
        kind: ChannelKind::Apns,
        parts: &[PreviewKind::ApnsPayload],
    },
];

/// The sample section event: a title with `&` and `<`, an actor, a cover, and for
/// `SectionCommented` the comment.
fn sample_event(name: SectionEventName) -> SectionEvent {
    SectionEvent {
        name,
        event_id: "evt-0001".into(),
        occurred_at: Some("2026-03-01T09:30:00Z".parse().unwrap()),
        section: SectionRef {
            id: "42".into(),
            title: "Tips & tricks: <Rust> generics".into(),
            cover_url: Some("https://cdn.example.com/covers/42.png".into()),
        },
        actor: Some(Actor {
            id: "u-ann".into(),
            name: "Ann Lee".into(),
        }),
        comment: (name == SectionEventName::SectionCommented).then(|| CommentRef {
            id: "c-7".into(),
            text: "Great write-up! The part about `impl Trait` & <dyn> saved me hours.".into(),
        }),
        recipients: vec![],
    }
}

fn item(
    event: SectionEventName,
    section: &str,
    title: &str,
    actor: &str,
    at: &str,
) -> ActivityItem {
    ActivityItem {
        user_id: "u-bo".into(),
        event,
        event_id: format!("{section}-{at}"),
        section_id: section.into(),
        section_title: title.into(),
        actor: Some(Actor {
            id: actor.to_lowercase(),
            name: actor.into(),
        }),
        link: format!("https://app.example.com/section/detail/{section}"),
        at: at.parse().unwrap(),
    }
}

/// The sample Daily Summary: a published summary (in the user's language, as the upstream app
/// writes it) and four items in two sections.
fn sample_summary(language: Language) -> DailySummaryData {
    let published = match language {
        Language::En => "You read 3 sections and wrote 1 comment in R&D <weekly> yesterday.",
        Language::ZhCn => "昨天你阅读了 3 个专栏，并在 R&D <weekly> 写了 1 条评论。",
    };
    DailySummaryData {
        published: Some(published.into()),
        activity: vec![
            item(
                SectionEventName::SectionCommented,
                "42",
                "Tips & tricks: <Rust> generics",
                "Ann Lee",
                "2026-03-01T22:05:00Z",
            ),
            item(
                SectionEventName::SectionUpdated,
                "7",
                "Go 1.24 notes",
                "Bo Chen",
                "2026-03-01T10:00:00Z",
            ),
            item(
                SectionEventName::SectionSubscribed,
                "42",
                "Tips & tricks: <Rust> generics",
                "Cy Wu",
                "2026-03-01T09:45:00Z",
            ),
            item(
                SectionEventName::SectionCommented,
                "42",
                "Tips & tricks: <Rust> generics",
                "Di Xu",
                "2026-03-01T09:30:00Z",
            ),
        ],
    }
}

fn render(templates: &Templates, id: TemplateId, language: Language) -> Message {
    let content = Content::Template { template: id };
    match id.event() {
        Some(name) => {
            let event = sample_event(name);
            let input = RenderInput::Event {
                event: &event,
                role: RecipientRole::Member,
            };
            templates.render(&content, language, input).unwrap()
        }
        None => {
            let summary = sample_summary(language);
            let slot: DateTime<Utc> = "2026-03-01T23:30:00Z".parse().unwrap();
            // The user's time zone (UTC+8), as a schedule carries it (no chrono-tz needed here).
            let timezone = Schedule::parse("30 7 * * *", "Asia/Shanghai")
                .unwrap()
                .timezone();
            let input = RenderInput::Schedule {
                slot,
                timezone,
                summary: Some(&summary),
            };
            templates.render(&content, language, input).unwrap()
        }
    }
}

/// The golden text of the parts of `preview` that `channel` shows.
fn golden_text(preview: &Preview, channel: &GoldenChannel) -> String {
    let mut out = String::new();
    if channel.name != "email_html" {
        // The notes concern the whole message; shown once per channel.
        for note in &preview.notes {
            writeln!(out, "# note: {note}").unwrap();
        }
    }
    for part in preview
        .parts
        .iter()
        .filter(|p| channel.parts.contains(&p.kind))
    {
        writeln!(out, "--- {} ---", part.kind.as_str()).unwrap();
        match &part.body {
            Value::String(text) => {
                out.push_str(text);
                if !text.ends_with('\n') {
                    out.push('\n');
                }
            }
            other => {
                out.push_str(&serde_json::to_string_pretty(other).unwrap());
                out.push('\n');
            }
        }
    }
    out
}

/// The first difference between two texts, with a few lines of context, for the failure message.
fn first_difference(expected: &str, actual: &str) -> String {
    let expected: Vec<&str> = expected.lines().collect();
    let actual: Vec<&str> = actual.lines().collect();
    let at = expected
        .iter()
        .zip(&actual)
        .position(|(e, a)| e != a)
        .unwrap_or(expected.len().min(actual.len()));
    let from = at.saturating_sub(2);
    let mut out = format!("first difference at line {}:\n", at + 1);
    for (i, line) in expected.iter().enumerate().skip(from).take(5) {
        writeln!(out, "  expected {:>4} | {line}", i + 1).unwrap();
    }
    for (i, line) in actual.iter().enumerate().skip(from).take(5) {
        writeln!(out, "  actual   {:>4} | {line}", i + 1).unwrap();
    }
    if expected.len() != actual.len() {
        writeln!(
            out,
            "  ({} lines expected, {} actual)",
            expected.len(),
            actual.len()
        )
        .unwrap();
    }
    out
}

#[test]
fn templates_render_as_the_golden_files_on_every_channel() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let templates = Templates::load("https://app.example.com/".parse().unwrap()).unwrap();
    let registry = ChannelRegistry::new(&Endpoints::default()).unwrap();
    let dir = golden_dir();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }

    let mut expected_files = BTreeSet::new();
    let mut failures = Vec::new();
    for id in TemplateId::ALL {
        for language in Language::ALL {
            let message = render(&templates, id, language);
            for channel in &CHANNELS {
                let ends = endpoint(channel.kind);
                let request = SendRequest {
                    source_config: &ends.source_config,
                    source_secrets: &ends.source_secrets,
                    target_config: &ends.target_config,
                    target_secrets: &ends.target_secrets,
                    message: &message,
                };
                let preview = registry
                    .get(channel.kind)
                    .unwrap()
                    .preview(&request)
                    .unwrap_or_else(|e| panic!("{} preview failed: {e:?}", channel.name));
                let shown = serde_json::to_string(&preview).unwrap();
                for hidden in HIDDEN {
                    assert!(
                        !shown.contains(hidden),
                        "{} shows a secret: {hidden}",
                        channel.name
                    );
                }
                if channel.kind == ChannelKind::Apns {
                    // The sandbox renders exactly the same payload.
                    let ends = endpoint(ChannelKind::ApnsSandbox);
                    let sandbox = registry
                        .get(ChannelKind::ApnsSandbox)
                        .unwrap()
                        .preview(&SendRequest {
                            source_config: &ends.source_config,
                            source_secrets: &ends.source_secrets,
                            target_config: &ends.target_config,
                            target_secrets: &ends.target_secrets,
                            message: &message,
                        })
                        .unwrap();
                    assert_eq!(sandbox.parts, preview.parts);
                }

                let name = format!("{}.{}.{}.txt", id.as_str(), channel.name, language.code());
                let path = dir.join(&name);
                let actual = golden_text(&preview, channel);
                expected_files.insert(name.clone());
                if update {
                    std::fs::write(&path, &actual).unwrap();
                    continue;
                }
                match std::fs::read_to_string(&path) {
                    Err(_) => failures.push(format!("{name}: missing")),
                    Ok(expected) if expected != actual => failures.push(format!(
                        "{name}: differs; {}",
                        first_difference(&expected, &actual)
                    )),
                    Ok(_) => {}
                }
            }
        }
    }

    // Files no combination produces any more.
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".txt") && !expected_files.contains(&name) {
            if update {
                std::fs::remove_file(entry.path()).unwrap();
            } else {
                failures.push(format!(
                    "{name}: stale (no template × channel × language makes it)"
                ));
            }
        }
    }

    assert_eq!(expected_files.len(), 5 * 6 * 2);
    assert!(
        failures.is_empty(),
        "{} golden file(s) do not match (run with UPDATE_GOLDEN=1 to rewrite them, then review \
         the diff):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}
