"""Logs of a whole scripted exchange, at DEBUG, carry no token, no id and no message text."""

from __future__ import annotations

import logging

import pytest
from botapi_faults import BAD_GATEWAY
from botapi_server import LocalBotApi
from telegram_support import Inbox, TransportFactory

from bot.core.model import Address, Choice, Direction, InboundKind, Outbound, PromptId
from bot.core.transport import DeliveryError

SECRET_TEXTS = ("my village was shelled", "witness statement 7", "نحن بحاجة إلى مساعدة", "Answer to you",
                "Which option?", "Choice Alpha")


async def test_logs_hold_no_token_ids_or_text(bot_api: LocalBotApi, start_transport: TransportFactory,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    def reply(inbound):  # type: ignore[no-untyped-def]
        if inbound.kind is InboundKind.TEXT and inbound.text == "boom":
            raise RuntimeError("a handler bug quoting nothing")
        return Outbound("Answer to you", direction=Direction.RTL, sensitive=True)

    inbox = Inbox(reply)
    staff_room = bot_api.group(-1_009_111_222_333)
    transport = await start_transport(inbox, staff_chat_id=staff_room["id"],
                                      commands={"en": [("start", "Start")]})
    alice, bob = bot_api.user(language_code="ar"), bot_api.user()
    where = Address("telegram", str(alice.id))  # type: ignore[arg-type]

    alice.say("my village was shelled")
    alice.say("نحن بحاجة إلى مساعدة")
    alice.say("boom")
    alice.send_photo(caption="witness statement 7")
    bob.say("/cases witness statement 7", chat=staff_room)
    await inbox.wait(5)
    await transport.send(where, Outbound("Which option?", (Choice("a", "Choice Alpha"),), PromptId("Zx81_kq0")))
    prompt = bot_api.sent_to(alice.id)[-1]
    alice.press(prompt, 0)
    alice.press(prompt, data="forged-" + "9" * 70)
    await inbox.wait(7)
    bot_api.flood_wait(1)
    bot_api.fail(BAD_GATEWAY)
    await transport.send(where, Outbound("Answer to you"))
    bot_api.block(bob)
    with pytest.raises(DeliveryError):
        await transport.send(Address("telegram", str(bob.id)), Outbound("Answer to you"))  # type: ignore[arg-type]
    await transport.stop()

    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "telegram transport started" in logged and "flood control" in logged  # the logs are not empty
    forbidden = [bot_api.token, bot_api.token.split(":")[1], str(alice.id), str(bob.id),
                 str(staff_room["id"]), "Zx81_kq0", *SECRET_TEXTS]
    leaked = [value for value in forbidden if value in logged]
    assert leaked == []
    assert not any(r.name.startswith(("httpx", "httpcore")) and r.levelno < logging.WARNING for r in caplog.records)
