"""What metering costs per call: the same server and requests without a database, with the SQLite ledger,
and with PostgreSQL, in one run; latency added at p50 and p99.

Each server serves `bm25` (so the model costs little and the gateway's own work shows) and every call
carries a managed key with a budget, an rpm and a tpm, so it takes every step a metered call takes: key
lookup, rate window, reservation, settlement and the ledger row, committed before the answer. Requests
are sent one at a time (latency) and then from ``--concurrency`` clients (throughput).

    .venv/bin/python benchmarks/bench_metering.py --calls 400
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from rerankd_support.harness import rerankd_server
from rerankd_support.postgres import PostgresServer

from rerankd.gateway.money import to_nanos
from rerankd.gateway.store import Store
from rerankd.gateway.store import keys as key_store

QUERY = (
    "what similarity laws must be obeyed when constructing aeroelastic models of heated high speed aircraft"
)
DOCUMENTS = [
    f"document {i}: the aeroelastic model of a heated wing at high speed, case {i}" for i in range(20)
]
BODY = {"model": "bm25", "query": QUERY, "documents": DOCUMENTS, "top_n": 5}
CONFIG = {
    "models": [{"name": "bm25", "kind": "bm25", "price": {"per_million_tokens": 1, "per_request": "0.0001"}}]
}


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(url: str, headers: dict[str, str], calls: int, concurrency: int) -> dict[str, float]:
    with httpx.Client(timeout=60) as client:
        for _ in range(20):  # warm up
            client.post(f"{url}/v1/rerank", json=BODY, headers=headers).raise_for_status()
        latencies = []
        for _ in range(calls):
            began = time.perf_counter()
            client.post(f"{url}/v1/rerank", json=BODY, headers=headers).raise_for_status()
            latencies.append((time.perf_counter() - began) * 1000)

    def one(_: int) -> None:
        with httpx.Client(timeout=60) as client:
            for _ in range(calls // concurrency):
                client.post(f"{url}/v1/rerank", json=BODY, headers=headers).raise_for_status()

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(concurrency)))
    rate = (calls // concurrency) * concurrency / (time.perf_counter() - began)
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 0.99),
        "calls_per_s": rate,
    }


def run(name: str, database_url: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {"RERANKD_DATABASE_URL": database_url}
    headers: dict[str, str] = {}
    if database_url != "none":
        store = Store(database_url)
        store.upgrade()
        _, plaintext = key_store.create_key(
            store.engine, "bench", budget_nanos=to_nanos(10**6), rpm=10**6, tpm=10**9
        )
        store.close()
        headers = {"Authorization": f"Bearer {plaintext}"}
    with rerankd_server(CONFIG, workdir, name=name, env=env) as server:
        print(f"{name}: measuring ...", flush=True)
        return {"database": name, **measure(server.url, headers, args.calls, args.concurrency)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=400, help="calls per measurement [400]")
    parser.add_argument("--concurrency", type=int, default=8, help="clients for the throughput run [8]")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows.append(run("none", "none", workdir, args))
        rows.append(run("sqlite", f"sqlite:///{workdir / 'ledger.db'}", workdir, args))
        if not args.no_postgres:
            with PostgresServer() as postgres:
                # The test cluster runs without fsync; a real deployment's commits cost more.
                rows.append(run("postgresql", postgres.create_database("bench"), workdir, args))
    base = rows[0]
    print(
        f"\n{args.calls} sequential calls (p50, p99) and {args.concurrency} concurrent clients, "
        "bm25, 20 documents\n"
    )
    print("| database | p50 ms | p99 ms | added p50 | added p99 | calls/s | vs none |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['database']} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{row['p50_ms'] - base['p50_ms']:+.2f} | {row['p99_ms'] - base['p99_ms']:+.2f} | "
            f"{row['calls_per_s']:.0f} | {row['calls_per_s'] / base['calls_per_s']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
