//! The small HTTP endpoint on `agent.listen`: `/health` (200 when every
//! source and output is healthy, 503 with a JSON body naming what is not)
//! and `/metrics` (Prometheus text format).

use super::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The health verdict from the `auditrelay_up` gauges: components that have
/// not reported yet (just started) count as healthy.
pub fn health(metrics: &Metrics) -> (bool, serde_json::Value) {
    let mut failing = Vec::new();
    let mut ok = Vec::new();
    for (labels, v) in metrics.series("auditrelay_up") {
        let Some((kind, name)) = labels.first() else { continue };
        let entry = json!({ "kind": kind, "name": name });
        if v >= 1.0 {
            ok.push(entry);
        } else {
            failing.push(entry);
        }
    }
    if let Some((_, up)) = metrics.series("auditrelay_cluster_etcd_up").first() {
        let entry = json!({ "kind": "cluster", "name": "etcd" });
        if *up >= 1.0 {
            ok.push(entry);
        } else {
            failing.push(entry);
        }
    }
    let healthy = failing.is_empty();
    (healthy, json!({ "status": if healthy { "ok" } else { "unhealthy" }, "unhealthy": failing, "healthy": ok }))
}

async fn health_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    let (ok, body) = health(&m);
    let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body))
}

async fn metrics_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], m.render())
}

/// Bind `addr` (an error when it is taken) and serve until `cancel`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app =
        Router::new().route("/health", get(health_handler)).route("/metrics", get(metrics_handler)).with_state(metrics);
    Ok(tokio::spawn(async move {
        let shutdown = async move { cancel.cancelled().await };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::error!("health/metrics endpoint stopped: {e}");
        }
    }))
}
