"""gateway.accounts: the management plane's one code path (admin API, /v1/usage and the CLI), on a SQLite
file and on a real PostgreSQL server: keys by id or prefix, partial updates, revocation, exact money,
and usage reports filtered and grouped."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Coroutine, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

from rerankd.errors import InvalidRequest, RouteNotFound
from rerankd.gateway.accounts import Accounts, Key, NoDatabase, as_utc, open_accounts
from rerankd.gateway.money import to_nanos
from rerankd.gateway.store import ledger

T = TypeVar("T")

_ids = itertools.count(1)
DAY1 = dt.datetime(2026, 3, 1, 12, 0)
DAY2 = dt.datetime(2026, 3, 2, 9, 30)


def run(work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(work)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'accounts.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def accounts(database_url: str) -> Iterator[Accounts]:
    with open_accounts(database_url, models=["bm25", "okapi", "tiny"]) as opened:
        yield opened


def charge(
    accounts: Accounts,
    key: Key | None,
    cost: str,
    *,
    model: str = "bm25",
    at: dt.datetime = DAY1,
    **fields: Any,
) -> ledger.Call:
    """Write one answered call to the ledger, charged to ``key`` (or a static key when None)."""
    values: dict[str, Any] = {
        "at": at,
        "request_id": f"acc-{next(_ids)}",
        "key_id": key.id if key else None,
        "key_label": key.prefix if key else "static:0123abcd",
        "route": "/v1/rerank",
        "dialect": "seed",
        "model": model,
        "served_by": model,
        "status": 200,
        "documents": 2,
        "query_tokens": 3,
        "documents_tokens": 7,
        "total_tokens": 10,
        "search_units": 1,
        "cost_nanos": to_nanos(cost),
        "latency_ms": 4.0,
        "attempts": 1,
    }
    values.update(fields)
    return ledger.record(accounts.store.engine, ledger.Call(**values))


# -- keys ------------------------------------------------------------------------------------------


def test_create_returns_the_plaintext_once_and_the_key_without_secrets(accounts: Accounts) -> None:
    key, plaintext = run(
        accounts.create_key(
            "team-a",
            models=["bm25"],
            budget=Decimal("12.5"),
            rpm=60,
            tpm=10_000,
            expires_at=dt.date(2027, 1, 1),
        )
    )
    assert plaintext.startswith("rk-") and plaintext.startswith(key.prefix) and plaintext != key.prefix
    assert (key.name, key.models, key.rpm, key.tpm, key.state) == ("team-a", ("bm25",), 60, 10_000, "active")
    assert (key.budget, key.spent, key.reserved, key.remaining) == (Decimal("12.5"), 0, 0, Decimal("12.5"))
    assert key.expires_at == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert key.created_at.tzinfo is dt.UTC
    assert not hasattr(key, "key_hash") and plaintext not in repr(key)
    for listed in run(accounts.list_keys()):
        assert plaintext not in repr(listed)


def test_a_key_is_found_by_id_or_prefix_and_an_unknown_one_is_a_404(accounts: Accounts) -> None:
    key, _ = run(accounts.create_key("a"))
    assert run(accounts.get_key(key.id)) == key
    assert run(accounts.get_key(str(key.id))) == key
    assert run(accounts.get_key(key.prefix)) == key
    for unknown in (key.id + 100, "rk-AAAAAAAA", "nobody"):
        with pytest.raises(RouteNotFound) as caught:
            run(accounts.get_key(unknown))
        assert caught.value.status == 404 and "keys list" in caught.value.message


def test_defaults_are_no_limits(accounts: Accounts) -> None:
    key, _ = run(accounts.create_key("open"))
    assert (key.models, key.budget, key.remaining, key.rpm, key.tpm, key.expires_at) == (None,) * 6


def test_update_changes_only_the_fields_given_and_none_clears(accounts: Accounts) -> None:
    key, _ = run(accounts.create_key("a", models=["bm25"], budget=5, rpm=10, tpm=100))
    changed = run(accounts.update_key(key.id, name="b", budget="7.25"))
    assert (changed.name, changed.budget, changed.models, changed.rpm, changed.tpm) == (
        "b",
        Decimal("7.25"),
        ("bm25",),
        10,
        100,
    )
    cleared = run(accounts.update_key(key.prefix, budget=None, models=None, rpm=None, tpm=None))
    assert (cleared.budget, cleared.remaining, cleared.models, cleared.rpm, cleared.tpm) == (None,) * 5
    disabled = run(accounts.update_key(key.id, disabled=True))
    assert disabled.state == "disabled"
    assert run(accounts.update_key(key.id, disabled=False)).state == "active"
    past = run(accounts.update_key(key.id, expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
    assert past.state == "expired"
    assert run(accounts.update_key(key.id, expires_at=None)).state == "active"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"name": " "}, "name"),
        ({"budget": -1}, ">= 0"),
        ({"budget": "abc"}, "amount"),
        ({"budget": "0.0000000001"}, "9 decimal places"),
        ({"budget": "Infinity"}, ">= 0"),
        ({"rpm": 0}, "rpm"),
        ({"tpm": 2.5}, "tpm"),
        ({"models": "bm25"}, "list"),
        ({"models": ["bm25", "nope"]}, "nope"),
        ({"disabled": "yes"}, "disabled"),
        ({"rpm": 2**31}, "from 1 to 2147483647"),  # beyond the INTEGER column
        ({"tpm": 10**20}, "from 1 to 2147483647"),
        ({"tpm": 1e20}, "whole number"),
        ({"budget": 10**30}, "too large"),  # beyond the BIGINT column in nano-units
        ({"budget": "1E+999999999"}, "too large"),  # beyond the decimal context in nano-units
        ({"name": "a\x00b"}, "control characters"),  # PostgreSQL refuses NUL
        ({"name": "x" * 201}, "at most 200"),
        ({"models": ["bm25\x00"]}, "control characters"),
        ({"key_hash": "x"}, "no editable field key_hash"),
        ({"spent": 0}, "no editable field spent"),
    ],
    ids=lambda value: str(value),
)
def test_bad_values_are_refused_saying_why(accounts: Accounts, changes: dict[str, Any], words: str) -> None:
    key, _ = run(accounts.create_key("a", budget=1))
    with pytest.raises(InvalidRequest) as caught:
        run(accounts.update_key(key.id, **changes))
    assert caught.value.status == 422 and words in caught.value.message
    assert run(accounts.get_key(key.id)) == key  # nothing changed


@pytest.mark.parametrize("key", [2**31, 2**64, str(2**64), "9" * 5000, "0", "-3", "²"], ids=str)
def test_key_ids_beyond_the_column_are_refused_not_a_database_error(
    accounts: Accounts, key: int | str
) -> None:
    with pytest.raises((InvalidRequest, RouteNotFound)) as caught:
        run(accounts.get_key(key))
    assert caught.value.status in (404, 422)


def test_filters_with_a_nul_or_an_overlong_model_are_refused(accounts: Accounts) -> None:
    for model in ("bm25\x00", "m" * 201):
        with pytest.raises(InvalidRequest):
            run(accounts.usage(model=model))
        with pytest.raises(InvalidRequest):
            run(accounts.calls(model=model))


def test_aliases_may_be_named_and_without_a_model_list_any_name_is_taken(database_url: str) -> None:
    with open_accounts(database_url, models=["bm25", "okapi"]) as accounts:
        assert run(accounts.create_key("a", models=["okapi", "bm25", "okapi"]))[0].models == ("okapi", "bm25")
    with open_accounts(database_url) as accounts:
        assert run(accounts.create_key("b", models=["anything"]))[0].models == ("anything",)


def test_revoke_keeps_the_row_and_is_idempotent(accounts: Accounts) -> None:
    key, _ = run(accounts.create_key("a"))
    charge(accounts, key, "0.5")
    revoked = run(accounts.revoke_key(key.prefix))
    assert revoked.state == "revoked" and revoked.revoked_at is not None
    assert run(accounts.revoke_key(key.id)).revoked_at == revoked.revoked_at
    assert [k.id for k in run(accounts.list_keys())] == [key.id]
    usage = run(accounts.key_usage(key.id))
    assert usage.key.state == "revoked" and usage.total.calls == 1 and usage.total.cost == Decimal("0.5")


def test_times_are_kept_as_utc(accounts: Accounts) -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    key, _ = run(accounts.create_key("a", expires_at=dt.datetime(2027, 1, 1, 2, 0, tzinfo=plus_two)))
    assert key.expires_at == dt.datetime(2027, 1, 1, 0, 0, tzinfo=dt.UTC)
    assert as_utc(dt.date(2026, 5, 1)) == dt.datetime(2026, 5, 1)
    assert as_utc(dt.datetime(2026, 5, 1, 3, 0)) == dt.datetime(2026, 5, 1, 3, 0)


# -- money -----------------------------------------------------------------------------------------


def test_money_is_exact_through_budget_spend_and_reports(accounts: Accounts) -> None:
    key, _ = run(accounts.create_key("a", budget=Decimal("0.1")))
    for _ in range(3):
        charge(accounts, key, "0.03")
    charge(accounts, key, "0.000000001")
    shown = run(accounts.get_key(key.id))
    assert shown.spent == Decimal("0.090000001") and shown.remaining == Decimal("0.009999999")
    assert shown.budget == Decimal("0.1")
    assert run(accounts.usage(key=key.id)).total.cost == Decimal("0.090000001")
    # Decimals add up exactly; a float's noise (0.1 + 0.2 = 0.30000000000000004) is refused, not rounded
    assert run(accounts.update_key(key.id, budget=Decimal("0.1") + Decimal("0.2"))).budget == Decimal("0.3")
    with pytest.raises(InvalidRequest):
        run(accounts.update_key(key.id, budget=0.1 + 0.2))


def test_remaining_never_goes_below_zero(accounts: Accounts) -> None:
    key, _ = run(accounts.create_key("a"))
    charge(accounts, key, "2")
    lowered = run(accounts.update_key(key.id, budget=1))  # the operator lowers a budget below the spend
    assert (lowered.spent, lowered.remaining) == (Decimal(2), Decimal(0))


# -- usage -----------------------------------------------------------------------------------------


def test_usage_is_filtered_and_grouped_by_key_model_and_day(accounts: Accounts) -> None:
    a, _ = run(accounts.create_key("team-a"))
    b, _ = run(accounts.create_key("team-b"))
    charge(accounts, a, "0.01", model="bm25", at=DAY1)
    charge(accounts, a, "0.02", model="tiny", at=DAY2)
    charge(accounts, b, "0.04", model="bm25", at=DAY2)
    charge(accounts, None, "0", model="bm25", at=DAY2)
    charge(accounts, a, "0", model="bm25", at=DAY2, status=503, served_by=None, total_tokens=0)

    report = run(accounts.usage())
    assert (report.total.calls, report.total.errors, report.total.cost) == (5, 1, Decimal("0.07"))
    assert report.groups == [] and report.by is None

    by_key = {g.group: g for g in run(accounts.usage(by="key")).groups}
    assert set(by_key) == {f"team-a ({a.prefix})", f"team-b ({b.prefix})", "static:0123abcd"}
    assert by_key[f"team-a ({a.prefix})"].calls == 3 and by_key[f"team-a ({a.prefix})"].cost == Decimal(
        "0.03"
    )

    by_model = {g.group: (g.calls, g.cost) for g in run(accounts.usage(by="model")).groups}
    assert by_model == {"bm25": (4, Decimal("0.05")), "tiny": (1, Decimal("0.02"))}

    by_day = {g.group: g.calls for g in run(accounts.usage(by="day")).groups}
    assert by_day == {"2026-03-01": 1, "2026-03-02": 4}

    only_a = run(accounts.usage(key=a.prefix, by="model"))
    assert only_a.key == run(accounts.get_key(a.id)) and only_a.total.calls == 3
    assert run(accounts.usage(model="tiny")).total.calls == 1
    day2 = run(accounts.usage(since=dt.date(2026, 3, 2)))
    assert day2.total.calls == 4 and day2.since == dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    assert run(accounts.usage(until=dt.date(2026, 3, 2))).total.calls == 1
    assert run(accounts.usage(since=dt.date(2030, 1, 1))).total.calls == 0
    with pytest.raises(InvalidRequest):
        run(accounts.usage(by="week"))  # type: ignore[arg-type]
    with pytest.raises(RouteNotFound):
        run(accounts.usage(key="rk-AAAAAAAA"))


def test_a_keys_usage_is_its_own_by_model_over_a_period(accounts: Accounts) -> None:
    a, _ = run(accounts.create_key("a", budget=1))
    b, _ = run(accounts.create_key("b"))
    charge(accounts, a, "0.25", model="bm25", at=DAY1)
    charge(accounts, a, "0.5", model="tiny", at=DAY2)
    charge(accounts, b, "0.125", model="bm25", at=DAY2)
    usage = run(accounts.key_usage(a.id))
    assert (usage.total.calls, usage.total.total_tokens, usage.total.cost) == (2, 20, Decimal("0.75"))
    assert [(g.group, g.cost) for g in usage.by_model] == [
        ("bm25", Decimal("0.25")),
        ("tiny", Decimal("0.5")),
    ]
    assert usage.key.remaining == Decimal("0.25")
    later = run(accounts.key_usage(a.prefix, since=dt.date(2026, 3, 2)))
    assert [g.group for g in later.by_model] == ["tiny"]


def test_calls_are_the_ledger_rows_with_exact_costs(accounts: Accounts) -> None:
    a, _ = run(accounts.create_key("a"))
    written = [charge(accounts, a, "0.001"), charge(accounts, None, "0")]
    rows = run(accounts.calls())
    assert [row.request_id for row in rows] == [call.request_id for call in written]
    assert rows[0].cost == Decimal("0.001") and rows[0].at.tzinfo is dt.UTC
    assert [row.request_id for row in run(accounts.calls(key=a.id))] == [written[0].request_id]
    assert rows[0].columns()[0] == "at" and "cost" in rows[0].columns()


def test_no_database_is_a_503_that_says_what_to_set() -> None:
    error = NoDatabase()
    assert error.status == 503 and "database_url" in error.message


def test_open_accounts_migrates_a_fresh_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'r.db'}"
    with open_accounts(url) as accounts:
        assert run(accounts.list_keys()) == []
    assert (tmp_path / "fresh" / "r.db").stat().st_mode & 0o777 == 0o600
