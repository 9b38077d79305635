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
from bot.core.counts import counted
from bot.core.security import KeyFileError, KeyRing
from bot.features import FEATURES
from bot.transports.console import CONSOLE_USER

QUIET_LOGGERS = ("httpx", "httpcore", "apscheduler", "sqlalchemy", "aiosqlite", "asyncio", "nio", "peewee", "alembic")
BUILT_IN = ("run", "db", "keys")
CONFIG_HELP = "TOML configuration file (default: CIVICBOT_CONFIG, else defaults and CIVICBOT_* variables)"
VERBOSE_HELP = "more logging on standard error (never message content)"
ACTION_HELP = "one of the actions below ('... ACTION --help' describes each)"


def _parser(features: Sequence[Feature]) -> argparse.ArgumentParser:
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

    for feature in features:
        for group in feature.cli:
            if group.name in BUILT_IN:
                raise ValueError(f"feature {feature.name} declares the built-in verb {group.name}")
            sub = verb(verbs, group.name, group.help)
            sub.set_defaults(feature=feature.name, group=group)
            group_verbs = sub.add_subparsers(dest="group_verb", required=True, metavar="ACTION", help=ACTION_HELP)
            for cli_verb in group.verbs:
                verb_parser = verb(group_verbs, cli_verb.name, cli_verb.help)
                cli_verb.arguments(verb_parser)
                verb_parser.set_defaults(cli_verb=cli_verb)
    return parser


def _configure_logging(verbose: bool, quiet: bool, json_lines: bool = False) -> None:
    # A running platform bot logs what it does. Every other verb prints only its own output,
    # and in the console chat stdout is the conversation: logs go to stderr and stay quiet.
    # ``json_lines``: one JSON object per line for log collectors (the same privacy rules).
    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        from bot.operations.jsonlog import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None, features: Sequence[Feature] = FEATURES) -> int:
    args = _parser(features).parse_args(argv)
    console = args.verb == "run" and (args.console or False)
    try:
        settings = load_settings(args.config)
        _configure_logging(args.verbose, args.verb != "run" or console or not settings.has_platform,
                           settings.logging.format == "json")
        if args.verb == "run":
            from bot.app import run

            if (args.as_staff or args.user != CONSOLE_USER) and settings.has_platform and not args.console:
                print("civicbot: --user and --as-staff are for the console chat: add --console", file=sys.stderr)
                return 2
            return asyncio.run(run(settings, console=args.console, as_staff=args.as_staff, user=args.user,
                                   stdin=sys.stdin, stdout=sys.stdout, stderr=sys.stderr))
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
    database = await open_database(settings)
    try:
        keys = await load_keys(settings, database)
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
    """Order matters for crash safety: the key file is checked against the database first, the new
    key is saved before anything uses it, and the old ones are dropped only after everything was
    sealed again. Every sealed column any feature declares (on or off) is reached. Refused while a
    bot runs: it would go on sealing with the old key ring."""
    from bot.services import key_check, running
    from bot.services.key_rotation import reseal_database
    from bot.storage import migrate
    from bot.storage.db import Database

    path = settings.security.key_file
    current = KeyRing.load(path)
    database = Database(settings.database.url)
    try:
        if database.is_sqlite:
            await migrate.upgrade(database)
        elif not await migrate.is_current(database):
            print("civicbot: database.url: the schema is not current; run 'civicbot db upgrade' first",
                  file=sys.stderr)
            return 2
        try:
            async with database.sessions.begin() as session:
                await key_check.verify(session, current)
        except key_check.KeyMismatch as exc:
            print(f"civicbot: security.key_file: key file {path} {exc}; nothing was rotated", file=sys.stderr)
            return 2
        try:
            async with running.as_key_rotation(path, database):
                keys = current.rotated()
                keys.save(path, overwrite=True)
                async with database.sessions.begin() as session:
                    report = await reseal_database(session, keys, FeatureSet(features, settings).sealed())
                    await key_check.record(session, keys)
                matrix_files, store_keys = _reseal_matrix(settings.matrix.store_path, current, keys)
                print(f"new master key {keys.current_key_id}: {counted(report.total, 'database value')}, "
                      f"{counted(matrix_files, 'Matrix file')} and {counted(store_keys, 'key')} of the Matrix store "
                      "sealed again")
                if retire:
                    keys.retired().save(path, overwrite=True)
                    print("old master keys deleted from the key file; backups made before now can no longer be read")
        except running.BotRunning:
            print("civicbot: a bot is running with this key file or on this database; stop every worker, then "
                  "rotate (nothing was rotated)", file=sys.stderr)
            return 2
    finally:
        await database.dispose()
    return 0


def _reseal_matrix(store_path: Path, old: KeyRing, new: KeyRing) -> tuple[int, int]:
    """The transport's sealed files, and nio's store under the new pickle key (whose account, Olm and
    Megolm pickles were under the old one; a store left half way by an earlier rotation first)."""
    if not store_path.is_dir():
        return 0, 0
    from bot.transports.matrix_session import MatrixSessionStore
    from bot.transports.matrix_store import ensure_pickle_key, reseal

    files = MatrixSessionStore(store_path, new).reseal(new)
    login = MatrixSessionStore(store_path, new).load_login()
    if login is None:
        return files, 0
    ensure_pickle_key(store_path, login.user_id, login.device_id, old.matrix_pickle_keys)
    return files, reseal(store_path, login.user_id, login.device_id, old.matrix_pickle_key, new.matrix_pickle_key)


def _keys_generate(settings: Settings, output: Path | None) -> int:
    path = output or settings.security.key_file
    KeyRing.generate().save(path)
    print(f"key file written to {path} (mode 0600); keep it out of database backups")
    return 0
