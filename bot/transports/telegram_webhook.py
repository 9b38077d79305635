"""Receives Telegram webhook calls behind a reverse proxy (aiohttp, no extra dependency).

Anyone who learns the URL can POST forged updates, so every request must carry the
``X-Telegram-Bot-Api-Secret-Token`` header set with ``setWebhook``; it is compared in
constant time and a mismatch is refused before the body is read.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_UPDATE_BYTES = 1024 * 1024

UpdateSink = Callable[[dict[str, Any]], Awaitable[None]]


def valid_secret(secret: str) -> bool:
    """Telegram allows 1-256 characters ``A-Z a-z 0-9 _ -``."""
    return 1 <= len(secret) <= 256 and all(c.isascii() and (c.isalnum() or c in "_-") for c in secret)


class WebhookReceiver:
    """A small HTTP server that hands each authenticated update to ``sink``."""

    def __init__(self, listen: str, port: int, path: str, secret: str, sink: UpdateSink) -> None:
        if not valid_secret(secret):
            raise ValueError("the webhook secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        self._listen = listen
        self._port = port
        self._path = path if path.startswith("/") else f"/{path}"
        self._secret = secret.encode()
        self._sink = sink
        self._runner: web.AppRunner | None = None
        self.rejected = 0

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_UPDATE_BYTES)
        app.router.add_post(self._path, self._receive)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._listen, self._port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def port(self) -> int:
        if self._runner is None or not self._runner.addresses:
            return self._port
        return int(self._runner.addresses[0][1])

    async def _receive(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            self.rejected += 1
            log.warning("telegram webhook: refused a request without the right secret")
            return web.Response(status=403)
        try:
            body = await request.read()
            update = json.loads(body)
        except ValueError:  # an oversized body raises 413 by itself
            return web.Response(status=400)
        if not isinstance(update, dict) or "update_id" not in update:
            return web.Response(status=400)
        await self._sink(update)
        return web.Response(status=200)
