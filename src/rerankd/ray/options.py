"""``rerankd serve --ray``: the flags of the Ray Serve deployment, and the switch to it.

Kept apart from ``rerankd.ray.serve`` so that the CLI can offer the flags without importing Ray; Ray is
imported only when ``--ray`` is given (``pip install rerankd[ray]``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from rerankd.config import ConfigError, env_value

__all__ = ["ServeOptions", "add_ray_serve_options", "options_of"]


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """How many replicas, and what each holds. ``replicas`` None: autoscale between min and max."""

    replicas: int | None = 1
    min_replicas: int = 1
    max_replicas: int = 4
    target_ongoing_requests: float = 32.0
    max_ongoing_requests: int = 256  # per replica; above it, Ray Serve queues in the proxy
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    address: str | None = None  # None: RAY_ADDRESS, else a local Ray

    def check(self) -> ServeOptions:
        if self.replicas is not None and self.replicas < 1:
            raise ConfigError("--replicas must be >= 1 (or leave it out and give --min/--max-replicas)")
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ConfigError("--min-replicas must be >= 0 and <= --max-replicas (>= 1)")
        if self.target_ongoing_requests <= 0 or self.max_ongoing_requests < 1:
            raise ConfigError("--target-ongoing-requests must be > 0 and --max-ongoing-requests >= 1")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ConfigError("--num-cpus and --num-gpus must be >= 0")
        return self


def add_ray_serve_options(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group(
        "Ray Serve (--ray)",
        "Serve the same app as a Ray Serve deployment: replicas, each loading its models itself, behind "
        "Ray's HTTP proxy on --host/--port. Give several replicas a shared database_url (PostgreSQL).",
    )
    group.add_argument(
        "--ray",
        action="store_true",
        default=(env_value("RERANKD_RAY") or "").lower() in ("1", "true", "yes"),
        help="serve on Ray Serve (pip install rerankd[ray]) [env RERANKD_RAY=1]",
    )
    group.add_argument(
        "--ray-address",
        metavar="ADDR",
        default=env_value("RAY_ADDRESS"),
        help="a running Ray cluster (auto, ray://head:10001) [env RAY_ADDRESS; default: start a local Ray]",
    )
    group.add_argument(
        "--replicas",
        metavar="N",
        type=int,
        default=int(env_value("RERANKD_REPLICAS") or 0) or None,
        help="a fixed number of replicas [env RERANKD_REPLICAS; default 1, or autoscaling when "
        "--min-replicas/--max-replicas are given]",
    )
    group.add_argument("--min-replicas", metavar="N", type=int, help="autoscaling: fewest replicas [1]")
    group.add_argument("--max-replicas", metavar="N", type=int, help="autoscaling: most replicas [4]")
    group.add_argument(
        "--target-ongoing-requests",
        metavar="R",
        type=float,
        default=32.0,
        help="autoscaling: requests in flight per replica to aim for [32]",
    )
    group.add_argument(
        "--max-ongoing-requests",
        metavar="R",
        type=int,
        default=256,
        help="requests per replica at most [256]",
    )
    group.add_argument("--num-cpus", metavar="C", type=float, default=1.0, help="CPUs per replica [1]")
    group.add_argument("--num-gpus", metavar="G", type=float, default=0.0, help="GPUs per replica [0]")


def options_of(args: argparse.Namespace) -> ServeOptions:
    autoscale = args.replicas is None and (args.min_replicas is not None or args.max_replicas is not None)
    return ServeOptions(
        replicas=None if autoscale else (1 if args.replicas is None else args.replicas),
        min_replicas=1 if args.min_replicas is None else args.min_replicas,
        max_replicas=4 if args.max_replicas is None else args.max_replicas,
        target_ongoing_requests=args.target_ongoing_requests,
        max_ongoing_requests=args.max_ongoing_requests,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        address=args.ray_address,
    ).check()
