//! The resources a user owns. Every resource carries its owner's id; storage keys include it, so
//! a lookup for another user's id simply finds nothing.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::SectionEventName;
use crate::kind::ChannelKind;

/// The owner of a resource: the JWT `sub` of the caller.
pub type UserId = String;

/// Why a target stopped receiving messages (a provider said it is gone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisabledReason {
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// A sending account (SMTP mailbox, bot, app credentials). Secret fields live in the secret
/// store; `secret_fields` records which of them are set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub id: String,
    pub user_id: UserId,
    pub name: String,
    pub kind: ChannelKind,
    pub config: Map<String, Value>,
    #[serde(default)]
    pub secret_fields: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped on every write; updates are conditional on it (optimistic concurrency).
    pub version: u64,
}

/// Where a message lands (an address, a group webhook, a device, a chat).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub id: String,
    pub user_id: UserId,
    pub name: String,
    pub kind: ChannelKind,
    pub config: Map<String, Value>,
    #[serde(default)]
    pub secret_fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<DisabledReason>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// What starts a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// A section event concerning the task's owner.
    Event { event: SectionEventName },
    /// A 5-field cron expression evaluated in an IANA timezone.
    Schedule {
        cron: String,
        #[serde(default = "default_timezone")]
        timezone: String,
        /// Spread sends up to this many minutes after the slot (a fixed offset per task), so
        /// that many tasks on the same minute do not hit a provider at once.
        #[serde(default, skip_serializing_if = "is_zero")]
        jitter_minutes: u32,
    },
}

/// FNV-1a: a hash that is the same in every process and version (unlike std's hasher), for
/// spreading tasks over index shards and jitter offsets.
pub fn stable_hash(text: &str) -> u32 {
    text.bytes().fold(0x811c9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The largest accepted `jitter_minutes`.
pub const MAX_JITTER_MINUTES: u32 = 5;

fn is_zero(value: &u32) -> bool {
    *value == 0
}

fn default_timezone() -> String {
    "UTC".to_string()
}

/// The built-in templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateId {
    DailySummary,
    RemovedFromSection,
    SectionCommented,
    SectionSubscribed,
    SectionUpdated,
}

impl TemplateId {
    pub const ALL: [TemplateId; 5] = [
        TemplateId::DailySummary,
        TemplateId::RemovedFromSection,
        TemplateId::SectionCommented,
        TemplateId::SectionSubscribed,
        TemplateId::SectionUpdated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TemplateId::DailySummary => "daily_summary",
            TemplateId::RemovedFromSection => "removed_from_section",
            TemplateId::SectionCommented => "section_commented",
            TemplateId::SectionSubscribed => "section_subscribed",
            TemplateId::SectionUpdated => "section_updated",
        }
    }

    /// The event a template is written for; `None` for templates that run on a schedule.
    pub fn event(self) -> Option<SectionEventName> {
        match self {
            TemplateId::DailySummary => None,
            TemplateId::RemovedFromSection => Some(SectionEventName::RemovedFromSection),
            TemplateId::SectionCommented => Some(SectionEventName::SectionCommented),
            TemplateId::SectionSubscribed => Some(SectionEventName::SectionSubscribed),
            TemplateId::SectionUpdated => Some(SectionEventName::SectionUpdated),
        }
    }

    pub fn for_event(event: SectionEventName) -> TemplateId {
        match event {
            SectionEventName::RemovedFromSection => TemplateId::RemovedFromSection,
            SectionEventName::SectionCommented => TemplateId::SectionCommented,
            SectionEventName::SectionSubscribed => TemplateId::SectionSubscribed,
            SectionEventName::SectionUpdated => TemplateId::SectionUpdated,
        }
    }
}

/// What a task sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Content {
    Template {
        template: TemplateId,
    },
    /// Static text typed by the user; never evaluated as a template.
    Custom {
        title: String,
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cover_url: Option<String>,
    },
}

/// The language a task's template messages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Language {
    #[default]
    #[serde(rename = "en")]
    En,
    #[serde(rename = "zh-CN")]
    ZhCn,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::En, Language::ZhCn];

    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::ZhCn => "zh-CN",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Language::En => "English",
            Language::ZhCn => "简体中文",
        }
    }
}

/// A notification job: when `trigger` fires, render `content` and send it from `source_id` to
/// `target_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub user_id: UserId,
    pub title: String,
    pub enabled: bool,
    pub source_id: String,
    pub target_id: String,
    /// The channel kind shared by the source and target (checked when the task is saved).
    pub kind: ChannelKind,
    pub trigger: Trigger,
    pub content: Content,
    /// Language of template messages (custom content is sent as typed).
    #[serde(default)]
    pub language: Language,
    /// For scheduled tasks: the next slot that will fire (UTC). Never in the past at save time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_fire_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl Task {
    /// This task's fixed offset within its jitter window: stable across ticks and containers.
    pub fn jitter(&self) -> chrono::Duration {
        let minutes = match &self.trigger {
            Trigger::Schedule { jitter_minutes, .. } => (*jitter_minutes).min(MAX_JITTER_MINUTES),
            Trigger::Event { .. } => 0,
        };
        if minutes == 0 {
            return chrono::Duration::zero();
        }
        // The same offset for the same task everywhere.
        chrono::Duration::seconds(i64::from(stable_hash(&self.id) % (minutes * 60)))
    }

    /// When the slot `slot` is due to be sent: the slot plus this task's jitter.
    pub fn due_time(&self, slot: DateTime<Utc>) -> DateTime<Utc> {
        slot + self.jitter()
    }

    pub fn event(&self) -> Option<SectionEventName> {
        match &self.trigger {
            Trigger::Event { event } => Some(*event),
            Trigger::Schedule { .. } => None,
        }
    }
}

/// The state of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Claimed and being sent; a crash leaves it here until the claim's lease runs out.
    Pending,
    Sent,
    Failed,
    /// A scheduled slot older than the catch-up window: not sent, recorded so it is visible.
    Skipped,
}

/// What set a delivery off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeliveryCause {
    Event {
        event: SectionEventName,
        event_id: String,
    },
    Schedule {
        slot: DateTime<Utc>,
    },
}

/// The record of one message sent (or not) for one task: the in-app inbox entry and the audit
/// trail. Holds the rendered message, never a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub user_id: UserId,
    pub task_id: String,
    pub source_id: String,
    pub target_id: String,
    pub kind: ChannelKind,
    pub cause: DeliveryCause,
    pub status: DeliveryStatus,
    /// The provider's answer: a message id on success, its code and description on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    pub title: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover_url: Option<String>,
    pub attempts: u32,
    pub read: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One section event a user was told about, kept a few days for the Daily Summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityItem {
    pub user_id: UserId,
    pub event: SectionEventName,
    pub event_id: String,
    pub section_id: String,
    pub section_title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<crate::event::Actor>,
    pub link: String,
    pub at: DateTime<Utc>,
}
