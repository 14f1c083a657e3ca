"""HTML to text with the standard library's parser, keeping h1-h6 as headings.

Block elements end a line, runs of whitespace inside a line become one space, and what a reader
never sees (scripts, styles, templates, the head) is dropped. The chunk offsets index into the
text made here, not into the HTML source.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from rung.errors import DataError
from rung.rag.documents import Document, Heading, ReadOptions
from rung.rag.readers.text import decode, nonempty, read_bytes

__all__ = ["html_to_text", "read_html"]

_HIDDEN = frozenset({"script", "style", "noscript", "template", "head", "svg"})
_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt",
        "figcaption", "figure", "footer", "form", "header", "hr", "li", "main", "nav", "ol",
        "p", "pre", "section", "summary", "table", "td", "th", "tr", "ul",
    }
)  # fmt: skip
_HEADING = re.compile(r"^h([1-6])$")
_SPACE = re.compile(r"\s+")


class _TextMaker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []  # finished lines
        self.length = 0  # characters in the finished lines, each with its newline
        self.line: list[str] = []
        self.hidden = 0
        self.heading: tuple[int, int] | None = None  # (level, start) of the open heading
        self.headings: list[Heading] = []
        self.title: str | None = None
        self._in_title = False

    def _end_line(self) -> None:
        line = _SPACE.sub(" ", "".join(self.line)).strip()
        self.line = []
        if line:
            self.lines.append(line)
            self.length += len(line) + 1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in _HIDDEN:
            self.hidden += 1
            return
        match = _HEADING.match(tag)
        if match:
            self._end_line()
            self.heading = (int(match.group(1)), self.length)
        elif tag in _BLOCK:
            self._end_line()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
            return
        if _HEADING.match(tag) and self.heading is not None:
            level, start = self.heading
            self._end_line()
            title = self.lines[-1] if self.length > start else ""
            if title:
                self.headings.append(Heading(level=level, title=title, start=start))
            self.heading = None
        elif tag in _BLOCK:
            self._end_line()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = (self.title or "") + data
        if not self.hidden:
            self.line.append(data)

    def text(self) -> str:
        self._end_line()
        return "\n".join(self.lines) + ("\n" if self.lines else "")


def html_to_text(markup: str) -> tuple[str, tuple[Heading, ...], str | None]:
    """The visible text, its headings, and the page's ``<title>``."""
    maker = _TextMaker()
    maker.feed(markup)
    maker.close()
    title = _SPACE.sub(" ", maker.title).strip() if maker.title else None
    return maker.text(), tuple(maker.headings), title or None


def read_html(path: Path, source: str, options: ReadOptions) -> list[Document]:
    markup = decode(read_bytes(path), path)
    text, headings, title = html_to_text(markup)
    if not text.strip() and markup.strip():
        raise DataError(f"{path} has no visible text (only markup or scripts); leave it out")
    return [Document(source=source, text=nonempty(text, path), title=title, headings=headings)]
