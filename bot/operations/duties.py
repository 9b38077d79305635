"""What a worker runs, and what only the leader runs, with their start and stop in order.

A duty is started when this worker becomes the leader and stopped when it stops being one
(or shuts down). Transports that only the leader may run (the Matrix sync, Telegram long
polling) are built afresh for each term and reached by the rest of the bot through a
:class:`TransportSlot`, which refuses sends while no term is running: the caller's message
then goes to the outbox, and the next leader sends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.core.model import Address, Capabilities, Delivery, Inbound, Outbound, Platform, SendOptions
from bot.core.transport import (
    ChatErasure,
    ErasesChats,
    ForgetsPeople,
    InboundHandler,
    TransientDeliveryError,
    Transport,
    TransportStartupError,
)

log = logging.getLogger(__name__)


Job = Callable[[], Awaitable[object]]
JobWrapper = Callable[[str, Job], Job]


class Duty(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(slots=True)
class Failure:
    """Why the worker must end: a component that stopped for good."""

    component: str
    reason: str


class FailureWatch:
    """Collects the first fatal failure of any running component; the worker then exits 1."""

    def __init__(self) -> None:
        self._failed = asyncio.Event()
        self.failure: Failure | None = None
        self._watchers: set[asyncio.Task[None]] = set()

    def report(self, component: str, reason: str) -> None:
        if self.failure is None:
            self.failure = Failure(component, reason)
        self._failed.set()

    async def wait(self) -> Failure:
        await self._failed.wait()
        assert self.failure is not None
        return self.failure

    def watch_transport(self, transport: Transport) -> Callable[[], None]:
        """Report ``transport`` when it ends by itself (``wait_stopped()``); the returned callable
        stops watching (for a planned stop)."""

        async def watch() -> None:
            try:
                await transport.wait_stopped()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the transport's failure attribute says why
                pass
            failure = transport.failure
            self.report(f"{transport.platform} transport", _reason(failure) if failure else "stopped")

        task = asyncio.get_running_loop().create_task(watch())
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

        def unwatch() -> None:
            task.cancel()

        return unwatch


def _reason(failure: BaseException) -> str:
    """A transport's startup errors are written to be shown (no secrets); anything else by type."""
    return str(failure) if isinstance(failure, TransportStartupError) else type(failure).__name__


class TurnGate:
    """Counts turns in flight per platform, so a stop can let them finish and hold back new ones.

    A held-back event was not handled, so it is not lost: Matrix delivers it again from the
    last checkpoint to whichever worker syncs next.
    """

    def __init__(self) -> None:
        self._in_flight: dict[str, int] = {}
        self._closed: dict[str, asyncio.Event] = {}
        self._idle: dict[str, asyncio.Event] = {}

    def wrap(self, handler: InboundHandler) -> InboundHandler:
        async def gated(inbound: Inbound) -> None:
            async with self.turn(str(inbound.platform)):
                await handler(inbound)

        return gated

    @asynccontextmanager
    async def turn(self, platform: str) -> AsyncIterator[None]:
        closed = self._closed.get(platform)
        if closed is not None and closed.is_set():
            await asyncio.Event().wait()  # held until the transport cancels it at stop
        self._in_flight[platform] = self._in_flight.get(platform, 0) + 1
        self._idle.setdefault(platform, asyncio.Event()).clear()
        try:
            yield
        finally:
            self._in_flight[platform] -= 1
            if self._in_flight[platform] == 0:
                self._idle[platform].set()

    def in_flight(self, platform: str | None = None) -> int:
        if platform is None:
            return sum(self._in_flight.values())
        return self._in_flight.get(platform, 0)

    async def close(self, platform: str, timeout: float) -> bool:
        """Hold back new turns of ``platform`` and wait for those in flight; False if some outlived ``timeout``."""
        self._closed.setdefault(platform, asyncio.Event()).set()
        if self.in_flight(platform) == 0:
            return True
        try:
            await asyncio.wait_for(self._idle[platform].wait(), timeout)
            return True
        except TimeoutError:
            return False

    def reopen(self, platform: str) -> None:
        if platform in self._closed:
            self._closed[platform].clear()


class TransportSlot:
    """Stands for a transport that only the leader runs; sends go to the current term's instance."""

    def __init__(self, platform: Platform, capabilities: Capabilities, rate_per_second: float,
                 paces_sends: bool = False) -> None:
        self.platform = platform
        self.capabilities = capabilities
        self._rate = rate_per_second
        self._paces = paces_sends
        self._current: Transport | None = None
        self._stopped = asyncio.Event()
        self.failure: BaseException | None = None  # each term's transport reports its own (FailureWatch)
        self.retired_rate_limited = 0  # rate-limit answers seen by the transports of ended terms

    @property
    def rate_per_second(self) -> float:
        return self._rate

    @property
    def paces_sends(self) -> bool:
        return self._paces

    @property
    def current(self) -> Transport | None:
        return self._current

    def attach(self, transport: Transport) -> None:
        self._current = transport

    def detach(self) -> None:
        if self._current is not None:
            self.retired_rate_limited += int(getattr(self._current, "rate_limited", 0))
        self._current = None

    async def start(self, on_inbound: InboundHandler) -> None:
        """Started by its :class:`LeaderTransportDuty`, not by the caller."""

    async def stop(self) -> None:
        """Its transport is stopped by its :class:`LeaderTransportDuty`; the slot only ends."""
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def send(self, address: Address, message: Outbound, options: SendOptions | None = None) -> Delivery:
        transport = self._current
        if transport is None:
            raise TransientDeliveryError("not_leader")
        return await transport.send(address, message, options)

    async def edit(self, address: Address, message_id: str, message: Outbound) -> Delivery:
        transport = self._current
        if transport is None:
            raise TransientDeliveryError("not_leader")
        return await transport.edit(address, message_id, message)

    async def forget(self, address: Address) -> None:
        """An erased person's platform state (a Matrix room, its keys) goes on the leader's transport;
        elsewhere the request stays and the leader's scheduled job takes it."""
        transport = self._current
        if transport is None:
            raise TransientDeliveryError("not_leader")
        if isinstance(transport, ForgetsPeople):
            await transport.forget(address)

    async def erase_chat(self, address: Address) -> ChatErasure:
        """``/panic``'s clearing of the chat, by the transport that holds it (the leader's)."""
        transport = self._current
        if transport is None or not isinstance(transport, ErasesChats):
            raise TransientDeliveryError("not_leader")
        return await transport.erase_chat(address)


class LeaderTransportDuty:
    """A transport built, started and stopped once per leadership term."""

    def __init__(self, slot: TransportSlot, build: Callable[[], Transport], handler: InboundHandler,
                 gate: TurnGate, failures: FailureWatch, grace_seconds: float, *,
                 hold_back_turns: bool) -> None:
        self.name = f"{slot.platform} transport"
        self._slot = slot
        self._build = build
        self._handler = handler
        self._gate = gate
        self._failures = failures
        self._grace = grace_seconds
        # Telegram finishes its queued updates inside stop(); Matrix cancels its sync, so its turns
        # in flight are let finish first and new ones held back (Matrix delivers those again).
        self._hold_back = hold_back_turns
        self._running: Transport | None = None
        self._unwatch: Callable[[], None] = lambda: None

    async def start(self) -> None:
        transport = self._build()
        self._gate.reopen(str(self._slot.platform))
        self._running = transport
        await transport.start(self._handler)
        self._slot.attach(transport)
        self._unwatch = self._failures.watch_transport(transport)

    async def stop(self) -> None:
        transport, self._running = self._running, None
        self._slot.detach()
        self._unwatch()
        if transport is None:
            return
        if self._hold_back and not await self._gate.close(str(self._slot.platform), self._grace):
            log.warning("%s: turns still running at stop; they will be handled again", self.name)
        await transport.stop()


class SenderDuty:
    """An outbox sender loop, run by the leader only: one sender per platform sees every bulk
    send, so the platform's per-bot limits hold however many workers there are."""

    def __init__(self, name: str, run: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
                 release: Callable[[], Awaitable[int]] | None, grace_seconds: float) -> None:
        self.name = name
        self._run = run
        self._release = release
        self._grace = grace_seconds
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(self._stop))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        done, _ = await asyncio.wait({task}, timeout=self._grace)
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._release is not None:
            released = await self._release()
            if released:
                log.info("%s stopped: %d leases handed back to the next sender", self.name, released)


class SchedulerDuty:
    """The scheduler runs on the leader only; every job is also safe if it runs twice.

    ``build(track)`` builds the scheduler with each job wrapped by ``track``, so that a stop
    lets the runs in progress finish (within ``grace_seconds``) before the database closes.
    """

    def __init__(self, build: Callable[[JobWrapper], Any], grace_seconds: float) -> None:
        self.name = "scheduler"
        self._build = build
        self._grace = grace_seconds
        self._scheduler: Any = None
        self._running: set[asyncio.Task[Any]] = set()

    def track(self, name: str, job: Job) -> Job:
        async def tracked() -> object:
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                return await job()
            except asyncio.CancelledError:
                log.warning("scheduled job %s was cut short by the stop; it runs again later", name)
                return None
            finally:
                self._running.discard(task)

        return tracked

    async def start(self) -> None:
        self._scheduler = self._build(self.track)
        self._scheduler.start()

    async def stop(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        running = set(self._running)
        if running:
            _, late = await asyncio.wait(running, timeout=self._grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)


@dataclass
class LeaderDuties:
    """Starts the duties in order when elected; stops the started ones in reverse when deposed."""

    duties: Sequence[Duty]
    started: list[Duty] = field(default_factory=list)
    on_change: Callable[[bool], None] = lambda leading: None

    async def start(self) -> None:
        self.on_change(True)
        for duty in self.duties:
            self.started.append(duty)
            await duty.start()
            log.info("leader duty started: %s", duty.name)

    async def stop(self) -> None:
        while self.started:
            duty = self.started.pop()
            try:
                await duty.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others regardless
                log.error("stopping %s failed: %s", duty.name, type(exc).__name__)
        self.on_change(False)
