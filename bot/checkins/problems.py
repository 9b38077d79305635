"""Refusals shared by the staff chat commands and the command line.

An action that cannot be done raises :class:`CheckinProblem` with a gettext marker and its
values, before anything is changed; chat renders it in the staff member's language, the
command line in English, so both say the same sentence.
"""

from __future__ import annotations

from bot.core.i18n import Translator


class CheckinProblem(Exception):
    """A refused check-in action; ``message`` is an ``N_`` marker with ``%(name)s`` values."""

    def __init__(self, message: str, **values: object) -> None:
        super().__init__(message)
        self.message = message
        self.values = values

    def render(self, tr: Translator) -> str:
        return tr._(self.message, **self.values)
