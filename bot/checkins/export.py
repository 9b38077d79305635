"""Export of the associations' check-in history: one row per cycle, no person in it.

Free text is decrypted here, for the export only. Cells that a spreadsheet would read as a
formula are quoted, since answers are typed by people outside the organisation.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.checkins.rhythm import aware
from bot.checkins.service import Checkins
from bot.core.i18n import neutral
from bot.core.spreadsheet import as_text
from bot.storage.models import CheckinCycle, CheckinFlag, Organisation

FIXED = ["association", "checkin", "template", "due_at", "status", "answered_on", "language", "nothing_new", "flags"]

async def cycle_table(session: AsyncSession, checkins: Checkins,
                      organisation: Organisation | None = None) -> tuple[list[str], list[list[Any]]]:
    query = (select(CheckinCycle, Organisation.code).join(Organisation, Organisation.id == CheckinCycle.organisation_id)
             .order_by(Organisation.code, CheckinCycle.seq))
    if organisation is not None:
        query = query.where(CheckinCycle.organisation_id == organisation.id)
    cycles = list(await session.execute(query))
    questions = _question_columns(checkins, {cycle.template_id for cycle, _code in cycles})
    flags: dict[int, list[str]] = {}
    ids = [cycle.id for cycle, _code in cycles]
    if ids:
        for flag in await session.scalars(select(CheckinFlag).where(CheckinFlag.cycle_id.in_(ids))
                                          .order_by(CheckinFlag.id)):
            flags.setdefault(flag.cycle_id, []).append(flag.flag)
    rows = []
    for cycle, code in cycles:
        answers = await checkins.answers_of(session, cycle)
        cells: list[Any] = [
            code, cycle.seq, cycle.template_id, aware(cycle.due_at).isoformat(timespec="minutes"), cycle.status,
            cycle.answered_at.date().isoformat() if cycle.answered_at else "", cycle.language or "",
            "yes" if cycle.nothing_new else "", ";".join(dict.fromkeys(flags.get(cycle.id, []))),
        ]
        for question in questions:
            value = answers.get(question, "")
            cells.append(";".join(sorted(str(v) for v in value)) if isinstance(value, list) else _safe(value))
        rows.append(cells)
    return [*FIXED, *questions], rows


def _question_columns(checkins: Checkins, template_ids: set[str]) -> list[str]:
    """The questions of every template used, in template order; a question id shared by two
    templates is one column."""
    columns: dict[str, None] = {}
    for template_id in sorted(template_ids):
        template = checkins.templates.get(template_id)
        if template is not None:
            columns.update(dict.fromkeys(q.id for q in template.questionnaire.questions))
    return list(columns)


def _safe(value: Any) -> Any:
    if isinstance(value, str):
        return as_text(neutral(value))  # no bidi override reorders the cell; no formula runs
    return value
