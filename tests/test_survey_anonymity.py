"""Anonymous answers cannot be joined to the person through the database (issue 13, item 10).

The completion mark and the anonymous response never commit together: the answers leave the
person's invitation into an unlinked ballot box in a later transaction, and reach
``survey_responses`` in batches, in random order, with random ids and no date.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import LimitsSettings, SurveySettings
from bot.core.security import KeyRing
from bot.storage.models import SurveyAnswer, SurveyBallot, SurveyInvitation, SurveyResponse
from bot.surveys.service import BallotJob, Surveys
from tests.support import Chat, MovedClock, make_settings, open_chat, store_anonymous_answers
from tests.test_surveys import STAFF, launch, setup_group

SURVEY = """\
id: voices
languages: [en, ar, ckb, ku]
anonymous: true
opens: 2026-01-01
closes: 2099-12-31
title: {en: Voices, ar: أصوات, ckb: دەنگەکان, ku: Deng}
introduction: {en: Two questions., ar: سؤالان., ckb: دوو پرسیار., ku: Du pirs.}
closing: {en: Thank you., ar: شكرًا., ckb: سوپاس., ku: Spas.}
questions:
  - id: safe
    type: yes_no
    text:
      en: "Do you feel safe?"
      ar: "هل تشعر بالأمان؟"
      ckb: "هەست بە ئاسایش دەکەیت؟"
      ku: "Tu xwe ewle hîs dikî?"
  - id: story
    type: text
    text:
      en: "Anything else?"
      ar: "شيء آخر؟"
      ckb: "شتێکی تر؟"
      ku: "Tiştekî din?"
"""

WRITE = re.compile(r'^\s*(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)', re.IGNORECASE)
ANONYMOUS_SIDE = {"survey_responses", "survey_answers", "survey_ballots"}


class TransactionTrace:
    """The tables each committed transaction wrote, seen from the engine's own events."""

    def __init__(self) -> None:
        self.open: dict[int, set[str]] = {}
        self.committed: list[set[str]] = []

    def _begin(self, conn: Any) -> None:
        self.open[id(conn)] = set()

    def _statement(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        match = WRITE.match(statement)
        if match:
            self.open.setdefault(id(conn), set()).add(match.group(1).lower())

    def _commit(self, conn: Any) -> None:
        self.committed.append(self.open.pop(id(conn), set()))

    def _rollback(self, conn: Any) -> None:
        self.open.pop(id(conn), None)

    @contextmanager
    def watching(self, engine: AsyncEngine) -> Iterator[TransactionTrace]:
        hooks = (("begin", self._begin), ("before_cursor_execute", self._statement),
                 ("commit", self._commit), ("rollback", self._rollback))
        for name, hook in hooks:
            event.listen(engine.sync_engine, name, hook)
        try:
            yield self
        finally:
            for name, hook in hooks:
                event.remove(engine.sync_engine, name, hook)


def settings(db_url: str, tmp_path: Path, **surveys: Any) -> Any:
    directory = tmp_path / "surveys"
    directory.mkdir(exist_ok=True)
    (directory / "voices.yaml").write_text(SURVEY, encoding="utf-8")
    return make_settings(db_url, tmp_path, staff=[STAFF], limits=LimitsSettings(flood_messages=10_000),
                         surveys=SurveySettings(directory=directory, **surveys))


async def answer(chat: Chat, user_id: str, safe: str, story: str) -> None:
    person = chat.person(user_id)
    for step in ("/surveys", "1", safe, story):  # start; yes (1) or no (2); the free text
        await person.send(step)
    assert person.inbox[-2].text in {"Thank you.", "شكرًا.", "سوپاس.", "Spas."}


async def test_the_anonymous_response_never_commits_with_the_completion(db_url: str, tmp_path: Path,
                                                                        keys: KeyRing) -> None:
    async with open_chat(settings(db_url, tmp_path), keys) as chat:
        await setup_group(chat, {"8101": "en", "8102": "en", "8103": "ar"})
        await launch(chat, "voices")
        database = chat.bot.services.database
        with TransactionTrace().watching(database.engine) as trace:
            await answer(chat, "8101", "1", "My neighbour was taken in 2013")
            await answer(chat, "8102", "2", "Nothing")
            await store_anonymous_answers(chat.bot.services)

        mixed = [tables for tables in trace.committed
                 if "survey_invitations" in tables and tables & ANONYMOUS_SIDE]
        assert mixed == [], "a transaction marked an invitation and wrote an anonymous answer"
        assert any("survey_responses" in tables for tables in trace.committed)

        async with database.sessions() as session:
            responses = list(await session.scalars(select(SurveyResponse)))
            assert len(responses) == 2
            assert all(r.participant_id is None and r.submitted_on is None for r in responses)
            completed = list(await session.scalars(
                select(SurveyInvitation).where(SurveyInvitation.status == "completed")))
            assert len(completed) == 2 and all(i.progress_enc is None for i in completed)
            assert await session.scalar(select(SurveyBallot)) is None
            surveys = chat.bot.services.get(Surveys)
            stories = set()
            for answer_row in await session.scalars(select(SurveyAnswer).where(SurveyAnswer.question_id == "story")):
                stories.add(await surveys.read_text(session, answer_row, None))
            assert stories == {"My neighbour was taken in 2013", "Nothing"}
            if not database.is_sqlite:
                # PostgreSQL stamps each row version with the id of the transaction that wrote it.
                joined = await session.scalar(text(
                    "SELECT count(*) FROM survey_responses r JOIN survey_invitations i ON r.xmin = i.xmin"))
                assert joined == 0, "a response row carries the transaction id of an invitation row"


async def test_the_ballot_box_holds_nothing_that_names_or_orders_a_person(sqlite_url: str, tmp_path: Path,
                                                                          keys: KeyRing) -> None:
    async with open_chat(settings(sqlite_url, tmp_path), keys) as chat:
        await setup_group(chat, {"8201": "en", "8202": "en"})
        await launch(chat, "voices")
        await answer(chat, "8201", "1", "A story that must stay unlinked")
        surveys, database = chat.bot.services.get(Surveys), chat.bot.services.database
        async with database.sessions() as session:
            assert await session.scalar(select(SurveyResponse)) is None  # nothing anonymous at completion
            assert await session.scalar(select(SurveyBallot)) is None
        assert await surveys.hand_off(database) == 1
        assert await surveys.hand_off(database) == 0  # the copy left the invitation
        async with database.sessions() as session:
            ballot = await session.scalar(select(SurveyBallot))
            assert ballot is not None and re.fullmatch(r"[0-9a-f]{32}", ballot.id)
            assert b"A story" not in ballot.payload_enc
            columns = {row[1]: row[2] for row in await session.execute(text("PRAGMA table_info(survey_ballots)"))}
            assert set(columns) == {"id", "run_id", "survey_id", "language", "payload_enc"}
            for table in ("survey_ballots", "survey_responses", "survey_answers"):
                ddl = await session.scalar(text("SELECT sql FROM sqlite_master WHERE name = :t"), {"t": table})
                assert "WITHOUT ROWID" in ddl.upper(), table


async def test_answers_survive_a_restart_at_every_stage(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    config = settings(db_url, tmp_path)
    async with open_chat(config, keys) as chat:
        await setup_group(chat, {"8301": "ckb"})
        await launch(chat, "voices")
        await answer(chat, "8301", "1", "دەنگی من")
    async with open_chat(config, keys) as chat:  # completed, not handed off yet
        assert await chat.bot.services.get(Surveys).hand_off(chat.bot.services.database) == 1
    async with open_chat(config, keys) as chat:  # in the ballot box
        surveys, database = chat.bot.services.get(Surveys), chat.bot.services.database
        assert await surveys.store_ballots(database, min_batch=3) == 0  # too few while the run is open
        await chat.person("coordinator").send("/survey close voices")
        assert await surveys.store_ballots(database, min_batch=3) == 1  # closed: the rest is stored
        async with database.sessions() as session:
            response = await session.scalar(select(SurveyResponse))
            assert response is not None and response.language == "ckb" and response.participant_id is None
            story = await session.scalar(select(SurveyAnswer).where(SurveyAnswer.question_id == "story"))
            assert await surveys.read_text(session, story, None) == "دەنگی من"


async def test_the_job_stores_the_box_only_after_a_random_delay(sqlite_url: str, tmp_path: Path,
                                                                keys: KeyRing) -> None:
    async with open_chat(settings(sqlite_url, tmp_path), keys) as chat:
        await setup_group(chat, {"8401": "en", "8402": "ku"})
        await launch(chat, "voices")
        clock = MovedClock(dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.UTC))
        job = BallotJob(chat.bot.services.database, chat.bot.services.get(Surveys), batch_hours=6, min_batch=2,
                        clock=clock, rng=random.Random(13))
        await answer(chat, "8401", "1", "one")
        await answer(chat, "8402", "2", "two")
        assert await job() == 0  # handed off, not stored: the delay is at least three hours
        async with chat.bot.services.database.sessions() as session:
            assert len(list(await session.scalars(select(SurveyBallot)))) == 2
        clock.advance(hours=2, minutes=59)
        assert await job() == 0
        async with chat.bot.services.database.sessions() as session:
            ballot_ids = [b.id.encode() for b in await session.scalars(select(SurveyBallot))]
        clock.advance(hours=6)  # past the longest delay (1.5 x 6 hours)
        assert await job() == 2
        files = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("civicbot.db"))
        assert files and not [b for b in ballot_ids if b in files], "a ballot id is still readable on disk"
        async with chat.bot.services.database.sessions() as session:
            assert len(list(await session.scalars(select(SurveyResponse)))) == 2
            assert await session.scalar(select(SurveyBallot)) is None
