//! A model server's event stream, split into network chunks anywhere:
//! decoding never panics, and the same bytes decode the same however they
//! are split.
#![no_main]

use eventsource_stream::Eventsource;
use futures::StreamExt;
use libfuzzer_sys::fuzz_target;
use ragchat::llm::openai::ChunkParser;

fn decode(chunks: Vec<bytes::Bytes>) -> Vec<String> {
    futures::executor::block_on(async {
        let mut events = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>))
            .eventsource();
        let mut parser = ChunkParser::default();
        let mut out = Vec::new();
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => match parser.parse(&event.data) {
                    Ok(batch) => out.extend(batch.iter().map(|e| format!("{e:?}"))),
                    Err(e) => out.push(format!("error: {e}")),
                },
                Err(e) => out.push(format!("stream error: {e}")),
            }
        }
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let whole = decode(vec![bytes::Bytes::copy_from_slice(body)]);
    let at = usize::from(split).min(body.len());
    let split = decode(vec![
        bytes::Bytes::copy_from_slice(&body[..at]),
        bytes::Bytes::copy_from_slice(&body[at..]),
    ]);
    assert_eq!(whole, split);
});
