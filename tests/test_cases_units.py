"""Contact requests, the parts without a database: references, the two-layer sealing, the staff
key file, routing, and the Matrix thread relation in both directions."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from bot.cases import crypto
from bot.cases.crypto import StaffKeyError, StaffPrivateKey, StaffPublicKey
from bot.cases.references import ALPHABET, new_reference, normalise
from bot.cases.routing import routed_members
from bot.config import ContactRoute
from bot.core.model import Outbound
from bot.core.security import DecryptionError, KeyRing
from bot.transports.matrix_render import render_message, thread_root_of


def test_references_are_random_short_and_unambiguous() -> None:
    drawn = {new_reference() for _ in range(2000)}
    assert len(drawn) > 1990, "random, not a sequence"
    for reference in drawn:
        assert reference.startswith("C-") and len(reference) == 6
        assert set(reference[2:]) <= set(ALPHABET)
    assert not set("01ILOUV") & set(ALPHABET), "no look-alikes"


@pytest.mark.parametrize(("typed", "expected"), [
    ("C-7K3Q", "C-7K3Q"), ("c-7k3q", "C-7K3Q"), ("7K3Q", "C-7K3Q"), ("C 7K3Q", "C-7K3Q"), ("C7K3Q", "C-7K3Q"),
    ("C-٧K٣Q", "C-7K3Q"), ("\u2068C-7K3Q\u2069", "C-7K3Q"), ("CABC", "C-CABC"),
    ("C-7K3", None), ("C-0K3Q", None), ("C-7K3QQ", None), ("", None), ("'; drop table cases", None),
])
def test_references_are_read_as_people_type_them(typed: str, expected: str | None) -> None:
    assert normalise(typed) == expected


def test_sealed_twice_and_bound_to_case_and_row() -> None:
    private = StaffPrivateKey.generate()
    person, _ = KeyRing.generate().new_data_key("1")
    sealed = crypto.seal(private.public, person, "case_messages.body:a", "C-7K3Q", "text", "hello")
    assert b"hello" not in sealed.token and sealed.staff_key_id == private.public.id
    assert crypto.open_sealed(private, person, "case_messages.body:a", "C-7K3Q", sealed.token) == ("text", "hello")
    with pytest.raises(DecryptionError):  # moved to another row
        crypto.open_sealed(private, person, "case_messages.body:b", "C-7K3Q", sealed.token)
    with pytest.raises(DecryptionError):  # claimed by another case
        crypto.open_sealed(private, person, "case_messages.body:a", "C-2222", sealed.token)
    with pytest.raises(DecryptionError):  # without the person's key (erased)
        crypto.open_sealed(private, KeyRing.generate().new_data_key("1")[0], "case_messages.body:a", "C-7K3Q",
                           sealed.token)
    with pytest.raises(DecryptionError):  # with the wrong staff key
        crypto.open_sealed(StaffPrivateKey.generate(), person, "case_messages.body:a", "C-7K3Q", sealed.token)


def test_staff_key_file(tmp_path: Path) -> None:
    private = StaffPrivateKey.generate()
    path = tmp_path / "staff.key"
    private.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert StaffPrivateKey.load(path).public.text == private.public.text
    with pytest.raises(StaffKeyError, match="refusing to overwrite"):
        StaffPrivateKey.generate().save(path)
    assert StaffPublicKey.from_text(private.public.text).id == private.public.id

    broken = tmp_path / "broken.key"
    for content in ("not json", json.dumps({"kind": "other"}),
                    json.dumps({**json.loads(path.read_text()), "private_key": "AAAA"}),
                    json.dumps({**json.loads(path.read_text()), "public_key": StaffPrivateKey.generate().public.text})):
        broken.write_text(content)
        with pytest.raises(StaffKeyError):
            StaffPrivateKey.load(broken)
    with pytest.raises(StaffKeyError, match="not found"):
        StaffPrivateKey.load(tmp_path / "missing.key")
    for text in ("", "not base64!", "AAAA"):
        with pytest.raises(StaffKeyError):
            StaffPublicKey.from_text(text)


def test_routes_match_topic_and_language_and_merge() -> None:
    routes = [ContactRoute(topics=["safety"], members=["matrix:@a:hs"]),
              ContactRoute(languages=["ar"], members=["telegram:1", "matrix:@a:hs"]),
              ContactRoute(topics=["meeting"], languages=["en"], members=["telegram:2"])]
    assert routed_members(routes, "safety", "ar") == ["matrix:@a:hs", "telegram:1"]
    assert routed_members(routes, "meeting", "en") == ["telegram:2"]
    assert routed_members(routes, "meeting", "ku") == []
    with pytest.raises(ValueError):
        ContactRoute(members=["someone"])


def test_matrix_thread_relation_out_and_in() -> None:
    content = render_message(Outbound(text="in the thread", thread_root="$root"))
    assert content["m.relates_to"]["rel_type"] == "m.thread" and content["m.relates_to"]["event_id"] == "$root"
    assert content["m.relates_to"]["m.in_reply_to"] == {"event_id": "$root"}  # for clients without threads
    assert "m.relates_to" not in render_message(Outbound(text="on its own"))
    assert thread_root_of(content) == "$root"
    assert thread_root_of({"m.relates_to": {"m.in_reply_to": {"event_id": "$replied"}}}) == "$replied"
    assert thread_root_of({"body": "plain"}) is None
    assert thread_root_of({"m.relates_to": "forged"}) is None
    assert thread_root_of({"m.relates_to": {"rel_type": "m.thread", "event_id": 5}}) is None
