"""The suite's local Bot API server in a process of its own, with a small control API.

A benchmark that ran the server in its own event loop would measure the server's work as the
bot's. Here the server has its own process (its own core on a two-core machine); the
benchmark creates people, reads what arrived and when, through ``/control/...``. Times are
the server's own clock (``time.monotonic`` at arrival), as Telegram would judge them.

Run: ``python -m bench.botapi_process [--limits]``; prints ``PORT <n>`` when ready.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "telegram"))
from botapi_server import LocalBotApi, SimUser  # noqa: E402  (the test tier's local Bot API server)


class ControlledBotApi(LocalBotApi):
    """LocalBotApi plus ``/control`` routes for a benchmark in another process."""

    def __init__(self, *, enforce_limits: bool) -> None:
        super().__init__(enforce_limits=enforce_limits)
        self.people: dict[int, SimUser] = {}

    async def start(self) -> None:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_post("/control/users", self._c_users)
        app.router.add_post("/control/say", self._c_say)
        app.router.add_post("/control/say_all", self._c_say_all)
        app.router.add_get("/control/answered", self._c_answered)
        app.router.add_get("/control/first_answers", self._c_first_answers)
        app.router.add_get("/control/stats", self._c_stats)
        app.router.add_get("/control/count", self._c_count)
        app.router.add_get("/control/chat", self._c_chat)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _c_users(self, request: web.Request) -> web.Response:
        count = int((await request.json())["count"])
        users = [self.user() for _ in range(count)]
        self.people.update((u.id, u) for u in users)
        return web.json_response([u.id for u in users])

    async def _c_say(self, request: web.Request) -> web.Response:
        body = await request.json()
        at = time.monotonic()
        self.people[int(body["user"])].say(str(body["text"]))
        return web.json_response({"at": at})

    async def _c_say_all(self, request: web.Request) -> web.Response:
        """Each of ``users`` says ``text`` at once; the server's time of each message."""
        body = await request.json()
        said: dict[str, float] = {}
        for user in body["users"]:
            said[str(user)] = time.monotonic()
            self.people[int(user)].say(str(body["text"]))
        return web.json_response(said)

    async def _c_answered(self, request: web.Request) -> web.Response:
        """How many chats have had a message from the bot: cheap, for polling while measuring."""
        return web.json_response(len(self._answered_chats()))

    async def _c_first_answers(self, request: web.Request) -> web.Response:
        """The server's time of the bot's first message to each chat."""
        return web.json_response({str(chat): at for chat, at in self._answered_chats().items()})

    def _answered_chats(self) -> dict[int, float]:
        first: dict[int, float] = {}
        for message in self.sent:
            first.setdefault(message.chat_id, message.at)
        return first

    async def _c_chat(self, request: web.Request) -> web.Response:
        chat_id = int(request.query["id"])
        return web.json_response([{"at": m.at, "text": m.text} for m in self.sent_to(chat_id)])

    async def _c_count(self, request: web.Request) -> web.Response:
        """How many messages arrived: cheap, for polling while a benchmark runs."""
        return web.json_response(len(self.sent))

    async def _c_stats(self, request: web.Request) -> web.Response:
        sends = [c for c in self.calls if c.method.lower() == "sendmessage"]
        ok = sorted(c.at for c in sends if c.status == 200)
        per_chat = Counter(m.chat_id for m in self.sent)
        texts = Counter((m.chat_id, m.text) for m in self.sent)
        stats: dict[str, Any] = {
            "sent": len(self.sent),
            "send_calls": len(sends),
            "status": Counter(str(c.status) for c in sends),
            "refused_by_limits": self.limits.refused if self.limits else 0,
            "first_at": ok[0] if ok else None,
            "last_at": ok[-1] if ok else None,
            "chats": len(per_chat),
            "repeated_texts": sum(n - 1 for n in texts.values() if n > 1),
            "max_in_any_second": _max_in_window(ok, 1.0),
        }
        return web.json_response(stats)


def _max_in_window(times: list[float], width: float) -> int:
    best, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - width:
            start += 1
        best = max(best, end - start + 1)
    return best


async def serve(enforce_limits: bool) -> None:
    api = ControlledBotApi(enforce_limits=enforce_limits)
    await api.start()
    print(f"PORT {api.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await api.close()


class BotApiProcess:
    """Starts the server process and talks to its control API (``async with``)."""

    def __init__(self, *, enforce_limits: bool = False) -> None:
        self.enforce_limits = enforce_limits
        self.token = LocalBotApi().token
        self.port = 0
        self._process: subprocess.Popen[str] | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    async def __aenter__(self) -> BotApiProcess:
        args = [sys.executable, "-m", "bench.botapi_process"] + (["--limits"] if self.enforce_limits else [])
        root = Path(__file__).resolve().parent.parent
        self._process = subprocess.Popen(args, cwd=root, stdout=subprocess.PIPE, text=True,
                                         env={**os.environ, "PYTHONPATH": str(root)})
        assert self._process.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, self._process.stdout.readline)
        if not line.startswith("PORT "):
            raise RuntimeError("the Bot API server process did not start")
        self.port = int(line.split()[1])
        self._http = aiohttp.ClientSession(base_url=f"http://127.0.0.1:{self.port}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()
        if self._process is not None:
            self._process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(10)
            if self._process.poll() is None:
                self._process.kill()

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        assert self._http is not None
        async with self._http.request(method, path, **kwargs) as response:
            return json.loads(await response.read())

    async def users(self, count: int) -> list[int]:
        ids: list[int] = []
        while len(ids) < count:
            ids += await self._json("POST", "/control/users", json={"count": min(count - len(ids), 5000)})
        return ids

    async def say(self, user_id: int, text: str) -> float:
        return float((await self._json("POST", "/control/say", json={"user": user_id, "text": text}))["at"])

    async def say_all(self, user_ids: list[int], text: str) -> dict[int, float]:
        said = await self._json("POST", "/control/say_all", json={"users": user_ids, "text": text})
        return {int(user): float(at) for user, at in said.items()}

    async def wait_answered(self, count: int, timeout: float, interval: float = 0.01) -> None:
        """Until ``count`` chats have had an answer (polled in the server's process, not the bot's)."""
        deadline = time.monotonic() + timeout
        while int(await self._json("GET", "/control/answered")) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} chats were answered")
            await asyncio.sleep(interval)

    async def first_answers(self) -> dict[int, float]:
        return {int(chat): float(at) for chat, at in (await self._json("GET", "/control/first_answers")).items()}

    async def chat(self, user_id: int) -> list[dict[str, Any]]:
        return list(await self._json("GET", "/control/chat", params={"id": str(user_id)}))

    async def stats(self) -> dict[str, Any]:
        return dict(await self._json("GET", "/control/stats"))

    async def wait_sent(self, count: int, timeout: float, interval: float = 0.05) -> dict[str, Any]:
        """Poll the cheap count (the full statistics would cost the server time while it is measured)."""
        deadline = time.monotonic() + timeout
        while True:
            arrived = int(await self._json("GET", "/control/count"))
            if arrived >= count:
                return await self.stats()
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {arrived} of {count} messages arrived")
            await asyncio.sleep(interval)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", action="store_true", help="refuse sends beyond Telegram's limits (429)")
    asyncio.run(serve(parser.parse_args().limits))
