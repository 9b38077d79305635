"""The durable outbox: bulk messages are rows first, deliveries second.

Rows are added in the same transaction as the work that creates them. A sender per
transport claims due rows with a lease, sends them at the configured rate and records
the outcome; a crash leaves leased rows that are claimed again once the lease runs out.
Matrix sends reuse the row's transaction id, so a resend after a crash is delivered once.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import OutboxSettings
from bot.core.logsafe import describe
from bot.core.model import Address, Choice, Delivery, Direction, Outbound, PromptId, Pseudonym, SendOptions
from bot.core.pacing import Pacer
from bot.core.security import KeyRing
from bot.core.transport import PermanentDeliveryError, RecipientUnreachable, TransientDeliveryError, Transport
from bot.services.participants import Participants
from bot.services.staff_destinations import StaffDestinations
from bot.storage.db import Database
from bot.storage.models import OutboxMessage, Participant, outbox_payload_context, utcnow

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, FAILED, UNREACHABLE = "pending", "sending", "sent", "failed", "unreachable"


def _context(txn_id: str) -> str:
    return outbox_payload_context(txn_id)


def encode_message(message: Outbound) -> str:
    return json.dumps(
        {
            "text": message.text,
            "choices": [[c.key, c.label] for c in message.choices],
            "prompt_id": message.prompt_id,
            "direction": message.direction.value,
            "sensitive": message.sensitive,
            "language": message.language,
            "image": base64.b64encode(message.image).decode() if message.image else None,
            "image_name": message.image_name,
            "numbered": message.numbered,
            "thread_root": message.thread_root,
        },
        ensure_ascii=False,
    )


def decode_message(payload: str) -> Outbound:
    data = json.loads(payload)
    return Outbound(
        text=data["text"],
        choices=tuple(Choice(k, label) for k, label in data["choices"]),
        prompt_id=PromptId(data["prompt_id"]) if data["prompt_id"] else None,
        direction=Direction(data["direction"]),
        sensitive=data["sensitive"],
        language=data["language"],
        image=base64.b64decode(data["image"]) if data["image"] else None,
        image_name=data["image_name"],
        numbered=data.get("numbered", True),
        thread_root=data.get("thread_root"),
    )


class Outbox:
    """Adds messages to the outbox inside the caller's transaction."""

    __slots__ = ("_keys",)

    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys

    async def enqueue(
        self, session: AsyncSession, participant_id: int, platform: str, kind: str, message: Outbound,
        ref: str | None = None,
    ) -> OutboxMessage:
        txn_id = uuid.uuid4().hex
        row = OutboxMessage(
            participant_id=participant_id, platform=platform, kind=kind, ref=ref, txn_id=txn_id,
            payload_enc=self._keys.seal_text(encode_message(message), _context(txn_id)),
            status=PENDING, attempts=0, next_attempt_at=utcnow(),
        )
        session.add(row)
        await session.flush()
        return row

    async def enqueue_staff(
        self, session: AsyncSession, destination: str, platform: str, kind: str, message: Outbound,
        ref: str | None = None,
    ) -> OutboxMessage:
        """A message to a staff destination (``bot.services.staff_destinations``), not to a participant."""
        txn_id = uuid.uuid4().hex
        row = OutboxMessage(
            participant_id=None, destination=destination, platform=platform, kind=kind, ref=ref, txn_id=txn_id,
            payload_enc=self._keys.seal_text(encode_message(message), _context(txn_id)),
            status=PENDING, attempts=0, next_attempt_at=utcnow(),
        )
        session.add(row)
        await session.flush()
        return row

    async def cancel(self, session: AsyncSession, ref: str) -> int:
        """Delete the rows of bulk send ``ref`` that were not sent yet; returns how many.

        Rows a sender holds at this moment (``sending``) are finishing and are left alone.
        """
        result = await session.execute(
            delete(OutboxMessage).where(OutboxMessage.ref == ref, OutboxMessage.status == PENDING)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def read(self, row: OutboxMessage) -> Outbound:
        return decode_message(self._keys.open_text(row.payload_enc, _context(row.txn_id)))


class DeliveryHook(Protocol):
    """Lets the feature that queued a kind of row finish it at send time (e.g. a Matrix thread root
    known only once an earlier row was sent) and learn what was sent."""

    async def prepare(self, session: AsyncSession, row: OutboxMessage, message: Outbound) -> Outbound | None:
        """The message to send, or None to try again shortly (an earlier row must go first)."""

    async def delivered(self, session: AsyncSession, row: OutboxMessage, delivery: Delivery) -> None:
        """Called in the transaction that records the row as sent."""


@dataclass(frozen=True, slots=True)
class DrainReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unreachable: int = 0

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed + self.unreachable


class OutboxSender:
    """Drains one transport's rows at its rate and records every outcome."""

    def __init__(
        self, database: Database, outbox: Outbox, participants: Participants, transport: Transport,
        settings: OutboxSettings, rate_per_second: float, clock: Callable[[], dt.datetime] = utcnow,
        staff: StaffDestinations | None = None, hooks: Mapping[str, DeliveryHook] | None = None,
        only_for: Pseudonym | None = None,
    ) -> None:
        """``only_for``: serve one person's rows only. Each console window is one person, and
        several may share a database: a window must not print (and use up) another's messages."""
        self._only_for = only_for
        self._db = database
        self._staff = staff
        self._hooks = dict(hooks or {})
        self._outbox = outbox
        self._participants = participants
        self._transport = transport
        self._settings = settings
        self._pacer = Pacer(rate_per_second)
        self._clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Tell the sender new rows are due (saves waiting for the next poll)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                report = await self.drain_once()
            except Exception as exc:  # the loop must survive a database hiccup
                log.error("outbox drain failed: %s", describe(exc))
                report = DrainReport()
            if report.handled:
                continue
            self._wake.clear()
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            await asyncio.wait(waiters, timeout=self._settings.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def drain_once(self) -> DrainReport:
        claimed = await self._claim()
        # One queue per recipient keeps each person's messages in order, while different
        # recipients are served concurrently: a platform's per-chat pause holds up one chat only.
        queues: dict[int | str, list[int]] = {}
        for row_id, recipient in claimed:
            queues.setdefault(recipient, []).append(row_id)
        outcomes: list[str] = []
        gate = asyncio.Semaphore(self._settings.concurrency)

        async def drain_queue(row_ids: list[int]) -> None:
            async with gate:
                for row_id in row_ids:
                    outcomes.append(await self._deliver(row_id))

        await asyncio.gather(*(drain_queue(ids) for ids in queues.values()))
        sent, retried = outcomes.count(SENT), outcomes.count(PENDING)
        failed, unreachable = outcomes.count(FAILED), outcomes.count(UNREACHABLE)
        if claimed:
            log.info("outbox %s: sent=%d retry=%d failed=%d unreachable=%d",
                     self._transport.platform, sent, retried, failed, unreachable)
        return DrainReport(sent, retried, failed, unreachable)

    async def _claim(self) -> list[tuple[int, int | str]]:
        now = self._clock()
        async with self._db.sessions.begin() as session:
            query = (
                select(OutboxMessage)
                .where(
                    OutboxMessage.platform == self._transport.platform,
                    or_(
                        and_(OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= now),
                        and_(OutboxMessage.status == SENDING, OutboxMessage.lease_until <= now),
                    ),
                )
                .order_by(OutboxMessage.id)
                .limit(self._settings.batch_size)
            )
            if self._only_for is not None:
                query = query.where(OutboxMessage.participant_id.in_(
                    select(Participant.id).where(Participant.pseudonym == self._only_for)))
            if not self._db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            rows = list(await session.scalars(query))
            lease = now + dt.timedelta(seconds=self._settings.lease_seconds)
            for row in rows:
                row.status, row.lease_until, row.attempts = SENDING, lease, row.attempts + 1
            return [(row.id, row.participant_id if row.participant_id is not None else row.destination or "")
                    for row in rows]

    async def _deliver(self, row_id: int) -> str:
        async with self._db.sessions.begin() as session:
            row = await session.get(OutboxMessage, row_id)
            if row is None:  # erased meanwhile (/delete_me cascades)
                return FAILED
            address = await self._address(session, row)
            if address is None:
                return self._finish(row, UNREACHABLE, "no_address")
            message: Outbound | None = self._outbox.read(row)
            hook = self._hooks.get(row.kind)
            if hook is not None and message is not None:
                message = await hook.prepare(session, row, message)
            if message is None:  # not yet: an earlier row has to be sent first
                row.status, row.lease_until = PENDING, None
                row.next_attempt_at = self._clock() + dt.timedelta(seconds=self._settings.base_backoff_seconds)
                row.attempts = max(row.attempts - 1, 0)
                return PENDING
            txn_id = row.txn_id
        await self._pacer.wait()
        try:
            delivery = await self._transport.send(address, message, SendOptions(transaction_id=txn_id))
        except RecipientUnreachable as exc:
            return await self._record(row_id, UNREACHABLE, exc.reason, unreachable=True)
        except TransientDeliveryError as exc:
            return await self._record(row_id, PENDING, exc.reason, retry_after=exc.retry_after)
        except PermanentDeliveryError as exc:
            return await self._record(row_id, FAILED, exc.reason)
        except Exception as exc:  # an unexpected transport bug: retry, never lose the row
            log.error("outbox send raised %s", describe(exc))
            return await self._record(row_id, PENDING, type(exc).__name__)
        return await self._record(row_id, SENT, None, delivery=delivery)

    async def _address(self, session: AsyncSession, row: OutboxMessage) -> Address | None:
        if row.participant_id is not None:
            return await self._participants.address_of(session, row.participant_id, row.platform)
        target = self._staff.resolve(row.destination or "") if self._staff is not None else None
        return target.address if target is not None and target.platform == row.platform else None

    async def _record(
        self, row_id: int, status: str, reason: str | None, *, retry_after: float | None = None,
        unreachable: bool = False, delivery: Delivery | None = None,
    ) -> str:
        async with self._db.sessions.begin() as session:
            row = await session.get(OutboxMessage, row_id)
            if row is None:
                return status
            if unreachable and row.participant_id is not None:
                await self._participants.mark_unreachable(session, row.participant_id, row.platform, reason or "")
            hook = self._hooks.get(row.kind)
            if status == SENT and delivery is not None and hook is not None:
                await hook.delivered(session, row, delivery)
            if status == PENDING and row.attempts >= self._settings.max_attempts:
                status = FAILED
            if status == PENDING:
                row.next_attempt_at = self._clock() + dt.timedelta(seconds=self._backoff(row.attempts, retry_after))
            return self._finish(row, status, reason)

    def _finish(self, row: OutboxMessage, status: str, reason: str | None) -> str:
        row.status, row.last_error, row.lease_until = status, reason[:64] if reason else None, None
        if status == SENT:
            row.sent_at = self._clock()
        if status != PENDING:
            # Done with for good: the content goes (confidential case messages above all); the
            # metadata stays for the delivery statistics until retention.
            row.payload_enc = b""
        return status

    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        exponential = self._settings.base_backoff_seconds * 2 ** max(attempts - 1, 0)
        jittered = min(exponential, self._settings.max_backoff_seconds) * random.uniform(0.8, 1.2)
        return max(jittered, retry_after or 0.0)
