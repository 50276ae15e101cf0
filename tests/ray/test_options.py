"""``rerankd serve --ray`` flags: fixed replicas or autoscaling, checked before Ray is imported."""

from __future__ import annotations

import argparse

import pytest

from rerankd.config import ConfigError
from rerankd.ray.options import ServeOptions, add_ray_serve_options, options_of


def parse(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_ray_serve_options(parser)
    return parser.parse_args(["--ray", *flags])


def test_one_replica_unless_told() -> None:
    options = options_of(parse())
    assert options == ServeOptions(replicas=1)


def test_replicas_or_autoscaling() -> None:
    assert options_of(parse("--replicas", "3", "--num-gpus", "1")).replicas == 3
    scaling = options_of(
        parse("--min-replicas", "0", "--max-replicas", "6", "--target-ongoing-requests", "8")
    )
    assert (scaling.replicas, scaling.min_replicas, scaling.max_replicas) == (None, 0, 6)
    assert scaling.target_ongoing_requests == 8


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--replicas", "0"), "--replicas must be >= 1"),
        (("--min-replicas", "5", "--max-replicas", "2"), "--min-replicas must be >= 0 and <= --max-replicas"),
        (
            (
                "--max-ongoing-requests",
                "0",
            ),
            "--max-ongoing-requests >= 1",
        ),
        (
            (
                "--num-gpus",
                "-1",
            ),
            "--num-cpus and --num-gpus must be >= 0",
        ),
    ],
)
def test_bad_flags_are_refused_with_what_to_give(flags: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        options_of(parse(*flags))


def test_a_free_port_is_refused_before_ray_starts() -> None:
    from rerankd.config import Settings
    from rerankd.ray.serve import run_until_signalled

    with pytest.raises(ConfigError, match="fixed --port"):
        settings = Settings.model_validate({"port": 0, "models": [{"name": "bm25", "kind": "bm25"}]})
        run_until_signalled(settings, ServeOptions())
