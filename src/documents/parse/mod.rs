//! Turning an upload's bytes into plain text with its structure.
//!
//! Every format ends up as a [`ParsedDocument`]: one normalised plain-text
//! string plus [`Section`]s (byte ranges of that string) that carry the
//! heading path or the PDF page, so the chunker never mixes two sections.
//!
//! Conventions shared by all formats:
//! - Blocks (paragraphs, list items, table rows groups, headings) are
//!   separated by a blank line (`"\n\n"`); a block may contain single `"\n"`
//!   (hard line breaks, table rows). Table cells are separated by `'\t'`.
//! - Inside a line, runs of whitespace become one space; control characters,
//!   NULs, soft hyphens, zero-width spaces and BOMs are removed; the Latin
//!   ligature code points (U+FB00–FB06, common in PDFs) are spelled out.
//! - Headings are kept in the text as their own block at the start of their
//!   section, so the first chunk of a section says what it is about.
//! - Markdown is rendered to plain text (no `#`, `*`, link targets), with
//!   list items as `- item` / `1. item` blocks.
//! - Sections are contiguous and cover the whole text in order: a section
//!   starts where its first block starts and ends where the next one starts
//!   (so it includes the blank line after it). A heading immediately followed
//!   by a sub-heading does not get a section of its own: it is merged into
//!   the sub-heading's section, whose heading path names it anyway.
//!
//! Parsers are synchronous and CPU-bound: call them inside `spawn_blocking`.
//! None of them panics on hostile input; the one third-party parser that can
//! (pdf-extract) runs page by page under `catch_unwind` after the document
//! has been checked for the inputs that would make it recurse forever or
//! decompress without bound.

mod builder;
mod csv;
mod document;
mod docx;
mod encoding;
mod format;
mod html;
mod html_hiding;
mod markdown;
mod normalize;
mod pdf;
#[cfg(test)]
mod tests;
mod text;

pub use document::{check_invariants, LimitKind, ParseError, ParseLimits, ParsedDocument, Section};
pub use format::Format;

use csv::parse_csv;
use docx::{parse_docx, DOCX_XML_CAP};
use html::parse_html;
use markdown::parse_markdown;
use text::parse_text;

/// Extracts the text and structure of a document of a known format.
pub fn parse(
    format: Format,
    bytes: &[u8],
    limits: &ParseLimits,
) -> Result<ParsedDocument, ParseError> {
    match format {
        Format::Text => parse_text(bytes, limits),
        Format::Markdown => parse_markdown(bytes, limits),
        Format::Html => parse_html(bytes, limits),
        Format::Pdf => pdf::parse_pdf(bytes, limits),
        Format::Docx => parse_docx(bytes, limits, DOCX_XML_CAP),
        Format::Csv => parse_csv(bytes, limits),
    }
}
