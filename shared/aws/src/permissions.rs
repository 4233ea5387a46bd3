//! The IAM permissions each function needs, in one place: `infra/template.yaml` grants each
//! function's role exactly these (action, resource) pairs, and
//! `tests/tests/integration/infra.rs` fails when the two differ in either direction, when an adapter calls
//! an AWS operation missing from [`SDK_OPERATIONS`], or when an action here is not a real IAM
//! action.
//!
//! Each group below names the adapter methods it covers. When an adapter method starts calling
//! another AWS operation, add the operation to [`SDK_OPERATIONS`] and its action to the group;
//! when a function starts reaching another adapter method, add the group to the function's list.
//! Then grant the same in the template (the check says exactly what is missing).
use crate::schema::{DUE_INDEX, EVENT_INDEX, UNREAD_INDEX};

/// What a permission applies to. The check resolves each to the template resource the
/// function's configuration points at (for example `Table` to the table named by `NOTIFY_TABLE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// The DynamoDB table itself: item reads and writes, and queries on the base table.
    Table,
    /// One global secondary index of the table (queries on it), by name.
    Index(&'static str),
    /// Every secret under the service's prefix (`NOTIFY_SECRET_PREFIX`, then `*`).
    Secrets,
    /// The SQS queue the events function is fed from (its event source mapping polls it).
    EventsQueue,
    /// The SQS queue refused events are parked on (`NOTIFY_EVENTS_DLQ_URL`).
    EventsDeadLetterQueue,
    /// The function's own CloudWatch Logs log group.
    LogGroup,
}

/// IAM actions on one resource, needed by one group of operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The group's name, for messages.
    pub name: &'static str,
    pub resource: Resource,
    pub actions: &'static [&'static str],
}

// ---- DynamoDB: `DynamoStore` as `ConfigStore` (shared/aws/src/dynamo.rs)

/// `get_source`, `get_target`, `get_task`: `GetItem`.
pub const CONFIG_GET: Grant = Grant {
    name: "CONFIG_GET",
    resource: Resource::Table,
    actions: &["dynamodb:GetItem"],
};

/// `list_sources`, `list_targets`, `list_tasks`: `Query` on the base table (the caller's
/// partition).
pub const CONFIG_LIST: Grant = Grant {
    name: "CONFIG_LIST",
    resource: Resource::Table,
    actions: &["dynamodb:Query"],
};

/// `save_source`, `save_target`, `save_task` (create or replace, conditional): `PutItem`.
pub const CONFIG_SAVE: Grant = Grant {
    name: "CONFIG_SAVE",
    resource: Resource::Table,
    actions: &["dynamodb:PutItem"],
};

/// `delete_source`, `delete_target`, `delete_task`: `DeleteItem`.
pub const CONFIG_DELETE: Grant = Grant {
    name: "CONFIG_DELETE",
    resource: Resource::Table,
    actions: &["dynamodb:DeleteItem"],
};

/// `tasks_for_event`: `Query` on the `by_event` index.
pub const TASKS_FOR_EVENT: Grant = Grant {
    name: "TASKS_FOR_EVENT",
    resource: Resource::Index(EVENT_INDEX),
    actions: &["dynamodb:Query"],
};

/// `due_tasks`: `Query` on the `by_due` index.
pub const DUE_TASKS: Grant = Grant {
    name: "DUE_TASKS",
    resource: Resource::Index(DUE_INDEX),
    actions: &["dynamodb:Query"],
};

// ---- DynamoDB: `DynamoStore` as `DeliveryLog`

/// `get_delivery` (`GetItem`) and `list_deliveries` (`Query` on the base table).
pub const DELIVERY_READ: Grant = Grant {
    name: "DELIVERY_READ",
    resource: Resource::Table,
    actions: &["dynamodb:GetItem", "dynamodb:Query"],
};

/// `list_deliveries` with `unread_only`, `unread_count`, and the pages `mark_all_read` walks:
/// `Query` on the `by_unread` index.
pub const UNREAD_DELIVERIES: Grant = Grant {
    name: "UNREAD_DELIVERIES",
    resource: Resource::Index(UNREAD_INDEX),
    actions: &["dynamodb:Query"],
};

/// `set_read` and `mark_all_read` (`UpdateItem`), `delete_delivery` (`DeleteItem`).
pub const DELIVERY_INBOX: Grant = Grant {
    name: "DELIVERY_INBOX",
    resource: Resource::Table,
    actions: &["dynamodb:UpdateItem", "dynamodb:DeleteItem"],
};

/// `claim_delivery`: the claim (`PutItem`, conditional), on a lost race reading it back
/// (`GetItem`) and taking over a stale lease (`UpdateItem`), then writing the delivery record
/// (`PutItem`, and `GetItem` to keep the record of a taken-over claim).
pub const DELIVERY_CLAIM: Grant = Grant {
    name: "DELIVERY_CLAIM",
    resource: Resource::Table,
    actions: &[
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ],
};

/// `claim_schedule_slot`: `TransactWriteItems` of an `Update` (advance the task) and a `Put`
/// (the claim). A transaction has no IAM action of its own: it needs the actions of its parts.
/// Then the delivery record (`PutItem`).
pub const SCHEDULE_CLAIM: Grant = Grant {
    name: "SCHEDULE_CLAIM",
    resource: Resource::Table,
    actions: &["dynamodb:PutItem", "dynamodb:UpdateItem"],
};

/// `finish_delivery`: the delivery record (`PutItem`) and the claim's state or lease
/// (`UpdateItem`); `close_claim`: the claim's state (`UpdateItem`).
pub const DELIVERY_FINISH: Grant = Grant {
    name: "DELIVERY_FINISH",
    resource: Resource::Table,
    actions: &["dynamodb:PutItem", "dynamodb:UpdateItem"],
};

/// `due_slot_retries`: `Query` on the `by_due` index (its retry partition).
pub const SLOT_RETRIES: Grant = Grant {
    name: "SLOT_RETRIES",
    resource: Resource::Index(DUE_INDEX),
    actions: &["dynamodb:Query"],
};

// ---- DynamoDB: `DynamoStore` as `ActivityLog`

/// `record_activity` (a `TransactWriteItems` of two `Put`s: the entry and its once-per-event
/// marker) and `save_published_summary`: `PutItem`.
pub const ACTIVITY_WRITE: Grant = Grant {
    name: "ACTIVITY_WRITE",
    resource: Resource::Table,
    actions: &["dynamodb:PutItem"],
};

/// `activity_between` (`Query` on the base table) and `published_summary` (`GetItem`).
pub const ACTIVITY_READ: Grant = Grant {
    name: "ACTIVITY_READ",
    resource: Resource::Table,
    actions: &["dynamodb:GetItem", "dynamodb:Query"],
};

// ---- Secrets Manager: `SecretsManagerStore` (shared/aws/src/secrets.rs)

/// `get_secrets`: `GetSecretValue`.
pub const SECRETS_READ: Grant = Grant {
    name: "SECRETS_READ",
    resource: Resource::Secrets,
    actions: &["secretsmanager:GetSecretValue"],
};

/// `put_secrets` (`PutSecretValue`; for a new secret `CreateSecret` with a tag, which also
/// needs `TagResource`) and `delete_secrets` (`DeleteSecret`).
pub const SECRETS_WRITE: Grant = Grant {
    name: "SECRETS_WRITE",
    resource: Resource::Secrets,
    actions: &[
        "secretsmanager:PutSecretValue",
        "secretsmanager:CreateSecret",
        "secretsmanager:TagResource",
        "secretsmanager:DeleteSecret",
    ],
};

// ---- SQS: `SqsDeadLetters` (shared/aws/src/dead_letter.rs)

/// `park`: `SendMessage` to the dead-letter queue.
pub const DEAD_LETTERS: Grant = Grant {
    name: "DEAD_LETTERS",
    resource: Resource::EventsDeadLetterQueue,
    actions: &["sqs:SendMessage"],
};

// ---- Used by Lambda on the function's behalf, not by the code

/// Lambda writes the function's logs to its log group (created by the template).
pub const LOGS: Grant = Grant {
    name: "LOGS",
    resource: Resource::LogGroup,
    actions: &["logs:CreateLogStream", "logs:PutLogEvents"],
};

/// The SQS event source mapping polls the events queue with the function's role.
pub const EVENTS_QUEUE_POLL: Grant = Grant {
    name: "EVENTS_QUEUE_POLL",
    resource: Resource::EventsQueue,
    actions: &[
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    ],
};

/// Groups used by Lambda rather than by an adapter.
pub const RUNTIME_GRANTS: &[Grant] = &[LOGS, EVENTS_QUEUE_POLL];

// ---- Per function

/// `functions/api`: sources, targets and tasks (read, list, save, delete; a task's source and
/// target are read to check the pair), their secret fields (merged on update, so read too), the
/// caller's inbox of deliveries (list, unread, read state, delete), and the test send
/// (`Dispatcher::send_within` reads the source, the target and their secrets;
/// `apply_to_target` saves a disabled or migrated target), and previews (a Daily Summary
/// preview reads the user's activity through `Dispatcher::daily_summary`). It never claims a
/// delivery and never records activity.
pub const API: &[Grant] = &[
    LOGS,
    CONFIG_GET,
    CONFIG_LIST,
    CONFIG_SAVE,
    CONFIG_DELETE,
    DELIVERY_READ,
    UNREAD_DELIVERIES,
    DELIVERY_INBOX,
    ACTIVITY_READ,
    SECRETS_READ,
    SECRETS_WRITE,
];

/// `functions/events`: `Dispatcher::handle_event` (activity per recipient, tasks for the event,
/// claim, send with the source's and target's secrets, finish; a dead target is marked disabled
/// with `save_target`), `Dispatcher::save_published_summary` (`DailySummaryPublished`), and
/// parking refused events.
pub const EVENTS: &[Grant] = &[
    LOGS,
    EVENTS_QUEUE_POLL,
    ACTIVITY_WRITE,
    TASKS_FOR_EVENT,
    CONFIG_GET,
    CONFIG_SAVE,
    DELIVERY_CLAIM,
    DELIVERY_FINISH,
    SECRETS_READ,
    DEAD_LETTERS,
];

/// `functions/scheduler`: `Dispatcher::tick` (due tasks, the activity and published summary a
/// Daily Summary is rendered from, claim each slot, send, finish; a dead target is marked
/// disabled with `save_target`), and slot retries (due claims, the task read afresh, the claim
/// taken over with `claim_delivery`, or ended with the record read by `get_delivery`).
pub const SCHEDULER: &[Grant] = &[
    LOGS,
    DUE_TASKS,
    SLOT_RETRIES,
    ACTIVITY_READ,
    CONFIG_GET,
    CONFIG_SAVE,
    SCHEDULE_CLAIM,
    DELIVERY_CLAIM,
    DELIVERY_READ,
    DELIVERY_FINISH,
    SECRETS_READ,
];

/// Every function by its binary name, with its grants.
pub const FUNCTIONS: &[(&str, &[Grant])] =
    &[("api", API), ("events", EVENTS), ("scheduler", SCHEDULER)];

/// The AWS SDK operations the adapters call (`client.<operation>()`) and the IAM actions each
/// needs as the adapters use it.
pub const SDK_OPERATIONS: &[(&str, &[&str])] = &[
    ("get_item", &["dynamodb:GetItem"]),
    ("put_item", &["dynamodb:PutItem"]),
    ("update_item", &["dynamodb:UpdateItem"]),
    ("delete_item", &["dynamodb:DeleteItem"]),
    ("query", &["dynamodb:Query"]),
    // claim_schedule_slot's transaction (an Update and a Put); record_activity's (two Puts).
    (
        "transact_write_items",
        &["dynamodb:UpdateItem", "dynamodb:PutItem"],
    ),
    ("get_secret_value", &["secretsmanager:GetSecretValue"]),
    ("put_secret_value", &["secretsmanager:PutSecretValue"]),
    // Created with a tag (`notify:user`).
    (
        "create_secret",
        &["secretsmanager:CreateSecret", "secretsmanager:TagResource"],
    ),
    ("delete_secret", &["secretsmanager:DeleteSecret"]),
    ("send_message", &["sqs:SendMessage"]),
];

/// The distinct actions of `grants`, sorted.
pub fn actions(grants: &[Grant]) -> Vec<&'static str> {
    let mut all: Vec<&'static str> = grants
        .iter()
        .flat_map(|g| g.actions.iter().copied())
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// The distinct (resource, action) pairs of `grants`, sorted.
pub fn resource_actions(grants: &[Grant]) -> Vec<(Resource, &'static str)> {
    let mut all: Vec<(Resource, &'static str)> = grants
        .iter()
        .flat_map(|g| g.actions.iter().map(move |a| (g.resource, *a)))
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_deduplicated() {
        let all = actions(SCHEDULER);
        assert_eq!(
            all.iter().filter(|a| **a == "dynamodb:PutItem").count(),
            1,
            "{all:?}"
        );
    }

    #[test]
    fn only_the_api_writes_secrets_and_only_events_reach_the_queues() {
        for (name, grants) in FUNCTIONS {
            let writes_secrets = grants.contains(&SECRETS_WRITE);
            assert_eq!(writes_secrets, *name == "api", "{name}");
            let queues = grants.iter().any(|g| {
                matches!(
                    g.resource,
                    Resource::EventsQueue | Resource::EventsDeadLetterQueue
                )
            });
            assert_eq!(queues, *name == "events", "{name}");
        }
    }
}
