"""Several real ``civicbot run`` workers on one PostgreSQL behind a round-robin reverse proxy.

The proxy does what the Caddy of ``docker-compose.yml`` does for the webhook: spreads the
calls over the workers and, when a worker refuses the connection (stopping, dead), tries the
next one. Each worker serves /healthz, /readyz and /metrics on a port of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
WEBHOOK_SECRET = "worker-test-secret_0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def civicbot(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("civicbot")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "bot", *args]


class RoundRobinProxy:
    """Forwards each POST to the next backend; a refused connection moves on to the following one."""

    def __init__(self, backends: Sequence[int]) -> None:
        self.backends = list(backends)
        self.port = 0
        self.forwarded: dict[int, int] = {port: 0 for port in backends}
        self._next = itertools.cycle(range(len(backends)))
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("POST", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        self._client = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._client is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type",
                                                                             "x-telegram-bot-api-secret-token")}
        first = next(self._next)
        for offset in range(len(self.backends)):
            port = self.backends[(first + offset) % len(self.backends)]
            try:
                async with self._client.post(f"http://127.0.0.1:{port}{request.path}", data=body, headers=headers,
                                             timeout=aiohttp.ClientTimeout(total=5)) as response:
                    self.forwarded[port] += 1
                    return web.Response(status=response.status, body=await response.read())
            except (aiohttp.ClientConnectionError, TimeoutError):
                continue
        return web.Response(status=502)


@dataclass
class Worker:
    """One ``civicbot run`` process; stderr goes to a file (JSON lines)."""

    name: str
    env: dict[str, str]
    log: Path
    webhook_port: int
    metrics_port: int
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                *civicbot("run"), cwd=REPO, env=self.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def signal(self, sig: signal.Signals, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def ensure_dead(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.kill()
            await self.process.wait()

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{self.metrics_port}{path}",
                                timeout=aiohttp.ClientTimeout(total=5)) as response:
                return response.status, await response.text()

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The /metrics page, parsed with the Prometheus text parser."""
        status, text = await self.get("/metrics")
        assert status == 200
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    async def metric(self, name: str, **labels: str) -> float:
        return (await self.metrics()).get((name, tuple(sorted(labels.items()))), 0.0)

    async def ready(self) -> bool:
        try:
            return (await self.get("/readyz"))[0] == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def is_leader(self) -> bool:
        try:
            return await self.metric("civicbot_leader") == 1
        except (aiohttp.ClientError, TimeoutError, AssertionError):
            return False


@dataclass
class Cluster:
    """Workers on one database, one key file, one webhook URL (the proxy)."""

    base_env: dict[str, str]
    tmp_path: Path
    workers: list[Worker] = field(default_factory=list)
    proxy: RoundRobinProxy | None = None

    async def upgrade_database(self) -> None:
        process = await asyncio.create_subprocess_exec(*civicbot("db", "upgrade"), cwd=REPO, env=self.base_env,
                                                       stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, err.decode()

    def add_workers(self, count: int, webhook: bool) -> list[Worker]:
        for _index in range(count):
            name = f"worker{len(self.workers) + 1}"
            env = dict(self.base_env)
            webhook_port, metrics_port = free_port(), free_port()
            env["CIVICBOT_OBSERVABILITY__LISTEN"] = f"127.0.0.1:{metrics_port}"
            if webhook:
                env["CIVICBOT_TELEGRAM__WEBHOOK_PORT"] = str(webhook_port)
            self.workers.append(Worker(name, env, self.tmp_path / f"{name}.log", webhook_port, metrics_port))
        return self.workers[-count:]

    async def start_proxy(self) -> RoundRobinProxy:
        self.proxy = RoundRobinProxy([w.webhook_port for w in self.workers])
        await self.proxy.start()
        return self.proxy

    async def wait_until(self, predicate, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
        """Poll ``predicate`` (async) until true; returns the seconds it took."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not await predicate():
            if loop.time() - started > timeout:
                logs = "\n".join(w.log.read_text(errors="replace")[-3000:] for w in self.workers if w.log.exists())
                raise AssertionError(f"{what} not reached within {timeout} s\n{logs}")
            await asyncio.sleep(0.1)
        return loop.time() - started

    async def wait_ready(self, workers: Sequence[Worker] | None = None, timeout: float = 60) -> None:
        targets = list(workers or self.workers)

        async def all_ready() -> bool:
            return all([await w.ready() for w in targets])

        await self.wait_until(all_ready, timeout, "every worker ready")

    async def leader(self, timeout: float = 30) -> Worker:
        found: list[Worker] = []

        async def one_leader() -> bool:
            leaders = [w for w in self.workers if w.running and await w.is_leader()]
            found[:] = leaders
            return len(leaders) == 1

        await self.wait_until(one_leader, timeout, "exactly one leader")
        return found[0]

    async def close(self) -> None:
        for worker in self.workers:
            await worker.ensure_dead()
        if self.proxy is not None:
            await self.proxy.close()

    def logs(self) -> str:
        return "\n".join(w.log.read_text(errors="replace") for w in self.workers if w.log.exists())


def cluster_env(tmp_path: Path, database_url: str, key_file: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
    env.update({
        "CIVICBOT_DATABASE__URL": database_url,
        "CIVICBOT_SECURITY__KEY_FILE": str(key_file),
        "CIVICBOT_LOGGING__FORMAT": "json",
        "CIVICBOT_OBSERVABILITY__STATS_REFRESH_SECONDS": "0",
        "CIVICBOT_RUNTIME__LEADER_RETRY_SECONDS": "0.5",
        "CIVICBOT_RUNTIME__LEADER_CHECK_SECONDS": "1",
        "CIVICBOT_RUNTIME__LEADER_CHECK_TIMEOUT_SECONDS": "2",
        "CIVICBOT_RUNTIME__SHUTDOWN_GRACE_SECONDS": "15",
        "CIVICBOT_LIMITS__FLOOD_MESSAGES": "10000",
        "CIVICBOT_OUTBOX__POLL_SECONDS": "0.2",
    })
    env.update(extra)
    return env


def telegram_env(base_url: str, token: str, proxy_port: int, **extra: str) -> dict[str, str]:
    env = {
        "CIVICBOT_TELEGRAM__TOKEN": token,
        "CIVICBOT_TELEGRAM__API_BASE_URL": base_url,
        "CIVICBOT_TELEGRAM__MODE": "webhook",
        "CIVICBOT_TELEGRAM__WEBHOOK_URL": f"http://127.0.0.1:{proxy_port}/telegram",
        "CIVICBOT_TELEGRAM__WEBHOOK_LISTEN": "127.0.0.1",
        "CIVICBOT_TELEGRAM__WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    env.update(extra)
    return env
