"""Holds of calls in flight (gateway.store.holds), on SQLite and PostgreSQL: placed with the key's
reservation, taken once whoever races for them, swept past their deadline by any replica without
touching a live one, and released by an operator."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from rerankd.gateway.store import Store
from rerankd.gateway.store.holds import adjust, list_holds, place, release_holds, sweep
from rerankd.gateway.store.keys import create_key, get_key
from rerankd.gateway.store.ledger import UsageFilter, calls, record
from rerankd.gateway.store.limits import count_request, reserve
from tests.gateway.store.conftest import T0, a_call, a_hold, hold

MINUTE = 29_000_000 * 60


def _state(store: Store, key_id: int) -> tuple[int, int]:
    state = get_key(store.engine, key_id)
    assert state is not None
    return state.spent_nanos, state.reserved_nanos


def test_a_hold_is_a_row_taken_once(store: Store) -> None:
    key, _ = create_key(store.engine, "k", budget_nanos=1000)
    call = a_call(key_id=key.id, cost_nanos=250)
    assert hold(store.engine, call, 300)
    [held] = list_holds(store.engine, key.id)
    assert (held.request_id, held.nanos, held.replica) == (call.request_id, 300, "test:1:boot")
    assert _state(store, key.id) == (0, 300)
    assert record(store.engine, call).status == 200
    assert list_holds(store.engine) == [] and _state(store, key.id) == (250, 0)
    # Released again (an operator, a sweep): nothing is given back twice.
    assert release_holds(store.engine, key.id, call.request_id) == []
    assert sweep(store.engine, T0 + dt.timedelta(days=1)) == []
    assert _state(store, key.id) == (250, 0)


def test_a_refused_hold_leaves_nothing(store: Store) -> None:
    key, _ = create_key(store.engine, "k", budget_nanos=100, rpm=1)
    assert not hold(store.engine, a_call(key_id=key.id), 101)  # over the budget
    first = a_call(key_id=key.id)
    assert place(store.engine, a_hold(first, 10), 1, None, MINUTE)[1]
    window, allowed = place(store.engine, a_hold(a_call(key_id=key.id), 10), 1, None, MINUTE + 1)
    assert not allowed and window is not None and not window.allowed  # over the rpm: rolled back
    assert [h.request_id for h in list_holds(store.engine)] == [first.request_id]
    assert _state(store, key.id) == (0, 10)


def test_an_answer_whose_hold_was_swept_is_charged_only_if_it_fits(store: Store) -> None:
    key, _ = create_key(store.engine, "k", budget_nanos=100)
    late = a_call(key_id=key.id, cost_nanos=60)
    assert hold(store.engine, late, 60)
    assert len(sweep(store.engine, T0 + dt.timedelta(hours=1))) == 1
    assert reserve(store.engine, key.id, 50)  # another call took the money meanwhile
    assert (record(store.engine, late).status, _state(store, key.id)) == (402, (0, 50))


def test_the_sweep_takes_only_holds_past_their_deadline_on_two_replicas(
    store: Store, open_store: Callable[[], Store]
) -> None:
    key, _ = create_key(store.engine, "k", budget_nanos=10_000, tpm=1000)
    replicas = [store, open_store()]
    live = a_hold(a_call(key_id=key.id), 100, 7, deadline=T0 + dt.timedelta(minutes=5), replica="a:1:x")
    dead = [
        a_hold(a_call(key_id=key.id), 200 + i, 5, deadline=T0 + dt.timedelta(seconds=10 + i), replica="b:2:y")
        for i in range(6)
    ]
    for item in [live, *dead]:
        assert place(store.engine, item, None, 1000, MINUTE)[1]
    assert _state(store, key.id) == (0, 100 + sum(200 + i for i in range(6)))
    assert count_request(store.engine, key.id, None, 1000, MINUTE).tokens == 7 + 6 * 5

    # Both replicas sweep at once, a minute after T0: each expired hold is released exactly once.
    start = threading.Barrier(2)

    def one(replica: Store) -> list[str]:
        start.wait()
        return [h.request_id for h in sweep(replica.engine, T0 + dt.timedelta(minutes=1))]

    with ThreadPoolExecutor(2) as pool:
        swept = [request_id for found in pool.map(one, replicas) for request_id in found]
    assert sorted(swept) == sorted(h.request_id for h in dead)
    assert [h.request_id for h in list_holds(store.engine)] == [live.request_id]
    assert _state(store, key.id) == (0, 100)
    assert count_request(store.engine, key.id, None, 1000, MINUTE).tokens == 7  # their tokens given back


def test_an_operator_releases_one_hold_or_all(store: Store) -> None:
    key, _ = create_key(store.engine, "k", budget_nanos=1000)
    first, second = a_call(key_id=key.id), a_call(key_id=key.id)
    assert hold(store.engine, first, 100) and hold(store.engine, second, 200)
    assert [h.request_id for h in release_holds(store.engine, key.id, second.request_id)] == [
        second.request_id
    ]
    assert _state(store, key.id) == (0, 100)
    assert reserve(store.engine, key.id, 40)  # a reservation without a row (as an older version left)
    assert [h.request_id for h in release_holds(store.engine, key.id)] == [first.request_id]
    assert _state(store, key.id) == (0, 0)
    # The calls settle later: failed, they give back nothing more; answered, they are charged if it fits.
    assert record(store.engine, first).status == 200  # (a free call: nothing to charge)
    assert _state(store, key.id) == (0, 0)
    assert len(calls(store.engine, UsageFilter(key_id=key.id))) == 1


def test_a_fallback_moves_the_hold_within_the_budget(store: Store) -> None:
    key, _ = create_key(store.engine, "k", budget_nanos=500, tpm=100)
    call = a_call(key_id=key.id, cost_nanos=300, total_tokens=20)
    assert place(store.engine, a_hold(call, 100, 10), None, 100, MINUTE)[1]
    assert adjust(store.engine, call.request_id, 300, 20)  # a dearer model of the chain
    assert _state(store, key.id) == (0, 300)
    assert count_request(store.engine, key.id, None, 100, MINUTE).tokens == 20
    assert not adjust(store.engine, call.request_id, 600, 20)  # does not fit: the hold stays as it was
    assert _state(store, key.id) == (0, 300)
    assert record(store.engine, call).status == 200
    assert _state(store, key.id) == (300, 0)
