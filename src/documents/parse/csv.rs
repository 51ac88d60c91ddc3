//! CSV: one block per row, cells separated by tabs.

use super::builder::*;
use super::document::*;
use super::encoding::*;
use super::normalize::*;

/// The most frequent of `,` `;` tab `|` in the first line (outside quotes).
pub(super) fn csv_delimiter(text: &str) -> u8 {
    let mut counts = [0usize; 4];
    let candidates = *b",;\t|";
    let mut quoted = false;
    for b in text.bytes().take_while(|b| *b != b'\n') {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(i) = candidates.iter().position(|c| *c == b) {
                counts[i] += 1;
            }
        }
    }
    let (best, count) = counts
        .iter()
        .enumerate()
        .max_by_key(|(i, count)| (**count, usize::MAX - i))
        .unwrap_or((0, &0));
    if *count == 0 {
        b','
    } else {
        candidates[best]
    }
}

/// Each record becomes one self-describing block, "header: value; header:
/// value" (empty values left out), so a chunk of rows still says what each
/// number means. A first block lists the columns. One section.
pub(super) fn parse_csv(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedDocument, ParseError> {
    let text = decode_text(bytes, None)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(csv_delimiter(&text))
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut builder = DocBuilder::new(limits);
    let mut headers: Option<Vec<String>> = None;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(ParseError::Corrupt(format!("the CSV is malformed ({e})"))),
        }
        if record.iter().all(|field| field.trim().is_empty()) {
            continue;
        }
        let Some(headers) = headers.as_ref() else {
            let names: Vec<String> = record
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let h = normalize_inline(h);
                    if h.is_empty() {
                        format!("column {}", i + 1)
                    } else {
                        h
                    }
                })
                .collect();
            builder.push_block(&format!("Columns: {}", names.join(", ")), false)?;
            headers = Some(names);
            continue;
        };
        let line = record
            .iter()
            .enumerate()
            .filter_map(|(i, value)| {
                let value = normalize_inline(value);
                if value.is_empty() {
                    return None;
                }
                Some(match headers.get(i) {
                    Some(header) => format!("{header}: {value}"),
                    None => format!("column {}: {value}", i + 1),
                })
            })
            .collect::<Vec<_>>()
            .join("; ");
        builder.push_block(&line, false)?;
    }
    builder.finish(None, None)
}
