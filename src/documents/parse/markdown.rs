//! Markdown, rendered to plain text with pulldown-cmark.

use super::builder::*;
use super::document::*;
use super::encoding::*;
use super::html::html_fragment_text;
use super::normalize::*;
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// Rendered to plain text with pulldown-cmark (CommonMark + tables,
/// footnotes, task lists; front matter and raw HTML are dropped). Sections
/// split at ATX and setext headings.
pub(super) fn parse_markdown(
    bytes: &[u8],
    limits: &ParseLimits,
) -> Result<ParsedDocument, ParseError> {
    let source = decode_text(bytes, None)?;
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS;
    let mut reader = Reader {
        builder: DocBuilder::new(limits),
        headings: HeadingStack::default(),
        title: None,
        buf: InlineBuf::default(),
        heading: None,
        code: None,
        in_table: false,
        in_metadata: false,
        html_block: None,
        lists: Vec::new(),
    };
    for event in Parser::new_ext(&source, options) {
        reader.event(event)?;
    }
    reader
        .builder
        .push_block(&reader.buf.take(), reader.in_table)?;
    reader.builder.finish(reader.title, None)
}

/// Where the parser is in the document, and what it has read so far.
struct Reader {
    builder: DocBuilder,
    headings: HeadingStack,
    title: Option<String>,
    /// The block being read.
    buf: InlineBuf,
    /// The heading being read, with its level.
    heading: Option<(u8, InlineBuf)>,
    /// The code block being read.
    code: Option<String>,
    in_table: bool,
    in_metadata: bool,
    /// Source of the raw HTML block being read, if any.
    html_block: Option<String>,
    /// Next number of each enclosing ordered list (None: bullet list).
    lists: Vec<Option<u64>>,
}

impl Reader {
    fn event(&mut self, event: Event<'_>) -> Result<(), ParseError> {
        match event {
            Event::Start(tag) => return self.start(tag),
            Event::End(tag) => return self.end(tag),
            // Inline tags (<b>, <br>) are dropped; the text between them
            // arrives as Text events.
            Event::Html(source) => {
                if let Some(block) = self.html_block.as_mut() {
                    block.push_str(&source);
                }
            }
            Event::Rule => return self.end_block(),
            Event::Text(text)
            | Event::Code(text)
            | Event::InlineMath(text)
            | Event::DisplayMath(text) => {
                if self.in_metadata {
                    return Ok(());
                }
                if let Some(code) = self.code.as_mut() {
                    code.push_str(&text);
                } else if let Some((_, heading)) = self.heading.as_mut() {
                    heading.push_text(&text);
                } else {
                    self.buf.push_text(&text);
                }
            }
            Event::SoftBreak => match self.heading.as_mut() {
                Some((_, heading)) => heading.push_text(" "),
                None => self.buf.push_text(" "),
            },
            Event::HardBreak => self.buf.hard_break(),
            Event::TaskListMarker(done) => self.buf.push_text(if done { "[x] " } else { "[ ] " }),
            Event::FootnoteReference(label) => self.buf.push_text(&format!("[{label}]")),
            _ => {}
        }
        Ok(())
    }

    /// Ends the current block (inside a table a paragraph cannot start, so
    /// there nothing ends).
    fn end_block(&mut self) -> Result<(), ParseError> {
        if !self.in_table {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ParseError> {
        self.builder.push_block(&self.buf.take(), false)?;
        Ok(())
    }

    fn start(&mut self, tag: Tag<'_>) -> Result<(), ParseError> {
        match tag {
            Tag::Heading { level, .. } => {
                self.flush()?;
                let level = match level {
                    HeadingLevel::H1 => 1,
                    HeadingLevel::H2 => 2,
                    HeadingLevel::H3 => 3,
                    HeadingLevel::H4 => 4,
                    HeadingLevel::H5 => 5,
                    HeadingLevel::H6 => 6,
                };
                self.heading = Some((level, InlineBuf::default()));
            }
            Tag::CodeBlock(_) => {
                self.flush()?;
                self.code = Some(String::new());
            }
            Tag::List(first) => {
                self.flush()?;
                self.lists.push(first);
            }
            Tag::Item => {
                self.flush()?;
                self.buf.set_prefix(next_list_marker(&mut self.lists));
            }
            Tag::Table(_) => {
                self.flush()?;
                self.in_table = true;
            }
            Tag::MetadataBlock(_) => self.in_metadata = true,
            Tag::HtmlBlock => {
                self.flush()?;
                self.html_block = Some(String::new());
            }
            Tag::Paragraph
            | Tag::BlockQuote(_)
            | Tag::FootnoteDefinition(_)
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition => self.end_block()?,
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, tag: TagEnd) -> Result<(), ParseError> {
        match tag {
            TagEnd::Heading(_) => {
                if let Some((level, mut text)) = self.heading.take() {
                    let text = normalize_inline(&text.take());
                    if !text.is_empty() {
                        if level == 1 && self.title.is_none() {
                            self.title = Some(text.clone());
                        }
                        let path = self.headings.enter(level, text.clone());
                        self.builder.start_section(path, None, Some(&text))?;
                    }
                }
            }
            TagEnd::CodeBlock => {
                if let Some(code) = self.code.take() {
                    self.builder.push_block(&code, false)?;
                }
            }
            TagEnd::List(_) => {
                self.flush()?;
                self.lists.pop();
            }
            TagEnd::Item => {
                self.flush()?;
                self.buf.prefix = None;
            }
            TagEnd::Table => {
                self.builder.push_block(&self.buf.take(), true)?;
                self.in_table = false;
            }
            TagEnd::TableCell => self.buf.cell_break(),
            TagEnd::TableHead | TagEnd::TableRow => self.buf.hard_break(),
            TagEnd::MetadataBlock(_) => self.in_metadata = false,
            TagEnd::HtmlBlock => {
                if let Some(source) = self.html_block.take() {
                    self.builder
                        .push_block(&html_fragment_text(&source), false)?;
                }
            }
            TagEnd::Paragraph
            | TagEnd::BlockQuote(_)
            | TagEnd::FootnoteDefinition
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition => self.end_block()?,
            _ => {}
        }
        Ok(())
    }
}
