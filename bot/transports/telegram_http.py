"""A lean ``sendMessage`` and ``getUpdates`` for the Bot API: one pooled aiohttp session, JSON
in, only the fields the bot reads out.

Text messages are most of what the bot sends, and bulk sends are all of them. PTB builds a
``Message`` object graph from every answer and sends through httpx; here a send is one JSON
POST and the answer is read for ``ok``, the message id and the error fields only. The request
still goes through the transport's rate limiter (the same one PTB uses), and errors are
raised as PTB's own exceptions, so pacing, ``RetryAfter`` and error mapping stay in one place.

``getUpdates`` answers with raw dicts: while updates are being handled, each poll hands the
unconfirmed ones out again (the offset only confirms handled updates), and turning up to 100 of
them into PTB objects on every poll cost more than the turns themselves. The poller builds PTB
objects for the fresh ones only. Everything else (edits, photos, commands) stays with PTB.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiohttp
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import BaseRateLimiter

Json = dict[str, Any]
_JSON = {"Content-Type": "application/json"}
# One encoder for every request: ``json.dumps`` with non-default options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class BotApiSender:
    """Sends text messages with a connection pool sized to the concurrency that uses it."""

    __slots__ = ("_limiter", "_pool_size", "_session", "_timeout", "_updates_url", "_url")

    def __init__(self, base_url: str, token: str, limiter: BaseRateLimiter[Any], *, pool_size: int = 64,
                 timeout_seconds: float = 10.0) -> None:
        self._url = f"{base_url}{token}/sendMessage"
        self._updates_url = f"{base_url}{token}/getUpdates"
        self._limiter = limiter
        self._pool_size = pool_size
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._pool_size, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout,
                                                  json_serialize=_dumps, raise_for_status=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send_message(self, chat_id: int, text: str, *, reply_markup: Json | None = None,
                           protect_content: bool = False, bulk: bool = False, html: bool = False) -> int:
        """Send one text message (``html``: Telegram HTML, escaped by the core's renderer); returns
        its message id. Raises PTB's ``TelegramError`` subclasses."""
        body: Json = {"chat_id": chat_id, "text": text, "link_preview_options": {"is_disabled": True}}
        if html:
            body["parse_mode"] = "HTML"
        if reply_markup:
            body["reply_markup"] = reply_markup
        if protect_content:
            body["protect_content"] = True

        async def post() -> Json:
            return await self._post(body)

        result = await self._limiter.process_request(post, (), {}, "sendMessage", body, bulk or None)
        assert isinstance(result, dict)
        return int(result["message_id"])

    async def get_updates(self, offset: int | None, *, timeout: int, allowed_updates: Sequence[str],
                          limit: int = 100) -> list[Json]:
        """One (long) poll: the updates from ``offset`` on, as raw dicts (anything else dropped).
        Raises PTB's ``TelegramError`` subclasses."""
        body: Json = {"timeout": timeout, "limit": limit, "allowed_updates": list(allowed_updates)}
        if offset is not None:
            body["offset"] = offset
        # The server holds a long poll for ``timeout`` seconds: the read may take that long.
        wait = aiohttp.ClientTimeout(total=timeout + (self._timeout.total or 10.0))
        result = await self._request(self._updates_url, body, wait)
        return [update for update in result if isinstance(update, dict)] if isinstance(result, list) else []

    async def _post(self, body: Json) -> Json:
        result = await self._request(self._url, body, None)
        return result if isinstance(result, dict) else {"message_id": 0}

    async def _request(self, url: str, body: Json, timeout: aiohttp.ClientTimeout | None) -> Any:
        if self._session is None:
            raise NetworkError("not started")
        try:
            async with self._session.post(url, data=_dumps(body).encode(), headers=_JSON,
                                          timeout=timeout or self._timeout) as response:
                raw = await response.read()
                status = response.status
        except TimeoutError:
            raise TimedOut() from None
        except (aiohttp.ClientError, OSError) as exc:
            raise NetworkError(f"connection failed: {type(exc).__name__}") from None
        return _result(status, raw)


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def _result(status: int, raw: bytes) -> Any:
    """The ``result`` of a Bot API answer, or the PTB error PTB itself would raise for it."""
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        if status >= 500 or status == 0:
            raise NetworkError(f"Bad Gateway ({status})" if status == 502 else f"server error ({status})")
        raise NetworkError(f"invalid answer ({status})")
    if answer.get("ok") and 200 <= status < 300:
        return answer.get("result")
    description = str(answer.get("description") or "Unknown error")
    parameters = answer.get("parameters") or {}
    if isinstance(parameters, dict):
        if parameters.get("migrate_to_chat_id") is not None:
            raise ChatMigrated(int(parameters["migrate_to_chat_id"]))
        if parameters.get("retry_after") is not None:
            raise RetryAfter(int(parameters["retry_after"]))
    code = int(answer.get("error_code") or status)
    if code == 403:
        raise Forbidden(description)
    if code in (401, 404):
        raise InvalidToken(description)
    if code == 400:
        raise BadRequest(description)
    if code == 409:
        raise Conflict(description)
    if code == 502:
        raise NetworkError("Bad Gateway")
    raise NetworkError(f"{description} ({code})")

