//! AWS clients pointed at moto on 127.0.0.1 (started by `make services-up`).
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;

/// moto's address: `AWS_ENDPOINT_URL` when set, else the Makefile's default port.
pub fn moto_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:5055".into())
}

/// An SDK configuration for moto with static test credentials; no environment mutation, so
/// tests can run in parallel.
pub async fn moto_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto_endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await
}

/// Fails fast with a helpful message when moto is not running.
pub async fn require_moto() {
    let endpoint = moto_endpoint();
    let addr = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    if tokio::net::TcpStream::connect(&addr).await.is_err() {
        panic!("moto is not reachable at {endpoint}; run the tests with `make test` (it starts moto), or `make services-up` first");
    }
}
