//! AWS adapters for the domain's ports: DynamoDB for configuration, deliveries and claims;
//! Secrets Manager for secret fields. Clients are built once per container by the caller and
//! shared.

pub mod dead_letter;
pub mod dynamo;
pub mod permissions;
pub mod schema;
pub mod secrets;
pub mod wiring;

pub use dynamo::DynamoStore;
pub use secrets::SecretsManagerStore;

/// Loads the shared AWS configuration (region, credentials, `AWS_ENDPOINT_URL` for moto).
pub async fn load_aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
