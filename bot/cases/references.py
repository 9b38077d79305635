"""Case references: random, short, readable aloud and typed back on any keyboard.

A sequence number would reveal how many cases exist; a reference is drawn at random from
an alphabet without look-alikes (no 0/O, 1/I/L, U/V), so ``C-7K3Q`` can be read over a
phone line or typed from a screenshot without doubt.
"""

from __future__ import annotations

import re
import secrets

from bot.core.i18n import western_digits

ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
PREFIX = "C-"
LENGTH = 4
_FORM = re.compile(rf"(?:C-?)?([{ALPHABET}]{{{LENGTH}}})")


def new_reference() -> str:
    """29**4 (about 700,000) references: the caller checks the few live ones for a collision."""
    return PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalise(text: str) -> str | None:
    """What a person typed (``c-7k3q``, ``7K3Q``, ``C 7K3Q``, Arabic-Indic digits) as a reference, or None."""
    compact = western_digits(text).strip().upper().replace(" ", "").replace("\u2068", "").replace("\u2069", "")
    match = _FORM.fullmatch(compact)
    return PREFIX + match.group(1) if match else None
