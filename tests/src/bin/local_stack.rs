//! The whole service on one machine, against moto and the local SMTP sink (`make up`):
//! - the API router served over HTTP on 127.0.0.1 (the same router Lambda runs);
//! - the event pipeline (bus → rule → SQS with a dead-letter queue) created on moto, and an
//!   SQS poller handing records to the events handler, as Lambda's event source mapping does;
//! - the scheduler ticking at the start of every minute, as the EventBridge rule does.
//!
//! Settings come from the same `NOTIFY_*` variables as the functions; unset ones get local
//! defaults (printed at start).
use std::time::{Duration, Instant};

use notify_aws::dead_letter::SqsDeadLetters;
use notify_service::settings;
use notify_testkit::pipeline;

const LOCAL_DEFAULTS: [(&str, &str); 6] = [
    (settings::TABLE, "notify-local"),
    (settings::SECRET_PREFIX, "notify-local/"),
    (settings::WEB_BASE_URL, "http://localhost:8080"),
    (
        settings::JWT_HS256_KEY,
        "local-development-key-not-for-production",
    ),
    (settings::ALLOW_LOCAL_ENDPOINTS, "true"),
    (settings::PROVIDER_TIMEOUT_SECONDS, "10"),
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    notify_service::telemetry::init();
    let lookup = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| {
                LOCAL_DEFAULTS
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
    };
    let settings = notify_service::Settings::from_lookup(lookup)?;
    let port: u16 = std::env::var("NOTIFY_LOCAL_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let bus = std::env::var("NOTIFY_LOCAL_BUS").unwrap_or_else(|_| "notify-local".into());

    notify_testkit::aws::require_moto().await;
    let aws = notify_testkit::aws::moto_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    if let Err(err) = notify_aws::schema::create_table(&dynamo, &settings.table).await {
        let exists = matches!(&err, aws_sdk_dynamodb::Error::ResourceInUseException(_));
        if !exists {
            return Err(err.into());
        }
    }
    let pipe = pipeline::create(&aws, &bus).await;
    let dispatcher = notify_aws::wiring::dispatcher(settings.clone(), &aws)?;
    let dead_letters = SqsDeadLetters::new(aws_sdk_sqs::Client::new(&aws), pipe.dlq_url.clone());

    eprintln!("notify local stack");
    eprintln!(
        "  API          http://127.0.0.1:{port}  (Bearer tokens: HS256 with {})",
        settings::JWT_HS256_KEY
    );
    eprintln!("  moto         {}", notify_testkit::aws::moto_endpoint());
    eprintln!("  table        {}", settings.table);
    eprintln!("  event bus    {} → {}", pipe.bus, pipe.queue_url);
    eprintln!("  dead letters {}", pipe.dlq_url);

    // Events: Lambda's SQS poller, played locally.
    let events_dispatcher = dispatcher.clone();
    let events_aws = aws.clone();
    let queue_url = pipe.queue_url.clone();
    tokio::spawn(async move {
        loop {
            let polled = pipeline::poll_once(
                &events_aws,
                &queue_url,
                &events_dispatcher,
                Some(&dead_letters),
                2,
            )
            .await;
            if polled.received > 0 {
                eprintln!(
                    "events: handled {} record(s), {} to retry",
                    polled.received, polled.failed
                );
            }
        }
    });

    // Scheduler: one tick at the start of every minute.
    let tick_dispatcher = dispatcher.clone();
    tokio::spawn(async move {
        loop {
            let now = chrono::Utc::now();
            let into_minute = now.timestamp().rem_euclid(60) as u64;
            tokio::time::sleep(Duration::from_secs(60 - into_minute) + Duration::from_millis(200))
                .await;
            let started = chrono::Utc::now();
            match tick_dispatcher
                .tick(started, Instant::now() + Duration::from_secs(50))
                .await
            {
                Ok(report) if report.due > 0 => eprintln!("scheduler: {report:?}"),
                Ok(_) => {}
                Err(err) => eprintln!("scheduler: tick failed: {err}"),
            }
        }
    });

    let app = notify_api::router(notify_api::AppState { dispatcher });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
