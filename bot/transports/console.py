"""The console chat: the embedded default, and a scriptable way to drive the bot.

One line in is one message; choices print as a numbered list; end of input ends the chat
(the transport stops by itself, without a failure). Each console user (``--user NAME``) is
a person of their own, with their own identity and language, so one machine can play a
staff member and a participant in two windows.
"""

from __future__ import annotations

import asyncio
from typing import TextIO

from bot.core.i18n import N_, Translator
from bot.core.model import Address, Capabilities, Delivery, Inbound, Outbound, Platform, SendOptions
from bot.core.transport import InboundHandler

CONSOLE = Platform("console")
CONSOLE_USER = "local"
WORD_MARK = "\u2022"  # a bullet, not a number, before a choice that is typed as a word
MAX_USER_NAME = 64

HINT = N_("Console chat as %(user)s: type /start to begin and /help to see what you can do. Ctrl-D ends the chat.")


def valid_user_name(name: str) -> bool:
    """A console user name is one visible word: it is typed on the command line and in ``staff.members``."""
    return 0 < len(name) <= MAX_USER_NAME and name.isprintable() and not any(c.isspace() for c in name)


class ConsoleTransport:
    """Reads ``stdin`` line by line and handles each line before reading the next."""

    platform = CONSOLE
    # The operator's own terminal or script: the per-person flood limit, which protects the
    # bot from remote senders, would only drop piped lines here.
    capabilities = Capabilities(buttons=False, html=False, images=False, max_text_length=1_000_000,
                                flood_limited=False)
    rate_per_second = 100.0  # a terminal has no rate limit; this only paces queued messages
    paces_sends = False

    def __init__(self, stdin: TextIO, stdout: TextIO, user_id: str = CONSOLE_USER) -> None:
        if not valid_user_name(user_id):
            raise ValueError("a console user name is one word of at most 64 characters")
        self._stdin = stdin
        self._stdout = stdout
        self._user_id = user_id
        self._address = Address(CONSOLE, "console")
        self._reader: asyncio.Task[None] | None = None
        self._ended = asyncio.Event()
        self.failure: BaseException | None = None

    @property
    def user_id(self) -> str:
        return self._user_id

    def hint(self, tr: Translator) -> str:
        """The one line that says what this is and how to use it (shown when a person types)."""
        return tr._(HINT, user=self._user_id)

    async def start(self, on_inbound: InboundHandler) -> None:
        self._reader = asyncio.create_task(self._read(on_inbound), name="console-reader")

    async def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.cancel()
            try:
                await reader
            except asyncio.CancelledError:
                pass
        self._ended.set()
        self._stdout.flush()

    async def wait_stopped(self) -> None:
        """Returns at end of input (``failure`` stays None) or if reading failed (``failure`` set)."""
        await self._ended.wait()

    async def _read(self, handler: InboundHandler) -> None:
        """Feed lines to the handler until end of input."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                line = await loop.run_in_executor(None, self._stdin.readline)
                if line == "":
                    return
                text = line.rstrip("\r\n")
                await handler(Inbound(platform=CONSOLE, user_id=self._user_id, address=self._address, text=text))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # stdin closed under us: end the chat with a reason
            self.failure = exc
        finally:
            self._ended.set()

    async def edit(self, address: Address, message_id: str, message: Outbound) -> Delivery:
        """A terminal cannot change what it printed: the new text is printed, marked as an update."""
        self._stdout.write(f"~ {message.text}\n\n")
        self._stdout.flush()
        return Delivery(message_id=message_id)

    async def send(self, address: Address, message: Outbound, options: SendOptions | None = None) -> Delivery:
        lines = ["\n\n".join(part.text for part in message.formatted)] if message.formatted else [message.text]
        if message.numbered:
            lines.extend(f"  {number}. {choice.label}" for number, choice in enumerate(message.choices, start=1))
        else:  # typed numbers are answers here: the choices are words to type
            lines.extend(f"  {WORD_MARK} {choice.label}" for choice in message.choices)
        if message.image is not None:
            lines.append(f"  [{message.image_name}: {len(message.image)} bytes]")
        self._stdout.write("\n".join(lines) + "\n\n")
        self._stdout.flush()
        return Delivery()
