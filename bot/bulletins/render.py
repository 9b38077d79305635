"""A bulletin text as each platform shows it: Telegram HTML, Matrix HTML plus plain body, plain text.

Every piece of text is escaped here and every tag is one this module writes, so nothing a
staff member types can become markup. The Matrix HTML is also passed through ``nh3`` (an
allow-list sanitiser) as a second wall. Right-to-left texts keep their direction: Telegram
and Matrix's plain body get a RIGHT-TO-LEFT MARK at the start of every line (clients pick a
line's direction from its first strong character, which may be a Latin name or a digit),
Matrix's HTML a ``dir="rtl"`` container. A body too long for one message is split between
paragraphs (between list items or lines only if a single paragraph is still too long), in order.
"""

from __future__ import annotations

import enum
import html
import json
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import nh3

from bot.bulletins.definition import BulletinText
from bot.bulletins.document import Bold, Inline, Italic, Link, ListBlock, Paragraph, Text, plain_inline
from bot.bulletins.markdown import LINK_SCHEMES
from bot.core.model import Direction, Formatted

RLM = "\u200f"
MATRIX_TAGS = frozenset({"p", "br", "strong", "em", "a", "ul", "ol", "li", "div"})
MATRIX_ATTRIBUTES = {"a": {"href"}, "div": {"dir"}, "p": {"dir"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"https", "http", "mailto"})


class Markup(enum.Enum):
    TELEGRAM_HTML = "telegram-html"
    MATRIX_HTML = "matrix-html"
    PLAIN = "plain"


@dataclass(frozen=True, slots=True)
class Profile:
    """How one platform shows rich text, and the most one message may hold (in ``measure`` units)."""

    markup: Markup
    limit: int
    measure: Callable[[Formatted], int]


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _matrix_size(part: Formatted) -> int:
    # matrix-nio encrypts the event as ASCII-escaped JSON (a letter of Arabic script takes six
    # bytes), then base64 (4/3): 45,000 bytes of JSON stay under Matrix's 65,536-byte event limit.
    return len(json.dumps(part.text)) + len(json.dumps(part.html))


TELEGRAM = Profile(Markup.TELEGRAM_HTML, 4096, lambda part: utf16_len(part.text))
MATRIX = Profile(Markup.MATRIX_HTML, 45_000, _matrix_size)
PLAIN = Profile(Markup.PLAIN, 1_000_000, lambda part: len(part.text))


def profile_for(platform: str) -> Profile:
    """Platforms are named by their transports; any other (the console) gets plain text."""
    return {"telegram": TELEGRAM, "matrix": MATRIX}.get(platform, PLAIN)


# -- escaping ------------------------------------------------------------------------------------


def clean(text: str) -> str:
    """Drop what no message should carry: control characters (but newlines and tabs) and lone surrogates."""
    return "".join(
        char for char in text
        if char in "\n\t" or (unicodedata.category(char) not in ("Cc", "Cs"))
    )


def safe_url(url: str) -> bool:
    return url.lower().startswith(LINK_SCHEMES) and not any(char.isspace() for char in url) and url == clean(url)


def _escape(text: str) -> str:
    return html.escape(clean(text), quote=False)


def _escape_attribute(text: str) -> str:
    return html.escape(clean(text), quote=True)


# -- one block at a time ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Piece:
    """A block rendered for one profile, before it is packed into a message."""

    text: str
    html: str


def _inline_html(nodes: Iterable[Inline], markup: Markup) -> str:
    bold, italic = ("b", "i") if markup is Markup.TELEGRAM_HTML else ("strong", "em")
    out: list[str] = []
    for node in nodes:
        if isinstance(node, Text):
            text = _escape(node.value)
            out.append(text.replace("\n", "<br>") if markup is Markup.MATRIX_HTML else text)
        elif isinstance(node, Bold):
            out.append(f"<{bold}>{_inline_html(node.children, markup)}</{bold}>")
        elif isinstance(node, Italic):
            out.append(f"<{italic}>{_inline_html(node.children, markup)}</{italic}>")
        elif isinstance(node, Link):
            label = _inline_html(node.children, markup)
            if not safe_url(node.url):  # refused by validation; never shown as a link regardless
                out.append(label or _escape(node.url))
            else:
                out.append(f'<a href="{_escape_attribute(node.url)}">{label or _escape(node.url)}</a>')
    return "".join(out)


def _plain(nodes: tuple[Inline, ...], markup: Markup = Markup.PLAIN) -> str:
    """Telegram's text is what its client shows (a link is its label); elsewhere the address is written out."""
    if markup is Markup.TELEGRAM_HTML:
        return clean("".join(_telegram_shown(node) for node in nodes))
    return clean(plain_inline(nodes))


def _telegram_shown(node: Inline) -> str:
    if isinstance(node, Text):
        return node.value
    if isinstance(node, Link):
        label = "".join(_telegram_shown(child) for child in node.children)
        return label if label and safe_url(node.url) else label or node.url
    return "".join(_telegram_shown(child) for child in node.children)


def _marked(text: str, rtl: bool) -> str:
    """Every line starts with a RIGHT-TO-LEFT MARK (Telegram, Matrix plain body)."""
    if not rtl:
        return text
    return "\n".join(RLM + line for line in text.split("\n"))


def _list_prefixes(block: ListBlock) -> list[str]:
    return [f"{block.start + i}. " if block.ordered else "• " for i in range(len(block.items))]


def _piece(block: Paragraph | ListBlock, markup: Markup, rtl: bool) -> _Piece:
    if isinstance(block, Paragraph):
        text, inner = _plain(block.inlines, markup), _inline_html(block.inlines, markup)
        if markup is Markup.MATRIX_HTML:
            return _Piece(_marked(text, rtl), f"<p>{inner}</p>")
        return _Piece(_marked(text, rtl), _marked(inner, rtl) if markup is Markup.TELEGRAM_HTML else "")
    prefixes = _list_prefixes(block)
    text = "\n".join(prefix + _plain(item, markup) for prefix, item in zip(prefixes, block.items, strict=True))
    if markup is Markup.MATRIX_HTML:
        items = "".join(f"<li>{_inline_html(item, markup)}</li>" for item in block.items)
        tag = "ol" if block.ordered else "ul"
        start = f' start="{block.start}"' if block.ordered and block.start != 1 else ""
        return _Piece(_marked(text, rtl), f"<{tag}{start}>{items}</{tag}>")
    if markup is Markup.TELEGRAM_HTML:
        lines = "\n".join(prefix + _inline_html(item, markup) for prefix, item in zip(prefixes, block.items, strict=True))
        return _Piece(_marked(text, rtl), _marked(lines, rtl))
    return _Piece(text, "")


def _heading(title: str, markup: Markup, rtl: bool) -> _Piece:
    text = clean(title)
    if markup is Markup.TELEGRAM_HTML:
        return _Piece(_marked(text, rtl), _marked(f"<b>{_escape(title)}</b>", rtl))
    if markup is Markup.MATRIX_HTML:
        return _Piece(_marked(text, rtl), f"<p><strong>{_escape(title)}</strong></p>")
    return _Piece(text, "")


def _note(note: str, markup: Markup, rtl: bool) -> _Piece:
    text = clean(note)
    if markup is Markup.TELEGRAM_HTML:
        return _Piece(_marked(text, rtl), _marked(f"<i>{_escape(note)}</i>", rtl))
    if markup is Markup.MATRIX_HTML:
        direction = "rtl" if rtl else "ltr"
        return _Piece(_marked(text, rtl), f'<p dir="{direction}"><em>{_escape(note).replace(chr(10), "<br>")}</em></p>')
    return _Piece(text, "")


# -- whole messages ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Unit:
    """A piece and whether it belongs to the body (wrapped in the body's direction on Matrix)."""

    piece: _Piece
    body: bool


def sanitise_matrix(markup: str) -> str:
    """The allow-list every Matrix ``formatted_body`` of a bulletin passes through."""
    return nh3.clean(markup, tags=set(MATRIX_TAGS), attributes={k: set(v) for k, v in MATRIX_ATTRIBUTES.items()},
                     url_schemes=set(URL_SCHEMES), link_rel=None, strip_comments=True)


def _assemble(units: list[_Unit], profile: Profile, rtl: bool) -> Formatted:
    text = "\n\n".join(u.piece.text for u in units)
    if profile.markup is Markup.TELEGRAM_HTML:
        return Formatted(text, "\n\n".join(u.piece.html for u in units))
    if profile.markup is Markup.MATRIX_HTML:
        out: list[str] = []
        body: list[str] = []
        for unit in units:
            if unit.body:
                body.append(unit.piece.html)
                continue
            if body:
                out.append(_direction_div(body, rtl))
                body = []
            out.append(unit.piece.html)
        if body:
            out.append(_direction_div(body, rtl))
        return Formatted(text, sanitise_matrix("".join(out)))
    return Formatted(text, "")


def _direction_div(pieces: list[str], rtl: bool) -> str:
    return f'<div dir="{"rtl" if rtl else "ltr"}">{"".join(pieces)}</div>'


def _smaller(block: Paragraph | ListBlock) -> list[Paragraph | ListBlock] | None:
    """A block that does not fit one message, cut finer: list items, then lines; None if it cannot be."""
    if isinstance(block, ListBlock):
        if len(block.items) < 2:
            return [Paragraph((Text(line),)) for line in _plain(block.items[0]).split("\n")] \
                if "\n" in _plain(block.items[0]) else None
        return [ListBlock(block.ordered, (item,), block.start + i) for i, item in enumerate(block.items)]
    lines = _plain(block.inlines).split("\n")
    if len(lines) < 2:
        return None
    return [Paragraph((Text(line),)) for line in lines]


def _hard_cut(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start:start + size]


def render_text(text: BulletinText, profile: Profile, direction: Direction, *,
                note: str | None = None, note_direction: Direction = Direction.LTR) -> tuple[Formatted, ...]:
    """The messages one reader receives, in order: the note (if the text is not in their language),
    the title, then the body's paragraphs, split between paragraphs wherever a message is full."""
    rtl = direction is Direction.RTL
    marks = profile.markup is not Markup.PLAIN  # a terminal needs no direction marks
    head: list[_Unit] = []
    if note:
        head.append(_Unit(_note(note, profile.markup, marks and note_direction is Direction.RTL), False))
    head.append(_Unit(_heading(text.title, profile.markup, marks and rtl), False))
    queue: list[Paragraph | ListBlock] = list(text.document.blocks)
    parts: list[Formatted] = []
    current: list[_Unit] = head
    while queue:
        block = queue.pop(0)
        unit = _Unit(_piece(block, profile.markup, marks and rtl), True)
        if profile.measure(_assemble([*current, unit], profile, rtl)) <= profile.limit:
            current.append(unit)
            continue
        if current and profile.measure(_assemble([unit], profile, rtl)) <= profile.limit:
            parts.append(_assemble(current, profile, rtl))
            current = [unit]
            continue
        finer = _smaller(block)
        if finer is not None:
            queue[:0] = finer
            continue
        # One line longer than a whole message (not possible for a validated body): cut it as text,
        # in pieces small enough to fit a message on their own.
        line = _plain(block.inlines) if isinstance(block, Paragraph) else unit.piece.text
        size = len(line)
        while size > 1 and profile.measure(_assemble([_Unit(_piece(Paragraph((Text(line[:size]),)), profile.markup,
                                                                   marks and rtl), True)], profile, rtl)) > profile.limit:
            size //= 2
        queue[:0] = [Paragraph((Text(piece),)) for piece in _hard_cut(line, size)]
    if current:
        parts.append(_assemble(current, profile, rtl))
    return tuple(parts)

