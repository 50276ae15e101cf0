"""The `rerankd` command line: help texts, `rerankd models`, and config errors that stop `serve`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from rerankd_support.harness import free_port


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
