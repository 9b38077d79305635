"""Survey runs as staff use them: one open run per group and survey, closing cancels what was
not sent, /surveys lists each survey once, and people who join later are invited once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select

from bot.config import OutboxSettings
from bot.core.security import KeyRing
from bot.services.outbox import OutboxSender
from bot.storage.models import OutboxMessage, SurveyInvitation, SurveyRun
from bot.surveys.service import ReminderJob, Surveys
from tests.support import Chat, Person
from tests.test_surveys import CODE, open_chat, settings_for, setup_group


async def drain(chat: Chat) -> None:
    services = chat.bot.services
    await OutboxSender(services.database, services.outbox, services.participants, chat.transport,
                       OutboxSettings(), rate_per_second=1000).drain_once()


def invitations(person: Person) -> list[str]:
    return [m.text for m in person.inbox if m.text.startswith("New survey")]


async def count(chat: Chat, model: type, *where: object) -> int:
    async with chat.bot.services.database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)  # type: ignore[arg-type]


async def test_a_second_launch_to_the_same_group_is_refused_unless_again(db_url: str, tmp_path: Path,
                                                                          keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        people = await setup_group(chat, {"8001": "en"})
        staff = chat.person("coordinator")
        assert "1\u2069 person invited" in (await staff.send("/survey launch bulletin-feedback fg-missing"))[0].text
        refused = (await staff.send("/survey launch bulletin-feedback fg-missing"))[0].text
        assert "already open for the group" in refused and "--again" in refused
        assert await count(chat, SurveyRun) == 1
        # --again: a second run, but nobody is invited twice while their first invitation is open.
        again = (await staff.send("/survey launch bulletin-feedback fg-missing --again"))[0].text
        assert "\u20680\u2069 people invited" in again
        assert await count(chat, SurveyRun, SurveyRun.status == "open") == 2
        await drain(chat)
        person = people["8001"]
        assert len(invitations(person)) == 1
        replies = await person.send("/surveys")  # one survey: straight to its introduction
        assert [c.label for c in replies[-1].choices] == ["Start", "Later"]


async def test_each_open_survey_is_listed_once(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        people = await setup_group(chat, {"8011": "en"})
        staff = chat.person("coordinator")
        await staff.send("/group add fg-second focus_group families")
        code = CODE.search((await staff.send("/invite families fg-second"))[0].text).group(1)  # type: ignore[union-attr]
        person = people["8011"]
        await person.send("/join")
        await person.send(code)
        await staff.send("/survey launch bulletin-feedback fg-missing")
        await staff.send("/survey launch bulletin-feedback fg-second")  # the same survey, another group of hers
        await staff.send("/survey launch families-of-the-missing fg-missing")
        await drain(chat)
        assert len(invitations(person)) == 2  # one per survey
        replies = await person.send("/surveys")
        titles = [c.label for c in replies[-1].choices]
        assert sorted(titles) == ["Feedback on the periodic bulletin", "Needs of families of the missing"]


async def test_closing_a_run_cancels_its_unsent_invitations(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        people = await setup_group(chat, {"8021": "en", "8022": "en"})
        staff = chat.person("coordinator")
        await staff.send("/survey launch bulletin-feedback fg-missing")
        assert await count(chat, OutboxMessage, OutboxMessage.status == "pending") == 2
        await staff.send("/survey close bulletin-feedback")  # before the bot got round to sending them
        assert await count(chat, OutboxMessage, OutboxMessage.ref.like("run:%")) == 0
        await drain(chat)
        for person in people.values():
            assert not any("/surveys" in m.text for m in person.inbox[-1:])
            assert invitations(person) == [] and "no open survey" in (await person.send("/surveys"))[0].text
        # A new run after closing is allowed without --again, and its invitations are delivered.
        await staff.send("/survey launch bulletin-feedback fg-missing")
        await drain(chat)
        assert len(invitations(people["8021"])) == 1


async def test_a_person_who_joins_a_group_with_an_open_run_is_invited_once(db_url: str, tmp_path: Path,
                                                                            keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        await setup_group(chat, {"8031": "en"})
        staff = chat.person("coordinator")
        await staff.send("/survey launch bulletin-feedback fg-missing")
        await drain(chat)
        late = (await setup_group(chat, {"8032": "ku"}))["8032"]  # joins after the launch
        services = chat.bot.services
        job = ReminderJob(services.database, services.get(Surveys), after_hours=48)
        await job()  # the periodic survey check invites her
        await drain(chat)
        assert len([m for m in late.inbox if "/surveys" in m.text and "\u2068" in m.text]) == 1
        await job()  # and only once
        replies = await late.send("/surveys")
        await drain(chat)
        assert len([m for m in late.inbox if "/surveys" in m.text and "\u2068" in m.text]) == 1
        assert len(replies[-1].choices) == 2  # the survey's introduction: start or later
        assert await count(chat, SurveyInvitation) == 2


async def test_a_late_joiner_who_asks_first_is_offered_the_open_run(db_url: str, tmp_path: Path,
                                                                    keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        await setup_group(chat, {"8051": "en"})
        await chat.person("coordinator").send("/survey launch bulletin-feedback fg-missing")
        late = (await setup_group(chat, {"8052": "en"}))["8052"]
        replies = await late.send("/surveys")  # before the periodic check ran
        assert [c.label for c in replies[-1].choices] == ["Start", "Later"]
        await ReminderJob(chat.bot.services.database, chat.bot.services.get(Surveys), after_hours=48)()
        assert await count(chat, SurveyInvitation) == 2  # not a second invitation for her


async def test_the_scheduled_check_invites_members_added_without_a_code(db_url: str, tmp_path: Path,
                                                                         keys: KeyRing) -> None:
    """Membership can also come from a code redeemed while the bot was down, or from another worker:
    the periodic survey check catches up."""
    from bot.storage.models import Group, Participant, memberships

    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        people = await setup_group(chat, {"8041": "en", "8042": "en"})
        staff = chat.person("coordinator")
        await staff.send("/group add fg-late focus_group families")
        await staff.send("/survey launch bulletin-feedback fg-late")  # nobody in it yet
        services = chat.bot.services
        async with services.database.sessions.begin() as session:
            group_id = await session.scalar(select(Group.id).where(Group.code == "fg-late"))
            person_id = await session.scalar(select(Participant.id).where(
                Participant.pseudonym == keys.pseudonym("console", "8042")))
            await session.execute(memberships.insert().values(participant_id=person_id, group_id=group_id,
                                                              joined_on=dt.date.today()))
        await ReminderJob(services.database, services.get(Surveys), after_hours=48)()
        await ReminderJob(services.database, services.get(Surveys), after_hours=48)()
        await drain(chat)
        assert len(invitations(people["8042"])) == 1 and invitations(people["8041"]) == []


def test_the_command_line_refuses_a_second_launch_unless_again(tmp_path: Path) -> None:
    from tests.test_survey_console import civicbot

    setup = civicbot(tmp_path, "run", "--console", "--as-staff", stdin="/org add ngo1 cso\n/group add fg1 focus_group ngo1\n")
    assert setup.returncode == 0, setup.stderr
    first = civicbot(tmp_path, "survey", "launch", "bulletin-feedback", "fg1")
    assert first.returncode == 0, first.stderr
    second = civicbot(tmp_path, "survey", "launch", "bulletin-feedback", "fg1")
    assert second.returncode == 1 and second.stdout == ""
    assert "already open" in second.stderr and "--again" in second.stderr and second.stderr.count("\n") == 1
    again = civicbot(tmp_path, "survey", "launch", "bulletin-feedback", "fg1", "--again")
    assert again.returncode == 0, again.stderr
    closed = civicbot(tmp_path, "survey", "close", "bulletin-feedback")
    assert closed.returncode == 0 and closed.stdout.startswith("2 runs closed")
