"""The ``rerankd`` command: ``serve`` starts the API server, ``models`` checks the configured models,
``keys`` and ``usage`` manage the gateway's keys and read its ledger, ``db upgrade`` migrates the database.

Every setting flag has an environment variable (shown in --help); flags win over variables, variables
over the config file. ``keys``, ``usage`` and ``db`` work on the database directly (no server needed),
through the same code as the admin API (``rerankd.gateway.accounts``); each takes ``--json`` for scripts.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

import rerankd
from rerankd.commands.batch import add_batch_command, batch
from rerankd.commands.evaluate import add_eval_command, evaluate
from rerankd.commands.manage import add_commands, manage
from rerankd.config import ConfigError, Settings, env_value, load_settings
from rerankd.ray.options import add_ray_serve_options, options_of
from rerankd.redaction import redact_logs

__all__ = ["main"]


def serve_on_ray(settings: Settings, args: Any) -> int:
    """Deploy on Ray Serve and block until SIGINT/SIGTERM; then drain the replicas and stop."""
    options = options_of(args)
    try:
        from rerankd.ray.serve import run_until_signalled
    except ImportError as exc:
        raise ConfigError(f"--ray needs Ray Serve: pip install 'rerankd[ray]' ({exc})") from None
    return run_until_signalled(settings, options)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rerankd",
        description="Self-hosted rerank API server: rank documents by relevance to a query with "
        "cross-encoders, bi-encoders or BM25, behind the rerank APIs your clients already speak.",
        epilog="Without --config the built-in default serves `bm25` and `all-minilm-l6-v2` (no network "
        "needed) and declares hub cross-encoders that load on first use. Every setting is also an "
        "environment variable RERANKD_<NAME>: RERANKD_CONFIG, RERANKD_HOST, RERANKD_PORT, RERANKD_LOG_LEVEL, "
        "RERANKD_API_KEYS (comma-separated), RERANKD_MAX_DOCUMENTS, RERANKD_MAX_REQUEST_BYTES, "
        "RERANKD_MAX_RETRIES, RERANKD_MAX_QUEUE_PAIRS, RERANKD_MAX_BATCH_TOKENS, RERANKD_MAX_BATCH_SIZE, "
        "RERANKD_DATABASE_URL, RERANKD_ADMIN_KEYS (comma-separated), "
        "RERANKD_METRICS_KEYS (comma-separated), RERANKD_HEADER_TIMEOUT, "
        "RERANKD_BODY_TIMEOUT, RERANKD_KEEP_ALIVE_TIMEOUT, RERANKD_MAX_HEADER_BYTES, "
        "RERANKD_MAX_CONNECTIONS. See `rerankd COMMAND --help`.",
    )
    parser.add_argument("--version", action="version", version=f"rerankd {rerankd.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config_help = "YAML config file (models, api_keys, limits) [env RERANKD_CONFIG; default: built-in config]"
    serve = commands.add_parser(
        "serve",
        help="start the HTTP API server",
        description="Start the rerank API server. POST /v1/rerank ranks documents; GET /v1/models lists "
        "models; GET /health answers without auth; /docs has the OpenAPI page.",
    )
    serve.add_argument("--config", metavar="FILE", default=env_value("RERANKD_CONFIG"), help=config_help)
    serve.add_argument("--host", metavar="H", help="interface to bind [env RERANKD_HOST; default 127.0.0.1]")
    serve.add_argument(
        "--port", metavar="P", type=int, help="TCP port [env RERANKD_PORT; default 8000; 0 = any free port]"
    )
    serve.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity [env RERANKD_LOG_LEVEL; default info]",
    )
    add_ray_serve_options(serve)

    models = commands.add_parser(
        "models",
        help="list the configured models and whether each can be loaded",
        description="List the configured models and whether each one's files can be found (local folder, "
        "bundled package or Hugging Face cache). --load also loads each model to be sure.",
    )
    models.add_argument("--config", metavar="FILE", default=env_value("RERANKD_CONFIG"), help=config_help)
    models.add_argument(
        "--load", action="store_true", help="load every model (slow) to check it really works"
    )
    add_commands(commands, config_help)
    add_batch_command(commands, config_help)
    add_eval_command(commands, config_help)
    return parser


def _serve(settings: Settings) -> int:
    import uvicorn

    from rerankd.api.app import create_app
    from rerankd.api.connections import ConnectionLimits, connection_cap, guarded_protocol

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Before uvicorn configures its loggers: the filters it finds there stay.
    redact_logs()
    max_connections, backlog = connection_cap(settings.max_connections)
    limits = ConnectionLimits(
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        max_header_bytes=settings.max_header_bytes,
        max_connections=max_connections,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # The guarded h11 protocol bounds the head (h11's own bound must not be lower), adds timeouts
        # for heads and bodies and caps the connections.
        http=guarded_protocol(limits),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        timeout_keep_alive=settings.keep_alive_timeout,
        backlog=backlog,
        ws="none",  # no WebSocket routes: an Upgrade is an ordinary request
    )
    return 0


async def _load_models(settings: Settings) -> dict[str, str | None]:
    """Load every local model the way the server does (the pool: load, warm-up, pass cost measured);
    each name -> None when it loaded, else the first line of why not."""
    from rerankd.errors import RerankdError
    from rerankd.kinds import kind_of
    from rerankd.serving.runtime import Runtime

    runtime = Runtime.build(settings, metered=False)
    outcome: dict[str, str | None] = {}
    try:
        for spec in settings.models:
            if kind_of(spec).remote:  # an upstream has nothing to load: it is called, not loaded
                continue
            try:
                await runtime.pool.scorer(spec.name)
                outcome[spec.name] = None
            except RerankdError as exc:
                outcome[spec.name] = exc.message.strip().splitlines()[0] if exc.message.strip() else repr(exc)
    finally:
        await runtime.stop()
    return outcome


def _models(settings: Settings, load: bool) -> int:
    import asyncio

    loaded = asyncio.run(_load_models(settings)) if load else {}
    rows = [("NAME", "KIND", "LOADABLE", "WHERE")]
    failures = 0
    for spec in settings.models:
        available = spec.availability()
        loadable, where = available.loadable, available.where
        if spec.name in loaded:
            error = loaded[spec.name]
            loadable, where = (
                (True, f"loaded ({where})") if error is None else (False, f"load failed: {error}")
            )
        failures += not loadable
        rows.append((", ".join(spec.names), spec.kind, "yes" if loadable else "no", where))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3])
    return 0 if failures == 0 or not load else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            settings = load_settings(args.config, host=args.host, port=args.port, log_level=args.log_level)
            return serve_on_ray(settings, args) if args.ray else _serve(settings)
        if args.command in ("keys", "usage", "db"):
            return manage(args)
        if args.command == "batch":
            return batch(args)
        if args.command == "eval":
            return evaluate(args)
        return _models(load_settings(args.config), args.load)
    except ConfigError as exc:
        print(f"rerankd: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
