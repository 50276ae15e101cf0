"""Managed API keys: created with a random secret shown once, stored only as its SHA-256, found by it.

A key is ``rk-`` followed by 32 URL-safe characters (192 random bits); its first 11 characters are its
``prefix``, which names it in lists, logs and the ledger and is not enough to use it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Engine, RowMapping, bindparam, exists, insert, select, update

from rerankd.gateway.store.engine import reading
from rerankd.gateway.store.schema import api_keys

__all__ = ["KEY_PREFIX", "KeyRecord", "KeyState", "create_key", "find_key", "get_key", "hash_key"]
__all__ += ["any_keys", "list_keys", "update_key", "utcnow"]

KEY_PREFIX = "rk-"
KeyState = Literal["active", "disabled", "revoked", "expired"]
_SHOWN = len(KEY_PREFIX) + 8  # characters of a key shown as its prefix


def utcnow() -> dt.datetime:
    """Naive UTC, as the database stores times."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: int
    name: str
    prefix: str
    models: tuple[str, ...] | None
    budget_nanos: int | None
    spent_nanos: int
    reserved_nanos: int
    rpm: int | None
    tpm: int | None
    expires_at: dt.datetime | None
    disabled: bool
    revoked_at: dt.datetime | None
    created_at: dt.datetime

    def state(self, now: dt.datetime | None = None) -> KeyState:
        if self.revoked_at is not None:
            return "revoked"
        if self.disabled:
            return "disabled"
        if self.expires_at is not None and self.expires_at <= (now or utcnow()):
            return "expired"
        return "active"

    @classmethod
    def of(cls, row: RowMapping) -> KeyRecord:
        values = {name: row[name] for name in cls.__slots__}
        models = values["models"]
        values["models"] = tuple(models) if models is not None else None
        return cls(**values)


def create_key(engine: Engine, name: str, **fields: Any) -> tuple[KeyRecord, str]:
    """A new key; returns it and its plaintext, which is not kept anywhere."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(24)
    values = {
        "name": name,
        "prefix": plaintext[:_SHOWN],
        "key_hash": hash_key(plaintext),
        "spent_nanos": 0,
        "reserved_nanos": 0,
        "disabled": False,
        "created_at": utcnow(),
        **_columns(fields),
    }
    with engine.begin() as connection:
        key_id = connection.execute(insert(api_keys).values(values).returning(api_keys.c.id)).scalar_one()
    record = get_key(engine, key_id)
    assert record is not None
    return record, plaintext


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    allowed = {"name", "models", "budget_nanos", "rpm", "tpm", "expires_at", "disabled", "revoked_at"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"keys have no field {', '.join(sorted(unknown))}")
    if fields.get("models") is not None:
        fields = {**fields, "models": list(fields["models"])}
    return fields


def get_key(engine: Engine, key_id: int) -> KeyRecord | None:
    with reading(engine) as connection:
        row = connection.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
    return KeyRecord.of(row) if row else None


_BY_HASH = select(api_keys).where(api_keys.c.key_hash == bindparam("hash"))


def find_key(engine: Engine, plaintext: str) -> KeyRecord | None:
    """The key with this plaintext, whatever its state (the caller tells revoked from unknown)."""
    with reading(engine) as connection:
        row = connection.execute(_BY_HASH, {"hash": hash_key(plaintext)}).mappings().first()
    return KeyRecord.of(row) if row else None


def list_keys(engine: Engine) -> list[KeyRecord]:
    with reading(engine) as connection:
        rows = connection.execute(select(api_keys).order_by(api_keys.c.id)).mappings().all()
    return [KeyRecord.of(row) for row in rows]


def any_keys(engine: Engine) -> bool:
    with reading(engine) as connection:
        return bool(connection.execute(select(exists().select_from(api_keys))).scalar())


def update_key(engine: Engine, key_id: int, **fields: Any) -> KeyRecord | None:
    """Change some of a key's fields (``revoked_at=utcnow()`` revokes it); None if there is no such key."""
    if fields:
        with engine.begin() as connection:
            connection.execute(update(api_keys).where(api_keys.c.id == key_id).values(_columns(fields)))
    return get_key(engine, key_id)
