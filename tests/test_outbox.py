"""The outbox: transactional enqueue, rate-paced drain, retries, unreachable recipients, crash resume."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import OutboxSettings
from bot.core.model import Outbound
from bot.core.pacing import Pacer
from bot.core.security import KeyRing
from bot.core.transport import PermanentDeliveryError, RecipientUnreachable, TransientDeliveryError
from bot.services.delivery import OutboxSender
from bot.services.outbox import OutboxKind, ToParticipant
from bot.storage.models import OutboxMessage, Participant, ParticipantAddress
from tests.support import Chat, RecordingTransport, make_settings, open_chat


class Clock:
    def __init__(self) -> None:
        # Starts a little ahead of real time, so rows enqueued now are due.
        self.now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


async def people(chat: Chat, count: int) -> list[int]:
    ids = []
    for n in range(count):
        p = chat.person(f"50{n:02d}")
        for step in ("/start", "4", "1", "1"):
            await p.send(step)
    async with chat.bot.services.database.sessions() as session:
        ids = list(await session.scalars(select(Participant.id).order_by(Participant.id)))
    chat.transport.sent.clear()
    chat.transport.send_log.clear()
    return ids


async def enqueue(chat: Chat, participant_ids: list[int], text: str = "Bulletin") -> list[int]:
    async with chat.bot.services.database.sessions.begin() as session:
        return [await chat.bot.services.outbox.enqueue(session, ToParticipant(pid, "console"), OutboxKind.BULLETIN,
                                                       Outbound(text=f"{text} {pid}"), ref="b1")
                for pid in participant_ids]


def sender(chat: Chat, clock: Clock, **overrides: float) -> OutboxSender:
    settings = OutboxSettings(**{"base_backoff_seconds": 10, "lease_seconds": 60, **overrides})  # type: ignore[arg-type]
    services = chat.bot.services
    return OutboxSender(services.database, services.outbox, services.keys, chat.transport, settings,
                        rate_per_second=1000, clock=clock)


async def statuses(chat: Chat) -> list[str]:
    async with chat.bot.services.database.sessions() as session:
        return list(await session.scalars(select(OutboxMessage.status).order_by(OutboxMessage.id)))


async def test_enqueue_is_part_of_the_callers_transaction(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        [pid] = await people(chat, 1)
        with pytest.raises(RuntimeError):
            async with chat.bot.services.database.sessions.begin() as session:
                await chat.bot.services.outbox.enqueue(session, ToParticipant(pid, "console"), OutboxKind.BULLETIN,
                                                       Outbound(text="x"))
                raise RuntimeError("the work that created it failed")
        assert await statuses(chat) == []


async def test_drain_delivers_each_row_once_with_its_transaction_id(db_url: str, tmp_path: Path,
                                                                    keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        pids = await people(chat, 3)
        await enqueue(chat, pids)
        report = await sender(chat, Clock()).drain_once()
        assert report.sent == 3 and await statuses(chat) == ["sent"] * 3
        async with chat.bot.services.database.sessions() as session:
            txn_ids = list(await session.scalars(select(OutboxMessage.txn_id).order_by(OutboxMessage.id)))
        assert sorted(opts.transaction_id for _, _, opts in chat.transport.send_log) == sorted(txn_ids)  # type: ignore[union-attr]
        assert sorted(m.text for _, m, _ in chat.transport.send_log) == sorted(f"Bulletin {pid}" for pid in pids)
        assert (await sender(chat, Clock()).drain_once()).handled == 0


async def test_each_recipient_in_order_while_others_are_not_held_up(sqlite_url: str, tmp_path: Path,
                                                                     keys: KeyRing) -> None:
    fast_done = asyncio.Event()

    class SlowFirstChat(RecordingTransport):
        """The first recipient's chat is held (as a platform's per-chat limit would hold it) after its
        first message, until the other recipient has had all of theirs: a sender that queued
        everyone behind the slow chat would never get there."""

        async def send(self, address, message, options=None):  # type: ignore[no-untyped-def]
            if message.text.startswith("slow") and not message.text.startswith("slow 0"):
                await asyncio.wait_for(fast_done.wait(), 10)
            delivery = await super().send(address, message, options)
            if message.text.startswith("fast 4"):
                fast_done.set()
            return delivery

    transport = SlowFirstChat()
    async with open_chat(make_settings(sqlite_url, tmp_path), keys, transport) as chat:
        slow, fast = await people(chat, 2)
        for n in range(5):
            await enqueue(chat, [slow], text=f"slow {n}")
            await enqueue(chat, [fast], text=f"fast {n}")
        await sender(chat, Clock()).drain_once()
        order = [m.text for _, m, _ in transport.send_log]
        assert [t for t in order if t.startswith("slow")] == [f"slow {n} {slow}" for n in range(5)]
        assert [t for t in order if t.startswith("fast")] == [f"fast {n} {fast}" for n in range(5)]
        assert order.index(f"fast 4 {fast}") < order.index(f"slow 1 {slow}")  # not queued behind the slow chat


async def test_transient_failures_are_retried_after_backoff(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        [pid] = await people(chat, 1)
        await enqueue(chat, [pid])
        clock = Clock()
        chat.transport.failures.append(TransientDeliveryError("rate_limited", retry_after=120))
        s = sender(chat, clock)
        assert (await s.drain_once()).retried == 1
        assert await statuses(chat) == ["pending"]
        clock.advance(60)
        assert (await s.drain_once()).handled == 0  # retry_after (120 s) is obeyed
        clock.advance(61)
        assert (await s.drain_once()).sent == 1
        async with chat.bot.services.database.sessions() as session:
            row = await session.scalar(select(OutboxMessage))
            assert row is not None and row.attempts == 2 and row.status == "sent"


async def test_too_many_attempts_and_rejections_fail(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(sqlite_url, tmp_path), keys) as chat:
        a, b = await people(chat, 2)
        await enqueue(chat, [a, b])
        clock = Clock()
        s = sender(chat, clock, max_attempts=2)
        chat.transport.failures.extend([PermanentDeliveryError("message_too_long"), TransientDeliveryError("net")])
        await s.drain_once()
        clock.advance(3600)
        chat.transport.failures.append(TransientDeliveryError("net"))
        await s.drain_once()
        assert await statuses(chat) == ["failed", "failed"]
        async with chat.bot.services.database.sessions() as session:
            errors = list(await session.scalars(select(OutboxMessage.last_error).order_by(OutboxMessage.id)))
        assert errors == ["message_too_long", "net"]


async def test_unreachable_recipient_is_marked_and_not_sent_to_again(db_url: str, tmp_path: Path,
                                                                     keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        blocked, fine = await people(chat, 2)
        await enqueue(chat, [blocked, fine])
        chat.transport.failures.append(RecipientUnreachable("blocked"))
        s = sender(chat, Clock())
        await s.drain_once()
        assert await statuses(chat) == ["unreachable", "sent"]
        async with chat.bot.services.database.sessions() as session:
            address = await session.scalar(select(ParticipantAddress).where(
                ParticipantAddress.participant_id == blocked))
            assert address is not None and not address.reachable and address.unreachable_reason == "blocked"
        sends_before = len(chat.transport.send_log)
        await enqueue(chat, [blocked], text="Next bulletin")
        await s.drain_once()
        assert len(chat.transport.send_log) == sends_before
        assert (await statuses(chat))[-1] == "unreachable"


async def test_a_crash_mid_drain_loses_nothing(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    settings = make_settings(db_url, tmp_path)
    async with open_chat(settings, keys) as chat:
        pids = await people(chat, 4)
        await enqueue(chat, pids)
        clock = Clock()  # after the rows are queued, however long onboarding took: they are due
        crashed = sender(chat, clock)
        claimed = await crashed._claim(50)  # leased, then the process dies before sending
        assert claimed is not None and len(claimed.rows) == 4 and await statuses(chat) == ["sending"] * 4
    async with open_chat(settings, keys) as restarted:
        s = sender(restarted, clock)
        assert (await s.drain_once()).handled == 0  # the lease still holds
        clock.advance(61)
        assert (await s.drain_once()).sent == 4
        assert sorted(m.text for _, m, _ in restarted.transport.send_log) == sorted(f"Bulletin {p}" for p in pids)


async def test_erasure_removes_queued_messages(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(sqlite_url, tmp_path), keys) as chat:
        [pid] = await people(chat, 1)
        async with chat.bot.services.database.sessions.begin() as session:  # due in an hour: nothing waits for it
            await chat.bot.services.outbox.enqueue(session, ToParticipant(pid, "console"), OutboxKind.BULLETIN,
                                                   Outbound("Later"), not_before=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        p = chat.person("5000")
        await p.send("/delete_me")
        await p.press("Yes, erase everything")
        assert await statuses(chat) == []
        assert (await sender(chat, Clock()).drain_once()).handled == 0


async def test_the_run_loop_drains_and_stops(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(sqlite_url, tmp_path), keys) as chat:
        pids = await people(chat, 2)
        s = sender(chat, Clock(), poll_seconds=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(s.run(stop))
        await enqueue(chat, pids)
        s.wake()
        await chat.transport.wait_sent(2)
        stop.set()
        await asyncio.wait_for(task, 5)
        assert await statuses(chat) == ["sent", "sent"]


async def test_pacer_spaces_sends_to_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]

    async def fake_sleep(seconds: float) -> None:
        now[0] += seconds

    monkeypatch.setattr("bot.core.pacing.asyncio.sleep", fake_sleep)
    pacer = Pacer(4.0, now=lambda: now[0])
    times = []
    for _ in range(9):
        await pacer.wait()
        times.append(now[0])
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(abs(g - 0.25) < 1e-9 for g in gaps)
