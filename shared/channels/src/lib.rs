//! Delivery channels. Each provider is one module implementing [`Channel`]; the registry maps a
//! [`ChannelKind`] to its module. Adding a channel means adding a module and one line in
//! [`ChannelRegistry::new`].
//!
//! A channel turns the channel-neutral [`Message`] into its provider's format (escaping every
//! user-supplied value for that format), sends it, and reports an [`Outcome`] decided from the
//! provider's answer, never from the HTTP status alone.
//!
//! [`Channel::preview`] renders the same requests without sending them: every channel builds its
//! request bodies with one function that both `send` and `preview` call, and adds what is secret
//! or changes per send (signatures, timestamps, tokens, `Message-ID`, `Date`, the uploaded image
//! key) only when it sends. Size limits are enforced by that shared function, in the unit the
//! provider counts, so a preview is cut exactly where the send is.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use notify_domain::{ChannelKind, KindSpec, Message, SecretBundle};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub mod apns;
pub mod dingtalk;
pub mod email;
pub mod feishu;
mod http;
pub mod sign;
pub mod telegram;
pub mod text;

/// Everything one send needs: the resolved source and target (public config and secrets) and
/// the message.
pub struct SendRequest<'a> {
    pub source_config: &'a Map<String, Value>,
    pub source_secrets: &'a SecretBundle,
    pub target_config: &'a Map<String, Value>,
    pub target_secrets: &'a SecretBundle,
    pub message: &'a Message,
}

/// The result of one send, as the provider reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Delivered {
        #[serde(skip_serializing_if = "Option::is_none")]
        provider_message_id: Option<String>,
        /// Public target config fields the provider says changed (a Telegram group that became
        /// a supergroup has a new `chat_id`). The dispatcher merges them into the stored target.
        #[serde(skip_serializing_if = "Option::is_none")]
        target_update: Option<Map<String, Value>>,
    },
    /// Worth trying again later (rate limits, 5xx, timeouts, connection errors).
    Retryable {
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
    /// Will fail again until the user changes the configuration (bad credentials, bad
    /// signature, chat not found, ...).
    Permanent {
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        message: String,
    },
    /// The target no longer exists (device unregistered, bot removed): stop sending to it.
    DeadTarget {
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        message: String,
    },
}

impl Outcome {
    /// Delivered, with the provider's id for the message if it gave one, and no target update.
    pub fn delivered(provider_message_id: Option<String>) -> Outcome {
        Outcome::Delivered {
            provider_message_id,
            target_update: None,
        }
    }
    pub fn permanent(code: Option<String>, message: impl Into<String>) -> Outcome {
        Outcome::Permanent {
            code,
            message: message.into(),
        }
    }
    pub fn retryable(code: Option<String>, message: impl Into<String>) -> Outcome {
        Outcome::Retryable {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }
    /// A configuration problem found before anything was sent (missing or malformed field).
    pub fn bad_config(message: impl Into<String>) -> Outcome {
        Outcome::permanent(Some("invalid_config".into()), message)
    }
    pub fn is_delivered(&self) -> bool {
        matches!(self, Outcome::Delivered { .. })
    }
    /// The provider's code, if it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Outcome::Delivered { .. } => None,
            Outcome::Retryable { code, .. }
            | Outcome::Permanent { code, .. }
            | Outcome::DeadTarget { code, .. } => code.as_deref(),
        }
    }
    pub fn message(&self) -> Option<&str> {
        match self {
            Outcome::Delivered { .. } => None,
            Outcome::Retryable { message, .. }
            | Outcome::Permanent { message, .. }
            | Outcome::DeadTarget { message, .. } => Some(message),
        }
    }
    /// The outcome with `f` applied to its message; a delivery is returned unchanged.
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Outcome {
        match self {
            Outcome::Retryable {
                code,
                message,
                retry_after_secs,
            } => Outcome::Retryable {
                code,
                message: f(message),
                retry_after_secs,
            },
            Outcome::Permanent { code, message } => Outcome::Permanent {
                code,
                message: f(message),
            },
            Outcome::DeadTarget { code, message } => Outcome::DeadTarget {
                code,
                message: f(message),
            },
            delivered @ Outcome::Delivered { .. } => delivered,
        }
    }
    /// Replaces every non-empty `hidden` value in the message with `<redacted>` (defence in
    /// depth: tokens and secrets should never get there).
    pub fn scrub<S: AsRef<str>>(self, hidden: &[S]) -> Outcome {
        self.scrub_as(hidden, text::REDACTED)
    }
    /// Like [`Outcome::scrub`], with `replacement` in place of each hidden value.
    pub fn scrub_as<S: AsRef<str>>(self, hidden: &[S], replacement: &str) -> Outcome {
        let found = self.message().is_some_and(|m| {
            hidden
                .iter()
                .any(|h| !h.as_ref().is_empty() && m.contains(h.as_ref()))
        });
        if !found {
            return self;
        }
        self.map_message(|m| text::redact(m, hidden, replacement))
    }
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Retryable { .. } => "retryable",
            Outcome::Permanent { .. } => "permanent",
            Outcome::DeadTarget { .. } => "dead_target",
        }
    }
}

/// What [`Channel::send`] would send for a request, without sending it: one [`PreviewPart`] per
/// provider request, in order, with the bodies exactly as sent, minus secrets and per-send values.
///
/// A preview never contains a secret, a bot token, a signature or timestamp, a webhook access
/// token or a device token: it is built without reading the request's secret bundles at all
/// (pass empty ones), and none of those values is part of a request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    pub channel: ChannelKind,
    pub parts: Vec<PreviewPart>,
    /// What the send may still change, for people reading the preview (the Feishu image key
    /// that is uploaded at send time, a cover left out because it is not an http(s) URL...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One provider request (or, for e-mail, one part of the message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewPart {
    pub kind: PreviewKind,
    /// The request body: a JSON object for the HTTP providers, a JSON string for the e-mail
    /// text and HTML parts, an object `{subject, from, from_name?, to}` for the e-mail headers.
    pub body: Value,
}

/// What a [`PreviewPart`] is. Serialized as the strings in the variant docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PreviewKind {
    /// `"email_headers"`: `{subject, from, from_name?, to}` (no `Message-ID` or `Date`: they are
    /// made per send).
    #[serde(rename = "email_headers")]
    EmailHeaders,
    /// `"email_text"`: the text/plain part (before transfer encoding; sent with CRLF line ends).
    #[serde(rename = "email_text")]
    EmailText,
    /// `"email_html"`: the text/html part (before transfer encoding; sent with CRLF line ends).
    #[serde(rename = "email_html")]
    EmailHtml,
    /// `"telegram_sendMessage"`: the JSON body of one `sendMessage` call.
    #[serde(rename = "telegram_sendMessage")]
    TelegramSendMessage,
    /// `"telegram_sendPhoto"`: the JSON body of one `sendPhoto` call.
    #[serde(rename = "telegram_sendPhoto")]
    TelegramSendPhoto,
    /// `"feishu_card"`: the webhook body without `timestamp` and `sign`.
    #[serde(rename = "feishu_card")]
    FeishuCard,
    /// `"dingtalk_markdown"`: the webhook body (DingTalk signs in the URL).
    #[serde(rename = "dingtalk_markdown")]
    DingtalkMarkdown,
    /// `"apns_payload"`: the notification payload.
    #[serde(rename = "apns_payload")]
    ApnsPayload,
}

impl PreviewKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PreviewKind::EmailHeaders => "email_headers",
            PreviewKind::EmailText => "email_text",
            PreviewKind::EmailHtml => "email_html",
            PreviewKind::TelegramSendMessage => "telegram_sendMessage",
            PreviewKind::TelegramSendPhoto => "telegram_sendPhoto",
            PreviewKind::FeishuCard => "feishu_card",
            PreviewKind::DingtalkMarkdown => "dingtalk_markdown",
            PreviewKind::ApnsPayload => "apns_payload",
        }
    }
}

impl PreviewPart {
    pub fn new(kind: PreviewKind, body: Value) -> PreviewPart {
        PreviewPart { kind, body }
    }
}

/// One delivery channel.
#[async_trait]
pub trait Channel: Send + Sync {
    /// The configuration schema of this kind's sources and targets.
    fn spec(&self) -> &'static KindSpec;
    /// Checks secret values beyond what the field table can (a key that must parse, say) when
    /// a source is saved. Returns the field name and the problem; never echoes the secret.
    fn check_source_secrets(&self, _secrets: &SecretBundle) -> Result<(), (&'static str, String)> {
        Ok(())
    }
    /// Formats and sends one message. Never panics; every failure is an [`Outcome`].
    async fn send(&self, request: &SendRequest<'_>) -> Outcome;
    /// The requests [`Channel::send`] would make for `request`, built by the same functions,
    /// without any network access and without reading `request`'s secret bundles (empty ones
    /// will do). Fails with the same configuration error `send` would report before sending.
    fn preview(&self, request: &SendRequest<'_>) -> Result<Preview, Outcome>;
}

/// Provider endpoints and network settings. Every base URL is configurable so that tests,
/// self-hosted Bot API servers and Lark deployments work.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub telegram_api_base: String,
    pub feishu_api_base: String,
    pub lark_api_base: String,
    pub apns_production_base: String,
    pub apns_sandbox_base: String,
    /// Connect + per-command timeout for SMTP and HTTP requests.
    pub timeout: Duration,
    /// Allow plaintext SMTP (`tls: none`) and connections to addresses that are not on the
    /// public internet (SMTP hosts, cover downloads; see [`notify_domain::net`]). Only for local
    /// stacks and tests.
    pub allow_local_endpoints: bool,
    /// Extra PEM-encoded root certificates the e-mail channel trusts for SMTP TLS, on top of the
    /// web PKI roots. Empty in production; tests put a test CA here.
    pub extra_root_certificates: Vec<Vec<u8>>,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            telegram_api_base: "https://api.telegram.org".into(),
            feishu_api_base: "https://open.feishu.cn".into(),
            lark_api_base: "https://open.larksuite.com".into(),
            apns_production_base: "https://api.push.apple.com".into(),
            apns_sandbox_base: "https://api.sandbox.push.apple.com".into(),
            timeout: Duration::from_secs(10),
            allow_local_endpoints: false,
            extra_root_certificates: Vec::new(),
        }
    }
}

/// All channels, built once per container (they hold HTTP clients and token caches).
#[derive(Clone)]
pub struct ChannelRegistry {
    channels: BTreeMap<ChannelKind, Arc<dyn Channel>>,
}

impl ChannelRegistry {
    pub fn new(endpoints: &Endpoints) -> Result<ChannelRegistry, reqwest::Error> {
        // Provider APIs answer a POST themselves; a redirect would turn it into a GET that
        // loses the message and may still read as a success.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(endpoints.timeout)
            .connect_timeout(endpoints.timeout)
            .user_agent(concat!("notify-service/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let list: Vec<Arc<dyn Channel>> = vec![
            Arc::new(email::EmailChannel::new(endpoints)),
            Arc::new(telegram::TelegramChannel::new(http.clone(), endpoints)),
            Arc::new(feishu::FeishuChannel::new(http.clone(), endpoints)?),
            Arc::new(dingtalk::DingtalkChannel::new(http.clone())),
            // APNs channels build their own HTTP/2 clients (see the apns module docs).
            Arc::new(apns::ApnsChannel::production(endpoints)?),
            Arc::new(apns::ApnsChannel::sandbox(endpoints)?),
        ];
        Ok(ChannelRegistry {
            channels: list.into_iter().map(|c| (c.spec().kind, c)).collect(),
        })
    }

    pub fn get(&self, kind: ChannelKind) -> Option<&Arc<dyn Channel>> {
        self.channels.get(&kind)
    }

    pub fn spec(&self, kind: ChannelKind) -> Option<&'static KindSpec> {
        self.channels.get(&kind).map(|c| c.spec())
    }

    pub fn specs(&self) -> impl Iterator<Item = &'static KindSpec> + '_ {
        self.channels.values().map(|c| c.spec())
    }
}

/// Reads a string field from a validated config map.
pub(crate) fn config_str<'a>(config: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    config.get(field).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_serializes_with_the_documented_kind_names() {
        let kinds = [
            PreviewKind::EmailHeaders,
            PreviewKind::EmailText,
            PreviewKind::EmailHtml,
            PreviewKind::TelegramSendMessage,
            PreviewKind::TelegramSendPhoto,
            PreviewKind::FeishuCard,
            PreviewKind::DingtalkMarkdown,
            PreviewKind::ApnsPayload,
        ];
        for kind in kinds {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        let preview = Preview {
            channel: ChannelKind::Telegram,
            parts: vec![PreviewPart::new(
                PreviewKind::TelegramSendPhoto,
                serde_json::json!({"caption": "c"}),
            )],
            notes: vec![],
        };
        assert_eq!(
            serde_json::to_value(&preview).unwrap(),
            serde_json::json!({
                "channel": "telegram",
                "parts": [{"kind": "telegram_sendPhoto", "body": {"caption": "c"}}]
            })
        );
        let back: Preview =
            serde_json::from_value(serde_json::to_value(&preview).unwrap()).unwrap();
        assert_eq!(back, preview);
    }
}
