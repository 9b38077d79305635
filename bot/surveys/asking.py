"""Asking the questions of any :class:`Questionnaire`, one at a time: progress ("question 3 of
8"), choices, ticks for multiple choice, numbers in any digits, free text, skip and back.

Independent of surveys' storage: a dialog that asks a questionnaire (a survey, a check-in)
subclasses :class:`QuestionnaireDialog` and says which questionnaire it asks, how progress is
kept and what happens at the end. Its state data holds ``current`` (the question asked),
``answers``, ``history`` (questions answered, in order) and ``ticked`` (options ticked so far).
"""

from __future__ import annotations

import unicodedata
from abc import abstractmethod
from typing import Any

from bot.conversation.engine import TICK, Dialog, Prompt, State
from bot.conversation.turn import Turn
from bot.core.i18n import decimal_value, western_digits
from bot.core.model import Choice
from bot.surveys.flow import first_question, most_remaining, next_question
from bot.surveys.questions import Question, Questionnaire, QuestionType

QUESTION = "question"
"""The step in which :class:`QuestionnaireDialog` asks questions."""


def new_progress() -> dict[str, Any]:
    """State data for a questionnaire not started yet."""
    return {"answers": {}, "history": [], "ticked": []}


class QuestionnaireDialog(Dialog):
    """Asks questions in the :data:`QUESTION` step; other steps belong to the subclass."""

    @abstractmethod
    def questionnaire(self, turn: Turn, state: State) -> Questionnaire:
        """The questionnaire this state is answering."""

    @abstractmethod
    async def save(self, turn: Turn, state: State) -> State | None:
        """Keep the progress (called after every change); return ``state``, or another state
        (e.g. the menu) if the questionnaire can no longer be answered."""

    @abstractmethod
    async def finish(self, turn: Turn, questionnaire: Questionnaire, data: dict[str, Any]) -> State | None:
        """Every question answered: store ``data["answers"]`` and say what comes next."""

    async def begin(self, turn: Turn, state: State) -> State | None:
        """Go to the first question (from an introduction step, say)."""
        questionnaire = self.questionnaire(turn, state)
        state.data["current"] = first_question(questionnaire, state.data["answers"])
        return await self.save(turn, State(self.name, QUESTION, turn.tr.language, state.data))

    def question_prompt(self, turn: Turn, state: State) -> Prompt:
        return self._question_prompt(turn, self.questionnaire(turn, state), state.data)

    def _question_prompt(self, turn: Turn, survey: Questionnaire, data: dict[str, Any]) -> Prompt:
        _ = turn.tr._
        language = turn.tr.language
        question = survey.question(data["current"])
        position = len(data["history"]) + 1
        total = len(data["history"]) + most_remaining(survey, question.id, data["answers"])
        lines = [_("Question %(position)s of %(total)s", position=position, total=total),
                 survey.text(question.text, language)]
        choices: list[Choice] = []
        text_first = False
        exact_labels = question.type is QuestionType.SCALE
        invalid = ""
        if question.type.has_options:
            ticked = set(data["ticked"])
            for option in question.options:
                label = survey.text(option.label, language)
                key = f"opt:{option.id}"
                choices.append(Choice(key, f"{TICK} {label}" if option.id in ticked else label))
            if question.type is QuestionType.MULTIPLE_CHOICE:
                if ticked:
                    chosen = [survey.text(o.label, language) for o in question.options if o.id in ticked]
                    lines.append(_("Selected: %(options)s", options="، ".join(chosen) if turn.tr.rtl
                                   else ", ".join(chosen)))
                choices.append(Choice("done", _("Done")))
        elif question.type is QuestionType.YES_NO:
            choices += [Choice("opt:yes", _("Yes")), Choice("opt:no", _("No"))]
        elif question.type is QuestionType.SCALE:
            assert question.min is not None and question.max is not None
            choices += [Choice(f"opt:{v}", str(v)) for v in range(question.min, question.max + 1)]
            # Not PICK_ONE's "a number from 1 to <options>": that count includes Skip and Back.
            invalid = _("That is not a valid answer.") + " " + _number_hint(turn, question)
            if question.min_label and question.max_label:
                lines.append(_("%(low)s = %(low_label)s, %(high)s = %(high_label)s", low=question.min,
                               low_label=survey.text(question.min_label, language), high=question.max,
                               high_label=survey.text(question.max_label, language)))
        elif question.type is QuestionType.NUMBER:
            text_first = True
            lines.append(_number_hint(turn, question))
        else:
            text_first = True
            lines.append(turn.tr.n_("Type your answer (at most %(n)s character).",
                                    "Type your answer (at most %(n)s characters).", question.max_length))
        if question.optional:
            choices.append(Choice("skip", _("Skip")))
        if data["history"]:
            choices.append(Choice("back", _("Back")))
        return Prompt("\n\n".join(lines), tuple(choices), accepts_text=text_first, sensitive=True,
                      exact_labels=exact_labels or text_first, invalid=invalid)

    async def on_question_choice(self, turn: Turn, state: State, key: str) -> State | None:
        survey = self.questionnaire(turn, state)
        question = survey.question(state.data["current"])
        if key == "back":
            return await self._back(turn, state, survey)
        if key == "skip" and question.optional:
            return await self._answer(turn, state, survey, None)
        if question.type is QuestionType.MULTIPLE_CHOICE:
            return await self._tick(turn, state, question, key)
        if key.startswith("opt:"):
            value: Any = key.removeprefix("opt:")
            return await self._answer(turn, state, survey, int(value) if question.type is QuestionType.SCALE else value)
        return state

    async def on_text(self, turn: Turn, state: State, text: str) -> State | None:
        survey = self.questionnaire(turn, state)
        question = survey.question(state.data["current"])
        if question.type is QuestionType.NUMBER:
            value = _parse_number(text)
            if value is None or (question.min is not None and value < question.min) or \
                    (question.max is not None and value > question.max):
                turn.say(turn.tr._("That is not a valid answer.") + " " + _number_hint(turn, question))
                return state
            return await self._answer(turn, state, survey, value)
        answer = text.strip()
        if len(answer) > question.max_length:
            turn.say(turn.tr.n_("Your answer is too long. Please keep it under %(n)s character.",
                                "Your answer is too long. Please keep it under %(n)s characters.",
                                question.max_length))
            return state
        if not answer:
            return state
        return await self._answer(turn, state, survey, answer)

    async def _tick(self, turn: Turn, state: State, question: Question, key: str) -> State | None:
        data = state.data
        ticked: list[str] = data["ticked"]
        if key == "done":
            if not ticked and not question.optional:
                turn.say(turn.tr._("Please choose at least one option, then “Done”."))
                return state
            return await self._answer(turn, state, self.questionnaire(turn, state), list(ticked) if ticked else None)
        option = key.removeprefix("opt:")
        if option in ticked:
            ticked.remove(option)
        elif question.max_choices is not None and len(ticked) >= question.max_choices:
            turn.say(turn.tr.n_("You can choose at most %(n)s option. Remove one first.",
                                "You can choose at most %(n)s options. Remove one first.", question.max_choices))
            return state
        else:
            ticked.append(option)
        return await self.save(turn, state)

    async def _answer(self, turn: Turn, state: State, survey: Questionnaire, value: Any) -> State | None:
        data = state.data
        current = data["current"]
        data["answers"][current] = value
        data["history"].append(current)
        data["ticked"] = []
        following = next_question(survey, current, data["answers"])
        if following is None:
            return await self.finish(turn, survey, data)
        data["current"] = following
        return await self.save(turn, state)

    async def _back(self, turn: Turn, state: State, survey: Questionnaire) -> State | None:
        data = state.data
        if not data["history"]:
            return state
        previous = data["history"].pop()
        earlier = data["answers"].pop(previous, None)
        # Answers after the one reopened may no longer apply (branching): drop them.
        for later in [q for q in data["answers"] if q not in data["history"]]:
            del data["answers"][later]
        data["current"] = previous
        data["ticked"] = list(earlier) if isinstance(earlier, list) else []
        return await self.save(turn, state)



def _number_hint(turn: Turn, question: Question) -> str:
    if question.min is not None and question.max is not None:
        return turn.tr._("Please answer with a number from %(min)s to %(max)s.", min=question.min, max=question.max)
    return turn.tr._("Please answer with a number.")


def _parse_number(text: str) -> int | None:
    cleaned = western_digits(unicodedata.normalize("NFKC", text)).strip()
    if cleaned.startswith(("-", "+")):
        sign, digits = cleaned[0], cleaned[1:]
    else:
        sign, digits = "", cleaned
    value = decimal_value(digits, max_digits=9)
    if value is None:
        return None
    return -value if sign == "-" else value
