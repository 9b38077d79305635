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


def most_remaining(survey: Questionnaire, current: str, answers: Answers) -> int:
    """The most questions still ahead, counting ``current``, over every way the rest may be answered.

    An upper bound that can only shrink as answers come in: each answer removes the question
    answered and fixes branches that were open (a ``next`` jump, a ``show_if`` on a question
    not answered yet). So "question N of T" never goes backwards and T never grows, where the
    count of the questions still reachable on the current answers would jump up and down.
    """
    answered = {qid: value for qid, value in answers.items() if qid != current}
    memo: dict[int, int] = {}

    def from_position(index: int, visiting: frozenset[int]) -> int:
        if index >= len(survey.questions) or index in visiting:
            return 0
        if index not in memo:
            question = survey.questions[index]
            here = visiting | {index}
            asked = 1 + after(question, index, here)
            condition = question.show_if
            if condition is None:
                memo[index] = asked
            elif condition.question in answered:
                memo[index] = asked if shown(question, answered) else from_position(index + 1, here)
            else:  # depends on an answer not given yet: either way is possible
                memo[index] = max(asked, from_position(index + 1, here))
        return memo[index]

    def after(question: Question, index: int, visiting: frozenset[int]) -> int:
        jumps = question.next
        if isinstance(jumps, str):
            return 0 if jumps == END else from_position(survey.position(jumps), visiting)
        if isinstance(jumps, Mapping):
            targets = [0 if t == END else from_position(survey.position(t), visiting) for t in jumps.values()]
            unmapped = set(question.option_ids()) - set(jumps) or question.optional
            if unmapped:  # answers without a jump (or a skip) continue in order
                targets.append(from_position(index + 1, visiting))
            return max(targets)
        return from_position(index + 1, visiting)

    return 1 + after(survey.question(current), survey.position(current), frozenset({survey.position(current)}))


def _first_shown_from(survey: Questionnaire, start: int, answers: Answers) -> str | None:
    for question in survey.questions[start:]:
        if shown(question, answers):
            return question.id
    return None
