"""Number, scale and text questions: Skip and Back are words (buttons on Telegram), never numbered,
because there a typed number is the answer."""

from __future__ import annotations

import io
from pathlib import Path

from bot.core.model import Choice, Outbound, PromptId
from bot.core.security import KeyRing
from bot.services.outbox import decode_message, encode_message
from bot.transports.console import ConsoleTransport
from bot.transports.matrix_render import render_message
from tests.test_surveys import launch, open_chat, settings_for, setup_group


def skip_back(numbered: bool) -> Outbound:
    return Outbound("How many people live in your household?", (Choice("skip", "Skip"), Choice("back", "Back")),
                    PromptId("p"), numbered=numbered)


def test_matrix_and_console_show_words_not_numbers() -> None:
    content = render_message(skip_back(False))
    assert content["body"].endswith("household?\n\n\u2022 Skip\n\u2022 Back")
    assert "1." not in content["body"] and "<ul><li>Skip</li><li>Back</li></ul>" in content["formatted_body"]
    assert render_message(skip_back(True))["body"].endswith("1. Skip\n2. Back")

    out = io.StringIO()
    console = ConsoleTransport(io.StringIO(), out)
    import asyncio

    asyncio.run(console.send(console._address, skip_back(False)))
    assert out.getvalue() == "How many people live in your household?\n  \u2022 Skip\n  \u2022 Back\n\n"


def test_queued_messages_keep_the_rendering() -> None:
    assert decode_message(encode_message(skip_back(False))).numbered is False
    legacy = encode_message(skip_back(True)).replace(', "numbered": true', "")
    assert decode_message(legacy).numbered is True


async def test_a_typed_number_is_the_answer_and_skip_back_are_words(sqlite_url: str, tmp_path: Path) -> None:
    keys = KeyRing.generate()
    async with open_chat(settings_for(sqlite_url, tmp_path), keys) as chat:
        person = (await setup_group(chat, {"7401": "en"}))["7401"]
        await launch(chat, "families-of-the-missing")
        await person.send("/surveys")
        await person.press("Start")
        relation = person.last_prompt
        assert relation.numbered  # a choice question: numbers pick options
        for answer in ("parent", "skip", "no", "legal", "done"):
            await person.send(answer)
        trust = person.last_prompt
        assert "trust" in trust.text and not trust.numbered  # a scale: "2" is the answer 2
        await person.send("4")
        household = person.last_prompt
        assert "household" in household.text and not household.numbered
        assert [c.label for c in household.choices] == ["Skip", "Back"]
        await person.send("2")  # two people, not "Back"
        assert "receive updates" in person.last_prompt.text
        await person.send("back")  # the word still works
        assert "household" in person.last_prompt.text
