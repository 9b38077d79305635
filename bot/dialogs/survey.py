"""Answering a survey: pick one, start, questions with progress, back, skip, resume later.

Progress is saved with the invitation (sealed with the person's key) after every answer,
so ``/cancel``, a restart, or days of silence lose nothing: ``/surveys`` continues.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from bot.core.context import Turn
from bot.core.i18n import decimal_value, western_digits
from bot.core.model import Choice
from bot.dialogs.engine import TICK, Dialog, Prompt, State
from bot.dialogs.menu import menu_state
from bot.services.survey_definitions import Question, Survey
from bot.services.survey_flow import first_question, next_question, remaining
from bot.services.surveys import SurveyUnavailable


def survey_state(turn: Turn, data: dict[str, Any], step: str) -> State:
    return State("survey", step, turn.tr.language, data)


async def offer_surveys(turn: Turn) -> State | None:
    """The open surveys for this person: straight into the only one, or a list to pick from."""
    if turn.participant is None:
        return None
    offers = await turn.services.surveys.offers(turn.session, turn.participant.id)
    if not offers:
        turn.say(turn.tr._("There is no open survey for you right now."))
        return None
    if len(offers) == 1:
        return await open_invitation(turn, offers[0].invitation_id)
    data = {"offers": [[o.invitation_id, o.survey.text(o.survey.title, turn.tr.language)] for o in offers]}
    return survey_state(turn, data, "pick")


async def open_invitation(turn: Turn, invitation_id: int) -> State | None:
    assert turn.participant is not None
    surveys = turn.services.surveys
    try:
        invitation, survey = await surveys.invitation(turn.session, invitation_id, turn.participant.id)
    except SurveyUnavailable as exc:
        turn.say(_unavailable(turn, exc.reason))
        return None
    progress = await surveys.load_progress(turn.session, invitation)
    data = {"invitation": invitation.id, "survey": survey.id, "answers": {}, "history": [], "ticked": [],
            **progress}
    if progress.get("current"):
        turn.say(turn.tr._("Welcome back. Let us continue where you stopped."))
        return survey_state(turn, data, "question")
    return survey_state(turn, data, "intro")


def _unavailable(turn: Turn, reason: str) -> str:
    _ = turn.tr._
    if reason == "completed":
        return _("You have already answered this survey. Thank you.")
    if reason == "closed":
        return _("This survey is closed. Thank you for your interest.")
    return _("This survey is not available.")


class SurveyDialog(Dialog):
    name = "survey"

    def prompt(self, turn: Turn, state: State) -> Prompt:
        _ = turn.tr._
        data = state.data
        if state.step == "pick":
            return Prompt(_("Which survey would you like to answer?"),
                          tuple(Choice(f"inv:{inv}", title) for inv, title in data["offers"]))
        survey = turn.services.surveys.definition(data["survey"])
        language = turn.tr.language
        title = survey.text(survey.title, language)
        if state.step == "intro":
            anonymous = _("This survey is anonymous: your answers are stored without any link to you.") \
                if survey.anonymous else ""
            text = "\n\n".join(p for p in (title, survey.text(survey.introduction, language), anonymous) if p)
            return Prompt(text, (Choice("start", _("Start")), Choice("later", _("Later"))), sensitive=True)
        return self._question_prompt(turn, survey, data)

    def _question_prompt(self, turn: Turn, survey: Survey, data: dict[str, Any]) -> Prompt:
        _ = turn.tr._
        language = turn.tr.language
        question = survey.question(data["current"])
        position = len(data["history"]) + 1
        total = len(data["history"]) + remaining(survey, question.id, data["answers"])
        lines = [_("Question %(position)s of %(total)s", position=position, total=total),
                 survey.text(question.text, language)]
        choices: list[Choice] = []
        text_first = False
        exact_labels = question.type == "scale"
        invalid = ""
        if question.type in ("single_choice", "multiple_choice"):
            ticked = set(data["ticked"])
            for option in question.options:
                label = survey.text(option.label, language)
                key = f"opt:{option.id}"
                choices.append(Choice(key, f"{TICK} {label}" if option.id in ticked else label))
            if question.type == "multiple_choice":
                if ticked:
                    chosen = [survey.text(o.label, language) for o in question.options if o.id in ticked]
                    lines.append(_("Selected: %(options)s", options="، ".join(chosen) if turn.tr.rtl
                                   else ", ".join(chosen)))
                choices.append(Choice("done", _("Done")))
        elif question.type == "yes_no":
            choices += [Choice("opt:yes", _("Yes")), Choice("opt:no", _("No"))]
        elif question.type == "scale":
            assert question.min is not None and question.max is not None
            choices += [Choice(f"opt:{v}", str(v)) for v in range(question.min, question.max + 1)]
            # Not PICK_ONE's "a number from 1 to <options>": that count includes Skip and Back.
            invalid = _("That is not a valid answer.") + " " + _number_hint(turn, question)
            if question.min_label and question.max_label:
                lines.append(_("%(low)s = %(low_label)s, %(high)s = %(high_label)s", low=question.min,
                               low_label=survey.text(question.min_label, language), high=question.max,
                               high_label=survey.text(question.max_label, language)))
        elif question.type == "number":
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

    async def on_choice(self, turn: Turn, state: State, key: str) -> State | None:
        _ = turn.tr._
        data = state.data
        if state.step == "pick":
            return await open_invitation(turn, int(key.removeprefix("inv:")))
        if state.step == "intro":
            if key == "later":
                turn.say(_("You can answer later: send /surveys whenever you are ready."))
                return menu_state(turn)
            survey = turn.services.surveys.definition(data["survey"])
            data["current"] = first_question(survey, data["answers"])
            return await self._save(turn, State(self.name, "question", turn.tr.language, data))
        survey = turn.services.surveys.definition(data["survey"])
        question = survey.question(data["current"])
        if key == "back":
            return await self._back(turn, state, survey)
        if key == "skip" and question.optional:
            return await self._answer(turn, state, survey, None)
        if question.type == "multiple_choice":
            return await self._tick(turn, state, question, key)
        if key.startswith("opt:"):
            value: Any = key.removeprefix("opt:")
            return await self._answer(turn, state, survey, int(value) if question.type == "scale" else value)
        return state

    async def on_text(self, turn: Turn, state: State, text: str) -> State | None:
        survey = turn.services.surveys.definition(state.data["survey"])
        question = survey.question(state.data["current"])
        if question.type == "number":
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
            survey = turn.services.surveys.definition(data["survey"])
            return await self._answer(turn, state, survey, list(ticked) if ticked else None)
        option = key.removeprefix("opt:")
        if option in ticked:
            ticked.remove(option)
        elif question.max_choices is not None and len(ticked) >= question.max_choices:
            turn.say(turn.tr.n_("You can choose at most %(n)s option. Remove one first.",
                                "You can choose at most %(n)s options. Remove one first.", question.max_choices))
            return state
        else:
            ticked.append(option)
        return await self._save(turn, state)

    async def _answer(self, turn: Turn, state: State, survey: Survey, value: Any) -> State | None:
        data = state.data
        current = data["current"]
        data["answers"][current] = value
        data["history"].append(current)
        data["ticked"] = []
        following = next_question(survey, current, data["answers"])
        if following is None:
            return await self._submit(turn, survey, data)
        data["current"] = following
        return await self._save(turn, state)

    async def _back(self, turn: Turn, state: State, survey: Survey) -> State | None:
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
        return await self._save(turn, state)

    async def _save(self, turn: Turn, state: State) -> State | None:
        assert turn.participant is not None
        surveys = turn.services.surveys
        try:
            invitation, _survey = await surveys.invitation(turn.session, state.data["invitation"], turn.participant.id)
        except SurveyUnavailable as exc:
            turn.say(_unavailable(turn, exc.reason))
            return menu_state(turn)
        progress = {k: state.data[k] for k in ("current", "answers", "history", "ticked")}
        await surveys.save_progress(turn.session, invitation, progress)
        return state

    async def _submit(self, turn: Turn, survey: Survey, data: dict[str, Any]) -> State | None:
        assert turn.participant is not None
        surveys = turn.services.surveys
        try:
            invitation, _survey = await surveys.invitation(turn.session, data["invitation"], turn.participant.id)
        except SurveyUnavailable as exc:
            turn.say(_unavailable(turn, exc.reason))
            return menu_state(turn)
        await surveys.submit(turn.session, invitation, survey, data["answers"], turn.tr.language)
        turn.say(survey.text(survey.closing, turn.tr.language))
        return menu_state(turn)


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
