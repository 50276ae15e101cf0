"""The gateway's policy: who is calling, what their key lets them do, and what each call cost.

- ``authenticate``: a Bearer key is a static key of the config, a managed key of the database (looked
  up on every call, so a revoked key stops working on every replica at once), or refused with a 401 that
  says why (unknown, revoked, disabled, expired, or an admin key). A server with no keys at all is open.
- ``admit``, before scoring: the key's model list (403), its requests and tokens this minute (429 with
  ``Retry-After`` and the ``x-ratelimit-*`` headers), and its budget (402), from which an estimate of the
  call's cost is reserved so that concurrent calls cannot overspend it.
- ``settle``, after: the call's real cost, from the usage the client is told and the price of the model
  that answered, is charged (or, if it does not fit the budget after all, the call becomes a 402) and the
  call is written to the ledger — all in one transaction, committed before the answer is sent.

Without a database (``database_url: none``) only static keys exist and nothing is recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rerankd.errors import Forbidden, PaymentRequired, RateLimited, Unauthorized
from rerankd.gateway.money import from_nanos
from rerankd.gateway.store import Store, ledger, limits
from rerankd.gateway.store import keys as key_store
from rerankd.spec import Price
from rerankd.types import ANONYMOUS, CallContext, Caller, RerankRequest, RerankResponse

__all__ = ["Admission", "Meter", "bearer", "rate_headers"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Admission:
    """What admitting a call took: the money reserved, and the rate window it was counted in."""

    reserved: int = 0
    window: limits.Window | None = None


def _matches(token: str, keys: Sequence[str]) -> bool:
    """Constant-time membership: every key is compared, so timing does not tell which came close."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token.encode(), key.encode())
    return matched


def bearer(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def estimate_tokens(request: RerankRequest) -> int:
    """An estimate of the tokens a call will use, for the reservation: a token covers at least a
    character in the tokenizers rerankers use, so the characters bound it (prompts of LLM rerankers and
    chunk overlaps aside: ``settle`` catches those)."""
    return (
        len(request.query) + sum(len(document) for document in request.documents) + 2 * len(request.documents)
    )


class Meter:
    def __init__(
        self,
        store: Store | None,
        *,
        static_keys: Sequence[str],
        admin_keys: Sequence[str],
        canonical: Callable[[str], str | None],
        price_of: Callable[[str], Price | None],
        chain_of: Callable[[str], tuple[str, ...]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.static_keys = list(static_keys)
        self.admin_keys = list(admin_keys)
        self._canonical = canonical
        self._price_of = price_of
        self._chain_of = chain_of
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

    # -- before scoring ---------------------------------------------------------------------------

    async def admit(self, caller: Caller, request: RerankRequest) -> Admission:
        if caller.models is not None:
            asked = self._canonical(request.model)
            permitted = {self._canonical(name) for name in caller.models}
            if asked is not None and asked not in permitted:
                raise Forbidden(
                    f"key {caller.label} may not use model '{request.model}'; it may use: "
                    f"{', '.join(caller.models) or '(none)'} (ask the operator to add the model to the key)"
                )
        if caller.key_id is None or self.store is None:
            return Admission()
        reserved = self._estimate(request)
        window, allowed = await self.store.run(
            limits.admit, self.store.engine, caller.key_id, caller.rpm, caller.tpm, self._clock(), reserved
        )
        if not allowed:
            if window is not None and not window.allowed:
                raise self._rate_limited(caller, window)
            record = await self.store.run(key_store.get_key, self.store.engine, caller.key_id)
            raise self._over_budget(caller, record)
        return Admission(reserved, window)

    def _estimate(self, request: RerankRequest) -> int:
        tokens, units = estimate_tokens(request), max(1, math.ceil(len(request.documents) / 100))
        chain = self._chain_of(request.model)
        prices = [price for name in chain if (price := self._price_of(name)) is not None]
        return max((price.cost_nanos(tokens, units) for price in prices), default=0)

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
    def _over_budget(caller: Caller, record: key_store.KeyRecord | None) -> PaymentRequired:
        if record is None or record.budget_nanos is None:
            return PaymentRequired(f"key {caller.label} cannot be charged for this call")
        return PaymentRequired(
            f"key {caller.label} has spent {from_nanos(record.spent_nanos)} of its budget of "
            f"{from_nanos(record.budget_nanos)} (with {from_nanos(record.reserved_nanos)} held by calls in "
            "flight); this call does not fit: ask the operator to raise the budget"
        )

    # -- after ------------------------------------------------------------------------------------

    async def settle(
        self,
        context: CallContext,
        request: RerankRequest,
        admission: Admission,
        *,
        response: RerankResponse | None = None,
        status: int = 200,
        latency: float = 0.0,
    ) -> ledger.Call:
        """Charge and record a call (answered, or failed with ``status``); raise PaymentRequired when the
        real cost of an answered call does not fit the key's budget."""
        cost = 0
        if response is not None:
            price = self._price_of(response.model)
            cost = price.cost_nanos(response.usage.total_tokens, response.search_units) if price else 0
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
        if self.store is None:
            return call
        window = admission.window.window if admission.window else None
        written = await self.store.run(
            ledger.record, self.store.engine, call, reserved=admission.reserved, window=window
        )
        if written.status == 402:
            record = await self.store.run(key_store.get_key, self.store.engine, context.caller.key_id or 0)
            raise self._over_budget(context.caller, record)
        return written

    async def start(self) -> None:
        if self.store is not None:
            await self.store.run(self.store.upgrade)

    async def close(self) -> None:
        if self.store is not None:
            self.store.close()


_REFUSED = {
    "revoked": "API key {prefix} was revoked: ask the operator for a new key",
    "disabled": "API key {prefix} is disabled: ask the operator to enable it",
    "expired": "API key {prefix} has expired: ask the operator for a new key or a later expiry",
}


def rate_headers(caller: Caller, window: limits.Window | None, used_tokens: int = 0) -> dict[str, str]:
    """OpenAI-style ``x-ratelimit-*`` headers of a key with limits (none for keys without)."""
    if window is None:
        return {}
    headers = {}
    if caller.rpm is not None:
        headers["x-ratelimit-limit-requests"] = str(caller.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, caller.rpm - window.requests))
    if caller.tpm is not None:
        headers["x-ratelimit-limit-tokens"] = str(caller.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, caller.tpm - window.tokens - used_tokens))
    return headers
