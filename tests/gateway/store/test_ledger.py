"""The usage ledger (gateway.store.ledger): one row per call, settled with the key's budget, and reports
grouped by key, model and day with filters."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.exc import IntegrityError

from rerankd.gateway.store import Store
from rerankd.gateway.store.keys import create_key, get_key
from rerankd.gateway.store.ledger import UsageFilter, calls, page, record, summarize
from tests.gateway.store.conftest import T0, a_call, hold

DAY = dt.timedelta(days=1)
SUMS = ("documents", "query_tokens", "documents_tokens", "total_tokens", "search_units", "cost_nanos")


def test_a_row_is_written_as_given(store: Store) -> None:
    call = a_call(at=T0 + dt.timedelta(microseconds=123), served_by=None, latency_ms=1.25, attempts=2)
    assert record(store.engine, call) == call
    assert calls(store.engine, UsageFilter()) == [call]


def test_request_ids_are_unique(store: Store) -> None:
    record(store.engine, a_call(request_id="same"))
    with pytest.raises(IntegrityError):
        record(store.engine, a_call(request_id="same"))


def test_a_managed_keys_answer_is_charged_and_its_reservation_settled(store: Store) -> None:
    key, _ = create_key(store.engine, "k", budget_nanos=1000)
    call = a_call(key_id=key.id, cost_nanos=250)
    assert hold(store.engine, call, 300)
    written = record(store.engine, call)
    assert (written.status, written.cost_nanos) == (200, 250)
    state = get_key(store.engine, key.id)
    assert state is not None and (state.spent_nanos, state.reserved_nanos) == (250, 0)


def test_a_failed_call_is_not_charged_and_releases_its_reservation(store: Store) -> None:
    key, _ = create_key(store.engine, "k", budget_nanos=1000)
    call = a_call(key_id=key.id, status=503, cost_nanos=250)
    assert hold(store.engine, call, 300)
    written = record(store.engine, call)
    assert (written.status, written.cost_nanos) == (503, 0)
    state = get_key(store.engine, key.id)
    assert state is not None and (state.spent_nanos, state.reserved_nanos) == (0, 0)
    assert calls(store.engine, UsageFilter())[0].cost_nanos == 0


def test_an_answer_beyond_the_budget_becomes_a_402(store: Store) -> None:
    key, _ = create_key(store.engine, "k", budget_nanos=100)
    call = a_call(key_id=key.id, cost_nanos=150)
    assert hold(store.engine, call, 50)
    written = record(store.engine, call)
    assert (written.status, written.cost_nanos) == (402, 0)
    assert [(row.status, row.cost_nanos) for row in calls(store.engine, UsageFilter())] == [(402, 0)]
    state = get_key(store.engine, key.id)
    assert state is not None and (state.spent_nanos, state.reserved_nanos) == (0, 0)


def test_static_key_calls_are_recorded_without_a_key(store: Store) -> None:
    record(store.engine, a_call(cost_nanos=77))
    [row] = calls(store.engine, UsageFilter())
    assert (row.key_id, row.key_label, row.cost_nanos) == (None, "static:ops", 77)


@pytest.fixture
def ledger(store: Store) -> tuple[Store, int, int]:
    """Seven calls over three days, two managed keys and a static one, two models."""
    a, _ = create_key(store.engine, "alpha")
    b, _ = create_key(store.engine, "beta")
    rows = [
        a_call(at=T0, key_id=a.id, key_label=a.prefix, model="m1", served_by="m1", cost_nanos=10),
        a_call(at=T0 + dt.timedelta(hours=1), key_id=a.id, key_label=a.prefix, model="m2", cost_nanos=20),
        a_call(at=T0 + DAY, key_id=a.id, key_label=a.prefix, model="m1", status=429, served_by=None),
        a_call(at=T0 + DAY, key_id=b.id, key_label=b.prefix, model="alias", served_by="m1", cost_nanos=5),
        a_call(at=T0 + 2 * DAY, key_id=b.id, key_label=b.prefix, model="m2", status=500, served_by="m2"),
        a_call(at=T0 + 2 * DAY, model="m1", served_by="m1", cost_nanos=1),
        a_call(at=T0 + 2 * DAY + dt.timedelta(hours=3), model="m2", served_by="m2", cost_nanos=2),
    ]
    for row in rows:
        record(store.engine, row)
    return store, a.id, b.id


def _by(report: list[dict[str, object]]) -> dict[object, tuple[object, ...]]:
    return {item["group"]: (item["calls"], item["errors"], item["cost_nanos"]) for item in report}


def test_summary_of_everything(ledger: tuple[Store, int, int]) -> None:
    store, _, _ = ledger
    [total] = summarize(store.engine, UsageFilter())
    assert set(total) == {"calls", "errors", *SUMS}
    assert (total["calls"], total["errors"], total["cost_nanos"]) == (7, 2, 38)
    assert (total["documents"], total["total_tokens"], total["search_units"]) == (21, 245, 7)
    for name, value in total.items():
        assert type(value) is int, (name, value)  # not Decimal (PostgreSQL's sum of bigint is numeric)


def test_summary_by_key(ledger: tuple[Store, int, int]) -> None:
    store, a_id, b_id = ledger
    a, b = get_key(store.engine, a_id), get_key(store.engine, b_id)
    assert a is not None and b is not None
    report = summarize(store.engine, UsageFilter(), by="key")
    assert _by(report) == {
        f"alpha ({a.prefix})": (3, 1, 30),
        f"beta ({b.prefix})": (2, 1, 5),
        "static:ops": (2, 0, 3),
    }
    assert [item["group"] for item in report] == sorted(item["group"] for item in report)
    for item in report:
        assert all(type(item[name]) is int for name in ("calls", "errors", *SUMS)), item


def test_summary_by_model_counts_the_model_that_answered(ledger: tuple[Store, int, int]) -> None:
    store, _, _ = ledger
    report = summarize(store.engine, UsageFilter(), by="model")
    assert _by(report) == {"m1": (4, 1, 16), "m2": (3, 1, 22)}
    assert [item["group"] for item in report] == ["m1", "m2"]


def test_summary_by_day(ledger: tuple[Store, int, int]) -> None:
    store, _, _ = ledger
    report = summarize(store.engine, UsageFilter(), by="day")
    assert _by(report) == {"2026-03-01": (2, 0, 30), "2026-03-02": (2, 1, 5), "2026-03-03": (3, 1, 3)}
    assert [item["group"] for item in report] == ["2026-03-01", "2026-03-02", "2026-03-03"]


def test_filters(ledger: tuple[Store, int, int]) -> None:
    store, a_id, b_id = ledger

    def total(where: UsageFilter) -> tuple[object, ...]:
        report = summarize(store.engine, where)
        return (report[0]["calls"], report[0]["cost_nanos"]) if report else (0, 0)

    assert total(UsageFilter(key_id=a_id)) == (3, 30)
    assert total(UsageFilter(key_id=b_id)) == (2, 5)
    assert total(UsageFilter(key_id=b_id + 100)) == (0, 0)
    assert total(UsageFilter(model="m1")) == (4, 16)  # as asked, or as served ("alias" -> m1)
    assert total(UsageFilter(model="alias")) == (1, 5)
    assert total(UsageFilter(since=T0 + DAY)) == (5, 8)  # since: inclusive
    assert total(UsageFilter(until=T0 + DAY)) == (2, 30)  # until: exclusive
    assert total(UsageFilter(since=T0 + DAY, until=T0 + 2 * DAY)) == (2, 5)
    assert total(UsageFilter(key_id=a_id, model="m2", since=T0, until=T0 + DAY)) == (1, 20)
    by_key = summarize(store.engine, UsageFilter(model="m1", since=T0 + DAY), by="key")
    assert [(item["calls"], item["cost_nanos"]) for item in by_key] == [(1, 0), (1, 5), (1, 1)]
    assert summarize(store.engine, UsageFilter(since=T0 + 10 * DAY), by="day") == []
    assert len(calls(store.engine, UsageFilter(key_id=a_id, until=T0 + DAY))) == 2


def test_calls_come_oldest_first(store: Store) -> None:
    # A long call is recorded after a short one that began later; replicas' rows interleave too.
    written = [
        a_call(at=T0 + dt.timedelta(seconds=5), request_id="late"),
        a_call(at=T0, request_id="early"),
        a_call(at=T0 + dt.timedelta(seconds=9), request_id="last"),
        a_call(at=T0 + dt.timedelta(seconds=5), request_id="late-too"),
    ]
    for call in written:
        record(store.engine, call)
    rows = calls(store.engine, UsageFilter())
    assert [row.request_id for row in rows] == ["early", "late", "late-too", "last"]
    assert [row.request_id for row in calls(store.engine, UsageFilter(), page_size=1)] == [
        "early",
        "late",
        "late-too",
        "last",
    ]
    # A page ends at its last row's (at, id): the next begins after it, ties at the same time included.
    first = page(store.engine, UsageFilter(), 2)
    assert [call.request_id for _, call in first] == ["early", "late"]
    rest = page(store.engine, UsageFilter(), 2, after=first[-1][0])
    assert [call.request_id for _, call in rest] == ["late-too", "last"]
    assert page(store.engine, UsageFilter(), 2, after=rest[-1][0]) == []
