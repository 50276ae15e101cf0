"""The gateway's policy: who is calling, what their key lets them do, and what each call cost.

- ``authenticate``: a Bearer key is a static key of the config, a managed key of the database (looked
  up on every call, so a revoked key stops working on every replica at once), or refused with a 401 that
  says why (unknown, revoked, disabled, expired, or an admin key). A server with no keys at all is open.
- ``authorize``, before anything: the key's model list (403).
- a call's :class:`Tab` admits it once its size is known — from the scorer, after tokenizing and before
  any forward pass (exact for local models, estimated for upstream ones): its requests and tokens this
  minute (429 with ``Retry-After`` and the ``x-ratelimit-*`` headers) and its budget (402). Its cost
  and tokens are *held* (a row of ``holds``, with a deadline), so that concurrent calls cannot overspend
  them; a fallback model moves the hold to its own price.
- ``settle``, after: the call's real cost, from the usage the client is told and the price of the model
  that answered, is charged (or, if it does not fit the budget after all, the call becomes a 402), its
  hold taken and the call written to the ledger — all in one transaction, committed before the answer is
  sent. Every call settles, whatever happened (errors, cancellation: the service's ``finally``); holds of
  a replica that died are released by ``sweep`` once past their deadline.

Without a database (``database_url: none``) only static keys exist and nothing is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence

from rerankd import tracing
from rerankd.errors import Forbidden, ModelNotFound, PaymentRequired, RateLimited, Unauthorized, UpstreamError
from rerankd.gateway.money import from_nanos
from rerankd.gateway.store import Store, holds, ledger, limits
from rerankd.gateway.store import keys as key_store
from rerankd.spec import Price
from rerankd.types import ANONYMOUS, OPERATOR, CallContext, Caller, CallSize, RerankRequest, RerankResponse

__all__ = ["Meter", "Tab", "bearer", "rate_headers", "replica_id"]

log = logging.getLogger(__name__)


def replica_id() -> str:
    """This server process, as its holds name it: host, pid, and a random boot id (pids are reused)."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(4)}"


def _matches(token: str, keys: Sequence[str]) -> bool:
    """Constant-time membership: every key is compared, so timing does not tell which came close."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token.encode(), key.encode())
    return matched


def bearer(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Meter:
    def __init__(
        self,
        store: Store | None,
        *,
        static_keys: Sequence[str],
        admin_keys: Sequence[str],
        canonical: Callable[[str], str | None],
        metrics_keys: Sequence[str] = (),
        price_of: Callable[[str], Price | None],
        hold_seconds: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.static_keys = list(static_keys)
        self.admin_keys = list(admin_keys)
        self.metrics_keys = list(metrics_keys)
        self._canonical = canonical
        self._price_of = price_of
        self.hold_seconds = hold_seconds  # a hold's deadline: this long after its call was admitted
        self.replica = replica_id()
        self._clock = clock

    # -- who is calling ---------------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Caller:
        token = bearer(authorization)
        if token is not None and _matches(token, self.static_keys):
            return Caller(label="static:" + hashlib.sha256(token.encode()).hexdigest()[:8])
        if token is not None and _matches(token, self.admin_keys):
            raise Unauthorized("this is an admin key: it opens the /admin/ API only; send a client key here")
        record = (
            await self.store.run(key_store.find_key, self.store.engine, token)
            if self.store and token
            else None
        )
        if record is not None:
            state = record.state()
            if state != "active":
                raise Unauthorized(_REFUSED[state].format(prefix=record.prefix))
            return Caller(
                label=record.prefix, key_id=record.id, models=record.models, rpm=record.rpm, tpm=record.tpm
            )
        if await self._open():
            return ANONYMOUS
        if token is None:
            raise Unauthorized("missing API key: send the header `Authorization: Bearer <key>`")
        if _matches(token, self.metrics_keys):
            raise Unauthorized("this is a metrics key: it opens /metrics only; send a client key here")
        raise Unauthorized("invalid API key: check the key in `Authorization: Bearer <key>`")

    async def _open(self) -> bool:
        """No key of any kind is configured: every client is accepted."""
        if self.static_keys or self.admin_keys:
            return False
        return self.store is None or not await self.store.run(key_store.any_keys, self.store.engine)

    def authenticate_admin(self, authorization: str | None) -> None:
        if not self.admin_keys:
            raise Unauthorized("the admin API is off: set admin_keys (RERANKD_ADMIN_KEYS) to use it")
        token = bearer(authorization)
        if token is None or not _matches(token, self.admin_keys):
            raise Unauthorized("invalid admin key: the /admin/ API takes only a key from admin_keys")

    async def _keyless(self) -> bool:
        """No key of any kind, not even for /metrics: whoever can reach the server runs it."""
        return not self.metrics_keys and await self._open()

    async def authenticate_reader(self, authorization: str | None) -> Caller:
        """Who reads the model list (``/v1/models``, TEI's ``/info``): a client key, which sees the models it
        may use; or an operator — an admin key, or anyone on a server without keys — who sees them all."""
        token = bearer(authorization)
        if token is not None and _matches(token, self.admin_keys):
            return OPERATOR
        caller = await self.authenticate(authorization)
        return OPERATOR if caller == ANONYMOUS and await self._keyless() else caller

    async def authenticate_metrics(self, authorization: str | None) -> None:
        """``/metrics`` counts every tenant's traffic: it takes an admin key or a key of ``metrics_keys``,
        never a client key; it is open only on a server without keys."""
        token = bearer(authorization)
        if token is not None and _matches(token, [*self.admin_keys, *self.metrics_keys]):
            return
        if await self._keyless():
            return
        takes = "/metrics takes an admin key or a key of metrics_keys (RERANKD_METRICS_KEYS)"
        if token is None:
            raise Unauthorized(f"missing key: {takes}; send the header `Authorization: Bearer <key>`")
        managed = self.store is not None and (
            await self.store.run(key_store.find_key, self.store.engine, token) is not None
        )
        if managed or _matches(token, self.static_keys):
            raise Forbidden(f"a client key cannot read other tenants' metrics: {takes}")
        raise Unauthorized(f"invalid key: {takes}")

    # -- what a caller may use --------------------------------------------------------------------

    def may_use(self, caller: Caller, model: str) -> bool:
        """Whether the caller's key lets it call this configured model (by any of its names)."""
        if caller.operator or caller.models is None:
            return True
        canonical = self._canonical(model)
        return canonical is not None and canonical in {self._canonical(name) for name in caller.models}

    def _usable(self, caller: Caller) -> str:
        """The configured models a restricted key may use, as its list names them, for messages."""
        names = [name for name in caller.models or () if self._canonical(name) is not None]
        return ", ".join(dict.fromkeys(names)) or "(none)"

    # -- before scoring ---------------------------------------------------------------------------

    def authorize(self, caller: Caller, request: RerankRequest) -> None:
        """The key's model list: a 404 or 403 before anything else."""
        self.authorize_model(caller, request.model)

    def authorize_model(self, caller: Caller, model: str) -> None:
        """404 for a model not configured, 403 for one the key may not use; each naming only the models
        the key may use (a key limited to some models is never told of the others)."""
        if caller.operator or caller.models is None:
            return
        if self._canonical(model) is None:
            raise ModelNotFound(
                f"model '{model}' is not served here; key {caller.label} may use: {self._usable(caller)}"
            )
        if not self.may_use(caller, model):
            raise Forbidden(
                f"key {caller.label} may not use model '{model}'; it may use: {self._usable(caller)} "
                "(ask the operator to add the model to the key)"
            )

    def open(self, context: CallContext) -> Tab:
        """A call's tab: it admits the call once its size is known, and ``settle`` closes it."""
        return Tab(self, context)

    def cost(self, model: str, size: CallSize) -> int:
        price = self._price_of(model)
        return price.cost_of(size) if price else 0

    async def _place(self, tab: Tab, model: str, size: CallSize) -> None:
        """Admit ``tab``'s call at ``size`` and ``model``'s price: hold its cost and tokens, or change the
        hold of an earlier model of its chain (without counting the request again)."""
        caller, store = tab.context.caller, self.store
        if caller.key_id is None or store is None:
            return
        nanos = self.cost(model, size)
        if tab.placed:
            if (nanos, size.tokens) == (tab.nanos, tab.tokens):
                return
            if not await store.run(holds.adjust, store.engine, tab.context.request_id, nanos, size.tokens):
                raise await self._refusal(caller, nanos, size)
            tab.nanos, tab.tokens = nanos, size.tokens
            return
        now = self._clock()
        created = dt.datetime.fromtimestamp(now, dt.UTC).replace(tzinfo=None)
        hold = holds.Hold(
            request_id=tab.context.request_id,
            key_id=caller.key_id,
            nanos=nanos,
            tokens=size.tokens,
            window=None,
            replica=self.replica,
            created_at=created,
            deadline=created + dt.timedelta(seconds=self.hold_seconds),
        )
        window, allowed = await store.run(holds.place, store.engine, hold, caller.rpm, caller.tpm, now)
        if not allowed:
            if window is not None and not window.allowed:
                raise self._rate_limited(caller, window)
            raise await self._refusal(caller, nanos, size)
        tab.placed, tab.window, tab.nanos, tab.tokens = True, window, nanos, size.tokens

    async def _refusal(self, caller: Caller, nanos: int, size: CallSize) -> PaymentRequired:
        assert self.store is not None and caller.key_id is not None
        record = await self.store.run(key_store.get_key, self.store.engine, caller.key_id)
        return self._over_budget(caller, record, nanos, size)

    def _rate_limited(self, caller: Caller, window: limits.Window) -> RateLimited:
        over = "tokens" if caller.tpm is not None and window.tokens >= caller.tpm else "requests"
        limit = caller.tpm if over == "tokens" else caller.rpm
        retry = max(1, math.ceil(window.resets_in))
        return RateLimited(
            f"key {caller.label} has used its {limit} {over} per minute; retry after {retry}s "
            "(ask the operator for a higher limit if this keeps happening)",
            headers={"Retry-After": str(retry), **rate_headers(caller, window)},
        )

    @staticmethod
    def _over_budget(
        caller: Caller,
        record: key_store.KeyRecord | None,
        nanos: int | None = None,
        size: CallSize | None = None,
    ) -> PaymentRequired:
        if record is None or record.budget_nanos is None:
            return PaymentRequired(f"key {caller.label} cannot be charged for this call")
        left = max(0, record.budget_nanos - record.spent_nanos - record.reserved_nanos)
        cost = ""
        if nanos is not None and size is not None:
            how = f"{size.tokens} tokens, {size.search_units} search unit(s)"
            if size.estimated:
                how = f"an estimate from about {how}; the real cost is settled after the answer"
            cost = f" this call costs {from_nanos(nanos)} ({how}), and"
        return PaymentRequired(
            f"key {caller.label} has spent {from_nanos(record.spent_nanos)} of its budget of "
            f"{from_nanos(record.budget_nanos)} (with {from_nanos(record.reserved_nanos)} held by calls in "
            f"flight):{cost} {from_nanos(left)} is left; this call does not fit: ask the operator to raise "
            "the budget"
        )

    # -- after ------------------------------------------------------------------------------------

    async def settle(
        self,
        tab: Tab,
        request: RerankRequest,
        *,
        response: RerankResponse | None = None,
        status: int = 200,
        latency: float = 0.0,
    ) -> ledger.Call:
        """Charge and record a call (answered, or failed with ``status``), taking its hold; raise
        PaymentRequired when the real cost of an answered call does not fit the key's budget. An answer
        whose cost cannot be computed is recorded as a 502, not charged, and raised as an UpstreamError."""
        await tab.admitted()  # an admission still running in its thread: its hold is taken below
        context = tab.context
        cost, fault = 0, None
        if response is not None:
            try:
                cost = self.cost(response.model, response.size)
            except (ArithmeticError, ValueError) as exc:  # an absurd usage that got this far
                fault = UpstreamError(
                    f"model '{response.model}' reported a usage that cannot be priced: {exc}"
                )
                response, status = None, fault.status
        call = ledger.Call(
            at=key_store.utcnow(),
            request_id=context.request_id,
            key_id=context.caller.key_id,
            key_label=context.caller.label,
            route=context.route,
            dialect=context.dialect,
            model=request.model,
            # The configured name, so that reports do not split a model by the aliases clients use.
            served_by=(self._canonical(response.model) or response.model) if response else None,
            status=status,
            documents=len(request.documents),
            query_tokens=response.usage.query_tokens if response else 0,
            documents_tokens=response.usage.documents_tokens if response else 0,
            total_tokens=response.usage.total_tokens if response else 0,
            search_units=response.search_units if response else 0,
            cost_nanos=cost,
            latency_ms=latency * 1000,
            attempts=len(response.attempts) if response else 0,
        )
        written = call
        if self.store is not None:
            written = await self.store.run(ledger.record, self.store.engine, call)
        if fault is not None:
            raise fault
        if written.status == 402 and status != 402:
            assert self.store is not None
            record = await self.store.run(key_store.get_key, self.store.engine, context.caller.key_id or 0)
            raise self._over_budget(context.caller, record)
        return written

    async def refund(self, call: ledger.Call, status: int = 499) -> None:
        """An answered call whose client left before its answer: ``status`` in the ledger, not charged."""
        if self.store is not None and 200 <= call.status < 300:
            await self.store.run(ledger.refund, self.store.engine, call.request_id, status)

    async def sweep(self) -> list[holds.Hold]:
        """Release the holds past their deadline (of replicas that died, or calls that never settled)."""
        if self.store is None:
            return []
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC).replace(tzinfo=None)
        released = await self.store.run(holds.sweep, self.store.engine, now)
        for hold in released:
            log.warning(
                "released the hold of call %s (key %d, %s held since %s by %s): past its deadline",
                hold.request_id,
                hold.key_id,
                from_nanos(hold.nanos),
                hold.created_at.isoformat(timespec="seconds"),
                hold.replica,
            )
        return released

    async def start(self) -> None:
        if self.store is not None:
            await self.store.run(self.store.upgrade)
            await self.sweep()

    async def close(self) -> None:
        if self.store is not None:
            self.store.close()


class Tab:
    """One metered call's account with the meter: what it holds (the model being tried, its cost and
    tokens) and the rate window it was counted in."""

    def __init__(self, meter: Meter, context: CallContext) -> None:
        self.meter = meter
        self.context = context
        self.placed = False
        self.nanos = 0
        self.tokens = 0
        self.window: limits.Window | None = None
        self._running: list[asyncio.Future[None]] = []

    def admit_for(self, model: str) -> Callable[[CallSize], Awaitable[None]]:
        """The ``admit`` a scorer of ``model`` is given."""

        async def admit(size: CallSize) -> None:
            measured: dict[str, tracing.Attribute] = {
                "rerankd.model": model,
                "rerankd.tokens": size.tokens,
                "rerankd.search_units": size.search_units,
                "rerankd.estimated": size.estimated,
            }
            with tracing.span("rerankd.admission", measured) as span:
                # Shielded: a client that leaves while the database works does not stop the work half-way
                # unseen; ``settle`` waits for it, then takes whatever it held.
                work = asyncio.ensure_future(self.meter._place(self, model, size))
                self._running.append(work)
                await asyncio.shield(work)
                if self.placed:  # a managed key's call: what is held until it settles
                    span.set("rerankd.held", str(from_nanos(self.nanos)))

        return admit

    async def admitted(self) -> None:
        """Wait for admissions still running (their errors were the scorer's to see)."""
        for work in self._running:
            with contextlib.suppress(Exception):
                await work

    def headers(self, used_tokens: int) -> dict[str, str]:
        """The rate-limit headers of the call, with the tokens it used in place of those it reserved."""
        return rate_headers(self.context.caller, self.window, used_tokens - self.tokens)


_REFUSED = {
    "revoked": "API key {prefix} was revoked: ask the operator for a new key",
    "disabled": "API key {prefix} is disabled: ask the operator to enable it",
    "expired": "API key {prefix} has expired: ask the operator for a new key or a later expiry",
}


def rate_headers(caller: Caller, window: limits.Window | None, used_tokens: int = 0) -> dict[str, str]:
    """OpenAI-style ``x-ratelimit-*`` headers of a key with limits (none for keys without); ``used_tokens``:
    tokens of the window beyond what ``window`` counts."""
    if window is None:
        return {}
    headers = {}
    # Both limits count in the same one-minute window, so both reset when it ends (OpenAI's duration form).
    reset = _duration(window.resets_in)
    if caller.rpm is not None:
        headers["x-ratelimit-limit-requests"] = str(caller.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, caller.rpm - window.requests))
        headers["x-ratelimit-reset-requests"] = reset
    if caller.tpm is not None:
        headers["x-ratelimit-limit-tokens"] = str(caller.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, caller.tpm - window.tokens - used_tokens))
        headers["x-ratelimit-reset-tokens"] = reset
    return headers


def _duration(seconds: float) -> str:
    """A duration as OpenAI writes its reset headers: ``1s``, ``6m0s``, ``120ms``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"
