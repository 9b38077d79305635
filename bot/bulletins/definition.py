"""A bulletin as typed data: an id and, per language, a title and a body (in file order).

The first language is the original: a reader whose language the bulletin lacks gets it,
with one line in their own language saying so. Loading from YAML and validation are in
:mod:`bot.bulletins.loader`; the rules about lengths live here so the file, the chat
composer and the renderers agree on them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.bulletins.document import Document, ListBlock, Paragraph, plain_inline
from bot.bulletins.markdown import parse_markdown
from bot.core.i18n import ENDONYMS, N_

LANGUAGES: tuple[str, ...] = tuple(ENDONYMS)
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
MAX_TITLE_CHARS = 200
MAX_BODY_CHARS = 10_000
# One paragraph must fit in one Telegram message with the title and direction marks, so
# that a long body can always be split between paragraphs.
MAX_PARAGRAPH_CHARS = 3_500


@dataclass(frozen=True, slots=True)
class BulletinText:
    language: str
    title: str
    body: str  # the Markdown source, kept for storage and editing
    document: Document


@dataclass(frozen=True, slots=True)
class Bulletin:
    id: str
    texts: tuple[BulletinText, ...]
    source: str = ""

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(t.language for t in self.texts)

    @property
    def first(self) -> BulletinText:
        return self.texts[0]

    def text_for(self, language: str) -> tuple[BulletinText, bool]:
        """The text in ``language``, or the first language's and True (a fallback)."""
        for text in self.texts:
            if text.language == language:
                return text, False
        return self.texts[0], True

    def to_json(self) -> str:
        return json.dumps(
            {"id": self.id, "texts": [{"language": t.language, "title": t.title, "body": t.body} for t in self.texts]},
            ensure_ascii=False, sort_keys=True,
        )

    @property
    def digest(self) -> str:
        """Identifies the content: creating the same file twice is not a new version."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    @classmethod
    def from_json(cls, data: str | Mapping[str, Any]) -> Bulletin:
        raw = json.loads(data) if isinstance(data, str) else data
        return cls(str(raw["id"]), tuple(make_text(t["language"], t["title"], t["body"])[0] for t in raw["texts"]))


TITLE_EMPTY = N_("The title in %(language)s is empty.")
TITLE_LINES = N_("The title in %(language)s must be one line.")
TITLE_LONG = N_("The title in %(language)s has %(count)s characters; at most %(limit)s are allowed.")
BODY_EMPTY = N_("The body in %(language)s is empty.")
BODY_LONG = N_("The body in %(language)s is too long: %(count)s characters, at most %(limit)s.")
PARAGRAPH_LONG = N_("A paragraph in %(language)s has %(count)s characters; at most %(limit)s fit in one message. "
                    "Split it with a blank line.")


@dataclass(frozen=True, slots=True)
class TextProblem:
    """One problem of a title or body. ``field`` is ``title`` or ``body``; ``line`` counts from 0
    at the body's first line (None for the whole field). ``template`` is an ``N_()`` text, so
    the chat composer can say it in the staff member's language and the CLI in English."""

    field: str
    line: int | None
    template: str
    values: tuple[tuple[str, object], ...] = ()

    @property
    def message(self) -> str:
        return self.template % dict(self.values) if self.values else self.template


def make_text(language: str, title: str, body: str) -> tuple[BulletinText, list[TextProblem]]:
    """Parse and check one language's title and body (file loader and chat composer alike)."""
    problems: list[TextProblem] = []
    title = title.strip()
    body = body.strip("\n").rstrip()

    def fail(field: str, line: int | None, template: str, **values: object) -> None:
        problems.append(TextProblem(field, line, template, (("language", language), *values.items())))

    if not title:
        fail("title", None, TITLE_EMPTY)
    elif "\n" in title:
        fail("title", None, TITLE_LINES)
    elif len(title) > MAX_TITLE_CHARS:
        fail("title", None, TITLE_LONG, count=len(title), limit=MAX_TITLE_CHARS)
    document, markup = parse_markdown(body)
    if not body.strip():
        fail("body", None, BODY_EMPTY)
    elif len(body) > MAX_BODY_CHARS:
        fail("body", None, BODY_LONG, count=len(body), limit=MAX_BODY_CHARS)
    problems.extend(TextProblem("body", p.line, p.message) for p in markup)
    start, lines = 0, body.split("\n")
    for number, line in enumerate([*lines, ""]):
        if line.strip():
            continue
        size = sum(len(x) + 1 for x in lines[start:number]) - 1
        if size > MAX_PARAGRAPH_CHARS:
            fail("body", start, PARAGRAPH_LONG, count=size, limit=MAX_PARAGRAPH_CHARS)
        start = number + 1
    return BulletinText(language, title, body, document), problems


def block_text(block: Paragraph | ListBlock) -> str:
    """A block's text without markup (for lengths and plain renderings)."""
    if isinstance(block, Paragraph):
        return plain_inline(block.inlines)
    return "\n".join(plain_inline(item) for item in block.items)


