//! Structured JSON logs through `tracing`.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs the global subscriber: JSON lines on stdout, `RUST_LOG` to tune.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,hyper=warn,h2=warn,tower=warn,tower_http=warn,sqlx=warn,reqwest=warn,llama_cpp_2=warn")
    });
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
