"""Rendering bulletins: Matrix HTML only ever holds allowed tags, long bodies split between
paragraphs in order, right-to-left texts keep their direction, the console gets plain text."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.bulletins.definition import MAX_PARAGRAPH_CHARS, make_text
from bot.bulletins.loader import load_bulletin
from bot.bulletins.render import (
    MATRIX,
    MATRIX_ATTRIBUTES,
    MATRIX_TAGS,
    PLAIN,
    RLM,
    TELEGRAM,
    profile_for,
    render_text,
    sanitise_matrix,
    utf16_len,
)
from bot.core.model import Direction

EXAMPLES = Path(__file__).resolve().parent.parent / "config" / "bulletins"

# Text that looks like markup, links, entities, right-to-left script, emoji and control characters.
pieces = st.sampled_from([
    "<b>", "</i>", "<script>alert(1)</script>", "&amp;", "&", "&#60;", '"', "'", "**", "*", "_", "[", "]", "(",
    ")", "](", "[x](https://e.org/?a=1&b=<2>)", "[y](javascript:x)", "\\", "\n", "\n\n", "- ", "1. ", "مرحبا",
    "ڕاوەستە", "Kurdî", "😀", "\u200f", "\x00", "\x1b", "\u2028", " ", "<a href=\"x\">", "-->", "<!--",
])
bodies = st.lists(st.one_of(pieces, st.text(max_size=12)), max_size=40).map("".join)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


def allowed_only(markup: str) -> None:
    parser = _Tags()
    parser.feed(markup)
    parser.close()
    assert not parser.comments
    for tag, attrs in parser.tags:
        assert tag in MATRIX_TAGS, tag
        for name, value in attrs:
            assert name in MATRIX_ATTRIBUTES.get(tag, set()), (tag, name)
            if name == "href":
                assert value is not None and value.lower().startswith(("https://", "http://", "mailto:"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=bodies, body=bodies, rtl=st.booleans())
def test_matrix_html_holds_only_allowed_tags(title: str, body: str, rtl: bool) -> None:
    text, _ = make_text("ar" if rtl else "en", title or "t", body)
    for part in render_text(text, MATRIX, Direction.RTL if rtl else Direction.LTR, note="<i>note</i>"):
        allowed_only(part.html)
        assert sanitise_matrix(part.html) == part.html  # the renderer already emits only what is allowed


@settings(max_examples=200, deadline=None)
@given(markup=st.text(max_size=200))
def test_sanitiser_output_is_always_within_the_allow_list(markup: str) -> None:
    allowed_only(sanitise_matrix(markup + '<img src=x onerror=alert(1)><a href="javascript:x">y</a><table>'))


def test_matrix_rendering_of_an_example() -> None:
    bulletin = load_bulletin(EXAMPLES / "digital-safety.yaml")
    (part,) = render_text(bulletin.text_for("en")[0], MATRIX, Direction.LTR)
    assert part.html.startswith("<p><strong>Staying safe while you talk to us</strong></p><div dir=\"ltr\">")
    assert "<ol><li>Lock your phone" in part.html and "<em>disappearing messages</em>" in part.html
    assert '<a href="https://element.io/download">element.io</a>' in part.html
    assert "element.io (https://element.io/download)" in part.text
    assert "• Telegram can read chats" in part.text and "1. Lock your phone" in part.text


def test_right_to_left_keeps_its_direction_everywhere() -> None:
    bulletin = load_bulletin(EXAMPLES / "2026-06-periodic-update.yaml")
    text = bulletin.text_for("ar")[0]
    (telegram,) = render_text(text, TELEGRAM, Direction.RTL)
    assert all(line.startswith(RLM) for line in telegram.html.split("\n") if line)
    assert all(line.startswith(RLM) for line in telegram.text.split("\n") if line)
    (matrix,) = render_text(text, MATRIX, Direction.RTL)
    assert '<div dir="rtl">' in matrix.html
    assert all(line.startswith(RLM) for line in matrix.text.split("\n") if line)
    (console,) = render_text(text, PLAIN, Direction.RTL)
    assert RLM not in console.text and console.html == ""
    assert console.text.startswith(text.title + "\n\n")


def test_fallback_note_keeps_the_readers_direction() -> None:
    text = load_bulletin(EXAMPLES / "digital-safety.yaml").text_for("en")[0]
    (part,) = render_text(text, MATRIX, Direction.LTR, note="هذه النشرة غير متوفرة بلغتكم.",
                          note_direction=Direction.RTL)
    assert part.html.startswith('<p dir="rtl"><em>هذه النشرة')
    assert part.text.startswith(RLM + "هذه النشرة") and "\n\n" + "Staying safe" in part.text
    (tg,) = render_text(text, TELEGRAM, Direction.LTR, note="Ev bulten bi zimanê we tune ye.")
    assert tg.html.startswith("<i>Ev bulten bi zimanê we tune ye.</i>\n\n<b>Staying safe")


def _long_body(paragraphs: int, size: int) -> str:
    return "\n\n".join(f"**{n}** " + ("word " * (size // 5)).strip() for n in range(paragraphs))


def test_long_bodies_split_between_paragraphs_in_order() -> None:
    text, problems = make_text("en", "Long", _long_body(9, 1000))
    assert problems == []
    parts = render_text(text, TELEGRAM, Direction.LTR)
    assert len(parts) == 3
    assert all(utf16_len(p.text) <= TELEGRAM.limit for p in parts)
    numbers = [int(line.split(" ", 1)[0]) for p in parts for line in p.text.split("\n\n")[(1 if p is parts[0] else 0):]]
    assert numbers == list(range(9))  # every paragraph once, in order, none cut
    assert parts[0].text.startswith("Long\n\n") and not parts[1].text.startswith("Long")
    # the whole plain text is the parts' texts joined: nothing lost, nothing added
    (console,) = render_text(text, PLAIN, Direction.LTR)
    assert "\n\n".join(p.text for p in parts) == console.text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(min_value=1, max_value=MAX_PARAGRAPH_CHARS), min_size=1, max_size=12),
       rtl=st.booleans(), platform=st.sampled_from(["telegram", "matrix"]))
def test_every_part_fits_and_order_is_kept(sizes: list[int], rtl: bool, platform: str) -> None:
    body = "\n\n".join(f"{n}:" + "ب" * size if rtl else f"{n}:" + "a" * size for n, size in enumerate(sizes))
    text, _ = make_text("ar" if rtl else "en", "T", body)
    profile = profile_for(platform)
    parts = render_text(text, profile, Direction.RTL if rtl else Direction.LTR)
    assert all(profile.measure(p) <= profile.limit for p in parts)
    seen = [chunk.lstrip(RLM).split(":", 1)[0] for p in parts for chunk in p.text.split("\n\n")]
    assert seen[0] == "T" and seen[1:] == [str(n) for n in range(len(sizes))]


def test_a_paragraph_too_long_for_one_message_is_cut_at_lines_then_anywhere() -> None:
    # Not possible from a validated file, but the renderer must never produce an oversized message.
    lines = "\n".join("x" * 900 for _ in range(6))
    text, problems = make_text("en", "T", lines + "\n\n" + "y" * 9000)
    assert problems  # validation refuses it...
    parts = render_text(text, TELEGRAM, Direction.LTR)  # ...and rendering still keeps every limit
    assert all(utf16_len(p.text) <= TELEGRAM.limit for p in parts)
    assert "".join(p.text for p in parts).count("x") == 5400 and "".join(p.text for p in parts).count("y") == 9000
