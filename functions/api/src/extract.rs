//! Typed extractors: the caller's identity, JSON bodies and pagination, each failing with a
//! problem+json [`ApiError`].
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use notify_domain::PageRequest;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::ApiError;
use crate::AppState;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The caller: the JWT `sub`.
#[derive(Debug, Clone)]
pub struct User(pub String);

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Behind API Gateway's JWT authorizer the token is already verified: use its claims.
        if let Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) =
            parts
                .extensions
                .get::<lambda_http::request::RequestContext>()
        {
            if let Some(sub) = ctx
                .authorizer
                .as_ref()
                .and_then(|a| a.jwt.as_ref())
                .and_then(|jwt| jwt.claims.get("sub"))
            {
                return checked_subject(sub);
            }
        }
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer token".into()))?;
        // The scheme name is case-insensitive (RFC 7235).
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| {
                ApiError::Unauthorized("Authorization header must be 'Bearer <token>'".into())
            })?;
        let settings = &state.dispatcher.settings;
        let key = settings.jwt_hs256_key.as_deref().ok_or_else(|| {
            ApiError::Unauthorized("this deployment does not accept bearer tokens directly".into())
        })?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        validation.validate_nbf = true;
        match &settings.jwt_issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &settings.jwt_audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data = decode::<Claims>(
            token,
            &DecodingKey::from_secret(key.as_bytes()),
            &validation,
        )
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let reason = match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                ErrorKind::InvalidSignature => "the token's signature does not verify",
                ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                ErrorKind::InvalidAudience => "the token's audience is not accepted",
                ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (sub, exp)",
                _ => "the token is not an HS256 JWT this service accepts",
            };
            ApiError::Unauthorized(reason.into())
        })?;
        checked_subject(&data.claims.sub)
    }
}

/// The longest accepted user id (the same limit as an event recipient's `user_id`).
pub const MAX_SUBJECT_CHARS: usize = 128;

/// A `sub` becomes part of storage keys: 1–128 characters, no control characters.
fn checked_subject(sub: &str) -> Result<User, ApiError> {
    let count = sub.chars().count();
    if sub.trim().is_empty() || count > MAX_SUBJECT_CHARS || sub.chars().any(char::is_control) {
        return Err(ApiError::Unauthorized(format!(
            "the token's sub must be 1 to {MAX_SUBJECT_CHARS} characters without control characters"
        )));
    }
    Ok(User(sub.to_string()))
}

/// Longest id accepted in a path. Ids are UUIDs; anything much longer cannot exist, and would
/// make DynamoDB refuse the key (a 503) instead of finding nothing.
pub const MAX_ID_CHARS: usize = 128;

/// The `{id}` of a path, percent-decoded and checked; a bad one is a 400 problem naming `id`
/// (axum's own rejection is plain text).
pub struct Id(pub String);

impl FromRequestParts<AppState> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let bad = |detail: String| ApiError::BadRequest {
            detail,
            field: Some("id".into()),
        };
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| bad(format!("the id in the path is not valid: {rejection}")))?;
        let count = id.chars().count();
        if count == 0 || count > MAX_ID_CHARS || id.chars().any(char::is_control) {
            return Err(bad(format!(
                "the id in the path must be 1 to {MAX_ID_CHARS} characters without control characters"
            )));
        }
        Ok(Id(id))
    }
}

/// Whether the request says its body is JSON (`application/json` or `application/…+json`).
fn declares_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("application/json")
                || (v.starts_with("application/") && v.ends_with("+json"))
        })
}

async fn body_bytes(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state)
        .await
        .map_err(|_| ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        })
}

/// A JSON body: `application/json`, at most [`MAX_BODY_BYTES`], and errors that name the
/// field (`config.port: invalid type…`).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !declares_json(&req) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Like [`JsonBody`], for a body that may be left out: no body (or only whitespace) is
/// `T::default()`; a body must be JSON, as for [`JsonBody`].
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json = declares_json(&req);
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_json(&bytes).map(OptionalJsonBody)
    }
}

/// A JSON object whose keys are each given once. serde_json keeps the last of repeated keys
/// silently; in a `config`, `{"host": "a.example", "host": "127.0.0.1"}` would then say one
/// thing to a reader and another to the service.
pub fn unique_keys<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<serde_json::Map<String, serde_json::Value>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = serde_json::Map<String, serde_json::Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = serde_json::Map::new();
            while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format_args!(
                        "duplicate field `{key}`"
                    )));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(Visitor)
}

/// [`unique_keys`] for an optional object (`null` or absent is `None`).
pub fn unique_keys_opt<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, D::Error> {
    struct Unique(serde_json::Map<String, serde_json::Value>);
    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D2: serde::Deserializer<'de>>(d: D2) -> Result<Self, D2::Error> {
            unique_keys(d).map(Unique)
        }
    }
    Ok(Option::<Unique>::deserialize(deserializer)?.map(|u| u.0))
}

/// Parses JSON; syntax errors are 400, shape errors 422 with the path of the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        // Strip serde_json's " at line X column Y" suffix: the field path says where.
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        // serde_json reports some shape errors as syntax (`null` where an enum is expected),
        // so the body itself decides: only JSON that does not parse is a 400.
        let parses = serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
        if !parses {
            ApiError::BadRequest {
                detail: format!("request body is not valid JSON: {inner}"),
                field: None,
            }
        } else {
            ApiError::field(field_path(&path, &message), message)
        }
    })?;
    // Anything after the value (`{…} trailing`) makes the body not one JSON document.
    de.end().map_err(|err| ApiError::BadRequest {
        detail: format!("request body is not valid JSON: {err}"),
        field: None,
    })?;
    Ok(value)
}

/// The field a shape error is about. serde names a missing or unknown field only in its
/// message; the path stops at the object holding it (inside an internally tagged enum such as
/// `trigger` or `content`, at the enum).
fn field_path(path: &str, message: &str) -> String {
    let named = ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix)?.split('`').next());
    match (path, named) {
        (".", Some(name)) => name.to_string(),
        (".", None) => "body".to_string(),
        // Outside tagged enums an unknown field is already the last step of the path.
        (path, Some(name)) if path != name && !path.ends_with(&format!(".{name}")) => {
            format!("{path}.{name}")
        }
        (path, _) => path.to_string(),
    }
}

/// Other query parameters are left to the handler's own extractor.
#[derive(Deserialize)]
struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `?limit=1..100&cursor=…`
pub struct Paging(pub PageRequest);

impl FromRequestParts<AppState> for Paging {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Query(q) = Query::<PageQuery>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest {
                detail: e.body_text(),
                field: None,
            })?;
        let limit = match q.limit {
            None => 20,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    return Err(ApiError::BadRequest {
                        detail: format!("limit must be a whole number from 1 to 100, not '{text}'"),
                        field: Some("limit".into()),
                    })
                }
            },
        };
        Ok(Paging(PageRequest {
            limit,
            cursor: q.cursor.filter(|c| !c.is_empty()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        trigger: Trigger,
        #[serde(default)]
        language: Option<Language>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    enum Language {
        #[serde(rename = "en")]
        En,
    }

    #[derive(Debug, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
    #[allow(dead_code)]
    enum Trigger {
        Schedule { cron: String },
    }

    fn field_of(body: &str) -> String {
        match parse_json::<Body>(body.as_bytes()) {
            Err(ApiError::Validation(err)) => err.errors[0].field.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_and_unknown_fields_are_named_even_inside_tagged_enums() {
        assert_eq!(
            field_of(r#"{"trigger": {"type": "schedule", "cron": "x"}}"#),
            "name"
        );
        assert_eq!(
            field_of(r#"{"name": "n", "trigger": {"type": "schedule"}}"#),
            "trigger.cron"
        );
        assert_eq!(
            field_of(r#"{"name": "n", "trigger": {"type": "schedule", "cron": "x", "tz": 1}}"#),
            "trigger.tz"
        );
        assert_eq!(
            field_of(r#"{"name": "n", "colour": "red", "trigger": {}}"#),
            "colour"
        );
        assert_eq!(field_of(r#"{"name": 5, "trigger": {}}"#), "name");
        assert_eq!(field_of(r#"[]"#), "body");
    }

    #[test]
    fn valid_json_of_the_wrong_shape_is_a_422_and_broken_json_a_400() {
        // serde_json calls a number where an enum belongs a syntax error; it is still a field error.
        assert_eq!(
            field_of(
                r#"{"name": "n", "trigger": {"type": "schedule", "cron": "x"}, "language": 7}"#
            ),
            "language"
        );
        for broken in [
            r#"{"name": "n""#,
            r#"{"name": nul}"#,
            "",
            // One document, then more: not one JSON body.
            r#"{"name": "n"} trailing"#,
            r#"{"name": "n"}{"name": "m"}"#,
        ] {
            match parse_json::<Body>(broken.as_bytes()) {
                Err(ApiError::BadRequest { detail, .. }) => {
                    assert!(
                        detail.starts_with("request body is not valid JSON"),
                        "{detail}"
                    )
                }
                other => panic!("{broken}: {other:?}"),
            }
        }
    }
}
