"""``Runtime``: the one way to build rerankd's running parts from a config.

Metrics, the model pool, the gateway's meter (over the database when the config keeps one), the accounts
and the service, wired together once. The HTTP app (``create_app``), the Python API (``Reranker``, and
through it batch jobs and Ray Data actors), ``rerankd eval`` and ``rerankd models --load`` all build one
here, so a change to how models load or calls are metered is made in one place. :meth:`Runtime.start`
migrates the database, starts the sweep of expired holds and preloads models; :meth:`Runtime.stop`
undoes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from rerankd.config import Settings
from rerankd.gateway.accounts import Accounts
from rerankd.gateway.metering import Meter
from rerankd.gateway.store import Store
from rerankd.serving.metrics import Metrics
from rerankd.serving.pool import ModelPool
from rerankd.serving.service import RerankService, hold_seconds, meter_for

__all__ = ["RESTART_ONLY", "SWEEP_SECONDS", "Readiness", "Reloaded", "Runtime"]

# Settings a running server cannot take over: the socket, the database, the logs, the routes, the HTTP
# protocol's limits, the loaded models' threads. A reload keeps their running values and says which would need
# a restart.
RESTART_ONLY = (
    "host",
    "port",
    "database_url",
    "log_level",
    "log_format",
    "v1_dialect",
    "max_request_bytes",
    "header_timeout",
    "body_timeout",
    "keep_alive_timeout",
    "max_header_bytes",
    "max_connections",
    "threads_layout",
)

log = logging.getLogger(__name__)

# How often a server gives back the money of holds past their deadline (a dead replica's calls).
SWEEP_SECONDS = 30.0


# A readiness probe that waits longer than this on the database calls it down.
DATABASE_PROBE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether this server can answer what it was configured for: every preloaded model ready and the
    database answering. ``reasons`` say what is not, one line each."""

    ready: bool
    reasons: tuple[str, ...]
    models: dict[str, str]  # preloaded model -> its status
    database: str  # "ok", "unreachable" or "none" (no database configured)


@dataclass(frozen=True, slots=True)
class Reloaded:
    """What a reload changed (models by name) and which changed settings wait for a restart."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    kept: tuple[str, ...]
    needs_restart: tuple[str, ...]


@dataclass
class Runtime:
    settings: Settings
    metrics: Metrics
    pool: ModelPool
    meter: Meter
    accounts: Accounts | None  # managed keys and usage reports; None without a database
    service: RerankService
    _sweeping: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings, *, metered: bool | None = None, tracebacks: bool = True) -> Runtime:
        """The parts of a config. ``metered`` False keeps no database even when the config names one
        (the Python API and eval rank for their own process: no keys, no ledger); ``tracebacks`` False
        logs a failed load as one line (the Python API raises it to its caller instead)."""
        metrics = Metrics()
        pool = ModelPool(settings, metrics, tracebacks=tracebacks)
        store = Store(settings.database_url) if (settings.metered if metered is None else metered) else None
        meter = meter_for(settings, pool, store)
        names = [name for spec in settings.models for name in spec.names]
        accounts = Accounts(store, models=names) if store is not None else None
        return cls(
            settings, metrics, pool, meter, accounts, RerankService(settings, pool, metrics, meter, accounts)
        )

    async def start(self, *, preload: bool = True) -> None:
        """Migrate the database and release holds past their deadline (then every SWEEP_SECONDS), and
        load the models marked ``preload``."""
        await self.meter.start()
        if self.meter.store is not None:
            self._sweeping = asyncio.create_task(self._sweep())
        if preload:
            await self.pool.preload()

    async def stop(self) -> None:
        if self._sweeping is not None:
            self._sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeping
            self._sweeping = None
        await self.pool.close()
        await self.meter.close()

    def reload(self, settings: Settings) -> Reloaded:
        """Serve ``settings`` from the next call on (validated already: an invalid config never gets
        here): models as :meth:`ModelPool.reconfigure` says, keys, prices and server limits at once."""
        running = self.settings
        waiting = tuple(name for name in RESTART_ONLY if getattr(settings, name) != getattr(running, name))
        if waiting:
            settings = settings.model_copy(update={name: getattr(running, name) for name in waiting})
        models = self.pool.reconfigure(settings)
        self.settings = self.service.settings = settings
        meter = self.meter
        meter.static_keys, meter.admin_keys = list(settings.api_keys), list(settings.admin_keys)
        meter.metrics_keys = list(settings.metrics_keys)
        meter.hold_seconds = hold_seconds(settings)
        if self.accounts is not None:
            self.accounts.models = tuple(name for spec in settings.models for name in spec.names)
        return Reloaded(models.added, models.changed, models.removed, models.kept, waiting)

    async def readiness(self) -> Readiness:
        """Preloaded models and the database, checked now (the database with a bounded wait)."""
        reasons: list[str] = []
        models: dict[str, str] = {}
        for view in self.pool.views():
            if not self.pool.entry(view.name).spec.preload:
                continue  # loaded on first use: not loaded yet is not a fault
            models[view.name] = view.status
            if view.status != "ready":
                reasons.append(
                    f"model '{view.name}' is {view.status}" + (f": {view.error}" if view.error else "")
                )
        database = "none"
        if self.meter.store is not None:
            database = "ok"
            try:
                await asyncio.wait_for(self.meter.store.run(self.meter.store.ping), DATABASE_PROBE_SECONDS)
            except Exception as exc:  # any failure to answer is the database being down, for a probe
                database = "unreachable"
                reasons.append(f"the database does not answer ({type(exc).__name__})")
        return Readiness(not reasons, tuple(reasons), models, database)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.meter.sweep()
            except Exception:  # the database away for a while: the next sweep tries again
                log.exception("sweeping expired holds failed")
