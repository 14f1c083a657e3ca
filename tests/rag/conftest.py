"""Real small documents of every format the readers take, made in a temporary folder: a PDF
with a text layer (fpdf2) and a scanned-like one without (an image only)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rung.rag import Embedder

RETURNS_MD = """# Help centre

Welcome to the shop's help pages.

## Returns

You can return any item within 30 days of delivery for a full refund.
Items must be unused and in their original packaging.

```
# not a heading: inside a code block
```

### Refund times

Refunds reach your card within 5 business days.

## Shipping

Standard shipping takes 3-5 business days; express takes 1-2.
"""

SHIPPING_HTML = """<!doctype html>
<html><head><title>Shipping guide</title><style>h1 { color: red }</style>
<script>var hidden = "never indexed";</script></head>
<body>
<h1>Shipping</h1>
<p>We ship to 40 countries.
   Orders placed before noon leave the same day.</p>
<h2>Customs &amp; duties</h2>
<p>Duties are paid by the <b>recipient</b>.</p>
<ul><li>EU: none</li><li>UK: above &pound;135</li></ul>
</body></html>
"""

PDF_TEXT = "Warranty terms. Every appliance carries a two-year warranty against defects."


def make_text_pdf(path: Path, pages: list[str]) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    pdf.output(str(path))
    return path


def make_scanned_pdf(path: Path, tmp: Path) -> Path:
    """A page that shows text as pixels only, as a scanner makes it: no text layer."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (600, 200), "white")
    ImageDraw.Draw(image).text((20, 80), "Warranty terms: two years", fill="black")
    png = tmp / "scan.png"
    image.save(png)
    pdf = FPDF()
    pdf.add_page()
    pdf.image(str(png), x=10, y=10, w=180)
    pdf.output(str(path))
    return path


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A folder with one document of each format (and a hidden file that is left out)."""
    root = tmp_path / "docs"
    (root / "guides").mkdir(parents=True)
    (root / "returns.md").write_text(RETURNS_MD, encoding="utf-8")
    (root / "guides" / "shipping.html").write_text(SHIPPING_HTML, encoding="utf-8")
    (root / "notes.txt").write_text("Our shop opens at 9 am.\n", encoding="utf-8")
    make_text_pdf(root / "warranty.pdf", [PDF_TEXT, "Claims go to warranty@example.com."])
    rows = [
        {"id": "q1", "question": "Do you ship abroad?", "answer": "Yes, to 40 countries."},
        {"id": "q2", "question": "Can I pay by card?", "answer": "Visa and Mastercard."},
    ]
    (root / "faq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (root / "faq.csv").write_text(
        "id,title,body\nc1,Opening hours,We open at 9.\nc2,Gift cards,They never expire.\n",
        encoding="utf-8",
    )
    (root / ".hidden.md").write_text("# secret\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def minilm() -> Iterator[Embedder]:
    """The bundled MiniLM, loaded once for the whole session (loading takes seconds)."""
    embedder = Embedder("encoder:minilm-l6")
    embedder.load()
    yield embedder
    embedder.close()
