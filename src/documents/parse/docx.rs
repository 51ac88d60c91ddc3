//! Word (.docx): paragraphs, headings by style, tables, hidden runs dropped.

use std::collections::HashMap;
use std::fmt;
use std::io::{Cursor, Read};

use encoding_rs::Encoding;

use super::builder::*;
use super::document::*;
use super::encoding::find;
use super::normalize::*;

pub(super) const DOCX_BODY: &str = "word/document.xml";
/// Cap on the unpacked size of `word/document.xml`: far above any real
/// document's XML, far below what a zip bomb would expand to.
pub(super) const DOCX_XML_CAP: usize = 256 * 1024 * 1024;
/// Cap on the small side parts (styles, core properties).
pub(super) const DOCX_SIDE_CAP: usize = 16 * 1024 * 1024;

/// Reads one part of the archive as text, refusing to unpack more than
/// `cap` bytes whatever its header claims. `Ok(None)` if it is absent.
pub(super) fn read_zip_part(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    cap: usize,
) -> Result<Option<String>, ParseError> {
    use zip::result::ZipError;

    let file = match archive.by_name(name) {
        Ok(file) => file,
        Err(ZipError::FileNotFound) => return Ok(None),
        Err(ZipError::UnsupportedArchive(ZipError::PASSWORD_REQUIRED)) => {
            return Err(ParseError::Encrypted)
        }
        Err(e) => {
            return Err(ParseError::Corrupt(format!(
                "the .docx archive is damaged ({e})"
            )))
        }
    };
    let mut data = Vec::new();
    file.take(cap as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| ParseError::Corrupt(format!("the .docx archive is damaged ({e})")))?;
    if data.len() > cap {
        return Err(ParseError::Corrupt(format!(
            "{name} unpacks to more than {} MiB",
            cap / (1024 * 1024)
        )));
    }
    // OOXML parts are UTF-8 or UTF-16 with a BOM.
    let encoding = Encoding::for_bom(&data).map_or(encoding_rs::UTF_8, |(e, _)| e);
    let (text, _) = encoding.decode_with_bom_removal(&data);
    Ok(Some(text.into_owned()))
}

pub(super) fn xml_reader(xml: &str) -> quick_xml::Reader<&[u8]> {
    let mut reader = quick_xml::Reader::from_str(xml);
    // Tolerate sloppy producers: a mismatched end tag should not lose the
    // whole document.
    reader.config_mut().check_end_names = false;
    reader
}

pub(super) fn xml_error(part: &str, e: impl fmt::Display) -> ParseError {
    ParseError::Corrupt(format!("{part} is not well-formed XML ({e})"))
}

/// The value of the attribute whose local name is `local` (`w:val` → "val").
pub(super) fn xml_attr(element: &quick_xml::events::BytesStart<'_>, local: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == local)
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// Text of a predefined or numeric entity reference.
pub(super) fn xml_entity(reference: &quick_xml::events::BytesRef<'_>) -> Option<String> {
    if let Ok(Some(c)) = reference.resolve_char_ref() {
        return Some(c.to_string());
    }
    let text = match &**reference {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        _ => return None,
    };
    Some(text.to_string())
}

/// Heading level (0 = Title, 1–9 = Heading 1–9) of each paragraph style in
/// `word/styles.xml`. Style ids are localised ("berschrift1"), but style
/// names of built-in styles are always English, and custom heading styles
/// carry an outline level, possibly through `basedOn`.
pub(super) fn docx_heading_styles(styles_xml: &str) -> Result<HashMap<String, u8>, ParseError> {
    use quick_xml::events::Event;

    struct Style {
        level: Option<u8>,
        based_on: Option<String>,
    }
    let mut styles: HashMap<String, Style> = HashMap::new();
    let mut current: Option<(String, Style)> = None;
    let mut reader = xml_reader(styles_xml);
    loop {
        let event = reader
            .read_event()
            .map_err(|e| xml_error("word/styles.xml", e))?;
        match event {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                "style" => {
                    if let Some((id, style)) = current.take() {
                        styles.insert(id, style);
                    }
                    if xml_attr(&e, "type").as_deref() == Some("paragraph") {
                        if let Some(id) = xml_attr(&e, "styleId") {
                            let style = Style {
                                level: None,
                                based_on: None,
                            };
                            current = Some((id, style));
                        }
                    }
                }
                "name" => {
                    if let (Some((_, style)), Some(name)) = (current.as_mut(), xml_attr(&e, "val"))
                    {
                        let name = name.to_ascii_lowercase();
                        if name == "title" {
                            style.level = Some(0);
                        } else if let Some(n) = name.strip_prefix("heading ") {
                            style.level = n.trim().parse().ok().filter(|n| (1..=9).contains(n));
                        }
                    }
                }
                "outlineLvl" => {
                    if let Some((_, style)) = current.as_mut() {
                        let level: Option<u8> = xml_attr(&e, "val").and_then(|v| v.parse().ok());
                        if style.level.is_none() {
                            style.level = level.filter(|l| *l < 9).map(|l| l + 1);
                        }
                    }
                }
                "basedOn" => {
                    if let Some((_, style)) = current.as_mut() {
                        style.based_on = xml_attr(&e, "val");
                    }
                }
                _ => {}
            },
            Event::End(e) if e.local_name().as_ref() == "style" => {
                if let Some((id, style)) = current.take() {
                    styles.insert(id, style);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut levels = HashMap::new();
    for id in styles.keys() {
        // Follow basedOn a few steps (cycles are possible in broken files).
        let mut style_id = id;
        for _ in 0..10 {
            let Some(style) = styles.get(style_id) else {
                break;
            };
            if let Some(level) = style.level {
                levels.insert(id.clone(), level);
                break;
            }
            match &style.based_on {
                Some(parent) => style_id = parent,
                None => break,
            }
        }
    }
    Ok(levels)
}

/// Heading level from a style id alone, for files without styles.xml.
pub(super) fn docx_heading_from_id(style_id: &str) -> Option<u8> {
    let lower = style_id.to_ascii_lowercase();
    if lower == "title" {
        return Some(0);
    }
    lower
        .strip_prefix("heading")
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=9).contains(n))
}

/// `dc:title` from `docProps/core.xml`.
pub(super) fn docx_core_title(core_xml: &str) -> Option<String> {
    use quick_xml::events::Event;

    let mut reader = xml_reader(core_xml);
    let mut in_title = false;
    let mut title = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) if e.local_name().as_ref() == "title" => in_title = true,
            Event::End(e) if e.local_name().as_ref() == "title" => break,
            Event::Text(t) if in_title => title.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_title => title.push_str(&xml_entity(&r)?),
            Event::Eof => break,
            _ => {}
        }
    }
    Some(normalize_inline(&title)).filter(|t| !t.is_empty())
}

#[derive(Default)]
pub(super) struct DocxParagraph {
    text: InlineBuf,
    level: Option<u8>,
}

#[derive(Default)]
pub(super) struct DocxTable {
    rows: Vec<String>,
    cells: Vec<String>,
    cell: String,
}

/// Elements of document.xml whose content is not part of the visible text:
/// deleted revisions, field codes, moved-from copies, the fallback copy of
/// alternate content (the Choice is read), and content-control properties.
pub(super) fn docx_skipped(local: &str) -> bool {
    matches!(
        local,
        "del" | "delText" | "instrText" | "moveFrom" | "Fallback" | "sdtPr" | "rPr"
    )
}

/// Paragraphs of `word/document.xml`; Title/Heading styles start sections;
/// tables become tab-separated rows.
pub(super) fn parse_docx(
    bytes: &[u8],
    limits: &ParseLimits,
    xml_cap: usize,
) -> Result<ParsedDocument, ParseError> {
    use quick_xml::events::Event;

    let DocxParts {
        body,
        style_levels,
        core_title,
    } = docx_parts(bytes, xml_cap)?;

    let mut doc = DocxReader {
        builder: DocBuilder::new(limits),
        headings: HeadingStack::default(),
        title_paragraph: None,
        first_heading: None,
        paragraphs: Vec::new(),
        tables: Vec::new(),
        style_levels,
        in_text: false,
        in_ppr: false,
        run_props_depth: None,
        run_hidden: false,
        depth: 0,
        skip_until: None,
    };
    let mut reader = xml_reader(&body);
    loop {
        match reader.read_event().map_err(|e| xml_error(DOCX_BODY, e))? {
            Event::Start(e) => doc.open(&e),
            Event::Empty(e) => doc.empty(&e),
            Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) if !doc.reads_text() => {}
            Event::Text(t) => doc.text(&t.xml10_content()),
            Event::CData(t) => doc.text(&t.xml10_content()),
            Event::GeneralRef(r) => {
                if let Some(text) = xml_entity(&r) {
                    doc.text(&text);
                }
            }
            Event::End(e) => doc.close(e.local_name().as_ref())?,
            Event::Eof => break,
            _ => {}
        }
    }
    let title = core_title.or(doc.title_paragraph).or(doc.first_heading);
    doc.builder.finish(title, None)
}

/// The parts of a .docx that are read.
struct DocxParts {
    /// `word/document.xml`.
    body: String,
    /// Heading level of each paragraph style (0: Title).
    style_levels: HashMap<String, u8>,
    /// The title in the document's properties.
    core_title: Option<String>,
}

fn docx_parts(bytes: &[u8], xml_cap: usize) -> Result<DocxParts, ParseError> {
    sniff_docx(bytes)?;
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ParseError::Corrupt(format!("the .docx archive is damaged ({e})")))?;
    let body = read_zip_part(&mut archive, DOCX_BODY, xml_cap)?
        .ok_or_else(|| ParseError::Corrupt(format!("the Word document has no {DOCX_BODY}")))?;
    let style_levels = match read_zip_part(&mut archive, "word/styles.xml", DOCX_SIDE_CAP)? {
        Some(xml) => docx_heading_styles(&xml)?,
        None => HashMap::new(),
    };
    let core_title = read_zip_part(&mut archive, "docProps/core.xml", DOCX_SIDE_CAP)?
        .and_then(|xml| docx_core_title(&xml));
    Ok(DocxParts {
        body,
        style_levels,
        core_title,
    })
}

/// What the body has produced so far, and the paragraphs and tables open.
struct DocxReader {
    builder: DocBuilder,
    headings: HeadingStack,
    title_paragraph: Option<String>,
    first_heading: Option<String>,
    /// Paragraphs nest (text boxes inside a run), and so do tables.
    paragraphs: Vec<DocxParagraph>,
    tables: Vec<DocxTable>,
    /// Heading level of each paragraph style (0: Title).
    style_levels: HashMap<String, u8>,
    in_text: bool,
    in_ppr: bool,
    /// Runs formatted as hidden text (`<w:vanish/>` directly in the run's
    /// properties; not in `w:rPrChange`, the formatting before a tracked
    /// change) are not shown by Word. The depth of the run's `w:rPr`:
    run_props_depth: Option<usize>,
    run_hidden: bool,
    depth: usize,
    /// The depth of the element whose content is being skipped.
    skip_until: Option<usize>,
}

impl DocxReader {
    /// Whether text here is visible text of a run.
    fn reads_text(&self) -> bool {
        self.in_text && !self.run_hidden && self.skip_until.is_none()
    }

    fn open(&mut self, e: &quick_xml::events::BytesStart<'_>) {
        self.depth += 1;
        let local = e.local_name();
        let local = local.as_ref();
        // Run properties are skipped, all but whether the run is hidden.
        if local == "vanish" && self.run_props_depth == Some(self.depth - 1) {
            self.run_hidden = docx_on(e);
        }
        if self.skip_until.is_some() {
            return;
        }
        if docx_skipped(local) {
            if local == "rPr" && !self.in_ppr {
                self.run_props_depth = Some(self.depth);
            }
            self.skip_until = Some(self.depth);
            return;
        }
        match local {
            "p" => self.paragraphs.push(DocxParagraph::default()),
            "r" => self.run_hidden = false,
            "pPr" => self.in_ppr = true,
            "t" => self.in_text = true,
            "tbl" => self.tables.push(DocxTable::default()),
            "tc" => {
                if let Some(table) = self.tables.last_mut() {
                    table.cell.clear();
                }
            }
            _ => docx_empty_element(e, self.in_ppr, &mut self.paragraphs, &self.style_levels),
        }
    }

    fn empty(&mut self, e: &quick_xml::events::BytesStart<'_>) {
        if e.local_name().as_ref() == "vanish" && self.run_props_depth == Some(self.depth) {
            self.run_hidden = docx_on(e);
        }
        if self.skip_until.is_some() {
            return;
        }
        if e.local_name().as_ref() == "tc" {
            // An empty cell still takes its column.
            if let Some(table) = self.tables.last_mut() {
                table.cells.push(String::new());
            }
        } else {
            docx_empty_element(e, self.in_ppr, &mut self.paragraphs, &self.style_levels);
        }
    }

    fn close(&mut self, local: &str) -> Result<(), ParseError> {
        let ended_skip = self.skip_until == Some(self.depth);
        self.depth = self.depth.saturating_sub(1);
        if ended_skip {
            self.skip_until = None;
            self.run_props_depth = None;
            return Ok(());
        }
        if self.skip_until.is_some() {
            return Ok(());
        }
        match local {
            "t" => self.in_text = false,
            "r" => self.run_hidden = false,
            "pPr" => self.in_ppr = false,
            other => self.end(other)?,
        }
        Ok(())
    }

    /// Visible text of a run.
    fn text(&mut self, text: &str) {
        if let Some(p) = self.paragraphs.last_mut() {
            p.text.push_text(text);
        }
    }

    /// A paragraph, cell, row or table ends.
    fn end(&mut self, local: &str) -> Result<(), ParseError> {
        match local {
            "p" => self.end_paragraph()?,
            "tc" => {
                if let Some(table) = self.tables.last_mut() {
                    let cell = std::mem::take(&mut table.cell);
                    table.cells.push(cell);
                }
            }
            "tr" => {
                if let Some(table) = self.tables.last_mut() {
                    let row = std::mem::take(&mut table.cells).join("\t");
                    table.rows.push(row);
                }
            }
            "tbl" => self.end_table()?,
            _ => {}
        }
        Ok(())
    }

    /// A paragraph ends: into its table cell, as a heading, or as a block.
    fn end_paragraph(&mut self) -> Result<(), ParseError> {
        let Some(mut paragraph) = self.paragraphs.pop() else {
            return Ok(());
        };
        let text = paragraph.text.take();
        if let Some(table) = self.tables.last_mut() {
            let text = normalize_inline(&text);
            if !text.is_empty() {
                if !table.cell.is_empty() {
                    table.cell.push(' ');
                }
                table.cell.push_str(&text);
            }
        } else if let Some(level) = paragraph.level {
            let text = normalize_inline(&text);
            if text.is_empty() {
                return Ok(());
            }
            if level == 0 && self.title_paragraph.is_none() {
                self.title_paragraph = Some(text.clone());
            } else if level > 0 && self.first_heading.is_none() {
                self.first_heading = Some(text.clone());
            }
            let path = self.headings.enter(level, text.clone());
            self.builder.start_section(path, None, Some(&text))?;
        } else {
            self.builder.push_block(&text, false)?;
        }
        Ok(())
    }

    /// A table ends: a block of rows, or (nested) part of its outer cell.
    fn end_table(&mut self) -> Result<(), ParseError> {
        let Some(table) = self.tables.pop() else {
            return Ok(());
        };
        let rendered = table.rows.join("\n");
        match self.tables.last_mut() {
            Some(outer) => {
                let text = normalize_inline(&rendered);
                if !outer.cell.is_empty() {
                    outer.cell.push(' ');
                }
                outer.cell.push_str(&text);
            }
            None => {
                self.builder.push_block(&rendered, true)?;
            }
        }
        Ok(())
    }
}

/// A Word on/off property (`<w:vanish/>`, `<w:vanish w:val="false"/>`).
pub(super) fn docx_on(element: &quick_xml::events::BytesStart<'_>) -> bool {
    !matches!(
        xml_attr(element, "val").as_deref(),
        Some("0" | "false" | "off")
    )
}

/// Handles the elements of document.xml that matter whether written as
/// `<x/>` or `<x>…</x>`: paragraph style and outline level, tabs and breaks.
pub(super) fn docx_empty_element(
    element: &quick_xml::events::BytesStart<'_>,
    in_ppr: bool,
    paragraphs: &mut [DocxParagraph],
    style_levels: &HashMap<String, u8>,
) {
    let Some(paragraph) = paragraphs.last_mut() else {
        return;
    };
    match element.local_name().as_ref() {
        "pStyle" if in_ppr => {
            if let Some(id) = xml_attr(element, "val") {
                let level = style_levels
                    .get(&id)
                    .copied()
                    .or_else(|| docx_heading_from_id(&id));
                if level.is_some() {
                    paragraph.level = level;
                }
            }
        }
        "outlineLvl" if in_ppr => {
            let level: Option<u8> = xml_attr(element, "val").and_then(|v| v.parse().ok());
            if let Some(level) = level.filter(|l| *l < 9) {
                paragraph.level = Some(level + 1);
            }
        }
        // Inside pPr, <w:tab> is a tab-stop definition, not a tab.
        "tab" | "ptab" if !in_ppr => paragraph.text.push_text(" "),
        "br" | "cr" if !in_ppr => paragraph.text.hard_break(),
        "noBreakHyphen" => paragraph.text.push_text("-"),
        _ => {}
    }
}

/// Signature of OLE compound files: legacy .doc, and password-protected
/// Office documents (which are not zips at all).
pub(super) const CFB_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

pub(super) fn sniff_docx(bytes: &[u8]) -> Result<(), ParseError> {
    if bytes.starts_with(CFB_MAGIC) {
        // An encrypted OOXML file is a compound file holding a stream named
        // "EncryptedPackage" (names are stored as UTF-16LE).
        let marker: Vec<u8> = "EncryptedPackage"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        if find(bytes, &marker).is_some() {
            return Err(ParseError::Encrypted);
        }
        return Err(ParseError::Corrupt(
            "it is an old-style Word (.doc) file, not .docx; save it as .docx and upload it again"
                .into(),
        ));
    }
    if !bytes.starts_with(b"PK") {
        return Err(ParseError::Corrupt(
            "the file is not a .docx (zip) file".into(),
        ));
    }
    let archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ParseError::Corrupt(format!("the .docx archive is damaged ({e})")))?;
    if archive.index_for_name(DOCX_BODY).is_none() {
        return Err(ParseError::Corrupt(format!(
            "the file is a zip archive but not a Word document ({DOCX_BODY} is missing)"
        )));
    }
    Ok(())
}
