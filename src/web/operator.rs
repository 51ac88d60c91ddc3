//! The operator's HTTP routes: `/metrics` for a scraper, and the admin's
//! exports of feedback and turn events.

use super::error::ApiError;
use app::error::AppError;
use app::identity::Identity;
use app::ports::Services;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};

/// `/metrics` (Prometheus text format) and the admin's exports:
/// `/api/admin/export/{feedback,events}.{jsonl,csv}?since=&until=` (ms since
/// the epoch; default: everything).
pub fn operator_router<S: Clone + Send + Sync + 'static>(
    services: Services,
    store: crate::store::Store,
    metrics: std::sync::Arc<crate::ops::metrics::Metrics>,
    metrics_token: Option<secrecy::SecretString>,
) -> Router<S> {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/api/admin/export/{name}", get(export))
        .layer(Extension(services))
        .layer(Extension(store))
        .layer(Extension(metrics))
        .layer(Extension(MetricsToken(metrics_token.map(|token| {
            use secrecy::ExposeSecret;
            token_digest(token.expose_secret().as_bytes())
        }))))
}

/// The SHA-256 of the token `/metrics` wants (`server.metrics_token`);
/// `None`: metrics are not served.
#[derive(Clone)]
struct MetricsToken(Option<[u8; 32]>);

fn token_digest(token: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(token).into()
}

/// `/metrics` for a scraper with `Authorization: Bearer <metrics_token>`.
/// Digests are compared, so the comparison's time says nothing about the token.
async fn metrics_text(
    Extension(MetricsToken(wanted)): Extension<MetricsToken>,
    Extension(metrics): Extension<std::sync::Arc<crate::ops::metrics::Metrics>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Some(wanted) = wanted else {
        return ApiError(AppError::Forbidden(
            "Metrics are off: set server.metrics_token (APP__SERVER__METRICS_TOKEN) and scrape with it as a bearer token.".into(),
        ))
        .into_response();
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token_digest(token.trim().as_bytes()));
    if given != Some(wanted) {
        let mut response = ApiError(AppError::Unauthorized(
            "Metrics need the metrics token as a bearer token.".into(),
        ))
        .into_response();
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct TimeRange {
    since: Option<i64>,
    until: Option<i64>,
}

async fn export(
    who: Identity,
    Extension(services): Extension<Services>,
    Extension(store): Extension<crate::store::Store>,
    Path(name): Path<String>,
    Query(range): Query<TimeRange>,
) -> Result<Response, ApiError> {
    who.admin(services.accounts.as_ref()).await?;
    let since = range.since.unwrap_or(0);
    let until = range.until.unwrap_or(i64::MAX);
    let body = match name.as_str() {
        "feedback.jsonl" => jsonl(&store.export_feedback(since, until).await?),
        "feedback.csv" => csv_text(&store.export_feedback(since, until).await?),
        "events.jsonl" => jsonl(&store.export_turns(since, until).await?),
        "events.csv" => csv_text(&store.export_turns(since, until).await?),
        _ => return Err(ApiError(AppError::NotFound)),
    }?;
    let content_type = if name.ends_with(".csv") {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, content_type.to_owned()),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

fn jsonl<T: serde::Serialize>(rows: &[T]) -> Result<String, ApiError> {
    let mut out = String::new();
    for row in rows {
        out.push_str(&serde_json::to_string(row).map_err(|e| {
            tracing::error!(error = %e, "exporting JSONL");
            ApiError(AppError::Internal)
        })?);
        out.push('\n');
    }
    Ok(out)
}

fn csv_text<T: serde::Serialize>(rows: &[T]) -> Result<String, ApiError> {
    let failed = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "exporting CSV");
        ApiError(AppError::Internal)
    };
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row).map_err(|e| failed(&e))?;
    }
    let raw = writer.into_inner().map_err(|e| failed(&e))?;
    // Read it back and defuse cells a spreadsheet would run as formulas
    // (questions, answers and comments are user text).
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(raw.as_slice());
    let mut safe = csv::Writer::from_writer(Vec::new());
    for record in reader.records() {
        let record = record.map_err(|e| failed(&e))?;
        safe.write_record(record.iter().map(|cell| defuse_formula(cell).into_owned()))
            .map_err(|e| failed(&e))?;
    }
    let bytes = safe.into_inner().map_err(|e| failed(&e))?;
    String::from_utf8(bytes).map_err(|e| failed(&e))
}

/// A cell starting with `=`, `+`, `-`, `@`, tab or CR gets a leading `'`
/// (OWASP's advice against CSV injection); numbers are left alone.
fn defuse_formula(cell: &str) -> std::borrow::Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && cell.parse::<f64>().is_err() {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}
