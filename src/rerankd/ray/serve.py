"""rerankd on Ray Serve: the app of ``create_app(settings)`` as the ingress of a deployment of replicas.

Each replica builds its own app in its own process (so it loads its models itself, on the GPU Ray gives
it) and runs the app's lifespan as ``rerankd serve`` does: the database migrated at start-up, preloaded
models, the pool closed on shutdown, after Ray Serve has drained the replica's requests
(``graceful_shutdown_timeout_s``). Answers carry ``x-rerankd-replica``, the replica's id. Keys, budgets
and the ledger live in ``database_url``, which every replica shares (PostgreSQL across machines).

``rerankd serve --ray`` deploys it (:func:`run_until_signalled`); ``serve run rerankd.ray.serve:app_builder
config=rerankd.yaml replicas=2`` and ``serve deploy`` take :func:`app_builder`. Imports Ray: imported only
when asked for.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import ray
from fastapi import FastAPI
from ray import serve
from ray.serve import Application
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import rerankd
from rerankd import tracing
from rerankd.api.app import create_app
from rerankd.config import ConfigError, Settings, load_settings
from rerankd.ray.options import ServeOptions
from rerankd.redaction import redact_logs

__all__ = ["REPLICA_HEADER", "app_builder", "application", "replica_app", "run_until_signalled"]

log = logging.getLogger(__name__)

REPLICA_HEADER = "x-rerankd-replica"
DEPLOYMENT = "rerankd"


class ReplicaHeader:
    """Names the replica that answered, on every answer (a client can tell replicas apart)."""

    def __init__(self, app: ASGIApp, replica: str) -> None:
        self.app = app
        self.replica = replica.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (REPLICA_HEADER.encode(), self.replica)],
                }
            await send(message)

        await self.app(scope, receive, named)


def replica_app(settings: Settings) -> FastAPI:
    """The app one replica serves: rerankd's, answering with the replica's id."""
    redact_logs()  # the replica's process logs through the handlers Ray gave it
    tracing.configure(rerankd.__version__)  # as the OTEL_* variables of the replica's process say
    app = create_app(settings)
    app.add_middleware(ReplicaHeader, replica=serve.get_replica_context().replica_id.unique_id)
    return app


class RerankdReplica:
    """The deployment's class; the app itself is built on the replica (see :func:`application`)."""


def application(settings: Settings, options: ServeOptions) -> Application:
    """The rerankd deployment, bound and ready for ``serve.run``."""
    payload = settings.model_dump(mode="json")

    # Called on each replica when it starts: the settings travel as JSON, the app is built there.
    def build() -> FastAPI:
        return replica_app(Settings.model_validate(payload))

    scaling: dict[str, Any] = (
        {"num_replicas": options.replicas}
        if options.replicas is not None
        else {
            "autoscaling_config": {
                "min_replicas": options.min_replicas,
                "max_replicas": options.max_replicas,
                "target_ongoing_requests": options.target_ongoing_requests,
            }
        }
    )
    actor: dict[str, Any] = {"num_cpus": options.num_cpus}
    if options.num_gpus:
        actor["num_gpus"] = options.num_gpus
    deployment: Any = serve.deployment(
        serve.ingress(build)(RerankdReplica),
        name=DEPLOYMENT,
        ray_actor_options=actor,
        max_ongoing_requests=options.max_ongoing_requests,
        # In-flight requests finish (up to a request's deadline) before the pool closes.
        graceful_shutdown_timeout_s=settings.request_timeout,
        graceful_shutdown_wait_loop_s=1.0,
        **scaling,
    )
    bound: Application = deployment.bind()
    return bound


def app_builder(args: dict[str, str]) -> Application:
    """For ``serve run rerankd.ray.serve:app_builder config=FILE replicas=N`` (or ``min_replicas``,
    ``max_replicas``, ``target_ongoing_requests``, ``num_cpus``, ``num_gpus``) and ``serve deploy``."""
    known = {
        "config",
        "replicas",
        "min_replicas",
        "max_replicas",
        "target_ongoing_requests",
        "max_ongoing_requests",
        "num_cpus",
        "num_gpus",
    }
    unknown = sorted(set(args) - known)
    if unknown:
        raise ConfigError(f"unknown argument(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    autoscale = "replicas" not in args and ("min_replicas" in args or "max_replicas" in args)
    options = ServeOptions(
        replicas=None if autoscale else int(args.get("replicas", 1)),
        min_replicas=int(args.get("min_replicas", 1)),
        max_replicas=int(args.get("max_replicas", 4)),
        target_ongoing_requests=float(args.get("target_ongoing_requests", 32)),
        max_ongoing_requests=int(args.get("max_ongoing_requests", 256)),
        num_cpus=float(args.get("num_cpus", 1)),
        num_gpus=float(args.get("num_gpus", 0)),
    ).check()
    return application(load_settings(args.get("config")), options)


def run_until_signalled(settings: Settings, options: ServeOptions) -> int:
    """``rerankd serve --ray``: deploy on Ray Serve at settings' host and port; SIGINT or SIGTERM drains
    the replicas and stops (Ray too, when this started it)."""
    if settings.port == 0:
        raise ConfigError("--ray needs a fixed --port: Ray Serve's proxy cannot pick a free one")
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    redact_logs()
    started = not ray.is_initialized()
    if started:
        ray.init(address=options.address, include_dashboard=False)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(application(settings, options), name=DEPLOYMENT, route_prefix="/", blocking=False)
        scale = (
            f"{options.replicas} replica(s)"
            if options.replicas is not None
            else f"{options.min_replicas}-{options.max_replicas} replicas (autoscaling)"
        )
        log.info("rerankd on Ray Serve: http://%s:%d with %s", settings.host, settings.port, scale)
        stop.wait()
        log.info("stopping: draining the replicas")
        serve.delete(DEPLOYMENT)
        serve.shutdown()  # type: ignore[no-untyped-call]
    finally:
        if started:
            ray.shutdown()
    return 0
