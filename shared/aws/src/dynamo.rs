//! DynamoDB adapter for [`ConfigStore`], [`DeliveryLog`] and [`ActivityLog`]. Every SDK
//! operation called here must be mapped to its IAM actions in `permissions.rs` (a test checks).
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use notify_domain::{
    ActivityItem, ActivityLog, Claim, ClaimEnd, ConfigStore, Delivery, DeliveryCause, DeliveryLog,
    Page, PageRequest, SectionEventName, SlotRetry, Source, StoreError, Target, Task, Trigger,
    WriteMode,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::schema::{
    due_shard_for, event_key, user_pk, DUE_AT, DUE_INDEX, DUE_SHARD, DUE_SHARDS, EVENT_INDEX,
    EVENT_KEY, EXPIRES_AT, PK, RETRY_SHARD, SK, UNREAD_INDEX, UNREAD_KEY,
};

type Item = HashMap<String, AttributeValue>;

/// Activity is kept long enough for any Daily Summary schedule to read its last 24 hours.
const ACTIVITY_RETENTION: Duration = Duration::days(3);
const PUBLISHED_SUMMARY_RETENTION: Duration = Duration::days(7);

/// Claims outlive the longest possible redelivery of the same event by a wide margin.
const CLAIM_RETENTION: Duration = Duration::days(14);

/// DynamoDB single-table store. Cheap to clone; build once per container.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    delivery_retention: Duration,
    due_reads: Arc<ReadMeter>,
}

/// Counts what the scheduler's lookups on the due index cost (due tasks and slot retries):
/// queries sent and items DynamoDB read.
#[derive(Debug, Default)]
pub struct ReadMeter {
    pub queries: AtomicU64,
    pub items: AtomicU64,
}

impl ReadMeter {
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.queries.load(Ordering::Relaxed),
            self.items.load(Ordering::Relaxed),
        )
    }
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, delivery_retention: Duration) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            delivery_retention,
            due_reads: Arc::default(),
        }
    }

    /// Queries and items read by [`ConfigStore::due_tasks`] and
    /// [`DeliveryLog::due_slot_retries`] since this store was built.
    pub fn due_reads(&self) -> &ReadMeter {
        &self.due_reads
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// A pending slot claim read from the retry partition; `None` once it is done.
fn slot_retry(item: &Item) -> Result<Option<SlotRetry>, StoreError> {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("slot claim without {name}")))
    };
    let instant = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|secs| DateTime::from_timestamp(secs, 0))
            .ok_or_else(|| StoreError::Corrupt(format!("slot claim without {name}")))
    };
    if text("state")? != "pending" {
        return Ok(None);
    }
    let pk = text(PK)?;
    Ok(Some(SlotRetry {
        key: pk.strip_prefix("CLAIM#").unwrap_or(&pk).to_string(),
        user_id: text("user_id")?,
        task_id: text("task_id")?,
        slot: instant("slot")?,
        delivery_id: text("delivery_id")?,
        lease_until: instant("lease_until")?,
    }))
}

/// A resource stored under its owner's partition.
trait Resource: Serialize + DeserializeOwned + Sync {
    const PREFIX: &'static str;
    const NAME: &'static str;
    fn user(&self) -> &str;
    fn id(&self) -> &str;
    /// Index attributes derived from the resource.
    fn index_attributes(&self, _item: &mut Item) {}
}

impl Resource for Source {
    const PREFIX: &'static str = "SOURCE#";
    const NAME: &'static str = "source";
    fn user(&self) -> &str {
        &self.user_id
    }
    fn id(&self) -> &str {
        &self.id
    }
}

impl Resource for Target {
    const PREFIX: &'static str = "TARGET#";
    const NAME: &'static str = "target";
    fn user(&self) -> &str {
        &self.user_id
    }
    fn id(&self) -> &str {
        &self.id
    }
}

impl Resource for Task {
    const PREFIX: &'static str = "TASK#";
    const NAME: &'static str = "task";
    fn user(&self) -> &str {
        &self.user_id
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn index_attributes(&self, item: &mut Item) {
        if !self.enabled {
            return;
        }
        match (&self.trigger, self.next_fire_at) {
            (Trigger::Event { event }, _) => {
                item.insert(
                    EVENT_KEY.into(),
                    s(event_key(event.as_str(), &self.user_id)),
                );
            }
            (Trigger::Schedule { .. }, Some(next)) => {
                item.insert(DUE_SHARD.into(), s(due_shard_for(&self.id)));
                item.insert(DUE_AT.into(), n(self.due_time(next).timestamp()));
            }
            (Trigger::Schedule { .. }, None) => {}
        }
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A lease end in whole epoch seconds, rounded up: a lease (or a retry's wait) never ends
/// early because the table keeps seconds.
fn lease_end(at: DateTime<Utc>) -> AttributeValue {
    let secs = at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0);
    n(secs)
}

fn unavailable<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::Unavailable(DisplayErrorContext(err).to_string())
}

fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn encode_cursor(last_key: Option<&Item>) -> Option<String> {
    let sk = last_key?.get(SK)?.as_s().ok()?;
    Some(URL_SAFE_NO_PAD.encode(sk))
}

/// Decodes a cursor into a start key inside the caller's own partition: a cursor can never
/// reach another user's items, whatever it contains.
fn decode_cursor(user: &str, prefix: &str, cursor: &str) -> Result<Item, StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::BadCursor)?;
    let sk = String::from_utf8(bytes).map_err(|_| StoreError::BadCursor)?;
    if !sk.starts_with(prefix) {
        return Err(StoreError::BadCursor);
    }
    Ok(HashMap::from([
        (PK.to_string(), s(user_pk(user))),
        (SK.to_string(), s(sk)),
    ]))
}

impl DynamoStore {
    async fn save<T: Resource>(&self, value: &T, mode: WriteMode) -> Result<(), StoreError> {
        let mut item = to_item(value)?;
        item.insert(PK.into(), s(user_pk(value.user())));
        item.insert(SK.into(), s(format!("{}{}", T::PREFIX, value.id())));
        value.index_attributes(&mut item);
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let request = match mode {
            WriteMode::Create => request.condition_expression("attribute_not_exists(pk)"),
            WriteMode::Replace { expected_version } => request
                .condition_expression("attribute_exists(pk) AND version = :v")
                .expression_attribute_values(":v", n(expected_version as i64)),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err) => {
                let conditional = err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception());
                match (conditional, mode) {
                    (true, WriteMode::Create) => Err(StoreError::AlreadyExists(format!(
                        "{} {}",
                        T::NAME,
                        value.id()
                    ))),
                    (true, WriteMode::Replace { .. }) => {
                        Err(StoreError::Conflict(format!("{} {}", T::NAME, value.id())))
                    }
                    (false, _) => Err(unavailable(err)),
                }
            }
        }
    }

    async fn get<T: Resource>(&self, user: &str, id: &str) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(user)))
            .key(SK, s(format!("{}{id}", T::PREFIX)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.map(from_item).transpose()
    }

    async fn list<T: Resource>(
        &self,
        user: &str,
        page: &PageRequest,
    ) -> Result<Page<T>, StoreError> {
        let start = page
            .cursor
            .as_deref()
            .map(|c| decode_cursor(user, T::PREFIX, c))
            .transpose()?;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(user_pk(user)))
            .expression_attribute_values(":prefix", s(T::PREFIX))
            .set_exclusive_start_key(start)
            .limit(page.limit.max(1) as i32)
            .send()
            .await
            .map_err(unavailable)?;
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect::<Result<Vec<T>, _>>()?;
        Ok(Page {
            items,
            next_cursor: encode_cursor(out.last_evaluated_key.as_ref()),
        })
    }

    async fn delete<T: Resource>(&self, user: &str, id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(user)))
            .key(SK, s(format!("{}{id}", T::PREFIX)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    fn delivery_item(&self, delivery: &Delivery) -> Result<Item, StoreError> {
        let mut item = to_item(delivery)?;
        item.insert(PK.into(), s(user_pk(&delivery.user_id)));
        item.insert(SK.into(), s(format!("DELIVERY#{}", delivery.id)));
        item.insert(
            EXPIRES_AT.into(),
            n((delivery.created_at + self.delivery_retention).timestamp()),
        );
        if !delivery.read {
            item.insert(UNREAD_KEY.into(), s(user_pk(&delivery.user_id)));
        }
        Ok(item)
    }

    async fn put_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let item = self.delivery_item(delivery)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The claim item for `key`, read consistently.
    async fn read_claim(&self, key: &str) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(format!("CLAIM#{key}")))
            .key(SK, s("CLAIM"))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?
            .item)
    }

    fn claim_item(key: &str, delivery: &Delivery, lease_until: DateTime<Utc>) -> Item {
        HashMap::from([
            (PK.to_string(), s(format!("CLAIM#{key}"))),
            (SK.to_string(), s("CLAIM")),
            ("state".to_string(), s("pending")),
            ("lease_until".to_string(), lease_end(lease_until)),
            ("delivery_id".to_string(), s(delivery.id.clone())),
            ("user_id".to_string(), s(delivery.user_id.clone())),
            (
                EXPIRES_AT.to_string(),
                n((Utc::now() + CLAIM_RETENTION).timestamp()),
            ),
        ])
    }

    /// The items of one `by_due` partition due at or before `now`, at most `limit`, oldest
    /// first; counted by the [`ReadMeter`].
    async fn due_items(
        &self,
        shard: String,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("#shard = :shard AND #due <= :now")
            .expression_attribute_names("#shard", DUE_SHARD)
            .expression_attribute_names("#due", DUE_AT)
            .expression_attribute_values(":shard", s(shard))
            .expression_attribute_values(":now", n(now.timestamp()))
            .limit(limit.max(1) as i32)
            .send()
            .await
            .map_err(unavailable)?;
        self.due_reads.queries.fetch_add(1, Ordering::Relaxed);
        self.due_reads
            .items
            .fetch_add(out.scanned_count.max(0) as u64, Ordering::Relaxed);
        Ok(out.items.unwrap_or_default())
    }

    /// After a lost claim race: decide between done, in progress, and taking over a stale lease.
    async fn resolve_existing_claim(
        &self,
        key: &str,
        pending: &Delivery,
        lease_until: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let Some(existing) = self.read_claim(key).await? else {
            return Ok(Claim::InProgress); // released meanwhile; a retry will claim it
        };
        if !is_pending(&existing) {
            return Ok(Claim::AlreadyDone);
        }
        let old_lease = existing
            .get("lease_until")
            .and_then(|v| v.as_n().ok())
            .cloned()
            .unwrap_or_default();
        if old_lease.parse::<i64>().unwrap_or(i64::MAX) > Utc::now().timestamp() {
            return Ok(Claim::InProgress);
        }
        // A slot claim stays findable by the scheduler at the end of the new lease, in case
        // this worker dies too.
        let expression = if existing.contains_key(DUE_SHARD) {
            "SET lease_until = :new, due_at = :new ADD takeovers :one"
        } else {
            "SET lease_until = :new ADD takeovers :one"
        };
        let taken = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(format!("CLAIM#{key}")))
            .key(SK, s("CLAIM"))
            .update_expression(expression)
            .condition_expression("#state = :pending AND lease_until = :old")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":new", lease_end(lease_until))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":old", AttributeValue::N(old_lease))
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        match taken {
            Ok(out) => {
                // Each take-over follows one attempt that did not finish the claim: released
                // after a retryable failure, or cut short by a dying worker.
                let takeovers = out
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get("takeovers"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0);
                let id = existing
                    .get("delivery_id")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_else(|| pending.id.clone());
                let mut delivery = self
                    .get_delivery(&pending.user_id, &id)
                    .await?
                    .unwrap_or_else(|| Delivery {
                        id: id.clone(),
                        ..pending.clone()
                    });
                delivery.status = notify_domain::DeliveryStatus::Pending;
                delivery.attempts = delivery.attempts.max(takeovers);
                delivery.updated_at = Utc::now();
                self.put_delivery(&delivery).await?;
                Ok(Claim::Granted(Box::new(delivery)))
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(Claim::InProgress)
            }
            Err(err) => Err(unavailable(err)),
        }
    }
}

#[async_trait]
impl ConfigStore for DynamoStore {
    async fn save_source(&self, source: &Source, mode: WriteMode) -> Result<(), StoreError> {
        self.save(source, mode).await
    }
    async fn get_source(&self, user: &str, id: &str) -> Result<Option<Source>, StoreError> {
        self.get(user, id).await
    }
    async fn list_sources(
        &self,
        user: &str,
        page: &PageRequest,
    ) -> Result<Page<Source>, StoreError> {
        self.list(user, page).await
    }
    async fn delete_source(&self, user: &str, id: &str) -> Result<bool, StoreError> {
        self.delete::<Source>(user, id).await
    }

    async fn save_target(&self, target: &Target, mode: WriteMode) -> Result<(), StoreError> {
        self.save(target, mode).await
    }
    async fn get_target(&self, user: &str, id: &str) -> Result<Option<Target>, StoreError> {
        self.get(user, id).await
    }
    async fn list_targets(
        &self,
        user: &str,
        page: &PageRequest,
    ) -> Result<Page<Target>, StoreError> {
        self.list(user, page).await
    }
    async fn delete_target(&self, user: &str, id: &str) -> Result<bool, StoreError> {
        self.delete::<Target>(user, id).await
    }

    async fn save_task(&self, task: &Task, mode: WriteMode) -> Result<(), StoreError> {
        self.save(task, mode).await
    }
    async fn get_task(&self, user: &str, id: &str) -> Result<Option<Task>, StoreError> {
        self.get(user, id).await
    }
    async fn list_tasks(&self, user: &str, page: &PageRequest) -> Result<Page<Task>, StoreError> {
        self.list(user, page).await
    }
    async fn delete_task(&self, user: &str, id: &str) -> Result<bool, StoreError> {
        self.delete::<Task>(user, id).await
    }

    async fn tasks_for_event(
        &self,
        user: &str,
        event: SectionEventName,
    ) -> Result<Vec<Task>, StoreError> {
        let mut tasks = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(EVENT_INDEX)
                .key_condition_expression("#k = :k")
                .expression_attribute_names("#k", EVENT_KEY)
                .expression_attribute_values(":k", s(event_key(event.as_str(), user)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items.unwrap_or_default() {
                let task: Task = from_item(item)?;
                // The index is eventually consistent; the item itself is the authority.
                if task.enabled && task.user_id == user && task.event() == Some(event) {
                    tasks.push(task);
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(tasks)
    }

    async fn due_tasks(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Task>, StoreError> {
        let mut due = Vec::new();
        for shard in 0..DUE_SHARDS {
            for item in self.due_items(format!("DUE#{shard}"), now, limit).await? {
                due.push(from_item::<Task>(item)?);
            }
        }
        due.sort_by_key(|t| t.next_fire_at.map(|slot| t.due_time(slot)));
        due.truncate(limit);
        Ok(due)
    }
}

#[async_trait]
impl DeliveryLog for DynamoStore {
    async fn claim_delivery(
        &self,
        key: &str,
        pending: &Delivery,
        lease_until: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::claim_item(key, pending, lease_until)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => {
                self.put_delivery(pending).await?;
                Ok(Claim::Granted(Box::new(pending.clone())))
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                self.resolve_existing_claim(key, pending, lease_until).await
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn claim_schedule_slot(
        &self,
        task: &Task,
        slot: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
        pending: &Delivery,
        lease_until: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let key = format!("schedule:{}:{}", task.id, slot.timestamp());
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(user_pk(&task.user_id)))
            .key(SK, s(format!("TASK#{}", task.id)))
            .condition_expression("#due = :slot AND enabled = :true")
            .expression_attribute_names("#due", DUE_AT)
            .expression_attribute_values(":slot", n(task.due_time(slot).timestamp()))
            .expression_attribute_values(":true", AttributeValue::Bool(true));
        let update = match next {
            Some(next) => update
                .update_expression("SET #due = :next, next_fire_at = :next_text")
                .expression_attribute_values(":next", n(task.due_time(next).timestamp()))
                .expression_attribute_values(
                    ":next_text",
                    s(next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                ),
            None => update
                .update_expression("REMOVE #due, #shard, next_fire_at")
                .expression_attribute_names("#shard", DUE_SHARD),
        };
        // Until done, the claim sits in the retry partition of the due index at its lease end.
        let mut claim_item = Self::claim_item(&key, pending, lease_until);
        claim_item.extend([
            (DUE_SHARD.to_string(), s(RETRY_SHARD)),
            (DUE_AT.to_string(), lease_end(lease_until)),
            ("task_id".to_string(), s(task.id.clone())),
            ("slot".to_string(), n(slot.timestamp())),
        ]);
        let claim = Put::builder()
            .table_name(&self.table)
            .set_item(Some(claim_item))
            .condition_expression("attribute_not_exists(pk)");
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .update(
                        update
                            .build()
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    )
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .put(
                        claim
                            .build()
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    )
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => {
                self.put_delivery(pending).await?;
                Ok(Claim::Granted(Box::new(pending.clone())))
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_transaction_canceled_exception()) =>
            {
                Ok(Claim::AlreadyDone)
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn finish_delivery(
        &self,
        key: &str,
        delivery: &Delivery,
        leased_until: DateTime<Utc>,
        end: ClaimEnd,
    ) -> Result<(), StoreError> {
        let retry_from = match end {
            ClaimEnd::Done => {
                self.close_claim(key).await?;
                return self.put_delivery(delivery).await;
            }
            ClaimEnd::Release => n(0),
            ClaimEnd::RetryAt(at) => lease_end(at),
        };
        // The next attempt may take the claim over from then, keeping the same record; a slot's
        // claim becomes due for the scheduler at the same instant.
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(format!("CLAIM#{key}")))
            .key(SK, s("CLAIM"))
            .condition_expression("#state = :pending AND lease_until = :mine")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":mine", lease_end(leased_until))
            .expression_attribute_values(":at", retry_from.clone());
        let update = if matches!(delivery.cause, DeliveryCause::Schedule { .. }) {
            update
                .update_expression("SET lease_until = :at, #due = :at")
                .expression_attribute_names("#due", DUE_AT)
        } else {
            update.update_expression("SET lease_until = :at")
        };
        match update.send().await {
            Ok(_) => self.put_delivery(delivery).await,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                // Either our own update went through and the SDK retried it (the claim now
                // carries exactly what we wrote), or another worker took the claim over (or
                // finished it) meanwhile and owns claim and record.
                let ours = self.read_claim(key).await?.is_some_and(|claim| {
                    is_pending(&claim) && claim.get("lease_until") == Some(&retry_from)
                });
                if ours {
                    return self.put_delivery(delivery).await;
                }
                tracing::warn!(key, delivery_id = %delivery.id, "the claim was taken over before this attempt ended; leaving it and its record to the new owner");
                Ok(())
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn close_claim(&self, key: &str) -> Result<(), StoreError> {
        // Never sent again, and out of the scheduler's retry partition.
        let closed = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(format!("CLAIM#{key}")))
            .key(SK, s("CLAIM"))
            .update_expression("SET #state = :done REMOVE #shard, #due")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#shard", DUE_SHARD)
            .expression_attribute_names("#due", DUE_AT)
            .expression_attribute_values(":done", s("done"))
            .send()
            .await;
        match closed {
            Ok(_) => Ok(()),
            // No claim to close (it expired): nothing can send under it either.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn due_slot_retries(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<SlotRetry>, StoreError> {
        let mut retries = Vec::new();
        for item in self.due_items(RETRY_SHARD.into(), now, limit).await? {
            match slot_retry(&item) {
                Ok(Some(retry)) => retries.push(retry),
                // The index is eventually consistent: a claim finished a moment ago may show.
                Ok(None) => {}
                // One damaged claim must not stop every other retry.
                Err(err) => tracing::warn!(error = %err, "skipping an unreadable slot claim"),
            }
        }
        Ok(retries)
    }

    async fn get_delivery(&self, user: &str, id: &str) -> Result<Option<Delivery>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(user)))
            .key(SK, s(format!("DELIVERY#{id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.map(from_item).transpose()
    }

    async fn list_deliveries(
        &self,
        user: &str,
        page: &PageRequest,
        unread_only: bool,
    ) -> Result<Page<Delivery>, StoreError> {
        let start = page
            .cursor
            .as_deref()
            .map(|c| decode_cursor(user, "DELIVERY#", c))
            .transpose()?;
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .scan_index_forward(false)
            .limit(page.limit.max(1) as i32);
        let query = if unread_only {
            // The index key includes the table key; rebuild the start key for the index.
            let start = start.map(|mut key| {
                key.insert(UNREAD_KEY.into(), s(user_pk(user)));
                key
            });
            query
                .index_name(UNREAD_INDEX)
                .key_condition_expression("#u = :pk")
                .expression_attribute_names("#u", UNREAD_KEY)
                .expression_attribute_values(":pk", s(user_pk(user)))
                .set_exclusive_start_key(start)
        } else {
            query
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(user_pk(user)))
                .expression_attribute_values(":prefix", s("DELIVERY#"))
                .set_exclusive_start_key(start)
        };
        let out = query.send().await.map_err(unavailable)?;
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect::<Result<Vec<Delivery>, _>>()?;
        Ok(Page {
            items,
            next_cursor: encode_cursor(out.last_evaluated_key.as_ref()),
        })
    }

    async fn set_read(
        &self,
        user: &str,
        id: &str,
        read: bool,
    ) -> Result<Option<Delivery>, StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(user)))
            .key(SK, s(format!("DELIVERY#{id}")))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":read", AttributeValue::Bool(read))
            .expression_attribute_names("#u", UNREAD_KEY)
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        let request = if read {
            request.update_expression("SET #read = :read REMOVE #u")
        } else {
            request
                .update_expression("SET #read = :read, #u = :pk")
                .expression_attribute_values(":pk", s(user_pk(user)))
        }
        .expression_attribute_names("#read", "read");
        match request.send().await {
            Ok(out) => out.attributes.map(from_item).transpose(),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn mark_all_read(&self, user: &str) -> Result<usize, StoreError> {
        let mut changed = 0;
        loop {
            // Each pass reads a page of the unread index and clears it; items leave the index
            // as they are marked, so the next pass starts from the top again.
            let page = self
                .list_deliveries(
                    user,
                    &PageRequest {
                        limit: 100,
                        cursor: None,
                    },
                    true,
                )
                .await?;
            if page.items.is_empty() {
                return Ok(changed);
            }
            for delivery in page.items {
                if self.set_read(user, &delivery.id, true).await?.is_some() {
                    changed += 1;
                }
            }
        }
    }

    async fn unread_count(&self, user: &str) -> Result<usize, StoreError> {
        let mut count = 0;
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(UNREAD_INDEX)
                .key_condition_expression("#u = :pk")
                .expression_attribute_names("#u", UNREAD_KEY)
                .expression_attribute_values(":pk", s(user_pk(user)))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            count += out.count.max(0) as usize;
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(count),
            }
        }
    }

    async fn delete_delivery(&self, user: &str, id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(user)))
            .key(SK, s(format!("DELIVERY#{id}")))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

/// Whether a claim item is still pending (not done).
fn is_pending(claim: &Item) -> bool {
    claim
        .get("state")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        == Some("pending")
}

fn activity_sk(at: DateTime<Utc>, event_id: &str) -> String {
    format!(
        "ACTIVITY#{}#{event_id}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

#[async_trait]
impl ActivityLog for DynamoStore {
    /// Once per user and event id: a marker item (`ACTIVITYID#{event_id}`) is put with the
    /// activity item in one transaction, on condition that it does not exist yet, so an event
    /// put on the bus again (with a new envelope time) is not counted twice in a summary.
    async fn record_activity(&self, item: &ActivityItem) -> Result<(), StoreError> {
        let expires_at = n((item.at + ACTIVITY_RETENTION).timestamp());
        let mut attrs = to_item(item)?;
        attrs.insert(PK.into(), s(user_pk(&item.user_id)));
        attrs.insert(SK.into(), s(activity_sk(item.at, &item.event_id)));
        attrs.insert(EXPIRES_AT.into(), expires_at.clone());
        let marker = HashMap::from([
            (PK.to_string(), s(user_pk(&item.user_id))),
            (SK.to_string(), s(format!("ACTIVITYID#{}", item.event_id))),
            (EXPIRES_AT.to_string(), expires_at),
        ]);
        let built = |put: aws_sdk_dynamodb::types::builders::PutBuilder| {
            put.table_name(&self.table)
                .build()
                .map(|put| TransactWriteItem::builder().put(put).build())
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        };
        let result = self
            .client
            .transact_write_items()
            .transact_items(built(
                Put::builder()
                    .set_item(Some(marker))
                    .condition_expression("attribute_not_exists(pk)"),
            )?)
            .transact_items(built(Put::builder().set_item(Some(attrs)))?)
            .send()
            .await;
        // Cancelled because the marker exists: already recorded. Cancelled for anything else
        // (throttling, a conflicting transaction) is an error, so the event is retried.
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    TransactWriteItemsError::TransactionCanceledException(c)
                        if c.cancellation_reasons().first().and_then(|r| r.code())
                            == Some("ConditionalCheckFailed")
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn activity_between(
        &self,
        user: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ActivityItem>, StoreError> {
        // Sort keys are `ACTIVITY#{RFC 3339 millis}#…`, which sort as the times do; `~` sorts
        // after every event id, so the upper bound includes items at exactly `to`.
        let lower = format!("{}~", activity_sk(from, "").trim_end_matches('#'));
        let upper = format!("{}~", activity_sk(to, "").trim_end_matches('#'));
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":pk", s(user_pk(user)))
                .expression_attribute_values(":lo", s(lower.clone()))
                .expression_attribute_values(":hi", s(upper.clone()))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .limit(limit.clamp(1, 1000) as i32)
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items.unwrap_or_default() {
                let activity: ActivityItem = from_item(item)?;
                if activity.at > from && activity.at <= to {
                    items.push(activity);
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() && items.len() < limit => start = Some(key),
                _ => break,
            }
        }
        items.truncate(limit);
        Ok(items)
    }

    async fn save_published_summary(
        &self,
        user: &str,
        date: chrono::NaiveDate,
        text: &str,
    ) -> Result<(), StoreError> {
        let expires = date
            .and_hms_opt(0, 0, 0)
            .map(|d| d.and_utc() + PUBLISHED_SUMMARY_RETENTION)
            .unwrap_or_else(Utc::now);
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(user_pk(user)))
            .item(SK, s(format!("SUMMARY#{date}")))
            .item("summary", s(text))
            .item(EXPIRES_AT, n(expires.timestamp()))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn published_summary(
        &self,
        user: &str,
        date: chrono::NaiveDate,
    ) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(user)))
            .key(SK, s(format!("SUMMARY#{date}")))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out
            .item
            .and_then(|i| i.get("summary").and_then(|v| v.as_s().ok()).cloned()))
    }
}
