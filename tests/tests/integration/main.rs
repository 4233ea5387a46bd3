//! The service's integration tests, in one test binary: each links the whole AWS SDK, so one
//! binary instead of eleven saves about 0.8 GB of disk and ten slow links per clean build.
//! Run one area with `cargo test -p notify-testkit --test integration <module>::`.
//! (`secrets.rs` stays a binary of its own: it captures every log line of its process.)

mod all_channels;
mod api;
mod events;
mod golden;
mod inbox;
mod infra;
mod openapi;
mod preview;
mod samples;
mod scheduler;
mod test_send;
