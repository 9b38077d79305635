"""The Telegram transport, on python-telegram-bot 22's ``Application``.

It only maps: updates become :class:`Inbound` events, :class:`Outbound` messages become
sends. Every wording comes from the core. Updates are acknowledged to Telegram (the polling
offset, the webhook's 200) only once handled (:mod:`telegram_ack`), so a crash loses none.
Privacy: Telegram can read these chats, so the bot keeps as little as it can — nothing sent to it is downloaded, and logs carry neither
message text nor chat or user ids nor the token (httpx logs full URLs, which contain the
token, so its loggers are raised to WARNING here).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal
from urllib.parse import urlsplit

from telegram import (
    BotCommand,
    CallbackQuery,
    InlineKeyboardMarkup,
    InputFile,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ParseMode, UpdateType
from telegram.error import BadRequest, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationBuilder

from bot.core.model import Address, Capabilities, Delivery, Inbound, Outbound, SendOptions
from bot.core.transport import (
    ChatErasure,
    InboundHandler,
    PermanentDeliveryError,
    TransientDeliveryError,
    TransportStartupError,
)
from bot.transports.telegram_ack import AckTracker
from bot.transports.telegram_delivery import RetryPolicy, call_telegram
from bot.transports.telegram_dispatch import ChatQueues, Job
from bot.transports.telegram_http import BotApiSender
from bot.transports.telegram_mapping import (
    TELEGRAM,
    CallbackDataTooLong,
    Part,
    chosen_label,
    closed_prompt_text,
    inbound_from_callback,
    inbound_from_member_update,
    inbound_from_message,
    render,
)
from bot.transports.telegram_polling import PollingGaveUp, PollingWatch
from bot.transports.telegram_ratelimit import TelegramRateLimiter
from bot.transports.telegram_recent import RecentMessages
from bot.transports.telegram_webhook import WebhookReceiver, valid_secret

log = logging.getLogger(__name__)

_WINDOW = 100  # the most updates one getUpdates call returns
# While updates are being handled, each poll hands all of them out again and returns at once
# (they are confirmed only once handled), so reading them again is most of a busy poll's cost. The
# poller asks again once half of those in flight finished (the batch refills before it runs dry),
# at most every _REPOLL_SECONDS and at least every _REPOLL_LATEST_SECONDS (news from others while
# slow turns run).
_REPOLL_SECONDS = 0.05
_REPOLL_LATEST_SECONDS = 0.25
ALLOWED_UPDATES = (UpdateType.MESSAGE, UpdateType.CALLBACK_QUERY, UpdateType.MY_CHAT_MEMBER)
# The updater logs tracebacks when polling stops; the transport reports that failure itself, in one line.
_QUIET_LOGGERS = {"httpx": logging.WARNING, "httpcore": logging.WARNING, "telegram": logging.INFO,
                  "telegram.ext.Updater": logging.CRITICAL}


class _PollingAbortFilter(logging.Filter):
    """PTB's retry loop logs a traceback (on ``telegram.ext``) when it aborts on a refused token;
    :class:`PollingWatch` has seen the same answer and the bot says it in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.module == "networkloop" and record.levelno >= logging.ERROR)


_POLLING_ABORT_FILTER = _PollingAbortFilter()

CommandMenus = Mapping[str, Sequence[tuple[str, str]]]


class TelegramStartupError(TransportStartupError):
    """Telegram cannot be used with this configuration; the message names what to fix."""


@dataclass(frozen=True, slots=True)
class TelegramOptions:
    """Everything the transport needs, passed in explicitly. The token never appears in repr."""

    token: str = field(repr=False)
    api_base_url: str = "https://api.telegram.org/bot"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_secret: str | None = field(default=None, repr=False)
    rate_per_second: float = 30.0
    per_chat_interval_seconds: float = 1.0
    staff_chat_id: int | None = None
    commands: CommandMenus = field(default_factory=dict)
    default_language: str = "en"
    poll_timeout_seconds: int = 25
    read_timeout_seconds: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_retry_after_seconds: float = 30.0
    max_concurrent_chats: int = 64
    send_connections: int = 64  # HTTP connections for sending text (the outbox sends this many at once)
    max_chat_backlog: int = 50
    startup_attempts: int = 5
    shutdown_grace_seconds: float = 10.0
    give_up_after_seconds: float = 600.0  # polling that fails this long ends the transport (failure)
    sees_whole_chat: bool = True
    """Every message of a chat passes through this instance (one process). False for a webhook
    served by several workers: each sees only its share, so ``/panic`` never claims it removed all."""

    def __post_init__(self) -> None:
        if not self.token:
            raise TelegramStartupError("telegram.token is empty")
        if self.mode == "webhook":
            if not self.webhook_url:
                raise TelegramStartupError("telegram.webhook_url must be set in webhook mode")
            if not self.webhook_secret or not valid_secret(self.webhook_secret):
                raise TelegramStartupError(
                    "telegram.webhook_secret must be set in webhook mode (1-256 of A-Z a-z 0-9 _ -)"
                )


def _update_id(data: dict[str, Any]) -> int | None:
    value = data.get("update_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _seconds(value: Any) -> float:
    """``RetryAfter.retry_after`` is seconds or a timedelta, depending on PTB's settings."""
    return float(value.total_seconds()) if hasattr(value, "total_seconds") else float(value)


def quiet_library_loggers() -> None:
    """httpx logs every request URL at INFO, and the URL contains the bot token."""
    for name, level in _QUIET_LOGGERS.items():
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level < level:
            logger.setLevel(level)
    logging.getLogger("telegram.ext").addFilter(_POLLING_ABORT_FILTER)  # adding it twice keeps one


class TelegramTransport:
    """Implements :class:`bot.core.transport.Transport` for Telegram (polling or webhook)."""

    platform = TELEGRAM
    capabilities = Capabilities(buttons=True, html=False, images=True, max_text_length=4096,
                                platform_reads_messages=True)

    def __init__(self, options: TelegramOptions) -> None:
        quiet_library_loggers()
        self._options = options
        self.failure: BaseException | None = None
        self._ended = asyncio.Event()
        self._watch = PollingWatch(options.give_up_after_seconds, self._gave_up)
        self._limiter = TelegramRateLimiter(
            options.rate_per_second, options.per_chat_interval_seconds,
            max_retry_after=options.max_retry_after_seconds,
        )
        builder = (
            ApplicationBuilder()
            .token(options.token)
            .base_url(options.api_base_url)
            .rate_limiter(self._limiter)
            .job_queue(None)
            .read_timeout(options.read_timeout_seconds)
            .write_timeout(options.read_timeout_seconds)
            .updater(None)  # PTB's updater confirms updates when it fetches them; ours, once handled
        )
        self._app: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        self._queues = ChatQueues(options.max_concurrent_chats, options.max_chat_backlog)
        self._sender = BotApiSender(options.api_base_url, options.token, self._limiter,
                                    pool_size=options.send_connections, timeout_seconds=options.read_timeout_seconds)
        self._background: set[asyncio.Task[None]] = set()
        self._webhook: WebhookReceiver | None = None
        self._webhook_in_flight: dict[int, asyncio.Future[None]] = {}
        self._acks = AckTracker()
        self._chat_of: dict[int, str] = {}  # update id -> chat, while its work is queued or running
        self._recent = RecentMessages()  # for /panic: ids only, in memory only
        self._poller: asyncio.Task[None] | None = None
        self._on_inbound: InboundHandler | None = None
        self._ready = asyncio.Event()
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle
    @property
    def rate_per_second(self) -> float:
        return self._options.rate_per_second

    @property
    def paces_sends(self) -> bool:
        """Every send goes through the rate limiter (overall, per chat, ``RetryAfter``)."""
        return True

    async def wait_stopped(self) -> None:
        """Returns when polling failed for good (``failure`` says why) or :meth:`stop` was called."""
        await self._ended.wait()

    def _gave_up(self, reason: PollingGaveUp) -> None:
        self.failure = reason
        self._ended.set()

    async def start(self, on_inbound: InboundHandler) -> None:
        """Check the token, publish the command menus, then poll or listen for the webhook."""
        self._on_inbound = on_inbound
        await self._sender.start()
        await self._initialize()
        await self._publish_commands()
        if self._options.mode == "webhook":
            await self._start_webhook()
        else:
            # Messages sent while the bot was down still count: pending updates are kept.
            await call_telegram(lambda: self._app.bot.delete_webhook(drop_pending_updates=False),
                                self._options.retry)
            self._poller = asyncio.create_task(self._poll(), name="telegram-polling")
        self._ready.set()
        log.info("telegram transport started (%s)", self._options.mode)

    async def stop(self) -> None:
        """Stop fetching, finish queued work (bounded), confirm what was handled, close. Idempotent."""
        if self._stopping or self._on_inbound is None:
            return
        self._stopping = True
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        if self._webhook is not None:
            await self._webhook.stop()
        await self._queues.drain(self._options.shutdown_grace_seconds)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self._confirm_handled()
        self._ready.clear()
        await self._sender.close()
        await self._app.shutdown()
        self._ended.set()
        log.info("telegram transport stopped")

    async def _initialize(self) -> None:
        attempts = max(self._options.startup_attempts, 1)
        for attempt in range(1, attempts + 1):
            try:
                await self._app.initialize()  # getMe: proves the token and the base URL
                return
            except InvalidToken:
                raise TelegramStartupError("telegram.token was refused by the Bot API server") from None
            except TelegramError as exc:
                if attempt == attempts:
                    raise TelegramStartupError(
                        f"the Bot API server at telegram.api_base_url is unreachable ({type(exc).__name__})"
                    ) from None
                delay = self._options.retry.delay(attempt)
                log.warning("telegram: getMe failed (%s); retrying in %.1f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)

    async def _publish_commands(self) -> None:
        """One menu per language Telegram can target, plus the default language's for everyone else."""
        menus = self._options.commands
        targets: list[tuple[str | None, Sequence[tuple[str, str]]]] = []
        if self._options.default_language in menus:
            targets.append((None, menus[self._options.default_language]))
        targets.extend((lang, cmds) for lang, cmds in menus.items() if len(lang) == 2 and lang.isalpha())
        for language, commands in targets:
            if not commands:
                continue
            menu = [BotCommand(name, description) for name, description in commands]
            try:
                await call_telegram(
                    partial(self._app.bot.set_my_commands, menu, language_code=language), self._options.retry
                )
            except Exception as exc:  # a missing menu must not keep the bot from answering people
                log.warning("telegram: publishing commands failed: %s", type(exc).__name__)

    async def _start_webhook(self) -> None:
        options = self._options
        assert options.webhook_url is not None and options.webhook_secret is not None
        path = urlsplit(options.webhook_url).path or "/"
        self._webhook = WebhookReceiver(options.webhook_listen, options.webhook_port, path,
                                        options.webhook_secret, self._enqueue_webhook_update)
        await self._webhook.start()
        await call_telegram(
            lambda: self._app.bot.set_webhook(
                url=options.webhook_url or "", secret_token=options.webhook_secret,
                allowed_updates=list(ALLOWED_UPDATES), drop_pending_updates=False,
            ),
            options.retry,
        )

    # ------------------------------------------------------------------ polling
    async def _poll(self) -> None:
        """Long-poll; the offset confirms only updates whose handling finished."""
        options = self._options
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._stopping:
            polled_at = loop.time()
            try:
                updates = await self._sender.get_updates(
                    self._acks.offset, timeout=options.poll_timeout_seconds, allowed_updates=ALLOWED_UPDATES)
                self._watch.succeeded()
                failures = 0
            except InvalidToken:
                self._watch.refused()  # the watch ends the transport with one clear line
                return
            except RetryAfter as exc:
                self._watch.succeeded()  # the server is there and answering
                await asyncio.sleep(_seconds(exc.retry_after))
                continue
            except TelegramError as exc:
                if isinstance(exc, NetworkError) and not isinstance(exc, BadRequest):
                    self._watch.failed()  # unreachable, timed out, or a 5xx
                else:
                    self._watch.succeeded()  # 409 and the like: the server answered
                if self._stopping or self._watch.gave_up:
                    return
                failures += 1
                self._on_polling_error(exc)
                await asyncio.sleep(options.retry.delay(min(failures, 10)))
                continue
            numbered = [(update_id, data) for data in updates if (update_id := _update_id(data)) is not None]
            fresh = [(update_id, data) for update_id, data in numbered if self._acks.fetched(update_id)]
            for update_id, data in fresh:
                self._dispatch_raw(update_id, data, partial(self._acks.finished, update_id))
            if updates and not fresh and len(updates) >= _WINDOW and numbered:
                # Telegram hands out at most 100 updates past the offset, and the offset waits for
                # the oldest update still being handled: if its chat has queued more, those would
                # keep everyone else's updates out of reach. Drop them, as a full backlog is.
                self._queues.shed(self._chat_of.get(numbered[0][0], ""))
            acks = self._acks
            if acks.in_flight:  # the next poll would answer at once, with all of them again
                await acks.wait_for(acks.finished_count + max(1, acks.in_flight // 2), _REPOLL_LATEST_SECONDS)
                if acks.in_flight:
                    await asyncio.sleep(max(0.0, polled_at + _REPOLL_SECONDS - loop.time()))

    def _dispatch_raw(self, update_id: int, data: dict[str, Any], finished: Callable[[], None]) -> None:
        """Route a fresh update and queue its work; one that does not parse is confirmed and skipped."""
        try:
            routed = self._route(data)
        except Exception as exc:  # a malformed update must not stop polling for everyone else
            log.warning("telegram: an update could not be read: %s", type(exc).__name__)
            routed = None
        if routed is None:
            finished()
            return
        self._dispatch(update_id, routed, finished)

    async def _confirm_handled(self) -> None:
        """At shutdown: tell Telegram which updates were handled, so they are not fetched again."""
        offset = self._acks.offset
        if self._options.mode != "polling" or offset is None:
            return
        try:
            await self._sender.get_updates(offset, timeout=0, allowed_updates=ALLOWED_UPDATES, limit=1)
        except TelegramError as exc:  # they come again at the next start; the core answers them once
            log.info("telegram: confirming handled updates at shutdown failed: %s", type(exc).__name__)

    async def _enqueue_webhook_update(self, data: dict[str, Any]) -> None:
        """Answer the webhook call (with 200) only once the update has been handled; a second
        delivery of an update still being handled waits for the same handling."""
        update_id = _update_id(data)
        if update_id is None:
            log.warning("telegram: an update without an id was ignored")
            return
        pending = self._webhook_in_flight.get(update_id)
        if pending is not None:
            await asyncio.shield(pending)
            return
        handled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._webhook_in_flight[update_id] = handled

        def finish() -> None:
            if not handled.done():
                handled.set_result(None)
            self._webhook_in_flight.pop(update_id, None)

        self._dispatch_raw(update_id, data, finish)
        await asyncio.shield(handled)

    # ------------------------------------------------------------------ inbound
    def _dispatch(self, update_id: int, routed: tuple[str, Job], finished: Callable[[], None]) -> None:
        """Queue the update's work behind its chat's earlier work; ``finished`` runs once it ended."""
        chat, work = routed
        self._chat_of[update_id] = chat

        def done() -> None:
            self._chat_of.pop(update_id, None)
            finished()

        async def tracked() -> None:
            try:
                await work()
            except asyncio.CancelledError:
                # Cut short (a stop whose grace ran out, a leader stepping down): not handled, so not
                # acknowledged. Telegram hands it out again (to the next leader, or another worker
                # behind the webhook); if its turn did commit, the core's dedupe answers it once.
                self._chat_of.pop(update_id, None)
                raise
            except Exception:
                done()  # it failed for good (the core answered with an error): not fetched forever
                raise
            done()

        if not self._queues.submit(chat, tracked, on_drop=done):
            done()  # a flooding chat's excess is dropped on purpose: nothing to wait for

    def _route(self, data: dict[str, Any]) -> tuple[str, Job] | None:
        """Map an update (the Bot API's JSON) to (its chat, the work to do), or None for what the
        bot ignores. Messages, nearly all updates, are read from the JSON itself; button presses
        and membership changes through PTB's objects, whose methods answer them."""
        staff_chat = self._options.staff_chat_id
        message = data.get("message")
        if message is not None:
            inbound = inbound_from_message(message, staff_chat)
            if inbound is None:
                return None
            if not inbound.in_staff_room:
                self._recent.add(int(inbound.address.value), message["message_id"])
            return inbound.address.value, partial(self._deliver, inbound)
        update = Update.de_json(data, self._app.bot)
        query = update.callback_query
        if query is not None:
            self._spawn(self._answer(query))  # every press is answered, even ignored ones
            pressed = inbound_from_callback(query, staff_chat)
            if pressed is None:
                return None
            return pressed.address.value, partial(self._handle_press, query, pressed)
        if update.my_chat_member is not None:
            gone = inbound_from_member_update(update.my_chat_member)
            return (gone.address.value, partial(self._deliver, gone)) if gone is not None else None
        return None

    async def _handle_press(self, query: CallbackQuery, inbound: Inbound) -> None:
        await self._close_keyboard(query)
        await self._deliver(inbound)

    async def _deliver(self, inbound: Inbound) -> None:
        if self._on_inbound is not None:
            await self._on_inbound(inbound)

    async def _answer(self, query: CallbackQuery) -> None:
        try:
            await call_telegram(query.answer, self._options.retry)
        except Exception as exc:
            log.info("telegram: answering a button press failed: %s", type(exc).__name__)

    async def _close_keyboard(self, query: CallbackQuery) -> None:
        """Show what was chosen under the prompt and take the keyboard away (no second press).

        A press leaves no trace in the chat by itself; for a sensitive prompt (sent with
        ``protect_content``) the answer is not written into the chat either, so a seized
        phone does not show it.
        """
        message = query.message
        if not isinstance(message, Message):
            return  # too old to be read or edited
        label = chosen_label(message, query.data)
        if label is None:
            return  # forged data: it matches no button, so the message stays as it is
        show = bool(message.text) and not message.has_protected_content
        text = closed_prompt_text(message.text or "", label) if show else None
        try:
            if text is not None:
                await call_telegram(lambda: message.edit_text(text, reply_markup=None), self._options.retry)
            else:
                await call_telegram(lambda: message.edit_reply_markup(reply_markup=None), self._options.retry)
        except Exception as exc:  # already edited, too old: the answer itself still counts
            log.info("telegram: closing a keyboard failed: %s", type(exc).__name__)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    def _on_polling_error(exc: TelegramError) -> None:
        log.warning("telegram: polling failed (%s); retrying", type(exc).__name__)

    # ------------------------------------------------------------------ outbound
    async def send(self, address: Address, message: Outbound, options: SendOptions | None = None) -> Delivery:
        """Send one core message (maybe as several Telegram messages); raise a DeliveryError on failure."""
        if not self._ready.is_set():
            if self._stopping:
                raise TransientDeliveryError("stopped")
            try:
                await asyncio.wait_for(self._ready.wait(), timeout=10.0)
            except TimeoutError:
                raise TransientDeliveryError("not_started") from None
        try:
            chat_id = int(address.value)
        except ValueError:
            raise PermanentDeliveryError("bad_address") from None
        try:
            parts = render(message)
        except CallbackDataTooLong:
            raise PermanentDeliveryError("callback_data_too_long") from None
        if not parts:
            raise PermanentDeliveryError("empty")
        bulk = options is not None and options.bulk
        message_id = 0
        for part in parts:
            message_id = await call_telegram(partial(self._send_part, chat_id, part, message.sensitive, bulk),
                                             self._options.retry)
            if chat_id > 0:  # a private chat (groups have negative ids): what /panic may delete
                self._recent.add(chat_id, message_id)
        return Delivery(message_id=str(message_id))

    async def edit(self, address: Address, message_id: str, message: Outbound) -> Delivery:
        """editMessageText: the message's text replaced in place (its first part; no keyboard)."""
        if not self._ready.is_set():
            raise TransientDeliveryError("not_started")
        try:
            chat_id, target = int(address.value), int(message_id)
        except ValueError:
            raise PermanentDeliveryError("bad_address") from None
        parts = render(Outbound(text=message.text, direction=message.direction, language=message.language,
                                formatted=message.formatted[:1]))
        if not parts:
            raise PermanentDeliveryError("empty")
        part = parts[0]
        try:
            await call_telegram(partial(
                self._app.bot.edit_message_text, part.text, chat_id=chat_id, message_id=target,
                parse_mode=ParseMode.HTML if part.html else None,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            ), self._options.retry)
        except PermanentDeliveryError as exc:
            if exc.reason != "not_modified":
                raise
        return Delivery(message_id=message_id)

    async def erase_chat(self, address: Address) -> ChatErasure:
        """Delete the chat's messages the bot still knows and Telegram still allows (48 hours),
        the person's and its own. Each deletion on its own: a refusal counts and the rest go on."""
        try:
            chat_id = int(address.value)
        except ValueError:
            return ChatErasure(complete=False)
        ids, maybe_more = self._recent.take(chat_id)
        removed = failed = 0
        for message_id in ids:
            try:
                await call_telegram(partial(self._app.bot.delete_message, chat_id, message_id), self._options.retry)
                removed += 1
            except Exception as exc:  # too old, already gone, network: counted, never fatal
                failed += 1
                log.info("telegram: deleting a message failed: %s", type(exc).__name__)
        return ChatErasure(removed=removed, failed=failed, complete=not maybe_more and self._options.sees_whole_chat)

    async def _send_part(self, chat_id: int, part: Part, sensitive: bool, bulk: bool) -> int:
        if part.image is not None:  # uploads stay with PTB (multipart)
            photo = await self._app.bot.send_photo(
                chat_id, InputFile(part.image, filename=part.image_name), caption=part.text or None,
                reply_markup=InlineKeyboardMarkup.de_json(part.keyboard, self._app.bot) if part.keyboard else None,
                protect_content=sensitive, rate_limit_args=bulk or None,
            )
            return photo.message_id
        return await self._sender.send_message(chat_id, part.text, reply_markup=part.keyboard, protect_content=sensitive,
                                               bulk=bulk, html=part.html)

    # ------------------------------------------------------------------ introspection for operators
    @property
    def dropped_updates(self) -> int:
        return self._queues.dropped

    @property
    def ready(self) -> bool:
        """Started and not stopping: sends go out (the worker's /readyz)."""
        return self._ready.is_set()

    @property
    def rate_limited(self) -> int:
        """429 answers from the Bot API so far."""
        return self._limiter.retry_after_seen

    @property
    def webhook_refused(self) -> int:
        """Webhook calls refused for a missing or wrong secret."""
        return self._webhook.rejected if self._webhook is not None else 0


def from_settings(settings: Any, keys: Any = None, i18n: Any = None,
                  commands: CommandMenus | None = None, **overrides: Any) -> TelegramTransport:
    """Build from ``bot.config.Settings`` (the ``telegram``, ``staff`` and ``i18n`` sections).

    ``keys`` and ``i18n`` are accepted for symmetry with the other transports; Telegram
    needs neither, because the core does all wording and all pseudonymisation.
    """
    telegram = settings.telegram

    def secret(value: Any) -> str | None:
        if value is None:
            return None
        getter = getattr(value, "get_secret_value", None)
        return str(getter() if getter else value)

    values: dict[str, Any] = {
        "token": secret(telegram.token) or "",
        "api_base_url": str(telegram.api_base_url),
        "mode": telegram.mode,
        "webhook_url": telegram.webhook_url,
        "webhook_listen": telegram.webhook_listen,
        "webhook_port": int(telegram.webhook_port),
        "webhook_secret": secret(telegram.webhook_secret),
        "rate_per_second": float(telegram.rate_per_second),
        "per_chat_interval_seconds": float(telegram.per_chat_interval_seconds),
        "give_up_after_seconds": float(telegram.give_up_after_seconds),
        "staff_chat_id": settings.staff.telegram_chat,
        "commands": dict(commands or {}),
        "default_language": settings.i18n.default_language,
    }
    values.update(overrides)
    return TelegramTransport(TelegramOptions(**values))
