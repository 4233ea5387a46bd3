//! `POST /targets/{id}/test`: send a short test message now, through a chosen source, and answer
//! with the provider's outcome — so a user can check a configuration before building tasks.
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use notify_domain::{ChannelKind, Content, Language, Message, SectionEventName, Task, Trigger};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{Id, JsonBody, User};
use crate::resources::load;
use crate::AppState;

/// API Gateway answers by 29 s; leave room for the response.
const TEST_BUDGET: Duration = Duration::from_secs(20);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSend {
    source_id: String,
    #[serde(default)]
    language: Language,
}

fn test_message(language: Language, source: &str, target: &str) -> Message {
    let (title, body) = match language {
        Language::En => (
            "Test notification".to_string(),
            format!("If you can read this, the target “{target}” receives messages sent through the source “{source}”."),
        ),
        Language::ZhCn => (
            "测试通知".to_string(),
            format!("如果你看到这条消息，说明通过来源“{source}”发送到目标“{target}”的通知可以正常送达。"),
        ),
    };
    Message {
        title,
        body,
        link: None,
        link_label: None,
        cover_url: None,
    }
}

pub async fn test_target(
    State(state): State<AppState>,
    User(user): User,
    Id(id): Id,
    JsonBody(body): JsonBody<TestSend>,
) -> Result<Json<Value>, ApiError> {
    let target = load::<notify_domain::Target>(&state, &user, &id).await?;
    let source = load::<notify_domain::Source>(&state, &user, &body.source_id)
        .await
        .map_err(|_| ApiError::NotFound {
            what: "source",
            field: Some("source_id"),
        })?;
    if source.kind != target.kind {
        return Err(ApiError::field(
            "source_id",
            ChannelKind::mismatch(source.kind, target.kind),
        ));
    }
    let message = test_message(body.language, &source.name, &target.name);
    // A task that exists only for this send: same resolution and sending path as real tasks.
    let now = Utc::now();
    let task = Task {
        id: format!("test-{}", uuid::Uuid::now_v7()),
        user_id: user,
        title: "Test send".into(),
        enabled: true,
        source_id: source.id,
        target_id: target.id,
        kind: target.kind,
        trigger: Trigger::Event {
            event: SectionEventName::SectionUpdated,
        },
        content: Content::Custom {
            title: message.title.clone(),
            body: message.body.clone(),
            link: None,
            cover_url: None,
        },
        language: body.language,
        next_fire_at: None,
        created_at: now,
        updated_at: now,
        version: 0,
    };
    let outcome = state
        .dispatcher
        .send_within(&task, &message, Instant::now() + TEST_BUDGET)
        .await;
    state.dispatcher.apply_to_target(&task, &outcome).await;
    tracing::info!(user_id = %task.user_id, target_id = %task.target_id, kind = %task.kind,
        outcome = outcome.label(), provider_code = outcome.code(), "test send");
    let mut answer = serde_json::to_value(&outcome).unwrap_or_else(|_| json!({}));
    answer["message_sent"] = json!({"title": message.title, "body": message.body});
    Ok(Json(answer))
}
