//! Table-driven configuration schemas. Each channel module declares the fields of its source and
//! target once; validation, the secret/non-secret split and the `/catalog` all read that table.
use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::kind::ChannelKind;
use crate::secret::{SecretBundle, SecretValue};
use crate::validate::{Problems, ValidationError, ValidationPolicy};

/// The value format of one configuration field.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldFormat {
    /// Free text without control characters.
    Text { max_chars: usize },
    /// Opaque secret text (passwords, tokens); may contain newlines when `multiline`.
    Secret { max_chars: usize, multiline: bool },
    /// A DNS host name or IP address.
    Hostname,
    /// A TCP port, 1..=65535.
    Port,
    /// An e-mail address (RFC 5322 addr-spec).
    Email,
    /// One of a fixed set of strings. Those also in `local_only` are accepted only where the
    /// deployment allows local endpoints (plaintext SMTP, say).
    Choice {
        options: &'static [&'static str],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        local_only: &'static [&'static str],
    },
    /// An https webhook URL on one of the provider's hosts, under `path_prefix`, whose query
    /// string has exactly the parameters in `query`, once each.
    WebhookUrl {
        hosts: &'static [&'static str],
        path_prefix: &'static str,
        query: &'static [&'static str],
    },
    /// An integer within bounds (accepted as a JSON number or a numeric string).
    Integer { min: i64, max: i64 },
    /// A Telegram chat id: a signed integer or an `@channelusername`.
    TelegramChatId,
    /// An APNs device token: hexadecimal, 64 to 200 digits.
    HexToken { min_len: usize, max_len: usize },
}

/// One configuration field of a source or target.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FieldSpec {
    pub name: &'static str,
    pub label: &'static str,
    #[serde(flatten)]
    pub format: FieldFormat,
    pub required: bool,
    /// Secret fields go to the secret store, never to the database or API responses.
    pub secret: bool,
    pub help: &'static str,
    /// Value used when an optional field is omitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<&'static str>,
}

impl FieldSpec {
    pub const fn new(name: &'static str, label: &'static str, format: FieldFormat) -> Self {
        FieldSpec {
            name,
            label,
            format,
            required: true,
            secret: false,
            help: "",
            default: None,
        }
    }
    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }
    pub const fn optional(mut self) -> Self {
        self.required = false;
        self
    }
    pub const fn default_value(mut self, value: &'static str) -> Self {
        self.required = false;
        self.default = Some(value);
        self
    }
    pub const fn help(mut self, help: &'static str) -> Self {
        self.help = help;
        self
    }
}

/// What a channel kind needs from its source (the sending account) and its target (where the
/// message lands).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct KindSpec {
    pub kind: ChannelKind,
    pub label: &'static str,
    pub source_fields: &'static [FieldSpec],
    pub target_fields: &'static [FieldSpec],
}

/// The result of validating one configuration object.
#[derive(Debug, Default)]
pub struct SplitConfig {
    /// Non-secret fields, normalised (defaults filled, numbers as numbers).
    pub public: Map<String, Value>,
    /// Secret fields supplied in this request.
    pub secrets: SecretBundle,
}

/// Validates `input` against `fields` and splits it into public and secret parts.
///
/// `existing_secrets` names the secret fields already stored for this resource: on a partial
/// update a required secret that is not resent is kept, not demanded again.
pub fn validate_config(
    fields: &[FieldSpec],
    input: &Map<String, Value>,
    existing_secrets: &BTreeSet<String>,
    policy: &ValidationPolicy,
    path: &str,
) -> Result<SplitConfig, ValidationError> {
    let mut problems = Problems::default();
    let mut out = SplitConfig::default();

    for name in input.keys() {
        if !fields.iter().any(|f| f.name == name) {
            let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
            problems.push(
                format!("{path}.{name}"),
                format!(
                    "is not a field of this kind; expected one of: {}",
                    known.join(", ")
                ),
            );
        }
    }

    for spec in fields {
        let field_path = format!("{path}.{}", spec.name);
        let value = input.get(spec.name).filter(|v| !v.is_null());
        let Some(value) = value else {
            let satisfied = !spec.required || (spec.secret && existing_secrets.contains(spec.name));
            if let Some(default) = spec.default {
                out.public
                    .insert(spec.name.to_string(), default_value(spec.format, default));
            } else if !satisfied {
                problems.push(field_path, "is required");
            }
            continue;
        };
        match normalise(spec.format, value, policy) {
            Ok(normalised) => {
                if spec.secret {
                    let text = match normalised {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    out.secrets.insert(spec.name, SecretValue::new(text));
                } else {
                    out.public.insert(spec.name.to_string(), normalised);
                }
            }
            Err(message) => problems.push(field_path, message),
        }
    }
    problems.into_result().map(|()| out)
}

fn default_value(format: FieldFormat, default: &str) -> Value {
    match format {
        FieldFormat::Port | FieldFormat::Integer { .. } => default
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(default)),
        _ => Value::from(default),
    }
}

fn as_str(value: &Value) -> Result<&str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("must be a string, not {}", json_type(value)))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn text_problem(text: &str, max_chars: usize, multiline: bool) -> Option<String> {
    if text.trim().is_empty() {
        return Some("must not be empty".into());
    }
    let count = text.chars().count();
    if count > max_chars {
        return Some(format!(
            "is {count} characters long; the limit is {max_chars}"
        ));
    }
    let bad = text
        .chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')));
    bad.then(|| "must not contain control characters".into())
}

fn is_local_host(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]")
}

fn normalise(
    format: FieldFormat,
    value: &Value,
    policy: &ValidationPolicy,
) -> Result<Value, String> {
    match format {
        FieldFormat::Text { max_chars } => {
            let s = as_str(value)?;
            text_problem(s, max_chars, false).map_or(Ok(Value::from(s.trim())), Err)
        }
        FieldFormat::Secret {
            max_chars,
            multiline,
        } => {
            let s = as_str(value)?;
            text_problem(s, max_chars, multiline).map_or(Ok(Value::from(s)), Err)
        }
        FieldFormat::Hostname => {
            let s = as_str(value)?.trim();
            let valid = !s.is_empty()
                && s.len() <= 253
                && (s.parse::<std::net::IpAddr>().is_ok()
                    || s.split('.').all(|label| {
                        !label.is_empty()
                            && label.len() <= 63
                            && !label.starts_with('-')
                            && !label.ends_with('-')
                            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    }));
            if !valid {
                return Err("must be a host name such as smtp.example.com or an IP address".into());
            }
            match crate::net::non_public_host(s) {
                Some(reason) if !policy.allow_local_endpoints => {
                    Err(format!("must be a public host: {reason}"))
                }
                _ => Ok(Value::from(s.to_ascii_lowercase())),
            }
        }
        FieldFormat::Port => integer(value, 1, 65535),
        FieldFormat::Integer { min, max } => integer(value, min, max),
        FieldFormat::Email => {
            let s = as_str(value)?.trim();
            if s.len() > 254 {
                return Err("must be at most 254 characters".into());
            }
            match s.parse::<email_address::EmailAddress>() {
                // A dotted domain name: no bare hosts (`a@b`) and no address literals.
                Ok(addr)
                    if addr.domain().contains('.')
                        && !addr.domain().starts_with('[')
                        && !s.contains(['<', '>', ' ']) =>
                {
                    Ok(Value::from(s))
                }
                _ => Err(format!("'{s}' is not a valid e-mail address")),
            }
        }
        FieldFormat::Choice {
            options,
            local_only,
        } => {
            let s = as_str(value)?;
            let allowed: Vec<&str> = options
                .iter()
                .copied()
                .filter(|o| policy.allow_local_endpoints || !local_only.contains(o))
                .collect();
            if allowed.contains(&s) {
                Ok(Value::from(s))
            } else if options.contains(&s) {
                Err(format!(
                    "'{s}' is only for local test servers and this deployment does not allow it; \
                     use one of: {}",
                    allowed.join(", ")
                ))
            } else {
                Err(format!("must be one of: {}", allowed.join(", ")))
            }
        }
        FieldFormat::WebhookUrl {
            hosts,
            path_prefix,
            query,
        } => {
            let s = as_str(value)?.trim();
            if s.chars().any(char::is_control) {
                return Err("must not contain control characters".into());
            }
            let url = url::Url::parse(s).map_err(|e| format!("is not a valid URL ({e})"))?;
            let host = url.host_str().unwrap_or_default();
            let local = policy.allow_local_endpoints && is_local_host(host);
            if url.scheme() != "https" && !(local && url.scheme() == "http") {
                return Err("must be an https URL".into());
            }
            if !local && !hosts.contains(&host) {
                return Err(format!("must be on host {}", hosts.join(" or ")));
            }
            // A prefix ending in '/' is followed by the bot's token; otherwise the path is exact.
            let path_ok = if path_prefix.ends_with('/') {
                url.path().len() > path_prefix.len() && url.path().starts_with(path_prefix)
            } else {
                url.path() == path_prefix
            };
            let extras =
                !url.username().is_empty() || url.password().is_some() || url.fragment().is_some();
            let mut names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
            names.sort();
            let mut wanted: Vec<&str> = query.to_vec();
            wanted.sort_unstable();
            let query_ok = names == wanted
                && url.query_pairs().all(|(_, v)| !v.is_empty())
                && (!query.is_empty() || url.query().is_none());
            if !path_ok || !query_ok || extras || (!local && url.port().is_some()) {
                let example_query: Vec<String> = query.iter().map(|q| format!("{q}=…")).collect();
                let example_query = if example_query.is_empty() {
                    String::new()
                } else {
                    format!("?{}", example_query.join("&"))
                };
                return Err(format!(
                    "must look like https://{}{path_prefix}{}{example_query}",
                    hosts[0],
                    if path_prefix.ends_with('/') {
                        "…"
                    } else {
                        ""
                    }
                ));
            }
            Ok(Value::from(s))
        }
        FieldFormat::TelegramChatId => {
            let chat = match value {
                Value::Number(n) if n.is_i64() => n.to_string(),
                Value::String(s) => s.trim().to_string(),
                other => {
                    return Err(format!(
                        "must be a string or integer, not {}",
                        json_type(other)
                    ))
                }
            };
            // Telegram's chat ids are signed 64-bit integers, written without leading zeros.
            let digits = chat.strip_prefix('-').unwrap_or(&chat);
            let numeric = chat.parse::<i64>().is_ok_and(|id| id != 0)
                && !digits.starts_with('0')
                && digits.chars().all(|c| c.is_ascii_digit());
            let username = chat.strip_prefix('@').is_some_and(|u| {
                (5..=32).contains(&u.len())
                    && u.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if numeric || username {
                Ok(Value::from(chat))
            } else {
                Err("must be a numeric chat id (e.g. -1001234567890) or @channelusername".into())
            }
        }
        FieldFormat::HexToken { min_len, max_len } => {
            let s = as_str(value)?.trim();
            let compact: String = s
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '<' && *c != '>')
                .collect();
            if (min_len..=max_len).contains(&compact.len())
                && compact.chars().all(|c| c.is_ascii_hexdigit())
            {
                Ok(Value::from(compact.to_ascii_lowercase()))
            } else {
                Err(format!("must be {min_len} to {max_len} hexadecimal digits"))
            }
        }
    }
}

fn integer(value: &Value, min: i64, max: i64) -> Result<Value, String> {
    let n = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("must be an integer, not {}", json_type(value)))?;
    if (min..=max).contains(&n) {
        Ok(Value::from(n))
    } else {
        Err(format!("must be between {min} and {max}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIELDS: &[FieldSpec] = &[
        FieldSpec::new("host", "Host", FieldFormat::Hostname),
        FieldSpec::new("port", "Port", FieldFormat::Port),
        FieldSpec::new(
            "password",
            "Password",
            FieldFormat::Secret {
                max_chars: 100,
                multiline: false,
            },
        )
        .secret(),
        FieldSpec::new(
            "tls",
            "TLS",
            FieldFormat::Choice {
                options: &["auto", "starttls", "none"],
                local_only: &["none"],
            },
        )
        .default_value("auto"),
    ];

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn splits_secret_from_public_and_fills_defaults() {
        let split = validate_config(
            FIELDS,
            &obj(json!({"host": "SMTP.Example.com", "port": "587", "password": "pw"})),
            &BTreeSet::new(),
            &ValidationPolicy::default(),
            "config",
        )
        .unwrap();
        assert_eq!(
            Value::Object(split.public),
            json!({"host": "smtp.example.com", "port": 587, "tls": "auto"})
        );
        assert_eq!(split.secrets.get("password").unwrap().expose(), "pw");
    }

    #[test]
    fn names_every_bad_field() {
        let err = validate_config(
            FIELDS,
            &obj(json!({"host": "bad host", "port": 70000, "colour": 1})),
            &BTreeSet::new(),
            &ValidationPolicy::default(),
            "config",
        )
        .unwrap_err();
        let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "config.colour",
                "config.host",
                "config.port",
                "config.password"
            ]
        );
    }

    #[test]
    fn a_stored_secret_satisfies_a_required_secret() {
        let existing = BTreeSet::from(["password".to_string()]);
        let split = validate_config(
            FIELDS,
            &obj(json!({"host": "h.example", "port": 25})),
            &existing,
            &ValidationPolicy::default(),
            "config",
        )
        .unwrap();
        assert!(split.secrets.is_empty());
    }

    #[test]
    fn webhook_must_be_https_on_the_provider_host_unless_local_is_allowed() {
        let format = FieldFormat::WebhookUrl {
            hosts: &["oapi.dingtalk.com"],
            path_prefix: "/robot/send",
            query: &["access_token"],
        };
        let strict = ValidationPolicy::default();
        let local = ValidationPolicy {
            allow_local_endpoints: true,
        };
        assert!(normalise(
            format,
            &json!("https://oapi.dingtalk.com/robot/send?access_token=x"),
            &strict
        )
        .is_ok());
        assert!(normalise(
            format,
            &json!("http://oapi.dingtalk.com/robot/send?access_token=x"),
            &strict
        )
        .is_err());
        assert!(normalise(format, &json!("https://evil.example/robot/send"), &strict).is_err());
        assert!(normalise(
            format,
            &json!("http://127.0.0.1:9/robot/send?access_token=x"),
            &strict
        )
        .is_err());
        assert!(normalise(
            format,
            &json!("http://127.0.0.1:9/robot/send?access_token=x"),
            &local
        )
        .is_ok());
        for bad in [
            "https://oapi.dingtalk.com/robot/send",
            "https://oapi.dingtalk.com/robot/send?access_token=",
            "https://oapi.dingtalk.com/robot/send?access_token=x&sign=y",
            "https://oapi.dingtalk.com/robot/send?access_token=x&access_token=y",
            "https://oapi.dingtalk.com/robot/send?access_token=x\u{0}",
        ] {
            assert!(normalise(format, &json!(bad), &strict).is_err(), "{bad}");
        }
        let feishu = FieldFormat::WebhookUrl {
            hosts: &["open.feishu.cn"],
            path_prefix: "/open-apis/bot/v2/hook/",
            query: &[],
        };
        assert!(normalise(
            feishu,
            &json!("https://open.feishu.cn/open-apis/bot/v2/hook/abc"),
            &strict
        )
        .is_ok());
        let err = normalise(
            feishu,
            &json!("https://open.feishu.cn/open-apis/bot/v2/hook/abc?x=1"),
            &strict,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "must look like https://open.feishu.cn/open-apis/bot/v2/hook/…"
        );
    }

    #[test]
    fn local_only_choices_need_the_local_policy() {
        let strict = ValidationPolicy::default();
        let local = ValidationPolicy {
            allow_local_endpoints: true,
        };
        let input = obj(json!({"host": "h.example", "port": 25, "password": "p", "tls": "none"}));
        let err = validate_config(FIELDS, &input, &BTreeSet::new(), &strict, "config").unwrap_err();
        assert_eq!(err.first_field(), Some("config.tls"));
        assert_eq!(
            err.errors[0].message,
            "'none' is only for local test servers and this deployment does not allow it; use one of: auto, starttls"
        );
        assert!(validate_config(FIELDS, &input, &BTreeSet::new(), &local, "config").is_ok());
    }

    #[test]
    fn hosts_must_be_public_unless_local_endpoints_are_allowed() {
        let strict = ValidationPolicy::default();
        let local = ValidationPolicy {
            allow_local_endpoints: true,
        };
        for host in [
            "169.254.169.254",
            "127.0.0.1",
            "10.0.0.5",
            "::1",
            "localhost",
            "metadata.google.internal",
        ] {
            let err = normalise(FieldFormat::Hostname, &json!(host), &strict).unwrap_err();
            assert!(err.starts_with("must be a public host"), "{host}: {err}");
            assert!(
                normalise(FieldFormat::Hostname, &json!(host), &local).is_ok(),
                "{host}"
            );
        }
        assert_eq!(
            normalise(FieldFormat::Hostname, &json!("SMTP.Example.com"), &strict).unwrap(),
            json!("smtp.example.com")
        );
    }

    #[test]
    fn telegram_chat_ids() {
        let p = ValidationPolicy::default();
        assert_eq!(
            normalise(FieldFormat::TelegramChatId, &json!(-1001234567890_i64), &p).unwrap(),
            json!("-1001234567890")
        );
        assert!(normalise(FieldFormat::TelegramChatId, &json!("@my_channel"), &p).is_ok());
        assert!(normalise(FieldFormat::TelegramChatId, &json!("12ab"), &p).is_err());
        assert!(normalise(FieldFormat::TelegramChatId, &json!("-"), &p).is_err());
        // Beyond i64, zero, or written with leading zeros: not an id Telegram can have.
        for bad in [
            "99999999999999999999",
            "-0",
            "0",
            "00000000000000000001",
            "-01",
            "+5",
        ] {
            assert!(
                normalise(FieldFormat::TelegramChatId, &json!(bad), &p).is_err(),
                "{bad}"
            );
        }
        assert!(normalise(
            FieldFormat::TelegramChatId,
            &json!("9223372036854775807"),
            &p
        )
        .is_ok());
    }
}
