"""Turns PTB's errors into the core's delivery errors, retrying network failures with backoff.

Reasons are short fixed codes: Telegram's error descriptions can quote pieces of the
message (a tag name, an entity), so they are never passed on or logged.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from bot.core.transport import (
    PermanentDeliveryError,
    RecipientUnreachable,
    TransientDeliveryError,
)
from bot.transports.telegram_ratelimit import retry_after_seconds

log = logging.getLogger(__name__)

T = TypeVar("T")

_FORBIDDEN_REASONS = (
    ("blocked by the user", "blocked"),
    ("user is deactivated", "deactivated"),
    ("kicked", "kicked"),
    ("can't initiate conversation", "not_started"),
)
_BAD_REQUEST_REASONS = (
    ("message is too long", "too_long"),
    ("can't parse entities", "parse_error"),
    ("button_data_invalid", "button_data_invalid"),
    ("message text is empty", "empty"),
    ("message is not modified", "not_modified"),
    ("message to edit not found", "message_not_found"),
    ("message can't be edited", "not_editable"),
)
_GONE = ("chat not found", "user not found", "peer_id_invalid")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a network failure is retried before giving up."""

    attempts: int = 4
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0

    def delay(self, attempt: int) -> float:
        base = min(self.backoff_seconds * 2.0 ** (attempt - 1), self.max_backoff_seconds)
        return base * random.uniform(0.8, 1.2)


def classify(exc: TelegramError) -> Exception:
    """The core's delivery error for a PTB error that is not worth retrying here."""
    text = str(exc).lower()
    if isinstance(exc, RetryAfter):
        return TransientDeliveryError("rate_limited", retry_after=retry_after_seconds(exc))
    if isinstance(exc, Forbidden):
        reason = next((code for needle, code in _FORBIDDEN_REASONS if needle in text), "forbidden")
        return RecipientUnreachable(reason)
    if isinstance(exc, BadRequest):
        if any(needle in text for needle in _GONE):
            return RecipientUnreachable("chat_not_found")
        reason = next((code for needle, code in _BAD_REQUEST_REASONS if needle in text), "bad_request")
        return PermanentDeliveryError(reason)
    if isinstance(exc, ChatMigrated):
        return PermanentDeliveryError("chat_migrated")
    if isinstance(exc, InvalidToken):
        return TransientDeliveryError("unauthorized")
    if isinstance(exc, NetworkError):
        return TransientDeliveryError("network")
    return TransientDeliveryError("telegram_error")


async def call_telegram(call: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """Run ``call``; retry timeouts, network errors and 5xx; raise a DeliveryError otherwise.

    A timed-out send may have reached Telegram, so a retry can duplicate a message: for
    people waiting on an answer a duplicate is the lesser harm than a silent loss.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except TelegramError as exc:
            retryable = isinstance(exc, NetworkError) and not isinstance(exc, BadRequest)
            if not retryable or attempt >= policy.attempts:
                log.warning("telegram request failed: %s", type(exc).__name__)
                raise classify(exc) from None
            delay = policy.delay(attempt)
            log.info("telegram request failed (%s); retrying in %.1f s", type(exc).__name__, delay)
            await asyncio.sleep(delay)
