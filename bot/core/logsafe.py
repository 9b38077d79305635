"""Describing failures for the logs without their messages, which may quote user content."""

from __future__ import annotations

import traceback
from pathlib import Path


def describe(exc: BaseException) -> str:
    """``"ValueError at bot/dialogs/engine.py:120 in handle"``: type and place, never the message."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    ours = [f for f in frames if "/bot/" in f.filename] or frames
    frame = ours[-1]
    parts = Path(frame.filename).parts
    short = "/".join(parts[parts.index("bot"):]) if "bot" in parts else Path(frame.filename).name
    return f"{type(exc).__name__} at {short}:{frame.lineno} in {frame.name}"
