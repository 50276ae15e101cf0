"""The `rerankd` command line: help texts, `rerankd models`, and config errors that stop `serve`."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rerankd_support.harness import Server, free_port


def rerankd(
    *args: str, cwd: Path | None = None, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("RERANKD_")}
    clean.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "rerankd", *args],
        capture_output=True,
        text=True,
        env=clean,
        cwd=cwd,
        timeout=timeout,
    )


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


# -- help ----------------------------------------------------------------------------------------


def test_top_level_help_lists_the_commands() -> None:
    result = rerankd("--help")
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout
    assert "models" in result.stdout
    assert "--config" in result.stdout


def test_top_level_help_mentions_the_environment_variables() -> None:
    result = rerankd("--help")
    assert result.returncode == 0, result.stderr
    assert "RERANKD_" in result.stdout


def test_serve_help_mentions_the_environment_variables() -> None:
    result = rerankd("serve", "--help")
    assert result.returncode == 0, result.stderr
    for name in ("RERANKD_CONFIG", "RERANKD_HOST", "RERANKD_PORT", "RERANKD_LOG_LEVEL"):
        assert name in result.stdout
    for flag in ("--config", "--host", "--port", "--log-level"):
        assert flag in result.stdout


def test_version() -> None:
    result = rerankd("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("rerankd ")


# -- rerankd models ------------------------------------------------------------------------------


def test_models_lists_which_models_can_be_loaded(tmp_path: Path, tiny_bert: Path) -> None:
    missing = tmp_path / "no-such-model"
    config = write_config(
        tmp_path / "config.yaml",
        {
            "models": [
                {"name": "bm25", "kind": "bm25"},
                {
                    "name": "tiny",
                    "kind": "cross-encoder",
                    "source": str(tiny_bert),
                    "aliases": ["tiny-alias"],
                },
                {"name": "absent", "kind": "cross-encoder", "source": str(missing)},
            ]
        },
    )
    result = rerankd("models", "--config", str(config))
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0].rstrip(","): line for line in result.stdout.splitlines()[1:] if line.strip()}
    assert set(rows) == {"bm25", "tiny", "absent"}
    assert rows["bm25"].split()[2] == "yes"
    assert "tiny-alias" in rows["tiny"]
    assert " yes " in rows["tiny"] and str(tiny_bert) in rows["tiny"]
    assert " no " in rows["absent"] and str(missing) in rows["absent"]
    header = result.stdout.splitlines()[0]
    assert "LOADABLE" in header


def test_models_lists_upstreams_with_provider_url_and_key_variable(tmp_path: Path) -> None:
    upstream = {"kind": "upstream", "provider": "cohere", "base_url": "https://user:pw@api.example.com/x"}
    config = write_config(
        tmp_path / "config.yaml",
        {
            "models": [
                {"name": "keyed", **upstream, "api_key_env": "RERANKD_TEST_SET_KEY"},
                {"name": "unkeyed", **upstream, "api_key_env": "RERANKD_TEST_UNSET_KEY"},
                {"name": "open", **upstream, "provider": "rerankd"},
            ]
        },
    )
    env = {"RERANKD_TEST_SET_KEY": "sk-secret-value"}
    for args in (("models",), ("models", "--load")):
        result = rerankd(*args, "--config", str(config), env=env)
        assert "Traceback" not in result.stderr, result.stderr
        rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}
        assert rows["keyed"].split()[1:3] == ["upstream", "yes"]
        assert "cohere API at https://api.example.com/x" in rows["keyed"]
        assert "$RERANKD_TEST_SET_KEY (set)" in rows["keyed"]
        assert (
            rows["unkeyed"].split()[2] == "no"
            and "$RERANKD_TEST_UNSET_KEY, which is NOT set" in rows["unkeyed"]
        )
        assert "rerankd API at https://api.example.com/x, no key" in rows["open"]
        assert "sk-secret-value" not in result.stdout and "pw@" not in result.stdout
    assert rerankd("models", "--config", str(config), env=env).returncode == 0
    assert rerankd("models", "--load", "--config", str(config), env=env).returncode == 1  # a key is missing


# -- config errors stop `serve` with exit status 2 ----------------------------------------------

BAD_CONFIGS: list[tuple[str, str, tuple[str, ...]]] = [
    ("unknown-top-level-key", "max_docs: 5\nmodels: []\n", ("max_docs",)),
    (
        "unknown-model-key",
        "models:\n  - {name: bm25, kind: bm25, sourse: x}\n",
        ("sourse",),
    ),
    ("bad-yaml", "models: [\n  - name: bm25\n  kind: : bm25\n", ("YAML",)),
    ("not-a-mapping", "- bm25\n- minilm\n", ("mapping",)),
    (
        "missing-source",
        "models:\n  - {name: reranker, kind: cross-encoder}\n",
        ("reranker", "source"),
    ),
    ("unknown-kind", "models:\n  - {name: x, kind: colbert, source: /tmp}\n", ("kind",)),
    (
        "duplicate-name",
        "models:\n  - {name: bm25, kind: bm25}\n  - {name: other, kind: bm25, aliases: [bm25]}\n",
        ("bm25", "twice"),
    ),
]


@pytest.mark.parametrize(
    ("text", "words"), [case[1:] for case in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_invalid_config_stops_serve_with_exit_2(tmp_path: Path, text: str, words: tuple[str, ...]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text, encoding="utf-8")
    result = rerankd("serve", "--config", str(config), "--port", str(free_port()), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("rerankd: ")
    assert str(config) in result.stderr
    for word in words:
        assert word in result.stderr


def test_missing_config_file_stops_serve_with_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    result = rerankd("serve", "--config", str(missing), "--port", str(free_port()), timeout=60)
    assert result.returncode == 2
    assert str(missing) in result.stderr


def test_invalid_config_stops_models_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("modles: []\n", encoding="utf-8")
    result = rerankd("models", "--config", str(config))
    assert result.returncode == 2
    assert "modles" in result.stderr


# -- rerankd keys / usage / db: the management plane on the database itself --------------------------

ADMIN = "adm-cli-1"
PRICED_MODELS = [
    {"name": "bm25", "kind": "bm25", "aliases": ["okapi"], "price": {"per_request": "0.03"}},
    {"name": "bm25-tokens", "kind": "bm25", "price": {"per_million_tokens": "1000"}},
]
QUERY = "What is the capital of the United States?"
DOCUMENTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "Washington, D.C. is the capital of the United States. It is a federal district.",
]


@pytest.fixture
def gateway_config(tmp_path: Path) -> Path:
    """A config with priced models whose database is the test's own (the file conftest points
    RERANKD_DATABASE_URL at, so that in-process apps and the CLI share it)."""
    config = {
        "admin_keys": [ADMIN],
        "database_url": f"sqlite:///{tmp_path / 'rerankd.db'}",
        "models": PRICED_MODELS,
    }
    return write_config(tmp_path / "gateway.yaml", config)


@pytest.fixture
def manage(capsys: pytest.CaptureFixture[str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a management command in this process (`main(argv)`, the code `rerankd` runs; a second each
    saved on start-up), with its exit status and output as a subprocess's."""

    def run(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
        from rerankd.commands.cli import main

        capsys.readouterr()
        argv = [*args, "--config", str(config)]
        status = main(argv)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(argv, status, out, err)

    return run


Manage = Callable[..., subprocess.CompletedProcess[str]]


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_management_help_mentions_the_environment_variables() -> None:
    top = rerankd("--help")
    for word in ("keys", "usage", "db", "RERANKD_DATABASE_URL", "RERANKD_ADMIN_KEYS"):
        assert word in top.stdout
    for command in (("keys", "create"), ("keys", "list"), ("keys", "update"), ("usage",), ("db", "upgrade")):
        result = rerankd(*command, "--help")
        assert result.returncode == 0, result.stderr
        for word in ("--config", "RERANKD_CONFIG", "--database-url", "RERANKD_DATABASE_URL", "--json"):
            assert word in result.stdout, (command, word)
    assert "--expires" in rerankd("keys", "create", "--help").stdout
    assert "--by" in rerankd("usage", "--help").stdout


def test_key_lifecycle_through_the_cli(gateway_config: Path, manage: Manage) -> None:
    from fastapi.testclient import TestClient

    from rerankd.api.app import create_app
    from rerankd.config import load_settings

    created = rerankd(  # the real command, once; the rest in-process (the same `main`)
        "keys", "create", "--name", "ci", "--models", "bm25", "--budget", "12.5", "--rpm", "60",
        "--expires", "2099-01-01", "--config", str(gateway_config),
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    plaintext = created.stdout.strip()
    assert plaintext.startswith("rk-") and "\n" not in plaintext  # stdout is the key alone, for scripts
    assert "shown this once" in created.stderr
    second = as_json(
        manage("keys", "create", "--name", "batch", "--budget", "0.1", "--json", config=gateway_config)
    )
    assert second["key"].startswith(second["prefix"])
    assert (second["name"], second["budget"], second["remaining"], second["models"]) == (
        "batch",
        "0.1",
        "0.1",
        None,
    )

    listed = manage("keys", "list", config=gateway_config)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "PREFIX", "STATE"] and "REMAINING" in header
    assert [row.split()[:4] for row in rows] == [
        ["1", "ci", plaintext[:11], "active"],
        ["2", "batch", second["prefix"], "active"],
    ]
    assert "2099-01-01" in rows[0] and "12.5" in rows[0]
    listed_json = as_json(manage("keys", "list", "--json", config=gateway_config))
    assert [key["id"] for key in listed_json["data"]] == [1, 2]
    for output in (listed.stdout, json.dumps(listed_json)):
        assert plaintext not in output and second["key"] not in output and "hash" not in output

    with TestClient(create_app(load_settings(gateway_config))) as client:
        body = {"model": "bm25", "query": QUERY, "documents": DOCUMENTS}
        assert (
            client.post("/v1/rerank", json=body, headers={"Authorization": f"Bearer {plaintext}"}).status_code
            == 200
        )

        shown = manage("keys", "show", plaintext[:11], config=gateway_config)
        assert shown.returncode == 0, shown.stderr
        assert "spent:" in shown.stdout and "0.03" in shown.stdout and "12.47" in shown.stdout
        assert any(line.split()[:2] == ["bm25", "1"] for line in shown.stdout.splitlines())
        detail = as_json(manage("keys", "show", "1", "--json", config=gateway_config))
        assert (detail["spent"], detail["remaining"], detail["usage"]["total"]["calls"]) == (
            "0.03",
            "12.47",
            1,
        )
        assert detail["usage"]["by_model"][0]["group"] == "bm25"

        updated = as_json(
            manage(
                "keys",
                "update",
                "1",
                "--budget",
                "0.3",
                "--rpm",
                "none",
                "--models",
                "*",
                "--name",
                "ci-2",
                "--json",
                config=gateway_config,
            )
        )
        assert (updated["name"], updated["budget"], updated["rpm"], updated["models"]) == (
            "ci-2",
            "0.3",
            None,
            None,
        )
        assert updated["expires_at"] == "2099-01-01T00:00:00Z"  # untouched
        disabled = manage("keys", "update", "1", "--disable", config=gateway_config)
        assert disabled.returncode == 0 and "disabled" in disabled.stdout
        refused = client.post("/v1/rerank", json=body, headers={"Authorization": f"Bearer {plaintext}"})
        assert refused.status_code == 401 and "disabled" in refused.text  # seen by the running app at once
        assert (
            as_json(manage("keys", "update", "1", "--enable", "--json", config=gateway_config))["state"]
            == "active"
        )

        revoked = as_json(manage("keys", "revoke", "1", "--json", config=gateway_config))
        assert revoked["state"] == "revoked" and revoked["revoked_at"]
        refused = client.post("/v1/rerank", json=body, headers={"Authorization": f"Bearer {plaintext}"})
        assert refused.status_code == 401 and "revoked" in refused.text
    states = [row.split()[3] for row in manage("keys", "list", config=gateway_config).stdout.splitlines()[1:]]
    assert states == ["revoked", "active"]

    for args, words in [
        (("keys", "show", "99"), "no key 99"),
        (("keys", "revoke", "rk-AAAAAAAA"), "no key rk-AAAAAAAA"),
        (("keys", "update", "2"), "nothing to change"),
        (("keys", "update", "2", "--budget", "lots"), "--budget"),
        (("keys", "update", "2", "--budget", "-1"), ">= 0"),
        (("keys", "update", "2", "--rpm", "0"), "rpm"),
        (("keys", "update", "2", "--expires", "someday"), "--expires"),
        (("keys", "create", "--name", "x", "--models", "no-such-model"), "no-such-model"),
    ]:
        result = manage(*args, config=gateway_config)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stderr.startswith("rerankd: ") and words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_values_beyond_the_columns_exit_2_saying_why(
    gateway_config: Path, manage: Manage, database: str, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{gateway_config.parent / 'rerankd.db'}"
    if database == "postgresql":
        url = request.getfixturevalue("postgres_url")
    as_json(manage("keys", "create", "--name", "a", "--json", "--database-url", url, config=gateway_config))
    for args, words in [
        (("keys", "create", "--name", "x", "--rpm", str(2**31)), "from 1 to 2147483647"),
        (("keys", "create", "--name", "x", "--tpm", "100000000000000000000"), "from 1 to 2147483647"),
        (("keys", "create", "--name", "x", "--budget", "1e30"), "too large"),
        (("keys", "update", "1", "--budget", "1E+999999999"), "too large"),
        (("keys", "update", "1", "--name", "a\x01b"), "control characters"),
        (("keys", "show", str(2**64)), "from 1 to 2147483647"),
        (("keys", "revoke", "9" * 5000), "from 1 to 2147483647"),
        (("usage", "--model", "m" * 201), "at most 200"),
    ]:
        result = manage(*args, "--database-url", url, config=gateway_config)
        assert result.returncode == 2, (args[:3], result.stdout, result.stderr)
        assert result.stderr.startswith("rerankd: ") and words in result.stderr, (args[:3], result.stderr)
        assert "Traceback" not in result.stderr and "database error" not in result.stderr


def test_db_upgrade_on_a_fresh_file(tmp_path: Path) -> None:
    database = tmp_path / "new" / "fresh.db"
    url = f"sqlite:///{database}"
    result = rerankd("db", "upgrade", "--database-url", url)
    assert result.returncode == 0, result.stderr
    assert "newest schema" in result.stdout and str(database) in result.stdout
    assert database.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"api_keys", "usage", "rate_windows", "alembic_version"} <= tables
    again = as_json(rerankd("db", "upgrade", "--json", env={"RERANKD_DATABASE_URL": url}))
    assert again["database"] == url and again["revision"]
    assert rerankd("keys", "list", "--json", "--database-url", url).stdout.strip().startswith("{")


def test_management_commands_need_a_database(tmp_path: Path) -> None:
    for args in (("keys", "list"), ("usage",), ("db", "upgrade")):
        result = rerankd(*args, "--database-url", "none")
        assert result.returncode == 2 and "no database" in result.stderr and "--database-url" in result.stderr
    unreachable = rerankd("keys", "list", "--database-url", "postgresql+psycopg://nobody:pw@127.0.0.1:1/none")
    assert unreachable.returncode == 2 and unreachable.stderr.startswith("rerankd: database error")
    assert "pw" not in unreachable.stderr.replace("psycopg", "")


def test_usage_grouped_by_key_model_and_day_after_calls(gateway_config: Path, manage: Manage) -> None:
    from fastapi.testclient import TestClient

    from rerankd.api.app import create_app
    from rerankd.config import load_settings

    team_a = as_json(rerankd("keys", "create", "--name", "team-a", "--json", "--config", str(gateway_config)))
    team_b = as_json(manage("keys", "create", "--name", "team-b", "--json", config=gateway_config))
    told: list[tuple[str, str, int, str]] = []  # key prefix, model, total tokens, request id
    with TestClient(create_app(load_settings(gateway_config))) as client:
        for key, model in [(team_a, "bm25"), (team_a, "bm25-tokens"), (team_b, "bm25"), (team_a, "bm25")]:
            body = {"model": model, "query": QUERY, "documents": DOCUMENTS}
            response = client.post("/v1/rerank", json=body, headers={"Authorization": f"Bearer {key['key']}"})
            assert response.status_code == 200, response.text
            told.append(
                (
                    key["prefix"],
                    model,
                    response.json()["usage"]["total_tokens"],
                    response.headers["x-request-id"],
                )
            )
    tokens = sum(total for _, _, total, _ in told)
    token_cost = Decimal(told[1][2]) * 1000 / 1_000_000

    everything = as_json(manage("usage", "--json", config=gateway_config))
    assert everything["by"] is None and everything["groups"] == []
    assert (everything["total"]["calls"], everything["total"]["total_tokens"]) == (4, tokens)
    assert Decimal(everything["total"]["cost"]) == Decimal("0.09") + token_cost

    by_key = as_json(manage("usage", "--by", "key", "--json", config=gateway_config))
    assert {g["group"]: g["calls"] for g in by_key["groups"]} == {
        f"team-a ({team_a['prefix']})": 3,
        f"team-b ({team_b['prefix']})": 1,
    }
    by_model = as_json(manage("usage", "--by", "model", "--json", config=gateway_config))
    assert {g["group"]: (g["calls"], g["total_tokens"]) for g in by_model["groups"]} == {
        "bm25": (3, sum(t for _, m, t, _ in told if m == "bm25")),
        "bm25-tokens": (1, told[1][2]),
    }
    today = dt.datetime.now(dt.UTC).date().isoformat()
    by_day = as_json(manage("usage", "--by", "day", "--json", config=gateway_config))
    assert [(g["group"], g["calls"], g["cost"]) for g in by_day["groups"]] == [
        (today, 4, everything["total"]["cost"])
    ]

    only_a = as_json(
        manage("usage", "--key", team_a["prefix"], "--by", "model", "--json", config=gateway_config)
    )
    assert only_a["key"]["name"] == "team-a" and only_a["total"]["calls"] == 3 and "key" not in only_a["key"]
    assert (
        as_json(manage("usage", "--key", str(team_b["id"]), "--json", config=gateway_config))["total"][
            "calls"
        ]
        == 1
    )
    assert (
        as_json(manage("usage", "--model", "bm25-tokens", "--json", config=gateway_config))["total"]["calls"]
        == 1
    )
    assert as_json(manage("usage", "--since", "1d", "--json", config=gateway_config))["total"]["calls"] == 4
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    assert (
        as_json(manage("usage", "--since", tomorrow, "--json", config=gateway_config))["total"]["calls"] == 0
    )
    assert (
        as_json(manage("usage", "--until", tomorrow, "--json", config=gateway_config))["total"]["calls"] == 4
    )

    table = manage("usage", "--by", "model", config=gateway_config)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["MODEL", "CALLS", "ERRORS"] and header.split()[-1] == "COST"
    assert [row.split()[:2] for row in rows] == [["bm25", "3"], ["bm25-tokens", "1"], ["TOTAL", "4"]]
    assert rows[-1].split()[-1] == everything["total"]["cost"]

    grouped_csv = manage("usage", "--by", "day", "--csv", config=gateway_config)
    assert grouped_csv.stdout.splitlines()[0].split(",")[:2] == ["day", "calls"]
    calls_csv = list(csv.DictReader(io.StringIO(manage("usage", "--csv", config=gateway_config).stdout)))
    assert [row["request_id"] for row in calls_csv] == [request_id for *_, request_id in told]
    assert sum(Decimal(row["cost"]) for row in calls_csv) == Decimal(everything["total"]["cost"])

    bad = manage("usage", "--since", "last tuesday", config=gateway_config)
    assert bad.returncode == 2 and bad.stderr.startswith("rerankd: --since")
    unknown = manage("usage", "--key", "rk-AAAAAAAA", config=gateway_config)
    assert unknown.returncode == 2 and "no key rk-AAAAAAAA" in unknown.stderr


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_usage_csv_streams_every_row_with_formulas_neutralised(
    database: str,
    tmp_path: Path,
    manage: Callable[..., subprocess.CompletedProcess[str]],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    from rerankd.gateway import accounts as accounts_module
    from rerankd.gateway.accounts import open_accounts
    from rerankd.gateway.exports import CALL_COLUMNS
    from rerankd.gateway.money import to_nanos
    from rerankd.gateway.store import ledger

    url = f"sqlite:///{tmp_path / 'export.db'}"
    if database == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))
    config = write_config(tmp_path / "export.yaml", {"database_url": url, "models": PRICED_MODELS})
    monkeypatch.setattr(accounts_module, "EXPORT_PAGE_SIZE", 7)  # 25 rows: four pages
    monkeypatch.setenv("RERANKD_DATABASE_URL", url)  # which the config's database_url would yield to
    formulas = ['=HYPERLINK("http://evil","x")', "+SUM(1)", "-1+2", "@cmd", "\t=1", "\r=1"]
    start = dt.datetime(2026, 3, 1, 12)
    with open_accounts(url) as accounts:
        for n in range(25):
            ledger.record(
                accounts.store.engine,
                ledger.Call(
                    at=start + dt.timedelta(seconds=(n * 7) % 10),
                    request_id=formulas[n % 6] + f" {n:02d}",
                    key_id=None,
                    key_label="static:0123abcd",
                    route="/v1/rerank",
                    dialect="seed",
                    model=formulas[(n + 1) % 6],
                    served_by="bm25",
                    status=200,
                    **dict.fromkeys(("documents", "query_tokens", "documents_tokens", "total_tokens"), 1),
                    search_units=1,
                    cost_nanos=to_nanos("0.02"),
                    latency_ms=1.0,
                    attempts=1,
                ),
            )
    result = manage("usage", "--csv", config=config)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert list(rows[0]) == list(CALL_COLUMNS)
    order = sorted(range(25), key=lambda n: ((n * 7) % 10, n))
    assert [row["request_id"] for row in rows] == ["'" + formulas[n % 6] + f" {n:02d}" for n in order]
    assert [row["model"] for row in rows] == ["'" + formulas[(n + 1) % 6] for n in order]
    grouped = manage("usage", "--by", "model", "--csv", config=config)
    groups = list(csv.DictReader(io.StringIO(grouped.stdout, newline="")))
    assert sorted(row["model"] for row in groups) == ["bm25"]  # grouped by the model that answered


def test_third_party_loggers_follow_the_configured_level(start_server: Callable[..., Server]) -> None:
    """bm25s sets its own logger to DEBUG when imported and logs every index it builds; at
    ``--log-level warning`` none of that reaches the log."""
    server = start_server({"models": [{"name": "bm25", "kind": "bm25"}]}, log_level="warning")
    body = {"model": "bm25", "query": "boundary layer", "documents": ["the boundary layer", "a wing"]}
    for _ in range(3):
        assert httpx.post(server.url + "/v1/rerank", json=body, timeout=30).status_code == 200
    log = server.log_path.read_text(encoding="utf-8")
    assert "Building index" not in log and " DEBUG " not in log and " INFO " not in log


def test_help_lists_every_environment_variable_the_server_reads() -> None:
    from rerankd.config import Settings

    out = subprocess.run(
        [sys.executable, "-m", "rerankd", "--help"], capture_output=True, text=True, check=True
    ).stdout
    flat = " ".join(out.split())
    missing = [
        name for name in Settings.model_fields if name != "models" and f"RERANKD_{name.upper()}" not in flat
    ]
    assert missing == []
    assert "HF_HUB_OFFLINE" in flat and "HF_HOME" in flat


# -- where the database is ---------------------------------------------------------------------


def test_read_commands_never_create_a_database_and_say_where_they_looked(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for command in (("keys", "list"), ("keys", "show", "1"), ("usage",), ("usage", "--csv")):
        result = rerankd(*command, cwd=elsewhere)
        assert result.returncode == 2, (command, result.stderr)
        assert f"no database at {elsewhere / 'rerankd.db'}" in result.stderr
        assert "rerankd db status" in result.stderr
    assert list(elsewhere.iterdir()) == []  # nothing created


def test_db_status_names_the_database_and_its_source_and_creates_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path / "server.yaml", {"database_url": f"sqlite:///{tmp_path / 'server.db'}"})
    status = rerankd("db", "status", "--config", str(config), "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    before = json.loads(status.stdout)
    assert before["file"] == str(tmp_path / "server.db") and before["exists"] is False
    assert str(config) in before["named_by"]
    assert not (tmp_path / "server.db").exists()
    assert rerankd("keys", "create", "--name", "a", "--config", str(config)).returncode == 0
    after = json.loads(rerankd("db", "status", "--config", str(config), "--json").stdout)
    assert (after["exists"], after["keys"], after["revision"]) == (True, 1, "0002")
    # The environment variable outranks the config, for serve and every command alike.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    named = json.loads(
        rerankd("db", "status", "--config", str(config), "--json", env={"RERANKD_DATABASE_URL": other}).stdout
    )
    assert named["named_by"] == "RERANKD_DATABASE_URL" and named["file"] == str(tmp_path / "other.db")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("keys", "create", "--name", "late", "--expires", "2020-01-01"), "is in the past"),
        (
            ("keys", "create", "--name", "m", "--database-url", "mysql://u:p@host/db"),
            "mysql://... is not supported",
        ),
    ],
)
def test_keys_that_could_never_work_and_unsupported_databases_exit_2(
    tmp_path: Path, args: tuple[str, ...], words: str
) -> None:
    result = rerankd(*args, cwd=tmp_path)
    assert result.returncode == 2 and words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_revoked_key_cannot_be_enabled_again(tmp_path: Path) -> None:
    assert rerankd("keys", "create", "--name", "gone", cwd=tmp_path).returncode == 0
    assert rerankd("keys", "revoke", "1", cwd=tmp_path).returncode == 0
    result = rerankd("keys", "update", "1", "--enable", cwd=tmp_path)
    assert result.returncode == 2 and "was revoked" in result.stderr and "cannot be enabled" in result.stderr
