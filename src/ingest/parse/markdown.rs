//! Markdown, rendered to plain text with pulldown-cmark.

use super::builder::*;
use super::document::*;
use super::encoding::*;
use super::html::html_fragment_text;
use super::normalize::*;

/// Rendered to plain text with pulldown-cmark (CommonMark + tables,
/// footnotes, task lists; front matter and raw HTML are dropped). Sections
/// split at ATX and setext headings.
pub(super) fn parse_markdown(
    bytes: &[u8],
    limits: &ParseLimits,
) -> Result<ParsedDocument, ParseError> {
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
