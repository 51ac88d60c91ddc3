//! The pdf parser on arbitrary bytes: it may refuse them, never panic,
//! loop, or produce a document that breaks its own invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ragchat::documents::parse::{parse, Format, ParseLimits};

fuzz_target!(
    // pdf-extract panics on some pages, and the parser catches that and
    // skips the page; libfuzzer-sys's hook would abort on the caught panic.
    // A panic that escapes the parser still aborts: the fuzz target is an
    // `extern "C"` function.
    init: std::panic::set_hook(Box::new(|_| {})),
    |data: &[u8]| {
        let limits = ParseLimits {
            max_pages: 50,
            max_chars: 1_000_000,
        };
        if let Ok(doc) = parse(Format::Pdf, data, &limits) {
            ragchat::documents::parse::check_invariants(&doc);
        }
    }
);
