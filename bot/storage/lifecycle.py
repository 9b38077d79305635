"""What the data layer must know about a table's lifecycle: which columns are sealed with which
key (so key rotation reaches every one of them) and how long its rows live (retention).

These are declarations, written next to the tables they describe and listed by the feature
that owns the tables; key rotation and the retention purge iterate over them instead of
keeping their own lists, so a new sealed column cannot be forgotten by one of them.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement


class SealKey(enum.Enum):
    """Which key seals a column's values."""

    MASTER = "master"
    """The master key from the key file: data that belongs to nobody (organisation names)."""
    PARTICIPANT = "participant"
    """The person's own data key (wrapped by the master key): destroyed by erasure."""
    PER_ROW = "per-row"
    """Either, decided per row (answers to anonymous surveys use the master key)."""


@dataclass(frozen=True, slots=True)
class SealedColumn:
    """One encrypted column and how its values are bound to their row.

    Key rotation re-seals every value of ``column`` that a master key sealed, under the new
    master key, with ``context(row)`` as associated data; values sealed with a participant's
    data key are reached through that key (``participant_keys.wrapped`` is itself declared).
    """

    column: InstrumentedAttribute[Any]
    """The mapped attribute, e.g. ``SurveyAnswer.text_enc``: gives the table and the column."""
    context: Callable[[Any], str]
    """The associated data a value is sealed with, from its row (e.g. ``f"outbox.payload:{row.txn_id}"``);
    the same function the code that seals the column uses, so the two cannot drift apart."""
    key: SealKey
    """Which key seals it (see :class:`SealKey`)."""
    key_id_column: InstrumentedAttribute[Any] | None = None
    """A column recording the id of the master key that sealed the value, kept current by rotation."""
    legacy_context: Callable[[Any], str] | None = None
    """How values written by an older version were bound, if that changed: they still open, and
    rotation binds them with ``context`` (values under the master key; a person's own key is not
    the rotation's to use)."""

    @property
    def table(self) -> str:
        return str(self.column.class_.__tablename__)

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column.key}"


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """Rows of one kind that are deleted once older than a configured number of days."""

    name: str
    """How the purge report names the rows (``"dialog_states"``)."""
    model: type[Any]
    """The mapped class whose rows are deleted."""
    expired: Callable[[dt.datetime], ColumnElement[bool]]
    """Given the cutoff (now minus the days), the condition of the rows to delete,
    e.g. ``lambda cutoff: DialogState.updated_at < cutoff``."""
    days_key: str
    """The ``[retention]`` setting with the number of days (``"dialog_state_days"``)."""
    purge: Callable[[AsyncSession, dt.datetime], Awaitable[int]] | None = None
    """Deletes the expired rows itself, given the cutoff, and returns how many: for rows whose going
    must leave a trace (the audit log appends a checkpoint). None: a plain delete of ``expired``."""
