"""Imports go one way: api -> service -> (scheduler -> batching, backends) -> types, errors, config."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rerankd"

# module prefix -> imports it must never make
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "rerankd.api": ("torch", "transformers", "sentence_transformers", "bm25s", "httpx", "rerankd.backends"),
    "rerankd.service": ("fastapi", "starlette", "torch", "rerankd.api"),
    "rerankd.scheduler": ("fastapi", "starlette", "torch", "rerankd.api", "rerankd.service"),
    "rerankd.batching": ("torch", "fastapi", "rerankd"),
    "rerankd.backends": (
        "fastapi",
        "starlette",
        "uvicorn",
        "rerankd.api",
        "rerankd.service",
        "rerankd.scheduler",
    ),
    "rerankd.upstream": (
        "fastapi",
        "starlette",
        "torch",
        "rerankd.api",
        "rerankd.service",
        "rerankd.scheduler",
    ),
    "rerankd.types": ("rerankd.", "torch", "fastapi"),
    "rerankd.errors": ("rerankd.", "torch", "fastapi"),
    "rerankd.config": ("rerankd.api", "rerankd.service", "rerankd.backends", "rerankd.scheduler", "torch"),
    "rerankd.metrics": ("rerankd.api", "rerankd.service", "rerankd.scheduler", "rerankd.backends", "torch"),
}


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_one_way(path: Path) -> None:
    module = module_name(path)
    for prefix, forbidden in FORBIDDEN.items():
        if module == prefix or module.startswith(prefix + "."):
            for name in imports_of(path):
                for bad in forbidden:
                    clash = name == bad or name.startswith(bad if bad.endswith(".") else bad + ".")
                    assert not (clash or (bad == "rerankd" and name.startswith("rerankd"))), (
                        f"{module} imports {name}, which the layering forbids"
                    )


def test_the_app_imports_no_model_library_until_a_model_loads() -> None:
    import subprocess
    import sys

    heavy = "{'torch', 'transformers', 'bm25s'}"
    code = f"import sys, rerankd.app, rerankd.cli; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
