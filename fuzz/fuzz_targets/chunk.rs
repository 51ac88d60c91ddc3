//! The chunker on arbitrary text and settings: chunks stay within the
//! document, in order, inside their sections, and within the token budget
//! (a single token longer than the budget aside).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ragchat::documents::chunk::{chunk_document, ChunkConfig, TokenSpans};
use ragchat::documents::parse::{parse, Format, ParseLimits};
use std::ops::Range;

/// Words and single punctuation marks, as a stand-in for the model's tokenizer.
struct Words;

impl TokenSpans for Words {
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        let mut spans = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices() {
            if c.is_alphanumeric() {
                start.get_or_insert(i);
                continue;
            }
            if let Some(s) = start.take() {
                spans.push(s..i);
            }
            if !c.is_whitespace() {
                spans.push(i..i + c.len_utf8());
            }
        }
        if let Some(s) = start {
            spans.push(s..text.len());
        }
        spans
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&settings, rest)) = data.split_first() else {
        return;
    };
    let format = if settings & 1 == 0 { Format::Text } else { Format::Markdown };
    let Ok(doc) = parse(format, rest, &ParseLimits { max_pages: 10, max_chars: 200_000 }) else {
        return;
    };
    let config = ChunkConfig {
        max_tokens: 8 + usize::from(settings >> 2) * 4,
        overlap_tokens: usize::from(settings >> 5) * 3,
        max_chunks: 10_000,
    };
    if let Ok(chunks) = chunk_document(&doc, &Words, &config) {
        ragchat::documents::chunk::check_invariants(&doc, &chunks, &Words, &config);
    }
});
