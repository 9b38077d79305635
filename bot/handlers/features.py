"""The basic features, each declared once: the conversation itself (menu, help, cancel),
onboarding, language, privacy, erasure, staff administration and delivery (the outbox)."""

from __future__ import annotations

import argparse

from bot.conversation.engine import State
from bot.conversation.feature import CliContext, CliGroup, CliVerb, Feature, MenuEntry
from bot.conversation.turn import Turn
from bot.core.counts import counted
from bot.core.i18n import N_
from bot.dialogs.delete_me import DeleteMeDialog
from bot.dialogs.language import LanguageDialog
from bot.dialogs.onboarding import OnboardingDialog, invite_state
from bot.dialogs.texts import help_text, privacy_notice
from bot.handlers import basics
from bot.handlers.staff import STAFF_COMMANDS
from bot.storage.models import (
    DIALOG_STATE_DATA,
    GROUP_NAME,
    INACTIVE_PARTICIPANTS,
    OLD_AUDIT,
    OLD_OUTBOX,
    ORGANISATION_NAME,
    OUTBOX_PAYLOAD,
    PARTICIPANT_ADDRESS,
    PARTICIPANT_KEY,
    PROCESSED_EVENTS,
    SPENT_INVITES,
    STALE_DIALOG_STATES,
)


async def _show_help(turn: Turn) -> State | None:
    turn.say(help_text(turn))
    return None


async def _show_privacy(turn: Turn) -> State | None:
    turn.say(privacy_notice(turn))
    return None


async def _enter_code(turn: Turn) -> State | None:
    return invite_state(turn)


async def _choose_language(turn: Turn) -> State | None:
    return basics.language_state(turn)


async def _confirm_erasure(turn: Turn) -> State | None:
    return basics.delete_me_state(turn)


CONVERSATION = Feature(
    name="conversation",
    commands=(basics.MENU, basics.HELP, basics.CANCEL),
    menu=(MenuEntry("help", N_("Help"), 30, _show_help),),
    sealed=(DIALOG_STATE_DATA,),
    retention=(STALE_DIALOG_STATES, PROCESSED_EVENTS),
)

ONBOARDING = Feature(
    name="onboarding",
    commands=(basics.START, basics.JOIN),
    dialogs=(OnboardingDialog(),),
    menu=(MenuEntry("join", N_("Enter an invitation code"), 20, _enter_code),),
    sealed=(PARTICIPANT_KEY, PARTICIPANT_ADDRESS),
    retention=(INACTIVE_PARTICIPANTS,),
)

LANGUAGE = Feature(
    name="language",
    commands=(basics.LANGUAGE,),
    dialogs=(LanguageDialog(),),
    menu=(MenuEntry("language", N_("Change language"), 40, _choose_language),),
)

PRIVACY = Feature(
    name="privacy",
    commands=(basics.PRIVACY,),
    menu=(MenuEntry("privacy", N_("Privacy"), 50, _show_privacy),),
)

ERASURE = Feature(
    name="erasure",
    commands=(basics.DELETE_ME,),
    dialogs=(DeleteMeDialog(),),
    menu=(MenuEntry("delete", N_("Erase my data"), 60, _confirm_erasure),),
)


async def _audit_verify(ctx: CliContext, args: argparse.Namespace) -> int:
    async with ctx.database.sessions() as session:
        check = await ctx.services.audit.verify(session)
    if check.ok:
        print(f"audit log intact: {counted(check.entries, 'entry', 'entries')}", file=ctx.out)
        return 0
    return ctx.fail(f"audit log broken at entry {check.first_bad_id}: it was changed, or an entry before it "
                    "was removed")


STAFF_ADMIN = Feature(
    name="staff",
    commands=STAFF_COMMANDS,
    cli=(CliGroup("audit", "the staff action log", (
        CliVerb("verify", "check the hash chain; exits 1 if an entry was changed or removed", _audit_verify),
    )),),
    sealed=(ORGANISATION_NAME, GROUP_NAME),
    retention=(OLD_AUDIT, SPENT_INVITES),
)

DELIVERY = Feature(
    name="delivery",
    sealed=(OUTBOX_PAYLOAD,),
    retention=(OLD_OUTBOX,),
)
