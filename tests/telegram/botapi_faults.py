"""Fault injection for the local Bot API server: flood waits, blocked users, 5xx, slowness.

A :class:`Fault` matches calls by method and chat and answers them with an error (or
only delays them) a given number of times, the way Telegram misbehaves in production.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

SEND_METHODS = frozenset({"sendmessage", "sendphoto", "senddocument"})


class ApiError(Exception):
    """A Bot API error answer: ``{"ok": false, "error_code", "description", "parameters"?}``."""

    def __init__(self, status: int, description: str, parameters: dict[str, object] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})


BLOCKED = ApiError(403, "Forbidden: bot was blocked by the user")
DEACTIVATED = ApiError(403, "Forbidden: user is deactivated")
INTERNAL = ApiError(500, "Internal Server Error")
BAD_GATEWAY = ApiError(502, "Bad Gateway")


@dataclass
class Fault:
    """Answer matching calls with ``error`` (if any) after ``delay`` seconds, ``times`` times.

    ``times=None`` means for ever; ``methods`` are lower-case Bot API method names.
    """

    error: ApiError | None
    methods: frozenset[str] = SEND_METHODS
    chat_id: int | None = None
    times: int | None = 1
    delay: float = 0.0
    hits: int = field(default=0, init=False)

    def matches(self, method: str, chat_id: int | None) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if method not in self.methods:
            return False
        return self.chat_id is None or self.chat_id == chat_id


class FaultPlan:
    """The ordered faults of one server; the first live match wins."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        self._faults.append(fault)
        return fault

    def take(self, method: str, chat_id: int | None) -> Fault | None:
        for fault in self._faults:
            if fault.matches(method, chat_id):
                fault.hits += 1
                return fault
        return None

    def clear(self) -> None:
        self._faults.clear()


def methods(names: Iterable[str] | str | None) -> frozenset[str]:
    if names is None:
        return SEND_METHODS
    if isinstance(names, str):
        names = [names]
    return frozenset(name.lower() for name in names)
