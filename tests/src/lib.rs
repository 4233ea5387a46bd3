//! Test kit: moto-backed AWS environments, a real SMTP sink, and local provider servers that
//! check requests the way the providers do. Used by the integration tests in `tests/tests/`,
//! and by the `local-stack` and `demo` binaries.

pub mod aws;
pub mod env;
pub mod pipeline;
pub mod smtp;

pub use env::TestEnv;
/// The provider fakes, as `notify_testkit::fakes::telegram` and so on.
pub use notify_fakes as fakes;

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A generous invocation deadline for handler calls in tests and the local stack.
pub fn deadline() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(60)
}
