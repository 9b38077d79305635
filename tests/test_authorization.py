"""Who may do what, as a table (issue 13, "adversarial tests").

Every command of every feature (read from the features' command table, so a new command is in
the table the day it is added) × role (a person the bot does not know, a registered participant,
staff) × place (Telegram private chat, the Telegram staff group, a Matrix direct chat, the Matrix
staff room, the operator's console). A staff command, and each of its verbs, from anyone but staff
gets the very answer an unknown command gets, and changes nothing: no audit entry, no row, no
dialog step. Staff get each command handled wherever they use it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from telegram import Chat as TelegramChat
from telegram import Message, User

from bot.app import Bot
from bot.app import running as run_bot
from bot.cases.crypto import StaffPrivateKey
from bot.config import ContactsSettings, LimitsSettings, Settings, StaffSettings
from bot.conversation.commands import Command
from bot.core.model import Address, Inbound, Outbound, Platform
from bot.core.notices import INTERNAL_ERROR, UNKNOWN_COMMAND
from bot.core.security import KeyRing
from bot.features import FEATURES as DECLARED
from bot.transports.telegram_mapping import inbound_from_message
from tests.router_fuzz_support import Checkpoints, snapshot
from tests.support import Person, RecordingTransport, make_settings

# Every capability on, contact requests included (they need the staff team's public key): the
# table covers the commands of the features this configuration enables.
CONTACTS = ContactsSettings(staff_public_key=StaffPrivateKey.generate().public.text)
FEATURES = tuple(f for f in DECLARED if f.enabled(Settings().model_copy(update={"contacts": CONTACTS})))

STAFF_CHAT = -100777
STAFF_ROOM = "!staff:example.org"
STAFF_IDS = {"telegram": "900", "matrix": "@boss:example.org", "console": "coordinator"}
PARTICIPANT_IDS = {"telegram": "501", "matrix": "@amal:example.org", "console": "amal"}
UNKNOWN_IDS = {"telegram": "777", "matrix": "@stranger:example.org", "console": "stranger"}
LANGUAGES = {"ar": "1", "ckb": "2", "ku": "3", "en": "4"}


@dataclass(frozen=True)
class Place:
    name: str
    platform: str
    staff_space: bool  # the staff group or room, not a person's own chat

    def inbound(self, user_id: str, text: str, serial: int) -> Inbound:
        if self.platform == "telegram":  # through the transport's own mapping, from a Bot API message
            chat = TelegramChat(STAFF_CHAT, TelegramChat.SUPERGROUP) if self.staff_space \
                else TelegramChat(int(user_id), TelegramChat.PRIVATE)
            message = Message(serial, dt.datetime.now(dt.UTC), chat, from_user=User(int(user_id), "X", False),
                              text=text)
            inbound = inbound_from_message(message.to_dict(), STAFF_CHAT)  # as the Bot API sends it
            assert inbound is not None
            return inbound
        if self.platform == "matrix":
            room = STAFF_ROOM if self.staff_space else f"!dm-{user_id.strip('@').split(':')[0]}:example.org"
            return Inbound(Platform("matrix"), user_id, Address(Platform("matrix"), room), text=text,
                           event_id=f"$event{serial}", in_staff_room=self.staff_space)
        return Inbound(Platform("console"), user_id, Address(Platform("console"), f"chat-{user_id}"), text=text)


PLACES = (Place("Telegram private chat", "telegram", False), Place("Telegram staff group", "telegram", True),
          Place("Matrix direct chat", "matrix", False), Place("Matrix staff room", "matrix", True),
          Place("console", "console", False))
SAMPLES = {"organisation": "families", "association": "families", "group": "fg", "survey": "families-of-the-missing",
           "code": "neworg", "kind": "association", "name": "New Org", "reference": "p1", "id": "note",
           "audience": "all", "time": "2030-01-01T10:00"}


def forms(command: Command) -> list[str]:
    """The command bare and with each of its staff verbs, placeholders filled with real-looking values."""
    usage = command.usage if command.staff_only else command.staff_usage
    lines = [f"/{command.name}"]
    for line in usage:
        args = re.sub(r"\[[^\]]*\]", "", line.args)
        args = re.sub(r"<([a-z]+)>", lambda m: SAMPLES.get(m.group(1), "x"), args)
        args = re.sub(r"(\w+)\|[\w|]+", r"\1", args)
        lines.append(" ".join(f"/{command.name} {args}".split()))
    return list(dict.fromkeys(lines))


def staff_forms() -> list[tuple[str, str]]:
    """(form, the form a non-staff person's answer must equal): a staff-only command answers like an
    unknown command; a command everyone has whose verbs only staff have answers like itself, bare."""
    pairs = []
    for command in (c for f in FEATURES for c in f.commands):
        if command.staff_only:
            pairs += [(form, "/nosuchcommand") for form in forms(command)]
        elif command.staff_usage:
            pairs += [(form, f"/{command.name}") for form in forms(command)[1:]]
    return pairs


class Table:
    def __init__(self, bot: Bot, transports: dict[str, RecordingTransport], database: Path, keys: KeyRing) -> None:
        self.bot, self.transports, self.database, self.keys = bot, transports, database, keys
        self.serial = 1000
        i18n = bot.services.i18n
        self.failed = {i18n.translator(code)._(INTERNAL_ERROR) for code in LANGUAGES}
        self.unknown = {i18n.translator(code)._(UNKNOWN_COMMAND) for code in LANGUAGES}
        self.points: Checkpoints
        self.start: Any = None

    async def say(self, place: Place, user_id: str, text: str) -> list[Outbound]:
        self.serial += 1
        inbound = place.inbound(user_id, text, self.serial)
        transport = self.transports[place.platform]
        before = len(transport.send_log)
        await self.bot.router.handle(inbound)
        replies = [m for address, m, _ in transport.send_log[before:] if address == inbound.address.value]
        assert not [r for r in replies if r.text in self.failed], (place.name, text)
        return replies


async def build(tmp_path: Path, keys: KeyRing) -> tuple[Any, Table]:
    database = tmp_path / "civicbot.db"
    settings = make_settings(f"sqlite+aiosqlite:///{database}", tmp_path, limits=LimitsSettings(flood_messages=100_000))
    settings = settings.model_copy(update={"contacts": CONTACTS, "staff": StaffSettings(
        members=[f"{p}:{u}" for p, u in STAFF_IDS.items()], matrix_room=STAFF_ROOM, telegram_chat=STAFF_CHAT)})
    transports = {p: RecordingTransport(platform=Platform(p)) for p in ("telegram", "matrix", "console")}
    opened = run_bot(settings, keys=keys, transports=lambda services: list(transports.values()),
                     upgrade=True, senders=False)
    t = Table(await opened.__aenter__(), transports, database, keys)
    console = PLACES[4]
    for line in ("/org add families association Families", "/group add fg focus_group families"):
        await t.say(console, STAFF_IDS["console"], line)
    for place in (p for p in PLACES if not p.staff_space):  # one registered participant per platform
        code = re.search(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}",
                         (await t.say(console, STAFF_IDS["console"], "/invite families fg"))[0].text)
        assert code
        for step in ("/start", LANGUAGES["en"], "1", code.group(0), "2"):
            await t.say(place, PARTICIPANT_IDS[place.platform], step)
    (tmp_path / "points").mkdir()
    t.points = Checkpoints(database, tmp_path / "points")
    t.start = t.points.take("registered", Person(None, ""), "en")  # type: ignore[arg-type]
    return opened, t


@pytest.fixture(scope="module")
def authz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.AbstractEventLoop, Table]]:
    """One bot for the whole table; every cell starts from the same database (restored)."""
    loop = asyncio.new_event_loop()
    opened, t = loop.run_until_complete(build(tmp_path_factory.mktemp("authz"), KeyRing.generate()))
    try:
        yield loop, t
    finally:
        loop.run_until_complete(opened.__aexit__(None, None, None))
        loop.close()


def test_the_table_covers_every_staff_command_and_verb() -> None:
    staff_only = {c.name for f in FEATURES for c in f.commands if c.staff_only}
    assert {"org", "group", "invite", "survey", "results", "bulletin", "checkins", "whoami"} <= staff_only
    covered = {form.split()[0][1:] for form, _ in staff_forms()}
    assert staff_only | {"checkin"} <= covered
    assert "/checkin schedule families --every 14d --at 10:00 --tz Asia/Damascus" in [f for f, _ in staff_forms()]


CELLS = [pytest.param(role, place, id=f"{role}-{place.name}")
         for role in ("unknown person", "registered participant") for place in PLACES]


@pytest.mark.parametrize(("role", "place"), CELLS)
def test_staff_commands_from_anyone_else_are_unknown_and_change_nothing(
        role: str, place: Place, authz: tuple[asyncio.AbstractEventLoop, Table]) -> None:
    loop, t = authz
    t.points.restore(t.start)
    user = (UNKNOWN_IDS if role == "unknown person" else PARTICIPANT_IDS)[place.platform]

    async def cell() -> list[str]:
        before = snapshot(t.database, t.keys)
        expected = {f"/{c.name}": [r.text for r in await t.say(place, user, f"/{c.name}")]
                    for f in FEATURES for c in f.commands if c.staff_usage and not c.staff_only}
        expected["/nosuchcommand"] = [r.text for r in await t.say(place, user, "/nosuchcommand")]
        if place.staff_space:  # where colleagues read along, only staff are answered (issue 13, item 4)
            assert expected["/nosuchcommand"] == []
        else:
            assert expected["/nosuchcommand"] and expected["/nosuchcommand"][0] in t.unknown
        problems = []
        if snapshot(t.database, t.keys) != before:
            problems.append(f"{place.name}: an unknown command changed the database")
            before = snapshot(t.database, t.keys)
        for form, like in staff_forms():
            answer = [r.text for r in await t.say(place, user, form)]
            if answer != expected[like]:
                problems.append(f"{place.name}: {form!r} answered {answer[:1]!r}, not like {like}")
            if snapshot(t.database, t.keys) != before:
                problems.append(f"{place.name}: {form!r} changed the database")
                before = snapshot(t.database, t.keys)
        return problems

    problems = loop.run_until_complete(cell())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("place", PLACES, ids=lambda p: p.name)
def test_staff_have_every_command_handled(place: Place, authz: tuple[asyncio.AbstractEventLoop, Table]) -> None:
    loop, t = authz
    t.points.restore(t.start)

    async def cell() -> list[str]:
        problems = []
        for command in (c for f in FEATURES for c in f.commands):
            if command.name in ("delete_me", "start"):
                continue  # dialogs of their own, not permissions
            for form in forms(command)[:2]:
                answer = await t.say(place, STAFF_IDS[place.platform], form)
                if not answer or answer[0].text in t.unknown:
                    problems.append(f"{place.name}: {form!r} -> {answer[:1]!r}")
        return problems

    problems = loop.run_until_complete(cell())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("place", PLACES, ids=lambda p: p.name)
def test_public_commands_answer_everyone_in_their_own_chat(place: Place, authz: tuple[asyncio.AbstractEventLoop, Table]) -> None:
    loop, t = authz
    t.points.restore(t.start)

    async def cell() -> list[str]:
        problems = []
        for ids in (UNKNOWN_IDS, PARTICIPANT_IDS):
            for command in (c for f in FEATURES for c in f.commands if not c.staff_only):
                answer = await t.say(place, ids[place.platform], f"/{command.name}")
                if place.staff_space:  # a person's conversation never happens where colleagues read along
                    if answer:
                        problems.append(f"{place.name}: /{command.name} answered a non-staff member there")
                elif not answer or answer[0].text in t.unknown:
                    problems.append(f"{place.name}: /{command.name} -> {answer[:1]!r}")
                await t.say(place, ids[place.platform], "/cancel")
        return problems

    problems = loop.run_until_complete(cell())
    assert not problems, "\n".join(problems)
