"""``rerankd keys``, ``usage`` and ``db``: the gateway's management plane, on the database itself (no
server needed), through the same code as the admin API (``rerankd.gateway.accounts``); ``--json`` for scripts,
aligned tables for people. Errors (a bad value, an unknown key, the database) exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, is_dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rerankd.config import ConfigError, Settings, env_value, load_settings

if TYPE_CHECKING:
    from rerankd.gateway.accounts import Accounts, Held, Key, KeyUsage, UsageTotals

__all__ = ["add_commands", "manage"]


# -- keys, usage, db: the management plane on the database itself ----------------------------------


def _flagenv_value(name: str) -> bool:
    return (env_value(name) or "").strip().lower() in ("1", "true", "yes", "on")


def _database_options(config_help: str) -> argparse.ArgumentParser:
    """The options every management command takes: where the database is, and --json."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--config",
        metavar="FILE",
        default=env_value("RERANKD_CONFIG"),
        help=config_help + "; its database_url names the database, its models the names --models may use",
    )
    options.add_argument(
        "--database-url",
        metavar="URL",
        default=env_value("RERANKD_DATABASE_URL"),
        help="the database, overriding the config's database_url: sqlite:///rerankd.db or "
        "postgresql+psycopg://user:password@host/db [env RERANKD_DATABASE_URL; default: the config's, "
        "sqlite:///rerankd.db in the working directory]",
    )
    options.add_argument(
        "--json",
        action="store_true",
        default=_flagenv_value("RERANKD_JSON"),
        help="print JSON (one document) instead of tables, for scripts [env RERANKD_JSON=1]",
    )
    return options


def _key_limit_options(parser: argparse.ArgumentParser, *, update: bool) -> None:
    clear = " ('none' clears it)" if update else ""
    parser.add_argument(
        "--models",
        metavar="A,B",
        help="models (names or aliases) the key may use, comma-separated"
        + (" ('*' for every model)" if update else " [default: every model]"),
    )
    parser.add_argument(
        "--budget",
        metavar="AMOUNT",
        help="most the key may spend, in the currency of the models' prices, e.g. 12.5"
        + (clear if update else " [default: unlimited]"),
    )
    parser.add_argument(
        "--rpm", metavar="N", help="requests per minute" + (clear if update else " [default: no limit]")
    )
    parser.add_argument(
        "--tpm", metavar="N", help="tokens per minute" + (clear if update else " [default: no limit]")
    )
    parser.add_argument(
        "--expires",
        metavar="WHEN",
        help="when the key stops working: a date (2027-01-01) or time, UTC unless it says"
        + (" ('never' clears it)" if update else " [default: never]"),
    )


def _period_options(parser: argparse.ArgumentParser, since_default: str) -> None:
    parser.add_argument(
        "--since",
        metavar="WHEN",
        help=f"from this date or time (UTC), or this long ago: 7d, 12h [default: {since_default}]",
    )
    parser.add_argument("--until", metavar="WHEN", help="to this date or time (UTC), excluded [default: now]")


def add_commands(commands: Any, config_help: str) -> None:
    options = _database_options(config_help)
    key_help = "the key: its id (3) or its prefix (rk-AbCdEfGh)"

    keys = commands.add_parser(
        "keys",
        help="create, list, show, update and revoke the gateway's API keys",
        description="Manage the API keys clients call with (the database of --config / --database-url, "
        "no server needed; a running server sees every change at once).",
    )
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        parents=[options],
        help="create a key and print it (shown this once)",
        description="Create a key. Its plaintext (rk-...) is printed this once, on stdout alone; only its "
        "hash is stored.",
    )
    create.add_argument("--name", required=True, help="who or what the key is for")
    _key_limit_options(create, update=False)
    actions.add_parser("list", parents=[options], help="list every key", description="List every key.")
    show = actions.add_parser(
        "show",
        parents=[options],
        help="one key, with its spend and usage by model",
        description="One key: its limits, spend and remaining budget, and its usage by model.",
    )
    show.add_argument("key", metavar="KEY", help=key_help)
    _period_options(show, "the key's first call")
    update = actions.add_parser(
        "update",
        parents=[options],
        help="change a key's name, models or limits",
        description="Change some of a key's settings; the others stay.",
    )
    update.add_argument("key", metavar="KEY", help=key_help)
    update.add_argument("--name", help="a new name")
    _key_limit_options(update, update=True)
    switch = update.add_mutually_exclusive_group()
    switch.add_argument("--disable", action="store_true", help="stop the key until --enable")
    switch.add_argument("--enable", action="store_true", help="let a disabled key work again")
    revoke = actions.add_parser(
        "revoke",
        parents=[options],
        help="revoke a key for good",
        description="Revoke a key: it stops working at once on every server sharing the database. Its row "
        "stays, for the usage ledger.",
    )
    revoke.add_argument("key", metavar="KEY", help=key_help)
    release = actions.add_parser(
        "release",
        parents=[options],
        help="release what a key's calls in flight hold",
        description="Release a key's holds (money and tokens held by its calls in flight): all of them, or "
        "one call's. For calls of a server that died, before the sweep releases them at their deadline.",
    )
    release.add_argument("key", metavar="KEY", help=key_help)
    release.add_argument("--request-id", metavar="ID", help="only this call's hold (its x-request-id)")

    usage = commands.add_parser(
        "usage",
        parents=[options],
        help="usage from the ledger, filtered and grouped",
        description="Calls, tokens, search units and cost from the usage ledger, filtered by key, model "
        "and period, in all or grouped by key, model or day (UTC).",
    )
    usage.add_argument("--key", metavar="KEY", help=key_help)
    usage.add_argument("--model", help="a model, as asked or as it answered")
    _period_options(usage, "the first call")
    usage.add_argument("--by", choices=["key", "model", "day"], help="group the calls")
    usage.add_argument(
        "--csv",
        action="store_true",
        help="print CSV with a header row: the groups, or without --by one row per call",
    )

    db = commands.add_parser(
        "db",
        help="the database: migrate its schema",
        description="Manage the gateway's database (servers also migrate it at start-up).",
    )
    db_actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    db_actions.add_parser(
        "upgrade",
        parents=[options],
        help="create or migrate the schema to the newest revision",
        description="Create the database's tables, or migrate them to this version's schema.",
    )
    db_actions.add_parser(
        "status",
        parents=[options],
        help="where the database is, which setting named it, and its schema revision (creates nothing)",
        description="Print the database serve and every command use with these options, which setting named "
        "it, whether it exists, its schema revision and how many keys it holds. Creates nothing.",
    )


class UsageError(Exception):
    """A flag's value cannot be used; the message says which and why."""


def _when(text: str | None, flag: str) -> dt.datetime | None:
    """A time flag, read as the admin API reads one (``accounts.parse_time``)."""
    from rerankd.errors import InvalidRequest
    from rerankd.gateway.accounts import parse_time

    try:
        return parse_time(text, flag)
    except InvalidRequest as exc:
        raise UsageError(exc.message) from None


def _cleared(text: str | None, words: tuple[str, ...] = ("none", "null", "unlimited")) -> bool:
    return text is not None and text.strip().lower() in words


def _amount(text: str, flag: str) -> Decimal:
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise UsageError(f"{flag} {text!r} is not an amount: use e.g. 12.5") from None


def _count(text: str, flag: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not a whole number") from None


def _key_changes(args: argparse.Namespace, *, update: bool) -> dict[str, Any]:
    """The key fields the flags set (for update: only those given; 'none' clears), parsed from text and
    not checked: ``gateway.accounts`` checks them, as it does for the admin API."""
    changes: dict[str, Any] = {}
    if args.name is not None:
        changes["name"] = args.name
    if args.models is not None:
        changes["models"] = None if update and args.models.strip() == "*" else args.models.split(",")
    if args.budget is not None:
        changes["budget"] = None if update and _cleared(args.budget) else _amount(args.budget, "--budget")
    for flag in ("rpm", "tpm"):
        text = getattr(args, flag)
        if text is not None:
            changes[flag] = None if update and _cleared(text) else _count(text, f"--{flag}")
    if args.expires is not None:
        never = update and _cleared(args.expires, ("never", "none", "null"))
        changes["expires_at"] = None if never else _when(args.expires, "--expires")
    if update and (args.disable or args.enable):
        changes["disabled"] = bool(args.disable)
    return changes


# -- output ----------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A value as JSON: dataclasses as objects, exact amounts as decimal strings, times as ISO UTC."""
    if is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(item) for name, item in asdict(value).items()}
    if isinstance(value, dict):
        return {name: _plain(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, tuple | list):
        return ",".join(str(item) for item in value)
    return str(value)


def _table(rows: Sequence[Sequence[Any]], *, numeric_from: int | None = None) -> None:
    """Print rows as aligned columns, the first the header (columns from ``numeric_from`` to the right)."""
    cells = [[_text(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        parts = [
            cell.rjust(width) if numeric_from is not None and i >= numeric_from else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(parts).rstrip())


_KEY_COLUMNS = [
    *("ID", "NAME", "PREFIX", "STATE", "MODELS", "BUDGET", "SPENT", "REMAINING", "RPM", "TPM", "EXPIRES")
]


def _key_row(key: Key) -> list[Any]:
    models = key.models if key.models is not None else "*"
    budget = key.budget if key.budget is not None else "unlimited"
    limits = [key.spent, key.remaining, key.rpm, key.tpm, key.expires_at]
    return [key.id, key.name, key.prefix, key.state, models, budget, *limits]


def _print_key(key: Key) -> None:
    values = _plain(key)
    values["models"] = ",".join(key.models) if key.models is not None else "* (every model)"
    if key.budget is None:
        values["budget"] = "unlimited"
    _table([(f"{name}:", "-" if value is None else value) for name, value in values.items()])


def _holds_table(held: Sequence[Held]) -> None:
    """A key's holds, oldest first (nothing when it holds nothing)."""
    if not held:
        print("holds: none (no call in flight)")
        print()
        return
    rows: list[list[Any]] = [["HOLD (REQUEST ID)", "AMOUNT", "TOKENS", "AGE S", "DEADLINE", "REPLICA"]]
    rows += [[h.request_id, h.amount, h.tokens, h.age_seconds, h.deadline, h.replica] for h in held]
    _table(rows)
    print()


def _totals_table(first: str, groups: Sequence[UsageTotals], total: UsageTotals) -> None:
    from rerankd.gateway.exports import TOTAL_COLUMNS  # the columns of the CSV exports, in the same order

    header = [first.upper(), *(name.upper() for name in TOTAL_COLUMNS)]
    rows: list[list[Any]] = [header]
    rows += [[group.group, *(getattr(group, name) for name in TOTAL_COLUMNS)] for group in groups]
    rows.append(["TOTAL", *(getattr(total, name) for name in TOTAL_COLUMNS)])
    _table(rows, numeric_from=1)


def _totals_json(totals: UsageTotals) -> dict[str, Any]:
    values: dict[str, Any] = _plain(totals)
    values.pop("group")
    return values


def _print_json(value: Any) -> None:
    print(json.dumps(_plain(value), indent=2, ensure_ascii=False))


# -- running them ----------------------------------------------------------------------------------

T = TypeVar("T")


def _database(args: argparse.Namespace) -> tuple[Settings, list[str] | None]:
    """The settings (database_url from --database-url, the env or --config), and the model names a key's
    list may use: those of the config, when one is given (else the server's models are unknown here)."""
    settings = load_settings(args.config, database_url=args.database_url)
    if not settings.metered:
        raise ConfigError(
            "no database: database_url is 'none'; give --database-url (or set RERANKD_DATABASE_URL) to "
            "manage keys and usage"
        )
    models = [name for spec in settings.models for name in spec.names] if args.config else None
    return settings, models


def _where(args: argparse.Namespace, url: str) -> tuple[str, Path | None, str]:
    """Where the database is, as shown (password hidden), its file for SQLite (absolute), and which
    setting named it — the one rule of ``serve`` and every command: --database-url, then
    RERANKD_DATABASE_URL, then the config's database_url, then the default in the working directory."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    path = (
        Path(parsed.database).resolve() if parsed.get_backend_name() == "sqlite" and parsed.database else None
    )
    if args.database_url is not None:
        source = (
            "RERANKD_DATABASE_URL"
            if args.database_url == os.environ.get("RERANKD_DATABASE_URL")
            else "--database-url"
        )
    elif args.config:
        source = (
            f"the config {args.config} (its database_url, else sqlite:///rerankd.db in the working directory)"
        )
    else:
        source = "the default database_url (sqlite:///rerankd.db in the working directory)"
    return shown, path, source


def _with_accounts(
    args: argparse.Namespace, work: Callable[[Accounts], Coroutine[Any, Any, T]], *, reads: bool = False
) -> T:
    """Run ``work`` on the database; a command that only ``reads`` never creates one, and says where it
    looked when there is none."""
    from rerankd.gateway.accounts import open_accounts

    settings, models = _database(args)
    _, path, source = _where(args, settings.database_url)
    if reads and path is not None and not path.is_file():
        raise UsageError(
            f"no database at {path} (named by {source}); nothing to read. Give this command the "
            "server's --config or --database-url (or RERANKD_DATABASE_URL); `rerankd db status` shows where "
            "commands look"
        )
    with open_accounts(settings.database_url, models=models) as accounts:
        return asyncio.run(work(accounts))


def _keys(args: argparse.Namespace) -> int:
    if args.action == "create":
        changes = _key_changes(args, update=False)
        name = changes.pop("name")
        key, plaintext = _with_accounts(args, lambda accounts: accounts.create_key(name, **changes))
        if args.json:
            _print_json({**_plain(key), "key": plaintext})
        else:
            print(plaintext)
            print(
                f"created key {key.id} {key.name!r} ({key.prefix}): the key above is shown this once and "
                "stored only as a hash; give it to its user now",
                file=sys.stderr,
            )
        return 0
    if args.action == "list":
        keys = _with_accounts(args, lambda accounts: accounts.list_keys(), reads=True)
        if args.json:
            _print_json({"object": "list", "data": keys})
        elif not keys:
            print("no keys yet: create one with `rerankd keys create --name NAME`", file=sys.stderr)
        else:
            _table([_KEY_COLUMNS, *(_key_row(key) for key in keys)])
        return 0
    if args.action == "show":
        since, until = _when(args.since, "--since"), _when(args.until, "--until")

        async def shown(accounts: Accounts) -> tuple[KeyUsage, list[Held]]:
            usage = await accounts.key_usage(args.key, since=since, until=until)
            return usage, (await accounts.holds(usage.key.id))[1]

        usage, held = _with_accounts(args, shown, reads=True)
        if args.json:
            body = {"since": usage.since, "until": usage.until, "total": _totals_json(usage.total)}
            _print_json({**_plain(usage.key), "holds": held, "usage": {**body, "by_model": usage.by_model}})
        else:
            _print_key(usage.key)
            print()
            _holds_table(held)
            _totals_table("model", usage.by_model, usage.total)
        return 0
    if args.action == "release":
        key, released = _with_accounts(
            args, lambda accounts: accounts.release_holds(args.key, args.request_id)
        )
        if args.json:
            _print_json({"key": key, "released": released})
        else:
            amount = sum((item.amount for item in released), Decimal(0))
            print(f"released {len(released)} hold(s) of key {key.prefix}, {format(amount, 'f')} in all")
            _holds_table(released)
            _print_key(key)
        return 0
    if args.action == "update":
        changes = _key_changes(args, update=True)
        if not changes:
            raise UsageError(
                "nothing to change: give one or more of --name, --models, --budget, --rpm, --tpm, --expires, "
                "--disable, --enable"
            )
        key = _with_accounts(args, lambda accounts: accounts.update_key(args.key, **changes))
    else:  # revoke
        key = _with_accounts(args, lambda accounts: accounts.revoke_key(args.key))
    if args.json:
        _print_json(key)
    else:
        _print_key(key)
    return 0


def _usage(args: argparse.Namespace) -> int:
    since, until = _when(args.since, "--since"), _when(args.until, "--until")
    filters = {"key": args.key, "model": args.model, "since": since, "until": until}
    if args.csv and args.by is None:
        from rerankd.gateway.exports import call_lines

        async def export(accounts: Accounts) -> None:
            # Every row, a page at a time, written as it is read: the same table as the admin API's.
            async for chunk in call_lines(await accounts.call_pages(**filters)):
                sys.stdout.write(chunk)

        _with_accounts(args, export, reads=True)
        return 0
    report = _with_accounts(args, lambda accounts: accounts.usage(**filters, by=args.by), reads=True)
    if args.csv:
        from rerankd.gateway.exports import group_lines

        sys.stdout.writelines(group_lines(args.by, report.groups))
    elif args.json:
        values = _plain(report)
        values["total"] = _totals_json(report.total)
        _print_json(values)
    else:
        _totals_table(args.by or "", report.groups, report.total)
    return 0


def _db(args: argparse.Namespace) -> int:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.engine import make_url

    from rerankd.gateway.store import Store

    settings, _ = _database(args)
    if args.action == "status":
        return _db_status(args, settings)
    store = Store(settings.database_url, threads=1)
    try:
        store.upgrade()
        with store.engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
    finally:
        store.close()
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    if args.json:
        _print_json({"database": shown, "revision": revision})
    else:
        print(f"database {shown} is at the newest schema (revision {revision})")
    return 0


def _db_status(args: argparse.Namespace, settings: Settings) -> int:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine, text

    shown, path, source = _where(args, settings.database_url)
    status: dict[str, Any] = {"database": shown, "named_by": source, "file": str(path) if path else None}
    if path is not None and not path.is_file():
        status.update(exists=False, revision=None, keys=None)
    else:
        # A plain engine: the store's would create a missing SQLite file, and status creates nothing.
        engine = create_engine(settings.database_url)
        try:
            with engine.connect() as connection:
                revision = MigrationContext.configure(connection).get_current_revision()
                keys = (
                    connection.execute(text("SELECT count(*) FROM api_keys")).scalar() if revision else None
                )
        finally:
            engine.dispose()
        status.update(exists=True, revision=revision, keys=keys)
    if args.json:
        _print_json(status)
        return 0
    print(f"database  {shown}\nnamed by  {source}")
    if path is not None:
        print(
            f"file      {path}"
            + ("" if status["exists"] else " (does not exist: `rerankd db upgrade` creates it)")
        )
    if status["exists"]:
        print(f"schema    {status['revision'] or 'none yet (rerankd db upgrade)'}; keys: {status['keys']}")
    return 0


def manage(args: argparse.Namespace) -> int:
    """``keys``, ``usage`` and ``db``: their errors (a bad value, an unknown key, the database) exit 2."""
    from sqlalchemy.exc import SQLAlchemyError

    from rerankd.errors import RerankdError

    try:
        if args.command == "keys":
            return _keys(args)
        if args.command == "usage":
            return _usage(args)
        return _db(args)
    except (RerankdError, UsageError) as exc:
        print(f"rerankd: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `rerankd usage --csv | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except SQLAlchemyError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"rerankd: database error: {first_line}", file=sys.stderr)
        return 2
