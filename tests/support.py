"""Test harness: the real dialogue core on a real database, driven through an in-process transport.

``RecordingTransport`` is a genuine Transport implementation (not a mock) that keeps what
the bot sends, so tests can read it like a person would.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.app import Bot, running
from bot.config import (
    CheckinSettings,
    DatabaseSettings,
    SecuritySettings,
    Settings,
    StaffSettings,
    SurveySettings,
)
from bot.conversation.feature import Clock, Feature
from bot.core.model import (
    Address,
    Capabilities,
    ChoiceRef,
    Delivery,
    Inbound,
    InboundKind,
    Outbound,
    Platform,
    SendOptions,
)
from bot.core.security import KeyRing
from bot.core.transport import InboundHandler

SURVEYS_DIR = Path(__file__).resolve().parent.parent / "config" / "surveys"
CHECKINS_DIR = Path(__file__).resolve().parent.parent / "config" / "checkins"
POSTGRES_ADMIN_URL = os.environ.get("CIVICBOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class RecordingTransport:
    """Keeps every message per address; optionally fails sends to exercise the outbox."""

    platform: Platform = Platform("console")
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(buttons=True))
    sent: dict[str, list[Outbound]] = field(default_factory=dict)
    send_log: list[tuple[str, Outbound, SendOptions | None]] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)
    rate_per_second: float = 1000.0
    paces_sends: bool = False
    failure: BaseException | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    edits: list[tuple[str, str, Outbound]] = field(default_factory=list)

    async def start(self, on_inbound: InboundHandler) -> None:
        self.handler = on_inbound

    async def stop(self) -> None:
        self.ended.set()

    async def wait_stopped(self) -> None:
        await self.ended.wait()

    async def send(self, address: Address, message: Outbound, options: SendOptions | None = None) -> Delivery:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.setdefault(address.value, []).append(message)
        self.send_log.append((address.value, message, options))
        progress, self.progress = self.progress, asyncio.Event()
        progress.set()
        return Delivery(message_id=str(len(self.send_log)))

    async def wait_sent(self, count: int, timeout: float = 10.0) -> None:
        """Until ``count`` messages were sent in all."""
        async def reached() -> None:
            while len(self.send_log) < count:
                await self.progress.wait()

        await asyncio.wait_for(reached(), timeout)

    async def edit(self, address: Address, message_id: str, message: Outbound) -> Delivery:
        """Replaces the earlier message in place, as a platform would, and keeps the edit."""
        self.edits.append((address.value, message_id, message))
        index = int(message_id) - 1
        if 0 <= index < len(self.send_log) and self.send_log[index][0] == address.value:
            original = self.send_log[index][1]
            inbox = self.sent[address.value]
            inbox[inbox.index(original)] = message
            self.send_log[index] = (address.value, message, self.send_log[index][2])
        return Delivery(message_id=message_id)


@dataclass
class Person:
    """A simulated user of one platform."""

    chat: Chat
    user_id: str
    language_hint: str | None = None

    @property
    def address(self) -> Address:
        return Address(self.chat.transport.platform, f"chat-{self.user_id}")

    @property
    def inbox(self) -> list[Outbound]:
        return self.chat.transport.sent.get(self.address.value, [])

    @property
    def last(self) -> Outbound:
        return self.inbox[-1]

    @property
    def last_prompt(self) -> Outbound:
        return next(m for m in reversed(self.inbox) if m.choices)

    async def send(self, text: str) -> list[Outbound]:
        return await self._deliver(Inbound(self.chat.transport.platform, self.user_id, self.address, text=text,
                                           language_hint=self.language_hint))

    async def press(self, label_or_index: str | int, *, prompt_id: str | None = None) -> list[Outbound]:
        """Press a button of the latest prompt, as a Telegram client would."""
        prompt = self.last_prompt
        index = label_or_index if isinstance(label_or_index, int) else \
            [c.label for c in prompt.choices].index(label_or_index)
        ref = ChoiceRef(prompt_id if prompt_id is not None else str(prompt.prompt_id), index)
        return await self._deliver(Inbound(self.chat.transport.platform, self.user_id, self.address,
                                           kind=InboundKind.CHOICE, choice=ref, language_hint=self.language_hint))

    async def send_media(self) -> list[Outbound]:
        return await self._deliver(Inbound(self.chat.transport.platform, self.user_id, self.address,
                                           kind=InboundKind.UNSUPPORTED))

    async def _deliver(self, inbound: Inbound) -> list[Outbound]:
        before = len(self.inbox)
        await self.chat.bot.router.handle(inbound)
        return self.inbox[before:]


@dataclass
class Chat:
    bot: Bot
    transport: RecordingTransport

    def person(self, user_id: str, language_hint: str | None = None) -> Person:
        return Person(self, user_id, language_hint)


def make_settings(db_url: str, tmp_path: Path, staff: list[str] | None = None, **sections: object) -> Settings:
    sections.setdefault("surveys", SurveySettings(directory=SURVEYS_DIR))
    sections.setdefault("checkins", CheckinSettings(directory=CHECKINS_DIR))
    return Settings(
        database=DatabaseSettings(url=db_url),
        security=SecuritySettings(key_file=tmp_path / "keys.json"),
        staff=StaffSettings(members=staff or []),
        **sections,  # type: ignore[arg-type]
    )


class MovedClock:
    """The time of the timed features in a test: starts where the test says, moves when it says."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, when: dt.datetime) -> None:
        self.now = when

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


@asynccontextmanager
async def open_chat(settings: Settings, keys: KeyRing, transport: RecordingTransport | None = None,
                    features: Iterable[Feature] | None = None, clock: Clock | None = None) -> AsyncIterator[Chat]:
    """A bot instance on the settings' database, wired as ``civicbot run`` wires it (outbox senders
    and scheduler not running: tests drain the outbox when they mean to). Open it twice on one
    database to simulate a restart. ``clock``: the time of the timed features (check-ins)."""
    recording = transport or RecordingTransport()
    async with running(settings, keys=keys, transports=lambda services: [recording],
                       features=with_clock(clock, features), upgrade=True, senders=False) as bot:
        yield Chat(bot, recording)


def with_clock(clock: Clock | None, features: Iterable[Feature] | None = None) -> Iterable[Feature] | None:
    """The features (default: all), with check-ins on ``clock``."""
    if clock is None:
        return features
    from bot.checkins.feature import checkins_feature
    from bot.features import FEATURES

    return tuple(checkins_feature(clock) if f.name == "checkins" else f for f in features or FEATURES)


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    import asyncpg

    name = f"civicbot_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncio.wait_for(asyncpg.connect(POSTGRES_ADMIN_URL), timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def postgres_reachable() -> str | None:
    """None when reachable, else the reason (shown as the skip reason)."""
    try:
        import asyncpg

        conn = await asyncio.wait_for(asyncpg.connect(POSTGRES_ADMIN_URL), timeout=3)
        await conn.close()
        return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL.split('@')[-1]}: {type(exc).__name__}"


async def store_anonymous_answers(services: Any) -> int:
    """What the survey-ballots job does over time, at once: hand finished anonymous answers off
    into the ballot box, then store the box, however small (tests answer one at a time)."""
    from bot.surveys.service import Surveys

    surveys = services.get(Surveys)
    await surveys.hand_off(services.database)
    return int(await surveys.store_ballots(services.database, min_batch=1))


async def check_families_response(session: Any, surveys: Any, comment: str) -> dict[str, str]:
    """The scripted path through the families survey, as every platform's test answers it:
    stored anonymously (no participant, no date), options as chosen, the comment sealed.
    Returns the single exported CSV row (free text decrypted there only)."""
    import csv
    import io

    from sqlalchemy import select

    from bot.storage.models import SurveyAnswer, SurveyInvitation, SurveyResponse
    from bot.surveys import export as survey_export

    responses = list(await session.scalars(select(SurveyResponse)))
    assert len(responses) == 1
    response = responses[0]
    assert response.participant_id is None and response.submitted_on is None
    by_question: dict[str, list[object]] = {}
    for a in await session.scalars(select(SurveyAnswer).where(SurveyAnswer.response_id == response.id)):
        by_question.setdefault(a.question_id, []).append(a.option_id or a.number_value or a.text_enc)
    assert by_question["relation"] == ["spouse"] and "missing-since" not in by_question
    assert by_question["reported"] == ["yes"] and by_question["reported-to"] == ["authorities"]
    assert sorted(by_question["needs"]) == ["documents", "financial", "legal"]  # type: ignore[type-var]
    assert by_question["trust"] == ["4"] and by_question["household"] == [5]
    assert by_question["updates"] == ["this-bot"]
    sealed = by_question["comment"][0]
    assert isinstance(sealed, bytes) and comment.encode() not in sealed
    completed = list(await session.scalars(select(SurveyInvitation).where(SurveyInvitation.status == "completed")))
    assert len(completed) == 1 and completed[0].progress_enc is None

    header, rows = await survey_export.response_table(session, surveys, surveys.definition("families-of-the-missing"))
    table = list(csv.DictReader(io.StringIO(survey_export.to_csv(header, rows).decode("utf-8-sig"))))
    assert len(table) == 1
    row = table[0]
    assert row["comment"] == comment and row["needs"] == "documents;financial;legal" and row["submitted_on"] == ""
    return row


async def register_for_process(env: dict[str, str], people: Iterable[tuple[str, str, str, str]]) -> None:
    """People who onboarded earlier, registered straight into the database that a ``civicbot run``
    process started with ``env`` uses: (platform, user id, address, language) each."""
    from bot.app import build_services
    from bot.config import load_settings
    from bot.core.model import Address, Platform
    from bot.storage import migrate
    from bot.storage.db import Database

    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith("CIVICBOT_")})
    try:
        settings = load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    database = Database(settings.database.url)
    try:
        await migrate.upgrade(database)
        services = build_services(settings, database, KeyRing.load(settings.security.key_file))
        async with database.sessions.begin() as session:
            for platform, user_id, address, language in people:
                await services.participants.register(session, services.keys.pseudonym(platform, user_id), language,
                                                     Address(Platform(platform), address))
    finally:
        await database.dispose()


class CountingQueue:
    """Stands in for an aiosqlite connection's queue to its thread, counting what is put on it
    (``driver._tx = CountingQueue(driver._tx)``): each item is one trip to that thread."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.trips = 0

    def put_nowait(self, item: Any) -> None:
        self.trips += 1
        self.queue.put_nowait(item)
