"""Bulletin files: the shipped examples, the Markdown subset, and every problem with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.bulletins.definition import LANGUAGES, MAX_BODY_CHARS, Bulletin, make_text
from bot.bulletins.document import Bold, Italic, Link, ListBlock, Paragraph, Text
from bot.bulletins.loader import BulletinError, load_bulletin, parse_bulletin
from bot.bulletins.markdown import parse_markdown

EXAMPLES = Path(__file__).resolve().parent.parent / "config" / "bulletins"


def problems_of(text: str) -> list[str]:
    with pytest.raises(BulletinError) as caught:
        parse_bulletin(text, "b.yaml")
    return [str(p) for p in caught.value.problems]


def test_examples_are_valid_in_all_four_languages() -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert len(files) >= 2
    for path in files:
        bulletin = load_bulletin(path)
        assert set(bulletin.languages) == set(LANGUAGES)
        assert bulletin.first.language == "en"
        for text in bulletin.texts:
            assert text.title and text.document.blocks
            kinds = {type(b) for b in text.document.blocks}
            assert kinds == {Paragraph, ListBlock}, (path.name, text.language)


def test_json_round_trip_keeps_order_and_content() -> None:
    bulletin = load_bulletin(EXAMPLES / "digital-safety.yaml")
    again = Bulletin.from_json(bulletin.to_json())
    assert again.languages == bulletin.languages
    assert again.texts == bulletin.texts
    assert again.digest == bulletin.digest


def test_first_language_is_the_fallback() -> None:
    bulletin = parse_bulletin("id: x1\nar:\n  title: عنوان\n  body: نص\nen:\n  title: T\n  body: B\n")
    assert bulletin.text_for("en") == (bulletin.texts[1], False)
    text, fallback = bulletin.text_for("ku")
    assert fallback and text.language == "ar"


def test_markdown_subset() -> None:
    document, problems = parse_markdown(
        "Hello **bold _and italic_** *it* [site](https://example.org/a_(b)).\nSecond line\n\n"
        "- one\n- two\n  continued\n\n3. three\n4. four\n\nsnake_case, 5 * 3, [sic], \\*not italic\\*"
    )
    assert problems == []
    first, bullets, numbers, last = document.blocks
    assert first == Paragraph((
        Text("Hello "), Bold((Text("bold "), Italic((Text("and italic"),)))), Text(" "), Italic((Text("it"),)),
        Text(" "), Link((Text("site"),), "https://example.org/a_(b)"), Text(".\nSecond line"),
    ))
    assert bullets == ListBlock(False, ((Text("one"),), (Text("two\ncontinued"),)))
    assert numbers == ListBlock(True, ((Text("three"),), (Text("four"),)), start=3)
    assert last == Paragraph((Text("snake_case, 5 * 3, [sic], *not italic*"),))


@pytest.mark.parametrize(("body", "fragment"), [
    ("see [the site](https://example.org", "is not closed"),
    ("see [the site](https://example.org/a page)", "is not closed"),
    ("see [the site] (https://example.org)", "space between ] and ("),
    ("see the site](https://example.org)", "no [ before"),
    ("see [](https://example.org)", "has no text"),
    ("see [the site]()", "has no address"),
    ("see [the site](javascript:alert(1))", "must begin with https://"),
    ("see [the site](www.example.org)", "must begin with https://"),
])
def test_broken_links_are_reported_with_their_line(body: str, fragment: str) -> None:
    text = f"id: b1\nen:\n  title: T\n  body: |\n    First paragraph.\n\n    {body}\n"
    problems = problems_of(text)
    assert len(problems) == 1, problems
    assert problems[0].startswith("b.yaml:7: ") and fragment in problems[0]


def test_every_problem_is_reported_at_once_with_file_and_line() -> None:
    text = (
        "id: Not An Id\n"          # 1
        "en:\n"                     # 2
        "  title: ''\n"             # 3
        "  body: |\n"               # 4
        "    fine\n"                # 5
        "\n"                        # 6
        "    [x](ftp://y)\n"        # 7
        "fr:\n"                     # 8
        "  title: T\n"              # 9
        "  body: B\n"               # 10
        "ar:\n"                     # 11
        "  title: T\n"              # 12
        "  body: '   '\n"           # 13
        "ckb:\n"                    # 14
        "  title: T\n"              # 15
        f"  body: {'x' * (MAX_BODY_CHARS + 1)}\n"  # 16
        "ku:\n"                     # 17
        "  title: T\n"              # 18
        "  summary: S\n"            # 19
        "en:\n"                     # 20
        "  title: again\n"          # 21
        "  body: again\n"           # 22
    )
    problems = problems_of(text)
    expected = [
        ("b.yaml:1:", "The id must be"),
        ("b.yaml:3:", "title in en is empty"),
        ("b.yaml:7:", "must begin with https://"),
        ("b.yaml:8:", "'fr' is not a language bulletins use"),
        ("b.yaml:13:", "body in ar is empty"),
        ("b.yaml:16:", "body in ckb is too long"),
        ("b.yaml:16:", "paragraph in ckb has"),
        ("b.yaml:17:", "'ku' has no body"),
        ("b.yaml:19:", "Unknown key 'summary' in 'ku'"),
        ("b.yaml:20:", "'en' is given twice (first on line 2)"),
    ]
    assert len(problems) == len(expected), problems
    for problem, (prefix, fragment) in zip(problems, expected, strict=True):
        assert problem.startswith(prefix) and fragment in problem, (problem, prefix, fragment)


@pytest.mark.parametrize(("text", "fragment"), [
    ("id: [unclosed\n", "not valid YAML"),
    ("- just\n- a list\n", "must be a mapping"),
    ("", "must be a mapping"),
    ("id: x1\n", "no language section"),
    ("en:\n  title: T\n  body: B\n", "has no id"),
    ("id: x1\nen: text\n", "must have a title and a body"),
    ("id: x1\nen:\n  title: [1, 2]\n  body: B\n", "title in 'en' must be text"),
    ("id: x1\nen:\n  title: T\n  body: B\nsender: staff\n", "Unknown key 'sender'"),
])
def test_malformed_files_get_one_clear_sentence(text: str, fragment: str) -> None:
    problems = problems_of(text)
    assert any(fragment in p for p in problems), problems
    assert all(p.startswith("b.yaml:") for p in problems)


def test_title_rules_and_text_problems_are_translatable_templates() -> None:
    _, problems = make_text("en", "line one\nline two", "body")
    assert [p.field for p in problems] == ["title"] and "one line" in problems[0].message
    _, problems = make_text("ar", "T" * 201, "")
    messages = [p.message for p in problems]
    assert any("201" in m for m in messages) and any("body in ar is empty" in m for m in messages)
    assert all("%(" in p.template for p in problems)  # translated at display, values kept apart
