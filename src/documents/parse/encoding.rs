//! Bytes to text: BOMs, UTF-16 without one, UTF-8, windows-1252; binary refused.

use encoding_rs::Encoding;

use super::document::ParseError;

/// Decodes text bytes: a BOM wins; then BOM-less UTF-16 (recognised by its
/// zero bytes), UTF-8, and windows-1252 as the fallback that decodes
/// anything. `declared` is an encoding named by the document itself (HTML
/// `<meta charset>`), used when there is no BOM. Binary content is refused.
pub(super) fn decode_text(
    bytes: &[u8],
    declared: Option<&'static Encoding>,
) -> Result<String, ParseError> {
    let (encoding, bom_len) = match Encoding::for_bom(bytes) {
        Some(found) => found,
        None => match utf16_without_bom(bytes) {
            Some(encoding) => (encoding, 0),
            None => {
                let head = &bytes[..bytes.len().min(SNIFF_LEN)];
                if head.contains(&0) {
                    return Err(binary_error());
                }
                let encoding = match declared {
                    Some(encoding) => encoding,
                    None if is_utf8_prefix(bytes) => encoding_rs::UTF_8,
                    None => encoding_rs::WINDOWS_1252,
                };
                (encoding, 0)
            }
        },
    };
    let (text, _had_errors) = encoding.decode_without_bom_handling(&bytes[bom_len..]);
    if looks_binary(&text) {
        return Err(binary_error());
    }
    Ok(text.into_owned())
}

pub(super) fn binary_error() -> ParseError {
    ParseError::Corrupt("it contains binary data, not text".into())
}

/// Valid UTF-8, allowing a sequence cut off at the very end (the input may
/// be a prefix of the file).
pub(super) fn is_utf8_prefix(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// UTF-16 text without a BOM has a zero byte in nearly every other position
/// when it is mostly Latin script; binary data does not show that pattern.
pub(super) fn utf16_without_bom(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(4096) & !1];
    let pairs = head.len() / 2;
    if pairs < 4 {
        return None;
    }
    let zeros_even = head.iter().step_by(2).filter(|b| **b == 0).count();
    let zeros_odd = head.iter().skip(1).step_by(2).filter(|b| **b == 0).count();
    if zeros_odd * 10 >= pairs * 7 && zeros_even * 50 <= pairs {
        Some(encoding_rs::UTF_16LE)
    } else if zeros_even * 10 >= pairs * 7 && zeros_odd * 50 <= pairs {
        Some(encoding_rs::UTF_16BE)
    } else {
        None
    }
}

/// More than 2% control characters (other than layout ones) in the first
/// 64 KiB means the bytes were never text.
pub(super) fn looks_binary(text: &str) -> bool {
    let mut total = 0usize;
    let mut control = 0usize;
    for c in text.chars().take(SNIFF_LEN) {
        total += 1;
        if c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c') {
            control += 1;
        }
    }
    control * 50 > total
}

/// How many leading bytes [`Format::detect`] looks at for text formats.
pub(super) const SNIFF_LEN: usize = 64 * 1024;

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
