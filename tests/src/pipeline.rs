//! The event pipeline as deployed: custom bus → rule → SQS queue (with a dead-letter queue) →
//! events function. Creates it on moto, and plays Lambda's SQS poller locally.
use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use notify_aws::dead_letter::DeadLetters;
use notify_domain::SectionEventName;
use notify_service::Dispatcher;
use serde_json::json;

/// The `source` the upstream app puts its events with (the template's `UpstreamEventSource`
/// default); the local rule matches only it, as the deployed one does.
pub const UPSTREAM_SOURCE: &str = "knowledge.app";

pub struct Pipeline {
    pub bus: String,
    pub queue_url: String,
    pub dlq_url: String,
}

/// Creates (or finds) the bus, the queues and the rule matching the four section events and
/// DailySummaryPublished.
pub async fn create(aws: &SdkConfig, name: &str) -> Pipeline {
    let events = aws_sdk_eventbridge::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .expect("create dlq")
        .queue_url
        .unwrap();
    let dlq_arn = queue_arn(&sqs, &dlq_url).await;
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("{name}-events"))
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}).to_string(),
        )
        .send()
        .await
        .expect("create queue")
        .queue_url
        .unwrap();
    let queue_arn = queue_arn(&sqs, &queue_url).await;
    events
        .create_event_bus()
        .name(name)
        .send()
        .await
        .expect("create bus");
    let mut detail_types: Vec<&str> = SectionEventName::ALL.iter().map(|e| e.as_str()).collect();
    detail_types.push(notify_domain::event::DAILY_SUMMARY_PUBLISHED);
    events
        .put_rule()
        .name(format!("{name}-section-events"))
        .event_bus_name(name)
        // As the deployment's rule: the upstream app's source and the handled detail-types.
        .event_pattern(
            json!({"source": [UPSTREAM_SOURCE], "detail-type": detail_types}).to_string(),
        )
        .send()
        .await
        .expect("put rule");
    events
        .put_targets()
        .rule(format!("{name}-section-events"))
        .event_bus_name(name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("events-queue")
                .arn(queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("put targets");
    Pipeline {
        bus: name.to_string(),
        queue_url,
        dlq_url,
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("queue arn")
}

/// Puts one section event on the bus, as the upstream app does.
pub async fn put_event(
    aws: &SdkConfig,
    bus: &str,
    detail_type: &str,
    detail: &serde_json::Value,
) -> String {
    let out = aws_sdk_eventbridge::Client::new(aws)
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(bus)
                .source(UPSTREAM_SOURCE)
                .detail_type(detail_type)
                .detail(detail.to_string())
                .build(),
        )
        .send()
        .await
        .expect("put events");
    assert_eq!(
        out.failed_entry_count, 0,
        "PutEvents failed: {:?}",
        out.entries
    );
    out.entries()[0].event_id().unwrap_or_default().to_string()
}

/// What one poll did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Polled {
    pub received: usize,
    pub failed: usize,
}

/// One round of Lambda's SQS poller: receive up to 10 records, invoke the events handler with
/// them, delete the ones it did not report as failed.
pub async fn poll_once(
    aws: &SdkConfig,
    queue_url: &str,
    dispatcher: &Dispatcher,
    dead_letters: Option<&dyn DeadLetters>,
    wait_secs: i32,
) -> Polled {
    let sqs = aws_sdk_sqs::Client::new(aws);
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_secs)
        .send()
        .await
        .expect("receive");
    let messages = out.messages.unwrap_or_default();
    if messages.is_empty() {
        return Polled::default();
    }
    let mut event = SqsEvent::default();
    for m in &messages {
        let mut record = SqsMessage::default();
        record.message_id = m.message_id.clone();
        record.receipt_handle = m.receipt_handle.clone();
        record.body = m.body.clone();
        record.event_source = Some("aws:sqs".into());
        event.records.push(record);
    }
    let response =
        notify_events::handle_sqs(dispatcher, dead_letters, crate::deadline(), event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    for m in &messages {
        if !failed.contains(&m.message_id.as_deref().unwrap_or_default()) {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        } else {
            // Make a failed record visible again at once (Lambda would wait for the timeout).
            sqs.change_message_visibility()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                .visibility_timeout(0)
                .send()
                .await
                .expect("change visibility");
        }
    }
    Polled {
        received: messages.len(),
        failed: failed.len(),
    }
}
