//! DingTalk custom robot (webhook + signing secret).
use async_trait::async_trait;
use notify_domain::{ChannelKind, FieldFormat, FieldSpec, KindSpec};

use crate::{Channel, Outcome, SendRequest};

pub static SPEC: KindSpec = KindSpec {
    kind: ChannelKind::Dingtalk,
    label: "DingTalk",
    source_fields: &[],
    target_fields: &[
        FieldSpec::new(
            "webhook_url",
            "Webhook URL",
            FieldFormat::WebhookUrl {
                hosts: &["oapi.dingtalk.com"],
                path_prefix: "/robot/send",
            },
        ),
        FieldSpec::new(
            "sign",
            "Signing secret",
            FieldFormat::Secret {
                max_chars: 128,
                multiline: false,
            },
        )
        .secret()
        .help("The robot's SEC… signing secret"),
    ],
};

pub struct DingtalkChannel;

#[async_trait]
impl Channel for DingtalkChannel {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }
    async fn send(&self, _request: &SendRequest<'_>) -> Outcome {
        Outcome::permanent(
            Some("not_implemented".into()),
            "sending to DingTalk is not available in this version",
        )
    }
}
