"""What the Matrix transport keeps on disk besides nio's own store, sealed with the key file.

Three small files in ``store_path``, each AES-GCM sealed by the key ring with its own
context so one cannot be swapped for another:

- ``login.sealed``: homeserver, user id, device id, access token. Logging in again
  would create a new device with new keys and break every encrypted room.
- ``checkpoint.sealed``: the last sync token whose events were *all* handled, the ids of
  recently handled events, and undecryptable events still waiting for their room key.
  nio saves its sync token before callbacks run, so it cannot be our checkpoint.
- ``cross_signing.sealed``: the private seeds of the cross-signing keys.

Nothing here is ever written in plaintext; files are 0600 in a 0700 directory.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class KeySealer(Protocol):
    """The part of the key ring the Matrix transport needs (``bot.core.security.KeyRing``)."""

    def seal(self, plaintext: bytes, context: bytes) -> bytes: ...

    def open(self, token: bytes, context: bytes) -> bytes: ...

    @property
    def matrix_pickle_key(self) -> str: ...

    @property
    def matrix_pickle_keys(self) -> tuple[str, ...]: ...


class SessionStoreError(Exception):
    """A sealed file exists but cannot be opened (wrong key file, or tampered)."""


@dataclass(frozen=True, slots=True)
class StoredLogin:
    homeserver: str
    user_id: str
    device_id: str
    access_token: str


@dataclass(slots=True)
class PendingEvent:
    """An encrypted event we could not decrypt yet: its raw JSON and when we first saw it."""

    room_id: str
    source: dict[str, Any]
    first_seen: float  # wall clock (time.time()), so the grace period survives a restart
    notified: bool = False


SEEN_LIMIT = 5000
PENDING_LIMIT = 500  # undecryptable events kept at most, in all rooms together...
PENDING_PER_ROOM = 20  # ...and in one room: one notice covers them all anyway


@dataclass(slots=True)
class Checkpoint:
    """Progress of the sync loop that only advances once events are handled."""

    since: str | None = None
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    pending: dict[str, PendingEvent] = field(default_factory=dict)

    def was_seen(self, event_id: str) -> bool:
        return event_id in self.seen

    def mark_seen(self, event_id: str) -> None:
        self.seen[event_id] = None
        self.seen.move_to_end(event_id)
        while len(self.seen) > SEEN_LIMIT:
            self.seen.popitem(last=False)

    def keep_pending(self, event_id: str, event: PendingEvent) -> None:
        """Keep an undecryptable event until its key arrives, within bounds: over its room's share
        it is dropped (as handled), over the total the oldest kept event makes room."""
        in_room = sum(1 for p in self.pending.values() if p.room_id == event.room_id)
        if in_room >= PENDING_PER_ROOM:
            self.mark_seen(event_id)
            return
        self.pending[event_id] = event
        while len(self.pending) > PENDING_LIMIT:
            oldest = next(iter(self.pending))
            del self.pending[oldest]
            self.mark_seen(oldest)

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "seen": list(self.seen),
            "pending": {
                event_id: {"room_id": p.room_id, "source": p.source, "first_seen": p.first_seen,
                           "notified": p.notified}
                for event_id, p in self.pending.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        return cls(
            since=data.get("since"),
            seen=OrderedDict((event_id, None) for event_id in data.get("seen", [])),
            pending={
                event_id: PendingEvent(p["room_id"], p["source"], float(p["first_seen"]),
                                       bool(p.get("notified", False)))
                for event_id, p in data.get("pending", {}).items()
            },
        )


class MatrixSessionStore:
    """Sealed JSON files in the Matrix store directory."""

    _LOGIN = "login.sealed"
    _CHECKPOINT = "checkpoint.sealed"
    _CROSS_SIGNING = "cross_signing.sealed"

    def __init__(self, path: Path, sealer: KeySealer) -> None:
        self.path = path
        self._sealer = sealer

    def ensure_dir(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)

    # -- generic sealed JSON -------------------------------------------------------------

    def _context(self, name: str) -> bytes:
        return f"civicbot:matrix:{name}".encode()

    def _read(self, name: str) -> dict[str, Any] | None:
        file = self.path / name
        try:
            token = file.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data: dict[str, Any] = json.loads(self._sealer.open(token, self._context(name)))
        except Exception as exc:  # the key ring's own error type stays out of this module
            raise SessionStoreError(
                f"{file} cannot be opened with this key file (wrong key file, or the file was altered)"
            ) from exc
        return data

    def _write(self, name: str, data: dict[str, Any]) -> None:
        self.ensure_dir()
        token = self._sealer.seal(json.dumps(data, separators=(",", ":")).encode(), self._context(name))
        target = self.path / name
        tmp = target.with_name(name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(token)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)

    # -- login ---------------------------------------------------------------------------

    def reseal(self, sealer: KeySealer) -> int:
        """Seal every file again with ``sealer``'s current key (key rotation). Returns the count."""
        resealed = 0
        for name in (self._LOGIN, self._CHECKPOINT, self._CROSS_SIGNING):
            data = self._read(name)
            if data is not None:
                MatrixSessionStore(self.path, sealer)._write(name, data)
                resealed += 1
        return resealed

    def load_login(self) -> StoredLogin | None:
        data = self._read(self._LOGIN)
        if data is None:
            return None
        return StoredLogin(data["homeserver"], data["user_id"], data["device_id"], data["access_token"])

    def save_login(self, login: StoredLogin) -> None:
        self._write(self._LOGIN, {"homeserver": login.homeserver, "user_id": login.user_id,
                                  "device_id": login.device_id, "access_token": login.access_token})

    # -- checkpoint ----------------------------------------------------------------------

    def load_checkpoint(self) -> Checkpoint | None:
        data = self._read(self._CHECKPOINT)
        return None if data is None else Checkpoint.from_json(data)

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._write(self._CHECKPOINT, checkpoint.to_json())

    # -- cross-signing seeds ---------------------------------------------------------------

    def load_cross_signing(self) -> dict[str, str] | None:
        data = self._read(self._CROSS_SIGNING)
        return None if data is None else {str(k): str(v) for k, v in data.items()}

    def save_cross_signing(self, seeds: dict[str, str]) -> None:
        self._write(self._CROSS_SIGNING, seeds)
