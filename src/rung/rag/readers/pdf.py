"""PDF text layers, with pypdf (pure Python, no system libraries). Each page starts a level-1
heading "Page N", so that a chunk says where in the PDF it comes from.

A scanned PDF has images but no text layer: it is refused with what to do (OCR), rather than
indexed as nothing."""

from __future__ import annotations

from pathlib import Path

from rung.errors import DataError, MissingDependencyError
from rung.rag.documents import Document, Heading, ReadOptions
from rung.rag.readers.text import read_bytes

__all__ = ["INSTALL", "read_pdf"]

INSTALL = "pip install 'rung[rag]'"


def read_pdf(path: Path, source: str, options: ReadOptions) -> list[Document]:
    try:
        import io

        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as e:
        raise MissingDependencyError("reading PDF files", INSTALL) from e
    raw = read_bytes(path)
    if not raw.strip():
        raise DataError(f"{path} is empty: it holds no text to index; add text or leave it out")
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DataError(f"{path} is encrypted with a password; decrypt it first (qpdf)")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DataError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise DataError(f"cannot read {path} as a PDF ({e}); check that the file is whole") from e
    if not pages:
        raise DataError(f"{path} has no pages; leave it out")
    letters = sum(ch.isalnum() for page in pages for ch in page)
    if letters < options.pdf_min_chars_per_page * len(pages):
        raise DataError(
            f"{path} has no text layer ({letters} letters on {len(pages)} pages: a scanned "
            "PDF?); run OCR on it first (for example `ocrmypdf in.pdf out.pdf`) and index the "
            "result"
        )
    parts: list[str] = []
    headings: list[Heading] = []
    length = 0
    for number, page in enumerate(pages, 1):
        body = page.strip()
        if not body:
            continue
        marker = f"Page {number}"
        headings.append(Heading(level=1, title=marker, start=length))
        block = f"{body}\n\n"
        parts.append(block)
        length += len(block)
    return [Document(source=source, text="".join(parts), headings=tuple(headings))]
