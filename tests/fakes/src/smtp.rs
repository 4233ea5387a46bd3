//! A real local SMTP server: `tests/support/smtp_sink.py` (aiosmtpd) as a child process. It
//! saves every message as an .eml file and prints one line per message; it can also require
//! STARTTLS or speak implicit TLS with a given certificate.
//!
//! It runs with the Python of the workspace's `.venv` (`make venv`); `NOTIFY_PYTHON` overrides it.
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// The workspace root (this crate lives in `tests/fakes/`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python with aiosmtpd: `NOTIFY_PYTHON`, else the workspace's `.venv`.
pub fn python() -> PathBuf {
    std::env::var_os("NOTIFY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"))
}

/// How the sink secures connections (its `--mode`).
pub enum Mode<'a> {
    Plain,
    /// STARTTLS offered and required, with this certificate chain and key (PEM files).
    StartTls {
        cert: &'a Path,
        key: &'a Path,
    },
    /// TLS from the first byte.
    Implicit {
        cert: &'a Path,
        key: &'a Path,
    },
}

/// A running `smtp_sink.py`; killed and its directory removed on drop.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    lines: Receiver<String>,
}

impl SmtpSink {
    /// A plaintext sink.
    pub fn start() -> SmtpSink {
        SmtpSink::start_in(Mode::Plain)
    }

    pub fn start_in(mode: Mode<'_>) -> SmtpSink {
        let python = python();
        let script = workspace_root().join("tests/support/smtp_sink.py");
        let dir = std::env::temp_dir().join(format!("notify-smtp-sink-{}", uuid::Uuid::new_v4()));
        let mut mode_args: Vec<OsString> = Vec::new();
        match mode {
            Mode::Plain => {}
            Mode::StartTls { cert, key } | Mode::Implicit { cert, key } => {
                let name = if matches!(mode, Mode::StartTls { .. }) {
                    "starttls"
                } else {
                    "implicit"
                };
                mode_args.extend([
                    "--mode".into(),
                    name.into(),
                    "--tls-cert".into(),
                    cert.into(),
                    "--tls-key".into(),
                    key.into(),
                ]);
            }
        }
        let mut child = Command::new(&python)
            .arg(&script)
            .args(["--host", "127.0.0.1", "--port", "0", "--dir"])
            .arg(&dir)
            .args(&mode_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the SMTP sink with {} ({e}); create the venv with aiosmtpd or set NOTIFY_PYTHON",
                    python.display()
                )
            });
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut sink = SmtpSink {
            child,
            port: 0,
            dir,
            lines,
        };
        let first = sink.next_line(Duration::from_secs(30));
        let addr: SocketAddr = first
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line from the sink: {first}"))
            .parse()
            .unwrap();
        sink.port = addr.port();
        // It prints after binding; make sure it accepts connections too.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "the sink does not accept connections on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sink
    }

    pub fn next_line(&self, timeout: Duration) -> String {
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("no output from the SMTP sink within {timeout:?}: {e}"))
    }

    /// The sink's line for the next saved message: (path, the rest of the line).
    pub fn next_saved(&self) -> (PathBuf, String) {
        let line = self.next_line(Duration::from_secs(10));
        let rest = line
            .strip_prefix("saved ")
            .unwrap_or_else(|| panic!("unexpected line from the sink: {line}"));
        let (path, info) = rest.split_once(' ').unwrap();
        (PathBuf::from(path), info.to_string())
    }

    /// The next line if the sink printed one already.
    pub fn try_line(&self) -> Option<String> {
        self.lines.try_recv().ok()
    }

    /// Waits for the next saved message and returns its raw text.
    pub fn next_message(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let line = self.next_line(deadline.saturating_duration_since(Instant::now()));
            if let Some(rest) = line.strip_prefix("saved ") {
                let path = rest.split(' ').next().unwrap_or_default();
                return std::fs::read_to_string(path).expect("saved message is readable");
            }
        }
    }

    /// Every message saved so far, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut paths = self.saved_files();
        paths.sort();
        paths
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }

    pub fn saved_files(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
