//! The OpenAI-compatible API under `/v1`, for the SDKs and tools teams
//! already use: `models`, `chat/completions` (Server-Sent Events or one
//! JSON answer; `rag` answers from what the caller may read, with the
//! passages in a `sources` extension field), `embeddings`, and votes on an
//! answer by its id. It takes the app's API keys and goes through the same
//! services as the browser: limits and budgets, retrieval, the cache,
//! experiments, retries and fallback, events and metrics. Errors come in
//! OpenAI's shape (`error`).

mod asked;
mod chat;
mod embeddings;
mod error;
mod feedback;
mod models;
mod request;
mod routes;
mod wire;

pub use error::OpenAiError;
pub use request::OpenAiApi;
pub use routes::openai_router;
