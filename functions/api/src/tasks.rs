//! `/tasks`: validation of source/target ownership and kinds, triggers and content.
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use notify_domain::model::MAX_JITTER_MINUTES;
use notify_domain::schedule::{Schedule, ScheduleError};
use notify_domain::validate::{check_fetched_link, check_link, check_text, Problems};
use notify_domain::{
    ChannelKind, Content, Language, PageRequest, Task, TemplateId, Trigger, ValidationPolicy,
    WriteMode,
};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{Id, JsonBody, Paging, User};
use crate::resources::ListView;
use crate::AppState;

/// How many upcoming fire times a scheduled task shows.
const UPCOMING: usize = 5;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    title: String,
    #[serde(default = "yes")]
    enabled: bool,
    source_id: String,
    target_id: String,
    trigger: Trigger,
    content: Content,
    #[serde(default)]
    language: Language,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchTask {
    title: Option<String>,
    enabled: Option<bool>,
    source_id: Option<String>,
    target_id: Option<String>,
    trigger: Option<Trigger>,
    content: Option<Content>,
    language: Option<Language>,
}

#[derive(Serialize)]
pub struct TaskView {
    #[serde(flatten)]
    task: Task,
    /// For scheduled tasks: the next few fire times, so users can check their expression.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    upcoming: Vec<DateTime<Utc>>,
}

fn task_view(task: Task) -> TaskView {
    let upcoming = match (&task.trigger, task.enabled) {
        (Trigger::Schedule { cron, timezone, .. }, true) => Schedule::parse(cron, timezone)
            .map(|s| s.upcoming(Utc::now(), UPCOMING))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    TaskView { task, upcoming }
}

/// Checks everything about a task except ownership; returns the parsed schedule.
pub(crate) fn validate(
    title: &str,
    trigger: &Trigger,
    content: &Content,
    policy: &ValidationPolicy,
) -> Result<Option<Schedule>, ApiError> {
    let mut problems = Problems::default();
    check_text(&mut problems, "title", title, 200, false);
    let schedule = match trigger {
        Trigger::Event { .. } => None,
        Trigger::Schedule {
            cron,
            timezone,
            jitter_minutes,
        } => match Schedule::parse(cron, timezone) {
            Ok(_) if *jitter_minutes > MAX_JITTER_MINUTES => {
                problems.push(
                    "trigger.jitter_minutes",
                    format!("must be from 0 to {MAX_JITTER_MINUTES} minutes"),
                );
                None
            }
            Ok(s) => Some(s),
            Err(e @ ScheduleError::Timezone(_)) => {
                problems.push("trigger.timezone", e.to_string());
                None
            }
            Err(e @ ScheduleError::Cron(_)) => {
                problems.push("trigger.cron", e.to_string());
                None
            }
        },
    };
    match content {
        Content::Template { template } => match (template.event(), trigger) {
            (Some(needed), Trigger::Event { event }) if needed != *event => problems.push(
                "content.template",
                format!("template {} is written for {needed} events, but the trigger is {event}", template.as_str()),
            ),
            (Some(needed), Trigger::Schedule { .. }) => problems.push(
                "content.template",
                format!("template {} needs a {needed} event trigger; a schedule can use daily_summary or custom content", template.as_str()),
            ),
            (None, Trigger::Event { event }) => problems.push(
                "content.template",
                format!(
                    "template {} runs on a schedule; for {event} use {}",
                    template.as_str(),
                    TemplateId::for_event(*event).as_str()
                ),
            ),
            _ => {}
        },
        Content::Custom { title, body, link, cover_url } => {
            check_text(&mut problems, "content.title", title, 200, false);
            check_text(&mut problems, "content.body", body, 4000, true);
            if let Some(link) = link {
                check_link(&mut problems, "content.link", link);
            }
            if let Some(cover) = cover_url {
                // The Feishu channel downloads the cover: it must be on a public host.
                check_fetched_link(&mut problems, "content.cover_url", cover, policy);
            }
        }
    }
    problems.into_result()?;
    Ok(schedule)
}

/// The source and target must both be the caller's (another user's look missing: 404) and
/// of the same kind (422 naming both kinds and the allowed pairs).
pub(crate) async fn check_pair(
    state: &AppState,
    user: &str,
    source_id: &str,
    target_id: &str,
) -> Result<ChannelKind, ApiError> {
    let config = &state.dispatcher.config;
    let source = config
        .get_source(user, source_id)
        .await?
        .ok_or(ApiError::NotFound {
            what: "source",
            field: Some("source_id"),
        })?;
    let target = config
        .get_target(user, target_id)
        .await?
        .ok_or(ApiError::NotFound {
            what: "target",
            field: Some("target_id"),
        })?;
    if source.kind != target.kind {
        return Err(ApiError::field(
            "target_id",
            ChannelKind::mismatch(source.kind, target.kind),
        ));
    }
    Ok(source.kind)
}

pub async fn create_task(
    State(state): State<AppState>,
    User(user): User,
    JsonBody(body): JsonBody<CreateTask>,
) -> Result<(StatusCode, Json<TaskView>), ApiError> {
    let schedule = validate(
        &body.title,
        &body.trigger,
        &body.content,
        &state.dispatcher.settings.validation,
    )?;
    let kind = check_pair(&state, &user, &body.source_id, &body.target_id).await?;
    let now = Utc::now();
    // The first slot is strictly after now: saving a task never fires it.
    let next_fire_at = schedule.and_then(|s| s.next_after(now));
    let task = Task {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: user,
        title: body.title.trim().to_string(),
        enabled: body.enabled,
        source_id: body.source_id,
        target_id: body.target_id,
        kind,
        trigger: body.trigger,
        content: body.content,
        language: body.language,
        next_fire_at,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    state
        .dispatcher
        .config
        .save_task(&task, WriteMode::Create)
        .await?;
    Ok((StatusCode::CREATED, Json(task_view(task))))
}

pub async fn list_tasks(
    State(state): State<AppState>,
    User(user): User,
    Paging(page): Paging,
) -> Result<Json<ListView<TaskView>>, ApiError> {
    let page = state.dispatcher.config.list_tasks(&user, &page).await?;
    Ok(Json(ListView::from_page(page, task_view)))
}

pub(crate) async fn load_task(state: &AppState, user: &str, id: &str) -> Result<Task, ApiError> {
    state
        .dispatcher
        .config
        .get_task(user, id)
        .await?
        .ok_or(ApiError::not_found("task"))
}

pub async fn get_task(
    State(state): State<AppState>,
    User(user): User,
    Id(id): Id,
) -> Result<Json<TaskView>, ApiError> {
    Ok(Json(task_view(load_task(&state, &user, &id).await?)))
}

pub async fn patch_task(
    State(state): State<AppState>,
    User(user): User,
    Id(id): Id,
    JsonBody(body): JsonBody<PatchTask>,
) -> Result<Json<TaskView>, ApiError> {
    let current = load_task(&state, &user, &id).await?;
    let title = body.title.unwrap_or_else(|| current.title.clone());
    let trigger = body.trigger.unwrap_or_else(|| current.trigger.clone());
    let content = body.content.unwrap_or_else(|| current.content.clone());
    let enabled = body.enabled.unwrap_or(current.enabled);
    let schedule = validate(
        &title,
        &trigger,
        &content,
        &state.dispatcher.settings.validation,
    )?;
    let source_id = body.source_id.unwrap_or_else(|| current.source_id.clone());
    let target_id = body.target_id.unwrap_or_else(|| current.target_id.clone());
    let kind = check_pair(&state, &user, &source_id, &target_id).await?;
    // Keep the pending slot unless the schedule or the enabled flag changed; then start
    // afresh from now (never firing because of the update itself).
    let timing_changed = trigger != current.trigger || enabled != current.enabled;
    let next_fire_at = match schedule {
        None => None,
        Some(_) if !timing_changed => current.next_fire_at,
        Some(s) => s.next_after(Utc::now()),
    };
    let task = Task {
        title: title.trim().to_string(),
        enabled,
        source_id,
        target_id,
        kind,
        trigger,
        content,
        language: body.language.unwrap_or(current.language),
        next_fire_at,
        updated_at: Utc::now(),
        version: current.version + 1,
        ..current.clone()
    };
    state
        .dispatcher
        .config
        .save_task(
            &task,
            WriteMode::Replace {
                expected_version: current.version,
            },
        )
        .await?;
    Ok(Json(task_view(task)))
}

pub async fn delete_task(
    State(state): State<AppState>,
    User(user): User,
    Id(id): Id,
) -> Result<StatusCode, ApiError> {
    if state.dispatcher.config.delete_task(&user, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("task"))
    }
}

/// Refuses to delete a source or target that a task still uses (409 naming the tasks).
pub async fn ensure_unused(
    state: &AppState,
    user: &str,
    uses: impl Fn(&Task) -> bool,
    what: &str,
) -> Result<(), ApiError> {
    let mut users = Vec::new();
    let mut page = PageRequest {
        limit: 100,
        cursor: None,
    };
    loop {
        let batch = state.dispatcher.config.list_tasks(user, &page).await?;
        users.extend(batch.items.iter().filter(|t| uses(t)).map(|t| t.id.clone()));
        match batch.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    if users.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Conflict(format!(
            "the {what} is used by task(s) {}; delete or change them first",
            users.join(", ")
        )))
    }
}
