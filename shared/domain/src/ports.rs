//! Ports: what the application needs from storage and secrets. Adapters (DynamoDB, Secrets
//! Manager) implement them in `notify-aws`; tests and handlers see only these traits.
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::event::SectionEventName;
use crate::model::{ActivityItem, Delivery, Source, Target, Task};
use crate::secret::SecretBundle;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: someone else changed the item since it was read.
    #[error("{0} was changed by another request; reload it and retry")]
    Conflict(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("the pagination cursor is not valid")]
    BadCursor,
    #[error("storage request failed: {0}")]
    Unavailable(String),
    #[error("stored item could not be read: {0}")]
    Corrupt(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {0} was not found")]
    NotFound(String),
    #[error("secret store request failed: {0}")]
    Unavailable(String),
    #[error("secret {0} is not in the expected format")]
    Corrupt(String),
}

/// A page request: `cursor` is the opaque value from the previous page's `next_cursor`.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// How a write relates to what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// The item must not exist yet.
    Create,
    /// The item must exist with this version.
    Replace { expected_version: u64 },
}

/// Sources, targets and tasks. Every read and write is scoped to one user.
#[async_trait]
pub trait ConfigStore: Send + Sync {
    async fn save_source(&self, source: &Source, mode: WriteMode) -> Result<(), StoreError>;
    async fn get_source(&self, user: &str, id: &str) -> Result<Option<Source>, StoreError>;
    async fn list_sources(
        &self,
        user: &str,
        page: &PageRequest,
    ) -> Result<Page<Source>, StoreError>;
    async fn delete_source(&self, user: &str, id: &str) -> Result<bool, StoreError>;

    async fn save_target(&self, target: &Target, mode: WriteMode) -> Result<(), StoreError>;
    async fn get_target(&self, user: &str, id: &str) -> Result<Option<Target>, StoreError>;
    async fn list_targets(
        &self,
        user: &str,
        page: &PageRequest,
    ) -> Result<Page<Target>, StoreError>;
    async fn delete_target(&self, user: &str, id: &str) -> Result<bool, StoreError>;

    async fn save_task(&self, task: &Task, mode: WriteMode) -> Result<(), StoreError>;
    async fn get_task(&self, user: &str, id: &str) -> Result<Option<Task>, StoreError>;
    async fn list_tasks(&self, user: &str, page: &PageRequest) -> Result<Page<Task>, StoreError>;
    async fn delete_task(&self, user: &str, id: &str) -> Result<bool, StoreError>;

    /// The user's enabled tasks triggered by `event` (read through an index, not a scan).
    async fn tasks_for_event(
        &self,
        user: &str,
        event: SectionEventName,
    ) -> Result<Vec<Task>, StoreError>;
    /// Enabled scheduled tasks whose `next_fire_at` is at or before `now`, oldest first, at
    /// most `limit` of them (read through the due-time index).
    async fn due_tasks(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Task>, StoreError>;
}

/// What happened when a worker tried to claim a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This worker may send; the delivery record exists as `pending`.
    Granted(Box<Delivery>),
    /// The delivery was already completed (sent, or failed for good): do nothing.
    AlreadyDone,
    /// Another worker holds a live lease on it: try again later.
    InProgress,
}

/// What becomes of a claim once an attempt has been recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimEnd {
    /// Sent, skipped, or failed for good: the key is never sent again.
    Done,
    /// Failed in a way worth retrying: another attempt may take the claim over at once, keeping
    /// the same delivery record (an event's, when the event is redelivered).
    Release,
    /// Failed in a way worth retrying, to be tried again from this instant (a scheduled slot's
    /// retry wait): the claim becomes due for the scheduler then.
    RetryAt(DateTime<Utc>),
}

/// A scheduled slot whose claim is due for another attempt: its last attempt failed with a
/// retryable outcome, or its worker died and the lease ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRetry {
    /// The claim's idempotency key (`schedule:{task_id}:{slot}`).
    pub key: String,
    pub user_id: String,
    pub task_id: String,
    pub slot: DateTime<Utc>,
    pub delivery_id: String,
    /// When the current lease ends; another worker may take the claim over from then.
    pub lease_until: DateTime<Utc>,
}

/// Delivery records and the claims that make sends idempotent.
#[async_trait]
pub trait DeliveryLog: Send + Sync {
    /// Claims `key` (an idempotency key such as `event:{event_id}:{task_id}`) for `lease`
    /// and writes `pending` as the delivery record. A released claim, or one whose lease ran
    /// out (the worker died mid-send), is taken over, keeping its delivery id; the granted
    /// record's `attempts` then counts every earlier attempt on the claim, those whose worker
    /// died included, even if the user deleted the record meanwhile.
    async fn claim_delivery(
        &self,
        key: &str,
        pending: &Delivery,
        lease_until: DateTime<Utc>,
    ) -> Result<Claim, StoreError>;

    /// Claims one scheduled slot of a task and, in the same atomic step, moves the task's
    /// `next_fire_at` from `slot` to `next`. Exactly one caller wins per slot. Until it is
    /// done, the claim is listed by [`DeliveryLog::due_slot_retries`] once its lease runs out,
    /// so a slot whose worker died is not lost.
    async fn claim_schedule_slot(
        &self,
        task: &Task,
        slot: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
        pending: &Delivery,
        lease_until: DateTime<Utc>,
    ) -> Result<Claim, StoreError>;

    /// Ends the claim as `end` says, then records the outcome of the delivery. The claim goes
    /// first: should the record then fail, the claim is still never sent again by mistake.
    /// `leased_until` is the lease this worker claimed with: a release or retry of a claim
    /// another worker has taken over since (its lease differs) is left to that worker, record
    /// and all, so a late finisher can neither shorten the new owner's lease nor overwrite its
    /// record. `Done` always closes: the message went out.
    async fn finish_delivery(
        &self,
        key: &str,
        delivery: &Delivery,
        leased_until: DateTime<Utc>,
        end: ClaimEnd,
    ) -> Result<(), StoreError>;

    /// Marks a claim done without touching any delivery record (used when the record is gone
    /// and the claim must still never be sent).
    async fn close_claim(&self, key: &str) -> Result<(), StoreError>;

    /// Scheduled slots whose claim is not done and whose lease ended at or before `now`,
    /// oldest first, at most `limit` (read through an index, not a scan).
    async fn due_slot_retries(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<SlotRetry>, StoreError>;

    async fn get_delivery(&self, user: &str, id: &str) -> Result<Option<Delivery>, StoreError>;
    /// The user's deliveries, newest first; only unread ones with `unread_only`.
    async fn list_deliveries(
        &self,
        user: &str,
        page: &PageRequest,
        unread_only: bool,
    ) -> Result<Page<Delivery>, StoreError>;
    /// Sets the read flag; `None` when there is no such delivery for this user.
    async fn set_read(
        &self,
        user: &str,
        id: &str,
        read: bool,
    ) -> Result<Option<Delivery>, StoreError>;
    /// Marks every unread delivery read; returns how many changed.
    async fn mark_all_read(&self, user: &str) -> Result<usize, StoreError>;
    async fn unread_count(&self, user: &str) -> Result<usize, StoreError>;
    async fn delete_delivery(&self, user: &str, id: &str) -> Result<bool, StoreError>;
}

/// Which resource a secret belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretOwner<'a> {
    Source(&'a str),
    Target(&'a str),
}

/// One secret bundle per source or target.
#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn put_secrets(
        &self,
        user: &str,
        owner: SecretOwner<'_>,
        bundle: &SecretBundle,
    ) -> Result<(), SecretError>;
    async fn get_secrets(&self, owner: SecretOwner<'_>) -> Result<SecretBundle, SecretError>;
    async fn delete_secrets(&self, owner: SecretOwner<'_>) -> Result<(), SecretError>;
}

/// Recent activity per user (for the Daily Summary) and summaries published by the upstream app.
#[async_trait]
pub trait ActivityLog: Send + Sync {
    /// Records that `item.user_id` was told about an event; idempotent per event.
    async fn record_activity(&self, item: &ActivityItem) -> Result<(), StoreError>;
    /// Items with `from < at <= to`, newest first, at most `limit`.
    async fn activity_between(
        &self,
        user: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ActivityItem>, StoreError>;
    async fn save_published_summary(
        &self,
        user: &str,
        date: chrono::NaiveDate,
        text: &str,
    ) -> Result<(), StoreError>;
    async fn published_summary(
        &self,
        user: &str,
        date: chrono::NaiveDate,
    ) -> Result<Option<String>, StoreError>;
}
