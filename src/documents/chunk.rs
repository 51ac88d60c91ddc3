//! Splitting a [`ParsedDocument`] into chunks that fit the embedding model.
//!
//! Structure comes first: a chunk never spans two sections (headings, PDF
//! pages). Inside a section whole paragraphs are packed greedily up to
//! `max_tokens`; a paragraph too long for one chunk is packed sentence by
//! sentence; a sentence too long is cut at its line breaks, and failing that
//! into near-equal runs of tokens (preferably at word starts). Because
//! packing only starts a new chunk when the next piece does not fit, a small
//! trailing piece always ends up in the previous chunk when there is room.
//!
//! Consecutive chunks of a section overlap: a new chunk starts with the
//! last whole sentences of the previous one, up to `overlap_tokens`; when the
//! previous chunk ends in a sentence longer than that, with its last
//! `overlap_tokens` tokens. The overlap shrinks when the next piece would not
//! fit beside it, and never repeats a whole chunk.
//!
//! Chunk text is exactly a slice of the document text (nothing prepended);
//! `char_start..char_end` locate it in Unicode scalar values.

use std::ops::Range;

use super::parse::ParsedDocument;
pub use crate::embed::TokenSpans;

/// How big chunks are and how many a document may produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkConfig {
    /// Most tokens in one chunk. all-MiniLM-L6-v2 reads 256 tokens including
    /// `[CLS]` and `[SEP]`, hence 250 by default.
    pub max_tokens: usize,
    /// Tokens (about) that consecutive chunks of a section share; capped at
    /// half of `max_tokens`.
    pub overlap_tokens: usize,
    /// Most chunks one document may produce.
    pub max_chunks: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self {
            max_tokens: 250,
            overlap_tokens: 40,
            max_chunks: 20_000,
        }
    }
}

/// A piece of a document, ready to embed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position among the document's chunks, from 0.
    pub index: u32,
    /// `doc.text[char_start..char_end]` (in chars).
    pub text: String,
    /// Heading path of the section the chunk lies in.
    pub heading_path: Vec<String>,
    /// PDF page the chunk lies on.
    pub page: Option<u32>,
    /// Offset in Unicode scalar values into the document text.
    pub char_start: usize,
    /// Offset in Unicode scalar values into the document text, exclusive.
    pub char_end: usize,
    /// Tokens of the chunk according to the [`TokenSpans`] used.
    pub token_count: usize,
}

/// Why a document could not be chunked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("This document is too long: it would be split into more than {limit} pieces.")]
    TooManyChunks { limit: usize },
}

/// Splits every section of `doc` into chunks of at most
/// `config.max_tokens` tokens (see the module docs for how).
pub fn chunk_document(
    doc: &ParsedDocument,
    tokens: &dyn TokenSpans,
    config: &ChunkConfig,
) -> Result<Vec<Chunk>, ChunkError> {
    let max_tokens = config.max_tokens.max(1);
    let overlap_tokens = config.overlap_tokens.min(max_tokens / 2);
    let limit = config.max_chunks.min(u32::MAX as usize);
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut cursor = CharCursor::default();
    for section in &doc.sections {
        // Sections come from the parser, but a hand-made document with a bad
        // range must not panic: such a section is skipped.
        let Some(text) = doc.text.get(section.byte_start..section.byte_end) else {
            continue;
        };
        let chunker = SectionChunker {
            text,
            spans: clean_spans(tokens.token_spans(text), text),
            max_tokens,
            overlap_tokens,
        };
        for range in chunker.chunk_ranges() {
            if chunks.len() >= limit {
                return Err(ChunkError::TooManyChunks {
                    limit: config.max_chunks,
                });
            }
            let start = section.byte_start + range.start;
            let end = section.byte_start + range.end;
            let chunk_text = &doc.text[start..end];
            let char_start = cursor.char_offset(&doc.text, start);
            chunks.push(Chunk {
                index: chunks.len() as u32,
                text: chunk_text.to_string(),
                heading_path: section.heading_path.clone(),
                page: section.page,
                char_start,
                char_end: char_start + chunk_text.chars().count(),
                token_count: chunker.count(range),
            });
        }
    }
    Ok(chunks)
}

/// Converts increasing byte offsets to char offsets without rescanning the
/// text from the start each time.
#[derive(Default)]
struct CharCursor {
    byte: usize,
    char: usize,
}

impl CharCursor {
    fn char_offset(&mut self, text: &str, byte: usize) -> usize {
        if byte < self.byte {
            // Chunk starts only move forward; restart if that ever changes.
            *self = Self::default();
        }
        self.char += text[self.byte..byte].chars().count();
        self.byte = byte;
        self.char
    }
}

/// Token spans made safe to use as cut points: inside the text, on char
/// boundaries, non-empty, sorted by start.
fn clean_spans(mut spans: Vec<Range<usize>>, text: &str) -> Vec<Range<usize>> {
    spans.retain_mut(|span| {
        span.start = span.start.min(text.len());
        span.end = span.end.min(text.len());
        while !text.is_char_boundary(span.start) {
            span.start -= 1;
        }
        while !text.is_char_boundary(span.end) {
            span.end += 1;
        }
        span.start < span.end
    });
    spans.sort_by_key(|span| span.start);
    spans
}

/// A sentence (or a smaller piece of an over-long one): the unit of
/// overlap, and of packing inside paragraphs too long for one chunk.
struct Atom {
    range: Range<usize>,
}

/// A chunk being built or just finished, as atom indices and bytes.
#[derive(Clone)]
struct Draft {
    first_atom: usize,
    end_atom: usize,
    start: usize,
    end: usize,
}

struct SectionChunker<'a> {
    text: &'a str,
    spans: Vec<Range<usize>>,
    max_tokens: usize,
    overlap_tokens: usize,
}

const SENTENCE_END: &[char] = &['.', '!', '?', '…', '。', '！', '？'];
const CLOSERS: &[char] = &['"', '\'', ')', ']', '”', '’', '»', '」', '』'];
/// Words that end with a full stop without ending a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "no", "nr", "fig", "figs", "approx",
    "ca", "cf", "vol", "pp", "inc", "ltd", "co", "corp", "dept", "mt", "gen", "col", "lt", "sgt",
    "capt", "rev", "hon",
];

impl SectionChunker<'_> {
    /// Index of the first token starting at or after `byte`.
    fn token_at(&self, byte: usize) -> usize {
        self.spans.partition_point(|span| span.start < byte)
    }

    /// Tokens starting inside `range`.
    fn count(&self, range: Range<usize>) -> usize {
        self.token_at(range.end) - self.token_at(range.start)
    }

    /// Whether token `index` begins a word (follows whitespace or starts the
    /// text), i.e. is a clean place to cut.
    fn starts_word(&self, index: usize) -> bool {
        let start = self.spans[index].start;
        self.text[..start]
            .chars()
            .next_back()
            .is_none_or(char::is_whitespace)
    }

    /// `range` cut at `cuts` (byte offsets, ascending), each piece trimmed,
    /// empty pieces dropped.
    fn pieces(&self, range: Range<usize>, cuts: &[Range<usize>]) -> Vec<Range<usize>> {
        let mut pieces = Vec::new();
        let mut start = range.start;
        let final_cut = range.end..range.end;
        for cut in cuts.iter().chain(std::iter::once(&final_cut)) {
            if let Some(piece) = self.trimmed(start..cut.start) {
                pieces.push(piece);
            }
            start = cut.end;
        }
        pieces
    }

    fn trimmed(&self, range: Range<usize>) -> Option<Range<usize>> {
        let slice = &self.text[range.clone()];
        let start = range.start + (slice.len() - slice.trim_start().len());
        let end = range.end - (slice.len() - slice.trim_end().len());
        (start < end).then_some(start..end)
    }

    /// Paragraphs: text between blank lines.
    fn paragraphs(&self) -> Vec<Range<usize>> {
        let cuts: Vec<Range<usize>> = self
            .text
            .match_indices("\n\n")
            .map(|(i, sep)| i..i + sep.len())
            .collect();
        self.pieces(0..self.text.len(), &cuts)
    }

    /// Lines of `range`.
    fn lines(&self, range: Range<usize>) -> Vec<Range<usize>> {
        let cuts: Vec<Range<usize>> = self.text[range.clone()]
            .match_indices('\n')
            .map(|(i, _)| range.start + i..range.start + i + 1)
            .collect();
        self.pieces(range, &cuts)
    }

    /// Sentences of `range`: a terminator (plus closing quotes/brackets)
    /// followed by whitespace, unless it is the full stop of an
    /// abbreviation or initial, or the next word starts in lower case.
    fn sentences(&self, range: Range<usize>) -> Vec<Range<usize>> {
        let text = &self.text[range.clone()];
        let mut cuts = Vec::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if !SENTENCE_END.contains(&c) {
                continue;
            }
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if SENTENCE_END.contains(&d) || CLOSERS.contains(&d) {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            // CJK full stops are not followed by spaces.
            let wide = matches!(c, '。' | '！' | '？');
            let Some(&(_, next)) = chars.peek() else {
                continue;
            };
            if !(next.is_whitespace() || wide) {
                continue;
            }
            if next_word_is_lowercase(&text[end..])
                || (c == '.' && end == i + 1 && is_abbreviation(text, i))
            {
                continue;
            }
            cuts.push(range.start + end..range.start + end);
        }
        self.pieces(range, &cuts)
    }

    /// `range` cut into near-equal runs of tokens, each cut moved back to a
    /// word start when one is close. Runs leave room for the overlap that
    /// the next chunk will repeat, so it is not squeezed out.
    fn token_pieces(&self, range: Range<usize>) -> Vec<Range<usize>> {
        let first = self.token_at(range.start);
        let end = self.token_at(range.end);
        let total = end - first;
        if total <= self.max_tokens {
            return vec![range];
        }
        let limit = self.max_tokens - self.overlap_tokens;
        let parts = total.div_ceil(limit);
        let target = total.div_ceil(parts);
        let mut pieces = Vec::new();
        let mut piece_start = range.start;
        let mut token = first;
        while end - token > limit {
            let mut cut = token + target;
            let earliest = token + target.div_ceil(2);
            if let Some(word_cut) = (earliest..=cut).rev().find(|&t| self.starts_word(t)) {
                cut = word_cut;
            }
            let piece_end = self.spans[cut - 1].end.min(range.end).max(piece_start);
            if let Some(piece) = self.trimmed(piece_start..piece_end) {
                pieces.push(piece);
            }
            piece_start = self.spans[cut].start.max(piece_end);
            token = cut;
        }
        if let Some(piece) = self.trimmed(piece_start..range.end) {
            pieces.push(piece);
        }
        pieces
    }

    /// The section's atoms and the packing units over them (a paragraph
    /// that fits in a chunk is one unit; a longer one, one unit per atom).
    fn atoms_and_units(&self) -> (Vec<Atom>, Vec<Range<usize>>) {
        let mut atoms = Vec::new();
        let mut units = Vec::new();
        for range in self.paragraphs() {
            let first_atom = atoms.len();
            for sentence in self.sentences(range.clone()) {
                if self.count(sentence.clone()) <= self.max_tokens {
                    atoms.push(Atom { range: sentence });
                    continue;
                }
                for line in self.lines(sentence) {
                    for piece in self.token_pieces(line) {
                        atoms.push(Atom { range: piece });
                    }
                }
            }
            if self.count(range) <= self.max_tokens {
                units.push(first_atom..atoms.len());
            } else {
                units.extend((first_atom..atoms.len()).map(|a| a..a + 1));
            }
        }
        (atoms, units)
    }

    /// Where the chunk after `prev` should start to repeat at most `budget`
    /// tokens of it: the start of its last whole sentences, or of its last
    /// `budget` tokens when its last sentence alone is longer than that.
    /// `None` for no overlap.
    fn overlap_start(&self, atoms: &[Atom], prev: &Draft, budget: usize) -> Option<usize> {
        if budget == 0 {
            return None;
        }
        let mut start = None;
        let mut used = 0;
        for a in (prev.first_atom + 1..prev.end_atom).rev() {
            let tokens = self.count(atoms[a].range.clone());
            if used + tokens > budget {
                break;
            }
            used += tokens;
            start = Some(atoms[a].range.start);
        }
        if start.is_some() {
            return start;
        }
        let last = &atoms[prev.end_atom - 1];
        if self.count(last.range.clone()) <= budget {
            // A short last sentence that is the whole chunk: repeating it
            // would duplicate the chunk, so no overlap.
            return None;
        }
        let first_token = self.token_at(prev.start.max(last.range.start)) + 1;
        let end_token = self.token_at(last.range.end);
        let mut token = end_token.saturating_sub(budget).max(first_token);
        // Start at a word, not inside one, if one is near.
        if let Some(word) = (token..end_token.min(token + 32)).find(|&t| self.starts_word(t)) {
            token = word;
        }
        (token < end_token).then(|| self.spans[token].start)
    }

    /// Byte ranges (in the section text) of the section's chunks.
    fn chunk_ranges(&self) -> Vec<Range<usize>> {
        let (atoms, units) = self.atoms_and_units();
        let mut done: Vec<Draft> = Vec::new();
        let mut current: Option<Draft> = None;
        for unit in units {
            let unit_start = atoms[unit.start].range.start;
            let unit_end = atoms[unit.end - 1].range.end;
            if let Some(draft) = current.as_mut() {
                if self.count(draft.start..unit_end) <= self.max_tokens {
                    draft.end_atom = unit.end;
                    draft.end = unit_end;
                    continue;
                }
            }
            if let Some(finished) = current.take() {
                done.push(finished);
            }
            let mut start = unit_start;
            let mut first_atom = unit.start;
            if let Some(prev) = done.last() {
                let unit_tokens = self.count(unit_start..unit_end);
                let budget = self
                    .overlap_tokens
                    .min(self.max_tokens.saturating_sub(unit_tokens));
                if let Some(overlap) = self.overlap_start(&atoms, prev, budget) {
                    let fits = self.count(overlap..unit_end) <= self.max_tokens;
                    // Never let the overlap reach back to (or before) the
                    // previous chunk's start, so chunk starts only increase.
                    if fits && overlap > prev.start {
                        start = overlap;
                        first_atom = atoms
                            .partition_point(|a| a.range.end <= overlap)
                            .min(unit.start);
                    }
                }
            }
            current = Some(Draft {
                first_atom,
                end_atom: unit.end,
                start,
                end: unit_end,
            });
        }
        done.extend(current);
        done.into_iter().map(|d| d.start..d.end).collect()
    }
}

/// A sentence does not go on in lower case: `"Done?" she asked.`
fn next_word_is_lowercase(rest: &str) -> bool {
    rest.trim_start()
        .chars()
        .next()
        .is_some_and(char::is_lowercase)
}

/// Whether the full stop at byte `dot` of `text` belongs to an
/// abbreviation ("Dr.", "e.g.", an initial "J.") rather than ending a
/// sentence.
fn is_abbreviation(text: &str, dot: usize) -> bool {
    let word = text[..dot]
        .rsplit(char::is_whitespace)
        .next()
        .unwrap_or("")
        .trim_start_matches(['(', '"', '\'', '“', '‘', '[']);
    let mut letters = word.chars();
    let initial = matches!((letters.next(), letters.next()), (Some(c), None) if c.is_uppercase());
    let dotted = word.contains('.') && word.chars().all(|c| c.is_alphabetic() || c == '.');
    initial || dotted || ABBREVIATIONS.contains(&word.to_lowercase().as_str())
}

/// Panics unless `chunks` of `doc` keep the chunker's invariants: numbered
/// in order, each the exact (trimmed) text at its offsets, inside one
/// section with its heading path and page, within the token budget, and
/// together covering every non-space character. For tests and fuzzing.
pub fn check_invariants(
    doc: &ParsedDocument,
    chunks: &[Chunk],
    tokens: &dyn TokenSpans,
    config: &ChunkConfig,
) {
    let chars: Vec<char> = doc.text.chars().collect();
    let byte_of_char: Vec<usize> = doc
        .text
        .char_indices()
        .map(|(b, _)| b)
        .chain([doc.text.len()])
        .collect();
    let mut covered = vec![false; chars.len()];
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk.index as usize, i);
        assert!(chunk.char_start < chunk.char_end, "{chunk:?}");
        let slice: String = chars[chunk.char_start..chunk.char_end].iter().collect();
        assert_eq!(chunk.text, slice, "offset invariant broken for {chunk:?}");
        assert_eq!(chunk.text.trim(), chunk.text, "untrimmed {chunk:?}");
        assert_eq!(
            chunk.token_count,
            tokens.token_spans(&chunk.text).len(),
            "{chunk:?}"
        );
        assert!(
            chunk.token_count <= config.max_tokens.max(1),
            "{} tokens > {}: {chunk:?}",
            chunk.token_count,
            config.max_tokens
        );
        let (start, end) = (byte_of_char[chunk.char_start], byte_of_char[chunk.char_end]);
        let section = doc
            .sections
            .iter()
            .find(|s| s.byte_start <= start && start < s.byte_end)
            .expect("chunk outside every section");
        assert!(
            end <= section.byte_end,
            "chunk crosses a section end: {chunk:?}"
        );
        assert_eq!(chunk.heading_path, section.heading_path);
        assert_eq!(chunk.page, section.page);
        covered[chunk.char_start..chunk.char_end].fill(true);
    }
    for (i, c) in chars.iter().enumerate() {
        assert!(
            covered[i] || c.is_whitespace(),
            "char {i} ({c:?}) is in no chunk"
        );
    }
    for pair in chunks.windows(2) {
        assert!(
            pair[0].char_start < pair[1].char_start,
            "starts must increase"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::parse::{parse, Format, ParseLimits, Section};
    use std::path::Path;

    /// Test tokenizer: a run of letters/digits is one token, every other
    /// non-space character is a token of its own. Like WordPiece it never
    /// spans whitespace, so counts of a slice equal counts in context.
    struct WordTokens;

    impl TokenSpans for WordTokens {
        fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
            let mut spans = Vec::new();
            let mut word: Option<usize> = None;
            for (i, c) in text.char_indices() {
                if c.is_alphanumeric() {
                    word.get_or_insert(i);
                    continue;
                }
                if let Some(start) = word.take() {
                    spans.push(start..i);
                }
                if !c.is_whitespace() {
                    spans.push(i..i + c.len_utf8());
                }
            }
            if let Some(start) = word {
                spans.push(start..text.len());
            }
            spans
        }
    }

    fn tokens(text: &str) -> usize {
        WordTokens.token_spans(text).len()
    }

    fn config(max_tokens: usize, overlap_tokens: usize) -> ChunkConfig {
        ChunkConfig {
            max_tokens,
            overlap_tokens,
            ..ChunkConfig::default()
        }
    }

    /// A document of `(heading path, page, body)` sections, joined the way
    /// the parser joins blocks.
    fn document(sections: &[(&[&str], Option<u32>, &str)]) -> ParsedDocument {
        let mut text = String::new();
        let mut out = Vec::new();
        for (i, (path, page, body)) in sections.iter().enumerate() {
            let start = text.len();
            text.push_str(body);
            if i + 1 < sections.len() {
                text.push_str("\n\n");
            }
            out.push(Section {
                byte_start: start,
                byte_end: text.len(),
                heading_path: path.iter().map(|s| s.to_string()).collect(),
                page: *page,
            });
        }
        ParsedDocument {
            text,
            sections: out,
            pages: None,
            title: None,
        }
    }

    fn chunk(doc: &ParsedDocument, config: ChunkConfig) -> Vec<Chunk> {
        let chunks = chunk_document(doc, &WordTokens, &config).unwrap();
        check_invariants(doc, &chunks, &WordTokens, &config);
        chunks
    }

    /// Found by fuzzing (`fuzz/`, parse_html): a page whose first block is
    /// a table row with an empty first cell, so its text opens with a tab.
    #[test]
    fn fuzzed_html_opening_with_an_empty_table_cell_chunks_cleanly() {
        let html = b"<!DOCTYPConf 2024 - Day 1 schedule</h1>\n<table>\x12<td><td>Keynote: \
                     Twenty years of web pe</li><li><a href=\"/s>";
        let doc = parse(Format::Html, html, &ParseLimits::default()).unwrap();
        crate::documents::parse::check_invariants(&doc);
        assert!(doc.text.starts_with('\t'), "{:?}", doc.text);
        chunk(&doc, config(8, 2));
    }

    fn fixture_doc(name: &str) -> ParsedDocument {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/docs")
            .join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let format = Format::detect(name, &bytes).unwrap();
        parse(format, &bytes, &ParseLimits::default()).unwrap()
    }

    const FIXTURES: &[&str] = &[
        "velloran-survey.pdf",
        "owner-locked.pdf",
        "harbour-handbook.docx",
        "garden-guide.md",
        "museum.html",
        "lighthouses.csv",
        "orchard.txt",
        "ferry-letter-utf16.txt",
        "menu-cp1252.txt",
    ];

    #[test]
    fn every_fixture_keeps_the_offset_invariant() {
        for name in FIXTURES {
            let doc = fixture_doc(name);
            for (max, overlap) in [(250, 40), (60, 15), (20, 6), (7, 2), (1, 0)] {
                chunk(&doc, config(max, overlap));
            }
        }
    }

    #[test]
    fn pdf_chunks_keep_their_pages() {
        let doc = fixture_doc("velloran-survey.pdf");
        let chunks = chunk(&doc, ChunkConfig::default());
        let pages: Vec<Option<u32>> = chunks.iter().map(|c| c.page).collect();
        assert_eq!(pages, [Some(1), Some(2), Some(3)]);
        assert!(chunks[1]
            .text
            .contains("The Velloran bridge was completed in 1873 by engineer Mara Quist."));
        assert!(chunks[1].text.starts_with("The Velloran Bridge"));
        // Small chunks still never mix two pages.
        let small = chunk(&doc, config(30, 8));
        assert!(small.len() > 6);
        let bridge = small
            .iter()
            .find(|c| c.text.contains("Mara Quist"))
            .unwrap();
        assert_eq!(bridge.page, Some(2));
    }

    #[test]
    fn chunks_carry_heading_paths() {
        let doc = fixture_doc("garden-guide.md");
        let chunks = chunk(&doc, ChunkConfig::default());
        let ph = chunks.iter().find(|c| c.text.contains("pH 6.4")).unwrap();
        assert_eq!(
            ph.heading_path,
            ["Allotment Garden Guide", "Soil", "Testing pH"]
        );
        assert!(ph.text.starts_with("Testing pH"));
        let doc = fixture_doc("harbour-handbook.docx");
        let chunks = chunk(&doc, ChunkConfig::default());
        let fees = chunks
            .iter()
            .find(|c| c.text.contains("1,350 EUR"))
            .unwrap();
        assert_eq!(
            fees.heading_path,
            ["Harbour Operations Handbook", "Berth Fees"]
        );
    }

    fn paragraph(n: usize, words: usize) -> String {
        let body: Vec<String> = (0..words - 1).map(|w| format!("p{n}w{w}")).collect();
        format!("{}.", body.join(" "))
    }

    #[test]
    fn whole_paragraphs_are_packed_together() {
        // Six paragraphs of 10 tokens (9 words and a full stop).
        let body: Vec<String> = (0..6).map(|n| paragraph(n, 10)).collect();
        let doc = document(&[(&[], None, &body.join("\n\n"))]);
        let chunks = chunk(&doc, config(35, 0));
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                body[..3].join("\n\n").as_str(),
                body[3..].join("\n\n").as_str()
            ]
        );
        assert_eq!(chunks[0].token_count, 30);
    }

    #[test]
    fn a_paragraph_that_does_not_fit_the_rest_starts_a_new_chunk() {
        let body = [paragraph(0, 10), paragraph(1, 30), paragraph(2, 10)].join("\n\n");
        let doc = document(&[(&[], None, &body)]);
        let chunks = chunk(&doc, config(35, 0));
        let texts: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
        assert_eq!(
            texts,
            [paragraph(0, 10), paragraph(1, 30), paragraph(2, 10)]
        );
    }

    #[test]
    fn tiny_trailing_paragraph_joins_the_previous_chunk() {
        let body = [paragraph(0, 40), "Short end.".to_string()].join("\n\n");
        let doc = document(&[(&[], None, &body)]);
        let chunks = chunk(&doc, config(50, 10));
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].text.ends_with("Short end."));
    }

    fn sentence(n: usize, words: usize) -> String {
        let mut s: Vec<String> = (0..words - 1).map(|w| format!("s{n}w{w}")).collect();
        s[0] = format!("Start{n}");
        format!("{}.", s.join(" "))
    }

    #[test]
    fn long_paragraphs_split_at_sentence_ends() {
        let sentences: Vec<String> = (0..20).map(|n| sentence(n, 8)).collect();
        let doc = document(&[(&[], None, &sentences.join(" "))]);
        let chunks = chunk(&doc, config(50, 0));
        let counts: Vec<usize> = chunks.iter().map(|c| c.token_count).collect();
        assert_eq!(counts, [48, 48, 48, 16]);
        for c in &chunks {
            assert!(c.text.starts_with("Start"), "{c:?}");
            assert!(c.text.ends_with('.'), "{c:?}");
        }
    }

    #[test]
    fn overlong_sentences_split_into_balanced_token_runs() {
        let words: Vec<String> = (0..130).map(|w| format!("w{w}")).collect();
        let doc = document(&[(&[], None, &words.join(" "))]);
        let chunks = chunk(&doc, config(50, 0));
        let counts: Vec<usize> = chunks.iter().map(|c| c.token_count).collect();
        assert_eq!(counts, [44, 44, 42]);
        // Cuts fall between words.
        assert!(chunks.iter().all(|c| c.text.starts_with('w')));
    }

    #[test]
    fn overlong_table_splits_at_rows() {
        let rows: Vec<String> = (0..30)
            .map(|r| format!("row{r}\tvalue {r}\tmore"))
            .collect();
        let doc = document(&[(&[], None, &rows.join("\n"))]);
        let chunks = chunk(&doc, config(20, 0));
        for c in &chunks {
            assert!(c.text.starts_with("row"), "{c:?}");
            assert!(c.text.ends_with("more"), "{c:?}");
        }
    }

    /// The text two consecutive chunks share, if the second starts inside
    /// the first.
    fn shared<'a>(a: &Chunk, b: &'a Chunk) -> Option<&'a str> {
        if b.char_start >= a.char_end {
            return None;
        }
        let len = a.char_end - b.char_start;
        let end = b
            .text
            .char_indices()
            .nth(len)
            .map_or(b.text.len(), |(i, _)| i);
        Some(&b.text[..end])
    }

    #[test]
    fn consecutive_chunks_overlap_by_whole_sentences() {
        let sentences: Vec<String> = (0..30).map(|n| sentence(n, 6)).collect();
        let doc = document(&[(&[], None, &sentences.join(" "))]);
        let chunks = chunk(&doc, config(40, 13));
        assert!(chunks.len() > 3);
        for pair in chunks.windows(2) {
            let overlap = shared(&pair[0], &pair[1]).expect("chunks should overlap");
            // Two 6-token sentences fit in 13 tokens, three would not.
            assert_eq!(tokens(overlap), 12, "{overlap:?}");
            assert!(overlap.starts_with("Start") && overlap.ends_with('.'));
            assert!(pair[0].text.ends_with(overlap));
        }
    }

    #[test]
    fn overlap_inside_an_overlong_sentence_uses_tokens() {
        let words: Vec<String> = (0..130).map(|w| format!("w{w}")).collect();
        let doc = document(&[(&[], None, &words.join(" "))]);
        let chunks = chunk(&doc, config(50, 10));
        assert!(chunks.len() >= 3);
        for pair in chunks.windows(2) {
            let overlap = shared(&pair[0], &pair[1]).expect("chunks should overlap");
            assert_eq!(tokens(overlap), 10, "{overlap:?}");
        }
    }

    #[test]
    fn overlap_shrinks_to_let_the_next_paragraph_fit() {
        let body = [paragraph(0, 20), paragraph(1, 45)].join("\n\n");
        let doc = document(&[(&[], None, &body)]);
        let chunks = chunk(&doc, config(50, 10));
        assert_eq!(chunks.len(), 2);
        // Only 5 tokens of room are left beside the 45-token paragraph.
        let overlap = shared(&chunks[0], &chunks[1]);
        assert!(overlap.is_none_or(|o| tokens(o) <= 5), "{overlap:?}");
        assert!(chunks[1].token_count <= 50);
    }

    #[test]
    fn sections_never_share_a_chunk_or_an_overlap() {
        let long_a: Vec<String> = (0..12).map(|n| sentence(n, 9)).collect();
        let long_b: Vec<String> = (12..24).map(|n| sentence(n, 9)).collect();
        let a = long_a.join(" ");
        let b = long_b.join(" ");
        let doc = document(&[
            (&["A"], Some(1), &a),
            (&["A", "B"], Some(2), &b),
            (&["C"], Some(2), "Tiny."),
        ]);
        let chunks = chunk(&doc, config(40, 12));
        let first_b = chunks.iter().position(|c| c.page == Some(2)).unwrap();
        assert!(chunks[first_b].text.starts_with("Start12"));
        assert!(shared(&chunks[first_b - 1], &chunks[first_b]).is_none());
        let last = chunks.last().unwrap();
        assert_eq!(last.text, "Tiny.");
        assert_eq!(last.heading_path, ["C"]);
    }

    #[test]
    fn too_many_chunks_is_an_error() {
        let doc = fixture_doc("orchard.txt");
        let err = chunk_document(
            &doc,
            &WordTokens,
            &ChunkConfig {
                max_tokens: 10,
                overlap_tokens: 2,
                max_chunks: 5,
            },
        )
        .unwrap_err();
        assert_eq!(err, ChunkError::TooManyChunks { limit: 5 });
        assert!(err.to_string().contains("more than 5"));
        // Exactly enough is fine.
        let n = chunk(&doc, config(10, 2)).len();
        let exact = ChunkConfig {
            max_tokens: 10,
            overlap_tokens: 2,
            max_chunks: n,
        };
        assert_eq!(chunk_document(&doc, &WordTokens, &exact).unwrap().len(), n);
    }

    #[test]
    fn offsets_count_chars_not_bytes() {
        let doc = document(&[
            (
                &["Ærøby"],
                None,
                "Ærøby 🌉 bridge. Kåsen café naïve. 東京の橋。大阪の橋。",
            ),
            (&["Øvre"], Some(4), "Øvre Tesk – 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 test. Last one!"),
        ]);
        for (max, overlap) in [(250, 40), (5, 2), (3, 1), (1, 0)] {
            chunk(&doc, config(max, overlap));
        }
        let chunks = chunk(&doc, config(250, 40));
        assert_eq!(
            chunks[1].char_start,
            doc.text[..doc.sections[1].byte_start].chars().count()
        );
    }

    #[test]
    fn blank_and_malformed_sections_are_skipped() {
        let mut doc = document(&[(&[], None, "   "), (&[], None, "Real text.")]);
        assert_eq!(chunk(&doc, ChunkConfig::default()).len(), 1);
        // A section range that is out of bounds or splits a char.
        doc.sections.push(Section {
            byte_start: 3,
            byte_end: 10_000,
            heading_path: Vec::new(),
            page: None,
        });
        let chunks = chunk_document(&doc, &WordTokens, &ChunkConfig::default()).unwrap();
        assert_eq!(chunks.len(), 1);
        let empty = ParsedDocument {
            text: String::new(),
            sections: Vec::new(),
            pages: None,
            title: None,
        };
        assert!(chunk(&empty, ChunkConfig::default()).is_empty());
    }

    #[test]
    fn degenerate_configs_are_sanitised() {
        let doc = fixture_doc("menu-cp1252.txt");
        let chunks = chunk(&doc, config(0, 10));
        assert!(chunks.iter().all(|c| c.token_count == 1));
        let chunks = chunk(&doc, config(4, 400));
        assert!(chunks.iter().all(|c| c.token_count <= 4));
    }

    /// A tokenizer that returns garbage must not make chunking panic.
    struct HostileTokens;

    impl TokenSpans for HostileTokens {
        fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
            let n = text.len();
            let backwards = Range { start: 3, end: 1 };
            vec![
                n + 5..n + 9,
                backwards,
                1..2,
                0..n,
                2..n + 100,
                1..2,
                usize::MAX - 1..usize::MAX,
            ]
        }
    }

    #[test]
    fn hostile_token_spans_do_not_panic() {
        let doc = document(&[(&[], None, "Ærø é 🌉 x. Second sentence here.")]);
        for max in [1, 2, 250] {
            let chunks = chunk_document(&doc, &HostileTokens, &config(max, 1)).unwrap();
            let chars: Vec<char> = doc.text.chars().collect();
            for c in chunks {
                let slice: String = chars[c.char_start..c.char_end].iter().collect();
                assert_eq!(c.text, slice);
            }
        }
    }

    #[test]
    fn sentence_splitting_respects_abbreviations_and_quotes() {
        let text = "Dr. Quist met J. R. Venn at St. Anne's, e.g. on Sundays. \"Is it done?\" she asked. It was approx. done. Then 3.5 tonnes fell! 東京。大阪。 End";
        let chunker = SectionChunker {
            text,
            spans: WordTokens.token_spans(text),
            max_tokens: 250,
            overlap_tokens: 0,
        };
        let sentences: Vec<&str> = chunker
            .sentences(0..text.len())
            .into_iter()
            .map(|r| &text[r])
            .collect();
        assert_eq!(
            sentences,
            [
                "Dr. Quist met J. R. Venn at St. Anne's, e.g. on Sundays.",
                "\"Is it done?\" she asked.",
                "It was approx. done.",
                "Then 3.5 tonnes fell!",
                "東京。",
                "大阪。",
                "End"
            ]
        );
    }
}
