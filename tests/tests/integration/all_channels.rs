//! Every channel kind end to end: source, target and task made through the API; a section event
//! handed to the events function; the provider played by a local server that checks each request
//! as the provider would (the SMTP sink, and the Telegram, Feishu, DingTalk and APNs fakes); the
//! delivery records read back through the API. Also test-send for every kind, provider refusals
//! (never recorded as sent), APNs `Unregistered` disabling the target, and sandbox vs production.
use mailparse::{parse_mail, MailHeaderMap, ParsedMail};
use notify_testkit::fakes::apns::{ApnsReply, FakeApns, TEST_PRIVATE_KEY_P8};
use notify_testkit::fakes::dingtalk::{FakeDingtalk, RobotReply};
use notify_testkit::fakes::feishu::{FakeFeishu, HookReply};
use notify_testkit::fakes::telegram::{BotReply, FakeTelegram};
use notify_testkit::smtp::SmtpSink;
use notify_testkit::TestEnv;
use serde_json::{json, Value};

const KINDS: [&str; 6] = [
    "email",
    "telegram",
    "feishu",
    "dingtalk",
    "apns",
    "apns_sandbox",
];

const BOT_TOKEN: &str = "7100000001:AAH-all-channels_token";
const FEISHU_HOOK: &str = "0b6f2c1e-7a4d-4c2b-9e3f-5d8a1c7b9e20";
const FEISHU_SIGN: &str = "fS8kQ2vLm7Xw4Rz9TyHb3c";
const FEISHU_APP_ID: &str = "cli_a9b8c7d6e5f40312";
const FEISHU_APP_SECRET: &str = "Lk4Jh7Gf2Ds9Aq1Wz6Xc3Vb8Nm5Qr0Ty";
const DING_TOKEN: &str = "9a8b7c6d5e4f30211f2e3d4c5b6a79880a1b2c3d4e5f60718293a4b5c6d7e8f9";
const DING_SIGN: &str = "SECb1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2";
const TEAM_ID: &str = "TEAM123456";
const KEY_ID: &str = "KEYID98765";
const TOPIC: &str = "com.example.knowledge";
const DEVICE: &str = "7c1e5a9f3b2d4c6e8a0f1b3d5c7e9a2f4b6d8c0e1a3f5b7d9c2e4a6f8b0d1c3e";
const SANDBOX_DEVICE: &str = "0d2f4b6c8e1a3c5e7a9b1d3f5a7c9e2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3c";

/// The section title every event carries: `&` and `<` must come out escaped per format.
const RAW_TITLE: &str = "New comment on “Weekly <notes> & plans”";
const LINK: &str = "https://app.example.test/section/detail/sec-42?comment_id=c-9";

/// The service on moto with every provider played locally.
struct Harness {
    env: TestEnv,
    sink: SmtpSink,
    bot: FakeTelegram,
    feishu: FakeFeishu,
    ding: FakeDingtalk,
    apns: FakeApns,
    sandbox: FakeApns,
}

impl Harness {
    async fn start() -> Harness {
        let sink = SmtpSink::start();
        let bot = FakeTelegram::start(BOT_TOKEN).await;
        let feishu = FakeFeishu::start(FEISHU_HOOK, Some(FEISHU_SIGN)).await;
        feishu.accept_app(FEISHU_APP_ID, FEISHU_APP_SECRET);
        let ding = FakeDingtalk::start(DING_TOKEN, Some(DING_SIGN)).await;
        let apns = FakeApns::start(TEAM_ID, KEY_ID, TOPIC).await;
        let sandbox = FakeApns::start(TEAM_ID, KEY_ID, TOPIC).await;
        let env = {
            let (bot, feishu, apns, sandbox) = (
                bot.base_url.clone(),
                feishu.base_url.clone(),
                apns.base_url.clone(),
                sandbox.base_url.clone(),
            );
            TestEnv::start_with(move |s| {
                s.endpoints.telegram_api_base = bot;
                s.endpoints.feishu_api_base = feishu.clone();
                s.endpoints.lark_api_base = feishu;
                s.endpoints.apns_production_base = apns;
                s.endpoints.apns_sandbox_base = sandbox;
            })
            .await
        };
        Harness {
            env,
            sink,
            bot,
            feishu,
            ding,
            apns,
            sandbox,
        }
    }

    fn source_config(&self, kind: &str) -> Value {
        match kind {
            "email" => json!({"host": "127.0.0.1", "port": self.sink.port,
                "username": "notify@example.test", "password": "smtp-pass-Z4",
                "tls": "none", "sender_name": "Knowledge App"}),
            "telegram" => json!({"bot_token": BOT_TOKEN}),
            "feishu" => json!({"app_id": FEISHU_APP_ID, "app_secret": FEISHU_APP_SECRET,
                "domain": "feishu"}),
            "dingtalk" => json!({}),
            "apns" | "apns_sandbox" => json!({"team_id": TEAM_ID, "key_id": KEY_ID,
                "apns_topic": TOPIC, "private_key": TEST_PRIVATE_KEY_P8}),
            other => panic!("unknown kind {other}"),
        }
    }

    fn target_config(&self, kind: &str, user: &str) -> Value {
        match kind {
            "email" => json!({"email": format!("{user}@example.test")}),
            "telegram" => json!({"chat_id": "-1007100000001"}),
            "feishu" => json!({"webhook_url": self.feishu.webhook_url(), "sign": FEISHU_SIGN}),
            "dingtalk" => json!({"webhook_url": self.ding.webhook_url(), "sign": DING_SIGN}),
            "apns" => json!({"device_token": DEVICE}),
            "apns_sandbox" => json!({"device_token": SANDBOX_DEVICE}),
            other => panic!("unknown kind {other}"),
        }
    }

    async fn create(&self, user: &str, path: &str, body: Value) -> String {
        let reply = self.env.call("POST", path, Some(user), Some(body)).await;
        assert_eq!(reply.status, 201, "POST {path}: {}", reply.raw);
        reply.body["id"].as_str().unwrap().to_string()
    }

    /// A source and a target of `kind` for `user`.
    async fn pair(&self, user: &str, kind: &str) -> (String, String) {
        let source = self
            .create(
                user,
                "/sources",
                json!({"name": format!("{kind} source"), "kind": kind,
                       "config": self.source_config(kind)}),
            )
            .await;
        let target = self
            .create(
                user,
                "/targets",
                json!({"name": format!("{kind} target"), "kind": kind,
                       "config": self.target_config(kind, user)}),
            )
            .await;
        (source, target)
    }

    /// A SectionCommented task of `kind` for `user`; its target's id.
    async fn comment_task(&self, user: &str, kind: &str) -> String {
        let (source, target) = self.pair(user, kind).await;
        self.task(user, &source, &target).await;
        target
    }

    async fn task(&self, user: &str, source: &str, target: &str) -> String {
        self.create(
            user,
            "/tasks",
            json!({
                "title": "Comments", "source_id": source, "target_id": target,
                "trigger": {"type": "event", "event": "SectionCommented"},
                "content": {"type": "template", "template": "section_commented"}
            }),
        )
        .await
    }

    /// Requests (messages, for e-mail) the provider of `kind` has received.
    fn received(&self, kind: &str) -> usize {
        match kind {
            "email" => self.sink.messages().len(),
            "telegram" => self.bot.requests().len(),
            "feishu" => self.feishu.requests().len(),
            "dingtalk" => self.ding.requests().len(),
            "apns" => self.apns.requests().len(),
            "apns_sandbox" => self.sandbox.requests().len(),
            other => panic!("unknown kind {other}"),
        }
    }

    /// Hands a SectionCommented event for `user` (the section's creator) to the events function.
    async fn comment(
        &self,
        event_id: &str,
        user: &str,
    ) -> Result<Value, notify_events::EventsError> {
        let event = json!({
            "id": format!("eb-{event_id}"),
            "detail-type": "SectionCommented",
            "source": "knowledge.app",
            "detail": {
                "event_id": event_id,
                "section": {"id": "sec-42", "title": "Weekly <notes> & plans"},
                "actor": {"id": "u-ann", "name": "Ann"},
                "comment": {"id": "c-9", "text": "Looks good — ship it"},
                "recipients": [{"user_id": user, "role": "creator"}, {"user_id": "u-ann", "role": "member"}]
            }
        });
        notify_events::handle(
            &self.env.dispatcher,
            None,
            notify_testkit::deadline(),
            event,
        )
        .await
    }

    async fn deliveries(&self, user: &str) -> Vec<Value> {
        let reply = self.env.call("GET", "/deliveries", Some(user), None).await;
        assert_eq!(reply.status, 200, "{}", reply.raw);
        reply.body["items"].as_array().cloned().unwrap_or_default()
    }

    async fn test_send(&self, user: &str, target: &str, source: &str) -> Value {
        let reply = self
            .env
            .call(
                "POST",
                &format!("/targets/{target}/test"),
                Some(user),
                Some(json!({"source_id": source})),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.raw);
        reply.body
    }
}

fn mime_part(mail: &ParsedMail<'_>, mimetype: &str) -> String {
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

/// Checks the one request the provider of `kind` got for the comment event, per its format;
/// the provider's message id when it gives one.
fn check_comment_request(h: &Harness, kind: &str, user: &str) -> Option<String> {
    match kind {
        "email" => {
            let messages = h.sink.messages();
            assert_eq!(messages.len(), 1, "e-mails: {messages:?}");
            let mail = parse_mail(messages[0].as_bytes()).unwrap();
            assert_eq!(mail.headers.get_first_value("Subject").unwrap(), RAW_TITLE);
            assert_eq!(
                mail.headers.get_first_value("To").unwrap(),
                format!("{user}@example.test")
            );
            let html = mime_part(&mail, "text/html");
            assert!(
                html.contains("New comment on “Weekly &lt;notes&gt; &amp; plans”")
                    && !html.contains("<notes>"),
                "{html}"
            );
            assert!(html.contains(LINK), "{html}");
            let text = mime_part(&mail, "text/plain");
            assert!(text.contains("“Weekly <notes> & plans”:"), "{text}");
            mail.headers.get_first_value("Message-ID")
        }
        "telegram" => {
            let requests = h.bot.requests();
            assert_eq!(requests.len(), 1, "{requests:?}");
            assert_eq!(
                requests[0],
                json!({
                    "chat_id": "-1007100000001",
                    "parse_mode": "HTML",
                    "link_preview_options": {"is_disabled": true},
                    "text": format!("<b>New comment on “Weekly &lt;notes&gt; &amp; plans”</b>\n\n\
                        Ann commented on a section you created, “Weekly &lt;notes&gt; &amp; plans”:\n\n\
                        “Looks good — ship it”\n\n<a href=\"{LINK}\">View comment</a>")
                })
            );
            None
        }
        "feishu" => {
            let requests = h.feishu.requests();
            assert_eq!(requests.len(), 1, "{requests:?}");
            let card = &requests[0]["card"];
            assert_eq!(
                card["header"],
                json!({"template": "blue", "title": {"tag": "plain_text", "content": RAW_TITLE}})
            );
            assert_eq!(
                card["elements"],
                json!([
                    {"tag": "markdown", "content": "Ann commented on a section you created, \
                        “Weekly &#60;notes&#62; &#38; plans”&#58;\n\n“Looks good — ship it”"},
                    {"tag": "action", "actions": [{"tag": "button", "type": "primary", "url": LINK,
                        "text": {"tag": "plain_text", "content": "View comment"}}]}
                ])
            );
            None
        }
        "dingtalk" => {
            let received = h.ding.received();
            assert_eq!(received.len(), 1);
            assert!(
                received[0]
                    .raw_query
                    .starts_with(&format!("access_token={DING_TOKEN}&timestamp=")),
                "{}",
                received[0].raw_query
            );
            let body = &received[0].body;
            assert_eq!(body["msgtype"], "markdown");
            assert_eq!(body["markdown"]["title"], RAW_TITLE, "plain text, one line");
            // Markdown: the title as a heading and in the body, with `&`, `<`, `>` as entities;
            // the comment quoted; the link last. (How blank lines between blocks are kept is the
            // channel's business, and not pinned here.)
            let text = body["markdown"]["text"].as_str().unwrap();
            assert!(
                text.starts_with("#### New comment on “Weekly &lt;notes&gt; &amp; plans”\n\n"),
                "{text}"
            );
            assert!(
                text.contains(
                    "Ann commented on a section you created, “Weekly &lt;notes&gt; &amp; plans”:"
                ),
                "{text}"
            );
            assert!(text.contains("“Looks good — ship it”"), "{text}");
            assert!(
                text.ends_with(&format!("\n\n[View comment]({LINK})")),
                "{text}"
            );
            assert!(!text.contains("<notes>") && !text.contains(" & "), "{text}");
            None
        }
        "apns" | "apns_sandbox" => {
            let (fake, other, device) = if kind == "apns" {
                (&h.apns, &h.sandbox, DEVICE)
            } else {
                (&h.sandbox, &h.apns, SANDBOX_DEVICE)
            };
            assert!(
                other.requests().iter().all(|r| r.device_token != device),
                "{kind} went to the wrong APNs environment"
            );
            let requests = fake.requests();
            assert_eq!(requests.len(), 1, "{requests:?}");
            let r = &requests[0];
            assert_eq!(
                (
                    r.device_token.as_str(),
                    r.topic.as_str(),
                    r.push_type.as_str(),
                    r.priority.as_str()
                ),
                (device, TOPIC, "alert", "10")
            );
            assert_eq!((r.team_id.as_str(), r.key_id.as_str()), (TEAM_ID, KEY_ID));
            assert_eq!(
                r.payload,
                json!({
                    "aps": {"alert": {"title": RAW_TITLE,
                        "body": "Ann commented on a section you created, “Weekly <notes> & plans”:\n\n“Looks good — ship it”"},
                        "sound": "default"},
                    "link": LINK
                })
            );
            r.apns_id.clone()
        }
        other => panic!("unknown kind {other}"),
    }
}

#[tokio::test]
async fn every_kind_delivers_a_comment_event_once_in_its_own_format() {
    let h = Harness::start().await;
    for kind in KINDS {
        let user = format!("u-{kind}");
        h.comment_task(&user, kind).await;

        let handled = h.comment(&format!("comment-{kind}"), &user).await;
        assert_eq!(handled.unwrap(), json!({"status": "done"}), "{kind}");
        let provider_id = check_comment_request(&h, kind, &user);

        let records = h.deliveries(&user).await;
        assert_eq!(records.len(), 1, "{kind}: {records:?}");
        let record = &records[0];
        assert_eq!(record["status"], "sent", "{kind}: {record}");
        assert_eq!(record["kind"], kind);
        assert_eq!(record["title"], RAW_TITLE);
        assert!(record.get("provider_code").is_none(), "{kind}: {record}");
        match kind {
            "email" => {
                let id = provider_id.expect("the e-mail has a Message-ID");
                assert!(id.starts_with('<') && id.ends_with('>'), "{id}");
                assert_eq!(record["provider_message_id"], id.as_str());
            }
            "telegram" => assert!(
                record["provider_message_id"]
                    .as_str()
                    .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())),
                "{record}"
            ),
            "apns" | "apns_sandbox" => {
                let id = provider_id.expect("the request has an apns-id");
                assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
                assert_eq!(
                    record["provider_message_id"],
                    id.as_str(),
                    "the echoed apns-id"
                );
            }
            // Feishu and DingTalk webhooks answer without a message id.
            _ => assert!(record.get("provider_message_id").is_none(), "{record}"),
        }

        // The same occurrence again (an EventBridge or SQS redelivery): nothing is sent.
        let again = h.comment(&format!("comment-{kind}"), &user).await;
        assert!(again.is_ok(), "{kind}: {again:?}");
        assert_eq!(h.received(kind), 1, "{kind} was sent twice");
        assert_eq!(h.deliveries(&user).await.len(), 1, "{kind}");
    }
    // The commenter has no tasks and got nothing; every fake saw exactly its own request.
    assert!(h.deliveries("u-ann").await.is_empty());
    for kind in KINDS {
        assert_eq!(h.received(kind), 1, "{kind}");
    }
}

#[tokio::test]
async fn provider_refusals_are_recorded_as_failures_never_as_sent() {
    let h = Harness::start().await;
    // Nothing listens on this port any more: the SMTP connection is refused.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let cases: [(&str, &str, &str); 6] = [
        ("email", "connection_failed", "retryable"),
        ("telegram", "400", "permanent"),
        ("feishu", "19021", "permanent"),
        ("dingtalk", "310000", "permanent"),
        ("apns", "BadDeviceToken", "permanent"),
        ("apns_sandbox", "BadDeviceToken", "permanent"),
    ];
    for (kind, code, outcome) in cases {
        let user = format!("u-refused-{kind}");
        let (source, target) = if kind == "email" {
            let mut config = h.source_config("email");
            config["port"] = json!(closed);
            let source = h
                .create(
                    &user,
                    "/sources",
                    json!({"name": "Closed", "kind": "email", "config": config}),
                )
                .await;
            let target = h
                .create(
                    &user,
                    "/targets",
                    json!({"name": "Inbox", "kind": "email",
                           "config": h.target_config("email", &user)}),
                )
                .await;
            (source, target)
        } else {
            h.pair(&user, kind).await
        };
        h.task(&user, &source, &target).await;
        let script = |times: usize| {
            for _ in 0..times {
                match kind {
                    "telegram" => h.bot.script([BotReply::Error {
                        code: 400,
                        description: "Bad Request: chat not found".into(),
                        retry_after: None,
                    }]),
                    "feishu" => h.feishu.script([HookReply::bad_signature()]),
                    "dingtalk" => h.ding.script([RobotReply::sign_mismatch()]),
                    "apns" => h.apns.script([ApnsReply::bad_device_token()]),
                    "apns_sandbox" => h.sandbox.script([ApnsReply::bad_device_token()]),
                    _ => {}
                }
            }
        };
        script(1);
        let before = h.received(kind);
        let handled = h.comment(&format!("refused-{kind}"), &user).await;
        if outcome == "retryable" {
            assert!(
                matches!(handled, Err(notify_events::EventsError::Retry(_))),
                "{kind}: {handled:?}"
            );
        } else {
            assert!(handled.is_ok(), "{kind}: {handled:?}");
            assert_eq!(h.received(kind), before + 1, "{kind} reached its provider");
        }
        let records = h.deliveries(&user).await;
        assert_eq!(records.len(), 1, "{kind}: {records:?}");
        assert_eq!(records[0]["status"], "failed", "{kind}: {}", records[0]);
        assert_eq!(records[0]["provider_code"], code, "{kind}: {}", records[0]);
        assert!(
            records[0]["provider_message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{kind}: {}",
            records[0]
        );
        assert!(records[0].get("provider_message_id").is_none(), "{kind}");

        // A permanent refusal is final: handling the event again sends nothing more.
        if outcome == "permanent" {
            let again = h.comment(&format!("refused-{kind}"), &user).await;
            assert!(again.is_ok(), "{kind}: {again:?}");
            assert_eq!(h.received(kind), before + 1, "{kind} was retried");
        }

        // Test-send reports the provider's refusal with its code, and does not disable the target.
        script(1);
        let answer = h.test_send(&user, &target, &source).await;
        assert_eq!(
            (answer["outcome"].as_str(), answer["code"].as_str()),
            (Some(outcome), Some(code)),
            "{kind}: {answer}"
        );
        let target_view = h
            .env
            .call("GET", &format!("/targets/{target}"), Some(&user), None)
            .await;
        assert!(
            target_view.body.get("disabled").is_none(),
            "{kind}: {}",
            target_view.raw
        );
        // Nothing the refusals did shows up as sent.
        assert!(
            h.deliveries(&user)
                .await
                .iter()
                .all(|d| d["status"] != "sent"),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn apns_unregistered_disables_the_target_and_nothing_more_is_sent_to_it() {
    let h = Harness::start().await;
    for kind in ["apns", "apns_sandbox"] {
        let fake = if kind == "apns" { &h.apns } else { &h.sandbox };
        let user = format!("u-gone-{kind}");
        let target = h.comment_task(&user, kind).await;
        fake.script([ApnsReply::unregistered()]);
        let handled = h.comment(&format!("gone-1-{kind}"), &user).await;
        assert!(handled.is_ok(), "{handled:?}");
        assert_eq!(fake.requests().len(), 1);

        let records = h.deliveries(&user).await;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0]["status"], "failed", "{}", records[0]);
        assert_eq!(records[0]["provider_code"], "Unregistered");

        let view = h
            .env
            .call("GET", &format!("/targets/{target}"), Some(&user), None)
            .await;
        let reason = view.body["disabled"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("Unregistered"), "{}", view.raw);

        // The next event reaches no provider: recorded as failed because the target is disabled.
        let handled = h.comment(&format!("gone-2-{kind}"), &user).await;
        assert!(handled.is_ok(), "{handled:?}");
        assert_eq!(fake.requests().len(), 1, "sent to a disabled target");
        let records = h.deliveries(&user).await;
        assert_eq!(records.len(), 2);
        assert_eq!(
            (
                records[0]["status"].as_str(),
                records[0]["provider_code"].as_str()
            ),
            (Some("failed"), Some("target_disabled")),
            "{}",
            records[0]
        );
    }
    assert!(h.apns.requests().iter().all(|r| r.device_token == DEVICE));
    assert!(h
        .sandbox
        .requests()
        .iter()
        .all(|r| r.device_token == SANDBOX_DEVICE));
}

#[tokio::test]
async fn test_send_is_delivered_for_every_kind() {
    let h = Harness::start().await;
    for kind in KINDS {
        let user = format!("u-test-{kind}");
        let (source, target) = h.pair(&user, kind).await;
        let before = h.received(kind);
        let answer = h.test_send(&user, &target, &source).await;
        assert_eq!(answer["outcome"], "delivered", "{kind}: {answer}");
        assert_eq!(answer["message_sent"]["title"], "Test notification");
        assert_eq!(h.received(kind), before + 1, "{kind}");
        let title_seen = match kind {
            "email" => {
                let raw = h.sink.messages().pop().unwrap();
                let mail = parse_mail(raw.as_bytes()).unwrap();
                mail.headers.get_first_value("Subject").unwrap()
            }
            "telegram" => h.bot.requests().pop().unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string(),
            "feishu" => h.feishu.requests().pop().unwrap()["card"]["header"]["title"]["content"]
                .as_str()
                .unwrap()
                .to_string(),
            "dingtalk" => h.ding.requests().pop().unwrap()["markdown"]["title"]
                .as_str()
                .unwrap()
                .to_string(),
            "apns" => h.apns.requests().pop().unwrap().payload["aps"]["alert"]["title"]
                .as_str()
                .unwrap()
                .to_string(),
            "apns_sandbox" => h.sandbox.requests().pop().unwrap().payload["aps"]["alert"]["title"]
                .as_str()
                .unwrap()
                .to_string(),
            _ => unreachable!(),
        };
        assert!(
            title_seen.contains("Test notification"),
            "{kind}: {title_seen}"
        );
        match kind {
            "email" | "telegram" | "apns" | "apns_sandbox" => assert!(
                answer["provider_message_id"]
                    .as_str()
                    .is_some_and(|id| !id.is_empty()),
                "{kind}: {answer}"
            ),
            _ => {}
        }
        // A test send is not a delivery.
        assert!(h.deliveries(&user).await.is_empty(), "{kind}");
    }
    for kind in KINDS {
        assert_eq!(h.received(kind), 1, "{kind}");
    }
}

#[tokio::test]
async fn sandbox_sources_push_to_the_sandbox_and_production_sources_to_production() {
    let h = Harness::start().await;
    let user = "u-environments";
    let (prod_source, prod_target) = h.pair(user, "apns").await;
    let (sandbox_source, sandbox_target) = h.pair(user, "apns_sandbox").await;

    let answer = h.test_send(user, &sandbox_target, &sandbox_source).await;
    assert_eq!(answer["outcome"], "delivered", "{answer}");
    assert_eq!(h.sandbox.requests().len(), 1);
    assert!(
        h.apns.requests().is_empty(),
        "a sandbox push reached production"
    );
    assert_eq!(h.sandbox.requests()[0].device_token, SANDBOX_DEVICE);

    let answer = h.test_send(user, &prod_target, &prod_source).await;
    assert_eq!(answer["outcome"], "delivered", "{answer}");
    assert_eq!(h.apns.requests().len(), 1);
    assert_eq!(
        h.sandbox.requests().len(),
        1,
        "a production push reached the sandbox"
    );
    assert_eq!(h.apns.requests()[0].device_token, DEVICE);

    // A sandbox source cannot send to a production target, nor the reverse.
    let mismatch = h
        .env
        .call(
            "POST",
            &format!("/targets/{prod_target}/test"),
            Some(user),
            Some(json!({"source_id": sandbox_source})),
        )
        .await;
    assert_eq!(mismatch.status, 422, "{}", mismatch.raw);

    // Both through events as well: one task each, one event, one push per environment.
    h.task(user, &prod_source, &prod_target).await;
    h.task(user, &sandbox_source, &sandbox_target).await;
    h.comment("env-1", user).await.unwrap();
    assert_eq!(h.apns.requests().len(), 2);
    assert_eq!(h.sandbox.requests().len(), 2);
    assert_eq!(h.apns.requests()[1].device_token, DEVICE);
    assert_eq!(h.sandbox.requests()[1].device_token, SANDBOX_DEVICE);
    let records = h.deliveries(user).await;
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|d| d["status"] == "sent"), "{records:?}");
}

#[tokio::test]
async fn a_feishu_cover_is_uploaded_with_the_app_credentials_and_shown_on_the_card() {
    let h = Harness::start().await;
    let user = "u-cover";
    let (source, target) = h.pair(user, "feishu").await;
    h.create(
        user,
        "/tasks",
        json!({
            "title": "Covered", "source_id": source, "target_id": target,
            "trigger": {"type": "event", "event": "SectionCommented"},
            "content": {"type": "custom", "title": "Cover <&> test", "body": "With a picture",
                        "cover_url": h.feishu.cover_url()}
        }),
    )
    .await;
    h.comment("cover-1", user).await.unwrap();
    let uploads = h.feishu.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].content_type.as_deref(), Some("image/png"));
    assert_eq!(
        uploads[0].bytes,
        notify_testkit::fakes::feishu::COVER_PNG.len()
    );
    assert_eq!(h.feishu.token_requests(), 1);
    let hooks = h.feishu.requests();
    assert_eq!(hooks.len(), 1);
    let elements = &hooks[0]["card"]["elements"];
    assert_eq!(elements[0]["tag"], "img");
    assert_eq!(
        elements[0]["img_key"],
        uploads[0].image_key.as_deref().unwrap()
    );
    assert_eq!(
        hooks[0]["card"]["header"]["title"]["content"],
        "Cover <&> test"
    );
    let records = h.deliveries(user).await;
    assert_eq!(records[0]["status"], "sent");
}

#[tokio::test]
async fn the_fakes_refuse_what_the_providers_refuse() {
    // Wrong signing secrets and an APNs key that is not the app's: the provider refuses, the
    // delivery fails with the provider's code, and each fake reports the protocol violation.
    let h = Harness::start().await;
    let user = "u-wrong";
    // Another P-256 key (generated with openssl for this test only): valid, but not the app's.
    let wrong_key = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgJs5btK8yRudxHlFK
H+i/xVndM4t7nHeOaqdVu9ezuD+hRANCAAQGmebFMi7HSkG53VjvQTSvLfqNZX2v
K5hAVb6pMA8q7VYVWJoMVUnGEUrtMQr+aD3H59auIqEa9vq4R66tkX9m
-----END PRIVATE KEY-----
";
    let mut cases = Vec::new();
    for (kind, target_config, source_config, code) in [
        (
            "feishu",
            json!({"webhook_url": h.feishu.webhook_url(), "sign": "not-the-secret"}),
            h.source_config("feishu"),
            "19021",
        ),
        (
            "dingtalk",
            json!({"webhook_url": h.ding.webhook_url(), "sign": "SECnot-the-secret"}),
            json!({}),
            "310000",
        ),
        (
            "apns",
            json!({"device_token": DEVICE}),
            {
                let mut c = h.source_config("apns");
                c["private_key"] = json!(wrong_key);
                c
            },
            "InvalidProviderToken",
        ),
    ] {
        let source = h
            .create(
                user,
                "/sources",
                json!({"name": format!("bad {kind}"), "kind": kind, "config": source_config}),
            )
            .await;
        let target = h
            .create(
                user,
                "/targets",
                json!({"name": format!("bad {kind}"), "kind": kind, "config": target_config}),
            )
            .await;
        let answer = h.test_send(user, &target, &source).await;
        cases.push((
            kind,
            answer["outcome"].clone(),
            answer["code"].clone(),
            code,
        ));
    }
    for (kind, outcome, code, expected) in cases {
        assert_eq!(outcome, "permanent", "{kind}");
        assert_eq!(code, expected, "{kind}");
    }
    assert!(
        h.feishu.violations().iter().any(|v| v.contains("sign")),
        "{:?}",
        h.feishu.violations()
    );
    assert!(
        h.ding.violations().iter().any(|v| v.contains("sign")),
        "{:?}",
        h.ding.violations()
    );
    assert!(
        h.apns
            .violations()
            .iter()
            .any(|v| v.contains("InvalidProviderToken")),
        "{:?}",
        h.apns.violations()
    );
}
