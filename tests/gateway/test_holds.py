"""Held money comes back when a real server is killed mid-call: its hold is listed by the admin API and
`rerankd keys show`, released by `rerankd keys release`, or swept by the next start once past its
deadline — then the key's calls are admitted again."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rerankd_support.harness import Server

from rerankd.gateway.money import to_nanos
from rerankd.gateway.store import Store, holds
from rerankd.gateway.store import keys as key_store
from tests.upstream.fake import FakeUpstream

pytestmark = pytest.mark.slow

ADMIN = "adm-holds-0123456789"
BODY = {"model": "slow", "query": "capital of the United States", "documents": ["Washington", "Carson City"]}
REQUEST_TIMEOUT = 3  # a hold's deadline: this plus a margin of 5 s after its call was admitted

StartServer = Callable[..., Server]


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream("jina")
    yield upstream
    upstream.close()


def config(fake: FakeUpstream) -> dict[str, Any]:
    model = {"name": "slow", "kind": "upstream", "provider": "jina", "base_url": fake.url, "timeout": 30}
    return {
        "admin_keys": [ADMIN],
        "request_timeout": REQUEST_TIMEOUT,
        "models": [{**model, "price": {"per_request": 96}}],
    }


def hold_a_call_and_kill(
    start_server: StartServer, fake: FakeUpstream, url: str
) -> tuple[Server, Store, key_store.KeyRecord, dict[str, str], holds.Hold]:
    """A key with budget 100, a call holding 96 in flight on a real server, and that server killed -9."""
    server = start_server(config(fake), env={"RERANKD_DATABASE_URL": url})
    store = Store(url)
    record, plaintext = key_store.create_key(store.engine, "held", budget_nanos=to_nanos(100))
    headers = {"Authorization": f"Bearer {plaintext}"}
    fake.script("sleep:20")

    def call() -> None:
        try:
            httpx.post(f"{server.url}/v1/rerank", json=BODY, headers=headers, timeout=30)
        except httpx.HTTPError:
            pass  # the server is killed under it

    threading.Thread(target=call, daemon=True).start()
    deadline = time.monotonic() + 30
    while not (found := holds.list_holds(store.engine, record.id)):
        assert time.monotonic() < deadline, "the call never held anything"
        time.sleep(0.02)
    listed = httpx.get(
        f"{server.url}/admin/keys/{record.id}/holds", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGKILL)  # mid-call, the upstream still answering
    server.proc.wait(timeout=30)
    [hold] = found
    [shown] = listed["data"]
    assert (shown["request_id"], shown["amount"], listed["key"]["reserved"]) == (hold.request_id, "96", "96")
    assert shown["replica"].split(":")[1] == str(server.proc.pid) and shown["age_seconds"] >= 0
    return server, store, record, headers, hold


def rerankd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rerankd", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_a_killed_servers_hold_is_swept_at_the_next_start_after_its_deadline(
    start_server: StartServer, fake: FakeUpstream, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'holds.db'}"
    server, store, record, headers, hold = hold_a_call_and_kill(start_server, fake, url)
    shown = rerankd("keys", "show", str(record.id), "--database-url", url)
    assert shown.returncode == 0, shown.stderr
    assert hold.request_id in shown.stdout and "reserved:" in shown.stdout

    # Restarted before the deadline, the hold is still there: the key is refused, saying what is held.
    server.start()
    refused = httpx.post(f"{server.url}/v1/rerank", json=BODY, headers=headers, timeout=30)
    assert refused.status_code == 402 and "96 held by calls in flight" in refused.text
    server.stop()
    while key_store.utcnow() <= hold.deadline + dt.timedelta(seconds=0.5):
        time.sleep(0.1)
    fake.script("ok")
    server.start()  # the start-up sweep releases it
    answered = httpx.post(f"{server.url}/v1/rerank", json=BODY, headers=headers, timeout=30)
    assert answered.status_code == 200, answered.text
    after = key_store.get_key(store.engine, record.id)
    assert after is not None and (after.spent_nanos, after.reserved_nanos) == (to_nanos(96), 0)
    assert holds.list_holds(store.engine) == []
    assert "past its deadline" in server.log()
    server.stop()
    store.close()


def test_an_operator_releases_a_killed_servers_hold_with_the_cli(
    start_server: StartServer, fake: FakeUpstream, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'holds.db'}"
    server, store, record, headers, hold = hold_a_call_and_kill(start_server, fake, url)
    released = rerankd(
        "keys", "release", str(record.id), "--request-id", hold.request_id, "--database-url", url
    )
    assert released.returncode == 0, released.stderr
    assert hold.request_id in released.stdout and "released 1 hold(s)" in released.stdout
    again = rerankd("keys", "release", record.prefix, "--database-url", url, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["released"] == []
    fake.script("ok")
    server.start()  # at once: before the hold's deadline
    answered = httpx.post(f"{server.url}/v1/rerank", json=BODY, headers=headers, timeout=30)
    assert answered.status_code == 200, answered.text
    after = key_store.get_key(store.engine, record.id)
    assert after is not None and (after.spent_nanos, after.reserved_nanos) == (to_nanos(96), 0)
    server.stop()
    store.close()
