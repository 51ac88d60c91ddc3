//! The web edge: the router and its middleware, the documents, conversation
//! export, shared-page and operator HTTP routes, and how errors become responses. Who is calling is resolved
//! by `app::identity::Identity`, the same for these routes and for the
//! server functions.

pub mod collections;
pub mod conversations;
pub mod documents;
pub mod error;
mod middleware;
pub mod openai;
pub mod operator;
mod router;

pub(crate) use router::router;
