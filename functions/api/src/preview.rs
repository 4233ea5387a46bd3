//! `POST /tasks/{id}/preview` and `POST /tasks/preview`: render exactly what a task would send,
//! per channel, without sending — from a supplied event, or a sample one.
use axum::extract::State;
use axum::Json;
use chrono::Utc;
use notify_channels::SendRequest;
use notify_domain::event::{Actor, CommentRef, SectionRef};
use notify_domain::schedule::Schedule;
use notify_domain::{
    EventEnvelope, Message, RecipientRole, SecretBundle, SectionEvent, SectionEventName, Source,
    Target, Task, Trigger,
};
use notify_service::templates::RenderInput;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{Id, OptionalJsonBody, User};
use crate::resources::load;
use crate::tasks::{check_pair, load_task, validate};
use crate::AppState;

/// What to render with; everything optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PreviewInput {
    /// An EventBridge event (`detail-type` + `detail`, see docs/events.md). `id` and
    /// `detail.recipients` may be left out.
    #[serde(default)]
    event: Option<Value>,
    /// The recipient's role for the wording; default `creator`.
    #[serde(default)]
    role: Option<RecipientRole>,
}

/// A task body as for `POST /tasks`, plus what to render with.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsavedPreview {
    title: String,
    #[serde(default)]
    enabled: Option<bool>,
    source_id: String,
    target_id: String,
    trigger: Trigger,
    content: notify_domain::Content,
    #[serde(default)]
    language: notify_domain::Language,
    #[serde(default)]
    event: Option<Value>,
    #[serde(default)]
    role: Option<RecipientRole>,
}

/// `POST /tasks/{id}/preview` (the body is optional).
pub async fn saved(
    State(state): State<AppState>,
    User(user): User,
    Id(id): Id,
    OptionalJsonBody(input): OptionalJsonBody<PreviewInput>,
) -> Result<Json<Value>, ApiError> {
    let task = load_task(&state, &user, &id).await?;
    render(&state, &task, input).await.map(Json)
}

/// `POST /tasks/preview` with a task body as for `POST /tasks`, plus `event` and `role`.
pub async fn unsaved(
    State(state): State<AppState>,
    User(user): User,
    crate::extract::JsonBody(body): crate::extract::JsonBody<UnsavedPreview>,
) -> Result<Json<Value>, ApiError> {
    let mut draft = body;
    let input = PreviewInput {
        event: draft.event.take(),
        role: draft.role,
    };
    let schedule = validate(
        &draft.title,
        &draft.trigger,
        &draft.content,
        &state.dispatcher.settings.validation,
    )?;
    let kind = check_pair(&state, &user, &draft.source_id, &draft.target_id).await?;
    let now = Utc::now();
    let task = Task {
        id: "unsaved".into(),
        user_id: user,
        title: draft.title,
        enabled: draft.enabled.unwrap_or(true),
        source_id: draft.source_id,
        target_id: draft.target_id,
        kind,
        trigger: draft.trigger,
        content: draft.content,
        language: draft.language,
        next_fire_at: schedule.and_then(|s| s.next_after(now)),
        created_at: now,
        updated_at: now,
        version: 0,
    };
    render(&state, &task, input).await.map(Json)
}

fn sample_event(name: SectionEventName, user: &str, role: RecipientRole) -> SectionEvent {
    SectionEvent {
        name,
        event_id: "preview".into(),
        occurred_at: Some(Utc::now()),
        section: SectionRef {
            id: "sample-section".into(),
            title: "Sample section".into(),
            cover_url: None,
        },
        actor: Some(Actor {
            id: "sample-user".into(),
            name: "Alex".into(),
        }),
        comment: (name == SectionEventName::SectionCommented).then(|| CommentRef {
            id: "sample-comment".into(),
            text: "This is what a comment looks like.".into(),
        }),
        recipients: vec![notify_domain::Recipient {
            user_id: user.into(),
            role,
        }],
    }
}

/// Parses a supplied event, filling what a preview does not need the caller to invent.
fn supplied_event(
    mut value: Value,
    user: &str,
    role: RecipientRole,
) -> Result<SectionEvent, ApiError> {
    if let Some(object) = value.as_object_mut() {
        object.entry("id").or_insert_with(|| json!("preview"));
        if let Some(detail) = object.get_mut("detail").and_then(Value::as_object_mut) {
            detail
                .entry("recipients")
                .or_insert_with(|| json!([{"user_id": user, "role": role}]));
        }
    }
    let envelope: EventEnvelope = serde_json::from_value(value)
        .map_err(|e| ApiError::field("event", format!("is not an EventBridge event: {e}")))?;
    SectionEvent::from_envelope(envelope).map_err(|e| {
        let errors = e
            .errors
            .into_iter()
            .map(|f| notify_domain::FieldError::new(format!("event.{}", f.field), f.message))
            .collect();
        ApiError::Validation(notify_domain::ValidationError { errors })
    })
}

async fn render(state: &AppState, task: &Task, input: PreviewInput) -> Result<Value, ApiError> {
    let dispatcher = &state.dispatcher;
    let role = input.role.unwrap_or(RecipientRole::Creator);
    let message: Message = match &task.trigger {
        Trigger::Event { event } => {
            let section_event = match input.event {
                Some(value) => supplied_event(value, &task.user_id, role)?,
                None => sample_event(*event, &task.user_id, role),
            };
            if section_event.name != *event {
                return Err(ApiError::field(
                    "event.detail-type",
                    format!(
                        "this task is triggered by {event}, not {}",
                        section_event.name
                    ),
                ));
            }
            dispatcher
                .templates
                .render(
                    &task.content,
                    task.language,
                    RenderInput::Event {
                        event: &section_event,
                        role,
                    },
                )
                .map_err(|e| ApiError::Internal(e.to_string()))?
        }
        Trigger::Schedule { cron, timezone, .. } => {
            let schedule = Schedule::parse(cron, timezone)
                .map_err(|e| ApiError::field("trigger.cron", e.to_string()))?;
            let slot = task
                .next_fire_at
                .or_else(|| schedule.next_after(Utc::now()))
                .unwrap_or_else(Utc::now);
            // The Daily Summary shows what the user's real recent activity would give.
            let summary = dispatcher
                .daily_summary(&task.user_id, slot, schedule.timezone())
                .await?;
            dispatcher
                .templates
                .render(
                    &task.content,
                    task.language,
                    RenderInput::Schedule {
                        slot,
                        timezone: schedule.timezone(),
                        summary: Some(&summary),
                    },
                )
                .map_err(|e| ApiError::Internal(e.to_string()))?
        }
    };
    let source = load::<Source>(state, &task.user_id, &task.source_id).await?;
    let target = load::<Target>(state, &task.user_id, &task.target_id).await?;
    let channel = dispatcher
        .channels
        .get(task.kind)
        .ok_or_else(|| ApiError::Internal(format!("no channel for {}", task.kind)))?;
    // Previews never read secrets: they show what is sent, minus signatures and tokens.
    let no_secrets = SecretBundle::new();
    let preview = channel
        .preview(&SendRequest {
            source_config: &source.config,
            source_secrets: &no_secrets,
            target_config: &target.config,
            target_secrets: &no_secrets,
            message: &message,
        })
        .map_err(|outcome| {
            ApiError::field(
                "target_id",
                outcome
                    .message()
                    .unwrap_or("cannot be rendered")
                    .to_string(),
            )
        })?;
    Ok(json!({
        "kind": task.kind,
        "message": message,
        "parts": preview.parts,
        "notes": preview.notes,
    }))
}
