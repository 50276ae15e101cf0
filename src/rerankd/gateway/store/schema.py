"""The gateway's tables (SQLAlchemy Core): API keys, per-minute rate windows, holds of calls in flight, and
the usage ledger.

Money is stored as integer nano-units of the operator's currency (1e-9), so budgets, spend and costs
add up exactly in any database; times are naive UTC.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

__all__ = ["api_keys", "holds", "metadata", "rate_windows", "usage"]


metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(32), nullable=False),  # shown in lists and logs; not enough to use the key
    Column(
        "key_hash", String(64), nullable=False, unique=True
    ),  # SHA-256 of the key; the key is never stored
    Column("models", JSON, nullable=True),  # allow-list of model names or aliases; null = every model
    Column("budget_nanos", BigInteger, nullable=True),  # null = unlimited
    Column("spent_nanos", BigInteger, nullable=False, default=0),
    Column("reserved_nanos", BigInteger, nullable=False, default=0),  # held by calls in flight
    Column("rpm", Integer, nullable=True),
    Column("tpm", Integer, nullable=True),
    Column("expires_at", DateTime, nullable=True),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("revoked_at", DateTime, nullable=True),
    Column("created_at", DateTime, nullable=False),
)

rate_windows = Table(
    "rate_windows",
    metadata,
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
    Column("window", BigInteger, primary_key=True),  # minutes since the epoch
    Column("requests", Integer, nullable=False, default=0),
    Column("tokens", BigInteger, nullable=False, default=0),
)

# What a call in flight holds: money of its key's budget (counted in api_keys.reserved_nanos too) and
# tokens of its rate window. Deleted when the call settles, by an operator, or by a sweep once past its
# deadline (a replica killed mid-call never settles).
holds = Table(
    "holds",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("nanos", BigInteger, nullable=False),
    Column("tokens", BigInteger, nullable=False),  # reserved in the rate window
    Column("window", BigInteger, nullable=True),  # that window (null: the key has no rpm/tpm)
    Column("replica", String(200), nullable=False),  # host:pid:boot of the server that placed it
    Column("created_at", DateTime, nullable=False),
    Column("deadline", DateTime, nullable=False),
    Index("ix_holds_key_id", "key_id"),
    Index("ix_holds_deadline", "deadline"),
)

usage = Table(
    "usage",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("key_id", Integer, ForeignKey("api_keys.id"), nullable=True),
    Column("key_label", String(200), nullable=False),  # the key's prefix, "static:...", or "anonymous"
    Column("route", String(200), nullable=False),
    Column("dialect", String(40), nullable=False),
    Column("model", String(200), nullable=False),  # as asked
    Column("served_by", String(200), nullable=True),  # the model that answered (null: none did)
    Column("status", Integer, nullable=False),
    Column("documents", Integer, nullable=False),
    Column("query_tokens", BigInteger, nullable=False),
    Column("documents_tokens", BigInteger, nullable=False),
    Column("total_tokens", BigInteger, nullable=False),
    Column("search_units", Integer, nullable=False),
    Column("cost_nanos", BigInteger, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("attempts", Integer, nullable=False),
    Index("ix_usage_key_at", "key_id", "at"),
    Index("ix_usage_at", "at"),
)
