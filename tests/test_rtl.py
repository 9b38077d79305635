"""Right-to-left layout, checked with the Unicode bidi algorithm (python-bidi) as a chat app applies it:
every Arabic and Sorani message, each line right to left, commands reading left to right."""

from __future__ import annotations

import re

import pytest
from babel.messages.pofile import read_po
from bidi import get_base_level, get_display

from bot.conversation.engine import match_choice
from bot.core.i18n import LOCALES_DIR, RLM, I18n, isolate_commands, plain
from bot.core.model import Choice

PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
COMMAND = re.compile(r"(?<![\w/])/[a-z_]+")
SAMPLES = ("fg-1", 12, "Ahmad K.")  # Latin and numbers: the values most likely to pull a line left to right


def translated(language: str) -> list[tuple[str, str]]:
    """(msgid, message as sent) for every catalog entry, every plural form, with sample values."""
    tr = I18n().translator(language)
    with (LOCALES_DIR / language / "LC_MESSAGES" / "bot.po").open("rb") as fh:
        catalog = read_po(fh, locale=language)
    out: list[tuple[str, str]] = []
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        for sample in SAMPLES:
            values = {name: sample for name in PLACEHOLDER.findall(ids[-1]) if name != "n"}
            if len(ids) == 2:
                out.extend((ids[0], tr.n_(ids[0], ids[1], n, **values)) for n in (0, 1, 2, 3, 11, 100))
            else:
                out.append((ids[0], tr._(ids[0], **values)))
    return out


@pytest.mark.parametrize("language", ["ar", "ckb"])
def test_every_line_of_every_message_is_right_to_left(language: str) -> None:
    checked = 0
    for msgid, text in translated(language):
        for line in text.split("\n"):
            if line.strip():
                assert get_base_level(line) == 1, (language, msgid, line)
                checked += 1
    assert checked > 300


@pytest.mark.parametrize("language", ["ar", "ckb"])
def test_commands_read_left_to_right_inside_right_to_left_sentences(language: str) -> None:
    commands = 0
    for msgid, text in translated(language):
        for line in text.split("\n"):
            for command in COMMAND.findall(plain(line)):
                assert command in get_display(line), (language, msgid, line)
                commands += 1
    assert commands > 40


def test_the_arabic_help_list_and_command_syntax() -> None:
    from bot.config import Settings
    from bot.conversation.feature import FeatureSet
    from bot.features import FEATURES

    tr = I18n().translator("ar")
    table = FeatureSet(FEATURES, Settings()).command_table()
    help_lines = table.help_text(tr, staff=False).split("\n")
    assert all(line.startswith(RLM) for line in help_lines)
    delete_line = next(line for line in help_lines if "/delete_me" in line)
    assert get_base_level(delete_line) == 1 and "/delete_me" in get_display(delete_line)
    # The display puts the command at the right edge, where a right-to-left reader starts.
    assert get_display(delete_line).rstrip("\u2066\u2069\u200f").endswith("/delete_me")
    staff = table.help_text(tr, staff=True).split("\n")
    assert all(get_base_level(line) == 1 for line in staff if line)
    org = next(line for line in staff if "/org add" in line)
    assert "/org add <code> <kind> <name>" in get_display(org)


def test_left_to_right_languages_are_left_alone() -> None:
    for language in ("en", "ku"):
        text = I18n().translator(language)._("Please send /start first.")
        assert RLM not in text and "\u2066" not in text


def test_values_are_never_rewritten() -> None:
    tr = I18n().translator("ar")
    text = tr._("Reminder: the survey “%(title)s” is not finished yet. Send /surveys to continue where you stopped.",
                title="a/b /surveys")
    assert "\u2068a/b /surveys\u2069" in text  # the title stays as it was, inside its own isolate
    assert isolate_commands("see https://example.org/help and ./run") == "see https://example.org/help and ./run"


def test_a_typed_label_matches_a_label_with_directional_marks() -> None:
    tr = I18n().translator("ar")
    label = tr._("Skip")
    assert label.startswith(RLM)
    choices = (Choice("skip", label), Choice("back", tr._("Back")))
    assert match_choice(plain(label), choices) == choices[0]
    assert match_choice(plain(label)[:2], choices) == choices[0]


def test_text_composed_outside_the_catalogs_gets_the_same_layout() -> None:
    tr = I18n().translator("ckb")
    line = tr.layout(f"/org add <code> <kind> <name> – {tr._('Privacy')}")
    assert line.startswith(RLM) and get_base_level(line) == 1
    assert "/org add <code> <kind> <name>" in get_display(line)
    assert tr.layout(line) == line  # laid out once, however often it passes
    assert I18n().translator("en").layout("/help – this help") == "/help – this help"


@pytest.mark.parametrize("language", ["ar", "ckb"])
def test_the_help_list_built_from_the_command_table_reads_right_to_left(language: str) -> None:
    from bot.config import Settings
    from bot.conversation.feature import FeatureSet
    from bot.features import FEATURES

    tr = I18n().translator(language)
    text = FeatureSet(FEATURES, Settings()).command_table().help_text(tr, staff=True)
    for line in text.split("\n"):
        if line:
            assert get_base_level(line) == 1, line
            for command in COMMAND.findall(plain(line)):
                assert command in get_display(line), line
