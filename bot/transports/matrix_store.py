"""Upkeep of nio's own encryption store (``<user>_<device>.db`` in ``matrix.store_path``).

nio seals only the keys in it (pickled with the pickle key from the key file); user ids,
device ids, device names and room ids sit in plain columns. So:

- trust state lives in that SQLite file (nio's ``SqliteStore``), not in nio's default plain-text
  ``*_devices`` files, which list every person's user id; old such files are removed;
- when a person is erased, everything about their room and about people the bot no longer
  shares a room with is deleted (Olm and Megolm sessions, device keys and their trust state,
  key requests, tracked users) and the file is vacuumed with ``secure_delete``, so no byte of it
  remains, and nobody holding the store and the key file can decrypt their old messages;
- the pickle key rotates with the key file (``keys rotate``): every pickle is sealed again in one
  transaction, and a store left half way by a crash opens with the previous key and is resealed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from nio import AsyncClient  # type: ignore[import-untyped]
from nio.crypto import OlmAccount  # type: ignore[import-untyped]
from nio.store import SqliteStore  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

STORE_CLASS = SqliteStore
_PLAINTEXT_TRUST_FILES = (".trusted_devices", ".blacklisted_devices", ".ignored_devices")


class StoreKeyError(Exception):
    """No pickle key of the key file opens the store (another key file, or the store was altered)."""


def remove_plaintext_trust_files(store_path: Path) -> int:
    """nio's default store kept device trust in plain-text files naming every user; drop them."""
    removed = 0
    for file in store_path.iterdir() if store_path.is_dir() else ():
        if file.is_file() and file.name.endswith(_PLAINTEXT_TRUST_FILES):
            file.unlink()
            removed += 1
    return removed


def _open(store_path: Path, user_id: str, device_id: str, pickle_key: str) -> SqliteStore:
    store = SqliteStore(user_id, device_id, str(store_path), pickle_key=pickle_key)
    store.database.execute_sql("PRAGMA secure_delete=ON")
    return store


def _account_opens(store: SqliteStore, pickle_key: str) -> bool | None:
    """True/False whether ``pickle_key`` opens the account; None if there is no account yet."""
    row = store._get_account()
    if row is None:
        return None
    try:
        OlmAccount.from_pickle(row.account, pickle_key, row.shared)
    except Exception:  # vodozemac raises its own pickle error for a wrong key
        return False
    return True


def ensure_pickle_key(store_path: Path, user_id: str, device_id: str, pickle_keys: Sequence[str]) -> bool:
    """Make the store open with ``pickle_keys[0]`` (the current key); if an older one opens it (a
    rotation stopped half way), seal it again. True if it was resealed. Raises StoreKeyError."""
    nio_file = store_path / f"{user_id}_{device_id}.db"
    if not nio_file.exists():
        return False
    current, *older = pickle_keys
    store = _open(store_path, user_id, device_id, current)
    try:
        if _account_opens(store, current) in (True, None):
            return False
    finally:
        store.database.close()
    for previous in older:
        store = _open(store_path, user_id, device_id, previous)
        try:
            opens = _account_opens(store, previous)
        finally:
            store.database.close()
        if opens:
            reseal(store_path, user_id, device_id, previous, current)
            log.warning("matrix: the encryption store was sealed again with the current pickle key")
            return True
    raise StoreKeyError(f"the encryption store in {store_path} does not open with this key file")


def reseal(store_path: Path, user_id: str, device_id: str, old_key: str, new_key: str) -> int:
    """Pickle the account and every Olm and Megolm session again under ``new_key``, in one transaction.
    Returns how many pickles were sealed again."""
    store = _open(store_path, user_id, device_id, old_key)
    try:
        account = store.load_account()
        if account is None:
            return 0
        sessions = [(session_key, session) for session_key, sessions in store.load_sessions().items()
                    for session in sessions]
        group_sessions = list(store.load_inbound_group_sessions())
        with store.database.atomic():
            store.pickle_key = new_key
            store.save_account(account)
            for session_key, session in sessions:
                store.save_session(session_key, session)
            for group_session in group_sessions:
                store.save_inbound_group_session(group_session)
        store.database.execute_sql("VACUUM")  # the old pickles leave the file's free pages
        return 1 + len(sessions) + len(group_sessions)
    finally:
        store.database.close()


def forget_room(client: AsyncClient, room_id: str) -> None:
    """Drop, in memory and in the store, what concerned ``room_id`` and every user the bot no longer
    shares a joined room with. The client must already have left and forgotten the room."""
    olm = client.olm
    store = client.store
    if olm is None or store is None:
        return
    joined_rooms = set(client.rooms) - {room_id}
    kept_users = {user for room in client.rooms.values() if room.room_id != room_id for user in room.users}
    kept_users.add(client.user_id)
    devices = dict(olm.device_store.items())
    strangers = {user for user in devices if user not in kept_users}
    kept_curves = {d.curve25519 for user in kept_users for d in devices.get(user, {}).values()}
    stranger_curves = {d.curve25519 for user in strangers for d in devices[user].values()} - kept_curves

    _forget_in_memory(olm, room_id, joined_rooms, strangers, stranger_curves)
    _forget_in_store(store, joined_rooms, strangers, stranger_curves)


def _forget_in_memory(olm: Any, room_id: str, joined_rooms: set[str], strangers: set[str],
                      stranger_curves: set[str]) -> None:
    # nio's memory stores have no removal methods: their entry maps are edited directly.
    olm.outbound_group_sessions.pop(room_id, None)
    for gone in [r for r in olm.inbound_group_store._entries if r not in joined_rooms]:
        del olm.inbound_group_store._entries[gone]
    for user in strangers:
        olm.device_store._entries.pop(user, None)
    for curve in stranger_curves:
        olm.session_store._entries.pop(curve, None)
    olm.tracked_users.difference_update(strangers)
    olm.users_for_key_query.difference_update(strangers)
    for request_id, request in list(olm.outgoing_key_requests.items()):
        if request.room_id not in joined_rooms:
            del olm.outgoing_key_requests[request_id]
    for key in [k for k, events in olm.key_re_requests_events.items() if k[0] in strangers or
                any(getattr(e, "room_id", None) not in joined_rooms for e in events)]:
        del olm.key_re_requests_events[key]
    for request_id, request in list(olm.received_key_requests.items()):
        if getattr(request, "sender", None) in strangers or getattr(request, "room_id", None) not in joined_rooms:
            del olm.received_key_requests[request_id]
    olm.key_request_devices_no_session[:] = [d for d in olm.key_request_devices_no_session
                                             if d.user_id not in strangers]
    olm.wedged_devices[:] = [d for d in olm.wedged_devices if d.user_id not in strangers]


def _forget_in_store(store: Any, joined_rooms: set[str], strangers: set[str], stranger_curves: set[str]) -> None:
    account = store._get_account()
    if account is None:
        return
    db = store.database
    db.execute_sql("PRAGMA secure_delete=ON")
    with db.atomic():
        _delete_not_in(db, "megolminboundsessions", "room_id", joined_rooms, account.id)
        _delete_not_in(db, "outgoingkeyrequests", "room_id", joined_rooms, account.id)
        _delete_not_in(db, "encryptedrooms", "room_id", joined_rooms, account.id)
        for user in strangers:
            devices = "SELECT id FROM devicekeys WHERE account_id = ? AND user_id = ?"
            db.execute_sql(f"DELETE FROM keys WHERE device_id IN ({devices})", (account.id, user))
            db.execute_sql(f"DELETE FROM devicetruststate WHERE device_id IN ({devices})", (account.id, user))
            db.execute_sql("DELETE FROM devicekeys WHERE account_id = ? AND user_id = ?", (account.id, user))
        for curve in stranger_curves:
            db.execute_sql("DELETE FROM olmsessions WHERE account_id = ? AND sender_key = ?", (account.id, curve))
    db.execute_sql("VACUUM")  # rebuilds the file: nothing of the deleted rows stays in free pages


def _delete_not_in(db: Any, table: str, column: str, keep: Iterable[str], account_id: int) -> None:
    kept = sorted(keep)
    marks = ",".join("?" * len(kept))
    condition = f" AND {column} NOT IN ({marks})" if kept else ""
    db.execute_sql(f"DELETE FROM {table} WHERE account_id = ?{condition}", (account_id, *kept))


def private_file_modes(store_path: Path) -> None:
    """nio creates its files with the process umask; keep them for the owner only."""
    for file in store_path.iterdir() if store_path.is_dir() else ():
        if file.is_file():
            os.chmod(file, 0o600)
