"""Survey commands: /surveys for participants; /survey and /results for staff."""

from __future__ import annotations

from bot.conversation.commands import Command, Usage
from bot.conversation.engine import DialogEngine
from bot.conversation.turn import Turn
from bot.core.i18n import N_
from bot.surveys import results as survey_results
from bot.surveys.dialog import offer_surveys
from bot.surveys.service import Surveys, SurveyUnavailable


async def surveys(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    state = await offer_surveys(turn)
    if state is not None:
        await engine.show(turn, state)


async def survey(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    _ = turn.tr._
    service = turn.services.get(Surveys)
    verb = args[0].lower() if args else ""
    if verb == "list":
        lines = []
        for definition in sorted(service.definitions.values(), key=lambda s: s.id):
            runs = await service.runs(turn.session, definition.id)
            open_runs = sum(1 for r in runs if r.status == "open")
            lines.append(_("%(id)s: %(title)s (%(open)s open, %(total)s launched)", id=definition.id,
                           title=definition.text(definition.title, turn.tr.language), open=open_runs, total=len(runs)))
        turn.say("\n".join(lines) if lines else _("No surveys are defined."))
        return
    again = "--again" in args[1:]
    positional = [a for a in args[1:] if a != "--again"]
    if verb == "launch" and len(positional) == 2:
        survey_id, group = positional[0], positional[1].lower()
        try:
            launch = await service.launch(turn.session, survey_id, group, actor=turn.staff_actor, again=again)
        except SurveyUnavailable as exc:
            turn.say({"group": _("There is no group with the code %(code)s.", code=group),
                      "dates": _("The survey %(id)s is outside its open and close dates.", id=survey_id),
                      "already_open": _("The survey %(id)s is already open for the group %(code)s, so it was "
                                        "not launched again. Close it first, or add --again to launch a "
                                        "second run.", id=survey_id, code=group)}
                     .get(exc.reason, _("There is no survey with the id %(id)s.", id=survey_id)))
            return
        turn.say(turn.tr.n_("Survey launched: %(n)s person invited.", "Survey launched: %(n)s people invited.",
                            launch.invited))
        return
    if verb == "close" and len(args) == 2:
        try:
            await service.close(turn.session, args[1], actor=turn.staff_actor)
        except SurveyUnavailable:
            turn.say(_("There is no survey with the id %(id)s.", id=args[1]))
            return
        turn.say(_("Survey %(id)s closed; no more answers are accepted.", id=args[1]))
        return
    turn.say(_("Usage: /survey list, /survey launch <survey> <group> [--again], /survey close <survey>"))


async def results(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    _ = turn.tr._
    if len(args) != 1:
        turn.say(_("Usage: /results <survey>"))
        return
    try:
        definition = turn.services.get(Surveys).definition(args[0])
    except SurveyUnavailable:
        turn.say(_("There is no survey with the id %(id)s.", id=args[0]))
        return
    minimum = turn.services.settings.surveys.min_group_size
    computed = await survey_results.compute(turn.session, definition, turn.tr, minimum)
    await turn.services.audit.append(turn.session, turn.staff_actor, "survey.results", definition.id)
    turn.say(survey_results.render_text(computed, turn.tr), sensitive=True)
    chart = survey_results.render_chart(computed, turn.tr)
    if chart is not None:
        turn.say(_("Chart: %(title)s", title=definition.text(definition.title, turn.tr.language)),
                 sensitive=True, image=chart)


SURVEY_COMMANDS = (
    Command("surveys", surveys, N_("Answer an open survey"), needs_participant=True),
    Command("survey", survey, N_("List, launch or close surveys"), staff_only=True, usage=(
        Usage("list", N_("the surveys and how often each was launched")),
        Usage("launch <survey> <group>", N_("invite a group to answer a survey")),
        Usage("close <survey>", N_("stop accepting answers to a survey")),
    )),
    Command("results", results, N_("Results of a survey"), staff_only=True,
            usage=(Usage("<survey>", N_("response rate, counts and a chart")),)),
)
