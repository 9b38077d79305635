"""The message ids of each private chat's last two days, in memory only, for ``/panic``.

Telegram lets a bot delete messages younger than 48 hours in a private chat, its own and the
person's, but offers no way to list them: the bot must remember their ids. It keeps them in
memory only (nothing about the chat is written anywhere), bounded per chat and in the number of
chats, and forgets them after 48 hours. What a restart forgot, the bot cannot delete, and says so.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

DELETABLE_SECONDS = 48 * 3600 - 60  # Telegram's limit, with a minute's margin for the request itself


class RecentMessages:
    """Per chat: (message id, when) of messages a bot may still delete."""

    __slots__ = ("_chats", "_clock", "_per_chat", "_max_chats", "since")

    def __init__(self, per_chat: int = 500, max_chats: int = 20_000,
                 clock: Callable[[], float] = time.time) -> None:
        self._chats: OrderedDict[int, deque[tuple[int, float]]] = OrderedDict()
        self._clock = clock
        self._per_chat = per_chat
        self._max_chats = max_chats
        self.since = clock()  # messages before this moment are not known (the process started then)

    def add(self, chat_id: int, message_id: int) -> None:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = deque(maxlen=self._per_chat)
            while len(self._chats) > self._max_chats:
                self._chats.popitem(last=False)
        self._chats.move_to_end(chat_id)
        chat.append((message_id, self._clock()))

    def take(self, chat_id: int) -> tuple[list[int], bool]:
        """Forget the chat and return the ids still deletable, and whether some ids of it may be
        unknown (older than 48 hours, dropped over the bound, or from before the process started)."""
        chat = self._chats.pop(chat_id, None)
        now = self._clock()
        if chat is None:
            return [], True
        fresh = [message_id for message_id, at in chat if now - at < DELETABLE_SECONDS]
        # Complete only if nothing was dropped over the bound and the process has run for longer than
        # Telegram's window (else younger messages from before it started may exist).
        complete = len(chat) < self._per_chat and now - self.since >= DELETABLE_SECONDS
        return sorted(set(fresh)), not complete

    def __len__(self) -> int:
        return len(self._chats)
