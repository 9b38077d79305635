"""The contract every platform transport fulfils, and the errors it reports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.core.model import Address, Capabilities, Delivery, Inbound, Outbound, Platform, SendOptions

InboundHandler = Callable[[Inbound], Awaitable[None]]


class TransportStartupError(Exception):
    """A transport cannot start with this configuration; the message says what to fix, without secrets."""


class DeliveryError(Exception):
    """A send failed. ``reason`` is a short code for the outbox (never message content)."""

    reason: str = "error"

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or self.reason)
        if reason:
            self.reason = reason


class TransientDeliveryError(DeliveryError):
    """Worth retrying later (rate limit, network, 5xx). ``retry_after`` in seconds if known."""

    reason = "transient"

    def __init__(self, reason: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class RecipientUnreachable(DeliveryError):
    """The person blocked the bot, left, or deactivated: stop sending there."""

    reason = "unreachable"


class PermanentDeliveryError(DeliveryError):
    """The message itself was rejected; retrying would fail the same way."""

    reason = "rejected"


class Transport(Protocol):
    """A platform connection. Only transports import platform libraries."""

    platform: Platform
    capabilities: Capabilities

    async def start(self, on_inbound: InboundHandler) -> None:
        """Connect and begin delivering inbound events to ``on_inbound``."""

    async def stop(self) -> None:
        """Disconnect cleanly (Matrix: never log out)."""

    async def send(self, address: Address, message: Outbound, options: SendOptions | None = None) -> Delivery:
        """Send one message; raise a :class:`DeliveryError` subclass on failure."""

    async def edit(self, address: Address, message_id: str, message: Outbound) -> Delivery:
        """Replace the text of a message this bot sent (``message_id`` from its :class:`Delivery`), in
        place, e.g. a progress report. An edit that changes nothing succeeds; raise a
        :class:`DeliveryError` subclass on failure."""
