"""The ``civicbot`` command: run, db upgrade, keys, audit, survey, cases."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from bot.config import ConfigError, Settings, load_settings
from bot.core.security import KeyFileError, KeyRing

QUIET_LOGGERS = ("httpx", "httpcore", "apscheduler", "sqlalchemy", "aiosqlite", "asyncio", "nio", "peewee")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="civicbot", description="Secure dialogue bot for civil society.")
    parser.add_argument("--config", type=Path, help="TOML configuration file (or CIVICBOT_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="more logging (never message content)")
    verbs = parser.add_subparsers(dest="verb", required=True)
    # --config is accepted after the verb too (``civicbot run --config FILE``).
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", type=Path, default=argparse.SUPPRESS)

    run = verbs.add_parser("run", help="run every configured transport (or the console chat)", parents=[config])
    run.add_argument("--console", action="store_true", help="chat on this terminal (stdin/stdout)")
    run.add_argument("--as-staff", action="store_true", help="the console user is a staff member")

    db = verbs.add_parser("db", help="database maintenance", parents=[config])
    db_verbs = db.add_subparsers(dest="db_verb", required=True)
    db_verbs.add_parser("upgrade", help="apply migrations up to the newest")

    keys = verbs.add_parser("keys", help="key file", parents=[config])
    key_verbs = keys.add_subparsers(dest="keys_verb", required=True)
    generate = key_verbs.add_parser("generate", help="create the key file (mode 0600)")
    generate.add_argument("--output", type=Path, help="where to write it (default: security.key_file)")
    rotate = key_verbs.add_parser("rotate", help="new master key; everything sealed again (stop the bot first)")
    rotate.add_argument("--retire", action="store_true",
                        help="then delete the old master keys: old backups become unreadable")

    audit = verbs.add_parser("audit", help="the staff action log", parents=[config])
    audit_verbs = audit.add_subparsers(dest="audit_verb", required=True)
    audit_verbs.add_parser("verify", help="check the hash chain; exits 1 if an entry was changed or removed")

    from bot.cases.cli import add_parser as add_cases_parser

    add_cases_parser(verbs, [config])

    survey = verbs.add_parser("survey", help="survey definitions and runs", parents=[config])
    survey_verbs = survey.add_subparsers(dest="survey_verb", required=True)
    validate = survey_verbs.add_parser("validate", help="check definition files; exits non-zero on any error")
    validate.add_argument("files", type=Path, nargs="+")
    survey_verbs.add_parser("list", help="defined surveys and their runs")
    launch = survey_verbs.add_parser("launch", help="invite a group to answer a survey")
    launch.add_argument("survey_id")
    launch.add_argument("group")
    close = survey_verbs.add_parser("close", help="stop accepting answers")
    close.add_argument("survey_id")
    export = survey_verbs.add_parser("export", help="one row per response; free text decrypted, no ids")
    export.add_argument("survey_id")
    export.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    export.add_argument("--output", type=Path, help="file to write (default for csv: standard output)")
    return parser


def _configure_logging(verbose: bool, console: bool) -> None:
    # In the console chat, stdout is the conversation; logs go to stderr and stay quiet.
    level = logging.DEBUG if verbose else (logging.WARNING if console else logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = args.verb == "run" and (args.console or False)
    try:
        settings = load_settings(args.config)
        _configure_logging(args.verbose, console or (args.verb == "run" and not settings.has_platform))
        if args.verb == "run":
            from bot.app import run

            return asyncio.run(run(settings, console=args.console, as_staff=args.as_staff,
                                   stdin=sys.stdin, stdout=sys.stdout))
        if args.verb == "db":
            return asyncio.run(_db_upgrade(settings))
        if args.verb == "audit":
            return asyncio.run(_audit_verify(settings))
        if args.verb == "survey":
            from bot import survey_cli

            return survey_cli.main(args, settings)
        if args.verb == "cases":
            from bot.cases import cli as cases_cli

            return cases_cli.main(args, settings)
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
        print(f"audit log intact: {check.entries} entries")
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
    print(f"new master key {keys.current_key_id}: {report.total} database values and {matrix_files} Matrix "
          "files sealed again")
    if retire:
        keys.retired().save(path, overwrite=True)
        print("old master keys deleted from the key file; backups made before now can no longer be read")
    return 0


def _keys_generate(settings: Settings, output: Path | None) -> int:
    path = output or settings.security.key_file
    KeyRing.generate().save(path)
    print(f"key file written to {path} (mode 0600); keep it out of database backups")
    return 0
