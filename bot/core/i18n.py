"""Translations (gettext catalogs under ``locales/``) and bidirectional-text safety.

Arabic and Sorani are right-to-left. Values put into a translated sentence (numbers,
case codes, Latin names) are wrapped in Unicode isolates (FSI ... PDI) so they cannot
reorder the sentence around them, whatever direction the value has. In right-to-left
messages, commands (``/delete_me``, ``/org add <code>``) are wrapped in left-to-right
isolates (LRI ... PDI), or chat apps put the slash on the wrong side, and every line
starts with a right-to-left mark, or a line that begins with a command (the /help list)
is laid out left to right. Both happen here, once, so every message gets them.
"""

from __future__ import annotations

import gettext
import io
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot.core.model import Direction

log = logging.getLogger(__name__)

DOMAIN = "bot"
FSI = "\u2068"  # first strong isolate
LRI = "\u2066"  # left-to-right isolate
PDI = "\u2069"  # pop directional isolate
RLM = "\u200f"  # right-to-left mark
BIDI_CONTROLS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")

# A command and the Latin arguments of its syntax: "/help", "/org add <code> <kind> [organisation]".
# Not a path or a URL (no letter, digit, slash, colon or dot just before the slash), nor one isolated already.
COMMAND = re.compile(
    r"(?<![\w/:.\u2066])/[a-z][a-z0-9_]*(?: (?:<[^<>\s]+>|\[[^\[\]\n]+\]|[A-Za-z_][A-Za-z0-9_-]*))*"
)

LOCALES_DIR = Path(__file__).resolve().parent.parent.parent / "locales"


def N_(message: str) -> str:
    """Mark a string for extraction without translating it yet (translated at use)."""
    return message


_EASTERN_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")


def western_digits(text: str) -> str:
    """Arabic-Indic and Persian digits (as Arabic and Sorani keyboards type them) as 0-9."""
    return text.translate(_EASTERN_DIGITS)


_BIDI_SCOPES = re.compile("[\u202a-\u202e\u2066-\u2069]")  # embeddings, overrides, isolates and their ends


def neutral(text: str) -> str:
    """What someone typed, without the bidi controls that open or close a scope (embeddings,
    overrides such as U+202E, isolates): typed text must not reorder what is shown around it.
    Marks (LRM, RLM) stay: they only lean on the characters beside them."""
    return _BIDI_SCOPES.sub("", text)


def typed(text: str) -> str:
    """Text a person typed, for someone else to read inside a sentence: neutral, then isolated."""
    return isolate(neutral(text))


def decimal_value(text: str, max_digits: int) -> int | None:
    """``text`` as a non-negative integer if it is only decimal digits (any script's), else None.

    ``str.isdigit`` also accepts ``❶`` or Ethiopic ``፩``, on which ``int`` fails, and ``int`` refuses
    more than 4300 digits: both reached people as "something went wrong". Length is bounded first.
    """
    if not text or len(text) > max_digits or not text.isdecimal():
        return None
    return int(text)


def isolate(value: object) -> str:
    """Wrap a value so it keeps its own direction inside any sentence."""
    return f"{FSI}{value}{PDI}"


def isolate_commands(text: str) -> str:
    """Commands read left to right inside a right-to-left sentence."""
    return COMMAND.sub(lambda found: f"{LRI}{found.group(0)}{PDI}", text)


def rtl_lines(text: str) -> str:
    """Every non-empty line starts with a right-to-left mark, whatever its first word."""
    return "\n".join(line if not line or line.startswith(RLM) else RLM + line for line in text.split("\n"))


def plain(text: str) -> str:
    """The text without directional marks and isolates: for comparing what a person typed
    with a label, and for places that are not chat messages (chart labels)."""
    return BIDI_CONTROLS.sub("", text)


@dataclass(frozen=True, slots=True)
class LanguageInfo:
    code: str
    endonym: str  # the language's name in its own script: how people recognise it
    direction: Direction


# The languages of the bot, defined here once; the order is the order of the language menu.
ENDONYMS: Mapping[str, str] = {
    "ar": "العربية",
    "ckb": "کوردی (سۆرانی)",
    "ku": "Kurdî (Kurmancî)",
    "en": "English",
}
LANGUAGES: tuple[str, ...] = tuple(ENDONYMS)


class Translator:
    """Translations for one language. ``_`` and ``n_`` isolate their arguments."""

    __slots__ = ("language", "direction", "_gt")

    def __init__(self, language: str, direction: Direction, translations: gettext.NullTranslations) -> None:
        self.language = language
        self.direction = direction
        self._gt = translations

    def _(self, message: str, /, **values: object) -> str:
        text = self._layout(self._gt.gettext(message))
        return self._lines(text % {k: isolate(v) for k, v in values.items()} if values else text)

    def n_(self, singular: str, plural: str, n: int, /, **values: object) -> str:
        text = self._layout(self._gt.ngettext(singular, plural, n))
        merged = {"n": n, **values}
        return self._lines(text % {k: isolate(v) for k, v in merged.items()})

    def layout(self, text: str) -> str:
        """The same layout for text composed outside the catalogs (a /help line built from a
        command's name, its Latin arguments and a translated description)."""
        return self._lines(self._layout(text))

    def _layout(self, template: str) -> str:
        # Before the values go in: a value (a title, a code) is isolated as it is and never rewritten.
        return isolate_commands(template) if self.direction is Direction.RTL else template

    def _lines(self, text: str) -> str:
        return rtl_lines(text) if self.direction is Direction.RTL else text

    @property
    def rtl(self) -> bool:
        return self.direction is Direction.RTL


class I18n:
    """All catalogs, loaded once. Missing compiled ``.mo`` files are compiled from ``.po`` in memory."""

    def __init__(self, default_language: str = "en", locales_dir: Path = LOCALES_DIR,
                 languages: tuple[str, ...] = LANGUAGES) -> None:
        if default_language not in languages:
            raise ValueError(f"default language {default_language!r} is not one of {languages}")
        self.default_language = default_language
        self.languages = tuple(
            LanguageInfo(code, ENDONYMS.get(code, code), _direction(code)) for code in languages
        )
        self._translators = {
            info.code: Translator(info.code, info.direction, _load(locales_dir, info.code))
            for info in self.languages
        }

    def translator(self, language: str | None) -> Translator:
        return self._translators.get(self.resolve(language), self._translators[self.default_language])

    def resolve(self, hint: str | None) -> str:
        """Map a platform language hint (``"ar-SY"``, ``"ckb"``) to a supported language."""
        if not hint:
            return self.default_language
        code = hint.replace("-", "_").split("_")[0].lower()
        return code if code in self._translators else self.default_language


def _direction(code: str) -> Direction:
    return Direction.RTL if Locale.parse(code).text_direction == "rtl" else Direction.LTR


def _load(locales_dir: Path, code: str) -> gettext.NullTranslations:
    base = locales_dir / code / "LC_MESSAGES"
    mo, po = base / f"{DOMAIN}.mo", base / f"{DOMAIN}.po"
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as fh:
            return gettext.GNUTranslations(fh)
    if po.exists():
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=code)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        return gettext.GNUTranslations(buffer)
    if code != "en":
        log.warning("no catalog for language %s; falling back to source strings", code)
    return gettext.NullTranslations()
