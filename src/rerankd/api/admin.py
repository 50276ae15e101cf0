"""The management plane over HTTP: the admin API (``/admin/``, admin keys only) and a client key's own
usage (``GET /v1/usage``).

| route                        | what                                                             |
|------------------------------|------------------------------------------------------------------|
| POST   /admin/keys           | create a key; the answer's ``key`` is its plaintext, shown once  |
| GET    /admin/keys           | every key (revoked ones too), with when it last made a call      |
| GET    /admin/keys/{id}      | one key (id or prefix), with its spend and usage so far          |
| PATCH  /admin/keys/{id}      | change name, models, budget, rpm, tpm, expires_at, disabled      |
| DELETE /admin/keys/{id}      | revoke (the row stays, for the ledger)                           |
| GET    /admin/keys/{id}/holds | what the key's calls in flight hold (age, amount, replica)       |
| POST   /admin/keys/{id}/holds/release | release them (all, or ``{"request_id": ...}``)           |
| GET    /admin/usage          | the ledger filtered (key, model, since, until), grouped (by), CSV |
| GET    /admin/models         | each model's state, price, breaker, recent calls, failures, latency |
| GET    /v1/usage             | the calling client key's budget, limits and usage by model       |

Money is exact: amounts are sent back as decimal strings (``"12.5"``) and taken as numbers or strings.
Times are UTC (ISO 8601; a bare date is its midnight). Errors are ``{"error": {message, type, code}}``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from rerankd.api.common import ServiceDep, caller, require_admin, require_key
from rerankd.api.server import CircuitCard
from rerankd.errors import Forbidden, OpenAIError
from rerankd.gateway.accounts import (
    MAX_INTEGER,
    MAX_NAME_CHARS,
    Accounts,
    Grouping,
    Held,
    Key,
    KeyUsage,
    ModelActivity,
    NoDatabase,
    UsageReport,
    UsageTotals,
    parse_time,
)
from rerankd.gateway.exports import call_lines, group_lines
from rerankd.gateway.money import Money
from rerankd.spec import Price

__all__ = ["router", "self_service"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {
        "model": OpenAIError,
        "description": "Missing or wrong admin key (a client key never opens /admin/)",
    },
    404: {"model": OpenAIError, "description": "No key with this id or prefix"},
    422: {"model": OpenAIError, "description": "A field is missing or has a wrong value"},
    503: {"model": OpenAIError, "description": "The server has no database (database_url: none)"},
}

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)], responses=_ERRORS)
self_service = APIRouter(tags=["usage"])


def accounts_of(service: ServiceDep) -> Accounts:
    if service.accounts is None:
        raise NoDatabase()
    return service.accounts


AccountsDep = Annotated[Accounts, Depends(accounts_of)]
KeyId = Annotated[str, Path(description="The key's id, or its prefix (`rk-` and 8 characters).")]


# -- bodies and answers ----------------------------------------------------------------------------
#
# A key is answered as ``gateway.accounts.Key`` itself (its fields and descriptions are declared there,
# once); the bodies below hold types only: accounts checks every value, with its own messages.


def _key_rules(schema: dict[str, Any]) -> None:
    """Show accounts' rules for the key fields in the OpenAPI document (its numbers, not copies)."""
    rules = {
        "name": {"minLength": 1, "maxLength": MAX_NAME_CHARS},
        "budget": {"minimum": 0},
        "rpm": {"minimum": 1, "maximum": MAX_INTEGER},
        "tpm": {"minimum": 1, "maximum": MAX_INTEGER},
    }
    for name, shown in rules.items():
        if name in schema["properties"]:
            field = schema["properties"][name]
            (field["anyOf"][0] if "anyOf" in field else field).update(shown)


class KeyFields(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_key_rules)

    models: list[str] | None = Field(
        default=None, description="Model names or aliases the key may use; null: every model."
    )
    budget: Decimal | None = Field(
        default=None, description="Most the key may spend, in the operator's currency; null: unlimited."
    )
    rpm: int | None = Field(default=None, description="Requests per minute; null: no limit.")
    tpm: int | None = Field(default=None, description="Tokens per minute; null: no limit.")
    expires_at: dt.datetime | None = Field(
        default=None, description="When the key stops working (UTC unless the time says); null: never."
    )


class KeyCreate(KeyFields):
    name: str = Field(description="Who or what the key is for.")


class KeyUpdate(KeyFields):
    """Only the fields sent change; null clears a limit (models: every model, budget: unlimited...)."""

    name: str | None = None
    disabled: bool | None = Field(default=None, description="true stops the key until set back to false.")


def _values(key: Key) -> dict[str, Any]:
    """A key's fields, for an answer that adds to them."""
    return {field.name: getattr(key, field.name) for field in fields(Key)}


@dataclass(frozen=True, slots=True)
class KeyCreated(Key):
    key: Annotated[
        str, Field(description="The key itself: shown this once, stored only as a hash. Keep it safe.")
    ]


@dataclass(frozen=True, slots=True)
class KeyListed(Key):
    last_used_at: Annotated[
        dt.datetime | None,
        Field(description="When the key last made a call (its newest ledger row); null: never."),
    ]


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyListed]


class Totals(BaseModel):
    calls: int
    errors: int = Field(description="Calls answered with an error (4xx, 5xx).")
    documents: int
    query_tokens: int
    documents_tokens: int
    total_tokens: int
    search_units: int
    cost: Money

    @classmethod
    def of(cls, totals: UsageTotals) -> Totals:
        values = asdict(totals)
        values.pop("group")
        return cls(**values)


class Group(Totals):
    group: str = Field(description="The key (`name (prefix)` or a static key's label), model or day.")

    @classmethod
    def of(cls, totals: UsageTotals) -> Group:
        return cls(**asdict(totals))


class KeyUsageOut(BaseModel):
    since: dt.datetime | None
    until: dt.datetime | None
    total: Totals
    by_model: list[Group]

    @classmethod
    def of(cls, usage: KeyUsage) -> KeyUsageOut:
        return cls(
            since=usage.since,
            until=usage.until,
            total=Totals.of(usage.total),
            by_model=[Group.of(group) for group in usage.by_model],
        )


@dataclass(frozen=True, slots=True)
class KeyDetail(Key):
    usage: Annotated[KeyUsageOut, Field(description="Every call of the key so far.")]


class UsageOut(BaseModel):
    key: Key | None = Field(description="The key the report is filtered to, if any.")
    model: str | None
    since: dt.datetime | None
    until: dt.datetime | None
    by: Grouping | None
    total: Totals
    groups: list[Group] = Field(description="Per key, model or day (UTC) when `by` is given.")

    @classmethod
    def of(cls, report: UsageReport) -> UsageOut:
        return cls(
            key=report.key,
            model=report.model,
            since=report.since,
            until=report.until,
            by=report.by,
            total=Totals.of(report.total),
            groups=[Group.of(group) for group in report.groups],
        )


class SelfUsage(BaseModel):
    """What a client key may know of itself."""

    object: Literal["usage"] = "usage"
    name: str
    prefix: str
    state: Literal["active", "disabled", "revoked", "expired"]
    models: list[str] | None = Field(description="Models the key may use; null: every model.")
    budget: Money | None = Field(description="null: unlimited.")
    spent: Money
    remaining: Money | None = Field(description="What the key can still spend; null: unlimited.")
    rpm: int | None
    tpm: int | None
    expires_at: dt.datetime | None
    since: dt.datetime | None
    until: dt.datetime | None
    total: Totals
    by_model: list[Group]


# -- /admin/keys -----------------------------------------------------------------------------------


@router.post("/keys", response_model=KeyCreated, status_code=201, summary="Create a key (its plaintext once)")
async def create_key(body: Annotated[KeyCreate, Body()], accounts: AccountsDep) -> KeyCreated:
    key, plaintext = await accounts.create_key(
        body.name,
        models=body.models,
        budget=body.budget,
        rpm=body.rpm,
        tpm=body.tpm,
        expires_at=body.expires_at,
    )
    return KeyCreated(**_values(key), key=plaintext)


@router.get("/keys", response_model=KeyList, summary="Every key, revoked ones included")
async def list_keys(accounts: AccountsDep) -> KeyList:
    keys = await accounts.list_keys()
    last_used = await accounts.last_used()
    return KeyList(data=[KeyListed(**_values(key), last_used_at=last_used.get(key.id)) for key in keys])


@router.get("/keys/{key_id}", response_model=KeyDetail, summary="One key, with its spend and usage so far")
async def show_key(key_id: KeyId, accounts: AccountsDep) -> KeyDetail:
    usage = await accounts.key_usage(key_id)
    return KeyDetail(**_values(usage.key), usage=KeyUsageOut.of(usage))


@router.patch("/keys/{key_id}", response_model=Key, summary="Change a key's name, models or limits")
async def update_key(key_id: KeyId, body: Annotated[KeyUpdate, Body()], accounts: AccountsDep) -> Key:
    return await accounts.update_key(key_id, **body.model_dump(exclude_unset=True))


@router.delete("/keys/{key_id}", response_model=Key, summary="Revoke a key (for good, on every replica)")
async def revoke_key(key_id: KeyId, accounts: AccountsDep) -> Key:
    return await accounts.revoke_key(key_id)


class KeyHolds(BaseModel):
    key: Key
    data: list[Held] = Field(description="Oldest first.")


class HoldRelease(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str | None = Field(default=None, description="One call's hold; null: every hold of the key.")


class Released(BaseModel):
    key: Key = Field(description="The key after the release.")
    released: list[Held]


@router.get("/keys/{key_id}/holds", response_model=KeyHolds, summary="What a key's calls in flight hold")
async def key_holds(key_id: KeyId, accounts: AccountsDep) -> KeyHolds:
    key, held = await accounts.holds(key_id)
    return KeyHolds(key=key, data=held)


@router.post(
    "/keys/{key_id}/holds/release",
    response_model=Released,
    summary="Release a key's holds (all, or one call's) before their deadline",
)
async def release_holds(
    key_id: KeyId, accounts: AccountsDep, body: Annotated[HoldRelease | None, Body()] = None
) -> Released:
    key, released = await accounts.release_holds(key_id, body.request_id if body else None)
    return Released(key=key, released=released)


# -- /admin/reload ---------------------------------------------------------------------------------


class ReloadOut(BaseModel):
    added: list[str] = Field(description="Models now configured that were not.")
    changed: list[str] = Field(
        description="Models whose loaded part changed: the new version loads in the background and takes "
        "over once ready; the old one serves until then."
    )
    removed: list[str] = Field(description="Models no longer configured: their queued work finishes first.")
    kept: list[str] = Field(description="Models kept loaded, with their new prices, aliases and fallbacks.")
    needs_restart: list[str] = Field(
        description="Changed settings a running server cannot take over (port, database...): still the old."
    )


@router.post(
    "/reload",
    response_model=ReloadOut,
    summary="Re-read the config (as SIGHUP does): models, prices, keys and limits apply to the next call",
    responses={409: {"description": "Not started from a config file it can read again"}},
)
async def reload_config(request: Request) -> ReloadOut:
    done = await request.app.state.reload()
    return ReloadOut(
        added=list(done.added),
        changed=list(done.changed),
        removed=list(done.removed),
        kept=list(done.kept),
        needs_restart=list(done.needs_restart),
    )


# -- /admin/usage ----------------------------------------------------------------------------------


# How /admin/usage and /v1/usage read a time: the same as the CLI's --since and --until.
_TIME = "An ISO date or time (UTC unless it says: 2027-01-01T12:00:00Z), or how long ago (7d, 12h, 30m)."


@router.get(
    "/usage",
    response_model=UsageOut,
    summary="Usage from the ledger: filtered, grouped, or exported as CSV",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def usage(
    accounts: AccountsDep,
    key: Annotated[str | None, Query(description="A key's id or prefix.")] = None,
    model: Annotated[str | None, Query(description="A model, as asked or as it answered.")] = None,
    since: Annotated[str | None, Query(description=f"From this time, included. {_TIME}")] = None,
    until: Annotated[str | None, Query(description=f"To this time, excluded. {_TIME}")] = None,
    by: Annotated[Grouping | None, Query(description="Group by key, model or day (UTC).")] = None,
    output: Annotated[
        Literal["json", "csv"],
        Query(
            alias="format",
            description="csv: the groups with a header row, or without `by` every call, one row each, "
            "oldest first (streamed). Text cells starting with = + - @ (or tab, CR) get a ' in front.",
        ),
    ] = "json",
) -> Any:
    start, end = parse_time(since, "since"), parse_time(until, "until")
    if output == "json":
        return UsageOut.of(await accounts.usage(key=key, model=model, since=start, until=end, by=by))
    lines: AsyncIterator[str] | Iterator[str]
    if by is not None:
        report = await accounts.usage(key=key, model=model, since=start, until=end, by=by)
        lines = group_lines(by, report.groups)
    else:
        # Every row, read from the ledger a page at a time while it is sent: no cap, bounded memory.
        lines = call_lines(await accounts.call_pages(key=key, model=model, since=start, until=end))
    filename = f"rerankd-usage{'-by-' + by if by else ''}.csv"
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# -- /admin/models ---------------------------------------------------------------------------------


class RecentCalls(BaseModel):
    calls: int = Field(description="Calls the model answered (or was asked and none answered) in the period.")
    failures: int = Field(description="Of those, answered 5xx: the model or its upstreams failed.")
    failure_rate: float | None = Field(description="failures / calls; null: no calls.")
    mean_ms: float | None = Field(description="Mean time of the calls answered without an error.")
    max_ms: float | None = Field(description="Longest time of the calls answered without an error.")

    @classmethod
    def of(cls, activity: ModelActivity | None) -> RecentCalls:
        if activity is None:
            return cls(calls=0, failures=0, failure_rate=None, mean_ms=None, max_ms=None)
        rate = activity.failures / activity.calls if activity.calls else None
        return cls(
            calls=activity.calls,
            failures=activity.failures,
            failure_rate=rate,
            mean_ms=activity.mean_ms,
            max_ms=activity.max_ms,
        )


class ModelHealth(BaseModel):
    id: str
    kind: str
    status: str = Field(description="not_loaded | loading | ready | failed")
    error: str | None = Field(description="Why the model cannot be loaded, and how to fix it.")
    aliases: list[str]
    precision: str | None = Field(description="What a loaded model computes in; null until loaded.")
    provider: str | None = Field(description="Upstream models: the provider's API.")
    fallbacks: list[str] = Field(description="Models tried in order if this one fails.")
    price: Price | None = Field(description="What a call costs; null: free.")
    circuit: CircuitCard | None = Field(description="Upstream models: the breaker (after the first call).")
    recent: RecentCalls | None = Field(description="From the ledger; null: the server has no database.")


class ModelHealthList(BaseModel):
    object: Literal["list"] = "list"
    minutes: int = Field(description="The period `recent` covers, up to now.")
    data: list[ModelHealth]


@router.get(
    "/models",
    response_model=ModelHealthList,
    summary="Each model's state, price and breaker, and its recent calls, failures and latency",
)
async def model_health(
    service: ServiceDep,
    minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60, description="How far back `recent` looks.")] = 60,
) -> ModelHealthList:
    activity: dict[str, ModelActivity] | None = None
    if service.accounts is not None:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)
        activity = {row.model: row for row in await service.accounts.model_activity(since)}
    data = []
    for view in service.models():
        circuit = view.loaded.circuit if view.loaded else None
        data.append(
            ModelHealth(
                id=view.name,
                kind=view.kind,
                status=view.status,
                error=view.error,
                aliases=list(view.aliases),
                precision=view.precision,
                provider=view.settings.provider,
                fallbacks=list(view.fallbacks),
                price=service.pool.price_of(view.name),
                circuit=CircuitCard(**asdict(circuit)) if circuit else None,
                recent=RecentCalls.of(activity.get(view.name)) if activity is not None else None,
            )
        )
    return ModelHealthList(minutes=minutes, data=data)


# -- /v1/usage -------------------------------------------------------------------------------------


@self_service.get(
    "/v1/usage",
    response_model=SelfUsage,
    dependencies=[Depends(require_key)],
    summary="The calling key's budget, limits and usage by model",
    responses={
        401: {"model": OpenAIError, "description": "Missing, unknown, revoked, disabled or expired key"},
        403: {"model": OpenAIError, "description": "Not a managed key (a static key of the config)"},
        503: {"model": OpenAIError, "description": "The server has no database"},
    },
)
async def own_usage(
    request: Request,
    service: ServiceDep,
    since: Annotated[
        str | None, Query(description=f"From this time, included; default: 30 days ago. {_TIME}")
    ] = None,
    until: Annotated[str | None, Query(description=f"To this time, excluded; default: now. {_TIME}")] = None,
) -> SelfUsage:
    who = caller(request)
    if who.key_id is None:
        raise Forbidden(
            f"usage is kept per managed key, and this call's key is {_describe(who.label)}: ask the operator "
            "for a managed key (rk-...) to see its budget and usage here"
        )
    accounts = accounts_of(service)
    start = parse_time(since, "since") or dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    usage = await accounts.key_usage(who.key_id, since=start, until=parse_time(until, "until"))
    key = usage.key
    return SelfUsage(
        name=key.name,
        prefix=key.prefix,
        state=key.state,
        models=list(key.models) if key.models is not None else None,
        budget=key.budget,
        spent=key.spent,
        remaining=key.remaining,
        rpm=key.rpm,
        tpm=key.tpm,
        expires_at=key.expires_at,
        since=usage.since,
        until=usage.until,
        total=Totals.of(usage.total),
        by_model=[Group.of(group) for group in usage.by_model],
    )


def _describe(label: str) -> str:
    if label.startswith("static:"):
        return "a static key of the server's config"
    return "none (this server accepts calls without a key)"
