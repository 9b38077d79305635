"""Short notices the router and transports send outside any dialog.

Kept in one place so every transport gets the same localized wording.
"""

from __future__ import annotations

from bot.core.i18n import N_, Translator

UNSUPPORTED_MEDIA = N_(
    "I can only read text messages. Photos, voice messages, videos, files, stickers, locations and "
    "contacts are not accepted here, and nothing of what you sent was saved."
)
SAFE_CHANNEL = N_("To share documents, photos or recordings safely, use: %(channel)s")
TOO_LONG = N_(
    "Your message is too long to be accepted. Please keep it under %(limit)s characters and send it again."
)
FLOOD = N_(
    "You are sending messages very quickly. Please wait a few seconds: messages sent during this time "
    "are not read, so please send them again afterwards."
)
UNKNOWN_COMMAND = N_("I do not know that command. Send /help to see what you can do.")
NOT_REGISTERED = N_("Please send /start first.")
INTERNAL_ERROR = N_(
    "Sorry, something went wrong on our side. Nothing you sent was lost. Please try again in a moment."
)
STAFF_CHAT_ONLY = N_(
    "In this chat I only answer staff commands. Write to me in a private chat for everything else."
)
NOT_PASSED_ON = N_(
    "Your message was not passed on to anyone: I only read commands and answers to my questions. "
    "Here is the menu; you can also send /menu at any time."
)
NOT_PASSED_ON_CONTACT = N_(
    "Your message was not passed on to anyone: I only read commands and answers to my questions. "
    "To write to staff in confidence, send /contact. Here is the menu; you can also send /menu at any time."
)
CONTACT_COMMAND = "contact"
"""Where confidential contact requests start, when the deployment offers them."""
STALE_BUTTON_NO_DIALOG = N_("This button is no longer valid. Send /menu to see what you can do.")
ENABLE_ENCRYPTION = N_(
    "This room is not encrypted, so I will not reply here. Please enable encryption for this room, "
    "or start a new encrypted direct chat with me."
)
NOT_PRIVATE = N_(
    "Other people can read this room, so I will not reply here. To protect you, please start a new "
    "direct chat with me."
)
UNDECRYPTABLE = N_(
    "I could not read your last message because it arrived without its encryption key. "
    "Please send it again."
)

NOTICES = {
    "unsupported_media": UNSUPPORTED_MEDIA,
    "flood": FLOOD,
    "unknown_command": UNKNOWN_COMMAND,
    "not_registered": NOT_REGISTERED,
    "internal_error": INTERNAL_ERROR,
    "stale_button": STALE_BUTTON_NO_DIALOG,
    "not_passed_on": NOT_PASSED_ON,
    "enable_encryption": ENABLE_ENCRYPTION,
    "not_private": NOT_PRIVATE,
    "undecryptable": UNDECRYPTABLE,
}


def notice(tr: Translator, kind: str) -> str:
    """The localized notice ``kind`` (one of :data:`NOTICES`)."""
    return tr._(NOTICES[kind])


def not_passed_on(tr: Translator, *, contact: bool) -> str:
    """Typed text that reaches nobody: said plainly, with the way to staff where it exists."""
    return tr._(NOT_PASSED_ON_CONTACT if contact else NOT_PASSED_ON)
