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
