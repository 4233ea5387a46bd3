//! EmailChannel's TLS modes against a real TLS-capable SMTP server: `tests/support/smtp_sink.py`
//! in `implicit` mode (TLS from the first byte, like port 465) and in `starttls` mode (STARTTLS
//! offered and required). Each test makes its own CA and a server certificate for `localhost`
//! and 127.0.0.1 with rcgen; the channel trusts the CA through
//! [`Endpoints::extra_root_certificates`], as a deployment with a private CA would.
//!
//! The sink reports `tls=yes` for a message that came over an encrypted session.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mailparse::{addrparse_header, dateparse, parse_mail, MailAddr, MailHeaderMap};
use notify_channels::email::EmailChannel;
use notify_channels::{Channel, Endpoints, Outcome, SendRequest};
use notify_domain::{Message, SecretBundle, SecretValue};
use notify_fakes::smtp::{Mode, SmtpSink as Sink};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::{json, Map, Value};

const PASSWORD: &str = "s3cret-Auth-Code";

/// Short, so that the failure cases show they do not hang.
const TIMEOUT: Duration = Duration::from_secs(2);

/// A test CA and a server certificate it signed, as PEM files in a temporary directory.
struct Pki {
    dir: PathBuf,
    ca_pem: Vec<u8>,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "notify test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let mut server =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();

        let dir = std::env::temp_dir().join(format!("notify-smtp-pki-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        // The chain the server presents: its certificate, then the CA's.
        std::fs::write(
            dir.join("server.pem"),
            format!("{}{}", server_cert.pem(), ca_cert.pem()),
        )
        .unwrap();
        std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
        Pki {
            dir,
            ca_pem: ca_cert.pem().into_bytes(),
        }
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    fn implicit_sink(&self) -> Sink {
        Sink::start_in(Mode::Implicit {
            cert: &self.cert(),
            key: &self.key(),
        })
    }

    fn starttls_sink(&self) -> Sink {
        Sink::start_in(Mode::StartTls {
            cert: &self.cert(),
            key: &self.key(),
        })
    }

    /// A channel that trusts this CA.
    fn trusting_channel(&self) -> EmailChannel {
        EmailChannel::new(&endpoints(vec![self.ca_pem.clone()]))
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn endpoints(extra_root_certificates: Vec<Vec<u8>>) -> Endpoints {
    Endpoints {
        timeout: TIMEOUT,
        // The test servers listen on loopback.
        allow_local_endpoints: true,
        extra_root_certificates,
        ..Endpoints::default()
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// A source for the sink on `port`; `localhost`, the name in the server certificate.
fn source(port: u16, tls: &str) -> Map<String, Value> {
    obj(json!({
        "host": "localhost",
        "port": port,
        "username": "alerts@example.com",
        "tls": tls,
        "from_address": "alerts@example.com",
        "sender_name": "Ops, Team 通知",
    }))
}

fn message() -> Message {
    Message {
        title: "Größe: 通知 ✓".into(),
        body: "Disk on db-1 is 91% full.".into(),
        link: None,
        link_label: None,
        cover_url: None,
    }
}

/// Sends `message()` and checks that no outcome shows the password.
async fn send(channel: &EmailChannel, source_config: Map<String, Value>) -> Outcome {
    let mut secrets = SecretBundle::new();
    secrets.insert("password", SecretValue::new(PASSWORD));
    let target = obj(json!({"email": "someone@example.org"}));
    let message = message();
    let outcome = channel
        .send(&SendRequest {
            source_config: &source_config,
            source_secrets: &secrets,
            target_config: &target,
            target_secrets: &SecretBundle::new(),
            message: &message,
        })
        .await;
    for shown in [
        format!("{outcome:?}"),
        serde_json::to_string(&outcome).unwrap(),
    ] {
        assert!(!shown.contains(PASSWORD), "password leaked: {shown}");
    }
    outcome
}

/// Checks the sink saved one message over TLS, with the headers that must survive the trip.
fn assert_saved_over_tls(sink: &Sink, outcome: &Outcome) {
    let Outcome::Delivered {
        provider_message_id: Some(message_id),
        target_update: None,
    } = outcome
    else {
        panic!("not delivered: {outcome:?}");
    };
    let (path, info) = sink.next_saved();
    assert_eq!(
        info,
        "from=alerts@example.com to=someone@example.org auth=alerts@example.com tls=yes"
    );
    let raw = std::fs::read(path).unwrap();
    let mail = parse_mail(&raw).unwrap();
    let h = &mail.headers;
    assert_eq!(
        h.get_first_value("Subject").as_deref(),
        Some("Größe: 通知 ✓")
    );
    assert_eq!(
        h.get_first_value("Message-ID").as_deref(),
        Some(message_id.as_str())
    );
    let date = h.get_first_value("Date").expect("a Date header");
    assert!(
        (chrono::Utc::now().timestamp() - dateparse(&date).unwrap()).abs() < 300,
        "Date {date} is not now"
    );
    match &addrparse_header(h.get_first_header("From").unwrap()).unwrap()[..] {
        [MailAddr::Single(from)] => {
            assert_eq!(from.display_name.as_deref(), Some("Ops, Team 通知"));
            assert_eq!(from.addr, "alerts@example.com");
        }
        other => panic!("From is not one mailbox: {other:?}"),
    }
}

/// Checks that nothing reached the sink.
fn assert_nothing_saved(sink: &Sink) {
    std::thread::sleep(Duration::from_millis(300));
    assert!(sink.saved_files().is_empty(), "a message was saved");
    if let Some(line) = sink.try_line() {
        panic!("the sink reported: {line}");
    }
}

/// Checks that `outcome` is a failure (retryable or permanent), naming the server, and that it
/// came within the bound.
fn assert_failed_in_time(outcome: &Outcome, started: Instant, port: u16) {
    let elapsed = started.elapsed();
    assert!(
        elapsed < TIMEOUT * 4,
        "took {elapsed:?} with a {TIMEOUT:?} timeout"
    );
    assert!(
        matches!(
            outcome,
            Outcome::Permanent { .. } | Outcome::Retryable { .. }
        ),
        "{outcome:?}"
    );
    let message = outcome.message().unwrap();
    assert!(
        message.contains(&format!("localhost:{port}")),
        "the message does not name the server: {message}"
    );
}

#[tokio::test]
async fn implicit_tls_delivers_over_tls() {
    let pki = Pki::new();
    let sink = pki.implicit_sink();
    let outcome = send(&pki.trusting_channel(), source(sink.port, "implicit")).await;
    assert_saved_over_tls(&sink, &outcome);
}

#[tokio::test]
async fn starttls_delivers_over_tls() {
    let pki = Pki::new();
    let sink = pki.starttls_sink();
    let channel = pki.trusting_channel();
    // Explicit starttls, and auto on a port other than 465.
    for tls in ["starttls", "auto"] {
        let outcome = send(&channel, source(sink.port, tls)).await;
        assert_saved_over_tls(&sink, &outcome);
    }
}

#[tokio::test]
async fn starttls_against_an_implicit_tls_server_fails_without_hanging() {
    let pki = Pki::new();
    let sink = pki.implicit_sink();
    let started = Instant::now();
    let outcome = send(&pki.trusting_channel(), source(sink.port, "starttls")).await;
    // The server waits for a TLS handshake, the client for a greeting: only the deadline ends
    // it, and the message says what to check.
    assert_failed_in_time(&outcome, started, sink.port);
    assert!(
        outcome.message().unwrap().contains("implicit"),
        "{outcome:?}"
    );
    assert_nothing_saved(&sink);
}

#[tokio::test]
async fn implicit_tls_against_a_starttls_server_fails_without_hanging() {
    let pki = Pki::new();
    let sink = pki.starttls_sink();
    let started = Instant::now();
    let outcome = send(&pki.trusting_channel(), source(sink.port, "implicit")).await;
    assert_failed_in_time(&outcome, started, sink.port);
    assert_eq!(outcome.code(), Some("tls_error"), "{outcome:?}");
    assert_nothing_saved(&sink);
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_error() {
    let pki = Pki::new();
    // The web PKI roots only: the test CA is unknown.
    let channel = EmailChannel::new(&endpoints(Vec::new()));
    let implicit = pki.implicit_sink();
    let starttls = pki.starttls_sink();
    for (sink, tls) in [(&implicit, "implicit"), (&starttls, "starttls")] {
        let started = Instant::now();
        let outcome = send(&channel, source(sink.port, tls)).await;
        assert_failed_in_time(&outcome, started, sink.port);
        assert!(
            matches!(outcome, Outcome::Permanent { .. }),
            "{tls}: {outcome:?}"
        );
        assert_eq!(outcome.code(), Some("tls_error"), "{tls}: {outcome:?}");
        let message = outcome.message().unwrap();
        assert!(message.contains("certificate"), "{tls}: {message}");
        assert_nothing_saved(sink);
    }
}

#[tokio::test]
async fn an_extra_root_that_is_not_a_certificate_is_reported_before_connecting() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let channel = EmailChannel::new(&endpoints(vec![b"not a certificate".to_vec()]));
    let outcome = send(&channel, source(port, "implicit")).await;
    assert!(matches!(outcome, Outcome::Permanent { .. }), "{outcome:?}");
    assert_eq!(outcome.code(), Some("tls_error"));
    assert!(
        outcome.message().unwrap().contains("not a PEM certificate"),
        "{outcome:?}"
    );
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the channel connected with a broken trust store"
    );
}

#[test]
fn the_test_pki_is_usable() {
    let pki = Pki::new();
    for path in [pki.cert(), pki.key()] {
        assert!(Path::new(&path).is_file(), "{}", path.display());
    }
    assert!(String::from_utf8_lossy(&pki.ca_pem).starts_with("-----BEGIN CERTIFICATE-----"));
}
