"""Staff commands: organisations, groups, invitation codes, whoami, audit trail."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from sqlalchemy import select, update

from bot.core.security import KeyRing
from bot.services.audit import AuditLog
from bot.storage.models import AuditEntry, InviteCode, Participant, memberships
from tests.support import Chat, Person, make_settings, open_chat

CODE = re.compile(r"([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})")


async def make_invite(staff: Person, *args: str) -> str:
    replies = await staff.send("/invite " + " ".join(args))
    match = CODE.search(replies[0].text)
    assert match, replies[0].text
    assert replies[0].sensitive
    return match.group(1)


async def join(chat: Chat, user_id: str, code: str) -> Person:
    p = chat.person(user_id)
    for step in ("/start", "4", "1"):
        await p.send(step)
    await p.send(code)
    return p


async def test_invite_joins_organisation_and_groups(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    settings = make_settings(db_url, tmp_path, staff=["console:boss"])
    async with open_chat(settings, keys) as chat:
        staff = chat.person("boss")
        assert "Organisation" in (await staff.send("/org add syr-docs cso Syrian Documentation Network"))[0].text
        assert "already exists" in (await staff.send("/org add syr-docs cso again"))[0].text
        await staff.send("/group add missing-fg focus_group syr-docs")
        await staff.send("/group add bulletin audience")
        assert "syr-docs (cso) Syrian Documentation Network" in (await staff.send("/org list"))[0].text
        assert "There is no group" in (await staff.send("/invite syr-docs nope"))[0].text
        assert "There is no organisation" in (await staff.send("/invite nope"))[0].text
        code = await make_invite(staff, "syr-docs", "missing-fg", "bulletin")

        p = await join(chat, "4001", code.lower().replace("-", " "))  # typed loosely
        assert any("You have joined \u2068syr-docs\u2069" in m.text for m in p.inbox)
        async with chat.bot.services.database.sessions() as session:
            participant = await session.scalar(select(Participant).where(
                Participant.pseudonym == keys.pseudonym("console", "4001")))
            assert participant is not None and participant.organisation_id is not None
            groups = await chat.bot.services.organisations.groups_of(session, participant.id)
            assert [g.code for g in groups] == ["bulletin", "missing-fg"]

        # Single use.
        q = await join(chat, "4002", code)
        assert "already been used" in q.last.text or "already been used" in q.inbox[-2].text

        whoami = (await staff.send("/whoami"))[0].text
        assert "staff member" in whoami


async def test_expired_and_wrong_codes(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    settings = make_settings(db_url, tmp_path, staff=["console:boss"])
    async with open_chat(settings, keys) as chat:
        staff = chat.person("boss")
        await staff.send("/org add yazidi-assoc association")
        code = await make_invite(staff, "yazidi-assoc")
        async with chat.bot.services.database.sessions.begin() as session:
            await session.execute(update(InviteCode).values(expires_at=dt.datetime.now(dt.UTC)
                                                            - dt.timedelta(minutes=1)))
        p = await join(chat, "4003", code)
        assert "expired" in p.inbox[-2].text
        for attempt in range(4):
            await p.send(f"WRONG-CODE-{attempt}")
        assert "/join" in p.inbox[-2].text and p.last.text.startswith("Main menu")
        async with chat.bot.services.database.sessions() as session:
            assert (await session.execute(select(memberships))).first() is None


async def test_codes_accept_arabic_digits(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    settings = make_settings(sqlite_url, tmp_path, staff=["console:boss"])
    async with open_chat(settings, keys) as chat:
        staff = chat.person("boss")
        await staff.send("/org add ngo2 cso")
        code = await make_invite(staff, "ngo2")
        arabic = code.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
        p = await join(chat, "4004", arabic)
        assert any("You have joined" in m.text for m in p.inbox)


async def test_staff_actions_are_audited_in_a_valid_chain(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    settings = make_settings(db_url, tmp_path, staff=["console:boss"])
    async with open_chat(settings, keys) as chat:
        staff = chat.person("boss")
        await staff.send("/org add ngo3 signatory Name That Must Not Be Logged")
        await staff.send("/group add fg3 focus_group")
        await make_invite(staff, "ngo3", "fg3")
        async with chat.bot.services.database.sessions() as session:
            entries = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
            assert [e.action for e in entries] == ["organisation.add", "group.add", "invite.create"]
            assert all("Name That" not in (e.details + (e.subject or "")) for e in entries)
            assert all("boss" not in e.actor for e in entries)
            assert (await AuditLog().verify(session)).ok
        async with chat.bot.services.database.sessions.begin() as session:
            await session.execute(update(AuditEntry).where(AuditEntry.action == "group.add").values(subject="other"))
        async with chat.bot.services.database.sessions() as session:
            check = await AuditLog().verify(session)
            assert not check.ok and check.first_bad_id == entries[1].id
