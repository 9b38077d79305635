"""Health, readiness and metrics over HTTP for supervisors, proxies and Prometheus.

``/healthz`` says the process is alive (its event loop answers). ``/readyz`` says this
worker should get traffic: the database answers, the schema is current, every transport it
runs is connected, and it is not stopping. ``/metrics`` is the Prometheus text format.
Answers name checks only, never a value from the configuration or the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from bot.operations.metrics import CONTENT_TYPE, DatabaseStats, Metrics

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, value: str) -> ListenAddress:
        """``127.0.0.1:9464``, ``0.0.0.0:9464`` or ``[::1]:9464``."""
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must look like HOST:PORT, e.g. 127.0.0.1:9464")
        return cls(host.strip("[]"), int(port))


class HealthServer:
    """Serves the three endpoints; ``checks`` run concurrently, each bounded by ``check_timeout``."""

    def __init__(self, listen: ListenAddress, metrics: Metrics, checks: Mapping[str, Check],
                 stats: DatabaseStats | None = None, check_timeout: float = 3.0) -> None:
        self._listen = listen
        self._metrics = metrics
        self._checks = dict(checks)
        self._stats = stats
        self._timeout = check_timeout
        self._stopping = False
        self._runner: web.AppRunner | None = None

    def stopping(self) -> None:
        """From now on /readyz answers 503, so the proxy sends new work elsewhere."""
        self._stopping = True
        self._metrics.ready.set(0)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_page)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._listen.host, self._listen.port).start()
        log.info("health and metrics listening on port %d", self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def port(self) -> int:
        if self._runner is None or not self._runner.addresses:
            return self._listen.port
        return int(self._runner.addresses[0][1])

    async def readiness(self) -> dict[str, bool]:
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(self._checks[name]) for name in names))
        checks = dict(zip(names, results, strict=True))
        checks["running"] = not self._stopping
        return checks

    async def _run(self, check: Check) -> bool:
        try:
            return bool(await asyncio.wait_for(check(), self._timeout))
        except Exception:  # noqa: BLE001 - a failing check is a "no", never a 500
            return False

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def _readyz(self, request: web.Request) -> web.Response:
        checks = await self.readiness()
        ready = all(checks.values())
        self._metrics.ready.set(1 if ready else 0)
        return web.Response(status=200 if ready else 503, content_type="application/json",
                            text=json.dumps({"ready": ready, "checks": checks}))

    async def _metrics_page(self, request: web.Request) -> web.Response:
        if self._stats is not None:
            await self._stats.refresh()
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE})
