"""The ``civicbot`` command: ``run``, ``db upgrade``, ``keys generate|rotate``, and every verb group
the features declare (``survey ...``, ``audit ...``), built from the list of features."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import ConfigError, Settings, load_settings
from bot.conversation.feature import CliContext, CliGroup, CliVerb, Feature, FeatureSet
from bot.core.security import KeyFileError, KeyRing
from bot.features import FEATURES

QUIET_LOGGERS = ("httpx", "httpcore", "apscheduler", "sqlalchemy", "aiosqlite", "asyncio", "nio", "peewee")
BUILT_IN = ("run", "db", "keys")


def _parser(features: Sequence[Feature]) -> argparse.ArgumentParser:
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

    for feature in features:
        for group in feature.cli:
            if group.name in BUILT_IN:
                raise ValueError(f"feature {feature.name} declares the built-in verb {group.name}")
            sub = verbs.add_parser(group.name, help=group.help, parents=[config])
            sub.set_defaults(feature=feature.name, group=group)
            group_verbs = sub.add_subparsers(dest="group_verb", required=True)
            for verb in group.verbs:
                verb_parser = group_verbs.add_parser(verb.name, help=verb.help, description=verb.help)
                verb.arguments(verb_parser)
                verb_parser.set_defaults(cli_verb=verb)
    return parser


def _configure_logging(verbose: bool, console: bool) -> None:
    # In the console chat, stdout is the conversation; logs go to stderr and stay quiet.
    level = logging.DEBUG if verbose else (logging.WARNING if console else logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None, features: Sequence[Feature] = FEATURES) -> int:
    args = _parser(features).parse_args(argv)
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
        if args.verb == "keys":
            if args.keys_verb == "rotate":
                return asyncio.run(_keys_rotate(settings, args.retire, features))
            return _keys_generate(settings, args.output)
        return asyncio.run(run_verb(settings, args, features))
    except ConfigError as exc:
        print(f"civicbot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from bot.app import StartupError
        from bot.core.transport import TransportStartupError

        if isinstance(exc, TransportStartupError):  # the platform refused or could not be reached
            print(f"civicbot: {exc}", file=sys.stderr)
            return 1
        if isinstance(exc, (StartupError, KeyFileError)):  # configuration to fix before anything runs
            print(f"civicbot: {exc}", file=sys.stderr)
            return 2
        raise


async def run_verb(settings: Settings, args: argparse.Namespace, features: Sequence[Feature]) -> int:
    """A feature's verb, with the same services the running bot builds (for verbs that need them)."""
    from bot.app import build_services, feature_set, load_keys, open_database

    group: CliGroup = args.group
    verb: CliVerb = args.cli_verb
    chosen = feature_set(settings, features)
    context = CliContext(settings)
    if args.feature not in chosen.names():
        return context.fail(f"'{group.name}' is not available: the {args.feature} feature is turned off", 2)
    if not verb.needs_services:
        return await verb.run(context, args)
    keys = load_keys(settings)
    database = await open_database(settings)
    try:
        context.opened = build_services(settings, database, keys, features=chosen)
        return await verb.run(context, args)
    finally:
        await database.dispose()


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


async def _keys_rotate(settings: Settings, retire: bool, features: Sequence[Feature]) -> int:
    """Order matters for crash safety: the new key is saved before anything uses it, and the
    old ones are dropped only after everything was sealed again. Every sealed column any
    feature declares (on or off) is reached."""
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
            report = await reseal_database(session, keys, FeatureSet(features, settings).sealed())
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
