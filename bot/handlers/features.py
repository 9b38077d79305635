"""The basic features, each declared once: the conversation itself (menu, help, cancel),
onboarding, language, privacy, erasure, staff administration and delivery (the outbox)."""

from __future__ import annotations

import argparse
from dataclasses import replace

from bot.conversation.engine import State
from bot.conversation.feature import CliContext, CliGroup, CliVerb, Feature, MenuEntry
from bot.conversation.turn import Turn
from bot.core.counts import counted
from bot.core.i18n import N_
from bot.dialogs.delete_me import DeleteMeDialog
from bot.dialogs.language import LanguageDialog
from bot.dialogs.onboarding import OnboardingDialog, invite_state
from bot.dialogs.texts import help_text, privacy_notice
from bot.handlers import basics, panic
from bot.handlers.staff import STAFF_COMMANDS
from bot.services.audit import Head, purge_before
from bot.storage.models import (
    DIALOG_STATE_DATA,
    FORGET_REQUEST_ADDRESS,
    GROUP_NAME,
    INACTIVE_PARTICIPANTS,
    OLD_AUDIT,
    OLD_FORGET_REQUESTS,
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

PANIC = Feature(
    name="panic",
    commands=(panic.PANIC,),
    menu=(MenuEntry("panic", panic.PANIC_MENU, 65, panic.panic_from_menu),),
)

ERASURE = Feature(
    name="erasure",
    commands=(basics.DELETE_ME,),
    dialogs=(DeleteMeDialog(),),
    menu=(MenuEntry("delete", N_("Erase my data"), 60, _confirm_erasure),),
    sealed=(FORGET_REQUEST_ADDRESS,),
    retention=(OLD_FORGET_REQUESTS,),
)


async def _audit_verify(ctx: CliContext, args: argparse.Namespace) -> int:
    try:
        head = Head.parse(args.head) if args.head is not None else None
    except ValueError as exc:
        return ctx.fail(f"--head: {exc}", 2)
    async with ctx.database.sessions() as session:
        check = await ctx.services.audit.verify(session, head)
    if check.ok:
        print(f"audit log intact: {counted(check.entries, 'entry', 'entries')}"
              + (f", head {head.entry_id} present" if head else ""), file=ctx.out)
        return 0
    problems = {
        "changed": f"audit log broken at entry {check.first_bad_id}: it was changed, or an entry before it "
                   "was removed",
        "start": f"audit log cut at the start: entry {check.first_bad_id} follows entries that were removed "
                 "without a retention checkpoint",
        "end": f"audit log cut at the end: the exported head (entry {check.first_bad_id}) is gone, so entries "
               "were removed or rewritten since it was exported",
        "purged": f"the exported head (entry {check.first_bad_id}) was purged by retention since; export a newer "
                  "head with 'civicbot audit head'",
    }
    return ctx.fail(problems[check.problem or "changed"])


async def _audit_head(ctx: CliContext, args: argparse.Namespace) -> int:
    async with ctx.database.sessions() as session:
        head = await ctx.services.audit.head(session)
    if head is None:
        return ctx.fail("the audit log is empty")
    print(head, file=ctx.out)
    return 0


def _head_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--head", help="a head printed earlier by 'audit head' (ID:HASH): proves nothing after "
                                       "it was removed")


AUDIT_RETENTION = replace(OLD_AUDIT, purge=purge_before)  # leaves a checkpoint that vouches for the new start

STAFF_ADMIN = Feature(
    name="staff",
    commands=STAFF_COMMANDS,
    cli=(CliGroup("audit", "the staff action log", (
        CliVerb("verify", "check the hash chain; exits 1 if an entry was changed or removed, or the log was cut",
                _audit_verify, arguments=_head_argument),
        CliVerb("head", "print the newest entry as ID:HASH, to keep off the server for 'audit verify --head'",
                _audit_head),
    )),),
    sealed=(ORGANISATION_NAME, GROUP_NAME),
    retention=(AUDIT_RETENTION, SPENT_INVITES),
)

DELIVERY = Feature(
    name="delivery",
    sealed=(OUTBOX_PAYLOAD,),
    retention=(OLD_OUTBOX,),
)
