"""Contact requests on Telegram: the real core behind the Telegram transport, PTB talking HTTP to
the local Bot API server, the outbox sender running as in ``civicbot run``.

A person asks to talk to staff (after the plain warning that Telegram reads the chat), staff
work in a Telegram staff group that gets content-free notices only, claim the case, answer it
with /reply, the person answers back and staff close it. Someone in the group who is not staff
cannot use the staff commands.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from botapi_server import LocalBotApi, SentMessage, SimUser
from sqlalchemy import select
from telegram_support import Conversation, running_bot

from bot.app import build_scheduler
from bot.cases.crypto import StaffPrivateKey
from bot.config import (
    BrandingSettings,
    ContactsSettings,
    LimitsSettings,
    OutboxSettings,
    Settings,
    StaffSettings,
    TelegramSettings,
)
from bot.core.security import KeyRing
from bot.storage.models import AuditEntry, Case, OutboxMessage, utcnow
from tests.support import make_settings

DESCRIPTION = "The witness from Deir ez-Zor wants to talk"
ANSWER = "We can talk on Thursday. Is that safe for you?"
FOLLOW_UP = "Thursday is fine, after eight"
MATRIX_DESK = "@desk:example.org"


def plain(text: str) -> str:
    return text.replace("\u2068", "").replace("\u2069", "")


class Group:
    """What the bot has said in the staff group so far."""

    def __init__(self, api: LocalBotApi, chat: dict[str, object]) -> None:
        self.api, self.chat, self.seen = api, chat, 0

    @property
    def id(self) -> int:
        return int(str(self.chat["id"]))

    async def replies(self, count: int = 1) -> list[SentMessage]:
        new = await self.api.next_messages(self.id, self.seen, count, timeout=10.0)
        self.seen += count
        return new

    async def say(self, user: SimUser, text: str, count: int = 1) -> list[SentMessage]:
        user.say(text, chat=self.chat)  # type: ignore[arg-type]
        return await self.replies(count)


def settings_for(bot_api: LocalBotApi, tmp_path: Path, staff: SimUser, group: int, public: str) -> Settings:
    telegram = TelegramSettings(token=bot_api.token, api_base_url=bot_api.base_url,  # type: ignore[arg-type]
                                per_chat_interval_seconds=0.05)
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}", tmp_path, telegram=telegram,
                             limits=LimitsSettings(flood_messages=10_000), outbox=OutboxSettings(poll_seconds=0.1),
                             branding=BrandingSettings(matrix_address=MATRIX_DESK),
                             contacts=ContactsSettings(staff_public_key=public))
    return settings.model_copy(update={"staff": StaffSettings(members=[f"telegram:{staff.id}"], telegram_chat=group)})


async def onboard(person: Conversation) -> None:
    (languages,) = await person.say("/start")
    (consent,) = await person.press(languages, label="English")
    (invite,) = await person.press(consent, label="I agree")
    (bulletins,) = await person.press(invite, label="Skip")
    await person.press(bulletins, label="No, thank you", count=3)  # not subscribed, all set, menu


async def test_contact_request_full_cycle_on_telegram_with_content_free_staff_notices(
        bot_api: LocalBotApi, tmp_path: Path, keys: KeyRing) -> None:
    private = StaffPrivateKey.generate()
    person = Conversation(bot_api, bot_api.user(language_code="en", first_name="Amira"))
    staff_user = bot_api.user(language_code="en", first_name="Coordinator")
    outsider = bot_api.user(language_code="en", first_name="Visitor")
    group = Group(bot_api, bot_api.group())
    settings = settings_for(bot_api, tmp_path, staff_user, group.id, private.public.text)

    async with running_bot(settings, keys, outbox_loop=True) as (bot, _transport):
        await onboard(person)

        # The honesty step comes first, before any detail is asked.
        (warning,) = await person.say("/contact")
        assert plain(warning.text).startswith("Before you go on: Telegram can read this chat")
        assert MATRIX_DESK in warning.text
        assert warning.labels == ["Continue here", "I will use Matrix", "Stop"]
        (topic,) = await person.press(warning, label="Continue here")
        assert topic.text == "What would you like to talk to staff about?"
        (description,) = await person.press(topic, label="Ask for a meeting")
        assert "Remember that Telegram can read this chat." in description.text
        (way,) = await person.say(DESCRIPTION)
        (when,) = await person.press(way, label="By message, here")
        (confirm,) = await person.press(when, label="Evenings")
        assert DESCRIPTION not in confirm.text  # not repeated on the phone
        (receipt,) = await person.press(confirm, label="Send")
        assert receipt.protected and "Your reference is" in receipt.text
        reference = plain(receipt.text).split("Your reference is ")[1].split(".")[0]

        # The staff group gets a notice without content.
        (notice,) = await group.replies()
        assert plain(notice.text).startswith(f"New case {reference} · meeting · English · Telegram")
        assert DESCRIPTION not in notice.text and notice.protected
        assert f"/reply {reference}" in plain(notice.text)

        # Nobody claimed it in time: the feature's job, as the leader's scheduler runs it on a moved
        # clock, reminds the group once, through the outbox.
        later = utcnow() + dt.timedelta(hours=25)
        scheduled = build_scheduler(bot.services, clock=lambda: later).get_job("case-upkeep")
        assert scheduled is not None
        await scheduled.func()
        (reminder,) = await group.replies()
        assert plain(reminder.text) == f"Reminder: {reference} (meeting) has not been claimed for 25 hours."
        await scheduled.func()
        async with bot.services.database.sessions() as session:
            assert await session.scalar(select(OutboxMessage).where(OutboxMessage.status == "pending")) is None

        # Someone in the group who is not staff: nothing is theirs to do there, and nothing is answered.
        handled = bot.router.handled
        for text in ("/cases", f"/claim {reference}", f"/reply {reference} I can help"):
            outsider.say(text, chat=group.chat)  # type: ignore[arg-type]
        await bot.router.wait_handled(handled + 3)
        assert len(bot_api.sent_to(group.id)) == group.seen, "the bot said nothing in the group"

        (claimed,) = await group.say(staff_user, f"/claim {reference}")
        assert plain(claimed.text) == f"{reference} is yours now."
        (sent,) = await group.say(staff_user, f"/reply@{bot_api.bot_user['username']} {reference} {ANSWER}")
        assert plain(sent.text) == f"Sent to the person in {reference} ✓"
        (message,) = await person.replies()
        assert plain(message.text) == f"Message from staff about {reference}:\n{ANSWER}" and message.protected
        assert "Coordinator" not in message.text and str(staff_user.id) not in message.text

        (tick,) = await person.say(FOLLOW_UP)
        assert tick.text == "Sent to staff ✓"
        (new_message,) = await group.replies()
        assert plain(new_message.text) == f"{reference}: a new message from the person."

        (closed,) = await group.say(staff_user, f"/close {reference}")
        assert plain(closed.text) == f"{reference} is closed; the person was told."
        (told,) = await person.replies()
        assert plain(told.text).startswith(f"Staff have closed your request {reference}.")

        for sent_message in bot_api.sent_to(group.id):
            for secret in (DESCRIPTION, FOLLOW_UP, "Deir ez-Zor", "eight"):
                assert secret not in sent_message.text
        async with bot.services.database.sessions() as session:
            case = await session.scalar(select(Case))
            assert case is not None and case.status == "closed"
            actions = [e.action for e in await session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
            assert actions == ["case.claim", "case.reply", "case.close"]
