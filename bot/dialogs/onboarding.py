"""First contact: language, consent, an optional invitation code, the questions features ask
once (whether to receive bulletins), then the menu.

Nothing is stored about a person until they accept the notice; a decline deletes the
conversation state that held their language choice.
"""

from __future__ import annotations

from bot.conversation.engine import Dialog, Prompt, State, menu_state
from bot.conversation.feature import FeatureSet, OnboardingStep
from bot.conversation.turn import Turn
from bot.core.model import Choice
from bot.dialogs.language import language_choices
from bot.dialogs.texts import privacy_notice
from bot.services.organisations import RedeemResult

MAX_CODE_ATTEMPTS = 5


def onboarding_state(turn: Turn) -> State:
    return State("onboarding", "language", turn.tr.language)


def invite_state(turn: Turn) -> State:
    """Entering an invitation code, also later from the menu or /join."""
    return State("onboarding", "invite", turn.tr.language)


class OnboardingDialog(Dialog):
    name = "onboarding"

    def prompt(self, turn: Turn, state: State) -> Prompt:
        _ = turn.tr._
        if state.step == "language":
            i18n = turn.services.i18n
            # The one prompt shown before a language is known: say it in every language.
            lines = [i18n.translator(info.code)._("Choose your language.") for info in i18n.languages]
            return Prompt("\n".join(dict.fromkeys(lines)), language_choices(turn))
        if state.step == "consent":
            text = "\n\n".join((_("Welcome."), privacy_notice(turn),
                                  _("Do you agree to your information being handled this way?")))
            return Prompt(text, (Choice("accept", _("I agree")), Choice("decline", _("I do not agree"))))
        step = _step(turn, state)
        if step is not None:
            return step.prompt(turn)
        return Prompt(
            _("If your organisation gave you an invitation code, type it now. Otherwise choose “Skip”."),
            (Choice("skip", _("Skip")),),
            accepts_text=True,
        )

    async def on_choice(self, turn: Turn, state: State, key: str) -> State | None:
        _ = turn.tr._
        if state.step == "language":
            turn.use_language(key)
            return State(self.name, "consent", key)
        if state.step == "consent":
            if key == "decline":
                await turn.services.participants.forget_events(turn.session, turn.pseudonym)
                turn.say(_("Understood. Nothing about you has been stored. You can send /start at any time."))
                return None
            if turn.participant is None:
                turn.participant = await turn.services.participants.register(
                    turn.session, turn.pseudonym, turn.tr.language, turn.inbound.address
                )
            return State(self.name, "invite", turn.tr.language)
        step = _step(turn, state)
        if step is not None:
            await step.answer(turn, key)
        return await self._finish(turn)

    async def on_text(self, turn: Turn, state: State, text: str) -> State | None:
        _ = turn.tr._
        if state.step != "invite" or turn.participant is None:
            return state
        result, org = await turn.services.organisations.redeem(turn.session, text, turn.participant)
        if result is RedeemResult.OK and org is not None:
            turn.say(_("Thank you. You have joined %(organisation)s.", organisation=org.code))
            return await self._finish(turn)
        attempts = int(state.data.get("attempts", 0)) + 1
        if attempts >= MAX_CODE_ATTEMPTS:
            turn.say(_("That code did not work. Please ask the person who invited you for a new code; "
                       "you can enter it later with /join."))
            return menu_state(turn)
        turn.say({
            RedeemResult.EXPIRED: _("This invitation code has expired. Please ask for a new one."),
            RedeemResult.USED: _("This invitation code has already been used. Please ask for a new one."),
        }.get(result, _("I do not recognise this invitation code. Please check it and type it again.")))
        return State(self.name, "invite", turn.tr.language, {"attempts": attempts})

    async def _finish(self, turn: Turn) -> State:
        """The next question a feature asks once, if any is left for this person; then the menu."""
        if turn.participant is not None:
            for step in turn.services.get(FeatureSet).onboarding():
                if await step.pending(turn):
                    return State(self.name, f"{STEP}{step.key}", turn.tr.language)
        turn.say(turn.tr._("You are all set. You can open the menu at any time with /menu."))
        return menu_state(turn)


STEP = "ask:"


def _step(turn: Turn, state: State) -> OnboardingStep | None:
    if not state.step.startswith(STEP):
        return None
    key = state.step.removeprefix(STEP)
    return next((s for s in turn.services.get(FeatureSet).onboarding() if s.key == key), None)
