//! The documents HTTP API (multipart upload, list, status, delete), for the
//! browser's upload progress and for curl. Chat and the rest are Leptos server
//! functions; uploads are not, because they are multipart and large.

use app::api::identity::{admin_only, session_account, ApiKeyAccount};
use app::error::AppError;
use app::ports::{Services, UserId};
use app::wire::{AccountView, DocumentView, UploadOutcome};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use tower_sessions::Session;

/// Who is calling these routes: the account of a valid API key (checked by
/// the server's middleware), else the browser's session.
pub struct Who {
    session: Session,
    api_key: Option<AccountView>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Who {
    type Rejection = <Session as axum::extract::FromRequestParts<S>>::Rejection;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            session: Session::from_request_parts(parts, state).await?,
            api_key: parts
                .extensions
                .get::<ApiKeyAccount>()
                .map(|key| key.0.clone()),
        })
    }
}

impl Who {
    async fn account(
        &self,
        services: &Services,
        create: bool,
    ) -> Result<Option<AccountView>, AppError> {
        match &self.api_key {
            Some(account) => Ok(Some(account.clone())),
            None => session_account(&self.session, services.accounts.as_ref(), create).await,
        }
    }
}

/// An [`AppError`] as an HTTP response: its status and its JSON form.
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        Self(e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = Json(&self.0).into_response();
        error_status_and_headers(&self.0, &mut response);
        response
    }
}

/// The one place an [`AppError`] becomes an HTTP status (and, for rate
/// limits, a `Retry-After` header in whole seconds, rounded up).
pub fn error_status_and_headers(error: &AppError, response: &mut Response) {
    *response.status_mut() =
        StatusCode::from_u16(error.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(secs) = error.retry_after_secs() {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, secs.into());
    }
}

pub fn documents_router<S: Clone + Send + Sync + 'static>(
    services: Services,
    max_file_bytes: u64,
    max_files: usize,
) -> Router<S> {
    // Room for every file at the limit plus multipart framing; the per-file
    // limit is enforced while reading, with a clearer message.
    let body_limit = usize::try_from(max_file_bytes.saturating_add(1024 * 1024))
        .unwrap_or(usize::MAX)
        .saturating_mul(max_files.clamp(1, 4));
    Router::new()
        .route("/api/documents", get(list).post(upload))
        .route("/api/documents/{id}", get(status).delete(delete))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(Extension(UploadLimits {
            max_file_bytes,
            max_files,
        }))
        .layer(Extension(services))
}

#[derive(Clone, Copy)]
struct UploadLimits {
    max_file_bytes: u64,
    max_files: usize,
}

async fn user(who: &Who, services: &Services, create: bool) -> Result<UserId, ApiError> {
    who.account(services, create)
        .await?
        .map(|account| UserId(account.user_id))
        .ok_or(ApiError(AppError::NotFound))
}

async fn list(
    who: Who,
    Extension(services): Extension<Services>,
) -> Result<Json<Vec<DocumentView>>, ApiError> {
    match who.account(&services, false).await? {
        Some(account) => Ok(Json(
            services.documents.list(&UserId(account.user_id)).await?,
        )),
        None => Ok(Json(Vec::new())),
    }
}

async fn status(
    who: Who,
    Extension(services): Extension<Services>,
    Path(id): Path<String>,
) -> Result<Json<DocumentView>, ApiError> {
    let user = user(&who, &services, false).await?;
    Ok(Json(services.documents.get(&user, &id).await?))
}

async fn delete(
    who: Who,
    Extension(services): Extension<Services>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = user(&who, &services, false).await?;
    services.documents.delete(&user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/documents`, multipart with one or more `file` fields. Each file
/// is accepted or refused on its own; the answer lists what happened to each.
/// Status: 202 if any file was accepted, else the first refusal's status.
async fn upload(
    who: Who,
    Extension(services): Extension<Services>,
    Extension(limits): Extension<UploadLimits>,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    let user = user(&who, &services, true).await?;
    let mut outcomes = Vec::new();
    let mut first_error: Option<AppError> = None;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => {
                let error = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::TooLarge("The upload is too large.".into())
                } else {
                    AppError::BadRequest(format!("The upload could not be read: {e}"))
                };
                return Err(ApiError(error));
            }
        };
        let Some(file_name) = field.file_name().map(str::to_string) else {
            continue;
        };
        if outcomes.len() >= limits.max_files {
            return Err(ApiError(AppError::BadRequest(format!(
                "Too many files in one upload (the limit is {}).",
                limits.max_files
            ))));
        }
        // Read up to the limit; past it, refuse this file but keep reading the rest.
        let mut bytes = Vec::new();
        let mut too_large = false;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if too_large {
                        continue;
                    }
                    if (bytes.len() + chunk.len()) as u64 > limits.max_file_bytes {
                        too_large = true;
                        bytes = Vec::new();
                    } else {
                        bytes.extend_from_slice(&chunk);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(ApiError(AppError::BadRequest(format!(
                        "The upload of {file_name} broke off: {e}"
                    ))))
                }
            }
        }
        let result = if too_large {
            Err(AppError::TooLarge(format!(
                "{file_name} is too large (the limit is {} MiB).",
                limits.max_file_bytes / (1024 * 1024)
            )))
        } else {
            services.documents.upload(&user, &file_name, bytes).await
        };
        outcomes.push(match result {
            Ok((document, duplicate)) => UploadOutcome {
                file_name,
                document: Some(document),
                duplicate,
                error: None,
            },
            Err(error) => {
                let outcome = UploadOutcome {
                    file_name,
                    document: None,
                    duplicate: false,
                    error: Some(error.to_string()),
                };
                first_error.get_or_insert(error);
                outcome
            }
        });
    }
    if outcomes.is_empty() {
        return Err(ApiError(AppError::BadRequest(
            "No file in the upload (send multipart form data with a `file` field).".into(),
        )));
    }
    let status = match first_error {
        Some(error) if outcomes.iter().all(|o| o.document.is_none()) => {
            StatusCode::from_u16(error.status_code()).unwrap_or(StatusCode::BAD_REQUEST)
        }
        _ => StatusCode::ACCEPTED,
    };
    Ok((status, Json(outcomes)).into_response())
}

/// `/metrics` (Prometheus text format) and the admin's exports:
/// `/api/admin/export/{feedback,events}.{jsonl,csv}?since=&until=` (ms since
/// the epoch; default: everything).
pub fn operator_router<S: Clone + Send + Sync + 'static>(
    services: Services,
    store: crate::store::Store,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) -> Router<S> {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/api/admin/export/{name}", get(export))
        .layer(Extension(services))
        .layer(Extension(store))
        .layer(Extension(metrics))
}

async fn metrics_text(
    Extension(metrics): Extension<std::sync::Arc<crate::metrics::Metrics>>,
) -> Response {
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
    who: Who,
    Extension(services): Extension<Services>,
    Extension(store): Extension<crate::store::Store>,
    Path(name): Path<String>,
    Query(range): Query<TimeRange>,
) -> Result<Response, ApiError> {
    admin_only(who.account(&services, false).await?)?;
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
