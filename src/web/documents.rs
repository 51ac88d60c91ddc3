//! The documents HTTP API (multipart upload, list, status, delete), for the
//! browser's upload progress and for curl. Chat and the rest are Leptos server
//! functions; uploads are not, because they are multipart and large.

use super::error::ApiError;
use app::error::AppError;
use app::identity::Identity;
use app::ports::{Caller, Services, UploadTarget};
use app::wire::{DocumentView, UploadOutcome};
use axum::extract::multipart::Field;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

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
        .route("/api/documents/{id}/versions", get(versions))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(Extension(UploadLimits {
            max_file_bytes,
            max_files,
            gate: UploadGate::new(),
        }))
        .layer(Extension(services))
}

#[derive(Clone)]
struct UploadLimits {
    max_file_bytes: u64,
    max_files: usize,
    gate: UploadGate,
}

/// Files are read into memory before they are stored, so how many are read
/// at once is bounded: at most [`UPLOADS_PER_ADDRESS`] upload requests per
/// address at a time (more are refused at once), at most
/// [`FILES_IN_MEMORY`] files being read in all (more wait their turn), and
/// a file that comes slower than [`MIN_UPLOAD_BYTES_PER_SEC`] is cut off.
/// (Per replica: replicas don't share these counts.)
#[derive(Clone)]
struct UploadGate {
    in_memory: Arc<tokio::sync::Semaphore>,
    per_address: Arc<std::sync::Mutex<HashMap<Option<IpAddr>, usize>>>,
}

const UPLOADS_PER_ADDRESS: usize = 2;
const FILES_IN_MEMORY: usize = 8;
/// Slower than this (after the grace period) and an upload is cut off.
const MIN_UPLOAD_BYTES_PER_SEC: u64 = 32 * 1024;
const SLOW_UPLOAD_GRACE: Duration = Duration::from_secs(30);

/// One address's upload in progress; its slot frees when dropped.
struct UploadSlot {
    per_address: Arc<std::sync::Mutex<HashMap<Option<IpAddr>, usize>>>,
    address: Option<IpAddr>,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.per_address.lock() {
            if let Some(n) = counts.get_mut(&self.address) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&self.address);
                }
            }
        }
    }
}

impl UploadGate {
    fn new() -> Self {
        Self {
            in_memory: Arc::new(tokio::sync::Semaphore::new(FILES_IN_MEMORY)),
            per_address: Arc::default(),
        }
    }

    fn enter(&self, address: Option<IpAddr>) -> Result<UploadSlot, AppError> {
        let mut counts = self.per_address.lock().map_err(|_| AppError::Internal)?;
        let count = counts.entry(address).or_default();
        if *count >= UPLOADS_PER_ADDRESS {
            return Err(AppError::RateLimited {
                message: format!(
                    "At most {UPLOADS_PER_ADDRESS} uploads at a time from your network; wait for one to finish."
                ),
                retry_after_ms: 2_000,
            });
        }
        *count += 1;
        Ok(UploadSlot {
            per_address: self.per_address.clone(),
            address,
        })
    }
}

async fn caller(who: &Identity, services: &Services) -> Result<Caller, ApiError> {
    who.caller(services.accounts.as_ref())
        .await?
        .ok_or(ApiError(AppError::NotFound))
}

/// Every current document the caller can read (`?collection=` for one
/// collection's).
async fn list(
    who: Identity,
    Extension(services): Extension<Services>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<DocumentView>>, ApiError> {
    match who.caller(services.accounts.as_ref()).await? {
        Some(caller) => Ok(Json(
            services
                .documents
                .list(&caller, query.collection.as_deref())
                .await?,
        )),
        None => Ok(Json(Vec::new())),
    }
}

#[derive(serde::Deserialize)]
struct ListQuery {
    collection: Option<String>,
}

async fn status(
    who: Identity,
    Extension(services): Extension<Services>,
    Path(id): Path<String>,
) -> Result<Json<DocumentView>, ApiError> {
    let caller = caller(&who, &services).await?;
    Ok(Json(services.documents.get(&caller, &id).await?))
}

async fn versions(
    who: Identity,
    Extension(services): Extension<Services>,
    Path(id): Path<String>,
) -> Result<Json<Vec<DocumentView>>, ApiError> {
    let caller = caller(&who, &services).await?;
    Ok(Json(services.documents.versions(&caller, &id).await?))
}

async fn delete(
    who: Identity,
    Extension(services): Extension<Services>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let caller = caller(&who, &services).await?;
    services.documents.delete(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/documents`, multipart with one or more `file` fields. Each file
/// is accepted or refused on its own; the answer lists what happened to each.
/// Status: 202 if any file was accepted, else the first refusal's status.
/// Text fields before the files choose where they go: `collection` (an id
/// the caller may write to; default their own) and `replace` (a document
/// the file is a new version of).
async fn upload(
    who: Identity,
    Extension(services): Extension<Services>,
    Extension(limits): Extension<UploadLimits>,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    let _slot = limits.gate.enter(who.ip)?;
    // A browser without an identity gets a guest only if its address may
    // still upload; each file is then checked against the quotas on its own.
    let (caller, ()) = who
        .storing_caller(&services, async |caller| {
            services.limits.admit_upload(caller, 0).await
        })
        .await?;
    let mut outcomes = Vec::new();
    let mut first_error: Option<AppError> = None;
    let mut target = UploadTarget::default();
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
            read_target_field(&mut field, &mut target).await?;
            continue;
        };
        if outcomes.len() >= limits.max_files {
            return Err(ApiError(AppError::BadRequest(format!(
                "Too many files in one upload (the limit is {}).",
                limits.max_files
            ))));
        }
        // Read up to the limit; past it, refuse this file but keep reading the rest.
        let _in_memory = limits
            .gate
            .in_memory
            .acquire()
            .await
            .map_err(|_| ApiError(AppError::Internal))?;
        let bytes = read_file(&mut field, &file_name, limits.max_file_bytes).await?;
        let result = match bytes {
            Err(size) => Err(AppError::file_too_large(
                &file_name,
                size,
                limits.max_file_bytes,
            )),
            Ok(bytes) => {
                services
                    .documents
                    .upload(&caller, &target, &file_name, bytes)
                    .await
            }
        };
        // `replace` names one document: it applies to the next file only.
        target.replaces = None;
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

/// Reads a text field of an upload: `collection` or `replace` (short ids;
/// anything else is refused rather than ignored).
async fn read_target_field(
    field: &mut Field<'_>,
    target: &mut UploadTarget,
) -> Result<(), ApiError> {
    let name = field.name().unwrap_or_default().to_owned();
    let mut value = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| {
        ApiError(AppError::BadRequest(format!(
            "The upload could not be read: {e}"
        )))
    })? {
        value.extend_from_slice(&chunk);
        if value.len() > 200 {
            return Err(ApiError(AppError::BadRequest(format!(
                "The `{name}` field is too long."
            ))));
        }
    }
    let value = String::from_utf8(value)
        .map_err(|_| {
            ApiError(AppError::BadRequest(format!(
                "The `{name}` field is not text."
            )))
        })?
        .trim()
        .to_owned();
    let value = (!value.is_empty()).then_some(value);
    match name.as_str() {
        "collection" => target.collection = value,
        "replace" => target.replaces = value,
        _ => {
            return Err(ApiError(AppError::BadRequest(format!(
                "Unknown field `{name}` (send `collection`, `replace`, then `file` fields)."
            ))))
        }
    }
    Ok(())
}

/// Reads one file of an upload: `Err(size)` if it is over `max_file_bytes`
/// (the rest of it is read and dropped, so the next file can be read). A file
/// must keep coming at a minimum pace, so a trickling client can't hold one
/// of the few slots for reading files.
async fn read_file(
    field: &mut Field<'_>,
    file_name: &str,
    max_file_bytes: u64,
) -> Result<Result<Vec<u8>, u64>, ApiError> {
    let mut bytes = Vec::new();
    let mut too_large = false;
    let mut received = 0u64;
    let started = tokio::time::Instant::now();
    loop {
        let deadline =
            started + SLOW_UPLOAD_GRACE + Duration::from_secs(received / MIN_UPLOAD_BYTES_PER_SEC);
        let Ok(chunk) = tokio::time::timeout_at(deadline, field.chunk()).await else {
            return Err(ApiError(AppError::BadRequest(format!(
                "The upload of {file_name} was too slow (less than {} KiB/s); try again on a better connection.",
                MIN_UPLOAD_BYTES_PER_SEC / 1024
            ))));
        };
        match chunk {
            Ok(Some(chunk)) => {
                received += chunk.len() as u64;
                if too_large {
                    continue;
                }
                if (bytes.len() + chunk.len()) as u64 > max_file_bytes {
                    too_large = true;
                    bytes = Vec::new();
                } else {
                    bytes.extend_from_slice(&chunk);
                }
            }
            Ok(None) => return Ok(if too_large { Err(received) } else { Ok(bytes) }),
            Err(e) => {
                return Err(ApiError(AppError::BadRequest(format!(
                    "The upload of {file_name} broke off: {e}"
                ))))
            }
        }
    }
}
