"""Harness for contact requests: the real core on a real database, with a Telegram-like and a
Matrix-like in-process transport (``RecordingTransport``), a staff room and a staff chat.

People write on the "telegram" transport (the platform can read the chat), staff read the
"matrix" staff room (end-to-end encrypted, threads) and the "telegram" staff chat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.app import Bot, running
from bot.cases.crypto import StaffPrivateKey
from bot.cases.service import CaseService
from bot.config import ContactsSettings, LimitsSettings, Settings, StaffSettings
from bot.core.model import Address, Capabilities, Inbound, Outbound, Platform
from bot.core.security import KeyRing
from tests.support import Chat, Person, RecordingTransport, make_settings

STAFF_ROOM = "!staffroom:example.org"
STAFF_CHAT = -1001234
ALICE = "@alice:example.org"  # staff on Matrix
TELEGRAM_STAFF = "555"  # staff on Telegram
ISOLATES = str.maketrans("", "", "\u2068\u2069")


def plain(text: str) -> str:
    return text.translate(ISOLATES)


def telegram_like() -> RecordingTransport:
    return RecordingTransport(platform=Platform("telegram"), capabilities=Capabilities(
        buttons=True, max_text_length=4096, platform_reads_messages=True))


def matrix_like() -> RecordingTransport:
    return RecordingTransport(platform=Platform("matrix"), capabilities=Capabilities(
        end_to_end_encrypted=True, max_text_length=16_000, threads=True))


def case_settings(db_url: str, tmp_path: Path, private: StaffPrivateKey | None, **contacts: Any) -> Settings:
    settings = make_settings(db_url, tmp_path, limits=LimitsSettings(flood_messages=10_000))
    staff = StaffSettings(members=[f"matrix:{ALICE}", f"telegram:{TELEGRAM_STAFF}"], matrix_room=STAFF_ROOM,
                          telegram_chat=STAFF_CHAT)
    key = private.public.text if private is not None else None
    return settings.model_copy(update={"staff": staff,
                                       "contacts": ContactsSettings(staff_public_key=key, **contacts)})


@dataclass
class CaseWorld:
    bot: Bot
    telegram: RecordingTransport
    matrix: RecordingTransport
    private: StaffPrivateKey | None
    people: Chat = field(init=False)
    matrix_people: Chat = field(init=False)

    def __post_init__(self) -> None:
        self.people = Chat(self.bot, self.telegram)
        self.matrix_people = Chat(self.bot, self.matrix)

    @property
    def services(self) -> Any:
        return self.bot.services

    @property
    def cases(self) -> CaseService:
        return self.bot.services.get(CaseService)

    @property
    def room(self) -> list[Outbound]:
        return self.matrix.sent.get(STAFF_ROOM, [])

    @property
    def chat(self) -> list[Outbound]:
        return self.telegram.sent.get(str(STAFF_CHAT), [])

    def room_event_id(self, text_part: str) -> str:
        """The platform id the transport returned for the staff-room message containing ``text_part``."""
        for index, (address, message, _) in enumerate(self.matrix.send_log, start=1):
            if address == STAFF_ROOM and text_part in plain(message.text):
                return str(index)
        raise AssertionError(f"no staff-room message with {text_part!r}")

    async def deliver(self) -> None:
        """Drain every outbox, as the running senders would."""
        for _ in range(5):
            handled = 0
            for sender in self.bot.senders.values():
                handled += (await sender.drain_once()).handled
            if not handled:
                return

    async def staff_in_room(self, text: str, thread_root: str | None = None, user: str = ALICE) -> list[Outbound]:
        """A message in the Matrix staff room (a reply in a thread when ``thread_root`` is given)."""
        before = len(self.room)
        await self.bot.router.handle(Inbound(Platform("matrix"), user, Address(Platform("matrix"), STAFF_ROOM),
                                             text=text, in_staff_room=True, thread_root=thread_root))
        return self.room[before:]

    async def staff_in_chat(self, text: str, user: str = TELEGRAM_STAFF) -> list[Outbound]:
        before = len(self.chat)
        await self.bot.router.handle(Inbound(Platform("telegram"), user,
                                             Address(Platform("telegram"), str(STAFF_CHAT)), text=text,
                                             in_staff_room=True))
        return self.chat[before:]


@asynccontextmanager
async def case_world(settings: Settings, keys: KeyRing, private: StaffPrivateKey | None,
                     clock: Any = None) -> AsyncIterator[CaseWorld]:
    telegram, matrix = telegram_like(), matrix_like()
    async with running(settings, keys=keys, transports=lambda services: [telegram, matrix], upgrade=True,
                       senders=False) as bot:
        if clock is not None:
            bot.services.get(CaseService)._clock = clock  # noqa: SLF001 - a moved clock for service-level tests
        yield CaseWorld(bot, telegram, matrix, private)


async def onboard(person: Person) -> None:
    await person.send("/start")
    await person.press("English")
    await person.press("I agree")
    await person.press("Skip")


async def request_contact(person: Person, description: str = "", topic: str = "Ask for a meeting",
                          way: str = "By message, here", when: str = "Evenings") -> str:
    """The whole /contact dialog; returns the reference from the receipt."""
    await person.send("/contact")
    if person.last.choices and person.last.choices[0].key == "continue":
        await person.press("Continue here")
    await person.press(topic)
    if description:
        await person.send(description)
    else:
        await person.press("Skip")
    await person.press(way)
    if when in ("Any time", "Mornings", "Afternoons", "Evenings"):
        await person.press(when)
    else:
        await person.send(when)
    await person.press("Send")
    receipt = plain(person.last.text)
    assert receipt.startswith("Your request has been sent to staff."), receipt
    return receipt.split("Your reference is ")[1].split(".")[0]
