"""The transport over real HTTP: PTB 22 polling the local Bot API server.

Each test drives simulated people on the server and checks what the core would receive
(the ``Inbox``) and what Telegram would have shown (the server's records).
"""

from __future__ import annotations

import asyncio
import itertools
import socket

import aiohttp
import pytest
from botapi_faults import BAD_GATEWAY, INTERNAL, ApiError
from botapi_server import LocalBotApi
from telegram_support import Inbox, TransportFactory

from bot.core.model import Address, Choice, ChoiceRef, Direction, InboundKind, Outbound, PromptId
from bot.core.transport import PermanentDeliveryError, RecipientUnreachable, TransientDeliveryError
from bot.transports.telegram import TelegramOptions, TelegramTransport
from bot.transports.telegram_mapping import RLM
from bot.transports.telegram_recent import RecentMessages

YES_NO = (Choice("yes", "Yes"), Choice("no", "No"))


def address(user_id: int) -> Address:
    return Address("telegram", str(user_id))  # type: ignore[arg-type]


def ask(text: str = "Continue?", prompt_id: str = "Pq7_x-2a") -> Outbound:
    return Outbound(text, YES_NO, PromptId(prompt_id))


async def test_private_text_becomes_inbound_text(bot_api: LocalBotApi, start_transport: TransportFactory) -> None:
    inbox = Inbox()
    await start_transport(inbox)
    user = bot_api.user(language_code="ar")
    message = user.say("مرحبا")
    (event,) = await inbox.wait(1)
    assert event.kind is InboundKind.TEXT and event.text == "مرحبا"
    assert event.platform == "telegram" and event.user_id == str(user.id)
    assert event.address == address(user.id)
    assert event.language_hint == "ar"
    assert event.event_id == f"{user.id}:{message['message_id']}"


async def test_media_becomes_unsupported_and_nothing_is_downloaded(
    bot_api: LocalBotApi, start_transport: TransportFactory
) -> None:
    inbox = Inbox()
    await start_transport(inbox)
    user = bot_api.user()
    user.send_sticker()
    user.send_photo(caption="my id card")
    user.send_voice()
    user.send_document()
    user.send_video()
    user.send_location()
    user.send_contact()
    events = await inbox.wait(7)
    assert [e.kind for e in events] == [InboundKind.UNSUPPORTED] * 7
    assert [e.text for e in events] == [""] * 7  # not even a caption reaches the core
    assert bot_api.calls_to("getFile") == [] and bot_api.downloads == []


async def test_groups_are_silent_except_commands_in_the_staff_group(
    bot_api: LocalBotApi, start_transport: TransportFactory
) -> None:
    staff_room = bot_api.group(-1_009_000_000_001, "Staff")
    other = bot_api.group(-1_009_000_000_002, "Somewhere")
    inbox = Inbox()
    await start_transport(inbox, staff_chat_id=staff_room["id"])
    staff, stranger = bot_api.user(), bot_api.user()
    stranger.say("/start", chat=other)
    stranger.say("hello all", chat=other)
    staff.say("anyone seen the report?", chat=staff_room)
    staff.send_sticker(chat=staff_room)
    staff.say("/cases@civicbot_local_bot", chat=staff_room)
    stranger.say("private hello")
    # Updates are mapped one at a time, in order: once the last one arrived, any earlier update
    # that was wrongly let through would have arrived before it.
    await bot_api.wait_for(lambda: "private hello" in [e.text for e in inbox.events])
    events = inbox.events
    assert sorted((e.address.value, e.text) for e in inbox.events) == sorted([
        (str(staff_room["id"]), "/cases@civicbot_local_bot"), (str(stranger.id), "private hello"),
    ])
    assert len(events) == 2 and bot_api.sent == []


async def test_press_is_answered_closes_the_keyboard_and_reaches_the_core(
    bot_api: LocalBotApi, start_transport: TransportFactory
) -> None:
    inbox = Inbox(lambda e: Outbound("Thanks") if e.kind is InboundKind.CHOICE else None)
    transport = await start_transport(inbox)
    user = bot_api.user()
    delivery = await transport.send(address(user.id), ask())
    (prompt,) = bot_api.sent_to(user.id)
    assert delivery.message_id == str(prompt.message_id)
    assert [(b["text"], b["callback_data"]) for b in prompt.buttons] == [("Yes", "Pq7_x-2a:0"), ("No", "Pq7_x-2a:1")]
    query_id = user.press(prompt, label="No")
    (event,) = await inbox.wait(1)
    assert event.kind is InboundKind.CHOICE and event.choice == ChoiceRef("Pq7_x-2a", 1)
    assert event.event_id == f"cb:{query_id}"
    await bot_api.wait_for_messages(user.id, 2)
    assert query_id in bot_api.callback_answers
    assert prompt.text == "Continue?\n\n\u2713 No" and prompt.keyboard == []
    order = [c.method for c in bot_api.calls if c.method in ("editMessageText", "sendMessage")]
    assert order == ["sendMessage", "editMessageText", "sendMessage"]  # closed before the core answers


async def test_a_sensitive_prompt_keeps_the_answer_out_of_the_chat(
    bot_api: LocalBotApi, start_transport: TransportFactory
) -> None:
    inbox = Inbox()
    transport = await start_transport(inbox)
    user = bot_api.user()
    await transport.send(address(user.id), Outbound("Are you safe now?", YES_NO, PromptId("s1"), sensitive=True))
    (prompt,) = bot_api.sent_to(user.id)
    user.press(prompt, label="No")
    await inbox.wait(1)
    await bot_api.wait_for(lambda: prompt.keyboard == [])
    assert prompt.text == "Are you safe now?" and prompt.protected
    assert bot_api.calls_to("editMessageText") == [] and len(bot_api.calls_to("editMessageReplyMarkup")) == 1


async def test_forged_stale_and_oversized_presses(bot_api: LocalBotApi, start_transport: TransportFactory) -> None:
    inbox = Inbox()
    transport = await start_transport(inbox)
    user = bot_api.user()
    await transport.send(address(user.id), ask())
    (prompt,) = bot_api.sent_to(user.id)
    forged = user.press(prompt, data="Pq7_x-2a:7")
    other_prompt = user.press(prompt, data="AAAAAAAA:0")
    oversized = user.press(prompt, data="Pq7_x-2a:" + "9" * 80)
    garbage = user.press(prompt, data="\u202e<script>")
    events = await inbox.wait(4)
    assert [e.choice for e in events] == [
        ChoiceRef("Pq7_x-2a", 7), ChoiceRef("AAAAAAAA", 0), ChoiceRef("", -1), ChoiceRef("", -1),
    ]
    await bot_api.wait_for(lambda: len(bot_api.callback_answers) == 4)
    assert set(bot_api.callback_answers) == {forged, other_prompt, oversized, garbage}
    assert bot_api.calls_to("editMessageText") == [] and len(prompt.buttons) == 2  # forged data edits nothing
    user.press(prompt, 0)
    user.press(prompt, 0)  # a second tap on the same message, already queued
    await inbox.wait(6)
    assert len(bot_api.calls_to("editMessageText")) == 2
    assert [c.status for c in bot_api.calls_to("editMessageText")] == [200, 400]  # "not modified": ignored
    assert prompt.keyboard == []


async def test_presses_in_other_groups_are_answered_and_ignored(
    bot_api: LocalBotApi, start_transport: TransportFactory
) -> None:
    inbox = Inbox()
    transport = await start_transport(inbox)
    group = bot_api.group(-1_009_000_000_003)
    user = bot_api.user()
    await transport.send(Address("telegram", str(group["id"])), ask())  # type: ignore[arg-type]
    (prompt,) = bot_api.sent_to(group["id"])
    query_id = user.press(prompt, 0)
    await bot_api.wait_for(lambda: query_id in bot_api.callback_answers)
    user.say("marker")
    await inbox.wait(1)
    assert [e.text for e in inbox.events] == ["marker"]
    assert len(prompt.buttons) == 2


async def test_rtl_mark_protect_content_and_photos(bot_api: LocalBotApi, start_transport: TransportFactory) -> None:
    transport = await start_transport(Inbox())
    user = bot_api.user(language_code="ar")
    await transport.send(address(user.id), Outbound("سؤال\n2. Aleppo", direction=Direction.RTL, language="ar",
                                                    sensitive=True))
    await transport.send(address(user.id), Outbound("Plain"))
    await transport.send(address(user.id), Outbound("Chart", image=b"\x89PNG\r\n\x1a\nchart", image_name="c.png"))
    rtl, plain, photo = bot_api.sent_to(user.id)
    assert rtl.text == f"{RLM}سؤال\n{RLM}2. Aleppo" and rtl.protected
    assert plain.text == "Plain" and not plain.protected
    assert photo.method == "sendPhoto" and photo.upload == b"\x89PNG\r\n\x1a\nchart" and photo.text == "Chart"
    assert all(c.params.get("link_preview_options") for c in bot_api.calls_to("sendMessage"))


async def test_long_text_is_sent_in_parts_under_telegrams_limit(
    bot_api: LocalBotApi, start_transport: TransportFactory
) -> None:
    transport = await start_transport(Inbox())
    user = bot_api.user()
    text = "\n\n".join(f"Paragraph {i}. " + "x" * 1500 for i in range(6))
    delivery = await transport.send(address(user.id), Outbound(text, YES_NO, PromptId("p")))
    parts = bot_api.sent_to(user.id)
    assert len(parts) == 3 and all(len(p.text) <= 4096 for p in parts)
    assert [bool(p.buttons) for p in parts] == [False, False, True]
    assert delivery.message_id == str(parts[-1].message_id)
    assert all(c.status == 200 for c in bot_api.calls_to("sendMessage"))


async def test_commands_are_published_per_language(bot_api: LocalBotApi, start_transport: TransportFactory) -> None:
    commands = {
        "en": [("start", "Start"), ("help", "Help")],
        "ar": [("start", "ابدأ"), ("help", "مساعدة")],
        "ckb": [("start", "دەستپێکردن"), ("help", "یارمەتی")],  # no two-letter code: gets the default menu
    }
    await start_transport(Inbox(), commands=commands, default_language="en")
    default = '{"type": "default"}'
    assert bot_api.commands == {
        (default, ""): [{"command": "start", "description": "Start"}, {"command": "help", "description": "Help"}],
        (default, "en"): [{"command": "start", "description": "Start"}, {"command": "help", "description": "Help"}],
        (default, "ar"): [{"command": "start", "description": "ابدأ"}, {"command": "help", "description": "مساعدة"}],
    }


async def test_flood_wait_is_obeyed_then_retried(bot_api: LocalBotApi, start_transport: TransportFactory) -> None:
    transport = await start_transport(Inbox())
    user = bot_api.user()
    bot_api.flood_wait(1)
    await transport.send(address(user.id), Outbound("after the wait"))
    first, second = bot_api.calls_to("sendMessage")
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0 - 0.02
    assert [m.text for m in bot_api.sent_to(user.id)] == ["after the wait"]


async def test_a_long_flood_wait_is_left_to_the_outbox(bot_api: LocalBotApi, start_transport: TransportFactory) -> None:
    transport = await start_transport(Inbox())
    bot_api.flood_wait(300)
    with pytest.raises(TransientDeliveryError) as raised:
        await transport.send(address(bot_api.user().id), Outbound("x"))
    assert raised.value.reason == "rate_limited" and raised.value.retry_after == 300
    assert len(bot_api.calls_to("sendMessage")) == 1


async def test_blocked_user_is_unreachable(bot_api: LocalBotApi, start_transport: TransportFactory) -> None:
    transport = await start_transport(Inbox())
    user = bot_api.user()
    bot_api.block(user)
    with pytest.raises(RecipientUnreachable) as raised:
        await transport.send(address(user.id), Outbound("hello"))
    assert raised.value.reason == "blocked"
    with pytest.raises(RecipientUnreachable) as gone:
        await transport.send(address(987_654_321), Outbound("hello"))
    assert gone.value.reason == "chat_not_found"
    assert len(bot_api.calls_to("sendMessage")) == 2  # neither is retried


async def test_server_errors_are_retried_with_backoff(bot_api: LocalBotApi, start_transport: TransportFactory) -> None:
    transport = await start_transport(Inbox())
    user = bot_api.user()
    bot_api.fail(INTERNAL, times=1)
    bot_api.fail(BAD_GATEWAY, times=1)
    await transport.send(address(user.id), Outbound("third time lucky"))
    assert [c.status for c in bot_api.calls_to("sendMessage")] == [500, 502, 200]
    bot_api.fail(BAD_GATEWAY, times=None)
    with pytest.raises(TransientDeliveryError) as raised:
        await transport.send(address(user.id), Outbound("never"))
    assert raised.value.reason == "network"
    assert [c.status for c in bot_api.calls_to("sendMessage")][3:] == [502, 502, 502]  # attempts=3


async def test_rejected_messages_are_permanent(bot_api: LocalBotApi, start_transport: TransportFactory) -> None:
    transport = await start_transport(Inbox())
    user = bot_api.user()
    bot_api.fail(ApiError(400, "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 0"))
    with pytest.raises(PermanentDeliveryError) as raised:
        await transport.send(address(user.id), Outbound("<x>"))
    assert raised.value.reason == "parse_error"
    with pytest.raises(PermanentDeliveryError):
        await transport.send(address(user.id), Outbound("   "))
    with pytest.raises(PermanentDeliveryError):
        await transport.send(Address("telegram", "not-a-chat"), Outbound("x"))  # type: ignore[arg-type]
    assert len(bot_api.calls_to("sendMessage")) == 1


async def test_slow_answers_time_out_and_are_retried(bot_api: LocalBotApi, start_transport: TransportFactory) -> None:
    transport = await start_transport(Inbox(), read_timeout_seconds=0.3)
    user = bot_api.user()
    bot_api.fail(None, delay=1.0, times=1)
    delivery = await transport.send(address(user.id), Outbound("eventually"))
    assert delivery.message_id in {str(m.message_id) for m in bot_api.sent_to(user.id)}
    assert len(bot_api.calls_to("sendMessage")) == 2


async def test_per_chat_and_overall_rates_hold(bot_api: LocalBotApi, start_transport: TransportFactory) -> None:
    rate, interval = 100.0, 0.5
    transport = await start_transport(Inbox(), rate_per_second=rate, per_chat_interval_seconds=interval)
    users = [bot_api.user() for _ in range(40)]
    sends = [transport.send(address(u.id), Outbound(f"{n}")) for n in range(5) for u in users]
    await asyncio.gather(*sends)
    assert len(bot_api.sent) == 200
    times = sorted(m.at for m in bot_api.sent)
    window = int(rate)
    # measured where Telegram measures: arrival times at the server, no allowance for jitter
    assert all(times[i + window] - times[i] >= 1.0 for i in range(len(times) - window))
    for user in users:
        mine = bot_api.sent_to(user.id)
        assert [m.text for m in mine] == ["0", "1", "2", "3", "4"]  # a chat's messages stay in order
        assert all(b.at - a.at >= interval for a, b in itertools.pairwise(mine))


async def test_a_flooding_chat_is_bounded_and_others_are_still_heard(
    bot_api: LocalBotApi, start_transport: TransportFactory
) -> None:
    """Updates are confirmed only once handled, and Telegram hands out at most 100 past the oldest
    unconfirmed one: a chat whose turn is stuck, with a flood queued behind it, would keep everyone
    else out of reach. Its queued excess is dropped, so others are heard as soon as its current turn
    ends, not after its whole backlog."""
    gate = asyncio.Event()

    class SlowInbox(Inbox):
        async def __call__(self, inbound):  # type: ignore[no-untyped-def]
            await super().__call__(inbound)
            if inbound.text.startswith("flood"):
                await gate.wait()

    inbox = SlowInbox()
    transport = await start_transport(inbox, max_chat_backlog=10)
    flooder, other = bot_api.user(), bot_api.user()
    for n in range(150):
        flooder.say(f"flood {n}")
    other.say("still here")
    await bot_api.wait_for(lambda: transport.dropped_updates >= 99)  # the excess, then the stuck chat's queue
    assert [e.text for e in inbox.events] == ["flood 0"]
    assert bot_api.pending_updates > 0, "nothing is confirmed before it was handled"
    gate.set()
    await bot_api.wait_for(lambda: "still here" in [e.text for e in inbox.events])
    await bot_api.wait_for(lambda: bot_api.pending_updates == 0, timeout=10)  # each handled or dropped
    numbers = [int(e.text.split()[1]) for e in inbox.events if e.text.startswith("flood")]
    assert numbers == sorted(numbers) and numbers[0] == 0  # in order, excess dropped
    assert len(numbers) <= 12  # one stuck turn, then one turn and a backlog of 10
    assert transport.dropped_updates == 150 - len(numbers)


async def test_a_malformed_update_is_confirmed_and_polling_goes_on(
    bot_api: LocalBotApi, start_transport: TransportFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """An update PTB cannot read (a forged or future shape) is skipped and confirmed; the people
    behind it are still heard, and nothing of it reaches the log."""
    inbox = Inbox()
    await start_transport(inbox)
    user = bot_api.user()
    bot_api.post_update({"message": {"message_id": "not a number", "chat": "nor a chat", "text": "secret words"}})
    bot_api.post_update({"message": 17})
    user.say("after the garbage")
    (event,) = await inbox.wait(1)
    assert event.text == "after the garbage"
    await bot_api.wait_for(lambda: bot_api.pending_updates == 0, timeout=10)  # each one confirmed
    assert "secret words" not in caplog.text


async def test_a_burst_is_not_fetched_once_per_turn(bot_api: LocalBotApi, start_transport: TransportFactory) -> None:
    """Updates are confirmed only once handled, so while turns run each poll hands them out again:
    the poller asks again after a turn ended, at most every 50 ms, not once per finished turn."""
    class SlowInbox(Inbox):
        async def __call__(self, inbound):  # type: ignore[no-untyped-def]
            await super().__call__(inbound)
            await asyncio.sleep(0.01)  # a turn's work

    inbox = SlowInbox()
    await start_transport(inbox, max_concurrent_chats=2)  # turns end one after the other, for a second
    people = [bot_api.user() for _ in range(100)]
    before = len(bot_api.calls_to("getUpdates"))
    for person in people:
        person.say("hello")
    await inbox.wait(100, timeout=20)
    await bot_api.wait_for(lambda: bot_api.pending_updates == 0, timeout=10)
    assert len(bot_api.calls_to("getUpdates")) - before < 40  # ~100 without the pause


async def test_handler_errors_never_escape(bot_api: LocalBotApi, start_transport: TransportFactory,
                                           caplog: pytest.LogCaptureFixture) -> None:
    def explode(inbound):  # type: ignore[no-untyped-def]
        if inbound.text == "boom":
            raise RuntimeError("handler bug")
        return Outbound("ok")

    inbox = Inbox(explode)
    await start_transport(inbox)
    user = bot_api.user()
    user.say("boom")
    user.say("fine")
    await bot_api.wait_for_messages(user.id, 1)
    assert [e.text for e in inbox.events] == ["boom", "fine"]
    assert "handling an update failed: RuntimeError" in caplog.text


async def test_restart_picks_up_messages_sent_while_down(
    bot_api: LocalBotApi, start_transport: TransportFactory
) -> None:
    first = Inbox()
    transport = await start_transport(first)
    user = bot_api.user()
    user.say("one")
    await first.wait(1)
    await transport.stop()
    user.say("two")
    second = Inbox()
    await start_transport(second)
    await second.wait(1)
    user.say("three")  # in order after anything redelivered: once it arrives, nothing else is coming
    await second.wait(2)
    assert [e.text for e in first.events] == ["one"]
    assert [e.text for e in second.events] == ["two", "three"]  # nothing lost, nothing handled twice


async def test_send_before_start_waits_and_after_stop_fails_softly(bot_api: LocalBotApi) -> None:
    transport = TelegramTransport(TelegramOptions(token=bot_api.token, api_base_url=bot_api.base_url,
                                                  poll_timeout_seconds=1, per_chat_interval_seconds=0))
    user = bot_api.user()
    early = asyncio.create_task(transport.send(address(user.id), Outbound("queued early")))
    await asyncio.sleep(0)  # the send runs up to its wait for the start
    assert not early.done()
    await transport.start(Inbox())
    await early
    await transport.stop()
    with pytest.raises(TransientDeliveryError):
        await transport.send(address(user.id), Outbound("too late"))
    assert [m.text for m in bot_api.sent_to(user.id)] == ["queued early"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_webhook_mode_checks_the_secret(bot_api: LocalBotApi, start_transport: TransportFactory) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    inbox = Inbox(lambda e: Outbound("got it"))
    await start_transport(inbox, mode="webhook", webhook_url=url, webhook_listen="127.0.0.1",
                          webhook_port=port, webhook_secret="Wh-secret_0123456789")
    (set_call,) = bot_api.calls_to("setWebhook")
    assert set_call.params["secret_token"] == "Wh-secret_0123456789" and set_call.params["url"] == url
    user = bot_api.user()
    user.say("through the webhook")
    await bot_api.wait_for_messages(user.id, 1)
    assert [e.text for e in inbox.events] == ["through the webhook"]
    forged = {"update_id": 1, "message": {"message_id": 1, "date": 0, "text": "forged",
                                          "chat": {"id": 1, "type": "private"},
                                          "from": {"id": 1, "is_bot": False, "first_name": "x"}}}
    async with aiohttp.ClientSession() as client:
        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
            async with client.post(url, json=forged, headers=headers) as response:
                assert response.status == 403
    assert bot_api.calls_to("getUpdates") == []
    assert [e.text for e in inbox.events] == ["through the webhook"]


async def test_a_webhook_update_that_cannot_be_read_is_confirmed_and_skipped(
        bot_api: LocalBotApi, start_transport: TransportFactory, caplog: pytest.LogCaptureFixture) -> None:
    """Answered 200 (or Telegram would send it again forever), nothing of it logged or handled; a
    body that is no update at all is refused with 400."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    inbox = Inbox(lambda e: Outbound("got it"))
    await start_transport(inbox, mode="webhook", webhook_url=url, webhook_listen="127.0.0.1",
                          webhook_port=port, webhook_secret="Wh-secret_0123456789")
    secret = {"X-Telegram-Bot-Api-Secret-Token": "Wh-secret_0123456789"}
    garbage = [({"message": {"text": "secret words"}}, 400),  # no update id: not an update
               ({"update_id": "7", "message": {"text": "secret words"}}, 200),
               ({"update_id": 5, "message": {"message_id": "x", "chat": "nor a chat", "text": "secret words"}}, 200),
               ({"update_id": 6, "message": 17}, 200)]
    async with aiohttp.ClientSession() as client:
        for update, status in garbage:
            async with client.post(url, json=update, headers=secret) as response:
                assert response.status == status
    user = bot_api.user()
    user.say("after the garbage")
    await bot_api.wait_for_messages(user.id, 1)
    assert [e.text for e in inbox.events] == ["after the garbage"]
    assert "secret words" not in caplog.text


def test_webhook_mode_requires_a_secret() -> None:
    from bot.transports.telegram import TelegramStartupError

    with pytest.raises(TelegramStartupError, match="webhook_secret"):
        TelegramOptions(token="1:x", mode="webhook", webhook_url="https://bot.example.org/hook")
    assert "1:x" not in repr(TelegramOptions(token="1:x"))


@pytest.mark.parametrize("alone", [True, False])
async def test_clearing_a_chat_claims_it_complete_only_where_every_message_passed(
        bot_api: LocalBotApi, start_transport: TransportFactory, alone: bool) -> None:
    """/panic's account: a webhook served by several workers sees a share of each chat, so its
    instance never says it removed everything (the person is told to delete the chat)."""
    now = [0.0]
    inbox = Inbox(reply=lambda event: Outbound(text="ok"))
    transport = await start_transport(inbox, sees_whole_chat=alone)
    transport._recent = RecentMessages(clock=lambda: now[0])  # started at 0: two days later, it knows all
    now[0] = 49 * 3600.0
    user = bot_api.user(language_code="en")
    user.say("hello")
    await inbox.wait(1)
    await bot_api.wait_for(lambda: len(bot_api.sent_to(user.id)) == 1)
    erased = await transport.erase_chat(address(user.id))
    assert erased.removed == 2 and erased.failed == 0
    assert erased.complete is alone
