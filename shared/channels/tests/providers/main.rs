//! Each channel against a local server that behaves like its provider, in one test binary
//! (one link instead of six). Run one channel with `cargo test -p notify-channels --test providers
//! <channel>::`.

mod apns;
mod dingtalk;
mod email;
mod email_tls;
mod feishu;
mod telegram;
