"""A local Telegram Bot API server for the test suite (aiohttp, 127.0.0.1, a free port).

It speaks the real HTTP API, so python-telegram-bot runs unmodified against it through
``base_url = server.base_url``: long polling with offsets, sends with Telegram's limits and
error texts, edits, callback answers, commands, webhooks (delivered by POST with the secret
header), uploads. Simulated people (:class:`SimUser`) post messages and press buttons;
tests read what the bot sent, with timestamps, and inject faults (:mod:`botapi_faults`).

Deliberate differences from Telegram: webhooks may be plain ``http://`` on loopback, and a
few error texts Telegram does not document are marked ``# unverified text``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from botapi_faults import (
    BLOCKED,
    SEND_METHODS,
    ApiError,
    Fault,
    FaultPlan,
    methods,
    too_many_requests,
)
from botapi_html import HtmlParseError, parse_html, utf16_len

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
DEFAULT_TOKEN = "7000000001:AAH-local-test-token-do-not-log-Zq9"
_EXCLUDED_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
_QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


@dataclass
class ApiCall:
    """One request the bot made: method (as sent), arrival time, parameters without uploads."""

    method: str
    at: float
    params: dict[str, Any]
    chat_id: int | None
    status: int = 200


@dataclass
class SentMessage:
    """A message the bot sent; ``message`` is the live Bot API object (edits applied)."""

    chat_id: int
    message_id: int
    method: str
    at: float
    message: dict[str, Any]
    parse_mode: str | None
    upload: bytes | None = None
    deleted: bool = False
    edits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return str(self.message.get("text") or self.message.get("caption") or "")

    @property
    def protected(self) -> bool:
        return bool(self.message.get("has_protected_content"))

    @property
    def keyboard(self) -> list[list[dict[str, Any]]]:
        markup = self.message.get("reply_markup") or {}
        return list(markup.get("inline_keyboard") or [])

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [button for row in self.keyboard for button in row]

    @property
    def labels(self) -> list[str]:
        return [str(button["text"]) for button in self.buttons]


class SimUser:
    """A simulated Telegram user who writes to the bot and presses its buttons."""

    def __init__(self, api: LocalBotApi, user_id: int, first_name: str, language_code: str | None) -> None:
        self.api = api
        self.id = user_id
        self.first_name = first_name
        self.language_code = language_code

    def as_dict(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.language_code:
            user["language_code"] = self.language_code
        return user

    @property
    def chat(self) -> dict[str, Any]:
        return {"id": self.id, "type": "private", "first_name": self.first_name}

    def say(self, text: str, chat: dict[str, Any] | None = None) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split()[0]
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]
        return self.api.post_message(self, chat or self.chat, content)

    def send_sticker(self, chat: dict[str, Any] | None = None) -> dict[str, Any]:
        sticker = {**self.api.file_stub(), "type": "regular", "width": 512, "height": 512,
                   "is_animated": False, "is_video": False, "emoji": "\U0001f44d"}
        return self.api.post_message(self, chat or self.chat, {"sticker": sticker})

    def send_photo(self, caption: str | None = None, chat: dict[str, Any] | None = None) -> dict[str, Any]:
        sizes = [{**self.api.file_stub(), "width": w, "height": w, "file_size": w * 40} for w in (90, 320, 1280)]
        content: dict[str, Any] = {"photo": sizes}
        if caption:
            content["caption"] = caption
        return self.api.post_message(self, chat or self.chat, content)

    def send_voice(self) -> dict[str, Any]:
        voice = {**self.api.file_stub(), "duration": 4, "mime_type": "audio/ogg", "file_size": 9000}
        return self.api.post_message(self, self.chat, {"voice": voice})

    def send_document(self, file_name: str = "report.pdf") -> dict[str, Any]:
        document = {**self.api.file_stub(), "file_name": file_name, "mime_type": "application/pdf"}
        return self.api.post_message(self, self.chat, {"document": document})

    def send_video(self) -> dict[str, Any]:
        video = {**self.api.file_stub(), "width": 640, "height": 360, "duration": 3}
        return self.api.post_message(self, self.chat, {"video": video})

    def send_location(self, latitude: float = 36.2, longitude: float = 37.15) -> dict[str, Any]:
        return self.api.post_message(self, self.chat, {"location": {"latitude": latitude, "longitude": longitude}})

    def send_contact(self, phone_number: str = "+963000000000") -> dict[str, Any]:
        contact = {"phone_number": phone_number, "first_name": "Someone"}
        return self.api.post_message(self, self.chat, {"contact": contact})

    def press(self, sent: SentMessage, index: int | None = None, *, label: str | None = None,
              data: str | None = None) -> str:
        """Press a button of ``sent`` (by index or label), or send forged ``data`` from it."""
        if data is None:
            buttons = sent.buttons
            if label is not None:
                matching = [b for b in buttons if b["text"] == label]
                if not matching:
                    raise LookupError("no button with that label")
                button = matching[0]
            else:
                button = buttons[index or 0]
            data = str(button["callback_data"])
        return self.api.post_callback_query(self, sent, data)


class RateLimits:
    """Telegram's sending limits, judged on this server's clock: a send that would exceed one
    is refused with 429 and counted in ``refused``."""

    def __init__(self, overall: int = 30, chat_interval: float = 1.0, group_messages: int = 20,
                 group_period: float = 60.0) -> None:
        self.overall, self.chat_interval = overall, chat_interval
        self.group_messages, self.group_period = group_messages, group_period
        self.refused = 0
        self._recent: deque[float] = deque()
        self._chats: dict[int, deque[float]] = {}

    def check(self, chat_id: int, at: float) -> None:
        while self._recent and self._recent[0] <= at - 1.0:
            self._recent.popleft()
        sent = self._chats.setdefault(chat_id, deque())
        group = chat_id < 0
        period, size = (self.group_period, self.group_messages) if group else (self.chat_interval, 1)
        while sent and sent[0] <= at - period:
            sent.popleft()
        if len(self._recent) >= self.overall or len(sent) >= size:
            self.refused += 1
            raise too_many_requests(1)
        self._recent.append(at)
        sent.append(at)


class LocalBotApi:
    """The server. ``await start()``, hand ``base_url`` and ``token`` to the bot, ``await close()``."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, bot_username: str = "civicbot_local_bot",
                 enforce_limits: bool = False) -> None:
        """``enforce_limits``: answer 429 to sends beyond Telegram's limits (30 a second overall,
        one a second per private chat, 20 a minute per group), measured at arrival."""
        self.token = token
        self.limits = RateLimits() if enforce_limits else None
        self.bot_user = {
            "id": int(token.split(":", 1)[0]), "is_bot": True, "first_name": "Local test bot",
            "username": bot_username, "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False, "can_connect_to_business": False, "has_main_web_app": False,
        }
        self.calls: list[ApiCall] = []
        self.sent: list[SentMessage] = []
        self.faults = FaultPlan()
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.downloads: list[str] = []
        self.webhook_deliveries: list[tuple[int, int]] = []  # (update_id, http status)
        self.webhook_attempts = 0  # POSTs begun (a delivery is recorded once its answer is in)
        self.fetched: list[int] = []  # update ids handed out by getUpdates, in order
        self._chats: dict[int, dict[str, Any]] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._records: dict[tuple[int, int], SentMessage] = {}
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(410_000_001)
        self._user_ids = itertools.count(0)
        self._file_ids = itertools.count(1)
        self._callback_ids = itertools.count(5_550_000_000_000_001, 7919)
        self._pending_queries: set[str] = set()
        self._allowed_updates: list[str] = []
        self._poll_generation = 0
        self._changed = asyncio.Event()
        self._closing = False
        self._revoked = False
        self._webhook: dict[str, Any] = {"url": ""}
        self._webhook_task: asyncio.Task[None] | None = None
        self._client: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("GET", "/file/bot{token}/{path:.*}", self._download)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def revoke_token(self) -> None:
        """As @BotFather's /revoke: every call with the old token gets 401 from now on, long polls included."""
        self._revoked = True
        self.token = f"{self.token}-revoked"
        self._bump()

    async def close(self) -> None:
        self._closing = True
        self._bump()
        if self._webhook_task:
            self._webhook_task.cancel()
            await asyncio.gather(self._webhook_task, return_exceptions=True)
        if self._client:
            await self._client.close()
        if self._runner:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    # ------------------------------------------------------------------ people and chats
    def user(self, language_code: str | None = "en", first_name: str = "Test") -> SimUser:
        user_id = 7_310_000_000 + next(self._user_ids) * 7_919 + 17
        user = SimUser(self, user_id, first_name, language_code)
        self._chats[user_id] = user.chat
        return user

    def group(self, chat_id: int = -1_001_234_567_890, title: str = "Staff room") -> dict[str, Any]:
        chat = {"id": chat_id, "type": "supergroup", "title": title}
        self._chats[chat_id] = chat
        return chat

    def block(self, user: SimUser | int) -> Fault:
        """From now on every send to this person answers 403 "bot was blocked by the user"."""
        chat_id = user.id if isinstance(user, SimUser) else user
        return self.faults.add(Fault(BLOCKED, chat_id=chat_id, times=None))

    def user_blocks_bot(self, user: SimUser) -> dict[str, Any]:
        """What Telegram does when a person blocks the bot: sends refused from now on, and a
        ``my_chat_member`` update (status "kicked") for their private chat."""
        self.block(user)
        bot = {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}
        return self._push({"my_chat_member": {
            "chat": user.chat, "from": user.as_dict(), "date": int(time.time()),
            "old_chat_member": {"user": bot, "status": "member"},
            "new_chat_member": {"user": bot, "status": "kicked", "until_date": 0},
        }})

    def fail(self, error: ApiError | None, *, method: Iterable[str] | str | None = None,
             chat_id: int | None = None, times: int | None = 1, delay: float = 0.0) -> Fault:
        """Answer the next ``times`` matching calls with ``error`` (``None``: only delay them)."""
        return self.faults.add(Fault(error, methods(method), chat_id, times, delay))

    def flood_wait(self, retry_after: int, *, times: int = 1, method: str | None = None) -> Fault:
        return self.fail(too_many_requests(retry_after), method=method, times=times)

    def file_stub(self) -> dict[str, Any]:
        n = next(self._file_ids)
        return {"file_id": f"AgACAgIAAxkBAAI{n:08d}", "file_unique_id": f"AQAD{n:06d}"}

    # ------------------------------------------------------------------ updates from people
    def post_message(self, user: SimUser, chat: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
        self._chats.setdefault(int(chat["id"]), chat)
        message = {"message_id": self._next_message_id(int(chat["id"])), "from": user.as_dict(),
                   "chat": chat, "date": int(time.time()), **content}
        self._messages[(int(chat["id"]), message["message_id"])] = message
        self._push({"message": message})
        return message

    def post_callback_query(self, user: SimUser, sent: SentMessage, data: str) -> str:
        query_id = str(next(self._callback_ids))
        self._pending_queries.add(query_id)
        query = {"id": query_id, "from": user.as_dict(), "message": json.loads(json.dumps(sent.message)),
                 "chat_instance": f"-{sent.chat_id % 1_000_003}0042", "data": data}
        self._push({"callback_query": query})
        return query_id

    def post_update(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue any update body (without ``update_id``), e.g. a raw ``edited_message``."""
        return self._push(payload)

    def _push(self, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **payload}
        self._updates.append(update)
        self._bump()
        return update

    @property
    def pending_updates(self) -> int:
        return len(self._updates)

    # ------------------------------------------------------------------ reading what the bot did
    def sent_to(self, chat_id: int) -> list[SentMessage]:
        return [s for s in self.sent if s.chat_id == chat_id and not s.deleted]

    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("condition not reached on the local Bot API server")
            event = self._changed
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                continue

    async def wait_for_messages(self, chat_id: int, count: int = 1, timeout: float = 5.0) -> list[SentMessage]:
        """Wait until the bot has sent ``count`` messages (in total) to ``chat_id``; return them all."""
        await self.wait_for(lambda: len(self.sent_to(chat_id)) >= count, timeout)
        return self.sent_to(chat_id)

    async def next_messages(self, chat_id: int, after: int, count: int = 1,
                            timeout: float = 5.0) -> list[SentMessage]:
        """The ``count`` messages sent to ``chat_id`` after the first ``after`` ones."""
        messages = await self.wait_for_messages(chat_id, after + count, timeout)
        return messages[after:after + count]

    def _bump(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _reply(ApiError(401, "Unauthorized").body(), 401)
        method = request.match_info["method"]
        params = await _read_params(request)
        chat_id = _maybe_int(params.get("chat_id"))
        call = ApiCall(method, time.monotonic(),
                       {k: v for k, v in params.items() if not isinstance(v, bytes)}, chat_id)
        self.calls.append(call)
        handler = getattr(self, f"_m_{method.lower()}", None)
        try:
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            if self.limits is not None and method.lower() in SEND_METHODS and chat_id is not None:
                self.limits.check(chat_id, call.at)
            fault = self.faults.take(method.lower(), chat_id)
            if fault is not None:
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.error is not None:
                    raise fault.error
            result = await handler(params, call)
        except ApiError as error:
            call.status = error.status
            self._bump()
            return _reply(error.body(), error.status)
        self._bump()
        return _reply({"ok": True, "result": result}, 200)

    async def _download(self, request: web.Request) -> web.Response:
        self.downloads.append(request.match_info["path"])
        self._bump()
        return web.Response(body=b"\x89PNG\r\n")

    # ------------------------------------------------------------------ methods
    async def _m_getme(self, p: dict[str, Any], call: ApiCall) -> Any:
        return self.bot_user

    async def _m_close(self, p: dict[str, Any], call: ApiCall) -> Any:
        return True

    async def _m_logout(self, p: dict[str, Any], call: ApiCall) -> Any:
        return True

    async def _m_getupdates(self, p: dict[str, Any], call: ApiCall) -> Any:
        if self._webhook["url"]:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        offset = _int(p, "offset", 0)
        limit = min(max(_int(p, "limit", 100), 1), 100)
        timeout = max(_int(p, "timeout", 0), 0)
        if "allowed_updates" in p:
            self._allowed_updates = list(_json(p, "allowed_updates") or [])
        self._confirm(offset)
        self._poll_generation += 1
        generation = self._poll_generation
        self._bump()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ready = [u for u in self._updates if u["update_id"] >= offset][:limit]
            if self._revoked:
                raise ApiError(401, "Unauthorized")
            if ready or loop.time() >= deadline or self._closing:
                self.fetched.extend(u["update_id"] for u in ready)
                return ready
            if generation != self._poll_generation:
                raise ApiError(409, "Conflict: terminated by other getUpdates request; "
                                    "make sure that only one bot instance is running")
            event = self._changed
            try:
                await asyncio.wait_for(event.wait(), deadline - loop.time())
            except TimeoutError:
                pass

    def _confirm(self, offset: int) -> None:
        if offset < 0:
            self._updates = self._updates[offset:]
        elif offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        self._updates = [u for u in self._updates if self._wanted(u)]

    def _wanted(self, update: dict[str, Any]) -> bool:
        kind = next(k for k in update if k != "update_id")
        if self._allowed_updates:
            return kind in self._allowed_updates
        return kind not in _EXCLUDED_BY_DEFAULT

    async def _m_setwebhook(self, p: dict[str, Any], call: ApiCall) -> Any:
        url = str(p.get("url") or "")
        secret = p.get("secret_token")
        if secret is not None and not _valid_secret(str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")  # unverified text
        if url and not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        if _bool(p, "drop_pending_updates"):
            self._updates.clear()
        if "allowed_updates" in p:
            self._allowed_updates = list(_json(p, "allowed_updates") or [])
        self._webhook = {"url": url, "secret_token": secret, "max_connections": _int(p, "max_connections", 40)}
        self._restart_webhook_delivery()
        return True

    async def _m_deletewebhook(self, p: dict[str, Any], call: ApiCall) -> Any:
        if _bool(p, "drop_pending_updates"):
            self._updates.clear()
        self._webhook = {"url": ""}
        self._restart_webhook_delivery()
        return True

    async def _m_getwebhookinfo(self, p: dict[str, Any], call: ApiCall) -> Any:
        info: dict[str, Any] = {"url": self._webhook["url"], "has_custom_certificate": False,
                                "pending_update_count": len(self._updates)}
        if self._webhook["url"]:
            info["max_connections"] = self._webhook["max_connections"]
            info["ip_address"] = "127.0.0.1"
            if self._allowed_updates:
                info["allowed_updates"] = self._allowed_updates
            if "last_error_message" in self._webhook:
                info["last_error_date"] = self._webhook["last_error_date"]
                info["last_error_message"] = self._webhook["last_error_message"]
        return info

    async def _m_sendmessage(self, p: dict[str, Any], call: ApiCall) -> Any:
        chat = self._chat(p)
        raw = p.get("text")
        if raw is None or str(raw) == "":
            raise ApiError(400, "Bad Request: message text is empty")
        text, entities = _formatted(str(raw), p.get("parse_mode"), p, "entities")
        if not text:
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        if "link_preview_options" in p:
            content["link_preview_options"] = _json(p, "link_preview_options")
        return self._store_bot_message("sendMessage", chat, content, p, call)

    async def _m_sendphoto(self, p: dict[str, Any], call: ApiCall) -> Any:
        chat = self._chat(p)
        upload = _upload(p, "photo")
        if upload is None:
            raise ApiError(400, "Bad Request: there is no photo in the request")
        sizes = [{**self.file_stub(), "width": w, "height": w, "file_size": len(upload)} for w in (90, 320)]
        content: dict[str, Any] = {"photo": sizes, **self._caption(p)}
        return self._store_bot_message("sendPhoto", chat, content, p, call, upload)

    async def _m_senddocument(self, p: dict[str, Any], call: ApiCall) -> Any:
        chat = self._chat(p)
        upload = _upload(p, "document")
        if upload is None:
            raise ApiError(400, "Bad Request: there is no document in the request")
        document = {**self.file_stub(), "file_name": str(p.get("_filename_document") or "file"),
                    "file_size": len(upload)}
        content: dict[str, Any] = {"document": document, **self._caption(p)}
        return self._store_bot_message("sendDocument", chat, content, p, call, upload)

    async def _m_sendchataction(self, p: dict[str, Any], call: ApiCall) -> Any:
        self._chat(p)
        return True

    async def _m_editmessagetext(self, p: dict[str, Any], call: ApiCall) -> Any:
        record, message = self._editable(p)
        if "text" not in message:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        raw = str(p.get("text") or "")
        text, entities = _formatted(raw, p.get("parse_mode"), p, "entities")
        if not text:
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        markup = _markup(p)
        if (text == message["text"] and entities == message.get("entities", [])
                and markup == message.get("reply_markup")):
            raise ApiError(400, _NOT_MODIFIED)
        message["text"] = text
        _set_or_drop(message, "entities", entities or None)
        _set_or_drop(message, "reply_markup", markup)
        return self._edited(record, message)

    async def _m_editmessagereplymarkup(self, p: dict[str, Any], call: ApiCall) -> Any:
        record, message = self._editable(p)
        markup = _markup(p)
        if markup == message.get("reply_markup"):
            raise ApiError(400, _NOT_MODIFIED)
        _set_or_drop(message, "reply_markup", markup)
        return self._edited(record, message)

    async def _m_deletemessage(self, p: dict[str, Any], call: ApiCall) -> Any:
        chat = self._chat(p)
        key = (int(chat["id"]), _int(p, "message_id", 0))
        if self._messages.pop(key, None) is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        if key in self._records:
            self._records[key].deleted = True
        return True

    async def _m_answercallbackquery(self, p: dict[str, Any], call: ApiCall) -> Any:
        query_id = str(p.get("callback_query_id") or "")
        if query_id not in self._pending_queries:
            raise ApiError(400, _QUERY_TOO_OLD)
        self._pending_queries.discard(query_id)
        self.callback_answers[query_id] = {k: v for k, v in p.items() if k != "callback_query_id"}
        return True

    async def _m_setmycommands(self, p: dict[str, Any], call: ApiCall) -> Any:
        commands = _json(p, "commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: commands must be an array of at most 100 BotCommand")
        for command in commands:
            name = str(command.get("command", ""))
            if not (1 <= len(name) <= 32) or not all(c.islower() or c.isdigit() or c == "_" for c in name) \
                    or not name.isascii():
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not (1 <= len(str(command.get("description", ""))) <= 256):
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")  # unverified text
        self.commands[self._commands_key(p)] = [
            {"command": str(c["command"]), "description": str(c["description"])} for c in commands
        ]
        return True

    async def _m_getmycommands(self, p: dict[str, Any], call: ApiCall) -> Any:
        return self.commands.get(self._commands_key(p), [])

    async def _m_deletemycommands(self, p: dict[str, Any], call: ApiCall) -> Any:
        self.commands.pop(self._commands_key(p), None)
        return True

    async def _m_getfile(self, p: dict[str, Any], call: ApiCall) -> Any:
        file_id = str(p.get("file_id") or "")
        return {"file_id": file_id, "file_unique_id": "AQADxx", "file_size": 9000,
                "file_path": f"documents/{file_id}.bin"}

    # ------------------------------------------------------------------ helpers
    def _chat(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id = _maybe_int(p.get("chat_id"))
        chat = self._chats.get(chat_id) if chat_id is not None else None
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    def _caption(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("caption"):
            return {}
        caption, entities = _formatted(str(p["caption"]), p.get("parse_mode"), p, "caption_entities")
        if len(caption) > MAX_CAPTION:
            raise ApiError(400, "Bad Request: message caption is too long")
        content: dict[str, Any] = {"caption": caption}
        if entities:
            content["caption_entities"] = entities
        return content

    def _next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    def _store_bot_message(self, method: str, chat: dict[str, Any], content: dict[str, Any],
                           p: dict[str, Any], call: ApiCall, upload: bytes | None = None) -> dict[str, Any]:
        markup = _markup(p)
        chat_id = int(chat["id"])
        message: dict[str, Any] = {"message_id": self._next_message_id(chat_id), "from": self.bot_user,
                                   "chat": chat, "date": int(time.time()), **content}
        if markup:
            message["reply_markup"] = markup
        if _bool(p, "protect_content"):
            message["has_protected_content"] = True
        self._messages[(chat_id, message["message_id"])] = message
        record = SentMessage(chat_id, message["message_id"], method, call.at, message,
                             _str_or_none(p.get("parse_mode")), upload)
        self._records[(chat_id, message["message_id"])] = record
        self.sent.append(record)
        return message

    def _editable(self, p: dict[str, Any]) -> tuple[SentMessage | None, dict[str, Any]]:
        if p.get("inline_message_id"):
            raise ApiError(400, "Bad Request: MESSAGE_ID_INVALID")
        chat = self._chat(p)
        key = (int(chat["id"]), _int(p, "message_id", 0))
        message = self._messages.get(key)
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if message.get("from", {}).get("id") != self.bot_user["id"]:
            raise ApiError(400, "Bad Request: message can't be edited")
        return self._records.get(key), message

    def _edited(self, record: SentMessage | None, message: dict[str, Any]) -> dict[str, Any]:
        message["edit_date"] = int(time.time())
        if record is not None:
            record.edits.append(json.loads(json.dumps(message)))
        return message

    def _commands_key(self, p: dict[str, Any]) -> tuple[str, str]:
        scope = _json(p, "scope") or {"type": "default"}
        language = str(p.get("language_code") or "")
        if language and not (len(language) == 2 and language.isalpha() and language.isascii()):
            raise ApiError(400, "Bad Request: LANG_CODE_INVALID")  # unverified text
        return json.dumps(scope, sort_keys=True), language

    def _restart_webhook_delivery(self) -> None:
        if self._webhook_task:
            self._webhook_task.cancel()
            self._webhook_task = None
        if self._webhook["url"]:
            self._webhook_task = asyncio.get_running_loop().create_task(self._deliver_webhooks())

    async def _deliver_webhooks(self) -> None:
        """POST pending updates to the webhook one by one, retrying failures like Telegram."""
        if self._client is None:
            self._client = aiohttp.ClientSession()
        url = self._webhook["url"]
        headers = {"Content-Type": "application/json"}
        if self._webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = str(self._webhook["secret_token"])
        while True:
            pending = [u for u in self._updates if self._wanted(u)]
            if not pending:
                event = self._changed
                await event.wait()
                continue
            update = pending[0]
            self.webhook_attempts += 1
            try:
                async with self._client.post(url, data=json.dumps(update), headers=headers,
                                             timeout=aiohttp.ClientTimeout(total=5)) as response:
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = 0
                self._webhook["last_error_message"] = f"Connection failed: {type(exc).__name__}"
            self.webhook_deliveries.append((update["update_id"], status))
            if 200 <= status < 300:
                self._updates.remove(update)
            else:
                if status:
                    self._webhook["last_error_message"] = f"Wrong response from the webhook: {status}"
                self._webhook["last_error_date"] = int(time.time())
                await asyncio.sleep(0.05)
            self._bump()


# ---------------------------------------------------------------------- parameter parsing
async def _read_params(request: web.Request) -> dict[str, Any]:
    """Bot API parameters arrive as query string, urlencoded or multipart form, or JSON."""
    params: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return params
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
        return params
    form = await request.post()
    for key, value in form.items():
        if isinstance(value, web.FileField):
            params[key] = value.file.read()
            params[f"_filename_{key}"] = value.filename
        else:
            params[key] = value
    return params


def _maybe_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _int(p: dict[str, Any], key: str, default: int) -> int:
    value = _maybe_int(p.get(key))
    return default if value is None else value


def _bool(p: dict[str, Any], key: str) -> bool:
    value = p.get(key)
    if isinstance(value, str):
        return value.lower() in ("true", "1")
    return bool(value)


def _json(p: dict[str, Any], key: str) -> Any:
    value = p.get(key)
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ApiError(400, f"Bad Request: can't parse {key} JSON object") from exc
    return value


def _str_or_none(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _upload(p: dict[str, Any], key: str) -> bytes | None:
    value = p.get(key)
    if isinstance(value, str) and value.startswith("attach://"):
        value = p.get(value.removeprefix("attach://"))
    if isinstance(value, bytes) and value:
        return value
    return None


def _formatted(raw: str, parse_mode: Any, p: dict[str, Any], entities_key: str) -> tuple[str, list[dict[str, Any]]]:
    mode = _str_or_none(parse_mode)
    if mode is None:
        entities = _json(p, entities_key) or []
        return _trim(raw, list(entities))
    if mode.lower() != "html":
        raise ApiError(400, "Bad Request: unsupported parse_mode")
    try:
        text, entities = parse_html(raw)
    except HtmlParseError as exc:
        raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from exc
    return _trim(text, entities)


def _trim(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram drops leading and trailing whitespace and clips entities to what remains."""
    stripped = text.strip(" \t\r\n")
    if stripped == text:
        return text, entities
    shift = utf16_len(text[:len(text) - len(text.lstrip(" \t\r\n"))])
    limit = utf16_len(stripped)
    clipped = []
    for entity in entities:
        start = max(int(entity["offset"]) - shift, 0)
        end = min(int(entity["offset"]) + int(entity["length"]) - shift, limit)
        if end > start:
            clipped.append({**entity, "offset": start, "length": end - start})
    return stripped, clipped


def _markup(p: dict[str, Any]) -> dict[str, Any] | None:
    markup = _json(p, "reply_markup")
    if not markup:
        return None
    for row in markup.get("inline_keyboard") or []:
        for button in row:
            if not str(button.get("text") or ""):
                raise ApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard")
            data = button.get("callback_data")
            if data is not None and not (1 <= len(str(data).encode("utf-8")) <= MAX_CALLBACK_DATA):
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
            if data is None and not any(k in button for k in ("url", "login_url", "switch_inline_query",
                                                               "web_app", "copy_text", "pay")):
                raise ApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard")
    return dict(markup)


def _set_or_drop(message: dict[str, Any], key: str, value: Any) -> None:
    if value:
        message[key] = value
    else:
        message.pop(key, None)


def _valid_secret(secret: str) -> bool:
    return 1 <= len(secret) <= 256 and all(c.isascii() and (c.isalnum() or c in "_-") for c in secret)


def _reply(body: dict[str, Any], status: int) -> web.Response:
    return web.json_response(body, status=status)


__all__ = ["SEND_METHODS", "ApiCall", "LocalBotApi", "SentMessage", "SimUser"]
