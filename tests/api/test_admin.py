"""The management plane over HTTP: the admin API (``/admin/``) and ``GET /v1/usage``, in-process on the
test's own SQLite file, and once against a real ``rerankd serve``.

Key lifecycle (create, list, show, update, revoke) with what a client then sees; who may open what (a
client key never opens /admin/, an admin key never ranks); exact money; usage filtered, grouped and
exported as CSV; and no plaintext key in the database files or the server's log."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from fastapi.testclient import TestClient
from rerankd_support.harness import Server

from rerankd.api.app import create_app
from rerankd.config import load_settings

ADMIN = "adm-secret-1"
STATIC = "sk-static-1"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
AS_STATIC = {"Authorization": f"Bearer {STATIC}"}

QUERY = "What is the capital of the United States?"
DOCUMENTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "Washington, D.C. is the capital of the United States. It is a federal district.",
]
MODELS = [
    {"name": "bm25", "kind": "bm25", "aliases": ["okapi"], "price": {"per_request": "0.03"}},
    {"name": "bm25-tokens", "kind": "bm25", "price": {"per_million_tokens": "1000"}},
    {"name": "free", "kind": "bm25"},
]
CONFIG: dict[str, Any] = {"admin_keys": [ADMIN], "api_keys": [STATIC], "models": MODELS}
KEY_FIELDS = {
    *("id", "name", "prefix", "state", "models", "budget", "spent", "reserved", "remaining", "rpm", "tpm"),
    *("expires_at", "disabled", "revoked_at", "created_at"),
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def open_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """A TestClient (lifespan run) of an app with ``CONFIG`` updated by the arguments; its database is the
    test's own (conftest's RERANKD_DATABASE_URL: tmp_path / rerankd.db)."""
    with ExitStack() as stack:

        def open_(**changes: Any) -> TestClient:
            path = tmp_path / f"config-{len(list(tmp_path.glob('config-*.yaml')))}.yaml"
            path.write_text(yaml.safe_dump({**CONFIG, **changes}), encoding="utf-8")
            return stack.enter_context(TestClient(create_app(load_settings(path))))

        yield open_


@pytest.fixture
def client(open_client: Callable[..., TestClient]) -> TestClient:
    return open_client()


def rerank(client: TestClient, key: str, model: str = "bm25", path: str = "/v1/rerank") -> Any:
    return client.post(
        path, json={"model": model, "query": QUERY, "documents": DOCUMENTS}, headers=bearer(key)
    )


def create(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/admin/keys", json={"name": "team", **body}, headers=AS_ADMIN)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# -- lifecycle -------------------------------------------------------------------------------------


def test_key_lifecycle_through_the_admin_api(client: TestClient) -> None:
    created = create(
        client, name="team-a", models=["bm25"], budget="12.5", rpm=100, tpm=100_000, expires_at="2099-01-01"
    )
    plaintext = created.pop("key")
    assert set(created) == KEY_FIELDS
    assert plaintext.startswith(created["prefix"]) and len(plaintext) > len(created["prefix"]) + 16
    assert created | {"id": 0, "prefix": "", "created_at": ""} == {
        "id": 0,
        "name": "team-a",
        "prefix": "",
        "state": "active",
        "models": ["bm25"],
        "budget": "12.5",
        "spent": "0",
        "reserved": "0",
        "remaining": "12.5",
        "rpm": 100,
        "tpm": 100_000,
        "expires_at": "2099-01-01T00:00:00Z",
        "disabled": False,
        "revoked_at": None,
        "created_at": "",
    }
    key_id = created["id"]

    listed = client.get("/admin/keys", headers=AS_ADMIN)
    assert listed.status_code == 200 and listed.json()["object"] == "list"
    assert [key["id"] for key in listed.json()["data"]] == [key_id]
    assert plaintext not in listed.text and "hash" not in listed.text

    answered = rerank(client, plaintext)
    assert answered.status_code == 200, answered.text
    assert rerank(client, plaintext, model="free").status_code == 403  # not on the key's list

    shown = client.get(f"/admin/keys/{key_id}", headers=AS_ADMIN).json()
    assert (shown["spent"], shown["remaining"], shown["state"]) == ("0.03", "12.47", "active")
    usage = shown["usage"]
    assert usage["total"]["calls"] == 2 and usage["total"]["errors"] == 1
    assert usage["total"]["total_tokens"] == answered.json()["usage"]["total_tokens"]
    assert [(g["group"], g["calls"], g["cost"]) for g in usage["by_model"]] == [
        ("bm25", 1, "0.03"),
        ("free", 1, "0"),
    ]
    assert client.get(f"/admin/keys/{created['prefix']}", headers=AS_ADMIN).json()["id"] == key_id
    assert plaintext not in str(shown)

    patched = client.patch(f"/admin/keys/{key_id}", json={"models": None, "budget": 20}, headers=AS_ADMIN)
    assert patched.status_code == 200, patched.text
    after = patched.json()
    assert (after["models"], after["budget"], after["rpm"], after["name"]) == (None, "20", 100, "team-a")
    assert rerank(client, plaintext, model="free").status_code == 200  # every model now

    disabled = client.patch(f"/admin/keys/{key_id}", json={"disabled": True}, headers=AS_ADMIN).json()
    assert disabled["state"] == "disabled"
    refused = rerank(client, plaintext)
    assert refused.status_code == 401 and "disabled" in refused.text
    client.patch(f"/admin/keys/{key_id}", json={"disabled": False}, headers=AS_ADMIN)
    assert rerank(client, plaintext).status_code == 200

    revoked = client.delete(f"/admin/keys/{key_id}", headers=AS_ADMIN)
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert revoked.json()["revoked_at"] is not None
    refused = rerank(client, plaintext)
    assert refused.status_code == 401 and "revoked" in refused.text
    # The row stays, for the ledger: listed, shown, its calls counted.
    assert [key["state"] for key in client.get("/admin/keys", headers=AS_ADMIN).json()["data"]] == ["revoked"]
    final = client.get(f"/admin/keys/{key_id}", headers=AS_ADMIN).json()
    assert final["usage"]["total"]["calls"] == 4 and final["spent"] == "0.06"  # 401s never reach the ledger
    assert client.delete(f"/admin/keys/{key_id}", headers=AS_ADMIN).json() == revoked.json()  # idempotent


def test_unknown_keys_are_a_404_and_bad_bodies_a_422(client: TestClient) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        response = client.request(method, "/admin/keys/999", json={"name": "x"}, headers=AS_ADMIN)
        assert response.status_code == 404, (method, response.text)
        assert "no key 999" in response.json()["error"]["message"]
    assert client.get("/admin/usage?key=rk-AAAAAAAA", headers=AS_ADMIN).status_code == 404
    key_id = create(client)["id"]
    bad_bodies: list[tuple[dict[str, Any], str]] = [
        ({"budget": -1}, "budget"),
        ({"budget": "0.0000000001"}, "9 decimal places"),
        ({"budget": "lots"}, "budget"),
        ({"rpm": 0}, "rpm"),
        ({"models": ["no-such-model"]}, "no-such-model"),
        ({"name": ""}, "name"),
        ({"spent": 0}, "spent"),
        ({"key_hash": "0" * 64}, "key_hash"),
        ({"expires_at": "someday"}, "expires_at"),
    ]
    for body, word in bad_bodies:
        for response in (
            client.post("/admin/keys", json={"name": "x", **body}, headers=AS_ADMIN),
            client.patch(f"/admin/keys/{key_id}", json=body, headers=AS_ADMIN),
        ):
            assert response.status_code == 422, (body, response.text)
            assert response.json()["error"]["type"] == "invalid_request"
            assert word in response.json()["error"]["message"], (body, response.text)
    assert client.post("/admin/keys", json={}, headers=AS_ADMIN).status_code == 422  # a name is needed
    assert [key["id"] for key in client.get("/admin/keys", headers=AS_ADMIN).json()["data"]] == [key_id]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_values_beyond_the_columns_are_a_422_never_a_500(
    open_client: Callable[..., TestClient],
    database: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if database == "postgresql":
        monkeypatch.setenv("RERANKD_DATABASE_URL", request.getfixturevalue("postgres_url"))
    client = open_client()
    key_id = create(client)["id"]
    raw_bodies = [  # JSON as sent: 1e20 and a 400-digit budget are numbers Python's json would not write
        '{"rpm": 2147483648}',
        '{"tpm": 1e20}',
        '{"tpm": 100000000000000000000}',
        '{"budget": 1e30}',
        '{"budget": "1E+999999999"}',
        '{"budget": ' + "9" * 400 + "}",
        '{"name": "a\\u0000b"}',
        '{"models": ["bm25\\u0000"]}',
    ]
    for raw in raw_bodies:
        for response in (
            client.post("/admin/keys", content=raw.replace("{", '{"name": "x", ', 1), headers=AS_ADMIN),
            client.patch(f"/admin/keys/{key_id}", content=raw, headers=AS_ADMIN),
        ):
            assert response.status_code == 422, (raw, response.text)
            assert response.json()["error"]["type"] == "invalid_request", raw
    for key in (str(2**31), str(2**64), "9" * 5000):
        for method in ("GET", "PATCH", "DELETE"):
            response = client.request(method, f"/admin/keys/{key}", json={"name": "y"}, headers=AS_ADMIN)
            assert response.status_code == 422, (key[:30], method, response.text)
            assert "from 1 to 2147483647" in response.json()["error"]["message"]
    for query in ("model=bm25%00", f"model={'m' * 201}", f"key={2**64}"):
        assert client.get(f"/admin/usage?{query}", headers=AS_ADMIN).status_code == 422, query
        assert client.get(f"/admin/usage?format=csv&{query}", headers=AS_ADMIN).status_code == 422, query
    assert [key["id"] for key in client.get("/admin/keys", headers=AS_ADMIN).json()["data"]] == [key_id]


# -- who opens what --------------------------------------------------------------------------------

ADMIN_ROUTES = [
    ("POST", "/admin/keys"),
    ("GET", "/admin/keys"),
    ("GET", "/admin/keys/1"),
    ("PATCH", "/admin/keys/1"),
    ("DELETE", "/admin/keys/1"),
    ("GET", "/admin/usage"),
    ("GET", "/admin/usage?format=csv&by=day"),
]


def test_client_keys_never_open_the_admin_api(client: TestClient) -> None:
    managed = create(client)["key"]
    for headers in (bearer(managed), AS_STATIC, {}, bearer("wrong"), {"Authorization": ADMIN}):
        for method, path in ADMIN_ROUTES:
            response = client.request(method, path, json={"name": "x"}, headers=headers)
            assert response.status_code == 401, (headers, method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "admin" in response.json()["error"]["message"]
    assert [key["name"] for key in client.get("/admin/keys", headers=AS_ADMIN).json()["data"]] == ["team"]


def test_an_admin_key_never_ranks_nor_reads_usage(client: TestClient) -> None:
    for path in ("/v1/rerank", "/cohere/v2/rerank", "/v1/usage"):
        response = client.request(
            "GET" if path == "/v1/usage" else "POST",
            path,
            json={"model": "bm25", "query": QUERY, "documents": DOCUMENTS},
            headers=AS_ADMIN,
        )
        assert response.status_code == 401, (path, response.text)
        assert "admin key" in response.text
    # what it reads: every model, and the metrics (tests/api/test_server.py)
    assert client.get("/v1/models", headers=AS_ADMIN).status_code == 200
    assert client.get("/metrics", headers=AS_ADMIN).status_code == 200


def test_the_admin_api_is_off_without_admin_keys(open_client: Callable[..., TestClient]) -> None:
    client = open_client(admin_keys=[])
    response = client.get("/admin/keys", headers=AS_ADMIN)
    assert response.status_code == 401 and "admin_keys" in response.json()["error"]["message"]


def test_without_a_database_the_admin_api_says_what_to_set(
    open_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RERANKD_DATABASE_URL", "none")
    client = open_client()
    for method, path in ADMIN_ROUTES:
        response = client.request(method, path, json={"name": "x"}, headers=AS_ADMIN)
        assert response.status_code == 503, (method, path, response.text)
        assert response.json()["error"]["type"] == "no_database"
        assert "database_url" in response.json()["error"]["message"]
    assert rerank(client, STATIC).status_code == 200  # ranking works as ever


# -- money -----------------------------------------------------------------------------------------


def test_money_round_trips_exactly(client: TestClient) -> None:
    created = create(client, budget=0.1)  # a JSON number
    assert (created["budget"], created["remaining"]) == ("0.1", "0.1")
    for _ in range(3):
        assert rerank(client, created["key"]).status_code == 200
    fourth = rerank(client, created["key"])
    assert fourth.status_code == 402, fourth.text  # 0.09 spent; 0.03 more does not fit in 0.1
    shown = client.get(f"/admin/keys/{created['id']}", headers=AS_ADMIN).json()
    assert (shown["spent"], shown["reserved"], shown["remaining"]) == ("0.09", "0", "0.01")
    assert shown["usage"]["total"]["cost"] == "0.09"
    assert client.get("/admin/usage", headers=AS_ADMIN).json()["total"]["cost"] == "0.09"
    assert client.get("/v1/usage", headers=bearer(created["key"])).json()["remaining"] == "0.01"
    # amounts are given back as decimal text, exactly, however small or large
    patched = client.patch(
        f"/admin/keys/{created['id']}", json={"budget": "1234567890.000000001"}, headers=AS_ADMIN
    ).json()
    assert (patched["budget"], patched["remaining"]) == ("1234567890.000000001", "1234567889.910000001")
    too_large = client.patch(f"/admin/keys/{created['id']}", json={"budget": "1e10"}, headers=AS_ADMIN)
    assert too_large.status_code == 422 and "too large" in too_large.text
    tiny = client.patch(
        f"/admin/keys/{created['id']}", json={"budget": "0.09000001"}, headers=AS_ADMIN
    ).json()
    assert (tiny["budget"], tiny["remaining"]) == ("0.09000001", "0.00000001")
    assert Decimal(tiny["budget"]) - Decimal(tiny["spent"]) == Decimal(tiny["remaining"])


# -- usage reports ---------------------------------------------------------------------------------


def test_usage_is_filtered_grouped_and_exported(client: TestClient) -> None:
    a = create(client, name="team-a")
    b = create(client, name="team-b")
    answers: list[tuple[str, str, Any]] = []
    for key, model in [(a, "bm25"), (a, "bm25-tokens"), (b, "bm25"), (a, "bm25")]:
        response = rerank(client, key["key"], model)
        assert response.status_code == 200, response.text
        answers.append((key["prefix"], model, response))
    static = rerank(client, STATIC, "free")
    assert static.status_code == 200
    tokens = (
        sum(r.json()["usage"]["total_tokens"] for *_, r in answers) + static.json()["usage"]["total_tokens"]
    )
    token_cost = Decimal(answers[1][2].json()["usage"]["total_tokens"]) * 1000 / 1_000_000

    report = client.get("/admin/usage", headers=AS_ADMIN).json()
    assert report["by"] is None and report["groups"] == []
    assert (report["total"]["calls"], report["total"]["total_tokens"]) == (5, tokens)
    assert Decimal(report["total"]["cost"]) == Decimal("0.09") + token_cost

    by_key = client.get("/admin/usage?by=key", headers=AS_ADMIN).json()["groups"]
    assert {g["group"]: g["calls"] for g in by_key} == {
        f"team-a ({a['prefix']})": 3,
        f"team-b ({b['prefix']})": 1,
        next(g["group"] for g in by_key if g["group"].startswith("static:")): 1,
    }
    by_model = {
        g["group"]: g["calls"] for g in client.get("/admin/usage?by=model", headers=AS_ADMIN).json()["groups"]
    }
    assert by_model == {"bm25": 3, "bm25-tokens": 1, "free": 1}
    today = dt.datetime.now(dt.UTC).date().isoformat()
    by_day = client.get("/admin/usage?by=day", headers=AS_ADMIN).json()["groups"]
    assert [(g["group"], g["calls"]) for g in by_day] == [(today, 5)]

    for key_filter in (str(a["id"]), a["prefix"]):
        only_a = client.get(f"/admin/usage?key={key_filter}&by=model", headers=AS_ADMIN).json()
        assert only_a["key"]["id"] == a["id"] and only_a["total"]["calls"] == 3
        assert "key" not in only_a["key"]  # the plaintext is never shown again
    assert client.get("/admin/usage?model=bm25-tokens", headers=AS_ADMIN).json()["total"]["calls"] == 1
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    future = client.get(f"/admin/usage?since={tomorrow}", headers=AS_ADMIN).json()
    assert future["total"]["calls"] == 0 and future["since"] == f"{tomorrow}T00:00:00Z"
    assert client.get(f"/admin/usage?until={tomorrow}", headers=AS_ADMIN).json()["total"]["calls"] == 5
    assert client.get("/admin/usage?by=week", headers=AS_ADMIN).status_code == 422
    assert client.get("/admin/usage?since=yesterday", headers=AS_ADMIN).status_code == 422
    # Relative times, as the CLI takes them: every call of the test was in the last hour, none in the future.
    assert client.get("/admin/usage?since=1h", headers=AS_ADMIN).json()["total"]["calls"] == 5
    assert client.get("/admin/usage?since=30m&until=0m", headers=AS_ADMIN).json()["total"]["calls"] == 5
    assert client.get("/admin/usage?until=7d", headers=AS_ADMIN).json()["total"]["calls"] == 0

    grouped = client.get("/admin/usage?by=model&format=csv", headers=AS_ADMIN)
    assert grouped.status_code == 200 and grouped.headers["content-type"].startswith("text/csv")
    assert "attachment" in grouped.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(grouped.text)))
    assert grouped.text.splitlines()[0].split(",")[:3] == ["model", "calls", "errors"]
    assert {row["model"]: int(row["calls"]) for row in rows} == by_model

    per_call = client.get("/admin/usage?format=csv", headers=AS_ADMIN)
    calls = list(csv.DictReader(io.StringIO(per_call.text)))
    sent = [r.headers["x-request-id"] for *_, r in answers] + [static.headers["x-request-id"]]
    assert [row["request_id"] for row in calls] == sent
    assert sum(Decimal(row["cost"]) for row in calls) == Decimal(report["total"]["cost"])
    assert [int(row["total_tokens"]) for row in calls][:4] == [
        r.json()["usage"]["total_tokens"] for *_, r in answers
    ]
    empty = client.get(f"/admin/usage?format=csv&since={tomorrow}", headers=AS_ADMIN).text
    assert empty.splitlines() == [per_call.text.splitlines()[0]]  # the header row alone


def test_a_client_key_reads_its_own_usage(client: TestClient) -> None:
    mine = create(client, name="mine", budget="1", rpm=50, models=["bm25", "free"])
    other = create(client, name="other")
    for key, model in [(mine, "bm25"), (mine, "free"), (mine, "bm25"), (other, "bm25")]:
        assert rerank(client, key["key"], model).status_code == 200
    response = client.get("/v1/usage", headers=bearer(mine["key"]))
    assert response.status_code == 200, response.text
    usage = response.json()
    assert mine["key"] not in response.text and "id" not in usage
    assert {key: usage[key] for key in ("object", "name", "prefix", "state", "models")} == {
        "object": "usage",
        "name": "mine",
        "prefix": mine["prefix"],
        "state": "active",
        "models": ["bm25", "free"],
    }
    assert (usage["budget"], usage["spent"], usage["remaining"], usage["rpm"], usage["tpm"]) == (
        "1",
        "0.06",
        "0.94",
        50,
        None,
    )
    assert [(g["group"], g["calls"], g["cost"]) for g in usage["by_model"]] == [
        ("bm25", 2, "0.06"),
        ("free", 1, "0"),
    ]
    assert usage["total"]["calls"] == 3
    since = dt.datetime.fromisoformat(usage["since"])
    assert abs(since - (dt.datetime.now(dt.UTC) - dt.timedelta(days=30))) < dt.timedelta(minutes=1)
    assert usage["until"] is None
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    later = client.get(f"/v1/usage?since={tomorrow}", headers=bearer(mine["key"])).json()
    assert later["total"]["calls"] == 0 and later["by_model"] == [] and later["spent"] == "0.06"
    assert client.get("/v1/usage?until=2000-01-01", headers=bearer(mine["key"])).json()["total"]["calls"] == 0


def test_only_managed_keys_have_usage_to_read(
    client: TestClient, open_client: Callable[..., TestClient]
) -> None:
    refused = client.get("/v1/usage", headers=AS_STATIC)
    assert refused.status_code == 403 and "static key" in refused.json()["error"]["message"]
    assert client.get("/v1/usage").status_code == 401
    assert client.get("/v1/usage", headers=bearer("rk-unknownunknownunknown")).status_code == 401
    open_server = open_client(admin_keys=[], api_keys=[])  # no keys at all: every client is anonymous
    anonymous = open_server.get("/v1/usage")
    assert anonymous.status_code == 403 and "without a key" in anonymous.json()["error"]["message"]


# -- the OpenAPI document ----------------------------------------------------------------------------


def test_the_management_routes_are_tagged_apart_and_match_their_schemas(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    tags = {
        (path, method): operation.get("tags", [])
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    admin = {key for key, value in tags.items() if "admin" in value}
    assert admin == {
        ("/admin/keys", "post"),
        ("/admin/keys", "get"),
        ("/admin/keys/{key_id}", "get"),
        ("/admin/keys/{key_id}", "patch"),
        ("/admin/keys/{key_id}", "delete"),
        ("/admin/keys/{key_id}/holds", "get"),
        ("/admin/keys/{key_id}/holds/release", "post"),
        ("/admin/models", "get"),
        ("/admin/reload", "post"),
        ("/admin/usage", "get"),
    }
    assert all(value == ["admin"] for key, value in tags.items() if key in admin)
    assert tags[("/v1/usage", "get")] == ["usage"]
    assert all(not any(tag.startswith("rerank") for tag in tags[key]) for key in admin)

    def check(path: str, method: str, status: int, body: Any) -> None:
        operation = document["paths"][path][method]
        schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
        jsonschema.Draft202012Validator({**schema, "components": document["components"]}).validate(body)

    created = create(client, budget="2.5", models=["bm25"])
    check("/admin/keys", "post", 201, created)
    rerank(client, created["key"])
    check("/admin/keys", "get", 200, client.get("/admin/keys", headers=AS_ADMIN).json())
    check("/admin/keys/{key_id}", "get", 200, client.get("/admin/keys/1", headers=AS_ADMIN).json())
    check(
        "/admin/keys/{key_id}/holds", "get", 200, client.get("/admin/keys/1/holds", headers=AS_ADMIN).json()
    )
    released = client.post("/admin/keys/1/holds/release", headers=AS_ADMIN, json={})
    check("/admin/keys/{key_id}/holds/release", "post", 200, released.json())
    check("/admin/usage", "get", 200, client.get("/admin/usage?by=day&key=1", headers=AS_ADMIN).json())
    check("/v1/usage", "get", 200, client.get("/v1/usage", headers=bearer(created["key"])).json())
    check("/admin/keys/{key_id}", "get", 404, client.get("/admin/keys/9", headers=AS_ADMIN).json())
    check("/admin/keys", "get", 401, client.get("/admin/keys", headers=bearer(created["key"])).json())


# -- no plaintext at rest or in logs -----------------------------------------------------------------


def database_bytes(path: Path) -> bytes:
    """The SQLite file and its WAL and shared-memory files, raw."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file())


def test_no_plaintext_key_in_the_database_files(client: TestClient, tmp_path: Path) -> None:
    database = tmp_path / "rerankd.db"
    created = [create(client, name=f"k{i}", budget="5") for i in range(3)]
    for key in created:
        assert rerank(client, key["key"]).status_code == 200
    client.patch(f"/admin/keys/{created[0]['id']}", json={"disabled": True}, headers=AS_ADMIN)
    client.delete(f"/admin/keys/{created[1]['id']}", headers=AS_ADMIN)
    raw = database_bytes(database)
    assert len(raw) > 0 and (tmp_path / "rerankd.db-wal").exists()
    assert created[0]["prefix"].encode() in raw  # the prefix is kept (it names the key), and only it
    for key in created:
        secret = key["key"][len(key["prefix"]) :]
        assert key["key"].encode() not in raw and secret.encode() not in raw
        assert key["key"].encode("utf-16-le") not in raw


def test_the_admin_api_against_a_real_server(start_server: Callable[..., Server], tmp_path: Path) -> None:
    database = tmp_path / "served.db"
    config = {**CONFIG, "log_level": "debug", "database_url": f"sqlite:///{database}"}
    server = start_server(config, env={"RERANKD_DATABASE_URL": f"sqlite:///{database}"})
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            created = http.post("/admin/keys", json={"name": "served", "budget": "0.1"}, headers=AS_ADMIN)
            assert created.status_code == 201, created.text
            plaintext, key_id = created.json()["key"], created.json()["id"]
            body = {"model": "bm25", "query": QUERY, "documents": DOCUMENTS}
            for _ in range(2):
                assert http.post("/v1/rerank", json=body, headers=bearer(plaintext)).status_code == 200
            assert http.get("/admin/keys", headers=bearer(plaintext)).status_code == 401
            assert http.post("/v1/rerank", json=body, headers=AS_ADMIN).status_code == 401
            shown = http.get(f"/admin/keys/{key_id}", headers=AS_ADMIN).json()
            assert (shown["spent"], shown["remaining"], shown["usage"]["total"]["calls"]) == (
                "0.06",
                "0.04",
                2,
            )
            assert http.get("/v1/usage", headers=bearer(plaintext)).json()["spent"] == "0.06"
            patched = http.patch(f"/admin/keys/{key_id}", json={"rpm": 5}, headers=AS_ADMIN).json()
            assert patched["rpm"] == 5
            assert http.delete(f"/admin/keys/{key_id}", headers=AS_ADMIN).json()["state"] == "revoked"
            refused = http.post("/v1/rerank", json=body, headers=bearer(plaintext))
            assert refused.status_code == 401 and "revoked" in refused.text
            exported = http.get("/admin/usage?format=csv", headers=AS_ADMIN)
            assert (
                exported.status_code == 200 and len(exported.text.splitlines()) == 1 + 2
            )  # 401s never reach it
        raw = database_bytes(database)
    finally:
        server.stop()
    log = server.log()
    assert "/admin/keys" in log  # the log is there, and has the admin calls...
    secret = plaintext[len(shown["prefix"]) :]
    for text in (plaintext, secret):
        assert text not in log, "the plaintext key is in the server log"  # ...but not the key
        assert text.encode() not in raw and text.encode() not in database_bytes(database)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_csv_export_streams_every_row_with_formulas_neutralised(
    database: str, open_client: Callable[..., TestClient], request: pytest.FixtureRequest
) -> None:
    from rerankd.gateway.money import to_nanos
    from rerankd.gateway.store import ledger

    changes = (
        {"database_url": str(request.getfixturevalue("postgres_url"))} if database == "postgresql" else {}
    )
    client = open_client(**changes)
    accounts = client.app.state.service.accounts  # type: ignore[attr-defined]
    accounts.page_size = 7  # 25 rows: four pages
    formulas = ['=HYPERLINK("http://evil","x")', "+SUM(1)", "-1+2", "@cmd", "\t=1", "\r=1"]
    start = dt.datetime(2026, 3, 1, 12)
    for n in range(25):
        ledger.record(
            accounts.store.engine,
            ledger.Call(
                at=start + dt.timedelta(seconds=(n * 7) % 10),
                request_id=f"req-{n:02d}",
                key_id=None,
                key_label=formulas[n % 6],
                route="/v1/rerank",
                dialect="seed",
                model=formulas[(n + 1) % 6],
                served_by=None,
                status=200,
                **dict.fromkeys(("documents", "query_tokens", "documents_tokens", "total_tokens"), 1),
                search_units=1,
                cost_nanos=to_nanos("0.01"),
                latency_ms=1.0,
                attempts=1,
            ),
        )
    response = client.get("/admin/usage?format=csv", headers=AS_ADMIN)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    order = sorted(range(25), key=lambda n: ((n * 7) % 10, n))
    assert [row["request_id"] for row in rows] == [f"req-{n:02d}" for n in order]
    assert [row["key_label"] for row in rows] == ["'" + formulas[n % 6] for n in order]
    assert [row["model"] for row in rows] == ["'" + formulas[(n + 1) % 6] for n in order]
    assert {row["served_by"] for row in rows} == {""} and {row["cost"] for row in rows} == {"0.01"}
    grouped = client.get("/admin/usage?format=csv&by=key", headers=AS_ADMIN)
    groups = list(csv.DictReader(io.StringIO(grouped.text, newline="")))
    assert sorted(row["key"] for row in groups) == sorted("'" + formula for formula in formulas)
