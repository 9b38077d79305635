"""Prometheus metrics: what an operator watches, with no person in any label.

Labels are only platforms, kinds, statuses, outcomes, dialog and job names: fixed, small
sets. Never an id, an address, a pseudonym or any text a person wrote. The metrics live in
a :class:`CollectorRegistry` owned by the caller (no global registry), so tests and several
bots in one process do not share counters.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from bot.core.model import Address, Inbound, Outbound, SendOptions
from bot.core.transport import (
    DeliveryError,
    InboundHandler,
    PermanentDeliveryError,
    RecipientUnreachable,
    TransientDeliveryError,
    Transport,
)
from bot.storage.db import Database
from bot.storage.models import DialogState, OutboxMessage, utcnow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPEN_STATUSES = ("pending", "sending")
TURN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Every metric the bot exports, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.turns = Counter("civicbot_inbound_turns", "Inbound events handled, by platform and kind",
                             ["platform", "kind"], registry=r)
        self.turn_seconds = Histogram("civicbot_turn_duration_seconds",
                                      "Time to handle one inbound event and send its replies",
                                      ["platform"], buckets=TURN_BUCKETS, registry=r)
        self.sends = Counter("civicbot_outbound_sends", "Messages sent (replies and outbox), by outcome",
                             ["platform", "outcome"], registry=r)
        self.leader = Gauge("civicbot_leader", "1 while this worker is the leader", registry=r)
        self.leader_terms = Counter("civicbot_leader_terms", "Times this worker became the leader", registry=r)
        self.job_runs = Counter("civicbot_scheduled_job_runs", "Scheduled job runs, by job and outcome",
                                ["job", "outcome"], registry=r)
        self.ready = Gauge("civicbot_ready", "1 while /readyz answers 200", registry=r)
        self.up_since = Gauge("civicbot_start_time_seconds", "When this worker started (Unix time)", registry=r)
        self.up_since.set(time.time())

    def set_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)
        if leading:
            self.leader_terms.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # ------------------------------------------------------------------ instrumentation
    def measure_turns(self, handler: InboundHandler) -> InboundHandler:
        """Count each inbound event and time its handling (the router never raises)."""

        async def measured(inbound: Inbound) -> None:
            platform = str(inbound.platform)
            started = time.perf_counter()
            try:
                await handler(inbound)
            finally:
                self.turns.labels(platform, inbound.kind.value).inc()
                self.turn_seconds.labels(platform).observe(time.perf_counter() - started)

        return measured

    def measure_job(self, name: str, job: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        async def measured() -> Any:
            try:
                result = await job()
            except Exception:
                self.job_runs.labels(name, "error").inc()
                raise
            self.job_runs.labels(name, "ok").inc()
            return result

        return measured


class MeasuredTransport:
    """A transport whose sends are counted by outcome; everything else is the transport's own."""

    def __init__(self, transport: Transport, metrics: Metrics) -> None:
        self._transport = transport
        self._metrics = metrics
        self.platform = transport.platform
        self.capabilities = transport.capabilities

    @property
    def inner(self) -> Transport:
        return self._transport

    @property
    def rate_per_second(self) -> float:
        return self._transport.rate_per_second

    @property
    def paces_sends(self) -> bool:
        return self._transport.paces_sends

    @property
    def failure(self) -> BaseException | None:
        return self._transport.failure

    @failure.setter
    def failure(self, value: BaseException | None) -> None:
        self._transport.failure = value

    async def wait_stopped(self) -> None:
        await self._transport.wait_stopped()

    def __getattr__(self, name: str) -> Any:
        """The transport's own counters and state (``ready``, ``rate_limited``, ``webhook_refused``)."""
        return getattr(self._transport, name)

    async def start(self, on_inbound: InboundHandler) -> None:
        await self._transport.start(on_inbound)

    async def stop(self) -> None:
        await self._transport.stop()

    async def send(self, address: Address, message: Outbound, options: SendOptions | None = None) -> Any:
        platform = str(self.platform)
        try:
            delivery = await self._transport.send(address, message, options)
        except DeliveryError as exc:
            self._metrics.sends.labels(platform, send_outcome(exc)).inc()
            raise
        except Exception:
            self._metrics.sends.labels(platform, "error").inc()
            raise
        self._metrics.sends.labels(platform, "sent").inc()
        return delivery


def send_outcome(exc: DeliveryError) -> str:
    """A fixed label for a failed send (the reason codes themselves are not a closed set)."""
    if isinstance(exc, TransientDeliveryError):
        return "rate_limited" if exc.reason == "rate_limited" else "transient"
    if isinstance(exc, RecipientUnreachable):
        return "unreachable"
    if isinstance(exc, PermanentDeliveryError):
        return "rejected"
    return "error"


@dataclass(eq=False)  # registries key collectors by identity
class DatabaseStats(Collector):
    """Outbox depth, oldest due row and dialogs in progress, read from the database.

    Collected from a snapshot that :meth:`refresh` renews at most every ``min_interval``
    seconds, so frequent scrapes by several Prometheus servers cost one query each interval.
    """

    database: Database
    min_interval: float = 10.0
    clock: Callable[[], dt.datetime] = utcnow
    outbox: dict[tuple[str, str], int] = field(default_factory=dict)
    oldest_due: dict[str, float] = field(default_factory=dict)
    dialogs: dict[str, int] = field(default_factory=dict)
    refreshed_at: float = field(default=float("-inf"))
    failed: bool = False

    async def refresh(self) -> None:
        if time.monotonic() - self.refreshed_at < self.min_interval:
            return
        now = self.clock()
        try:
            async with self.database.sessions() as session:
                outbox = await session.execute(
                    select(OutboxMessage.kind, OutboxMessage.status, func.count())
                    .where(OutboxMessage.status.in_(OPEN_STATUSES))
                    .group_by(OutboxMessage.kind, OutboxMessage.status)
                )
                oldest = await session.execute(
                    select(OutboxMessage.platform, func.min(OutboxMessage.next_attempt_at))
                    .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
                    .group_by(OutboxMessage.platform)
                )
                dialogs = await session.execute(
                    select(DialogState.dialog, func.count()).group_by(DialogState.dialog)
                )
                self.outbox = {(str(k), str(s)): int(n) for k, s, n in outbox}
                self.oldest_due = {str(p): max((now - _aware(at)).total_seconds(), 0.0) for p, at in oldest}
                self.dialogs = {str(d): int(n) for d, n in dialogs}
        except Exception:  # noqa: BLE001 - /readyz reports the database; metrics keep the last snapshot
            self.failed = True
            return
        self.failed = False
        self.refreshed_at = time.monotonic()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        outbox = GaugeMetricFamily("civicbot_outbox_messages", "Outbox rows not yet done, by kind and status",
                                   labels=["kind", "status"])
        for (kind, status), count in sorted(self.outbox.items()):
            outbox.add_metric([kind, status], count)
        oldest = GaugeMetricFamily("civicbot_outbox_oldest_due_seconds",
                                   "Age of the oldest outbox row that is due and not sent, by platform",
                                   labels=["platform"])
        for platform, age in sorted(self.oldest_due.items()):
            oldest.add_metric([platform], age)
        dialogs = GaugeMetricFamily("civicbot_dialogs_in_progress", "Conversations in progress, by dialog",
                                    labels=["dialog"])
        for dialog, count in sorted(self.dialogs.items()):
            dialogs.add_metric([dialog], count)
        stale = GaugeMetricFamily("civicbot_database_stats_stale",
                                  "1 when the last refresh of the database figures failed")
        stale.add_metric([], 1 if self.failed else 0)
        yield from (outbox, oldest, dialogs, stale)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


class TransportCounters(Collector):
    """Counters the transports keep themselves: rate-limit answers (Telegram 429, Matrix
    M_LIMIT_EXCEEDED) and refused webhook calls. Transports the leader rebuilds each term are
    counted through their slot, which keeps the totals of the terms that ended."""

    def __init__(self, running: Callable[[], Iterable[Any]], slots: Iterable[Any] = ()) -> None:
        self._running = running
        self._slots = list(slots)

    def collect(self) -> Iterator[CounterMetricFamily]:
        limited: dict[str, int] = {}
        refused = 0
        for transport in self._running():
            platform = str(transport.platform)
            limited[platform] = limited.get(platform, 0) + int(getattr(transport, "rate_limited", 0))
            refused += int(getattr(transport, "webhook_refused", 0))
        for slot in self._slots:
            platform = str(slot.platform)
            limited[platform] = limited.get(platform, 0) + slot.retired_rate_limited
        family = CounterMetricFamily("civicbot_rate_limited",
                                     "Rate-limit answers from a platform (Telegram 429, Matrix M_LIMIT_EXCEEDED)",
                                     labels=["platform"])
        for platform, count in sorted(limited.items()):
            family.add_metric([platform], count)
        yield family
        yield CounterMetricFamily("civicbot_webhook_refused", "Webhook calls refused for a missing or wrong secret",
                                  value=refused)

    def describe(self) -> Iterable[CounterMetricFamily]:
        return []


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
