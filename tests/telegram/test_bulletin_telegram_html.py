"""Bulletin HTML for Telegram, parsed the way Telegram parses it (the local server's port of TDLib's
parser): whatever staff type, no markup of theirs ever reaches Telegram, and the text shown is
exactly the text intended."""

from __future__ import annotations

from pathlib import Path

from botapi_html import parse_html, utf16_len
from botapi_server import LocalBotApi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram_support import Inbox, TransportFactory

from bot.bulletins.definition import make_text
from bot.bulletins.loader import load_bulletin
from bot.bulletins.render import RLM, TELEGRAM, render_text
from bot.core.model import Address, Direction, Outbound, Platform

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "config" / "bulletins"

pieces = st.sampled_from([
    "<b>", "</b>", "<i>x</i>", "<script>", "&amp;", "&", "&#60;", "&lt", '"', "'", "**", "*", "_", "[", "]", "(",
    ")", "](", "[x](https://e.org/?a=1&b=<2>&c=\")", "[y](javascript:x)", "\\", "\n", "\n\n", "- ", "1. ",
    "مرحبا", "ڕاوەستە", "😀", "\u200f", "\x00", "\x1b", "<a href=\"https://x\">", "<tg-spoiler>", "<pre>",
])
texts = st.lists(st.one_of(pieces, st.text(max_size=12)), max_size=40).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=texts, body=texts, note=st.one_of(st.none(), texts), rtl=st.booleans())
def test_no_unescaped_markup_ever_reaches_telegram(title: str, body: str, note: str | None, rtl: bool) -> None:
    text, _ = make_text("ar" if rtl else "en", title or "t", body)
    for part in render_text(text, TELEGRAM, Direction.RTL if rtl else Direction.LTR, note=note):
        shown, entities = parse_html(part.html)  # raises exactly where Telegram would refuse the message
        assert shown == part.text  # every character typed is shown as typed: none became markup
        assert utf16_len(shown) <= 4096
        for entity in entities:
            assert entity["type"] in ("bold", "italic", "text_link")
            if entity["type"] == "text_link":
                assert str(entity["url"]).startswith(("https://", "http://", "mailto:"))


def test_example_bulletin_entities() -> None:
    bulletin = load_bulletin(EXAMPLES / "digital-safety.yaml")
    (part,) = render_text(bulletin.text_for("en")[0], TELEGRAM, Direction.LTR)
    shown, entities = parse_html(part.html)
    assert shown.startswith("Staying safe while you talk to us\n\nSome of you")
    kinds = {e["type"] for e in entities}
    assert kinds == {"bold", "italic", "text_link"}
    link = next(e for e in entities if e["type"] == "text_link")
    assert link["url"] == "https://element.io/download"
    assert shown[link["offset"]:link["offset"] + link["length"]] == "element.io"  # type: ignore[operator]


async def test_transport_sends_the_parts_as_html_in_order(bot_api: LocalBotApi,
                                                          start_transport: TransportFactory) -> None:
    transport = await start_transport(Inbox())
    user = bot_api.user(language_code="ar")
    body = "\n\n".join(f"**{n}** " + "كلمة " * 450 for n in range(4))
    text, problems = make_text("ar", "عنوان <b>", body)
    assert problems == []
    parts = render_text(text, TELEGRAM, Direction.RTL)
    assert len(parts) > 1
    await transport.send(Address(Platform("telegram"), str(user.id)),
                         Outbound(text="\n\n".join(p.text for p in parts), formatted=parts, language="ar"))
    sent = bot_api.sent_to(user.id)
    assert [m.parse_mode for m in sent] == ["HTML"] * len(parts)
    assert [m.text for m in sent] == [p.text for p in parts]  # what people see, in order
    assert sent[0].text.startswith(RLM + "عنوان <b>")
    assert all(e["type"] == "bold" for m in sent for e in m.message.get("entities", []))
