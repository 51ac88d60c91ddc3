//! Assembles blocks into the document text and its sections (headings, pages).

use super::document::*;
use super::normalize::*;

/// The headings enclosing the current position.
#[derive(Default)]
pub(super) struct HeadingStack(Vec<(u8, String)>);

impl HeadingStack {
    /// Enters a heading of `level` (smaller is outer) and returns the new path.
    pub(super) fn enter(&mut self, level: u8, text: String) -> Vec<String> {
        while self.0.last().is_some_and(|(l, _)| *l >= level) {
            self.0.pop();
        }
        self.0.push((level, text));
        self.0.iter().map(|(_, t)| t.clone()).collect()
    }
}

/// The section being filled by [`DocBuilder`].
pub(super) struct OpenSection {
    /// Byte offset of its first block; `None` while it has none.
    start: Option<usize>,
    heading_path: Vec<String>,
    page: Option<u32>,
    /// Whether it holds nothing but its heading(s) so far.
    heading_only: bool,
}

/// Builds the normalised text and its sections block by block, enforcing
/// `max_chars` as it goes so a huge document stops early.
pub(super) struct DocBuilder {
    text: String,
    chars: usize,
    max_chars: usize,
    sections: Vec<Section>,
    open: OpenSection,
}

impl DocBuilder {
    pub(super) fn new(limits: &ParseLimits) -> Self {
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
    pub(super) fn push_block(&mut self, raw: &str, keep_tabs: bool) -> Result<bool, ParseError> {
        let added = self.append(raw, keep_tabs)?;
        if added {
            self.open.heading_only = false;
        }
        Ok(added)
    }

    pub(super) fn append(&mut self, raw: &str, keep_tabs: bool) -> Result<bool, ParseError> {
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
    pub(super) fn start_section(
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

    pub(super) fn close_open(&mut self) {
        if let Some(start) = self.open.start.take() {
            self.sections.push(Section {
                byte_start: start,
                byte_end: start, // fixed in `finish`
                heading_path: std::mem::take(&mut self.open.heading_path),
                page: self.open.page,
            });
        }
    }

    pub(super) fn finish(
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

/// The marker of the next item of the innermost list (`lists`: the next
/// number of each enclosing ordered list, `None` for a bullet list).
pub(super) fn next_list_marker(lists: &mut [Option<u64>]) -> String {
    match lists.last_mut() {
        Some(Some(n)) => {
            let marker = format!("{n}. ");
            *n += 1;
            marker
        }
        _ => "- ".to_string(),
    }
}
