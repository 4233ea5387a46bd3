//! Feishu / Lark custom bot (webhook + signing secret); the source's app credentials upload
//! cover images.
use async_trait::async_trait;
use notify_domain::{ChannelKind, FieldFormat, FieldSpec, KindSpec};

use crate::{Channel, Outcome, SendRequest};

pub static SPEC: KindSpec = KindSpec {
    kind: ChannelKind::Feishu,
    label: "Feishu / Lark",
    source_fields: &[
        FieldSpec::new("app_id", "App ID", FieldFormat::Text { max_chars: 64 })
            .help("App ID of a self-built app with the image upload permission"),
        FieldSpec::new(
            "app_secret",
            "App secret",
            FieldFormat::Secret {
                max_chars: 128,
                multiline: false,
            },
        )
        .secret(),
        FieldSpec::new(
            "domain",
            "Deployment",
            FieldFormat::Choice {
                options: &["feishu", "lark"],
            },
        )
        .default_value("feishu")
        .help("feishu (open.feishu.cn) or lark (open.larksuite.com)"),
    ],
    target_fields: &[
        FieldSpec::new(
            "webhook_url",
            "Webhook URL",
            FieldFormat::WebhookUrl {
                hosts: &["open.feishu.cn", "open.larksuite.com"],
                path_prefix: "/open-apis/bot/v2/hook/",
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
        .help("The bot's signature verification secret"),
    ],
};

pub struct FeishuChannel;

#[async_trait]
impl Channel for FeishuChannel {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }
    async fn send(&self, _request: &SendRequest<'_>) -> Outcome {
        Outcome::permanent(
            Some("not_implemented".into()),
            "sending to Feishu is not available in this version",
        )
    }
}
