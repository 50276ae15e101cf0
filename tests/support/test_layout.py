"""Support code stays out of the runtime package: rerankd never imports rerankd_support."""

from __future__ import annotations

import ast
from pathlib import Path

import rerankd

PACKAGE = Path(rerankd.__file__).resolve().parent


def test_rerankd_never_imports_the_support_package() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(name.split(".")[0] == "rerankd_support" for name in names), path


def test_the_generators_left_the_runtime_package() -> None:
    assert not (PACKAGE / "synthetic.py").exists()
