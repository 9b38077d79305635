"""Case content sealed twice: to the staff team's public key, then with the person's data key.

- Inner layer: an X25519 sealed box (libsodium ``crypto_box_seal`` through PyNaCl) to the
  staff public key. Only the private key opens it, and that key never lives on the server
  (SecureDrop's rule): the running bot writes cases it cannot read back.
- Outer layer: AES-GCM with the person's own data key, bound to the message row. Erasing the
  person destroys that key, so even a staff member holding the private key can no longer
  open their messages, in backups included.

The sealed plaintext names its case and kind, so a ciphertext moved to another case or
row is refused on opening, although a sealed box has no associated data of its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from bot.core.security import DataKey, DecryptionError

_KEY_FILE_KIND = "civicbot-cases-staff-key"
_KEY_FILE_VERSION = 1


class StaffKeyError(Exception):
    """A staff key is malformed, missing or unreadable (the message never shows key material)."""


def key_id(public: bytes) -> str:
    """A short, stable name for a staff public key, stored beside what was sealed to it."""
    return hashlib.sha256(public).hexdigest()[:12]


def parse_public_key(text: str) -> PublicKey:
    """The form ``civicbot cases keygen`` prints (base64 of 32 bytes)."""
    try:
        raw = base64.b64decode(text.strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise StaffKeyError("not base64") from None
    if len(raw) != 32:
        raise StaffKeyError("not a 32-byte X25519 public key")
    return PublicKey(raw)


@dataclass(frozen=True, slots=True)
class StaffPublicKey:
    """What the server holds: enough to seal, nothing to open."""

    key: PublicKey

    @classmethod
    def from_text(cls, text: str) -> StaffPublicKey:
        return cls(parse_public_key(text))

    @property
    def id(self) -> str:
        return key_id(bytes(self.key))

    @property
    def text(self) -> str:
        return base64.b64encode(bytes(self.key)).decode("ascii")

    def seal(self, payload: bytes) -> bytes:
        return bytes(SealedBox(self.key).encrypt(payload))


@dataclass(frozen=True, slots=True)
class StaffPrivateKey:
    """The staff team's private key: on a staff machine only, never in the bot's configuration."""

    key: PrivateKey

    @classmethod
    def generate(cls) -> StaffPrivateKey:
        return cls(PrivateKey.generate())

    @property
    def public(self) -> StaffPublicKey:
        return StaffPublicKey(self.key.public_key)

    def open(self, sealed: bytes) -> bytes:
        try:
            return bytes(SealedBox(self.key).decrypt(sealed))
        except CryptoError:
            raise DecryptionError("not sealed to this staff key") from None

    def save(self, path: Path) -> None:
        """Write the key file readable by its owner only (0600); never overwrite an existing one."""
        payload = {
            "kind": _KEY_FILE_KIND,
            "version": _KEY_FILE_VERSION,
            "key_id": self.public.id,
            "public_key": self.public.text,
            "private_key": base64.b64encode(bytes(self.key)).decode("ascii"),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise StaffKeyError(f"{path} already exists; refusing to overwrite a staff key") from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(path, 0o600)

    @classmethod
    def load(cls, path: Path) -> StaffPrivateKey:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("kind") != _KEY_FILE_KIND or data.get("version") != _KEY_FILE_VERSION:
                raise StaffKeyError(f"{path} is not a staff key file")
            raw = base64.b64decode(str(data["private_key"]).encode("ascii"), validate=True)
            if len(raw) != 32:
                raise StaffKeyError(f"{path} is malformed")
            key = cls(PrivateKey(raw))
        except FileNotFoundError:
            raise StaffKeyError(f"staff key file {path} not found") from None
        except PermissionError:
            raise StaffKeyError(f"staff key file {path} cannot be read by this user") from None
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            raise StaffKeyError(f"{path} is malformed") from None
        if data.get("public_key") not in (None, key.public.text):
            raise StaffKeyError(f"{path} is inconsistent (its public key does not match)")
        return key


@dataclass(frozen=True, slots=True)
class SealedContent:
    """One case message as stored: which staff key it is sealed to, and the two-layer token."""

    staff_key_id: str
    token: bytes


def _inner_plaintext(reference: str, kind: str, body: str) -> bytes:
    return json.dumps({"case": reference, "kind": kind, "body": body}, ensure_ascii=False).encode("utf-8")


def seal(staff: StaffPublicKey, person: DataKey, context: str, reference: str, kind: str, body: str) -> SealedContent:
    """Seal to the staff key first, then with the person's key (the outer layer is what erasure shreds)."""
    inner = staff.seal(_inner_plaintext(reference, kind, body))
    outer = person.seal(base64.b64encode(inner).decode("ascii"), context)
    return SealedContent(staff.id, outer)


def open_sealed(private: StaffPrivateKey, person: DataKey, context: str, reference: str, token: bytes) -> tuple[str, str]:
    """``(kind, body)``; raises :class:`DecryptionError` if either layer refuses or the row was moved."""
    inner = base64.b64decode(person.open(token, context).encode("ascii"))
    try:
        data = json.loads(private.open(inner).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise DecryptionError("malformed case content") from None
    if not isinstance(data, dict) or data.get("case") != reference:
        raise DecryptionError("case content belongs to another case")
    return str(data.get("kind", "")), str(data.get("body", ""))
