//! `/sources` and `/targets`: the same shape (name, kind, config with secret fields), so one
//! set of functions serves both through [`Role`].
use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use notify_domain::fields::validate_config;
use notify_domain::validate::{check_text, Problems};
use notify_domain::{
    ChannelKind, DisabledReason, FieldSpec, KindSpec, Page, SecretBundle, SecretOwner, Source,
    Target, WriteMode,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::extract::{JsonBody, Paging, User};
use crate::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Target,
}

impl Role {
    fn fields(self, spec: &'static KindSpec) -> &'static [FieldSpec] {
        match self {
            Role::Source => spec.source_fields,
            Role::Target => spec.target_fields,
        }
    }
    fn owner(self, id: &str) -> SecretOwner<'_> {
        match self {
            Role::Source => SecretOwner::Source(id),
            Role::Target => SecretOwner::Target(id),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    name: String,
    kind: String,
    #[serde(default)]
    config: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    name: Option<String>,
    kind: Option<String>,
    /// Fields to change; a field set to `null` is removed (optional fields only). Secret
    /// fields left out keep their stored value.
    config: Option<Map<String, Value>>,
}

/// The validated parts of a source or target.
struct Draft {
    name: String,
    kind: ChannelKind,
    config: Map<String, Value>,
    secret_fields: Vec<String>,
    new_secrets: SecretBundle,
}

#[derive(Serialize)]
pub struct ResourceView {
    id: String,
    name: String,
    kind: ChannelKind,
    config: Map<String, Value>,
    /// Each secret field of the kind and whether it is set. Values are never returned.
    secrets: BTreeMap<&'static str, SecretState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled: Option<DisabledReason>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: u64,
}

#[derive(Serialize)]
struct SecretState {
    set: bool,
}

#[derive(Serialize)]
pub struct ListView<T> {
    items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

impl<T> ListView<T> {
    pub fn from_page<U>(page: Page<U>, f: impl FnMut(U) -> T) -> Self {
        ListView {
            items: page.items.into_iter().map(f).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

fn parse_kind(state: &AppState, kind: &str) -> Result<&'static KindSpec, ApiError> {
    ChannelKind::parse(kind)
        .and_then(|k| state.dispatcher.channels.spec(k))
        .ok_or_else(|| {
            let kinds: Vec<&str> = ChannelKind::ALL.iter().map(|k| k.as_str()).collect();
            ApiError::field(
                "kind",
                format!(
                    "'{kind}' is not a kind; expected one of: {}",
                    kinds.join(", ")
                ),
            )
        })
}

fn check_name(problems: &mut Problems, name: &str) {
    check_text(problems, "name", name, 100, false);
}

fn draft(
    state: &AppState,
    role: Role,
    spec: &'static KindSpec,
    name: String,
    config: Map<String, Value>,
    existing_secrets: &BTreeSet<String>,
) -> Result<Draft, ApiError> {
    let mut problems = Problems::default();
    check_name(&mut problems, &name);
    let fields = role.fields(spec);
    let split = match validate_config(
        fields,
        &config,
        existing_secrets,
        &state.dispatcher.settings.validation,
        "config",
    ) {
        Ok(split) => Some(split),
        Err(err) => {
            problems.extend(err);
            None
        }
    };
    if let (Some(split), Role::Source) = (&split, role) {
        let channel = state.dispatcher.channels.get(spec.kind);
        if let Some(Err((field, problem))) = channel.map(|c| c.check_source_secrets(&split.secrets))
        {
            problems.push(format!("config.{field}"), problem);
        }
    }
    problems.into_result()?;
    let split = split.expect("no problems means the config validated");
    let mut secret_fields: BTreeSet<String> = existing_secrets.clone();
    secret_fields.extend(split.secrets.field_names().map(str::to_string));
    // Only fields this kind declares as secret are kept (a kind change would drop others).
    secret_fields.retain(|f| fields.iter().any(|spec| spec.secret && spec.name == f));
    Ok(Draft {
        name: name.trim().to_string(),
        kind: spec.kind,
        config: split.public,
        secret_fields: secret_fields.into_iter().collect(),
        new_secrets: split.secrets,
    })
}

/// Each secret field of the kind and whether it is set.
fn secret_states(
    state: &AppState,
    role: Role,
    kind: ChannelKind,
    set: &[String],
) -> BTreeMap<&'static str, SecretState> {
    state
        .dispatcher
        .channels
        .spec(kind)
        .map(|spec| {
            role.fields(spec)
                .iter()
                .filter(|f| f.secret)
                .map(|f| {
                    (
                        f.name,
                        SecretState {
                            set: set.iter().any(|s| s == f.name),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn source_view(state: &AppState, s: Source) -> ResourceView {
    ResourceView {
        secrets: secret_states(state, Role::Source, s.kind, &s.secret_fields),
        id: s.id,
        name: s.name,
        kind: s.kind,
        config: s.config,
        disabled: None,
        created_at: s.created_at,
        updated_at: s.updated_at,
        version: s.version,
    }
}

pub fn target_view(state: &AppState, t: Target) -> ResourceView {
    ResourceView {
        secrets: secret_states(state, Role::Target, t.kind, &t.secret_fields),
        id: t.id,
        name: t.name,
        kind: t.kind,
        config: t.config,
        disabled: t.disabled,
        created_at: t.created_at,
        updated_at: t.updated_at,
        version: t.version,
    }
}

/// Stores new secret values (merged over the stored ones) before the item that refers to them.
async fn store_secrets(
    state: &AppState,
    user: &str,
    role: Role,
    id: &str,
    draft: &Draft,
    merge: bool,
) -> Result<(), ApiError> {
    if draft.new_secrets.is_empty() {
        return Ok(());
    }
    let secrets = &state.dispatcher.secrets;
    let mut bundle = if merge {
        match secrets.get_secrets(role.owner(id)).await {
            Ok(b) => b,
            Err(notify_domain::SecretError::NotFound(_)) => SecretBundle::new(),
            Err(e) => return Err(e.into()),
        }
    } else {
        SecretBundle::new()
    };
    bundle.merge(draft.new_secrets.clone());
    secrets.put_secrets(user, role.owner(id), &bundle).await?;
    Ok(())
}

fn merge_patch(mut base: Map<String, Value>, patch: Map<String, Value>) -> Map<String, Value> {
    for (k, v) in patch {
        if v.is_null() {
            base.remove(&k);
        } else {
            base.insert(k, v);
        }
    }
    base
}

fn check_kind_unchanged(kind: Option<String>, current: ChannelKind) -> Result<(), ApiError> {
    match kind {
        Some(k) if k != current.as_str() => Err(ApiError::field(
            "kind",
            format!("the kind of an existing resource cannot change (it is {current}); create a new one instead"),
        )),
        _ => Ok(()),
    }
}

// ---- sources ----

pub async fn create_source(
    State(state): State<AppState>,
    User(user): User,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, Json<ResourceView>), ApiError> {
    let spec = parse_kind(&state, &body.kind)?;
    let draft = draft(
        &state,
        Role::Source,
        spec,
        body.name,
        body.config,
        &BTreeSet::new(),
    )?;
    let id = uuid::Uuid::now_v7().to_string();
    store_secrets(&state, &user, Role::Source, &id, &draft, false).await?;
    let now = Utc::now();
    let source = Source {
        id,
        user_id: user,
        name: draft.name,
        kind: draft.kind,
        config: draft.config,
        secret_fields: draft.secret_fields,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    state
        .dispatcher
        .config
        .save_source(&source, WriteMode::Create)
        .await?;
    Ok((StatusCode::CREATED, Json(source_view(&state, source))))
}

pub async fn list_sources(
    State(state): State<AppState>,
    User(user): User,
    Paging(page): Paging,
) -> Result<Json<ListView<ResourceView>>, ApiError> {
    let page = state.dispatcher.config.list_sources(&user, &page).await?;
    Ok(Json(ListView::from_page(page, |s| source_view(&state, s))))
}

pub async fn load_source(state: &AppState, user: &str, id: &str) -> Result<Source, ApiError> {
    state
        .dispatcher
        .config
        .get_source(user, id)
        .await?
        .ok_or(ApiError::not_found("source"))
}

pub async fn get_source(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Json<ResourceView>, ApiError> {
    let source = load_source(&state, &user, &id).await?;
    Ok(Json(source_view(&state, source)))
}

pub async fn patch_source(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<Json<ResourceView>, ApiError> {
    let current = load_source(&state, &user, &id).await?;
    check_kind_unchanged(body.kind, current.kind)?;
    let spec = parse_kind(&state, current.kind.as_str())?;
    let config = merge_patch(current.config.clone(), body.config.unwrap_or_default());
    let existing: BTreeSet<String> = current.secret_fields.iter().cloned().collect();
    let draft = draft(
        &state,
        Role::Source,
        spec,
        body.name.unwrap_or(current.name.clone()),
        config,
        &existing,
    )?;
    store_secrets(&state, &user, Role::Source, &id, &draft, true).await?;
    let source = Source {
        name: draft.name,
        config: draft.config,
        secret_fields: draft.secret_fields,
        updated_at: Utc::now(),
        version: current.version + 1,
        ..current
    };
    state
        .dispatcher
        .config
        .save_source(
            &source,
            WriteMode::Replace {
                expected_version: current.version,
            },
        )
        .await?;
    Ok(Json(source_view(&state, source)))
}

pub async fn delete_source(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    load_source(&state, &user, &id).await?;
    crate::tasks::ensure_unused(&state, &user, |t| t.source_id == id, "source").await?;
    state
        .dispatcher
        .secrets
        .delete_secrets(SecretOwner::Source(&id))
        .await?;
    state.dispatcher.config.delete_source(&user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- targets ----

pub async fn create_target(
    State(state): State<AppState>,
    User(user): User,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, Json<ResourceView>), ApiError> {
    let spec = parse_kind(&state, &body.kind)?;
    let draft = draft(
        &state,
        Role::Target,
        spec,
        body.name,
        body.config,
        &BTreeSet::new(),
    )?;
    let id = uuid::Uuid::now_v7().to_string();
    store_secrets(&state, &user, Role::Target, &id, &draft, false).await?;
    let now = Utc::now();
    let target = Target {
        id,
        user_id: user,
        name: draft.name,
        kind: draft.kind,
        config: draft.config,
        secret_fields: draft.secret_fields,
        disabled: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    state
        .dispatcher
        .config
        .save_target(&target, WriteMode::Create)
        .await?;
    Ok((StatusCode::CREATED, Json(target_view(&state, target))))
}

pub async fn list_targets(
    State(state): State<AppState>,
    User(user): User,
    Paging(page): Paging,
) -> Result<Json<ListView<ResourceView>>, ApiError> {
    let page = state.dispatcher.config.list_targets(&user, &page).await?;
    Ok(Json(ListView::from_page(page, |t| target_view(&state, t))))
}

pub async fn load_target(state: &AppState, user: &str, id: &str) -> Result<Target, ApiError> {
    state
        .dispatcher
        .config
        .get_target(user, id)
        .await?
        .ok_or(ApiError::not_found("target"))
}

pub async fn get_target(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Json<ResourceView>, ApiError> {
    let target = load_target(&state, &user, &id).await?;
    Ok(Json(target_view(&state, target)))
}

/// Any accepted update re-enables a target that a provider had reported dead: the user has
/// looked at it.
pub async fn patch_target(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<Json<ResourceView>, ApiError> {
    let current = load_target(&state, &user, &id).await?;
    check_kind_unchanged(body.kind, current.kind)?;
    let spec = parse_kind(&state, current.kind.as_str())?;
    let config = merge_patch(current.config.clone(), body.config.unwrap_or_default());
    let existing: BTreeSet<String> = current.secret_fields.iter().cloned().collect();
    let draft = draft(
        &state,
        Role::Target,
        spec,
        body.name.unwrap_or(current.name.clone()),
        config,
        &existing,
    )?;
    store_secrets(&state, &user, Role::Target, &id, &draft, true).await?;
    let target = Target {
        name: draft.name,
        config: draft.config,
        secret_fields: draft.secret_fields,
        disabled: None,
        updated_at: Utc::now(),
        version: current.version + 1,
        ..current
    };
    state
        .dispatcher
        .config
        .save_target(
            &target,
            WriteMode::Replace {
                expected_version: current.version,
            },
        )
        .await?;
    Ok(Json(target_view(&state, target)))
}

pub async fn delete_target(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    load_target(&state, &user, &id).await?;
    crate::tasks::ensure_unused(&state, &user, |t| t.target_id == id, "target").await?;
    state
        .dispatcher
        .secrets
        .delete_secrets(SecretOwner::Target(&id))
        .await?;
    state.dispatcher.config.delete_target(&user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
