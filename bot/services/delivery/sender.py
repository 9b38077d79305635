"""One platform's sender: claims batches, sends them concurrently in per-recipient order, records
outcomes in batches, and keeps going while the previous batch is still on the wire.

The number of rows claimed but not yet recorded is bounded (``outbox.window``): it bounds both
how long a newly queued interactive reply waits behind bulk rows already claimed, and how many
rows a crash can leave sent but unrecorded (those are sent again once their lease runs out;
Matrix drops the repeat by transaction id, Telegram cannot).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.config import OutboxSettings
from bot.core.logsafe import describe
from bot.core.model import Address, Outbound, Platform, Pseudonym, SendOptions
from bot.core.pacing import Pacer
from bot.core.security import DataKey, DecryptionError, KeyRing
from bot.core.transport import PermanentDeliveryError, RecipientUnreachable, TransientDeliveryError, Transport
from bot.services.delivery.outcomes import OutcomeRecorder
from bot.services.delivery.store import Claim, ClaimedRow, DeliveryStore, Outcome
from bot.services.outbox import Outbox, OutboxStatus, Priority
from bot.storage.db import Database
from bot.storage.models import address_context, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DrainReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unreachable: int = 0

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed + self.unreachable


@dataclass(slots=True)
class _Opened:
    """A claimed row ready to send, or the reason it cannot be."""

    row: ClaimedRow
    address: Address | None = None
    message: Outbound | None = None
    problem: Outcome | None = None
    done: bool = False
    lost: bool = False  # the lease could not be renewed: another sender holds the row now


class OutboxSender:
    """Drains one transport's rows: see the module docstring for the pipeline and its bounds."""

    def __init__(
        self, database: Database, outbox: Outbox, keys: KeyRing, transport: Transport, settings: OutboxSettings,
        *, rate_per_second: float, transport_paces: bool = False, clock: Callable[[], dt.datetime] = utcnow,
        only_for: Pseudonym | None = None,
    ) -> None:
        """``rate_per_second`` is the platform's sending rate; unless the transport paces its own
        sends (``transport_paces``, Telegram's limiter), the sender spaces them to it."""
        self._outbox = outbox
        self._keys = keys
        self._transport = transport
        self._settings = settings
        self._platform = Platform(str(transport.platform))
        self._store = DeliveryStore(database, self._platform, settings.per_recipient_batch, only_for)
        self._recorder = OutcomeRecorder(self._store, settings, clock)
        self._pacer = None if transport_paces else Pacer(rate_per_second)
        self._window = settings.window_for(rate_per_second)
        self._margin = dt.timedelta(seconds=min(settings.lease_seconds / 4, 30.0))
        self._clock = clock
        self._gate = asyncio.Semaphore(settings.concurrency)
        self._wake = asyncio.Event()
        self._claimed = 0  # rows claimed and not yet recorded
        self._more = False  # a recorded claim had left rows behind: claim again when there is room
        self._room = asyncio.Event()
        outbox.wakeup.subscribe(self._platform, self.wake)

    @property
    def platform(self) -> Platform:
        return self._platform

    @property
    def in_flight(self) -> int:
        """Rows claimed and not yet recorded: at most ``outbox.window``."""
        return self._claimed

    def wake(self) -> None:
        """New rows were committed: look now instead of at the next poll."""
        self._wake.set()

    # ------------------------------------------------------------------ the long-running loop
    async def run(self, stop: asyncio.Event) -> None:
        """Claim and send until ``stop``; then finish what was claimed (at most ``window`` rows)."""
        recorder = asyncio.create_task(self._recorder.run(), name=f"outbox-record-{self._platform}")
        deliveries: set[asyncio.Task[None]] = set()
        stop_waiter = asyncio.ensure_future(stop.wait())
        look = True  # whether a claim may find rows: after a wake-up, a poll, or a claim that left rows
        try:
            while not stop.is_set():
                room = self._window - self._claimed
                if room > 0 and (look or self._more):
                    self._wake.clear()
                    self._more = False
                    claim = await self._claim(min(room, self._settings.batch_size))
                    look = claim is None or claim.more
                    if claim is not None and claim.rows:
                        self._claimed += len(claim.rows)
                        task = asyncio.create_task(self._deliver_claim(claim, release_slots=True))
                        deliveries.add(task)
                        task.add_done_callback(deliveries.discard)
                        continue
                look = await self._idle(stop_waiter, busy=room <= 0 or bool(deliveries)) or look
        finally:
            stop_waiter.cancel()
            if deliveries:
                await asyncio.gather(*deliveries, return_exceptions=True)
            self._recorder.close()
            await asyncio.gather(recorder, return_exceptions=True)

    async def _claim(self, limit: int) -> Claim | None:
        try:
            return await self._store.claim(limit, self._clock(), self._settings.lease_seconds)
        except Exception as exc:  # the loop must survive a database hiccup
            log.error("outbox claim failed on %s: %s", self._platform, describe(exc))
            return None

    async def _idle(self, stop_waiter: asyncio.Future[Any], *, busy: bool) -> bool:
        """Wait for a wake-up, room in the window, the next due row, or the poll period; returns
        whether a claim is worth trying (anything but room freed by rows that leave none behind)."""
        self._room.clear()
        if self._more and self._claimed < self._window:
            return False
        timeout = self._settings.poll_seconds
        if not busy:
            with contextlib.suppress(Exception):
                due = await self._store.next_due(self._clock())
                if due is not None:
                    timeout = min(timeout, max((due - self._clock()).total_seconds(), 0.005))
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait()),
                                              asyncio.ensure_future(self._room.wait())]
        try:
            done, _ = await asyncio.wait([stop_waiter, *waiters], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return not done or waiters[0] in done

    def _recorded(self, count: int, more: bool) -> None:
        self._claimed -= count
        self._more = self._more or more
        self._room.set()

    # ------------------------------------------------------------------ one pass, for tests and the console
    async def drain_once(self) -> DrainReport:
        """Send everything due now (batch after batch) and record it; returns what happened.

        If :meth:`run` is active, what it has on the wire is finished first, so the console can
        deliver everything before it exits."""
        while self._claimed > 0:
            self._room.clear()
            await self._room.wait()
        before = self._recorder.totals()
        while True:
            claim = await self._store.claim(self._settings.batch_size, self._clock(), self._settings.lease_seconds)
            if not claim.rows:
                break
            await self._deliver_claim(claim, release_slots=False)
            await self._recorder.flush()
        after = self._recorder.totals()
        sent, retried, failed, unreachable = (a - b for a, b in zip(after, before, strict=True))
        if sent or retried or failed or unreachable:
            log.info("outbox %s: sent=%d retry=%d failed=%d unreachable=%d",
                     self._platform, sent, retried, failed, unreachable)
        return DrainReport(sent, retried, failed, unreachable)

    # ------------------------------------------------------------------ delivering one claim
    async def _deliver_claim(self, claim: Claim, *, release_slots: bool) -> None:
        """Open every row (one unwrap per person), then send each recipient's rows in order,
        recipients concurrently; renew the lease while the claim is on the wire."""
        done_rows = 0

        def finished(outcome: Outcome) -> None:
            nonlocal done_rows
            done_rows += 1
            self._recorder.add(outcome, (lambda: self._recorded(1, claim.more)) if release_slots else None)

        opened = self._open(claim)
        keeper = asyncio.create_task(self._keep_leased(claim, opened))
        try:
            by_queue: dict[str, list[_Opened]] = {}
            for item in opened:
                by_queue.setdefault(item.row.queue, []).append(item)
            queues = deque(by_queue.values())

            async def worker() -> None:
                # A few workers take recipients in turn: no task per recipient on a bulk claim.
                while queues:
                    await self._send_queue(claim, queues.popleft(), finished)

            await asyncio.gather(*(worker() for _ in range(min(self._settings.concurrency, len(queues)))))
        except BaseException:
            raise
        finally:
            keeper.cancel()
            with contextlib.suppress(BaseException):
                await keeper

    async def _send_queue(self, claim: Claim, items: list[_Opened], finished: Callable[[Outcome], None]) -> None:
        """One recipient's rows, in order; after the first that is not sent, the rest go back."""
        async with self._gate:
            for index, item in enumerate(items):
                outcome = await self._send_one(claim, item)
                item.done = True
                finished(outcome)
                if outcome.status is not OutboxStatus.SENT:
                    for rest in items[index + 1:]:
                        rest.done = True
                        finished(Outcome(rest.row.id, claim.token, OutboxStatus.PENDING, released=True))
                    return

    async def _send_one(self, claim: Claim, item: _Opened) -> Outcome:
        row = item.row
        if item.problem is not None:
            return item.problem
        if item.lost or not self._lease_holds(claim):
            return Outcome(row.id, claim.token, OutboxStatus.PENDING, released=True)
        assert item.address is not None and item.message is not None
        if self._pacer is not None:
            await self._pacer.wait()
            if not self._lease_holds(claim):
                return Outcome(row.id, claim.token, OutboxStatus.PENDING, released=True)
        options = SendOptions(transaction_id=row.txn_id, bulk=row.priority != Priority.INTERACTIVE)
        threaded = row.thread is not None and row.staff_destination is not None and self._transport.capabilities.threads
        message, root = item.message, None
        try:
            if threaded:
                assert row.thread is not None and row.staff_destination is not None
                root = await self._store.thread_root(row.staff_destination, row.thread, item.address.value)
                if root is not None:
                    message = dataclasses.replace(message, thread_root=root)
            delivery = await self._transport.send(item.address, message, options)
            if threaded and root is None and delivery.message_id:
                assert row.thread is not None and row.staff_destination is not None
                await self._store.start_thread(row.staff_destination, row.thread, item.address.value,
                                               delivery.message_id)
        except RecipientUnreachable as exc:
            return Outcome(row.id, claim.token, OutboxStatus.UNREACHABLE, exc.reason, participant_id=row.participant_id)
        except TransientDeliveryError as exc:
            return self._retry(claim, row, exc.reason, exc.retry_after)
        except PermanentDeliveryError as exc:
            return Outcome(row.id, claim.token, OutboxStatus.FAILED, exc.reason)
        except Exception as exc:  # an unexpected transport bug: retry, never lose the row
            log.error("outbox send raised %s", describe(exc))
            return self._retry(claim, row, type(exc).__name__, None)
        return Outcome(row.id, claim.token, OutboxStatus.SENT)

    def _lease_holds(self, claim: Claim) -> bool:
        """Send only while the lease has a margin left, so nobody else can claim the row meanwhile."""
        return self._clock() < claim.lease_until - self._margin

    def _retry(self, claim: Claim, row: ClaimedRow, reason: str, retry_after: float | None) -> Outcome:
        if row.attempts >= self._settings.max_attempts:
            return Outcome(row.id, claim.token, OutboxStatus.FAILED, reason)
        delay = self._backoff(row.attempts, retry_after)
        return Outcome(row.id, claim.token, OutboxStatus.PENDING, reason,
                       retry_at=self._clock() + dt.timedelta(seconds=delay))

    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        exponential = self._settings.base_backoff_seconds * 2 ** max(attempts - 1, 0)
        jittered = min(exponential, self._settings.max_backoff_seconds) * random.uniform(0.8, 1.2)
        return max(jittered, retry_after or 0.0)

    # ------------------------------------------------------------------ opening rows
    def _open(self, claim: Claim) -> list[_Opened]:
        """Payloads and addresses, one key unwrap per person; a row that does not open is retried
        and, after ``max_attempts``, failed, without holding up the others."""
        keys: dict[int, DataKey | Exception] = {}
        opened: list[_Opened] = []
        for row in claim.rows:
            item = _Opened(row)
            opened.append(item)
            try:
                key = self._data_key(row, keys)
                item.address = self._address(row, key)
                if item.address is None:
                    item.problem = self._no_address(claim, row)
                    continue
                if row.payload_enc is None:
                    raise DecryptionError("payload missing")
                item.message = self._outbox.open_payload(row.payload_enc, row.txn_id, key, row.queue)
            except (DecryptionError, ValueError, KeyError, TypeError, LookupError) as exc:
                log.warning("outbox row cannot be opened on %s: %s", self._platform, type(exc).__name__)
                item.problem = self._retry(claim, row, "unreadable", None)
        return opened

    def _data_key(self, row: ClaimedRow, cache: dict[int, DataKey | Exception]) -> DataKey | None:
        if row.participant_id is None:
            return None
        cached = cache.get(row.participant_id)
        if cached is None:
            try:
                if row.wrapped_key is None:
                    raise LookupError("participant has no data key")
                cached = self._keys.unwrap(row.wrapped_key, str(row.participant_id))
            except Exception as exc:
                cached = exc
            cache[row.participant_id] = cached
        if isinstance(cached, Exception):
            raise cached
        return cached

    def _address(self, row: ClaimedRow, key: DataKey | None) -> Address | None:
        if row.staff_destination is not None:
            value = self._outbox.staff_addresses.resolve(row.staff_destination, self._platform)
            return Address(self._platform, value) if value is not None else None
        if row.address_enc is None or not row.reachable or key is None:
            return None
        return Address(self._platform, key.open(row.address_enc, address_context(row.participant_id or 0,
                                                                                 self._platform)))

    def _no_address(self, claim: Claim, row: ClaimedRow) -> Outcome:
        if row.staff_destination is not None:  # configuration can be fixed: retry, then fail
            return self._retry(claim, row, "staff_destination_unset", None)
        return Outcome(row.id, claim.token, OutboxStatus.UNREACHABLE, "no_address")

    # ------------------------------------------------------------------ leases
    async def _keep_leased(self, claim: Claim, opened: list[_Opened]) -> None:
        """Renew the claim's lease at a third of its length while rows are still to be sent."""
        lease = self._settings.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            waiting = [item.row.id for item in opened if not item.done]
            if not waiting:
                return
            try:
                held = await self._store.renew(claim, waiting, self._clock() + dt.timedelta(seconds=lease))
            except Exception as exc:
                log.warning("outbox lease renewal failed on %s: %s", self._platform, describe(exc))
                continue
            lost = [item for item in opened if item.row.id not in held and not item.done]
            if lost:  # (rows finished meanwhile are not lost: their outcome is on its way)
                for item in lost:
                    item.lost = True  # never sent from here: the new holder sends it
                log.warning("outbox %s: %d leased rows were taken over", self._platform, len(lost))
