"""What a key may still do (gateway.store.limits): per-minute request and token windows, and its budget,
held exactly under concurrency by several replicas on one database."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from sqlalchemy import select

from rerankd.gateway.store import Store
from rerankd.gateway.store.holds import place
from rerankd.gateway.store.keys import create_key, get_key
from rerankd.gateway.store.ledger import UsageFilter, calls, record
from rerankd.gateway.store.limits import (
    WINDOW_SECONDS,
    add_tokens,
    count_request,
    release,
    reserve,
    settle_budget,
    window_of,
)
from rerankd.gateway.store.schema import rate_windows
from tests.gateway.store.conftest import a_call, a_hold, hold

MINUTE = 29_000_000 * WINDOW_SECONDS  # the start of some minute, as seconds since the epoch


def _windows(store: Store, key_id: int) -> list[int]:
    with store.engine.connect() as connection:
        statement = select(rate_windows.c.window).where(rate_windows.c.key_id == key_id)
        return sorted(connection.execute(statement).scalars())


def test_rpm_counts_exactly_then_refuses_until_the_next_minute(store: Store) -> None:
    key, _ = create_key(store.engine, "k", rpm=3)
    seen = [count_request(store.engine, key.id, 3, None, MINUTE + 10 + i) for i in range(5)]
    assert [window.allowed for window in seen] == [True, True, True, False, False]
    assert [window.requests for window in seen] == [1, 2, 3, 3, 3]
    assert {window.window for window in seen} == {window_of(MINUTE)}
    assert seen[3].resets_in == pytest.approx(WINDOW_SECONDS - 13)
    assert seen[4].resets_in == pytest.approx(WINDOW_SECONDS - 14)

    fresh = count_request(store.engine, key.id, 3, None, MINUTE + WINDOW_SECONDS + 0.5)
    assert (fresh.allowed, fresh.requests, fresh.tokens) == (True, 1, 0)
    assert fresh.window == window_of(MINUTE) + 1
    assert fresh.resets_in == pytest.approx(WINDOW_SECONDS - 0.5)
    assert _windows(store, key.id) == [fresh.window]  # the finished window is gone


def test_tpm_refuses_once_the_windows_tokens_reach_it(store: Store) -> None:
    key, _ = create_key(store.engine, "k", tpm=100)
    first_call = a_call(key_id=key.id, total_tokens=60)
    first, allowed = place(store.engine, a_hold(first_call, tokens=50), None, 100, MINUTE + 1)
    assert allowed and first is not None and first.tokens == 50  # its reservation counted at once
    record(store.engine, first_call)  # it used 60: the window is corrected to 60
    second_call = a_call(key_id=key.id, total_tokens=40)
    second, allowed = place(store.engine, a_hold(second_call, tokens=40), None, 100, MINUTE + 2)
    assert allowed and second is not None and (second.tokens, second.requests) == (100, 2)
    third = count_request(store.engine, key.id, None, 100, MINUTE + 3)
    assert (third.allowed, third.tokens, third.requests) == (False, 100, 2)
    assert third.resets_in == pytest.approx(WINDOW_SECONDS - 3)
    record(store.engine, second_call)

    later = count_request(store.engine, key.id, None, 100, MINUTE + WINDOW_SECONDS)
    assert (later.allowed, later.tokens, later.requests) == (True, 0, 1)


def test_tokens_of_failed_calls_do_not_count(store: Store) -> None:
    key, _ = create_key(store.engine, "k", tpm=10)
    call = a_call(key_id=key.id, status=500, total_tokens=50)
    window, allowed = place(store.engine, a_hold(call, tokens=50), None, 10, MINUTE)
    assert allowed and window is not None and window.tokens == 50
    assert not count_request(store.engine, key.id, None, 10, MINUTE + 1).allowed  # held: 50 >= 10
    record(store.engine, call)  # failed: its tokens are given back
    assert count_request(store.engine, key.id, None, 10, MINUTE + 2).allowed


def test_both_limits_and_none(store: Store) -> None:
    key, _ = create_key(store.engine, "k")
    assert all(count_request(store.engine, key.id, None, None, MINUTE + i).allowed for i in range(50))
    with store.engine.begin() as connection:
        add_tokens(connection, key.id, window_of(MINUTE), 10**9)
    window = count_request(store.engine, key.id, 100, None, MINUTE + 55)
    assert (window.allowed, window.requests, window.tokens) == (True, 51, 10**9)
    assert not count_request(store.engine, key.id, 100, 10**9, MINUTE + 56).allowed


def test_a_zero_limit_lets_nothing_through(store: Store) -> None:
    key, _ = create_key(store.engine, "k")
    assert not count_request(store.engine, key.id, 0, None, MINUTE).allowed
    assert not count_request(store.engine, key.id, None, 0, MINUTE).allowed


def test_keys_have_windows_of_their_own(store: Store) -> None:
    a, _ = create_key(store.engine, "a")
    b, _ = create_key(store.engine, "b")
    assert count_request(store.engine, a.id, 1, None, MINUTE).allowed
    assert not count_request(store.engine, a.id, 1, None, MINUTE).allowed
    assert count_request(store.engine, b.id, 1, None, MINUTE).allowed


def test_rpm_is_exact_under_concurrency(store: Store, open_store: Callable[[], Store]) -> None:
    key, _ = create_key(store.engine, "k", rpm=10)
    replicas = [store, *(open_store() for _ in range(2))]
    start = threading.Barrier(40)

    def one(i: int) -> bool:
        start.wait()
        return count_request(replicas[i % len(replicas)].engine, key.id, 10, None, MINUTE + 1).allowed

    with ThreadPoolExecutor(40) as pool:
        allowed = list(pool.map(one, range(40)))
    assert sum(allowed) == 10


def test_reserve_refuses_past_the_budget(store: Store) -> None:
    key, _ = create_key(store.engine, "k", budget_nanos=10)
    assert reserve(store.engine, key.id, 4)
    assert reserve(store.engine, key.id, 4)
    assert not reserve(store.engine, key.id, 4)  # 12 > 10
    assert reserve(store.engine, key.id, 2)  # exactly 10
    assert not reserve(store.engine, key.id, 1)
    state = get_key(store.engine, key.id)
    assert state is not None and (state.reserved_nanos, state.spent_nanos) == (10, 0)

    with store.engine.begin() as connection:
        release(connection, key.id, 4)
        assert settle_budget(connection, key.id, 4, 3)  # a reservation of 4 costs 3
    state = get_key(store.engine, key.id)
    assert state is not None and (state.reserved_nanos, state.spent_nanos) == (2, 3)
    assert reserve(store.engine, key.id, 5)
    assert not reserve(store.engine, key.id, 1)


def test_a_cost_beyond_the_budget_is_not_settled(store: Store) -> None:
    key, _ = create_key(store.engine, "k", budget_nanos=10)
    assert reserve(store.engine, key.id, 5)
    with store.engine.begin() as connection:
        assert not settle_budget(connection, key.id, 5, 11)  # the real cost turned out larger
    state = get_key(store.engine, key.id)
    assert state is not None and (state.reserved_nanos, state.spent_nanos) == (0, 0)


def test_unlimited_budget_always_reserves(store: Store) -> None:
    key, _ = create_key(store.engine, "k")
    assert all(reserve(store.engine, key.id, 10**15) for _ in range(5))
    state = get_key(store.engine, key.id)
    assert state is not None and state.reserved_nanos == 5 * 10**15


COST = 1_234_567  # nano-units a call costs
CALLS = 200
COVERED = 50  # calls the budget covers


def _ledger_total(store: Store, key_id: int) -> tuple[int, int]:
    rows = calls(store.engine, UsageFilter(key_id=key_id))
    assert len(rows) == CALLS
    return sum(row.cost_nanos for row in rows), sum(1 for row in rows if row.status == 200)


@pytest.mark.timeout(120)
def test_exact_budget_under_concurrency(store: Store, open_store: Callable[[], Store]) -> None:
    """200 calls at once, from four replicas, on a key whose budget covers 50: exactly 50 are charged."""
    key, _ = create_key(store.engine, "k", budget_nanos=COVERED * COST)
    replicas = [store, *(open_store() for _ in range(3))]
    start = threading.Barrier(CALLS)

    def call(i: int) -> int:
        engine = replicas[i % len(replicas)].engine
        start.wait()
        call = a_call(key_id=key.id, key_label=key.prefix, cost_nanos=COST)
        if not hold(engine, call, COST):
            return record(engine, replace(call, status=402)).status
        return record(engine, call).status

    with ThreadPoolExecutor(CALLS) as pool:
        statuses = list(pool.map(call, range(CALLS)))
    state = get_key(store.engine, key.id)
    assert state is not None
    assert statuses.count(200) == COVERED and statuses.count(402) == CALLS - COVERED
    assert state.spent_nanos == COVERED * COST == state.budget_nanos
    assert state.reserved_nanos == 0
    charged, answered = _ledger_total(store, key.id)
    assert (charged, answered) == (state.spent_nanos, COVERED)


@pytest.mark.timeout(120)
def test_budget_holds_when_real_costs_exceed_the_estimates(
    store: Store, open_store: Callable[[], Store]
) -> None:
    """Calls reserve half their real cost: settling refuses what would overspend, and releases it."""
    key, _ = create_key(store.engine, "k", budget_nanos=COVERED * COST)
    replicas = [store, *(open_store() for _ in range(3))]
    start = threading.Barrier(CALLS)
    estimate = COST // 2

    def call(i: int) -> int:
        engine = replicas[i % len(replicas)].engine
        start.wait()
        call = a_call(key_id=key.id, cost_nanos=COST)
        if not hold(engine, call, estimate):
            return record(engine, replace(call, status=402)).status
        return record(engine, call).status

    with ThreadPoolExecutor(CALLS) as pool:
        statuses = list(pool.map(call, range(CALLS)))
    state = get_key(store.engine, key.id)
    assert state is not None and state.budget_nanos is not None
    assert 0 < state.spent_nanos <= state.budget_nanos
    assert state.reserved_nanos == 0
    assert state.spent_nanos == statuses.count(200) * COST
    charged, answered = _ledger_total(store, key.id)
    assert (charged, answered) == (state.spent_nanos, statuses.count(200))
