"""Issue 5 on Matrix: the families-of-the-missing survey answered end to end in an encrypted chat.

The bot runs the real router, services and outbox sender behind the Matrix transport, against
the suite's Synapse. A staff member (a second, independent client listed in ``staff.members``)
sets up the organisation, focus group and invitation code and launches the survey; the
participant onboards and answers only by typing: numbers, labels and a label prefix, with a
skip, branching, an invalid answer, "back", and a real restart of the bot in the middle (a new
transport on the same store and database, the same device). Mirrors the in-process scenario in
``tests/test_surveys.py``; then the stored response and the CSV export are checked.
"""

from __future__ import annotations

import re
from pathlib import Path

from matrix_support import FAST, MakePeer, bot_settings, open_conversation, unique
from synapse_server import RegisteredUser, SynapseServer

from bot.app import Bot, assemble, build_platform_transports
from bot.config import (
    LimitsSettings,
    OutboxSettings,
    Settings,
    StaffSettings,
    SurveySettings,
)
from bot.core.security import KeyRing
from bot.surveys.service import Surveys
from bot.transports.matrix import MatrixTransport
from tests.support import check_families_response, store_anonymous_answers

SURVEYS = Path(__file__).resolve().parents[2] / "config" / "surveys"
CODE = re.compile(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}")
SURVEY = "families-of-the-missing"
COMMENT = "Please find my brother, taken from Homs in 2014"


def fsi(value: object) -> str:
    """A value as the bot's texts interpolate it: isolated, so it reads right in any direction."""
    return f"\u2068{value}\u2069"


async def start_bot(settings: Settings, keys: KeyRing) -> tuple[Bot, MatrixTransport]:
    """One run of the bot, wired as ``civicbot run`` wires it: database, services, Matrix transport,
    router, outbox sender. Stopping and starting again is a real restart: everything is rebuilt
    from the settings, the Matrix store (login, device, encryption keys) and the database file."""
    bot = await assemble(settings, keys=keys,
                         transports=lambda services: build_platform_transports(services, matrix=FAST))
    await bot.start()
    transport = bot.transports["matrix"]
    assert isinstance(transport, MatrixTransport)
    return bot, transport


def _settings(synapse: SynapseServer, bot: RegisteredUser, staff_user_id: str, tmp_path: Path) -> Settings:
    return bot_settings(synapse, bot, tmp_path,
        staff=StaffSettings(members=[f"matrix:{staff_user_id}"]),
        surveys=SurveySettings(directory=SURVEYS),
        outbox=OutboxSettings(poll_seconds=0.5),
        limits=LimitsSettings(flood_messages=10_000),  # a scripted person types faster than anyone could
    )


async def test_families_survey_on_matrix_by_numbers_and_labels_with_a_restart(
        synapse: SynapseServer, make_peer: MakePeer, tmp_path: Path) -> None:
    bot_user = synapse.register(unique("bot"))
    staff_peer, person_peer = await make_peer(), await make_peer()
    keys = KeyRing.generate()
    settings = _settings(synapse, bot_user, staff_peer.user_id, tmp_path)
    bot, transport = await start_bot(settings, keys)
    try:
        device = transport.device_id
        assert device is not None
        # -- staff: organisation, focus group, invitation code -------------------------------
        staff = await open_conversation(staff_peer, bot_user.user_id)
        await staff.say("/org add families association Families Association", "Organisation \u2068families\u2069 added")
        await staff.say("/group add fg-missing focus_group families", "Group \u2068fg-missing\u2069 added")
        invite = (await staff.say("/invite families fg-missing", "Invitation code:"))[-1]
        code_match = CODE.search(invite.body)
        assert code_match, invite.body
        code = code_match.group(0)

        # -- the participant onboards by typing a label and numbers, and joins with the code --
        chat = await open_conversation(person_peer, bot_user.user_id)
        await chat.say("/start", "Choose your language.")
        await chat.say("English", "Do you agree to your information being handled this way?")
        await chat.say("1", "invitation code")
        await chat.say(code, "You have joined \u2068families\u2069", "Would you like to receive it?")
        await chat.say("1", "You are all set")

        # -- launch; the invitation comes through the outbox, encrypted ------------------------
        before_launch = len(chat.messages)
        launched = await staff.say(f"/survey launch {SURVEY} fg-missing", "Survey launched")
        assert f"{fsi(1)} person invited" in launched[-1].body
        invitation = (await chat.expect("New survey: \u2068Needs of families of the missing\u2069",
                                        since=before_launch))[-1]
        assert "Send /surveys to answer." in invitation.body and invitation.decrypted

        intro = (await chat.say("/surveys", "anonymous"))[-1]
        assert intro.body.endswith("1. Start\n2. Later"), "choices are a numbered list"
        first = (await chat.say("start", f"Question {fsi(1)} of {fsi(9)}"))[-1]  # "to whom" only if reported
        assert "relationship to the missing person" in first.body and "2. Spouse" in first.body
        since = (await chat.say("2", "Since when"))[-1]  # spouse, by number
        assert since.body.endswith("5. Skip\n6. Back"), "an optional question offers skip, then back"
        await chat.say("Skip", "Have you reported")  # optional: skipped by its label
        whom = (await chat.say("yes", "To whom"))[-1]  # reported: yes -> "to whom" (shown only if yes)
        assert f"Question {fsi(4)} of {fsi(9)}" in whom.body and "5. Done\n6. Back" in whom.body

        ticked = (await chat.say("1", "Selected:"))[-1]  # multiple choice: tick two by number ...
        assert "1. ✓ A local organisation" in ticked.body
        both = (await chat.say("4", "Selected:"))[-1]
        assert f"Selected: {fsi('A local organisation, The authorities')}" in both.body
        one = (await chat.say("1", "Selected:"))[-1]  # ... untick one ...
        assert f"Selected: {fsi('The authorities')}" in one.body and "1. A local organisation" in one.body
        await chat.say("done", "What does your family need most?")  # ... then "done"

        await chat.say("Legal help", "✓ Legal help")  # by label
        await chat.say("fin", "✓ Financial support")  # by an unambiguous prefix of a label
        await chat.say("5", "✓ Civil documents")  # by number
        refused = await chat.say("Safety", "at most \u20683\u2069 options", "What does your family need most?")
        assert "✓ Safety" not in refused[-1].body
        await chat.say("done", "How much do you trust")

        # An invalid answer: "6" on the 1-5 scale is refused clearly and the question comes again.
        invalid = await chat.say("6", "not a valid answer", "How much do you trust")
        assert "Please answer with a number from \u20681\u2069 to \u20685\u2069." in invalid[-2].body
        assert "\u2022 Back" in invalid[-1].body and "6. Back" not in invalid[-1].body  # a scale: words
        back = (await chat.say("back", "What does your family need most?"))[-1]
        assert sum(line.split(". ", 1)[-1].startswith("✓") for line in back.body.split("\n")) == 3, \
            "the needs question again, as it was answered"
        await chat.say("done", "How much do you trust")
        household = (await chat.say("4", "How many people live in your household?"))[-1]
        assert f"Question {fsi(7)} of {fsi(9)}" in household.body
    finally:
        await bot.stop()

    # -- the bot restarts in the middle of the survey: same store, same database, same device --
    bot, transport = await start_bot(settings, keys)
    try:
        assert transport.device_id == device
        invalid = await chat.say("many", "not a valid answer")
        assert len(invalid) == 1, "the first reply after the restart answers the new message: nothing redone"
        assert f"Please answer with a number from {fsi(1)} to {fsi(30)}." in invalid[-1].body
        await chat.say("٥", "How would you prefer to receive updates")  # five, in Eastern Arabic digits
        await chat.say("through this bot", "anything else you would like the mechanism to know")  # by label
        closing = await chat.say(COMMENT, "Thank you. Your answers will help", "Main menu")
        assert len(closing) == 2
        assert all(m.decrypted for m in chat.messages + staff.messages), "every bot message was end-to-end encrypted"
        assert person_peer.client.rooms[chat.room_id].encrypted

        # -- the stored response: anonymous, answers as given, free text sealed ----------------
        services = bot.services
        assert await store_anonymous_answers(services) == 1
        async with services.database.sessions() as session:
            row = await check_families_response(session, services.get(Surveys), COMMENT)
    finally:
        await bot.stop()

    # -- the export: one row, free text decrypted there only, no platform ids ----------------
    assert (row["response"], row["language"]) == ("1", "en")
    exported = ",".join(row) + "," + ",".join(row.values())
    for identifier in (person_peer.user_id, staff_peer.user_id, chat.room_id, staff.room_id, device,
                       keys.pseudonym("matrix", person_peer.user_id)):
        assert identifier not in exported, "the export carries no platform ids"
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("civicbot.db"))
    assert raw and COMMENT.encode() not in raw, "the free text is not in the database file"
