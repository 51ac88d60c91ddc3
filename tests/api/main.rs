//! One integration-test binary: each test spawns the real server on port 0
//! with its own temp data dir (and, with `TEST_POSTGRES_URL`, its own
//! Postgres database) and drives it over HTTP.

mod abuse;
mod accounts;
mod cache;
mod chat;
mod collections;
mod crash_recovery;
mod documents;
mod embeddings;
mod experiments;
mod faults;
mod followups;
mod helpers;
mod history;
mod index;
mod isolation;
mod limits;
mod local_model;
mod openai;
mod operate;
mod quality;
mod real_http_server;
mod replicas;
mod resilience;
mod versions;
