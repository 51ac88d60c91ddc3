//! Which format an upload is: its extension, checked against its content.

use super::document::ParseError;
use super::docx::sniff_docx;
use super::encoding::{decode_text, find, SNIFF_LEN};

/// The document formats accepted for upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Text,
    Markdown,
    Html,
    Pdf,
    Docx,
    Csv,
}

impl Format {
    /// Maps a file extension (any case, without the dot) to a format.
    pub fn from_extension(ext: &str) -> Option<Format> {
        match ext.to_ascii_lowercase().as_str() {
            "txt" | "text" => Some(Format::Text),
            "md" | "markdown" | "mdown" | "mkd" => Some(Format::Markdown),
            "html" | "htm" | "xhtml" => Some(Format::Html),
            "pdf" => Some(Format::Pdf),
            "docx" => Some(Format::Docx),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    /// Picks the format from the file name's extension and checks that the
    /// content really is of that format, so a mislabelled upload fails here
    /// with a clear message instead of producing garbage text.
    pub fn detect(file_name: &str, bytes: &[u8]) -> Result<Format, ParseError> {
        let ext = extension(file_name);
        let format = Format::from_extension(&ext).ok_or(ParseError::Unsupported(ext))?;
        match format {
            Format::Pdf => {
                // Readers accept a header anywhere in the first KiB (some
                // producers prepend junk), so do the same.
                let head = &bytes[..bytes.len().min(1024)];
                if find(head, b"%PDF-").is_none() {
                    return Err(ParseError::Corrupt(
                        "the file is not a PDF (it has no %PDF header)".into(),
                    ));
                }
            }
            Format::Docx => sniff_docx(bytes)?,
            Format::Text | Format::Markdown | Format::Html | Format::Csv => {
                let prefix = &bytes[..bytes.len().min(SNIFF_LEN)];
                decode_text(prefix, None)?;
            }
        }
        Ok(format)
    }
}

/// Lower-cased extension of a file name, without the dot; empty if none.
pub(super) fn extension(file_name: &str) -> String {
    // Browsers may send a full path (old IE) — only the last component counts.
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}
