//! Assembles the [`Dispatcher`] from settings and AWS clients: the one place that knows which
//! adapter serves which port. Called once per container by each function's `main`.
use std::sync::Arc;

use notify_channels::ChannelRegistry;
use notify_service::{Dispatcher, Settings, Templates};

use crate::{DynamoStore, SecretsManagerStore};

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error(transparent)]
    Settings(#[from] notify_service::settings::SettingsError),
    #[error("building the HTTP client: {0}")]
    Http(#[from] reqwest_error::Error),
    #[error("compiling templates: {0}")]
    Templates(String),
}

mod reqwest_error {
    /// The channel registry's HTTP client error, without naming reqwest here.
    pub type Error = Box<dyn std::error::Error + Send + Sync>;
}

/// Builds the dispatcher with DynamoDB and Secrets Manager adapters from `aws`.
pub fn dispatcher(
    settings: Settings,
    aws: &aws_config::SdkConfig,
) -> Result<Dispatcher, WiringError> {
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(aws),
        settings.table.clone(),
        settings.delivery_retention,
    ));
    let secrets = Arc::new(SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(aws),
        settings.secret_prefix.clone(),
        settings.secret_cache_ttl,
    ));
    let channels =
        ChannelRegistry::new(&settings.endpoints).map_err(|e| WiringError::Http(Box::new(e)))?;
    let templates = Templates::load(settings.web_base_url.clone())
        .map_err(|e| WiringError::Templates(e.to_string()))?;
    Ok(Dispatcher {
        config: store.clone(),
        deliveries: store.clone(),
        activity: store,
        secrets,
        sleeper: Arc::new(notify_service::dispatch::TokioSleeper),
        channels,
        templates: Arc::new(templates),
        settings: Arc::new(settings),
    })
}

/// Reads settings from the environment and loads the AWS configuration.
pub async fn dispatcher_from_env() -> Result<Dispatcher, WiringError> {
    let settings = Settings::from_env()?;
    let aws = crate::load_aws_config().await;
    dispatcher(settings, &aws)
}
