//! The collections HTTP API, for scripts (API keys act as their account)
//! and the documents page:
//!
//! * `GET /api/collections`, `POST /api/collections` (`{"name", "everyone"}`)
//! * `GET|PATCH|DELETE /api/collections/{id}`
//! * `GET /api/collections/{id}/documents`
//! * `POST /api/collections/{id}/members` (`{"username", "access"}`),
//!   `DELETE /api/collections/{id}/members/{username}`
//! * `POST /api/collections/{id}/reindex` (`{"all": false}`), admins only.

use super::error::ApiError;
use app::error::AppError;
use app::identity::Identity;
use app::ports::{Caller, Services};
use app::wire::{CollectionList, CollectionView, DocumentView, MemberAccess};
use axum::extract::rejection::JsonRejection;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

pub fn collections_router<S: Clone + Send + Sync + 'static>(services: Services) -> Router<S> {
    Router::new()
        .route("/api/collections", get(list).post(create))
        .route(
            "/api/collections/{id}",
            get(show).patch(update).delete(remove),
        )
        .route("/api/collections/{id}/documents", get(documents))
        .route("/api/collections/{id}/members", post(add_member))
        .route(
            "/api/collections/{id}/members/{username}",
            delete(remove_member),
        )
        .route("/api/collections/{id}/reindex", post(reindex))
        .layer(Extension(services))
}

/// The caller; a request without an account or guest sees nothing.
async fn caller(who: &Identity, services: &Services) -> Result<Caller, ApiError> {
    who.caller(services.accounts.as_ref())
        .await?
        .ok_or(ApiError(AppError::NotFound))
}

/// A JSON body, or a 400 that says what is wrong with it.
fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    json.map(|Json(value)| value)
        .map_err(|e| ApiError(AppError::BadRequest(e.body_text())))
}

/// `"read"`, `"write"`, or `"none"` (no access for every signed-in account).
fn everyone(value: &str) -> Result<Option<MemberAccess>, ApiError> {
    match value {
        "none" => Ok(None),
        other => MemberAccess::parse(other).map(Some).ok_or_else(|| {
            ApiError(AppError::BadRequest(
                "`everyone` is \"read\", \"write\" or \"none\".".into(),
            ))
        }),
    }
}

fn access(value: &str) -> Result<MemberAccess, ApiError> {
    MemberAccess::parse(value).ok_or_else(|| {
        ApiError(AppError::BadRequest(
            "`access` is \"read\" or \"write\".".into(),
        ))
    })
}

async fn list(
    who: Identity,
    Extension(services): Extension<Services>,
) -> Result<Json<CollectionList>, ApiError> {
    match who.caller(services.accounts.as_ref()).await? {
        Some(caller) => Ok(Json(services.collections.list(&caller).await?)),
        None => Ok(Json(CollectionList {
            collections: Vec::new(),
            can_create: false,
        })),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCollection {
    name: String,
    #[serde(default)]
    everyone: Option<String>,
}

async fn create(
    who: Identity,
    Extension(services): Extension<Services>,
    json: Result<Json<NewCollection>, JsonRejection>,
) -> Result<(StatusCode, Json<CollectionView>), ApiError> {
    let caller = caller(&who, &services).await?;
    let new = body(json)?;
    let everyone = new.everyone.as_deref().map(everyone).transpose()?.flatten();
    let view = services
        .collections
        .create(&caller, &new.name, everyone)
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn show(
    who: Identity,
    Extension(services): Extension<Services>,
    Path(id): Path<String>,
) -> Result<Json<CollectionView>, ApiError> {
    let caller = caller(&who, &services).await?;
    Ok(Json(services.collections.get(&caller, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectionChange {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    everyone: Option<String>,
}

async fn update(
    who: Identity,
    Extension(services): Extension<Services>,
    Path(id): Path<String>,
    json: Result<Json<CollectionChange>, JsonRejection>,
) -> Result<Json<CollectionView>, ApiError> {
    let caller = caller(&who, &services).await?;
    let change = body(json)?;
    let everyone = change.everyone.as_deref().map(everyone).transpose()?;
    Ok(Json(
        services
            .collections
            .update(&caller, &id, change.name.as_deref(), everyone)
            .await?,
    ))
}

async fn remove(
    who: Identity,
    Extension(services): Extension<Services>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let caller = caller(&who, &services).await?;
    services.collections.delete(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn documents(
    who: Identity,
    Extension(services): Extension<Services>,
    Path(id): Path<String>,
) -> Result<Json<Vec<DocumentView>>, ApiError> {
    let caller = caller(&who, &services).await?;
    Ok(Json(services.documents.list(&caller, Some(&id)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMember {
    username: String,
    access: String,
}

async fn add_member(
    who: Identity,
    Extension(services): Extension<Services>,
    Path(id): Path<String>,
    json: Result<Json<NewMember>, JsonRejection>,
) -> Result<Json<CollectionView>, ApiError> {
    let caller = caller(&who, &services).await?;
    let member = body(json)?;
    let access = access(&member.access)?;
    Ok(Json(
        services
            .collections
            .set_member(&caller, &id, &member.username, access)
            .await?,
    ))
}

async fn remove_member(
    who: Identity,
    Extension(services): Extension<Services>,
    Path((id, username)): Path<(String, String)>,
) -> Result<Json<CollectionView>, ApiError> {
    let caller = caller(&who, &services).await?;
    Ok(Json(
        services
            .collections
            .remove_member(&caller, &id, &username)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reindex {
    /// Every document, not only those made by another embedder or chunker.
    #[serde(default)]
    all: bool,
}

#[derive(Serialize)]
struct Reindexing {
    queued: u32,
}

async fn reindex(
    who: Identity,
    Extension(services): Extension<Services>,
    Path(id): Path<String>,
    json: Result<Json<Reindex>, JsonRejection>,
) -> Result<(StatusCode, Json<Reindexing>), ApiError> {
    let caller = caller(&who, &services).await?;
    // No body at all: the stale documents only.
    let all = match json {
        Err(JsonRejection::MissingJsonContentType(_)) => false,
        json => body(json)?.all,
    };
    let queued = services.collections.reindex(&caller, &id, all).await?;
    Ok((StatusCode::ACCEPTED, Json(Reindexing { queued })))
}
