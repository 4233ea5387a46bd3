//! `/sources` and `/targets`: the same shape (name, kind, config with secret fields), so one
//! set of generic handlers serves both through [`Configured`].
use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use notify_domain::fields::validate_config;
use notify_domain::validate::{check_text, Problems};
use notify_domain::{
    ChannelKind, DisabledReason, FieldSpec, KindSpec, Page, PageRequest, SecretBundle, SecretOwner,
    Source, StoreError, Target, WriteMode,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::extract::{Id, JsonBody, Paging, User};
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
    #[serde(default, deserialize_with = "crate::extract::unique_keys")]
    config: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    name: Option<String>,
    kind: Option<String>,
    /// Fields to change; a field set to `null` is removed (optional fields only). Secret
    /// fields left out keep their stored value.
    #[serde(default, deserialize_with = "crate::extract::unique_keys_opt")]
    config: Option<Map<String, Value>>,
}

/// The validated parts of a source or target.
pub struct Draft {
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

/// Stores new secret values, merged over the stored ones (a create writes them before its item, a
/// patch after its version-checked save).
async fn store_secrets(
    state: &AppState,
    user: &str,
    role: Role,
    id: &str,
    new_secrets: &SecretBundle,
    merge: bool,
) -> Result<(), ApiError> {
    if new_secrets.is_empty() {
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
    bundle.merge(new_secrets.clone());
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

/// What differs between a source and a target; the handlers below are written once for both.
#[async_trait::async_trait]
pub trait Configured: Sized + Clone + Send + Sync + 'static {
    const ROLE: Role;
    const WHAT: &'static str;
    fn create(id: String, user: String, draft: Draft, now: DateTime<Utc>) -> Self;
    /// Applies an accepted update (bumping the version).
    fn update(self, draft: Draft, now: DateTime<Utc>) -> Self;
    /// This state again, as version `version` (undoing an update that could not be finished).
    fn restored(self, version: u64, now: DateTime<Utc>) -> Self;
    fn parts(&self) -> (&str, ChannelKind, &Map<String, Value>, &[String], u64);
    fn view(self, state: &AppState) -> ResourceView;
    /// Whether `task` uses the resource `id`.
    fn used_by(task: &notify_domain::Task, id: &str) -> bool;
    async fn load(state: &AppState, user: &str, id: &str) -> Result<Option<Self>, StoreError>;
    async fn save(&self, state: &AppState, mode: WriteMode) -> Result<(), StoreError>;
    async fn remove(state: &AppState, user: &str, id: &str) -> Result<bool, StoreError>;
    async fn list(
        state: &AppState,
        user: &str,
        page: &PageRequest,
    ) -> Result<Page<Self>, StoreError>;
}

#[async_trait::async_trait]
impl Configured for Source {
    const ROLE: Role = Role::Source;
    const WHAT: &'static str = "source";
    fn create(id: String, user: String, draft: Draft, now: DateTime<Utc>) -> Self {
        Source {
            id,
            user_id: user,
            name: draft.name,
            kind: draft.kind,
            config: draft.config,
            secret_fields: draft.secret_fields,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }
    fn restored(self, version: u64, now: DateTime<Utc>) -> Self {
        Source {
            version,
            updated_at: now,
            ..self
        }
    }
    fn update(self, draft: Draft, now: DateTime<Utc>) -> Self {
        Source {
            name: draft.name,
            config: draft.config,
            secret_fields: draft.secret_fields,
            updated_at: now,
            version: self.version + 1,
            ..self
        }
    }
    fn parts(&self) -> (&str, ChannelKind, &Map<String, Value>, &[String], u64) {
        (
            &self.name,
            self.kind,
            &self.config,
            &self.secret_fields,
            self.version,
        )
    }
    fn view(self, state: &AppState) -> ResourceView {
        source_view(state, self)
    }
    fn used_by(task: &notify_domain::Task, id: &str) -> bool {
        task.source_id == id
    }
    async fn load(state: &AppState, user: &str, id: &str) -> Result<Option<Self>, StoreError> {
        state.dispatcher.config.get_source(user, id).await
    }
    async fn save(&self, state: &AppState, mode: WriteMode) -> Result<(), StoreError> {
        state.dispatcher.config.save_source(self, mode).await
    }
    async fn remove(state: &AppState, user: &str, id: &str) -> Result<bool, StoreError> {
        state.dispatcher.config.delete_source(user, id).await
    }
    async fn list(
        state: &AppState,
        user: &str,
        page: &PageRequest,
    ) -> Result<Page<Self>, StoreError> {
        state.dispatcher.config.list_sources(user, page).await
    }
}

#[async_trait::async_trait]
impl Configured for Target {
    const ROLE: Role = Role::Target;
    const WHAT: &'static str = "target";
    fn create(id: String, user: String, draft: Draft, now: DateTime<Utc>) -> Self {
        Target {
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
        }
    }
    /// Any accepted update re-enables a target a provider had reported dead: the user has
    /// looked at it.
    fn restored(self, version: u64, now: DateTime<Utc>) -> Self {
        Target {
            version,
            updated_at: now,
            ..self
        }
    }
    fn update(self, draft: Draft, now: DateTime<Utc>) -> Self {
        Target {
            name: draft.name,
            config: draft.config,
            secret_fields: draft.secret_fields,
            disabled: None,
            updated_at: now,
            version: self.version + 1,
            ..self
        }
    }
    fn parts(&self) -> (&str, ChannelKind, &Map<String, Value>, &[String], u64) {
        (
            &self.name,
            self.kind,
            &self.config,
            &self.secret_fields,
            self.version,
        )
    }
    fn view(self, state: &AppState) -> ResourceView {
        target_view(state, self)
    }
    fn used_by(task: &notify_domain::Task, id: &str) -> bool {
        task.target_id == id
    }
    async fn load(state: &AppState, user: &str, id: &str) -> Result<Option<Self>, StoreError> {
        state.dispatcher.config.get_target(user, id).await
    }
    async fn save(&self, state: &AppState, mode: WriteMode) -> Result<(), StoreError> {
        state.dispatcher.config.save_target(self, mode).await
    }
    async fn remove(state: &AppState, user: &str, id: &str) -> Result<bool, StoreError> {
        state.dispatcher.config.delete_target(user, id).await
    }
    async fn list(
        state: &AppState,
        user: &str,
        page: &PageRequest,
    ) -> Result<Page<Self>, StoreError> {
        state.dispatcher.config.list_targets(user, page).await
    }
}

/// The caller's resource, or 404 (also for another user's).
pub async fn load<R: Configured>(state: &AppState, user: &str, id: &str) -> Result<R, ApiError> {
    R::load(state, user, id)
        .await?
        .ok_or(ApiError::not_found(R::WHAT))
}

pub async fn create<R: Configured>(
    State(state): State<AppState>,
    User(user): User,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, Json<ResourceView>), ApiError> {
    let spec = parse_kind(&state, &body.kind)?;
    let draft = draft(
        &state,
        R::ROLE,
        spec,
        body.name,
        body.config,
        &BTreeSet::new(),
    )?;
    let id = uuid::Uuid::now_v7().to_string();
    // Secrets first: the item never refers to a secret that does not exist.
    store_secrets(&state, &user, R::ROLE, &id, &draft.new_secrets, false).await?;
    let had_secrets = !draft.new_secrets.is_empty();
    let resource = R::create(id.clone(), user, draft, Utc::now());
    if let Err(err) = resource.save(&state, WriteMode::Create).await {
        if had_secrets {
            // Leave no secret behind for an item that was never written.
            if let Err(cleanup) = state
                .dispatcher
                .secrets
                .delete_secrets(R::ROLE.owner(&id))
                .await
            {
                tracing::warn!(id = %id, error = %cleanup, "could not remove the secret of an unsaved resource");
            }
        }
        return Err(err.into());
    }
    Ok((StatusCode::CREATED, Json(resource.view(&state))))
}

pub async fn list<R: Configured>(
    State(state): State<AppState>,
    User(user): User,
    Paging(page): Paging,
) -> Result<Json<ListView<ResourceView>>, ApiError> {
    let page = R::list(&state, &user, &page).await?;
    Ok(Json(ListView::from_page(page, |r| r.view(&state))))
}

pub async fn get<R: Configured>(
    State(state): State<AppState>,
    User(user): User,
    Id(id): Id,
) -> Result<Json<ResourceView>, ApiError> {
    Ok(Json(load::<R>(&state, &user, &id).await?.view(&state)))
}

pub async fn patch<R: Configured>(
    State(state): State<AppState>,
    User(user): User,
    Id(id): Id,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<Json<ResourceView>, ApiError> {
    let current = load::<R>(&state, &user, &id).await?;
    let (name, kind, config, secret_fields, version) = current.parts();
    check_kind_unchanged(body.kind, kind)?;
    let spec = parse_kind(&state, kind.as_str())?;
    let config = merge_patch(config.clone(), body.config.unwrap_or_default());
    let existing: BTreeSet<String> = secret_fields.iter().cloned().collect();
    let name = body.name.unwrap_or_else(|| name.to_string());
    let draft = draft(&state, R::ROLE, spec, name, config, &existing)?;
    let new_secrets = draft.new_secrets.clone();
    let previous = current.clone();
    let updated = current.update(draft, Utc::now());
    // The version-checked save decides which edit wins; only the winner then writes its
    // secrets, so an edit answered 409 changes nothing, and the stored secret belongs to the
    // stored configuration.
    updated
        .save(
            &state,
            WriteMode::Replace {
                expected_version: version,
            },
        )
        .await?;
    if let Err(err) = store_secrets(&state, &user, R::ROLE, &id, &new_secrets, true).await {
        // The secret was not written: put the previous configuration back (unless another
        // edit has come in since), so the item never names a secret the store does not hold.
        let undo = previous
            .restored(version + 2, Utc::now())
            .save(
                &state,
                WriteMode::Replace {
                    expected_version: version + 1,
                },
            )
            .await;
        if let Err(undo) = undo {
            tracing::error!(error = %undo, "could not undo an edit whose secret was not stored");
        }
        return Err(err);
    }
    Ok(Json(updated.view(&state)))
}

/// Deletes the resource and its secret; refused (409) while a task uses it.
pub async fn delete<R: Configured>(
    State(state): State<AppState>,
    User(user): User,
    Id(id): Id,
) -> Result<StatusCode, ApiError> {
    load::<R>(&state, &user, &id).await?;
    crate::tasks::ensure_unused(&state, &user, |t| R::used_by(t, &id), R::WHAT).await?;
    state
        .dispatcher
        .secrets
        .delete_secrets(R::ROLE.owner(&id))
        .await?;
    R::remove(&state, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
