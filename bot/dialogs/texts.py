"""Texts shared by several dialogs and commands (help, privacy notice)."""

from __future__ import annotations

from bot.core.context import Turn
from bot.core.i18n import N_

HELP = N_(
    "What you can do:\n"
    "/menu – the main menu\n"
    "/join – enter an invitation code\n"
    "/language – change the language\n"
    "/privacy – what is stored about you and how to erase it\n"
    "/delete_me – erase everything stored about you\n"
    "/cancel – stop the current question\n"
    "/help – this help"
)
STAFF_HELP = N_(
    "Staff commands:\n"
    "/whoami – your role and organisation\n"
    "/org add <code> <kind> <name> – register an organisation (kinds: cso, association, signatory, other)\n"
    "/org list – list organisations\n"
    "/group add <code> <kind> [organisation] – create a group (kinds: focus_group, association, audience)\n"
    "/group list – list groups\n"
    "/invite <organisation> [group ...] – make a single-use invitation code"
)
PRIVACY_STORED = N_(
    "How your information is handled:\n"
    "• Stored: your language, the organisation and groups you join, and the answers you choose to give. "
    "Never your name, username, phone number or photo. Your account is stored only as a coded "
    "identifier, and your answers are encrypted."
)
PRIVACY_SEEN = N_(
    "• Seen by: only the mechanism's staff, and never together with your account.\n"
    "• Erased: send /delete_me at any time."
)
PLATFORM_READS = N_(
    "Important: Telegram itself can read this chat, because bot chats are not end-to-end encrypted. "
    "Do not send sensitive details here."
)
CASES_HELP = N_(
    "/contact – ask to talk to staff in confidence\n"
    "/case – the status of your request\n"
    "/withdraw – withdraw your request"
)
CASES_STAFF_HELP = N_(
    "/cases – open contact requests, with their waiting times\n"
    "/claim <reference> – take a contact request\n"
    "/reply <reference> <text> – answer the person (they never see who answered)\n"
    "/close <reference> – close it; the person is told"
)
MATRIX_OFFER = N_("For confidential matters, contact us on Matrix, which is end-to-end encrypted: %(address)s")


def privacy_notice(turn: Turn) -> str:
    """The privacy notice, with the platform warning where the operator can read the chat."""
    settings = turn.services.settings
    days = settings.retention.inactive_participant_days
    kept = turn.tr.n_(
        "• Kept: until you erase it, and deleted automatically after %(n)s day without use.",
        "• Kept: until you erase it, and deleted automatically after %(n)s days without use.",
        days,
    )
    lines = [turn.tr._(PRIVACY_STORED), kept, turn.tr._(PRIVACY_SEEN)]
    if turn.services.cases.available:
        lines.insert(2, turn.tr.n_(
            "• Requests to talk to staff: what you write is encrypted so that only staff can read it, and "
            "deleted %(n)s day after the request is closed.",
            "• Requests to talk to staff: what you write is encrypted so that only staff can read it, and "
            "deleted %(n)s days after the request is closed.",
            settings.retention.cases_days,
        ))
    parts = ["\n".join(lines)]
    if turn.capabilities.platform_reads_messages:
        parts.append(turn.tr._(PLATFORM_READS))
        if settings.branding.matrix_address:
            parts.append(turn.tr._(MATRIX_OFFER, address=settings.branding.matrix_address))
    return "\n\n".join(parts)


def help_text(turn: Turn) -> str:
    parts = [turn.tr._(HELP)]
    if turn.services.cases.available:
        parts.append(turn.tr._(CASES_HELP))
    if turn.role.is_staff:
        parts.append(turn.tr._(STAFF_HELP))
        parts.append(turn.tr._(CASES_STAFF_HELP))
    return "\n\n".join(parts)
