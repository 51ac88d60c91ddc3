//! The html parser on arbitrary bytes: it may refuse them, never panic,
//! loop, or produce a document that breaks its own invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ragchat::documents::parse::{parse, Format, ParseLimits};

fuzz_target!(|data: &[u8]| {
    let limits = ParseLimits {
        max_pages: 50,
        max_chars: 1_000_000,
    };
    if let Ok(doc) = parse(Format::Html, data, &limits) {
        ragchat::documents::parse::check_invariants(&doc);
    }
});
