"""Fault injection for the local Bot API server: flood waits, blocked users, 5xx, slowness.

A :class:`Fault` matches calls by method and chat and answers them with an error (or
only delays them) a given number of times, the way Telegram misbehaves in production.
"""

from __future__ import annotations

import random
from collections import Counter
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


class Chaos:
    """A seeded share of calls answered with a random fault, as a bad day on Telegram looks:
    429 with ``retry_after``, 500, 502, or an answer so slow that the client times out (the
    server still handles the call, so the client's retry can deliver a message twice).

    ``kinds`` counts the faults given; ``timed_out`` holds the chats whose call timed out.
    """

    def __init__(self, rate: float, *, seed: int = 7, methods: frozenset[str] = SEND_METHODS,
                 timeout_delay: float = 0.0, retry_after: int = 1,
                 weights: dict[str, int] | None = None) -> None:
        self.rate = rate
        self.weights = weights or {"429": 1, "500": 1, "502": 1, "timeout": 1}
        self.methods = methods
        self.timeout_delay = timeout_delay
        self.retry_after = retry_after
        self.kinds: Counter[str] = Counter()
        self.timed_out: set[int] = set()
        self._random = random.Random(seed)

    def take(self, method: str, chat_id: int | None) -> Fault | None:
        if method not in self.methods or self._random.random() >= self.rate:
            return None
        kinds = [k for k in ("429", "500", "502", "timeout") if k != "timeout" or self.timeout_delay]
        kind = self._random.choices(kinds, [self.weights.get(k, 1) for k in kinds])[0]
        self.kinds[kind] += 1
        if kind == "timeout":
            if chat_id is not None:
                self.timed_out.add(chat_id)
            return Fault(None, delay=self.timeout_delay)
        error = {"429": too_many_requests(self.retry_after), "500": INTERNAL, "502": BAD_GATEWAY}[kind]
        return Fault(error)


class FaultPlan:
    """The ordered faults of one server; the first live match wins, then the chaos (if any)."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self.chaos: Chaos | None = None

    def add(self, fault: Fault) -> Fault:
        self._faults.append(fault)
        return fault

    def take(self, method: str, chat_id: int | None) -> Fault | None:
        for fault in self._faults:
            if fault.matches(method, chat_id):
                fault.hits += 1
                return fault
        return self.chaos.take(method, chat_id) if self.chaos is not None else None

    def clear(self) -> None:
        self._faults.clear()
        self.chaos = None


def methods(names: Iterable[str] | str | None) -> frozenset[str]:
    if names is None:
        return SEND_METHODS
    if isinstance(names, str):
        names = [names]
    return frozenset(name.lower() for name in names)
