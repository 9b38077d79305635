"""The delivery engine's guarantees: per-person order, unreadable rows, leases, erased payloads,
staff destinations, scheduling, cancellation, progress, priorities and wake-ups."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import OutboxSettings, StaffSettings
from bot.core.model import Address, Capabilities, Delivery, Outbound, SendOptions
from bot.core.security import KeyRing
from bot.core.transport import PermanentDeliveryError, RecipientUnreachable, TransientDeliveryError
from bot.services.delivery import OutboxSender, run_delivery
from bot.services.delivery.store import DeliveryStore
from bot.services.outbox import (
    OutboxError,
    OutboxKind,
    OutboxStatus,
    Priority,
    StaffDestination,
    ToParticipant,
    ToStaff,
)
from bot.storage.models import OutboxMessage
from tests.support import Chat, RecordingTransport, make_settings, open_chat
from tests.test_outbox import Clock, people


def sender(chat: Chat, clock: Clock | None = None, transport: RecordingTransport | None = None,
           **overrides: float) -> OutboxSender:
    settings = OutboxSettings(**{"base_backoff_seconds": 10, "lease_seconds": 60, **overrides})  # type: ignore[arg-type]
    services = chat.bot.services
    return OutboxSender(services.database, services.outbox, services.keys, transport or chat.transport, settings,
                        rate_per_second=1000, clock=clock or Clock())


async def queue(chat: Chat, pid: int, *texts: str, kind: OutboxKind = OutboxKind.BULLETIN, ref: str | None = "b1",
                not_before: dt.datetime | None = None) -> list[int]:
    async with chat.bot.services.database.sessions.begin() as session:
        return [await chat.bot.services.outbox.enqueue(session, ToParticipant(pid, "console"), kind, Outbound(t),
                                                       ref=ref, not_before=not_before) for t in texts]


async def rows(chat: Chat) -> list[OutboxMessage]:
    async with chat.bot.services.database.sessions() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def texts(transport: RecordingTransport) -> list[str]:
    return [m.text for _, m, _ in transport.send_log]


# ---------------------------------------------------------------------- per-person order
async def test_a_failed_first_message_holds_back_the_persons_later_ones(db_url: str, tmp_path: Path,
                                                                       keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        a, b = await people(chat, 2)
        await queue(chat, a, "a1", "a2", "a3")
        await queue(chat, b, "b1")
        clock = Clock()
        s = sender(chat, clock)
        chat.transport.failures.append(TransientDeliveryError("network"))  # the first send: a1
        report = await s.drain_once()
        assert texts(chat.transport) == ["b1"]  # b is not held up; a2 and a3 wait for a1
        assert report.retried == 1 and report.sent == 1
        assert [r.status for r in await rows(chat)] == ["pending", "pending", "pending", "sent"]
        clock.advance(5)
        assert (await s.drain_once()).handled == 0  # a1's backoff (10 s) holds a2 and a3 too
        clock.advance(10)
        await s.drain_once()
        assert texts(chat.transport) == ["b1", "a1", "a2", "a3"]
        assert [r.attempts for r in await rows(chat)] == [2, 1, 1, 1]  # held-back rows used no attempt


async def test_a_message_that_fails_for_good_releases_the_queue(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        [a] = await people(chat, 1)
        await queue(chat, a, "too long", "next")
        chat.transport.failures.append(PermanentDeliveryError("too_long"))
        await sender(chat).drain_once()
        assert texts(chat.transport) == ["next"]
        assert [(r.status, r.last_error) for r in await rows(chat)] == [("failed", "too_long"), ("sent", None)]


async def test_live_replies_do_not_overtake_queued_messages(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        a, b = await people(chat, 2)
        await queue(chat, a, "Bulletin for a")
        person = chat.person("5000")
        assert await person.send("/help") == []  # not sent past the queued bulletin
        await chat.person("5001").send("/help")  # nothing queued for b: answered at once
        assert chat.person("5001").last.text.startswith("What you can do")
        await sender(chat).drain_once()
        assert [m.text for m in person.inbox][-2] == "Bulletin for a"
        assert person.last.text.startswith("What you can do")
        reply = (await rows(chat))[-1]
        assert (reply.kind, reply.priority, reply.status) == (OutboxKind.REPLY, Priority.INTERACTIVE, "sent")


async def test_a_reply_behind_a_retry_makes_the_held_row_due_now(sqlite_url: str, tmp_path: Path,
                                                                 keys: KeyRing) -> None:
    async with open_chat(make_settings(sqlite_url, tmp_path), keys) as chat:
        [a] = await people(chat, 1)
        await queue(chat, a, "Bulletin")
        s = sender(chat, base_backoff_seconds=3600)
        chat.transport.failures.append(TransientDeliveryError("network"))
        await s.drain_once()  # the bulletin waits an hour now
        await chat.person("5000").send("/help")  # but the person just wrote: the platform reaches them
        real_time = sender(chat, Clock())
        assert (await real_time.drain_once()).sent == 2
        assert texts(chat.transport)[-2:] == ["Bulletin", chat.person("5000").last.text]


# ---------------------------------------------------------------------- rows that cannot be opened
async def test_a_row_that_cannot_be_opened_fails_after_max_attempts_without_stopping_others(
        db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        a, b = await people(chat, 2)
        [broken] = await queue(chat, a, "broken")
        await queue(chat, b, "fine")
        async with chat.bot.services.database.sessions.begin() as session:
            row = await session.get(OutboxMessage, broken)
            assert row is not None and row.payload_enc is not None
            row.payload_enc = row.payload_enc[:-1] + bytes([row.payload_enc[-1] ^ 1])  # corrupt
        clock = Clock()
        s = sender(chat, clock, max_attempts=3)
        for _ in range(3):
            await s.drain_once()
            clock.advance(3600)
        assert texts(chat.transport) == ["fine"]
        failed = (await rows(chat))[0]
        assert (failed.status, failed.last_error, failed.attempts) == ("failed", "unreadable", 3)
        assert failed.payload_enc is None
        assert (await s.drain_once()).handled == 0  # never claimed again


async def test_a_row_of_an_erased_key_fails_cleanly(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    other = KeyRing.generate()  # e.g. a worker started with the wrong key file
    async with open_chat(make_settings(sqlite_url, tmp_path), keys) as chat:
        [a] = await people(chat, 1)
        await queue(chat, a, "x")
        services = chat.bot.services
        wrong = OutboxSender(services.database, services.outbox, other, chat.transport,
                             OutboxSettings(max_attempts=1), rate_per_second=1000, clock=Clock())
        assert (await wrong.drain_once()).failed == 1
        assert [(r.status, r.last_error) for r in await rows(chat)] == [("failed", "unreadable")]


# ---------------------------------------------------------------------- leases
class GatedTransport(RecordingTransport):
    """Holds every send until ``gate`` opens, like a platform that stalls."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def send(self, address: Address, message: Outbound, options: SendOptions | None = None) -> Delivery:
        self.entered.set()
        await self.gate.wait()
        return await super().send(address, message, options)


async def test_a_batch_that_outlived_its_lease_is_not_sent_twice(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        [a] = await people(chat, 1)
        await queue(chat, a, "m1", "m2", "m3")
        clock = Clock()
        slow = GatedTransport()
        first = sender(chat, clock, transport=slow, lease_seconds=60)
        stalled = asyncio.create_task(first.drain_once())
        await asyncio.wait_for(slow.entered.wait(), 5)  # m1 is on the wire, m2 and m3 wait behind it
        clock.advance(61)  # the first sender's lease runs out
        second_transport = RecordingTransport()
        second = sender(chat, clock, transport=second_transport, lease_seconds=60)
        await second.drain_once()  # takes over all three rows
        assert texts(second_transport) == ["m1", "m2", "m3"]
        slow.gate.set()
        await asyncio.wait_for(stalled, 5)
        assert texts(slow) == ["m1"]  # what was on the wire arrives; nothing after the lease ran out
        assert [r.status for r in await rows(chat)] == ["sent"] * 3
        assert all(r.lease_token is None for r in await rows(chat))


async def test_a_late_outcome_does_not_overwrite_the_new_owners(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        [a] = await people(chat, 1)
        await queue(chat, a, "m1")
        store = DeliveryStore(chat.bot.services.database, "console")
        now = dt.datetime.now(dt.UTC)
        old = await store.claim(10, now, 60)
        new = await store.claim(10, now + dt.timedelta(seconds=61), 60)  # the lease ran out: claimed again
        assert [r.id for r in old.rows] == [r.id for r in new.rows]
        from bot.services.delivery.store import Outcome
        assert await store.record([Outcome(old.rows[0].id, old.token, OutboxStatus.FAILED, "late")], now, 8) == 0
        assert (await rows(chat))[0].status == "sending"
        assert await store.record([Outcome(new.rows[0].id, new.token, OutboxStatus.SENT)], now, 8) == 1
        assert (await rows(chat))[0].status == "sent"


# ---------------------------------------------------------------------- payloads are erased
async def test_payloads_are_erased_once_final_and_kept_while_retrying(db_url: str, tmp_path: Path,
                                                                      keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        a, b, c, d = await people(chat, 4)
        for pid in (a, b, c, d):
            await queue(chat, pid, f"to {pid}")
        chat.transport.failures.extend([RecipientUnreachable("blocked"), PermanentDeliveryError("too_long"),
                                        TransientDeliveryError("network")])
        await sender(chat).drain_once()
        by_status = {r.status: r for r in await rows(chat)}
        assert set(by_status) == {"unreachable", "failed", "pending", "sent"}
        for status in ("unreachable", "failed", "sent"):
            assert by_status[status].payload_enc is None
            assert by_status[status].language == "en" and by_status[status].kind == "bulletin"
        assert by_status["pending"].payload_enc is not None


# ---------------------------------------------------------------------- staff destinations
async def test_staff_destinations_get_messages_through_the_outbox(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    staff = StaffSettings(matrix_room="!staff:example.org", telegram_chat=-1001234)
    async with open_chat(make_settings(db_url, tmp_path), keys) as unconfigured:
        with pytest.raises(OutboxError):
            async with unconfigured.bot.services.database.sessions.begin() as session:
                await unconfigured.bot.services.outbox.enqueue(
                    session, ToStaff(StaffDestination.MATRIX_ROOM), OutboxKind.STAFF_NOTICE, Outbound("x"))
    settings = make_settings(db_url, tmp_path)
    settings.staff = staff
    matrix, telegram = RecordingTransport(platform="matrix"), RecordingTransport(platform="telegram")  # type: ignore[arg-type]
    async with open_chat(settings, keys, matrix) as chat:
        outbox = chat.bot.services.outbox
        assert {r.destination for r in outbox.staff_recipients()} == set(StaffDestination)
        async with chat.bot.services.database.sessions.begin() as session:
            for to in outbox.staff_recipients():
                await outbox.enqueue(session, to, OutboxKind.STAFF_NOTICE, Outbound("A new case is waiting"),
                                     ref="case:1")
        assert (await sender(chat, transport=matrix).drain_once()).sent == 1
        assert (await sender(chat, transport=telegram).drain_once()).sent == 1
        assert list(matrix.sent) == ["!staff:example.org"] and list(telegram.sent) == ["-1001234"]
        notices = await rows(chat)
        assert [(r.participant_id, r.staff_destination, r.status, r.priority) for r in notices] == [
            (None, "staff.matrix_room", "sent", Priority.NORMAL), (None, "staff.telegram_chat", "sent", Priority.NORMAL)]
        async with chat.bot.services.database.sessions() as session:
            progress = await outbox.progress(session, "case:1")
        assert progress.by_platform == {"matrix": {OutboxStatus.SENT: 1}, "telegram": {OutboxStatus.SENT: 1}}



async def test_threads_of_a_staff_destination_and_a_members_private_chat(db_url: str, tmp_path: Path,
                                                                         keys: KeyRing) -> None:
    """Rows of one thread: the first one sent starts it (Matrix), the later ones go into it, even
    across claims and a failure of the first; where there are no threads (Telegram) they are plain
    messages. A staff member's private chat is found from the configuration at send time."""
    settings = make_settings(db_url, tmp_path)
    settings.staff = StaffSettings(members=["telegram:4242", "matrix:@amal:example.org"],
                                   matrix_room="!staff:example.org", telegram_chat=-1001234)
    matrix = RecordingTransport(platform="matrix", capabilities=Capabilities(threads=True))  # type: ignore[arg-type]
    telegram = RecordingTransport(platform="telegram")  # type: ignore[arg-type]
    async with open_chat(settings, keys, matrix) as chat:
        outbox, database = chat.bot.services.outbox, chat.bot.services.database
        with pytest.raises(OutboxError):
            async with database.sessions.begin() as session:
                [pid] = await people(chat, 1)
                await outbox.enqueue(session, ToParticipant(pid, "console"), OutboxKind.REPLY, Outbound("x"),
                                     thread="case:1")
        member = outbox.staff_addresses.member(keys, "telegram:4242")
        assert member is not None and outbox.staff_addresses.member(keys, "matrix:@amal:example.org") is None
        assert "4242" not in member.queue

        async def notice(text: str, thread: str | None) -> None:
            async with database.sessions.begin() as session:
                for to in outbox.staff_recipients():
                    await outbox.enqueue(session, to, OutboxKind.STAFF_NOTICE, Outbound(text), thread=thread)

        await notice("case 1 opens", "case:1")
        await notice("case 1 again", "case:1")
        matrix.failures.append(TransientDeliveryError("down"))  # the first row fails once: nothing overtakes it
        clock = Clock()
        m = sender(chat, clock, transport=matrix, per_recipient_batch=1)
        await m.drain_once()
        assert matrix.send_log == []
        clock.advance(60)
        await m.drain_once()
        await notice("case 2 opens", "case:2")
        await notice("case 1 a third time", "case:1")
        await notice("on its own", None)
        await m.drain_once()
        log = [(message.text, message.thread_root) for _, message, _ in matrix.send_log]
        assert log == [("case 1 opens", None), ("case 1 again", "1"), ("case 2 opens", None),
                       ("case 1 a third time", "1"), ("on its own", None)]
        async with database.sessions() as session:
            assert await outbox.thread_at(session, StaffDestination.MATRIX_ROOM, "3") == "case:2"
            assert await outbox.thread_at(session, StaffDestination.MATRIX_ROOM, "2") is None

        await sender(chat, clock, transport=telegram).drain_once()
        assert all(message.thread_root is None for _, message, _ in telegram.send_log)
        async with database.sessions.begin() as session:
            await outbox.enqueue(session, member, OutboxKind.STAFF_NOTICE, Outbound("for you"))
        await sender(chat, clock, transport=telegram).drain_once()
        assert telegram.sent["4242"][-1].text == "for you"
        async with database.sessions() as session:
            staff_rows = list(await session.scalars(select(OutboxMessage.staff_destination)
                                                    .where(OutboxMessage.staff_destination.is_not(None))))
        assert all("4242" not in row for row in staff_rows), "no staff account is stored"

# ---------------------------------------------------------------------- scheduling and cancelling
async def test_not_before_schedules_without_holding_up_earlier_due_rows(db_url: str, tmp_path: Path,
                                                                        keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        [a] = await people(chat, 1)
        clock = Clock()
        await queue(chat, a, "tomorrow", not_before=clock.now + dt.timedelta(days=1))
        await queue(chat, a, "now")
        s = sender(chat, clock)
        await s.drain_once()
        assert texts(chat.transport) == ["now"]
        clock.advance(86_400)
        await s.drain_once()
        assert texts(chat.transport) == ["now", "tomorrow"]
        with pytest.raises(OutboxError):
            await queue(chat, a, "naive", not_before=dt.datetime(2030, 1, 1))


async def test_cancel_deletes_unsent_rows_of_a_bulk_send(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        a, b, c = await people(chat, 3)
        await queue(chat, a, "first", ref="bulletin:7")
        await sender(chat).drain_once()
        await queue(chat, b, "second", ref="bulletin:7")
        await queue(chat, c, "other", ref="bulletin:8")
        outbox = chat.bot.services.outbox
        async with chat.bot.services.database.sessions.begin() as session:
            assert await outbox.cancel(session, "bulletin:7") == 1
        assert [(r.ref, r.status) for r in await rows(chat)] == [("bulletin:7", "sent"), ("bulletin:8", "pending")]
        await sender(chat).drain_once()
        assert texts(chat.transport) == ["first", "other"]


async def test_progress_counts_by_status_platform_language_and_reason(db_url: str, tmp_path: Path,
                                                                      keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        pids = await people(chat, 4)
        outbox = chat.bot.services.outbox
        async with chat.bot.services.database.sessions.begin() as session:
            items = [(ToParticipant(pid, "console"), Outbound(f"b {pid}", language=lang))
                     for pid, lang in zip(pids, ("ar", "ar", "ckb", "en"), strict=True)]
            ids = await outbox.enqueue_many(session, items, OutboxKind.BULLETIN, ref="bulletin:1")
        assert len(ids) == 4 and ids == sorted(ids)
        chat.transport.failures.extend([RecipientUnreachable("blocked"), PermanentDeliveryError("too_long")])
        await sender(chat).drain_once()
        async with chat.bot.services.database.sessions() as session:
            progress = await outbox.progress(session, "bulletin:1")
        assert progress.total == 4 and progress.finished == 4
        assert progress.by_status == {OutboxStatus.UNREACHABLE: 1, OutboxStatus.FAILED: 1, OutboxStatus.SENT: 2}
        assert progress.by_language == {"ar": {OutboxStatus.UNREACHABLE: 1, OutboxStatus.FAILED: 1},
                                        "ckb": {OutboxStatus.SENT: 1}, "en": {OutboxStatus.SENT: 1}}
        assert progress.by_reason == {"blocked": 1, "too_long": 1}
        assert progress.by_platform == {"console": {OutboxStatus.UNREACHABLE: 1, OutboxStatus.FAILED: 1,
                                                    OutboxStatus.SENT: 2}}


# ---------------------------------------------------------------------- priorities
async def test_interactive_rows_are_claimed_before_a_bulk_backlog(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        pids = await people(chat, 3)
        outbox = chat.bot.services.outbox
        async with chat.bot.services.database.sessions.begin() as session:
            await outbox.enqueue_many(session, [(ToParticipant(pid, "console"), Outbound("bulk")) for pid in pids[:2]
                                                for _ in range(100)], OutboxKind.BULLETIN, ref="big")
            await outbox.enqueue(session, ToParticipant(pids[2], "console"), OutboxKind.REPLY, Outbound("reply"))
        store = DeliveryStore(chat.bot.services.database, "console", per_queue=1)
        claim = await store.claim(1, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1), 60)
        assert [r.priority for r in claim.rows] == [Priority.INTERACTIVE]


# ---------------------------------------------------------------------- wake-ups
async def test_a_commit_wakes_the_sender_without_polling(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        [a] = await people(chat, 1)
        s = sender(chat, poll_seconds=3600)  # polling alone would not find the row during this test
        stop = asyncio.Event()
        services = chat.bot.services
        task = asyncio.create_task(run_delivery({"console": s}, services.database, services.outbox.wakeup, stop))
        await asyncio.sleep(0.2)  # the sender is idle, waiting
        with pytest.raises(RuntimeError):  # a rolled-back transaction rings nothing and leaves nothing
            async with services.database.sessions.begin() as session:
                await services.outbox.enqueue(session, ToParticipant(a, "console"), OutboxKind.BULLETIN, Outbound("no"))
                raise RuntimeError
        await queue(chat, a, "woken")
        for _ in range(200):
            if chat.transport.send_log:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 10)
        assert texts(chat.transport) == ["woken"]


@pytest.mark.postgres
async def test_a_commit_on_one_worker_wakes_the_sender_of_another(tmp_path: Path, keys: KeyRing) -> None:
    from tests.support import postgres_database, postgres_reachable

    if reason := await postgres_reachable():
        pytest.skip(reason)
    async with postgres_database() as url:
        settings = make_settings(url, tmp_path)
        async with open_chat(settings, keys) as producer, open_chat(settings, keys) as worker:
            [a] = await people(producer, 1)
            s = sender(worker, poll_seconds=3600)
            stop = asyncio.Event()
            services = worker.bot.services
            task = asyncio.create_task(run_delivery({"console": s}, services.database, services.outbox.wakeup, stop))
            await asyncio.sleep(0.5)  # listening
            await queue(producer, a, "from another worker")  # the producer's own sender is not running
            for _ in range(250):
                if worker.transport.send_log:
                    break
                await asyncio.sleep(0.02)
            stop.set()
            await asyncio.wait_for(task, 10)
            assert texts(worker.transport) == ["from another worker"]



async def test_each_persons_rows_leave_in_order_when_claimed_together(db_url: str, tmp_path: Path,
                                                                      keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        pids = await people(chat, 6)
        outbox = chat.bot.services.outbox
        for n in range(8):  # interleaved: each person's rows are far apart in the table
            async with chat.bot.services.database.sessions.begin() as session:
                await outbox.enqueue_many(session, [(ToParticipant(pid, "console"), Outbound(f"{n}"))
                                                    for pid in pids], OutboxKind.BULLETIN)
        await sender(chat).drain_once()
        for pid in pids:
            address = f"chat-50{pids.index(pid):02d}"
            assert [m.text for m in chat.transport.sent[address]] == [str(n) for n in range(8)]


async def test_rows_taken_over_while_on_the_wire_are_not_sent_by_the_old_holder(
        sqlite_url: str, tmp_path: Path, keys: KeyRing, caplog: pytest.LogCaptureFixture) -> None:
    from sqlalchemy import update

    async with open_chat(make_settings(sqlite_url, tmp_path), keys) as chat:
        [a] = await people(chat, 1)
        await queue(chat, a, "m1", "m2", "m3")
        slow = GatedTransport()
        services = chat.bot.services
        holder = OutboxSender(services.database, services.outbox, services.keys, slow,
                              OutboxSettings(lease_seconds=0.9), rate_per_second=1000)  # renewed every 0.3 s
        draining = asyncio.create_task(holder.drain_once())
        await asyncio.wait_for(slow.entered.wait(), 5)
        async with services.database.sessions.begin() as session:  # another worker's claim, as after a stall,
            await session.execute(update(OutboxMessage).where(OutboxMessage.status == "sending")  # which it renews
                                  .values(lease_token="another-worker",
                                          lease_until=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)))
        for _ in range(200):  # the holder's next renewal finds the rows gone, and says so
            if "taken over" in caplog.text:
                break
            await asyncio.sleep(0.02)
        assert "3 leased rows were taken over" in caplog.text  # m1 included: its outcome is not theirs to record
        slow.gate.set()
        await asyncio.wait_for(draining, 5)
        assert texts(slow) == ["m1"]  # m1 was already on the wire; m2 and m3 belong to the new holder
        assert [r.lease_token for r in await rows(chat)] == ["another-worker"] * 3
