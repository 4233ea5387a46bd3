//! Use cases shared by the Lambda functions: settings, templates, and the dispatcher that turns
//! a section event or a due schedule slot into delivered, recorded notifications.

pub mod dispatch;
pub mod settings;
pub mod telemetry;
pub mod templates;

pub use dispatch::{DispatchError, Dispatcher, EventReport, TickReport};
pub use settings::Settings;
pub use templates::{RenderInput, Templates};
