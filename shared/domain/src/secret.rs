//! Secret values never print: `Debug` and `Display` redact, and serialisation is explicit.
use std::collections::BTreeMap;
use std::fmt;

/// One secret string (SMTP password, bot token, signing secret, private key).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(value.into())
    }
    /// The only way to read the value; grep for it when auditing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// The secret fields of one source or target, keyed by field name. Stored as one
/// Secrets Manager secret per resource.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBundle(BTreeMap<String, SecretValue>);

impl SecretBundle {
    pub fn new() -> Self {
        SecretBundle::default()
    }
    pub fn insert(&mut self, field: impl Into<String>, value: SecretValue) {
        self.0.insert(field.into(), value);
    }
    pub fn get(&self, field: &str) -> Option<&SecretValue> {
        self.0.get(field)
    }
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Overlay `other` on `self`: fields present in `other` replace ours (partial update).
    pub fn merge(&mut self, other: SecretBundle) {
        self.0.extend(other.0);
    }
    /// JSON object text for storage in a secret store. Callers must not log it.
    pub fn to_storage_json(&self) -> String {
        let map: BTreeMap<&str, &str> = self
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        serde_json::to_string(&map).expect("a map of strings always serialises")
    }
    pub fn from_storage_json(text: &str) -> Result<Self, serde_json::Error> {
        let map: BTreeMap<String, String> = serde_json::from_str(text)?;
        Ok(SecretBundle(
            map.into_iter().map(|(k, v)| (k, SecretValue(v))).collect(),
        ))
    }
}

impl fmt::Debug for SecretBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_value() {
        let mut bundle = SecretBundle::new();
        bundle.insert("bot_token", SecretValue::new("123:very-secret-token"));
        let printed = format!("{bundle:?} {:?}", bundle.get("bot_token").unwrap());
        assert!(!printed.contains("very-secret-token"), "{printed}");
        assert!(printed.contains("bot_token"));
    }

    #[test]
    fn storage_json_round_trips() {
        let mut bundle = SecretBundle::new();
        bundle.insert("password", SecretValue::new("p\"w"));
        let text = bundle.to_storage_json();
        assert_eq!(text, r#"{"password":"p\"w"}"#);
        assert_eq!(SecretBundle::from_storage_json(&text).unwrap(), bundle);
    }
}
