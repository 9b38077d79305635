"""The delivery engine: drains the outbox per platform (see :mod:`bot.services.outbox` for the API)."""

from bot.services.delivery.sender import DrainReport, OutboxSender

__all__ = ["DrainReport", "OutboxSender"]
