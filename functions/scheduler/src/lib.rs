//! The every-minute tick: fire each due cron slot exactly once, and try again the slots whose
//! send failed retryably or whose worker died, within the time the invocation has left.
use std::time::Instant;

use chrono::{DateTime, Utc};
use notify_service::{Dispatcher, TickReport};
use tracing::info;

/// Runs one tick at `now`, claiming no new slot once `deadline` is close.
pub async fn handle(
    dispatcher: &Dispatcher,
    now: DateTime<Utc>,
    deadline: Instant,
) -> Result<TickReport, notify_service::DispatchError> {
    let report = dispatcher.tick(now, deadline).await?;
    info!(
        due = report.due,
        sent = report.sent,
        failed = report.failed,
        skipped = report.skipped,
        already_claimed = report.already_claimed,
        deferred = report.deferred,
        retries_due = report.retries_due,
        retrying = report.retrying,
        "scheduler tick"
    );
    Ok(report)
}
