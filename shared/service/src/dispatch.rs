//! The dispatcher: claim → resolve source and target → render → send → record. Used by the
//! events function (section events) and the scheduler (due cron slots).
//!
//! Exactly-once: every delivery is claimed in DynamoDB under a deterministic key before it is
//! sent (`event:{event_id}:{task_id}` or `schedule:{task_id}:{slot}`); a completed claim is
//! never sent again. A retryable failure releases the claim and asks the caller to retry (SQS
//! redelivers the record); a worker that dies mid-send leaves a lease that a later retry takes
//! over once it has run out.
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use notify_channels::{ChannelRegistry, Outcome, SendRequest};
use notify_domain::event::SectionEvent;
use notify_domain::schedule::Schedule;
use notify_domain::{
    ActivityItem, ActivityLog, Claim, ConfigStore, Content, Delivery, DeliveryCause, DeliveryLog,
    DeliveryStatus, DisabledReason, Message, PublishedSummary, SecretBundle, SecretOwner,
    SecretStore, StoreError, Task, TemplateId, Trigger, WriteMode,
};
use tracing::{info, warn};

use crate::settings::Settings;
use crate::templates::{DailySummaryData, RenderInput, Templates};

/// The longest provider-requested wait honoured inside one invocation.
const MAX_RATE_LIMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits; injectable so tests can check a wait without spending it.
#[async_trait::async_trait]
pub trait Sleeper: Send + Sync {
    async fn sleep(&self, duration: std::time::Duration);
}

/// The real one.
pub struct TokioSleeper;

#[async_trait::async_trait]
impl Sleeper for TokioSleeper {
    async fn sleep(&self, duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Deliveries of one event handled at once.
const EVENT_CONCURRENCY: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// Some deliveries could not complete now and must be retried (the event is redelivered).
    #[error("{failed} deliveries need a retry: {reason}")]
    Retry { failed: usize, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counts for one event.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventReport {
    pub sent: usize,
    pub failed: usize,
    pub duplicates: usize,
    pub retry: usize,
}

/// Counts for one scheduler tick.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TickReport {
    pub due: usize,
    pub sent: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Slots another invocation fired first.
    pub already_claimed: usize,
    /// Due tasks left for the next tick because the time budget ran out.
    pub deferred: usize,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    Sent,
    Failed,
    Duplicate,
    Retry(String),
    Skipped,
}

/// Everything the functions need, built once per container.
#[derive(Clone)]
pub struct Dispatcher {
    pub config: Arc<dyn ConfigStore>,
    pub deliveries: Arc<dyn DeliveryLog>,
    pub activity: Arc<dyn ActivityLog>,
    pub secrets: Arc<dyn SecretStore>,
    pub sleeper: Arc<dyn Sleeper>,
    pub channels: ChannelRegistry,
    pub templates: Arc<Templates>,
    pub settings: Arc<Settings>,
}

impl Dispatcher {
    /// Sends the event to every recipient's enabled tasks for it. `Err(Retry)` when any
    /// delivery must be retried; the ones already done are not repeated on the retry.
    pub async fn handle_event(
        &self,
        event: &SectionEvent,
        deadline: Instant,
    ) -> Result<EventReport, DispatchError> {
        let mut jobs = Vec::new();
        let link = self.templates.section_link(
            &event.section.id,
            event.comment.as_ref().map(|c| c.id.as_str()),
        );
        let at = event.occurred_at.unwrap_or_else(Utc::now);
        for recipient in &event.recipients {
            // Kept a few days for the recipient's Daily Summary; idempotent per event.
            self.activity
                .record_activity(&ActivityItem {
                    user_id: recipient.user_id.clone(),
                    event: event.name,
                    event_id: event.event_id.clone(),
                    section_id: event.section.id.clone(),
                    section_title: event.section.title.clone(),
                    actor: event.actor.clone(),
                    link: link.clone(),
                    at,
                })
                .await?;
            for task in self
                .config
                .tasks_for_event(&recipient.user_id, event.name)
                .await?
            {
                jobs.push((recipient.role, task));
            }
        }
        let attempts: Vec<Attempt> = stream::iter(jobs)
            .map(|(role, task)| async move {
                let key = format!("event:{}:{}", event.event_id, task.id);
                let cause = DeliveryCause::Event {
                    event: event.name,
                    event_id: event.event_id.clone(),
                };
                let rendered = self.templates.render(
                    &task.content,
                    task.language,
                    RenderInput::Event { event, role },
                );
                self.deliver(
                    &task,
                    &key,
                    cause,
                    rendered.map_err(|e| e.to_string()),
                    None,
                    deadline,
                )
                .await
            })
            .buffer_unordered(EVENT_CONCURRENCY)
            .collect()
            .await;

        let mut report = EventReport::default();
        let mut reasons = Vec::new();
        for attempt in attempts {
            match attempt {
                Attempt::Sent => report.sent += 1,
                Attempt::Failed | Attempt::Skipped => report.failed += 1,
                Attempt::Duplicate => report.duplicates += 1,
                Attempt::Retry(reason) => {
                    report.retry += 1;
                    reasons.push(reason);
                }
            }
        }
        if report.retry > 0 {
            return Err(DispatchError::Retry {
                failed: report.retry,
                reason: reasons.join("; "),
            });
        }
        Ok(report)
    }

    /// Fires every due schedule slot once. Stops claiming new slots when `deadline` is near;
    /// what is left stays due for the next tick.
    pub async fn tick(
        &self,
        now: DateTime<Utc>,
        deadline: Instant,
    ) -> Result<TickReport, DispatchError> {
        let due = self
            .config
            .due_tasks(now, self.settings.scheduler_batch)
            .await?;
        let mut report = TickReport {
            due: due.len(),
            ..TickReport::default()
        };
        let attempts: Vec<Vec<Option<Attempt>>> = stream::iter(due)
            .map(|task| self.catch_up_task(task, now, deadline))
            .buffer_unordered(self.settings.scheduler_concurrency)
            .collect()
            .await;
        for attempt in attempts.into_iter().flatten() {
            match attempt {
                None => report.deferred += 1,
                Some(Attempt::Sent) => report.sent += 1,
                Some(Attempt::Failed) | Some(Attempt::Retry(_)) => report.failed += 1,
                Some(Attempt::Skipped) => report.skipped += 1,
                Some(Attempt::Duplicate) => report.already_claimed += 1,
            }
        }
        Ok(report)
    }

    /// Fires every due slot of one task, oldest first, until its next slot is in the future.
    /// `None` marks a slot left for the next tick because the time budget ran out.
    async fn catch_up_task(
        &self,
        mut task: Task,
        now: DateTime<Utc>,
        deadline: Instant,
    ) -> Vec<Option<Attempt>> {
        let mut attempts = Vec::new();
        // Bounded: a `* * * * *` task behind by the whole catch-up window has that many slots.
        let max_slots = self.settings.catch_up.num_minutes().max(1) as usize + 2;
        while attempts.len() < max_slots {
            // Leave room to finish a send that has started.
            if deadline.saturating_duration_since(Instant::now())
                < self.settings.endpoints.timeout + std::time::Duration::from_secs(2)
            {
                attempts.push(None);
                break;
            }
            let (attempt, next) = self.fire_slot(&task, now, deadline).await;
            let claimed = attempt != Attempt::Duplicate;
            attempts.push(Some(attempt));
            match next {
                Some(next) if claimed && next <= now => task.next_fire_at = Some(next),
                _ => break,
            }
        }
        attempts
    }

    /// Fires the task's current slot; returns what happened and the slot after it.
    async fn fire_slot(
        &self,
        task: &Task,
        now: DateTime<Utc>,
        deadline: Instant,
    ) -> (Attempt, Option<DateTime<Utc>>) {
        let (Some(slot), Trigger::Schedule { cron, timezone, .. }) =
            (task.next_fire_at, &task.trigger)
        else {
            return (Attempt::Duplicate, None);
        };
        let schedule = match Schedule::parse(cron, timezone) {
            Ok(s) => s,
            Err(err) => {
                // Validated on save; only a bad stored item gets here.
                warn!(task_id = %task.id, error = %err, "stored schedule does not parse; task stays due until fixed");
                return (Attempt::Failed, None);
            }
        };
        let stale = slot < now - self.settings.catch_up;
        // A stale slot jumps to the first slot inside the catch-up window; others advance one
        // slot at a time, so each missed slot within the window fires once.
        let next = if stale {
            schedule.next_after(now - self.settings.catch_up)
        } else {
            schedule.next_after(slot)
        };
        let key = format!("schedule:{}:{}", task.id, slot.timestamp());
        let cause = DeliveryCause::Schedule { slot };
        let summary = match &task.content {
            Content::Template {
                template: TemplateId::DailySummary,
            } if !stale => {
                match self
                    .daily_summary(&task.user_id, slot, schedule.timezone())
                    .await
                {
                    Ok(data) => Some(data),
                    Err(err) => {
                        // Not claimed yet: the slot stays due and the next tick tries again.
                        warn!(task_id = %task.id, error = %err, "could not read activity for the daily summary");
                        return (Attempt::Retry(err.to_string()), None);
                    }
                }
            }
            _ => None,
        };
        let rendered = self
            .templates
            .render(
                &task.content,
                task.language,
                RenderInput::Schedule {
                    slot,
                    timezone: schedule.timezone(),
                    summary: summary.as_ref(),
                },
            )
            .map_err(|e| e.to_string());
        let attempt = self
            .deliver(
                task,
                &key,
                cause,
                rendered,
                Some((slot, next, stale)),
                deadline,
            )
            .await;
        (attempt, next)
    }

    /// The 24 hours before `slot`, and the summary the upstream app published for the slot's
    /// local date.
    pub async fn daily_summary(
        &self,
        user: &str,
        slot: DateTime<Utc>,
        timezone: chrono_tz::Tz,
    ) -> Result<DailySummaryData, StoreError> {
        let activity = self
            .activity
            .activity_between(user, slot - chrono::Duration::hours(24), slot, 500)
            .await?;
        let date = slot.with_timezone(&timezone).date_naive();
        let published = self.activity.published_summary(user, date).await?;
        Ok(DailySummaryData {
            published,
            activity,
        })
    }

    /// Stores a `DailySummaryPublished` text for the user's Daily Summary of that date.
    pub async fn save_published_summary(
        &self,
        published: &PublishedSummary,
    ) -> Result<(), StoreError> {
        self.activity
            .save_published_summary(&published.user_id, published.date, &published.summary)
            .await
    }

    fn pending(&self, task: &Task, cause: DeliveryCause, message: Option<&Message>) -> Delivery {
        let now = Utc::now();
        Delivery {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: task.user_id.clone(),
            task_id: task.id.clone(),
            source_id: task.source_id.clone(),
            target_id: task.target_id.clone(),
            kind: task.kind,
            cause,
            status: DeliveryStatus::Pending,
            provider_code: None,
            provider_message: None,
            provider_message_id: None,
            title: message.map(|m| m.title.clone()).unwrap_or_default(),
            body: message.map(|m| m.body.clone()).unwrap_or_default(),
            link: message.and_then(|m| m.link.clone()),
            cover_url: message.and_then(|m| m.cover_url.clone()),
            attempts: 0,
            read: false,
            created_at: now,
            updated_at: now,
        }
    }

    /// Claims, sends and records one delivery. `slot` is set for scheduled deliveries:
    /// (slot, next slot, whether the slot is too old to send).
    async fn deliver(
        &self,
        task: &Task,
        key: &str,
        cause: DeliveryCause,
        rendered: Result<Message, String>,
        slot: Option<(DateTime<Utc>, Option<DateTime<Utc>>, bool)>,
        deadline: Instant,
    ) -> Attempt {
        let pending = self.pending(task, cause, rendered.as_ref().ok());
        let lease_until = Utc::now() + self.settings.lease;
        let claim = match slot {
            None => {
                self.deliveries
                    .claim_delivery(key, &pending, lease_until)
                    .await
            }
            Some((slot, next, _)) => {
                self.deliveries
                    .claim_schedule_slot(task, slot, next, &pending, lease_until)
                    .await
            }
        };
        let mut delivery = match claim {
            Ok(Claim::Granted(d)) => *d,
            Ok(Claim::AlreadyDone) => return Attempt::Duplicate,
            Ok(Claim::InProgress) => {
                return Attempt::Retry(format!("delivery {key} is in progress elsewhere"))
            }
            Err(err) => return Attempt::Retry(format!("claiming {key}: {err}")),
        };

        let started = Instant::now();
        let outcome = match (&rendered, slot) {
            (_, Some((_, _, true))) => None,
            (Err(reason), _) => Some(Outcome::permanent(
                Some("render_failed".into()),
                reason.clone(),
            )),
            (Ok(message), _) => Some(self.send_within(task, message, deadline).await),
        };
        delivery.attempts += 1;
        delivery.updated_at = Utc::now();
        let (attempt, release) = match &outcome {
            None => {
                delivery.status = DeliveryStatus::Skipped;
                delivery.provider_message = Some(
                    "slot was older than the catch-up window when the scheduler reached it".into(),
                );
                (Attempt::Skipped, false)
            }
            Some(Outcome::Delivered {
                provider_message_id,
                ..
            }) => {
                delivery.status = DeliveryStatus::Sent;
                delivery.provider_message_id = provider_message_id.clone();
                (Attempt::Sent, false)
            }
            Some(other) => {
                delivery.status = DeliveryStatus::Failed;
                delivery.provider_code = other.code().map(str::to_string);
                delivery.provider_message = other.message().map(str::to_string);
                // Event deliveries are retried by redelivery; a scheduled slot has moved on, so
                // its failure is final and recorded.
                let retry = matches!(other, Outcome::Retryable { .. }) && slot.is_none();
                if retry {
                    (
                        Attempt::Retry(format!(
                            "task {}: {}",
                            task.id,
                            other.message().unwrap_or_default()
                        )),
                        true,
                    )
                } else {
                    (Attempt::Failed, false)
                }
            }
        };
        info!(
            user_id = %task.user_id,
            task_id = %task.id,
            delivery_id = %delivery.id,
            kind = %task.kind,
            key = %key,
            outcome = outcome.as_ref().map_or("skipped", Outcome::label),
            provider_code = outcome.as_ref().and_then(Outcome::code),
            provider_message = outcome.as_ref().and_then(Outcome::message),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "notification attempt"
        );
        if let Some(outcome) = &outcome {
            self.apply_to_target(task, outcome).await;
        }
        if let Err(err) = self
            .deliveries
            .finish_delivery(key, &delivery, release)
            .await
        {
            // The send happened; the lease will expire and the record stays pending. Report a
            // retry only when the send itself did not go through.
            warn!(delivery_id = %delivery.id, error = %err, "could not record delivery outcome");
        }
        attempt
    }

    /// Sends, and when the provider names a rate-limit wait that fits before `deadline`, waits
    /// it out and sends once more; otherwise the retryable outcome goes back to the caller.
    pub async fn send_within(&self, task: &Task, message: &Message, deadline: Instant) -> Outcome {
        let outcome = self.send(task, message).await;
        let Outcome::Retryable {
            retry_after_secs: Some(wait),
            ..
        } = &outcome
        else {
            return outcome;
        };
        let wait = std::time::Duration::from_secs(*wait);
        // Room for the wait, the second request, and recording the result.
        let needed = wait + self.settings.endpoints.timeout + std::time::Duration::from_secs(2);
        if wait > MAX_RATE_LIMIT_WAIT || deadline.saturating_duration_since(Instant::now()) < needed
        {
            return outcome;
        }
        info!(task_id = %task.id, wait_secs = wait.as_secs(), "provider asked to wait; waiting before one more try");
        self.sleeper.sleep(wait).await;
        self.send(task, message).await
    }

    /// Resolves the task's source and target with their secrets and sends the message.
    /// Public so that the API's test-send uses exactly the same path.
    pub async fn send(&self, task: &Task, message: &Message) -> Outcome {
        let source = match self.config.get_source(&task.user_id, &task.source_id).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Outcome::permanent(
                    Some("source_missing".into()),
                    "the task's source no longer exists",
                )
            }
            Err(err) => return Outcome::retryable(None, format!("loading the source: {err}")),
        };
        let target = match self.config.get_target(&task.user_id, &task.target_id).await {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Outcome::permanent(
                    Some("target_missing".into()),
                    "the task's target no longer exists",
                )
            }
            Err(err) => return Outcome::retryable(None, format!("loading the target: {err}")),
        };
        if let Some(disabled) = &target.disabled {
            return Outcome::permanent(
                Some("target_disabled".into()),
                format!("the target is disabled: {}", disabled.reason),
            );
        }
        if source.kind != target.kind || source.kind != task.kind {
            return Outcome::permanent(
                Some("kind_mismatch".into()),
                format!("source is {} but target is {}", source.kind, target.kind),
            );
        }
        let Some(channel) = self.channels.get(task.kind) else {
            return Outcome::permanent(
                Some("no_channel".into()),
                format!("no channel for {}", task.kind),
            );
        };
        let source_secrets = match self
            .load_secrets(SecretOwner::Source(&source.id), &source.secret_fields)
            .await
        {
            Ok(s) => s,
            Err(outcome) => return outcome,
        };
        let target_secrets = match self
            .load_secrets(SecretOwner::Target(&target.id), &target.secret_fields)
            .await
        {
            Ok(s) => s,
            Err(outcome) => return outcome,
        };
        channel
            .send(&SendRequest {
                source_config: &source.config,
                source_secrets: &source_secrets,
                target_config: &target.config,
                target_secrets: &target_secrets,
                message,
            })
            .await
    }

    async fn load_secrets(
        &self,
        owner: SecretOwner<'_>,
        fields: &[String],
    ) -> Result<SecretBundle, Outcome> {
        if fields.is_empty() {
            return Ok(SecretBundle::new());
        }
        self.secrets
            .get_secrets(owner)
            .await
            .map_err(|err| match err {
                notify_domain::SecretError::NotFound(_)
                | notify_domain::SecretError::Corrupt(_) => {
                    Outcome::permanent(Some("secret_missing".into()), err.to_string())
                }
                notify_domain::SecretError::Unavailable(_) => {
                    Outcome::retryable(None, err.to_string())
                }
            })
    }

    /// A provider said the target is gone: stop sending to it until the user fixes it.
    /// What a send says about the target: a dead target is disabled; a moved one (a Telegram
    /// group upgraded to a supergroup) gets its new address.
    pub async fn apply_to_target(&self, task: &Task, outcome: &Outcome) {
        match outcome {
            Outcome::DeadTarget { message, .. } => self.disable_target(task, message).await,
            Outcome::Delivered {
                target_update: Some(update),
                ..
            } => self.update_target(task, update).await,
            _ => {}
        }
    }

    async fn update_target(
        &self,
        task: &Task,
        update: &serde_json::Map<String, serde_json::Value>,
    ) {
        let Ok(Some(mut target)) = self.config.get_target(&task.user_id, &task.target_id).await
        else {
            return;
        };
        let expected_version = target.version;
        target.config.extend(update.clone());
        target.version += 1;
        target.updated_at = Utc::now();
        match self
            .config
            .save_target(&target, WriteMode::Replace { expected_version })
            .await
        {
            Ok(()) => {
                info!(target_id = %target.id, fields = ?update.keys().collect::<Vec<_>>(), "target updated as the provider reported")
            }
            Err(err) => warn!(target_id = %target.id, error = %err, "could not update the target"),
        }
    }

    async fn disable_target(&self, task: &Task, reason: &str) {
        let Ok(Some(mut target)) = self.config.get_target(&task.user_id, &task.target_id).await
        else {
            return;
        };
        let expected_version = target.version;
        target.disabled = Some(DisabledReason {
            reason: reason.to_string(),
            at: Utc::now(),
        });
        target.version += 1;
        target.updated_at = Utc::now();
        if let Err(err) = self
            .config
            .save_target(&target, WriteMode::Replace { expected_version })
            .await
        {
            warn!(target_id = %target.id, error = %err, "could not mark target disabled");
        }
    }
}
