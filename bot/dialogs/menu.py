"""The main menu: the place every finished conversation returns to."""

from __future__ import annotations

from bot.core.context import Turn
from bot.core.model import Choice
from bot.dialogs.engine import Dialog, Prompt, State
from bot.dialogs.texts import help_text, privacy_notice


def menu_state(turn: Turn) -> State:
    return State("menu", "main", turn.tr.language)


class MenuDialog(Dialog):
    name = "menu"

    def prompt(self, turn: Turn, state: State) -> Prompt:
        _ = turn.tr._
        contact = (Choice("contact", _("Talk to staff in confidence")),) if turn.services.cases.available else ()
        return Prompt(
            _("Main menu. What would you like to do?"),
            (
                Choice("surveys", _("Surveys")),
                *contact,
                Choice("join", _("Enter an invitation code")),
                Choice("help", _("Help")),
                Choice("language", _("Change language")),
                Choice("privacy", _("Privacy")),
                Choice("delete", _("Erase my data")),
            ),
        )

    async def on_choice(self, turn: Turn, state: State, key: str) -> State | None:
        _ = turn.tr._
        if key == "help":
            turn.say(help_text(turn))
            return state
        if key == "privacy":
            turn.say(privacy_notice(turn))
            return state
        if key == "surveys":
            from bot.dialogs.survey import offer_surveys  # the survey dialog returns to this menu

            return await offer_surveys(turn) or state
        if key == "contact":
            from bot.cases.dialogs import contact_entry  # the contact dialog returns to this menu
            from bot.cases.texts import ALREADY_OPEN, NOT_AVAILABLE

            cases = turn.services.cases
            existing = await cases.active_case_of(turn.session, turn.participant.id) if turn.participant else None
            if existing is not None or not cases.available:
                turn.say(_(ALREADY_OPEN, reference=existing.reference) if existing else _(NOT_AVAILABLE))
                return state
            return contact_entry(turn)
        if key == "join":
            return State("onboarding", "invite", turn.tr.language)
        if key == "language":
            return State("language", "choose", turn.tr.language)
        return State("delete_me", "confirm", turn.tr.language)
