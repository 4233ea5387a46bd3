//! One error type for the whole API, rendered as RFC 9457 `application/problem+json` with the
//! offending field. Internal details are logged, never returned.
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use notify_domain::{FieldError, SecretError, StoreError, ValidationError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    /// Also what another user's resource looks like: indistinguishable from a missing one.
    #[error("{what} not found")]
    NotFound {
        what: &'static str,
        field: Option<&'static str>,
    },
    #[error("{detail}")]
    BadRequest {
        detail: String,
        field: Option<String>,
    },
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("{0}")]
    Conflict(String),
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    #[error("a backing service is unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn not_found(what: &'static str) -> Self {
        ApiError::NotFound { what, field: None }
    }
    pub fn field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::Validation(ValidationError::single(field, detail))
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(_) | StoreError::AlreadyExists(_) => {
                ApiError::Conflict(err.to_string())
            }
            StoreError::BadCursor => ApiError::BadRequest {
                detail: err.to_string(),
                field: Some("cursor".into()),
            },
            StoreError::Unavailable(_) => ApiError::Unavailable(err.to_string()),
            StoreError::Corrupt(_) => ApiError::Internal(err.to_string()),
        }
    }
}

impl From<SecretError> for ApiError {
    fn from(err: SecretError) -> Self {
        match err {
            SecretError::Unavailable(_) => ApiError::Unavailable(err.to_string()),
            SecretError::NotFound(_) | SecretError::Corrupt(_) => {
                ApiError::Internal(err.to_string())
            }
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = match &self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ApiError::NotFound { .. } => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            ApiError::Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid request",
            ),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method",
                "Method not allowed",
            ),
            ApiError::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Payload too large",
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "media-type",
                "Unsupported media type",
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        };
        if let ApiError::Unavailable(detail) | ApiError::Internal(detail) = &self {
            tracing::error!(status = status.as_u16(), error = %detail, "request failed");
        }
        let (field, mut errors) = match &self {
            ApiError::Validation(v) => (v.first_field().map(str::to_string), v.errors.clone()),
            ApiError::BadRequest { field, .. } => (field.clone(), Vec::new()),
            ApiError::NotFound { field, .. } => (field.map(str::to_string), Vec::new()),
            _ => (None, Vec::new()),
        };
        for error in &mut errors {
            error.field = capped(std::mem::take(&mut error.field));
            error.message = capped(std::mem::take(&mut error.message));
        }
        let problem = Problem {
            kind: format!("urn:notify:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail: capped(self.to_string()),
            field: field.map(capped),
            errors,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Longest text a problem repeats back. Messages quote the caller's values (an unknown
/// timezone, a field name), which can be as long as the body allows.
const MAX_PROBLEM_TEXT_CHARS: usize = 300;

fn capped(text: String) -> String {
    match text.char_indices().nth(MAX_PROBLEM_TEXT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_problem_repeats_at_most_a_bounded_part_of_what_the_caller_sent() {
        let long = "Mars/".repeat(2_000);
        let response = ApiError::field("schedule.timezone", format!("unknown timezone '{long}'"))
            .into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let message = problem["errors"][0]["message"].as_str().unwrap();
        // 300 characters kept, then the ellipsis.
        assert_eq!(message.chars().count(), 301);
        assert!(message.starts_with("unknown timezone 'Mars/Mars/"));
        assert!(message.ends_with('…'));
        assert!(body.len() < 2_000, "{} bytes", body.len());
        // Short texts are left alone.
        assert_eq!(capped("fine".into()), "fine");
    }
}
