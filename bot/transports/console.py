"""The console chat: the embedded default, and a scriptable way to drive the bot.

One line in is one message; choices print as a numbered list; end of input ends the chat
(the transport stops by itself, without a failure).
"""

from __future__ import annotations

import asyncio
from typing import TextIO

from bot.core.model import Address, Capabilities, Delivery, Inbound, Outbound, Platform, SendOptions
from bot.core.transport import InboundHandler

CONSOLE = Platform("console")
CONSOLE_USER = "local"


class ConsoleTransport:
    """Reads ``stdin`` line by line and handles each line before reading the next."""

    platform = CONSOLE
    capabilities = Capabilities(buttons=False, html=False, images=False, max_text_length=1_000_000)
    rate_per_second = 100.0  # a terminal has no rate limit; this only paces queued messages

    def __init__(self, stdin: TextIO, stdout: TextIO, user_id: str = CONSOLE_USER) -> None:
        self._stdin = stdin
        self._stdout = stdout
        self._user_id = user_id
        self._address = Address(CONSOLE, "console")
        self._reader: asyncio.Task[None] | None = None
        self._ended = asyncio.Event()
        self.failure: BaseException | None = None

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

    async def send(self, address: Address, message: Outbound, options: SendOptions | None = None) -> Delivery:
        lines = [message.text]
        lines.extend(f"  {number}. {choice.label}" for number, choice in enumerate(message.choices, start=1))
        if message.image is not None:
            lines.append(f"  [{message.image_name}: {len(message.image)} bytes]")
        self._stdout.write("\n".join(lines) + "\n\n")
        self._stdout.flush()
        return Delivery()
