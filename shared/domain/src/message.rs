use serde::{Deserialize, Serialize};

/// A channel-neutral message: what templates produce and channels format. Text fields are plain
/// text (never markup); each channel escapes them for its own format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub title: String,
    /// Plain text; paragraphs separated by blank lines.
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Label for the link (e.g. "View section").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover_url: Option<String>,
}
