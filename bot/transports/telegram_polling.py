"""Knowing when long polling has failed for good.

PTB's poller retries network errors forever and ends quietly on an invalid token. The bot
must instead end (exit 1, one clear line) so a supervisor restarts it or an operator looks:
a bot that polls nothing is deaf. The poller reports every ``getUpdates`` outcome to
:class:`PollingWatch`, which gives up when the token is refused, or when no poll has succeeded
for ``give_up_after`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.core.transport import TransportStartupError


class PollingGaveUp(TransportStartupError):
    """Polling cannot go on: the message names the setting to check, never the token."""


class PollingWatch:
    """Tracks polling health; calls ``on_give_up`` once with the reason."""

    def __init__(self, give_up_after: float, on_give_up: Callable[[PollingGaveUp], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._give_up_after = give_up_after
        self._on_give_up = on_give_up
        self._clock = clock
        self._failing_since: float | None = None
        self.gave_up = False

    def succeeded(self) -> None:
        self._failing_since = None

    def failed(self) -> None:
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        elif now - self._failing_since >= self._give_up_after:
            self._give_up(PollingGaveUp(
                f"the Bot API server at telegram.api_base_url could not be reached for "
                f"{round(now - self._failing_since)} s"))

    def refused(self) -> None:
        self._give_up(PollingGaveUp("telegram.token was refused by the Bot API server"))

    def _give_up(self, reason: PollingGaveUp) -> None:
        if not self.gave_up:
            self.gave_up = True
            self._on_give_up(reason)
