use serde::{Deserialize, Serialize};

/// The delivery channels. A source and a target can only be paired when their kinds are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Email,
    Feishu,
    Dingtalk,
    Apns,
    ApnsSandbox,
    Telegram,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 6] = [
        ChannelKind::Email,
        ChannelKind::Feishu,
        ChannelKind::Dingtalk,
        ChannelKind::Apns,
        ChannelKind::ApnsSandbox,
        ChannelKind::Telegram,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Feishu => "feishu",
            ChannelKind::Dingtalk => "dingtalk",
            ChannelKind::Apns => "apns",
            ChannelKind::ApnsSandbox => "apns_sandbox",
            ChannelKind::Telegram => "telegram",
        }
    }

    pub fn parse(value: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|k| k.as_str() == value)
    }

    /// Why a source of kind `source` cannot send to a target of kind `target`.
    pub fn mismatch(source: ChannelKind, target: ChannelKind) -> String {
        format!(
            "source kind {source} cannot send to target kind {target}; allowed pairs: {}",
            ChannelKind::allowed_pairs()
        )
    }

    /// Human-readable list of the allowed source → target pairs, used in error messages.
    pub fn allowed_pairs() -> String {
        ChannelKind::ALL
            .iter()
            .map(|k| format!("{0}→{0}", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
