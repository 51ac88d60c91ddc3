//! Layered configuration: built-in defaults → optional TOML file → `APP__…` env vars.

use app::wire::UserRole;
use secrecy::SecretString;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub server: ServerSettings,
    /// Where the SQLite database, the embedded vector index and uploads live.
    pub data_dir: PathBuf,
    pub database: DatabaseSettings,
    pub chat: ChatSettings,
    pub llm: LlmSettings,
    pub documents: DocumentSettings,
    pub retrieval: RetrievalSettings,
    /// Follow-up questions rewritten into standalone search queries.
    pub rewrite: RewriteSettings,
    pub embedding: EmbeddingSettings,
    pub qdrant: QdrantSettings,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    /// Prices per model name, for the dashboard's cost estimates.
    pub prices: std::collections::HashMap<String, Price>,
    pub cache: CacheSettings,
    /// The operators' quality view: knowledge gaps and weak sources.
    pub quality: QualitySettings,
    /// A/B experiments on the prompt, temperature and number of passages.
    pub experiments: Vec<Experiment>,
    /// The OpenAI-compatible API under `/v1`.
    pub api: ApiSettings,
}

/// What a model costs, in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Price {
    pub prompt_per_million: f64,
    pub completion_per_million: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// People without an account may chat (limited per address).
    pub allow_guests: bool,
    /// Who becomes the first admin: `auto` (the first sign-up when the
    /// server listens on a loopback address only, else only someone with
    /// the setup code printed at start-up), `setup_code` or `first_sign_up`.
    pub first_admin: FirstAdminPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FirstAdminPolicy {
    Auto,
    SetupCode,
    FirstSignUp,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            allow_guests: true,
            first_admin: FirstAdminPolicy::Auto,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DocumentSettings {
    /// Largest accepted file.
    pub max_file_bytes: u64,
    /// Files in one upload request.
    pub max_files_per_upload: usize,
    pub max_pages: u32,
    pub max_chunks: usize,
    /// Chunk size in embedding-model tokens (all-MiniLM-L6-v2 reads at most 256).
    pub chunk_tokens: usize,
    pub chunk_overlap_tokens: usize,
    /// Chunks embedded and written per step (progress is reported per step).
    pub embed_batch: usize,
    /// Memory one document's parser may use (it runs in a child process
    /// capped at this plus 256 MiB of address space for its own code).
    pub parse_memory_mib: u64,
    /// CPU (and wall-clock) seconds one document's parser may take.
    pub parse_timeout_secs: u64,
    /// The program run as `<program> parse-worker` to parse a document
    /// (default: the server's own binary).
    pub parser_program: Option<PathBuf>,
    /// How long a replaced version's vectors stay (hidden) after the new
    /// version swaps in, so a question that read the old state just before
    /// the swap still finds them for its search. Then they are removed.
    pub retire_after_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetrievalMode {
    Dense,
    Sparse,
    Hybrid,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RetrievalSettings {
    /// Passages given to the model.
    pub top_k: usize,
    pub mode: RetrievalMode,
    /// Budget for the sources in the prompt, in embedding-model tokens.
    pub context_tokens: usize,
    /// How hybrid retrieval combines the dense and the BM25 ranking.
    pub fusion: FusionKind,
    /// Weight of the dense (embedding) ranking in the fusion.
    pub dense_weight: f32,
    /// Weight of the BM25 ranking in the fusion.
    pub sparse_weight: f32,
    /// Passages of one document that overlap or touch are given as one…
    pub merge_neighbours: bool,
    /// … up to this many characters.
    pub max_passage_chars: usize,
}

/// How follow-ups become standalone search queries (`[rewrite]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RewriteSettings {
    pub enabled: bool,
    /// A model named under `[llm.models]` to write the queries (a small,
    /// fast one); unset: the model that answers the turn.
    pub model: Option<String>,
    /// How long the model may take; then the earlier question's key terms
    /// are added to the follow-up instead.
    pub timeout_ms: u64,
    /// Characters of earlier conversation the model reads.
    pub history_chars: usize,
}

impl Default for RewriteSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            model: None,
            timeout_ms: 4_000,
            history_chars: 2_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FusionKind {
    /// Reciprocal rank fusion (ranks only).
    Rrf,
    /// Distribution-based score fusion: z-scores over each candidate pool.
    Zscore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingProvider {
    /// all-MiniLM-L6-v2 in-process.
    Local,
    /// An OpenAI-compatible `/v1/embeddings` endpoint.
    Openai,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EmbeddingSettings {
    pub provider: EmbeddingProvider,
    /// Where `scripts/fetch-models.sh` puts all-MiniLM-L6-v2 (default: `<model cache>/all-minilm-l6-v2`).
    pub model_dir: Option<PathBuf>,
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub api_key: Option<SecretString>,
    /// CPU threads for the local engine (0: all cores).
    pub threads: usize,
    /// Always compute in float32 (slower where the CPU has bfloat16; for
    /// bit-level comparisons and for measuring CPUs without it).
    pub float32: bool,
}

/// Where users, chats, votes, events and sessions are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// A Postgres server (`postgres://user:password@host/db`), shared by every
    /// replica; unset: SQLite in `data_dir`.
    pub url: Option<SecretString>,
    /// Connections each replica keeps to Postgres at most.
    pub max_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 16,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct QdrantSettings {
    /// A Qdrant server (gRPC, e.g. `http://127.0.0.1:6334`); unset: embedded Qdrant Edge.
    pub url: Option<String>,
    pub api_key: Option<SecretString>,
    pub collection: String,
}

impl Default for DocumentSettings {
    fn default() -> Self {
        Self {
            max_file_bytes: 50 * 1024 * 1024,
            max_files_per_upload: 20,
            max_pages: 2_000,
            max_chunks: 20_000,
            chunk_tokens: 128,
            chunk_overlap_tokens: 0,
            embed_batch: 64,
            parse_memory_mib: 1024,
            parse_timeout_secs: 120,
            parser_program: None,
            retire_after_secs: 30,
        }
    }
}

impl Default for RetrievalSettings {
    fn default() -> Self {
        Self {
            top_k: 6,
            mode: RetrievalMode::Hybrid,
            context_tokens: 1_800,
            fusion: FusionKind::Zscore,
            dense_weight: 1.0,
            sparse_weight: 1.0,
            merge_neighbours: true,
            max_passage_chars: 2_000,
        }
    }
}

impl Default for EmbeddingSettings {
    fn default() -> Self {
        Self {
            provider: EmbeddingProvider::Local,
            model_dir: None,
            base_url: None,
            model: None,
            api_key: None,
            threads: 0,
            float32: false,
        }
    }
}

impl Default for QdrantSettings {
    fn default() -> Self {
        Self {
            url: None,
            api_key: None,
            collection: "ragchat_chunks".into(),
        }
    }
}

impl EmbeddingSettings {
    pub fn local_model_dir(&self) -> PathBuf {
        self.model_dir
            .clone()
            .unwrap_or_else(|| default_model_dir().join("all-minilm-l6-v2"))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    /// `host:port`; port 0 picks a free port.
    pub bind: String,
    /// The directory cargo-leptos writes the WASM/JS/CSS bundle to.
    pub site_root: PathBuf,
    /// Set the `Secure` flag on the session cookie (enable behind HTTPS).
    pub secure_cookies: bool,
    /// Behind reverse proxies: the header holding the client's address
    /// (e.g. `x-forwarded-for`, a list each proxy appends its peer to).
    /// Unset: the peer address.
    pub client_ip_header: Option<String>,
    /// How many proxies in front of the app append to `client_ip_header`:
    /// the client is the entry that many places from the end (earlier
    /// entries are whatever the client sent, and can't be trusted).
    pub trusted_proxies: usize,
    /// The bearer token `/metrics` wants; unset: metrics are not served.
    pub metrics_token: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ChatSettings {
    /// Longest accepted user message, in characters.
    pub max_message_chars: usize,
    /// How much earlier conversation (in characters) goes into the prompt.
    pub history_chars: usize,
    pub system_prompt: String,
    /// Stop an answer when its reader goes away (the tab is closed or
    /// reloaded). Off by default: answers keep generating, are stored as
    /// they grow, and a reader who comes back follows them live.
    pub cancel_on_disconnect: bool,
    /// How many answers one user may have generating at once (across
    /// conversations, tabs and replicas).
    pub max_generating_per_user: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// `openai` when `base_url` is set, else `local`.
    Auto,
    Local,
    Openai,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LlmSettings {
    pub provider: Provider,
    /// OpenAI-compatible base URL including `/v1`, e.g. `https://api.openai.com/v1`.
    pub base_url: Option<String>,
    /// Model name sent to the HTTP provider.
    pub model: Option<String>,
    pub api_key: Option<SecretString>,
    pub max_tokens: u32,
    pub temperature: f32,
    /// Seconds without a byte from the upstream before the answer is abandoned.
    pub stall_timeout_secs: u64,
    pub connect_timeout_secs: u64,
    /// Giving up on an attempt that has streamed no token in this long.
    pub first_token_timeout_secs: u64,
    /// Retries per model before its first token (429, 5xx, connection
    /// errors, stalls), with exponential backoff and jitter.
    pub max_retries: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Models tried in order when the primary keeps failing.
    pub fallbacks: Vec<ModelEndpoint>,
    /// Other models by name (`[llm.models.small]`), for experiment variants
    /// and for users whose daily token budget is spent
    /// (`limits.over_budget_model`).
    pub models: std::collections::HashMap<String, ModelEndpoint>,
    pub local: LocalSettings,
}

/// A model besides the primary one: an OpenAI-compatible endpoint, or
/// (without a base URL) an embedded model.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelEndpoint {
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub api_key: Option<SecretString>,
    /// Which embedded model, without a base URL (default: `llm.local.model`).
    pub local: Option<LocalModelKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LocalModelKind {
    /// Qwen2.5-Coder-0.5B-Instruct, Q4_K_M: the default.
    Qwen,
    /// Gemma 3 270M, Q4_K_M: faster, but a base model that often answers wrongly.
    Gemma,
}

impl LocalModelKind {
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Qwen => "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            Self::Gemma => "gemma-3-270m-q4_k_m.gguf",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Self::Qwen => "qwen2.5-coder-0.5b-instruct (local)",
            Self::Gemma => "gemma-3-270m (local)",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LocalSettings {
    pub model: LocalModelKind,
    /// Directory holding the GGUF files written by `scripts/fetch-models.sh`.
    pub model_dir: PathBuf,
    /// Overrides `model_dir` + `model` with an explicit GGUF path.
    pub model_path: Option<PathBuf>,
    /// CPU threads for llama.cpp (0: all cores).
    pub threads: usize,
    pub context_tokens: u32,
    pub batch_tokens: u32,
}

impl LocalSettings {
    pub fn gguf_path(&self) -> PathBuf {
        self.model_path
            .clone()
            .unwrap_or_else(|| self.model_dir.join(self.model.file_name()))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerSettings::default(),
            data_dir: PathBuf::from("data"),
            database: DatabaseSettings::default(),
            chat: ChatSettings::default(),
            llm: LlmSettings::default(),
            documents: DocumentSettings::default(),
            retrieval: RetrievalSettings::default(),
            rewrite: RewriteSettings::default(),
            embedding: EmbeddingSettings::default(),
            qdrant: QdrantSettings::default(),
            auth: AuthSettings::default(),
            limits: LimitSettings::default(),
            prices: Default::default(),
            cache: Default::default(),
            quality: QualitySettings::default(),
            experiments: Vec::new(),
            api: ApiSettings::default(),
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:3000".into(),
            site_root: PathBuf::from("target/site"),
            secure_cookies: false,
            client_ip_header: None,
            trusted_proxies: 1,
            metrics_token: None,
        }
    }
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            max_message_chars: 8_000,
            history_chars: 12_000,
            system_prompt:
                "You are a helpful, accurate assistant. Answer concisely and use markdown \
                            (lists, tables, fenced code blocks with a language) when it helps."
                    .into(),
            cancel_on_disconnect: false,
            max_generating_per_user: 3,
        }
    }
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            provider: Provider::Auto,
            base_url: None,
            model: None,
            api_key: None,
            max_tokens: 512,
            temperature: 0.3,
            stall_timeout_secs: 30,
            connect_timeout_secs: 10,
            first_token_timeout_secs: 120,
            max_retries: 2,
            retry_base_ms: 250,
            retry_max_ms: 8_000,
            fallbacks: Vec::new(),
            models: Default::default(),
            local: LocalSettings::default(),
        }
    }
}

impl Default for LocalSettings {
    fn default() -> Self {
        Self {
            model: LocalModelKind::Qwen,
            model_dir: default_model_dir(),
            model_path: None,
            threads: 0,
            context_tokens: 4096,
            batch_tokens: 512,
        }
    }
}

/// `$XDG_CACHE_HOME/ragchat/models`, else `~/.cache/ragchat/models`: where
/// `scripts/fetch-models.sh` puts the verified GGUF files.
pub fn default_model_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("ragchat").join("models")
}

impl Settings {
    /// Defaults, then the file named by `APP_CONFIG` (or `ragchat.toml` if it
    /// exists), then `APP__SECTION__KEY` environment variables.
    pub fn load() -> Result<Self, config::ConfigError> {
        let file = std::env::var("APP_CONFIG").unwrap_or_else(|_| "ragchat.toml".into());
        Self::from_sources(
            config::File::with_name(&file).required(std::env::var_os("APP_CONFIG").is_some()),
            config::Environment::with_prefix("APP")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        )
    }

    fn from_sources(
        file: impl config::Source + Send + Sync + 'static,
        env: impl config::Source + Send + Sync + 'static,
    ) -> Result<Self, config::ConfigError> {
        config::Config::builder()
            .add_source(file)
            .add_source(env)
            .build()?
            .try_deserialize()
    }

    /// The provider to use after resolving `auto`.
    pub fn provider(&self) -> Provider {
        match self.llm.provider {
            Provider::Auto if self.llm.base_url.is_some() => Provider::Openai,
            Provider::Auto => Provider::Local,
            explicit => explicit,
        }
    }
}

/// The operators' quality view (`[quality]`): which questions the documents
/// don't answer, and which sources people vote down.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct QualitySettings {
    /// A turn that searched documents and whose best passage's cosine
    /// similarity to the question is below this is a knowledge gap. 0.35
    /// suits all-MiniLM-L6-v2, where an unrelated passage scores about 0–0.2
    /// and one that answers the question 0.5 or more.
    pub low_score: f64,
    /// Questions at least this similar (cosine of their embeddings) to a
    /// group's first question join that group.
    pub similar_questions: f64,
    /// The latest this many gap questions of a time range are grouped (the
    /// embedding and grouping stay bounded however long the range).
    pub max_questions: usize,
}

impl Default for QualitySettings {
    fn default() -> Self {
        Self {
            low_score: 0.35,
            similar_questions: 0.8,
            max_questions: 500,
        }
    }
}

/// The OpenAI-compatible API (`[api]`, served under `/v1`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ApiSettings {
    /// The id `/v1/models` gives the grounded model (retrieval over what
    /// the caller may read, then the chat model).
    pub grounded_model: String,
    /// Most messages one chat completion request may carry.
    pub max_messages: usize,
    /// Most characters of all its messages together (each user and system
    /// message is also held to `chat.max_message_chars`). Earlier turns
    /// beyond `chat.history_chars` are left out of the prompt, as in the
    /// browser.
    pub max_conversation_chars: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most inputs one `/v1/embeddings` request may embed.
    pub max_embedding_inputs: usize,
    /// Longest embedding input, in characters.
    pub max_embedding_input_chars: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            grounded_model: "rag".into(),
            max_messages: 256,
            max_conversation_chars: 100_000,
            max_body_bytes: 1024 * 1024,
            max_embedding_inputs: 128,
            max_embedding_input_chars: 8_000,
        }
    }
}

/// The response cache (`[cache]`): exact-match reuse of answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CacheSettings {
    pub enabled: bool,
    pub ttl_secs: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl_secs: 86_400,
        }
    }
}

/// Limits for one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct RoleLimits {
    /// Sustained chat requests per minute (0 = unlimited).
    pub requests_per_minute: u32,
    /// Chat requests allowed at once.
    pub burst: u32,
    /// Prompt + completion tokens per UTC day (0 = unlimited).
    pub tokens_per_day: u64,
    /// Files uploaded per UTC day (0 = unlimited).
    pub uploads_per_day: u32,
    /// MiB uploaded per UTC day (0 = unlimited).
    pub upload_mib_per_day: u64,
    /// Documents kept at once (0 = unlimited).
    pub max_documents: u32,
    /// MiB of documents kept at once (0 = unlimited).
    pub max_document_mib: u64,
}

impl RoleLimits {
    /// No limit at all (0 everywhere).
    pub const UNLIMITED: Self = Self {
        requests_per_minute: 0,
        burst: 1,
        tokens_per_day: 0,
        uploads_per_day: 0,
        upload_mib_per_day: 0,
        max_documents: 0,
        max_document_mib: 0,
    };
}

impl Default for RoleLimits {
    fn default() -> Self {
        Self {
            requests_per_minute: 30,
            burst: 10,
            tokens_per_day: 200_000,
            uploads_per_day: 200,
            upload_mib_per_day: 1024,
            max_documents: 1000,
            max_document_mib: 4096,
        }
    }
}

/// Limits per role (`[limits.guest]`, `[limits.user]`, `[limits.admin]`).
/// Guests' limits are per address: every guest behind one address (an
/// IPv4 address, an IPv6 /64) shares them, so a new cookie doesn't reset them.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct LimitSettings {
    /// Keep the limiter's state in this Redis (`redis://host:6379/`), shared
    /// by every replica; unset: in this process.
    pub redis_url: Option<secrecy::SecretString>,
    /// Prefix of the limiter's Redis keys (apps sharing one Redis differ here).
    pub redis_key_prefix: String,
    pub guest: RoleLimits,
    pub user: RoleLimits,
    pub admin: RoleLimits,
    /// New guests (browsers without a session that store something) per
    /// address per hour (0 = unlimited).
    pub new_guests_per_hour: u32,
    /// New accounts (sign-ups) per address per hour (0 = unlimited): each
    /// comes with an account's allowance, so they are not free either.
    pub new_accounts_per_hour: u32,
    /// With a spent token budget, answer with this model (a name under
    /// `[llm.models]`) instead of refusing until midnight UTC.
    pub over_budget_model: Option<String>,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_key_prefix: "ragchat:limits:".into(),
            guest: RoleLimits {
                requests_per_minute: 10,
                burst: 5,
                tokens_per_day: 20_000,
                uploads_per_day: 20,
                upload_mib_per_day: 100,
                max_documents: 30,
                max_document_mib: 200,
            },
            user: RoleLimits::default(),
            admin: RoleLimits {
                requests_per_minute: 120,
                burst: 30,
                ..RoleLimits::UNLIMITED
            },
            new_guests_per_hour: 20,
            new_accounts_per_hour: 10,
            over_budget_model: None,
        }
    }
}

impl LimitSettings {
    pub fn for_role(&self, role: UserRole) -> RoleLimits {
        match role {
            UserRole::Guest => self.guest,
            UserRole::User => self.user,
            UserRole::Admin => self.admin,
        }
    }

    /// No limit for anyone: for tests, benchmarks and evaluations that
    /// send many requests (and make many guests) from one address.
    pub fn lift_all(&mut self) {
        for role in [&mut self.guest, &mut self.user, &mut self.admin] {
            *role = RoleLimits::UNLIMITED;
        }
        self.new_guests_per_hour = 0;
        self.new_accounts_per_hour = 0;
    }
}

/// An A/B experiment (`[[experiments]]`): weighted variants that change
/// the system prompt, model, temperature or number of passages.
#[derive(Debug, Clone, Deserialize)]
pub struct Experiment {
    pub name: String,
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Variant {
    pub name: String,
    /// Relative share of users (default 1).
    #[serde(default = "one")]
    pub weight: u32,
    pub system_prompt: Option<String>,
    /// A model from `[llm.models.<name>]` instead of the default one.
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
}

fn one() -> u32 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> config::Environment {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        config::Environment::with_prefix("APP")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(map))
    }

    fn no_file() -> config::File<config::FileSourceString, config::FileFormat> {
        config::File::from_str("", config::FileFormat::Toml)
    }

    #[test]
    fn defaults_need_nothing() {
        let s = Settings::from_sources(no_file(), env(&[])).unwrap();
        assert_eq!(s.server.bind, "127.0.0.1:3000");
        assert_eq!(s.chat.max_message_chars, 8_000);
        assert_eq!(s.provider(), Provider::Local);
        assert_eq!(s.llm.local.model, LocalModelKind::Qwen);
        assert!(s
            .llm
            .local
            .gguf_path()
            .ends_with("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"));
    }

    #[test]
    fn env_overrides_and_base_url_selects_http_provider() {
        let s = Settings::from_sources(
            no_file(),
            env(&[
                ("APP__LLM__BASE_URL", "http://127.0.0.1:8080/v1"),
                ("APP__LLM__MODEL", "qwen"),
                ("APP__LLM__API_KEY", "sk-secret-value"),
                ("APP__CHAT__MAX_MESSAGE_CHARS", "100"),
                ("APP__SERVER__BIND", "0.0.0.0:8000"),
                ("APP__LLM__LOCAL__MODEL", "gemma"),
            ]),
        )
        .unwrap();
        assert_eq!(s.provider(), Provider::Openai);
        assert_eq!(s.llm.model.as_deref(), Some("qwen"));
        assert_eq!(s.chat.max_message_chars, 100);
        assert_eq!(s.server.bind, "0.0.0.0:8000");
        assert_eq!(s.llm.local.model, LocalModelKind::Gemma);
        let key = s.llm.api_key.as_ref().unwrap();
        assert_eq!(key.expose_secret(), "sk-secret-value");
        // The key never shows up in debug output (and so never in logs).
        assert!(!format!("{s:?}").contains("sk-secret-value"));
    }

    #[test]
    fn file_then_env() {
        let file = config::File::from_str(
            "data_dir = \"/tmp/x\"\n[llm]\nprovider = \"local\"\nbase_url = \"http://h/v1\"\nmax_tokens = 64\n",
            config::FileFormat::Toml,
        );
        let s = Settings::from_sources(file, env(&[("APP__LLM__MAX_TOKENS", "32")])).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(
            s.provider(),
            Provider::Local,
            "explicit provider wins over base_url"
        );
        assert_eq!(s.llm.max_tokens, 32);
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(Settings::from_sources(
            no_file(),
            env(&[("APP__CHAT__MAX_MESSAGE_CHARS", "lots")])
        )
        .is_err());
        assert!(
            Settings::from_sources(no_file(), env(&[("APP__LLM__PROVIDER", "magic")])).is_err()
        );
    }

    #[test]
    fn the_gap_threshold_has_a_default_and_an_override() {
        let s = Settings::from_sources(no_file(), env(&[])).unwrap();
        assert_eq!(s.quality.low_score, 0.35);
        let s = Settings::from_sources(
            no_file(),
            env(&[
                ("APP__QUALITY__LOW_SCORE", "0.5"),
                ("APP__QUALITY__MAX_QUESTIONS", "100"),
            ]),
        )
        .unwrap();
        assert_eq!(s.quality.low_score, 0.5);
        assert_eq!(s.quality.max_questions, 100);
        assert_eq!(s.quality.similar_questions, 0.8);
    }
}
