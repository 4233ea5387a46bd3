//! A fresh, isolated service instance on moto: its own table and secret prefix, the real
//! dispatcher and API router, and helpers to call the API as a given user.
use std::collections::HashMap;

use aws_config::SdkConfig;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use notify_api::{router, AppState};
use notify_service::{Dispatcher, Settings};
use serde_json::Value;
use tower::ServiceExt;

pub const JWT_KEY: &str = "test-hs256-key-for-the-notify-testkit";

pub struct TestEnv {
    pub aws: SdkConfig,
    pub table: String,
    pub secret_prefix: String,
    pub dispatcher: Dispatcher,
    pub router: Router,
}

/// A response from the API.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
    pub raw: String,
}

impl TestEnv {
    pub async fn start() -> TestEnv {
        TestEnv::start_with(|_| {}).await
    }

    /// Starts with settings adjusted by `adjust` (provider base URLs, for instance).
    pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> TestEnv {
        crate::aws::require_moto().await;
        let aws = crate::aws::moto_config().await;
        let run = uuid::Uuid::new_v4().simple().to_string();
        let table = format!("notify-test-{run}");
        let secret_prefix = format!("notify-test/{run}/");
        notify_aws::schema::create_table(&aws_sdk_dynamodb::Client::new(&aws), &table)
            .await
            .expect("create the test table on moto");
        let vars = HashMap::from([
            (notify_service::settings::TABLE, table.clone()),
            (
                notify_service::settings::SECRET_PREFIX,
                secret_prefix.clone(),
            ),
            (
                notify_service::settings::WEB_BASE_URL,
                "https://app.example.test".to_string(),
            ),
            (notify_service::settings::JWT_HS256_KEY, JWT_KEY.to_string()),
            (
                notify_service::settings::ALLOW_LOCAL_ENDPOINTS,
                "true".to_string(),
            ),
            (
                notify_service::settings::PROVIDER_TIMEOUT_SECONDS,
                "5".to_string(),
            ),
        ]);
        let mut settings = Settings::from_lookup(|k| vars.get(k).cloned()).expect("test settings");
        adjust(&mut settings);
        let dispatcher =
            notify_aws::wiring::dispatcher(settings, &aws).expect("wire the dispatcher");
        let router = router(AppState {
            dispatcher: dispatcher.clone(),
        });
        TestEnv {
            aws,
            table,
            secret_prefix,
            dispatcher,
            router,
        }
    }

    /// A valid HS256 token for `user`, expiring in an hour.
    pub fn token(&self, user: &str) -> String {
        mint_token(JWT_KEY, user, 3600)
    }

    /// Calls the API as `user` (no Authorization header when `None`).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        user: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let raw_body = body.map(|b| b.to_string());
        self.call_raw(method, path, user, raw_body.as_deref(), "application/json")
            .await
    }

    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        user: Option<&str>,
        body: Option<&str>,
        content_type: &str,
    ) -> Reply {
        let mut request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(path);
        if let Some(user) = user {
            request = request.header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.token(user)),
            );
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router is infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let raw = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            body,
            raw,
        }
    }

    /// Every item in the table, as raw DynamoDB JSON text (for leak checks).
    pub async fn dump_table(&self) -> String {
        let client = aws_sdk_dynamodb::Client::new(&self.aws);
        let mut out = String::new();
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .expect("scan");
            for item in page.items() {
                out.push_str(&format!("{item:?}\n"));
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out
    }

    /// The secret stored for a resource, read straight from Secrets Manager.
    pub async fn stored_secret(&self, owner: &str, id: &str) -> Option<String> {
        let client = aws_sdk_secretsmanager::Client::new(&self.aws);
        client
            .get_secret_value()
            .secret_id(format!("{}{owner}/{id}", self.secret_prefix))
            .send()
            .await
            .ok()
            .and_then(|o| o.secret_string().map(str::to_string))
    }
}

/// Mints an HS256 JWT like the upstream app's identity provider would.
pub fn mint_token(key: &str, user: &str, valid_for_secs: i64) -> String {
    let claims = serde_json::json!({
        "sub": user,
        "iat": chrono::Utc::now().timestamp(),
        "exp": chrono::Utc::now().timestamp() + valid_for_secs,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .expect("encode token")
}
