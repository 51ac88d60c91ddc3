//! The browser's decoder of the chat stream, fed arbitrary bytes in
//! arbitrary chunks: never panics, and a split changes nothing.
#![no_main]

use app::ndjson::LineDecoder;
use app::wire::ChatEvent;
use libfuzzer_sys::fuzz_target;

fn decode(chunks: &[&[u8]]) -> Vec<String> {
    let mut decoder = LineDecoder::new();
    let mut out = Vec::new();
    for chunk in chunks {
        for event in decoder.push::<ChatEvent>(chunk) {
            out.push(match event {
                Ok(event) => format!("{event:?}"),
                Err(_) => "error".to_owned(),
            });
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(body.len());
    assert_eq!(decode(&[body]), decode(&[&body[..at], &body[at..]]));
});
