"""Commands for everyone: start, join, menu, help, cancel, language, privacy, delete_me."""

from __future__ import annotations

from bot.conversation.commands import Command
from bot.conversation.engine import DialogEngine, State, menu_state
from bot.conversation.turn import Turn
from bot.core.i18n import N_
from bot.dialogs.onboarding import invite_state, onboarding_state
from bot.dialogs.texts import help_text, privacy_notice


async def start(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    if turn.participant is None:
        await engine.show(turn, onboarding_state(turn))
        return
    turn.say(turn.tr._("Welcome back."))
    await engine.show(turn, menu_state(turn))


async def help_(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    turn.say(help_text(turn))


async def menu(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    await engine.show(turn, menu_state(turn))


async def language(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    if turn.participant is None:
        await engine.show(turn, onboarding_state(turn))
        return
    await engine.show(turn, language_state(turn))


async def privacy(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    turn.say(privacy_notice(turn))


async def delete_me(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    if turn.participant is None:
        await engine.clear(turn.session, turn.pseudonym)
        await turn.services.participants.forget_events(turn.session, turn.pseudonym)
        turn.say(turn.tr._("This bot stores nothing about you."))
        return
    await engine.show(turn, delete_me_state(turn))


async def join(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    await engine.show(turn, invite_state(turn))


async def cancel(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    await engine.clear(turn.session, turn.pseudonym)
    if turn.participant is None:
        turn.say(turn.tr._("Stopped. Send /start whenever you want to begin."))
    else:
        turn.say(turn.tr._("Stopped. Send /menu to see what you can do."))


def language_state(turn: Turn) -> State:
    return State("language", "choose", turn.tr.language)


def delete_me_state(turn: Turn) -> State:
    return State("delete_me", "confirm", turn.tr.language)


START = Command("start", start, N_("Start, or come back to the beginning"))
MENU = Command("menu", menu, N_("Main menu"), needs_participant=True)
HELP = Command("help", help_, N_("What this bot can do"))
JOIN = Command("join", join, N_("Enter an invitation code"), needs_participant=True)
LANGUAGE = Command("language", language, N_("Change the language"))
PRIVACY = Command("privacy", privacy, N_("What is stored and how to erase it"))
DELETE_ME = Command("delete_me", delete_me, N_("Erase everything stored about you"))
CANCEL = Command("cancel", cancel, N_("Stop the current question"))
