"""What staff read about bulletins, in their language: refusals, confirmations, previews,
progress and summaries. The chat command and the command line use these same sentences
(the command line in English), so both say exactly the same thing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping

from bot.bulletins.definition import TextProblem
from bot.bulletins.progress import FAILED, SENT, UNREACHABLE, WAITING, WITHDRAWN, Progress
from bot.bulletins.service import BulletinRefused, Created, Listing, Preview, Refusal, SendStatus, SendView
from bot.core.i18n import ENDONYMS, Translator

PLATFORM_NAMES = {"telegram": "Telegram", "matrix": "Matrix", "console": "console"}
STOP_WORDS: Mapping[str, str] = {"en": "STOP", "ar": "توقف", "ckb": "ڕاوەستە", "ku": "RAWESTE"}
TIME_EXAMPLE = "2026-06-05T09:00+03:00"


def number(n: int) -> str:
    return f"{n:,}"


def when(moment: dt.datetime) -> str:
    """Stored times are UTC (SQLite returns them without the zone)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def language_name(code: str) -> str:
    return ENDONYMS.get(code, code)


def refusal(tr: Translator, error: BulletinRefused, bulletin_id: str = "") -> str:
    _ = tr._
    detail = error.detail
    code = detail.split(":", 1)[-1]
    texts = {
        Refusal.UNKNOWN_BULLETIN: lambda: _("There is no bulletin with the id %(id)s. Write one with /bulletin new, "
                                            "or store a file with civicbot bulletin create.", id=detail or bulletin_id),
        Refusal.AUDIENCE_SYNTAX: lambda: _("I do not understand the audience %(term)s. Use all, group:CODE, org:CODE "
                                           "or lang:CODE; several are allowed.", term=detail or "-"),
        Refusal.UNKNOWN_LANGUAGE: lambda: _("%(term)s is not a language of the bot (en, ar, ckb, ku).", term=detail),
        Refusal.UNKNOWN_GROUP: lambda: _("There is no group with the code %(code)s.", code=code),
        Refusal.UNKNOWN_ORGANISATION: lambda: _("There is no organisation with the code %(code)s.", code=code),
        Refusal.EMPTY_AUDIENCE: lambda: _("Nobody who receives bulletins is in the audience %(audience)s, so nothing "
                                          "was sent.", audience=detail),
        Refusal.PAST: lambda: _("That time is in the past. Give a time to come, like %(example)s.",
                                example=TIME_EXAMPLE),
        Refusal.ALREADY_SENT: lambda: _("The bulletin %(id)s has already been sent. A bulletin goes out once; "
                                        "write a new one for a new send.", id=bulletin_id),
        Refusal.ALREADY_SCHEDULED: lambda: _("The bulletin %(id)s is already scheduled. To change its audience or "
                                             "time, cancel it first with /bulletin cancel.", id=bulletin_id),
        Refusal.NOTHING_TO_CANCEL: lambda: _("The bulletin %(id)s is neither scheduled nor being sent: there is "
                                             "nothing to cancel.", id=bulletin_id),
        Refusal.OWN_BULLETIN: lambda: _("You wrote this version of %(id)s, so another staff member must approve it.",
                                        id=bulletin_id),
        Refusal.ALREADY_APPROVED: lambda: _("This version of %(id)s is already approved.", id=bulletin_id),
    }
    return texts[error.reason]()


def bad_time(tr: Translator, typed: str) -> str:
    return tr._("I do not understand the time %(time)s. Write it like %(example)s, or 2026-06-05T09:00 for UTC.",
                time=typed, example=TIME_EXAMPLE)


def usage(tr: Translator) -> str:
    return tr._("Usage: /bulletin new, /bulletin list, /bulletin send <id> <audience> [--at <time>] [--dry-run], "
                "/bulletin status <id>, /bulletin cancel <id>, /bulletin approve <id>. The audience is all, "
                "group:CODE, org:CODE or lang:CODE (several allowed).")


def created(tr: Translator, result: Created, approval_required: bool) -> str:
    if not result.new:
        return tr._("The bulletin %(id)s is unchanged (version %(version)s).", id=result.bulletin_id,
                    version=result.version)
    text = tr._("Bulletin %(id)s saved as version %(version)s.", id=result.bulletin_id, version=result.version)
    if approval_required:
        text += " " + tr._("Another staff member must approve it before it is sent: /bulletin approve %(id)s",
                           id=result.bulletin_id)
    return text


def problems(tr: Translator, found: list[TextProblem]) -> str:
    lines = []
    for problem in found:
        values = {k: (language_name(str(v)) if k == "language" else v) for k, v in problem.values}
        sentence = tr._(problem.template, **values) if values else tr._(problem.template)
        lines.append(tr._("Line %(line)s: %(problem)s", line=problem.line + 1, problem=sentence)
                     if problem.line is not None else sentence)
    return "\n".join(lines)


def _counter(counts: Counter[str], names: Mapping[str, str] | None = None) -> str:
    return ", ".join(f"{(names or {}).get(k, k)} {number(v)}" for k, v in counts.most_common())


def preview(tr: Translator, result: Preview, first_language: str) -> str:
    lines = [tr.n_("%(n)s person would receive it.", "%(n)s people would receive it.", result.total,
                   n=number(result.total))]
    if result.total:
        lines.append(tr._("By language: %(counts)s", counts=_counter(result.by_language, ENDONYMS)))
        lines.append(tr._("By platform: %(counts)s", counts=_counter(result.by_platform, PLATFORM_NAMES)))
    fallback = sum(result.fallback.values())
    if fallback:
        lines.append(tr.n_("%(n)s person gets it in %(language)s because it is not in their language (%(counts)s).",
                           "%(n)s people get it in %(language)s because it is not in their language (%(counts)s).",
                           fallback, n=number(fallback), language=language_name(first_language),
                           counts=_counter(result.fallback, ENDONYMS)))
    if result.unreachable:
        lines.append(tr.n_("%(n)s more person cannot be reached (blocked the bot or left).",
                           "%(n)s more people cannot be reached (blocked the bot or left).",
                           result.unreachable, n=number(result.unreachable)))
    return "\n".join(lines)


def send_requested(tr: Translator, view: SendView, result: Preview) -> str:
    if view.status is SendStatus.SENDING or view.status is SendStatus.DONE:
        return tr.n_("Sending %(id)s to %(n)s person.", "Sending %(id)s to %(n)s people.", view.recipients,
                     id=view.bulletin_id, n=number(view.recipients))
    if view.waiting_for_approval:
        text = tr._("%(id)s will go out once another staff member approves it: /bulletin approve %(id)s",
                    id=view.bulletin_id)
        if view.timed:
            text += " " + tr._("(not before %(time)s)", time=when(view.due_at))
        return text
    return tr.n_("%(id)s will be sent at %(time)s to the people in its audience then (%(n)s person now).",
                 "%(id)s will be sent at %(time)s to the people in its audience then (%(n)s people now).",
                 result.total, id=view.bulletin_id, time=when(view.due_at), n=number(result.total))


def cancelled(tr: Translator, bulletin_id: str, was_sending: bool, withdrawn: int) -> str:
    if not was_sending:
        return tr._("The scheduled send of %(id)s is cancelled; nothing was sent.", id=bulletin_id)
    return tr.n_("%(id)s cancelled: %(n)s message not yet sent was withdrawn. Messages already on their way "
                 "cannot be called back.",
                 "%(id)s cancelled: %(n)s messages not yet sent were withdrawn. Messages already on their way "
                 "cannot be called back.", withdrawn, id=bulletin_id, n=number(withdrawn))


def approved(tr: Translator, bulletin_id: str, version: int, started: bool) -> str:
    text = tr._("Version %(version)s of %(id)s approved.", version=version, id=bulletin_id)
    return text + " " + tr._("Its send has started.") if started else text


def progress_line(tr: Translator, bulletin_id: str, progress: Progress) -> str:
    return tr._("Bulletin %(id)s: sending… %(done)s / %(total)s (%(percent)s %%)", id=bulletin_id,
                done=number(progress.handled), total=number(progress.total), percent=progress.percent)


def _row(tr: Translator, name: str, counts: Counter[str]) -> str:
    return tr._("%(name)s: %(sent)s sent, %(failed)s failed, %(unreachable)s unreachable", name=name,
                sent=number(counts[SENT]), failed=number(counts[FAILED]), unreachable=number(counts[UNREACHABLE]))


def counts(tr: Translator, progress: Progress) -> list[str]:
    """Sent, failed by reason, unreachable, withdrawn; then per platform and per language."""
    lines = [tr._("Sent: %(sent)s of %(total)s", sent=number(progress.states[SENT]), total=number(progress.total))]
    if progress.states[FAILED]:
        lines.append(tr._("Failed: %(count)s (%(reasons)s)", count=number(progress.states[FAILED]),
                          reasons=_counter(progress.failed_reasons)))
    if progress.states[UNREACHABLE]:
        lines.append(tr._("Unreachable (blocked the bot or left): %(count)s (%(reasons)s)",
                          count=number(progress.states[UNREACHABLE]), reasons=_counter(progress.unreachable_reasons)))
    if progress.states[WITHDRAWN]:
        lines.append(tr._("Not sent (cancelled, or the person unsubscribed): %(count)s",
                          count=number(progress.states[WITHDRAWN])))
    if progress.states[WAITING]:
        lines.append(tr._("Still to send: %(count)s", count=number(progress.states[WAITING])))
    for platform in sorted(progress.by_platform):
        lines.append(_row(tr, PLATFORM_NAMES.get(platform, platform), progress.by_platform[platform]))
    for language in sorted(progress.by_language):
        lines.append(_row(tr, language_name(language), progress.by_language[language]))
    if progress.fallback:
        lines.append(tr._("Received it in the first language instead of their own: %(count)s",
                          count=number(progress.fallback)))
    return lines


def late_note(tr: Translator, view: SendView) -> str | None:
    if not view.late or view.started_at is None:
        return None
    if view.approved_late:
        return tr._("Note: it was scheduled for %(due)s and went out at %(started)s, when it was approved.",
                    due=when(view.due_at), started=when(view.started_at))
    return tr._("Note: it was scheduled for %(due)s and went out at %(started)s, because the bot was not running "
                "at that time.", due=when(view.due_at), started=when(view.started_at))


def summary(tr: Translator, view: SendView, progress: Progress) -> str:
    head = tr._("Bulletin %(id)s: cancelled. Summary:", id=view.bulletin_id) if view.status is SendStatus.CANCELLED \
        else tr._("Bulletin %(id)s: finished. Summary:", id=view.bulletin_id)
    lines = [head, *counts(tr, progress)]
    note = late_note(tr, view)
    if note:
        lines.append(note)
    return "\n".join(lines)


def status(tr: Translator, bulletin_id: str, version: int, approved: bool, view: SendView | None,
           progress: Progress | None) -> str:
    """The state of a bulletin and its send, the same on chat and command line."""
    head = tr._("Bulletin %(id)s, version %(version)s (%(approval)s).", id=bulletin_id, version=version,
                approval=tr._("approved") if approved else tr._("not approved"))
    if view is None:
        return head + "\n" + tr._("Not sent yet.")
    lines = [head, tr._("Audience: %(audience)s", audience=view.audience)]
    if view.status is SendStatus.SCHEDULED:
        lines.append(tr._("Waiting for approval: /bulletin approve %(id)s", id=bulletin_id)
                     if view.waiting_for_approval and not view.timed else
                     tr._("Scheduled for %(time)s.", time=when(view.due_at)))
        if view.waiting_for_approval and view.timed:
            lines.append(tr._("Waiting for approval: /bulletin approve %(id)s", id=bulletin_id))
        return "\n".join(lines)
    if progress is None:
        return "\n".join(lines)
    if view.status is SendStatus.SENDING:
        lines.append(progress_line(tr, bulletin_id, progress))
    elif view.status is SendStatus.CANCELLED and view.started_at is None:
        lines.append(tr._("Cancelled before it was sent."))
        return "\n".join(lines)
    elif view.status is SendStatus.CANCELLED:
        lines.append(tr._("Cancelled while sending."))
    elif view.finished_at is not None:
        lines.append(tr._("Finished at %(time)s.", time=when(view.finished_at)))
    lines.extend(counts(tr, progress))
    note = late_note(tr, view)
    if note:
        lines.append(note)
    return "\n".join(lines)


def listing(tr: Translator, rows: list[Listing]) -> str:
    if not rows:
        return tr._("No bulletins yet. Write one with /bulletin new, or store a file with civicbot bulletin create.")
    lines = []
    for row in rows:
        view = row.send
        if view is None:
            state = tr._("not sent")
        elif view.status is SendStatus.SCHEDULED:
            state = tr._("waiting for approval") if view.waiting_for_approval else \
                tr._("scheduled for %(time)s", time=when(view.due_at))
        elif view.status is SendStatus.SENDING:
            state = tr._("sending")
        elif view.status is SendStatus.CANCELLED:
            state = tr._("cancelled")
        else:
            state = tr._("sent on %(time)s", time=when(view.finished_at or view.due_at))
        lines.append(tr._("%(id)s – version %(version)s, %(languages)s, %(approval)s, %(state)s", id=row.bulletin_id,
                          version=row.version, languages=", ".join(row.languages),
                          approval=tr._("approved") if row.approved else tr._("not approved"), state=state))
    return "\n".join(lines)
