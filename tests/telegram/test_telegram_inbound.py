"""Messages are mapped from the Bot API's JSON itself (not PTB's objects): what is heard, what is
text, what is media, and that a message of any other shape is refused as malformed, never half
read and never a crash."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.model import InboundKind
from bot.transports.telegram_mapping import MalformedUpdate, inbound_from_message

STAFF_CHAT = -100500


def message(text: str | None = "hello", *, chat_id: int = 42, chat_type: str = "private", user_id: int = 42,
            is_bot: bool = False, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"message_id": 7, "date": 0, "chat": {"id": chat_id, "type": chat_type},
                            "from": {"id": user_id, "is_bot": is_bot, "first_name": "A", "language_code": "ar"},
                            **more}
    if text is not None:
        body["text"] = text
    return body


def test_a_private_text_becomes_text_with_its_event_id_and_language() -> None:
    inbound = inbound_from_message(message("/start"), STAFF_CHAT)
    assert inbound is not None
    assert (inbound.kind, inbound.text, inbound.user_id, inbound.address.value) == (InboundKind.TEXT, "/start",
                                                                                     "42", "42")
    assert (inbound.event_id, inbound.language_hint, inbound.in_staff_room) == ("42:7", "ar", False)


def test_media_in_a_private_chat_is_unsupported_and_nothing_of_it_is_kept() -> None:
    inbound = inbound_from_message(message(None, photo=[{"file_id": "secret"}], caption="words"), STAFF_CHAT)
    assert inbound is not None and inbound.kind is InboundKind.UNSUPPORTED and inbound.text == ""


@pytest.mark.parametrize("body", [
    message(is_bot=True),  # another bot
    {k: v for k, v in message().items() if k != "from"},  # a channel post: nobody to answer
    message(chat_id=-1001, chat_type="supergroup"),  # a group that is not the staff group
    message("/help", chat_id=-1001, chat_type="group"),
    message("chatter among staff", chat_id=STAFF_CHAT, chat_type="supergroup"),
    message(None, chat_id=STAFF_CHAT, chat_type="supergroup", photo=[{"file_id": "x"}]),
    message(None, pinned_message={"message_id": 1}),  # a service message
    message(chat_type="channel", chat_id=-1002),
])
def test_what_the_bot_does_not_hear(body: dict[str, Any]) -> None:
    assert inbound_from_message(body, STAFF_CHAT) is None


def test_commands_in_the_staff_group_are_heard_as_staff_room_text() -> None:
    inbound = inbound_from_message(message("/cases", chat_id=STAFF_CHAT, chat_type="supergroup", user_id=9),
                                   STAFF_CHAT)
    assert inbound is not None and inbound.in_staff_room and inbound.address.value == str(STAFF_CHAT)


@pytest.mark.parametrize("body", [
    17, None, "text", [],
    {**message(), "message_id": "7"},
    {**message(), "message_id": True},
    {**message(), "chat": "nor a chat"},
    {**message(), "chat": {"id": "42", "type": "private"}},
    {**message(), "from": {"id": 1.5, "is_bot": False}},
    {**message(), "from": "someone"},
    {**message(), "text": 12},
])
def test_a_message_of_another_shape_is_malformed(body: Any) -> None:
    with pytest.raises(MalformedUpdate):
        inbound_from_message(body, STAFF_CHAT)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                     max_leaves=12)
_fields = st.fixed_dictionaries({}, optional={
    "message_id": st.integers() | _json, "chat": st.fixed_dictionaries(
        {}, optional={"id": st.integers() | _json, "type": st.sampled_from(["private", "group", "supergroup"]) | _json}),
    "from": st.fixed_dictionaries({}, optional={"id": st.integers() | _json, "is_bot": st.booleans() | _json,
                                                "language_code": st.text(max_size=4) | _json}),
    "text": st.text(max_size=20) | _json, "photo": _json, "sticker": _json,
})


@given(body=_fields | _json)
def test_any_json_is_mapped_or_refused_as_malformed(body: Any) -> None:
    try:
        inbound = inbound_from_message(body, STAFF_CHAT)
    except MalformedUpdate:
        return
    assert inbound is None or (inbound.address.value.lstrip("-").isdigit() and inbound.user_id.lstrip("-").isdigit())
