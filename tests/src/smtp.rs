//! A real local SMTP server (`tests/support/smtp_sink.py`, aiosmtpd) that saves each message
//! as an .eml file.
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// A running sink; killed and its directory removed on drop.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    lines: Receiver<String>,
}

/// The Python with aiosmtpd: `NOTIFY_PYTHON`, else the workspace's `.venv`.
pub fn python() -> PathBuf {
    std::env::var_os("NOTIFY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join(".venv/bin/python"))
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let dir = std::env::temp_dir().join(format!("notify-smtp-{}", uuid::Uuid::new_v4()));
        let python = python();
        let mut child = Command::new(&python)
            .arg(crate::workspace_root().join("tests/support/smtp_sink.py"))
            .args(["--host", "127.0.0.1", "--port", "0", "--dir"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the SMTP sink with {} ({e}); run `make venv` or set NOTIFY_PYTHON", python.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the SMTP sink printed nothing within 30 s");
        let addr: SocketAddr = first
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the SMTP sink: {first}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "the SMTP sink does not accept connections on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpSink {
            child,
            port: addr.port(),
            dir,
            lines,
        }
    }

    /// Waits for the next saved message and returns its raw text.
    pub fn next_message(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no message reached the SMTP sink within {timeout:?}"));
            if let Some(rest) = line.strip_prefix("saved ") {
                let path = rest.split(' ').next().unwrap_or_default();
                return std::fs::read_to_string(path).expect("saved message is readable");
            }
        }
    }

    /// Every message saved so far.
    pub fn messages(&self) -> Vec<String> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        paths.retain(|p| p.extension().is_some_and(|x| x == "eml"));
        paths.sort();
        paths
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
