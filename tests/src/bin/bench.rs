//! Per-send CPU cost of building and signing one provider request, per kind (`make bench`).
//! Measures the same code `send` runs before the network: the channel's request builder (its
//! `preview`, which `send` shares), plus the signature each provider needs. Prints medians.
use std::hint::black_box;
use std::time::{Duration, Instant};

use notify_channels::sign::{dingtalk_signed_url, feishu_sign};
use notify_channels::{ChannelRegistry, Endpoints, SendRequest};
use notify_domain::{ChannelKind, Message, SecretBundle};
use serde_json::{json, Map, Value};

const ITERATIONS: usize = 5_000;

fn median(mut f: impl FnMut()) -> Duration {
    for _ in 0..200 {
        f(); // warm-up
    }
    let mut samples: Vec<Duration> = (0..ITERATIONS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn obj(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn main() {
    let registry = ChannelRegistry::new(&Endpoints::default()).expect("registry");
    let message = Message {
        title: "New comment on “Weekly notes & <plans>”".into(),
        body: "Ann commented on a section you created, “Weekly notes & <plans>”:\n\n“Looks good — ship it. 看起来不错 🚀”".into(),
        link: Some("https://app.example.com/section/detail/42?comment_id=9".into()),
        link_label: Some("View comment".into()),
        cover_url: None,
    };
    let none = SecretBundle::new();
    let cases = [
        (
            ChannelKind::Email,
            obj(
                json!({"host": "smtp.example.com", "port": 465, "username": "n@example.com", "tls": "auto"}),
            ),
            obj(json!({"email": "ann@example.org"})),
        ),
        (
            ChannelKind::Telegram,
            Map::new(),
            obj(json!({"chat_id": "-1001234567890"})),
        ),
        (
            ChannelKind::Feishu,
            obj(json!({"app_id": "cli_a", "domain": "feishu"})),
            obj(json!({"webhook_url": "https://open.feishu.cn/open-apis/bot/v2/hook/abc"})),
        ),
        (
            ChannelKind::Dingtalk,
            Map::new(),
            obj(json!({"webhook_url": "https://oapi.dingtalk.com/robot/send?access_token=abc"})),
        ),
        (
            ChannelKind::Apns,
            obj(
                json!({"team_id": "ABCDE12345", "key_id": "KEY9876543", "apns_topic": "com.example.app"}),
            ),
            obj(json!({"device_token": "a".repeat(64)})),
        ),
    ];
    println!("{:<10} {:>14} {:>14}", "kind", "build (µs)", "sign (µs)");
    for (kind, source_config, target_config) in &cases {
        let channel = registry.get(*kind).expect("channel");
        let request = SendRequest {
            source_config,
            source_secrets: &none,
            target_config,
            target_secrets: &none,
            message: &message,
        };
        let build = median(|| {
            black_box(channel.preview(black_box(&request)).expect("renders"));
        });
        let sign = match kind {
            ChannelKind::Feishu => Some(median(|| {
                black_box(feishu_sign(black_box(1_700_000_000), "fs-test-secret-000"));
            })),
            ChannelKind::Dingtalk => Some(median(|| {
                let url = "https://oapi.dingtalk.com/robot/send?access_token=abc";
                black_box(
                    dingtalk_signed_url(black_box(url), 1_700_000_000_000, "SECtest0002abcdef")
                        .expect("url"),
                );
            })),
            _ => None,
        };
        let sign = sign.map_or("-".to_string(), |d| format!("{:.2}", d.as_secs_f64() * 1e6));
        println!(
            "{:<10} {:>14.2} {:>14}",
            kind.as_str(),
            build.as_secs_f64() * 1e6,
            sign
        );
    }
    // APNs signs a provider token once per 40 minutes (not per push): ES256 over the claims.
    let key = jsonwebtoken::EncodingKey::from_ec_pem(APNS_TEST_KEY.as_bytes()).expect("test key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("KEY9876543".into());
    let es256 = median(|| {
        black_box(
            jsonwebtoken::encode(
                &header,
                &json!({"iss": "ABCDE12345", "iat": 1_700_000_000}),
                &key,
            )
            .expect("sign"),
        );
    });
    println!(
        "apns provider token (ES256, once per 40 min per key): {:.2} µs",
        es256.as_secs_f64() * 1e6
    );
}

/// Test-only P-256 key (also used by the APNs fakes).
const APNS_TEST_KEY: &str = notify_testkit::fakes::apns::TEST_PRIVATE_KEY_P8;
