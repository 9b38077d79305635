"""Which question comes next: jumps (``next``) and conditions (``show_if``), as pure functions
over any :class:`Questionnaire` (a survey, a check-in template).

Answers are plain JSON values: an option id, a list of option ids, a number, a text, or
None for a skipped question.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.surveys.questions import END, Answers, Question, Questionnaire


def shown(question: Question, answers: Answers) -> bool:
    """Whether ``show_if`` holds for the answers given so far."""
    condition = question.show_if
    if condition is None:
        return True
    given = answers.get(condition.question)
    if isinstance(given, list):
        return any(str(v) in condition.values for v in given)
    return given is not None and str(given) in condition.values


def first_question(survey: Questionnaire, answers: Answers) -> str | None:
    return _first_shown_from(survey, 0, answers)


def next_question(survey: Questionnaire, current: str, answers: Answers) -> str | None:
    """The question after ``current``, or None at the end."""
    question = survey.question(current)
    target: str | None = None
    if isinstance(question.next, str):
        target = question.next
    elif isinstance(question.next, Mapping):
        target = question.next.get(str(answers.get(current)))
    if target == END:
        return None
    start = survey.position(target) if target else survey.position(current) + 1
    return _first_shown_from(survey, start, answers)


def remaining(survey: Questionnaire, current: str, answers: Answers) -> int:
    """How many questions are still ahead, counting ``current``, if the rest were answered in order."""
    count, seen = 0, set()
    qid: str | None = current
    while qid is not None and qid not in seen:
        seen.add(qid)
        count += 1
        qid = next_question(survey, qid, {**answers, qid: answers.get(qid)})
    return count


def _first_shown_from(survey: Questionnaire, start: int, answers: Answers) -> str | None:
    for question in survey.questions[start:]:
        if shown(question, answers):
            return question.id
    return None
