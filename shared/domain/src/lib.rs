//! The notification domain: what users configure (sources, targets, tasks), what upstream
//! services tell us (section events), what we record (deliveries), and the ports through which
//! the application reaches storage and secrets. Nothing in this crate knows about AWS.

pub mod event;
pub mod fields;
pub mod kind;
pub mod message;
pub mod model;
pub mod net;
pub mod ports;
pub mod schedule;
pub mod secret;
pub mod validate;

pub use event::{
    EventEnvelope, InboundEvent, PublishedSummary, Recipient, RecipientRole, SectionEvent,
    SectionEventName,
};
pub use fields::{FieldFormat, FieldSpec, KindSpec};
pub use kind::ChannelKind;
pub use message::Message;
pub use model::*;
pub use ports::*;
pub use secret::{SecretBundle, SecretValue};
pub use validate::{FieldError, ValidationError, ValidationPolicy};
