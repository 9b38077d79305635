"""One JSON object per log line, for log collectors, under the same privacy rules as text logs.

Log messages carry no content and no raw ids by construction; an exception attached to a
record is reduced to its type and code location, because its message may quote what a
person wrote.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from bot.core.logsafe import describe


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message"}``, plus ``"error"`` (type and place) when a record has one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[1] is not None:
            entry["error"] = describe(record.exc_info[1])
        return json.dumps(entry, ensure_ascii=False)
