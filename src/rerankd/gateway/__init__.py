"""The gateway: who may call, what a call costs, and the record of every call.

- ``store/``: the database (SQLAlchemy Core tables, Alembic migrations) and its blocking statements —
  keys, rate windows, holds, the usage ledger. A leaf: it knows nothing of HTTP, models or policy.
- ``money``: exact amounts (decimals outside, integer nano-units inside).
- ``metering``: the policy of one call — authenticate, admit (reserve), settle (charge and record).
- ``accounts``: the management plane over the store, for the admin API, ``/v1/usage`` and the CLI.
"""
