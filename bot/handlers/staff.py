"""Staff commands: organisations, groups, invitation codes, whoami. Every change is audited."""

from __future__ import annotations

from bot.conversation.commands import Command, Usage
from bot.conversation.engine import DialogEngine
from bot.conversation.turn import Turn
from bot.core.i18n import N_
from bot.services.organisations import GROUP_KINDS, ORGANISATION_KINDS, valid_slug

MAX_NAME = 200


async def whoami(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    _ = turn.tr._
    role = {"admin": _("administrator"), "staff": _("staff member")}.get(turn.role.value, _("participant"))
    org_code = None
    if turn.participant is not None and turn.participant.organisation_id is not None:
        org = await turn.services.organisations.organisation_by_id(turn.session, turn.participant.organisation_id)
        org_code = org.code if org else None
    if org_code:
        turn.say(_("Your role: %(role)s. Organisation: %(organisation)s.", role=role, organisation=org_code))
    else:
        turn.say(_("Your role: %(role)s. You are not linked to an organisation.", role=role))


async def org(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    _ = turn.tr._
    orgs = turn.services.organisations
    if args[:1] == ["list"]:
        rows = await orgs.list_organisations(turn.session)
        if not rows:
            turn.say(_("No organisations yet. Add one with /org add <code> <kind> <name>."))
            return
        lines = [f"{o.code} ({o.kind}) {orgs.organisation_name(o) or ''}".strip() for o in rows]
        turn.say(_("Organisations:") + "\n" + "\n".join(lines), sensitive=True)
        return
    if len(args) < 3 or args[0] != "add":
        turn.say(_("Usage: /org add <code> <kind> <name>, or /org list. Kinds: %(kinds)s.",
                   kinds=", ".join(ORGANISATION_KINDS)))
        return
    code, kind, name = args[1].lower(), args[2].lower(), " ".join(args[3:])[:MAX_NAME]
    if not valid_slug(code) or kind not in ORGANISATION_KINDS:
        turn.say(_("The code must be 2 to 32 characters: Latin letters a-z, digits, - or _; the kind one of: "
                   "%(kinds)s.", kinds=", ".join(ORGANISATION_KINDS)))
        return
    if await orgs.organisation(turn.session, code) is not None:
        turn.say(_("An organisation with the code %(code)s already exists.", code=code))
        return
    await orgs.add_organisation(turn.session, code, kind, name or None)
    await turn.services.audit.append(turn.session, turn.staff_actor, "organisation.add", code, {"kind": kind})
    turn.say(_("Organisation %(code)s added.", code=code))


async def group(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    _ = turn.tr._
    orgs = turn.services.organisations
    if args[:1] == ["list"]:
        rows = await orgs.list_groups(turn.session)
        if not rows:
            turn.say(_("No groups yet. Add one with /group add <code> <kind> [organisation]."))
            return
        turn.say(_("Groups:") + "\n" + "\n".join(f"{g.code} ({g.kind})" for g in rows))
        return
    if len(args) < 3 or args[0] != "add":
        turn.say(_("Usage: /group add <code> <kind> [organisation], or /group list. Kinds: %(kinds)s.",
                   kinds=", ".join(GROUP_KINDS)))
        return
    code, kind = args[1].lower(), args[2].lower()
    if not valid_slug(code) or kind not in GROUP_KINDS:
        turn.say(_("The code must be 2 to 32 characters: Latin letters a-z, digits, - or _; the kind one of: "
                   "%(kinds)s.", kinds=", ".join(GROUP_KINDS)))
        return
    owner = None
    if len(args) > 3:
        owner = await orgs.organisation(turn.session, args[3].lower())
        if owner is None:
            turn.say(_("There is no organisation with the code %(code)s.", code=args[3]))
            return
    if await orgs.group(turn.session, code) is not None:
        turn.say(_("A group with the code %(code)s already exists.", code=code))
        return
    await orgs.add_group(turn.session, code, kind, owner)
    await turn.services.audit.append(turn.session, turn.staff_actor, "group.add", code, {"kind": kind})
    turn.say(_("Group %(code)s added.", code=code))


async def invite(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    _ = turn.tr._
    if not args:
        turn.say(_("Usage: /invite <organisation> [group ...]"))
        return
    orgs = turn.services.organisations
    organisation = await orgs.organisation(turn.session, args[0].lower())
    if organisation is None:
        turn.say(_("There is no organisation with the code %(code)s.", code=args[0]))
        return
    groups = []
    for code in args[1:]:
        found = await orgs.group(turn.session, code.lower())
        if found is None:
            turn.say(_("There is no group with the code %(code)s.", code=code))
            return
        groups.append(found)
    days = turn.services.settings.limits.invite_valid_days
    new = await orgs.create_invite(turn.session, organisation, groups, days)
    await turn.services.audit.append(
        turn.session, turn.staff_actor, "invite.create", organisation.code, {"groups": len(groups), "days": days}
    )
    text = turn.tr.n_(
        "Invitation code: %(code)s\nIt can be used once, within %(n)s day.",
        "Invitation code: %(code)s\nIt can be used once, within %(n)s days.",
        days, code=new.code,
    )
    turn.say(text, sensitive=True)


STAFF_COMMANDS = (
    Command("whoami", whoami, N_("Your role and organisation"), staff_only=True),
    Command("org", org, N_("Register or list organisations"), staff_only=True, usage=(
        Usage("add <code> <kind> <name>",
              N_("register an organisation (kinds: cso, association, signatory, other)")),
        Usage("list", N_("list organisations")),
    )),
    Command("group", group, N_("Create or list groups"), staff_only=True, usage=(
        Usage("add <code> <kind> [organisation]",
              N_("create a group (kinds: focus_group, association, audience)")),
        Usage("list", N_("list groups")),
    )),
    Command("invite", invite, N_("Make a single-use invitation code"), staff_only=True,
            usage=(Usage("<organisation> [group ...]", N_("make a single-use invitation code")),)),
)
