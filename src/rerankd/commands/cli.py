"""The ``rerankd`` command: ``serve`` starts the API server, ``models`` checks the configured models,
``keys`` and ``usage`` manage the gateway's keys and read its ledger, ``db upgrade`` migrates the database.

Every setting flag has an environment variable (shown in --help); flags win over variables, variables
over the config file. ``keys``, ``usage`` and ``db`` work on the database directly (no server needed),
through the same code as the admin API (``rerankd.gateway.accounts``); each takes ``--json`` for scripts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import rerankd
from rerankd import tracing
from rerankd.commands.batch import add_batch_command, batch
from rerankd.commands.evaluate import add_eval_command, evaluate
from rerankd.commands.manage import add_commands, manage
from rerankd.config import ConfigError, Settings, env_value, load_settings
from rerankd.ray.options import add_ray_serve_options, options_of
from rerankd.redaction import redact_logs

__all__ = ["configure_logging", "main"]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, and the fields an access line
    carries (``extra={"access": {...}}``), the traceback as ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "access", None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level: str, format: str = "text") -> None:
    """The server's log: one format, the configured level for every logger, secrets redacted."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    # The level is enforced at the handlers too: a library that pins its own logger's level (bm25s sets
    # DEBUG when imported, then logs every index it builds) follows the configured one.
    for handler in logging.getLogger().handlers:
        handler.setLevel(level.upper())
    # Before uvicorn configures its loggers: the filters it finds there stay.
    redact_logs()


def serve_on_ray(settings: Settings, args: Any) -> int:
    """Deploy on Ray Serve and block until SIGINT/SIGTERM; then drain the replicas and stop."""
    options = options_of(args)
    try:
        from rerankd.ray.serve import run_until_signalled
    except ImportError as exc:
        raise ConfigError(f"--ray needs Ray Serve: pip install 'rerankd[ray]' ({exc})") from None
    return run_until_signalled(settings, options)


def _environment() -> str:
    """Every RERANKD_* variable the server reads, from the settings themselves (lists comma-separated)."""
    names = ["RERANKD_CONFIG"]
    for name, field in Settings.model_fields.items():
        if name == "models":
            continue  # only in the config file
        listed = " (comma-separated)" if str(field.annotation).startswith("list[") else ""
        names.append(f"RERANKD_{name.upper()}{listed}")
    return ", ".join(names)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rerankd",
        description="Self-hosted rerank API server: rank documents by relevance to a query with "
        "cross-encoders, bi-encoders or BM25, behind the rerank APIs your clients already speak.",
        epilog="Without --config the built-in default serves `bm25` and `all-minilm-l6-v2` (no network "
        "needed) and declares hub cross-encoders that load on first use. Every setting is also an "
        f"environment variable RERANKD_<NAME>: {_environment()}. Models from the Hugging Face hub are "
        "looked up in HF_HOME's cache (default ~/.cache/huggingface); HF_HUB_OFFLINE=1 never reaches for the "
        "hub. With the otel extra, `serve` traces as the standard OTEL_* variables say "
        "(OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT, ...; off when none asks for traces). "
        "See `rerankd COMMAND --help`.",
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
    serve.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="text lines, or one JSON object per line with one access line per request "
        "[env RERANKD_LOG_FORMAT; default text]",
    )
    serve.add_argument(
        "--require-ready",
        action="store_true",
        default=None,
        help="exit non-zero at start-up when a preloaded model fails to load or the database does not answer "
        "[env RERANKD_REQUIRE_READY; default: serve what loaded, and say so on /ready]",
    )
    serve.add_argument(
        "--threads-layout",
        choices=["auto", "single", "parallel"],
        help="how a local model's forward passes use the cores: one worker on all of them (single), one "
        "worker per core (parallel), or the faster of both, timed when the model loads (auto) "
        "[env RERANKD_THREADS_LAYOUT; default auto]",
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


def _trace() -> None:
    """Tracing as the OTEL_* variables say (``rerankd.tracing``), before the app is built."""
    try:
        exporters = tracing.configure(rerankd.__version__)
    except ValueError as exc:
        raise ConfigError(f"tracing: {exc}") from None
    if exporters is not None:
        logging.getLogger("rerankd.tracing").info("tracing on: spans exported by %s", exporters)


def _serve(settings: Settings, read_settings: Callable[[], Settings]) -> int:
    import uvicorn

    from rerankd.api.app import create_app
    from rerankd.api.connections import ConnectionLimits, connection_cap, guarded_protocol

    configure_logging(settings.log_level, settings.log_format)
    _trace()
    json_log = settings.log_format == "json"
    max_connections, backlog = connection_cap(settings.max_connections)
    limits = ConnectionLimits(
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        max_header_bytes=settings.max_header_bytes,
        max_connections=max_connections,
    )
    config = uvicorn.Config(
        create_app(settings, read_settings=read_settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # JSON: uvicorn's loggers write through the root's JSON handler, and rerankd's access line (with
        # what the call cost) replaces uvicorn's.
        log_config=None if json_log else uvicorn.config.LOGGING_CONFIG,
        access_log=not json_log,
        # The guarded h11 protocol bounds the head (h11's own bound must not be lower), adds timeouts
        # for heads and bodies and caps the connections.
        http=guarded_protocol(limits),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        timeout_keep_alive=settings.keep_alive_timeout,
        backlog=backlog,
        ws="none",  # no WebSocket routes: an Upgrade is an ordinary request
    )
    # The port is bound before the models preload (uvicorn would bind it after): a port in use is
    # reported at once (exit status 3), instead of after a minute of loading.
    socket = config.bind_socket()
    server = uvicorn.Server(config)
    server.run(sockets=[socket])
    # uvicorn stops without raising when the app's start-up fails (require_ready): exit non-zero then.
    return 0 if server.started else 3


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
            if kind_of(spec).shape != "local":  # an upstream or a hybrid has nothing of its own to load
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
    rows = [("NAME", "KIND", "LOADABLE", "RECIPE", "WHERE")]
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
        recipe = spec.recipe() or "-"
        rows.append((", ".join(spec.names), spec.kind, "yes" if loadable else "no", recipe, where))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[4])
    return 0 if failures == 0 or not load else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":

            def read() -> Settings:  # at start, and again on each reload (SIGHUP, POST /admin/reload)
                return load_settings(
                    args.config,
                    host=args.host,
                    port=args.port,
                    log_level=args.log_level,
                    log_format=args.log_format,
                    require_ready=args.require_ready,
                    threads_layout=args.threads_layout,
                )

            settings = read()
            return serve_on_ray(settings, args) if args.ray else _serve(settings, read)
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
