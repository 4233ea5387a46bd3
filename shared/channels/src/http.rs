//! HTTP helpers shared by the channels that talk to providers with reqwest.
use std::net::SocketAddr;
use std::sync::Arc;

use notify_domain::net::{first_public, non_public_host};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::{Endpoints, Outcome};

/// Redirects a fetch of a user-supplied URL may follow.
const MAX_FETCH_REDIRECTS: usize = 5;

/// A client for fetching URLs that users or events supply (cover images). Unless the deployment
/// allows local endpoints it connects only to public addresses: names are resolved by
/// [`PublicOnly`], and redirects to a literal non-public address are refused.
pub(crate) fn fetch_client(endpoints: &Endpoints) -> Result<reqwest::Client, reqwest::Error> {
    let builder = reqwest::Client::builder()
        .timeout(endpoints.timeout)
        .connect_timeout(endpoints.timeout)
        .user_agent(concat!("notify-service/", env!("CARGO_PKG_VERSION")));
    if endpoints.allow_local_endpoints {
        return builder
            .redirect(reqwest::redirect::Policy::limited(MAX_FETCH_REDIRECTS))
            .build();
    }
    builder
        // A proxy would resolve and connect in our stead, past the resolver's check.
        .no_proxy()
        .dns_resolver(Arc::new(PublicOnly))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= MAX_FETCH_REDIRECTS {
                attempt.error("too many redirects")
            } else if let Some(reason) = attempt.url().host_str().and_then(non_public_host) {
                attempt.error(format!("redirected to a non-public host: {reason}"))
            } else {
                attempt.follow()
            }
        }))
        .build()
}

/// Why a user-supplied URL may not be fetched before any connection is made: a literal
/// non-public address or a local name, unless local endpoints are allowed.
pub(crate) fn refuse_fetch(url: &url::Url, endpoints: &Endpoints) -> Option<String> {
    if endpoints.allow_local_endpoints {
        return None;
    }
    url.host_str().and_then(non_public_host)
}

/// A DNS resolver that answers only with public addresses, so a name that points at a private
/// or metadata address (or is re-pointed there after validation) is never connected to.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| notify_domain::net::is_public_ip(a.ip()))
                .collect();
            if public.is_empty() {
                let reason = first_public(&host, found.iter().map(|a| a.ip())).unwrap_err();
                return Err(reason.into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// A reqwest error as text with its whole cause chain, without its URL (request URLs can hold
/// bot tokens and webhook access tokens).
pub(crate) fn describe_error(context: &str, error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut message = format!("{context}: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// A request that got no (complete) answer: always retryable, coded `timeout`,
/// `connect_failed` or `network_error`.
pub(crate) fn network_outcome(context: &str, error: reqwest::Error) -> Outcome {
    let code = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect_failed"
    } else {
        "network_error"
    };
    Outcome::retryable(Some(code.into()), describe_error(context, error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A listener that counts the connections it accepts.
    async fn counting_listener() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        tokio::spawn(async move {
            while let Ok((_socket, _)) = listener.accept().await {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        (port, count)
    }

    fn endpoints(allow_local_endpoints: bool) -> Endpoints {
        Endpoints {
            timeout: Duration::from_secs(2),
            allow_local_endpoints,
            ..Endpoints::default()
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_never_connected_to() {
        let (port, connections) = counting_listener().await;
        let client = fetch_client(&endpoints(false)).unwrap();
        let error = client
            .get(format!("http://localhost:{port}/cover.png"))
            .send()
            .await
            .unwrap_err();
        let text = describe_error("fetch", error);
        assert!(
            text.contains("not on the public internet"),
            "the resolver's reason is kept: {text}"
        );
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn local_endpoints_allowed_connects_to_loopback() {
        let (port, connections) = counting_listener().await;
        let client = fetch_client(&endpoints(true)).unwrap();
        // The listener never answers: the request times out, after connecting.
        let _ = client
            .get(format!("http://localhost:{port}/cover.png"))
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(connections.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    }

    #[test]
    fn literal_private_addresses_are_refused_before_connecting() {
        let url = url::Url::parse("http://169.254.169.254/latest/meta-data/").unwrap();
        assert!(refuse_fetch(&url, &endpoints(false)).is_some());
        assert!(refuse_fetch(&url, &endpoints(true)).is_none());
        let url = url::Url::parse("https://example.com/cover.png").unwrap();
        assert!(refuse_fetch(&url, &endpoints(false)).is_none());
    }
}
