"""Alembic's environment: migrations run on the connection ``rerankd.gateway.store.engine.upgrade`` passes."""

from __future__ import annotations

from alembic import context

from rerankd.gateway.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
