"""The contract every platform transport fulfils, and the errors it reports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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
    """A platform connection. Only transports import platform libraries.

    Besides sending and receiving, a transport reports its own end: :meth:`wait_stopped`
    returns when it has ended by itself, with ``failure`` saying why (None at a normal end,
    such as the console's end of input). The wiring ends the bot then: exit 0 at a normal
    end, 1 on a failure, so a supervisor restarts a bot that went deaf.
    """

    platform: Platform
    capabilities: Capabilities
    failure: BaseException | None
    """Why the transport stopped for good (token refused, server gone for good), else None."""

    @property
    def rate_per_second(self) -> float:
        """How many bulk messages per second the outbox may send through it (the platform's limit)."""

    @property
    def paces_sends(self) -> bool:
        """Whether the transport itself spaces its sends to the platform's limits (Telegram's rate
        limiter, measured against the answers), so the outbox must not space them a second time."""

    async def start(self, on_inbound: InboundHandler) -> None:
        """Connect and begin delivering inbound events to ``on_inbound``."""

    async def stop(self) -> None:
        """Disconnect cleanly (Matrix: never log out). Idempotent."""

    async def wait_stopped(self) -> None:
        """Return once the transport has ended by itself (or :meth:`stop` was called)."""

    async def send(self, address: Address, message: Outbound, options: SendOptions | None = None) -> Delivery:
        """Send one message; raise a :class:`DeliveryError` subclass on failure."""

    async def edit(self, address: Address, message_id: str, message: Outbound) -> Delivery:
        """Replace the text of a message this bot sent (``message_id`` from its :class:`Delivery`), in
        place, e.g. a progress report. An edit that changes nothing succeeds; raise a
        :class:`DeliveryError` subclass on failure."""


@runtime_checkable
class ForgetsPeople(Protocol):
    """A transport that keeps platform state about people (Matrix: rooms, keys, sessions) and
    must drop it when one of them is erased."""

    async def forget(self, address: Address) -> None:
        """Drop what concerns ``address``; raise TransientDeliveryError to be asked again later."""


@dataclass(frozen=True, slots=True)
class ChatErasure:
    """What clearing a chat achieved: messages removed, messages that could not be, and whether
    others may exist that the bot cannot reach (older than the platform allows, or unknown)."""

    removed: int = 0
    failed: int = 0
    complete: bool = True


@runtime_checkable
class ErasesChats(Protocol):
    """A transport that can remove the messages of a chat (Telegram: deletion within 48 hours;
    Matrix: redaction)."""

    async def erase_chat(self, address: Address) -> ChatErasure:
        """Remove what the platform allows from the chat at ``address``; never raises for a message
        that cannot be removed (it counts in ``failed``)."""
