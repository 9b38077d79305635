"""``/bulletin new``: a staff member writes a bulletin in chat, language by language, sees each
text exactly as readers will, then picks the audience (with its size) and the time.

The draft lives in the dialog state (sealed, like every dialog state), so a restart loses
nothing. Writing happens in a private chat with the bot: in a shared staff room the draft
would mix with everyone's messages.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bot.bulletins import texts
from bot.bulletins.actions import BadTime, BulletinActions, parse_time
from bot.bulletins.audience import AudienceError, parse_audience
from bot.bulletins.definition import ID_PATTERN, LANGUAGES, MAX_BODY_CHARS, Bulletin, make_text
from bot.bulletins.service import BulletinRefused, Bulletins, NoticeTarget, audience_refusal
from bot.conversation.engine import Dialog, Prompt, State
from bot.conversation.turn import Turn
from bot.core.i18n import ENDONYMS
from bot.core.model import Choice
from bot.storage.models import BulletinRecord

NAME = "bulletin_new"


def actions(turn: Turn) -> BulletinActions:
    return BulletinActions(turn.services.get(Bulletins), turn.services.audit)


def in_staff_room(turn: Turn) -> bool:
    staff = turn.services.settings.staff
    address = turn.inbound.address
    return (address.platform == "telegram" and staff.telegram_chat is not None
            and address.value == str(staff.telegram_chat)) or \
        (address.platform == "matrix" and staff.matrix_room is not None and address.value == staff.matrix_room)


def composer_state(turn: Turn) -> State:
    suggested = f"bulletin-{turn.services.get(Bulletins).now():%Y-%m-%d}"
    return State(NAME, "id", turn.tr.language, {"suggested": suggested, "texts": []})


class ComposerDialog(Dialog):
    name = NAME

    def prompt(self, turn: Turn, state: State) -> Prompt:
        _ = turn.tr._
        data = state.data
        step = state.step
        language = ENDONYMS.get(data.get("language", ""), "")
        if step == "id":
            return Prompt(_("New bulletin. Give it a short id: lowercase Latin letters, digits and -, like "
                            "2026-06-update. Or use the one suggested."),
                          (Choice("suggested", _("Use %(id)s", id=data["suggested"])),), accepts_text=True,
                          exact_labels=True)
        if step == "language":
            done = [lang for lang, _t, _b in data["texts"]]
            choices = [Choice(f"lang:{code}", ENDONYMS[code]) for code in LANGUAGES if code not in done]
            if done:
                choices.append(Choice("finish", _("Finished: save the bulletin")))
            choices.append(Choice("discard", _("Discard this bulletin")))
            text = _("Which language do you write first? Readers whose language is missing get the first one.") \
                if not done else _("Written so far: %(languages)s. Which language next?",
                                   languages=", ".join(ENDONYMS[code] for code in done))
            return Prompt(text, tuple(choices))
        if step == "title":
            return Prompt(_("Title in %(language)s (one line):", language=language), accepts_text=True)
        if step in ("body", "body_more"):
            text = _("Now the text in %(language)s. Formatting: **bold**, *italic*, [text](https://address), a line "
                     "starting with - for a list, a blank line between paragraphs. You can send it in several "
                     "messages; choose Done when it is complete.", language=language) if step == "body" else \
                turn.tr.n_("Received: %(n)s character so far. Send more, or choose Done.",
                           "Received: %(n)s characters so far. Send more, or choose Done.", len(data["body"]))
            return Prompt(text, (Choice("done", _("Done")), Choice("restart", _("Start this text again"))),
                          accepts_text=True, exact_labels=True)
        if step == "preview":
            return Prompt(_("Above is exactly what readers in %(language)s will see. Keep it?", language=language),
                          (Choice("keep", _("Keep it")), Choice("rewrite", _("Write it again"))))
        if step == "audience":
            return Prompt(_("Who should receive %(id)s? Send all, or one or more of group:CODE, org:CODE, "
                            "lang:CODE.", id=data["id"]),
                          (Choice("all", _("Everyone who receives bulletins")),), accepts_text=True, exact_labels=True)
        if step == "when":
            return Prompt(data["preview"] + "\n\n" + _("When should it go out?"),
                          (Choice("now", _("Now")), Choice("later", _("At a time I choose")),
                           Choice("audience", _("Change the audience")), Choice("discard", _("Do not send it now"))))
        return Prompt(_("Send the date and time, like %(example)s, or 2026-06-05T09:00 for UTC.",
                        example=texts.TIME_EXAMPLE), accepts_text=True)

    async def on_choice(self, turn: Turn, state: State, key: str) -> State | None:
        _ = turn.tr._
        data = state.data
        if state.step == "id":
            return await self._set_id(turn, state, data["suggested"])
        if state.step == "language":
            if key == "discard":
                turn.say(_("The new bulletin was discarded."))
                return None
            if key == "finish":
                return await self._save(turn, state)
            data["language"] = key.split(":", 1)[1]
            return State(NAME, "title", state.language, data)
        if state.step in ("body", "body_more"):
            if key == "restart":
                data["body"] = ""
                return State(NAME, "body", state.language, data)
            return self._check_body(turn, state)
        if state.step == "preview":
            if key == "rewrite":
                data["body"] = ""
                return State(NAME, "title", state.language, data)
            data["texts"].append([data.pop("language"), data.pop("title"), data.pop("body")])
            return State(NAME, "language", state.language, data)
        if state.step == "audience":
            return await self._set_audience(turn, state, "all")
        if state.step == "when":
            if key == "now":
                return await self._send(turn, state, None)
            if key == "later":
                return State(NAME, "time", state.language, data)
            if key == "audience":
                return State(NAME, "audience", state.language, data)
            turn.say(_("%(id)s is saved and was not sent. Send it later with /bulletin send.", id=data["id"]))
            return None
        return state

    async def on_text(self, turn: Turn, state: State, text: str) -> State | None:
        _ = turn.tr._
        data = state.data
        if state.step == "id":
            return await self._set_id(turn, state, text.strip().lower())
        if state.step == "title":
            title = text.strip()
            if not title or "\n" in title or len(title) > 200:
                turn.say(_("The title must be one line of at most 200 characters. Please send it again."))
                return state
            data["title"], data["body"] = title, ""
            return State(NAME, "body", state.language, data)
        if state.step in ("body", "body_more"):
            joined = f"{data['body']}\n\n{text}" if data["body"] else text
            if len(joined) > MAX_BODY_CHARS:
                turn.say(_("This would make the text longer than %(limit)s characters, so this part was not added.",
                           limit=MAX_BODY_CHARS))
                return state
            data["body"] = joined
            return State(NAME, "body_more", state.language, data)
        if state.step == "audience":
            return await self._set_audience(turn, state, text)
        if state.step == "time":
            try:
                moment = parse_time(text)
            except BadTime:
                turn.say(texts.bad_time(turn.tr, text.strip()))
                return state
            return await self._send(turn, state, moment)
        return state

    # -- steps ---------------------------------------------------------------------------------

    async def _set_id(self, turn: Turn, state: State, bulletin_id: str) -> State:
        _ = turn.tr._
        if not ID_PATTERN.match(bulletin_id):
            turn.say(_("The id must be lowercase Latin letters, digits, - or _ (at most 48), like 2026-06-update."))
            return state
        if await turn.session.get(BulletinRecord, bulletin_id) is not None:
            turn.say(_("A bulletin with the id %(id)s already exists. Please choose another id.", id=bulletin_id))
            return state
        state.data["id"] = bulletin_id
        return State(NAME, "language", state.language, state.data)

    def _check_body(self, turn: Turn, state: State) -> State:
        data = state.data
        if not data["body"].strip():
            turn.say(turn.tr._("The text is still empty. Please send it first."))
            return State(NAME, "body", state.language, data)
        text, found = make_text(data["language"], data["title"], data["body"])
        if found:
            turn.say(turn.tr._("Please correct this and send the text again:") + "\n" + texts.problems(turn.tr, found))
            data["body"] = ""
            return State(NAME, "body", state.language, data)
        preview = Bulletin(data["id"], (text,))
        turn.say(turn.tr._("Preview in %(language)s:", language=ENDONYMS[text.language]))
        turn.replies.append(turn.services.get(Bulletins).message(preview, text.language, turn.inbound.platform))
        return State(NAME, "preview", state.language, data)

    async def _save(self, turn: Turn, state: State) -> State | None:
        data = state.data
        written = [make_text(lang, title, body)[0] for lang, title, body in data["texts"]]
        bulletin = Bulletin(data["id"], tuple(written))
        try:
            created = await actions(turn).create(turn.session, bulletin, turn.staff_actor)
        except BulletinRefused as exc:
            turn.say(texts.refusal(turn.tr, exc, data["id"]))
            return None
        turn.say(texts.created(turn.tr, created, turn.services.get(Bulletins).settings.require_approval))
        data["texts"] = []  # saved: the draft need not be kept in the dialog state any more
        return State(NAME, "audience", state.language, data)

    async def _set_audience(self, turn: Turn, state: State, typed: str) -> State:
        data = state.data
        try:
            audience = parse_audience([typed])
            service = turn.services.get(Bulletins)
            bulletin, _version = await service.bulletin(turn.session, data["id"])
            preview = await service.preview(turn.session, bulletin, audience)
        except AudienceError as exc:
            turn.say(texts.refusal(turn.tr, audience_refusal(exc), data["id"]))
            return state
        except BulletinRefused as exc:
            turn.say(texts.refusal(turn.tr, exc, data["id"]))
            return state
        if preview.total == 0:
            turn.say(turn.tr._("Nobody who receives bulletins is in this audience. Please choose another."))
            return state
        data["audience"] = str(audience)
        data["preview"] = texts.preview(turn.tr, preview, bulletin.first.language)
        return State(NAME, "when", state.language, data)

    async def _send(self, turn: Turn, state: State, at: dt.datetime | None) -> State | None:
        data: dict[str, Any] = state.data
        try:
            outcome = await actions(turn).send(
                turn.session, data["id"], [data["audience"]], at, turn.staff_actor, turn.tr.language,
                [NoticeTarget(turn.inbound.address, turn.tr.language)],
            )
        except BulletinRefused as exc:
            turn.say(texts.refusal(turn.tr, exc, data["id"]))
            return State(NAME, "time" if at is not None else "when", state.language, data)
        assert outcome.view is not None
        turn.say(texts.send_requested(turn.tr, outcome.view, outcome.preview))
        return None
