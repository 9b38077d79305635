"""Property tests over the router (issue 13, "adversarial tests").

Real dialogs are driven to every step (onboarding, the menu, a survey's pick and introduction and
each question type, the bulletin reader, the language choice, erasure's confirmation, a check-in
offer and its questions) in every language, over a real SQLite file; each step is kept as a
whole-database checkpoint. From each, generated events (text with control characters, lone
surrogates, bidi overrides, very long text, commands with junk, forged and stale buttons, media,
"gone") must give no unhandled error, an answer in the person's language, and, for forged
buttons, no change at all.

``HYPOTHESIS_PROFILE=router-thorough`` runs many more examples.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.bulletins.loader import parse_bulletin
from bot.bulletins.service import FALLBACK_NOTE
from bot.checkins.job import CheckinJob
from bot.checkins.service import Checkins
from bot.config import LimitsSettings, OutboxSettings, StaffSettings
from bot.conversation.engine import STALE_BUTTON
from bot.core.model import ChoiceRef, Inbound, InboundKind, Outbound
from bot.core.notices import INTERNAL_ERROR, STALE_BUTTON_NO_DIALOG
from bot.core.security import KeyRing
from bot.services.delivery import OutboxSender
from tests.router_fuzz_support import (
    LANGUAGE_NUMBER,
    Checkpoint,
    Checkpoints,
    current_prompt,
    invite_code,
    person_language,
    press_key,
    snapshot,
)
from tests.support import Chat, MovedClock, Person, make_settings, open_chat

settings.register_profile("router", max_examples=100, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("router-thorough", max_examples=3000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "router")

STAFF = "console:coordinator"
START = dt.datetime(2026, 3, 20, 7, 0, tzinfo=dt.UTC)
ARABIC_SCRIPT = re.compile(r"[\u0600-\u06ff]")
BULLETIN = """id: note
en:
  title: A short note
  body: Consultations **resume** next week.
ar:
  title: ملاحظة قصيرة
  body: تُستأنف المشاورات **الأسبوع المقبل**.
"""

NASTY = [
    "\ud800", "a\udfffb", "\udc00\ud800", "\u202eevil\u202c", "\u202d1\u202c", "\u2066x\u2069", "\u2067\u2068",
    "\u200f1", "\u200e2", "\ufeff1", "\x00", "1\x00", "\x1b[31mred", "\r\n\t", "\u0085", "\u2028\u2029",
    "፩", "❶", "٣", "۳", "²", "①", "Ⅻ", "1.5", "-1", "0", "99999999999999999999999999", "1e9", "NaN",
    "<b>bold</b><script>x</script>", "*bold* _it_ [link](http://example.org) `code`", "@everyone",
    "/start\u202e", "/", "//", "/ help", "/help@otherbot", "/" + "x" * 300, "/survey launch \u202e fg",
    "‏نعم", "بەڵێ", "erê", "yes", "YES ", "  1  ", "1)", "✓", "\u0301", "🙂" * 50,
]
SURROGATES_AND_MARKS = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff", "\u202e", "\u202d", "\u202a",
                                        "\u2066", "\u2067", "\u2068", "\u2069", "\u200f", "\u200e", "\x00", "\x7f"])
CHARACTERS = st.one_of(st.characters(), SURROGATES_AND_MARKS)


@dataclass(frozen=True)
class Event:
    kind: InboundKind
    text: str = ""
    choice: ChoiceRef | None = None
    current_prompt: bool = False  # the choice names the prompt the person is looking at
    language_hint: str | None = None


def texts(commands: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(CHARACTERS, max_size=40),
        st.sampled_from(NASTY),
        st.builds(lambda unit, n: (unit * n)[:n], st.text(CHARACTERS, min_size=1, max_size=4),
                  st.integers(1990, 6000)),
        st.builds(lambda name, args: f"/{name} {args}".rstrip(), st.sampled_from(commands),
                  st.text(CHARACTERS, max_size=30)),
        st.integers(-3, 40).map(str),
    )


def events(commands: list[str]) -> st.SearchStrategy[Event]:
    hints = st.one_of(st.none(), st.sampled_from(["ar", "ckb", "ku", "en", "de", "", "\u202e", "x" * 40]))
    forged = st.builds(lambda p, i: ChoiceRef(p, i), st.text(CHARACTERS, max_size=24), st.integers(-2**63, 2**63))
    return st.one_of(
        st.builds(Event, st.just(InboundKind.TEXT), texts(commands), language_hint=hints),
        st.builds(Event, st.just(InboundKind.CHOICE), choice=forged),
        st.builds(Event, st.just(InboundKind.CHOICE), choice=st.none()),
        st.builds(lambda i: Event(InboundKind.CHOICE, choice=ChoiceRef("", i), current_prompt=True),
                  st.integers(-2**63, 2**63)),
        st.just(Event(InboundKind.UNSUPPORTED)),
        st.just(Event(InboundKind.GONE)),
    )


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())

    @contextmanager
    def attached(self) -> Iterator[ErrorLog]:
        logger = logging.getLogger("bot")
        logger.addHandler(self)
        try:
            yield self
        finally:
            logger.removeHandler(self)


class Fuzz:
    """The running bot, its database file and the checkpoints taken along real dialogs."""

    def __init__(self, chat: Chat, database: Path, keys: KeyRing, checkpoints: Checkpoints) -> None:
        self.chat, self.database, self.keys, self.points = chat, database, keys, checkpoints
        self.commands = sorted(c.name for c in chat.bot.features.commands()) + ["nosuchcommand", "START", "Help"]
        i18n = chat.bot.services.i18n
        self.internal_error = {i18n.translator(code)._(INTERNAL_ERROR) for code in ("en", "ar", "ckb", "ku")}
        self.stale = {code: {i18n.translator(code)._(STALE_BUTTON), i18n.translator(code)._(STALE_BUTTON_NO_DIALOG)}
                      for code in ("en", "ar", "ckb", "ku")}

    def fallback_notes(self, languages: set[str]) -> list[str]:
        """The start of the note a bulletin carries when shown in a language not the person's."""
        i18n = self.chat.bot.services.i18n
        return [i18n.translator(code)._(FALLBACK_NOTE).split("%")[0].lstrip("\u200f") for code in languages]

    async def drain(self) -> None:
        services = self.chat.bot.services
        sender = OutboxSender(services.database, services.outbox, services.keys, self.chat.transport,
                              OutboxSettings(), rate_per_second=10_000)
        while (await sender.drain_once()).handled:
            pass

    def take(self, name: str, person: Person, language: str) -> None:
        self.points.take(name, person, language)

    async def check(self, point: Checkpoint, event: Event) -> None:
        """Restore the checkpoint, deliver the event, check the properties."""
        self.points.restore(point)
        person = self.chat.person(point.user_id, event.language_hint)
        stored = current_prompt(self.database, self.keys, point.user_id)
        choice = event.choice
        if event.current_prompt and choice is not None:
            choice = ChoiceRef(stored[2] if stored else "", choice.index)
        forged = event.kind is InboundKind.CHOICE and (
            choice is None or stored is None or choice.prompt_id != stored[2] or not 0 <= choice.index < 1000)
        before = snapshot(self.database, self.keys) if forged else None
        languages = {point.language}
        if person_language(self.database, self.keys, point.user_id) is None:  # a stranger: the client's hint
            languages.add(self.chat.bot.services.i18n.resolve(event.language_hint))
        inbound = Inbound(person.address.platform, point.user_id, person.address, kind=event.kind, text=event.text,
                          choice=choice, language_hint=event.language_hint)
        with ErrorLog().attached() as errors:
            replies = await person._deliver(inbound)
        assert not errors.records, f"{point.name}: {errors.records}"
        assert not [r for r in replies if r.text in self.internal_error], f"{point.name}: the turn failed"
        after_language = person_language(self.database, self.keys, point.user_id)
        self._localized(point, event, replies, languages | {after_language or point.language})
        if before is not None:
            assert snapshot(self.database, self.keys) == before, f"{point.name}: a forged button changed something"
            assert replies and replies[0].text in self.stale[point.language], (point.name, replies[:1])

    def _localized(self, point: Checkpoint, event: Event, replies: list[Outbound], languages: set[str]) -> None:
        if event.kind is InboundKind.GONE or (event.kind is InboundKind.TEXT and not event.text.strip()):
            return
        assert replies, f"{point.name}: no answer to {event.kind.value}"
        for reply in replies:
            if reply.language not in languages:  # a bulletin shown in another language: said so first
                assert reply.formatted and any(reply.text.lstrip("\u200f").startswith(note) for note in
                                               self.fallback_notes(languages)), (point.name, reply.language)
                continue
            assert reply.language in languages, (point.name, reply.language, languages)
            assert reply.text.strip()
            if reply.language in ("ar", "ckb"):
                assert ARABIC_SCRIPT.search(reply.text), (point.name, reply.text[:80])


async def build(tmp_path: Path, keys: KeyRing) -> tuple[Any, Fuzz]:
    """Start the bot and walk real dialogs, taking a checkpoint at every step, in every language."""
    database = tmp_path / "civicbot.db"
    config = make_settings(f"sqlite+aiosqlite:///{database}", tmp_path, staff=[STAFF],
                           limits=LimitsSettings(flood_messages=1_000_000))
    config = config.model_copy(update={"staff": StaffSettings(members=[STAFF])})
    clock = MovedClock(START)
    opened = open_chat(config, keys, clock=clock)
    chat = await opened.__aenter__()
    (tmp_path / "points").mkdir()
    fuzz = Fuzz(chat, database, keys, Checkpoints(database, tmp_path / "points"))
    staff = chat.person("coordinator")
    for line in ("/org add families association Families Association", "/group add fg focus_group families",
                 "/org add fam association Families of Sinjar"):
        await staff.send(line)
    fuzz.take("unknown person", chat.person("stranger"), "en")

    people: dict[str, Person] = {}
    for language, number in LANGUAGE_NUMBER.items():
        newcomer = chat.person(f"new-{language}")
        await newcomer.send("/start")
        fuzz.take(f"{language} onboarding: language", newcomer, "en")
        await newcomer.send(number)
        fuzz.take(f"{language} onboarding: consent", newcomer, language)
        await newcomer.press(0)
        fuzz.take(f"{language} onboarding: invitation code", newcomer, language)
        person = people[language] = chat.person(f"member-{language}")
        code = await invite_code(chat, staff, "families", "fg")
        for step in ("/start", number, "1", code):
            await person.send(step)
        fuzz.take(f"{language} onboarding: bulletins question", person, language)
        await press_key(person, "yes")
        fuzz.take(f"{language} menu", person, language)

    await staff.send("/survey launch families-of-the-missing fg")
    await staff.send("/survey launch bulletin-feedback fg")
    from bot.bulletins.actions import BulletinActions
    from bot.bulletins.service import Bulletins

    services = chat.bot.services
    async with services.database.sessions.begin() as session:
        await BulletinActions(services.get(Bulletins), services.audit).create(session, parse_bulletin(BULLETIN), "cli")
    await staff.send("/bulletin send note all")
    await fuzz.drain()

    for language, person in people.items():
        await person.send("/language")
        fuzz.take(f"{language} language choice", person, language)
        await person.send("/delete_me")
        fuzz.take(f"{language} erasure confirmation", person, language)
        await person.send("/bulletins")
        fuzz.take(f"{language} bulletin reader", person, language)
        await person.send("/surveys")
        fuzz.take(f"{language} survey pick", person, language)
        await person.press(0)
        fuzz.take(f"{language} survey introduction", person, language)
        await press_key(person, "start")
        for number in range(1, 10):
            stored = current_prompt(database, keys, person.user_id)
            if stored is None or stored[1] != "question":
                break
            fuzz.take(f"{language} survey question {number}", person, language)
            choices = [c.key for c in person.last_prompt.choices]
            if "done" in choices:
                await person.press(0)
                await press_key(person, "done")
            elif choices and choices[0].startswith("opt:"):
                await person.press(0)
            else:
                await person.send("3")  # a number, or a free text

    contact = chat.person("contact")
    (invite,) = await staff.send("/checkin invite fam")
    code = re.search(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", invite.text)
    assert code, invite.text
    for step in ("/start", LANGUAGE_NUMBER["ar"], "1", code.group(0)):
        await contact.send(step)
    await contact.press(0)
    await staff.send("/checkin schedule fam --every 7d --at 08:00 --tz UTC")
    clock.set(START + dt.timedelta(hours=2))
    await CheckinJob(services.database, services.get(Checkins))()
    await fuzz.drain()
    stored = current_prompt(database, keys, contact.user_id)
    assert stored is not None and stored[0] == "checkin", stored
    fuzz.take("ar check-in offer", contact, "ar")
    await press_key(contact, "answer")
    for number in range(1, 8):
        stored = current_prompt(database, keys, contact.user_id)
        if stored is None or stored[0] != "checkin":
            break
        fuzz.take(f"ar check-in question {number}", contact, "ar")
        choices = [c.key for c in contact.last_prompt.choices]
        if "done" in choices:
            await contact.press(0)
            await press_key(contact, "done")
        elif choices and choices[0].startswith("opt:"):
            await contact.press(0)
        else:
            await contact.send("3")
    return opened, fuzz


@contextmanager
def running_fuzz(tmp_path: Path, keys: KeyRing) -> Iterator[tuple[asyncio.AbstractEventLoop, Fuzz]]:
    """One event loop for the bot and every generated example (hypothesis calls a plain function)."""
    loop = asyncio.new_event_loop()
    opened, fuzz = loop.run_until_complete(build(tmp_path, keys))
    try:
        yield loop, fuzz
    finally:
        loop.run_until_complete(opened.__aexit__(None, None, None))
        loop.close()


@pytest.fixture(scope="module")
def fuzzing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.AbstractEventLoop, Fuzz]]:
    with running_fuzz(tmp_path_factory.mktemp("router-fuzz"), KeyRing.generate()) as running:
        yield running


def test_the_walk_reaches_every_kind_of_step(fuzzing: tuple[asyncio.AbstractEventLoop, Fuzz]) -> None:
    names = [p.name for p in fuzzing[1].points.taken]
    for language in LANGUAGE_NUMBER:
        for step in ("onboarding: language", "onboarding: consent", "onboarding: invitation code",
                     "onboarding: bulletins question", "menu", "language choice", "erasure confirmation",
                     "bulletin reader", "survey pick", "survey introduction", "survey question 9"):
            assert f"{language} {step}" in names, f"{language} {step}"
    assert "ar check-in offer" in names and "ar check-in question 1" in names


def test_every_step_survives_the_known_nasty_inputs(fuzzing: tuple[asyncio.AbstractEventLoop, Fuzz]) -> None:
    """Each step gets two of the inputs that broke turns before, in rotation, so that every input
    meets every kind of step in some language (all of them with HYPOTHESIS_PROFILE=router-thorough)."""
    loop, fuzz = fuzzing
    fixed = [Event(InboundKind.TEXT, text) for text in ("\ud800 \udfff", "\u202eevil\u202c", "፩", "❶", "x" * 2500,
                                                       "/nosuch \x00", "<b>1</b>")]
    fixed += [Event(InboundKind.CHOICE, choice=ChoiceRef("forged", 0)),
              Event(InboundKind.CHOICE, choice=ChoiceRef("", 10**6), current_prompt=True),
              Event(InboundKind.UNSUPPORTED), Event(InboundKind.TEXT, "\u2067٣\u2069")]
    per_step = len(fixed) if PROFILE == "router-thorough" else 2
    failures = []
    for number, point in enumerate(fuzz.points.taken):
        for k in range(per_step):
            event = fixed[(number * per_step + k) % len(fixed)]
            try:
                loop.run_until_complete(fuzz.check(point, event))
            except AssertionError as exc:
                failures.append(f"{event.kind.value} {event.text[:12]!r} {event.choice}: {str(exc)[:160]}")
    assert not failures, "\n".join(failures)


def test_generated_events_at_every_step(fuzzing: tuple[asyncio.AbstractEventLoop, Fuzz]) -> None:
    loop, fuzz = fuzzing

    @settings(settings.get_profile(PROFILE))
    @given(point=st.sampled_from(fuzz.points.taken), event=events(fuzz.commands))
    def run(point: Checkpoint, event: Event) -> None:
        loop.run_until_complete(fuzz.check(point, event))

    run()
