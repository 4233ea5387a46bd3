//! Validation errors name the offending field so the API can say exactly what is wrong.
use serde::Serialize;

/// One problem with one field. `field` is a dotted path into the request body, e.g. `config.port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything wrong with one request body, in field order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
pub struct ValidationError {
    pub errors: Vec<FieldError>,
}

impl ValidationError {
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            errors: vec![FieldError::new(field, message)],
        }
    }
    pub fn first_field(&self) -> Option<&str> {
        self.errors.first().map(|e| e.field.as_str())
    }
}

/// Collects field errors so a caller sees all of them at once.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }
    pub fn extend(&mut self, other: ValidationError) {
        self.0.extend(other.errors);
    }
    pub fn into_result(self) -> Result<(), ValidationError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationError { errors: self.0 })
        }
    }
}

/// Deployment-level switches that change what counts as valid configuration.
#[derive(Debug, Clone, Default)]
pub struct ValidationPolicy {
    /// Accept `http://127.0.0.1`/`localhost` webhook URLs and plaintext SMTP. Only for local
    /// stacks and tests; never set in production.
    pub allow_local_endpoints: bool,
}

/// Characters that render as nothing: zero-width spaces and joiners, the byte-order mark, word
/// joiners and invisible operators. A name made only of these looks empty wherever it is shown.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{180E}')
}

/// Checks a free-text field: trimmed non-empty when required, at most `max` characters,
/// no control characters (they break headers and provider payloads).
pub fn check_text(
    problems: &mut Problems,
    field: &str,
    value: &str,
    max_chars: usize,
    allow_newlines: bool,
) {
    if value.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
        problems.push(field, "must not be empty (or only invisible characters)");
        return;
    }
    let count = value.chars().count();
    if count > max_chars {
        problems.push(
            field,
            format!("is {count} characters long; the limit is {max_chars}"),
        );
    }
    if value
        .chars()
        .any(|c| c.is_control() && !(allow_newlines && (c == '\n' || c == '\r' || c == '\t')))
    {
        problems.push(field, "must not contain control characters");
    }
}

/// Checks an absolute http(s) URL used for links and images in messages.
pub fn check_link(problems: &mut Problems, field: &str, value: &str) {
    match url::Url::parse(value) {
        Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => {
            if value.len() > 2048 {
                problems.push(field, "must be at most 2048 bytes");
            }
            // `https://app.example.com@evil.example/` reads as one host and goes to another.
            if !u.username().is_empty() || u.password().is_some() {
                problems.push(field, "must not contain a user name or password");
            }
        }
        Ok(_) => problems.push(field, "must be an absolute http or https URL"),
        Err(e) => problems.push(field, format!("is not a valid URL ({e})")),
    }
}

/// Checks a URL the service itself downloads (a cover image): a link, and on a public host
/// unless the deployment allows local endpoints (see [`crate::net`]).
pub fn check_fetched_link(
    problems: &mut Problems,
    field: &str,
    value: &str,
    policy: &ValidationPolicy,
) {
    let before = problems.0.len();
    check_link(problems, field, value);
    if problems.0.len() > before || policy.allow_local_endpoints {
        return;
    }
    let host = url::Url::parse(value)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string));
    if let Some(reason) = host.as_deref().and_then(crate::net::non_public_host) {
        problems.push(field, format!("must be on a public host: {reason}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_made_only_of_invisible_characters_is_empty() {
        for blank in ["", "  ", "\u{200B}", "\u{FEFF}\u{200B} \u{2060}"] {
            let mut problems = Problems::default();
            check_text(&mut problems, "name", blank, 100, false);
            let errors = problems.into_result().unwrap_err().errors;
            assert_eq!(
                errors[0].message, "must not be empty (or only invisible characters)",
                "{blank:?}"
            );
        }
        let mut problems = Problems::default();
        check_text(&mut problems, "name", "a\u{200B}b", 100, false);
        assert!(problems.into_result().is_ok());
    }

    #[test]
    fn fetched_links_must_be_public_unless_local_endpoints_are_allowed() {
        let strict = ValidationPolicy::default();
        let mut problems = Problems::default();
        check_fetched_link(
            &mut problems,
            "cover",
            "http://169.254.169.254/latest",
            &strict,
        );
        check_fetched_link(
            &mut problems,
            "cover",
            "https://cdn.example.com/a.png",
            &strict,
        );
        check_fetched_link(
            &mut problems,
            "cover",
            "https://cdn.example.com@evil.example/a.png",
            &strict,
        );
        let errors = problems.into_result().unwrap_err().errors;
        assert_eq!(errors.len(), 2);
        assert_eq!(
            errors[1].message,
            "must not contain a user name or password"
        );
        assert_eq!(
            errors[0].message,
            "must be on a public host: 169.254.169.254 is not a public internet address"
        );
        let local = ValidationPolicy {
            allow_local_endpoints: true,
        };
        let mut problems = Problems::default();
        check_fetched_link(&mut problems, "cover", "http://127.0.0.1:9/a.png", &local);
        assert!(problems.into_result().is_ok());
    }
}
