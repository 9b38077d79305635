"""Texts shared by several dialogs and commands (help, privacy notice)."""

from __future__ import annotations

from bot.conversation.feature import FeatureSet
from bot.conversation.turn import Turn
from bot.core.i18n import N_

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
    if settings.contacts.enabled:  # the contact requests feature is on
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
    """``/help``, from the command table of the features that are on: it cannot drift from it."""
    table = turn.services.get(FeatureSet).command_table()
    return table.help_text(turn.tr, staff=turn.role.is_staff)
