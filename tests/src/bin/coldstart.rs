//! Cold start and memory of the three release `bootstrap`s (`make coldstart`), measured here
//! without AWS: each run starts the real binary as Lambda would, against a local Lambda Runtime
//! API (this program) and moto, and times
//!
//! - init: process start → its first `GET /runtime/invocation/next` (clients built, settings
//!   and templates loaded: the part of a cold start the code controls);
//! - first invocation: the event handed over → its response posted (first DynamoDB calls on
//!   fresh connections included);
//!
//! and reads the process's peak resident memory (`VmHWM`) after that invocation.
//!
//! Lambda adds its own sandbox and download time on top; this measures what the code adds.
//! Usage: `coldstart [BIN_DIR] [RUNS]` (default `target/release`, 10).
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use notify_testkit::env::{mint_token, JWT_KEY};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// What the fake Runtime API saw, in order.
#[derive(Debug)]
enum Seen {
    Next(Instant),
    Response(Instant, String),
    Error(String),
}

struct Runtime {
    event: Value,
    handed_out: AtomicBool,
    seen: mpsc::UnboundedSender<Seen>,
}

async fn next(State(rt): State<Arc<Runtime>>) -> (HeaderMap, String) {
    let _ = rt.seen.send(Seen::Next(Instant::now()));
    if rt.handed_out.swap(true, Ordering::SeqCst) {
        // One invocation per run: later polls wait until the process is stopped.
        std::future::pending::<()>().await;
    }
    let mut headers = HeaderMap::new();
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    headers.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_static("coldstart-0001"),
    );
    headers.insert(
        "lambda-runtime-deadline-ms",
        HeaderValue::from_str(&deadline.to_string()).expect("digits"),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:coldstart"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static("Root=1-00000000-000000000000000000000000"),
    );
    (headers, rt.event.to_string())
}

async fn response(
    State(rt): State<Arc<Runtime>>,
    UrlPath(_id): UrlPath<String>,
    body: String,
) -> StatusCode {
    let _ = rt.seen.send(Seen::Response(Instant::now(), body));
    StatusCode::ACCEPTED
}

async fn error(State(rt): State<Arc<Runtime>>, body: String) -> StatusCode {
    let _ = rt.seen.send(Seen::Error(body));
    StatusCode::ACCEPTED
}

/// The next thing the function did, within 30 s.
async fn wait_for(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Result<Seen, String> {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .map_err(|_| "no answer from the function within 30 s".to_string())?
        .ok_or_else(|| "the runtime API stopped".to_string())
}

struct Run {
    init: Duration,
    first_invocation: Duration,
    peak_rss_kib: u64,
}

/// Starts `binary` against a fresh Runtime API serving `event` once, and measures it.
async fn run_once(
    binary: &Path,
    env: &HashMap<&'static str, String>,
    event: &Value,
) -> Result<Run, String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let runtime = Arc::new(Runtime {
        event: event.clone(),
        handed_out: AtomicBool::new(false),
        seen: tx,
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(runtime);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let api = listener.local_addr().map_err(|e| e.to_string())?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let pid = child.id().ok_or("the process ended at once")?;

    let asked = match wait_for(&mut rx).await? {
        Seen::Next(at) => at,
        other => return Err(format!("the function failed to start: {other:?}")),
    };
    let answered = match wait_for(&mut rx).await? {
        Seen::Response(at, body) => {
            // An HTTP API response must be a 200 (the token and the table are right).
            let status = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("statusCode").and_then(Value::as_u64));
            if status.is_some_and(|s| s != 200) {
                return Err(format!("the function answered {body}"));
            }
            at
        }
        Seen::Error(body) => return Err(format!("the invocation failed: {body}")),
        Seen::Next(_) => return Err("polled again without answering".into()),
    };
    // The runtime polls for the next event once the response is posted: then it is idle.
    let _ = wait_for(&mut rx).await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read the process status: {e}"))?;
    let peak_rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmHWM in /proc/<pid>/status")?;
    let _ = child.kill().await;
    server.abort();
    Ok(Run {
        init: asked - started,
        first_invocation: answered - asked,
        peak_rss_kib,
    })
}

fn api_event(token: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/sources",
        "rawQueryString": "",
        "headers": {"authorization": format!("Bearer {token}"), "host": "api.example.test"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "coldstart", "domainName": "api.example.test",
            "domainPrefix": "api", "requestId": "coldstart", "routeKey": "$default",
            "stage": "$default", "time": "04/Dec/2026:06:00:00 +0000", "timeEpoch": 1796364000000_i64,
            "http": {"method": "GET", "path": "/sources", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.9", "userAgent": "coldstart"}
        },
        "isBase64Encoded": false
    })
}

fn read_json(path: PathBuf) -> Result<Value, String> {
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let root = notify_testkit::workspace_root();
    let bin_dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release"));
    let runs: usize = match args.next() {
        Some(n) => n
            .parse()
            .map_err(|_| format!("RUNS must be a number, not {n}"))?,
        None => 10,
    };

    notify_testkit::aws::require_moto().await;
    let aws = notify_testkit::aws::moto_config().await;
    let table = format!("notify-coldstart-{}", uuid::Uuid::new_v4().simple());
    notify_aws::schema::create_table(&aws_sdk_dynamodb::Client::new(&aws), &table)
        .await
        .map_err(|e| format!("create the table: {e}"))?;
    let env: HashMap<&'static str, String> = HashMap::from([
        ("AWS_ENDPOINT_URL", notify_testkit::aws::moto_endpoint()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_LAMBDA_FUNCTION_NAME", "coldstart".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/coldstart".into()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "coldstart".into()),
        (notify_service::settings::TABLE, table.clone()),
        (notify_service::settings::SECRET_PREFIX, format!("{table}/")),
        (
            notify_service::settings::WEB_BASE_URL,
            "https://app.example.test".into(),
        ),
        (notify_service::settings::JWT_HS256_KEY, JWT_KEY.into()),
    ]);
    let events = [
        (
            "api",
            api_event(&mint_token(JWT_KEY, "coldstart-user", 3600)),
        ),
        (
            "events",
            read_json(root.join("events/section-commented.json"))?,
        ),
        (
            "scheduler",
            read_json(root.join("events/scheduled-tick.json"))?,
        ),
    ];

    println!(
        "{runs} cold starts per function, {} binaries against moto and a local Runtime API",
        bin_dir.display()
    );
    println!(
        "{:<10} {:>10} {:>10} {:>14} {:>14} {:>14}",
        "function", "size (MB)", "init (ms)", "init max (ms)", "1st call (ms)", "peak RSS (MB)"
    );
    for (function, event) in &events {
        let binary = bin_dir.join(function);
        let size = std::fs::metadata(&binary)
            .map_err(|e| {
                format!(
                    "{}: {e} (run `make coldstart`, which builds it)",
                    binary.display()
                )
            })?
            .len();
        let mut results = Vec::with_capacity(runs);
        for _ in 0..runs {
            results.push(run_once(&binary, &env, event).await?);
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let inits: Vec<f64> = results.iter().map(|r| ms(r.init)).collect();
        let max_init = inits.iter().copied().fold(0.0, f64::max);
        println!(
            "{:<10} {:>10.1} {:>10.1} {:>14.1} {:>14.1} {:>14.1}",
            function,
            size as f64 / 1e6,
            median(inits),
            max_init,
            median(results.iter().map(|r| ms(r.first_invocation)).collect()),
            median(
                results
                    .iter()
                    .map(|r| r.peak_rss_kib as f64 / 1024.0)
                    .collect()
            ),
        );
    }
    println!("(medians; peak RSS is VmHWM after the first invocation)");
    Ok(())
}
