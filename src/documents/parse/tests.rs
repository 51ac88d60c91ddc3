//! The parsers against fixtures and hostile input.

use super::*;
use super::{csv::*, docx::*, encoding::*, normalize::*, pdf};

use std::io::Cursor;
use std::path::Path;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/docs")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse_fixture(name: &str) -> Result<ParsedDocument, ParseError> {
    let bytes = fixture(name);
    let format = Format::detect(name, &bytes)?;
    parse(format, &bytes, &ParseLimits::default())
}

fn parsed(name: &str) -> ParsedDocument {
    let doc = parse_fixture(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    check_invariants(&doc);
    doc
}

/// The invariants every parser promises: sections contiguous, in order,
/// covering the text, on char boundaries; normalised text.
fn section_of<'a>(doc: &'a ParsedDocument, needle: &str) -> &'a Section {
    let at = doc
        .text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} missing"));
    doc.sections
        .iter()
        .find(|s| s.byte_start <= at && at < s.byte_end)
        .unwrap_or_else(|| panic!("no section holds {needle:?}"))
}

// --- detection ------------------------------------------------------

#[test]
fn detect_accepts_each_fixture_by_extension_and_content() {
    let cases = [
        ("velloran-survey.pdf", Format::Pdf),
        ("scanned.pdf", Format::Pdf),
        ("harbour-handbook.docx", Format::Docx),
        ("garden-guide.md", Format::Markdown),
        ("museum.html", Format::Html),
        ("lighthouses.csv", Format::Csv),
        ("orchard.txt", Format::Text),
        ("ferry-letter-utf16.txt", Format::Text),
        ("menu-cp1252.txt", Format::Text),
    ];
    for (name, format) in cases {
        assert_eq!(Format::detect(name, &fixture(name)), Ok(format), "{name}");
    }
}

#[test]
fn detect_uses_the_last_path_component_and_ignores_case() {
    let bytes = fixture("orchard.txt");
    assert_eq!(
        Format::detect(r"C:\Users\ilse\Notes.v2.TXT", &bytes),
        Ok(Format::Text)
    );
    assert_eq!(
        Format::detect("docs/guide.Markdown", &bytes),
        Ok(Format::Markdown)
    );
    assert_eq!(Format::detect("page.HTM", &bytes), Ok(Format::Html));
}

#[test]
fn detect_rejects_unsupported_extensions_naming_them() {
    let err = Format::detect("photo.JPG", b"\xff\xd8\xff").unwrap_err();
    assert_eq!(err, ParseError::Unsupported("jpg".into()));
    assert!(err.to_string().contains(".jpg"), "{err}");
    assert_eq!(
        Format::detect("README", b"hello"),
        Err(ParseError::Unsupported(String::new()))
    );
    // A dot file has no extension.
    assert_eq!(
        Format::detect(".bashrc", b"hello"),
        Err(ParseError::Unsupported(String::new()))
    );
    assert_eq!(
        Format::detect("report.doc", b"x"),
        Err(ParseError::Unsupported("doc".into()))
    );
}

#[test]
fn detect_rejects_content_that_does_not_match_the_extension() {
    let not_pdf = Format::detect("report.pdf", b"just some text, no header");
    assert!(
        matches!(not_pdf, Err(ParseError::Corrupt(_))),
        "{not_pdf:?}"
    );
    // Junk before the header is tolerated, as readers do.
    let mut prefixed = b"\r\n\r\n".to_vec();
    prefixed.extend(fixture("velloran-survey.pdf"));
    assert_eq!(Format::detect("a.pdf", &prefixed), Ok(Format::Pdf));

    let binary = Format::detect("binary.txt", &fixture("binary.txt")).unwrap_err();
    assert!(binary.to_string().contains("binary"), "{binary}");
    for name in ["x.md", "x.html", "x.csv"] {
        assert!(matches!(
            Format::detect(name, &fixture("binary.txt")),
            Err(ParseError::Corrupt(_))
        ));
    }

    let not_word = Format::detect("not-word.docx", &fixture("not-word.docx")).unwrap_err();
    assert!(
        not_word.to_string().contains("word/document.xml"),
        "{not_word}"
    );
    let text_as_docx = Format::detect("a.docx", b"plain text");
    assert!(matches!(text_as_docx, Err(ParseError::Corrupt(_))));
}

#[test]
fn detect_recognises_encrypted_office_files_and_legacy_doc() {
    let mut encrypted = CFB_MAGIC.to_vec();
    encrypted.extend([0u8; 64]);
    encrypted.extend("EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes));
    assert_eq!(
        Format::detect("secret.docx", &encrypted),
        Err(ParseError::Encrypted)
    );
    let mut legacy = CFB_MAGIC.to_vec();
    legacy.extend([0u8; 64]);
    let err = Format::detect("old.docx", &legacy).unwrap_err();
    assert!(err.to_string().contains(".doc"), "{err}");
}

// --- text decoding and normalisation -----------------------------------

#[test]
fn normalisation_collapses_whitespace_and_drops_invisible_characters() {
    assert_eq!(
        normalize_block(
            "  a \u{a0}\u{2003} b\t\tc \r\n\n  d\u{0}e\u{ad}f\u{200b}g  ",
            false
        ),
        "a b c\ndefg"
    );
    assert_eq!(
        normalize_block("\u{fb01}nd the \u{fb04}oor", false),
        "find the ffloor"
    );
    // Tables keep their tabs, including an empty first cell.
    assert_eq!(normalize_block("\ta \t b\t\n x\ty ", true), "\ta\tb\nx\ty");
    assert_eq!(normalize_block(" \n\u{7}\n ", false), "");
    assert_eq!(normalize_inline("one\ntwo\r\nthree"), "one two three");
}

#[test]
fn decodes_utf16_with_and_without_bom_and_windows_1252() {
    let letter = parsed("ferry-letter-utf16.txt");
    assert!(letter
        .text
        .contains("The Kamsø ferry now leaves Brekka pier at 06:45 instead of 07:15"));
    assert!(letter.text.ends_with("— Jonas"));

    let menu = parsed("menu-cp1252.txt");
    assert!(menu
        .text
        .contains("The crème brûlée costs €4.50 and the smørrebrød costs €7.20."));

    let be_without_bom: Vec<u8> = "Grüße aus Kåsen\n\nzweiter Absatz"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    let doc = parse(Format::Text, &be_without_bom, &ParseLimits::default()).unwrap();
    assert_eq!(doc.text, "Grüße aus Kåsen\n\nzweiter Absatz");

    let utf8_bom = b"\xEF\xBB\xBFhello";
    assert_eq!(
        parse(Format::Text, utf8_bom, &ParseLimits::default())
            .unwrap()
            .text,
        "hello"
    );
}

#[test]
fn binary_named_txt_is_refused_in_parse_too() {
    let err = parse(
        Format::Text,
        &fixture("binary.txt"),
        &ParseLimits::default(),
    );
    assert!(matches!(err, Err(ParseError::Corrupt(_))), "{err:?}");
    // Control characters without NULs, too.
    let noisy: Vec<u8> = (0..400u32).map(|i| (i % 31 + 1) as u8).collect();
    assert!(parse(Format::Text, &noisy, &ParseLimits::default()).is_err());
}

// --- plain text -------------------------------------------------------

#[test]
fn text_keeps_paragraphs_in_one_section() {
    let doc = parsed("orchard.txt");
    assert_eq!(doc.sections.len(), 1);
    assert_eq!(doc.sections[0].heading_path, Vec::<String>::new());
    assert_eq!(doc.title, None);
    assert_eq!(doc.pages, None);
    assert_eq!(doc.text.matches("\n\n").count(), 4);
    assert!(doc.text.starts_with("The Pellwick Orchard\n\nThe Pellwick orchard was planted in 1902 with 340 apple trees of the Russet Queen variety."));
}

#[test]
fn text_keeps_single_line_breaks_and_normalises_lines() {
    let raw = "Line one   with  spaces\r\nline two\t\tend\n \n\n\nNext\u{7} para\n";
    let doc = parse(Format::Text, raw.as_bytes(), &ParseLimits::default()).unwrap();
    assert_eq!(doc.text, "Line one with spaces\nline two end\n\nNext para");
    check_invariants(&doc);
}

#[test]
fn empty_documents_are_reported() {
    for (format, bytes) in [
        (Format::Text, &b""[..]),
        (Format::Text, b" \n\t\n "),
        (Format::Markdown, b"<!-- only a comment -->\n"),
        (
            Format::Html,
            b"<html><head><script>x()</script></head><body> </body></html>",
        ),
        (Format::Csv, b"\n\n"),
    ] {
        assert_eq!(
            parse(format, bytes, &ParseLimits::default()),
            Err(ParseError::Empty),
            "{format:?}"
        );
    }
    assert!(ParseError::Empty
        .to_string()
        .contains("no extractable text"));
}

#[test]
fn max_chars_stops_extraction() {
    let limits = ParseLimits {
        max_chars: 100,
        ..ParseLimits::default()
    };
    for name in [
        "orchard.txt",
        "garden-guide.md",
        "museum.html",
        "harbour-handbook.docx",
        "lighthouses.csv",
        "velloran-survey.pdf",
    ] {
        let bytes = fixture(name);
        let format = Format::detect(name, &bytes).unwrap();
        let err = parse(format, &bytes, &limits).unwrap_err();
        assert_eq!(
            err,
            ParseError::TooLarge {
                what: LimitKind::Chars,
                limit: 100
            },
            "{name}"
        );
        assert!(err.to_string().contains("100 characters"), "{err}");
    }
    // Exactly at the limit is fine; one more is not.
    let text = "x".repeat(100);
    assert!(parse(Format::Text, text.as_bytes(), &limits).is_ok());
    assert!(parse(Format::Text, format!("{text}y").as_bytes(), &limits).is_err());
}

// --- markdown -----------------------------------------------------------

#[test]
fn markdown_sections_follow_nested_headings() {
    let doc = parsed("garden-guide.md");
    assert_eq!(doc.title.as_deref(), Some("Allotment Garden Guide"));
    let paths: Vec<Vec<&str>> = doc
        .sections
        .iter()
        .map(|s| s.heading_path.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(
        paths,
        [
            vec!["Allotment Garden Guide"],
            vec!["Allotment Garden Guide", "Soil"],
            vec!["Allotment Garden Guide", "Soil", "Testing pH"],
            // A setext heading is a heading too.
            vec!["Allotment Garden Guide", "Watering"],
            vec!["Allotment Garden Guide", "Pests"],
        ]
    );
    let ph = section_of(&doc, "measured pH 6.4 in March 2023");
    assert_eq!(
        ph.heading_path.last().map(String::as_str),
        Some("Testing pH")
    );
    // The heading opens its section's text.
    assert!(doc.text[ph.byte_start..].starts_with("Testing pH\n\nThe allotment soil"));
    let beans = section_of(&doc, "they wilt above 28 °C");
    assert_eq!(
        beans.heading_path.last().map(String::as_str),
        Some("Watering")
    );
}

#[test]
fn markdown_is_rendered_to_plain_text() {
    let doc = parsed("garden-guide.md");
    // Soft line breaks join, emphasis and link markup go, link text stays.
    assert!(doc.text.contains(
        "allocated by the garden committee every February, and the waiting list is kept in shed A."
    ));
    assert!(!doc.text.contains("**") && !doc.text.contains('#'));
    assert!(!doc.text.contains("https://example.org"));
    assert!(doc
        .text
        .contains("- Use the rain butts first.\n\n- Mains water only after 19:00."));
    assert!(doc.text.contains("Pest\tRemedy\nSlugs\tCopper tape around the raised beds\nAphids\tLadybird larvae from the Brindle Lane shop"));
    assert!(doc.text.contains("echo \"compost ratio 3:1\""));
}

#[test]
fn markdown_edge_cases() {
    let source = "---\nsecret: FRONTMATTER\n---\n\nIntro text.\n\n# Top\n\n## Empty\n\n## Full {#full}\n\n1. first\n2. second\n\n<div align=\"center\">\n  <b>Raw</b> HTML<br>block\n  <script>SCRIPTED()</script>\n</div>\n\nSome <em>inline</em> html.\n\n- [x] done\n\nline one  \nline two\n";
    let doc = parse(Format::Markdown, source.as_bytes(), &ParseLimits::default()).unwrap();
    check_invariants(&doc);
    assert!(!doc.text.contains("FRONTMATTER"));
    assert!(
        doc.text
            .contains("\n\nRaw HTML\nblock\n\nSome inline html.\n\n"),
        "{}",
        doc.text
    );
    assert!(!doc.text.contains("SCRIPTED"));
    assert!(doc.text.contains("1. first\n\n2. second"));
    assert!(doc.text.contains("- [x] done"));
    assert!(doc.text.contains("line one\nline two"));
    assert_eq!(doc.sections[0].heading_path, Vec::<String>::new());
    assert!(doc.text.starts_with("Intro text."));
    // "Top" is merged into its first sub-section; "Empty" (a sibling
    // of "Full") keeps its own tiny section. Heading attributes go.
    let paths: Vec<Vec<String>> = doc
        .sections
        .iter()
        .map(|s| s.heading_path.clone())
        .collect();
    assert_eq!(
        paths,
        [
            vec![],
            vec!["Top".to_string(), "Empty".to_string()],
            vec!["Top".to_string(), "Full".to_string()],
        ]
    );
    assert!(doc.text.contains("Top\n\nEmpty\n\nFull"));
}

// --- html ---------------------------------------------------------------

#[test]
fn html_keeps_visible_text_only() {
    let doc = parsed("museum.html");
    assert_eq!(
        doc.title.as_deref(),
        Some("Nordhaven Maritime Museum – Visitor Information")
    );
    for hidden in [
        "trackingSecret",
        "XYZZY",
        "font-family",
        "NAVLINK",
        "Home",
        "HIDDEN-DRAFT-TEXT",
        "NOSCRIPT-BANNER",
        "FOOTER-COOKIES",
        "Visitor Information",
    ] {
        assert!(!doc.text.contains(hidden), "{hidden} leaked: {}", doc.text);
    }
    assert!(doc
        .text
        .contains("The museum opens at 10:00 every day except Tuesdays."));
    assert!(doc.text.contains(
        "The oak figurehead of the schooner Selka was carved in 1794 and stands in Hall C."
    ));
    // <br> is a line break inside the paragraph.
    assert!(doc
        .text
        .contains("children under 12 enter free.\nGroups of ten or more get a 20% discount."));
    assert!(doc
        .text
        .contains("Day\tOpening hours\nMonday\t10:00–17:00\nSunday\t11:00–16:00"));
}

#[test]
fn html_text_hidden_by_styling_is_not_indexed() {
    let html = r#"<html><head><style>
        .sr { position: absolute; left: -10000px }
        p.ghost, /* a comment { } */ #gone { display : none !important }
        @media print { .noprint { display: none } }
        .tab { display: none } .tab.active { display: block }
        .fine { color: red }
      </style></head><body>
      <p>Visible one.</p>
      <p style="font-size:0px">HIDDEN-FONT</p>
      <p style="opacity: 0">HIDDEN-OPACITY</p>
      <p style="color:#fff;background-color:#fff">HIDDEN-SAMECOLOR</p>
      <p style="position:absolute; left:-9999px">HIDDEN-OFFSCREEN</p>
      <p style="height:0;overflow:hidden">HIDDEN-ZEROHEIGHT</p>
      <p style="clip-path: inset(100%)">HIDDEN-CLIP</p>
      <span class="sr">HIDDEN-CLASS</span>
      <p class="ghost">HIDDEN-MEDIA</p>
      <div id="gone">HIDDEN-ID</div>
      <p class="fine" style="color: #fff; background: #000">Visible two.</p>
      <!-- HIDDEN-COMMENT -->
      <template>HIDDEN-TEMPLATE</template>
      <input type="hidden" value="HIDDEN-INPUT">
      <div class="tab">Visible tab.</div>
      <div class="tab active">Visible active tab.</div>
      <p class="noprint">Visible on screen.</p>
      <div style="font-size:0"><span style="font-size:16px">Visible inline-block trick.</span></div>
      <div style="visibility:hidden">HIDDEN-VISIBILITY</div>
    </body></html>"#;
    let doc = parse(Format::Html, html.as_bytes(), &ParseLimits::default()).unwrap();
    assert!(!doc.text.contains("HIDDEN"), "{}", doc.text);
    for visible in [
        "Visible one.",
        "Visible two.",
        "Visible tab.",
        "Visible active tab.",
        "Visible on screen.",
        "Visible inline-block trick.",
    ] {
        assert!(
            doc.text.contains(visible),
            "{visible} dropped: {}",
            doc.text
        );
    }
}

#[test]
fn invisible_format_characters_are_dropped() {
    // "IGNORE" spelled in Unicode tag characters, a bidi override, a
    // variation selector and zero-width joiners.
    let tags: String = "IGNORE"
        .chars()
        .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
        .collect();
    let text = format!("Plain{tags} text\u{202E}x\u{202C} with\u{FE0F} zero\u{200B}width, but joi\u{200D}ners stay.");
    let doc = parse(Format::Text, text.as_bytes(), &ParseLimits::default()).unwrap();
    assert_eq!(
        doc.text,
        "Plain textx with zerowidth, but joi\u{200D}ners stay."
    );
}

#[test]
fn html_sections_follow_headings() {
    let doc = parsed("museum.html");
    let selka = section_of(&doc, "carved in 1794");
    assert_eq!(
        selka.heading_path,
        [
            "Nordhaven Maritime Museum",
            "Collections",
            "The Selka figurehead"
        ]
    );
    let tickets = section_of(&doc, "Adult tickets cost 14 euros");
    assert_eq!(
        tickets.heading_path,
        ["Nordhaven Maritime Museum", "Tickets"]
    );
    let hours = section_of(&doc, "Opening hours");
    assert_eq!(hours, tickets);
}

#[test]
fn html_charset_lists_and_fallback_title() {
    let html = b"<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\"></head><body><h1>Caf\xe9 list</h1><ol start=\"3\"><li>one</li><li>two <b>bold</b></li></ol><ul><li><p>para in item</p></li></ul><pre>a   b\nc</pre><table><tr><td><h4>Cell head</h4><ul><li>x</li><li>y</li></ul></td><td><pre>p</pre></td></tr></table></body></html>";
    let doc = parse(Format::Html, html, &ParseLimits::default()).unwrap();
    check_invariants(&doc);
    assert_eq!(doc.title.as_deref(), Some("Café list"));
    assert!(
        doc.text.contains("3. one\n\n4. two bold\n\n- para in item"),
        "{}",
        doc.text
    );
    assert!(doc.text.contains("a b\nc"));
    assert!(
        doc.text.ends_with("a b\nc\n\nCell head x y\tp"),
        "{}",
        doc.text
    );
}

#[test]
fn html_survives_deep_nesting() {
    let depth = 20_000;
    let html = format!(
        "{}deep text{}",
        "<div>".repeat(depth),
        "</div>".repeat(depth)
    );
    let doc = parse(Format::Html, html.as_bytes(), &ParseLimits::default()).unwrap();
    assert_eq!(doc.text, "deep text");
}

// --- docx ---------------------------------------------------------------

#[test]
fn docx_headings_tables_and_title() {
    let doc = parsed("harbour-handbook.docx");
    assert_eq!(doc.title.as_deref(), Some("Harbour Operations Handbook"));
    let pilots = section_of(&doc, "Pilots board at the Grey Buoy");
    assert_eq!(
        pilots.heading_path,
        ["Harbour Operations Handbook", "Tides and Entry", "Pilotage"]
    );
    // Runs of one paragraph join without inventing spaces.
    assert!(doc
        .text
        .contains("Pilots board at the Grey Buoy, two nautical miles north of the breakwater."));
    let fees = section_of(&doc, "1,350 EUR");
    assert_eq!(
        fees.heading_path,
        ["Harbour Operations Handbook", "Berth Fees"]
    );
    assert!(doc.text.contains(
        "Vessel class\tLength\tDaily fee\nSmall\tunder 30 m\t120 EUR\nMedium\t30 to 90 m\t480 EUR\nLarge\tover 90 m\t1,350 EUR"
    ));
    let intro = section_of(&doc, "revision 7");
    assert_eq!(intro.heading_path, ["Harbour Operations Handbook"]);
}

/// A minimal .docx written by hand: localised style ids, a tracked
/// deletion, a field code, a text box, alternate content, entities.
fn handmade_docx(document_xml: &str, styles_xml: Option<&str>) -> Vec<u8> {
    use std::io::Write;
    let mut out = Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file(DOCX_BODY, options).unwrap();
    zip.write_all(document_xml.as_bytes()).unwrap();
    if let Some(styles) = styles_xml {
        zip.start_file("word/styles.xml", options).unwrap();
        zip.write_all(styles.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

const W: &str = r#"xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006""#;

#[test]
fn docx_handles_localised_styles_revisions_fields_and_text_boxes() {
    let styles = format!(
        r#"<w:styles {W}>
          <w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style>
          <w:style w:type="paragraph" w:styleId="Kapitel"><w:name w:val="Kapitel"/><w:basedOn w:val="berschrift1"/></w:style>
          <w:style w:type="paragraph" w:styleId="Gliederung"><w:name w:val="Gliederung"/><w:pPr><w:outlineLvl w:val="1"/></w:pPr></w:style>
        </w:styles>"#
    );
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
        <w:document {W}><w:body>
          <w:p><w:pPr><w:pStyle w:val="berschrift1"/><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr><w:r><w:t>Einleitung</w:t></w:r></w:p>
          <w:p><w:r><w:t xml:space="preserve">Salt &amp; pepper </w:t></w:r><w:del><w:r><w:delText>DELETED</w:delText></w:r></w:del><w:r><w:t>kept</w:t><w:tab/><w:t>after tab</w:t><w:br/><w:t>next line</w:t></w:r></w:p>
          <w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText>HYPERLINK "FIELDCODE"</w:instrText></w:r><w:r><w:t>link text</w:t></w:r></w:p>
          <w:p><w:pPr><w:pStyle w:val="Gliederung"/></w:pPr><w:r><w:t>Unterpunkt</w:t></w:r></w:p>
          <w:p><w:r><mc:AlternateContent><mc:Choice><w:drawing><w:txbxContent><w:p><w:r><w:t>In the box</w:t></w:r></w:p></w:txbxContent></w:drawing></mc:Choice><mc:Fallback><w:pict><w:txbxContent><w:p><w:r><w:t>In the box</w:t></w:r></w:p></w:txbxContent></w:pict></mc:Fallback></mc:AlternateContent><w:t>Around the box</w:t></w:r></w:p>
          <w:p><w:pPr><w:pStyle w:val="Kapitel"/></w:pPr><w:r><w:t>Second chapter</w:t></w:r></w:p>
          <w:tbl><w:tr><w:tc><w:p><w:r><w:t>a1</w:t></w:r></w:p><w:p><w:r><w:t>more</w:t></w:r></w:p></w:tc><w:tc><w:tbl><w:tr><w:tc><w:p><w:r><w:t>inner</w:t></w:r></w:p></w:tc></w:tr></w:tbl></w:tc></w:tr><w:tr><w:tc/><w:tc><w:p><w:r><w:t>b2</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
        </w:body></w:document>"#
    );
    let bytes = handmade_docx(&body, Some(&styles));
    assert_eq!(Format::detect("x.docx", &bytes), Ok(Format::Docx));
    let doc = parse(Format::Docx, &bytes, &ParseLimits::default()).unwrap();
    check_invariants(&doc);
    assert_eq!(doc.title.as_deref(), Some("Einleitung"));
    assert!(!doc.text.contains("DELETED"));
    assert!(!doc.text.contains("FIELDCODE"));
    assert_eq!(doc.text.matches("In the box").count(), 1, "{}", doc.text);
    assert!(doc
        .text
        .contains("Salt & pepper kept after tab\nnext line\n\nlink text"));
    assert_eq!(section_of(&doc, "link text").heading_path, ["Einleitung"]);
    assert_eq!(
        section_of(&doc, "Around the box").heading_path,
        ["Einleitung", "Unterpunkt"]
    );
    assert_eq!(section_of(&doc, "b2").heading_path, ["Second chapter"]);
    assert!(doc.text.contains("a1 more\tinner\n\tb2"), "{}", doc.text);
}

#[test]
fn docx_hidden_runs_are_not_indexed() {
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
        <w:document {W}><w:body>
          <w:p><w:pPr><w:rPr><w:vanish/></w:rPr></w:pPr><w:r><w:t xml:space="preserve">Shown </w:t></w:r><w:r><w:rPr><w:vanish/></w:rPr><w:t>HIDDEN-RUN</w:t></w:r><w:r><w:rPr><w:vanish w:val="false"/></w:rPr><w:t xml:space="preserve">also shown</w:t></w:r><w:r><w:rPr><w:b/><w:rPrChange><w:rPr><w:vanish/></w:rPr></w:rPrChange></w:rPr><w:t xml:space="preserve"> and shown again</w:t></w:r></w:p>
        </w:body></w:document>"#
    );
    let doc = parse(
        Format::Docx,
        &handmade_docx(&body, None),
        &ParseLimits::default(),
    )
    .unwrap();
    assert_eq!(doc.text, "Shown also shown and shown again");
}

#[test]
fn docx_heading_ids_work_without_styles_part() {
    let body = format!(
        r#"<w:document {W}><w:body><w:p><w:pPr><w:pStyle w:val="Heading2"/></w:pPr><w:r><w:t>Only heading</w:t></w:r></w:p><w:p><w:r><w:t>Body</w:t></w:r></w:p></w:body></w:document>"#
    );
    let doc = parse(
        Format::Docx,
        &handmade_docx(&body, None),
        &ParseLimits::default(),
    )
    .unwrap();
    assert_eq!(doc.sections[0].heading_path, ["Only heading"]);
    assert_eq!(doc.title.as_deref(), Some("Only heading"));
}

#[test]
fn docx_unpacked_size_is_capped() {
    let bytes = fixture("harbour-handbook.docx");
    let err = parse_docx(&bytes, &ParseLimits::default(), 1024).unwrap_err();
    assert!(
        matches!(&err, ParseError::Corrupt(m) if m.contains("unpacks to more than")),
        "{err:?}"
    );
    // A real bomb: 64 MiB of spaces compresses to ~64 KiB.
    let bomb = format!(
        "<w:document {W}><w:body><w:p><w:r><w:t>{}</w:t></w:r></w:p></w:body></w:document>",
        " ".repeat(64 * 1024 * 1024)
    );
    let bytes = handmade_docx(&bomb, None);
    assert!(bytes.len() < 1024 * 1024);
    let err = parse_docx(&bytes, &ParseLimits::default(), 16 * 1024 * 1024).unwrap_err();
    assert!(matches!(err, ParseError::Corrupt(_)), "{err:?}");
}

#[test]
fn docx_with_password_protected_zip_entries_is_encrypted() {
    let body =
        format!("<w:document {W}><w:body><w:p><w:r><w:t>x</w:t></w:r></w:p></w:body></w:document>");
    let mut bytes = handmade_docx(&body, None);
    // Set the "encrypted" flag (bit 0 of the general-purpose flags) in
    // the local header (offset 6) and the central directory (offset 8).
    for (signature, offset) in [(b"PK\x03\x04", 6), (b"PK\x01\x02", 8)] {
        let at = find(&bytes, signature).expect("zip header");
        bytes[at + offset] |= 1;
    }
    assert_eq!(
        parse(Format::Docx, &bytes, &ParseLimits::default()),
        Err(ParseError::Encrypted)
    );
}

#[test]
fn docx_damage_is_reported() {
    let bytes = fixture("harbour-handbook.docx");
    let truncated = &bytes[..bytes.len() / 2];
    assert!(matches!(
        parse(Format::Docx, truncated, &ParseLimits::default()),
        Err(ParseError::Corrupt(_))
    ));
    let bad_xml = handmade_docx("<w:document><w:body><w:p><w:t>x</w:p", None);
    let err = parse(Format::Docx, &bad_xml, &ParseLimits::default());
    assert!(
        matches!(err, Err(ParseError::Corrupt(_) | ParseError::Empty)),
        "{err:?}"
    );
    assert!(matches!(
        parse(
            Format::Docx,
            &fixture("not-word.docx"),
            &ParseLimits::default()
        ),
        Err(ParseError::Corrupt(_))
    ));
}

// --- csv ------------------------------------------------------------------

#[test]
fn csv_rows_become_self_describing_lines() {
    let doc = parsed("lighthouses.csv");
    assert_eq!(doc.sections.len(), 1);
    assert!(doc
        .text
        .starts_with("Columns: name, location, height_m, first_lit, notes\n\n"));
    assert!(doc.text.contains("name: Orrin Point; location: Skerra Isle; height_m: 38; first_lit: 1852; notes: White tower, red lantern\n\n"));
    // Empty values are left out; quoted commas stay in their field.
    assert!(doc.text.contains(
        "name: Grey Buoy Light; location: Port Kessling; height_m: 12; first_lit: 1907\n\n"
    ));
    assert!(doc.text.contains("location: Tesk estuary, north bank;"));
    assert!(doc.text.ends_with("the keeper's cottage is now a café"));
}

#[test]
fn csv_sniffs_semicolons_and_tolerates_ragged_rows() {
    let csv = "Name;Preis;\nBrot;2,50;extra;more\n\"Multi\nline\";1\n";
    let doc = parse(Format::Csv, csv.as_bytes(), &ParseLimits::default()).unwrap();
    check_invariants(&doc);
    assert!(doc.text.starts_with("Columns: Name, Preis, column 3\n\n"));
    assert!(doc
        .text
        .contains("Name: Brot; Preis: 2,50; column 3: extra; column 4: more"));
    assert!(doc.text.ends_with("Name: Multi line; Preis: 1"));
    assert_eq!(csv_delimiter("a\tb\tc\n"), b'\t');
    assert_eq!(csv_delimiter("\"a;b\",c\n"), b',');
    assert_eq!(csv_delimiter("single\n"), b',');
}

// --- pdf ------------------------------------------------------------------

#[test]
fn pdf_has_one_section_per_page_with_page_numbers() {
    let doc = parsed("velloran-survey.pdf");
    assert_eq!(doc.pages, Some(3));
    assert_eq!(doc.title.as_deref(), Some("The Velloran Valley Survey"));
    let pages: Vec<Option<u32>> = doc.sections.iter().map(|s| s.page).collect();
    assert_eq!(pages, [Some(1), Some(2), Some(3)]);
    assert!(doc.sections.iter().all(|s| s.heading_path.is_empty()));
    let bridge = section_of(
        &doc,
        "The Velloran bridge was completed in 1873 by engineer Mara Quist.",
    );
    assert_eq!(bridge.page, Some(2));
    assert_eq!(section_of(&doc, "4,318 residents").page, Some(3));
    assert_eq!(section_of(&doc, "waxed notebooks").page, Some(1));
}

#[test]
fn pdf_text_is_reflowed_into_paragraphs() {
    let doc = parsed("velloran-survey.pdf");
    // Wrapped lines join with a space; paragraph gaps stay breaks.
    assert!(doc.text.contains("This report summarises the survey of the Velloran valley carried out between 1871 and 1874 for the river council of Ostmere. The surveyors mapped every ford, mill and ferry landing along the Tesk river.\n\nField teams"));
    assert!(doc
        .text
        .contains("The Velloran Bridge\n\nThe Velloran bridge"));
    // A typeset hyphen at a line end is removed, a real one is kept.
    assert!(doc
        .text
        .contains("was demolished in 1921 to widen the road"));
    assert!(doc.text.contains("The toll-keeper's lodge"));
    // Embedded subset font with a ToUnicode map.
    assert!(doc.text.contains("Ærøby, Kåsen and Øvre Tesk."));
    assert!(doc.text.contains("The efficient offices"));
}

#[test]
fn pdf_errors() {
    assert_eq!(parse_fixture("encrypted.pdf"), Err(ParseError::Encrypted));
    assert!(ParseError::Encrypted
        .to_string()
        .contains("password-protected"));
    assert_eq!(parse_fixture("scanned.pdf"), Err(ParseError::Empty));
    let truncated = parse_fixture("truncated.pdf").unwrap_err();
    assert!(matches!(truncated, ParseError::Corrupt(_)), "{truncated:?}");
    assert!(truncated
        .to_string()
        .starts_with("This document could not be read: "));
    let garbage = parse(Format::Pdf, b"%PDF-1.7\n garbage", &ParseLimits::default());
    assert!(
        matches!(garbage, Err(ParseError::Corrupt(_))),
        "{garbage:?}"
    );
    let limits = ParseLimits {
        max_pages: 2,
        ..ParseLimits::default()
    };
    let err = parse(Format::Pdf, &fixture("velloran-survey.pdf"), &limits).unwrap_err();
    assert_eq!(
        err,
        ParseError::TooLarge {
            what: LimitKind::Pages,
            limit: 2
        }
    );
    assert!(err.to_string().contains("more than 2 pages"), "{err}");
}

#[test]
fn pdf_with_only_an_owner_password_is_read() {
    let doc = parsed("owner-locked.pdf");
    assert_eq!(doc.title.as_deref(), Some("Lighthouse Log"));
    assert!(doc
        .text
        .contains("The Orrin Point lighthouse keeper logged 212 foggy nights in 1902."));
}

/// Makes one page's content stream and resources, adding any objects
/// they refer to.
type PageMaker = dyn Fn(&mut pdf_extract::Document) -> (String, pdf_extract::Dictionary);

/// A PDF built object by object, one page per entry of `pages`.
fn handmade_pdf(pages: &[&PageMaker], media_box: bool, pages_parent_cycle: bool) -> Vec<u8> {
    use pdf_extract::{Dictionary, Document, Object, Stream};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let mut kids = Vec::new();
    for page in pages {
        let (content, resources) = page(&mut doc);
        let content_id = doc.add_object(Stream::new(Dictionary::new(), content.into_bytes()));
        let mut dict = Dictionary::new();
        dict.set("Type", Object::Name(b"Page".to_vec()));
        dict.set("Parent", Object::Reference(pages_id));
        dict.set("Contents", Object::Reference(content_id));
        dict.set("Resources", Object::Dictionary(resources));
        if media_box {
            dict.set(
                "MediaBox",
                Object::Array([0, 0, 595, 842].map(Object::Integer).to_vec()),
            );
        }
        kids.push(Object::Reference(doc.add_object(dict)));
    }
    let mut tree = Dictionary::new();
    tree.set("Type", Object::Name(b"Pages".to_vec()));
    tree.set("Count", Object::Integer(kids.len() as i64));
    tree.set("Kids", Object::Array(kids));
    if pages_parent_cycle {
        tree.set("Parent", Object::Reference(pages_id));
    }
    doc.objects.insert(pages_id, Object::Dictionary(tree));
    let mut catalog = Dictionary::new();
    catalog.set("Type", Object::Name(b"Catalog".to_vec()));
    catalog.set("Pages", Object::Reference(pages_id));
    let catalog_id = doc.add_object(catalog);
    doc.trailer.set("Root", Object::Reference(catalog_id));
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("in-memory save");
    out
}

fn helvetica_page(
    text: &'static str,
) -> impl Fn(&mut pdf_extract::Document) -> (String, pdf_extract::Dictionary) {
    use pdf_extract::{Dictionary, Object};
    move |doc| {
        let mut font = Dictionary::new();
        font.set("Type", Object::Name(b"Font".to_vec()));
        font.set("Subtype", Object::Name(b"Type1".to_vec()));
        font.set("BaseFont", Object::Name(b"Helvetica".to_vec()));
        let font_id = doc.add_object(font);
        let mut fonts = Dictionary::new();
        fonts.set("F1", Object::Reference(font_id));
        let mut resources = Dictionary::new();
        resources.set("Font", Object::Dictionary(fonts));
        (format!("BT /F1 12 Tf 72 700 Td ({text}) Tj ET"), resources)
    }
}

#[test]
fn pdf_self_drawing_form_is_skipped_without_overflowing_the_stack() {
    use pdf_extract::{Dictionary, Object, Stream};
    let recursive = |doc: &mut pdf_extract::Document| {
        let form_id = doc.new_object_id();
        let mut xobjects = Dictionary::new();
        xobjects.set("Fm0", Object::Reference(form_id));
        let mut form_resources = Dictionary::new();
        form_resources.set("XObject", Object::Dictionary(xobjects.clone()));
        let mut form = Dictionary::new();
        form.set("Type", Object::Name(b"XObject".to_vec()));
        form.set("Subtype", Object::Name(b"Form".to_vec()));
        form.set("Resources", Object::Dictionary(form_resources));
        doc.objects.insert(
            form_id,
            Object::Stream(Stream::new(form, b"/Fm0 Do".to_vec())),
        );
        let mut resources = Dictionary::new();
        resources.set("XObject", Object::Dictionary(xobjects));
        ("q /Fm0 Do Q".to_string(), resources)
    };
    let good = helvetica_page("Readable second page");
    let bytes = handmade_pdf(&[&recursive, &good], true, false);
    let doc = parse(Format::Pdf, &bytes, &ParseLimits::default()).unwrap();
    assert_eq!(doc.text, "Readable second page");
    assert_eq!(doc.sections[0].page, Some(2));
    assert_eq!(doc.pages, Some(2));

    let only_bad = handmade_pdf(&[&recursive], true, false);
    assert!(matches!(
        parse(Format::Pdf, &only_bad, &ParseLimits::default()),
        Err(ParseError::Corrupt(_))
    ));
}

#[test]
fn pdf_page_that_panics_the_extractor_is_skipped() {
    // Text shown with a font that is not in the resources: pdf-extract
    // unwraps the lookup and panics.
    let broken = |_: &mut pdf_extract::Document| {
        (
            "BT /F9 12 Tf 72 700 Td (lost) Tj ET".to_string(),
            pdf_extract::Dictionary::new(),
        )
    };
    let good = helvetica_page("Survivor text");
    let bytes = handmade_pdf(&[&good, &broken], true, false);
    let doc = parse(Format::Pdf, &bytes, &ParseLimits::default()).unwrap();
    assert_eq!(doc.text, "Survivor text");
    assert_eq!(doc.pages, Some(2));
}

/// Found by fuzzing (`fuzz/`, parse_pdf): a mutated survey whose later
/// pages make pdf-extract panic; the panics are caught, those pages
/// skipped, and the first page read.
#[test]
fn fuzzed_pdf_with_panicking_pages_keeps_the_readable_one() {
    let doc = parse_fixture("fuzzed-panicking-pages.pdf").unwrap();
    check_invariants(&doc);
    assert_eq!(doc.pages, Some(3));
    assert!(
        doc.text.starts_with("The Velloran Valley Survey"),
        "{}",
        doc.text
    );
    assert_eq!(doc.sections.len(), 1);
}

#[test]
fn pdf_page_tree_cycles_and_missing_media_box_are_repaired() {
    let good = helvetica_page("Text on a page without a MediaBox");
    let bytes = handmade_pdf(&[&good], false, true);
    let doc = parse(Format::Pdf, &bytes, &ParseLimits::default()).unwrap();
    assert_eq!(doc.text, "Text on a page without a MediaBox");
}

#[test]
fn inflated_len_stops_at_the_cap() {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&vec![0u8; 1 << 20]).unwrap();
    let compressed = encoder.finish().unwrap();
    assert_eq!(pdf::inflated_len(&compressed, 2 << 20), Some(1 << 20));
    assert_eq!(pdf::inflated_len(&compressed, 4096), None);
    assert_eq!(pdf::inflated_len(b"not deflate at all", 4096), Some(0));
}

// --- robustness -------------------------------------------------------------

/// Every fixture, cut short at many points and with bytes flipped:
/// parsing may fail but must not panic (outside the guarded PDF
/// extractor) or hang.
#[test]
fn damaged_inputs_never_panic() {
    let names = [
        "velloran-survey.pdf",
        "owner-locked.pdf",
        "harbour-handbook.docx",
        "garden-guide.md",
        "museum.html",
        "lighthouses.csv",
        "orchard.txt",
        "ferry-letter-utf16.txt",
    ];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for name in names {
        let bytes = fixture(name);
        let format = Format::detect(name, &bytes).unwrap();
        for cut in 1..24 {
            let _ = parse(
                format,
                &bytes[..bytes.len() * cut / 24],
                &ParseLimits::default(),
            );
        }
        for _ in 0..24 {
            let mut damaged = bytes.clone();
            for _ in 0..8 {
                let at = (next() % damaged.len() as u64) as usize;
                damaged[at] = next() as u8;
            }
            let _ = parse(format, &damaged, &ParseLimits::default());
        }
    }
}
