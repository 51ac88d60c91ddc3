//! The app's own ingestion for an evaluation corpus: a throwaway data
//! directory, the configured embedder and index, and the document service
//! that parses, chunks, embeds and indexes every upload.

use anyhow::bail;
use app::ports::{Caller, DocumentService, UploadTarget, UserId};
use app::wire::{DocumentStatus, UserRole};
use ragchat::chat::retrieve::Retriever;
use ragchat::config::{RetrievalSettings, Settings};
use ragchat::documents::{DocumentServiceImpl, StageTimes};
use ragchat::embed::Embedder;
use ragchat::index::{Hit, VectorIndex};
use ragchat::ops::limits::{Allowances, LimitSettings, LocalRateLimiter};
use ragchat::ops::metrics::Metrics;
use ragchat::startup::{build_embedder, build_index};
use ragchat::store::Store;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Readers' documents, ingested by the app.
pub struct Corpus {
    pub embedder: Arc<dyn Embedder>,
    pub index: Arc<dyn VectorIndex>,
    /// The reader who uploaded each group of documents.
    pub reader_of: HashMap<String, UserId>,
    /// The app's document id → the dataset's document key.
    pub key_of: HashMap<String, String>,
    pub chunks: u32,
    pub ingest_secs: f64,
    /// Where the ingestion time went.
    pub stages: StageTimes,
    data: PathBuf,
}

impl Corpus {
    /// Uploads `documents` (group, file name, text), each group as a guest
    /// of its own, and waits until every one is indexed.
    pub async fn ingest(
        settings: Settings,
        documents: &[(String, String, String)],
    ) -> anyhow::Result<Self> {
        let data = std::env::temp_dir().join(format!(
            "ragchat-eval-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        let _ = std::fs::remove_dir_all(&data);
        let settings = Settings {
            data_dir: data.clone(),
            ..settings
        };
        let store = Store::open(&settings.database, &settings.data_dir).await?;
        let (embedder, tokens) = build_embedder(&settings).await?;
        let index = build_index(&settings, embedder.dimension()).await?;
        // One reader uploads the whole corpus: no quotas.
        let mut unlimited = LimitSettings::default();
        unlimited.lift_all();
        let limits = Arc::new(Allowances::new(
            Arc::new(LocalRateLimiter::new()),
            store.clone(),
            unlimited,
            Arc::new(Metrics::new()?),
        ));
        let service = DocumentServiceImpl::start(
            store.clone(),
            index.clone(),
            embedder.clone(),
            tokens,
            limits,
            settings.documents.clone(),
            &settings.data_dir,
        )
        .await?;
        let started = Instant::now();
        let mut key_of = HashMap::new();
        let mut reader_of: HashMap<String, UserId> = HashMap::new();
        for (group, name, text) in documents {
            let user = match reader_of.get(group) {
                Some(user) => user.clone(),
                None => {
                    let user = UserId(store.create_guest(None).await?);
                    reader_of.insert(group.clone(), user.clone());
                    user
                }
            };
            let caller = Caller {
                user: Some(user),
                role: UserRole::Guest,
                ip: None,
                via_api_key: false,
            };
            let (doc, _) = service
                .upload(
                    &caller,
                    &UploadTarget::default(),
                    name,
                    text.clone().into_bytes(),
                )
                .await
                .map_err(|e| anyhow::anyhow!("uploading {name}: {e}"))?;
            key_of.insert(doc.id, name.clone());
        }
        let mut chunks = 0;
        for user in reader_of.values() {
            chunks += indexed(&service, user).await?;
        }
        let ingest_secs = started.elapsed().as_secs_f64();
        Ok(Self {
            stages: service.stage_times(),
            ingest_secs,
            embedder,
            index,
            reader_of,
            key_of,
            chunks,
            data,
        })
    }

    /// Hits as the metrics read them: each passage's text, and whether it
    /// comes from the dataset's document `key`.
    pub fn passages<'a>(&self, hits: &'a [Hit], key: &str) -> Vec<(&'a str, bool)> {
        hits.iter()
            .map(|h| {
                let own = self.key_of.get(&h.payload.document_id).map(String::as_str) == Some(key);
                (h.payload.text.as_str(), own)
            })
            .collect()
    }

    /// A retriever over this corpus with `settings`.
    pub fn retriever(&self, settings: RetrievalSettings) -> Retriever {
        Retriever::new(self.embedder.clone(), self.index.clone(), settings)
    }
}

/// Waits until every document of `user` is indexed: their chunk count.
async fn indexed(service: &DocumentServiceImpl, user: &UserId) -> anyhow::Result<u32> {
    loop {
        let caller = Caller {
            user: Some(user.clone()),
            role: UserRole::Guest,
            ip: None,
            via_api_key: false,
        };
        let listed = service
            .list(&caller, None)
            .await
            .map_err(|e| anyhow::anyhow!("listing: {e}"))?;
        if let Some(failed) = listed.iter().find(|d| d.status == DocumentStatus::Failed) {
            bail!("{} failed: {:?}", failed.name, failed.error);
        }
        if listed.iter().all(|d| d.status == DocumentStatus::Indexed) {
            return Ok(listed.iter().filter_map(|d| d.chunks).sum::<u32>());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Drop for Corpus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
