//! The single-table layout, in one place: the adapter, the local stack, the tests and the
//! infrastructure check all read these names.
//!
//! | item       | pk                 | sk                 | extra index attributes                 |
//! |------------|--------------------|--------------------|----------------------------------------|
//! | source     | `USER#{user}`      | `SOURCE#{id}`      |                                        |
//! | target     | `USER#{user}`      | `TARGET#{id}`      |                                        |
//! | task       | `USER#{user}`      | `TASK#{id}`        | `event_key` (enabled event tasks), `due_shard` + `due_at` (enabled schedules) |
//! | delivery   | `USER#{user}`      | `DELIVERY#{id}`    | `expires_at` (TTL), `unread_key` while unread |
//! | claim      | `CLAIM#{key}`      | `CLAIM`            | `expires_at` (TTL); a scheduled slot's claim also `due_shard = RETRY` + `due_at` (its lease end) until done |
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
/// Sparse index of enabled event-triggered tasks: `event_key = EVT#{event}#USER#{user}`.
pub const EVENT_INDEX: &str = "by_event";
pub const EVENT_KEY: &str = "event_key";
/// Sparse index of enabled scheduled tasks by their next fire time (epoch seconds).
pub const DUE_INDEX: &str = "by_due";
pub const DUE_SHARD: &str = "due_shard";
pub const DUE_AT: &str = "due_at";
/// Sparse index of unread deliveries: `unread_key = USER#{user}` while a delivery is unread.
pub const UNREAD_INDEX: &str = "by_unread";
pub const UNREAD_KEY: &str = "unread_key";
/// The `by_due` partition of scheduled-slot claims that are not done yet, keyed by the end of
/// their lease: a slot whose send failed retryably, or whose worker died, is found here again.
pub const RETRY_SHARD: &str = "RETRY";
/// Due tasks are spread over this many index partitions so one hot key never limits writes.
pub const DUE_SHARDS: u32 = 4;
/// DynamoDB TTL attribute (epoch seconds).
pub const EXPIRES_AT: &str = "expires_at";

/// Every index the code queries, for the infrastructure consistency check.
pub const INDEXES: [&str; 3] = [EVENT_INDEX, DUE_INDEX, UNREAD_INDEX];

pub fn user_pk(user: &str) -> String {
    format!("USER#{user}")
}

pub fn event_key(event: &str, user: &str) -> String {
    format!("EVT#{event}#USER#{user}")
}

pub fn due_shard_for(task_id: &str) -> String {
    format!(
        "DUE#{}",
        notify_domain::model::stable_hash(task_id) % DUE_SHARDS
    )
}

/// Creates the table with its indexes and TTL (used by the local stack and tests; production
/// uses `infra/template.yaml`, which declares the same layout).
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), aws_sdk_dynamodb::Error> {
    let attr = |name: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
            .expect("attribute definition has all fields")
    };
    let key = |name: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
            .expect("key schema has all fields")
    };
    let all = Projection::builder()
        .projection_type(ProjectionType::All)
        .build();
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(PK, ScalarAttributeType::S))
        .attribute_definitions(attr(SK, ScalarAttributeType::S))
        .attribute_definitions(attr(EVENT_KEY, ScalarAttributeType::S))
        .attribute_definitions(attr(DUE_SHARD, ScalarAttributeType::S))
        .attribute_definitions(attr(DUE_AT, ScalarAttributeType::N))
        .attribute_definitions(attr(UNREAD_KEY, ScalarAttributeType::S))
        .key_schema(key(PK, KeyType::Hash))
        .key_schema(key(SK, KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(EVENT_INDEX)
                .key_schema(key(EVENT_KEY, KeyType::Hash))
                .key_schema(key(SK, KeyType::Range))
                .projection(all.clone())
                .build()
                .expect("index has all fields"),
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(UNREAD_INDEX)
                .key_schema(key(UNREAD_KEY, KeyType::Hash))
                .key_schema(key(SK, KeyType::Range))
                .projection(all.clone())
                .build()
                .expect("index has all fields"),
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(DUE_INDEX)
                .key_schema(key(DUE_SHARD, KeyType::Hash))
                .key_schema(key(DUE_AT, KeyType::Range))
                .projection(all)
                .build()
                .expect("index has all fields"),
        )
        .send()
        .await?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(EXPIRES_AT)
                .enabled(true)
                .build()
                .expect("ttl spec has all fields"),
        )
        .send()
        .await?;
    Ok(())
}
