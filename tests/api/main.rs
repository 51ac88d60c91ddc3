//! One integration-test binary: each test spawns the real server on port 0
//! with its own temp data dir and drives it over HTTP.

mod chat;
mod faults;
mod helpers;
mod isolation;
mod local_model;
mod real_http_server;
