"""The progress count ("Question N of T"): over every path through the shipped surveys, N goes up
by one per answer and T never grows; T is never less than the questions actually asked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.surveys.definitions import Survey
from bot.surveys.flow import first_question, most_remaining, next_question
from bot.surveys.loading import load_directory, parse_survey
from bot.surveys.questions import Question
from tests.test_survey_definitions import VALID

SURVEYS = Path(__file__).resolve().parent.parent / "config" / "surveys"

BRANCHY = """\
id: branchy
languages: [en]
title: Branches
introduction: Intro
closing: Thanks
questions:
  - id: a
    type: single_choice
    text: Which way?
    options:
      - {id: short, label: Short}
      - {id: long, label: Long}
    next: {short: e}
  - id: b
    type: yes_no
    text: B?
  - id: c
    type: text
    optional: true
    show_if: {question: b, equals: yes}
    text: C?
  - id: d
    type: number
    text: D?
  - id: e
    type: yes_no
    optional: true
    text: E?
    next: {no: end}
  - id: f
    type: scale
    min: 1
    max: 3
    show_if: {question: a, equals: long}
    text: F?
"""


def answers_for(question: Question) -> list[Any]:
    if question.type == "multiple_choice":
        ids = list(question.option_ids())
        values: list[Any] = [[ids[0]], ids[: question.max_choices or len(ids)]]
    elif question.type == "number":
        values = [question.min if question.min is not None else 0]
    elif question.type == "text":
        values = ["words"]
    else:
        values = list(question.option_ids())
    return values + ([None] if question.optional else [])


def paths(survey: Survey) -> Iterator[list[tuple[int, int]]]:
    """Every path (with representative answers): the (position, total) shown at each question."""

    def walk(current: str | None, answers: dict[str, Any], shown: list[tuple[int, int]]) -> Iterator[list[tuple[int, int]]]:
        if current is None:
            yield shown
            return
        step = (len(shown) + 1, len(shown) + most_remaining(survey, current, answers))
        for value in answers_for(survey.question(current)):
            given = {**answers, current: value}
            yield from walk(next_question(survey, current, given), given, [*shown, step])

    yield from walk(first_question(survey, {}), {}, [])


def surveys() -> list[Survey]:
    return [*load_directory(SURVEYS).values(), parse_survey(VALID), parse_survey(BRANCHY)]


@pytest.mark.parametrize("survey", surveys(), ids=lambda s: s.id)
def test_the_count_never_goes_backwards_or_grows(survey: Survey) -> None:
    count = 0
    for shown in paths(survey):
        count += 1
        assert [position for position, _ in shown] == list(range(1, len(shown) + 1))
        totals = [total for _, total in shown]
        assert totals == sorted(totals, reverse=True), (survey.id, shown)  # never grows
        assert all(total >= len(shown) for total in totals)  # an upper bound of what is asked
        assert totals[-1] >= len(shown)
    assert count >= 3


def test_a_branch_that_skips_questions_lowers_the_total() -> None:
    survey = parse_survey(BRANCHY)
    assert most_remaining(survey, "a", {}) == 6
    assert most_remaining(survey, "e", {"a": "short"}) == 1  # f is shown only on the long way
    assert most_remaining(survey, "b", {"a": "long"}) == 5
    assert most_remaining(survey, "d", {"a": "long", "b": "no"}) == 3  # c was not shown


async def test_the_families_survey_counts_down_not_up(sqlite_url: str, tmp_path: Path) -> None:
    """The path that used to read "Question 3 of 8", then "Question 4 of 9"."""
    import re

    from bot.core.security import KeyRing
    from tests.test_surveys import launch, open_chat, settings_for, setup_group

    keys = KeyRing.generate()
    async with open_chat(settings_for(sqlite_url, tmp_path), keys) as chat:
        person = (await setup_group(chat, {"7301": "en"}))["7301"]
        await launch(chat, "families-of-the-missing")
        await person.send("/surveys")
        await person.press("Start")
        seen = []
        for answer in ("parent", "skip", "yes", "1", "done", "1", "done", "3", "2", "Through this bot"):
            found = re.match(r"Question \u2068(\d+)\u2069 of \u2068(\d+)\u2069", person.last_prompt.text)
            if found is None:
                break
            step = (int(found.group(1)), int(found.group(2)))
            if not seen or seen[-1] != step:  # ticking an option shows the same question again
                seen.append(step)
            await person.send(answer)
        positions, totals = [p for p, _ in seen], [t for _, t in seen]
        assert positions == list(range(1, len(seen) + 1)) and len(seen) >= 6
        assert totals == sorted(totals, reverse=True), seen
