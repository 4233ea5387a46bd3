//! Local provider servers that check each request the way the provider would and answer with
//! the provider's real payloads.
pub mod telegram;
