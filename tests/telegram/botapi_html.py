"""Telegram's ``parse_mode=HTML`` parser, as the local Bot API server needs it.

Follows the algorithm of TDLib's ``parse_html`` (byte offsets into the UTF-8 markup,
the same error texts) so that a bot which builds malformed HTML is answered here
exactly as Telegram would answer it: ``Bad Request: can't parse entities: ...``.
Entity offsets and lengths are in UTF-16 code units, as in the real Bot API.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SUPPORTED_TAGS = frozenset({
    "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins",
    "tg-spoiler", "tg-emoji", "span", "pre", "code", "blockquote",
})
_ENTITY_TYPES = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
    "span": "spoiler", "code": "code", "pre": "pre", "blockquote": "blockquote", "a": "text_link",
    "tg-emoji": "custom_emoji",
}
_NAMED = {b"lt": "<", b"gt": ">", b"amp": "&", b"quot": '"'}
_SPACES = b" \t\r\n\x0b\x0c"
_NAME_TOKEN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


class HtmlParseError(ValueError):
    """The text Telegram puts after ``can't parse entities: ``."""


@dataclass
class _Open:
    tag: str
    offset: int  # UTF-16 offset in the output
    attrs: dict[str, str] = field(default_factory=dict)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_html(markup: str) -> tuple[str, list[dict[str, object]]]:
    """Return the plain text and the Bot API ``MessageEntity`` dicts of ``markup``."""
    data = markup.encode("utf-8")
    n = len(data)
    out = bytearray()
    utf16 = 0
    stack: list[_Open] = []
    entities: list[dict[str, object]] = []

    def at(k: int) -> int:
        return data[k] if k < n else 0

    def append_char(ch: str) -> None:
        nonlocal utf16
        out.extend(ch.encode("utf-8"))
        utf16 += utf16_len(ch)

    i = 0
    while i < n:
        c = data[i]
        if c == ord("&"):
            decoded, length = _decode_entity(data, i)
            if decoded is not None:
                append_char(decoded)
                i += length
                continue
        if c != ord("<"):
            if c & 0xC0 != 0x80:
                utf16 += 2 if c >= 0xF0 else 1
            out.append(c)
            i += 1
            continue
        begin = i
        i += 1
        if at(i) != ord("/"):
            while i < n and data[i] not in _SPACES and data[i] != ord(">"):
                i += 1
            if i >= n:
                raise HtmlParseError(f"Unclosed start tag at byte offset {begin}")
            tag = data[begin + 1:i].decode("utf-8", "replace").lower()
            if tag not in SUPPORTED_TAGS:
                raise HtmlParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
            attrs, i = _parse_attributes(data, i, tag, begin)
            i += 1  # the '>'
            if tag == "span" and attrs.get("class") != "tg-spoiler":
                raise HtmlParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
            stack.append(_Open(tag, utf16, attrs))
            continue
        # an end tag
        if not stack:
            raise HtmlParseError(f"Unexpected end tag at byte offset {begin}")
        i += 1
        name_start = i
        while i < n and data[i] not in _SPACES and data[i] != ord(">"):
            i += 1
        end_name = data[name_start:i].decode("utf-8", "replace").lower()
        while i < n and data[i] in _SPACES:
            i += 1
        if i >= n or data[i] != ord(">"):
            raise HtmlParseError(f"Unclosed end tag at byte offset {begin}")
        i += 1
        top = stack.pop()
        if end_name and end_name != top.tag:
            raise HtmlParseError(
                f'Unmatched end tag at byte offset {begin}, expected "</{top.tag}>", found "</{end_name}>"'
            )
        entity = _entity(top, utf16)
        if entity is not None:
            entities.append(entity)
    if stack:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    text = out.decode("utf-8")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise HtmlParseError(
            "Text contains invalid Unicode characters after decoding HTML entities, "
            "check for unmatched surrogate code units"
        )
    entities.sort(key=lambda e: (e["offset"], -int(e["length"])))  # type: ignore[arg-type]
    return text, entities


def _decode_entity(data: bytes, i: int) -> tuple[str | None, int]:
    """Decode ``&lt;``, ``&#1234;``, ``&#x1F600;`` at ``i``; the ``;`` is optional as in TDLib."""
    n = len(data)
    j = i + 1
    if j < n and data[j] == ord("#"):
        j += 1
        base = 10
        if j < n and data[j] in b"xX":
            base = 16
            j += 1
        digits_start = j
        allowed = b"0123456789abcdefABCDEF" if base == 16 else b"0123456789"
        while j < n and data[j] in allowed:
            j += 1
        if j == digits_start or j - digits_start > 8:
            return None, 0
        code = int(data[digits_start:j], base)
        if code == 0 or code > 0x10FFFF:
            return None, 0
        if j < n and data[j] == ord(";"):
            j += 1
        return chr(code), j - i
    name_start = j
    while j < n and chr(data[j]).isalpha() and data[j] < 0x80:
        j += 1
    decoded = _NAMED.get(data[name_start:j])
    if decoded is None:
        return None, 0
    if j < n and data[j] == ord(";"):
        j += 1
    return decoded, j - i


def _parse_attributes(data: bytes, i: int, tag: str, begin: int) -> tuple[dict[str, str], int]:
    """Read ``name=value`` pairs up to the closing ``>``; returns them and the index of ``>``."""
    n = len(data)
    attrs: dict[str, str] = {}
    while True:
        while i < n and data[i] in _SPACES:
            i += 1
        if i >= n:
            raise HtmlParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
        if data[i] == ord(">"):
            return attrs, i
        name_start = i
        while i < n and data[i] not in _SPACES and data[i] not in b"=>":
            i += 1
        name = data[name_start:i].decode("utf-8", "replace").lower()
        if not name:
            raise HtmlParseError(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
        while i < n and data[i] in _SPACES:
            i += 1
        if i >= n:
            raise HtmlParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
        if data[i] != ord("="):
            attrs[name] = ""
            continue
        i += 1
        while i < n and data[i] in _SPACES:
            i += 1
        if i >= n:
            raise HtmlParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
        if data[i] in b"\"'":
            quote = data[i]
            end = data.find(bytes([quote]), i + 1)
            if end < 0:
                raise HtmlParseError(f"Unclosed start tag at byte offset {begin}")
            raw = data[i + 1:end]
            i = end + 1
        else:
            value_start = i
            while i < n and data[i] in _NAME_TOKEN:
                i += 1
            if i >= n or (data[i] not in _SPACES and data[i] != ord(">")):
                raise HtmlParseError(f"Unexpected end of name token at byte offset {value_start}")
            raw = data[value_start:i]
        attrs[name] = _decode_value(raw)


def _decode_value(raw: bytes) -> str:
    parts: list[str] = []
    k = 0
    while k < len(raw):
        if raw[k] == ord("&"):
            decoded, length = _decode_entity(raw, k)
            if decoded is not None:
                parts.append(decoded)
                k += length
                continue
        start = k
        k += 1
        while k < len(raw) and raw[k] != ord("&"):
            k += 1
        parts.append(raw[start:k].decode("utf-8", "replace"))
    return "".join(parts)


def _entity(opened: _Open, end: int) -> dict[str, object] | None:
    length = end - opened.offset
    if length <= 0:
        return None
    kind = _ENTITY_TYPES[opened.tag]
    entity: dict[str, object] = {"type": kind, "offset": opened.offset, "length": length}
    if opened.tag == "a":
        href = opened.attrs.get("href")
        if not href:
            return None
        entity["url"] = href if "://" in href or href.startswith("tg:") else f"http://{href}/"
    elif opened.tag == "tg-emoji":
        entity["custom_emoji_id"] = opened.attrs.get("emoji-id", "")
    elif opened.tag == "pre" and opened.attrs.get("language"):
        entity["language"] = opened.attrs["language"]
    elif opened.tag == "blockquote" and "expandable" in opened.attrs:
        entity["type"] = "expandable_blockquote"
    return entity
