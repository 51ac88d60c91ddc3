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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{Cursor, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};

use encoding_rs::Encoding;

/// The document formats accepted for upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Text,
    Markdown,
    Html,
    Pdf,
    Docx,
    Csv,
}

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

fn too_large_message(what: LimitKind, limit: u64) -> String {
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

fn unsupported_message(ext: &str) -> String {
    const SUPPORTED: &str = ".txt, .md, .html, .pdf, .docx or .csv";
    if ext.is_empty() {
        format!("Files without an extension are not supported; upload {SUPPORTED}.")
    } else {
        format!("Files of type .{ext} are not supported; upload {SUPPORTED}.")
    }
}

/// How many leading bytes [`Format::detect`] looks at for text formats.
const SNIFF_LEN: usize = 64 * 1024;

impl Format {
    /// Maps a file extension (any case, without the dot) to a format.
    pub fn from_extension(ext: &str) -> Option<Format> {
        match ext.to_ascii_lowercase().as_str() {
            "txt" | "text" => Some(Format::Text),
            "md" | "markdown" | "mdown" | "mkd" => Some(Format::Markdown),
            "html" | "htm" | "xhtml" => Some(Format::Html),
            "pdf" => Some(Format::Pdf),
            "docx" => Some(Format::Docx),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    /// Picks the format from the file name's extension and checks that the
    /// content really is of that format, so a mislabelled upload fails here
    /// with a clear message instead of producing garbage text.
    pub fn detect(file_name: &str, bytes: &[u8]) -> Result<Format, ParseError> {
        let ext = extension(file_name);
        let format = Format::from_extension(&ext).ok_or(ParseError::Unsupported(ext))?;
        match format {
            Format::Pdf => {
                // Readers accept a header anywhere in the first KiB (some
                // producers prepend junk), so do the same.
                let head = &bytes[..bytes.len().min(1024)];
                if find(head, b"%PDF-").is_none() {
                    return Err(ParseError::Corrupt(
                        "the file is not a PDF (it has no %PDF header)".into(),
                    ));
                }
            }
            Format::Docx => sniff_docx(bytes)?,
            Format::Text | Format::Markdown | Format::Html | Format::Csv => {
                let prefix = &bytes[..bytes.len().min(SNIFF_LEN)];
                decode_text(prefix, None)?;
            }
        }
        Ok(format)
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

/// Lower-cased extension of a file name, without the dot; empty if none.
fn extension(file_name: &str) -> String {
    // Browsers may send a full path (old IE) — only the last component counts.
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Signature of OLE compound files: legacy .doc, and password-protected
/// Office documents (which are not zips at all).
const CFB_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

fn sniff_docx(bytes: &[u8]) -> Result<(), ParseError> {
    if bytes.starts_with(CFB_MAGIC) {
        // An encrypted OOXML file is a compound file holding a stream named
        // "EncryptedPackage" (names are stored as UTF-16LE).
        let marker: Vec<u8> = "EncryptedPackage"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        if find(bytes, &marker).is_some() {
            return Err(ParseError::Encrypted);
        }
        return Err(ParseError::Corrupt(
            "it is an old-style Word (.doc) file, not .docx; save it as .docx and upload it again"
                .into(),
        ));
    }
    if !bytes.starts_with(b"PK") {
        return Err(ParseError::Corrupt(
            "the file is not a .docx (zip) file".into(),
        ));
    }
    let archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ParseError::Corrupt(format!("the .docx archive is damaged ({e})")))?;
    if archive.index_for_name(DOCX_BODY).is_none() {
        return Err(ParseError::Corrupt(format!(
            "the file is a zip archive but not a Word document ({DOCX_BODY} is missing)"
        )));
    }
    Ok(())
}

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

// ---------------------------------------------------------------------------
// Text decoding and normalisation
// ---------------------------------------------------------------------------

/// Decodes text bytes: a BOM wins; then BOM-less UTF-16 (recognised by its
/// zero bytes), UTF-8, and windows-1252 as the fallback that decodes
/// anything. `declared` is an encoding named by the document itself (HTML
/// `<meta charset>`), used when there is no BOM. Binary content is refused.
fn decode_text(bytes: &[u8], declared: Option<&'static Encoding>) -> Result<String, ParseError> {
    let (encoding, bom_len) = match Encoding::for_bom(bytes) {
        Some(found) => found,
        None => match utf16_without_bom(bytes) {
            Some(encoding) => (encoding, 0),
            None => {
                let head = &bytes[..bytes.len().min(SNIFF_LEN)];
                if head.contains(&0) {
                    return Err(binary_error());
                }
                let encoding = match declared {
                    Some(encoding) => encoding,
                    None if is_utf8_prefix(bytes) => encoding_rs::UTF_8,
                    None => encoding_rs::WINDOWS_1252,
                };
                (encoding, 0)
            }
        },
    };
    let (text, _had_errors) = encoding.decode_without_bom_handling(&bytes[bom_len..]);
    if looks_binary(&text) {
        return Err(binary_error());
    }
    Ok(text.into_owned())
}

fn binary_error() -> ParseError {
    ParseError::Corrupt("it contains binary data, not text".into())
}

/// Valid UTF-8, allowing a sequence cut off at the very end (the input may
/// be a prefix of the file).
fn is_utf8_prefix(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// UTF-16 text without a BOM has a zero byte in nearly every other position
/// when it is mostly Latin script; binary data does not show that pattern.
fn utf16_without_bom(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(4096) & !1];
    let pairs = head.len() / 2;
    if pairs < 4 {
        return None;
    }
    let zeros_even = head.iter().step_by(2).filter(|b| **b == 0).count();
    let zeros_odd = head.iter().skip(1).step_by(2).filter(|b| **b == 0).count();
    if zeros_odd * 10 >= pairs * 7 && zeros_even * 50 <= pairs {
        Some(encoding_rs::UTF_16LE)
    } else if zeros_even * 10 >= pairs * 7 && zeros_odd * 50 <= pairs {
        Some(encoding_rs::UTF_16BE)
    } else {
        None
    }
}

/// More than 2% control characters (other than layout ones) in the first
/// 64 KiB means the bytes were never text.
fn looks_binary(text: &str) -> bool {
    let mut total = 0usize;
    let mut control = 0usize;
    for c in text.chars().take(SNIFF_LEN) {
        total += 1;
        if c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c') {
            control += 1;
        }
    }
    control * 50 > total
}

/// Characters that carry no visible text: dropped everywhere. Besides
/// control characters and the usual zero-width ones, these are the
/// invisible format characters that can smuggle text past a reader: the
/// Unicode tag characters (U+E0000–E007F, which spell out ASCII
/// invisibly), bidirectional overrides and isolates, invisible math
/// operators, interlinear annotation marks and variation selectors. The
/// zero-width (non-)joiners stay: some scripts and emoji need them.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}'                      // soft hyphen
            | '\u{034F}'                    // combining grapheme joiner
            | '\u{061C}'                    // Arabic letter mark
            | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
            | '\u{180B}'..='\u{180F}'      // Mongolian selectors and separator
            | '\u{200B}'                    // zero-width space (the joiners
            | '\u{200E}' | '\u{200F}'      // U+200C/D spell Persian, Indic, emoji); LRM, RLM
            | '\u{202A}'..='\u{202E}'      // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'      // word joiner, invisible operators
            | '\u{2066}'..='\u{206F}'      // bidi isolates, deprecated format chars
            | '\u{FE00}'..='\u{FE0F}'      // variation selectors
            | '\u{FEFF}'                    // BOM / zero-width no-break space
            | '\u{FFF9}'..='\u{FFFB}'      // interlinear annotation
            | '\u{1BCA0}'..='\u{1BCA3}'    // shorthand format controls
            | '\u{1D173}'..='\u{1D17A}'    // musical formatting
            | '\u{E0000}'..='\u{E007F}'    // tag characters
            | '\u{E0100}'..='\u{E01EF}'    // variation selectors supplement
        )
}

/// The Latin presentation-form ligatures, which PDF fonts often map to;
/// spelled out so "ﬁnd" matches "find".
fn ligature(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{FB00}' => "ff",
        '\u{FB01}' => "fi",
        '\u{FB02}' => "fl",
        '\u{FB03}' => "ffi",
        '\u{FB04}' => "ffl",
        '\u{FB05}' | '\u{FB06}' => "st",
        _ => return None,
    })
}

fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\x0b' | '\x0c' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// Normalises one block: per line, whitespace runs become one space (or
/// one tab when `keep_tabs` and the run contains a tab, for table rows),
/// invisible characters go, lines are trimmed and empty lines dropped.
fn normalize_block(raw: &str, keep_tabs: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    for line in raw.split(is_line_break) {
        let line_start = out.len();
        if line_start > 0 {
            out.push('\n');
        }
        let content_start = out.len();
        let mut pending: Option<char> = None;
        for c in line.chars() {
            if c == '\t' && keep_tabs {
                pending = Some('\t');
            } else if c.is_whitespace() {
                pending.get_or_insert(' ');
            } else if !is_invisible(c) {
                if let Some(p) = pending.take() {
                    // Leading spaces are dropped; a leading tab is an empty
                    // first table cell and must stay.
                    if out.len() > content_start || p == '\t' {
                        out.push(p);
                    }
                }
                match ligature(c) {
                    Some(s) => out.push_str(s),
                    None => out.push(c),
                }
            }
        }
        if out.len() == content_start {
            out.truncate(line_start);
        }
    }
    out
}

/// One line of text: every whitespace run (line breaks included) becomes a
/// single space. For headings, titles and table cells.
fn normalize_inline(raw: &str) -> String {
    normalize_block(&raw.replace(is_line_break, " "), false)
}

/// Accumulates the inline content of one block as a browser lays it out:
/// source whitespace (line breaks included) collapses to one space, while
/// explicit line breaks and table cell boundaries are kept.
#[derive(Default)]
struct InlineBuf {
    text: String,
    /// Emitted before the first visible character (list markers), so an
    /// empty item does not produce a lone "-".
    prefix: Option<String>,
}

impl InlineBuf {
    fn push_text(&mut self, s: &str) {
        for c in s.chars() {
            if c.is_whitespace() {
                if !self.text.is_empty() && !self.text.ends_with([' ', '\n', '\t']) {
                    self.text.push(' ');
                }
            } else {
                if let Some(prefix) = self.prefix.take() {
                    self.text.push_str(&prefix);
                }
                self.text.push(c);
            }
        }
    }

    fn trim_trailing_space(&mut self) {
        let trimmed = self.text.trim_end_matches(' ').len();
        self.text.truncate(trimmed);
    }

    fn hard_break(&mut self) {
        self.trim_trailing_space();
        if !self.text.is_empty() {
            self.text.push('\n');
        }
    }

    fn cell_break(&mut self) {
        self.trim_trailing_space();
        self.text.push('\t');
    }

    fn set_prefix(&mut self, prefix: String) {
        self.prefix = Some(prefix);
    }

    /// Takes the text; a prefix not yet used stays for the next text.
    fn take(&mut self) -> String {
        std::mem::take(&mut self.text)
    }
}

/// The headings enclosing the current position.
#[derive(Default)]
struct HeadingStack(Vec<(u8, String)>);

impl HeadingStack {
    /// Enters a heading of `level` (smaller is outer) and returns the new path.
    fn enter(&mut self, level: u8, text: String) -> Vec<String> {
        while self.0.last().is_some_and(|(l, _)| *l >= level) {
            self.0.pop();
        }
        self.0.push((level, text));
        self.0.iter().map(|(_, t)| t.clone()).collect()
    }
}

/// The section being filled by [`DocBuilder`].
struct OpenSection {
    /// Byte offset of its first block; `None` while it has none.
    start: Option<usize>,
    heading_path: Vec<String>,
    page: Option<u32>,
    /// Whether it holds nothing but its heading(s) so far.
    heading_only: bool,
}

/// Builds the normalised text and its sections block by block, enforcing
/// `max_chars` as it goes so a huge document stops early.
struct DocBuilder {
    text: String,
    chars: usize,
    max_chars: usize,
    sections: Vec<Section>,
    open: OpenSection,
}

impl DocBuilder {
    fn new(limits: &ParseLimits) -> Self {
        Self {
            text: String::new(),
            chars: 0,
            max_chars: limits.max_chars,
            sections: Vec::new(),
            open: OpenSection {
                start: None,
                heading_path: Vec::new(),
                page: None,
                heading_only: false,
            },
        }
    }

    /// Appends a block of body text; returns whether it had any content.
    fn push_block(&mut self, raw: &str, keep_tabs: bool) -> Result<bool, ParseError> {
        let added = self.append(raw, keep_tabs)?;
        if added {
            self.open.heading_only = false;
        }
        Ok(added)
    }

    fn append(&mut self, raw: &str, keep_tabs: bool) -> Result<bool, ParseError> {
        let block = normalize_block(raw, keep_tabs);
        if block.is_empty() {
            return Ok(false);
        }
        let separator = if self.text.is_empty() { "" } else { "\n\n" };
        self.chars += separator.len() + block.chars().count();
        if self.chars > self.max_chars {
            return Err(ParseError::TooLarge {
                what: LimitKind::Chars,
                limit: self.max_chars as u64,
            });
        }
        self.text.push_str(separator);
        if self.open.start.is_none() {
            self.open.start = Some(self.text.len());
        }
        self.text.push_str(&block);
        Ok(true)
    }

    /// Starts a new section; `heading` (if any) becomes its first block.
    fn start_section(
        &mut self,
        heading_path: Vec<String>,
        page: Option<u32>,
        heading: Option<&str>,
    ) -> Result<(), ParseError> {
        let open = &self.open;
        // A heading directly followed by a sub-heading: merge into the
        // sub-section rather than leave a section that is only a title.
        let absorb = open.heading_only
            && open.page == page
            && heading_path.len() > open.heading_path.len()
            && heading_path.starts_with(&open.heading_path);
        if absorb {
            self.open.heading_path = heading_path;
        } else {
            self.close_open();
            self.open = OpenSection {
                start: None,
                heading_path,
                page,
                heading_only: false,
            };
        }
        if let Some(heading) = heading {
            if self.append(heading, false)? {
                self.open.heading_only = true;
            }
        }
        Ok(())
    }

    fn close_open(&mut self) {
        if let Some(start) = self.open.start.take() {
            self.sections.push(Section {
                byte_start: start,
                byte_end: start, // fixed in `finish`
                heading_path: std::mem::take(&mut self.open.heading_path),
                page: self.open.page,
            });
        }
    }

    fn finish(
        mut self,
        title: Option<String>,
        pages: Option<u32>,
    ) -> Result<ParsedDocument, ParseError> {
        self.close_open();
        if self.text.is_empty() {
            return Err(ParseError::Empty);
        }
        // Each section runs up to the next one, the last to the end.
        let ends: Vec<usize> = self
            .sections
            .iter()
            .skip(1)
            .map(|s| s.byte_start)
            .chain([self.text.len()])
            .collect();
        for (section, end) in self.sections.iter_mut().zip(ends) {
            section.byte_end = end;
        }
        Ok(ParsedDocument {
            text: self.text,
            sections: self.sections,
            pages,
            title: title
                .map(|t| normalize_inline(&t))
                .filter(|t| !t.is_empty()),
        })
    }
}

// ---------------------------------------------------------------------------
// Plain text
// ---------------------------------------------------------------------------

/// Paragraphs are separated by blank lines; line breaks inside a paragraph
/// are kept (lists, addresses, poems). One section.
fn parse_text(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedDocument, ParseError> {
    // CRLF is one line break, not two (which would read as a blank line).
    let text = decode_text(bytes, None)?.replace("\r\n", "\n");
    let mut builder = DocBuilder::new(limits);
    let mut paragraph = String::new();
    for line in text.split(is_line_break) {
        if line.trim().is_empty() {
            builder.push_block(&paragraph, false)?;
            paragraph.clear();
        } else {
            paragraph.push_str(line);
            paragraph.push('\n');
        }
    }
    builder.push_block(&paragraph, false)?;
    builder.finish(None, None)
}

// ---------------------------------------------------------------------------
// Markdown
// ---------------------------------------------------------------------------

/// Rendered to plain text with pulldown-cmark (CommonMark + tables,
/// footnotes, task lists; front matter and raw HTML are dropped). Sections
/// split at ATX and setext headings.
fn parse_markdown(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedDocument, ParseError> {
    use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

    let source = decode_text(bytes, None)?;
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS;

    let mut builder = DocBuilder::new(limits);
    let mut headings = HeadingStack::default();
    let mut title: Option<String> = None;
    let mut buf = InlineBuf::default();
    let mut heading: Option<(u8, InlineBuf)> = None;
    let mut code: Option<String> = None;
    let mut in_table = false;
    let mut in_metadata = false;
    // Source of the raw HTML block being read, if any.
    let mut html_block: Option<String> = None;
    // Next number of each enclosing ordered list (None: bullet list).
    let mut lists: Vec<Option<u64>> = Vec::new();

    for event in Parser::new_ext(&source, options) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                builder.push_block(&buf.take(), false)?;
                let level = match level {
                    HeadingLevel::H1 => 1,
                    HeadingLevel::H2 => 2,
                    HeadingLevel::H3 => 3,
                    HeadingLevel::H4 => 4,
                    HeadingLevel::H5 => 5,
                    HeadingLevel::H6 => 6,
                };
                heading = Some((level, InlineBuf::default()));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((level, mut text)) = heading.take() {
                    let text = normalize_inline(&text.take());
                    if !text.is_empty() {
                        if level == 1 && title.is_none() {
                            title = Some(text.clone());
                        }
                        let path = headings.enter(level, text.clone());
                        builder.start_section(path, None, Some(&text))?;
                    }
                }
            }
            Event::Start(Tag::CodeBlock(_)) => {
                builder.push_block(&buf.take(), false)?;
                code = Some(String::new());
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some(code) = code.take() {
                    builder.push_block(&code, false)?;
                }
            }
            Event::Start(Tag::List(first)) => {
                builder.push_block(&buf.take(), false)?;
                lists.push(first);
            }
            Event::End(TagEnd::List(_)) => {
                builder.push_block(&buf.take(), false)?;
                lists.pop();
            }
            Event::Start(Tag::Item) => {
                builder.push_block(&buf.take(), false)?;
                let marker = match lists.last_mut() {
                    Some(Some(n)) => {
                        let marker = format!("{n}. ");
                        *n += 1;
                        marker
                    }
                    _ => "- ".to_string(),
                };
                buf.set_prefix(marker);
            }
            Event::End(TagEnd::Item) => {
                builder.push_block(&buf.take(), false)?;
                buf.prefix = None;
            }
            Event::Start(Tag::Table(_)) => {
                builder.push_block(&buf.take(), false)?;
                in_table = true;
            }
            Event::End(TagEnd::Table) => {
                builder.push_block(&buf.take(), true)?;
                in_table = false;
            }
            Event::End(TagEnd::TableCell) => buf.cell_break(),
            Event::End(TagEnd::TableHead | TagEnd::TableRow) => buf.hard_break(),
            Event::Start(Tag::MetadataBlock(_)) => in_metadata = true,
            Event::End(TagEnd::MetadataBlock(_)) => in_metadata = false,
            Event::Start(Tag::HtmlBlock) => {
                builder.push_block(&buf.take(), false)?;
                html_block = Some(String::new());
            }
            Event::End(TagEnd::HtmlBlock) => {
                if let Some(source) = html_block.take() {
                    builder.push_block(&html_fragment_text(&source), false)?;
                }
            }
            // Inline tags (<b>, <br>) are dropped; the text between them
            // arrives as Text events.
            Event::Html(source) => {
                if let Some(block) = html_block.as_mut() {
                    block.push_str(&source);
                }
            }
            Event::Start(
                Tag::Paragraph
                | Tag::BlockQuote(_)
                | Tag::FootnoteDefinition(_)
                | Tag::DefinitionListTitle
                | Tag::DefinitionListDefinition,
            )
            | Event::End(
                TagEnd::Paragraph
                | TagEnd::BlockQuote(_)
                | TagEnd::FootnoteDefinition
                | TagEnd::DefinitionListTitle
                | TagEnd::DefinitionListDefinition,
            )
            | Event::Rule => {
                // Inside a table a paragraph cannot start; elsewhere these
                // all end the current block.
                if !in_table {
                    builder.push_block(&buf.take(), false)?;
                }
            }
            Event::Text(text)
            | Event::Code(text)
            | Event::InlineMath(text)
            | Event::DisplayMath(text) => {
                if in_metadata {
                    continue;
                }
                if let Some(code) = code.as_mut() {
                    code.push_str(&text);
                } else if let Some((_, heading)) = heading.as_mut() {
                    heading.push_text(&text);
                } else {
                    buf.push_text(&text);
                }
            }
            Event::SoftBreak => match heading.as_mut() {
                Some((_, heading)) => heading.push_text(" "),
                None => buf.push_text(" "),
            },
            Event::HardBreak => buf.hard_break(),
            Event::TaskListMarker(done) => buf.push_text(if done { "[x] " } else { "[ ] " }),
            Event::FootnoteReference(label) => buf.push_text(&format!("[{label}]")),
            _ => {}
        }
    }
    builder.push_block(&buf.take(), in_table)?;
    builder.finish(title, None)
}

// ---------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------

/// Elements whose content is never visible text or is page furniture.
fn html_skipped(name: &str) -> bool {
    matches!(
        name,
        "script"
            | "style"
            | "noscript"
            | "template"
            | "nav"
            | "footer"
            | "svg"
            | "math"
            | "canvas"
            | "iframe"
            | "object"
            | "embed"
            | "select"
            | "button"
            | "dialog"
    )
}

/// Elements that start and end a block of text.
fn html_block(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "article"
            | "aside"
            | "blockquote"
            | "body"
            | "caption"
            | "center"
            | "dd"
            | "details"
            | "dir"
            | "div"
            | "dl"
            | "dt"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "form"
            | "header"
            | "hgroup"
            | "hr"
            | "html"
            | "legend"
            | "li"
            | "main"
            | "menu"
            | "ol"
            | "p"
            | "pre"
            | "section"
            | "summary"
            | "ul"
    )
}

fn html_heading_level(name: &str) -> Option<u8> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

/// Hidden by the author: `hidden`, `aria-hidden="true"`, a navigation
/// landmark, or styling that a reader would not see (inline, or a class or
/// id that a `<style>` rule of the page hides). Text hidden from readers is
/// a classic way to feed instructions to a model, so it is never indexed.
fn html_hidden(node: ego_tree::NodeRef<'_, scraper::Node>, hidden: &HiddenSelectors) -> bool {
    let Some(element) = node.value().as_element() else {
        return false;
    };
    if element.attr("hidden").is_some()
        || element.attr("aria-hidden") == Some("true")
        || element.attr("role") == Some("navigation")
    {
        return true;
    }
    let by_style = element.attr("style").map_or(Hiding::Shown, style_hiding);
    let by_id = element
        .id()
        .and_then(|id| hidden.ids.get(id).copied())
        .unwrap_or(Hiding::Shown);
    let by_class = element
        .classes()
        .filter_map(|class| hidden.classes.get(class).copied())
        .fold(Hiding::Shown, Hiding::or);
    match by_style.or(by_id).or(by_class) {
        Hiding::Shown => false,
        Hiding::Hidden => true,
        // Inherited properties: a descendant that sets its own shows again.
        Hiding::UnlessOverridden(property) => !node.descendants().skip(1).any(|d| {
            d.value()
                .as_element()
                .and_then(|e| e.attr("style"))
                .is_some_and(|style| style.to_ascii_lowercase().contains(property))
        }),
    }
}

/// What a style does to an element's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hiding {
    Shown,
    /// Gone with its whole subtree (`display:none`, `opacity:0`, clipped…).
    Hidden,
    /// Hidden through an inherited property (`font-size:0`,
    /// `visibility:hidden`, `color`): descendants may set their own.
    UnlessOverridden(&'static str),
}

impl Hiding {
    fn or(self, other: Hiding) -> Hiding {
        match (self, other) {
            (Hiding::Hidden, _) | (_, Hiding::Hidden) => Hiding::Hidden,
            (Hiding::Shown, other) => other,
            (soft, _) => soft,
        }
    }
}

/// Classes and ids that the page's own stylesheet hides.
#[derive(Default)]
struct HiddenSelectors {
    classes: HashMap<String, Hiding>,
    ids: HashMap<String, Hiding>,
}

impl HiddenSelectors {
    /// Reads the top-level rules of `<style>` text: a simple selector
    /// (`.name`, `#name`, `tag.name`, `tag#name`) whose declarations hide
    /// makes that class or id hidden, unless another rule mentioning it
    /// shows it (`.tab.active { display: block }`). Rules inside at-rules
    /// (`@media print`) apply only sometimes and are ignored, as is
    /// anything fancier.
    fn add_stylesheet(&mut self, css: &str) {
        let css = strip_css_comments(css);
        let mut shown: HashSet<String> = HashSet::new();
        let mut depth = 0usize;
        let mut prelude_start = 0;
        let mut block_start = 0;
        let mut prelude = "";
        for (i, c) in css.char_indices() {
            match c {
                '{' => {
                    if depth == 0 {
                        prelude = &css[prelude_start..i];
                        block_start = i + 1;
                    }
                    depth += 1;
                }
                '}' if depth > 0 => {
                    depth -= 1;
                    if depth == 0 {
                        if !prelude.trim_start().starts_with('@') {
                            self.add_rule(prelude, &css[block_start..i], &mut shown);
                        }
                        prelude_start = i + 1;
                    }
                }
                ';' if depth == 0 => prelude_start = i + 1,
                _ => {}
            }
        }
        for name in shown {
            self.classes.remove(&name);
            self.ids.remove(&name);
        }
    }

    fn add_rule(&mut self, selectors: &str, declarations: &str, shown: &mut HashSet<String>) {
        let hiding = style_hiding(declarations);
        let shows = hiding == Hiding::Shown && style_shows(declarations);
        let simple = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        };
        for selector in selectors.split(',') {
            let selector = selector.trim();
            if shows {
                // Every class and id this selector names, in any position.
                for part in selector.split(['.', '#']).skip(1) {
                    let name: String = part
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
                        .collect();
                    shown.insert(name);
                }
                continue;
            }
            if hiding == Hiding::Shown {
                continue;
            }
            if let Some((_, class)) = selector
                .split_once('.')
                .filter(|(tag, class)| (tag.is_empty() || simple(tag)) && simple(class))
            {
                self.classes.insert(class.to_owned(), hiding);
            } else if let Some((_, id)) = selector
                .split_once('#')
                .filter(|(tag, id)| (tag.is_empty() || simple(tag)) && simple(id))
            {
                self.ids.insert(id.to_owned(), hiding);
            }
        }
    }
}

fn strip_css_comments(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find("*/") {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// CSS declarations as lower-case `property → value`, without whitespace or
/// `!important`.
fn css_properties(declarations: &str) -> HashMap<String, String> {
    let compact: String = declarations
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    compact
        .split(';')
        .filter_map(|declaration| declaration.split_once(':'))
        .map(|(name, value)| {
            (
                name.to_owned(),
                value.trim_end_matches("!important").to_owned(),
            )
        })
        .collect()
}

/// Whether declarations make an element shown again (`display` other than
/// `none`, `visibility:visible`, a non-zero `opacity`).
fn style_shows(declarations: &str) -> bool {
    let properties = css_properties(declarations);
    properties.get("display").is_some_and(|v| v != "none")
        || properties.get("visibility").is_some_and(|v| v == "visible")
        || properties
            .get("opacity")
            .is_some_and(|v| v.parse::<f64>().is_ok_and(|o| o > 0.0))
}

/// What CSS declarations do to an element's text: nothing, or hide it by
/// not displaying it, zero opacity, clipping, zero size, pushing it
/// off-screen, or (inherited, so descendants may undo it) a zero font size,
/// `visibility:hidden`, a transparent colour or the colour of its own
/// background.
fn style_hiding(declarations: &str) -> Hiding {
    let properties = css_properties(declarations);
    let get = |name: &str| properties.get(name).map(String::as_str);
    let number = |value: &str| -> Option<f64> {
        let end = value
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
            .unwrap_or(value.len());
        value[..end].parse().ok()
    };
    let is_zero = |value: &str| number(value) == Some(0.0);
    let far_off = |value: &str| {
        number(value).is_some_and(|n| {
            let unit = value.trim_start_matches(|c: char| c.is_ascii_digit() || "+-.".contains(c));
            let px = if unit.starts_with("em") || unit.starts_with("rem") {
                n * 16.0
            } else {
                n
            };
            px <= -500.0
        })
    };
    let clipped_overflow = get("overflow").is_some_and(|v| v == "hidden" || v == "clip");
    let gone = get("display") == Some("none")
        || get("opacity").is_some_and(is_zero)
        || get("transform").is_some_and(|v| v.starts_with("scale(0)") || v.starts_with("scale(0,"))
        || get("clip")
            .is_some_and(|v| v.starts_with("rect(0") || v.starts_with("rect(1px,1px,1px,1px"))
        || get("clip-path")
            .is_some_and(|v| v.starts_with("inset(50%") || v.starts_with("inset(100%"))
        || [
            "left",
            "top",
            "right",
            "text-indent",
            "margin-left",
            "margin-top",
        ]
        .iter()
        .any(|p| get(p).is_some_and(far_off))
        || (clipped_overflow
            && ["width", "height", "max-width", "max-height"]
                .iter()
                .any(|p| get(p).is_some_and(is_zero)));
    if gone {
        Hiding::Hidden
    } else if get("font-size").is_some_and(is_zero) {
        Hiding::UnlessOverridden("font-size")
    } else if get("visibility").is_some_and(|v| v == "hidden" || v == "collapse") {
        Hiding::UnlessOverridden("visibility")
    } else if get("color") == Some("transparent")
        || get("color").is_some_and(|fg| get("background-color").or(get("background")) == Some(fg))
    {
        Hiding::UnlessOverridden("color")
    } else {
        Hiding::Shown
    }
}

/// The encoding a `<meta charset=…>` (or http-equiv content type) in the
/// first KiB names, as browsers pre-scan for it.
fn html_declared_encoding(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = bytes[..bytes.len().min(1024)].to_ascii_lowercase();
    let at = find(&head, b"charset=")? + b"charset=".len();
    let rest = &head[at..];
    let rest = rest
        .strip_prefix(b"\"")
        .or_else(|| rest.strip_prefix(b"'"))
        .unwrap_or(rest);
    let end = rest
        .iter()
        .position(|b| matches!(b, b'"' | b'\'' | b';' | b'>' | b'/') || b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let encoding = Encoding::for_label(&rest[..end])?;
    // A page that is being decoded as ASCII-compatible cannot really be
    // UTF-16, whatever it says (the HTML spec's rule).
    if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE {
        Some(encoding_rs::UTF_8)
    } else {
        Some(encoding)
    }
}

/// Visible text of an HTML fragment embedded in Markdown (READMEs use
/// `<p align="center">`, `<details>`): block elements become line breaks.
fn html_fragment_text(source: &str) -> String {
    use ego_tree::iter::Edge;
    use scraper::Node;

    let fragment = scraper::Html::parse_fragment(source);
    let mut buf = InlineBuf::default();
    let mut skipping: Option<ego_tree::NodeId> = None;
    let breaks = |name: &str| {
        name == "br" || html_block(name) || html_heading_level(name).is_some() || name == "tr"
    };
    for edge in fragment.tree.root().traverse() {
        match edge {
            Edge::Open(node) if skipping.is_none() => match node.value() {
                Node::Element(e)
                    if html_skipped(e.name()) || html_hidden(node, &HiddenSelectors::default()) =>
                {
                    skipping = Some(node.id());
                }
                Node::Element(e) if breaks(e.name()) => buf.hard_break(),
                Node::Element(e) if matches!(e.name(), "td" | "th") => buf.push_text(" "),
                Node::Text(text) => buf.push_text(text),
                _ => {}
            },
            Edge::Close(node) => {
                if skipping == Some(node.id()) {
                    skipping = None;
                } else if skipping.is_none() {
                    if let Node::Element(e) = node.value() {
                        if breaks(e.name()) {
                            buf.hard_break();
                        }
                    }
                }
            }
            Edge::Open(_) => {}
        }
    }
    buf.take()
}

/// Visible text with block structure; h1–h6 start sections.
fn parse_html(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedDocument, ParseError> {
    use ego_tree::iter::Edge;
    use scraper::{Html, Node};

    let source = decode_text(bytes, html_declared_encoding(bytes))?;
    let document = Html::parse_document(&source);
    let mut hidden = HiddenSelectors::default();
    for node in document.tree.root().descendants() {
        if let Node::Element(element) = node.value() {
            if element.name() == "style" {
                let css: String = node
                    .children()
                    .filter_map(|child| child.value().as_text().map(|t| t.to_string()))
                    .collect();
                hidden.add_stylesheet(&css);
            }
        }
    }

    let mut builder = DocBuilder::new(limits);
    let mut headings = HeadingStack::default();
    let mut title: Option<String> = None;
    let mut first_h1: Option<String> = None;
    let mut buf = InlineBuf::default();
    let mut heading: Option<(u8, InlineBuf)> = None;
    let mut title_text: Option<String> = None;
    // The node whose subtree is being skipped, if any.
    let mut skipping: Option<ego_tree::NodeId> = None;
    let mut table_depth = 0usize;
    let mut pre_depth = 0usize;
    let mut lists: Vec<Option<u64>> = Vec::new();

    // `traverse` walks the tree without recursion, so absurdly deep nesting
    // in hostile HTML cannot overflow the stack.
    for edge in document.tree.root().traverse() {
        match edge {
            Edge::Open(node) => {
                if skipping.is_some() {
                    continue;
                }
                match node.value() {
                    Node::Element(element) => {
                        let name = element.name();
                        if name == "title" && title_text.is_none() {
                            title_text = Some(String::new());
                            continue;
                        }
                        if html_skipped(name) || html_hidden(node, &hidden) {
                            skipping = Some(node.id());
                            continue;
                        }
                        // A heading inside a table cell is just cell text.
                        if let Some(level) = html_heading_level(name).filter(|_| table_depth == 0) {
                            builder.push_block(&buf.take(), false)?;
                            heading = Some((level, InlineBuf::default()));
                            continue;
                        }
                        match name {
                            "br" => match heading.as_mut() {
                                Some((_, h)) => h.push_text(" "),
                                None => buf.hard_break(),
                            },
                            "table" => {
                                if table_depth == 0 {
                                    builder.push_block(&buf.take(), false)?;
                                }
                                table_depth += 1;
                            }
                            // Inside tables these are plain cell content.
                            "pre" if table_depth == 0 => {
                                builder.push_block(&buf.take(), false)?;
                                pre_depth += 1;
                            }
                            "ul" | "ol" if table_depth == 0 => {
                                builder.push_block(&buf.take(), false)?;
                                lists.push((name == "ol").then(|| {
                                    element
                                        .attr("start")
                                        .and_then(|s| s.trim().parse().ok())
                                        .unwrap_or(1)
                                }));
                            }
                            "li" if table_depth == 0 => {
                                builder.push_block(&buf.take(), false)?;
                                let marker = match lists.last_mut() {
                                    Some(Some(n)) => {
                                        let marker = format!("{n}. ");
                                        *n += 1;
                                        marker
                                    }
                                    _ => "- ".to_string(),
                                };
                                buf.set_prefix(marker);
                            }
                            _ if html_block(name) => {
                                if table_depth == 0 {
                                    builder.push_block(&buf.take(), false)?;
                                } else {
                                    buf.push_text(" ");
                                }
                            }
                            _ => {}
                        }
                    }
                    Node::Text(text) => {
                        if let Some(title_text) = title_text.as_mut().filter(|_| title.is_none()) {
                            title_text.push_str(text);
                        } else if let Some((_, h)) = heading.as_mut() {
                            h.push_text(text);
                        } else if pre_depth > 0 {
                            // Preformatted: keep the author's line breaks.
                            for (i, line) in text.split('\n').enumerate() {
                                if i > 0 {
                                    buf.hard_break();
                                }
                                buf.push_text(line);
                            }
                        } else {
                            buf.push_text(text);
                        }
                    }
                    _ => {}
                }
            }
            Edge::Close(node) => {
                if skipping == Some(node.id()) {
                    skipping = None;
                    continue;
                }
                if skipping.is_some() {
                    continue;
                }
                let Node::Element(element) = node.value() else {
                    continue;
                };
                let name = element.name();
                if name == "title" && title.is_none() {
                    title = title_text.clone().map(|t| normalize_inline(&t));
                    continue;
                }
                if let Some(level) = html_heading_level(name).filter(|_| table_depth == 0) {
                    if let Some((_, mut h)) = heading.take() {
                        let text = normalize_inline(&h.take());
                        if !text.is_empty() {
                            if level == 1 && first_h1.is_none() {
                                first_h1 = Some(text.clone());
                            }
                            let path = headings.enter(level, text.clone());
                            builder.start_section(path, None, Some(&text))?;
                        }
                    }
                    continue;
                }
                match name {
                    "td" | "th" => buf.cell_break(),
                    "tr" => buf.hard_break(),
                    "table" => {
                        table_depth = table_depth.saturating_sub(1);
                        if table_depth == 0 {
                            builder.push_block(&buf.take(), true)?;
                        }
                    }
                    "pre" if table_depth == 0 => {
                        builder.push_block(&buf.take(), false)?;
                        pre_depth = pre_depth.saturating_sub(1);
                    }
                    "ul" | "ol" if table_depth == 0 => {
                        builder.push_block(&buf.take(), false)?;
                        lists.pop();
                    }
                    "li" if table_depth == 0 => {
                        builder.push_block(&buf.take(), false)?;
                        buf.prefix = None;
                    }
                    _ if html_block(name) && table_depth == 0 => {
                        builder.push_block(&buf.take(), false)?;
                    }
                    _ => {}
                }
            }
        }
    }
    builder.push_block(&buf.take(), table_depth > 0)?;
    let title = title.filter(|t| !t.is_empty()).or(first_h1);
    builder.finish(title, None)
}

// ---------------------------------------------------------------------------
// DOCX
// ---------------------------------------------------------------------------

const DOCX_BODY: &str = "word/document.xml";
/// Cap on the unpacked size of `word/document.xml`: far above any real
/// document's XML, far below what a zip bomb would expand to.
const DOCX_XML_CAP: usize = 256 * 1024 * 1024;
/// Cap on the small side parts (styles, core properties).
const DOCX_SIDE_CAP: usize = 16 * 1024 * 1024;

/// Reads one part of the archive as text, refusing to unpack more than
/// `cap` bytes whatever its header claims. `Ok(None)` if it is absent.
fn read_zip_part(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    cap: usize,
) -> Result<Option<String>, ParseError> {
    use zip::result::ZipError;

    let file = match archive.by_name(name) {
        Ok(file) => file,
        Err(ZipError::FileNotFound) => return Ok(None),
        Err(ZipError::UnsupportedArchive(ZipError::PASSWORD_REQUIRED)) => {
            return Err(ParseError::Encrypted)
        }
        Err(e) => {
            return Err(ParseError::Corrupt(format!(
                "the .docx archive is damaged ({e})"
            )))
        }
    };
    let mut data = Vec::new();
    file.take(cap as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| ParseError::Corrupt(format!("the .docx archive is damaged ({e})")))?;
    if data.len() > cap {
        return Err(ParseError::Corrupt(format!(
            "{name} unpacks to more than {} MiB",
            cap / (1024 * 1024)
        )));
    }
    // OOXML parts are UTF-8 or UTF-16 with a BOM.
    let encoding = Encoding::for_bom(&data).map_or(encoding_rs::UTF_8, |(e, _)| e);
    let (text, _) = encoding.decode_with_bom_removal(&data);
    Ok(Some(text.into_owned()))
}

fn xml_reader(xml: &str) -> quick_xml::Reader<&[u8]> {
    let mut reader = quick_xml::Reader::from_str(xml);
    // Tolerate sloppy producers: a mismatched end tag should not lose the
    // whole document.
    reader.config_mut().check_end_names = false;
    reader
}

fn xml_error(part: &str, e: impl fmt::Display) -> ParseError {
    ParseError::Corrupt(format!("{part} is not well-formed XML ({e})"))
}

/// The value of the attribute whose local name is `local` (`w:val` → "val").
fn xml_attr(element: &quick_xml::events::BytesStart<'_>, local: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == local)
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// Text of a predefined or numeric entity reference.
fn xml_entity(reference: &quick_xml::events::BytesRef<'_>) -> Option<String> {
    if let Ok(Some(c)) = reference.resolve_char_ref() {
        return Some(c.to_string());
    }
    let text = match &**reference {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        _ => return None,
    };
    Some(text.to_string())
}

/// Heading level (0 = Title, 1–9 = Heading 1–9) of each paragraph style in
/// `word/styles.xml`. Style ids are localised ("berschrift1"), but style
/// names of built-in styles are always English, and custom heading styles
/// carry an outline level, possibly through `basedOn`.
fn docx_heading_styles(styles_xml: &str) -> Result<HashMap<String, u8>, ParseError> {
    use quick_xml::events::Event;

    struct Style {
        level: Option<u8>,
        based_on: Option<String>,
    }
    let mut styles: HashMap<String, Style> = HashMap::new();
    let mut current: Option<(String, Style)> = None;
    let mut reader = xml_reader(styles_xml);
    loop {
        let event = reader
            .read_event()
            .map_err(|e| xml_error("word/styles.xml", e))?;
        match event {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                "style" => {
                    if let Some((id, style)) = current.take() {
                        styles.insert(id, style);
                    }
                    if xml_attr(&e, "type").as_deref() == Some("paragraph") {
                        if let Some(id) = xml_attr(&e, "styleId") {
                            let style = Style {
                                level: None,
                                based_on: None,
                            };
                            current = Some((id, style));
                        }
                    }
                }
                "name" => {
                    if let (Some((_, style)), Some(name)) = (current.as_mut(), xml_attr(&e, "val"))
                    {
                        let name = name.to_ascii_lowercase();
                        if name == "title" {
                            style.level = Some(0);
                        } else if let Some(n) = name.strip_prefix("heading ") {
                            style.level = n.trim().parse().ok().filter(|n| (1..=9).contains(n));
                        }
                    }
                }
                "outlineLvl" => {
                    if let Some((_, style)) = current.as_mut() {
                        let level: Option<u8> = xml_attr(&e, "val").and_then(|v| v.parse().ok());
                        if style.level.is_none() {
                            style.level = level.filter(|l| *l < 9).map(|l| l + 1);
                        }
                    }
                }
                "basedOn" => {
                    if let Some((_, style)) = current.as_mut() {
                        style.based_on = xml_attr(&e, "val");
                    }
                }
                _ => {}
            },
            Event::End(e) if e.local_name().as_ref() == "style" => {
                if let Some((id, style)) = current.take() {
                    styles.insert(id, style);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut levels = HashMap::new();
    for id in styles.keys() {
        // Follow basedOn a few steps (cycles are possible in broken files).
        let mut style_id = id;
        for _ in 0..10 {
            let Some(style) = styles.get(style_id) else {
                break;
            };
            if let Some(level) = style.level {
                levels.insert(id.clone(), level);
                break;
            }
            match &style.based_on {
                Some(parent) => style_id = parent,
                None => break,
            }
        }
    }
    Ok(levels)
}

/// Heading level from a style id alone, for files without styles.xml.
fn docx_heading_from_id(style_id: &str) -> Option<u8> {
    let lower = style_id.to_ascii_lowercase();
    if lower == "title" {
        return Some(0);
    }
    lower
        .strip_prefix("heading")
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=9).contains(n))
}

/// `dc:title` from `docProps/core.xml`.
fn docx_core_title(core_xml: &str) -> Option<String> {
    use quick_xml::events::Event;

    let mut reader = xml_reader(core_xml);
    let mut in_title = false;
    let mut title = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) if e.local_name().as_ref() == "title" => in_title = true,
            Event::End(e) if e.local_name().as_ref() == "title" => break,
            Event::Text(t) if in_title => title.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_title => title.push_str(&xml_entity(&r)?),
            Event::Eof => break,
            _ => {}
        }
    }
    Some(normalize_inline(&title)).filter(|t| !t.is_empty())
}

#[derive(Default)]
struct DocxParagraph {
    text: InlineBuf,
    level: Option<u8>,
}

#[derive(Default)]
struct DocxTable {
    rows: Vec<String>,
    cells: Vec<String>,
    cell: String,
}

/// Elements of document.xml whose content is not part of the visible text:
/// deleted revisions, field codes, moved-from copies, the fallback copy of
/// alternate content (the Choice is read), and content-control properties.
fn docx_skipped(local: &str) -> bool {
    matches!(
        local,
        "del" | "delText" | "instrText" | "moveFrom" | "Fallback" | "sdtPr" | "rPr"
    )
}

/// Paragraphs of `word/document.xml`; Title/Heading styles start sections;
/// tables become tab-separated rows.
fn parse_docx(
    bytes: &[u8],
    limits: &ParseLimits,
    xml_cap: usize,
) -> Result<ParsedDocument, ParseError> {
    use quick_xml::events::Event;

    sniff_docx(bytes)?;
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ParseError::Corrupt(format!("the .docx archive is damaged ({e})")))?;
    let body = read_zip_part(&mut archive, DOCX_BODY, xml_cap)?
        .ok_or_else(|| ParseError::Corrupt(format!("the Word document has no {DOCX_BODY}")))?;
    let style_levels = match read_zip_part(&mut archive, "word/styles.xml", DOCX_SIDE_CAP)? {
        Some(xml) => docx_heading_styles(&xml)?,
        None => HashMap::new(),
    };
    let core_title = read_zip_part(&mut archive, "docProps/core.xml", DOCX_SIDE_CAP)?
        .and_then(|xml| docx_core_title(&xml));

    let mut builder = DocBuilder::new(limits);
    let mut headings = HeadingStack::default();
    let mut title_paragraph: Option<String> = None;
    let mut first_heading: Option<String> = None;
    // Paragraphs nest (text boxes inside a run), and so do tables.
    let mut paragraphs: Vec<DocxParagraph> = Vec::new();
    let mut tables: Vec<DocxTable> = Vec::new();
    let mut in_text = false;
    let mut in_ppr = false;
    // Runs formatted as hidden text (`<w:vanish/>` directly in the run's
    // properties; not in `w:rPrChange`, the formatting before a tracked
    // change) are not shown by Word. The depth of the run's `w:rPr`:
    let mut run_props_depth: Option<usize> = None;
    let mut run_hidden = false;
    let mut depth = 0usize;
    let mut skip_until: Option<usize> = None;

    let mut reader = xml_reader(&body);
    loop {
        let event = reader.read_event().map_err(|e| xml_error(DOCX_BODY, e))?;
        match event {
            Event::Start(e) => {
                depth += 1;
                let local = e.local_name();
                let local = local.as_ref();
                // Run properties are skipped, all but whether the run is hidden.
                if local == "vanish" && run_props_depth == Some(depth - 1) {
                    run_hidden = docx_on(&e);
                }
                if skip_until.is_some() {
                    continue;
                }
                if docx_skipped(local) {
                    if local == "rPr" && !in_ppr {
                        run_props_depth = Some(depth);
                    }
                    skip_until = Some(depth);
                    continue;
                }
                match local {
                    "p" => paragraphs.push(DocxParagraph::default()),
                    "r" => run_hidden = false,
                    "pPr" => in_ppr = true,
                    "t" => in_text = true,
                    "tbl" => tables.push(DocxTable::default()),
                    "tc" => {
                        if let Some(table) = tables.last_mut() {
                            table.cell.clear();
                        }
                    }
                    _ => docx_empty_element(&e, in_ppr, &mut paragraphs, &style_levels),
                }
            }
            Event::Empty(e) => {
                if e.local_name().as_ref() == "vanish" && run_props_depth == Some(depth) {
                    run_hidden = docx_on(&e);
                }
                if skip_until.is_some() {
                    continue;
                }
                if e.local_name().as_ref() == "tc" {
                    // An empty cell still takes its column.
                    if let Some(table) = tables.last_mut() {
                        table.cells.push(String::new());
                    }
                } else {
                    docx_empty_element(&e, in_ppr, &mut paragraphs, &style_levels);
                }
            }
            Event::Text(t) => {
                if in_text && !run_hidden && skip_until.is_none() {
                    if let Some(p) = paragraphs.last_mut() {
                        p.text.push_text(&t.xml10_content());
                    }
                }
            }
            Event::CData(t) => {
                if in_text && !run_hidden && skip_until.is_none() {
                    if let Some(p) = paragraphs.last_mut() {
                        p.text.push_text(&t.xml10_content());
                    }
                }
            }
            Event::GeneralRef(r) => {
                if in_text && !run_hidden && skip_until.is_none() {
                    if let (Some(p), Some(text)) = (paragraphs.last_mut(), xml_entity(&r)) {
                        p.text.push_text(&text);
                    }
                }
            }
            Event::End(e) => {
                let ended_skip = skip_until == Some(depth);
                depth = depth.saturating_sub(1);
                if ended_skip {
                    skip_until = None;
                    run_props_depth = None;
                    continue;
                }
                if skip_until.is_some() {
                    continue;
                }
                match e.local_name().as_ref() {
                    "t" => in_text = false,
                    "r" => run_hidden = false,
                    "pPr" => in_ppr = false,
                    "p" => {
                        let Some(mut paragraph) = paragraphs.pop() else {
                            continue;
                        };
                        let text = paragraph.text.take();
                        if let Some(table) = tables.last_mut() {
                            let text = normalize_inline(&text);
                            if !text.is_empty() {
                                if !table.cell.is_empty() {
                                    table.cell.push(' ');
                                }
                                table.cell.push_str(&text);
                            }
                        } else if let Some(level) = paragraph.level {
                            let text = normalize_inline(&text);
                            if text.is_empty() {
                                continue;
                            }
                            if level == 0 && title_paragraph.is_none() {
                                title_paragraph = Some(text.clone());
                            } else if level > 0 && first_heading.is_none() {
                                first_heading = Some(text.clone());
                            }
                            let path = headings.enter(level, text.clone());
                            builder.start_section(path, None, Some(&text))?;
                        } else {
                            builder.push_block(&text, false)?;
                        }
                    }
                    "tc" => {
                        if let Some(table) = tables.last_mut() {
                            let cell = std::mem::take(&mut table.cell);
                            table.cells.push(cell);
                        }
                    }
                    "tr" => {
                        if let Some(table) = tables.last_mut() {
                            let row = std::mem::take(&mut table.cells).join("\t");
                            table.rows.push(row);
                        }
                    }
                    "tbl" => {
                        let Some(table) = tables.pop() else {
                            continue;
                        };
                        let rendered = table.rows.join("\n");
                        match tables.last_mut() {
                            // A nested table reads as part of its cell.
                            Some(outer) => {
                                let text = normalize_inline(&rendered);
                                if !outer.cell.is_empty() {
                                    outer.cell.push(' ');
                                }
                                outer.cell.push_str(&text);
                            }
                            None => {
                                builder.push_block(&rendered, true)?;
                            }
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let title = core_title.or(title_paragraph).or(first_heading);
    builder.finish(title, None)
}

/// A Word on/off property (`<w:vanish/>`, `<w:vanish w:val="false"/>`).
fn docx_on(element: &quick_xml::events::BytesStart<'_>) -> bool {
    !matches!(
        xml_attr(element, "val").as_deref(),
        Some("0" | "false" | "off")
    )
}

/// Handles the elements of document.xml that matter whether written as
/// `<x/>` or `<x>…</x>`: paragraph style and outline level, tabs and breaks.
fn docx_empty_element(
    element: &quick_xml::events::BytesStart<'_>,
    in_ppr: bool,
    paragraphs: &mut [DocxParagraph],
    style_levels: &HashMap<String, u8>,
) {
    let Some(paragraph) = paragraphs.last_mut() else {
        return;
    };
    match element.local_name().as_ref() {
        "pStyle" if in_ppr => {
            if let Some(id) = xml_attr(element, "val") {
                let level = style_levels
                    .get(&id)
                    .copied()
                    .or_else(|| docx_heading_from_id(&id));
                if level.is_some() {
                    paragraph.level = level;
                }
            }
        }
        "outlineLvl" if in_ppr => {
            let level: Option<u8> = xml_attr(element, "val").and_then(|v| v.parse().ok());
            if let Some(level) = level.filter(|l| *l < 9) {
                paragraph.level = Some(level + 1);
            }
        }
        // Inside pPr, <w:tab> is a tab-stop definition, not a tab.
        "tab" | "ptab" if !in_ppr => paragraph.text.push_text(" "),
        "br" | "cr" if !in_ppr => paragraph.text.hard_break(),
        "noBreakHyphen" => paragraph.text.push_text("-"),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------

/// The most frequent of `,` `;` tab `|` in the first line (outside quotes).
fn csv_delimiter(text: &str) -> u8 {
    let mut counts = [0usize; 4];
    let candidates = *b",;\t|";
    let mut quoted = false;
    for b in text.bytes().take_while(|b| *b != b'\n') {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(i) = candidates.iter().position(|c| *c == b) {
                counts[i] += 1;
            }
        }
    }
    let (best, count) = counts
        .iter()
        .enumerate()
        .max_by_key(|(i, count)| (**count, usize::MAX - i))
        .unwrap_or((0, &0));
    if *count == 0 {
        b','
    } else {
        candidates[best]
    }
}

/// Each record becomes one self-describing block, "header: value; header:
/// value" (empty values left out), so a chunk of rows still says what each
/// number means. A first block lists the columns. One section.
fn parse_csv(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedDocument, ParseError> {
    let text = decode_text(bytes, None)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(csv_delimiter(&text))
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut builder = DocBuilder::new(limits);
    let mut headers: Option<Vec<String>> = None;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(ParseError::Corrupt(format!("the CSV is malformed ({e})"))),
        }
        if record.iter().all(|field| field.trim().is_empty()) {
            continue;
        }
        let Some(headers) = headers.as_ref() else {
            let names: Vec<String> = record
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let h = normalize_inline(h);
                    if h.is_empty() {
                        format!("column {}", i + 1)
                    } else {
                        h
                    }
                })
                .collect();
            builder.push_block(&format!("Columns: {}", names.join(", ")), false)?;
            headers = Some(names);
            continue;
        };
        let line = record
            .iter()
            .enumerate()
            .filter_map(|(i, value)| {
                let value = normalize_inline(value);
                if value.is_empty() {
                    return None;
                }
                Some(match headers.get(i) {
                    Some(header) => format!("{header}: {value}"),
                    None => format!("column {}: {value}", i + 1),
                })
            })
            .collect::<Vec<_>>()
            .join("; ");
        builder.push_block(&line, false)?;
    }
    builder.finish(None, None)
}

// ---------------------------------------------------------------------------
// PDF
// ---------------------------------------------------------------------------

mod pdf {
    //! PDF text via pdf-extract (which positions each glyph, decodes font
    //! encodings and ToUnicode maps), behind a hardening pass over the
    //! lopdf document it uses: pdf-extract has unchecked `unwrap`s, recurses
    //! into form XObjects without a cycle check, and decompresses streams
    //! without a size cap.

    use super::*;
    use pdf_extract::{Dictionary, Document, Object, ObjectId, OutputDev, OutputError, Transform};

    /// Most bytes a single stream may inflate to.
    const MAX_STREAM_INFLATED: u64 = 128 * 1024 * 1024;
    /// Most bytes all streams together may inflate to.
    const MAX_TOTAL_INFLATED: u64 = 512 * 1024 * 1024;
    /// Deepest chain of form XObjects drawn inside each other.
    const MAX_FORM_DEPTH: usize = 24;
    /// Most form XObject invocations (counted with repetition) on one page.
    const MAX_FORM_CALLS: u32 = 5_000;
    /// Most content-stream bytes one page may make the extractor interpret.
    const MAX_PAGE_CONTENT: u64 = 64 * 1024 * 1024;
    /// Longest Parent chain followed in the page tree.
    const MAX_TREE_DEPTH: usize = 64;
    /// Glyphs kept per page; beyond it the page is truncated (a real page
    /// holds a few thousand).
    const MAX_PAGE_GLYPHS: usize = 2_000_000;

    pub(super) fn parse_pdf(
        bytes: &[u8],
        limits: &ParseLimits,
    ) -> Result<ParsedDocument, ParseError> {
        // Pages are guarded one by one below; this outer guard covers lopdf's
        // own parsing of the file structure.
        catch_unwind(AssertUnwindSafe(|| parse_unguarded(bytes, limits))).unwrap_or_else(|_| {
            Err(ParseError::Corrupt(
                "the PDF structure could not be processed".into(),
            ))
        })
    }

    fn parse_unguarded(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedDocument, ParseError> {
        let mut doc = match Document::load_mem(bytes) {
            Ok(doc) => doc,
            // A file whose encryption lopdf cannot even set up still says
            // so in its trailer.
            Err(_) if find(bytes, b"/Encrypt").is_some() => return Err(ParseError::Encrypted),
            Err(e) => {
                return Err(ParseError::Corrupt(format!(
                    "the PDF structure is damaged ({e})"
                )))
            }
        };
        // lopdf decrypts documents whose user password is empty (only
        // printing/copying restricted) while loading; one that still has
        // its Encrypt entry needs a password we do not have.
        if doc.is_encrypted() {
            return Err(ParseError::Encrypted);
        }
        let pages: Vec<(u32, ObjectId)> = doc.get_pages().into_iter().collect();
        if pages.is_empty() {
            return Err(ParseError::Corrupt(
                "the PDF has no readable pages (damaged or truncated file?)".into(),
            ));
        }
        let page_count = u32::try_from(pages.len()).unwrap_or(u32::MAX);
        if page_count > limits.max_pages {
            return Err(ParseError::TooLarge {
                what: LimitKind::Pages,
                limit: u64::from(limits.max_pages),
            });
        }
        let title = info_title(&doc);

        blank_images_and_check_streams(&mut doc)?;
        repair_page_tree(&mut doc, &pages);

        let mut builder = DocBuilder::new(limits);
        let mut readable_pages = 0usize;
        for &(number, page_id) in &pages {
            if let Err(reason) = check_page_content(&doc, page_id) {
                tracing::warn!(page = number, reason, "skipping unreadable PDF page");
                continue;
            }
            let mut collector = PageCollector::default();
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                pdf_extract::output_doc_page(&doc, &mut collector, number)
            }));
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(page = number, error = %e, "skipping unreadable PDF page");
                    continue;
                }
                Err(_) => {
                    tracing::warn!(page = number, "PDF text extraction panicked; page skipped");
                    continue;
                }
            }
            readable_pages += 1;
            let paragraphs = collector.into_paragraphs();
            if paragraphs.is_empty() {
                continue;
            }
            builder.start_section(Vec::new(), Some(number), None)?;
            for paragraph in paragraphs {
                builder.push_block(&paragraph, false)?;
            }
        }
        if readable_pages == 0 {
            return Err(ParseError::Corrupt(
                "none of its pages could be read".into(),
            ));
        }
        builder.finish(title, Some(page_count))
    }

    /// `/Title` of the document information dictionary.
    fn info_title(doc: &Document) -> Option<String> {
        let info = doc.trailer.get(b"Info").ok()?;
        let (_, info) = doc.dereference(info).ok()?;
        let title = info.as_dict().ok()?.get(b"Title").ok()?;
        let (_, title) = doc.dereference(title).ok()?;
        pdf_extract::decode_text_string(title).ok()
    }

    /// Empties image streams (pdf-extract would otherwise decompress every
    /// image and try to interpret it as a content stream) and measures how
    /// far the other Flate streams inflate, refusing decompression bombs
    /// before anything inflates them for real.
    fn blank_images_and_check_streams(doc: &mut Document) -> Result<(), ParseError> {
        let mut total = 0u64;
        for object in doc.objects.values_mut() {
            let Object::Stream(stream) = object else {
                continue;
            };
            let is_image = stream
                .dict
                .get(b"Subtype")
                .and_then(Object::as_name)
                .is_ok_and(|name| name == b"Image");
            if is_image {
                stream.set_plain_content(Vec::new());
                continue;
            }
            let flate_first = stream
                .filters()
                .ok()
                .and_then(|filters| filters.first().copied())
                .is_some_and(|f| f == b"FlateDecode" || f == b"Fl");
            let size = if flate_first {
                let cap = MAX_STREAM_INFLATED.min(MAX_TOTAL_INFLATED.saturating_sub(total));
                inflated_len(&stream.content, cap).ok_or_else(|| {
                    ParseError::Corrupt(
                        "its compressed content expands to an unreasonable size".into(),
                    )
                })?
            } else {
                stream.content.len() as u64
            };
            total += size;
        }
        Ok(())
    }

    /// Size `data` inflates to, or `None` past `cap`; counts without keeping
    /// the output. Like lopdf, retries as raw deflate when the zlib wrapper
    /// is broken, and counts what decodes before an error.
    pub(super) fn inflated_len(data: &[u8], cap: u64) -> Option<u64> {
        fn count(mut reader: impl Read, cap: u64) -> Option<u64> {
            let mut buf = [0u8; 16 * 1024];
            let mut total = 0u64;
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => return Some(total),
                    Ok(n) => {
                        total += n as u64;
                        if total > cap {
                            return None;
                        }
                    }
                }
            }
        }
        let zlib = count(flate2::read::ZlibDecoder::new(data), cap)?;
        let raw = match data.get(2..) {
            Some(rest) => count(flate2::read::DeflateDecoder::new(rest), cap)?,
            None => 0,
        };
        Some(zlib.max(raw))
    }

    /// `key` on the page or inherited from its ancestors.
    fn inherited<'a>(doc: &'a Document, page: &'a Dictionary, key: &[u8]) -> Option<&'a Object> {
        let mut node = page;
        for _ in 0..MAX_TREE_DEPTH {
            if let Ok(value) = node.get(key) {
                return doc.dereference(value).ok().map(|(_, v)| v);
            }
            let parent = node.get(b"Parent").and_then(Object::as_reference).ok()?;
            node = doc.get_dictionary(parent).ok()?;
        }
        None
    }

    fn is_valid_box(doc: &Document, value: &Object) -> bool {
        let Ok((_, value)) = doc.dereference(value) else {
            return false;
        };
        value.as_array().is_ok_and(|items| {
            items.len() == 4
                && items.iter().all(|item| {
                    doc.dereference(item)
                        .is_ok_and(|(_, v)| v.as_float().is_ok() || v.as_i64().is_ok())
                })
        })
    }

    /// pdf-extract follows `/Parent` recursively with no cycle check and
    /// panics on a page without a usable MediaBox: cut Parent cycles and
    /// give such pages a Letter-sized box (only used for coordinates).
    fn repair_page_tree(doc: &mut Document, pages: &[(u32, ObjectId)]) {
        for &(_, page_id) in pages {
            let mut seen = HashSet::from([page_id]);
            let mut node = page_id;
            let mut cut = None;
            let mut has_box = false;
            for step in 0..=MAX_TREE_DEPTH {
                let Ok(dict) = doc.get_dictionary(node) else {
                    break;
                };
                if !has_box {
                    if let Ok(media_box) = dict.get(b"MediaBox") {
                        // pdf-extract takes the nearest MediaBox, valid or not.
                        if !is_valid_box(doc, media_box) {
                            break;
                        }
                        has_box = true;
                    }
                }
                match dict.get(b"Parent").and_then(Object::as_reference) {
                    Ok(_) if step == MAX_TREE_DEPTH => cut = Some(node),
                    Ok(parent) if seen.insert(parent) => node = parent,
                    Ok(_) => {
                        cut = Some(node);
                        break;
                    }
                    Err(_) => break,
                }
            }
            if let Some(id) = cut {
                if let Ok(dict) = doc.get_dictionary_mut(id) {
                    dict.remove(b"Parent");
                }
            }
            if !has_box {
                if let Ok(page) = doc.get_dictionary_mut(page_id) {
                    let letter = [0, 0, 612, 792].map(Object::Integer).to_vec();
                    page.set("MediaBox", Object::Array(letter));
                }
            }
        }
    }

    struct ContentBudget {
        calls: u32,
        bytes: u64,
    }

    /// Walks the page's content and the form XObjects it draws, the way
    /// pdf-extract will, and refuses what would make it panic on the
    /// content parse, recurse forever (a form drawing itself) or do
    /// exponential work (forms drawing forms many times over).
    fn check_page_content(doc: &Document, page_id: ObjectId) -> Result<(), &'static str> {
        let page = doc
            .get_dictionary(page_id)
            .map_err(|_| "page object missing")?;
        let content = doc
            .get_page_content(page_id)
            .map_err(|_| "page content missing")?;
        let resources = inherited(doc, page, b"Resources").and_then(|r| r.as_dict().ok());
        let mut budget = ContentBudget { calls: 0, bytes: 0 };
        walk_content(doc, &content, resources, &mut Vec::new(), &mut budget)
    }

    fn walk_content(
        doc: &Document,
        content: &[u8],
        resources: Option<&Dictionary>,
        path: &mut Vec<ObjectId>,
        budget: &mut ContentBudget,
    ) -> Result<(), &'static str> {
        budget.bytes += content.len() as u64;
        if budget.bytes > MAX_PAGE_CONTENT {
            return Err("too much content on one page");
        }
        let content = pdf_extract::content::Content::decode(content)
            .map_err(|_| "content stream cannot be parsed")?;
        for operation in &content.operations {
            if operation.operator != "Do" {
                continue;
            }
            let Some(name) = operation.operands.first().and_then(|o| o.as_name().ok()) else {
                continue;
            };
            let Some(form_id) = resources
                .and_then(|r| r.get(b"XObject").ok())
                .and_then(|x| doc.dereference(x).ok())
                .and_then(|(_, x)| x.as_dict().ok())
                .and_then(|x| x.get(name).ok())
                .and_then(|x| x.as_reference().ok())
            else {
                continue;
            };
            let Ok(form) = doc.get_object(form_id).and_then(Object::as_stream) else {
                continue;
            };
            if path.contains(&form_id) {
                return Err("a form XObject draws itself");
            }
            if path.len() >= MAX_FORM_DEPTH {
                return Err("form XObjects nested too deeply");
            }
            budget.calls += 1;
            if budget.calls > MAX_FORM_CALLS {
                return Err("too many form XObjects drawn");
            }
            let form_content = form
                .decompressed_content()
                .unwrap_or_else(|_| form.content.clone());
            let form_resources = form
                .dict
                .get(b"Resources")
                .ok()
                .and_then(|r| doc.dereference(r).ok())
                .and_then(|(_, r)| r.as_dict().ok())
                .or(resources);
            path.push(form_id);
            walk_content(doc, &form_content, form_resources, path, budget)?;
            path.pop();
        }
        Ok(())
    }

    /// One line of text as drawn on the page.
    struct Line {
        text: String,
        /// Baseline in PDF user space (grows upwards).
        y: f64,
        /// Font size in user space.
        size: f64,
    }

    /// Receives positioned glyphs from pdf-extract and groups them into
    /// lines (like its PlainTextOutput), keeping the line positions so
    /// paragraphs can be told from wrapped lines afterwards.
    #[derive(Default)]
    struct PageCollector {
        lines: Vec<Line>,
        current: Option<Line>,
        last_end: f64,
        last_y: f64,
        word_start: bool,
        glyphs: usize,
    }

    impl PageCollector {
        fn finish_line(&mut self) {
            if let Some(line) = self.current.take() {
                if !line.text.trim().is_empty() {
                    self.lines.push(line);
                }
            }
        }

        /// Paragraphs of the page: lines joined with spaces, words split by
        /// a hyphen at a line end re-joined, a paragraph ending where the
        /// gap to the next line is clearly wider than the page's usual line
        /// pitch, the font size changes, or the text jumps upwards (a new
        /// column or out-of-order drawing).
        fn into_paragraphs(mut self) -> Vec<String> {
            self.finish_line();
            let lines = self.lines;
            let pitch = typical_pitch(&lines);
            let mut paragraphs = Vec::new();
            let mut paragraph = String::new();
            for (i, line) in lines.iter().enumerate() {
                let text = normalize_inline(&line.text);
                if text.is_empty() {
                    continue;
                }
                if i > 0 && !paragraph.is_empty() {
                    let prev = &lines[i - 1];
                    let gap = prev.y - line.y;
                    let size = prev.size.max(line.size);
                    let size_changed = (prev.size - line.size).abs() > 0.15 * size;
                    let limit = match pitch {
                        Some(pitch) => pitch * 1.3,
                        None => size * 1.6,
                    };
                    if gap <= 0.0 || gap > limit || size_changed {
                        paragraphs.push(std::mem::take(&mut paragraph));
                    }
                }
                if paragraph.is_empty() {
                    paragraph = text;
                } else {
                    join_line(&mut paragraph, &text);
                }
            }
            if !paragraph.is_empty() {
                paragraphs.push(paragraph);
            }
            paragraphs
        }
    }

    /// The most common distance between consecutive lines of the same font
    /// size, to the nearest half point; `None` with too few lines to tell.
    fn typical_pitch(lines: &[Line]) -> Option<f64> {
        let mut counts: HashMap<i64, usize> = HashMap::new();
        for pair in lines.windows(2) {
            let gap = pair[0].y - pair[1].y;
            let size = pair[0].size.max(pair[1].size);
            if gap > 0.0 && gap < size * 3.0 && (pair[0].size - pair[1].size).abs() <= 0.15 * size {
                *counts.entry((gap * 2.0).round() as i64).or_default() += 1;
            }
        }
        let (half_points, count) = counts
            .into_iter()
            .max_by_key(|(half_points, count)| (*count, -half_points))?;
        (count >= 2).then_some(half_points as f64 / 2.0)
    }

    /// Appends a wrapped line: a trailing hyphen between lower-case letters
    /// is typesetting, not spelling ("demol-" + "ished"), so it goes.
    fn join_line(paragraph: &mut String, next: &str) {
        let mut chars = paragraph.chars().rev();
        let hyphen = matches!(chars.next(), Some('-' | '\u{00AD}'));
        let letter_before = chars.next().is_some_and(char::is_alphabetic);
        let lower_after = next.chars().next().is_some_and(char::is_lowercase);
        if hyphen && letter_before && lower_after {
            paragraph.pop();
            paragraph.push_str(next);
        } else {
            paragraph.push(' ');
            paragraph.push_str(next);
        }
    }

    impl OutputDev for PageCollector {
        fn begin_page(
            &mut self,
            _page_num: u32,
            _media_box: &pdf_extract::MediaBox,
            _art_box: Option<(f64, f64, f64, f64)>,
        ) -> Result<(), OutputError> {
            Ok(())
        }

        fn end_page(&mut self) -> Result<(), OutputError> {
            self.finish_line();
            Ok(())
        }

        fn output_character(
            &mut self,
            trm: &Transform,
            width: f64,
            _spacing: f64,
            font_size: f64,
            char: &str,
        ) -> Result<(), OutputError> {
            if self.glyphs >= MAX_PAGE_GLYPHS {
                return Ok(());
            }
            self.glyphs += 1;
            let (x, y) = (trm.m31, trm.m32);
            // Size of the glyph square in user space, as PlainTextOutput.
            let vx = font_size * (trm.m11 + trm.m21);
            let vy = font_size * (trm.m12 + trm.m22);
            let mut size = (vx * vy).abs().sqrt();
            if !size.is_finite() || size <= 0.0 {
                size = 1.0;
            }
            if !x.is_finite() || !y.is_finite() {
                return Ok(());
            }
            match self.current.as_mut() {
                Some(line) if (y - self.last_y).abs() <= size.max(line.size) * 0.5 => {
                    // Same line: a gap wider than a tenth of the size between
                    // two separately drawn strings is a word break.
                    if self.word_start && x > self.last_end + size * 0.1 {
                        line.text.push(' ');
                    }
                    line.text.push_str(char);
                }
                _ => {
                    self.finish_line();
                    self.current = Some(Line {
                        text: char.to_string(),
                        y,
                        size,
                    });
                }
            }
            self.word_start = false;
            self.last_y = y;
            self.last_end = x + width * size;
            Ok(())
        }

        fn begin_word(&mut self) -> Result<(), OutputError> {
            self.word_start = true;
            Ok(())
        }

        fn end_word(&mut self) -> Result<(), OutputError> {
            Ok(())
        }

        fn end_line(&mut self) -> Result<(), OutputError> {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/docs")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn parse_fixture(name: &str) -> Result<ParsedDocument, ParseError> {
        let bytes = fixture(name);
        let format = Format::detect(name, &bytes)?;
        parse(format, &bytes, &ParseLimits::default())
    }

    fn parsed(name: &str) -> ParsedDocument {
        let doc = parse_fixture(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_invariants(&doc);
        doc
    }

    /// The invariants every parser promises: sections contiguous, in order,
    /// covering the text, on char boundaries; normalised text.
    fn section_of<'a>(doc: &'a ParsedDocument, needle: &str) -> &'a Section {
        let at = doc
            .text
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing"));
        doc.sections
            .iter()
            .find(|s| s.byte_start <= at && at < s.byte_end)
            .unwrap_or_else(|| panic!("no section holds {needle:?}"))
    }

    // --- detection ------------------------------------------------------

    #[test]
    fn detect_accepts_each_fixture_by_extension_and_content() {
        let cases = [
            ("velloran-survey.pdf", Format::Pdf),
            ("scanned.pdf", Format::Pdf),
            ("harbour-handbook.docx", Format::Docx),
            ("garden-guide.md", Format::Markdown),
            ("museum.html", Format::Html),
            ("lighthouses.csv", Format::Csv),
            ("orchard.txt", Format::Text),
            ("ferry-letter-utf16.txt", Format::Text),
            ("menu-cp1252.txt", Format::Text),
        ];
        for (name, format) in cases {
            assert_eq!(Format::detect(name, &fixture(name)), Ok(format), "{name}");
        }
    }

    #[test]
    fn detect_uses_the_last_path_component_and_ignores_case() {
        let bytes = fixture("orchard.txt");
        assert_eq!(
            Format::detect(r"C:\Users\ilse\Notes.v2.TXT", &bytes),
            Ok(Format::Text)
        );
        assert_eq!(
            Format::detect("docs/guide.Markdown", &bytes),
            Ok(Format::Markdown)
        );
        assert_eq!(Format::detect("page.HTM", &bytes), Ok(Format::Html));
    }

    #[test]
    fn detect_rejects_unsupported_extensions_naming_them() {
        let err = Format::detect("photo.JPG", b"\xff\xd8\xff").unwrap_err();
        assert_eq!(err, ParseError::Unsupported("jpg".into()));
        assert!(err.to_string().contains(".jpg"), "{err}");
        assert_eq!(
            Format::detect("README", b"hello"),
            Err(ParseError::Unsupported(String::new()))
        );
        // A dot file has no extension.
        assert_eq!(
            Format::detect(".bashrc", b"hello"),
            Err(ParseError::Unsupported(String::new()))
        );
        assert_eq!(
            Format::detect("report.doc", b"x"),
            Err(ParseError::Unsupported("doc".into()))
        );
    }

    #[test]
    fn detect_rejects_content_that_does_not_match_the_extension() {
        let not_pdf = Format::detect("report.pdf", b"just some text, no header");
        assert!(
            matches!(not_pdf, Err(ParseError::Corrupt(_))),
            "{not_pdf:?}"
        );
        // Junk before the header is tolerated, as readers do.
        let mut prefixed = b"\r\n\r\n".to_vec();
        prefixed.extend(fixture("velloran-survey.pdf"));
        assert_eq!(Format::detect("a.pdf", &prefixed), Ok(Format::Pdf));

        let binary = Format::detect("binary.txt", &fixture("binary.txt")).unwrap_err();
        assert!(binary.to_string().contains("binary"), "{binary}");
        for name in ["x.md", "x.html", "x.csv"] {
            assert!(matches!(
                Format::detect(name, &fixture("binary.txt")),
                Err(ParseError::Corrupt(_))
            ));
        }

        let not_word = Format::detect("not-word.docx", &fixture("not-word.docx")).unwrap_err();
        assert!(
            not_word.to_string().contains("word/document.xml"),
            "{not_word}"
        );
        let text_as_docx = Format::detect("a.docx", b"plain text");
        assert!(matches!(text_as_docx, Err(ParseError::Corrupt(_))));
    }

    #[test]
    fn detect_recognises_encrypted_office_files_and_legacy_doc() {
        let mut encrypted = CFB_MAGIC.to_vec();
        encrypted.extend([0u8; 64]);
        encrypted.extend("EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(
            Format::detect("secret.docx", &encrypted),
            Err(ParseError::Encrypted)
        );
        let mut legacy = CFB_MAGIC.to_vec();
        legacy.extend([0u8; 64]);
        let err = Format::detect("old.docx", &legacy).unwrap_err();
        assert!(err.to_string().contains(".doc"), "{err}");
    }

    // --- text decoding and normalisation -----------------------------------

    #[test]
    fn normalisation_collapses_whitespace_and_drops_invisible_characters() {
        assert_eq!(
            normalize_block(
                "  a \u{a0}\u{2003} b\t\tc \r\n\n  d\u{0}e\u{ad}f\u{200b}g  ",
                false
            ),
            "a b c\ndefg"
        );
        assert_eq!(
            normalize_block("\u{fb01}nd the \u{fb04}oor", false),
            "find the ffloor"
        );
        // Tables keep their tabs, including an empty first cell.
        assert_eq!(normalize_block("\ta \t b\t\n x\ty ", true), "\ta\tb\nx\ty");
        assert_eq!(normalize_block(" \n\u{7}\n ", false), "");
        assert_eq!(normalize_inline("one\ntwo\r\nthree"), "one two three");
    }

    #[test]
    fn decodes_utf16_with_and_without_bom_and_windows_1252() {
        let letter = parsed("ferry-letter-utf16.txt");
        assert!(letter
            .text
            .contains("The Kamsø ferry now leaves Brekka pier at 06:45 instead of 07:15"));
        assert!(letter.text.ends_with("— Jonas"));

        let menu = parsed("menu-cp1252.txt");
        assert!(menu
            .text
            .contains("The crème brûlée costs €4.50 and the smørrebrød costs €7.20."));

        let be_without_bom: Vec<u8> = "Grüße aus Kåsen\n\nzweiter Absatz"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        let doc = parse(Format::Text, &be_without_bom, &ParseLimits::default()).unwrap();
        assert_eq!(doc.text, "Grüße aus Kåsen\n\nzweiter Absatz");

        let utf8_bom = b"\xEF\xBB\xBFhello";
        assert_eq!(
            parse(Format::Text, utf8_bom, &ParseLimits::default())
                .unwrap()
                .text,
            "hello"
        );
    }

    #[test]
    fn binary_named_txt_is_refused_in_parse_too() {
        let err = parse(
            Format::Text,
            &fixture("binary.txt"),
            &ParseLimits::default(),
        );
        assert!(matches!(err, Err(ParseError::Corrupt(_))), "{err:?}");
        // Control characters without NULs, too.
        let noisy: Vec<u8> = (0..400u32).map(|i| (i % 31 + 1) as u8).collect();
        assert!(parse(Format::Text, &noisy, &ParseLimits::default()).is_err());
    }

    // --- plain text -------------------------------------------------------

    #[test]
    fn text_keeps_paragraphs_in_one_section() {
        let doc = parsed("orchard.txt");
        assert_eq!(doc.sections.len(), 1);
        assert_eq!(doc.sections[0].heading_path, Vec::<String>::new());
        assert_eq!(doc.title, None);
        assert_eq!(doc.pages, None);
        assert_eq!(doc.text.matches("\n\n").count(), 4);
        assert!(doc.text.starts_with("The Pellwick Orchard\n\nThe Pellwick orchard was planted in 1902 with 340 apple trees of the Russet Queen variety."));
    }

    #[test]
    fn text_keeps_single_line_breaks_and_normalises_lines() {
        let raw = "Line one   with  spaces\r\nline two\t\tend\n \n\n\nNext\u{7} para\n";
        let doc = parse(Format::Text, raw.as_bytes(), &ParseLimits::default()).unwrap();
        assert_eq!(doc.text, "Line one with spaces\nline two end\n\nNext para");
        check_invariants(&doc);
    }

    #[test]
    fn empty_documents_are_reported() {
        for (format, bytes) in [
            (Format::Text, &b""[..]),
            (Format::Text, b" \n\t\n "),
            (Format::Markdown, b"<!-- only a comment -->\n"),
            (
                Format::Html,
                b"<html><head><script>x()</script></head><body> </body></html>",
            ),
            (Format::Csv, b"\n\n"),
        ] {
            assert_eq!(
                parse(format, bytes, &ParseLimits::default()),
                Err(ParseError::Empty),
                "{format:?}"
            );
        }
        assert!(ParseError::Empty
            .to_string()
            .contains("no extractable text"));
    }

    #[test]
    fn max_chars_stops_extraction() {
        let limits = ParseLimits {
            max_chars: 100,
            ..ParseLimits::default()
        };
        for name in [
            "orchard.txt",
            "garden-guide.md",
            "museum.html",
            "harbour-handbook.docx",
            "lighthouses.csv",
            "velloran-survey.pdf",
        ] {
            let bytes = fixture(name);
            let format = Format::detect(name, &bytes).unwrap();
            let err = parse(format, &bytes, &limits).unwrap_err();
            assert_eq!(
                err,
                ParseError::TooLarge {
                    what: LimitKind::Chars,
                    limit: 100
                },
                "{name}"
            );
            assert!(err.to_string().contains("100 characters"), "{err}");
        }
        // Exactly at the limit is fine; one more is not.
        let text = "x".repeat(100);
        assert!(parse(Format::Text, text.as_bytes(), &limits).is_ok());
        assert!(parse(Format::Text, format!("{text}y").as_bytes(), &limits).is_err());
    }

    // --- markdown -----------------------------------------------------------

    #[test]
    fn markdown_sections_follow_nested_headings() {
        let doc = parsed("garden-guide.md");
        assert_eq!(doc.title.as_deref(), Some("Allotment Garden Guide"));
        let paths: Vec<Vec<&str>> = doc
            .sections
            .iter()
            .map(|s| s.heading_path.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            paths,
            [
                vec!["Allotment Garden Guide"],
                vec!["Allotment Garden Guide", "Soil"],
                vec!["Allotment Garden Guide", "Soil", "Testing pH"],
                // A setext heading is a heading too.
                vec!["Allotment Garden Guide", "Watering"],
                vec!["Allotment Garden Guide", "Pests"],
            ]
        );
        let ph = section_of(&doc, "measured pH 6.4 in March 2023");
        assert_eq!(
            ph.heading_path.last().map(String::as_str),
            Some("Testing pH")
        );
        // The heading opens its section's text.
        assert!(doc.text[ph.byte_start..].starts_with("Testing pH\n\nThe allotment soil"));
        let beans = section_of(&doc, "they wilt above 28 °C");
        assert_eq!(
            beans.heading_path.last().map(String::as_str),
            Some("Watering")
        );
    }

    #[test]
    fn markdown_is_rendered_to_plain_text() {
        let doc = parsed("garden-guide.md");
        // Soft line breaks join, emphasis and link markup go, link text stays.
        assert!(doc.text.contains(
            "allocated by the garden committee every February, and the waiting list is kept in shed A."
        ));
        assert!(!doc.text.contains("**") && !doc.text.contains('#'));
        assert!(!doc.text.contains("https://example.org"));
        assert!(doc
            .text
            .contains("- Use the rain butts first.\n\n- Mains water only after 19:00."));
        assert!(doc.text.contains("Pest\tRemedy\nSlugs\tCopper tape around the raised beds\nAphids\tLadybird larvae from the Brindle Lane shop"));
        assert!(doc.text.contains("echo \"compost ratio 3:1\""));
    }

    #[test]
    fn markdown_edge_cases() {
        let source = "---\nsecret: FRONTMATTER\n---\n\nIntro text.\n\n# Top\n\n## Empty\n\n## Full {#full}\n\n1. first\n2. second\n\n<div align=\"center\">\n  <b>Raw</b> HTML<br>block\n  <script>SCRIPTED()</script>\n</div>\n\nSome <em>inline</em> html.\n\n- [x] done\n\nline one  \nline two\n";
        let doc = parse(Format::Markdown, source.as_bytes(), &ParseLimits::default()).unwrap();
        check_invariants(&doc);
        assert!(!doc.text.contains("FRONTMATTER"));
        assert!(
            doc.text
                .contains("\n\nRaw HTML\nblock\n\nSome inline html.\n\n"),
            "{}",
            doc.text
        );
        assert!(!doc.text.contains("SCRIPTED"));
        assert!(doc.text.contains("1. first\n\n2. second"));
        assert!(doc.text.contains("- [x] done"));
        assert!(doc.text.contains("line one\nline two"));
        assert_eq!(doc.sections[0].heading_path, Vec::<String>::new());
        assert!(doc.text.starts_with("Intro text."));
        // "Top" is merged into its first sub-section; "Empty" (a sibling
        // of "Full") keeps its own tiny section. Heading attributes go.
        let paths: Vec<Vec<String>> = doc
            .sections
            .iter()
            .map(|s| s.heading_path.clone())
            .collect();
        assert_eq!(
            paths,
            [
                vec![],
                vec!["Top".to_string(), "Empty".to_string()],
                vec!["Top".to_string(), "Full".to_string()],
            ]
        );
        assert!(doc.text.contains("Top\n\nEmpty\n\nFull"));
    }

    // --- html ---------------------------------------------------------------

    #[test]
    fn html_keeps_visible_text_only() {
        let doc = parsed("museum.html");
        assert_eq!(
            doc.title.as_deref(),
            Some("Nordhaven Maritime Museum – Visitor Information")
        );
        for hidden in [
            "trackingSecret",
            "XYZZY",
            "font-family",
            "NAVLINK",
            "Home",
            "HIDDEN-DRAFT-TEXT",
            "NOSCRIPT-BANNER",
            "FOOTER-COOKIES",
            "Visitor Information",
        ] {
            assert!(!doc.text.contains(hidden), "{hidden} leaked: {}", doc.text);
        }
        assert!(doc
            .text
            .contains("The museum opens at 10:00 every day except Tuesdays."));
        assert!(doc.text.contains(
            "The oak figurehead of the schooner Selka was carved in 1794 and stands in Hall C."
        ));
        // <br> is a line break inside the paragraph.
        assert!(doc
            .text
            .contains("children under 12 enter free.\nGroups of ten or more get a 20% discount."));
        assert!(doc
            .text
            .contains("Day\tOpening hours\nMonday\t10:00–17:00\nSunday\t11:00–16:00"));
    }

    #[test]
    fn html_text_hidden_by_styling_is_not_indexed() {
        let html = r#"<html><head><style>
            .sr { position: absolute; left: -10000px }
            p.ghost, /* a comment { } */ #gone { display : none !important }
            @media print { .noprint { display: none } }
            .tab { display: none } .tab.active { display: block }
            .fine { color: red }
          </style></head><body>
          <p>Visible one.</p>
          <p style="font-size:0px">HIDDEN-FONT</p>
          <p style="opacity: 0">HIDDEN-OPACITY</p>
          <p style="color:#fff;background-color:#fff">HIDDEN-SAMECOLOR</p>
          <p style="position:absolute; left:-9999px">HIDDEN-OFFSCREEN</p>
          <p style="height:0;overflow:hidden">HIDDEN-ZEROHEIGHT</p>
          <p style="clip-path: inset(100%)">HIDDEN-CLIP</p>
          <span class="sr">HIDDEN-CLASS</span>
          <p class="ghost">HIDDEN-MEDIA</p>
          <div id="gone">HIDDEN-ID</div>
          <p class="fine" style="color: #fff; background: #000">Visible two.</p>
          <!-- HIDDEN-COMMENT -->
          <template>HIDDEN-TEMPLATE</template>
          <input type="hidden" value="HIDDEN-INPUT">
          <div class="tab">Visible tab.</div>
          <div class="tab active">Visible active tab.</div>
          <p class="noprint">Visible on screen.</p>
          <div style="font-size:0"><span style="font-size:16px">Visible inline-block trick.</span></div>
          <div style="visibility:hidden">HIDDEN-VISIBILITY</div>
        </body></html>"#;
        let doc = parse(Format::Html, html.as_bytes(), &ParseLimits::default()).unwrap();
        assert!(!doc.text.contains("HIDDEN"), "{}", doc.text);
        for visible in [
            "Visible one.",
            "Visible two.",
            "Visible tab.",
            "Visible active tab.",
            "Visible on screen.",
            "Visible inline-block trick.",
        ] {
            assert!(
                doc.text.contains(visible),
                "{visible} dropped: {}",
                doc.text
            );
        }
    }

    #[test]
    fn invisible_format_characters_are_dropped() {
        // "IGNORE" spelled in Unicode tag characters, a bidi override, a
        // variation selector and zero-width joiners.
        let tags: String = "IGNORE"
            .chars()
            .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
            .collect();
        let text = format!("Plain{tags} text\u{202E}x\u{202C} with\u{FE0F} zero\u{200B}width, but joi\u{200D}ners stay.");
        let doc = parse(Format::Text, text.as_bytes(), &ParseLimits::default()).unwrap();
        assert_eq!(
            doc.text,
            "Plain textx with zerowidth, but joi\u{200D}ners stay."
        );
    }

    #[test]
    fn html_sections_follow_headings() {
        let doc = parsed("museum.html");
        let selka = section_of(&doc, "carved in 1794");
        assert_eq!(
            selka.heading_path,
            [
                "Nordhaven Maritime Museum",
                "Collections",
                "The Selka figurehead"
            ]
        );
        let tickets = section_of(&doc, "Adult tickets cost 14 euros");
        assert_eq!(
            tickets.heading_path,
            ["Nordhaven Maritime Museum", "Tickets"]
        );
        let hours = section_of(&doc, "Opening hours");
        assert_eq!(hours, tickets);
    }

    #[test]
    fn html_charset_lists_and_fallback_title() {
        let html = b"<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\"></head><body><h1>Caf\xe9 list</h1><ol start=\"3\"><li>one</li><li>two <b>bold</b></li></ol><ul><li><p>para in item</p></li></ul><pre>a   b\nc</pre><table><tr><td><h4>Cell head</h4><ul><li>x</li><li>y</li></ul></td><td><pre>p</pre></td></tr></table></body></html>";
        let doc = parse(Format::Html, html, &ParseLimits::default()).unwrap();
        check_invariants(&doc);
        assert_eq!(doc.title.as_deref(), Some("Café list"));
        assert!(
            doc.text.contains("3. one\n\n4. two bold\n\n- para in item"),
            "{}",
            doc.text
        );
        assert!(doc.text.contains("a b\nc"));
        assert!(
            doc.text.ends_with("a b\nc\n\nCell head x y\tp"),
            "{}",
            doc.text
        );
    }

    #[test]
    fn html_survives_deep_nesting() {
        let depth = 20_000;
        let html = format!(
            "{}deep text{}",
            "<div>".repeat(depth),
            "</div>".repeat(depth)
        );
        let doc = parse(Format::Html, html.as_bytes(), &ParseLimits::default()).unwrap();
        assert_eq!(doc.text, "deep text");
    }

    // --- docx ---------------------------------------------------------------

    #[test]
    fn docx_headings_tables_and_title() {
        let doc = parsed("harbour-handbook.docx");
        assert_eq!(doc.title.as_deref(), Some("Harbour Operations Handbook"));
        let pilots = section_of(&doc, "Pilots board at the Grey Buoy");
        assert_eq!(
            pilots.heading_path,
            ["Harbour Operations Handbook", "Tides and Entry", "Pilotage"]
        );
        // Runs of one paragraph join without inventing spaces.
        assert!(doc.text.contains(
            "Pilots board at the Grey Buoy, two nautical miles north of the breakwater."
        ));
        let fees = section_of(&doc, "1,350 EUR");
        assert_eq!(
            fees.heading_path,
            ["Harbour Operations Handbook", "Berth Fees"]
        );
        assert!(doc.text.contains(
            "Vessel class\tLength\tDaily fee\nSmall\tunder 30 m\t120 EUR\nMedium\t30 to 90 m\t480 EUR\nLarge\tover 90 m\t1,350 EUR"
        ));
        let intro = section_of(&doc, "revision 7");
        assert_eq!(intro.heading_path, ["Harbour Operations Handbook"]);
    }

    /// A minimal .docx written by hand: localised style ids, a tracked
    /// deletion, a field code, a text box, alternate content, entities.
    fn handmade_docx(document_xml: &str, styles_xml: Option<&str>) -> Vec<u8> {
        use std::io::Write;
        let mut out = Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file(DOCX_BODY, options).unwrap();
        zip.write_all(document_xml.as_bytes()).unwrap();
        if let Some(styles) = styles_xml {
            zip.start_file("word/styles.xml", options).unwrap();
            zip.write_all(styles.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
        out.into_inner()
    }

    const W: &str = r#"xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006""#;

    #[test]
    fn docx_handles_localised_styles_revisions_fields_and_text_boxes() {
        let styles = format!(
            r#"<w:styles {W}>
              <w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style>
              <w:style w:type="paragraph" w:styleId="Kapitel"><w:name w:val="Kapitel"/><w:basedOn w:val="berschrift1"/></w:style>
              <w:style w:type="paragraph" w:styleId="Gliederung"><w:name w:val="Gliederung"/><w:pPr><w:outlineLvl w:val="1"/></w:pPr></w:style>
            </w:styles>"#
        );
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
            <w:document {W}><w:body>
              <w:p><w:pPr><w:pStyle w:val="berschrift1"/><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr><w:r><w:t>Einleitung</w:t></w:r></w:p>
              <w:p><w:r><w:t xml:space="preserve">Salt &amp; pepper </w:t></w:r><w:del><w:r><w:delText>DELETED</w:delText></w:r></w:del><w:r><w:t>kept</w:t><w:tab/><w:t>after tab</w:t><w:br/><w:t>next line</w:t></w:r></w:p>
              <w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText>HYPERLINK "FIELDCODE"</w:instrText></w:r><w:r><w:t>link text</w:t></w:r></w:p>
              <w:p><w:pPr><w:pStyle w:val="Gliederung"/></w:pPr><w:r><w:t>Unterpunkt</w:t></w:r></w:p>
              <w:p><w:r><mc:AlternateContent><mc:Choice><w:drawing><w:txbxContent><w:p><w:r><w:t>In the box</w:t></w:r></w:p></w:txbxContent></w:drawing></mc:Choice><mc:Fallback><w:pict><w:txbxContent><w:p><w:r><w:t>In the box</w:t></w:r></w:p></w:txbxContent></w:pict></mc:Fallback></mc:AlternateContent><w:t>Around the box</w:t></w:r></w:p>
              <w:p><w:pPr><w:pStyle w:val="Kapitel"/></w:pPr><w:r><w:t>Second chapter</w:t></w:r></w:p>
              <w:tbl><w:tr><w:tc><w:p><w:r><w:t>a1</w:t></w:r></w:p><w:p><w:r><w:t>more</w:t></w:r></w:p></w:tc><w:tc><w:tbl><w:tr><w:tc><w:p><w:r><w:t>inner</w:t></w:r></w:p></w:tc></w:tr></w:tbl></w:tc></w:tr><w:tr><w:tc/><w:tc><w:p><w:r><w:t>b2</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
            </w:body></w:document>"#
        );
        let bytes = handmade_docx(&body, Some(&styles));
        assert_eq!(Format::detect("x.docx", &bytes), Ok(Format::Docx));
        let doc = parse(Format::Docx, &bytes, &ParseLimits::default()).unwrap();
        check_invariants(&doc);
        assert_eq!(doc.title.as_deref(), Some("Einleitung"));
        assert!(!doc.text.contains("DELETED"));
        assert!(!doc.text.contains("FIELDCODE"));
        assert_eq!(doc.text.matches("In the box").count(), 1, "{}", doc.text);
        assert!(doc
            .text
            .contains("Salt & pepper kept after tab\nnext line\n\nlink text"));
        assert_eq!(section_of(&doc, "link text").heading_path, ["Einleitung"]);
        assert_eq!(
            section_of(&doc, "Around the box").heading_path,
            ["Einleitung", "Unterpunkt"]
        );
        assert_eq!(section_of(&doc, "b2").heading_path, ["Second chapter"]);
        assert!(doc.text.contains("a1 more\tinner\n\tb2"), "{}", doc.text);
    }

    #[test]
    fn docx_hidden_runs_are_not_indexed() {
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
            <w:document {W}><w:body>
              <w:p><w:pPr><w:rPr><w:vanish/></w:rPr></w:pPr><w:r><w:t xml:space="preserve">Shown </w:t></w:r><w:r><w:rPr><w:vanish/></w:rPr><w:t>HIDDEN-RUN</w:t></w:r><w:r><w:rPr><w:vanish w:val="false"/></w:rPr><w:t xml:space="preserve">also shown</w:t></w:r><w:r><w:rPr><w:b/><w:rPrChange><w:rPr><w:vanish/></w:rPr></w:rPrChange></w:rPr><w:t xml:space="preserve"> and shown again</w:t></w:r></w:p>
            </w:body></w:document>"#
        );
        let doc = parse(
            Format::Docx,
            &handmade_docx(&body, None),
            &ParseLimits::default(),
        )
        .unwrap();
        assert_eq!(doc.text, "Shown also shown and shown again");
    }

    #[test]
    fn docx_heading_ids_work_without_styles_part() {
        let body = format!(
            r#"<w:document {W}><w:body><w:p><w:pPr><w:pStyle w:val="Heading2"/></w:pPr><w:r><w:t>Only heading</w:t></w:r></w:p><w:p><w:r><w:t>Body</w:t></w:r></w:p></w:body></w:document>"#
        );
        let doc = parse(
            Format::Docx,
            &handmade_docx(&body, None),
            &ParseLimits::default(),
        )
        .unwrap();
        assert_eq!(doc.sections[0].heading_path, ["Only heading"]);
        assert_eq!(doc.title.as_deref(), Some("Only heading"));
    }

    #[test]
    fn docx_unpacked_size_is_capped() {
        let bytes = fixture("harbour-handbook.docx");
        let err = parse_docx(&bytes, &ParseLimits::default(), 1024).unwrap_err();
        assert!(
            matches!(&err, ParseError::Corrupt(m) if m.contains("unpacks to more than")),
            "{err:?}"
        );
        // A real bomb: 64 MiB of spaces compresses to ~64 KiB.
        let bomb = format!(
            "<w:document {W}><w:body><w:p><w:r><w:t>{}</w:t></w:r></w:p></w:body></w:document>",
            " ".repeat(64 * 1024 * 1024)
        );
        let bytes = handmade_docx(&bomb, None);
        assert!(bytes.len() < 1024 * 1024);
        let err = parse_docx(&bytes, &ParseLimits::default(), 16 * 1024 * 1024).unwrap_err();
        assert!(matches!(err, ParseError::Corrupt(_)), "{err:?}");
    }

    #[test]
    fn docx_with_password_protected_zip_entries_is_encrypted() {
        let body = format!(
            "<w:document {W}><w:body><w:p><w:r><w:t>x</w:t></w:r></w:p></w:body></w:document>"
        );
        let mut bytes = handmade_docx(&body, None);
        // Set the "encrypted" flag (bit 0 of the general-purpose flags) in
        // the local header (offset 6) and the central directory (offset 8).
        for (signature, offset) in [(b"PK\x03\x04", 6), (b"PK\x01\x02", 8)] {
            let at = find(&bytes, signature).expect("zip header");
            bytes[at + offset] |= 1;
        }
        assert_eq!(
            parse(Format::Docx, &bytes, &ParseLimits::default()),
            Err(ParseError::Encrypted)
        );
    }

    #[test]
    fn docx_damage_is_reported() {
        let bytes = fixture("harbour-handbook.docx");
        let truncated = &bytes[..bytes.len() / 2];
        assert!(matches!(
            parse(Format::Docx, truncated, &ParseLimits::default()),
            Err(ParseError::Corrupt(_))
        ));
        let bad_xml = handmade_docx("<w:document><w:body><w:p><w:t>x</w:p", None);
        let err = parse(Format::Docx, &bad_xml, &ParseLimits::default());
        assert!(
            matches!(err, Err(ParseError::Corrupt(_) | ParseError::Empty)),
            "{err:?}"
        );
        assert!(matches!(
            parse(
                Format::Docx,
                &fixture("not-word.docx"),
                &ParseLimits::default()
            ),
            Err(ParseError::Corrupt(_))
        ));
    }

    // --- csv ------------------------------------------------------------------

    #[test]
    fn csv_rows_become_self_describing_lines() {
        let doc = parsed("lighthouses.csv");
        assert_eq!(doc.sections.len(), 1);
        assert!(doc
            .text
            .starts_with("Columns: name, location, height_m, first_lit, notes\n\n"));
        assert!(doc.text.contains("name: Orrin Point; location: Skerra Isle; height_m: 38; first_lit: 1852; notes: White tower, red lantern\n\n"));
        // Empty values are left out; quoted commas stay in their field.
        assert!(doc.text.contains(
            "name: Grey Buoy Light; location: Port Kessling; height_m: 12; first_lit: 1907\n\n"
        ));
        assert!(doc.text.contains("location: Tesk estuary, north bank;"));
        assert!(doc.text.ends_with("the keeper's cottage is now a café"));
    }

    #[test]
    fn csv_sniffs_semicolons_and_tolerates_ragged_rows() {
        let csv = "Name;Preis;\nBrot;2,50;extra;more\n\"Multi\nline\";1\n";
        let doc = parse(Format::Csv, csv.as_bytes(), &ParseLimits::default()).unwrap();
        check_invariants(&doc);
        assert!(doc.text.starts_with("Columns: Name, Preis, column 3\n\n"));
        assert!(doc
            .text
            .contains("Name: Brot; Preis: 2,50; column 3: extra; column 4: more"));
        assert!(doc.text.ends_with("Name: Multi line; Preis: 1"));
        assert_eq!(csv_delimiter("a\tb\tc\n"), b'\t');
        assert_eq!(csv_delimiter("\"a;b\",c\n"), b',');
        assert_eq!(csv_delimiter("single\n"), b',');
    }

    // --- pdf ------------------------------------------------------------------

    #[test]
    fn pdf_has_one_section_per_page_with_page_numbers() {
        let doc = parsed("velloran-survey.pdf");
        assert_eq!(doc.pages, Some(3));
        assert_eq!(doc.title.as_deref(), Some("The Velloran Valley Survey"));
        let pages: Vec<Option<u32>> = doc.sections.iter().map(|s| s.page).collect();
        assert_eq!(pages, [Some(1), Some(2), Some(3)]);
        assert!(doc.sections.iter().all(|s| s.heading_path.is_empty()));
        let bridge = section_of(
            &doc,
            "The Velloran bridge was completed in 1873 by engineer Mara Quist.",
        );
        assert_eq!(bridge.page, Some(2));
        assert_eq!(section_of(&doc, "4,318 residents").page, Some(3));
        assert_eq!(section_of(&doc, "waxed notebooks").page, Some(1));
    }

    #[test]
    fn pdf_text_is_reflowed_into_paragraphs() {
        let doc = parsed("velloran-survey.pdf");
        // Wrapped lines join with a space; paragraph gaps stay breaks.
        assert!(doc.text.contains("This report summarises the survey of the Velloran valley carried out between 1871 and 1874 for the river council of Ostmere. The surveyors mapped every ford, mill and ferry landing along the Tesk river.\n\nField teams"));
        assert!(doc
            .text
            .contains("The Velloran Bridge\n\nThe Velloran bridge"));
        // A typeset hyphen at a line end is removed, a real one is kept.
        assert!(doc
            .text
            .contains("was demolished in 1921 to widen the road"));
        assert!(doc.text.contains("The toll-keeper's lodge"));
        // Embedded subset font with a ToUnicode map.
        assert!(doc.text.contains("Ærøby, Kåsen and Øvre Tesk."));
        assert!(doc.text.contains("The efficient offices"));
    }

    #[test]
    fn pdf_errors() {
        assert_eq!(parse_fixture("encrypted.pdf"), Err(ParseError::Encrypted));
        assert!(ParseError::Encrypted
            .to_string()
            .contains("password-protected"));
        assert_eq!(parse_fixture("scanned.pdf"), Err(ParseError::Empty));
        let truncated = parse_fixture("truncated.pdf").unwrap_err();
        assert!(matches!(truncated, ParseError::Corrupt(_)), "{truncated:?}");
        assert!(truncated
            .to_string()
            .starts_with("This document could not be read: "));
        let garbage = parse(Format::Pdf, b"%PDF-1.7\n garbage", &ParseLimits::default());
        assert!(
            matches!(garbage, Err(ParseError::Corrupt(_))),
            "{garbage:?}"
        );
        let limits = ParseLimits {
            max_pages: 2,
            ..ParseLimits::default()
        };
        let err = parse(Format::Pdf, &fixture("velloran-survey.pdf"), &limits).unwrap_err();
        assert_eq!(
            err,
            ParseError::TooLarge {
                what: LimitKind::Pages,
                limit: 2
            }
        );
        assert!(err.to_string().contains("more than 2 pages"), "{err}");
    }

    #[test]
    fn pdf_with_only_an_owner_password_is_read() {
        let doc = parsed("owner-locked.pdf");
        assert_eq!(doc.title.as_deref(), Some("Lighthouse Log"));
        assert!(doc
            .text
            .contains("The Orrin Point lighthouse keeper logged 212 foggy nights in 1902."));
    }

    /// Makes one page's content stream and resources, adding any objects
    /// they refer to.
    type PageMaker = dyn Fn(&mut pdf_extract::Document) -> (String, pdf_extract::Dictionary);

    /// A PDF built object by object, one page per entry of `pages`.
    fn handmade_pdf(pages: &[&PageMaker], media_box: bool, pages_parent_cycle: bool) -> Vec<u8> {
        use pdf_extract::{Dictionary, Document, Object, Stream};
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let mut kids = Vec::new();
        for page in pages {
            let (content, resources) = page(&mut doc);
            let content_id = doc.add_object(Stream::new(Dictionary::new(), content.into_bytes()));
            let mut dict = Dictionary::new();
            dict.set("Type", Object::Name(b"Page".to_vec()));
            dict.set("Parent", Object::Reference(pages_id));
            dict.set("Contents", Object::Reference(content_id));
            dict.set("Resources", Object::Dictionary(resources));
            if media_box {
                dict.set(
                    "MediaBox",
                    Object::Array([0, 0, 595, 842].map(Object::Integer).to_vec()),
                );
            }
            kids.push(Object::Reference(doc.add_object(dict)));
        }
        let mut tree = Dictionary::new();
        tree.set("Type", Object::Name(b"Pages".to_vec()));
        tree.set("Count", Object::Integer(kids.len() as i64));
        tree.set("Kids", Object::Array(kids));
        if pages_parent_cycle {
            tree.set("Parent", Object::Reference(pages_id));
        }
        doc.objects.insert(pages_id, Object::Dictionary(tree));
        let mut catalog = Dictionary::new();
        catalog.set("Type", Object::Name(b"Catalog".to_vec()));
        catalog.set("Pages", Object::Reference(pages_id));
        let catalog_id = doc.add_object(catalog);
        doc.trailer.set("Root", Object::Reference(catalog_id));
        let mut out = Vec::new();
        doc.save_to(&mut out).expect("in-memory save");
        out
    }

    fn helvetica_page(
        text: &'static str,
    ) -> impl Fn(&mut pdf_extract::Document) -> (String, pdf_extract::Dictionary) {
        use pdf_extract::{Dictionary, Object};
        move |doc| {
            let mut font = Dictionary::new();
            font.set("Type", Object::Name(b"Font".to_vec()));
            font.set("Subtype", Object::Name(b"Type1".to_vec()));
            font.set("BaseFont", Object::Name(b"Helvetica".to_vec()));
            let font_id = doc.add_object(font);
            let mut fonts = Dictionary::new();
            fonts.set("F1", Object::Reference(font_id));
            let mut resources = Dictionary::new();
            resources.set("Font", Object::Dictionary(fonts));
            (format!("BT /F1 12 Tf 72 700 Td ({text}) Tj ET"), resources)
        }
    }

    #[test]
    fn pdf_self_drawing_form_is_skipped_without_overflowing_the_stack() {
        use pdf_extract::{Dictionary, Object, Stream};
        let recursive = |doc: &mut pdf_extract::Document| {
            let form_id = doc.new_object_id();
            let mut xobjects = Dictionary::new();
            xobjects.set("Fm0", Object::Reference(form_id));
            let mut form_resources = Dictionary::new();
            form_resources.set("XObject", Object::Dictionary(xobjects.clone()));
            let mut form = Dictionary::new();
            form.set("Type", Object::Name(b"XObject".to_vec()));
            form.set("Subtype", Object::Name(b"Form".to_vec()));
            form.set("Resources", Object::Dictionary(form_resources));
            doc.objects.insert(
                form_id,
                Object::Stream(Stream::new(form, b"/Fm0 Do".to_vec())),
            );
            let mut resources = Dictionary::new();
            resources.set("XObject", Object::Dictionary(xobjects));
            ("q /Fm0 Do Q".to_string(), resources)
        };
        let good = helvetica_page("Readable second page");
        let bytes = handmade_pdf(&[&recursive, &good], true, false);
        let doc = parse(Format::Pdf, &bytes, &ParseLimits::default()).unwrap();
        assert_eq!(doc.text, "Readable second page");
        assert_eq!(doc.sections[0].page, Some(2));
        assert_eq!(doc.pages, Some(2));

        let only_bad = handmade_pdf(&[&recursive], true, false);
        assert!(matches!(
            parse(Format::Pdf, &only_bad, &ParseLimits::default()),
            Err(ParseError::Corrupt(_))
        ));
    }

    #[test]
    fn pdf_page_that_panics_the_extractor_is_skipped() {
        // Text shown with a font that is not in the resources: pdf-extract
        // unwraps the lookup and panics.
        let broken = |_: &mut pdf_extract::Document| {
            (
                "BT /F9 12 Tf 72 700 Td (lost) Tj ET".to_string(),
                pdf_extract::Dictionary::new(),
            )
        };
        let good = helvetica_page("Survivor text");
        let bytes = handmade_pdf(&[&good, &broken], true, false);
        let doc = parse(Format::Pdf, &bytes, &ParseLimits::default()).unwrap();
        assert_eq!(doc.text, "Survivor text");
        assert_eq!(doc.pages, Some(2));
    }

    /// Found by fuzzing (`fuzz/`, parse_pdf): a mutated survey whose later
    /// pages make pdf-extract panic; the panics are caught, those pages
    /// skipped, and the first page read.
    #[test]
    fn fuzzed_pdf_with_panicking_pages_keeps_the_readable_one() {
        let doc = parse_fixture("fuzzed-panicking-pages.pdf").unwrap();
        check_invariants(&doc);
        assert_eq!(doc.pages, Some(3));
        assert!(
            doc.text.starts_with("The Velloran Valley Survey"),
            "{}",
            doc.text
        );
        assert_eq!(doc.sections.len(), 1);
    }

    #[test]
    fn pdf_page_tree_cycles_and_missing_media_box_are_repaired() {
        let good = helvetica_page("Text on a page without a MediaBox");
        let bytes = handmade_pdf(&[&good], false, true);
        let doc = parse(Format::Pdf, &bytes, &ParseLimits::default()).unwrap();
        assert_eq!(doc.text, "Text on a page without a MediaBox");
    }

    #[test]
    fn inflated_len_stops_at_the_cap() {
        use std::io::Write;
        let mut encoder =
            flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&vec![0u8; 1 << 20]).unwrap();
        let compressed = encoder.finish().unwrap();
        assert_eq!(pdf::inflated_len(&compressed, 2 << 20), Some(1 << 20));
        assert_eq!(pdf::inflated_len(&compressed, 4096), None);
        assert_eq!(pdf::inflated_len(b"not deflate at all", 4096), Some(0));
    }

    // --- robustness -------------------------------------------------------------

    /// Every fixture, cut short at many points and with bytes flipped:
    /// parsing may fail but must not panic (outside the guarded PDF
    /// extractor) or hang.
    #[test]
    fn damaged_inputs_never_panic() {
        let names = [
            "velloran-survey.pdf",
            "owner-locked.pdf",
            "harbour-handbook.docx",
            "garden-guide.md",
            "museum.html",
            "lighthouses.csv",
            "orchard.txt",
            "ferry-letter-utf16.txt",
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for name in names {
            let bytes = fixture(name);
            let format = Format::detect(name, &bytes).unwrap();
            for cut in 1..24 {
                let _ = parse(
                    format,
                    &bytes[..bytes.len() * cut / 24],
                    &ParseLimits::default(),
                );
            }
            for _ in 0..24 {
                let mut damaged = bytes.clone();
                for _ in 0..8 {
                    let at = (next() % damaged.len() as u64) as usize;
                    damaged[at] = next() as u8;
                }
                let _ = parse(format, &damaged, &ParseLimits::default());
            }
        }
    }
}
