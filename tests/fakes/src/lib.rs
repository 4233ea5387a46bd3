//! Local provider servers that check each request the way the provider would (signatures
//! recomputed here, headers, body shape, limits) and answer with the provider's real success
//! and error payloads, and a real SMTP server ([`smtp`]). Used by `shared/channels`' tests and by the integration tests.
pub mod apns;
pub mod dingtalk;
pub mod feishu;
pub mod smtp;
pub mod telegram;

use std::sync::{Arc, Mutex};

/// Held by the copies of a fake that tests own (not by its server): when the last one goes,
/// the test fails if the fake saw a protocol violation that no assertion looked at, so a test
/// that never reads the requests still cannot pass on a request the provider would refuse.
pub struct ViolationCheck {
    provider: &'static str,
    violations: Box<dyn Fn() -> Vec<String> + Send + Sync>,
}

impl ViolationCheck {
    pub(crate) fn new<T: Send + 'static>(
        provider: &'static str,
        inner: &Arc<Mutex<T>>,
        violations: fn(&mut T) -> &mut Vec<String>,
    ) -> Arc<ViolationCheck> {
        let inner = Arc::clone(inner);
        Arc::new(ViolationCheck {
            provider,
            violations: Box::new(move || {
                inner
                    .lock()
                    .map(|mut guard| violations(&mut guard).clone())
                    .unwrap_or_default()
            }),
        })
    }
}

impl Drop for ViolationCheck {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let seen = (self.violations)();
        assert!(
            seen.is_empty(),
            "{} protocol violations that no test looked at: {seen:?}",
            self.provider
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    async fn post_unsigned(robot: &crate::dingtalk::FakeDingtalk) {
        // Unsigned, though the robot has a signing secret: a violation.
        let reply = reqwest::Client::new()
            .post(robot.webhook_url())
            .json(&json!({"msgtype": "text", "text": {"content": "x"}}))
            .send()
            .await
            .expect("the fake answers");
        assert!(reply.status().is_success());
    }

    #[tokio::test]
    #[should_panic(expected = "DingTalk protocol violations that no test looked at")]
    async fn an_unread_violation_fails_the_test_that_owns_the_fake() {
        let robot = crate::dingtalk::FakeDingtalk::start("tok", Some("SECx")).await;
        post_unsigned(&robot).await;
    }

    #[tokio::test]
    async fn a_violation_the_test_took_does_not_fail_it() {
        let robot = crate::dingtalk::FakeDingtalk::start("tok", Some("SECx")).await;
        post_unsigned(&robot).await;
        let seen = robot.violations();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].contains("sign"), "{seen:?}");
    }
}
