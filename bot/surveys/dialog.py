"""Answering a survey: pick one, start, questions with progress, back, skip, resume later.

Progress is saved with the invitation (sealed with the person's key) after every answer,
so ``/cancel``, a restart, or days of silence lose nothing: ``/surveys`` continues.
"""

from __future__ import annotations

from typing import Any

from bot.conversation.engine import Prompt, State, menu_state
from bot.conversation.turn import Turn
from bot.core.model import Choice
from bot.storage.models import SurveyInvitation
from bot.surveys.asking import QUESTION, QuestionnaireDialog, new_progress
from bot.surveys.definitions import Survey
from bot.surveys.questions import Questionnaire
from bot.surveys.service import Surveys, SurveyUnavailable


def survey_state(turn: Turn, data: dict[str, Any], step: str) -> State:
    return State("survey", step, turn.tr.language, data)


async def offer_surveys(turn: Turn) -> State | None:
    """The open surveys for this person: straight into the only one, or a list to pick from."""
    if turn.participant is None:
        return None
    offers = await turn.services.get(Surveys).offers(turn.session, turn.participant.id)
    if not offers:
        turn.say(turn.tr._("There is no open survey for you right now."))
        return None
    if len(offers) == 1:
        return await open_invitation(turn, offers[0].invitation_id)
    data = {"offers": [[o.invitation_id, o.survey.text(o.survey.title, turn.tr.language)] for o in offers]}
    return survey_state(turn, data, "pick")


async def open_invitation(turn: Turn, invitation_id: int) -> State | None:
    assert turn.participant is not None
    surveys = turn.services.get(Surveys)
    answerable = await _answerable(turn, surveys, invitation_id)
    if answerable is None:
        return None
    invitation, survey = answerable
    progress = await surveys.load_progress(turn.session, invitation)
    data = {"invitation": invitation.id, "survey": survey.id, **new_progress(), **progress}
    if progress.get("current"):
        turn.say(turn.tr._("Welcome back. Let us continue where you stopped."))
        return survey_state(turn, data, QUESTION)
    return survey_state(turn, data, "intro")


async def _answerable(turn: Turn, surveys: Surveys, invitation_id: int) -> tuple[SurveyInvitation, Survey] | None:
    """This person's invitation and its survey while it can be answered; else None, said why."""
    assert turn.participant is not None
    try:
        return await surveys.invitation(turn.session, invitation_id, turn.participant.id)
    except SurveyUnavailable as exc:
        turn.say(_unavailable(turn, exc.reason))
        return None


def _unavailable(turn: Turn, reason: str) -> str:
    _ = turn.tr._
    if reason == "completed":
        return _("You have already answered this survey. Thank you.")
    if reason == "closed":
        return _("This survey is closed. Thank you for your interest.")
    return _("This survey is not available.")


class SurveyDialog(QuestionnaireDialog):
    """Pick a survey, read its introduction, then its questions (progress kept with the invitation)."""

    name = "survey"

    def questionnaire(self, turn: Turn, state: State) -> Questionnaire:
        return self.survey(turn, state)

    @staticmethod
    def survey(turn: Turn, state: State) -> Survey:
        return turn.services.get(Surveys).definition(state.data["survey"])

    def prompt(self, turn: Turn, state: State) -> Prompt:
        _ = turn.tr._
        data = state.data
        if state.step == "pick":
            return Prompt(_("Which survey would you like to answer?"),
                          tuple(Choice(f"inv:{inv}", title) for inv, title in data["offers"]))
        if state.step == QUESTION:
            return self.question_prompt(turn, state)
        survey = self.survey(turn, state)
        language = turn.tr.language
        title = survey.text(survey.title, language)
        anonymous = _("This survey is anonymous: your answers are stored without any link to you.") \
            if survey.anonymous else ""
        text = "\n\n".join(p for p in (title, survey.text(survey.introduction, language), anonymous) if p)
        return Prompt(text, (Choice("start", _("Start")), Choice("later", _("Later"))), sensitive=True)

    async def on_choice(self, turn: Turn, state: State, key: str) -> State | None:
        _ = turn.tr._
        if state.step == "pick":
            return await open_invitation(turn, int(key.removeprefix("inv:")))
        if state.step == "intro":
            if key == "later":
                turn.say(_("You can answer later: send /surveys whenever you are ready."))
                return menu_state(turn)
            return await self.begin(turn, state)
        return await self.on_question_choice(turn, state, key)

    def stored(self, state: State) -> dict[str, Any]:
        """Which invitation and survey: the answers so far are the invitation's progress, sealed
        with the person's key, and are never copied into the conversation state."""
        if "invitation" in state.data:
            return {"invitation": state.data["invitation"], "survey": state.data["survey"]}
        return state.data

    async def restore(self, turn: Turn, state: State) -> State:
        if "invitation" not in state.data or "answers" in state.data or turn.participant is None:
            return state
        surveys = turn.services.get(Surveys)
        answerable = await _answerable(turn, surveys, state.data["invitation"])
        if answerable is None:
            return menu_state(turn)
        invitation = answerable[0]
        progress = await surveys.load_progress(turn.session, invitation)
        state.data.update({**new_progress(), **progress})
        if state.step == QUESTION and not state.data.get("current"):
            state.step = "intro"  # nothing kept to continue from: start again at the introduction
        return state

    async def save(self, turn: Turn, state: State) -> State | None:
        assert turn.participant is not None
        surveys = turn.services.get(Surveys)
        answerable = await _answerable(turn, surveys, state.data["invitation"])
        if answerable is None:
            return menu_state(turn)
        invitation = answerable[0]
        progress = {k: state.data[k] for k in ("current", "answers", "history", "ticked")}
        await surveys.save_progress(turn.session, invitation, progress)
        return state

    async def finish(self, turn: Turn, questionnaire: Questionnaire, data: dict[str, Any]) -> State | None:
        assert turn.participant is not None
        surveys = turn.services.get(Surveys)
        try:
            invitation, survey = await surveys.invitation(turn.session, data["invitation"], turn.participant.id)
        except SurveyUnavailable as exc:
            turn.say(_unavailable(turn, exc.reason))
            return menu_state(turn)
        await surveys.submit(turn.session, invitation, survey, data["answers"], turn.tr.language)
        turn.say(survey.text(survey.closing, turn.tr.language))
        return menu_state(turn)
