"""Issue 5's "done when" on Telegram: the families-of-the-missing survey answered end to end.

The real core (router, dialogs, outbox sender, SQLite) behind the Telegram transport, PTB
talking HTTP to the local Bot API server. Staff set up a focus group with commands, two
people join by pressing buttons and typing their codes, the outbox delivers the invitations,
and one person answers by pressing buttons: a skip, branching, a multiple choice (tick,
untick, "Done", a refused fourth tick), an invalid typed answer, "Back", and a restart of the
bot in the middle (with a press made while it is down). The stored response and the export
are checked as tests/test_surveys.py checks them on the in-process harness.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from botapi_server import LocalBotApi, SentMessage, SimUser
from sqlalchemy import select
from telegram_support import Conversation, running_bot

from bot.config import LimitsSettings, OutboxSettings, Settings, TelegramSettings
from bot.core.security import KeyRing
from bot.storage.models import SurveyInvitation
from bot.surveys.service import Surveys
from bot.transports.telegram_mapping import RLM
from tests.support import check_families_response, make_settings, store_anonymous_answers

SURVEY = "families-of-the-missing"
CODE = re.compile(r"([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})")
TICK = "\u2713"
COMMENT = "Please find my brother, taken from Homs in 2014"


def isolated(value: object) -> str:
    """How the core embeds a value in a translated sentence (first-strong isolate)."""
    return f"\u2068{value}\u2069"


def settings_for(bot_api: LocalBotApi, tmp_path: Path, staff: SimUser) -> Settings:
    """Scripted people answer faster than any person could: lift the flood limit. The outbox
    sender polls often, so invitations go out promptly without the test poking it."""
    telegram = TelegramSettings(token=bot_api.token, api_base_url=bot_api.base_url,  # type: ignore[arg-type]
                                per_chat_interval_seconds=0.05)
    return make_settings(f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}", tmp_path,
                         staff=[f"telegram:{staff.id}"], telegram=telegram,
                         limits=LimitsSettings(flood_messages=10_000), outbox=OutboxSettings(poll_seconds=0.1))


async def onboard(person: Conversation, language: str, code: str) -> list[SentMessage]:
    """/start, press the language and the first consent button, type the invitation code, say yes
    to the bulletins: what they see from the code on."""
    (languages,) = await person.say("/start")
    (consent,) = await person.press(languages, label=language)
    (invite,) = await person.press(consent, label=consent.labels[0])
    assert "invitation code" in invite.text or invite.text.startswith(RLM)
    joined, bulletins = await person.say(code, count=2)
    return [joined, *await person.press(bulletins, index=0, count=2)]  # joined, all set, main menu


def ticked(prompt: SentMessage) -> list[str]:
    return [label.removeprefix(f"{TICK} ") for label in prompt.labels if label.startswith(TICK)]


def closed_silently(prompt: SentMessage) -> bool:
    """A pressed sensitive prompt: its keyboard is gone, and the answer is not written into the chat."""
    return prompt.protected and not prompt.keyboard and bool(prompt.edits) and TICK not in prompt.text


async def test_families_survey_on_telegram_with_buttons_branching_back_skip_invalid_answers_and_restart(
    bot_api: LocalBotApi, tmp_path: Path, keys: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    coordinator = Conversation(bot_api, bot_api.user(language_code="en", first_name="Coordinator"))
    amira = Conversation(bot_api, bot_api.user(language_code="en", first_name="Amira"))
    noor = Conversation(bot_api, bot_api.user(language_code="ar", first_name="Noor"))
    settings = settings_for(bot_api, tmp_path, coordinator.user)

    async with running_bot(settings, keys, outbox_loop=True):
        # Staff set up the focus group and one code per member, all by commands.
        (org,) = await coordinator.say("/org add families association Families Association")
        (group,) = await coordinator.say("/group add fg-missing focus_group families")
        assert "fg-missing" in group.text and "families" in org.text
        codes = []
        for _ in range(2):
            (invite,) = await coordinator.say("/invite families fg-missing")
            assert invite.protected  # a code is a secret: no forwarding, no screenshots
            codes.append(CODE.search(invite.text).group(1))  # type: ignore[union-attr]

        joined, _, menu = await onboard(amira, "English", codes[0])
        assert joined.text == f"Thank you. You have joined {isolated('families')}." and "Main menu" in menu.text
        joined, _, _ = await onboard(noor, "العربية", codes[1])
        assert joined.text.startswith(RLM) and "families" in joined.text

        (launched,) = await coordinator.say(f"/survey launch {SURVEY} fg-missing")
        assert f"{isolated(2)} people invited" in launched.text
        (invitation,) = await amira.replies()  # sent by the outbox sender, not as a reply
        assert invitation.text.startswith(f"New survey: {isolated('Needs of families of the missing')}")
        assert invitation.text.endswith("Send /surveys to answer.")
        (arabic,) = await noor.replies()
        assert "احتياجات عائلات المفقودين" in arabic.text and "/surveys" in arabic.text
        assert all(line.startswith(RLM) for line in arabic.text.split("\n"))  # right to left, line by line

        # Amira answers by pressing buttons.
        (intro,) = await amira.say("/surveys")
        assert intro.labels == ["Start", "Later"] and "anonymous" in intro.text and intro.protected
        (relation,) = await amira.press(intro, "Start")
        assert closed_silently(intro)
        assert relation.text.startswith(f"Question {isolated(1)} of {isolated(9)}")  # "to whom" only if reported
        assert relation.protected and relation.labels[:2] == ["Parent", "Spouse"] and "Back" not in relation.labels
        (since,) = await amira.press(relation, "Spouse")
        assert closed_silently(relation) and since.labels[-2:] == ["Skip", "Back"]
        (reported,) = await amira.press(since, "Skip")  # optional
        assert reported.labels == ["Yes", "No", "Back"]
        (to_whom,) = await amira.press(reported, "Yes")  # reported: yes -> "to whom" is shown
        assert "To whom" in to_whom.text and to_whom.text.startswith(f"Question {isolated(4)} of {isolated(9)}")
        assert ticked(to_whom) == [] and to_whom.labels[-2:] == ["Done", "Back"]

        (one,) = await amira.press(to_whom, "A local organisation")
        assert ticked(one) == ["A local organisation"] and closed_silently(to_whom)
        (two,) = await amira.press(one, "The authorities")
        assert ticked(two) == ["A local organisation", "The authorities"]
        (untick,) = await amira.press(two, f"{TICK} A local organisation")  # untick
        assert ticked(untick) == ["The authorities"]
        assert f"Selected: {isolated('The authorities')}" in untick.text and "A local organisation" in untick.labels
        (needs,) = await amira.press(untick, "Done")
        assert "need most" in needs.text and ticked(needs) == []

        prompt = needs
        for option in ("Legal help", "Financial support", "Civil documents"):
            (prompt,) = await amira.press(prompt, option)
        assert ticked(prompt) == ["Legal help", "Financial support", "Civil documents"]
        refusal, again = await amira.press(prompt, "Safety and protection", count=2)  # a fourth: refused
        assert f"at most {isolated(3)} options" in refusal.text
        assert ticked(again) == ["Legal help", "Financial support", "Civil documents"]
        (trust,) = await amira.press(again, "Done")
        assert "trust" in trust.text and trust.labels == ["1", "2", "3", "4", "5", "Back"]

        refused, trust = await amira.say("6", count=2)  # not "option 6": the scale is 1 to 5
        assert refused.text == f"That is not a valid answer. Please answer with a number from {isolated(1)} to {isolated(5)}."
        assert "trust" in trust.text and trust.labels == ["1", "2", "3", "4", "5", "Back"]
        (needs_again,) = await amira.press(trust, "Back")
        assert "need most" in needs_again.text  # the needs question again, still ticked
        assert ticked(needs_again) == ["Legal help", "Financial support", "Civil documents"]

    # The bot stops in the middle of the survey; Amira presses "Done" while it is down.
    polls_before = len(bot_api.calls_to("getUpdates"))
    amira.user.press(needs_again, label="Done")
    amira.presses += 1

    async with running_bot(settings, keys, outbox_loop=True) as (bot, _):  # a new instance, same database
        await bot_api.wait_for(lambda: len(bot_api.calls_to("getUpdates")) > polls_before)
        (trust,) = await amira.replies()  # the press from before the restart is answered
        assert "trust" in trust.text and closed_silently(needs_again)
        (household,) = await amira.press(trust, "4")
        assert household.text.startswith(f"Question {isolated(7)} of {isolated(9)}\n\nHow many people")
        assert household.labels == ["Skip", "Back"] and closed_silently(trust)
        invalid, household = await amira.say("many", count=2)
        assert invalid.text.startswith("That is not a valid answer.")
        assert f"{isolated(1)} to {isolated(30)}" in invalid.text and "How many people" in household.text
        (updates,) = await amira.say("٥")  # five, in Eastern Arabic digits
        (comment,) = await amira.press(updates, "Through this bot")
        assert "anything else" in comment.text and comment.labels == ["Skip", "Back"]
        closing, menu = await amira.say(COMMENT, count=2)
        assert closing.text.startswith("Thank you. Your answers will help") and menu.text.startswith("Main menu")
        assert len(bot_api.callback_answers) == amira.presses + noor.presses  # every press was answered

        services = bot.services
        assert await store_anonymous_answers(services) == 1
        async with services.database.sessions() as session:
            row = await check_families_response(session, services.get(Surveys), COMMENT)
            invitations = list(await session.scalars(select(SurveyInvitation).order_by(SurveyInvitation.id)))
            assert [i.status for i in invitations] == ["completed", "invited"]  # Noor has not answered
        assert row["language"] == "en" and row["response"] == "1"
        exported = ",".join(row)  + "," + ",".join(row.values())
        for person in (amira, noor, coordinator):
            assert str(person.user.id) not in exported
            assert keys.pseudonym("telegram", str(person.user.id)) not in exported
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("civicbot.db"))
    assert raw and b"taken from Homs" not in raw  # the free text is encrypted at rest
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
