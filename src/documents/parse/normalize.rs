//! Whitespace, invisible characters and ligatures: the text conventions of the module docs.

/// Characters that carry no visible text: dropped everywhere. Besides
/// control characters and the usual zero-width ones, these are the
/// invisible format characters that can smuggle text past a reader: the
/// Unicode tag characters (U+E0000–E007F, which spell out ASCII
/// invisibly), bidirectional overrides and isolates, invisible math
/// operators, interlinear annotation marks and variation selectors. The
/// zero-width (non-)joiners stay: some scripts and emoji need them.
pub(super) fn is_invisible(c: char) -> bool {
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
pub(super) fn ligature(c: char) -> Option<&'static str> {
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

pub(super) fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\x0b' | '\x0c' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// Normalises one block: per line, whitespace runs become one space (or
/// one tab when `keep_tabs` and the run contains a tab, for table rows),
/// invisible characters go, lines are trimmed and empty lines dropped.
pub(super) fn normalize_block(raw: &str, keep_tabs: bool) -> String {
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
pub(super) fn normalize_inline(raw: &str) -> String {
    normalize_block(&raw.replace(is_line_break, " "), false)
}

/// Accumulates the inline content of one block as a browser lays it out:
/// source whitespace (line breaks included) collapses to one space, while
/// explicit line breaks and table cell boundaries are kept.
#[derive(Default)]
pub(super) struct InlineBuf {
    text: String,
    /// Emitted before the first visible character (list markers), so an
    /// empty item does not produce a lone "-".
    pub(super) prefix: Option<String>,
}

impl InlineBuf {
    pub(super) fn push_text(&mut self, s: &str) {
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

    pub(super) fn trim_trailing_space(&mut self) {
        let trimmed = self.text.trim_end_matches(' ').len();
        self.text.truncate(trimmed);
    }

    pub(super) fn hard_break(&mut self) {
        self.trim_trailing_space();
        if !self.text.is_empty() {
            self.text.push('\n');
        }
    }

    pub(super) fn cell_break(&mut self) {
        self.trim_trailing_space();
        self.text.push('\t');
    }

    pub(super) fn set_prefix(&mut self, prefix: String) {
        self.prefix = Some(prefix);
    }

    /// Takes the text; a prefix not yet used stays for the next text.
    pub(super) fn take(&mut self) -> String {
        std::mem::take(&mut self.text)
    }
}
