"""The gateway's management plane: managed keys and usage reports, for the admin API, ``GET /v1/usage``
and the ``rerankd keys`` / ``rerankd usage`` commands — one code path for all three.

:class:`Accounts` wraps a :class:`~rerankd.gateway.store.Store`. Its methods are coroutines that run the
blocking statements on the store's threads; the CLI, which has no server, runs them with
``asyncio.run`` (see :func:`open_accounts`). Money goes in and out as exact decimals of the operator's
currency (nano-units inside), times as UTC. Nothing here ever returns a key's hash, and a key's
plaintext only once, from :meth:`Accounts.create_key`.

Errors are the server's own (``rerankd.errors``): an unknown key is a 404, a bad value a 422.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import Field
from sqlalchemy import Engine

from rerankd.errors import InvalidRequest, RerankdError, RouteNotFound
from rerankd.gateway.money import Money, from_nanos, to_nanos
from rerankd.gateway.store import Store, holds, ledger
from rerankd.gateway.store import keys as key_store

__all__ = [
    "Accounts",
    "CallRow",
    "Grouping",
    "Held",
    "Key",
    "KeyUsage",
    "ModelActivity",
    "NoDatabase",
    "UsageReport",
    "UsageTotals",
    "open_accounts",
]

Grouping = Literal["key", "model", "day"]
GROUPINGS: tuple[Grouping, ...] = ("key", "model", "day")
KeyState = key_store.KeyState

# The key fields' rules, checked here only (for the admin API, the CLI and the Python API alike); the
# admin API shows them in its OpenAPI document.
_MAX_NANOS = 2**63 - 1  # what the database's BIGINT holds
MAX_INTEGER = 2**31 - 1  # what the database's INTEGER holds: key ids, rpm, tpm
MAX_NAME_CHARS = 200  # the key's name column
_MAX_MODEL_CHARS = 200  # the ledger's and the model lists' text columns
EXPORT_PAGE_SIZE = 1000  # ledger rows per query: what an export holds in memory at a time
_EDITABLE = ("name", "models", "budget", "rpm", "tpm", "expires_at", "disabled")


class NoDatabase(RerankdError):
    """Managed keys and usage need a database, and this server runs without one."""

    status = 503
    code = "no_database"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "no database: set database_url (env RERANKD_DATABASE_URL), e.g. sqlite:///rerankd.db, to "
            "keep managed keys and usage"
        )


# -- values ----------------------------------------------------------------------------------------


_AGO = re.compile(r"\s*(\d+)\s*([dhm])\s*")


def parse_time(text: str | None, field: str) -> dt.datetime | None:
    """A time as the API and the CLI take it: an ISO date or time (UTC unless it says), or how long ago
    (``7d``, ``12h``, ``30m``); None for none. A 422 naming ``field`` otherwise."""
    if text is None or not text.strip():
        return None
    ago = _AGO.fullmatch(text)
    if ago:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[ago.group(2)]
        return dt.datetime.now(dt.UTC) - dt.timedelta(**{unit: int(ago.group(1))})
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(
            f"{field} {text[:64]!r} is not a date or time: use 2027-01-01, 2027-01-01T12:00:00Z, "
            "or how long ago: 7d, 12h, 30m"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def as_utc(value: dt.datetime | dt.date | None) -> dt.datetime | None:
    """A time as the database keeps it (naive UTC); a date is its midnight UTC, a naive time is UTC."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """A database time (naive UTC) as an aware UTC time, for answers."""
    return value.replace(tzinfo=dt.UTC) if value is not None else None


def _money(value: Decimal | int | str | None, field: str) -> int | None:
    """An amount in nano-units; refused when negative, not a number, or finer than the nano-unit."""
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InvalidRequest(f"`{field}` must be an amount such as 12.5, not {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise InvalidRequest(f"`{field}` must be an amount >= 0 (or null for none), not {amount:f}")
    # Compared before any arithmetic: 1E+999999999 in nano-units overflows the decimal context.
    if amount > from_nanos(_MAX_NANOS):
        raise InvalidRequest(f"`{field}` {amount:.6e} is too large: at most {from_nanos(_MAX_NANOS):f}")
    nanos = to_nanos(amount)
    if from_nanos(nanos) != amount:
        raise InvalidRequest(
            f"`{field}` {amount:f} has more than 9 decimal places; amounts are kept to 0.000000001"
        )
    return nanos


def _limit(value: int | None, field: str) -> int | None:
    if value is None:
        return None
    rule = f"`{field}` must be a whole number from 1 to {MAX_INTEGER} (or null for no limit)"
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{rule}, not {str(value)[:30]!r}")
    if not 1 <= value <= MAX_INTEGER:
        raise InvalidRequest(rule + (f", not {value}" if abs(value) < 10**30 else ""))
    return value


def _text(value: object, field: str, most: int) -> str:
    """A name as the database keeps it: stripped, not empty, at most ``most`` characters, no control
    characters (PostgreSQL refuses NUL; the others only garble tables and logs)."""
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > most:
        raise InvalidRequest(f"`{field}` must be a non-empty text of at most {most} characters")
    text = value.strip()
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise InvalidRequest(f"`{field}` must not hold control characters, not {text[:64]!r}")
    return text


def _key_id(text: str) -> int:
    """A key id given as digits; 422 beyond what the id column holds (never a database overflow)."""
    if len(text) > len(str(MAX_INTEGER)) or not 1 <= int(text) <= MAX_INTEGER:
        raise InvalidRequest(f"key ids are whole numbers from 1 to {MAX_INTEGER}, not {text[:30]}")
    return int(text)


def _model_filter(model: str | None) -> str | None:
    return _text(model, "model", _MAX_MODEL_CHARS) if model else None


@dataclass(frozen=True, slots=True)
class Key:
    """A managed key as operators and its holder see it: never its hash, never its plaintext."""

    # The admin API answers with this class itself: its fields and their descriptions are the API's.

    id: int
    name: str
    prefix: Annotated[
        str, Field(description="The key's first characters: names it in lists, logs and the ledger.")
    ]
    state: KeyState
    models: Annotated[tuple[str, ...] | None, Field(description="Models the key may use; null: every model.")]
    budget: Annotated[Money | None, Field(description="null: unlimited.")]
    spent: Money
    reserved: Annotated[Money, Field(description="Held by calls in flight.")]
    remaining: Annotated[  # never below 0
        Money | None, Field(description="budget - spent - reserved; null: unlimited.")
    ]
    rpm: int | None
    tpm: int | None
    expires_at: dt.datetime | None
    disabled: bool
    revoked_at: dt.datetime | None
    created_at: dt.datetime

    @classmethod
    def of(cls, record: key_store.KeyRecord) -> Key:
        remaining = None
        if record.budget_nanos is not None:
            remaining = from_nanos(max(0, record.budget_nanos - record.spent_nanos - record.reserved_nanos))
        return cls(
            id=record.id,
            name=record.name,
            prefix=record.prefix,
            state=record.state(),
            models=record.models,
            budget=from_nanos(record.budget_nanos) if record.budget_nanos is not None else None,
            spent=from_nanos(record.spent_nanos),
            reserved=from_nanos(record.reserved_nanos),
            remaining=remaining,
            rpm=record.rpm,
            tpm=record.tpm,
            expires_at=_aware(record.expires_at),
            disabled=record.disabled,
            revoked_at=_aware(record.revoked_at),
            created_at=_aware(record.created_at) or record.created_at,
        )


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Calls of one group (a key, a model, a day; ``group`` None: all of them) and their sums."""

    group: str | None
    calls: int
    errors: int
    documents: int
    query_tokens: int
    documents_tokens: int
    total_tokens: int
    search_units: int
    cost: Decimal

    @classmethod
    def empty(cls) -> UsageTotals:
        return cls(None, 0, 0, 0, 0, 0, 0, 0, Decimal(0))

    @classmethod
    def of(cls, row: dict[str, Any]) -> UsageTotals:
        def number(name: str) -> int:
            return int(row.get(name) or 0)  # PostgreSQL sums BIGINTs as NUMERIC

        return cls(
            group=row.get("group"),
            calls=number("calls"),
            errors=number("errors"),
            documents=number("documents"),
            query_tokens=number("query_tokens"),
            documents_tokens=number("documents_tokens"),
            total_tokens=number("total_tokens"),
            search_units=number("search_units"),
            cost=from_nanos(number("cost_nanos")),
        )


@dataclass(frozen=True, slots=True)
class UsageReport:
    """The ledger's calls that match a filter: their totals, and the same per key, model or day."""

    key: Key | None
    model: str | None
    since: dt.datetime | None
    until: dt.datetime | None
    by: Grouping | None
    total: UsageTotals
    groups: list[UsageTotals]


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """A key, and what it used over a period, in all and per model."""

    key: Key
    since: dt.datetime | None
    until: dt.datetime | None
    total: UsageTotals
    by_model: list[UsageTotals]


@dataclass(frozen=True, slots=True)
class CallRow(ledger.Call):
    """One ledger row as reports show it: the record itself, its time aware UTC and its cost (``cost``)
    an exact decimal."""

    @property
    def cost(self) -> Decimal:
        return from_nanos(self.cost_nanos)

    @classmethod
    def of(cls, call: ledger.Call) -> CallRow:
        values = {field.name: getattr(call, field.name) for field in fields(ledger.Call)}
        return cls(**{**values, "at": _aware(call.at) or call.at})

    @staticmethod
    def columns() -> list[str]:
        """The CSV columns: the record's, its cost as the decimal ``cost``."""
        return ["cost" if field.name == "cost_nanos" else field.name for field in fields(ledger.Call)]


@dataclass(frozen=True, slots=True)
class ModelActivity:
    """A model's recent calls: how many, how many failed (5xx), how long the others took."""

    model: str
    calls: int
    failures: int
    mean_ms: float | None
    max_ms: float | None


@dataclass(frozen=True, slots=True)
class Held:
    """What one call in flight holds of its key."""

    # A row of ``gateway.store.holds`` as reports and the admin API show it.

    request_id: Annotated[str, Field(description="The call's `x-request-id`.")]
    amount: Money
    tokens: Annotated[int, Field(description="Tokens reserved in the key's rate window.")]
    replica: Annotated[str, Field(description="The server whose call placed it: host:pid:boot.")]
    created_at: dt.datetime
    deadline: Annotated[
        dt.datetime, Field(description="When a sweep releases it, if its call has not settled.")
    ]
    age_seconds: float

    @classmethod
    def of(cls, hold: holds.Hold, now: dt.datetime) -> Held:
        return cls(
            request_id=hold.request_id,
            amount=from_nanos(hold.nanos),
            tokens=hold.tokens,
            replica=hold.replica,
            created_at=_aware(hold.created_at) or hold.created_at,
            deadline=_aware(hold.deadline) or hold.deadline,
            age_seconds=round((now - hold.created_at).total_seconds(), 3),
        )


def _holds(engine: Engine, key: int | str) -> tuple[Key, list[Held]]:
    record = _record(engine, key)
    now = key_store.utcnow()
    return Key.of(record), [Held.of(hold, now) for hold in holds.list_holds(engine, record.id)]


def _release(engine: Engine, key: int | str, request_id: str | None) -> tuple[Key, list[Held]]:
    record = _record(engine, key)
    now = key_store.utcnow()
    released = [Held.of(hold, now) for hold in holds.release_holds(engine, record.id, request_id)]
    if request_id is not None and not released:
        raise RouteNotFound(
            f"key {record.prefix} holds nothing for call {request_id!r} (settled or released already); "
            "its holds are listed by GET /admin/keys/{key}/holds or `rerankd keys show`"
        )
    return Key.of(_record(engine, record.id)), released


# -- the blocking part, run on the store's threads ---------------------------------------------------


def _record(engine: Engine, key: int | str) -> key_store.KeyRecord:
    """A key by id (``7``, ``"7"``) or by its shown prefix (``"rk-AbCdEfGh"``); 404 if there is none."""
    record: key_store.KeyRecord | None = None
    text = str(key).strip()
    if isinstance(key, int) or (text.isascii() and text.isdigit()):
        record = key_store.get_key(engine, _key_id(text))
    else:
        found = [r for r in key_store.list_keys(engine) if r.prefix == text]
        if len(found) > 1:  # 48 random bits: two keys sharing a prefix is very unlikely, but say so
            raise InvalidRequest(f"several keys have the prefix {text}: name the key by its id")
        record = found[0] if found else None
    if record is None:
        raise RouteNotFound(
            f"no key {key!s}: name a key by its id or its prefix (rk-...); GET /admin/keys or "
            "`rerankd keys list` lists them"
        )
    return record


def _totals(engine: Engine, where: ledger.UsageFilter) -> UsageTotals:
    rows = ledger.summarize(engine, where)
    return UsageTotals.of(rows[0]) if rows else UsageTotals.empty()


def _groups(engine: Engine, where: ledger.UsageFilter, by: Grouping) -> list[UsageTotals]:
    return [UsageTotals.of(row) for row in ledger.summarize(engine, where, by)]


def _key_usage(
    engine: Engine, key: int | str, since: dt.datetime | None, until: dt.datetime | None
) -> KeyUsage:
    record = _record(engine, key)
    where = ledger.UsageFilter(key_id=record.id, since=since, until=until)
    return KeyUsage(
        Key.of(record),
        _aware(since),
        _aware(until),
        _totals(engine, where),
        _groups(engine, where, "model"),
    )


class Accounts:
    """Managed keys and usage reports over a store; ``models`` (names and aliases), when given, are the
    models a key's allow-list may name."""

    def __init__(
        self, store: Store, *, models: Collection[str] | None = None, page_size: int | None = None
    ) -> None:
        self.store = store
        self.models = tuple(models) if models is not None else None
        # Ledger rows read per query when calls are listed or exported (EXPORT_PAGE_SIZE unless given).
        self.page_size = page_size or EXPORT_PAGE_SIZE

    # -- keys ------------------------------------------------------------------------------------

    async def create_key(
        self,
        name: str,
        *,
        models: Collection[str] | None = None,
        budget: Decimal | int | str | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        expires_at: dt.datetime | dt.date | None = None,
    ) -> tuple[Key, str]:
        """A new active key and its plaintext (``rk-...``), which is shown this once and kept nowhere."""
        fields_ = self._columns(
            {
                "name": name,
                "models": models,
                "budget": budget,
                "rpm": rpm,
                "tpm": tpm,
                "expires_at": expires_at,
            }
        )
        name = fields_.pop("name")
        expires = fields_.get("expires_at")
        if expires is not None and expires <= key_store.utcnow():
            raise InvalidRequest(
                f"`expires_at` {_aware(expires)} is in the past: the key would never work; give a later time "
                "(or none for a key that does not expire)"
            )
        record, plaintext = await self.store.run(key_store.create_key, self.store.engine, name, **fields_)
        return Key.of(record), plaintext

    async def list_keys(self) -> list[Key]:
        """Every key, revoked ones included, oldest first."""
        return [Key.of(record) for record in await self.store.run(key_store.list_keys, self.store.engine)]

    async def get_key(self, key: int | str) -> Key:
        """A key by id or prefix (RouteNotFound, a 404, if there is none)."""
        return Key.of(await self.store.run(_record, self.store.engine, key))

    async def update_key(self, key: int | str, **changes: Any) -> Key:
        """Set some of ``name, models, budget, rpm, tpm, expires_at, disabled``; None clears ``models``
        (every model), ``budget`` (unlimited), ``rpm``/``tpm`` (no limit) and ``expires_at`` (never)."""
        unknown = set(changes) - set(_EDITABLE)
        if unknown:
            raise InvalidRequest(
                f"keys have no editable field {', '.join(sorted(unknown))}; "
                f"the fields are {', '.join(_EDITABLE)}"
            )
        columns = self._columns(changes)
        record = await self.store.run(_record, self.store.engine, key)
        if record.revoked_at is not None and columns.get("disabled") is False:
            raise InvalidRequest(
                f"key {record.prefix} was revoked on {_aware(record.revoked_at)}, for good: it cannot be "
                "enabled again; create a new key for its user"
            )
        updated = await self.store.run(key_store.update_key, self.store.engine, record.id, **columns)
        assert updated is not None
        return Key.of(updated)

    async def revoke_key(self, key: int | str) -> Key:
        """Revoke a key for good (at once, on every replica). Its row stays: the ledger refers to it.
        Revoking a revoked key changes nothing."""
        record = await self.store.run(_record, self.store.engine, key)
        if record.revoked_at is not None:
            return Key.of(record)
        revoked = await self.store.run(
            key_store.update_key, self.store.engine, record.id, revoked_at=key_store.utcnow()
        )
        assert revoked is not None
        return Key.of(revoked)

    def _columns(self, values: dict[str, Any]) -> dict[str, Any]:
        """API values as store columns, checked."""
        columns: dict[str, Any] = {}
        if "name" in values:
            columns["name"] = _text(values["name"], "name", MAX_NAME_CHARS)
        if "models" in values:
            models = values["models"]
            if models is not None:
                if isinstance(models, str):
                    raise InvalidRequest("`models` must be a list of model names or aliases (or null)")
                names = (str(m).strip() for m in models if str(m).strip())
                models = list(dict.fromkeys(_text(m, "models", _MAX_MODEL_CHARS) for m in names))
                unknown = [m for m in models if self.models is not None and m not in self.models]
                if unknown:
                    raise InvalidRequest(
                        f"`models` names {', '.join(unknown)}, which this server does not serve; the "
                        f"models are: {', '.join(self.models or ()) or '(none)'}"
                    )
            columns["models"] = models
        if "budget" in values:
            columns["budget_nanos"] = _money(values["budget"], "budget")
        for field in ("rpm", "tpm"):
            if field in values:
                columns[field] = _limit(values[field], field)
        if "expires_at" in values:
            columns["expires_at"] = as_utc(values["expires_at"])
        if "disabled" in values:
            if not isinstance(values["disabled"], bool):
                raise InvalidRequest("`disabled` must be true or false")
            columns["disabled"] = values["disabled"]
        return columns

    async def last_used(self) -> dict[int, dt.datetime]:
        """When each key last made a call (its newest ledger row), by key id, for the keys that made one."""
        found = await self.store.run(ledger.last_used, self.store.engine)
        return {key_id: _aware(at) or at for key_id, at in found.items()}

    # -- holds of calls in flight -------------------------------------------------------------------

    async def holds(self, key: int | str) -> tuple[Key, list[Held]]:
        """A key and what its calls in flight hold, oldest first."""
        return await self.store.run(_holds, self.store.engine, key)

    async def release_holds(self, key: int | str, request_id: str | None = None) -> tuple[Key, list[Held]]:
        """Release a key's holds (all, or the one of ``request_id``): for a call an operator knows is gone
        before its deadline. Releasing them all also resets the key's reservation to what settling calls
        hold. Returns the key after, and what was released."""
        return await self.store.run(_release, self.store.engine, key, request_id)

    # -- usage -----------------------------------------------------------------------------------

    async def key_usage(
        self,
        key: int | str,
        *,
        since: dt.datetime | dt.date | None = None,
        until: dt.datetime | dt.date | None = None,
    ) -> KeyUsage:
        """A key (spent, reserved, remaining) and its calls over ``[since, until)``, in all and per model."""
        return await self.store.run(_key_usage, self.store.engine, key, as_utc(since), as_utc(until))

    async def usage(
        self,
        *,
        key: int | str | None = None,
        model: str | None = None,
        since: dt.datetime | dt.date | None = None,
        until: dt.datetime | dt.date | None = None,
        by: Grouping | None = None,
    ) -> UsageReport:
        """The ledger's calls of a key (id or prefix), a model (asked or answering) and a period
        ``[since, until)``, in all and grouped ``by`` key, model or day (UTC)."""
        if by is not None and by not in GROUPINGS:
            raise InvalidRequest(f"`by` must be one of {', '.join(GROUPINGS)}, not {by!r}")
        model = _model_filter(model)
        return await self.store.run(self._usage, key, model, as_utc(since), as_utc(until), by)

    def _usage(
        self,
        key: int | str | None,
        model: str | None,
        since: dt.datetime | None,
        until: dt.datetime | None,
        by: Grouping | None,
    ) -> UsageReport:
        engine = self.store.engine
        record = _record(engine, key) if key is not None else None
        where = ledger.UsageFilter(record.id if record else None, model or None, since, until)
        return UsageReport(
            Key.of(record) if record else None,
            model or None,
            _aware(since),
            _aware(until),
            by,
            _totals(engine, where),
            _groups(engine, where, by) if by else [],
        )

    async def model_activity(self, since: dt.datetime) -> list[ModelActivity]:
        """Per model (the one that answered, else the one asked): its calls since ``since``."""
        start = as_utc(since)
        assert start is not None
        rows = await self.store.run(ledger.by_model_since, self.store.engine, start)
        return [ModelActivity(**row) for row in rows]

    async def calls(
        self,
        *,
        key: int | str | None = None,
        model: str | None = None,
        since: dt.datetime | dt.date | None = None,
        until: dt.datetime | dt.date | None = None,
    ) -> list[CallRow]:
        """Every one of the ledger's rows (oldest first), filtered as :meth:`usage`, in memory: exports
        use :meth:`call_pages`."""
        pages = await self.call_pages(key=key, model=model, since=since, until=until)
        return [row async for page in pages for row in page]

    async def call_pages(
        self,
        *,
        key: int | str | None = None,
        model: str | None = None,
        since: dt.datetime | dt.date | None = None,
        until: dt.datetime | dt.date | None = None,
    ) -> AsyncIterator[list[CallRow]]:
        """The ledger's rows filtered as :meth:`usage`, oldest first, every one of them, ``page_size``
        at a time (one page in memory). The filter is checked here (an unknown key: 404), before the
        first page is read, so that an export that starts also ends."""
        model = _model_filter(model)

        def where(engine: Engine) -> ledger.UsageFilter:
            record = _record(engine, key) if key is not None else None
            return ledger.UsageFilter(record.id if record else None, model, as_utc(since), as_utc(until))

        return self._pages(await self.store.run(where, self.store.engine))

    async def _pages(self, where: ledger.UsageFilter) -> AsyncIterator[list[CallRow]]:
        after: ledger.Cursor | None = None
        while True:
            rows = await self.store.run(ledger.page, self.store.engine, where, self.page_size, after)
            if rows:
                yield [CallRow.of(call) for _, call in rows]
            if len(rows) < self.page_size:
                return
            after = rows[-1][0]


@contextmanager
def open_accounts(database_url: str, *, models: Collection[str] | None = None) -> Iterator[Accounts]:
    """Accounts on a database opened (and migrated) for a command run, closed after: for the CLI."""
    store = Store(database_url, threads=1)
    try:
        store.upgrade()
        yield Accounts(store, models=models)
    finally:
        store.close()
