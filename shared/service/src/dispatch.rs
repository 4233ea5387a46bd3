//! The dispatcher: claim → resolve source and target → render → send → record. Used by the
//! events function (section events) and the scheduler (due cron slots).
//!
//! Exactly-once: every delivery is claimed in DynamoDB under a deterministic key before it is
//! sent (`event:{event_id}:{task_id}` or `schedule:{task_id}:{slot}`); a completed claim is
//! never sent again. A retryable failure releases the claim for a later attempt: an event's
//! through SQS redelivery, a scheduled slot's through the scheduler's retry partition, with a
//! growing wait and a bounded number of attempts. A worker that dies mid-send leaves a lease
//! that a later attempt takes over once it has run out (for slots, the scheduler finds it).
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use notify_channels::{ChannelRegistry, Outcome, SendRequest};
use notify_domain::event::{Recipient, RecipientRole, SectionEvent};
use notify_domain::schedule::Schedule;
use notify_domain::{
    ActivityItem, ActivityLog, Claim, ClaimEnd, ConfigStore, Content, Delivery, DeliveryCause,
    DeliveryLog, DeliveryStatus, DisabledReason, Message, PublishedSummary, SecretBundle,
    SecretOwner, SecretStore, SlotRetry, StoreError, Task, TemplateId, Trigger, WriteMode,
};
use tracing::{error, info, warn};

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
    /// Slots another invocation fired first, or is sending right now.
    pub already_claimed: usize,
    /// Due tasks or retries left for the next tick because the time budget ran out.
    pub deferred: usize,
    /// Earlier slots found due for another attempt (their send failed retryably, or their
    /// worker died); what became of them is counted in the fields above.
    pub retries_due: usize,
    /// Sends that failed retryably and will be tried again by a later tick.
    pub retrying: usize,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    Sent,
    Failed,
    Duplicate,
    /// Another worker holds a live lease on the claim.
    Busy(String),
    Retry(String),
    Skipped,
}

/// How a delivery is claimed, which decides how a retryable failure is retried.
#[derive(Debug, Clone, Copy)]
enum Claiming {
    /// A section event's delivery; the event's redelivery retries it.
    Event,
    /// A slot the scheduler has just reached, claimed together with moving the task on.
    NewSlot {
        slot: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
        /// Older than the catch-up window: recorded as skipped, not sent.
        stale: bool,
    },
    /// A slot claimed earlier that is due for another attempt.
    SlotRetry {
        /// Its retries ran past the catch-up window: recorded as skipped, not sent.
        stale: bool,
    },
}

impl Claiming {
    /// Why a stale slot is recorded as skipped rather than sent; `None` when it is not stale.
    fn skip_reason(self) -> Option<&'static str> {
        match self {
            Claiming::NewSlot { stale: true, .. } => {
                Some("slot was older than the catch-up window when the scheduler reached it")
            }
            Claiming::SlotRetry { stale: true } => Some(
                "slot's retries ran past the catch-up window and its retry schedule (the scheduler was down)",
            ),
            _ => None,
        }
    }
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
        let link = self.templates.section_link(
            &event.section.id,
            event.comment.as_ref().map(|c| c.id.as_str()),
        );
        // The upstream app's time, but never in the future: a wrong clock must not make an
        // entry outlive its retention or land in a later day's summary.
        let now = Utc::now();
        let at = event.occurred_at.map_or(now, |t| t.min(now));
        // Each recipient costs two DynamoDB calls (the activity entry, the tasks for the event):
        // done a bounded number at a time, a thousand recipients take a fraction of the time.
        // Futures collected first: a stream over a borrowing closure trips rustc's Send check
        // where the handler is spawned.
        let lookups: Vec<_> = event
            .recipients
            .iter()
            .map(|recipient| self.recipient_jobs(event, recipient, &link, at))
            .collect();
        let lookups: Vec<Result<Vec<(RecipientRole, Task)>, StoreError>> = stream::iter(lookups)
            .buffered(EVENT_CONCURRENCY)
            .collect()
            .await;
        let mut jobs = Vec::new();
        for lookup in lookups {
            jobs.extend(lookup?);
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
                    Claiming::Event,
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
                Attempt::Busy(reason) | Attempt::Retry(reason) => {
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

    /// Records the event in `recipient`'s activity (kept a few days for their Daily Summary,
    /// once per event id) and returns their enabled tasks for it.
    async fn recipient_jobs(
        &self,
        event: &SectionEvent,
        recipient: &Recipient,
        link: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<(RecipientRole, Task)>, StoreError> {
        self.activity
            .record_activity(&ActivityItem {
                user_id: recipient.user_id.clone(),
                event: event.name,
                event_id: event.event_id.clone(),
                section_id: event.section.id.clone(),
                section_title: event.section.title.clone(),
                actor: event.actor.clone(),
                link: link.to_string(),
                at,
            })
            .await?;
        let tasks = self
            .config
            .tasks_for_event(&recipient.user_id, event.name)
            .await?;
        Ok(tasks
            .into_iter()
            .map(|task| (recipient.role, task))
            .collect())
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
        // The sends above happened whatever this read does. A failed read fails the tick after
        // them (so the function's error alarm sees it); running the tick again is safe.
        let (retries, retry_read_error) = match self
            .deliveries
            .due_slot_retries(now, self.settings.scheduler_batch)
            .await
        {
            Ok(retries) => (retries, None),
            Err(err) => (Vec::new(), Some(err)),
        };
        report.retries_due = retries.len();
        let retried: Vec<Option<Attempt>> = stream::iter(retries)
            .map(|retry| self.retry_slot(retry, now, deadline))
            .buffer_unordered(self.settings.scheduler_concurrency)
            .collect()
            .await;
        for attempt in attempts.into_iter().flatten().chain(retried) {
            match attempt {
                None => report.deferred += 1,
                Some(Attempt::Sent) => report.sent += 1,
                Some(Attempt::Failed) => report.failed += 1,
                Some(Attempt::Retry(_)) => report.retrying += 1,
                Some(Attempt::Skipped) => report.skipped += 1,
                Some(Attempt::Duplicate) | Some(Attempt::Busy(_)) => report.already_claimed += 1,
            }
        }
        if let Some(err) = retry_read_error {
            error!(report = ?report, error = %err, "the due tasks were sent, but the slots due for a retry could not be read");
            return Err(err.into());
        }
        Ok(report)
    }

    /// When a claim taken now may be taken over by another worker: not before the configured
    /// lease has run out, and not before the invocation that takes it can have ended (Lambda
    /// stops a function at its timeout) — so a worker that is still sending, however slowly its
    /// provider answers, is never taken over and never sends in parallel with its successor.
    fn lease_until(&self, deadline: Instant) -> DateTime<Utc> {
        const MARGIN: std::time::Duration = std::time::Duration::from_secs(10);
        const LONGEST_INVOCATION: std::time::Duration = std::time::Duration::from_secs(900);
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .min(LONGEST_INVOCATION)
            + MARGIN;
        let invocation = chrono::Duration::from_std(remaining).unwrap_or(chrono::Duration::MAX);
        Utc::now() + self.settings.lease.max(invocation)
    }

    /// Whether there is still time to start a send and record it before `deadline`.
    fn time_for_a_send(&self, deadline: Instant) -> bool {
        deadline.saturating_duration_since(Instant::now())
            >= self.settings.endpoints.timeout + std::time::Duration::from_secs(2)
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
            if !self.time_for_a_send(deadline) {
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
        let rendered = match self.render_slot(task, slot, &schedule, stale).await {
            Ok(rendered) => rendered,
            // Not claimed yet: the slot stays due and the next tick tries again.
            Err(err) => return (Attempt::Retry(err.to_string()), None),
        };
        let attempt = self
            .deliver(
                task,
                &key,
                DeliveryCause::Schedule { slot },
                rendered,
                Claiming::NewSlot { slot, next, stale },
                deadline,
            )
            .await;
        (attempt, next)
    }

    /// Renders what the task sends for `slot`. A Daily Summary reads the user's activity; when
    /// that read fails the slot must be tried again (`Err`). A stale slot is not sent, so its
    /// Daily Summary is not gathered.
    async fn render_slot(
        &self,
        task: &Task,
        slot: DateTime<Utc>,
        schedule: &Schedule,
        stale: bool,
    ) -> Result<Result<Message, String>, StoreError> {
        let summary = match &task.content {
            Content::Template {
                template: TemplateId::DailySummary,
            } if !stale => {
                let data = self
                    .daily_summary(&task.user_id, slot, schedule.timezone())
                    .await
                    .inspect_err(|err| {
                        warn!(task_id = %task.id, error = %err, "could not read activity for the daily summary");
                    })?;
                Some(data)
            }
            _ => None,
        };
        Ok(self
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
            .map_err(|e| e.to_string()))
    }

    /// Tries an earlier slot again: its last send failed retryably, or its worker died. The
    /// task is read afresh; a task deleted, disabled or no longer scheduled meanwhile is not
    /// sent, and its record says why. `None` when the time budget has run out.
    async fn retry_slot(
        &self,
        retry: SlotRetry,
        now: DateTime<Utc>,
        deadline: Instant,
    ) -> Option<Attempt> {
        if !self.time_for_a_send(deadline) {
            return None;
        }
        let task = match self.config.get_task(&retry.user_id, &retry.task_id).await {
            Ok(task) => task,
            // Stays due: the next tick tries again.
            Err(err) => return Some(Attempt::Retry(err.to_string())),
        };
        let schedule = task
            .as_ref()
            .filter(|t| t.enabled)
            .and_then(|t| match &t.trigger {
                Trigger::Schedule { cron, timezone, .. } => Schedule::parse(cron, timezone).ok(),
                Trigger::Event { .. } => None,
            });
        let (Some(task), Some(schedule)) = (task, schedule) else {
            return Some(self.abandon_slot(&retry, deadline).await);
        };
        let stale = self.settings.retry_is_stale(&retry, now);
        let rendered = match self.render_slot(&task, retry.slot, &schedule, stale).await {
            Ok(rendered) => rendered,
            Err(err) => return Some(Attempt::Retry(err.to_string())),
        };
        Some(
            self.deliver(
                &task,
                &retry.key,
                DeliveryCause::Schedule { slot: retry.slot },
                rendered,
                Claiming::SlotRetry { stale },
                deadline,
            )
            .await,
        )
    }

    /// Ends a slot retry whose task is gone or no longer scheduled: never sent, and the
    /// delivery record (if the user kept it) says why. The claim is taken over first, so a
    /// worker still sending (or a slot already sent) is left alone.
    async fn abandon_slot(&self, retry: &SlotRetry, deadline: Instant) -> Attempt {
        let reason = "the task was deleted, disabled or changed to another trigger before this slot could be sent again";
        let record = match self
            .deliveries
            .get_delivery(&retry.user_id, &retry.delivery_id)
            .await
        {
            Ok(record) => record,
            Err(err) => return Attempt::Retry(format!("reading {}: {err}", retry.key)),
        };
        let ended = match record {
            Some(record) => {
                let lease_until = self.lease_until(deadline);
                match self
                    .deliveries
                    .claim_delivery(&retry.key, &record, lease_until)
                    .await
                {
                    Ok(Claim::Granted(delivery)) => {
                        let mut delivery = *delivery;
                        delivery.status = DeliveryStatus::Failed;
                        delivery.provider_code = Some("task_gone".into());
                        delivery.provider_message = Some(reason.into());
                        delivery.updated_at = Utc::now();
                        self.deliveries
                            .finish_delivery(&retry.key, &delivery, lease_until, ClaimEnd::Done)
                            .await
                    }
                    Ok(Claim::AlreadyDone) => return Attempt::Duplicate,
                    Ok(Claim::InProgress) => {
                        return Attempt::Busy(format!(
                            "delivery {} is in progress elsewhere",
                            retry.key
                        ))
                    }
                    Err(err) => Err(err),
                }
            }
            // The user deleted the record: nothing to tell them; the slot is just never sent.
            None => self.deliveries.close_claim(&retry.key).await,
        };
        match ended {
            Ok(()) => {
                info!(user_id = %retry.user_id, task_id = %retry.task_id, delivery_id = %retry.delivery_id, key = %retry.key, outcome = "abandoned", reason, "notification attempt");
                Attempt::Failed
            }
            Err(err) => Attempt::Retry(format!("closing {}: {err}", retry.key)),
        }
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

    /// Claims, sends and records one delivery; `claiming` says how it is claimed and how a
    /// retryable failure is retried.
    async fn deliver(
        &self,
        task: &Task,
        key: &str,
        cause: DeliveryCause,
        rendered: Result<Message, String>,
        claiming: Claiming,
        deadline: Instant,
    ) -> Attempt {
        let pending = self.pending(task, cause, rendered.as_ref().ok());
        let lease_until = self.lease_until(deadline);
        let claim = match claiming {
            // A retried slot's claim exists: this takes it over once its lease has run out.
            Claiming::Event | Claiming::SlotRetry { .. } => {
                self.deliveries
                    .claim_delivery(key, &pending, lease_until)
                    .await
            }
            Claiming::NewSlot { slot, next, .. } => {
                self.deliveries
                    .claim_schedule_slot(task, slot, next, &pending, lease_until)
                    .await
            }
        };
        let mut delivery = match claim {
            Ok(Claim::Granted(d)) => *d,
            Ok(Claim::AlreadyDone) => return Attempt::Duplicate,
            Ok(Claim::InProgress) => {
                return Attempt::Busy(format!("delivery {key} is in progress elsewhere"))
            }
            Err(err) => return Attempt::Retry(format!("claiming {key}: {err}")),
        };

        // A taken-over claim keeps its record; it now shows what this attempt sends.
        if let Ok(message) = &rendered {
            delivery.title.clone_from(&message.title);
            delivery.body.clone_from(&message.body);
            delivery.link.clone_from(&message.link);
            delivery.cover_url.clone_from(&message.cover_url);
        }
        // Attempts whose worker died count too, so a slot that keeps killing its worker stops.
        let exhausted = matches!(claiming, Claiming::SlotRetry { stale: false })
            && delivery.attempts >= self.settings.slot_retry.attempts;

        let started = Instant::now();
        let outcome = match &rendered {
            _ if claiming.skip_reason().is_some() || exhausted => None,
            Err(reason) => Some(Outcome::permanent(
                Some("render_failed".into()),
                reason.clone(),
            )),
            Ok(message) => Some(self.send_within(task, message, deadline).await),
        };
        if outcome.is_some() {
            delivery.attempts += 1;
        }
        delivery.updated_at = Utc::now();
        let mut end = ClaimEnd::Done;
        let attempt = match &outcome {
            None if exhausted => {
                delivery.status = DeliveryStatus::Failed;
                delivery.provider_code = Some("retries_exhausted".into());
                delivery.provider_message = Some(format!(
                    "gave up after {} attempts, counting those cut short",
                    delivery.attempts
                ));
                Attempt::Failed
            }
            None => {
                delivery.status = DeliveryStatus::Skipped;
                delivery.provider_message = claiming.skip_reason().map(str::to_string);
                Attempt::Skipped
            }
            Some(Outcome::Delivered {
                provider_message_id,
                ..
            }) => {
                delivery.status = DeliveryStatus::Sent;
                delivery.provider_message_id = provider_message_id.clone();
                Attempt::Sent
            }
            Some(other) => {
                delivery.status = DeliveryStatus::Failed;
                delivery.provider_code = other.code().map(str::to_string);
                delivery.provider_message = other.message().map(str::to_string);
                if let Outcome::Retryable {
                    retry_after_secs, ..
                } = other
                {
                    end = self.retry_end(claiming, delivery.attempts, *retry_after_secs);
                }
                match end {
                    ClaimEnd::Done => Attempt::Failed,
                    ClaimEnd::Release | ClaimEnd::RetryAt(_) => Attempt::Retry(format!(
                        "task {}: {}",
                        task.id,
                        other.message().unwrap_or_default()
                    )),
                }
            }
        };
        let retry_at = match end {
            ClaimEnd::RetryAt(at) => Some(at.to_rfc3339()),
            _ => None,
        };
        info!(
            user_id = %task.user_id,
            task_id = %task.id,
            delivery_id = %delivery.id,
            kind = %task.kind,
            key = %key,
            attempt = delivery.attempts,
            outcome = outcome
                .as_ref()
                .map_or(if exhausted { "gave_up" } else { "skipped" }, Outcome::label),
            provider_code = outcome.as_ref().and_then(Outcome::code),
            provider_message = outcome.as_ref().and_then(Outcome::message),
            retry_at,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "notification attempt"
        );
        if let Some(outcome) = &outcome {
            self.apply_to_target(task, outcome).await;
        }
        if let Err(err) = self
            .deliveries
            .finish_delivery(key, &delivery, lease_until, end)
            .await
        {
            warn!(delivery_id = %delivery.id, error = %err, "could not record delivery outcome");
            // A claim left pending is taken over once its lease runs out (a slot's by the
            // scheduler), which would send a finished delivery again: close it at least.
            if end == ClaimEnd::Done {
                if let Err(err) = self.deliveries.close_claim(key).await {
                    warn!(delivery_id = %delivery.id, error = %err, "could not close the claim of a finished delivery; it may be sent again");
                }
            }
        }
        attempt
    }

    /// How a retryable failure ends its claim. An event's is released for its redelivery; a
    /// slot's waits a growing time, a bounded number of times, and is then final.
    fn retry_end(
        &self,
        claiming: Claiming,
        attempts_made: u32,
        provider_wait_secs: Option<u64>,
    ) -> ClaimEnd {
        match claiming {
            Claiming::Event => ClaimEnd::Release,
            Claiming::NewSlot { .. } | Claiming::SlotRetry { .. } => {
                let provider_wait = provider_wait_secs
                    .map(|secs| chrono::Duration::seconds(secs.min(86_400) as i64));
                self.settings
                    .slot_retry
                    .wait_after(attempts_made, provider_wait)
                    .map_or(ClaimEnd::Done, |wait| ClaimEnd::RetryAt(Utc::now() + wait))
            }
        }
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
