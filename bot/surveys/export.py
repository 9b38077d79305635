"""Export of survey responses for analysis: one row per response, no platform ids.

Free text is decrypted here, for the export only; the file is the staff's responsibility.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import SurveyAnswer, SurveyResponse
from bot.surveys.definitions import Survey
from bot.surveys.questions import QuestionType
from bot.surveys.service import Surveys


async def export(session: AsyncSession, surveys: Surveys, survey: Survey, file_format: str, *,
                 actor: str) -> tuple[list[str], list[list[Any]]]:
    """The response table, with the audit entry every export writes (chat or command line)."""
    header, rows = await response_table(session, surveys, survey)
    await surveys.audit.append(session, actor, "survey.export", survey.id, {"format": file_format, "rows": len(rows)})
    return header, rows


async def response_table(session: AsyncSession, surveys: Surveys, survey: Survey) -> tuple[list[str], list[list[Any]]]:
    """Header and rows: response, language, date (empty when anonymous), then one column per question."""
    header = ["response", "language", "submitted_on", *(q.id for q in survey.questions)]
    responses = list(await session.scalars(
        select(SurveyResponse).where(SurveyResponse.survey_id == survey.id).order_by(SurveyResponse.id)
    ))
    answers: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    by_id = {r.id: r for r in responses}
    for answer in await session.scalars(select(SurveyAnswer).where(SurveyAnswer.response_id.in_(list(by_id)))):
        if answer.option_id is not None:
            value: Any = answer.option_id
        elif answer.number_value is not None:
            value = answer.number_value
        else:
            value = await surveys.read_text(session, answer, by_id[answer.response_id].participant_id)
        answers[answer.response_id][answer.question_id].append(value)
    rows = []
    for number, response in enumerate(responses, start=1):
        cells: list[Any] = [number, response.language, response.submitted_on.isoformat() if response.submitted_on else ""]
        for question in survey.questions:
            values = answers[response.id].get(question.id, [])
            if question.type is QuestionType.MULTIPLE_CHOICE:
                cells.append(";".join(sorted(str(v) for v in values)))
            else:
                cells.append(values[0] if values else "")
        rows.append(cells)
    return header, rows


def to_csv(header: list[str], rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")  # the BOM lets spreadsheet programs read Arabic correctly


def to_xlsx(header: list[str], rows: list[list[Any]], title: str) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title[:31] or "responses"
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
