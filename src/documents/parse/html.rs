//! HTML: visible text only, sections at headings.

use encoding_rs::Encoding;

use super::builder::*;
use super::document::*;
use super::encoding::{decode_text, find};
use super::html_hiding::*;
use super::normalize::*;

/// Elements whose content is never visible text or is page furniture.
pub(super) fn html_skipped(name: &str) -> bool {
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
pub(super) fn html_block(name: &str) -> bool {
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

pub(super) fn html_heading_level(name: &str) -> Option<u8> {
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

/// The encoding a `<meta charset=…>` (or http-equiv content type) in the
/// first KiB names, as browsers pre-scan for it.
pub(super) fn html_declared_encoding(bytes: &[u8]) -> Option<&'static Encoding> {
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
pub(super) fn html_fragment_text(source: &str) -> String {
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
pub(super) fn parse_html(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedDocument, ParseError> {
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

    let mut reader = HtmlReader {
        builder: DocBuilder::new(limits),
        headings: HeadingStack::default(),
        title: None,
        first_h1: None,
        buf: InlineBuf::default(),
        heading: None,
        title_text: None,
        table_depth: 0,
        pre_depth: 0,
        lists: Vec::new(),
    };
    // The node whose subtree is being skipped, if any.
    let mut skipping: Option<ego_tree::NodeId> = None;
    // `traverse` walks the tree without recursion, so absurdly deep nesting
    // in hostile HTML cannot overflow the stack.
    for edge in document.tree.root().traverse() {
        match edge {
            Edge::Open(node) if skipping.is_none() => match node.value() {
                Node::Element(element) => {
                    let name = element.name();
                    if name == "title" && reader.title_text.is_none() {
                        reader.title_text = Some(String::new());
                    } else if html_skipped(name) || html_hidden(node, &hidden) {
                        skipping = Some(node.id());
                    } else {
                        reader.open(name, element.attr("start"))?;
                    }
                }
                Node::Text(text) => reader.text(text),
                _ => {}
            },
            Edge::Open(_) => {}
            Edge::Close(node) => {
                if skipping == Some(node.id()) {
                    skipping = None;
                } else if let (None, Node::Element(element)) = (skipping, node.value()) {
                    reader.close(element.name())?;
                }
            }
        }
    }
    reader
        .builder
        .push_block(&reader.buf.take(), reader.table_depth > 0)?;
    let title = reader.title.filter(|t| !t.is_empty()).or(reader.first_h1);
    reader.builder.finish(title, None)
}

/// Where the walk is in the page, and what it has read so far.
struct HtmlReader {
    builder: DocBuilder,
    headings: HeadingStack,
    /// The page's `<title>`, once read.
    title: Option<String>,
    first_h1: Option<String>,
    /// The block being read.
    buf: InlineBuf,
    /// The heading being read, with its level.
    heading: Option<(u8, InlineBuf)>,
    /// The `<title>` being read.
    title_text: Option<String>,
    table_depth: usize,
    pre_depth: usize,
    /// Next number of each enclosing ordered list (None: bullet list).
    lists: Vec<Option<u64>>,
}

impl HtmlReader {
    fn flush(&mut self) -> Result<(), ParseError> {
        self.builder.push_block(&self.buf.take(), false)?;
        Ok(())
    }

    /// An element opens (`start`: its `start` attribute, for `<ol>`).
    fn open(&mut self, name: &str, start: Option<&str>) -> Result<(), ParseError> {
        // A heading inside a table cell is just cell text.
        if let Some(level) = html_heading_level(name).filter(|_| self.table_depth == 0) {
            self.flush()?;
            self.heading = Some((level, InlineBuf::default()));
            return Ok(());
        }
        let in_table = self.table_depth > 0;
        match name {
            "br" => match self.heading.as_mut() {
                Some((_, h)) => h.push_text(" "),
                None => self.buf.hard_break(),
            },
            "table" => {
                if !in_table {
                    self.flush()?;
                }
                self.table_depth += 1;
            }
            // Inside tables these are plain cell content.
            "pre" if !in_table => {
                self.flush()?;
                self.pre_depth += 1;
            }
            "ul" | "ol" if !in_table => {
                self.flush()?;
                self.lists.push(
                    (name == "ol").then(|| start.and_then(|s| s.trim().parse().ok()).unwrap_or(1)),
                );
            }
            "li" if !in_table => {
                self.flush()?;
                self.buf.set_prefix(next_list_marker(&mut self.lists));
            }
            _ if html_block(name) => {
                if in_table {
                    self.buf.push_text(" ");
                } else {
                    self.flush()?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn text(&mut self, text: &str) {
        if let Some(title_text) = self.title_text.as_mut().filter(|_| self.title.is_none()) {
            title_text.push_str(text);
        } else if let Some((_, h)) = self.heading.as_mut() {
            h.push_text(text);
        } else if self.pre_depth > 0 {
            // Preformatted: keep the author's line breaks.
            for (i, line) in text.split('\n').enumerate() {
                if i > 0 {
                    self.buf.hard_break();
                }
                self.buf.push_text(line);
            }
        } else {
            self.buf.push_text(text);
        }
    }

    fn close(&mut self, name: &str) -> Result<(), ParseError> {
        if name == "title" && self.title.is_none() {
            self.title = self.title_text.clone().map(|t| normalize_inline(&t));
            return Ok(());
        }
        let in_table = self.table_depth > 0;
        if let Some(level) = html_heading_level(name).filter(|_| !in_table) {
            if let Some((_, mut h)) = self.heading.take() {
                let text = normalize_inline(&h.take());
                if !text.is_empty() {
                    if level == 1 && self.first_h1.is_none() {
                        self.first_h1 = Some(text.clone());
                    }
                    let path = self.headings.enter(level, text.clone());
                    self.builder.start_section(path, None, Some(&text))?;
                }
            }
            return Ok(());
        }
        match name {
            "td" | "th" => self.buf.cell_break(),
            "tr" => self.buf.hard_break(),
            "table" => {
                self.table_depth = self.table_depth.saturating_sub(1);
                if self.table_depth == 0 {
                    self.builder.push_block(&self.buf.take(), true)?;
                }
            }
            "pre" if !in_table => {
                self.flush()?;
                self.pre_depth = self.pre_depth.saturating_sub(1);
            }
            "ul" | "ol" if !in_table => {
                self.flush()?;
                self.lists.pop();
            }
            "li" if !in_table => {
                self.flush()?;
                self.buf.prefix = None;
            }
            _ if html_block(name) && !in_table => self.flush()?,
            _ => {}
        }
        Ok(())
    }
}
