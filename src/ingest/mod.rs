//! Document ingestion: uploaded bytes → plain text with structure
//! ([`parse()`], run by the server in a resource-capped child process:
//! [`sandbox`]) → token-bounded chunks for embedding ([`chunk_document`]).
//!
//! Typical use, inside `spawn_blocking` since both steps are CPU-bound:
//!
//! ```ignore
//! let format = Format::detect(&file_name, &bytes)?;
//! let doc = parse(format, &bytes, &ParseLimits::default())?;
//! let chunks = chunk_document(&doc, &tokenizer, &ChunkConfig::default())?;
//! ```

pub mod chunk;
pub mod parse;
pub mod sandbox;

pub use chunk::{chunk_document, Chunk, ChunkConfig, ChunkError, TokenSpans};
pub use parse::{parse, Format, LimitKind, ParseError, ParseLimits, ParsedDocument, Section};
