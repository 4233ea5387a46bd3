//! E-mail over SMTP with lettre: implicit TLS, STARTTLS (required), or plaintext for local
//! servers only; multipart/alternative with a plain-text and an HTML part.
//!
//! A transport is built per send (a send is one source/target pair, so there is nothing to pool
//! across sends yet); what can be built once is: the EHLO name at construction, and the TLS
//! parameters (a rustls config with the web PKI roots, plus
//! [`Endpoints::extra_root_certificates`]) once per SMTP host.
//!
//! [`compose`] makes the headers and both parts for `send` and `preview`; `send` adds the
//! `Message-ID` and `Date`. Transfer encoding (quoted-printable or base64 for lines longer than
//! 998 octets or non-ASCII text) and CRLF line ends are lettre's job.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::PoolConfig;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use notify_domain::{ChannelKind, FieldFormat, FieldSpec, KindSpec, Message};
use serde_json::{json, Map, Value};

use crate::text::escape_html;
use crate::{
    config_str, Channel, Endpoints, Outcome, Preview, PreviewKind, PreviewPart, SendRequest,
};

pub static SPEC: KindSpec = KindSpec {
    kind: ChannelKind::Email,
    label: "Email (SMTP)",
    source_fields: &[
        FieldSpec::new("host", "SMTP host", FieldFormat::Hostname),
        FieldSpec::new("port", "SMTP port", FieldFormat::Port).default_value("587"),
        FieldSpec::new("username", "Username", FieldFormat::Text { max_chars: 254 })
            .help("Usually the mailbox address"),
        FieldSpec::new(
            "password",
            "Password",
            FieldFormat::Secret {
                max_chars: 512,
                multiline: false,
            },
        )
        .secret()
        .help("The provider's SMTP authorization code, not the mailbox password"),
        FieldSpec::new(
            "tls",
            "TLS mode",
            FieldFormat::Choice {
                options: &["auto", "implicit", "starttls", "none"],
                local_only: &["none"],
            },
        )
        .default_value("auto")
        .help(
            "auto: implicit TLS on port 465, STARTTLS otherwise; none only for local test servers",
        ),
        FieldSpec::new("from_address", "From address", FieldFormat::Email)
            .optional()
            .help("Defaults to the username"),
        FieldSpec::new(
            "sender_name",
            "Sender display name",
            FieldFormat::Text { max_chars: 100 },
        )
        .optional(),
    ],
    target_fields: &[FieldSpec::new(
        "email",
        "Recipient address",
        FieldFormat::Email,
    )],
};

/// The whole SMTP exchange (connect, TLS, EHLO, AUTH, MAIL, RCPT, DATA) must finish within this
/// many times [`Endpoints::timeout`]. lettre's async client applies its timeout to the TCP
/// connect only, so the per-command bound is this overall deadline.
/// Two: a test-send must answer inside API Gateway's 29 s with the default 10 s timeout.
const EXCHANGE_TIMEOUTS: u32 = 2;

/// TLS parameters cached per host; past this many hosts the cache starts over.
const TLS_CACHE_LIMIT: usize = 64;

/// What every PEM certificate contains.
const CERTIFICATE_PEM_LABEL: &[u8] = b"-----BEGIN CERTIFICATE-----";

pub struct EmailChannel {
    endpoints: Endpoints,
    hello_name: ClientId,
    tls_by_host: Mutex<HashMap<String, TlsParameters>>,
}

impl EmailChannel {
    pub fn new(endpoints: &Endpoints) -> Self {
        EmailChannel {
            endpoints: endpoints.clone(),
            hello_name: ClientId::default(),
            tls_by_host: Mutex::new(HashMap::new()),
        }
    }

    /// The TLS parameters for `host`: the web PKI roots plus the deployment's extra roots.
    /// Errors say what is wrong without echoing certificate bytes.
    fn tls_parameters(&self, host: &str) -> Result<TlsParameters, String> {
        let mut cache = self
            .tls_by_host
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(params) = cache.get(host) {
            return Ok(params.clone());
        }
        let mut builder = TlsParameters::builder(host.to_string());
        for (index, pem) in self.endpoints.extra_root_certificates.iter().enumerate() {
            // lettre's rustls backend accepts a PEM without any certificate (and trusts nothing
            // more); say so instead.
            let has_certificate = pem
                .windows(CERTIFICATE_PEM_LABEL.len())
                .any(|w| w == CERTIFICATE_PEM_LABEL);
            let certificate = Certificate::from_pem(pem)
                .ok()
                .filter(|_| has_certificate)
                .ok_or_else(|| {
                    format!(
                        "extra root certificate #{} is not a PEM certificate",
                        index + 1
                    )
                })?;
            builder = builder.add_root_certificate(certificate);
        }
        let params = builder.build().map_err(|e| e.to_string())?;
        if cache.len() >= TLS_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(host.to_string(), params.clone());
        Ok(params)
    }
}

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// Plaintext, then STARTTLS; refuses to go on if the upgrade is not offered or fails.
    StartTls,
    /// Plaintext throughout (local test servers only).
    Plain,
}

/// The source's connection settings, read from its validated config.
struct Smtp<'a> {
    host: &'a str,
    port: u16,
    security: Security,
    username: &'a str,
    password: &'a str,
}

impl<'a> Smtp<'a> {
    fn from_request(request: &SendRequest<'a>, endpoints: &Endpoints) -> Result<Self, Outcome> {
        let config = request.source_config;
        let host = config_str(config, "host")
            .ok_or_else(|| Outcome::bad_config("the source has no SMTP host"))?;
        let port = match config.get("port") {
            None => 587,
            Some(v) => v
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    Outcome::bad_config("the SMTP port must be a number from 1 to 65535")
                })?,
        };
        let security = security(
            config_str(config, "tls").unwrap_or("auto"),
            port,
            endpoints.allow_local_endpoints,
        )?;
        let username = config_str(config, "username")
            .ok_or_else(|| Outcome::bad_config("the source has no SMTP username"))?;
        let password = request
            .source_secrets
            .get("password")
            .map(|p| p.expose())
            .ok_or_else(|| Outcome::bad_config("the source has no SMTP password"))?;
        Ok(Smtp {
            host,
            port,
            security,
            username,
            password,
        })
    }
}

/// The connection security for a source's `tls` mode on `port`. `auto` is implicit TLS on port
/// 465 and STARTTLS (required) on every other port; `none` only where the deployment allows
/// plaintext SMTP.
fn security(mode: &str, port: u16, allow_plaintext: bool) -> Result<Security, Outcome> {
    match mode {
        "auto" if port == 465 => Ok(Security::Implicit),
        "auto" | "starttls" => Ok(Security::StartTls),
        "implicit" => Ok(Security::Implicit),
        "none" if allow_plaintext => Ok(Security::Plain),
        "none" => Err(Outcome::bad_config(
            "tls 'none' (plaintext SMTP) is only allowed for local test servers, and this \
             deployment does not allow it; use auto, implicit or starttls",
        )),
        other => Err(Outcome::bad_config(format!("unknown tls mode '{other}'"))),
    }
}

#[async_trait]
impl Channel for EmailChannel {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn send(&self, request: &SendRequest<'_>) -> Outcome {
        let smtp = match Smtp::from_request(request, &self.endpoints) {
            Ok(smtp) => smtp,
            Err(outcome) => return outcome,
        };
        // The same headers and parts as the preview; Message-ID and Date are added here.
        let composed = match compose(
            request.source_config,
            request.target_config,
            request.message,
        ) {
            Ok(composed) => composed,
            Err(outcome) => return outcome,
        };
        let (email, message_id) = match build_email(composed) {
            Ok(built) => built,
            Err(outcome) => return outcome,
        };

        let tls = match smtp.security {
            Security::Plain => Tls::None,
            Security::Implicit | Security::StartTls => match self.tls_parameters(smtp.host) {
                Ok(params) if smtp.security == Security::Implicit => Tls::Wrapper(params),
                Ok(params) => Tls::Required(params),
                Err(problem) => {
                    return Outcome::permanent(
                        Some("tls_error".into()),
                        format!("cannot set up TLS for {}: {problem}", smtp.host),
                    )
                }
            },
        };
        // The address to connect to: unless local endpoints are allowed, the host must resolve
        // to a public address, and that very address is used (TLS still checks the host name).
        let server = if self.endpoints.allow_local_endpoints {
            smtp.host.to_string()
        } else {
            match public_address(smtp.host, smtp.port, self.endpoints.timeout).await {
                Ok(ip) => ip.to_string(),
                Err(outcome) => return outcome,
            }
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server)
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(self.endpoints.timeout))
            .hello_name(self.hello_name.clone())
            .credentials(Credentials::new(
                smtp.username.to_string(),
                smtp.password.to_string(),
            ))
            .pool_config(PoolConfig::new().max_size(1))
            .build();

        let deadline = self.endpoints.timeout.saturating_mul(EXCHANGE_TIMEOUTS);
        let result = tokio::time::timeout(deadline, transport.send(email)).await;
        let outcome = match result {
            Ok(Ok(_response)) => Outcome::delivered(Some(message_id)),
            Ok(Err(error)) => classify(&error, &smtp),
            Err(_elapsed) => Outcome::retryable(
                Some("timeout".into()),
                format!(
                    "the SMTP exchange with {}:{} did not finish within {}{}",
                    smtp.host,
                    smtp.port,
                    format_duration(deadline),
                    match smtp.security {
                        // A server that waits for a TLS handshake while the client waits for its
                        // greeting: both sides stay silent until the deadline.
                        Security::StartTls | Security::Plain => {
                            " (if this port expects TLS from the first byte, usually port 465, \
                             set the source's TLS mode to implicit)"
                        }
                        Security::Implicit => "",
                    }
                ),
            ),
        };
        outcome.scrub(&secret_forms(smtp.username, smtp.password))
    }

    /// `email_headers` (`subject`, `from`, `from_name` when set, `to`), `email_text` and
    /// `email_html`: what [`compose`] makes for `send`. Neither the SMTP password nor the
    /// per-send `Message-ID` and `Date` is part of it.
    fn preview(&self, request: &SendRequest<'_>) -> Result<Preview, Outcome> {
        let composed = compose(
            request.source_config,
            request.target_config,
            request.message,
        )?;
        let mut notes = Vec::new();
        if let Some(cover) = request
            .message
            .cover_url
            .as_deref()
            .filter(|c| !c.trim().is_empty())
        {
            if safe_url(cover, &["https", "http"]).is_none() {
                notes.push("the cover is not an http(s) URL: it is left out".to_string());
            }
        }
        Ok(Preview {
            channel: ChannelKind::Email,
            parts: composed.preview_parts(),
            notes,
        })
    }
}

/// The first public address `host` resolves to, or the outcome that says why there is none
/// (see [`notify_domain::net`]).
async fn public_address(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<std::net::IpAddr, Outcome> {
    if let Some(reason) = notify_domain::net::non_public_host(host) {
        return Err(Outcome::permanent(
            Some("non_public_host".into()),
            format!("the SMTP host must be a public host: {reason}"),
        ));
    }
    let found = tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| {
            Outcome::retryable(
                Some("timeout".into()),
                format!(
                    "looking up {host} did not finish within {}",
                    format_duration(timeout)
                ),
            )
        })?
        .map_err(|e| {
            Outcome::retryable(
                Some("connection_failed".into()),
                format!("cannot look up SMTP host {host}: {e}"),
            )
        })?;
    notify_domain::net::first_public(host, found.map(|a| a.ip())).map_err(|reason| {
        // The addresses stay in the operator's log: told to the user, they would map the
        // deployment's private network name by name.
        tracing::warn!(host, reason, "refused to connect to a non-public SMTP host");
        Outcome::permanent(
            Some("non_public_host".into()),
            format!("the SMTP host must be a public host: {host} does not resolve to a public internet address"),
        )
    })
}

fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// The e-mail as composed from the message and the public config: used by both `send` and
/// `preview`. `send` adds `Message-ID` and `Date` (lettre adds the date) and encodes it.
#[derive(Debug, Clone)]
pub struct Composed {
    pub from: Mailbox,
    pub to: Mailbox,
    /// One line; lettre encodes it (RFC 2047) when it is not ASCII.
    pub subject: String,
    /// The text/plain part, lines ending in `\n` (sent as CRLF).
    pub text: String,
    /// The text/html part, lines ending in `\n` (sent as CRLF).
    pub html: String,
}

impl Composed {
    /// The preview parts: `email_headers`, `email_text`, `email_html`.
    pub fn preview_parts(&self) -> Vec<PreviewPart> {
        let mut headers = json!({
            "subject": self.subject,
            "from": self.from.email.to_string(),
            "to": self.to.email.to_string(),
        });
        if let Some(name) = &self.from.name {
            headers["from_name"] = json!(name);
        }
        vec![
            PreviewPart::new(PreviewKind::EmailHeaders, headers),
            PreviewPart::new(PreviewKind::EmailText, Value::String(self.text.clone())),
            PreviewPart::new(PreviewKind::EmailHtml, Value::String(self.html.clone())),
        ]
    }
}

/// Reads the sender (`from_address`, else the `username`) and the recipient from the config
/// and renders the subject and both parts.
pub fn compose(
    source: &Map<String, Value>,
    target: &Map<String, Value>,
    message: &Message,
) -> Result<Composed, Outcome> {
    let from_text = config_str(source, "from_address")
        .or_else(|| config_str(source, "username"))
        .unwrap_or_default();
    let from: Address = from_text.trim().parse().map_err(|_| {
        Outcome::bad_config("the sender address (from_address, or the username when it is not set) is not a valid e-mail address")
    })?;
    let to: Address = config_str(target, "email")
        .ok_or_else(|| Outcome::bad_config("the target has no email"))?
        .trim()
        .parse()
        .map_err(|_| Outcome::bad_config("the target's email is not a valid e-mail address"))?;
    let sender_name = config_str(source, "sender_name")
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from);
    Ok(Composed {
        from: Mailbox::new(sender_name, from),
        to: Mailbox::new(None, to),
        subject: single_line(&message.title),
        text: plain_text(message),
        html: html(message),
    })
}

/// Builds the message; returns it with its Message-ID (`<uuid@sender-domain>`).
fn build_email(composed: Composed) -> Result<(lettre::Message, String), Outcome> {
    let domain = if composed.from.email.domain().is_ascii() {
        composed.from.email.domain().to_string()
    } else {
        "localhost".to_string()
    };
    let message_id = format!("<{}@{}>", uuid::Uuid::new_v4(), domain);

    let email = lettre::Message::builder()
        .from(composed.from)
        .to(composed.to)
        .subject(composed.subject)
        .message_id(Some(message_id.clone()))
        .multipart(MultiPart::alternative_plain_html(
            composed.text,
            composed.html,
        ))
        .map_err(|e| {
            Outcome::permanent(
                Some("invalid_message".into()),
                format!("cannot build the e-mail: {e}"),
            )
        })?;
    Ok((email, message_id))
}

/// Header text on one line: control characters (line breaks, tabs) become spaces.
fn single_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

fn link_label(message: &Message) -> Option<&str> {
    message
        .link_label
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
}

/// The text/plain part: title, body, then the link on its own line.
fn plain_text(message: &Message) -> String {
    let mut out = String::new();
    let title = message.title.trim();
    if !title.is_empty() {
        out.push_str(title);
        out.push_str("\n\n");
    }
    let body = message.body.replace("\r\n", "\n");
    let body = body.trim_matches('\n');
    if !body.is_empty() {
        out.push_str(body);
        out.push_str("\n\n");
    }
    if let Some(link) = message
        .link
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        if let Some(label) = link_label(message) {
            out.push_str(label);
            out.push_str(colon_after(label));
            out.push('\n');
        }
        out.push_str(link);
        out.push('\n');
    }
    out
}

/// The colon to put after `label`: the full-width "：" after CJK text (查看评论：), ":" otherwise.
fn colon_after(label: &str) -> &'static str {
    let wide = label.chars().next_back().is_some_and(|c| {
        matches!(c as u32, 0x2E80..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0xFF00..=0xFFEF)
    });
    if wide {
        "："
    } else {
        ":"
    }
}

/// `url` if it is an absolute URL with one of `schemes` (no `javascript:` and the like).
fn safe_url<'a>(url: &'a str, schemes: &[&str]) -> Option<&'a str> {
    let url = url.trim();
    let parsed = url::Url::parse(url).ok()?;
    schemes.contains(&parsed.scheme()).then_some(url)
}

/// Body paragraphs (split on blank lines), each line escaped, lines joined with `<br>`.
fn html_paragraphs(body: &str) -> Vec<String> {
    let body = body.replace("\r\n", "\n");
    let mut paragraphs = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    for line in body.split('\n') {
        if line.trim().is_empty() {
            if !lines.is_empty() {
                paragraphs.push(lines.join("<br>\n"));
                lines.clear();
            }
        } else {
            lines.push(escape_html(line));
        }
    }
    if !lines.is_empty() {
        paragraphs.push(lines.join("<br>\n"));
    }
    paragraphs
}

/// The text/html part. Every user value is escaped; URLs are escaped as attribute values and
/// only http(s) (and mailto for the link) are used as URLs at all.
fn html(message: &Message) -> String {
    let title = escape_html(message.title.trim());
    let mut out = String::with_capacity(1024 + message.body.len() * 2);
    out.push_str("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!("<title>{title}</title>\n</head>\n"));
    out.push_str("<body style=\"margin:0;padding:0;background:#f4f4f5;\">\n");
    out.push_str(
        "<div style=\"max-width:600px;margin:0 auto;padding:24px;background:#ffffff;\
         font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:16px;\
         line-height:1.5;color:#18181b;\">\n",
    );
    if let Some(cover) = message
        .cover_url
        .as_deref()
        .and_then(|u| safe_url(u, &["https", "http"]))
    {
        out.push_str(&format!(
            "<img src=\"{}\" alt=\"\" width=\"552\" style=\"display:block;width:100%;max-width:552px;height:auto;border:0;border-radius:8px;margin:0 0 16px;\">\n",
            escape_html(cover)
        ));
    }
    if !title.is_empty() {
        out.push_str(&format!(
            "<h1 style=\"font-size:22px;line-height:1.3;margin:0 0 16px;\">{title}</h1>\n"
        ));
    }
    for paragraph in html_paragraphs(&message.body) {
        out.push_str(&format!("<p style=\"margin:0 0 16px;\">{paragraph}</p>\n"));
    }
    if let Some(link) = message
        .link
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let label = escape_html(link_label(message).unwrap_or("Open"));
        match safe_url(link, &["https", "http", "mailto"]) {
            Some(url) => out.push_str(&format!(
                "<p style=\"margin:24px 0 0;\"><a href=\"{}\" style=\"display:inline-block;padding:10px 20px;\
                 background:#2563eb;color:#ffffff;text-decoration:none;border-radius:6px;font-weight:600;\">{label}</a></p>\n",
                escape_html(url)
            )),
            // Not a URL we link to: show it as text.
            None => out.push_str(&format!(
                "<p style=\"margin:24px 0 0;\">{label}{} {}</p>\n",
                colon_after(link_label(message).unwrap_or("Open")),
                escape_html(link)
            )),
        }
    }
    out.push_str("</div>\n</body>\n</html>\n");
    out
}

/// Maps a lettre error to an outcome. Messages name the server, never a credential.
fn classify(error: &lettre::transport::smtp::Error, smtp: &Smtp<'_>) -> Outcome {
    let server = format!("{}:{}", smtp.host, smtp.port);
    let detail = error.to_string();
    if let Some(code) = error.status() {
        let code = code.to_string();
        let is_auth = matches!(code.as_str(), "530" | "534" | "535" | "538" | "454");
        let what = if is_auth {
            "rejected the login"
        } else {
            "refused the message"
        };
        let message = format!("SMTP server {server} {what}: {detail}");
        return if error.is_transient() {
            Outcome::retryable(Some(code), message)
        } else {
            Outcome::permanent(Some(code), message)
        };
    }
    // lettre reports a failed TLS handshake (rustls' error inside an `InvalidData` I/O error) as
    // a connection error; find it in the chain.
    let handshake_failed = io_error_kind(error) == Some(std::io::ErrorKind::InvalidData)
        || detail.contains("valid DNS name");
    if error.is_tls() || handshake_failed {
        return Outcome::permanent(
            Some("tls_error".into()),
            format!("TLS with {server} failed (wrong port for the TLS mode, or an untrusted certificate?): {detail}"),
        );
    }
    if error.is_timeout() {
        return Outcome::retryable(
            Some("timeout".into()),
            format!("connecting to {server} timed out: {detail}"),
        );
    }
    if error.is_client() {
        return if detail.contains("STARTTLS") {
            Outcome::permanent(
                Some("starttls_unavailable".into()),
                format!("SMTP server {server} does not offer STARTTLS; refusing to send in clear (use implicit TLS on port 465, or check the port)"),
            )
        } else if detail.contains("authentication mechanism") {
            Outcome::permanent(
                Some("auth_unsupported".into()),
                format!("SMTP server {server} offers no supported login method (PLAIN or LOGIN): {detail}"),
            )
        } else {
            Outcome::permanent(
                Some("smtp_client_error".into()),
                format!("cannot send through {server}: {detail}"),
            )
        };
    }
    if error.is_response() {
        return Outcome::retryable(
            Some("smtp_protocol_error".into()),
            format!("SMTP server {server} sent an unreadable reply (is the TLS mode right for this port?): {detail}"),
        );
    }
    Outcome::retryable(
        Some("connection_failed".into()),
        format!("cannot reach SMTP server {server}: {detail}"),
    )
}

/// The kind of the first I/O error in `error`'s source chain.
fn io_error_kind(error: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

/// The password as it could appear on the wire: itself, and base64 in AUTH PLAIN and LOGIN.
fn secret_forms(username: &str, password: &str) -> Vec<String> {
    use base64::Engine as _;
    if password.is_empty() {
        return Vec::new();
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        password.to_string(),
        b64.encode(format!("\0{username}\0{password}")),
        b64.encode(password),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(title: &str, body: &str, link: Option<&str>, cover: Option<&str>) -> Message {
        Message {
            title: title.into(),
            body: body.into(),
            link: link.map(Into::into),
            link_label: Some("View \"it\"".into()),
            cover_url: cover.map(Into::into),
        }
    }

    #[test]
    fn html_escapes_every_user_value() {
        let m = msg(
            "<script>alert(1)</script>",
            "a & b\nline 2\n\n\n<p>para 2</p>",
            Some("https://x.example/?a=1&b=\"2\""),
            Some("https://img.example/c.png?x=<y>"),
        );
        let h = html(&m);
        assert!(h.contains("<h1 style=\"font-size:22px;line-height:1.3;margin:0 0 16px;\">&lt;script&gt;alert(1)&lt;/script&gt;</h1>"), "{h}");
        assert!(h.contains(">a &amp; b<br>\nline 2</p>"), "{h}");
        assert!(h.contains(">&lt;p&gt;para 2&lt;/p&gt;</p>"), "{h}");
        assert!(
            h.contains("href=\"https://x.example/?a=1&amp;b=&quot;2&quot;\""),
            "{h}"
        );
        assert!(h.contains(">View &quot;it&quot;</a>"), "{h}");
        assert!(
            h.contains("src=\"https://img.example/c.png?x=&lt;y&gt;\""),
            "{h}"
        );
        assert!(!h.contains("<script>"));
    }

    #[test]
    fn html_does_not_link_other_schemes() {
        let m = msg(
            "t",
            "b",
            Some("javascript:alert(1)"),
            Some("data:image/png;base64,AAAA"),
        );
        let h = html(&m);
        assert!(!h.contains("href="), "{h}");
        assert!(!h.contains("<img"), "{h}");
        assert!(
            h.contains("View &quot;it&quot;: javascript:alert(1)"),
            "{h}"
        );
    }

    #[test]
    fn plain_text_layout() {
        let m = msg("Title", "Body\r\nline", Some("https://x.example"), None);
        assert_eq!(
            plain_text(&m),
            "Title\n\nBody\nline\n\nView \"it\":\nhttps://x.example\n"
        );
        let m = Message {
            link_label: None,
            ..msg("T", "", Some("https://x.example"), None)
        };
        assert_eq!(plain_text(&m), "T\n\nhttps://x.example\n");
        let m = Message {
            link_label: Some("查看评论".into()),
            ..msg("T", "", Some("https://x.example"), None)
        };
        assert_eq!(plain_text(&m), "T\n\n查看评论：\nhttps://x.example\n");
    }

    #[test]
    fn subject_is_one_line() {
        assert_eq!(single_line(" a\r\nBcc: x@y.z\t!"), "a  Bcc: x@y.z !");
    }

    #[test]
    fn auto_is_implicit_on_465_and_starttls_elsewhere() {
        assert_eq!(security("auto", 465, false).ok(), Some(Security::Implicit));
        for port in [25, 587, 2525, 4650, 1] {
            assert_eq!(
                security("auto", port, true).ok(),
                Some(Security::StartTls),
                "{port}"
            );
        }
        // Explicit modes win over the port.
        assert_eq!(
            security("starttls", 465, false).ok(),
            Some(Security::StartTls)
        );
        assert_eq!(
            security("implicit", 587, false).ok(),
            Some(Security::Implicit)
        );
        assert_eq!(security("none", 25, true).ok(), Some(Security::Plain));
        let refused = security("none", 25, false).unwrap_err();
        assert_eq!(refused.code(), Some("invalid_config"));
        assert!(security("ssl", 465, true).is_err());
    }

    #[test]
    fn redacts_password_forms() {
        let forms = secret_forms("u", "p4ss");
        // base64("\0u\0p4ss") = "AHUAcDRzcw==", base64("p4ss") = "cDRzcw==".
        assert_eq!(forms, vec!["p4ss", "AHUAcDRzcw==", "cDRzcw=="]);
        let o = Outcome::permanent(None, "x p4ss y cDRzcw==").scrub(&forms);
        assert_eq!(o.message(), Some("x <redacted> y <redacted>"));
    }
}
