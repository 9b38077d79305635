"""Answering a check-in: the offer (answer now, nothing new in one tap, later), then the
questionnaire, asked by the survey question engine (progress, back, skip, resume later).

The offer usually arrives through the outbox as a live prompt (see ``Checkins._offer``);
``/checkin`` opens it at any time. Whoever submits first answers for the association; another
contact person who starts or continues afterwards is told so, and nothing of theirs is stored.
"""

from __future__ import annotations

from typing import Any

from bot.checkins import texts
from bot.checkins.service import DIALOG, Checkins, CheckinUnavailable, Unavailable
from bot.conversation.engine import Prompt, State, menu_state
from bot.conversation.turn import Turn
from bot.storage.models import CheckinCycle
from bot.surveys.asking import QUESTION, QuestionnaireDialog, new_progress
from bot.surveys.questions import Questionnaire

OFFER = "offer"


def _checkins(turn: Turn) -> Checkins:
    return turn.services.get(Checkins)


def unavailable_text(turn: Turn, reason: Unavailable) -> str:
    _ = turn.tr._
    return {
        Unavailable.ANSWERED_BY_OTHER: _("Another contact person of your association has already answered this "
                                         "check-in. Thank you."),
        Unavailable.ANSWERED_BY_YOU: _("You have already answered this check-in. Thank you."),
        Unavailable.CLOSED: _("This check-in is closed: it was not answered before the next one was due. "
                              "Your answer was not recorded."),
        Unavailable.NONE_OPEN: _("There is no check-in waiting for your association right now."),
        Unavailable.NOT_YOURS: _("This check-in is not for you to answer."),
    }[reason]


def offer_state(language: str, cycle: CheckinCycle) -> State:
    return State(DIALOG, OFFER, language, {"cycle": cycle.id, "survey": cycle.template_id})


async def offer_checkin(turn: Turn) -> State | None:
    """``/checkin``: the open check-in of this person's association, where they left it."""
    assert turn.participant is not None
    try:
        cycle = await _checkins(turn).pending_for(turn.session, turn.participant)
    except CheckinUnavailable as exc:
        turn.say(unavailable_text(turn, exc.reason))
        return None
    return await _resume(turn, cycle) or offer_state(turn.tr.language, cycle)


async def _resume(turn: Turn, cycle: CheckinCycle) -> State | None:
    """The questionnaire where this person stopped, if they had started it."""
    assert turn.participant is not None
    progress = await _checkins(turn).load_progress(turn.session, cycle, turn.participant.id)
    if not progress.get("current"):
        return None
    turn.say(turn.tr._("Welcome back. Let us continue where you stopped."))
    return State(DIALOG, QUESTION, turn.tr.language, {**_fresh(cycle), **progress})


def _fresh(cycle: CheckinCycle) -> dict[str, Any]:
    return {"cycle": cycle.id, "survey": cycle.template_id, **new_progress()}


class CheckinDialog(QuestionnaireDialog):
    """The offer step, then the template's questions (progress kept with the delivery, sealed
    with the person's key)."""

    name = DIALOG

    def questionnaire(self, turn: Turn, state: State) -> Questionnaire:
        return _checkins(turn).template(state.data["survey"]).questionnaire

    def stored(self, state: State) -> dict[str, Any]:
        """Which cycle and template: the answers so far are the delivery's progress, sealed with the
        person's key and bound to their row, and are never copied into the conversation state."""
        if "cycle" in state.data:
            return {"cycle": state.data["cycle"], "survey": state.data["survey"]}
        return state.data

    async def restore(self, turn: Turn, state: State) -> State:
        if state.step != QUESTION or "answers" in state.data or turn.participant is None:
            return state
        checkins = _checkins(turn)
        try:
            cycle = await checkins.answerable(turn.session, int(state.data["cycle"]), turn.participant)
        except CheckinUnavailable as exc:
            return await self._unavailable(turn, exc.reason) or menu_state(turn)
        progress = await checkins.load_progress(turn.session, cycle, turn.participant.id)
        if not progress.get("current"):  # nothing kept to continue from: the offer again
            return offer_state(turn.tr.language, cycle)
        state.data.update({**new_progress(), **progress})
        return state

    def prompt(self, turn: Turn, state: State) -> Prompt:
        if state.step == QUESTION:
            return self.question_prompt(turn, state)
        return texts.offer_prompt(turn.tr, _checkins(turn).templates.get(state.data.get("survey", "")))

    async def on_choice(self, turn: Turn, state: State, key: str) -> State | None:
        if state.step == QUESTION:
            return await self.on_question_choice(turn, state, key)
        assert turn.participant is not None
        try:
            cycle = await _checkins(turn).answerable(turn.session, int(state.data["cycle"]), turn.participant)
        except CheckinUnavailable as exc:
            return await self._unavailable(turn, exc.reason)
        if key == texts.LATER:
            turn.say(turn.tr._("You can answer later: send /checkin whenever you are ready."))
            return menu_state(turn)
        if key == texts.NOTHING_NEW:
            return await self._submit(turn, cycle.id, {}, nothing_new=True)
        return await _resume(turn, cycle) or await self.begin(turn, State(self.name, OFFER, turn.tr.language,
                                                                           _fresh(cycle)))

    async def save(self, turn: Turn, state: State) -> State | None:
        assert turn.participant is not None
        checkins = _checkins(turn)
        try:
            cycle = await checkins.answerable(turn.session, int(state.data["cycle"]), turn.participant)
        except CheckinUnavailable as exc:
            return await self._unavailable(turn, exc.reason)
        progress = {k: state.data[k] for k in ("current", "answers", "history", "ticked")}
        await checkins.save_progress(turn.session, cycle, turn.participant.id, progress)
        return state

    async def finish(self, turn: Turn, questionnaire: Questionnaire, data: dict[str, Any]) -> State | None:
        return await self._submit(turn, int(data["cycle"]), data["answers"], nothing_new=False)

    async def _submit(self, turn: Turn, cycle_id: int, answers: dict[str, Any], *, nothing_new: bool) -> State | None:
        assert turn.participant is not None
        checkins = _checkins(turn)
        try:
            submitted = await checkins.submit(turn.session, cycle_id, turn.participant, answers, turn.tr.language,
                                              nothing_new=nothing_new)
        except CheckinUnavailable as exc:
            return await self._unavailable(turn, exc.reason)
        if nothing_new:
            turn.say(turn.tr._("Thank you. We have noted that there is nothing new."))
        else:
            survey = checkins.template(submitted.cycle.template_id).questionnaire
            turn.say(survey.text(survey.closing, turn.tr.language))
        if submitted.raised:
            turn.say(turn.tr._("Our team has been told at once about what you reported."))
        return menu_state(turn)

    async def _unavailable(self, turn: Turn, reason: Unavailable) -> State | None:
        """Say why; if a newer check-in is waiting for this person, offer that one instead."""
        turn.say(unavailable_text(turn, reason))
        assert turn.participant is not None
        if reason is Unavailable.CLOSED:
            try:
                newer = await _checkins(turn).pending_for(turn.session, turn.participant)
            except CheckinUnavailable:
                return menu_state(turn)
            return offer_state(turn.tr.language, newer)
        return menu_state(turn)
