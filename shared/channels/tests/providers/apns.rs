//! ApnsChannel against `notify_fakes::apns`, a local HTTP/2 (h2c) server that plays APNs.
//!
//! The fake accepts only HTTP/2, checks the method, path and headers, verifies every provider
//! token's ES256 signature with the public half of a P-256 key made for tests (openssl,
//! test-only), checks `kid`, `iss` and the token's age against the simulated clock, and checks
//! the payload's size and shape. [`received`] adds what this channel always sends. Expected values
//! are written out by hand.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify_channels::apns::{
    normalise_p8, validate_private_key, ApnsChannel, MAX_PAYLOAD_BYTES, TOKEN_REUSE_SECS,
};
use notify_channels::sign::Clock;
use notify_channels::{Channel, Endpoints, Outcome, Preview, PreviewKind, SendRequest};
use notify_domain::{ChannelKind, Message, SecretBundle, SecretValue};
use notify_fakes::apns::{ApnsReply, ApnsRequest, FakeApns, TEST_PRIVATE_KEY_P8};
use serde_json::{json, Map, Value};

/// The key whose public half the fake verifies tokens with.
const PRIVATE_KEY: &str = TEST_PRIVATE_KEY_P8;
/// A P-384 key: valid PKCS #8, but not usable for ES256.
const P384_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDCauAci4N4SgZ7SPQjL
D6CpQdVAvn4OPrWaZjaEX6CaHagot3SW/qVj+n6GZQi6Z7ChZANiAATOZtGgj/8a
blOPUxfdpD6NrH0dWRVOj1UbCSDWAyrC7Mj3mkQ6L2KIGKOIiigFrmY1tWYJBJvq
XSNoOiezb1DztMZ4SX2k3o+2aUPTW0UTSg2sGtwcU8h2SIAwCYiUPwI=
-----END PRIVATE KEY-----
";

const TEAM_ID: &str = "ABCDE12345";
const KEY_ID: &str = "KEY9876543";
const TOPIC: &str = "com.example.notify";
const DEVICE: &str = "5f1c8a9e3b7d2c4a6e8f0b1d3c5a7e9f2b4d6c8a0e1f3b5d7c9a2e4f6b8d0c1a";
/// The apns-id the fake answers with instead of echoing the request's, so the test can see
/// which one the channel reports.
const ANSWER_ID: &str = "9d3e5a7c-1b2f-4c6d-8e0a-2f4b6d8c0e1a";

/// A fake APNs for this app on `clock`, answering `replies` in order, then 200.
async fn start_fake(
    clock: &Arc<SimClock>,
    replies: impl IntoIterator<Item = ApnsReply>,
) -> FakeApns {
    let fake = FakeApns::start(TEAM_ID, KEY_ID, TOPIC).await;
    let fake_clock = clock.clone();
    fake.set_clock(move || fake_clock.now_secs());
    fake.answer_apns_id(ANSWER_ID);
    fake.script(replies);
    fake
}

/// The requests `fake` received, checked also for what this channel always sends (the fake
/// checks only what APNs requires).
fn received(fake: &FakeApns) -> Vec<ApnsRequest> {
    let requests = fake.requests();
    for r in &requests {
        assert_eq!(r.device_token, DEVICE);
        assert_eq!((r.push_type.as_str(), r.priority.as_str()), ("alert", "10"));
        assert!(r.apns_id.is_some(), "no apns-id");
        assert!(
            r.payload["aps"]["alert"]["body"].is_string() && r.payload["aps"]["sound"] == "default",
            "payload shape {}",
            r.payload
        );
    }
    requests
}

/// One simulated clock, shared by the fake and any number of channels.
struct SimClock(AtomicI64);

impl SimClock {
    fn at_secs(secs: i64) -> Arc<SimClock> {
        Arc::new(SimClock(AtomicI64::new(secs * 1000)))
    }
    fn advance_millis(&self, millis: i64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn endpoints(production: &str, sandbox: &str) -> Endpoints {
    Endpoints {
        apns_production_base: format!("{production}/"), // a trailing slash must not matter
        apns_sandbox_base: sandbox.to_string(),
        timeout: Duration::from_secs(5),
        ..Endpoints::default()
    }
}

fn container(fake: &FakeApns, clock: &Arc<SimClock>) -> ApnsChannel {
    ApnsChannel::production(&endpoints(&fake.base_url, "http://127.0.0.1:9"))
        .unwrap()
        .with_clock(clock.clone())
}

fn message(title: &str, body: &str) -> Message {
    Message {
        title: title.into(),
        body: body.into(),
        link: None,
        link_label: None,
        cover_url: None,
    }
}

async fn send_with_key(ch: &ApnsChannel, key: &str, message: &Message) -> Outcome {
    let source_config: Map<String, Value> =
        json!({"team_id": TEAM_ID, "key_id": KEY_ID, "apns_topic": TOPIC})
            .as_object()
            .unwrap()
            .clone();
    let mut source_secrets = SecretBundle::new();
    source_secrets.insert("private_key", SecretValue::new(key));
    let target_config: Map<String, Value> =
        json!({"device_token": DEVICE}).as_object().unwrap().clone();
    let outcome = ch
        .send(&SendRequest {
            source_config: &source_config,
            source_secrets: &source_secrets,
            target_config: &target_config,
            target_secrets: &SecretBundle::new(),
            message,
        })
        .await;
    let shown = format!("{outcome:?}");
    assert!(!shown.contains("MIGHAgEA"), "key material leaked: {shown}");
    outcome
}

async fn send(ch: &ApnsChannel, message: &Message) -> Outcome {
    send_with_key(ch, PRIVATE_KEY, message).await
}

#[tokio::test]
async fn delivers_over_http2_with_the_answered_apns_id_and_exact_payload() {
    let clock = SimClock::at_secs(1_800_000_000);
    let fake = start_fake(&clock, []).await;
    let m = Message {
        link: Some("https://example.com/x?a=1&b=\"2\"".into()),
        ..message("Deploy \"done\"", "Line 1\nLine 2 \\ é 😀")
    };
    let outcome = send(&container(&fake, &clock), &m).await;
    assert_eq!(outcome, Outcome::delivered(Some(ANSWER_ID.into())));
    let seen = received(&fake);
    assert_eq!(
        seen[0].payload,
        json!({
            "aps": {
                "alert": {"title": "Deploy \"done\"", "body": "Line 1\nLine 2 \\ é 😀"},
                "sound": "default"
            },
            "link": "https://example.com/x?a=1&b=\"2\""
        })
    );
    assert_eq!(seen[0].issued_at, 1_800_000_000);
}

#[tokio::test]
async fn a_thousand_sends_over_19_minutes_mint_one_token_per_container() {
    let clock = SimClock::at_secs(1_800_000_000);
    let fake = start_fake(&clock, []).await;
    const CONTAINERS: usize = 4;
    let containers: Vec<ApnsChannel> = (0..CONTAINERS).map(|_| container(&fake, &clock)).collect();
    let m = message("T", "b");
    // 1000 sends spread over 19 minutes: 1140 ms apart, round-robin over the containers.
    for i in 0..1000 {
        let outcome = send(&containers[i % CONTAINERS], &m).await;
        assert!(outcome.is_delivered(), "send {i}: {outcome:?}");
        clock.advance_millis(1140);
    }
    let seen = received(&fake);
    assert_eq!(seen.len(), 1000);
    let mut per_container: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (i, s) in seen.iter().enumerate() {
        per_container
            .entry(i % CONTAINERS)
            .or_default()
            .insert(s.provider_token.clone());
    }
    assert!(
        per_container.values().all(|tokens| tokens.len() == 1),
        "each container minted once: {:?}",
        per_container
            .values()
            .map(BTreeSet::len)
            .collect::<Vec<_>>()
    );
    assert_eq!(fake.distinct_provider_tokens(), CONTAINERS);
    // Each container minted at its first send and kept that token.
    let minted: Vec<i64> = seen[..CONTAINERS].iter().map(|s| s.received_at).collect();
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.issued_at, minted[i % CONTAINERS], "send {i}");
    }

    // Up to 40 minutes after minting the tokens are reused; from then on every container
    // mints a fresh one, so no token ever gets near Apple's 60-minute limit.
    let oldest = *minted.iter().min().unwrap();
    let newest = *minted.iter().max().unwrap();
    clock
        .0
        .store((oldest + TOKEN_REUSE_SECS - 1) * 1000, Ordering::SeqCst);
    for ch in &containers {
        send(ch, &m).await;
    }
    assert_eq!(fake.distinct_provider_tokens(), CONTAINERS);
    let renewal = newest + TOKEN_REUSE_SECS;
    clock.0.store(renewal * 1000, Ordering::SeqCst);
    for ch in &containers {
        send(ch, &m).await;
    }
    assert_eq!(fake.distinct_provider_tokens(), 2 * CONTAINERS);
    let seen = received(&fake);
    let last = &seen[seen.len() - CONTAINERS..];
    assert!(last.iter().all(|s| s.issued_at == renewal));
    assert!(seen.iter().all(|s| s.received_at - s.issued_at < 3600));
    assert!((20 * 60..=60 * 60).contains(&TOKEN_REUSE_SECS));
}

#[tokio::test]
async fn concurrent_sends_in_one_container_share_one_token() {
    let clock = SimClock::at_secs(1_800_000_000);
    let fake = start_fake(&clock, []).await;
    let ch = Arc::new(container(&fake, &clock));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let ch = ch.clone();
            tokio::spawn(async move { send(&ch, &message("T", "b")).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_delivered());
    }
    assert_eq!(fake.distinct_provider_tokens(), 1);
}

#[tokio::test]
async fn a_sandbox_source_goes_to_the_sandbox_base() {
    let clock = SimClock::at_secs(1_800_000_000);
    let production = start_fake(&clock, []).await;
    let sandbox = start_fake(&clock, []).await;
    let endpoints = endpoints(&production.base_url, &sandbox.base_url);
    let sandbox_channel = ApnsChannel::sandbox(&endpoints)
        .unwrap()
        .with_clock(clock.clone());
    assert_eq!(sandbox_channel.spec().kind, ChannelKind::ApnsSandbox);
    assert!(send(&sandbox_channel, &message("T", "b"))
        .await
        .is_delivered());
    assert_eq!(received(&sandbox).len(), 1);
    assert_eq!(received(&production).len(), 0);

    let production_channel = ApnsChannel::production(&endpoints)
        .unwrap()
        .with_clock(clock.clone());
    assert_eq!(production_channel.spec().kind, ChannelKind::Apns);
    send(&production_channel, &message("T", "b")).await;
    assert_eq!(received(&sandbox).len(), 1);
    assert_eq!(received(&production).len(), 1);
}

#[tokio::test]
async fn unregistered_is_a_dead_target() {
    let clock = SimClock::at_secs(1_800_000_000);
    let fake = start_fake(&clock, [ApnsReply::unregistered()]).await;
    let outcome = send(&container(&fake, &clock), &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::DeadTarget { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("Unregistered"));
}

#[tokio::test]
async fn bad_device_token_is_permanent() {
    let clock = SimClock::at_secs(1_800_000_000);
    let fake = start_fake(&clock, [ApnsReply::bad_device_token()]).await;
    let outcome = send(&container(&fake, &clock), &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Permanent { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("BadDeviceToken"));
    assert!(
        outcome.message().unwrap().contains("sandbox"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn too_many_requests_is_retryable() {
    let clock = SimClock::at_secs(1_800_000_000);
    let fake = start_fake(&clock, [ApnsReply::too_many_requests()]).await;
    let outcome = send(&container(&fake, &clock), &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Retryable { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("TooManyRequests"));
}

#[tokio::test]
async fn an_expired_provider_token_is_replaced_once() {
    let clock = SimClock::at_secs(1_800_000_000);
    let fake = start_fake(&clock, [ApnsReply::expired_provider_token()]).await;
    let ch = container(&fake, &clock);
    let outcome = send(&ch, &message("T", "b")).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    let seen = received(&fake);
    assert_eq!(seen.len(), 2);
    assert_ne!(
        seen[0].provider_token, seen[1].provider_token,
        "a fresh token for the retry"
    );
    // The replacement is cached.
    send(&ch, &message("T", "b")).await;
    assert_eq!(received(&fake)[2].provider_token, seen[1].provider_token);
}

#[tokio::test]
async fn an_invalid_provider_token_is_permanent_and_not_kept() {
    let clock = SimClock::at_secs(1_800_000_000);
    // Refused every time, as for a revoked key.
    let fake = start_fake(&clock, vec![ApnsReply::invalid_provider_token(); 2]).await;
    let ch = container(&fake, &clock);
    let outcome = send(&ch, &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Permanent { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("InvalidProviderToken"));
    send(&ch, &message("T", "b")).await;
    let seen = received(&fake);
    assert_eq!(seen.len(), 2, "no retry for an invalid token");
    assert_ne!(
        seen[0].provider_token, seen[1].provider_token,
        "the refused token was dropped"
    );
}

#[tokio::test]
async fn an_oversized_body_is_cut_to_4096_bytes_with_an_ellipsis() {
    let clock = SimClock::at_secs(1_800_000_000);
    let fake = start_fake(&clock, []).await;
    let ch = container(&fake, &clock);
    // '通' is 3 bytes; '"' becomes 2 bytes once JSON-escaped.
    for body in ["通".repeat(5000), "\"".repeat(5000), "😀".repeat(2000)] {
        assert!(send(&ch, &message("Title", &body)).await.is_delivered());
    }
    for seen in received(&fake) {
        let bytes = serde_json::to_vec(&seen.payload).unwrap();
        assert!(bytes.len() <= MAX_PAYLOAD_BYTES, "{}", bytes.len());
        assert!(
            bytes.len() > MAX_PAYLOAD_BYTES - 8,
            "{} wastes room",
            bytes.len()
        );
        assert_eq!(seen.payload["aps"]["alert"]["title"], "Title");
        let body = seen.payload["aps"]["alert"]["body"].as_str().unwrap();
        assert!(body.ends_with('…'), "{body}");
    }
    // A title too long for the payload is cut after the body is emptied.
    let huge = "t".repeat(5000);
    assert!(send(&ch, &message(&huge, &huge)).await.is_delivered());
    let last = received(&fake).pop().unwrap();
    assert!(serde_json::to_vec(&last.payload).unwrap().len() <= MAX_PAYLOAD_BYTES);
    assert_eq!(last.payload["aps"]["alert"]["body"], "");
    assert!(last.payload["aps"]["alert"]["title"]
        .as_str()
        .unwrap()
        .ends_with("t…"));
}

#[tokio::test]
async fn a_key_pasted_without_armour_or_line_breaks_signs() {
    let bare: String = PRIVATE_KEY
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!bare.contains('\n') && !bare.contains("BEGIN"));
    assert_eq!(normalise_p8(&bare).unwrap(), PRIVATE_KEY);
    assert_eq!(validate_private_key(&bare), Ok(()));
    // Armour kept but all on one line with spaces, or with literal "\n" from an env file.
    let one_line = PRIVATE_KEY.replace('\n', " ");
    assert_eq!(normalise_p8(&one_line).unwrap(), PRIVATE_KEY);
    let escaped = PRIVATE_KEY.replace('\n', "\\n");
    assert_eq!(normalise_p8(&escaped).unwrap(), PRIVATE_KEY);

    let clock = SimClock::at_secs(1_800_000_000);
    let fake = start_fake(&clock, []).await;
    let outcome = send_with_key(&container(&fake, &clock), &bare, &message("T", "b")).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    assert_eq!(received(&fake).len(), 1); // its JWT verified with the public key
}

#[test]
fn keys_that_cannot_sign_es256_are_refused_without_echoing_them() {
    let err = validate_private_key(P384_KEY).unwrap_err();
    assert!(!err.contains("MIG2"), "{err}");
    assert!(validate_private_key("not a key at all").is_err());
    assert!(validate_private_key("").is_err());
    let truncated = &PRIVATE_KEY[..PRIVATE_KEY.len() / 2];
    let err = validate_private_key(truncated).unwrap_err();
    assert!(!err.contains("MIGHAgEA"), "{err}");
    assert_eq!(validate_private_key(PRIVATE_KEY), Ok(()));
}

#[tokio::test]
async fn a_bad_key_is_a_configuration_error_and_nothing_is_sent() {
    let clock = SimClock::at_secs(1_800_000_000);
    let fake = start_fake(&clock, []).await;
    let outcome = send_with_key(&container(&fake, &clock), P384_KEY, &message("T", "b")).await;
    assert_eq!(outcome.code(), Some("invalid_config"));
    assert!(received(&fake).is_empty());
}

#[tokio::test]
async fn connection_failures_are_retryable() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let clock = SimClock::at_secs(1_800_000_000);
    let ch = ApnsChannel::production(&endpoints(
        &format!("http://{closed}"),
        "http://127.0.0.1:9",
    ))
    .unwrap()
    .with_clock(clock);
    let outcome = send(&ch, &message("T", "b")).await;
    assert!(matches!(outcome, Outcome::Retryable { .. }), "{outcome:?}");
    assert!(!outcome.message().unwrap().contains(DEVICE), "{outcome:?}");
}

// ---------------------------------------------------------------------------------------------
// Preview, the 4096-byte limit and hostile input.

/// The channel's preview for `message`, built without any secret.
fn preview_of(ch: &ApnsChannel, message: &Message) -> Preview {
    let source_config: Map<String, Value> =
        json!({"team_id": TEAM_ID, "key_id": KEY_ID, "apns_topic": TOPIC})
            .as_object()
            .unwrap()
            .clone();
    let target_config: Map<String, Value> =
        json!({"device_token": DEVICE}).as_object().unwrap().clone();
    let preview = ch
        .preview(&SendRequest {
            source_config: &source_config,
            source_secrets: &SecretBundle::new(),
            target_config: &target_config,
            target_secrets: &SecretBundle::new(),
            message,
        })
        .unwrap();
    let shown = serde_json::to_string(&preview).unwrap();
    assert!(
        !shown.contains(DEVICE),
        "device token in the preview: {shown}"
    );
    assert_eq!(preview.parts.len(), 1);
    assert_eq!(preview.parts[0].kind, PreviewKind::ApnsPayload);
    preview
}

/// The preview's payload as the bytes `send` would put on the wire.
fn preview_bytes(ch: &ApnsChannel, message: &Message) -> Vec<u8> {
    serde_json::to_vec(&preview_of(ch, message).parts[0].body).unwrap()
}

const HOSTILE_TITLE: &str = "<script>alert(1)</script> [x](http://evil)";
const HOSTILE_BODY: &str =
    r#"**bold** ![img](http://evil/x.png) <a href="http://evil">y</a> & "quotes""#;

#[tokio::test]
async fn preview_equals_what_is_sent() {
    let clock = SimClock::at_secs(1_800_000_000);
    let fake = start_fake(&clock, []).await;
    let ch = container(&fake, &clock);
    let messages = [
        Message {
            link: Some("https://example.com/x?a=1&b=\"2\"".into()),
            cover_url: Some("https://cdn.example.com/c.png".into()),
            ..message(HOSTILE_TITLE, HOSTILE_BODY)
        },
        message("", "no title"),
        message("长", &"通知😀\n".repeat(1000)),
    ];
    for m in &messages {
        assert!(send(&ch, m).await.is_delivered());
        let sent = received(&fake).pop().unwrap();
        assert!(sent.raw_payload == preview_bytes(&ch, m), "{m:?}");
    }
    // The sandbox channel renders the same payload.
    let sandbox = ApnsChannel::sandbox(&endpoints("http://127.0.0.1:9", &fake.base_url)).unwrap();
    let preview = preview_of(&sandbox, &messages[0]);
    assert_eq!(preview.channel, ChannelKind::ApnsSandbox);
    assert_eq!(preview.parts, preview_of(&ch, &messages[0]).parts);
}

// The payload for title "T" and body B:
//
//   {"aps":{"alert":{"body":"<B>","title":"T"},"sound":"default"}}
//
// `{"aps":` 7 + `{"alert":` 9 + `{"body":"` 9 + `","title":"T"}` 14 + `,"sound":"default"}` 19
// + `}` 1 = 59 bytes around B, which may so have 4096 − 59 = 4037 bytes.

#[tokio::test]
async fn a_payload_of_exactly_4096_bytes_is_sent_whole() {
    // "通😀" is 3 + 4 = 7 bytes; × 576 = 4032, + "通" (3) + "é" (2) = 4037.
    let clock = SimClock::at_secs(1_800_000_000);
    let fake = start_fake(&clock, []).await;
    let ch = container(&fake, &clock);
    let body = format!("{}通é", "通😀".repeat(576));
    assert!(send(&ch, &message("T", &body)).await.is_delivered());
    let seen = received(&fake).pop().unwrap();
    assert_eq!(seen.raw_payload.len(), MAX_PAYLOAD_BYTES);
    assert!(seen.payload["aps"]["alert"]["body"] == body.as_str());
}

#[tokio::test]
async fn one_byte_more_cuts_the_body_on_a_character_with_an_ellipsis() {
    // 4038 bytes do not fit. With "…" (3 bytes) the body may keep 4034: the 576 pairs (4032);
    // the "通" after them would make 4035. The body is 4032 + 3 = 4035 bytes, the payload 4094.
    let clock = SimClock::at_secs(1_800_000_000);
    let fake = start_fake(&clock, []).await;
    let ch = container(&fake, &clock);
    let m = message("T", &format!("{}通éa", "通😀".repeat(576)));
    assert!(send(&ch, &m).await.is_delivered());
    let seen = received(&fake).pop().unwrap();
    assert_eq!(seen.raw_payload.len(), 4094);
    let expected = format!("{}…", "通😀".repeat(576));
    assert!(seen.payload["aps"]["alert"]["body"] == expected.as_str());
    assert_eq!(seen.payload["aps"]["alert"]["title"], "T");
    let preview = preview_of(&ch, &m);
    assert!(serde_json::to_vec(&preview.parts[0].body).unwrap() == seen.raw_payload);
    assert_eq!(
        preview.notes,
        vec!["the body was shortened to fit APNs' 4096-byte payload limit"]
    );
}

#[tokio::test]
async fn hostile_text_is_only_json_escaped() {
    // An alert is plain text on the device: the only escaping is JSON's (quotes and
    // backslashes), which serde_json does; nothing else is changed.
    let ch =
        ApnsChannel::production(&endpoints("http://127.0.0.1:9", "http://127.0.0.1:9")).unwrap();
    let m = message(HOSTILE_TITLE, &format!("{HOSTILE_BODY} \\ \u{7}"));
    let bytes = String::from_utf8(preview_bytes(&ch, &m)).unwrap();
    assert!(
        bytes.contains(r#""title":"<script>alert(1)</script> [x](http://evil)""#),
        "{bytes}"
    );
    assert!(
        bytes.contains(
            r#""body":"**bold** ![img](http://evil/x.png) <a href=\"http://evil\">y</a> & \"quotes\" \\ \u0007""#
        ),
        "{bytes}"
    );
    let preview = preview_of(&ch, &m);
    assert_eq!(
        preview.parts[0].body["aps"]["alert"]["title"],
        HOSTILE_TITLE
    );
}
