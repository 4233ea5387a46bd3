//! Use cases shared by the Lambda functions: settings, templates, and the dispatcher that turns
//! a section event or a due schedule slot into delivered, recorded notifications.

pub mod dispatch;
pub mod settings;
pub mod telemetry;
pub mod templates;

pub use dispatch::{DispatchError, Dispatcher, EventReport, TickReport};
pub use settings::Settings;
pub use templates::{RenderInput, Templates};

/// Lambda's invocation deadline (epoch milliseconds, `Context::deadline`) as an `Instant`.
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> std::time::Instant {
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    std::time::Instant::now() + std::time::Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
