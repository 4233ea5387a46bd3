//! Lambda entrypoint for the configuration API (API Gateway HTTP API, payload v2).
use notify_api::{router, AppState};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    notify_service::telemetry::init();
    let dispatcher = notify_aws::wiring::dispatcher_from_env().await?;
    lambda_http::run(router(AppState { dispatcher })).await
}
