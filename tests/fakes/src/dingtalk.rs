//! A DingTalk custom robot server (`POST /robot/send?access_token=…`).
//!
//! Checks the access token, the signature when the robot has a signing secret (recomputed here:
//! base64(HMAC-SHA256(key = secret, message = `"{timestamp}\n{secret}"`)), timestamp in
//! milliseconds within an hour of now, `sign` URL-encoded once in the query) and the body's shape,
//! and answers like DingTalk: HTTP 200 with `{"errcode":0,"errmsg":"ok"}`, or HTTP 200 with the
//! error code (300001 unknown token, 310000 refused by the security settings, or whatever is
//! scripted).
use std::collections::{HashMap, VecDeque};
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
}

#[derive(Clone)]
pub struct FakeDingtalk {
    pub base_url: String,
    access_token: String,
    secret: Option<String>,
    inner: Arc<Mutex<Inner>>,
}

impl FakeDingtalk {
    /// Starts a server whose one robot has `access_token` and, if given, the signing secret.
    pub async fn start(access_token: &str, secret: Option<&str>) -> FakeDingtalk {
        let fake = FakeDingtalk {
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
    pub fn violations(&self) -> Vec<String> {
        self.inner.lock().unwrap().violations.clone()
    }

    pub fn script(&self, replies: impl IntoIterator<Item = RobotReply>) {
        self.inner.lock().unwrap().script.extend(replies);
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

fn robot_error(errcode: i64, errmsg: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"errcode": errcode, "errmsg": errmsg})),
    )
        .into_response()
}

fn check_body(body: &Value, violations: &mut Vec<String>) {
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
}

async fn handle(
    State(fake): State<FakeDingtalk>,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw_query = uri.query().unwrap_or("").to_string();
    if query.get("access_token") != Some(&fake.access_token) {
        return robot_error(300001, "token is not exist");
    }
    let mut violations = Vec::new();
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
        // `Query` decodes the value once (and '+' as a space), so a sign that was not
        // URL-encoded, or was encoded twice, does not match.
        Some(secret) => match (query.get("timestamp"), query.get("sign")) {
            (Some(ts), Some(sign)) => {
                let fresh = ts
                    .parse::<i64>()
                    .is_ok_and(|t| (chrono::Utc::now().timestamp_millis() - t).abs() <= 3_600_000);
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
            if query.contains_key("sign") || query.contains_key("timestamp") {
                violations.push("signed, but the robot has no signing secret".into());
            }
        }
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
        violations.push(format!("body is not JSON: {e}"));
        Value::Null
    });
    check_body(&parsed, &mut violations);
    let reply = {
        let mut inner = fake.inner.lock().unwrap();
        inner.violations.extend(violations);
        inner.requests.push(RobotRequest {
            raw_query,
            body: parsed,
        });
        if !signature_ok {
            None
        } else {
            Some(inner.script.pop_front().unwrap_or(RobotReply::Ok))
        }
    };
    match reply {
        None => robot_error(310000, SIGN_MISMATCH),
        Some(RobotReply::Ok) => robot_error(0, "ok"),
        Some(RobotReply::Error { errcode, errmsg }) => robot_error(errcode, &errmsg),
        Some(RobotReply::Raw { status, body }) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        )
            .into_response(),
    }
}
