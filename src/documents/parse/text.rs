//! Plain text: paragraphs, one section.

use super::builder::*;
use super::document::*;
use super::encoding::*;
use super::normalize::*;

/// Paragraphs are separated by blank lines; line breaks inside a paragraph
/// are kept (lists, addresses, poems). One section.
pub(super) fn parse_text(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedDocument, ParseError> {
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
