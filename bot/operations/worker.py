"""One ``civicbot run`` worker: what every worker runs, the leader's duties, and a graceful stop.

Every worker takes inbound traffic its transports can share (Telegram webhooks behind a
reverse proxy). The leader alone runs the duties (see :mod:`bot.operations.duties`).

SIGTERM (or SIGINT): /readyz turns 503 at once, the transports stop taking new work and
finish what they hold, the leader's duties stop (senders hand back the rows they claimed
but did not send) and the leader's lock is released, so another worker takes over
immediately; then the process exits 0, within ``shutdown_grace_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.core.transport import InboundHandler, Transport
from bot.operations.duties import Duty, FailureWatch, LeaderDuties
from bot.operations.health import HealthServer
from bot.operations.leader import Leadership

log = logging.getLogger(__name__)


@dataclass
class Worker:
    """Everything one worker runs, built by the wiring (``bot.app``)."""

    leadership: Leadership
    handler: InboundHandler  # the router's entry, gated and measured
    shared_transports: Sequence[Transport]  # run on every worker
    duties: Sequence[Duty]  # run on the leader only, in this order
    failures: FailureWatch
    grace_seconds: float
    health: HealthServer | None = None
    on_leader_change: Callable[[bool], None] = lambda leading: None
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, *, signals: bool = True) -> int:
        """Run until a signal (exit 0) or a component's failure for good (exit 1).

        A component that cannot start raises its startup error, as at any start.
        """
        if signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop_requested.set)
        if self.health is not None:
            await self.health.start()
        leader_stop = asyncio.Event()
        election: asyncio.Task[None] | None = None
        unwatch: list[Callable[[], None]] = []
        started: list[Transport] = []
        exit_code = 0
        try:
            for transport in self.shared_transports:
                await transport.start(self.handler)
                started.append(transport)
                unwatch.append(self.failures.watch_transport(transport))
            duties = LeaderDuties(self.duties, on_change=self.on_leader_change)
            election = asyncio.create_task(self.leadership.run(duties.start, duties.stop, leader_stop))
            exit_code = await self._until_stop_or_failure(election)
        finally:
            if self.health is not None:
                self.health.stopping()
            for cancel in unwatch:
                cancel()
            await self._stop(started, election, leader_stop)
            if self.health is not None:
                await self.health.stop()
        return exit_code

    async def _until_stop_or_failure(self, election: asyncio.Task[None]) -> int:
        stop = asyncio.ensure_future(self.stop_requested.wait())
        failed = asyncio.ensure_future(self.failures.wait())
        try:
            done, _ = await asyncio.wait({stop, failed, election}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            failed.cancel()
        if election in done:
            election.result()  # a duty's startup error: raised to the caller
            log.error("leader election ended unexpectedly")
            return 1
        if failed in done:
            failure = failed.result()
            log.error("the %s stopped: %s", failure.component, failure.reason)
            return 1
        log.info("stopping: finishing work in flight (at most %.0f s)", self.grace_seconds)
        return 0

    async def _stop(self, transports: Sequence[Transport], election: asyncio.Task[None] | None,
                    leader_stop: asyncio.Event) -> None:
        """Stop intake and duties together, bounded by the grace period; the lock is released last."""
        leader_stop.set()

        async def stop_all() -> None:
            await asyncio.gather(*(t.stop() for t in transports), return_exceptions=True)
            if election is not None:
                await asyncio.gather(election, return_exceptions=True)

        try:
            await asyncio.wait_for(stop_all(), self.grace_seconds)
        except TimeoutError:
            log.warning("stop took longer than %.0f s; ending what is left", self.grace_seconds)
            if election is not None:
                election.cancel()
                await asyncio.gather(election, return_exceptions=True)
