"""Cells of exported files: text people typed must never run as a formula where staff open it.

Spreadsheet programs read a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or
carriage return before one) as a formula, also from a CSV file, and a formula can fetch URLs or
run commands. Answers are typed by people outside the organisation, so such text is quoted
with a leading apostrophe, which spreadsheets show as text.
"""

from __future__ import annotations

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def as_text(value: str) -> str:
    """``value`` quoted if a spreadsheet would read it as a formula, else unchanged."""
    return "'" + value if value.startswith(FORMULA_START) else value
