//! Newline-delimited JSON framing for the chat stream.
//!
//! Network chunks can split a line, and a line can split a multi-byte UTF-8
//! character, so bytes are buffered until `\n` and only whole lines are decoded.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Encodes one event as a JSON line.
pub fn encode_line<T: Serialize>(event: &T) -> Vec<u8> {
    // Serializing our own plain enums cannot fail.
    let mut line = serde_json::to_vec(event).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Accumulates bytes and yields complete, decoded lines.
#[derive(Debug, Default)]
pub struct LineDecoder {
    buffer: Vec<u8>,
}

impl LineDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a network chunk; returns every event completed by it, in order.
    pub fn push<T: DeserializeOwned>(&mut self, chunk: &[u8]) -> Vec<Result<T, serde_json::Error>> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.buffer[start..].iter().position(|&b| b == b'\n') {
            let line = &self.buffer[start..start + offset];
            if !line.iter().all(u8::is_ascii_whitespace) {
                events.push(serde_json::from_slice(line));
            }
            start += offset + 1;
        }
        self.buffer.drain(..start);
        events
    }

    /// True when bytes of an unfinished line are pending (a truncated stream).
    pub fn has_partial_line(&self) -> bool {
        !self.buffer.iter().all(u8::is_ascii_whitespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ChatEvent;

    #[test]
    fn splits_lines_across_chunks_and_multibyte_characters() {
        let events = [
            ChatEvent::Token {
                text: "héllo ".into(),
            },
            ChatEvent::Token {
                text: "wörld 🌍".into(),
            },
            ChatEvent::Queued { position: 2 },
        ];
        let bytes: Vec<u8> = events.iter().flat_map(encode_line).collect();
        // Every split point, including inside the 4-byte emoji and the 2-byte umlauts.
        for split in 0..bytes.len() {
            let mut decoder = LineDecoder::new();
            let mut got: Vec<ChatEvent> = decoder
                .push(&bytes[..split])
                .into_iter()
                .map(Result::unwrap)
                .collect();
            got.extend(
                decoder
                    .push(&bytes[split..])
                    .into_iter()
                    .map(Result::unwrap),
            );
            assert_eq!(got, events, "split at {split}");
            assert!(!decoder.has_partial_line());
        }
    }

    #[test]
    fn byte_at_a_time() {
        let event = ChatEvent::Token {
            text: "日本語".into(),
        };
        let bytes = encode_line(&event);
        let mut decoder = LineDecoder::new();
        let mut got = Vec::new();
        for b in &bytes {
            got.extend(decoder.push::<ChatEvent>(std::slice::from_ref(b)));
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got.pop().unwrap().unwrap(), event);
    }

    #[test]
    fn reports_truncation_and_bad_lines() {
        let mut decoder = LineDecoder::new();
        let got = decoder.push::<ChatEvent>(b"{\"type\":\"nope\"}\n{\"type\":\"tok");
        assert_eq!(got.len(), 1);
        assert!(got[0].is_err());
        assert!(decoder.has_partial_line());
    }
}
