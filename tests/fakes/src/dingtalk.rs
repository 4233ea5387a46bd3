//! A DingTalk custom robot server (`POST /robot/send?access_token=…`).
//!
//! Checks the access token, the signature when the robot has a signing secret (recomputed here:
//! base64(HMAC-SHA256(key = secret, message = `"{timestamp}\n{secret}"`)), timestamp in
//! milliseconds within an hour of now, `sign` URL-encoded once in the query), the body's shape and
//! its 20,000-byte limit, and answers like DingTalk: HTTP 200 with `{"errcode":0,"errmsg":"ok"}`,
//! or HTTP 200 with the error code (300001 unknown token, 310000 refused by the security settings,
//! 460101 message too long, or whatever is scripted).
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// DingTalk's `errmsg` for a signature that does not match.
const SIGN_MISMATCH: &str =
    "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]";

/// DingTalk refuses a request body larger than this.
const MAX_BODY_BYTES: usize = 20_000;

/// DingTalk refuses a timestamp further than this from its clock.
const TIMESTAMP_WINDOW_MILLIS: i64 = 3_600_000;

/// What the robot answers, in order; when the script is empty it answers success.
#[derive(Debug, Clone)]
pub enum RobotReply {
    Ok,
    /// HTTP 200 with `{"errcode":errcode,"errmsg":errmsg}` (DingTalk's way of refusing).
    Error {
        errcode: i64,
        errmsg: String,
    },
    /// Any status and raw body (a gateway error, say).
    Raw {
        status: u16,
        body: String,
    },
    /// Never answers, so the sender's timeout is what ends the request.
    Hang,
}

impl RobotReply {
    /// DingTalk's reply when the security settings refuse a message (here: the signature).
    pub fn sign_mismatch() -> RobotReply {
        RobotReply::Error {
            errcode: 310000,
            errmsg: SIGN_MISMATCH.into(),
        }
    }

    /// DingTalk's throttling reply (more than 20 messages a minute).
    pub fn too_fast() -> RobotReply {
        RobotReply::Error {
            errcode: 130101,
            errmsg: "send too fast, exceed 20 times per minute".into(),
        }
    }

    /// What a proxy in front of DingTalk answers when DingTalk is down: not JSON.
    pub fn bad_gateway() -> RobotReply {
        RobotReply::Raw {
            status: 502,
            body: "<html><body>502 Bad Gateway</body></html>".into(),
        }
    }
}

/// One request received.
#[derive(Debug, Clone)]
pub struct RobotRequest {
    /// The query string as sent (still URL-encoded).
    pub raw_query: String,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    requests: Vec<RobotRequest>,
    violations: Vec<String>,
    script: VecDeque<RobotReply>,
    pinned_now_millis: Option<i64>,
    expected_msgtype: Option<String>,
}

#[derive(Clone)]
pub struct FakeDingtalk {
    /// Only in the test's copies; see [`crate::ViolationCheck`].
    _check: Option<Arc<crate::ViolationCheck>>,
    pub base_url: String,
    access_token: String,
    secret: Option<String>,
    inner: Arc<Mutex<Inner>>,
}

impl FakeDingtalk {
    /// Starts a server whose one robot has `access_token` and, if given, the signing secret.
    pub async fn start(access_token: &str, secret: Option<&str>) -> FakeDingtalk {
        let fake = FakeDingtalk {
            _check: None,
            base_url: String::new(),
            access_token: access_token.to_string(),
            secret: secret.map(str::to_string),
            inner: Arc::new(Mutex::new(Inner::default())),
        };
        let app = Router::new()
            .route("/robot/send", post(handle))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeDingtalk {
            base_url: format!("http://{addr}"),
            _check: Some(crate::ViolationCheck::new(
                "DingTalk",
                &fake.inner,
                |inner| &mut inner.violations,
            )),
            ..fake
        }
    }

    /// The robot's webhook URL.
    pub fn webhook_url(&self) -> String {
        format!(
            "{}/robot/send?access_token={}",
            self.base_url, self.access_token
        )
    }

    /// The protocol violations seen so far (requests the real provider would refuse, or that
    /// break its rules), without asserting anything.
    ///
    /// Takes them: a test that provokes violations on purpose checks them here, and they no
    /// longer fail it when the fake is dropped.
    pub fn violations(&self) -> Vec<String> {
        std::mem::take(&mut self.inner.lock().unwrap().violations)
    }

    pub fn script(&self, replies: impl IntoIterator<Item = RobotReply>) {
        self.inner.lock().unwrap().script.extend(replies);
    }

    /// Sets the fake's clock, for a sender whose clock is pinned: the timestamp window is
    /// checked against it.
    pub fn pin_clock(&self, now_millis: i64) {
        self.inner.lock().unwrap().pinned_now_millis = Some(now_millis);
    }

    /// DingTalk accepts several message types; a sender that should only ever use one says
    /// which, and any other is a violation.
    pub fn expect_msgtype(&self, msgtype: &str) {
        self.inner.lock().unwrap().expected_msgtype = Some(msgtype.to_string());
    }

    /// Requests received, after asserting there was no protocol violation.
    pub fn received(&self) -> Vec<RobotRequest> {
        let inner = self.inner.lock().unwrap();
        assert!(
            inner.violations.is_empty(),
            "DingTalk protocol violations: {:?}",
            inner.violations
        );
        inner.requests.clone()
    }

    /// Bodies of the requests received, after asserting there was no protocol violation.
    pub fn requests(&self) -> Vec<Value> {
        self.received().into_iter().map(|r| r.body).collect()
    }
}

/// base64(HMAC-SHA256(key = secret, message = "{timestamp}\n{secret}")), computed here.
fn expected_sign(timestamp: &str, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{timestamp}\n{secret}").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn errcode_reply(errcode: i64, errmsg: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"errcode": errcode, "errmsg": errmsg})),
    )
        .into_response()
}

fn check_body(body: &Value, expected_msgtype: Option<&str>, violations: &mut Vec<String>) {
    let one_line = |v: &Value| {
        v.as_str()
            .is_some_and(|t| !t.is_empty() && !t.contains('\n'))
    };
    let ok = match body["msgtype"].as_str() {
        Some("text") => body["text"]["content"].is_string(),
        Some("markdown") => {
            one_line(&body["markdown"]["title"]) && body["markdown"]["text"].is_string()
        }
        Some("link") => {
            one_line(&body["link"]["title"])
                && body["link"]["text"].is_string()
                && body["link"]["messageUrl"].is_string()
        }
        Some("actionCard") => {
            one_line(&body["actionCard"]["title"]) && body["actionCard"]["text"].is_string()
        }
        _ => false,
    };
    if !ok {
        violations.push(format!("malformed body {body}"));
    }
    if let Some(expected) = expected_msgtype {
        if body["msgtype"] != expected {
            violations.push(format!("msgtype {} instead of {expected}", body["msgtype"]));
        }
    }
}

async fn handle(
    State(fake): State<FakeDingtalk>,
    uri: Uri,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw_query = uri.query().unwrap_or("").to_string();
    let (now_millis, expected_msgtype) = {
        let inner = fake.inner.lock().unwrap();
        (
            inner
                .pinned_now_millis
                .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
            inner.expected_msgtype.clone(),
        )
    };
    let mut violations = Vec::new();
    // `Query` decodes each value once (and '+' as a space), so a sign that was not URL-encoded,
    // or was encoded twice, does not match.
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    for (i, (name, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(k, _)| k == name) {
            violations.push(format!("{name} appears twice: {raw_query}"));
        }
    }
    let token_ok = get("access_token") == Some(&fake.access_token);
    if !token_ok {
        violations.push(format!("unknown access_token: {raw_query}"));
    }
    if !headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .starts_with("application/json")
    {
        violations.push("content-type is not application/json".into());
    }
    let mut signature_ok = true;
    match &fake.secret {
        Some(secret) => match (get("timestamp"), get("sign")) {
            (Some(ts), Some(sign)) => {
                let fresh = ts
                    .parse::<i64>()
                    .is_ok_and(|t| (now_millis - t).abs() <= TIMESTAMP_WINDOW_MILLIS);
                if !fresh {
                    violations.push(format!("timestamp {ts} is not milliseconds within an hour"));
                    signature_ok = false;
                }
                if *sign != expected_sign(ts, secret) {
                    violations.push(format!("sign {sign:?} does not match timestamp {ts}"));
                    signature_ok = false;
                }
            }
            _ => {
                violations.push(format!("timestamp or sign missing: {raw_query}"));
                signature_ok = false;
            }
        },
        None => {
            if get("sign").is_some() || get("timestamp").is_some() {
                violations.push("signed, but the robot has no signing secret".into());
            }
        }
    }
    let too_long = body.len() > MAX_BODY_BYTES;
    if too_long {
        violations.push(format!(
            "body of {} bytes, over {MAX_BODY_BYTES}",
            body.len()
        ));
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
        violations.push(format!("body is not JSON: {e}"));
        Value::Null
    });
    check_body(&parsed, expected_msgtype.as_deref(), &mut violations);
    let reply = {
        let mut inner = fake.inner.lock().unwrap();
        inner.violations.extend(violations);
        inner.requests.push(RobotRequest {
            raw_query,
            body: parsed,
        });
        // DingTalk checks the token, then the security settings, then the message.
        if !token_ok {
            RobotReply::Error {
                errcode: 300001,
                errmsg: "token is not exist".into(),
            }
        } else if !signature_ok {
            RobotReply::sign_mismatch()
        } else if too_long {
            RobotReply::Error {
                errcode: 460101,
                errmsg: format!("message too long, exceed {MAX_BODY_BYTES} bytes"),
            }
        } else {
            inner.script.pop_front().unwrap_or(RobotReply::Ok)
        }
    };
    match reply {
        RobotReply::Ok => errcode_reply(0, "ok"),
        RobotReply::Error { errcode, errmsg } => errcode_reply(errcode, &errmsg),
        RobotReply::Raw { status, body } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        )
            .into_response(),
        RobotReply::Hang => std::future::pending().await,
    }
}
