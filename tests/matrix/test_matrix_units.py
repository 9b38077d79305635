"""Pure parts of the Matrix transport: rendering, canonical JSON, checkpoint (no homeserver)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.model import Choice, Direction, Outbound
from bot.core.security import KeyRing
from bot.transports.matrix import server_name
from bot.transports.matrix_crosssigning import CrossSigningKeys, canonical_json, verify_signature
from bot.transports.matrix_render import RLM, render_message, strip_reply_fallback
from bot.transports.matrix_session import (
    SEEN_LIMIT,
    Checkpoint,
    MatrixSessionStore,
    PendingEvent,
    SessionStoreError,
)


def test_choices_render_as_numbered_list_with_escaped_html() -> None:
    content = render_message(Outbound(text="Pick <one> & go", choices=(Choice("a", "A<b>"), Choice("b", "B"))))
    assert content["body"] == "Pick <one> & go\n\n1. A<b>\n2. B"
    assert content["formatted_body"] == "<p>Pick &lt;one&gt; &amp; go</p><ol><li>A&lt;b&gt;</li><li>B</li></ol>"
    assert content["format"] == "org.matrix.custom.html" and content["msgtype"] == "m.text"


def test_rtl_marks_every_plain_line_and_wraps_html() -> None:
    content = render_message(Outbound(text="سطر\nآخر", choices=(Choice("x", "نعم"),), direction=Direction.RTL))
    assert content["body"].split("\n") == [f"{RLM}سطر", f"{RLM}آخر", "", f"{RLM}1. نعم"]
    assert content["formatted_body"] == '<div dir="rtl"><p>سطر<br>آخر</p><ol><li>نعم</li></ol></div>'


def test_reply_fallback_is_stripped() -> None:
    assert strip_reply_fallback("> <@bot:hs> Choose\n> 1. Yes\n\n2") == "2"
    assert strip_reply_fallback("plain") == "plain"


def test_canonical_json_and_signatures() -> None:
    assert canonical_json({"b": "2", "a": 1, "signatures": {}, "unsigned": {}, "c": "日本語"}) == \
        '{"a":1,"b":"2","c":"日本語"}'.encode()
    keys = CrossSigningKeys.generate()
    obj = keys.key_object("@bot:hs", keys.self_signing)
    assert verify_signature(obj, "@bot:hs", keys.master.key_id, keys.master.public)
    assert not verify_signature({**obj, "usage": ["master"]}, "@bot:hs", keys.master.key_id, keys.master.public)
    assert CrossSigningKeys.from_seeds(keys.seeds()).master.public == keys.master.public


def test_server_name() -> None:
    assert server_name("@alice:example.org:8448") == "example.org:8448"
    assert server_name("!room:hs") == "hs"


def test_checkpoint_round_trip_is_sealed_and_bounded(tmp_path: Path) -> None:
    keys = KeyRing.generate()
    store = MatrixSessionStore(tmp_path / "store", keys)
    checkpoint = Checkpoint(since="s1")
    for n in range(SEEN_LIMIT + 10):
        checkpoint.mark_seen(f"$e{n}")
    checkpoint.pending["$p"] = PendingEvent("!r:hs", {"type": "m.room.encrypted"}, 12.5)
    store.save_checkpoint(checkpoint)
    loaded = store.load_checkpoint()
    assert loaded is not None and loaded.since == "s1"
    assert len(loaded.seen) == SEEN_LIMIT and loaded.was_seen(f"$e{SEEN_LIMIT + 9}") and not loaded.was_seen("$e0")
    assert loaded.pending["$p"].room_id == "!r:hs"
    assert b"!r:hs" not in (tmp_path / "store" / "checkpoint.sealed").read_bytes()
    with pytest.raises(SessionStoreError):
        MatrixSessionStore(tmp_path / "store", KeyRing.generate()).load_checkpoint()
