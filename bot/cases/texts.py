"""Every wording of contact requests, for the person and for staff, in one place.

Staff-room texts are written in the deployment's default language; a person's texts in
theirs. Values are isolated by the translator, so references and numbers keep their place
in Arabic and Sorani sentences.
"""

from __future__ import annotations

import datetime as dt

from bot.cases.domain import Topic, Way, When
from bot.core.i18n import N_, Translator

# -- names ----------------------------------------------------------------------------------

TOPIC_CHOICES = {
    Topic.INFORMATION: N_("Share information or documentation"),
    Topic.MEETING: N_("Ask for a meeting"),
    Topic.SAFETY: N_("A safety concern"),
    Topic.OTHER: N_("Something else"),
}
TOPIC_SHORT = {  # what staff see in a notice: "New case C-7K3Q · meeting · Arabic"
    Topic.INFORMATION: N_("information"),
    Topic.MEETING: N_("meeting"),
    Topic.SAFETY: N_("safety"),
    Topic.OTHER: N_("other"),
}
WAYS = {
    Way.MESSAGES: N_("By message, here"),
    Way.CALL: N_("A phone or video call, arranged here"),
    Way.IN_PERSON: N_("A meeting in person, arranged here"),
    Way.STAFF_CHOOSE: N_("Staff may suggest"),
}
WHENS = {
    When.ANY_TIME: N_("Any time"),
    When.MORNING: N_("Mornings"),
    When.AFTERNOON: N_("Afternoons"),
    When.EVENING: N_("Evenings"),
}
LANGUAGES = {
    "en": N_("English"),
    "ar": N_("Arabic"),
    "ckb": N_("Sorani Kurdish"),
    "ku": N_("Kurmanji Kurdish"),
}
PLATFORMS = {"telegram": "Telegram", "matrix": "Matrix", "console": "console"}


def topic_label(tr: Translator, topic: str) -> str:
    return tr._(TOPIC_CHOICES[Topic(topic)]) if topic in set(Topic) else topic


def topic_short(tr: Translator, topic: str) -> str:
    return tr._(TOPIC_SHORT[Topic(topic)]) if topic in set(Topic) else topic


def language_name(tr: Translator, code: str) -> str:
    return tr._(LANGUAGES[code]) if code in LANGUAGES else code


def platform_name(platform: str) -> str:
    return PLATFORMS.get(platform, platform)


def when_label(tr: Translator, when: str) -> str:
    """A :class:`When` choice in words, or what the person typed themselves."""
    return tr._(WHENS[When(when)]) if when in set(When) else when


def duration(tr: Translator, span: dt.timedelta) -> str:
    """``"3 hours"``: minutes (at least one) below an hour, hours below three days, then days."""
    minutes = max(int(span.total_seconds() // 60), 1)
    if minutes < 60:
        return tr.n_("%(n)s minute", "%(n)s minutes", minutes)
    hours = minutes // 60
    if hours < 72:
        return tr.n_("%(n)s hour", "%(n)s hours", hours)
    return tr.n_("%(n)s day", "%(n)s days", hours // 24)


# -- the person -----------------------------------------------------------------------------

NOT_AVAILABLE = N_("Contact requests are not available yet.")
ALREADY_OPEN = N_(
    "You already have an open request, %(reference)s. Anything you write here goes to staff. "
    "/case shows its status; /withdraw closes it."
)
TELEGRAM_WARNING = N_(
    "Before you go on: Telegram can read this chat, because chats with bots are not end-to-end "
    "encrypted. Please give no details here unless you decide to continue."
)
TELEGRAM_MATRIX = N_(
    "For anything sensitive, please contact us on Matrix instead, which is end-to-end encrypted: "
    "%(address)s"
)
CONTINUE_HERE = N_("Continue here")
USE_MATRIX = N_("I will use Matrix")
STOP = N_("Stop")
GO_TO_MATRIX = N_("Good. On Matrix, write to %(address)s and send /contact there. Nothing was sent to staff.")
STOPPED = N_("Nothing was sent to staff.")
ASK_TOPIC = N_("What would you like to talk to staff about?")
ASK_DESCRIPTION = N_(
    "If you wish, describe briefly what it is about (at most %(limit)s characters), or choose “Skip”. "
    "Staff will ask you for what they need: please do not write names or places that could put anyone at risk."
)
TELEGRAM_REMINDER = N_("Remember that Telegram can read this chat.")
SKIP = N_("Skip")
DESCRIPTION_TOO_LONG = N_("That is too long: at most %(limit)s characters. Please shorten it, or choose “Skip”.")
ASK_WAY = N_("How would you prefer staff to contact you?")
ASK_WHEN = N_(
    "When is it safe for staff to contact you? Choose one, or type a short answer "
    "(for example: “weekdays after 6 pm”)."
)
WHEN_TOO_LONG = N_("Please keep it under %(limit)s characters, or choose one of the options.")
CONFIRM = N_("Your request:\nTopic: %(topic)s\nDescription: %(description)s\nContact: %(way)s, %(when)s\n\nSend it to staff?")
DESCRIPTION_GIVEN = N_("given (not repeated here)")
DESCRIPTION_NONE = N_("none")
SEND = N_("Send")
CANCEL = N_("Cancel")
CANCELLED = N_("Your request was not sent. Nothing was stored.")
RECEIPT = N_(
    "Your request has been sent to staff. Your reference is %(reference)s.\n"
    "What happens next: a staff member will take it up and answer you here; their messages begin with "
    "“Message from staff about %(reference)s”. Staff never see your account.\n"
    "Anything you write here from now on goes to staff. /case shows the status of your request, "
    "/withdraw closes it."
)
SENT_TO_STAFF = N_("Sent to staff ✓")
CASE_FLOOD = N_(
    "You have sent many messages to staff in the last hour. Please wait for their answer: this message "
    "was not sent."
)
NO_OPEN_CASE = N_("You have no open request. Send /contact to ask to talk to staff.")
STATUS = N_("Your request %(reference)s (%(topic)s) was sent %(age)s ago.")
STATUS_OPEN = N_("It is waiting for a staff member to take it up.")
STATUS_CLAIMED = N_("A staff member has taken it up.")
STATUS_LAST_STAFF = N_("Last message from staff: %(age)s ago.")
STATUS_NO_STAFF = N_("No message from staff yet.")
ASK_WITHDRAW = N_(
    "Withdraw your request %(reference)s? Staff will be told that you withdrew it, and you will receive "
    "no more messages about it."
)
WITHDRAW_YES = N_("Yes, withdraw it")
WITHDRAW_NO = N_("No, keep it")
WITHDRAWN = N_("Your request %(reference)s is withdrawn. Send /contact if you want to talk to staff again.")
KEPT = N_("Your request %(reference)s stays open.")
FROM_STAFF = N_("Message from staff about %(reference)s:")
CLOSED_FOR_PERSON = N_(
    "Staff have closed your request %(reference)s. If you need to talk to staff again, send /contact."
)

# -- staff ------------------------------------------------------------------------------------

CASE_LINE = N_("%(reference)s · %(topic)s · %(language)s · %(platform)s")
NEW_CASE = N_("New case %(case)s")
ROUTED_TO = N_("For: %(members)s")
ROUTED_ALL = N_("For: all staff")
DESCRIPTION = N_("Description: %(text)s")
NO_DESCRIPTION = N_("No description.")
PREFERENCE = N_("Preferred contact: %(way)s, %(when)s")
NO_PREFERENCE = N_("not stated")
THREAD_HINT = N_(
    "Reply in this thread to answer the person (they never see who answered). "
    "/claim %(reference)s takes the case."
)
CONTENT_ELSEWHERE = N_(
    "The content is in the end-to-end encrypted staff room, or with civicbot cases show. "
    "Answer with /reply %(reference)s <text>."
)
FROM_PERSON = N_("%(reference)s · from the person:")
FROM_PERSON_NO_CONTENT = N_("%(reference)s: a new message from the person.")
ANSWER_SENT_ECHO = N_("%(reference)s · answer sent to the person:")
ANSWER_SENT_NO_CONTENT = N_("%(reference)s: a staff member answered.")
CLAIMED_NOTICE = N_("%(reference)s was claimed by %(who)s.")
CLOSED_NOTICE = N_("%(reference)s was closed by %(who)s; the person was told.")
WITHDRAWN_NOTICE = N_("%(reference)s was withdrawn by the person.")
ERASED_NOTICE = N_("%(reference)s was withdrawn: the person erased their data.")
REMIND_CLAIM = N_("Reminder: %(reference)s (%(topic)s) has not been claimed for %(age)s.")
REMIND_ANSWER = N_("Reminder: the person in %(reference)s has been waiting for an answer for %(age)s.")
COMMAND_LINE = N_("the command line")

# staff command answers
CASES_NONE = N_("No open cases.")
CASES_SUMMARY = N_(
    "Open cases: %(open)s. Not claimed: %(unclaimed)s (over %(claim_hours)s h: %(claim_late)s). "
    "Waiting for staff: %(waiting)s (over %(answer_hours)s h: %(answer_late)s)."
)
CASES_ROW = N_("%(case)s · opened %(age)s ago · %(claim)s · %(waiting)s")
NOT_CLAIMED = N_("not claimed")
CLAIMED_BY_YOU = N_("claimed by you")
CLAIMED_BY = N_("claimed by %(who)s")
WAITING = N_("waiting %(age)s")
ANSWERED = N_("answered")
LATE = N_("overdue")
USAGE_CLAIM = N_("Usage: /claim C-XXXX")
USAGE_CLOSE = N_("Usage: /close C-XXXX")
USAGE_REPLY = N_("Usage: /reply C-XXXX your answer")
UNKNOWN_CASE = N_("There is no case %(reference)s.")
CASE_CLOSED = N_("%(reference)s is closed; the person can send a new request if they need to.")
CASE_WITHDRAWN = N_("%(reference)s was withdrawn by the person; nothing can be sent to them about it.")
CASE_ERASED = N_("%(reference)s was withdrawn: the person erased their data, so nothing can be sent to them.")
CLAIMED_DONE = N_("%(reference)s is yours now.")
CLAIMED_ALREADY = N_("%(reference)s is already yours.")
CLAIMED_TAKEN_OVER = N_("%(reference)s was claimed by %(who)s; it is yours now.")
REPLY_SENT = N_("Sent to the person in %(reference)s ✓")
REPLY_TOO_LONG = N_(
    "That answer is too long for the person's messaging service: %(length)s characters, at most %(limit)s. "
    "Please shorten it or send it in parts."
)
REPLY_EMPTY = N_("The answer is empty; nothing was sent.")
CLOSED_DONE = N_("%(reference)s is closed; the person was told.")
NOT_STAFF_THREAD = N_("Only staff members can answer cases; nothing was sent.")
