//! Section events put on the EventBridge bus by the upstream app. The schema is documented in
//! `docs/events.md`; parsing names the field that is wrong so a refused event can be fixed.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::validate::{check_link, check_text, Problems, ValidationError};

/// The section events a task can be triggered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SectionEventName {
    RemovedFromSection,
    SectionCommented,
    SectionSubscribed,
    SectionUpdated,
}

impl SectionEventName {
    pub const ALL: [SectionEventName; 4] = [
        SectionEventName::RemovedFromSection,
        SectionEventName::SectionCommented,
        SectionEventName::SectionSubscribed,
        SectionEventName::SectionUpdated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SectionEventName::RemovedFromSection => "RemovedFromSection",
            SectionEventName::SectionCommented => "SectionCommented",
            SectionEventName::SectionSubscribed => "SectionSubscribed",
            SectionEventName::SectionUpdated => "SectionUpdated",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == value)
    }

    pub fn description(self) -> &'static str {
        match self {
            SectionEventName::RemovedFromSection => "You were removed from a section.",
            SectionEventName::SectionCommented => {
                "A section you created or take part in was commented on."
            }
            SectionEventName::SectionSubscribed => {
                "A section you created or take part in was subscribed to."
            }
            SectionEventName::SectionUpdated => {
                "A section you take part in or subscribe to was updated."
            }
        }
    }
}

impl std::fmt::Display for SectionEventName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The recipient's relation to the section; the wording of the message depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientRole {
    Creator,
    Member,
    Subscriber,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    pub user_id: String,
    pub role: RecipientRole,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectionRef {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentRef {
    pub id: String,
    pub text: String,
}

/// The `detail` of a section event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectionEventDetail {
    /// The upstream app's own id for this occurrence. Idempotency is keyed on it, so putting the
    /// same occurrence on the bus twice notifies once. Defaults to the EventBridge event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub section: SectionRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<CommentRef>,
    pub recipients: Vec<Recipient>,
}

/// The EventBridge envelope as a rule delivers it (and as SQS carries it in a record body).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct EventEnvelope {
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
    pub detail: Value,
}

/// A validated section event, ready to fan out to its recipients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SectionEvent {
    pub name: SectionEventName,
    /// Idempotency key of the occurrence.
    pub event_id: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub section: SectionRef,
    pub actor: Option<Actor>,
    pub comment: Option<CommentRef>,
    pub recipients: Vec<Recipient>,
}

/// `DailySummaryPublished`: the upstream app's own summary text for one user and date; when
/// present it leads that day's Daily Summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedSummary {
    pub user_id: String,
    pub date: chrono::NaiveDate,
    pub summary: String,
}

pub const DAILY_SUMMARY_PUBLISHED: &str = "DailySummaryPublished";
pub const MAX_SUMMARY_CHARS: usize = 4000;

/// Everything the events function accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundEvent {
    Section(SectionEvent),
    SummaryPublished(PublishedSummary),
}

impl InboundEvent {
    pub fn from_envelope(envelope: EventEnvelope) -> Result<InboundEvent, ValidationError> {
        if envelope.detail_type != DAILY_SUMMARY_PUBLISHED {
            return SectionEvent::from_envelope(envelope).map(InboundEvent::Section);
        }
        let published: PublishedSummary = parse_detail(envelope.detail)?;
        let mut problems = Problems::default();
        check_text(
            &mut problems,
            "detail.user_id",
            &published.user_id,
            128,
            false,
        );
        check_text(
            &mut problems,
            "detail.summary",
            &published.summary,
            MAX_SUMMARY_CHARS,
            true,
        );
        problems.into_result()?;
        Ok(InboundEvent::SummaryPublished(published))
    }
}

/// Deserialises `detail`, naming the exact field that is wrong (`detail.recipients[0].role`).
fn parse_detail<T: serde::de::DeserializeOwned>(detail: Value) -> Result<T, ValidationError> {
    serde_path_to_error::deserialize(detail).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "detail".to_string()
        } else {
            format!("detail.{path}")
        };
        ValidationError::single(field, e.into_inner().to_string())
    })
}

/// At most this many recipients per event; the upstream app splits larger fan-outs.
pub const MAX_RECIPIENTS: usize = 1000;
/// Comment text longer than this is refused (templates shorten it further for display).
pub const MAX_COMMENT_CHARS: usize = 10_000;

impl SectionEvent {
    /// Validates an envelope. Every problem is reported with the path of the offending field.
    pub fn from_envelope(envelope: EventEnvelope) -> Result<SectionEvent, ValidationError> {
        let Some(name) = SectionEventName::parse(&envelope.detail_type) else {
            let known: Vec<&str> = SectionEventName::ALL.iter().map(|e| e.as_str()).collect();
            return Err(ValidationError::single(
                "detail-type",
                format!(
                    "'{}' is not a section event; expected one of: {} (or {DAILY_SUMMARY_PUBLISHED})",
                    envelope.detail_type,
                    known.join(", ")
                ),
            ));
        };
        let detail: SectionEventDetail = parse_detail(envelope.detail)?;

        let mut problems = Problems::default();
        let event_id = detail.event_id.unwrap_or(envelope.id);
        // Bytes, not characters: the id is part of DynamoDB keys, which are limited in bytes.
        if event_id.trim().is_empty()
            || event_id.len() > 256
            || event_id.chars().any(char::is_control)
        {
            problems.push(
                "detail.event_id",
                "must be 1 to 256 bytes (UTF-8) without control characters",
            );
        }
        check_text(
            &mut problems,
            "detail.section.id",
            &detail.section.id,
            128,
            false,
        );
        check_text(
            &mut problems,
            "detail.section.title",
            &detail.section.title,
            500,
            false,
        );
        if let Some(cover) = &detail.section.cover_url {
            check_link(&mut problems, "detail.section.cover_url", cover);
        }
        if let Some(actor) = &detail.actor {
            check_text(&mut problems, "detail.actor.id", &actor.id, 128, false);
            check_text(&mut problems, "detail.actor.name", &actor.name, 200, false);
        }
        match (&detail.comment, name) {
            (Some(comment), _) => {
                check_text(&mut problems, "detail.comment.id", &comment.id, 128, false);
                check_text(
                    &mut problems,
                    "detail.comment.text",
                    &comment.text,
                    MAX_COMMENT_CHARS,
                    true,
                );
            }
            (None, SectionEventName::SectionCommented) => {
                problems.push("detail.comment", "is required for SectionCommented")
            }
            (None, _) => {}
        }
        if detail.recipients.is_empty() {
            problems.push("detail.recipients", "must name at least one recipient");
        }
        if detail.recipients.len() > MAX_RECIPIENTS {
            problems.push(
                "detail.recipients",
                format!(
                    "has {} entries; the limit is {MAX_RECIPIENTS}",
                    detail.recipients.len()
                ),
            );
        }
        for (i, r) in detail.recipients.iter().enumerate() {
            check_text(
                &mut problems,
                &format!("detail.recipients[{i}].user_id"),
                &r.user_id,
                128,
                false,
            );
        }
        problems.into_result()?;

        // The person who acted is never notified of their own action; a user listed twice
        // (say, creator and subscriber) is notified once, with the first role given.
        let actor_id = detail.actor.as_ref().map(|a| a.id.clone());
        let mut seen = std::collections::HashSet::new();
        let recipients = detail
            .recipients
            .into_iter()
            .filter(|r| {
                name == SectionEventName::RemovedFromSection
                    || Some(&r.user_id) != actor_id.as_ref()
            })
            .filter(|r| seen.insert(r.user_id.clone()))
            .collect();

        Ok(SectionEvent {
            name,
            event_id,
            occurred_at: envelope.time,
            section: detail.section,
            actor: detail.actor,
            comment: detail.comment,
            recipients,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(detail_type: &str, detail: Value) -> EventEnvelope {
        serde_json::from_value(json!({
            "version": "0", "id": "eb-1", "detail-type": detail_type, "source": "app",
            "time": "2026-01-02T03:04:05Z", "detail": detail
        }))
        .unwrap()
    }

    #[test]
    fn commented_event_parses_and_drops_the_commenter() {
        let event = SectionEvent::from_envelope(envelope(
            "SectionCommented",
            json!({
                "event_id": "c-77",
                "section": {"id": "42", "title": "Rust"},
                "actor": {"id": "u2", "name": "Ann"},
                "comment": {"id": "9", "text": "Nice"},
                "recipients": [
                    {"user_id": "u1", "role": "creator"},
                    {"user_id": "u2", "role": "member"},
                    {"user_id": "u1", "role": "subscriber"}
                ]
            }),
        ))
        .unwrap();
        assert_eq!(event.event_id, "c-77");
        assert_eq!(
            event.recipients,
            vec![Recipient {
                user_id: "u1".into(),
                role: RecipientRole::Creator
            }]
        );
    }

    #[test]
    fn unknown_event_and_missing_comment_name_the_field() {
        let err = SectionEvent::from_envelope(envelope("SectionDeleted", json!({}))).unwrap_err();
        assert_eq!(err.first_field(), Some("detail-type"));
        let err = SectionEvent::from_envelope(envelope(
            "SectionCommented",
            json!({"section": {"id": "1", "title": "t"}, "recipients": [{"user_id": "u", "role": "member"}]}),
        ))
        .unwrap_err();
        assert_eq!(err.first_field(), Some("detail.comment"));
        let err = SectionEvent::from_envelope(envelope(
            "SectionUpdated",
            json!({"section": {"id": "1", "title": "t"}, "recipients": [{"user_id": "u", "role": "boss"}]}),
        ))
        .unwrap_err();
        assert_eq!(err.first_field(), Some("detail.recipients[0].role"));
        assert!(err.to_string().contains("boss"), "{err}");
    }

    #[test]
    fn envelope_id_is_the_default_idempotency_key() {
        let event = SectionEvent::from_envelope(envelope(
            "SectionSubscribed",
            json!({"section": {"id": "1", "title": "t"}, "recipients": [{"user_id": "u", "role": "creator"}]}),
        ))
        .unwrap();
        assert_eq!(event.event_id, "eb-1");
    }

    #[test]
    fn event_ids_are_counted_in_bytes_and_refuse_control_characters() {
        let with_id = |id: &str| {
            SectionEvent::from_envelope(envelope(
                "SectionSubscribed",
                json!({"event_id": id, "section": {"id": "1", "title": "t"},
                       "recipients": [{"user_id": "u", "role": "creator"}]}),
            ))
        };
        let err = with_id("e-ctl\u{0}x").unwrap_err();
        assert_eq!(err.first_field(), Some("detail.event_id"));
        // Three bytes a character: 85 of them are 255 bytes, 86 are 258.
        assert!(with_id(&"通".repeat(85)).is_ok());
        assert_eq!(
            with_id(&"通".repeat(86)).unwrap_err().first_field(),
            Some("detail.event_id")
        );
        assert!(with_id(&"e".repeat(256)).is_ok());
    }
}
