"""When check-ins are due: every N days or weeks at a local time, or a cron expression, in the
association's time zone.

Due times are computed with APScheduler's own triggers. An interval trigger in UTC counts the
days of the rhythm (UTC has no daylight saving, so "every 14 days" stays 14 calendar days), and a
cron trigger in the association's time zone puts the check-in at its local time on that day, so
10:00 stays 10:00 on both sides of a daylight-saving change. Only the computation lives here; the
schedule and the next due time are stored in the database.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.checkins.problems import CheckinProblem
from bot.core.i18n import N_, Translator, western_digits

Clock = Callable[[], dt.datetime]
"""The feature's one source of time (UTC, aware); tests pass a clock they move."""

UTC = dt.UTC
MAX_EVERY_DAYS = 364
MIN_GAP = dt.timedelta(hours=20)  # "once a day" with room for a daylight-saving change
_EVERY = re.compile(r"^(\d{1,3})\s*([dw])$")
_AT = re.compile(r"^(\d{1,2}):(\d{2})$")
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering: 0 (and 7) is Sunday

BAD_EVERY = N_("--every must be a number of days or weeks, like 14d or 2w (at most 52 weeks).")
BAD_AT = N_("--at must be a time of day, like 10:00.")
BAD_TIMEZONE = N_("There is no time zone called %(timezone)s. Use a name like Asia/Damascus or Europe/Berlin.")
NO_TIMEZONE = N_("Give the association's time zone with --tz, like --tz Asia/Damascus.")
BAD_CRON = N_("%(expression)s is not a valid cron expression. Give five fields: minute, hour, day of the month, "
              "month and day of the week, like “0 10 * * mon”.")
TOO_OFTEN = N_("A check-in cannot be due more than once a day.")
ONE_RHYTHM = N_("Give either --every with --at, or --cron, not both.")
NO_RHYTHM = N_("Give the rhythm with --every and --at (like --every 14d --at 10:00), or with --cron.")


@dataclass(frozen=True, slots=True)
class Rhythm:
    """A validated schedule: ``every_days`` + ``at`` + ``anchor``, or ``cron``; in ``timezone``."""

    timezone: str
    every_days: int | None = None
    at: dt.time | None = None
    anchor: dt.date | None = None  # the first day of an every-N-days rhythm
    cron: str | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_due(self, after: dt.datetime) -> dt.datetime:
        """The first due time strictly after ``after`` (UTC)."""
        after = aware(after)
        if self.cron is not None:
            found = _cron_trigger(self.cron, self.zone).get_next_fire_time(None, after + dt.timedelta(seconds=1))
            return _utc(found)
        assert self.every_days is not None and self.at is not None and self.anchor is not None
        days = IntervalTrigger(days=self.every_days, timezone=UTC,
                               start_date=dt.datetime.combine(self.anchor, dt.time(0), UTC))
        at = CronTrigger(hour=self.at.hour, minute=self.at.minute, timezone=self.zone)
        day = max(after.astimezone(self.zone).date(), self.anchor)
        while True:
            period_day = days.get_next_fire_time(None, dt.datetime.combine(day, dt.time(0), UTC)).date()
            due = _utc(at.get_next_fire_time(None, dt.datetime.combine(period_day, dt.time(0), self.zone)))
            if due > after:
                return due
            day = period_day + dt.timedelta(days=1)

    def upcoming(self, after: dt.datetime, count: int) -> list[dt.datetime]:
        times, current = [], after
        for _ in range(count):
            current = self.next_due(current)
            times.append(current)
        return times

    def describe(self, tr: Translator) -> str:
        if self.cron is not None:
            return tr._("cron “%(expression)s”, %(timezone)s", expression=self.cron, timezone=self.timezone)
        assert self.every_days is not None and self.at is not None
        at = self.at.strftime("%H:%M")
        if self.every_days % 7 == 0:
            return tr.n_("every week at %(time)s, %(timezone)s", "every %(n)s weeks at %(time)s, %(timezone)s",
                         self.every_days // 7, time=at, timezone=self.timezone)
        return tr.n_("every day at %(time)s, %(timezone)s", "every %(n)s days at %(time)s, %(timezone)s",
                     self.every_days, time=at, timezone=self.timezone)


def build_rhythm(*, timezone: str | None, every: str | None, at: str | None, cron: str | None,
                 now: dt.datetime) -> Rhythm:
    """Validate what staff typed; raises :class:`CheckinProblem` with the first mistake."""
    if cron is not None and (every is not None or at is not None):
        raise CheckinProblem(ONE_RHYTHM)
    if cron is None and (every is None or at is None):
        raise CheckinProblem(NO_RHYTHM)
    if not timezone:
        raise CheckinProblem(NO_TIMEZONE)
    zone = parse_timezone(timezone)
    if cron is not None:
        expression = " ".join(cron.split())
        rhythm = Rhythm(timezone=zone.key, cron=expression)
        try:
            _cron_trigger(expression, zone)
        except ValueError:
            raise CheckinProblem(BAD_CRON, expression=expression) from None
        _check_not_too_often(rhythm, now)
        return rhythm
    assert every is not None and at is not None
    every_days = parse_every(every)
    at_time = parse_at(at)
    first = dt.datetime.combine(now.astimezone(zone).date(), at_time, zone)
    anchor = first.date() if first > now else first.date() + dt.timedelta(days=1)
    return Rhythm(timezone=zone.key, every_days=every_days, at=at_time, anchor=anchor)


def parse_timezone(name: str) -> ZoneInfo:
    try:
        if ".." in name or name.startswith("/"):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CheckinProblem(BAD_TIMEZONE, timezone=name) from None


def parse_every(text: str) -> int:
    match = _EVERY.match(western_digits(text).strip().lower())
    if match is None:
        raise CheckinProblem(BAD_EVERY)
    days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
    if not 1 <= days <= MAX_EVERY_DAYS:
        raise CheckinProblem(BAD_EVERY)
    return days


def parse_at(text: str) -> dt.time:
    match = _AT.match(western_digits(text).strip())
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise CheckinProblem(BAD_AT)
    return dt.time(int(match.group(1)), int(match.group(2)))


def _check_not_too_often(rhythm: Rhythm, now: dt.datetime) -> None:
    times = [now, *rhythm.upcoming(now, 12)]
    if any(later - earlier < MIN_GAP for earlier, later in zip(times[1:], times[2:], strict=False)):
        raise CheckinProblem(TOO_OFTEN)


def _cron_trigger(expression: str, zone: ZoneInfo) -> CronTrigger:
    """A crontab line as cron means it: APScheduler 3 counts weekdays from Monday = 0, crontab from
    Sunday = 0, so weekday numbers are turned into names first."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError("five fields expected")
    fields[4] = _weekday_names(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=zone)


def _weekday_names(field: str) -> str:
    """``1-5`` -> ``mon,tue,wed,thu,fri``; ``*/2`` -> ``sun,tue,thu,sat`` (crontab's Sunday-first count)."""
    days: set[int] = set()
    for part in field.lower().split(","):
        base, slash, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() else (0 if slash else 1)
        if step < 1:
            raise ValueError("bad step")
        if base == "*":
            first, last = 0, 6
        else:
            start, dash, end = base.partition("-")
            first = _weekday(start)
            last = _weekday(end) if dash else (6 if slash else first)
        if last < first:
            raise ValueError("range runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step))
    if len(days) == 7:
        return "*"
    return ",".join(_DAY_NAMES[day] for day in sorted(days))


def _weekday(text: str) -> int:
    """0-7 (both 0 and 7 are Sunday) or a day name."""
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if len(text) >= 3 and text[:3] in _DAY_NAMES:
        return _DAY_NAMES.index(text[:3])
    raise ValueError("unknown weekday")


def _utc(value: dt.datetime | None) -> dt.datetime:
    if value is None:
        raise ValueError("the schedule has no further due time")
    return value.astimezone(UTC)


def aware(value: dt.datetime) -> dt.datetime:
    """A stored time in UTC (SQLite gives times back without their zone; they were written in UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def local_time(value: dt.datetime, timezone: str) -> str:
    """A due time as the association reads it, with its UTC offset: ``2026-03-29 10:00 (UTC+02:00)``."""
    local = aware(value).astimezone(ZoneInfo(timezone))
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} (UTC{offset[:3]}:{offset[3:]})"


def rhythm_fields(rhythm: Rhythm) -> dict[str, object]:
    """How a rhythm is stored on the schedule row."""
    return {"timezone": rhythm.timezone, "every_days": rhythm.every_days, "cron": rhythm.cron,
            "at_time": rhythm.at.strftime("%H:%M") if rhythm.at else None, "anchor_on": rhythm.anchor}


def rhythm_of(timezone: str, every_days: int | None, at_time: str | None, anchor_on: dt.date | None,
              cron: str | None) -> Rhythm:
    at = parse_at(at_time) if at_time else None
    return Rhythm(timezone=timezone, every_days=every_days, at=at, anchor=anchor_on, cron=cron)
