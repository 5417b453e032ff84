//! Prometheus metrics, served at `/metrics`.
//!
//! One process-wide registry: the metrics describe the process, and a
//! global keeps the hot paths (ingest, every request) free of plumbing.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    graphql_operations: IntCounter,
    graphql_errors: IntCounterVec,
    events_ingested: IntCounter,
    ingest_batch_events: Histogram,
    ingest_commit_seconds: Histogram,
    alerts_raised: IntCounterVec,
    rate_limited: IntCounterVec,
    subscriptions: IntGauge,
    db_connections: IntGaugeVec,
    webhook_deliveries: IntCounterVec,
    webhook_oldest_pending: IntGauge,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new_custom(Some("threatwatch".into()), None)?;
    let http_requests = IntCounterVec::new(
        Opts::new("http_requests_total", "HTTP requests by route and status"),
        &["route", "status"],
    )?;
    let http_duration = HistogramVec::new(
        HistogramOpts::new(
            "http_request_duration_seconds",
            "HTTP request latency by route",
        )
        .buckets(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
        ]),
        &["route"],
    )?;
    let graphql_operations =
        IntCounter::new("graphql_operations_total", "GraphQL operations executed")?;
    let graphql_errors = IntCounterVec::new(
        Opts::new("graphql_errors_total", "GraphQL errors by extensions.code"),
        &["code"],
    )?;
    let events_ingested = IntCounter::new("events_ingested_total", "Events stored")?;
    let ingest_batch_events = Histogram::with_opts(
        HistogramOpts::new(
            "ingest_batch_events",
            "Events per ingest transaction (group commit batch size)",
        )
        .buckets(vec![
            1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1000.0, 2000.0,
        ]),
    )?;
    let ingest_commit_seconds = Histogram::with_opts(
        HistogramOpts::new(
            "ingest_commit_seconds",
            "Time to store one ingest batch, from BEGIN to a durable COMMIT",
        )
        .buckets(vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ]),
    )?;
    let alerts_raised = IntCounterVec::new(
        Opts::new("alerts_raised_total", "Alerts raised by severity"),
        &["severity"],
    )?;
    let rate_limited = IntCounterVec::new(
        Opts::new(
            "rate_limited_total",
            "Requests or fields refused for their rate",
        ),
        &["scope"],
    )?;
    let subscriptions = IntGauge::new("subscriptions_open", "Open WebSocket subscriptions")?;
    let db_connections = IntGaugeVec::new(
        Opts::new("db_pool_connections", "Database pool connections by state"),
        &["state"],
    )?;
    let webhook_deliveries = IntCounterVec::new(
        Opts::new(
            "webhook_deliveries_total",
            "Webhook delivery attempts by result (delivered, retry, failed, refused)",
        ),
        &["result"],
    )?;
    let webhook_oldest_pending = IntGauge::new(
        "webhook_oldest_pending_seconds",
        "Age of the oldest pending webhook delivery of an enabled endpoint",
    )?;
    registry.register(Box::new(webhook_deliveries.clone()))?;
    registry.register(Box::new(webhook_oldest_pending.clone()))?;
    registry.register(Box::new(http_requests.clone()))?;
    registry.register(Box::new(http_duration.clone()))?;
    registry.register(Box::new(graphql_operations.clone()))?;
    registry.register(Box::new(graphql_errors.clone()))?;
    registry.register(Box::new(events_ingested.clone()))?;
    registry.register(Box::new(ingest_batch_events.clone()))?;
    registry.register(Box::new(ingest_commit_seconds.clone()))?;
    registry.register(Box::new(alerts_raised.clone()))?;
    registry.register(Box::new(rate_limited.clone()))?;
    registry.register(Box::new(subscriptions.clone()))?;
    registry.register(Box::new(db_connections.clone()))?;
    Ok(Metrics {
        registry,
        http_requests,
        http_duration,
        graphql_operations,
        graphql_errors,
        events_ingested,
        ingest_batch_events,
        ingest_commit_seconds,
        alerts_raised,
        rate_limited,
        subscriptions,
        db_connections,
        webhook_deliveries,
        webhook_oldest_pending,
    })
}

/// `None` only if the metric definitions above are inconsistent, which the
/// unit test below rules out; metrics then become no-ops rather than a crash.
static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| match build() {
    Ok(m) => Some(m),
    Err(e) => {
        tracing::error!(error = %e, "metrics disabled");
        None
    }
});

fn with(f: impl FnOnce(&Metrics)) {
    if let Some(m) = METRICS.as_ref() {
        f(m);
    }
}

pub fn http_request(route: &str, status: axum::http::StatusCode, took: Duration) {
    with(|m| {
        m.http_requests
            .with_label_values(&[route, status.as_str()])
            .inc();
        m.http_duration
            .with_label_values(&[route])
            .observe(took.as_secs_f64());
    });
}

pub fn graphql_operation() {
    with(|m| m.graphql_operations.inc());
}

pub fn graphql_error(code: &str) {
    with(|m| m.graphql_errors.with_label_values(&[code]).inc());
}

pub fn events_ingested(n: u64) {
    with(|m| m.events_ingested.inc_by(n));
}

/// One ingest transaction of `events` events that took `took`, committed
/// or not: the batch sizes show whether group commit is grouping.
pub fn ingest_batch(events: usize, took: Duration) {
    with(|m| {
        m.ingest_batch_events.observe(events as f64);
        m.ingest_commit_seconds.observe(took.as_secs_f64());
    });
}

pub fn alert_raised(severity: &str) {
    with(|m| m.alerts_raised.with_label_values(&[severity]).inc());
}

/// `scope`: "request" (a whole request, HTTP 429) or "field" (one field).
pub fn rate_limited(scope: &str) {
    with(|m| m.rate_limited.with_label_values(&[scope]).inc());
}

pub fn subscriptions_opened() {
    with(|m| m.subscriptions.inc());
}

pub fn subscriptions_closed() {
    with(|m| m.subscriptions.dec());
}

/// One webhook attempt recorded: "delivered", "retry", "failed" (retries
/// spent) or "refused" (the address policy refused the endpoint).
pub fn webhook_delivery(result: &str) {
    with(|m| m.webhook_deliveries.with_label_values(&[result]).inc());
}

pub fn oldest_pending_delivery(age_seconds: i64) {
    with(|m| m.webhook_oldest_pending.set(age_seconds));
}

/// The Prometheus text exposition, with the pool's current state.
pub fn render(pool_connections: u32, pool_idle: u32) -> String {
    let mut out = Vec::new();
    with(|m| {
        m.db_connections
            .with_label_values(&["open"])
            .set(i64::from(pool_connections));
        m.db_connections
            .with_label_values(&["idle"])
            .set(i64::from(pool_idle));
        if let Err(e) = TextEncoder::new().encode(&m.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
    });
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn definitions_are_consistent_and_render() {
        assert!(super::build().is_ok());
        super::events_ingested(3);
        assert!(super::render(1, 1).contains("threatwatch_events_ingested_total"));
    }
}
