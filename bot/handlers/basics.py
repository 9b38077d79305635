"""Commands for everyone: start, help, menu, language, privacy, delete_me, cancel."""

from __future__ import annotations

from bot.core.context import Turn
from bot.core.i18n import N_
from bot.dialogs.engine import DialogEngine, State
from bot.dialogs.menu import menu_state
from bot.dialogs.onboarding import invite_state, onboarding_state
from bot.dialogs.texts import help_text, privacy_notice
from bot.handlers.registry import Command


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
    await engine.show(turn, State("language", "choose", turn.tr.language))


async def privacy(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    turn.say(privacy_notice(turn))


async def delete_me(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    if turn.participant is None:
        await engine.clear(turn.session, turn.pseudonym)
        turn.say(turn.tr._("This bot stores nothing about you."))
        return
    await engine.show(turn, State("delete_me", "confirm", turn.tr.language))


async def join(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    await engine.show(turn, invite_state(turn))


async def cancel(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    await engine.clear(turn.session, turn.pseudonym)
    if turn.participant is None:
        turn.say(turn.tr._("Stopped. Send /start whenever you want to begin."))
    else:
        turn.say(turn.tr._("Stopped. Send /menu to see what you can do."))


BASIC_COMMANDS = (
    Command("start", start, N_("Start, or come back to the beginning")),
    Command("menu", menu, N_("Main menu"), needs_participant=True),
    Command("help", help_, N_("What this bot can do")),
    Command("join", join, N_("Enter an invitation code"), needs_participant=True),
    Command("language", language, N_("Change the language")),
    Command("privacy", privacy, N_("What is stored and how to erase it")),
    Command("delete_me", delete_me, N_("Erase everything stored about you")),
    Command("cancel", cancel, N_("Stop the current question")),
)
