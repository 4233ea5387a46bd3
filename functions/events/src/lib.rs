//! Section events → notifications. Accepts an EventBridge event delivered directly by a rule,
//! or a batch of them in SQS records (bus → rule → SQS → function) with per-record failures
//! reported as a partial batch response.
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use notify_aws::dead_letter::DeadLetters;
use notify_domain::{EventEnvelope, InboundEvent};
use notify_service::{DispatchError, Dispatcher};
use serde_json::{json, Value};
use std::time::Instant;
use tracing::{error, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The event is malformed and there is no dead-letter queue to park it on: failing the
    /// invocation sends it to the rule's or queue's own dead-letter queue.
    #[error("event refused: {0}")]
    Refused(String),
    /// Some deliveries must be retried; Lambda's retry (or SQS redelivery) will do so.
    #[error("retry needed: {0}")]
    Retry(String),
}

/// What happened to one event.
#[derive(Debug)]
enum Handled {
    Done,
    /// Malformed: never retried; parked on the dead-letter queue when one is configured.
    Refused(String),
    Retry(String),
}

/// Entry point for both payload shapes. `deadline` is when the invocation must have finished
/// (provider rate-limit waits are honoured only when they fit before it).
pub async fn handle(
    dispatcher: &Dispatcher,
    dead_letters: Option<&dyn DeadLetters>,
    deadline: Instant,
    payload: Value,
) -> Result<Value, EventsError> {
    if payload.get("Records").is_some() {
        let batch: SqsEvent = serde_json::from_value(payload)
            .map_err(|e| EventsError::Refused(format!("not an SQS event: {e}")))?;
        let response = handle_sqs(dispatcher, dead_letters, deadline, batch).await;
        return Ok(
            serde_json::to_value(response).unwrap_or_else(|_| json!({"batchItemFailures": []}))
        );
    }
    let raw = payload.to_string();
    match handle_one(dispatcher, &raw, payload, deadline).await {
        Handled::Done => Ok(json!({"status": "done"})),
        Handled::Refused(reason) => match dead_letters {
            Some(dlq) if dlq.park(&raw, &reason).await.is_ok() => {
                Ok(json!({"status": "refused", "reason": reason}))
            }
            _ => Err(EventsError::Refused(reason)),
        },
        Handled::Retry(reason) => Err(EventsError::Retry(reason)),
    }
}

/// Handles each record on its own; a bad or failing record never holds up the others.
pub async fn handle_sqs(
    dispatcher: &Dispatcher,
    dead_letters: Option<&dyn DeadLetters>,
    deadline: Instant,
    batch: SqsEvent,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in batch.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.unwrap_or_default();
        let handled = match serde_json::from_str::<Value>(&body) {
            Ok(value) => handle_one(dispatcher, &body, value, deadline).await,
            Err(e) => refuse(&body, format!("record body is not JSON: {e}")),
        };
        let failed = match handled {
            Handled::Done => false,
            Handled::Retry(_) => true,
            // Parked on the dead-letter queue: done with it. Without one, fail the record so the
            // queue's redrive policy dead-letters it.
            Handled::Refused(reason) => match dead_letters {
                Some(dlq) => match dlq.park(&body, &reason).await {
                    Ok(()) => false,
                    Err(e) => {
                        error!(message_id = %id, error = %e, "could not park refused event");
                        true
                    }
                },
                None => true,
            },
        };
        if failed {
            response.add_failure(id);
        }
    }
    response
}

async fn handle_one(
    dispatcher: &Dispatcher,
    raw: &str,
    value: Value,
    deadline: Instant,
) -> Handled {
    let envelope: EventEnvelope = match serde_json::from_value(value) {
        Ok(e) => e,
        Err(e) => return refuse(raw, format!("not an EventBridge event: {e}")),
    };
    let eventbridge_id = envelope.id.clone();
    let event = match InboundEvent::from_envelope(envelope) {
        Ok(InboundEvent::Section(event)) => event,
        Ok(InboundEvent::SummaryPublished(published)) => {
            return match dispatcher.save_published_summary(&published).await {
                Ok(()) => {
                    info!(user_id = %published.user_id, date = %published.date, "daily summary text stored");
                    Handled::Done
                }
                Err(e) => Handled::Retry(e.to_string()),
            };
        }
        Err(e) => return refuse(raw, e.to_string()),
    };
    match dispatcher.handle_event(&event, deadline).await {
        Ok(report) => {
            info!(event_id = %event.event_id, eventbridge_id = %eventbridge_id, event = %event.name,
                  sent = report.sent, failed = report.failed, duplicates = report.duplicates, "event handled");
            Handled::Done
        }
        Err(DispatchError::Retry { failed, reason }) => {
            warn!(event_id = %event.event_id, failed, reason = %reason, "event needs a retry");
            Handled::Retry(reason)
        }
        Err(DispatchError::Store(e)) => {
            warn!(event_id = %event.event_id, error = %e, "storage failed; event will be retried");
            Handled::Retry(e.to_string())
        }
    }
}

fn refuse(raw: &str, reason: String) -> Handled {
    // The raw event may be large; log its size and the reason, not its content.
    warn!(reason = %reason, bytes = raw.len(), "event refused");
    Handled::Refused(reason)
}
