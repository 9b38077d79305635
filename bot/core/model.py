"""Platform-neutral messages exchanged between transports and the dialogue core.

Transports translate their platform's updates into :class:`Inbound` and render
:class:`Outbound` back; nothing below the transports imports a platform library.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NewType

Platform = NewType("Platform", str)
"""``"telegram"``, ``"matrix"`` or ``"console"``."""

Pseudonym = NewType("Pseudonym", str)
"""HMAC of ``platform:user_id``: the only identity the core and the database see."""

PromptId = NewType("PromptId", str)
"""Opaque nonce of one rendered prompt; a button press must name the current one."""


class InboundKind(enum.Enum):
    TEXT = "text"
    CHOICE = "choice"  # a button press (Telegram callback query)
    UNSUPPORTED = "unsupported"  # photo, voice, sticker, file, location...
    GONE = "gone"  # the person blocked the bot or deleted their account: stop sending there


@dataclass(frozen=True, slots=True)
class ChoiceRef:
    """What a pressed button carries: which prompt and which option index.

    Clients can forge it, so the core checks both against the stored dialog state.
    """

    prompt_id: str
    index: int


@dataclass(frozen=True, slots=True)
class Address:
    """Where to reply on a platform (chat id, room id). Encrypted whenever stored."""

    platform: Platform
    value: str


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message or button press from a person, as the core sees it.

    ``user_id`` is the raw platform id; the router turns it into a pseudonym at once
    and never stores or logs it.
    """

    platform: Platform
    user_id: str
    address: Address
    kind: InboundKind = InboundKind.TEXT
    text: str = ""
    choice: ChoiceRef | None = None
    language_hint: str | None = None  # e.g. Telegram's language_code
    event_id: str | None = None  # platform message id, for dedupe only; never stored raw
    in_staff_room: bool = False  # said in the staff room or staff chat, not in a private chat
    thread_root: str | None = None  # staff room: the platform id of the thread (or replied-to message) it answers

    def __post_init__(self) -> None:
        # A client can send text that is not valid Unicode (a lone surrogate, which JSON lets
        # through); it could be neither sealed nor stored. Made valid here, once, on entry.
        object.__setattr__(self, "text", valid_unicode(self.text))
        if self.language_hint is not None:
            object.__setattr__(self, "language_hint", valid_unicode(self.language_hint))


def valid_unicode(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD, and surrogate pairs joined into the
    character they stand for (everything else unchanged)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


@dataclass(frozen=True, slots=True)
class Choice:
    """One option of a prompt. ``key`` is stable, ``label`` is localized."""

    key: str
    label: str


class Direction(enum.Enum):
    LTR = "ltr"
    RTL = "rtl"


@dataclass(frozen=True, slots=True)
class Formatted:
    """One message already rendered for the recipient's platform: ``html`` in the markup that
    platform accepts (Telegram's HTML subset; Matrix's sanitised ``formatted_body``), ``text``
    the same without markup (Matrix's ``body``, the console). The renderer that made it has
    escaped everything and kept it within the platform's length limit."""

    text: str
    html: str


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message to one person: text plus optional choices.

    ``prompt_id`` is set when the choices belong to a dialog step, so transports can
    put it into button data. ``sensitive`` asks for ``protect_content`` where the
    platform offers it. ``formatted`` (rich text such as a bulletin) replaces ``text`` on
    platforms that show markup: its parts are sent in order, the choices go with the last.
    """

    text: str
    choices: tuple[Choice, ...] = ()
    prompt_id: PromptId | None = None
    direction: Direction = Direction.LTR
    sensitive: bool = False
    language: str = "en"
    image: bytes | None = None  # PNG, e.g. a results chart
    image_name: str = "image.png"
    numbered: bool = True  # False: where a typed number is an answer, choices are words, never numbered
    formatted: tuple[Formatted, ...] = ()
    thread_root: str | None = None  # platform id of a message to thread under, where threads exist


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a transport reports after sending: the platform's message id, if any."""

    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a transport can render; the core adapts prompts to it."""

    buttons: bool = False  # inline keyboards with callback data
    html: bool = False
    images: bool = False
    end_to_end_encrypted: bool = False
    max_text_length: int = 4096
    platform_reads_messages: bool = False  # Telegram: the operator can read bot chats
    flood_limited: bool = True  # False only for the operator's own console
    threads: bool = False  # Outbound.thread_root is honoured and Inbound.thread_root reported (Matrix)


@dataclass(slots=True)
class SendOptions:
    """Per-send options the outbox passes down: idempotency for Matrix, and whether the send is
    bulk, so a transport that paces sends lets interactive replies go first."""

    transaction_id: str | None = None
    bulk: bool = False
