"""The scheduled upkeep of cases: service-level reminders, and cases whose person is gone.

APScheduler only wakes it; what was reminded and what is due are columns of ``cases``,
so a missed, doubled or concurrent run (another worker) changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot.cases.service import CaseService
from bot.storage.db import Database
from bot.storage.models import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UpkeepReport:
    reminders: int = 0
    withdrawn: int = 0


class CaseUpkeepJob:
    """Reminders in the staff room, and withdrawal of cases whose person was erased without the
    erasure hook (a database restored from before the hooks, a row deleted by hand): staff are told.
    Closed cases expire by the retention rule ``ENDED_CASES``."""

    def __init__(self, database: Database, cases: CaseService, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._db = database
        self._cases = cases
        self._clock = clock

    async def __call__(self) -> UpkeepReport | None:
        now = self._clock()
        try:
            async with self._db.sessions.begin() as session:
                report = UpkeepReport(
                    withdrawn=await self._cases.withdraw_orphans(session),
                    reminders=await self._cases.remind(session, now),
                )
        except Exception as exc:
            log.error("case upkeep failed: %s", type(exc).__name__)
            return None
        if report != UpkeepReport():
            log.info("case upkeep: %s", report)
        return report
