//! Builds the app: storage, model provider, services, router and layers.

use crate::chat::cache::ResponseCache;
use crate::chat::history::HistoryServiceImpl;
use crate::chat::retrieve::Retriever;
use crate::chat::rewrite::QueryRewriter;
use crate::chat::{ChatServiceImpl, Grounding, Sampling, TurnBookkeeping};
use crate::config::{
    EmbeddingProvider, FirstAdminPolicy, LlmSettings, ModelEndpoint, Provider, Settings,
};
use crate::documents::DocumentServiceImpl;
use crate::embed::Embedder;
use crate::embed::TokenSpans;
use crate::index::VectorIndex;
use crate::llm::local::LocalModel;
use crate::llm::openai::OpenAiModel;
use crate::llm::resilient::{ResilientModel, RetryPolicy};
use crate::llm::roster::ModelRoster;
use crate::llm::ChatModel;
use crate::ops::accounts::{AccountServiceImpl, FirstAdmin};
use crate::ops::dashboard::DashboardServiceImpl;
use crate::ops::events::EventRecorder;
use crate::ops::feedback::FeedbackServiceImpl;
use crate::ops::limits::redis::RedisRateLimiter;
use crate::ops::limits::{Allowances, LocalRateLimiter, RateLimiter};
use crate::ops::metrics::Metrics;
use crate::ops::quality::QualityReporter;
use crate::store::{SessionBackend, Store};
use anyhow::Context;
use app::ports::{Services, UsageLimits};
use axum::Router;
use leptos::prelude::*;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_sessions::cookie::SameSite;
use tower_sessions::ExpiredDeletion;
use tower_sessions::{Expiry, SessionManagerLayer};

pub struct Application {
    listener: TcpListener,
    router: Router,
    address: SocketAddr,
    index: Arc<dyn VectorIndex>,
    embedder: Arc<dyn Embedder>,
    store: Store,
}

/// What answers are grounded with: the retriever, the follow-up rewriter
/// (on the configured model, else the answering one) and the budgets.
fn build_grounding(
    settings: &Settings,
    store: &Store,
    retriever: Retriever,
    tokens: Arc<dyn TokenSpans>,
    models: &ModelRoster,
) -> anyhow::Result<Grounding> {
    let retrieval = &settings.retrieval;
    for (name, weight) in [
        ("DENSE_WEIGHT", retrieval.dense_weight),
        ("SPARSE_WEIGHT", retrieval.sparse_weight),
    ] {
        anyhow::ensure!(
            weight.is_finite() && weight >= 0.0,
            "APP__RETRIEVAL__{name} must be a number ≥ 0, not {weight}"
        );
    }
    let rewrite = &settings.rewrite;
    Ok(Grounding {
        retriever,
        access: crate::documents::access::Access::new(store.clone()),
        rewriter: QueryRewriter::new(
            rewrite
                .model
                .as_deref()
                .and_then(|name| models.get(name).cloned()),
            Duration::from_millis(rewrite.timeout_ms),
            rewrite.history_chars,
            rewrite.enabled,
        ),
        tokens,
        context_tokens: settings.retrieval.context_tokens,
        max_upload_bytes: settings.documents.max_file_bytes,
    })
}

/// Picks the configured model provider.
pub async fn build_model(settings: &Settings) -> anyhow::Result<Arc<dyn ChatModel>> {
    let llm = &settings.llm;
    Ok(match settings.provider() {
        Provider::Openai => {
            let base_url = llm
                .base_url
                .as_deref()
                .context("APP__LLM__BASE_URL is required for the openai provider")?;
            let model = llm.model.clone().unwrap_or_else(|| "default".into());
            tracing::info!(base_url, model, "using an OpenAI-compatible model server");
            Arc::new(OpenAiModel::new(
                base_url,
                model,
                llm.api_key.clone(),
                Duration::from_secs(llm.connect_timeout_secs),
                Duration::from_secs(llm.stall_timeout_secs.max(1)),
            )?)
        }
        Provider::Local | Provider::Auto => {
            let local = llm.local.clone();
            tracing::info!(path = %local.gguf_path().display(), "loading the local model");
            tokio::task::spawn_blocking(move || LocalModel::shared(&local)).await??
        }
    })
}

/// One configured model besides the primary: an OpenAI-compatible endpoint,
/// or an embedded GGUF (loaded once per process, however often it is named).
async fn build_endpoint(
    llm: &LlmSettings,
    endpoint: &ModelEndpoint,
) -> anyhow::Result<Arc<dyn ChatModel>> {
    Ok(match &endpoint.base_url {
        Some(base_url) => Arc::new(OpenAiModel::new(
            base_url,
            endpoint.model.clone().unwrap_or_else(|| "default".into()),
            endpoint.api_key.clone(),
            Duration::from_secs(llm.connect_timeout_secs),
            Duration::from_secs(llm.stall_timeout_secs.max(1)),
        )?),
        None => {
            let mut local = llm.local.clone();
            if let Some(kind) = endpoint.local.filter(|kind| *kind != local.model) {
                local.model = kind;
                local.model_path = None;
            }
            tokio::task::spawn_blocking(move || LocalModel::shared(&local)).await??
        }
    })
}

/// The models turns are answered by: the primary behind retries with the
/// configured fallbacks after it, and each named model behind retries.
/// Every model name the config uses elsewhere must be defined.
pub async fn build_roster(
    settings: &Settings,
    primary: Arc<dyn ChatModel>,
) -> anyhow::Result<ModelRoster> {
    let llm = &settings.llm;
    let policy = RetryPolicy {
        max_retries: llm.max_retries,
        base_delay: Duration::from_millis(llm.retry_base_ms),
        max_delay: Duration::from_millis(llm.retry_max_ms.max(llm.retry_base_ms)),
        first_token_timeout: Duration::from_secs(llm.first_token_timeout_secs.max(1)),
    };
    let mut chain = vec![primary];
    for fallback in &llm.fallbacks {
        let model = build_endpoint(llm, fallback).await?;
        tracing::info!(model = model.name(), "fallback model");
        chain.push(model);
    }
    let mut named: HashMap<String, Arc<dyn ChatModel>> = HashMap::new();
    for (name, endpoint) in &llm.models {
        let model = build_endpoint(llm, endpoint)
            .await
            .with_context(|| format!("loading the model [llm.models.{name}]"))?;
        tracing::info!(name, model = model.name(), "named model");
        named.insert(
            name.clone(),
            Arc::new(ResilientModel::new(vec![model], policy)?),
        );
    }
    let roster = ModelRoster::new(Arc::new(ResilientModel::new(chain, policy)?), named);
    if let Some(name) = &settings.limits.over_budget_model {
        roster.require(name, "limits.over_budget_model")?;
    }
    if let Some(name) = &settings.rewrite.model {
        roster.require(name, "rewrite.model")?;
    }
    for experiment in &settings.experiments {
        for variant in &experiment.variants {
            if let Some(name) = &variant.model {
                roster.require(
                    name,
                    &format!(
                        "variant {:?} of experiment {:?}",
                        variant.name, experiment.name
                    ),
                )?;
            }
        }
    }
    Ok(roster)
}

/// The embedding backend, and the tokenizer chunks are sized with.
pub async fn build_embedder(
    settings: &Settings,
) -> anyhow::Result<(Arc<dyn Embedder>, Arc<dyn TokenSpans>)> {
    let embedding = &settings.embedding;
    let dir = embedding.local_model_dir();
    let tokens = crate::embed::load_token_spans(&dir).with_context(|| {
        format!(
            "loading the all-MiniLM-L6-v2 tokenizer from {} (run scripts/fetch-models.sh)",
            dir.display()
        )
    })?;
    let embedder: Arc<dyn Embedder> = match embedding.provider {
        EmbeddingProvider::Local => {
            let threads = embedding.threads;
            let precision = match embedding.float32 {
                true => crate::embed::local::Precision::F32,
                false => crate::embed::local::Precision::Auto,
            };
            tokio::task::spawn_blocking(move || {
                crate::embed::local::LocalEmbedder::shared(&dir, threads, precision)
            })
            .await?
            .context("loading the embedding model (run scripts/fetch-models.sh)")?
        }
        EmbeddingProvider::Openai => {
            let base_url = embedding.base_url.clone().context(
                "APP__EMBEDDING__BASE_URL is required for the openai embedding provider",
            )?;
            let model = embedding
                .model
                .clone()
                .unwrap_or_else(|| "text-embedding-3-small".into());
            Arc::new(crate::embed::openai::OpenAiEmbedder::new(
                base_url,
                model,
                embedding.api_key.clone(),
            )?)
        }
    };
    Ok((embedder, tokens))
}

/// Qdrant server when `qdrant.url` is set, else the embedded Qdrant Edge.
pub async fn build_index(
    settings: &Settings,
    dimension: usize,
) -> anyhow::Result<Arc<dyn VectorIndex>> {
    Ok(match &settings.qdrant.url {
        Some(url) => {
            tracing::info!(url, collection = %settings.qdrant.collection, "using a Qdrant server");
            Arc::new(
                crate::index::server::QdrantServerIndex::connect(
                    url,
                    settings.qdrant.api_key.clone(),
                    &settings.qdrant.collection,
                    dimension,
                )
                .await
                .with_context(|| format!("connecting to Qdrant at {url}"))?,
            )
        }
        None => {
            let dir = settings.data_dir.join("qdrant-edge");
            Arc::new(
                crate::index::edge::EdgeIndex::open(&dir, dimension)
                    .await
                    .with_context(|| format!("opening the vector index in {}", dir.display()))?,
            )
        }
    })
}

/// Who may become the first admin: on `auto`, whoever signs up first only
/// when nobody else can reach the server (a loopback bind address, and no
/// proxy in front forwarding strangers to it).
fn first_admin(settings: &Settings) -> FirstAdmin {
    match settings.auth.first_admin {
        FirstAdminPolicy::FirstSignUp => FirstAdmin::FirstSignUp,
        FirstAdminPolicy::SetupCode => FirstAdmin::SetupCode,
        FirstAdminPolicy::Auto => {
            let loopback = settings
                .server
                .bind
                .parse::<SocketAddr>()
                .is_ok_and(|address| address.ip().is_loopback())
                || settings.server.bind.starts_with("localhost:");
            if loopback && settings.server.client_ip_header.is_none() {
                FirstAdmin::FirstSignUp
            } else {
                FirstAdmin::SetupCode
            }
        }
    }
}

/// How long an answer may stream before a replica sharing the database
/// takes it for dead (its replica stopped): far beyond the model timeouts.
/// An answer whose replica has been silent this long (it says it is alive
/// every 5 s while generating) was left by a crash.
const STREAMING_ABANDONED_AFTER_MS: i64 = 60 * 1000;

/// Opens the database and marks answers that a stopped server left streaming.
async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::open(&settings.database, &settings.data_dir)
        .await
        .with_context(|| match &settings.database.url {
            Some(_) => "connecting to Postgres (database.url)".to_owned(),
            None => format!("opening the database in {}", settings.data_dir.display()),
        })?;
    let interrupted_before = if store.is_shared() {
        tracing::info!(
            "users, chats, events and sessions kept in Postgres, shared by every replica"
        );
        // Other replicas' answers are still streaming: only those whose
        // replica fell silent are marked, now and every 30 s (a replica may
        // stop for good).
        let sweeper = store.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(30));
            every.tick().await;
            loop {
                every.tick().await;
                let before = crate::store::now_ms() - STREAMING_ABANDONED_AFTER_MS;
                match sweeper.mark_interrupted(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(interrupted = n, "marked abandoned answers incomplete"),
                    Err(e) => tracing::warn!(error = %e, "marking abandoned answers"),
                }
            }
        });
        crate::store::now_ms() - STREAMING_ABANDONED_AFTER_MS
    } else {
        i64::MAX
    };
    let interrupted = store.mark_interrupted(interrupted_before).await?;
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "marked answers interrupted by a stopped server as incomplete"
        );
    }
    Ok(store)
}

/// Sessions in the store: a cookie that expires after 30 idle days, its
/// rows deleted once an hour.
async fn session_layer(
    store: &Store,
    settings: &Settings,
) -> anyhow::Result<SessionManagerLayer<SessionBackend>> {
    let sessions = SessionBackend::open(store)
        .await
        .context("creating the sessions table")?;
    let expired = sessions.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            if let Err(e) = expired.delete_expired().await {
                tracing::warn!(error = %e, "deleting expired sessions");
            }
        }
    });
    Ok(SessionManagerLayer::new(sessions)
        .with_name("ragchat_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(settings.server.secure_cookies)
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::days(30),
        )))
}

/// The rate limiter's state: in Redis when configured (shared by every
/// replica), else in this process.
async fn build_limiter(settings: &Settings) -> anyhow::Result<Arc<dyn RateLimiter>> {
    Ok(match &settings.limits.redis_url {
        Some(url) => {
            tracing::info!("rate limits kept in Redis, shared by every replica");
            Arc::new(
                RedisRateLimiter::connect(url.expose_secret(), &settings.limits.redis_key_prefix)
                    .await?,
            )
        }
        None => Arc::new(LocalRateLimiter::new()),
    })
}

fn build_chat(
    settings: &Settings,
    store: &Store,
    models: Arc<ModelRoster>,
    grounding: Arc<Grounding>,
    metrics: &Arc<Metrics>,
) -> ChatServiceImpl {
    ChatServiceImpl::new(
        store.clone(),
        models,
        grounding,
        TurnBookkeeping {
            recorder: EventRecorder::new(store.clone(), metrics.clone()),
            cache: ResponseCache::new(store.clone(), &settings.cache),
            experiments: Arc::new(settings.experiments.clone()),
        },
        settings.chat.clone(),
        Sampling {
            max_tokens: settings.llm.max_tokens,
            temperature: settings.llm.temperature,
        },
    )
}

/// Accounts, and the one-time setup code for the first admin when one is
/// needed (printed on stderr, never logged).
async fn build_accounts(
    settings: &Settings,
    store: &Store,
    limiter: Arc<dyn RateLimiter>,
) -> anyhow::Result<AccountServiceImpl> {
    let accounts = AccountServiceImpl::new(
        store.clone(),
        limiter,
        settings.auth.allow_guests,
        first_admin(settings),
        settings.limits.new_accounts_per_hour,
    )?;
    if let Some(code) = accounts.new_setup_code().await? {
        tracing::warn!(
            "no admin yet: the first admin signs up with the setup code printed on stderr"
        );
        eprintln!("\n  No admin yet. Sign up with this one-time setup code to become the admin:\n\n      {code}\n");
    }
    Ok(accounts)
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let model = build_model(&settings).await?;
        Self::build_with_model(settings, model).await
    }

    /// Like [`Application::build`] with a given model provider (tests share one).
    pub async fn build_with_model(
        settings: Settings,
        model: Arc<dyn ChatModel>,
    ) -> anyhow::Result<Self> {
        let models = Arc::new(build_roster(&settings, model).await?);
        let store = open_store(&settings).await?;
        let session_layer = session_layer(&store, &settings).await?;

        let metrics = Arc::new(Metrics::new().context("setting up metrics")?);
        let limiter = build_limiter(&settings).await?;
        let limits: Arc<dyn UsageLimits> = Arc::new(Allowances::new(
            limiter.clone(),
            store.clone(),
            settings.limits.clone(),
            metrics.clone(),
        ));
        let (embedder, tokens) = build_embedder(&settings).await?;
        let index = build_index(&settings, embedder.dimension()).await?;
        let documents = DocumentServiceImpl::start(
            store.clone(),
            index.clone(),
            embedder.clone(),
            tokens.clone(),
            limits.clone(),
            settings.documents.clone(),
            &settings.data_dir,
        )
        .await
        .context("starting document ingestion")?;
        let grounding = Arc::new(build_grounding(
            &settings,
            &store,
            Retriever::new(embedder.clone(), index.clone(), settings.retrieval.clone()),
            tokens.clone(),
            &models,
        )?);
        let chat = build_chat(&settings, &store, models, grounding, &metrics);
        let accounts = build_accounts(&settings, &store, limiter).await?;
        let services = Services {
            accounts: Arc::new(accounts),
            limits,
            chat: Arc::new(chat),
            history: Arc::new(HistoryServiceImpl::new(store.clone())),
            feedback: Arc::new(FeedbackServiceImpl::new(store.clone(), metrics.clone())),
            dashboard: Arc::new(DashboardServiceImpl::new(
                store.clone(),
                settings.prices.clone(),
                settings.experiments.clone(),
                QualityReporter::new(store.clone(), embedder.clone(), settings.quality.clone()),
            )),
            collections: Arc::new(documents.collections()),
            documents: Arc::new(documents),
        };

        let listener = TcpListener::bind(&settings.server.bind)
            .await
            .with_context(|| format!("binding {}", settings.server.bind))?;
        let address = listener.local_addr()?;
        let options = leptos_options(&settings, address);
        let documents = crate::web::documents::documents_router(
            services.clone(),
            settings.documents.max_file_bytes,
            settings.documents.max_files_per_upload,
        )
        .merge(crate::web::conversations::export_router(services.clone()))
        .merge(crate::web::collections::collections_router(
            services.clone(),
        ))
        .merge(crate::web::operator::operator_router(
            services.clone(),
            store.clone(),
            metrics.clone(),
            settings.server.metrics_token.clone(),
        ));
        let shared_pages = crate::web::conversations::shared_router(services.clone());
        let openai = crate::web::openai::openai_router(crate::web::openai::OpenAiApi {
            services: services.clone(),
            embedder: embedder.clone(),
            tokens,
            metrics,
            settings: settings.api.clone(),
        });
        let router = crate::web::router(
            options,
            services,
            documents,
            shared_pages,
            openai,
            session_layer,
            &settings.server,
        );
        Ok(Self {
            listener,
            router,
            address,
            index,
            embedder,
            store,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The vector index (tests check what it holds).
    pub fn index(&self) -> Arc<dyn VectorIndex> {
        self.index.clone()
    }

    /// The embedding model (tests compare what the API returns with it).
    pub fn embedder(&self) -> Arc<dyn Embedder> {
        self.embedder.clone()
    }

    /// The database (the load script reads the turns' events back).
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await?;
        Ok(())
    }
}

/// Where the pages' bundle is served from, and the address it is served at.
fn leptos_options(settings: &Settings, address: SocketAddr) -> LeptosOptions {
    let site_root = std::env::var("LEPTOS_SITE_ROOT")
        .unwrap_or_else(|_| settings.server.site_root.to_string_lossy().into_owned());
    LeptosOptions::builder()
        .output_name("ragchat")
        .site_root(site_root)
        .site_pkg_dir("pkg")
        .site_addr(address)
        .build()
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::first_admin;
    use crate::config::{FirstAdminPolicy, Settings};
    use crate::ops::accounts::FirstAdmin;

    #[test]
    fn only_a_server_nobody_else_can_reach_lets_the_first_sign_up_be_admin() {
        let auto = |bind: &str, header: Option<&str>| {
            let mut settings = Settings::default();
            settings.server.bind = bind.into();
            settings.server.client_ip_header = header.map(str::to_owned);
            first_admin(&settings)
        };
        assert_eq!(auto("127.0.0.1:3000", None), FirstAdmin::FirstSignUp);
        assert_eq!(auto("[::1]:3000", None), FirstAdmin::FirstSignUp);
        assert_eq!(auto("0.0.0.0:3000", None), FirstAdmin::SetupCode);
        assert_eq!(auto("192.0.2.5:80", None), FirstAdmin::SetupCode);
        // Loopback behind a reverse proxy: strangers reach it.
        assert_eq!(
            auto("127.0.0.1:3000", Some("x-forwarded-for")),
            FirstAdmin::SetupCode
        );
        let mut settings = Settings::default();
        settings.auth.first_admin = FirstAdminPolicy::SetupCode;
        assert_eq!(first_admin(&settings), FirstAdmin::SetupCode);
    }
}
