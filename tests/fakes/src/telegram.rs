//! A Bot API server: checks the token in the path, the JSON body (`chat_id`, `text` within
//! 4096 UTF-16 units, `parse_mode`), and answers like Telegram.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

/// What the server answers, in order; when the script is empty it answers success.
#[derive(Debug, Clone)]
pub enum BotReply {
    Ok,
    /// `{"ok":false,"error_code":code,"description":...}` with HTTP status `code`.
    Error {
        code: u16,
        description: String,
        retry_after: Option<u64>,
    },
    /// The group was upgraded to a supergroup: Telegram's 400 with `migrate_to_chat_id`.
    Migrated {
        to_chat_id: i64,
    },
}

#[derive(Default)]
struct Inner {
    requests: Vec<Value>,
    violations: Vec<String>,
    script: VecDeque<BotReply>,
}

#[derive(Clone)]
pub struct FakeTelegram {
    pub base_url: String,
    token: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeTelegram {
    /// Starts a server that accepts only `token`.
    pub async fn start(token: &str) -> FakeTelegram {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let fake = FakeTelegram {
            base_url: String::new(),
            token: token.to_string(),
            inner,
        };
        let app = Router::new()
            .route("/{*path}", post(handle))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTelegram {
            base_url: format!("http://{addr}"),
            ..fake
        }
    }

    pub fn script(&self, replies: impl IntoIterator<Item = BotReply>) {
        self.inner.lock().unwrap().script.extend(replies);
    }

    /// Bodies of the `sendMessage` requests received, after asserting there was no protocol
    /// violation.
    pub fn requests(&self) -> Vec<Value> {
        let inner = self.inner.lock().unwrap();
        assert!(
            inner.violations.is_empty(),
            "Bot API protocol violations: {:?}",
            inner.violations
        );
        inner.requests.clone()
    }
}

async fn handle(
    State(fake): State<FakeTelegram>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut violations = Vec::new();
    let Some(rest) = uri.path().strip_prefix("/bot") else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"ok": false, "error_code": 404, "description": "Not Found"})),
        )
            .into_response();
    };
    let (token, method) = rest.split_once('/').unwrap_or((rest, ""));
    if token != fake.token {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
        )
            .into_response();
    }
    if method != "sendMessage" {
        violations.push(format!("unexpected method {method}"));
    }
    if !headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .starts_with("application/json")
    {
        violations.push("content-type is not application/json".into());
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
        violations.push(format!("body is not JSON: {e}"));
        Value::Null
    });
    let text = parsed["text"].as_str().unwrap_or_default().to_string();
    let units = text.encode_utf16().count();
    if units == 0 || units > 4096 {
        violations.push(format!("text has {units} UTF-16 units"));
    }
    if parsed["chat_id"].is_null() {
        violations.push("chat_id missing".into());
    }
    if parsed
        .get("parse_mode")
        .is_some_and(|m| m != "HTML" && m != "MarkdownV2")
    {
        violations.push(format!("parse_mode {}", parsed["parse_mode"]));
    }
    let (reply, message_id) = {
        let mut inner = fake.inner.lock().unwrap();
        inner.violations.extend(violations);
        inner.requests.push(parsed.clone());
        (
            inner.script.pop_front().unwrap_or(BotReply::Ok),
            inner.requests.len() as i64 + 1000,
        )
    };
    match reply {
        BotReply::Ok => (
            StatusCode::OK,
            axum::Json(json!({
                "ok": true,
                "result": {
                    "message_id": message_id,
                    "from": {"id": 7000000001_i64, "is_bot": true, "first_name": "Notify", "username": "notify_test_bot"},
                    "chat": {"id": parsed["chat_id"], "title": "Team", "type": "supergroup"},
                    "date": 1764780000,
                    "text": text,
                }
            })),
        )
            .into_response(),
        BotReply::Migrated { to_chat_id } => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"ok": false, "error_code": 400,
                "description": "Bad Request: group chat was upgraded to a supergroup chat",
                "parameters": {"migrate_to_chat_id": to_chat_id}})),
        )
            .into_response(),
        BotReply::Error { code, description, retry_after } => {
            let mut payload = json!({"ok": false, "error_code": code, "description": description});
            if let Some(wait) = retry_after {
                payload["parameters"] = json!({"retry_after": wait});
            }
            (StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST), axum::Json(payload)).into_response()
        }
    }
}
