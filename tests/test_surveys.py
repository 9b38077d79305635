"""Surveys end to end on the dialogue core: launch, invitations, answering, restart, results, export."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

from PIL import Image, ImageStat
from sqlalchemy import select

from bot.config import LimitsSettings, OutboxSettings, Settings
from bot.core.model import Direction
from bot.core.security import KeyRing
from bot.services.delivery import OutboxSender
from bot.storage.models import SurveyAnswer, SurveyInvitation, SurveyResponse
from bot.surveys.service import ReminderJob, Surveys
from tests.support import (
    Chat,
    Person,
    check_families_response,
    make_settings,
    open_chat,
    store_anonymous_answers,
)

CODE = re.compile(r"([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})")
STAFF = "console:coordinator"


async def setup_group(chat: Chat, members: dict[str, str]) -> dict[str, Person]:
    """Staff registers an organisation and a focus group; each member joins with a code, in a language."""
    staff = chat.person("coordinator")
    await staff.send("/org add families association Families Association")
    await staff.send("/group add fg-missing focus_group families")
    people = {}
    languages = {"en": "4", "ar": "1", "ckb": "2", "ku": "3"}
    for user_id, language in members.items():
        code = CODE.search((await staff.send("/invite families fg-missing"))[0].text).group(1)  # type: ignore[union-attr]
        person = chat.person(user_id)
        for step in ("/start", languages[language], "1", code):
            await person.send(step)
        people[user_id] = person
    return people


async def launch(chat: Chat, survey_id: str) -> list[str]:
    staff = chat.person("coordinator")
    replies = await staff.send(f"/survey launch {survey_id} fg-missing")
    services = chat.bot.services
    sender = OutboxSender(services.database, services.outbox, services.keys, chat.transport,
                          OutboxSettings(), rate_per_second=1000)
    await sender.drain_once()
    return [r.text for r in replies]


def settings_for(db_url: str, tmp_path: Path) -> Settings:
    """Scripted people answer faster than any person could: lift the flood limit."""
    return make_settings(db_url, tmp_path, staff=[STAFF], limits=LimitsSettings(flood_messages=10_000))


async def test_families_survey_with_branching_back_skip_invalid_answers_and_restart(
        db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    settings = settings_for(db_url, tmp_path)
    async with open_chat(settings, keys) as chat:
        people = await setup_group(chat, {"7001": "en", "7002": "ar"})
        assert "\u20682\u2069 people invited" in (await launch(chat, "families-of-the-missing"))[0]
        p = people["7001"]
        assert p.last.text.startswith("New survey: \u2068Needs of families of the missing\u2069")
        arabic_invitation = people["7002"].last
        assert arabic_invitation.direction is Direction.RTL and "احتياجات" in arabic_invitation.text

        replies = await p.send("/surveys")
        assert "anonymous" in replies[-1].text and [c.label for c in replies[-1].choices] == ["Start", "Later"]
        await p.press("Start")
        assert p.last.text.startswith("Question \u20681\u2069 of \u20689\u2069")  # at most 9: "to whom" if reported
        await p.send("2")  # spouse, by number
        await p.press("Skip")  # optional: since when
        await p.send("yes")  # reported: yes -> to whom (shown only if yes)
        assert "To whom" in p.last.text
        await p.press("A local organisation")
        await p.press("The authorities")
        await p.press("✓ A local organisation")  # untick
        assert "Selected: \u2068The authorities\u2069" in p.last.text
        await p.press("Done")
        await p.send("Legal help")
        await p.press("Financial support")
        await p.press("Civil documents")
        refusal = await p.press("Safety and protection")
        assert "at most \u20683\u2069 options" in refusal[0].text
        await p.press("Done")
        assert "trust" in p.last.text
        assert "number from \u20681\u2069 to \u20685\u2069" in (await p.send("6"))[0].text  # not "option 6"
        await p.press("Back")
        assert sum(c.label.startswith("✓") for c in p.last.choices) == 3  # the needs question again, ticked
        await p.press("Done")
        await p.send("4")

    async with open_chat(settings, keys) as restarted:  # the bot restarts in the middle of the survey
        p = restarted.person("7001")
        invalid = await p.send("many")
        assert invalid[0].text.startswith("That is not a valid answer.") and "1\u2069 to \u206830" in invalid[0].text
        await p.send("٥")  # five, in Eastern Arabic digits
        await p.press("Through this bot")
        await p.send("Please find my brother, taken from Homs in 2014")
        assert "Thank you. Your answers will help" in p.inbox[-2].text
        assert p.last.text.startswith("Main menu")

        assert await store_anonymous_answers(restarted.bot.services) == 1
        async with restarted.bot.services.database.sessions() as session:
            row = await check_families_response(session, restarted.bot.services.get(Surveys),
                                                "Please find my brother, taken from Homs in 2014")
        exported = ",".join(row.values())
        assert keys.pseudonym("console", "7001") not in exported and "7001" not in exported
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("civicbot.db"))
    if raw:  # SQLite run: the free text is not in the file
        assert b"taken from Homs" not in raw


async def test_results_suppress_small_groups_and_draw_a_chart(sqlite_url: str, tmp_path: Path,
                                                              keys: KeyRing) -> None:
    async with open_chat(settings_for(sqlite_url, tmp_path), keys) as chat:
        people = await setup_group(chat, {f"80{n}": "en" for n in range(7)})
        await launch(chat, "bulletin-feedback")
        staff = chat.person("coordinator")
        early = await staff.send("/results bulletin-feedback")
        assert "Responses: \u20680\u2069 of \u20687\u2069 invited" in early[0].text and len(early) == 1  # nothing to chart
        for index, person in enumerate(people.values()):
            await person.send("/surveys")
            await person.press("Start")
            if index == 6:  # one person did not read it
                await person.press("No")
                await person.press("I had no time")
                await person.press("Yes")
                await person.press("Skip")
                continue
            await person.press("Yes")
            await person.press("5" if index < 5 else "2")
            await person.press("Skip")
            await person.press("It is about right")
            await person.press("Yes")
            await person.send(f"suggestion number {index}")
        replies = await staff.send("/results bulletin-feedback")
        text = replies[0].text
        assert "Responses: \u20687\u2069 of \u20687\u2069 invited (\u2068100\u2069%)" in text
        assert "• Yes: 6" in text and "• No: fewer than \u20685\u2069" in text
        assert "What kept you from reading it?\n  Not shown: fewer than \u20685\u2069 people answered." in text
        assert "• 5: 5" in text and "• 2: fewer than" in text
        assert replies[0].sensitive
        chart = replies[1].image
        assert chart is not None and chart.startswith(b"\x89PNG")
        image = Image.open(io.BytesIO(chart)).convert("L")
        assert image.size[0] == 800 and image.size[1] > 400
        assert ImageStat.Stat(image).stddev[0] > 10  # not blank


async def test_arabic_chart_and_results(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(settings_for(sqlite_url, tmp_path), keys) as chat:
        people = await setup_group(chat, {f"81{n}": "ar" for n in range(5)})
        await launch(chat, "bulletin-feedback")
        for person in people.values():
            await person.send("/surveys")
            await person.press(0)  # start
            await person.press(0)  # yes
            await person.press("4")
            await person.press(5)  # skip topics
            await person.press(1)  # about right
            await person.press(0)  # yes
            await person.press(0)  # skip the suggestion
        staff = chat.person("coordinator")
        await staff.send("/language")
        await staff.press("العربية")
        replies = await staff.send("/results bulletin-feedback")
        assert replies[0].direction is Direction.RTL and "5" in replies[0].text
        assert replies[1].image is not None
        (tmp_path / "chart-ar.png").write_bytes(replies[1].image)


async def test_reminder_once_and_closing(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        people = await setup_group(chat, {"9001": "en", "9002": "en"})
        await launch(chat, "bulletin-feedback")
        busy, idle = people["9001"], people["9002"]
        await busy.send("/surveys")
        await busy.press("Start")
        await busy.press("Yes")
        services = chat.bot.services
        later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=49)
        job = ReminderJob(services.database, services.get(Surveys), after_hours=48, clock=lambda: later)
        assert await job() == 2
        assert await job() == 0  # doubled trigger: no second reminder
        sender = OutboxSender(services.database, services.outbox, services.keys, chat.transport,
                              OutboxSettings(), rate_per_second=1000)
        await sender.drain_once()
        assert idle.last.text.startswith("Reminder: you have not finished")

        await busy.send("/cancel")
        await busy.send("/surveys")  # resumes where it stopped
        assert busy.inbox[-2].text.startswith("Welcome back") and "useful" in busy.last.text

        closed = await chat.person("coordinator").send("/survey close bulletin-feedback")
        assert "closed" in closed[0].text
        await busy.press("3")
        assert busy.inbox[-2].text.startswith("This survey is closed") and busy.last.text.startswith("Main menu")
        assert "no open survey" in (await idle.send("/surveys"))[0].text


async def test_named_responses_are_erased_with_the_person(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(settings_for(sqlite_url, tmp_path), keys) as chat:
        people = await setup_group(chat, {"9101": "ku"})
        await launch(chat, "bulletin-feedback")
        p = people["9101"]
        assert p.last.language == "ku"
        await p.send("/surveys")
        for step in (0, 1, 0, 1, 0):  # start, no, first reason, yes (language ok)...
            await p.press(step)
        await p.send("Bêtir bi Kurmancî")
        async with chat.bot.services.database.sessions() as session:
            response = await session.scalar(select(SurveyResponse))
            assert response is not None and response.participant_id is not None and response.submitted_on
        await p.send("/delete_me")
        await p.press(0)
        async with chat.bot.services.database.sessions() as session:
            assert await session.scalar(select(SurveyResponse)) is None
            assert await session.scalar(select(SurveyAnswer)) is None


async def test_two_workers_do_not_lose_a_quick_tap(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    """Scale-out: two bot instances share the database and a person ticks two options so quickly
    that each tap reaches a different worker. Both ticks are kept (one turn per person at a time:
    on PostgreSQL an advisory lock, on SQLite its single writer)."""
    import asyncio

    from bot.core.model import Inbound

    settings = settings_for(db_url, tmp_path)
    async with open_chat(settings, keys) as first, open_chat(settings, keys) as second:
        people = await setup_group(first, {"9201": "en"})
        await launch(first, "families-of-the-missing")
        p = people["9201"]
        for step in ("/surveys", "start", "2", "skip", "yes"):
            await p.send(step)
        assert "To whom" in p.last.text
        taps = [Inbound(first.transport.platform, "9201", p.address, text=label, event_id=f"tap-{n}")
                for n, label in enumerate(("A local organisation", "The authorities"))]
        await asyncio.gather(first.bot.router.handle(taps[0]), second.bot.router.handle(taps[1]))
        await p.send("done")  # typed: the newest prompt may have gone out through the other worker
        assert "What does your family need most?" in p.last.text
        async with first.bot.services.database.sessions() as session:
            invitation = await session.scalar(select(SurveyInvitation))
            assert invitation is not None
            progress = await first.bot.services.get(Surveys).load_progress(session, invitation)
        assert sorted(progress["answers"]["reported-to"]) == ["authorities", "local-organisation"]
