//! Qdrant server backend over gRPC (`qdrant-client`).
//!
//! Mirrors [`super::edge`] exactly: same vector names and parameters, same
//! payload indexes, same candidate searches, per-owner IDF corpus, fusion and
//! tie-breaks, so the two backends rank identically.
//! Writes use `wait: true`, so they are applied (and in the server's WAL) when
//! the call returns.

use std::collections::HashMap;

use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::{
    AcornSearchParamsBuilder, CollectionInfo, Condition, CountPointsBuilder,
    CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance,
    FieldType, Filter, GetPointsBuilder, IdfParamsBuilder, KeywordIndexParamsBuilder, Modifier,
    NamedVectors, PointId, PointStruct, Query, QueryBatchPointsBuilder, QueryPoints,
    QueryPointsBuilder, ScoredPoint, SearchParamsBuilder, SetPayloadPointsBuilder,
    SparseVectorParamsBuilder, SparseVectorsConfigBuilder, UpsertPointsBuilder, Vector,
    VectorInput, VectorParamsBuilder, VectorsConfigBuilder,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use secrecy::{ExposeSecret, SecretString};

use super::{
    add_dense_scores, attach_payloads, candidate_pool, fetch_limit, fuse, rank_candidates,
    single_list, validate_key, validate_points, validate_request, ChunkPayload, ChunkPoint, Fusion,
    Hit, IndexError, Scope, SearchMode, SearchRequest, SparseVector, VectorIndex, COLLECTION_FIELD,
    DENSE_VECTOR, DOCUMENT_ID_FIELD, EMBEDDER_FIELD, INDEXED_FIELDS, SPARSE_VECTOR,
};

const BACKEND: &str = "qdrant";
/// Points per upsert request: keeps gRPC messages well below the server's
/// default 32 MB limit even for long chunks.
const UPSERT_BATCH: usize = 256;

/// Qdrant server implementation of [`VectorIndex`].
pub struct QdrantServerIndex {
    client: Qdrant,
    collection: String,
    dim: usize,
}

impl std::fmt::Debug for QdrantServerIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client holds the API key; keep it out of logs.
        f.debug_struct("QdrantServerIndex")
            .field("collection", &self.collection)
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

impl QdrantServerIndex {
    /// Connects to the gRPC endpoint at `url` (e.g. `http://127.0.0.1:6334`),
    /// creates `collection` with the expected vectors and payload indexes if it
    /// does not exist, and verifies it if it does.
    pub async fn connect(
        url: &str,
        api_key: Option<SecretString>,
        collection: &str,
        dim: usize,
    ) -> Result<Self, IndexError> {
        if dim == 0 {
            return Err(IndexError::InvalidInput("dimension must be > 0".into()));
        }
        if collection.is_empty() {
            return Err(IndexError::InvalidInput(
                "collection name must not be empty".into(),
            ));
        }
        // The builder's own compatibility check runs a blocking health check
        // on a private runtime and prints to stdout; do it async ourselves.
        let client = Qdrant::from_url(url)
            .api_key(api_key.map(|key| key.expose_secret().to_owned()))
            .skip_compatibility_check()
            .build()
            .map_err(server)?;
        let health = client.health_check().await.map_err(server)?;
        tracing::info!(url, version = %health.version, collection, "connected to qdrant server");

        let index = Self {
            client,
            collection: collection.to_owned(),
            dim,
        };
        index.ensure_collection().await?;
        Ok(index)
    }

    /// Server version reported by the health check, e.g. "1.19.0".
    pub async fn server_version(&self) -> Result<String, IndexError> {
        Ok(self.client.health_check().await.map_err(server)?.version)
    }

    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// Deletes the collection and everything in it. For tests and admin tooling.
    pub async fn drop_collection(&self) -> Result<(), IndexError> {
        self.client
            .delete_collection(&self.collection)
            .await
            .map_err(server)?;
        Ok(())
    }

    async fn ensure_collection(&self) -> Result<(), IndexError> {
        if !self
            .client
            .collection_exists(&self.collection)
            .await
            .map_err(server)?
        {
            let mut vectors = VectorsConfigBuilder::default();
            vectors.add_named_vector_params(
                DENSE_VECTOR,
                VectorParamsBuilder::new(self.dim as u64, Distance::Cosine),
            );
            let mut sparse = SparseVectorsConfigBuilder::default();
            sparse.add_named_vector_params(
                SPARSE_VECTOR,
                SparseVectorParamsBuilder::default().modifier(Modifier::Idf),
            );
            let created = self
                .client
                .create_collection(
                    CreateCollectionBuilder::new(&self.collection)
                        .vectors_config(vectors)
                        .sparse_vectors_config(sparse),
                )
                .await;
            if let Err(err) = created {
                // Another instance may have created it in the meantime; the
                // verification below decides whether that is acceptable.
                if !self
                    .client
                    .collection_exists(&self.collection)
                    .await
                    .map_err(server)?
                {
                    return Err(server(err));
                }
            }
        }

        let info = self.collection_info().await?;
        self.check_vectors(&info)?;
        for (field, is_tenant) in INDEXED_FIELDS {
            if info.payload_schema.contains_key(field) {
                continue;
            }
            self.client
                .create_field_index(
                    CreateFieldIndexCollectionBuilder::new(
                        &self.collection,
                        field,
                        FieldType::Keyword,
                    )
                    .field_index_params(KeywordIndexParamsBuilder::default().is_tenant(is_tenant))
                    .wait(true),
                )
                .await
                .map_err(server)?;
        }
        Ok(())
    }

    async fn collection_info(&self) -> Result<CollectionInfo, IndexError> {
        self.client
            .collection_info(&self.collection)
            .await
            .map_err(server)?
            .result
            .ok_or_else(|| IndexError::Backend {
                backend: BACKEND,
                message: "collection info response is empty".into(),
            })
    }

    /// Hybrid search: both candidate searches in one batch request (ids and
    /// scores only), fusion here, then payloads for the winners alone.
    async fn hybrid(
        &self,
        queries: Vec<QueryPoints>,
        pool: usize,
        limit: usize,
        fusion: Fusion,
    ) -> Result<Vec<Hit>, IndexError> {
        let response = self
            .client
            .query_batch(QueryBatchPointsBuilder::new(&self.collection, queries))
            .await
            .map_err(server)?;
        let lists = response
            .result
            .into_iter()
            .map(|batch| {
                let candidates = batch
                    .result
                    .into_iter()
                    .map(|point| Ok((point_uuid(point.id)?, point.score)))
                    .collect::<Result<Vec<_>, IndexError>>()?;
                Ok(rank_candidates(candidates, pool))
            })
            .collect::<Result<Vec<_>, IndexError>>()?;
        let dense = lists.first().map(Vec::as_slice).unwrap_or_default();
        let fused = fuse(dense, lists.get(1).map(Vec::as_slice), fusion, limit);
        if fused.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<PointId> = fused.iter().map(|(id, _)| id.to_string().into()).collect();
        let payloads = self
            .client
            .get_points(GetPointsBuilder::new(&self.collection, ids).with_payload(true))
            .await
            .map_err(server)?
            .result
            .into_iter()
            .map(|point| {
                let id = point_uuid(point.id)?;
                Ok((id, chunk_payload(id, point.payload)?))
            })
            .collect::<Result<HashMap<_, _>, IndexError>>()?;
        let mut hits = attach_payloads(fused, payloads);
        add_dense_scores(&mut hits, dense);
        Ok(hits)
    }

    fn check_vectors(&self, info: &CollectionInfo) -> Result<(), IndexError> {
        let params = info.config.as_ref().and_then(|c| c.params.as_ref());
        let dense = params
            .and_then(|p| p.vectors_config.as_ref())
            .and_then(|v| v.config.as_ref())
            .and_then(|config| match config {
                VectorsConfigKind::ParamsMap(map) => map.map.get(DENSE_VECTOR),
                VectorsConfigKind::Params(_) => None,
            });
        match dense {
            Some(v) if v.size == self.dim as u64 && v.distance == Distance::Cosine as i32 => {}
            Some(v) => {
                return Err(IndexError::Incompatible(format!(
                    "collection {:?} has {}-d `{DENSE_VECTOR}` vectors with distance {}, \
                     expected {}-d Cosine",
                    self.collection,
                    v.size,
                    Distance::try_from(v.distance)
                        .map(|d| d.as_str_name())
                        .unwrap_or("unknown"),
                    self.dim
                )))
            }
            None => {
                return Err(IndexError::Incompatible(format!(
                    "collection {:?} has no named `{DENSE_VECTOR}` vector",
                    self.collection
                )))
            }
        }
        let sparse = params
            .and_then(|p| p.sparse_vectors_config.as_ref())
            .and_then(|s| s.map.get(SPARSE_VECTOR));
        match sparse {
            Some(s) if s.modifier == Some(Modifier::Idf as i32) => Ok(()),
            _ => Err(IndexError::Incompatible(format!(
                "collection {:?} has no `{SPARSE_VECTOR}` sparse vector with the IDF modifier",
                self.collection
            ))),
        }
    }
}

#[async_trait::async_trait]
impl VectorIndex for QdrantServerIndex {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn upsert(&self, points: Vec<ChunkPoint>) -> Result<(), IndexError> {
        validate_points(&points, self.dim)?;
        let mut structs = points
            .into_iter()
            .map(to_point_struct)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .peekable();
        while structs.peek().is_some() {
            let batch: Vec<PointStruct> = structs.by_ref().take(UPSERT_BATCH).collect();
            self.client
                .upsert_points(UpsertPointsBuilder::new(&self.collection, batch).wait(true))
                .await
                .map_err(server)?;
        }
        Ok(())
    }

    async fn delete_document(&self, document_id: &str) -> Result<(), IndexError> {
        validate_key("document_id", document_id)?;
        self.client
            .delete_points(
                DeletePointsBuilder::new(&self.collection)
                    .points(Filter::must([keyword(DOCUMENT_ID_FIELD, document_id)]))
                    .wait(true),
            )
            .await
            .map_err(server)?;
        Ok(())
    }

    async fn label_document(
        &self,
        document_id: &str,
        collection: &str,
        embedder: &str,
    ) -> Result<(), IndexError> {
        validate_key("document_id", document_id)?;
        validate_key("collection", collection)?;
        validate_key("embedder", embedder)?;
        let payload = Payload::try_from(serde_json::json!({
            COLLECTION_FIELD: collection,
            EMBEDDER_FIELD: embedder,
        }))
        .map_err(|err| IndexError::InvalidInput(err.to_string()))?;
        self.client
            .set_payload(
                SetPayloadPointsBuilder::new(&self.collection, payload)
                    .points_selector(Filter::must([keyword(DOCUMENT_ID_FIELD, document_id)]))
                    .wait(true),
            )
            .await
            .map_err(server)?;
        Ok(())
    }

    async fn count(&self, collection: &str, document_id: Option<&str>) -> Result<u64, IndexError> {
        validate_key("collection", collection)?;
        let mut must = vec![keyword(COLLECTION_FIELD, collection)];
        if let Some(document_id) = document_id {
            must.push(keyword(DOCUMENT_ID_FIELD, document_id));
        }
        let response = self
            .client
            .count(
                CountPointsBuilder::new(&self.collection)
                    .filter(Filter::must(must))
                    .exact(true),
            )
            .await
            .map_err(server)?;
        Ok(response.result.map(|r| r.count).unwrap_or(0))
    }

    async fn search(&self, request: SearchRequest) -> Result<Vec<Hit>, IndexError> {
        validate_request(&request, self.dim)?;
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        let filter = scope_filter(&request.scope);
        let fetch = fetch_limit(request.limit) as u64;
        let sparse_empty = request.sparse.is_empty();
        // IDF over the chunks in scope only, as in the Edge backend.
        let idf = SearchParamsBuilder::default().idf(
            IdfParamsBuilder::new().corpus(Filter::must([collections_condition(&request.scope)])),
        );
        let acorn = || SearchParamsBuilder::default().acorn(AcornSearchParamsBuilder::new(true));
        let dense = Query::new_nearest(VectorInput::new_dense(request.dense));
        let SparseVector { indices, values } = request.sparse;
        let sparse = Query::new_nearest(VectorInput::new_sparse(indices, values));

        let query = QueryPointsBuilder::new(&self.collection)
            .limit(fetch)
            .filter(filter.clone())
            .with_payload(true);
        let query = match request.mode {
            SearchMode::Dense => query.query(dense).using(DENSE_VECTOR).params(acorn()),
            SearchMode::Sparse if sparse_empty => return Ok(Vec::new()),
            SearchMode::Sparse => query.query(sparse).using(SPARSE_VECTOR).params(idf),
            SearchMode::Hybrid => {
                let pool = candidate_pool(request.limit);
                let candidates = || {
                    QueryPointsBuilder::new(&self.collection)
                        .limit(fetch_limit(pool) as u64)
                        .filter(filter.clone())
                };
                let mut queries = vec![candidates()
                    .query(dense)
                    .using(DENSE_VECTOR)
                    .params(acorn())
                    .build()];
                if !sparse_empty {
                    queries.push(
                        candidates()
                            .query(sparse)
                            .using(SPARSE_VECTOR)
                            .params(idf)
                            .build(),
                    );
                }
                return self
                    .hybrid(queries, pool, request.limit, request.fusion)
                    .await;
            }
        };
        let response = self.client.query(query).await.map_err(server)?;
        let hits = response
            .result
            .into_iter()
            .map(to_hit)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(single_list(hits, request.mode, request.limit))
    }
}

fn to_point_struct(point: ChunkPoint) -> Result<PointStruct, IndexError> {
    let json = serde_json::to_value(&point.payload)
        .map_err(|err| IndexError::InvalidInput(err.to_string()))?;
    let payload =
        Payload::try_from(json).map_err(|err| IndexError::InvalidInput(err.to_string()))?;
    let vectors = NamedVectors::default()
        .add_vector(DENSE_VECTOR, Vector::new_dense(point.dense))
        .add_vector(
            SPARSE_VECTOR,
            Vector::new_sparse(point.sparse.indices, point.sparse.values),
        );
    Ok(PointStruct::new(point.id.to_string(), vectors, payload))
}

fn to_hit(point: ScoredPoint) -> Result<Hit, IndexError> {
    let id = point_uuid(point.id)?;
    Ok(Hit {
        id,
        score: point.score,
        dense_score: None,
        payload: chunk_payload(id, point.payload)?,
    })
}

fn point_uuid(id: Option<PointId>) -> Result<uuid::Uuid, IndexError> {
    match id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Uuid(text)) => {
            uuid::Uuid::parse_str(&text).map_err(|err| IndexError::Payload {
                id: text.clone(),
                message: format!("point id is not a UUID: {err}"),
            })
        }
        Some(PointIdOptions::Num(n)) => Err(IndexError::Payload {
            id: n.to_string(),
            message: "numeric point id; this index only writes UUIDs".into(),
        }),
        None => Err(IndexError::Payload {
            id: String::new(),
            message: "point without id".into(),
        }),
    }
}

fn chunk_payload(
    id: uuid::Uuid,
    payload: HashMap<String, qdrant_client::qdrant::Value>,
) -> Result<ChunkPayload, IndexError> {
    let json = serde_json::Value::from(Payload::from(payload));
    serde_json::from_value(json).map_err(|err| IndexError::Payload {
        id: id.to_string(),
        message: err.to_string(),
    })
}

/// The engine-side access rule, as in the Edge backend.
fn scope_filter(scope: &Scope) -> Filter {
    let mut filter = Filter::must([
        collections_condition(scope),
        keyword(EMBEDDER_FIELD, &scope.embedder),
    ]);
    if !scope.hidden_documents.is_empty() {
        filter.must_not = vec![Condition::matches(
            DOCUMENT_ID_FIELD,
            scope.hidden_documents.clone(),
        )];
    }
    filter
}

/// A chunk of one of the scope's collections (also the IDF corpus, as in
/// the Edge backend).
fn collections_condition(scope: &Scope) -> Condition {
    match scope.collections.as_slice() {
        [one] => keyword(COLLECTION_FIELD, one),
        many => Condition::matches(COLLECTION_FIELD, many.to_vec()),
    }
}

/// An exact keyword match. (`Condition::matches` with a `String` would turn
/// a value with whitespace into a full-text match.)
fn keyword(field: &str, value: &str) -> Condition {
    Condition::matches(
        field,
        qdrant_client::qdrant::r#match::MatchValue::Keyword(value.to_owned()),
    )
}

fn server(err: QdrantError) -> IndexError {
    IndexError::Backend {
        backend: BACKEND,
        message: err.to_string(),
    }
}
