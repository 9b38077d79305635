"""English counts for the operator's command line ("1 response", "2 responses").

Chat messages use the catalogs' plural forms (``Translator.n_``); the command line speaks
English to the operator, so a plain English plural is enough there.
"""

from __future__ import annotations


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` with the noun in the form English needs: one is singular, everything else plural."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"
