//! PDF text via pdf-extract (which positions each glyph, decodes font
//! encodings and ToUnicode maps), behind a hardening pass over the
//! lopdf document it uses: pdf-extract has unchecked `unwrap`s, recurses
//! into form XObjects without a cycle check, and decompresses streams
//! without a size cap.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::builder::*;
use super::document::*;
use super::encoding::find;
use super::normalize::*;

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

pub(super) fn parse_pdf(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedDocument, ParseError> {
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
                ParseError::Corrupt("its compressed content expands to an unreasonable size".into())
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
