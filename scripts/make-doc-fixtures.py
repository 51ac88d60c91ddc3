#!/usr/bin/env python3
"""Regenerate the document fixtures in tests/fixtures/docs/.

The ingest tests (src/documents/parse/tests.rs, src/documents/chunk.rs) and later
end-to-end tests ask about the distinctive facts written here, so change a
sentence only together with the tests that quote it.

Needs fpdf2 (PDFs, with `cryptography` for AES encryption), python-docx and
Pillow (both pulled in by the two), all from PyPI:

    python3 -m venv /tmp/fixture-venv
    /tmp/fixture-venv/bin/pip install fpdf2==2.8.9 python-docx==1.2.0 cryptography
    /tmp/fixture-venv/bin/python scripts/make-doc-fixtures.py

The PDF pages 2 and 3 use DejaVu Sans (Debian's fonts-dejavu-core, on the
base image) so that the text is drawn with an embedded subset font and a
ToUnicode map, as most real PDFs are; page 1 uses the built-in Helvetica.
Encrypted PDFs get random keys, so their bytes change on every run while
their content stays the same.
"""

from __future__ import annotations

import codecs
import datetime as dt
import random
import struct
import zipfile
import zlib
from pathlib import Path

from docx import Document
from docx.shared import Pt
from fpdf import FPDF
from fpdf.enums import EncryptionMethod
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "docs"
FIXED_DATE = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
DEJAVU_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def new_pdf(title: str) -> FPDF:
    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title(title)
    pdf.set_author("Ostmere River Council")
    pdf.set_auto_page_break(auto=True, margin=20)
    return pdf


def heading(pdf: FPDF, family: str, text: str) -> None:
    pdf.set_font(family, style="B", size=16)
    pdf.multi_cell(w=0, h=9, text=text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)


def paragraph(pdf: FPDF, family: str, text: str) -> None:
    pdf.set_font(family, size=11)
    pdf.multi_cell(w=0, h=6, text=text, new_x="LMARGIN", new_y="NEXT")
    # A gap of about twice the line height, as word processors leave between
    # paragraphs: the extractor turns it into a paragraph break.
    pdf.ln(6)


def make_survey_pdf() -> bytes:
    pdf = new_pdf("The Velloran Valley Survey")
    unicode_family = "Helvetica"
    if DEJAVU.exists() and DEJAVU_BOLD.exists():
        pdf.add_font("DejaVu", fname=str(DEJAVU))
        pdf.add_font("DejaVu", style="B", fname=str(DEJAVU_BOLD))
        unicode_family = "DejaVu"

    pdf.add_page()
    heading(pdf, "Helvetica", "The Velloran Valley Survey")
    paragraph(
        pdf,
        "Helvetica",
        "This report summarises the survey of the Velloran valley carried out "
        "between 1871 and 1874 for the river council of Ostmere. The surveyors "
        "mapped every ford, mill and ferry landing along the Tesk river.",
    )
    paragraph(
        pdf,
        "Helvetica",
        "Field teams worked in pairs and recorded their measurements in waxed "
        "notebooks, which were copied into the council ledger each winter. The "
        "efficient offices of the council clerks made the final atlas possible.",
    )

    pdf.add_page()
    heading(pdf, unicode_family, "The Velloran Bridge")
    paragraph(
        pdf,
        unicode_family,
        "The Velloran bridge was completed in 1873 by engineer Mara Quist. It "
        "spans 212 metres across the Tesk river on eleven granite arches.",
    )
    paragraph(
        pdf,
        unicode_family,
        "Quist insisted that the arches be built from granite quarried at "
        "Hollin Scar, because the local sandstone crumbled after two winters "
        "of frost. The bridge cost 48,000 crowns, almost twice the original "
        "estimate.",
    )
    # Hand-broken lines with a typeset hyphen, as justified text has: the
    # parser is expected to join "demol-" + "ished" back into one word.
    pdf.set_font(unicode_family, size=11)
    for line in (
        "The toll-keeper's lodge at the eastern end of the bridge was demol-",
        "ished in 1921 to widen the road for motor lorries.",
    ):
        pdf.cell(w=0, h=6, text=line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)

    pdf.add_page()
    heading(pdf, unicode_family, "Population and Ferries")
    paragraph(
        pdf,
        unicode_family,
        "The survey counted 4,318 residents in the valley towns, of whom 37 "
        "worked as ferrymen before the bridge opened. By 1880 only four "
        "ferries were still running, all of them downstream of Carrow Weir.",
    )
    paragraph(
        pdf,
        unicode_family,
        "Place names are recorded in the local spelling: Ærøby, Kåsen and Øvre Tesk.",
    )
    return bytes(pdf.output())


def make_single_page_pdf(title: str, text: str) -> FPDF:
    pdf = new_pdf(title)
    pdf.add_page()
    heading(pdf, "Helvetica", title)
    paragraph(pdf, "Helvetica", text)
    return pdf


def make_encrypted_pdf() -> bytes:
    # A user password is set: nothing can be read without it.
    pdf = make_single_page_pdf(
        "Archive Access",
        "The vault combination for the Ostmere archive is 5521.",
    )
    pdf.set_encryption(
        owner_password="owner-secret",
        user_password="opensesame",
        encryption_method=EncryptionMethod.AES_256,
    )
    return bytes(pdf.output())


def make_owner_locked_pdf() -> bytes:
    # Only an owner password (restricting printing/editing): readers open it
    # with the empty user password, so the parser must read it too.
    pdf = make_single_page_pdf(
        "Lighthouse Log",
        "The Orrin Point lighthouse keeper logged 212 foggy nights in 1902.",
    )
    pdf.set_encryption(
        owner_password="owner-secret",
        encryption_method=EncryptionMethod.AES_128,
    )
    return bytes(pdf.output())


def make_scanned_pdf() -> bytes:
    # An image of "text" (grey bars) and no text layer, like a scan.
    image = Image.new("L", (400, 240), color=255)
    draw = ImageDraw.Draw(image)
    for row in range(8):
        y = 20 + row * 26
        draw.rectangle([20, y, 20 + 300 + (row * 37) % 60, y + 10], fill=40)
    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.add_page()
    pdf.image(image, x=20, y=20, w=170)
    return bytes(pdf.output())


def make_docx(path: Path) -> None:
    doc = Document()
    props = doc.core_properties
    props.title = "Harbour Operations Handbook"
    props.author = "Port Kessling Harbour Master"
    props.created = FIXED_DATE.replace(tzinfo=None)
    props.modified = FIXED_DATE.replace(tzinfo=None)

    doc.add_heading("Harbour Operations Handbook", level=0)  # style "Title"
    doc.add_paragraph("Issued by the Port Kessling harbour master, revision 7.")
    doc.add_heading("Tides and Entry", level=1)
    doc.add_paragraph(
        "Ships longer than 90 metres may enter Port Kessling only at high tide, "
        "between 05:00 and 07:00 or between 17:00 and 19:00."
    )
    doc.add_heading("Pilotage", level=2)
    para = doc.add_paragraph("Pilots board at the ")
    para.add_run("Grey Buoy").bold = True
    para.add_run(
        ", two nautical miles north of the breakwater. Pilotage is compulsory "
        "for tankers of any size."
    )
    doc.add_heading("Berth Fees", level=1)
    doc.add_paragraph("Daily berth fees are charged per started day:")
    rows = [
        ("Vessel class", "Length", "Daily fee"),
        ("Small", "under 30 m", "120 EUR"),
        ("Medium", "30 to 90 m", "480 EUR"),
        ("Large", "over 90 m", "1,350 EUR"),
    ]
    table = doc.add_table(rows=len(rows), cols=3)
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            table.cell(r, c).text = value
    doc.add_paragraph(
        "Fees are waived for lifeboats and research vessels of the Kessling "
        "Marine Institute."
    )
    for para in doc.paragraphs:
        for run in para.runs:
            run.font.size = run.font.size or Pt(11)
    doc.save(str(path))


def make_not_word_docx() -> bytes:
    # A valid zip that is not a Word document (no word/document.xml).
    from io import BytesIO

    buf = BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("notes/readme.txt", date_time=(2024, 5, 1, 12, 0, 0))
        zf.writestr(info, "This archive only pretends to be a Word document.\n")
    return buf.getvalue()


MARKDOWN = """\
# Allotment Garden Guide

Welcome to the Brindle Lane allotments. Plots are allocated by the garden
committee every February, and the waiting list is **kept in shed A**.

## Soil

The soil on the lower terraces is heavy clay; dig in compost every autumn.

### Testing pH

The allotment soil at Brindle Lane measured pH 6.4 in March 2023, which suits
most brassicas.

Use the shared kit in shed B; never borrow the committee's own meter.

Watering
--------

Water the Kestrel runner beans every second evening; they wilt above 28 °C.

- Use the rain butts first.
- Mains water only after 19:00.

## Pests

| Pest | Remedy |
|------|--------|
| Slugs | Copper tape around the raised beds |
| Aphids | Ladybird larvae from the [Brindle Lane shop](https://example.org/shop) |

```sh
echo "compost   ratio 3:1"
```
"""


HTML = """\
<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Nordhaven Maritime Museum &ndash; Visitor Information</title>
  <style>body { font-family: serif; } .promo { color: red; }</style>
  <script>var trackingSecret = "XYZZY-PIXEL-7"; console.log(trackingSecret);</script>
</head>
<body>
  <nav class="site-nav">
    <ul><li><a href="/">Home</a></li><li><a href="/shop">Gift shop NAVLINK</a></li></ul>
  </nav>
  <main>
    <h1>Nordhaven Maritime Museum</h1>
    <p>The museum opens at 10:00 every day
       except Tuesdays.</p>
    <div hidden>HIDDEN-DRAFT-TEXT should never be indexed.</div>
    <h2>Collections</h2>
    <p>Three halls show ship models, charts and navigation instruments.</p>
    <h3>The Selka figurehead</h3>
    <p>The oak figurehead of the schooner <em>Selka</em> was carved in 1794
       and stands in Hall&nbsp;C.</p>
    <h2>Tickets</h2>
    <p>Adult tickets cost 14 euros; children under 12 enter free.<br>Groups of ten or more get a 20% discount.</p>
    <table>
      <tr><th>Day</th><th>Opening hours</th></tr>
      <tr><td>Monday</td><td>10:00&ndash;17:00</td></tr>
      <tr><td>Sunday</td><td>11:00&ndash;16:00</td></tr>
    </table>
    <noscript>NOSCRIPT-BANNER enable JavaScript</noscript>
  </main>
  <footer>&copy; Nordhaven Museum Trust. FOOTER-COOKIES settings.</footer>
  <script src="/analytics.js"></script>
</body>
</html>
"""


CSV = """\
name,location,height_m,first_lit,notes
Orrin Point,Skerra Isle,38,1852,"White tower, red lantern"
Grey Buoy Light,Port Kessling,12,1907,
Hollin Head,"Tesk estuary, north bank",27,1868,"Automated in 1979; the keeper's cottage is now a café"
"""


LETTER_UTF16 = """\
Dear Ilse,

The Kamsø ferry now leaves Brekka pier at 06:45 instead of 07:15, starting on 3 May.

Tickets bought before the change stay valid until the end of June. — Jonas
"""


MENU_CP1252 = """\
Café Søren menu

The crème brûlée costs €4.50 and the smørrebrød costs €7.20.
"""


ORCHARD_TXT = """\
The Pellwick Orchard

The Pellwick orchard was planted in 1902 with 340 apple trees of the Russet Queen variety. \
It lies on a south-facing slope above the village of Pellwick, sheltered from the east wind by a \
line of old hornbeams. The first owner, a retired ship's carpenter called Tobias Venn, chose the \
slope because frost drained away from it on still nights. He kept a ledger of every harvest, and \
the ledgers survive in the parish archive. They show that the best year before the war was 1911, \
when the trees gave 61 tonnes of fruit. Venn sold most of the crop to a cider press in Harrowgate \
and kept the rest in a stone store that still stands at the top of the orchard. In dry summers he \
carried water up from the brook in two wooden barrels on a cart pulled by a pony named Juniper. \
The pony is mentioned in the ledger more often than any of the farm hands.

During the war years the orchard was neglected. Brambles covered the lower rows and a storm in \
1916 brought down nineteen trees. Venn's daughter, Elsie Venn, took over in 1919. She replanted \
the gaps with a hardier variety, the Copper Pippin, which ripens two weeks later than the Russet \
Queen and keeps until March.

In 1958 the orchard passed to the Pellwick Village Trust. The trust opened it to the public every \
October for Apple Day, when visitors can press their own juice. The oldest surviving tree, \
number 117 in Venn's ledger, still fruits every second year.

Visitors should note that dogs must be kept on a lead, because sheep graze between the rows from \
November to February.
"""


def make_binary_txt() -> bytes:
    # A PNG's signature and chunks: full of NULs and control bytes.
    rng = random.Random(1873)
    raw = bytes(rng.getrandbits(8) for _ in range(600))
    ihdr = struct.pack(">IIBBBBB", 16, 16, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)

    survey = make_survey_pdf()
    (OUT / "velloran-survey.pdf").write_bytes(survey)
    # Cut inside the body: no cross-reference table, no trailer.
    (OUT / "truncated.pdf").write_bytes(survey[: len(survey) // 3])
    (OUT / "encrypted.pdf").write_bytes(make_encrypted_pdf())
    (OUT / "owner-locked.pdf").write_bytes(make_owner_locked_pdf())
    (OUT / "scanned.pdf").write_bytes(make_scanned_pdf())

    make_docx(OUT / "harbour-handbook.docx")
    (OUT / "not-word.docx").write_bytes(make_not_word_docx())

    (OUT / "garden-guide.md").write_text(MARKDOWN, encoding="utf-8")
    (OUT / "museum.html").write_text(HTML, encoding="utf-8")
    (OUT / "lighthouses.csv").write_text(CSV, encoding="utf-8")
    (OUT / "orchard.txt").write_text(ORCHARD_TXT, encoding="utf-8")
    (OUT / "ferry-letter-utf16.txt").write_bytes(
        codecs.BOM_UTF16_LE + LETTER_UTF16.encode("utf-16-le")
    )
    (OUT / "menu-cp1252.txt").write_bytes(MENU_CP1252.encode("cp1252"))
    (OUT / "binary.txt").write_bytes(make_binary_txt())

    for path in sorted(OUT.iterdir()):
        print(f"{path.stat().st_size:>8}  {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
