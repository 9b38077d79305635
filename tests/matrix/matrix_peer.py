"""A second, independent Matrix client for the tests: a person talking to the bot.

It is a plain nio client with its own encryption store in a temporary directory, so the
bot's messages are really end-to-end encrypted between two devices that share nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    MegolmEvent,
    RoomCreateResponse,
    RoomEncryptedImage,
    RoomMessageImage,
    RoomMessageNotice,
    RoomMessageText,
    RoomSendResponse,
)
from synapse_server import RegisteredUser

ENCRYPTION_STATE = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


@dataclass(frozen=True, slots=True)
class Received:
    room_id: str
    event_id: str
    sender: str
    msgtype: str
    body: str
    formatted_body: str | None
    decrypted: bool
    replaces: str | None = None  # an edit (m.replace) of this earlier event
    relates_to: dict[str, Any] | None = None  # m.relates_to (threads, replies), as sent

    @property
    def thread_root(self) -> str | None:
        relates = self.relates_to or {}
        return str(relates["event_id"]) if relates.get("rel_type") == "m.thread" else None


async def eventually(predicate: Any, timeout: float = 20.0, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy (awaiting it if it is a coroutine); return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


class Peer:
    """Someone using an ordinary Matrix client."""

    def __init__(self, homeserver: str, user: RegisteredUser, store_dir: Path) -> None:
        store_dir.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.client = AsyncClient(
            homeserver, user.user_id, device_id=user.device_id, store_path=str(store_dir),
            config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True,
                                     max_timeouts=None, max_timeout_retry_wait_time=1.0),
        )
        self.client.restore_login(user.user_id, user.device_id, user.access_token)
        self.received: list[Received] = []
        self.undecryptable: list[MegolmEvent] = []
        self.images: list[tuple[str, dict[str, Any], bool]] = []  # room id, content, decrypted
        self._task: asyncio.Task[None] | None = None
        self.client.add_event_callback(self._on_message, (RoomMessageText, RoomMessageNotice))
        self.client.add_event_callback(self._on_image, (RoomEncryptedImage, RoomMessageImage))
        self.client.add_event_callback(self._on_megolm, MegolmEvent)

    @property
    def user_id(self) -> str:
        return self.user.user_id

    async def start(self) -> None:
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        await self.client.sync(timeout=0, full_state=True)
        self._task = asyncio.create_task(self.client.sync_forever(timeout=500))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.client.close()

    async def _on_message(self, room: Any, event: Any) -> None:
        if event.sender == self.user_id:
            return
        content = event.source.get("content", {})
        relation = content.get("m.relates_to") or {}
        self.received.append(Received(
            room.room_id, event.event_id, event.sender, content.get("msgtype", ""), event.body,
            content.get("formatted_body"), bool(getattr(event, "decrypted", False)),
            relation.get("event_id") if relation.get("rel_type") == "m.replace" else None,
            content.get("m.relates_to") if isinstance(content.get("m.relates_to"), dict) else None,
        ))

    async def _on_image(self, room: Any, event: Any) -> None:
        if event.sender != self.user_id:
            self.images.append((room.room_id, event.source.get("content", {}),
                                bool(getattr(event, "decrypted", False))))

    async def _on_megolm(self, room: Any, event: MegolmEvent) -> None:
        if event.sender != self.user_id:
            self.undecryptable.append(event)

    # -- rooms -----------------------------------------------------------------------------

    async def create_dm(self, bot_user_id: str, encrypted: bool = True) -> str:
        response = await self.client.room_create(
            is_direct=True, invite=[bot_user_id], initial_state=[ENCRYPTION_STATE] if encrypted else [],
        )
        assert isinstance(response, RoomCreateResponse), response
        return response.room_id

    async def chat_with(self, bot_user_id: str, first_message: str = "hello") -> str:
        """An encrypted direct chat in which the bot has joined and answered once; its room id."""
        room_id = await self.create_dm(bot_user_id)
        await self.wait_joined(room_id, bot_user_id)
        await self.send_text(room_id, first_message, to=bot_user_id)
        await self.wait_from_bot(room_id, bot_user_id, 1)
        return room_id

    async def wait_joined(self, room_id: str, user_id: str, timeout: float = 20.0) -> None:
        def joined() -> bool:
            room = self.client.rooms.get(room_id)
            return bool(room and user_id in room.users and not room.users[user_id].invited)
        await eventually(joined, timeout, what="the bot to join")

    async def wait_left(self, room_id: str, user_id: str, timeout: float = 20.0) -> None:
        def gone() -> bool:
            room = self.client.rooms.get(room_id)
            return bool(room and user_id not in room.users)
        await eventually(gone, timeout, what="the bot to decline")

    async def _know_devices(self, user_id: str) -> None:
        """Like a real client: fetch the other person's devices before encrypting to them."""
        async def known() -> bool:
            if self.client.should_query_keys:
                await self.client.keys_query()
            return any(True for _ in self.client.device_store.active_user_devices(user_id))
        await eventually(known, what="the bot's device keys")

    async def send_text(self, room_id: str, text: str, to: str | None = None) -> str:
        if to is not None and self.client.rooms[room_id].encrypted:
            await self._know_devices(to)
        response = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": text}, ignore_unverified_devices=True
        )
        assert isinstance(response, RoomSendResponse), response
        return response.event_id

    async def send_content(self, room_id: str, content: dict[str, Any], to: str) -> str:
        await self._know_devices(to)
        response = await self.client.room_send(room_id, "m.room.message", content, ignore_unverified_devices=True)
        assert isinstance(response, RoomSendResponse), response
        return response.event_id

    async def send_withholding_key(self, room_id: str, text: str, to: str) -> tuple[str, dict[str, Any]]:
        """Send an encrypted message whose room key the bot does not get (yet).

        Returns the event id and the prepared to-device payload that would deliver the key,
        so a test can deliver it later or never.
        """
        await self._know_devices(to)
        client = self.client
        assert client.olm is not None
        room = client.rooms[room_id]
        missing = client.get_missing_sessions(room_id)
        if missing:
            await client.keys_claim(missing)
        client.olm.create_outbound_group_session(room_id)
        held: dict[str, Any] = {}
        for _, to_device in client.olm.share_group_session_parallel(
            room_id, list(room.users), ignore_unverified_devices=True
        ):
            for user, devices in to_device["messages"].items():
                held.setdefault(user, {}).update(devices)
        client.olm.outbound_group_sessions[room_id].shared = True
        response = await client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": text}, ignore_unverified_devices=True
        )
        assert isinstance(response, RoomSendResponse), response
        # Later messages use a new session that is shared as usual.
        client.olm.outbound_group_sessions.pop(room_id)
        return response.event_id, held

    async def deliver_held_key(self, held: dict[str, Any]) -> None:
        path = "/_matrix/client/v3/sendToDevice/m.room.encrypted/late-key"
        response = await self.client.send("PUT", path, json.dumps({"messages": held}), {
            "Content-Type": "application/json", "Authorization": f"Bearer {self.client.access_token}"})
        assert response.status == 200, response.status

    # -- reading ---------------------------------------------------------------------------

    def from_bot(self, room_id: str, bot_user_id: str) -> list[Received]:
        return [m for m in self.received if m.room_id == room_id and m.sender == bot_user_id]

    async def wait_from_bot(self, room_id: str, bot_user_id: str, count: int, timeout: float = 20.0) -> list[Received]:
        await eventually(lambda: len(self.from_bot(room_id, bot_user_id)) >= count, timeout,
                         what=f"{count} message(s) from the bot")
        return self.from_bot(room_id, bot_user_id)
