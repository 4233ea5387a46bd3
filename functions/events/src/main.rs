//! Lambda entrypoint for section events (EventBridge rule, directly or through SQS).
use lambda_runtime::{service_fn, Error, LambdaEvent};
use notify_aws::dead_letter::{DeadLetters, SqsDeadLetters};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    notify_service::telemetry::init();
    let aws = notify_aws::load_aws_config().await;
    let settings = notify_service::Settings::from_env()?;
    let dead_letters: Option<Box<dyn DeadLetters>> = settings.events_dlq_url.clone().map(|url| {
        Box::new(SqsDeadLetters::new(aws_sdk_sqs::Client::new(&aws), url)) as Box<dyn DeadLetters>
    });
    let dispatcher = notify_aws::wiring::dispatcher(settings, &aws)?;
    let (dispatcher, dead_letters) = (&dispatcher, dead_letters.as_deref());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        notify_events::handle(
            dispatcher,
            dead_letters,
            notify_service::deadline_from_epoch_ms(event.context.deadline),
            event.payload,
        )
        .await
        .map_err(Error::from)
    }))
    .await
}
