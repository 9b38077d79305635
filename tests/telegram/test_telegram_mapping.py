"""Pure mapping rules: button data, splitting, right-to-left marks, pacing windows."""

from __future__ import annotations

import pytest

from bot.core.model import Choice, ChoiceRef, Direction, Outbound, PromptId
from bot.transports.telegram_mapping import (
    MAX_TEXT,
    RLM,
    CallbackDataTooLong,
    closed_prompt_text,
    parse_callback_data,
    render,
    split_text,
    utf16_len,
)
from bot.transports.telegram_ratelimit import _Window


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Ab3_-x9Q:0", ChoiceRef("Ab3_-x9Q", 0)),
        ("Ab3_-x9Q:12", ChoiceRef("Ab3_-x9Q", 12)),
        (None, ChoiceRef("", -1)),
        ("", ChoiceRef("", -1)),
        ("no-colon", ChoiceRef("", -1)),
        (":3", ChoiceRef("", -1)),
        ("p:-1", ChoiceRef("", -1)),
        ("p:1234", ChoiceRef("", -1)),
        ("p:1:2", ChoiceRef("", -1)),
        ("p q:1", ChoiceRef("", -1)),
        ("p:١", ChoiceRef("", -1)),  # Eastern Arabic digit: not what the bot writes
        ("ب:1", ChoiceRef("", -1)),
        ("x" * 61 + ":1", ChoiceRef("", -1)),  # 64 bytes in all, but an id longer than ours
        ("x" * 70 + ":1", ChoiceRef("", -1)),  # oversized
        ("p:1\n", ChoiceRef("", -1)),
    ],
)
def test_callback_data_is_parsed_defensively(data: str | None, expected: ChoiceRef) -> None:
    assert parse_callback_data(data) == expected


def test_buttons_carry_prompt_and_index() -> None:
    message = Outbound("Pick", (Choice("a", "Alpha"), Choice("b", "Beta")), PromptId("Xy_-12ab"))
    (part,) = render(message)
    rows = part.keyboard["inline_keyboard"] if part.keyboard else ()
    assert [[(b["text"], b["callback_data"]) for b in row] for row in rows] == [
        [("Alpha", "Xy_-12ab:0")], [("Beta", "Xy_-12ab:1")],
    ]


def test_a_prompt_id_too_long_for_64_bytes_is_refused() -> None:
    with pytest.raises(CallbackDataTooLong):
        render(Outbound("Pick", (Choice("a", "A"),), PromptId("p" * 63)))


def test_long_text_is_split_on_paragraphs_and_keeps_the_keyboard_last() -> None:
    paragraphs = [f"{i} " + " ".join(["word"] * 300) for i in range(10)]  # 1501 characters each: two fit
    message = Outbound("\n\n".join(paragraphs), (Choice("ok", "OK"),), PromptId("p1"))
    parts = render(message)
    assert [p.text.count("\n\n") for p in parts] == [1, 1, 1, 1, 1]
    assert [p.keyboard is not None for p in parts] == [False, False, False, False, True]
    assert "\n\n".join(p.text for p in parts) == message.text


def test_splitting_falls_back_to_lines_words_and_characters() -> None:
    emoji_line = "🏟" * 5000  # 10000 UTF-16 units, no separator at all
    chunks = split_text(emoji_line)
    assert "".join(chunks) == emoji_line
    assert all(utf16_len(c) <= MAX_TEXT for c in chunks)
    words = " ".join(["kelime"] * 2000)
    assert " ".join(split_text(words)) == words


def test_rtl_marks_every_line_and_each_split_part() -> None:
    text = "السؤال الأول\n1. Damascus\n\n" + "كلمة " * 1500
    parts = render(Outbound(text, direction=Direction.RTL, language="ar"))
    assert len(parts) == 3  # the short paragraph, then 7500 characters of words in two parts
    assert parts[0].text == f"{RLM}السؤال الأول\n{RLM}1. Damascus"
    for part in parts:
        assert all(line.startswith(RLM) for line in part.text.split("\n"))
        assert utf16_len(part.text) <= MAX_TEXT
    ltr = render(Outbound("Hello\nWorld"))
    assert RLM not in ltr[0].text


def test_image_takes_a_short_text_as_caption() -> None:
    with_caption = render(Outbound("Results", (Choice("a", "A"),), PromptId("p"), image=b"png"))
    assert [(p.image, p.text, p.keyboard is not None) for p in with_caption] == [(b"png", "Results", True)]
    long = render(Outbound("x" * 2000, image=b"png"))
    assert [(p.image, len(p.text)) for p in long] == [(b"png", 0), (None, 2000)]


def test_closed_prompt_shows_the_choice_in_the_prompts_direction() -> None:
    assert closed_prompt_text("Question?", "Yes") == "Question?\n\n\u2713 Yes"
    assert closed_prompt_text(f"{RLM}سؤال؟", "نعم") == f"{RLM}سؤال؟\n\n{RLM}\u2713 نعم"
    assert closed_prompt_text("x" * 4090, "Yes") is None


def test_pacing_window_holds_size_per_period() -> None:
    group = _Window(size=20, period=60.0)
    for second in range(20):
        assert group.next_allowed(float(second)) == float(second)
        group.record(float(second))
    assert group.next_allowed(20.0) == 60.0  # the 21st message waits for the first to age out
    assert group.next_allowed(61.0) == 61.0
    private = _Window(size=1, period=1.0)
    private.record(5.0)
    assert private.next_allowed(5.2) == 6.0
