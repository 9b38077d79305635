"""Matrix transport: matrix-nio with end-to-end encryption, one stable cross-signed device.

What it guarantees (DESIGN.md, "Matrix E2EE"):

- One device for the bot's whole life: it logs in once, keeps the access token and device
  id sealed with the key file, restores them with nio's store (whose pickle key also comes
  from the key file), checks ``whoami`` at start and never logs out.
- Its device is cross-signed by the bot's own keys (``matrix_crosssigning``).
- It talks only in encrypted rooms (``require_encryption``); elsewhere it only asks for
  encryption to be enabled. Plaintext events injected into an encrypted room are ignored.
- Every event is handled once: our own checkpoint (sealed) advances only after handling,
  events are deduplicated by id, history is not answered on the very first start.
- Undecryptable events are kept, their room key is requested, they are decrypted when it
  arrives, and after a grace period the sender is told to send again.
- Homeserver outages and ``M_LIMIT_EXCEEDED`` are waited out (nio obeys ``retry_after_ms``);
  sends reuse the caller's transaction id, so a resend is never delivered twice.

Nothing here logs message content, user ids, room ids or tokens.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientConnectionError
from nio import (  # type: ignore[import-untyped]
    AsyncClient,
    AsyncClientConfig,
    BadEvent,
    EncryptionError,
    ErrorResponse,
    InviteMemberEvent,
    JoinError,
    JoinResponse,
    LocalProtocolError,
    LoginResponse,
    MatrixRoom,
    MegolmEvent,
    MessageDirection,
    RoomCreateResponse,
    RoomMessageEmote,
    RoomMessageNotice,
    RoomMessagesResponse,
    RoomMessageText,
    RoomRedactResponse,
    RoomSendResponse,
    SendRetryError,
    StickerEvent,
    SyncError,
    SyncResponse,
    UploadResponse,
    WhoamiResponse,
)
from nio.events.room_events import (  # type: ignore[import-untyped]
    RoomEncryptedMedia,
    RoomMessage,
    RoomMessageMedia,
    RoomMessageUnknown,
)

from bot.core.model import (
    Address,
    Capabilities,
    Delivery,
    Direction,
    Inbound,
    InboundKind,
    Outbound,
    Platform,
    SendOptions,
)
from bot.core.transport import (
    ChatErasure,
    InboundHandler,
    PermanentDeliveryError,
    RecipientUnreachable,
    TransientDeliveryError,
    TransportStartupError,
)
from bot.transports.matrix_crosssigning import (
    CrossSigningError,
    CrossSigningStatus,
    JsonDict,
    ensure_cross_signing,
)
from bot.transports.matrix_render import render_messages, render_notice, strip_reply_fallback, thread_root_of
from bot.transports.matrix_session import (
    Checkpoint,
    KeySealer,
    MatrixSessionStore,
    PendingEvent,
    SessionStoreError,
    StoredLogin,
)
from bot.transports.matrix_store import (
    STORE_CLASS,
    StoreKeyError,
    ensure_pickle_key,
    forget_room,
    private_file_modes,
    remove_plaintext_trust_files,
)
from bot.transports.matrix_throttle import NoticeThrottle

log = logging.getLogger(__name__)

PLATFORM = Platform("matrix")

Notice = Callable[[str, str | None], str]
LanguageOf = Callable[[str], Awaitable[str | None]]  # a sender's language, if the core knows them
"""``notice(kind, language) -> text`` for ``"enable_encryption"`` and ``"undecryptable"``."""

_NETWORK_ERRORS = (ClientConnectionError, TimeoutError, asyncio.TimeoutError, OSError)

_BACKFILL_PAGES = 20  # at most this many pages of missed events per room after an outage


def _sync_filter(timeline_limit: int) -> JsonDict:
    return {
        "room": {"timeline": {"limit": timeline_limit}, "state": {"lazy_load_members": False}},
        "presence": {"not_types": ["*"]},
    }


class MatrixStartupError(TransportStartupError):
    """The transport cannot start; the message tells the operator what to do."""


@dataclass(frozen=True, slots=True)
class MatrixOptions:
    """Everything the transport needs from configuration (``MatrixSettings`` + staff room)."""

    homeserver: str
    user_id: str
    password: str | None = None
    access_token: str | None = None
    store_path: Path = Path("data/matrix-store")
    device_name: str = "civicbot"
    require_encryption: bool = True
    allowed_homeservers: tuple[str, ...] = ()
    staff_room: str | None = None
    undecryptable_grace: float = 120.0  # seconds to wait for a missing room key
    sync_timeout_ms: int = 30_000
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    send_retry_budget: float = 30.0  # seconds a send keeps retrying through an outage
    connect_timeout: float = 300.0  # seconds start() waits for an unreachable homeserver
    encryption_notice_interval: float = 60.0
    timeline_limit: int = 100  # events per room and sync; older missed ones are paged in
    rate_per_second: float = 5.0  # bulk sends the outbox may make (matrix.rate_per_second)

    @classmethod
    def from_settings(cls, matrix: Any, staff_room: str | None = None, **overrides: Any) -> MatrixOptions:
        """Build from ``bot.config.MatrixSettings`` (duck-typed: SecretStr or plain str)."""

        def secret(value: Any) -> str | None:
            if value is None:
                return None
            getter = getattr(value, "get_secret_value", None)
            return str(getter() if getter else value)

        if not matrix.homeserver or not matrix.user_id:
            raise MatrixStartupError("matrix.homeserver and matrix.user_id must both be set")
        values: dict[str, Any] = {
            "homeserver": str(matrix.homeserver).rstrip("/"),
            "user_id": str(matrix.user_id),
            "password": secret(matrix.password),
            "access_token": secret(matrix.access_token),
            "store_path": Path(matrix.store_path),
            "device_name": str(getattr(matrix, "device_name", "civicbot")),
            "require_encryption": bool(matrix.require_encryption),
            "allowed_homeservers": tuple(matrix.allowed_homeservers),
            "staff_room": staff_room,
            "rate_per_second": float(matrix.rate_per_second),
        }
        values.update(overrides)
        return cls(**values)


def server_name(matrix_id: str) -> str:
    """``@alice:example.org`` -> ``example.org`` (ports included, as Matrix compares them)."""
    return matrix_id.split(":", 1)[1] if ":" in matrix_id else ""


def quiet_library_logging() -> None:
    """nio logs room ids, user ids and session ids at every level; keep it silent."""
    logging.getLogger("nio").setLevel(logging.CRITICAL + 1)


@dataclass(slots=True)
class _Backoff:
    initial: float
    maximum: float
    current: float = field(init=False)

    def __post_init__(self) -> None:
        self.current = self.initial

    def reset(self) -> None:
        self.current = self.initial

    def next(self) -> float:
        delay = self.current * (0.75 + random.random() / 2)
        self.current = min(self.current * 2, self.maximum)
        return delay


class MatrixTransport:
    """The :class:`bot.core.transport.Transport` for Matrix."""

    platform = PLATFORM
    capabilities = Capabilities(
        buttons=False,
        html=True,
        images=True,
        end_to_end_encrypted=True,
        max_text_length=16_000,
        platform_reads_messages=False,
        threads=True,
    )

    def __init__(self, options: MatrixOptions, keys: KeySealer, notice: Notice,
                 language_of: LanguageOf | None = None) -> None:
        self.options = options
        self._keys = keys
        self._notice = notice
        self._language_of = language_of
        self._session = MatrixSessionStore(options.store_path, keys)
        self._client: AsyncClient | None = None
        self._handler: InboundHandler | None = None
        self._checkpoint = Checkpoint()
        self._first_start = False
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._staff_room_id: str | None = None
        self._encryption_notices = NoticeThrottle(options.encryption_notice_interval)
        self._private_notices = NoticeThrottle(options.encryption_notice_interval)
        self._unreadable_notices = NoticeThrottle(options.encryption_notice_interval)
        self._keys_lock = asyncio.Lock()
        self.cross_signing: CrossSigningStatus | None = None
        self.rate_limited = 0  # M_LIMIT_EXCEEDED answers seen (and waited out)
        self.sync_failures = 0  # syncs that failed and were retried (an outage shows here first)
        self.failure: BaseException | None = None  # why the sync loop stopped, if it did
        self._ended = asyncio.Event()

    # -- properties for operators and tests ------------------------------------------------

    @property
    def user_id(self) -> str:
        return self.options.user_id

    @property
    def device_id(self) -> str | None:
        return self._client.device_id if self._client else None

    @property
    def client(self) -> AsyncClient:
        if self._client is None:
            raise RuntimeError("the Matrix transport is not started")
        return self._client

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def rate_per_second(self) -> float:
        return self.options.rate_per_second

    @property
    def paces_sends(self) -> bool:
        return False  # the outbox spaces bulk sends to ``rate_per_second``

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, on_inbound: InboundHandler) -> None:
        """Log in or restore, publish keys, sync once, then keep syncing in the background.

        Returns once the first sync is done: from then on :meth:`send` works.
        """
        quiet_library_logging()
        self._handler = on_inbound
        self._session.ensure_dir()
        remove_plaintext_trust_files(self.options.store_path)
        client = AsyncClient(
            self.options.homeserver,
            self.options.user_id,
            store_path=str(self.options.store_path),
            config=AsyncClientConfig(
                encryption_enabled=True,
                store=STORE_CLASS,  # trust state in the sealed-key database, not in plain-text files
                store_sync_tokens=True,
                pickle_key=self._keys.matrix_pickle_key,
                max_timeouts=2,
                backoff_factor=0.2,
                max_timeout_retry_wait_time=2.0,
                request_timeout=30,
            ),
        )
        client.add_response_callback(self._on_error_response, ErrorResponse)
        self._client = client
        try:
            await self._with_connect_retry(self._login)
            checkpoint = self._session.load_checkpoint()
            self._first_start = checkpoint is None
            self._checkpoint = checkpoint or Checkpoint()
            await self._with_connect_retry(self._publish_keys)
            await self._with_connect_retry(self._initial_sync)
            await self._with_connect_retry(self._join_staff_room)
        except SessionStoreError as exc:
            await self._abandon_start()
            raise MatrixStartupError(str(exc)) from None
        except BaseException:
            await self._abandon_start()
            raise
        self._ended.clear()
        self._task = asyncio.create_task(self._sync_loop(), name="matrix-sync")
        self._task.add_done_callback(lambda _: self._ended.set())
        log.info("matrix transport started")

    async def _abandon_start(self) -> None:
        self._ready.clear()
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def stop(self) -> None:
        """Stop syncing and close the connection. Never logs out: that would delete the device."""
        self._ready.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._client is not None:
            self._session.save_checkpoint(self._checkpoint)
            await self._client.close()
            self._client = None
            private_file_modes(self.options.store_path)
            log.info("matrix transport stopped")

    async def wait_stopped(self) -> None:
        """Wait for the sync loop to end (only on a fatal error, then ``failure`` says why, or :meth:`stop`)."""
        await self._ended.wait()

    async def _with_connect_retry(self, step: Callable[[], Any]) -> None:
        deadline = time.monotonic() + self.options.connect_timeout
        backoff = _Backoff(self.options.backoff_initial, self.options.backoff_max)
        while True:
            try:
                await step()
                return
            except _NETWORK_ERRORS as exc:
                delay = backoff.next()
                if time.monotonic() + delay > deadline:
                    raise MatrixStartupError(
                        f"the Matrix homeserver could not be reached for {self.options.connect_timeout:.0f}s "
                        f"({type(exc).__name__}); is matrix.homeserver right?"
                    ) from None
                log.warning("matrix homeserver unreachable at start (%s); retrying in %.1fs",
                            type(exc).__name__, delay)
                await asyncio.sleep(delay)

    # -- login, device and keys -------------------------------------------------------------------

    async def _login(self) -> None:
        client = self.client
        stored = self._session.load_login()
        if stored is not None:
            if stored.user_id != self.options.user_id:
                raise MatrixStartupError(
                    f"the Matrix store in {self.options.store_path} belongs to another account than "
                    "matrix.user_id; point matrix.store_path elsewhere or fix matrix.user_id"
                )
            nio_store = self.options.store_path / f"{stored.user_id}_{stored.device_id}.db"
            if not nio_store.exists():
                raise MatrixStartupError(
                    f"the encryption store of the bot's device is missing from {self.options.store_path}; "
                    "the device's keys are lost. Restore the store from backup, or move "
                    f"{self.options.store_path} away to log in as a new device"
                )
            try:
                ensure_pickle_key(self.options.store_path, stored.user_id, stored.device_id,
                                  self._keys.matrix_pickle_keys)
            except StoreKeyError as exc:
                raise MatrixStartupError(f"{exc}; restore the key file that belongs to it") from None
            client.restore_login(stored.user_id, stored.device_id, stored.access_token)
            await self._check_whoami(stored.device_id)
            return
        if self.options.access_token:
            client.access_token = self.options.access_token
            device_id = await self._check_whoami(None)
            login = StoredLogin(self.options.homeserver, self.options.user_id, device_id, self.options.access_token)
        elif self.options.password:
            response = await client.login(self.options.password, device_name=self.options.device_name)
            if not isinstance(response, LoginResponse):
                raise MatrixStartupError(
                    f"the homeserver refused the bot's login ({getattr(response, 'status_code', '?')}); "
                    "check matrix.user_id and matrix.password"
                )
            login = StoredLogin(self.options.homeserver, response.user_id, response.device_id, response.access_token)
        else:
            raise MatrixStartupError("set matrix.password (used for the first login) or matrix.access_token")
        # Saved before anything else: a crash from here on must not create a second device.
        self._session.save_login(login)
        client.restore_login(login.user_id, login.device_id, login.access_token)

    async def _check_whoami(self, expected_device: str | None) -> str:
        response = await self.client.whoami()
        if not isinstance(response, WhoamiResponse):
            code = getattr(response, "status_code", None)
            if code == "M_UNKNOWN_TOKEN":
                raise MatrixStartupError(
                    "the homeserver no longer accepts the bot's access token (was the device logged out or "
                    "deleted?). Its encryption keys went with it: move "
                    f"{self.options.store_path} away and start again to log in as a new device"
                )
            raise MatrixStartupError(f"whoami failed ({code}); the homeserver may be misconfigured")
        if response.user_id != self.options.user_id:
            raise MatrixStartupError("the access token belongs to another account than matrix.user_id")
        if not response.device_id:
            raise MatrixStartupError("the access token is not bound to a device; log in with a password instead")
        if expected_device is not None and response.device_id != expected_device:
            raise MatrixStartupError(
                "the access token belongs to another device than the one in the encryption store; "
                f"restore the matching {self.options.store_path} or move it away to log in afresh"
            )
        return str(response.device_id)

    async def _publish_keys(self) -> None:
        client = self.client
        if client.should_upload_keys:
            response = await client.keys_upload()
            if isinstance(response, ErrorResponse):
                raise MatrixStartupError(f"uploading the device keys failed ({response.status_code})")
        assert client.olm is not None and client.device_id is not None
        olm = client.olm
        try:
            self.cross_signing = await ensure_cross_signing(
                self._api,
                self._session,
                self.options.user_id,
                client.device_id,
                olm.account.identity_keys["ed25519"],
                lambda canonical: olm.account.sign(canonical.decode("utf-8")),
                self.options.password,
            )
        except CrossSigningError as exc:
            # Messages still flow; clients that hide devices not cross-signed will hide ours.
            log.error("matrix cross-signing not in place: %s", exc)

    async def _api(self, method: str, path: str, body: JsonDict | None) -> tuple[int, JsonDict]:
        """A raw authenticated client-server API call (for endpoints nio does not cover)."""
        client = self.client
        response = await client.send(
            method,
            path,
            None if body is None else json.dumps(body),
            {"Authorization": f"Bearer {client.access_token}", "Content-Type": "application/json"},
        )
        try:
            data = await response.json(content_type=None)
        except (ValueError, json.JSONDecodeError):
            data = {}
        return response.status, data if isinstance(data, dict) else {}

    async def _on_error_response(self, response: ErrorResponse) -> None:
        if response.status_code == "M_LIMIT_EXCEEDED":
            self.rate_limited += 1
            log.warning("matrix rate limit hit; waiting %sms as the homeserver asks", response.retry_after_ms)

    # -- syncing -------------------------------------------------------------------------------

    async def _sync(self, timeout_ms: int, full_state: bool) -> SyncResponse:
        response = await self.client.sync(
            timeout=timeout_ms, sync_filter=_sync_filter(self.options.timeline_limit),
            since=self._checkpoint.since, full_state=full_state,
        )
        if isinstance(response, SyncError):
            if response.status_code in ("M_UNKNOWN_TOKEN", "M_FORBIDDEN"):
                raise MatrixStartupError(f"the homeserver rejected the bot's session ({response.status_code})")
            raise ClientConnectionError(f"sync failed ({response.status_code})")
        return response

    async def _initial_sync(self) -> None:
        # With a checkpoint, full state is needed: nio does not persist room state.
        response = await self._sync(0, full_state=self._checkpoint.since is not None)
        await self._maintain_keys()
        # Synced: replies to what this sync brings (e.g. messages sent while we were down) may go out.
        self._ready.set()
        await self._process(response, answer=not self._first_start)

    async def _sync_loop(self) -> None:
        backoff = _Backoff(self.options.backoff_initial, self.options.backoff_max)
        while True:
            try:
                response = await self._sync(self._next_timeout_ms(), full_state=False)
                await self._maintain_keys()
                await self._process(response, answer=True)
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except MatrixStartupError as exc:
                self.failure = exc
                log.error("matrix sync stopped: %s", exc)
                return
            except (*_NETWORK_ERRORS, LocalProtocolError, SendRetryError) as exc:
                self.sync_failures += 1
                delay = backoff.next()
                log.warning("matrix sync failed (%s); retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
            except Exception as exc:  # noqa: BLE001 - never let one bad event stop the bot
                self.sync_failures += 1
                delay = backoff.next()
                log.error("matrix sync error (%s); retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)

    def _next_timeout_ms(self) -> int:
        """Long-poll, but wake up in time to tell a sender their message could not be read."""
        timeout = self.options.sync_timeout_ms
        now = time.time()
        for pending in self._checkpoint.pending.values():
            due = pending.first_seen + self.options.undecryptable_grace - now
            timeout = min(timeout, max(0, int(due * 1000) + 50))
        return timeout

    async def _maintain_keys(self) -> None:
        """What ``sync_forever`` does between syncs: to-device messages and key upkeep.

        Runs before events are dispatched, so a reply to a new member reaches their devices.
        """
        client = self.client
        async with self._keys_lock:
            if client.outgoing_to_device_messages:
                await client.send_to_device_messages()
            if client.should_upload_keys:
                await client.keys_upload()
            if client.should_query_keys:
                await client.keys_query()
            if client.should_claim_keys:
                await client.keys_claim(client.get_users_for_key_claiming())

    async def _process(self, response: SyncResponse, answer: bool) -> None:
        for room_id, info in response.rooms.invite.items():
            await self._on_invite(room_id, info.invite_state)
        async def room_in_order(room: MatrixRoom, info: Any) -> None:
            events = list(info.timeline.events)
            if answer and info.timeline.limited and info.timeline.prev_batch and self._checkpoint.since:
                events = await self._missed_events(room.room_id, info.timeline.prev_batch) + events
            for event in events:
                if answer:
                    await self._on_event(room, event)
                elif getattr(event, "event_id", None):
                    self._checkpoint.mark_seen(event.event_id)

        # Each room in order; different rooms (different people) at the same time, so one
        # person's slow turn does not hold up everyone else's answer.
        rooms = [(room, info) for room_id, info in response.rooms.join.items()
                 if (room := self.client.rooms.get(room_id)) is not None]
        await asyncio.gather(*(room_in_order(room, info) for room, info in rooms))
        await self._retry_pending()
        self._checkpoint.since = response.next_batch
        self._session.save_checkpoint(self._checkpoint)

    async def _missed_events(self, room_id: str, prev_batch: str) -> list[Any]:
        """Events between our checkpoint and a limited timeline, oldest first.

        A sync after an outage returns only the newest events of a busy room; the rest are
        paged in with ``/messages`` back to the checkpoint or the first event already handled.
        """
        missed: list[Any] = []
        token = prev_batch
        for _ in range(_BACKFILL_PAGES):
            response = await self.client.room_messages(
                room_id, start=token, end=self._checkpoint.since, direction=MessageDirection.back, limit=100
            )
            if not isinstance(response, RoomMessagesResponse) or not response.chunk:
                break
            fresh = list(itertools.takewhile(
                lambda e: not self._checkpoint.was_seen(getattr(e, "event_id", "")), response.chunk
            ))  # newest first, up to the first event already handled
            missed.extend(fresh)
            if len(fresh) < len(response.chunk) or not response.end or response.end == token:
                break
            token = response.end
        else:
            log.warning("matrix: more events were missed than are paged in; the oldest are not answered")
        if missed:
            log.info("matrix: paged in %d events missed in one room", len(missed))
        return list(reversed(missed))

    # -- rooms ------------------------------------------------------------------------------------

    def _homeserver_allowed(self, matrix_id: str) -> bool:
        allowed = self.options.allowed_homeservers
        return not allowed or server_name(matrix_id) in allowed

    async def _on_invite(self, room_id: str, invite_state: list[Any]) -> None:
        me = self.options.user_id
        invite = next(
            (e for e in invite_state
             if isinstance(e, InviteMemberEvent) and e.state_key == me and e.membership == "invite"),
            None,
        )
        if invite is None:
            return
        staff = room_id == self._staff_room_id or room_id == self.options.staff_room
        direct = bool(invite.content.get("is_direct"))
        if staff or (direct and self._homeserver_allowed(invite.sender)):
            response = await self.client.join(room_id)
            if isinstance(response, JoinError):
                log.warning("matrix: joining a room we were invited to failed (%s)", response.status_code)
            return
        log.info("matrix: declined an invite (%s)", "not a direct chat" if not direct else "homeserver not allowed")
        await self.client.room_leave(room_id)

    async def _join_staff_room(self) -> None:
        target = self.options.staff_room
        if not target:
            return
        if target in self.client.rooms:
            self._staff_room_id = target
            return
        response = await self.client.join(target)
        if isinstance(response, JoinResponse):
            self._staff_room_id = response.room_id
        else:
            log.error("matrix: cannot join the staff room (%s); invite the bot to it", response.status_code)

    async def open_direct_room(self, user_id: str) -> Address:
        """Create an encrypted direct chat with ``user_id`` and invite them."""
        if not self._homeserver_allowed(user_id):
            raise RecipientUnreachable("homeserver_not_allowed")
        response = await self.client.room_create(
            is_direct=True,
            invite=[user_id],
            initial_state=[{"type": "m.room.encryption", "state_key": "",
                            "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
        )
        if not isinstance(response, RoomCreateResponse):
            raise TransientDeliveryError("room_create_failed")
        return Address(PLATFORM, response.room_id)

    # -- inbound ----------------------------------------------------------------------------------

    async def _on_event(self, room: MatrixRoom, event: Any) -> None:
        event_id = getattr(event, "event_id", None)
        if not event_id or self._checkpoint.was_seen(event_id):
            return
        if event.sender == self.options.user_id:
            self._checkpoint.mark_seen(event_id)
            return
        if isinstance(event, MegolmEvent):
            await self._defer(room, event)
            return
        await self._deliver(room, event)

    def _classify(self, event: Any) -> InboundKind | None:
        """TEXT, UNSUPPORTED, or None for what is not a person's message (state, notices, edits)."""
        if isinstance(event, RoomMessageNotice):
            return None  # other bots talk in notices; answering them makes loops
        relates = event.source.get("content", {}).get("m.relates_to", {}) if hasattr(event, "source") else {}
        if isinstance(relates, dict) and relates.get("rel_type") == "m.replace":
            return None  # an edit: the original was answered already
        if isinstance(event, (RoomMessageText, RoomMessageEmote)):
            return InboundKind.TEXT
        if isinstance(event, (RoomMessageMedia, RoomEncryptedMedia, RoomMessageUnknown, StickerEvent)):
            return InboundKind.UNSUPPORTED
        if isinstance(event, BadEvent) and event.source.get("type") in ("m.room.message", "m.sticker"):
            return InboundKind.UNSUPPORTED  # a malformed message is still someone writing to us
        return None

    async def _deliver(self, room: MatrixRoom, event: Any) -> None:
        """Hand one (decrypted) event to the core, then record it as handled."""
        event_id: str = event.event_id
        kind = self._classify(event)
        if kind is None:
            self._checkpoint.mark_seen(event_id)
            return
        if not room.encrypted:
            self._checkpoint.mark_seen(event_id)
            if self.options.require_encryption:
                await self._ask_for_encryption(room, event.sender)
                return
        elif not getattr(event, "decrypted", False):
            # Anyone who controls a homeserver can put a plaintext event into an encrypted room.
            self._checkpoint.mark_seen(event_id)
            log.warning("matrix: ignored an unencrypted event in an encrypted room")
            return
        elif not self._sender_device_matches(event):
            self._checkpoint.mark_seen(event_id)
            log.warning("matrix: ignored an event whose encryption key does not match the device that claims it")
            return
        if not self._private(room):
            self._checkpoint.mark_seen(event_id)
            await self._ask_for_private_chat(room, event.sender)
            return
        text = ""
        if kind is InboundKind.TEXT:
            text = strip_reply_fallback(str(getattr(event, "body", "")))
        staff_room = self._is_staff_room(room)
        content = event.source.get("content", {}) if hasattr(event, "source") else {}
        inbound = Inbound(
            platform=PLATFORM,
            user_id=event.sender,
            address=Address(PLATFORM, room.room_id),
            kind=kind,
            text=text,
            event_id=event_id,
            in_staff_room=staff_room,
            thread_root=thread_root_of(content) if staff_room and isinstance(content, dict) else None,
        )
        handler = self._handler
        if handler is not None:
            try:
                await handler(inbound)
            except Exception as exc:  # noqa: BLE001 - the core must not take the transport down
                log.error("inbound handler failed (%s)", type(exc).__name__)
        # Recorded after handling: a crash in between re-delivers (the core dedupes by event id)
        # rather than losing the message.
        self._checkpoint.mark_seen(event_id)
        self._session.save_checkpoint(self._checkpoint)

    def _sender_device_matches(self, event: Any) -> bool:
        """The Megolm session must come from a device of the user the server names as sender."""
        olm = self.client.olm
        sender_key = getattr(event, "sender_key", None)
        if olm is None or not sender_key:
            return False
        devices = olm.device_store.active_user_devices(event.sender)
        known = list(devices)
        if not known:
            return True  # keys not queried yet: trust on first use, as for the room key itself
        return any(device.curve25519 == sender_key for device in known)

    def _is_staff_room(self, room: MatrixRoom) -> bool:
        return room.room_id in (self._staff_room_id, self.options.staff_room)

    def _private(self, room: MatrixRoom) -> bool:
        """A participant's conversation happens only between them and the bot (the staff room aside):
        if someone else joins or is invited, what the bot would say there could expose them."""
        if self._is_staff_room(room):
            return True
        return room.joined_count + room.invited_count <= 2

    async def _ask_for_private_chat(self, room: MatrixRoom, sender: str) -> None:
        if not self._private_notices.allow(room.room_id, time.monotonic()):
            return
        log.info("matrix: a message in a room with other members was not answered")
        await self._send_notice(room.room_id, "not_private", sender)

    async def _ask_for_encryption(self, room: MatrixRoom, sender: str) -> None:
        if not self._encryption_notices.allow(room.room_id, time.monotonic()):
            return
        await self._send_notice(room.room_id, "enable_encryption", sender)

    async def _send_notice(self, room_id: str, kind: str, sender: str | None) -> None:
        """A notice in the sender's language when the core knows them, else the default one."""
        language = None
        if self._language_of is not None and sender:
            try:
                language = await self._language_of(sender)
            except Exception as exc:  # noqa: BLE001 - a notice in the default language is better than none
                log.warning("matrix: could not look up a notice language (%s)", type(exc).__name__)
        text = self._notice(kind, language)
        direction = Direction.RTL if _starts_rtl(text) else Direction.LTR
        try:
            await self._room_send(room_id, render_notice(text, direction), uuid.uuid4().hex)
        except (TransientDeliveryError, PermanentDeliveryError, RecipientUnreachable) as exc:
            log.warning("matrix: could not send a %s notice (%s)", kind, exc.reason)

    # -- undecryptable events -------------------------------------------------------------------

    async def _defer(self, room: MatrixRoom, event: MegolmEvent) -> None:
        if event.event_id in self._checkpoint.pending:
            return
        source = dict(event.source)
        self._checkpoint.keep_pending(event.event_id, PendingEvent(room.room_id, source, time.time()))
        self._session.save_checkpoint(self._checkpoint)
        log.info("matrix: an event could not be decrypted yet; requesting its room key")
        try:
            await self.client.request_room_key(event)
        except LocalProtocolError:
            pass  # already requested for this session
        except _NETWORK_ERRORS:
            pass  # the grace period still runs; the key may arrive by itself

    async def _retry_pending(self) -> None:
        if not self._checkpoint.pending:
            return
        client = self.client
        now = time.time()
        for event_id, pending in list(self._checkpoint.pending.items()):
            room = client.rooms.get(pending.room_id)
            if room is None:
                del self._checkpoint.pending[event_id]
                continue
            encrypted = MegolmEvent.from_dict(pending.source)
            decrypted: Any = None
            if isinstance(encrypted, MegolmEvent):
                encrypted.room_id = pending.room_id
                try:
                    decrypted = client.decrypt_event(encrypted)
                except EncryptionError:
                    decrypted = None
            if isinstance(decrypted, (RoomMessage, StickerEvent, BadEvent)):
                del self._checkpoint.pending[event_id]
                log.info("matrix: a late room key arrived; the event is decrypted")
                await self._deliver(room, decrypted)
            elif decrypted is not None:  # decrypted, but not something a person wrote (or unparsable)
                del self._checkpoint.pending[event_id]
                self._checkpoint.mark_seen(event_id)
            elif now - pending.first_seen >= self.options.undecryptable_grace:
                del self._checkpoint.pending[event_id]
                self._checkpoint.mark_seen(event_id)
                self._session.save_checkpoint(self._checkpoint)
                if not self._unreadable_notices.allow(pending.room_id, time.monotonic()):
                    continue  # this room was just asked to send again: once covers every message
                log.info("matrix: a room key never arrived; asking for the message again")
                await self._send_notice(pending.room_id, "undecryptable", pending.source.get("sender"))

    # -- erasure ----------------------------------------------------------------------------------

    async def erase_chat(self, address: Address) -> ChatErasure:
        """``/panic``: redact every message of the chat, newest first, paging back through its
        history. The bot's own always can be; the person's only where the room lets the bot
        (usually not in a chat the person created): those count as not removed."""
        if address.platform != PLATFORM or address.value in (self._staff_room_id, self.options.staff_room):
            return ChatErasure(complete=False)
        client, room_id = self.client, address.value
        removed = failed = 0
        token = client.next_batch
        complete = False
        for _ in range(_BACKFILL_PAGES):
            response = await client.room_messages(room_id, start=token, direction=MessageDirection.back, limit=100)
            if not isinstance(response, RoomMessagesResponse):
                break
            for event in response.chunk:
                if not _redactable(event):
                    continue
                redacted = await client.room_redact(room_id, event.event_id)
                if isinstance(redacted, RoomRedactResponse):
                    removed += 1
                else:
                    failed += 1
            if not response.chunk or not response.end or response.end == token:
                complete = True  # the beginning of the room
                break
            token = response.end
        log.info("matrix: cleared a chat on request (%d removed, %d not)", removed, failed)
        return ChatErasure(removed=removed, failed=failed, complete=complete)

    async def forget(self, address: Address) -> None:
        """A person was erased: leave and forget their room, and drop every key, session and
        device record that concerned it or anyone the bot no longer shares a room with.

        Raises TransientDeliveryError when the homeserver cannot be told now (the caller retries).
        The staff room is never left."""
        if address.platform != PLATFORM or address.value in (self._staff_room_id, self.options.staff_room):
            return
        if self._client is None or not self._ready.is_set():
            raise TransientDeliveryError("not_ready")
        client, room_id = self._client, address.value
        try:
            for step in (client.room_leave, client.room_forget):
                response = await step(room_id)
                if isinstance(response, ErrorResponse) and (
                        response.status_code == "M_LIMIT_EXCEEDED"
                        or (getattr(getattr(response, "transport_response", None), "status", 0) or 0) >= 500):
                    raise TransientDeliveryError("homeserver_busy")
                # Any other refusal means the bot is not (or no longer) in that room: nothing to leave.
        except _NETWORK_ERRORS as exc:
            raise TransientDeliveryError("homeserver_unreachable") from exc
        client.rooms.pop(room_id, None)
        client.invited_rooms.pop(room_id, None)
        client.encrypted_rooms.discard(room_id)
        for event_id in [e for e, p in self._checkpoint.pending.items() if p.room_id == room_id]:
            del self._checkpoint.pending[event_id]
            self._checkpoint.mark_seen(event_id)
        self._session.save_checkpoint(self._checkpoint)
        async with self._keys_lock:
            forget_room(client, room_id)
        log.info("matrix: left and forgot an erased person's room")

    # -- outbound -------------------------------------------------------------------------------

    def _room_for_sending(self, address: Address) -> MatrixRoom:
        if address.platform != PLATFORM:
            raise PermanentDeliveryError("wrong_platform")
        if self._client is None or not self._ready.is_set():
            raise TransientDeliveryError("not_ready")
        room = self._client.rooms.get(address.value)
        if room is None:
            raise RecipientUnreachable("not_in_room")
        if self.options.require_encryption and not room.encrypted:
            raise PermanentDeliveryError("room_not_encrypted")
        if room.joined_count <= 1 and room.invited_count == 0:
            raise RecipientUnreachable("room_empty")
        if not self._private(room):
            raise RecipientUnreachable("room_not_private")
        return room

    async def edit(self, address: Address, message_id: str, message: Outbound) -> Delivery:
        """An ``m.replace`` of an earlier message (its first part); nio sends the relation unencrypted,
        as clients need it to show the edit in place. Older clients see the ``* text`` fallback."""
        room = self._room_for_sending(address)
        new_content = render_messages(message)[0]
        content = {
            "msgtype": new_content["msgtype"],
            "body": f"* {new_content['body']}",
            "format": new_content["format"],
            "formatted_body": f"* {new_content['formatted_body']}",
            "m.new_content": new_content,
            "m.relates_to": {"rel_type": "m.replace", "event_id": message_id},
        }
        await self._room_send(room.room_id, content, uuid.uuid4().hex)
        return Delivery(message_id=message_id)  # later edits still replace the original event

    async def send(self, address: Address, message: Outbound, options: SendOptions | None = None) -> Delivery:
        """Send one message; the transaction id makes a resend of the same outbox row a no-op."""
        room = self._room_for_sending(address)
        txn_id = options.transaction_id if options and options.transaction_id else uuid.uuid4().hex
        event_id = ""
        for index, content in enumerate(render_messages(message)):
            # One transaction id per part: a resend after a crash repeats none of them.
            event_id = await self._room_send(room.room_id, content, txn_id if index == 0 else f"{txn_id}-{index}")
        if message.image is not None:
            content = await self._image_content(message.image, message.image_name, room.encrypted)
            event_id = await self._room_send(room.room_id, content, f"{txn_id}-image")
        return Delivery(message_id=event_id)

    async def _image_content(self, image: bytes, name: str, encrypted: bool) -> JsonDict:
        """Upload a PNG (encrypted for an encrypted room: the homeserver stores only ciphertext)."""
        response, keys = await self.client.upload(
            io.BytesIO(image), content_type="image/png", filename=name, encrypt=encrypted, filesize=len(image)
        )
        if not isinstance(response, UploadResponse):
            raise _delivery_error(response)
        info: JsonDict = {"mimetype": "image/png", "size": len(image)}
        if image[:8] == b"\x89PNG\r\n\x1a\n" and len(image) >= 24:
            info["w"], info["h"] = int.from_bytes(image[16:20], "big"), int.from_bytes(image[20:24], "big")
        content: JsonDict = {"msgtype": "m.image", "body": name, "info": info}
        if encrypted and keys is not None:
            content["file"] = {"url": response.content_uri, "mimetype": "image/png", **keys}
        else:
            content["url"] = response.content_uri
        return content

    async def _room_send(self, room_id: str, content: JsonDict, txn_id: str) -> str:
        client = self.client
        deadline = time.monotonic() + self.options.send_retry_budget
        backoff = _Backoff(self.options.backoff_initial, self.options.backoff_max)
        while True:
            try:
                if client.should_query_keys:
                    async with self._keys_lock:
                        if client.should_query_keys:
                            await client.keys_query()
                response = await client.room_send(
                    room_id, "m.room.message", dict(content), tx_id=txn_id, ignore_unverified_devices=True
                )
            except _NETWORK_ERRORS as exc:
                delay = backoff.next()
                if time.monotonic() + delay > deadline:
                    raise TransientDeliveryError("homeserver_unreachable") from exc
                await asyncio.sleep(delay)
                continue
            except (LocalProtocolError, SendRetryError, EncryptionError) as exc:
                raise TransientDeliveryError("encryption_not_ready") from exc
            if isinstance(response, RoomSendResponse):
                return str(response.event_id)
            raise _delivery_error(response)


def _redactable(event: Any) -> bool:
    """Something a person or the bot said (not room state), not redacted already."""
    source = getattr(event, "source", {}) or {}
    if source.get("type") not in ("m.room.message", "m.room.encrypted", "m.sticker", "m.reaction"):
        return False
    return not (source.get("unsigned") or {}).get("redacted_because")


def _delivery_error(response: ErrorResponse) -> Exception:
    code = response.status_code or ""
    status = getattr(getattr(response, "transport_response", None), "status", 0) or 0
    if code == "M_LIMIT_EXCEEDED":
        return TransientDeliveryError("rate_limited", retry_after=(response.retry_after_ms or 5000) / 1000)
    if code == "M_FORBIDDEN":
        return RecipientUnreachable("forbidden")
    if code in ("M_TOO_LARGE", "M_BAD_JSON", "M_NOT_JSON", "M_INVALID_PARAM"):
        return PermanentDeliveryError(code.lower())
    if status >= 500 or status == 0:
        return TransientDeliveryError("server_error")
    return PermanentDeliveryError(code.lower() or f"http_{status}")


def _starts_rtl(text: str) -> bool:
    """Whether the first strong character is right-to-left (Arabic, Hebrew, Sorani script)."""
    import unicodedata

    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            return True
        if kind == "L":
            return False
    return False


def from_settings(settings: Any, keys: KeySealer, i18n: Any, language_of: LanguageOf | None = None,
                  **overrides: Any) -> MatrixTransport:
    """Build from ``bot.config.Settings`` (the ``matrix`` and ``staff`` sections).

    The transport's own notices (enable encryption, could not decrypt) come from
    ``bot.core.notices`` so every transport shares one localized wording.
    """
    from bot.core.notices import notice as core_notice

    overrides.setdefault("undecryptable_grace", settings.matrix.undecryptable_grace_seconds)
    options = MatrixOptions.from_settings(settings.matrix, staff_room=settings.staff.matrix_room, **overrides)

    def notice(kind: str, language: str | None) -> str:
        return core_notice(i18n.translator(language), kind)

    return MatrixTransport(options, keys, notice, language_of)
