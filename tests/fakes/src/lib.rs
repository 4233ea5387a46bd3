//! Local provider servers that check each request the way the provider would (signatures
//! recomputed here, headers, body shape, limits) and answer with the provider's real success
//! and error payloads, and a real SMTP server ([`smtp`]). Used by `shared/channels`' tests and by the integration tests.
pub mod apns;
pub mod dingtalk;
pub mod feishu;
pub mod smtp;
pub mod telegram;
