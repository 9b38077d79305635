"""Participants choose whether they receive bulletins: asked at onboarding (yes by default),
``/subscribe``, ``/unsubscribe``, and stop words in every language, which act at once.
"""

from __future__ import annotations

import unicodedata

from bot.bulletins.service import Bulletins
from bot.bulletins.texts import STOP_WORDS
from bot.conversation.engine import Prompt
from bot.conversation.feature import OnboardingStep
from bot.conversation.turn import Turn
from bot.core.i18n import N_
from bot.core.model import Choice, InboundKind

ONBOARDING_QUESTION = N_(
    "The mechanism sends a bulletin from time to time: news, consultations and ways to take part, in your "
    "language. Would you like to receive it? You can change this at any time with /subscribe and /unsubscribe."
)
YES = N_("Yes, send it to me")
NO = N_("No, thank you")

# What people type to stop: the word of each language, common variants and spellings
# (Sorani with or without the small v above ڕ, Arabic with or without diacritics).
_STOP = frozenset({
    "stop", "unsubscribe", "توقف", "أوقف", "اوقف", "إيقاف", "ايقاف", "ڕاوەستە", "راوەستە", "وەستان", "ڕاگرتن",
    "raweste", "rawestîne", "rawestine", "bisekine",
})
_ARABIC_MARKS = {chr(c) for c in range(0x064B, 0x0653)} | {"\u0670", "\u0640"}  # harakat, dagger alif, tatweel


def is_stop_word(text: str) -> bool:
    """The whole message is a stop word (any case, spacing, trailing punctuation, Arabic diacritics)."""
    folded = unicodedata.normalize("NFKC", text).casefold().strip().strip(".!؟?،,")
    folded = "".join(ch for ch in folded if ch not in _ARABIC_MARKS and unicodedata.category(ch) != "Cf")
    return folded.strip() in _STOP


def stop_word(language: str) -> str:
    return STOP_WORDS.get(language, STOP_WORDS["en"])


async def _not_asked(turn: Turn) -> bool:
    return turn.participant is not None and not await turn.services.get(Bulletins).has_chosen(
        turn.session, turn.participant.id)


def _question(turn: Turn) -> Prompt:
    """Yes comes first: it is the default (someone who does not answer receives the bulletins)."""
    return Prompt(turn.tr._(ONBOARDING_QUESTION), (Choice("yes", turn.tr._(YES)), Choice("no", turn.tr._(NO))))


async def _answer(turn: Turn, key: str) -> None:
    """Only a "no" needs saying anything."""
    if turn.participant is None:
        return
    await turn.services.get(Bulletins).subscribe(turn.session, turn.participant.id, key == "yes")
    if key != "yes":
        turn.say(turn.tr._("You will not receive bulletins. If you change your mind, send /subscribe."))


ONBOARDING_STEP = OnboardingStep("bulletins", _not_asked, _question, _answer)


async def subscribe(turn: Turn, args: list[str], engine: object) -> None:
    assert turn.participant is not None
    service = turn.services.get(Bulletins)
    already = await service.subscribed(turn.session, turn.participant.id)
    await service.subscribe(turn.session, turn.participant.id, True)
    word = stop_word(turn.tr.language)
    turn.say(turn.tr._("You already receive the bulletins. To stop them, send /unsubscribe or %(word)s.", word=word)
             if already else
             turn.tr._("You will receive the bulletins. To stop them, send /unsubscribe or %(word)s.", word=word))


async def unsubscribe(turn: Turn, args: list[str], engine: object) -> None:
    assert turn.participant is not None
    await _unsubscribe(turn)


async def _unsubscribe(turn: Turn) -> None:
    assert turn.participant is not None
    await turn.services.get(Bulletins).subscribe(turn.session, turn.participant.id, False)
    turn.say(turn.tr._("Done: you will not receive any more bulletins. To receive them again, send /subscribe."))


async def stop_words(turn: Turn) -> bool:
    """Checked before commands and dialogs: a stop word unsubscribes at once, wherever the person is."""
    inbound = turn.inbound
    if turn.participant is None or inbound.kind is not InboundKind.TEXT or not is_stop_word(inbound.text):
        return False
    await _unsubscribe(turn)
    return True
