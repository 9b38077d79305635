"""Export of survey responses for analysis: one row per response, no platform ids.

Free text is decrypted here, for the export only; the file is the staff's responsibility.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.i18n import Translator, neutral, plain
from bot.core.spreadsheet import as_text
from bot.storage.models import SurveyAnswer, SurveyResponse
from bot.surveys.definitions import Survey
from bot.surveys.questions import Question, QuestionType
from bot.surveys.service import Surveys


async def export(session: AsyncSession, surveys: Surveys, survey: Survey, file_format: str, *,
                 actor: str) -> tuple[list[str], list[list[Any]]]:
    """The response table, with the audit entry every export writes (chat or command line)."""
    header, rows = await response_table(session, surveys, survey)
    await surveys.audit.append(session, actor, "survey.export", survey.id, {"format": file_format, "rows": len(rows)})
    return header, rows


LABEL_SUFFIX = "_label"
NUMERIC_TYPES = (QuestionType.NUMBER, QuestionType.SCALE)


async def response_table(session: AsyncSession, surveys: Surveys, survey: Survey) -> tuple[list[str], list[list[Any]]]:
    """Header and rows: response, language, date (empty when anonymous), then one column per question.

    A choice question also gets a ``<question>_label`` column with the labels people saw, in
    the survey's first language; the key column stays for analysis. Every question's column
    holds one kind of value: numbers (``number``, ``scale``) as numbers, everything else as
    text; a missing answer is an empty cell (None), never an empty string among numbers.
    """
    language = survey.languages[0]
    tr = surveys.i18n.translator(language)
    header = ["response", "language", "submitted_on"]
    for question in survey.questions:
        header.append(question.id)
        if _labelled(question):
            header.append(question.id + LABEL_SUFFIX)
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
            # As typed, but with no bidi override or isolate that would reorder the cell around it.
            value = neutral(await surveys.read_text(session, answer, by_id[answer.response_id].participant_id))
        answers[answer.response_id][answer.question_id].append(value)
    rows = []
    for number, response in enumerate(responses, start=1):
        cells: list[Any] = [number, response.language, response.submitted_on]
        for question in survey.questions:
            values = answers[response.id].get(question.id, [])
            keys = sorted(str(v) for v in values) if question.type is QuestionType.MULTIPLE_CHOICE else \
                [str(v) for v in values[:1]]
            if question.type in NUMERIC_TYPES:
                cells.append(int(values[0]) if values else None)
            elif question.type is QuestionType.MULTIPLE_CHOICE:
                cells.append(";".join(keys) if keys else None)
            else:
                cells.append(values[0] if values else None)
            if _labelled(question):
                labels = [_label(survey, question, key, language, tr) for key in keys]
                cells.append("; ".join(labels) if labels else None)
        rows.append(cells)
    return header, rows


def _labelled(question: Question) -> bool:
    return question.type in (QuestionType.SINGLE_CHOICE, QuestionType.MULTIPLE_CHOICE, QuestionType.YES_NO)


def _label(survey: Survey, question: Question, key: str, language: str, tr: Translator) -> str:
    """The label as shown to people in ``language`` (directional marks removed: this is a file)."""
    if question.type is QuestionType.YES_NO:
        return plain(tr._("Yes") if key == "yes" else tr._("No"))
    for option in question.options:
        if option.id == key:
            return option.label.get(language) or survey.text(option.label, language)
    return key  # an option removed from the definition since: the key is all there is


def to_csv(header: list[str], rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([_csv_cell(cell) for cell in row] for row in rows)
    return buffer.getvalue().encode("utf-8-sig")  # the BOM lets spreadsheet programs read Arabic correctly


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return as_text(value)  # a CSV cell has no type: a typed "=..." would run as a formula
    return value.isoformat() if isinstance(value, dt.date) else value


def to_xlsx(header: list[str], rows: list[list[Any]], title: str) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title[:31] or "responses"
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    for cells in sheet.iter_rows(min_row=2):
        for cell in cells:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"  # what a person wrote stays text: never a formula that runs on opening
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
