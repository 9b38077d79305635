"""Exports as analysts open them: option keys and the labels people saw (in the survey's first
language), and in xlsx one kind of value per question column (numbers as numbers)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

from bot.core.security import KeyRing
from bot.core.spreadsheet import as_text
from bot.surveys import export as survey_export
from bot.surveys.service import Surveys
from tests.support import Chat
from tests.test_surveys import launch, open_chat, settings_for, setup_group


async def answer_bulletin_feedback(chat: Chat) -> None:
    people = await setup_group(chat, {"7501": "en", "7502": "ar", "7503": "en"})
    await launch(chat, "bulletin-feedback")
    english, arabic, formula = people["7501"], people["7502"], people["7503"]
    for step in ("/surveys", "start", "yes", "4", "1", "3", "done", "2", "yes", "skip"):
        await english.send(step)
    for step in ("/surveys", "1", "2", "2", "1"):  # start; no -> why not: "no time"; the language was fine: yes
        await arabic.send(step)
    await arabic.send("=HYPERLINK(\"http://example.org\")")  # free text that looks like a formula
    for step in ("/surveys", "start", "no", "1", "no", "=1+1"):
        await formula.send(step)


async def table(chat: Chat) -> tuple[list[str], list[list[Any]]]:
    services = chat.bot.services
    async with services.database.sessions() as session:
        return await survey_export.response_table(session, services.get(Surveys),
                                                  services.get(Surveys).definition("bulletin-feedback"))


async def test_label_columns_in_the_first_language_beside_the_keys(sqlite_url: str, tmp_path: Path) -> None:
    async with open_chat(settings_for(sqlite_url, tmp_path), KeyRing.generate()) as chat:
        await answer_bulletin_feedback(chat)
        header, rows = await table(chat)
    assert header == ["response", "language", "submitted_on", "read", "read_label", "usefulness", "topics",
                      "topics_label", "length", "length_label", "why-not", "why-not_label", "language-ok",
                      "language-ok_label", "suggestion"]
    records = list(csv.DictReader(io.StringIO(survey_export.to_csv(header, rows).decode("utf-8-sig"))))
    by_language = {r["language"]: r for r in records}
    english = next(r for r in records if r["read"] == "yes")
    assert (english["read_label"], english["usefulness"]) == ("Yes", "4")
    assert english["topics"] == "justice;mandate" and "; " in english["topics_label"]
    assert english["suggestion"] == ""  # skipped
    arabic = by_language["ar"]  # answered in Arabic, labelled in the survey's first language
    assert (arabic["read"], arabic["read_label"]) == ("no", "No")
    assert arabic["why-not"] == "no-time" and arabic["why-not_label"] == "I had no time"
    assert arabic["language-ok_label"] == "Yes" and "\u200f" not in arabic["language-ok_label"]


async def test_csv_keeps_typed_formulas_as_text(sqlite_url: str, tmp_path: Path) -> None:
    """A CSV cell has no type: text a person typed that starts like a formula is quoted, so a
    spreadsheet shows it instead of running it; numbers stay numbers."""
    async with open_chat(settings_for(sqlite_url, tmp_path), KeyRing.generate()) as chat:
        await answer_bulletin_feedback(chat)
        header, rows = await table(chat)
    records = list(csv.DictReader(io.StringIO(survey_export.to_csv(header, rows).decode("utf-8-sig"))))
    suggestions = {r["suggestion"] for r in records}
    assert "'=HYPERLINK(\"http://example.org\")" in suggestions and "'=1+1" in suggestions
    assert not any(r[column].startswith(("=", "+", "-", "@")) for r in records for column in header)
    assert {r["usefulness"] for r in records} >= {"4"}


def test_formula_like_text_is_quoted_and_other_text_is_not() -> None:
    for typed in ("=1+1", "+33 1 23", "-2+3", "@SUM(A1)", "\t=cmd", "\r=cmd"):
        assert as_text(typed) == "'" + typed
    for typed in ("مرحبا", "1+1", "a=b", "", "'already"):
        assert as_text(typed) == typed


async def test_xlsx_has_one_kind_of_value_per_question(sqlite_url: str, tmp_path: Path) -> None:
    async with open_chat(settings_for(sqlite_url, tmp_path), KeyRing.generate()) as chat:
        await answer_bulletin_feedback(chat)
        header, rows = await table(chat)
    sheet = load_workbook(io.BytesIO(survey_export.to_xlsx(header, rows, "bulletin-feedback"))).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0] == header and len(values) == 4
    for column, name in enumerate(header):
        kinds = {type(row[column]) for row in values[1:] if row[column] is not None}
        assert len(kinds) <= 1, (name, kinds)  # empty cells are empty, not "" among numbers
    usefulness = header.index("usefulness")
    assert {type(row[usefulness]) for row in values[1:] if row[usefulness] is not None} == {int}
    assert {row[header.index("response")] for row in values[1:]} == {1, 2, 3}
    suggestion = header.index("suggestion")
    texts = {row[suggestion] for row in values[1:]}
    assert '=HYPERLINK("http://example.org")' in texts and "=1+1" in texts  # kept as text, not formulas
    for row in sheet.iter_rows(min_row=2):
        assert row[suggestion].data_type in ("s", "n")  # never "f"
