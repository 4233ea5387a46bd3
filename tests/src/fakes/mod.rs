//! Local provider servers that check each request the way the provider would and answer with
//! the provider's real payloads.
pub mod apns;
pub mod dingtalk;
pub mod feishu;
pub mod telegram;
