//! Lambda entrypoint for the scheduler (EventBridge rule `rate(1 minute)`).
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    notify_service::telemetry::init();
    let dispatcher = notify_aws::wiring::dispatcher_from_env().await?;
    let dispatcher = &dispatcher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = notify_service::deadline_from_epoch_ms(event.context.deadline);
        notify_scheduler::handle(dispatcher, chrono::Utc::now(), deadline)
            .await
            .map_err(Error::from)
    }))
    .await
}
