//! What every parser returns: the document, its sections, and why parsing failed.

/// Upper bounds on the work one document may cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ParseLimits {
    /// PDFs with more pages are refused before any text is extracted.
    pub max_pages: u32,
    /// Extraction stops with [`ParseError::TooLarge`] past this many
    /// characters (Unicode scalar values) of extracted text.
    pub max_chars: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self {
            max_pages: 2000,
            max_chars: 20_000_000,
        }
    }
}

/// The text of a document and its structure.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ParsedDocument {
    /// The extracted, normalised plain text (see the module docs).
    pub text: String,
    /// Contiguous byte ranges of `text`, in order, covering all of it.
    pub sections: Vec<Section>,
    /// Number of pages, for PDFs.
    pub pages: Option<u32>,
    /// HTML `<title>` (else first `<h1>`), first Markdown H1, DOCX core
    /// title (else the Title-styled paragraph, else the first heading), PDF
    /// Info dictionary title.
    pub title: Option<String>,
}

/// A part of [`ParsedDocument::text`] under one heading or on one page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Section {
    /// Byte offset into `text` (always on a char boundary).
    pub byte_start: usize,
    /// Byte offset into `text`, exclusive.
    pub byte_end: usize,
    /// Texts of the enclosing headings, outermost first; empty when the
    /// section precedes any heading or the format has none.
    pub heading_path: Vec<String>,
    /// 1-based page number, for PDFs.
    pub page: Option<u32>,
}

/// Which limit a document exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LimitKind {
    Pages,
    Chars,
    /// Memory used while reading it, in MiB.
    MemoryMib,
    /// Time taken to read it, in seconds.
    Seconds,
}

pub(super) fn too_large_message(what: LimitKind, limit: u64) -> String {
    match what {
        LimitKind::Pages => format!("it has more than {limit} pages"),
        LimitKind::Chars => format!("it has more than {limit} characters of text"),
        LimitKind::MemoryMib => format!(
            "reading it needs more than {limit} MiB of memory (its compressed content expands too far)"
        ),
        LimitKind::Seconds => format!("reading it takes longer than {limit} seconds"),
    }
}

/// Why a document could not be turned into text. The messages are meant to
/// be shown to the person who uploaded it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ParseError {
    /// The extension (without the dot, lower-cased; empty when there is none).
    #[error("{}", unsupported_message(.0))]
    Unsupported(String),
    #[error("This document is password-protected. Remove the password and upload it again.")]
    Encrypted,
    #[error("This document could not be read: {0}.")]
    Corrupt(String),
    #[error("This document has no extractable text (scanned PDF?).")]
    Empty,
    #[error("This document is too large: {}.", too_large_message(*.what, *.limit))]
    TooLarge { what: LimitKind, limit: u64 },
}

pub(super) fn unsupported_message(ext: &str) -> String {
    const SUPPORTED: &str = ".txt, .md, .html, .pdf, .docx or .csv";
    if ext.is_empty() {
        format!("Files without an extension are not supported; upload {SUPPORTED}.")
    } else {
        format!("Files of type .{ext} are not supported; upload {SUPPORTED}.")
    }
}

/// Panics unless `doc` keeps the invariants of the module docs: non-empty
/// sections that tile the text in order on char boundaries, normalised
/// whitespace (a block opens with a tab only for an empty first table
/// cell), no control characters. For tests and fuzzing.
pub fn check_invariants(doc: &ParsedDocument) {
    assert!(!doc.text.is_empty());
    assert!(!doc.sections.is_empty());
    assert_eq!(doc.sections[0].byte_start, 0);
    assert_eq!(
        doc.sections.last().map(|s| s.byte_end),
        Some(doc.text.len())
    );
    for pair in doc.sections.windows(2) {
        assert_eq!(pair[0].byte_end, pair[1].byte_start);
    }
    for section in &doc.sections {
        assert!(section.byte_start < section.byte_end, "{section:?}");
        assert!(doc.text.is_char_boundary(section.byte_start));
        let body = &doc.text[section.byte_start..section.byte_end];
        assert!(!body.trim().is_empty(), "{section:?}");
        // A block may open with a tab: a table row whose first cell is empty.
        assert!(
            !body.starts_with(|c: char| c.is_whitespace() && c != '\t'),
            "{section:?}"
        );
    }
    assert!(!doc.text.contains("\n\n\n"));
    assert!(!doc.text.contains("  "));
    assert!(!doc.text.contains(" \n") && !doc.text.contains("\n "));
    assert!(!doc
        .text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t'));
}
