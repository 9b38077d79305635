"""Pure mapping between Telegram objects and the core's messages (no I/O here).

Inbound: which chats are heard at all, what counts as text or as unsupported media, and
how button data is read (clients can forge it, so anything odd becomes a reference the
core rejects). Outbound: how a core message becomes one or more Telegram sends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from telegram import (
    CallbackQuery,
    Chat,
    ChatMember,
    ChatMemberUpdated,
    Message,
)
from telegram.constants import MessageAttachmentType

from bot.core.model import Address, ChoiceRef, Direction, Inbound, InboundKind, Outbound, Platform

TELEGRAM = Platform("telegram")
MAX_TEXT = 4096  # Telegram's limit for a message, counted conservatively in UTF-16 code units
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64  # bytes
RLM = "\u200f"
CHOSEN_MARK = "\u2713"  # shown before the chosen label when a keyboard is closed
INVALID_CHOICE = ChoiceRef("", -1)

# An opaque prompt id (printable ASCII without ':' or spaces), a colon, a small index.
_CALLBACK_DATA = re.compile(r"([!-9;-~]{1,56}):([0-9]{1,3})")


class CallbackDataTooLong(ValueError):
    """A prompt id so long that its buttons would exceed Telegram's 64-byte callback data."""


# ---------------------------------------------------------------------- inbound
class MalformedUpdate(ValueError):
    """An update whose fields are not what the Bot API documents: skipped, never half-read."""


# Media and the like: the bot reads none of it (PTB's list, so a new kind is not taken for text).
_ATTACHMENTS = frozenset(kind.value for kind in MessageAttachmentType)


def accepts_chat(chat_id: int, chat_type: str, staff_chat_id: int | None) -> bool:
    """Private chats always; a group only if it is the configured staff group."""
    if chat_type == Chat.PRIVATE:
        return True
    return staff_chat_id is not None and chat_id == staff_chat_id and chat_type in (Chat.GROUP, Chat.SUPERGROUP)


def inbound_from_message(message: Any, staff_chat_id: int | None) -> Inbound | None:
    """Map a new message, as the Bot API sends it (JSON), or ``None`` for what the bot must not
    react to. Read from the JSON, not from PTB's objects: every message is read once, and PTB's
    object graph cost more than the rest of the mapping; the fields are checked here instead.
    Raises :class:`MalformedUpdate` for a message that does not have the documented shape.

    In the staff group only commands reach the core: staff talk among themselves there,
    and their photos or chatter are none of the bot's business.
    """
    message = _object(message)
    chat = _object(message.get("chat"))
    chat_id, chat_type = _integer(chat.get("id")), chat.get("type")
    message_id = _integer(message.get("message_id"))
    sender = message.get("from")
    if sender is None:  # a channel post or the like: nobody to answer
        return None
    sender = _object(sender)
    user_id = _integer(sender.get("id"))
    if sender.get("is_bot") is not False or not isinstance(chat_type, str) \
            or not accepts_chat(chat_id, chat_type, staff_chat_id):
        return None
    in_group = chat_type != Chat.PRIVATE
    text = message.get("text")
    if text is not None:
        if not isinstance(text, str):
            raise MalformedUpdate("text")
        if in_group and not text.startswith("/"):
            return None
        kind = InboundKind.TEXT
    elif not in_group and not _ATTACHMENTS.isdisjoint(message):
        kind, text = InboundKind.UNSUPPORTED, ""  # nothing of it is read, downloaded or kept
    else:
        return None  # service messages (pins, joins...) and staff-group media
    language = sender.get("language_code")
    return Inbound(
        platform=TELEGRAM,
        user_id=str(user_id),
        address=Address(TELEGRAM, str(chat_id)),
        kind=kind,
        text=text,
        language_hint=language if isinstance(language, str) else None,
        event_id=f"{chat_id}:{message_id}",
        in_staff_room=in_group,
    )


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedUpdate("not an object")
    return value


def _integer(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedUpdate("not an integer")
    return value


def inbound_from_member_update(update: ChatMemberUpdated) -> Inbound | None:
    """A private chat's member update saying the person blocked the bot: nothing more can reach them."""
    if update.chat.type != Chat.PRIVATE or update.new_chat_member.status != ChatMember.BANNED:
        return None
    return Inbound(
        platform=TELEGRAM,
        user_id=str(update.from_user.id),
        address=Address(TELEGRAM, str(update.chat.id)),
        kind=InboundKind.GONE,
    )


def inbound_from_callback(query: CallbackQuery, staff_chat_id: int | None) -> Inbound | None:
    """Map a button press; the data is parsed defensively into a :class:`ChoiceRef`."""
    message = query.message
    if message is None or query.from_user.is_bot or not accepts_chat(message.chat.id, message.chat.type,
                                                                     staff_chat_id):
        return None
    return Inbound(
        platform=TELEGRAM,
        user_id=str(query.from_user.id),
        address=Address(TELEGRAM, str(message.chat.id)),
        kind=InboundKind.CHOICE,
        choice=parse_callback_data(query.data),
        language_hint=query.from_user.language_code,
        event_id=f"cb:{query.id}",
        in_staff_room=message.chat.type != Chat.PRIVATE,
    )


def parse_callback_data(data: str | None) -> ChoiceRef:
    """``"<prompt_id>:<index>"`` -> ChoiceRef; anything malformed or oversized -> ``("", -1)``."""
    if not data or len(data.encode("utf-8", "surrogatepass")) > MAX_CALLBACK_DATA:
        return INVALID_CHOICE
    match = _CALLBACK_DATA.fullmatch(data)
    if match is None:
        return INVALID_CHOICE
    return ChoiceRef(match.group(1), int(match.group(2)))


def chosen_label(message: Message, data: str | None) -> str | None:
    """The label of the button carrying ``data`` in the message's own keyboard, if any.

    Forged data matches no button, so nothing is shown for it.
    """
    markup = message.reply_markup
    if data is None or markup is None:
        return None
    for row in markup.inline_keyboard:
        for button in row:
            if button.callback_data == data:
                return button.text
    return None


def closed_prompt_text(original: str, label: str) -> str | None:
    """The prompt's text followed by the chosen label, or None if that would be too long."""
    mark = RLM if original.startswith(RLM) else ""
    text = f"{original}\n\n{mark}{CHOSEN_MARK} {label}"
    return text if utf16_len(text) <= MAX_TEXT else None


# ---------------------------------------------------------------------- outbound
@dataclass(frozen=True, slots=True)
class Part:
    """One Telegram send: a text message, or a photo with an optional caption."""

    text: str
    keyboard: dict[str, Any] | None = None
    """The Bot API's ``InlineKeyboardMarkup`` as JSON (it goes into the request as it is)."""
    image: bytes | None = None
    image_name: str = "image.png"
    html: bool = False  # ``text`` is Telegram HTML, escaped by the core's renderer


def callback_data(prompt_id: str | None, index: int) -> str:
    data = f"{prompt_id or ''}:{index}"
    if len(data.encode("utf-8")) > MAX_CALLBACK_DATA:
        raise CallbackDataTooLong("callback data would exceed 64 bytes")
    return data


def keyboard(message: Outbound) -> dict[str, Any] | None:
    """One button per row: labels are long in some languages and must stay readable."""
    if not message.choices:
        return None
    return {"inline_keyboard": [[{"text": choice.label, "callback_data": callback_data(message.prompt_id, index)}]
                                for index, choice in enumerate(message.choices)]}


def render(message: Outbound) -> list[Part]:
    """Split a core message into Telegram sends; the keyboard goes on the last one.

    Right-to-left text gets a RIGHT-TO-LEFT MARK at the start of every line, because
    Telegram clients pick each paragraph's direction from its first strong character,
    which may be a Latin name or a digit.
    """
    markup = keyboard(message)
    if message.formatted:  # rendered by the core for Telegram: already escaped and within the limit
        html_parts = [Part(part.html, html=True) for part in message.formatted]
        html_parts[-1] = Part(html_parts[-1].text, markup, html=True)
        return html_parts
    rtl = message.direction is Direction.RTL
    chunks = split_text(message.text, MAX_TEXT - 1 if rtl else MAX_TEXT)
    if rtl:
        chunks = [mark_rtl(chunk) for chunk in chunks]
    parts: list[Part] = []
    if message.image is not None:
        caption = ""
        if len(chunks) == 1 and utf16_len(chunks[0]) <= MAX_CAPTION:
            caption = chunks.pop()
        parts.append(Part(caption, image=message.image, image_name=message.image_name))
    parts.extend(Part(chunk) for chunk in chunks)
    if not parts:
        return []
    last = parts[-1]
    parts[-1] = Part(last.text, markup, last.image, last.image_name)
    return parts


def mark_rtl(text: str) -> str:
    return "\n".join(line if line.startswith(RLM) else RLM + line for line in text.split("\n"))


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split on paragraph boundaries, then lines, then spaces, then anywhere.

    Each piece fits ``limit`` UTF-16 code units (what Telegram counts, conservatively);
    surrounding blank lines are dropped as Telegram would drop them anyway.
    """
    text = text.strip()
    if not text:
        return []
    if utf16_len(text) <= limit:
        return [text]
    return [chunk for chunk in (c.strip() for c in _pack(text, limit, ("\n\n", "\n", " "))) if chunk]


def _pack(text: str, limit: int, separators: tuple[str, ...]) -> Iterator[str]:
    if utf16_len(text) <= limit:
        yield text
        return
    if not separators:
        yield from _hard_cut(text, limit)
        return
    separator, finer = separators[0], separators[1:]
    current = ""
    for piece in text.split(separator):
        candidate = f"{current}{separator}{piece}" if current else piece
        if utf16_len(candidate) <= limit:
            current = candidate
            continue
        if current:
            yield current
        if utf16_len(piece) <= limit:
            current = piece
        else:
            yield from _pack(piece, limit, finer)
            current = ""
    if current:
        yield current


def _hard_cut(text: str, limit: int) -> Iterator[str]:
    current: list[str] = []
    size = 0
    for char in text:
        width = 2 if ord(char) > 0xFFFF else 1
        if size + width > limit:
            yield "".join(current)
            current, size = [], 0
        current.append(char)
        size += width
    if current:
        yield "".join(current)
