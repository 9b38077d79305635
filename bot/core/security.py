"""Keys kept outside the database: pseudonyms, encryption at rest, crypto-shredding.

- A participant is found by ``HMAC-SHA256(hmac_key, "platform:user_id")``; the raw id
  is never stored.
- Fields are sealed with AES-256-GCM. Master keys carry ids so they can rotate: each
  sealed value names the key that sealed it.
- Each participant's data is sealed with their own data key, itself wrapped by a master
  key. Deleting the wrapped key makes their data unreadable everywhere, backups included.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bot.core.model import Pseudonym, valid_unicode

_VERSION = 1
_MASTER_PREFIX = b"\x01"
_DATA_PREFIX = b"\x02"
_NONCE = 12


class KeyFileError(Exception):
    """The key file is missing, unreadable or malformed (the message never shows key material)."""


class DecryptionError(Exception):
    """A sealed value could not be opened: wrong key, wrong context, or tampered."""


def utf8(text: str) -> bytes:
    """UTF-8 of ``text``; a lone surrogate (which a platform's JSON can carry) becomes U+FFFD
    instead of making sealing fail."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return valid_unicode(text).encode("utf-8")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True, slots=True)
class DataKey:
    """A participant's own key. Sealing binds each value to a context (table, column, row).

    Its repr never shows the key bytes (a logged or printed object must not leak them)."""

    raw: bytes = field(repr=False)

    def seal(self, plaintext: str, context: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return _DATA_PREFIX + nonce + AESGCM(self.raw).encrypt(nonce, utf8(plaintext), utf8(context))

    def open(self, token: bytes, context: str) -> str:
        if not token.startswith(_DATA_PREFIX) or len(token) < 1 + _NONCE + 16:
            raise DecryptionError("not a data-key token")
        nonce, body = token[1 : 1 + _NONCE], token[1 + _NONCE :]
        try:
            return AESGCM(self.raw).decrypt(nonce, body, utf8(context)).decode("utf-8")
        except InvalidTag:
            raise DecryptionError("data-key token does not open in this context") from None


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key as stored in the database: sealed by master key ``key_id``."""

    key_id: str
    blob: bytes


class KeyRing:
    """All secrets from the key file. Passed in wherever needed; never global."""

    __slots__ = ("_master", "_current", "_hmac", "_matrix_pickle", "_previous_pickles")

    def __init__(self, master_keys: dict[str, bytes], current: str, hmac_key: bytes, matrix_pickle_key: bytes,
                 previous_matrix_pickle_keys: tuple[bytes, ...] = ()) -> None:
        if current not in master_keys:
            raise KeyFileError("the current master key id is not among the master keys")
        if any(len(k) != 32 for k in master_keys.values()) or len(hmac_key) < 32:
            raise KeyFileError("keys must be 32 bytes")
        self._master = dict(master_keys)
        self._current = current
        self._hmac = hmac_key
        self._matrix_pickle = matrix_pickle_key
        self._previous_pickles = tuple(previous_matrix_pickle_keys)

    # -- key file -----------------------------------------------------------------

    @classmethod
    def generate(cls) -> KeyRing:
        key_id = "k" + secrets.token_hex(4)
        return cls({key_id: AESGCM.generate_key(256)}, key_id, os.urandom(32), os.urandom(32))

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """Read the key file; refuse one that other users can read (as ssh does with private keys)."""
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                raise KeyFileError(f"key file {path} can be read by other users (mode {mode:o}); "
                                   f"restrict it with 'chmod 600 {path}'")
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != _VERSION:
                raise KeyFileError(f"key file {path} has an unsupported version")
            return cls(
                {kid: _unb64(v) for kid, v in data["master_keys"].items()},
                data["current"],
                _unb64(data["hmac_key"]),
                _unb64(data["matrix_pickle_key"]),
                tuple(_unb64(k) for k in data.get("previous_matrix_pickle_keys", [])),
            )
        except FileNotFoundError:
            raise KeyFileError(f"key file {path} not found; create it with 'civicbot keys generate'") from None
        except PermissionError:
            raise KeyFileError(f"key file {path} cannot be read by this user") from None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeyFileError(f"key file {path} is malformed") from None

    def save(self, path: Path, *, overwrite: bool = False) -> None:
        """Write the key file readable by its owner only (0600), atomically."""
        if path.exists() and not overwrite:
            raise KeyFileError(f"key file {path} already exists; refusing to overwrite it")
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "version": _VERSION,
            "current": self._current,
            "master_keys": {kid: _b64(k) for kid, k in self._master.items()},
            "hmac_key": _b64(self._hmac),
            "matrix_pickle_key": _b64(self._matrix_pickle),
        }
        if self._previous_pickles:
            payload["previous_matrix_pickle_keys"] = [_b64(k) for k in self._previous_pickles]
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    def rotated(self) -> KeyRing:
        """A key ring with a new current master key and Matrix store pickle key; the old ones stay
        to open old values (and a Matrix store not yet sealed again)."""
        key_id = "k" + secrets.token_hex(4)
        return KeyRing({**self._master, key_id: AESGCM.generate_key(256)}, key_id, self._hmac, os.urandom(32),
                       (self._matrix_pickle, *self._previous_pickles))

    def retired(self) -> KeyRing:
        """Only the current keys: what was sealed under older ones (in old backups) is gone."""
        return KeyRing({self._current: self._master[self._current]}, self._current, self._hmac, self._matrix_pickle)

    def sealed_with_current(self, token: bytes) -> bool:
        """Whether a master-key token names the current key (rotation skips those)."""
        kid = self._current.encode("ascii")
        return token[:2 + len(kid)] == _MASTER_PREFIX + bytes([len(kid)]) + kid

    @staticmethod
    def is_master_token(token: bytes) -> bool:
        return token.startswith(_MASTER_PREFIX)

    @property
    def current_key_id(self) -> str:
        return self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every master key id this ring can open (the current one and any not yet retired)."""
        return tuple(self._master)

    @property
    def matrix_pickle_key(self) -> str:
        return _b64(self._matrix_pickle)

    @property
    def matrix_pickle_keys(self) -> tuple[str, ...]:
        """The current pickle key first, then older ones not yet retired (to reopen a store after a
        rotation that stopped half way)."""
        return (self.matrix_pickle_key, *(_b64(k) for k in self._previous_pickles))

    # -- pseudonyms ----------------------------------------------------------------

    def pseudonym(self, platform: str, user_id: str) -> Pseudonym:
        """The only identity stored for a person: stable, but not reversible without the key."""
        return Pseudonym(self._mac(f"{platform}:{user_id}"))

    def secret_digest(self, purpose: str, value: str) -> str:
        """Keyed digest of a secret (e.g. an invite code) so it can be matched, not read."""
        return self._mac(f"{purpose}\x00{value}")

    def _mac(self, text: str) -> str:
        return hmac.new(self._hmac, text.encode("utf-8"), hashlib.sha256).hexdigest()

    # -- sealing with the master key ---------------------------------------------

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        kid = self._current.encode("ascii")
        nonce = os.urandom(_NONCE)
        body = AESGCM(self._master[self._current]).encrypt(nonce, plaintext, context)
        return _MASTER_PREFIX + bytes([len(kid)]) + kid + nonce + body

    def open(self, token: bytes, context: bytes) -> bytes:
        try:
            if not token.startswith(_MASTER_PREFIX):
                raise DecryptionError("not a master-key token")
            klen = token[1]
            kid = token[2 : 2 + klen].decode("ascii")
            nonce = token[2 + klen : 2 + klen + _NONCE]
            body = token[2 + klen + _NONCE :]
            return AESGCM(self._master[kid]).decrypt(nonce, body, context)
        except (IndexError, KeyError, UnicodeDecodeError, InvalidTag):
            raise DecryptionError("master-key token does not open") from None

    def seal_text(self, plaintext: str, context: str) -> bytes:
        return self.seal(utf8(plaintext), utf8(context))

    def open_text(self, token: bytes, context: str) -> str:
        return self.open(token, utf8(context)).decode("utf-8")

    # -- per-participant data keys ------------------------------------------------

    def new_data_key(self, owner: str) -> tuple[DataKey, WrappedKey]:
        raw = AESGCM.generate_key(256)
        return DataKey(raw), WrappedKey(self._current, self.seal(raw, f"data-key:{owner}".encode()))

    def unwrap(self, wrapped: bytes, owner: str) -> DataKey:
        return DataKey(self.open(wrapped, f"data-key:{owner}".encode()))
