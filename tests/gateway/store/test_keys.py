"""Managed keys (gateway.store.keys): random plaintext shown once, only its hash stored, four states."""

from __future__ import annotations

import datetime as dt
import math
import re
import string
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from rerankd.gateway.store import Store
from rerankd.gateway.store.keys import (
    KEY_PREFIX,
    any_keys,
    create_key,
    find_key,
    get_key,
    hash_key,
    list_keys,
    update_key,
    utcnow,
)
from tests.gateway.store.conftest import dump

URLSAFE = set(string.ascii_letters + string.digits + "-_")


def test_plaintext_is_rk_and_at_least_128_random_bits(store: Store) -> None:
    plaintexts = [create_key(store.engine, f"k{i}")[1] for i in range(20)]
    assert len(set(plaintexts)) == len(plaintexts)
    for plaintext in plaintexts:
        assert plaintext.startswith(KEY_PREFIX)
        secret = plaintext[len(KEY_PREFIX) :]
        assert set(secret) <= URLSAFE
        assert len(secret) * math.log2(len(URLSAFE)) >= 128
    record = find_key(store.engine, plaintexts[0])
    assert record is not None and plaintexts[0].startswith(record.prefix)
    hidden = plaintexts[0][len(record.prefix) :]  # what the shown prefix does not give away
    assert len(hidden) * math.log2(len(URLSAFE)) >= 128


def test_the_plaintext_is_never_in_the_database(store: Store, database_url: str) -> None:
    created = [create_key(store.engine, f"k{i}", models=["m"], budget_nanos=10) for i in range(3)]
    update_key(store.engine, created[0][0].id, disabled=True)
    # (the shown prefix is stored, and the hash; the rest of the key is not, anywhere)
    secrets = [plaintext[len(record.prefix) :] for record, plaintext in created]
    rows = repr(dump(store.engine))
    for record, plaintext in created:
        assert record.prefix in rows and hash_key(plaintext) in rows  # the dump does see the table
    for secret in secrets:
        assert secret not in rows
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        files = [file for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if file.exists()]
        assert Path(f"{path}-wal") in files
        raw = b"".join(file.read_bytes() for file in files)
        assert hash_key(created[0][1]).encode() in raw  # the bytes searched hold the keys' rows
        for secret in secrets:
            assert secret.encode() not in raw


def test_find_by_plaintext(store: Store) -> None:
    record, plaintext = create_key(
        store.engine,
        "team-a",
        models=["rerank-v3.5", "bge"],
        budget_nanos=5_000_000_000,
        rpm=60,
        tpm=10_000,
    )
    other, _ = create_key(store.engine, "team-b")
    found = find_key(store.engine, plaintext)
    assert found == record
    assert found.name == "team-a" and found.models == ("rerank-v3.5", "bge")
    assert (found.budget_nanos, found.spent_nanos, found.reserved_nanos) == (5_000_000_000, 0, 0)
    assert (found.rpm, found.tpm, found.disabled) == (60, 10_000, False)
    assert found.disabled is False
    assert re.fullmatch(r"rk-[A-Za-z0-9_-]{8}", found.prefix)
    assert find_key(store.engine, plaintext + "x") is None
    assert find_key(store.engine, plaintext[:-1]) is None
    assert find_key(store.engine, "") is None
    assert get_key(store.engine, other.id) == other
    assert get_key(store.engine, other.id + 100) is None
    assert other.models is None and other.budget_nanos is None and other.rpm is None


def test_list_and_any_keys(store: Store) -> None:
    assert not any_keys(store.engine)
    assert list_keys(store.engine) == []
    ids = [create_key(store.engine, name)[0].id for name in ("a", "b", "c")]
    assert any_keys(store.engine)
    assert [key.id for key in list_keys(store.engine)] == ids
    assert [key.name for key in list_keys(store.engine)] == ["a", "b", "c"]


def test_states(store: Store) -> None:
    now = utcnow()
    record, plaintext = create_key(store.engine, "k")
    assert record.state() == "active"
    assert isinstance(record.created_at, dt.datetime) and record.created_at.tzinfo is None
    assert abs(record.created_at - now) < dt.timedelta(seconds=5)

    disabled = update_key(store.engine, record.id, disabled=True)
    assert disabled is not None and disabled.disabled is True and disabled.state() == "disabled"
    enabled = update_key(store.engine, record.id, disabled=False)
    assert enabled is not None and enabled.state() == "active"

    later = update_key(store.engine, record.id, expires_at=now + dt.timedelta(hours=1))
    assert later is not None and later.state(now) == "active"
    assert later.state(now + dt.timedelta(hours=2)) == "expired"
    expired = update_key(store.engine, record.id, expires_at=now - dt.timedelta(seconds=1))
    assert expired is not None and expired.state() == "expired"

    update_key(store.engine, record.id, disabled=True)
    revoked = update_key(store.engine, record.id, revoked_at=now)
    assert revoked is not None and revoked.state() == "revoked"  # revoked wins over the rest
    assert revoked.revoked_at == now  # microseconds kept, naive UTC
    found = find_key(store.engine, plaintext)  # still found: the caller tells revoked from unknown
    assert found is not None and found.state() == "revoked"


def test_update(store: Store) -> None:
    record, _ = create_key(store.engine, "k", models=["a"])
    updated = update_key(store.engine, record.id, name="renamed", models=("b", "c"), rpm=5, budget_nanos=7)
    assert updated is not None
    assert (updated.name, updated.models, updated.rpm, updated.budget_nanos) == ("renamed", ("b", "c"), 5, 7)
    cleared = update_key(store.engine, record.id, models=None, rpm=None, budget_nanos=None)
    assert cleared is not None and (cleared.models, cleared.rpm, cleared.budget_nanos) == (None, None, None)
    assert update_key(store.engine, record.id) == cleared
    assert update_key(store.engine, record.id + 100, name="x") is None


def test_unknown_fields_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="key_hash"):
        create_key(store.engine, "k", key_hash="0" * 64)
    record, _ = create_key(store.engine, "k")
    with pytest.raises(ValueError, match="spent_nanos"):
        update_key(store.engine, record.id, spent_nanos=0)
