//! Apple Push Notification service, token-based (production and sandbox).
use async_trait::async_trait;
use notify_domain::{ChannelKind, FieldFormat, FieldSpec, KindSpec};

use crate::{Channel, Outcome, SendRequest};

const SOURCE_FIELDS: &[FieldSpec] = &[
    FieldSpec::new("team_id", "Team ID", FieldFormat::Text { max_chars: 10 })
        .help("Membership details → Team ID"),
    FieldSpec::new("key_id", "Key ID", FieldFormat::Text { max_chars: 10 })
        .help("Certificates, Identifiers & Profiles → Keys → Key ID"),
    FieldSpec::new(
        "apns_topic",
        "Bundle ID",
        FieldFormat::Text { max_chars: 200 },
    )
    .help("The bundle id of the app that receives the pushes"),
    FieldSpec::new(
        "private_key",
        "Private key (.p8)",
        FieldFormat::Secret {
            max_chars: 4096,
            multiline: true,
        },
    )
    .secret()
    .help("Contents of the downloaded AuthKey_XXXXXXXXXX.p8 file"),
];
const TARGET_FIELDS: &[FieldSpec] = &[FieldSpec::new(
    "device_token",
    "Device token",
    FieldFormat::HexToken {
        min_len: 64,
        max_len: 200,
    },
)];

pub static PRODUCTION_SPEC: KindSpec = KindSpec {
    kind: ChannelKind::Apns,
    label: "Apple APNs",
    source_fields: SOURCE_FIELDS,
    target_fields: TARGET_FIELDS,
};
pub static SANDBOX_SPEC: KindSpec = KindSpec {
    kind: ChannelKind::ApnsSandbox,
    label: "Apple APNs (sandbox)",
    source_fields: SOURCE_FIELDS,
    target_fields: TARGET_FIELDS,
};

pub struct ApnsChannel {
    spec: &'static KindSpec,
}

impl ApnsChannel {
    pub fn production() -> Self {
        ApnsChannel {
            spec: &PRODUCTION_SPEC,
        }
    }
    pub fn sandbox() -> Self {
        ApnsChannel {
            spec: &SANDBOX_SPEC,
        }
    }
}

#[async_trait]
impl Channel for ApnsChannel {
    fn spec(&self) -> &'static KindSpec {
        self.spec
    }
    async fn send(&self, _request: &SendRequest<'_>) -> Outcome {
        Outcome::permanent(
            Some("not_implemented".into()),
            "sending to APNs is not available in this version",
        )
    }
}
