//! The real local SMTP server lives with the provider fakes; re-exported for the tests here.
pub use notify_fakes::smtp::{python, Mode, SmtpSink};
