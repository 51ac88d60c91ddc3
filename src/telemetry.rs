//! Structured JSON logs through `tracing`.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Quiet by default: libraries at warn, and these at error, because what
/// they warn about at start-up is nothing an operator can act on (qdrant-edge
/// has no public way to set the feature flags it asks for; llama.cpp notes
/// quirks of the GGUF's vocabulary and line-continues its own logs).
const DEFAULT_FILTER: &str =
    "info,hyper=warn,h2=warn,tower=warn,tower_http=warn,sqlx=warn,reqwest=warn,\
     llama_cpp_2=error,llama-cpp-2=error,\
     qdrant_edge::common::flags=error,qdrant_edge::common::mmap=error";

/// Installs the global subscriber: JSON lines on stdout, `RUST_LOG` to tune.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false),
        )
        .try_init();
}
