//! The configuration API: one axum router with typed extractors and one problem+json error
//! type. The same router runs inside Lambda (`lambda_http`) and on a local HTTP port.

pub mod deliveries;
pub mod error;
pub mod extract;
pub mod preview;
pub mod resources;
pub mod tasks;
pub mod test_send;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use notify_domain::{ChannelKind, SectionEventName, TemplateId};
use notify_service::Dispatcher;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;

#[derive(Clone)]
pub struct AppState {
    pub dispatcher: Dispatcher,
}

/// Every route as (method, path), the list `docs/openapi.json` is checked against.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/catalog"),
    ("POST", "/sources"),
    ("GET", "/sources"),
    ("GET", "/sources/{id}"),
    ("PATCH", "/sources/{id}"),
    ("DELETE", "/sources/{id}"),
    ("POST", "/targets"),
    ("GET", "/targets"),
    ("GET", "/targets/{id}"),
    ("PATCH", "/targets/{id}"),
    ("DELETE", "/targets/{id}"),
    ("POST", "/targets/{id}/test"),
    ("POST", "/tasks"),
    ("GET", "/tasks"),
    ("GET", "/tasks/{id}"),
    ("PATCH", "/tasks/{id}"),
    ("DELETE", "/tasks/{id}"),
    ("POST", "/tasks/{id}/preview"),
    ("POST", "/tasks/preview"),
    ("GET", "/deliveries"),
    ("GET", "/deliveries/unread-count"),
    ("POST", "/deliveries/read-all"),
    ("GET", "/deliveries/{id}"),
    ("PATCH", "/deliveries/{id}"),
    ("DELETE", "/deliveries/{id}"),
];

/// The whole API.
pub fn router(state: AppState) -> Router {
    use axum::routing::post;
    use notify_domain::{Source, Target};
    use resources::{create, delete, get as get_one, list, patch};
    Router::new()
        .route("/catalog", get(catalog))
        .route("/sources", post(create::<Source>).get(list::<Source>))
        .route(
            "/sources/{id}",
            get(get_one::<Source>)
                .patch(patch::<Source>)
                .delete(delete::<Source>),
        )
        .route("/targets", post(create::<Target>).get(list::<Target>))
        .route(
            "/targets/{id}",
            get(get_one::<Target>)
                .patch(patch::<Target>)
                .delete(delete::<Target>),
        )
        .route("/targets/{id}/test", post(test_send::test_target))
        .route("/tasks/preview", post(preview::unsaved))
        .route("/tasks/{id}/preview", post(preview::saved))
        .route("/tasks", post(tasks::create_task).get(tasks::list_tasks))
        .route(
            "/tasks/{id}",
            get(tasks::get_task)
                .patch(tasks::patch_task)
                .delete(tasks::delete_task),
        )
        .route("/deliveries", get(deliveries::list))
        .route("/deliveries/unread-count", get(deliveries::unread_count))
        .route("/deliveries/read-all", post(deliveries::mark_all_read))
        .route(
            "/deliveries/{id}",
            get(deliveries::get)
                .patch(deliveries::set_read)
                .delete(deliveries::delete),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// The kinds with their fields (and which are secret), the events, the templates.
async fn catalog(State(state): State<AppState>) -> Json<Value> {
    let kinds: Vec<Value> = state
        .dispatcher
        .channels
        .specs()
        .map(|spec| {
            json!({
                "kind": spec.kind,
                "label": spec.label,
                "source_fields": spec.source_fields,
                "target_fields": spec.target_fields,
                "pairs_with": [spec.kind],
            })
        })
        .collect();
    let events: Vec<Value> = SectionEventName::ALL
        .iter()
        .map(|e| json!({"name": e.as_str(), "description": e.description(), "template": TemplateId::for_event(*e).as_str()}))
        .collect();
    let templates: Vec<Value> = TemplateId::ALL
        .iter()
        .map(|t| {
            json!({
                "id": t.as_str(),
                "trigger": t.event().map_or("schedule".to_string(), |e| format!("event:{e}")),
            })
        })
        .collect();
    Json(json!({
        "kinds": kinds,
        "allowed_pairs": ChannelKind::ALL.iter().map(|k| [k.as_str(), k.as_str()]).collect::<Vec<_>>(),
        "events": events,
        "templates": templates,
        "languages": notify_domain::Language::ALL.iter().map(|l| json!({"code": l.code(), "name": l.name()})).collect::<Vec<_>>(),
    }))
}
