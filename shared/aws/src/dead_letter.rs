//! Parks refused events on an SQS dead-letter queue with the reason attached, so they are
//! neither lost nor retried pointlessly.
use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::MessageAttributeValue;

/// Somewhere to put events that can never be processed.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    async fn park(&self, body: &str, reason: &str) -> Result<(), String>;
}

pub struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsDeadLetters {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        SqsDeadLetters {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn park(&self, body: &str, reason: &str) -> Result<(), String> {
        let reason: String = reason.chars().take(1000).collect();
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes(
                "refused_because",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(reason)
                    .build()
                    .map_err(|e| e.to_string())?,
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| DisplayErrorContext(e).to_string())
    }
}
