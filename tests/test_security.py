"""Key ring: pseudonyms, sealing, rotation, crypto-shredding, key file handling."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from bot.core.security import DecryptionError, KeyFileError, KeyRing


def test_pseudonyms_are_stable_keyed_and_not_the_id(keys: KeyRing) -> None:
    p = keys.pseudonym("telegram", "12345")
    assert p == keys.pseudonym("telegram", "12345")
    assert p != keys.pseudonym("matrix", "12345") and p != KeyRing.generate().pseudonym("telegram", "12345")
    assert "12345" not in p and len(p) == 64


def test_sealed_values_open_only_in_their_context(keys: KeyRing) -> None:
    token = keys.seal_text("محمد – Aleppo", "participants.note:1")
    assert b"Aleppo" not in token
    assert keys.open_text(token, "participants.note:1") == "محمد – Aleppo"
    with pytest.raises(DecryptionError):
        keys.open_text(token, "participants.note:2")
    with pytest.raises(DecryptionError):
        keys.open_text(token[:-1] + bytes([token[-1] ^ 1]), "participants.note:1")
    with pytest.raises(DecryptionError):
        KeyRing.generate().open_text(token, "participants.note:1")


def test_rotation_keeps_old_values_readable(keys: KeyRing, tmp_path: Path) -> None:
    old = keys.seal_text("before", "c")
    rotated = keys.rotated()
    assert rotated.current_key_id != keys.current_key_id
    assert rotated.open_text(old, "c") == "before"
    new = rotated.seal_text("after", "c")
    with pytest.raises(DecryptionError):
        keys.open_text(new, "c")
    rotated.save(tmp_path / "k.json")
    assert KeyRing.load(tmp_path / "k.json").open_text(new, "c") == "after"
    assert rotated.pseudonym("x", "1") == keys.pseudonym("x", "1")


def test_crypto_shredding_a_data_key(keys: KeyRing) -> None:
    data_key, wrapped = keys.new_data_key("42")
    sealed = data_key.seal("my answer", "answers:42")
    assert keys.unwrap(wrapped.blob, "42").open(sealed, "answers:42") == "my answer"
    with pytest.raises(DecryptionError):
        keys.unwrap(wrapped.blob, "43")  # a wrapped key moved to another person does not open
    # Without the wrapped key (erased), nothing else opens the value: not the master key, not another data key.
    with pytest.raises(DecryptionError):
        keys.new_data_key("42")[0].open(sealed, "answers:42")
    with pytest.raises(DecryptionError):
        keys.open(sealed, b"answers:42")


def test_key_file_is_private_and_never_overwritten(tmp_path: Path, keys: KeyRing) -> None:
    path = tmp_path / "nested" / "keys.json"
    keys.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        KeyRing.generate().save(path)
    assert KeyRing.load(path).pseudonym("a", "b") == keys.pseudonym("a", "b")


@pytest.mark.parametrize("content", ["not json", json.dumps({"version": 9}), json.dumps({"version": 1})])
def test_bad_key_files_give_one_clear_line(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(KeyFileError) as info:
        KeyRing.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(KeyFileError, match="civicbot keys generate"):
        KeyRing.load(tmp_path / "missing.json")
