"""What check-ins say: the offer to contact persons, reminders, and the notices to staff.

The offer prompt is built here once and used both for the message the outbox delivers and by
the dialog that receives the answer, so a button pressed (or a number typed) on the delivered
message means the same choice the dialog sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.checkins.templates import CheckinTemplate, Flag, RaisedFlag
from bot.conversation.engine import Prompt
from bot.core.i18n import N_, Translator, typed
from bot.core.model import Choice, Outbound, PromptId

ANSWER, NOTHING_NEW, LATER = "answer", "nothing", "later"

FLAG_NAMES: Mapping[Flag, str] = {
    Flag.NEED: N_("urgent need"),
    Flag.CALL_REQUEST: N_("call requested"),
    Flag.SAFETY: N_("safety concern"),
}


def offer_prompt(tr: Translator, template: CheckinTemplate | None, *, reminder: bool = False) -> Prompt:
    """The check-in as a contact person first sees it: answer now, nothing new (one tap), or later.
    (``template`` is None only if its file was removed while a check-in was open.)"""
    if template is None:
        lines = [tr._("Check-in with your association")]
    else:
        survey = template.questionnaire
        lines = [template.title(tr.language), survey.text(survey.introduction, tr.language)]
    if reminder:
        lines.insert(0, tr._("Reminder: your association has not answered this check-in yet."))
    choices = (Choice(ANSWER, tr._("Answer now")), Choice(NOTHING_NEW, tr._("Nothing new")),
               Choice(LATER, tr._("Later")))
    return Prompt("\n\n".join(lines), choices, sensitive=True)


def offer_message(tr: Translator, template: CheckinTemplate, prompt_id: str | None, *, reminder: bool) -> Outbound:
    """The delivered check-in. With a prompt id its choices answer it at once; without one (the
    person is in the middle of something else) it says how to answer when they are ready."""
    prompt = offer_prompt(tr, template, reminder=reminder)
    if prompt_id is None:
        text = prompt.text + "\n\n" + tr._("When you are ready, send /checkin to answer.")
        return Outbound(text=text, direction=tr.direction, sensitive=True, language=tr.language)
    return Outbound(text=prompt.text, choices=prompt.choices, prompt_id=PromptId(prompt_id), direction=tr.direction,
                    sensitive=True, language=tr.language)


def flag_list(tr: Translator, flags: Iterable[Flag | str]) -> str:
    names = [tr._(FLAG_NAMES[Flag(f)]) for f in dict.fromkeys(flags)]
    return "، ".join(names) if tr.rtl else ", ".join(names)


def flag_notice(tr: Translator, *, code: str, name: str | None, seq: int, raised: Sequence[RaisedFlag],
                answers: Sequence[str] | None) -> str:
    """To the staff room at once. ``answers`` (the content) only where the room may show it."""
    label = f"{code} ({name})" if name and answers is not None else code
    head = tr._("Check-in %(cycle)s of association %(association)s raised: %(flags)s.", cycle=seq, association=label,
                flags=flag_list(tr, (r.flag for r in raised)))
    if answers is None:
        tail = tr._("The answers are not shown here. Read them with /checkin show %(code)s in the Matrix staff room.",
                    code=code)
        return f"{head}\n{tail}"
    ack = tr._("When it is taken care of: /checkin ack %(code)s", code=code)
    return "\n\n".join((head, "\n".join(answers), ack))


def silence_notice(tr: Translator, *, code: str, missed: int, last_answer: str | None) -> str:
    text = tr.n_("Association %(code)s has not answered the last check-in.",
                 "Association %(code)s has not answered the last %(n)s check-ins.", missed, code=code)
    if last_answer:
        text += "\n" + tr._("Last answer: %(date)s.", date=last_answer)
    else:
        text += "\n" + tr._("It has never answered a check-in.")
    return text


def unsent_notice(tr: Translator, *, code: str, seq: int) -> str:
    return tr._("Check-in %(cycle)s of association %(code)s was not sent: it has no reachable contact person or "
                "member. Make a contact-person code with /checkin invite %(code)s.", cycle=seq, code=code)


def answer_lines(tr: Translator, template: CheckinTemplate, answers: Mapping[str, Any], *,
                 nothing_new: bool) -> list[str]:
    """The answers as staff read them: question, then the chosen labels or the text."""
    if nothing_new:
        return [tr._("Nothing new.")]
    survey = template.questionnaire
    language = tr.language
    lines = []
    for question in survey.questions:
        value = answers.get(question.id)
        if value is None or value == []:
            continue
        labels = {o.id: survey.text(o.label, language) for o in question.options}
        if question.type == "yes_no":
            labels = {"yes": tr._("Yes"), "no": tr._("No")}
        values = value if isinstance(value, list) else [value]
        # Free text is what the contact person typed: shown neutral and isolated, never as markup.
        shown = [labels[str(v)] if str(v) in labels else typed(str(v)) for v in values]
        lines.append(f"• {survey.text(question.text, language)}\n  {'; '.join(shown)}")
    return lines or [tr._("(no answers given)")]
