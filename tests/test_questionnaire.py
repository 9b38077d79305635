"""The question engine without surveys: a questionnaire written as typed data (no YAML), asked by
a dialog of another feature (as check-ins do), through the real router and dialog engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.conversation.commands import Command
from bot.conversation.engine import DialogEngine, State, menu_state
from bot.conversation.feature import Feature
from bot.conversation.turn import Turn
from bot.core.security import KeyRing
from bot.features import FEATURES
from bot.surveys.asking import QuestionnaireDialog, new_progress
from bot.surveys.questions import Condition, Option, Question, Questionnaire, QuestionType
from tests.support import make_settings, open_chat

CHECK = Questionnaire(languages=("en",), questions=(
    Question("members", QuestionType.NUMBER, {"en": "How many members met this month?"}, min=0, max=500),
    Question("needs", QuestionType.YES_NO, {"en": "Do you need support from the mechanism?"}),
    Question("which", QuestionType.MULTIPLE_CHOICE, {"en": "Which support?"},
             options=(Option("legal", {"en": "Legal"}), Option("psycho", {"en": "Psychosocial"})),
             show_if=Condition("needs", ("yes",))),
    Question("note", QuestionType.TEXT, {"en": "Anything else?"}, optional=True, max_length=200),
))
SUBMITTED: list[dict[str, Any]] = []


class MonthlyCheck(QuestionnaireDialog):
    name = "monthly-check"

    def questionnaire(self, turn: Turn, state: State) -> Questionnaire:
        return CHECK

    async def save(self, turn: Turn, state: State) -> State | None:
        return state  # the dialog state (sealed) is progress enough here

    async def finish(self, turn: Turn, questionnaire: Questionnaire, data: dict[str, Any]) -> State | None:
        SUBMITTED.append(dict(data["answers"]))
        turn.say("Thank you.")
        return menu_state(turn)

    def prompt(self, turn: Turn, state: State):  # type: ignore[no-untyped-def]
        return self.question_prompt(turn, state)

    async def on_choice(self, turn: Turn, state: State, key: str) -> State | None:
        return await self.on_question_choice(turn, state, key)


async def check(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    dialog = MonthlyCheck()
    state = await dialog.begin(turn, State(dialog.name, "start", turn.tr.language, new_progress()))
    assert state is not None
    await engine.show(turn, state)


CHECKS = Feature(name="checks", commands=(Command("check", check, "Monthly check", needs_participant=True),),
                 dialogs=(MonthlyCheck(),))


async def test_a_questionnaire_in_code_is_asked_by_another_features_dialog(sqlite_url: str, tmp_path: Path,
                                                                            keys: KeyRing) -> None:
    async with open_chat(make_settings(sqlite_url, tmp_path), keys, features=(*FEATURES, CHECKS)) as chat:
        person = chat.person("5")
        for step in ("/start", "4", "1", "1"):
            await person.send(step)
        assert "Question \u20681\u2069 of \u20684\u2069" in (await person.send("/check"))[-1].text  # at most 4: "which" if needed
        assert "not a valid answer" in (await person.send("many"))[0].text
        assert "Do you need support" in (await person.send("١٢"))[-1].text  # twelve, Eastern Arabic digits
        await person.send("yes")
        await person.send("Legal")
        assert "Which support?" in person.last.text and "✓ Legal" in [c.label for c in person.last.choices]
        await person.send("done")
        assert "Anything else?" in person.last.text
        await person.send("skip")
        assert SUBMITTED[-1] == {"members": 12, "needs": "yes", "which": ["legal"], "note": None}
