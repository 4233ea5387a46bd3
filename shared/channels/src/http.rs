//! HTTP helpers shared by the channels that talk to providers with reqwest.
use crate::Outcome;

/// A reqwest error as text with its whole cause chain, without its URL (request URLs can hold
/// bot tokens and webhook access tokens).
pub(crate) fn describe_error(context: &str, error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut message = format!("{context}: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// A request that got no (complete) answer: always retryable, coded `timeout`,
/// `connect_failed` or `network_error`.
pub(crate) fn network_outcome(context: &str, error: reqwest::Error) -> Outcome {
    let code = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect_failed"
    } else {
        "network_error"
    };
    Outcome::retryable(Some(code.into()), describe_error(context, error))
}
