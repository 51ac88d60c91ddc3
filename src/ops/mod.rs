//! Operating the app: accounts and API keys, per-role limits and quotas,
//! feedback (votes), one usage event per chat turn and the Prometheus
//! metrics it feeds, the admin dashboard and the statistics behind it, the
//! quality loop (knowledge gaps, weak sources), and A/B experiments.
//! Services over the adapters (`store`, `llm`); the chat and document
//! services call into them.

pub mod accounts;
pub mod dashboard;
pub mod events;
pub mod experiments;
pub mod feedback;
pub mod limits;
pub mod metrics;
pub mod quality;
pub mod statistics;
