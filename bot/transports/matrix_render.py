"""Outbound -> Matrix message content, and Matrix text -> what the person actually typed.

Matrix has no buttons the bot can rely on, so choices become a numbered list; the core
accepts the number, the label or an unambiguous prefix. Where a typed number is itself the
answer (a number, a scale, a text), the choices (Skip, Back) are a bulleted list of words. Every message carries an HTML
``formatted_body`` and a plain ``body`` for clients without HTML. Right-to-left text is
wrapped in ``<div dir="rtl">`` and each plain line starts with U+200F so Arabic and Sorani
read correctly even where the client guesses the direction from the first character.
"""

from __future__ import annotations

import html
from typing import Any

from bot.core.model import Direction, Outbound

RLM = "\u200f"
WORD_MARK = "\u2022"  # a bullet before a choice typed as a word (where typed numbers are answers)
HTML_FORMAT = "org.matrix.custom.html"


def _plain_lines(message: Outbound) -> list[str]:
    lines = message.text.split("\n")
    if message.choices:
        if message.text:
            lines.append("")
        if message.numbered:
            lines.extend(f"{number}. {choice.label}" for number, choice in enumerate(message.choices, start=1))
        else:  # typed numbers are answers here: the choices are words to type, never numbered
            lines.extend(f"{WORD_MARK} {choice.label}" for choice in message.choices)
    return lines


def _html(message: Outbound) -> str:
    parts: list[str] = []
    if message.text:
        parts.append("<p>" + "<br>".join(html.escape(line) for line in message.text.split("\n")) + "</p>")
    if message.choices:
        items = "".join(f"<li>{html.escape(choice.label)}</li>" for choice in message.choices)
        parts.append(f"<ol>{items}</ol>" if message.numbered else f"<ul>{items}</ul>")
    body = "".join(parts)
    if message.direction is Direction.RTL:
        return f'<div dir="rtl">{body}</div>'
    return body


def render_message(message: Outbound, msgtype: str = "m.text") -> dict[str, Any]:
    """The ``m.room.message`` content for one outbound message."""
    lines = _plain_lines(message)
    if message.direction is Direction.RTL:
        lines = [line if not line or line.startswith(RLM) else RLM + line for line in lines]
    content: dict[str, Any] = {
        "msgtype": msgtype,
        "body": "\n".join(lines),
        "format": HTML_FORMAT,
        "formatted_body": _html(message),
    }
    if message.thread_root:
        content["m.relates_to"] = thread_relation(message.thread_root)
    return content


def thread_relation(root: str) -> dict[str, Any]:
    """In the thread of ``root``; clients without threads show it as a reply to the root."""
    return {"rel_type": "m.thread", "event_id": root, "is_falling_back": True,
            "m.in_reply_to": {"event_id": root}}


def thread_root_of(content: dict[str, Any]) -> str | None:
    """The thread an event belongs to, or else the event it replies to (a reply to a thread's root
    is said to that thread too); None for a message on its own."""
    relates = content.get("m.relates_to")
    if not isinstance(relates, dict):
        return None
    if relates.get("rel_type") == "m.thread" and isinstance(relates.get("event_id"), str):
        return str(relates["event_id"])
    reply = relates.get("m.in_reply_to")
    if isinstance(reply, dict) and isinstance(reply.get("event_id"), str):
        return str(reply["event_id"])
    return None


def render_messages(message: Outbound) -> list[dict[str, Any]]:
    """Every ``m.room.message`` content one outbound message becomes, in order: the core's
    pre-rendered parts (already sanitised) when it has them, else one rendered here."""
    if not message.formatted:
        return [render_message(message)]
    contents: list[dict[str, Any]] = [
        {"msgtype": "m.text", "body": part.text, "format": HTML_FORMAT, "formatted_body": part.html}
        for part in message.formatted]
    if message.choices:
        contents.append(render_message(Outbound(text="", choices=message.choices, direction=message.direction)))
    if message.thread_root:
        for content in contents:
            content["m.relates_to"] = thread_relation(message.thread_root)
    return contents


def render_notice(text: str, direction: Direction = Direction.LTR) -> dict[str, Any]:
    """A transport notice (enable encryption, could not decrypt) as ``m.notice``."""
    return render_message(Outbound(text=text, direction=direction), msgtype="m.notice")


def strip_reply_fallback(body: str) -> str:
    """Drop the quoted ``> <@user> ...`` lines a client puts before a reply's own text."""
    lines = body.split("\n")
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    if index == 0:
        return body
    while index < len(lines) and not lines[index].strip():
        index += 1
    return "\n".join(lines[index:])
