"""The ``civicbot`` command: run, db upgrade, keys generate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from bot.config import ConfigError, Settings, load_settings
from bot.core.counts import counted
from bot.core.security import KeyFileError, KeyRing
from bot.transports.console import CONSOLE_USER

QUIET_LOGGERS = ("httpx", "httpcore", "apscheduler", "sqlalchemy", "aiosqlite", "asyncio", "nio", "peewee", "alembic")


CONFIG_HELP = "TOML configuration file (default: CIVICBOT_CONFIG, else defaults and CIVICBOT_* variables)"
VERBOSE_HELP = "more logging on standard error (never message content)"
ACTION_HELP = "one of the actions below ('... ACTION --help' describes each)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="civicbot", description="Secure dialogue bot for civil society.")
    parser.add_argument("--config", type=Path, metavar="FILE", help=CONFIG_HELP)
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB",
                                  help="what to do ('civicbot VERB --help' describes each)")
    # --config and -v are accepted after the verb too, at every level
    # (``civicbot db upgrade --config FILE``); SUPPRESS keeps a value given earlier.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)

    def verb(group: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:  # type: ignore[type-arg]
        return group.add_parser(name, help=text, description=text, parents=[common])

    run = verb(verbs, "run", "run every configured transport (with none, the console chat at a terminal)")
    run.add_argument("--console", action="store_true",
                     help="chat on this terminal or from a script (standard input and output)")
    run.add_argument("--as-staff", action="store_true", help="the console user is a staff member for this session")
    run.add_argument("--user", metavar="NAME", default=CONSOLE_USER,
                     help="who the console user is (default: %(default)s); each name is a person of their own, "
                          "with their own identity and language, e.g. a staff member and a participant "
                          "in two windows")

    db_verbs = verb(verbs, "db", "database maintenance").add_subparsers(dest="db_verb", required=True, metavar="ACTION", help=ACTION_HELP)
    verb(db_verbs, "upgrade", "apply migrations up to the newest (PostgreSQL: before starting the workers)")

    key_verbs = verb(verbs, "keys", "the key file").add_subparsers(dest="keys_verb", required=True, metavar="ACTION", help=ACTION_HELP)
    generate = verb(key_verbs, "generate", "create the key file (mode 0600); never overwrites one")
    generate.add_argument("--output", type=Path, metavar="PATH", help="where to write it (default: security.key_file)")
    rotate = verb(key_verbs, "rotate", "new master key; everything sealed again (stop the bot first)")
    rotate.add_argument("--retire", action="store_true",
                        help="then delete the old master keys: old backups become unreadable")

    audit_verbs = verb(verbs, "audit", "the staff action log").add_subparsers(dest="audit_verb", required=True,
                                                                            metavar="ACTION", help=ACTION_HELP)
    verb(audit_verbs, "verify", "check the hash chain; exits 1 if an entry was changed or removed")

    survey_verbs = verb(verbs, "survey", "survey definitions and runs").add_subparsers(
        dest="survey_verb", required=True, metavar="ACTION", help=ACTION_HELP)
    validate = verb(survey_verbs, "validate", "check definition files; exits non-zero on any error")
    validate.add_argument("files", type=Path, nargs="+", metavar="FILE", help="survey definition (YAML)")
    verb(survey_verbs, "list", "defined surveys and their runs")
    launch = verb(survey_verbs, "launch", "invite a group to answer a survey")
    launch.add_argument("survey_id", metavar="SURVEY", help="the survey's id (see 'civicbot survey list')")
    launch.add_argument("group", metavar="GROUP", help="the group's code")
    launch.add_argument("--again", action="store_true",
                        help="launch even though a run of this survey is open for the group")
    close = verb(survey_verbs, "close", "stop accepting answers; invitations not sent yet are cancelled")
    close.add_argument("survey_id", metavar="SURVEY", help="the survey's id; all its open runs are closed")
    export = verb(survey_verbs, "export", "one row per response; free text decrypted, no ids")
    export.add_argument("survey_id", metavar="SURVEY", help="the survey's id")
    export.add_argument("--format", choices=("csv", "xlsx"), default="csv",
                        help="csv (UTF-8 with BOM) or xlsx (default: %(default)s)")
    export.add_argument("--output", type=Path, metavar="FILE",
                        help="file to write, mode 0600 (default: standard output for csv; "
                             "SURVEY-YYYY-MM-DD.xlsx in the current directory for xlsx)")
    return parser


def _configure_logging(verbose: bool, quiet: bool) -> None:
    # A running platform bot logs what it does. Every other verb prints only its own output,
    # and in the console chat stdout is the conversation: logs go to stderr and stay quiet.
    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = args.verb == "run" and (args.console or False)
    try:
        settings = load_settings(args.config)
        _configure_logging(args.verbose, args.verb != "run" or console or not settings.has_platform)
        if args.verb == "run":
            from bot.app import run

            if (args.as_staff or args.user != CONSOLE_USER) and settings.has_platform and not args.console:
                print("civicbot: --user and --as-staff are for the console chat: add --console", file=sys.stderr)
                return 2
            return asyncio.run(run(settings, console=args.console, as_staff=args.as_staff, user=args.user,
                                   stdin=sys.stdin, stdout=sys.stdout, stderr=sys.stderr))
        if args.verb == "db":
            return asyncio.run(_db_upgrade(settings))
        if args.verb == "audit":
            return asyncio.run(_audit_verify(settings))
        if args.verb == "survey":
            from bot import survey_cli

            return survey_cli.main(args, settings)
        if args.keys_verb == "rotate":
            return asyncio.run(_keys_rotate(settings, args.retire))
        return _keys_generate(settings, args.output)
    except ConfigError as exc:
        print(f"civicbot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from bot.app import StartupError
        from bot.core.transport import TransportStartupError

        if isinstance(exc, (StartupError, KeyFileError, TransportStartupError)):
            print(f"civicbot: {exc}", file=sys.stderr)
            return 2
        raise


async def _db_upgrade(settings: Settings) -> int:
    from bot.storage import migrate
    from bot.storage.db import Database

    database = Database(settings.database.url)
    try:
        await migrate.upgrade(database)
        print(f"database at revision {await migrate.current_revision(database)}")
    finally:
        await database.dispose()
    return 0


async def _audit_verify(settings: Settings) -> int:
    from bot.services.audit import AuditLog
    from bot.storage.db import Database

    database = Database(settings.database.url)
    try:
        async with database.sessions() as session:
            check = await AuditLog().verify(session)
    finally:
        await database.dispose()
    if check.ok:
        print(f"audit log intact: {counted(check.entries, 'entry', 'entries')}")
        return 0
    print(f"audit log broken at entry {check.first_bad_id}: it was changed, or an entry before it was removed",
          file=sys.stderr)
    return 1


async def _keys_rotate(settings: Settings, retire: bool) -> int:
    """Order matters for crash safety: the new key is saved before anything uses it, and the
    old ones are dropped only after everything was sealed again."""
    from bot.services.key_rotation import reseal_database
    from bot.storage import migrate
    from bot.storage.db import Database
    from bot.transports.matrix_session import MatrixSessionStore

    path = settings.security.key_file
    keys = KeyRing.load(path).rotated()
    keys.save(path, overwrite=True)
    database = Database(settings.database.url)
    try:
        if database.is_sqlite:
            await migrate.upgrade(database)
        elif not await migrate.is_current(database):
            print("civicbot: database.url: the schema is not current; run 'civicbot db upgrade' first",
                  file=sys.stderr)
            return 2
        async with database.sessions.begin() as session:
            report = await reseal_database(session, keys)
    finally:
        await database.dispose()
    matrix_files = 0
    if settings.matrix.store_path.is_dir():
        matrix_files = MatrixSessionStore(settings.matrix.store_path, keys).reseal(keys)
    print(f"new master key {keys.current_key_id}: {counted(report.total, 'database value')} and "
          f"{counted(matrix_files, 'Matrix file')} sealed again")
    if retire:
        keys.retired().save(path, overwrite=True)
        print("old master keys deleted from the key file; backups made before now can no longer be read")
    return 0


def _keys_generate(settings: Settings, output: Path | None) -> int:
    path = output or settings.security.key_file
    KeyRing.generate().save(path)
    print(f"key file written to {path} (mode 0600); keep it out of database backups")
    return 0
