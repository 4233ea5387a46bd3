//! Configuration from environment variables. [`ENV_VARS`] lists every variable the functions
//! read; the infrastructure check compares it with `infra/template.yaml`.
use chrono::{DateTime, Utc};
use std::time::Duration;

use notify_channels::Endpoints;
use notify_domain::ValidationPolicy;

pub const TABLE: &str = "NOTIFY_TABLE";
pub const SECRET_PREFIX: &str = "NOTIFY_SECRET_PREFIX";
pub const WEB_BASE_URL: &str = "NOTIFY_WEB_BASE_URL";
pub const JWT_HS256_KEY: &str = "NOTIFY_JWT_HS256_KEY";
pub const JWT_ISSUER: &str = "NOTIFY_JWT_ISSUER";
pub const JWT_AUDIENCE: &str = "NOTIFY_JWT_AUDIENCE";
pub const SECRET_CACHE_SECONDS: &str = "NOTIFY_SECRET_CACHE_SECONDS";
pub const DELIVERY_RETENTION_DAYS: &str = "NOTIFY_DELIVERY_RETENTION_DAYS";
pub const ALLOW_LOCAL_ENDPOINTS: &str = "NOTIFY_ALLOW_LOCAL_ENDPOINTS";
pub const TELEGRAM_API_BASE: &str = "NOTIFY_TELEGRAM_API_BASE";
pub const FEISHU_API_BASE: &str = "NOTIFY_FEISHU_API_BASE";
pub const LARK_API_BASE: &str = "NOTIFY_LARK_API_BASE";
pub const APNS_PRODUCTION_BASE: &str = "NOTIFY_APNS_PRODUCTION_BASE";
pub const APNS_SANDBOX_BASE: &str = "NOTIFY_APNS_SANDBOX_BASE";
pub const PROVIDER_TIMEOUT_SECONDS: &str = "NOTIFY_PROVIDER_TIMEOUT_SECONDS";
pub const LEASE_SECONDS: &str = "NOTIFY_LEASE_SECONDS";
pub const SCHEDULER_BATCH: &str = "NOTIFY_SCHEDULER_BATCH";
pub const SCHEDULER_CONCURRENCY: &str = "NOTIFY_SCHEDULER_CONCURRENCY";
pub const CATCH_UP_MINUTES: &str = "NOTIFY_CATCH_UP_MINUTES";
pub const SLOT_RETRY_ATTEMPTS: &str = "NOTIFY_SLOT_RETRY_ATTEMPTS";
pub const SLOT_RETRY_SECONDS: &str = "NOTIFY_SLOT_RETRY_SECONDS";
/// SQS queue for events that can never be processed (malformed); optional.
pub const EVENTS_DLQ_URL: &str = "NOTIFY_EVENTS_DLQ_URL";

/// Every variable read, with whether a deployment must set it.
pub const ENV_VARS: &[(&str, bool)] = &[
    (TABLE, true),
    (SECRET_PREFIX, true),
    (WEB_BASE_URL, true),
    (JWT_HS256_KEY, false),
    (JWT_ISSUER, false),
    (JWT_AUDIENCE, false),
    (SECRET_CACHE_SECONDS, false),
    (DELIVERY_RETENTION_DAYS, false),
    (ALLOW_LOCAL_ENDPOINTS, false),
    (TELEGRAM_API_BASE, false),
    (FEISHU_API_BASE, false),
    (LARK_API_BASE, false),
    (APNS_PRODUCTION_BASE, false),
    (APNS_SANDBOX_BASE, false),
    (PROVIDER_TIMEOUT_SECONDS, false),
    (LEASE_SECONDS, false),
    (SCHEDULER_BATCH, false),
    (SCHEDULER_CONCURRENCY, false),
    (CATCH_UP_MINUTES, false),
    (SLOT_RETRY_ATTEMPTS, false),
    (SLOT_RETRY_SECONDS, false),
    (EVENTS_DLQ_URL, false),
];

#[derive(Debug, thiserror::Error)]
#[error("configuration variable {name}: {problem}")]
pub struct SettingsError {
    pub name: &'static str,
    pub problem: String,
}

#[derive(Clone)]
pub struct Settings {
    pub table: String,
    pub secret_prefix: String,
    /// Base URL of the web app; message links are built from it.
    pub web_base_url: url::Url,
    /// HS256 key for verifying bearer tokens when API Gateway has not already done so.
    pub jwt_hs256_key: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub secret_cache_ttl: Duration,
    pub delivery_retention: chrono::Duration,
    pub validation: ValidationPolicy,
    pub endpoints: Endpoints,
    /// How long a worker owns a claimed delivery before another may take it over.
    pub lease: chrono::Duration,
    pub scheduler_batch: usize,
    pub scheduler_concurrency: usize,
    pub catch_up: chrono::Duration,
    /// How scheduled sends that failed retryably are tried again (event deliveries are
    /// retried by the event's redelivery instead).
    pub slot_retry: SlotRetryPolicy,
    pub events_dlq_url: Option<String>,
}

/// Retries of a scheduled slot: up to `attempts` sends in all, the first retry after
/// `first_wait` (or the provider's requested wait, if longer), each next wait twice the one
/// before, none longer than an hour.
#[derive(Debug, Clone, Copy)]
pub struct SlotRetryPolicy {
    pub attempts: u32,
    pub first_wait: chrono::Duration,
}

impl SlotRetryPolicy {
    const LONGEST_WAIT: chrono::Duration = chrono::Duration::hours(1);

    /// The wait after the `attempts_made`-th failed send, or `None` when that was the last.
    pub fn wait_after(
        &self,
        attempts_made: u32,
        provider_wait: Option<chrono::Duration>,
    ) -> Option<chrono::Duration> {
        if attempts_made >= self.attempts {
            return None;
        }
        let doubled = self
            .first_wait
            .checked_mul(1 << attempts_made.saturating_sub(1).min(20))
            .unwrap_or(Self::LONGEST_WAIT);
        let wait = provider_wait.map_or(doubled, |p| p.max(doubled));
        Some(wait.min(Self::LONGEST_WAIT))
    }

    /// The sum of the waits between the first send and the last, without provider waits.
    pub fn total_wait(&self) -> chrono::Duration {
        (1..self.attempts)
            .filter_map(|made| self.wait_after(made, None))
            .fold(chrono::Duration::zero(), |sum, wait| sum + wait)
    }
}

impl Settings {
    /// Whether the scheduler reached a slot retry too late to send it: it has been due for
    /// longer than the catch-up window (the scheduler was down or throttled), as a missed slot
    /// that old is skipped. A provider's long rate-limit wait moves the retry's due time, so it
    /// never makes a slot stale by itself. (The slot is also older than the catch-up window
    /// plus the whole retry schedule by then; both are checked so that a clock running ahead
    /// of the store's, as in tests, cannot skip a fresh slot.)
    pub fn retry_is_stale(&self, retry: &notify_domain::SlotRetry, now: DateTime<Utc>) -> bool {
        now - retry.lease_until > self.catch_up
            && retry.slot < now - self.catch_up - self.slot_retry.total_wait()
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("table", &self.table)
            .field("secret_prefix", &self.secret_prefix)
            .field("web_base_url", &self.web_base_url.as_str())
            .field(
                "jwt_hs256_key",
                &self.jwt_hs256_key.as_ref().map(|_| "<set>"),
            )
            .finish_non_exhaustive()
    }
}

impl Settings {
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let required = |name: &'static str| {
            get(name).ok_or(SettingsError {
                name,
                problem: "is not set".into(),
            })
        };
        let number = |name: &'static str, default: u64| -> Result<u64, SettingsError> {
            get(name).map_or(Ok(default), |v| {
                v.parse().map_err(|_| SettingsError {
                    name,
                    problem: format!("'{v}' is not a whole number"),
                })
            })
        };
        let flag = |name: &'static str| -> Result<bool, SettingsError> {
            match get(name).as_deref() {
                None | Some("0") | Some("false") => Ok(false),
                Some("1") | Some("true") => Ok(true),
                Some(other) => Err(SettingsError {
                    name,
                    problem: format!("'{other}' is not true or false"),
                }),
            }
        };
        let web = required(WEB_BASE_URL)?;
        let web_base_url = url::Url::parse(&web)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or(SettingsError {
                name: WEB_BASE_URL,
                problem: format!("'{web}' is not an absolute http(s) URL"),
            })?;
        let allow_local = flag(ALLOW_LOCAL_ENDPOINTS)?;
        let defaults = Endpoints::default();
        let endpoints = Endpoints {
            telegram_api_base: get(TELEGRAM_API_BASE).unwrap_or(defaults.telegram_api_base),
            feishu_api_base: get(FEISHU_API_BASE).unwrap_or(defaults.feishu_api_base),
            lark_api_base: get(LARK_API_BASE).unwrap_or(defaults.lark_api_base),
            apns_production_base: get(APNS_PRODUCTION_BASE)
                .unwrap_or(defaults.apns_production_base),
            apns_sandbox_base: get(APNS_SANDBOX_BASE).unwrap_or(defaults.apns_sandbox_base),
            timeout: Duration::from_secs(number(PROVIDER_TIMEOUT_SECONDS, 10)?.max(1)),
            allow_local_endpoints: allow_local,
            ..defaults
        };
        let shortest_lease_secs = 2 * endpoints.timeout.as_secs() + 40;
        let secret_prefix = get(SECRET_PREFIX).unwrap_or_else(|| "notify/".into());
        if !secret_prefix.ends_with('/') {
            return Err(SettingsError {
                name: SECRET_PREFIX,
                problem: "must end with '/'".into(),
            });
        }
        Ok(Settings {
            table: required(TABLE)?,
            secret_prefix,
            web_base_url,
            jwt_hs256_key: get(JWT_HS256_KEY),
            jwt_issuer: get(JWT_ISSUER),
            jwt_audience: get(JWT_AUDIENCE),
            secret_cache_ttl: Duration::from_secs(number(SECRET_CACHE_SECONDS, 300)?),
            delivery_retention: chrono::Duration::days(
                number(DELIVERY_RETENTION_DAYS, 90)?.max(1) as i64
            ),
            validation: ValidationPolicy {
                allow_local_endpoints: allow_local,
            },
            endpoints,
            // Never shorter than one attempt can take (two provider requests around the longest
            // rate-limit wait honoured), or a slow send could be taken over and sent twice.
            lease: chrono::Duration::seconds(
                number(LEASE_SECONDS, 120)?.max(shortest_lease_secs) as i64
            ),
            scheduler_batch: number(SCHEDULER_BATCH, 500)?.max(1) as usize,
            scheduler_concurrency: number(SCHEDULER_CONCURRENCY, 16)?.max(1) as usize,
            catch_up: chrono::Duration::minutes(number(CATCH_UP_MINUTES, 15)? as i64),
            slot_retry: SlotRetryPolicy {
                attempts: number(SLOT_RETRY_ATTEMPTS, 5)?.clamp(1, 20) as u32,
                first_wait: chrono::Duration::seconds(
                    number(SLOT_RETRY_SECONDS, 60)?.clamp(1, 3600) as i64,
                ),
            },
            events_dlq_url: get(EVENTS_DLQ_URL),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn errors_name_the_variable() {
        let env = HashMap::from([(TABLE, "t"), (WEB_BASE_URL, "not a url")]);
        let err = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap_err();
        assert_eq!(err.name, WEB_BASE_URL);
        let env = HashMap::from([(WEB_BASE_URL, "https://app.example")]);
        let err = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap_err();
        assert_eq!(err.name, TABLE);
    }

    #[test]
    fn a_retry_is_stale_when_it_has_waited_past_the_catch_up_window_not_when_a_provider_asked_to_wait(
    ) {
        let env = HashMap::from([(TABLE, "t"), (WEB_BASE_URL, "https://app.example")]);
        let settings = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        // Defaults: catch-up 15 min; 5 attempts, waits 1 + 2 + 4 + 8 = 15 min.
        assert_eq!(settings.catch_up, chrono::Duration::minutes(15));
        assert_eq!(
            settings.slot_retry.total_wait(),
            chrono::Duration::minutes(15)
        );
        let slot: DateTime<Utc> = "2026-12-04T09:00:00Z".parse().unwrap();
        let retry = |due: &str| notify_domain::SlotRetry {
            key: "schedule:t:x".into(),
            user_id: "u".into(),
            task_id: "t".into(),
            slot,
            delivery_id: "d".into(),
            lease_until: due.parse().unwrap(),
        };
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        // A provider asked for 40 minutes: due 09:40, reached 09:41 — sent, not skipped.
        assert!(
            !settings.retry_is_stale(&retry("2026-12-04T09:40:00Z"), at("2026-12-04T09:41:00Z"))
        );
        // Due 09:01, but the scheduler only came back at 09:31: 30 minutes overdue — skipped.
        assert!(settings.retry_is_stale(&retry("2026-12-04T09:01:00Z"), at("2026-12-04T09:31:00Z")));
        // Overdue by exactly the window: still sent.
        assert!(
            !settings.retry_is_stale(&retry("2026-12-04T09:16:00Z"), at("2026-12-04T09:31:00Z"))
        );
        // Overdue by more than the window, but the slot itself is recent: a clock running
        // ahead, not an outage — sent.
        assert!(
            !settings.retry_is_stale(&retry("2026-12-04T08:00:00Z"), at("2026-12-04T09:20:00Z"))
        );
    }

    #[test]
    fn slot_retries_double_their_wait_and_stop_after_the_last_attempt() {
        let policy = SlotRetryPolicy {
            attempts: 4,
            first_wait: chrono::Duration::seconds(60),
        };
        let minutes = |m| Some(chrono::Duration::minutes(m));
        // Waits after the 1st, 2nd and 3rd failed send: 1, 2, 4 minutes; no 5th send.
        assert_eq!(policy.wait_after(1, None), minutes(1));
        assert_eq!(policy.wait_after(2, None), minutes(2));
        assert_eq!(policy.wait_after(3, None), minutes(4));
        assert_eq!(policy.wait_after(4, None), None);
        assert_eq!(policy.total_wait(), chrono::Duration::minutes(1 + 2 + 4));
        // A provider's longer wait wins; a shorter one does not shorten the backoff.
        assert_eq!(policy.wait_after(1, minutes(5)), minutes(5));
        assert_eq!(policy.wait_after(3, minutes(1)), minutes(4));
        // Never more than an hour.
        let long = SlotRetryPolicy {
            attempts: 20,
            first_wait: chrono::Duration::minutes(10),
        };
        assert_eq!(long.wait_after(10, None), minutes(60));
        assert_eq!(long.wait_after(1, minutes(600)), minutes(60));
    }

    #[test]
    fn a_lease_is_never_shorter_than_one_attempt_can_take() {
        let lease = |vars: &[(&'static str, &str)]| {
            let mut env = HashMap::from([(TABLE, "t"), (WEB_BASE_URL, "https://app.example")]);
            env.extend(vars.iter().copied());
            Settings::from_lookup(|k| env.get(k).map(|v| v.to_string()))
                .unwrap()
                .lease
                .num_seconds()
        };
        assert_eq!(lease(&[]), 120);
        assert_eq!(lease(&[(LEASE_SECONDS, "300")]), 300);
        // 2 × 10 s provider timeout + 40 s.
        assert_eq!(lease(&[(LEASE_SECONDS, "30")]), 60);
        assert_eq!(lease(&[(PROVIDER_TIMEOUT_SECONDS, "60")]), 160);
    }

    #[test]
    fn debug_hides_the_jwt_key() {
        let env = HashMap::from([
            (TABLE, "t"),
            (WEB_BASE_URL, "https://app.example"),
            (JWT_HS256_KEY, "super-secret-key-material"),
        ]);
        let settings = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert!(!format!("{settings:?}").contains("super-secret"));
    }
}
