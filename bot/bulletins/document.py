"""A bulletin body as typed data: paragraphs and lists of inline text, bold, italic and links.

The body is written in a small Markdown subset (:mod:`bot.bulletins.markdown`) and rendered
for each platform (:mod:`bot.bulletins.render`). Keeping the parsed form typed means a
renderer can only ever emit the markup it builds itself: nothing a staff member types
reaches a platform as markup.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Text:
    value: str


@dataclass(frozen=True, slots=True)
class Bold:
    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Italic:
    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Link:
    children: tuple[Inline, ...]
    url: str


Inline = Text | Bold | Italic | Link


@dataclass(frozen=True, slots=True)
class Paragraph:
    """Lines of inline content; a single newline inside the source stays a line break."""

    inlines: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class ListBlock:
    ordered: bool
    items: tuple[tuple[Inline, ...], ...]
    start: int = 1


Block = Paragraph | ListBlock


@dataclass(frozen=True, slots=True)
class Document:
    blocks: tuple[Block, ...]


def plain_inline(inlines: tuple[Inline, ...], *, urls: bool = True) -> str:
    """The text a reader sees, without markup. Where no link can be clicked (``urls``), a link
    shows its address after its text, unless the text is the address."""
    out: list[str] = []
    for node in inlines:
        if isinstance(node, Text):
            out.append(node.value)
        elif isinstance(node, Link):
            label = plain_inline(node.children, urls=urls)
            out.append(label if not urls or label == node.url else f"{label} ({node.url})")
        else:
            out.append(plain_inline(node.children, urls=urls))
    return "".join(out)
