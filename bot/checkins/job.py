"""The scheduled wake-up of the feature. It holds no state: everything it decides is read from
and claimed in the database, so a missed run, a doubled run or a second worker change nothing."""

from __future__ import annotations

import logging

from bot.checkins.service import Checkins, RunReport
from bot.core.logsafe import describe
from bot.storage.db import Database

log = logging.getLogger(__name__)
BATCH = 50


class CheckinJob:
    def __init__(self, database: Database, checkins: Checkins) -> None:
        self._db = database
        self._checkins = checkins

    async def __call__(self) -> RunReport:
        """Open due cycles (closing missed ones and escalating silences), then send reminders.
        Each in its own transaction, so a failure in one does not undo the other."""
        opened = skipped = reminded = 0
        try:
            while True:  # in batches, each its own transaction, until nothing more is due
                async with self._db.sessions.begin() as session:
                    report = await self._checkins.open_due(session, BATCH)
                opened, skipped = opened + report.opened, skipped + report.skipped_periods
                if report.claimed < BATCH:
                    break
        except Exception as exc:
            log.error("check-ins: opening due cycles failed: %s", describe(exc))
        try:
            while True:
                async with self._db.sessions.begin() as session:
                    report = await self._checkins.send_reminders(session, BATCH)
                reminded += report.reminded
                if report.claimed < BATCH:
                    break
        except Exception as exc:
            log.error("check-ins: reminders failed: %s", describe(exc))
        if opened or reminded or skipped:
            log.info("check-ins: %d opened, %d reminders, %d periods skipped while stopped", opened, reminded, skipped)
        return RunReport(opened=opened, reminded=reminded, skipped_periods=skipped)
