"""The management plane over HTTP: the admin API (``/admin/``, admin keys only) and a client key's own
usage (``GET /v1/usage``).

| route                        | what                                                             |
|------------------------------|------------------------------------------------------------------|
| POST   /admin/keys           | create a key; the answer's ``key`` is its plaintext, shown once  |
| GET    /admin/keys           | every key (revoked ones too)                                     |
| GET    /admin/keys/{id}      | one key (id or prefix), with its spend and usage so far          |
| PATCH  /admin/keys/{id}      | change name, models, budget, rpm, tpm, expires_at, disabled      |
| DELETE /admin/keys/{id}      | revoke (the row stays, for the ledger)                           |
| GET    /admin/keys/{id}/holds | what the key's calls in flight hold (age, amount, replica)       |
| POST   /admin/keys/{id}/holds/release | release them (all, or ``{"request_id": ...}``)           |
| GET    /admin/usage          | the ledger filtered (key, model, since, until), grouped (by), CSV |
| GET    /v1/usage             | the calling client key's budget, limits and usage by model       |

Money is exact: amounts are sent back as decimal strings (``"12.5"``) and taken as numbers or strings.
Times are UTC (ISO 8601; a bare date is its midnight). Errors are ``{"error": {message, type, code}}``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from rerankd.api.common import ServiceDep, caller, require_admin, require_key
from rerankd.errors import Forbidden, OpenAIError
from rerankd.gateway.accounts import (
    MAX_INTEGER,
    Accounts,
    Grouping,
    Held,
    Key,
    KeyUsage,
    NoDatabase,
    UsageReport,
    UsageTotals,
)
from rerankd.gateway.exports import call_lines, group_lines

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

Money = Annotated[
    Decimal,
    PlainSerializer(lambda amount: format(amount, "f"), return_type=str, when_used="json"),
    Field(description="An amount of the operator's currency, exact, as decimal text (never 1E-8)."),
]


def accounts_of(service: ServiceDep) -> Accounts:
    if service.accounts is None:
        raise NoDatabase()
    return service.accounts


AccountsDep = Annotated[Accounts, Depends(accounts_of)]
KeyId = Annotated[str, Path(description="The key's id, or its prefix (`rk-` and 8 characters).")]


# -- bodies and answers ----------------------------------------------------------------------------


class KeyFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[str] | None = Field(
        default=None, description="Model names or aliases the key may use; null: every model."
    )
    budget: Decimal | None = Field(
        default=None, ge=0, description="Most the key may spend, in the operator's currency; null: unlimited."
    )
    rpm: int | None = Field(
        default=None, ge=1, le=MAX_INTEGER, description="Requests per minute; null: no limit."
    )
    tpm: int | None = Field(
        default=None, ge=1, le=MAX_INTEGER, description="Tokens per minute; null: no limit."
    )
    expires_at: dt.datetime | None = Field(
        default=None, description="When the key stops working (UTC unless the time says); null: never."
    )


class KeyCreate(KeyFields):
    name: str = Field(min_length=1, max_length=200, description="Who or what the key is for.")


class KeyUpdate(KeyFields):
    """Only the fields sent change; null clears a limit (models: every model, budget: unlimited...)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    disabled: bool | None = Field(default=None, description="true stops the key until set back to false.")


class KeyOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="The key's first characters: names it in lists, logs and the ledger.")
    state: Literal["active", "disabled", "revoked", "expired"]
    models: list[str] | None = Field(description="Models the key may use; null: every model.")
    budget: Money | None = Field(description="null: unlimited.")
    spent: Money
    reserved: Money = Field(description="Held by calls in flight.")
    remaining: Money | None = Field(description="budget - spent - reserved; null: unlimited.")
    rpm: int | None
    tpm: int | None
    expires_at: dt.datetime | None
    disabled: bool
    revoked_at: dt.datetime | None
    created_at: dt.datetime

    @classmethod
    def of(cls, key: Key) -> KeyOut:
        values = asdict(key)
        values["models"] = list(key.models) if key.models is not None else None
        return cls(**values)


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself: shown this once, stored only as a hash. Keep it safe.")


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyOut]


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


class KeyDetail(KeyOut):
    usage: KeyUsageOut = Field(description="Every call of the key so far.")


class UsageOut(BaseModel):
    key: KeyOut | None = Field(description="The key the report is filtered to, if any.")
    model: str | None
    since: dt.datetime | None
    until: dt.datetime | None
    by: Grouping | None
    total: Totals
    groups: list[Group] = Field(description="Per key, model or day (UTC) when `by` is given.")

    @classmethod
    def of(cls, report: UsageReport) -> UsageOut:
        return cls(
            key=KeyOut.of(report.key) if report.key else None,
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
    return KeyCreated(**KeyOut.of(key).model_dump(), key=plaintext)


@router.get("/keys", response_model=KeyList, summary="Every key, revoked ones included")
async def list_keys(accounts: AccountsDep) -> KeyList:
    return KeyList(data=[KeyOut.of(key) for key in await accounts.list_keys()])


@router.get("/keys/{key_id}", response_model=KeyDetail, summary="One key, with its spend and usage so far")
async def show_key(key_id: KeyId, accounts: AccountsDep) -> KeyDetail:
    usage = await accounts.key_usage(key_id)
    return KeyDetail(**KeyOut.of(usage.key).model_dump(), usage=KeyUsageOut.of(usage))


@router.patch("/keys/{key_id}", response_model=KeyOut, summary="Change a key's name, models or limits")
async def update_key(key_id: KeyId, body: Annotated[KeyUpdate, Body()], accounts: AccountsDep) -> KeyOut:
    return KeyOut.of(await accounts.update_key(key_id, **body.model_dump(exclude_unset=True)))


@router.delete("/keys/{key_id}", response_model=KeyOut, summary="Revoke a key (for good, on every replica)")
async def revoke_key(key_id: KeyId, accounts: AccountsDep) -> KeyOut:
    return KeyOut.of(await accounts.revoke_key(key_id))


class HoldOut(BaseModel):
    """What one call in flight holds of its key."""

    request_id: str = Field(description="The call's `x-request-id`.")
    amount: Money
    tokens: int = Field(description="Tokens reserved in the key's rate window.")
    replica: str = Field(description="The server whose call placed it: host:pid:boot.")
    created_at: dt.datetime
    deadline: dt.datetime = Field(description="When a sweep releases it, if its call has not settled.")
    age_seconds: float

    @classmethod
    def of(cls, held: Held) -> HoldOut:
        return cls(**asdict(held))


class KeyHolds(BaseModel):
    key: KeyOut
    data: list[HoldOut] = Field(description="Oldest first.")


class HoldRelease(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str | None = Field(default=None, description="One call's hold; null: every hold of the key.")


class Released(BaseModel):
    key: KeyOut = Field(description="The key after the release.")
    released: list[HoldOut]


@router.get("/keys/{key_id}/holds", response_model=KeyHolds, summary="What a key's calls in flight hold")
async def key_holds(key_id: KeyId, accounts: AccountsDep) -> KeyHolds:
    key, held = await accounts.holds(key_id)
    return KeyHolds(key=KeyOut.of(key), data=[HoldOut.of(item) for item in held])


@router.post(
    "/keys/{key_id}/holds/release",
    response_model=Released,
    summary="Release a key's holds (all, or one call's) before their deadline",
)
async def release_holds(
    key_id: KeyId, accounts: AccountsDep, body: Annotated[HoldRelease | None, Body()] = None
) -> Released:
    key, released = await accounts.release_holds(key_id, body.request_id if body else None)
    return Released(key=KeyOut.of(key), released=[HoldOut.of(item) for item in released])


# -- /admin/usage ----------------------------------------------------------------------------------


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
    since: Annotated[dt.datetime | None, Query(description="From this time (UTC), included.")] = None,
    until: Annotated[dt.datetime | None, Query(description="To this time (UTC), excluded.")] = None,
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
    if output == "json":
        return UsageOut.of(await accounts.usage(key=key, model=model, since=since, until=until, by=by))
    lines: AsyncIterator[str] | Iterator[str]
    if by is not None:
        report = await accounts.usage(key=key, model=model, since=since, until=until, by=by)
        lines = group_lines(by, report.groups)
    else:
        # Every row, read from the ledger a page at a time while it is sent: no cap, bounded memory.
        lines = call_lines(await accounts.call_pages(key=key, model=model, since=since, until=until))
    filename = f"rerankd-usage{'-by-' + by if by else ''}.csv"
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


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
        dt.datetime | None, Query(description="From this time (UTC), included; default: 30 days ago.")
    ] = None,
    until: Annotated[
        dt.datetime | None, Query(description="To this time (UTC), excluded; default: now.")
    ] = None,
) -> SelfUsage:
    who = caller(request)
    if who.key_id is None:
        raise Forbidden(
            f"usage is kept per managed key, and this call's key is {_describe(who.label)}: ask the operator "
            "for a managed key (rk-...) to see its budget and usage here"
        )
    accounts = accounts_of(service)
    if since is None:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    usage = await accounts.key_usage(who.key_id, since=since, until=until)
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
