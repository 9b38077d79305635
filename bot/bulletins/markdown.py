"""The Markdown subset of bulletin bodies: paragraphs, lists, **bold**, *italic* (or _italic_), links.

Deliberately small, so staff who are not programmers can write it from a phone and every
platform can show all of it:

- a blank line separates paragraphs; a single line break stays a line break;
- lines starting with ``- ``, ``* `` or ``• `` form a list, ``1. `` or ``1) `` a numbered one
  (an indented line continues the item above);
- ``**bold**``, ``*italic*`` or ``_italic_``, ``[text](https://address)``;
- a backslash makes the next mark plain: ``\\*`` is a star.

Anything else is text, never markup. A link written wrongly is reported (with its line)
rather than shown half-formatted to thousands of readers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.bulletins.document import Block, Bold, Document, Inline, Italic, Link, ListBlock, Paragraph, Text
from bot.core.i18n import N_

LINK_SCHEMES = ("https://", "http://", "mailto:")
_ESCAPABLE = frozenset("\\*_[]()#-.!`>•")
_LIST_ITEM = re.compile(r"^[ \t]{0,3}(?:(?P<bullet>[-*•])|(?P<number>\d{1,3})[.)])[ \t]+(?P<text>\S.*)$")
_SPACED_LINK = re.compile(r"\][ \t]+\((?:https?://|mailto:)")
_MAX_DEPTH = 6


SPACED_LINK = N_("A link has a space between ] and (: write [text](address) with nothing between.")
NO_OPENING = N_("A link has ]( but no [ before its text: write [text](address).")
NOT_CLOSED = N_("A link is not closed: put ) right after its address, with no space inside the address.")
NO_TEXT = N_("A link has no text: write the words people click between [ and ].")
NO_ADDRESS = N_("A link has no address: write it between ( and ).")
BAD_SCHEME = N_("A link address must begin with https://, http:// or mailto:.")


@dataclass(frozen=True, slots=True)
class MarkupProblem:
    """``line`` counts from 0 at the body's first line; ``message`` is an ``N_()`` text."""

    line: int
    message: str


def parse_markdown(source: str) -> tuple[Document, list[MarkupProblem]]:
    """The document and every problem found (an empty list when the body is fine)."""
    problems: list[MarkupProblem] = []
    blocks: list[Block] = []
    paragraph: list[tuple[int, str]] = []
    items: list[list[tuple[int, str]]] = []
    ordered = False
    start = 1

    def flush_paragraph() -> None:
        if paragraph:
            blocks.append(Paragraph(_InlineParser(paragraph, problems).parse()))
            paragraph.clear()

    def flush_list() -> None:
        if items:
            blocks.append(ListBlock(ordered, tuple(_InlineParser(item, problems).parse() for item in items), start))
            items.clear()

    for number, raw in enumerate(source.replace("\r\n", "\n").replace("\r", "\n").split("\n")):
        line = raw.rstrip()
        if not line.strip():
            flush_paragraph()
            flush_list()
            continue
        match = _LIST_ITEM.match(line)
        if match is not None:
            flush_paragraph()
            is_ordered = match.group("number") is not None
            if items and is_ordered != ordered:
                flush_list()
            if not items:
                ordered = is_ordered
                start = int(match.group("number")) if is_ordered else 1
            items.append([(number, match.group("text").strip())])
        elif items and raw[:1] in (" ", "\t"):
            items[-1].append((number, line.strip()))
        else:
            flush_list()
            paragraph.append((number, line.strip()))
    flush_paragraph()
    flush_list()
    return Document(tuple(blocks)), problems


class _InlineParser:
    """Inline marks over consecutive source lines joined by newlines."""

    def __init__(self, lines: list[tuple[int, str]], problems: list[MarkupProblem]) -> None:
        self._first = lines[0][0]
        self._s = "\n".join(text for _, text in lines)
        self._problems = problems

    def parse(self) -> tuple[Inline, ...]:
        for match in _SPACED_LINK.finditer(self._s):
            self._fail(match.start(), SPACED_LINK)
        return self._parse(0, len(self._s), 0, in_link=False)

    def _line(self, position: int) -> int:
        return self._first + self._s.count("\n", 0, position)

    def _fail(self, position: int, message: str) -> None:
        self._problems.append(MarkupProblem(self._line(position), message))

    def _parse(self, i: int, j: int, depth: int, *, in_link: bool) -> tuple[Inline, ...]:
        s = self._s
        out: list[Inline] = []
        buffer: list[str] = []

        def flush() -> None:
            if buffer:
                out.append(Text("".join(buffer)))
                buffer.clear()

        while i < j:
            char = s[i]
            if char == "\\" and i + 1 < j and s[i + 1] in _ESCAPABLE:
                buffer.append(s[i + 1])
                i += 2
                continue
            if char == "[" and not in_link and depth < _MAX_DEPTH:
                link = self._link(i, j, depth)
                if link is not None:
                    node, end = link
                    if node is None:  # reported; the broken link stays plain text
                        buffer.append(s[i:end])
                    else:
                        flush()
                        out.append(node)
                    i = end
                    continue
            if s.startswith("](", i) and not in_link:
                self._fail(i, NO_OPENING)
            if s.startswith("**", i) and depth < _MAX_DEPTH:
                close = self._closer_double(i + 2, j)
                if close is not None:
                    flush()
                    out.append(Bold(self._parse(i + 2, close, depth + 1, in_link=in_link)))
                    i = close + 2
                    continue
                buffer.append("**")
                i += 2
                continue
            if char in "*_" and depth < _MAX_DEPTH and self._opens(char, i, j):
                close = self._closer_single(char, i + 1, j)
                if close is not None:
                    flush()
                    out.append(Italic(self._parse(i + 1, close, depth + 1, in_link=in_link)))
                    i = close + 1
                    continue
            buffer.append(char)
            i += 1
        flush()
        return tuple(out)

    def _opens(self, char: str, i: int, j: int) -> bool:
        s = self._s
        if i + 1 >= j or s[i + 1].isspace() or s[i + 1] == char:
            return False
        return char != "_" or i == 0 or not s[i - 1].isalnum()  # snake_case is not italic

    def _closer_double(self, k: int, j: int) -> int | None:
        s = self._s
        if k >= j or s[k].isspace():
            return None
        while k < j - 1:
            if s[k] == "\\":
                k += 2
                continue
            if s.startswith("**", k) and not s[k - 1].isspace():
                return k
            k += 1
        return None

    def _closer_single(self, char: str, k: int, j: int) -> int | None:
        s = self._s
        while k < j:
            if s[k] == "\\":
                k += 2
                continue
            if char == "*" and s.startswith("**", k):
                k += 2
                continue
            if s[k] == char and not s[k - 1].isspace() and (char == "*" or k + 1 >= j or not s[k + 1].isalnum()):
                return k
            k += 1
        return None

    def _link(self, i: int, j: int, depth: int) -> tuple[Link | None, int] | None:
        """``[text](address)`` starting at ``i`` and where it ends; None if ``[`` is plain text,
        ``(None, end)`` for a broken link (reported once, then shown as text)."""
        s = self._s
        k = i + 1
        while k < j and s[k] != "]":
            if s[k] == "\\":
                k += 1
            elif s[k] == "\n" or s[k] == "[":
                return None
            k += 1
        if k >= j or not s.startswith("](", k):
            return None
        url_start = k + 2
        end, parens = url_start, 0
        while end < j and not s[end].isspace():
            if s[end] == "(":
                parens += 1
            elif s[end] == ")":
                if parens == 0:
                    break
                parens -= 1
            end += 1
        if end >= j or s[end] != ")":
            self._fail(i, NOT_CLOSED)
            return None, url_start
        url = s[url_start:end]
        if k == i + 1:
            self._fail(i, NO_TEXT)
        if not url:
            self._fail(i, NO_ADDRESS)
        elif not url.lower().startswith(LINK_SCHEMES):
            self._fail(i, BAD_SCHEME)
        return Link(self._parse(i + 1, k, depth + 1, in_link=True), url), end + 1
