"""Imports go one way: api -> service -> models -> (scheduler -> batching, backends) | upstream, and
below them kinds -> (backends.specs, upstream.spec) -> spec -> types, errors. config reads the kinds
table; the API sees models only through the service's read-only views."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rerankd"

MODEL_LIBRARIES = ("torch", "transformers", "sentence_transformers", "bm25s", "tokenizers")

# module prefix -> imports it must never make
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "rerankd.api": (
        *MODEL_LIBRARIES,
        "httpx",
        "rerankd.backends",
        "rerankd.models",
        "rerankd.scheduler",
        "rerankd.upstream",
        "rerankd.kinds",
        "rerankd.gateway.store",  # keys and the ledger: through gateway.accounts
    ),
    # The database is a leaf: it knows nothing of HTTP, models, metering policy or the service.
    "rerankd.gateway.store": (
        "fastapi",
        "starlette",
        *MODEL_LIBRARIES,
        "httpx",
        "rerankd.api",
        "rerankd.service",
        "rerankd.models",
        "rerankd.gateway.metering",
        "rerankd.gateway.accounts",
        "rerankd.config",
        "rerankd.kinds",
        "rerankd.backends",
        "rerankd.upstream",
    ),
    "rerankd.gateway.money": ("rerankd.",),
    # The pages are static files and their routes: they reach the server only over HTTP, as any client does.
    "rerankd.web": (
        *MODEL_LIBRARIES,
        "httpx",
        "rerankd.api",
        "rerankd.service",
        "rerankd.models",
        "rerankd.backends",
        "rerankd.scheduler",
        "rerankd.upstream",
        "rerankd.gateway.store",
        "rerankd.gateway.accounts",
        "rerankd.gateway.metering",
    ),
    # The CSV schema of the usage exports: the admin API and the CLI both write through it.
    "rerankd.gateway.exports": ("fastapi", "starlette", *MODEL_LIBRARIES, "rerankd.api", "rerankd.service"),
    "rerankd.gateway.metering": ("fastapi", "starlette", *MODEL_LIBRARIES, "rerankd.api", "rerankd.service"),
    "rerankd.gateway.accounts": (
        "fastapi",
        "starlette",
        "torch",
        "rerankd.api",
        "rerankd.service",
        "rerankd.models",
    ),
    "rerankd.service": ("fastapi", "starlette", "torch", "rerankd.api"),
    "rerankd.models": ("fastapi", "starlette", "torch", "rerankd.api", "rerankd.service"),
    "rerankd.scheduler": (
        "fastapi",
        "starlette",
        "torch",
        "rerankd.api",
        "rerankd.service",
        "rerankd.models",
    ),
    "rerankd.batching": ("torch", "fastapi", "rerankd"),
    # Below the scheduler: knows the model inputs (backends.base) and the types it reports in.
    "rerankd.cache": (
        "torch",
        "fastapi",
        "rerankd.api",
        "rerankd.service",
        "rerankd.models",
        "rerankd.scheduler",
        "rerankd.metrics",
    ),
    "rerankd.backends": (
        "fastapi",
        "starlette",
        "uvicorn",
        "rerankd.api",
        "rerankd.service",
        "rerankd.models",
        "rerankd.scheduler",
        "rerankd.config",
        "rerankd.kinds",
        "rerankd.upstream",
    ),
    "rerankd.upstream": (
        "fastapi",
        "starlette",
        "torch",
        "transformers",
        "sentence_transformers",
        "bm25s",
        "rerankd.api",
        "rerankd.service",
        "rerankd.models",
        "rerankd.scheduler",
        "rerankd.config",
        "rerankd.kinds",
        "rerankd.backends",
    ),
    "rerankd.kinds": (
        "fastapi",
        *MODEL_LIBRARIES,
        "rerankd.api",
        "rerankd.service",
        "rerankd.models",
        "rerankd.scheduler",
        "rerankd.config",
    ),
    "rerankd.spec": ("fastapi", *MODEL_LIBRARIES, "rerankd.api", "rerankd.backends", "rerankd.upstream"),
    "rerankd.types": ("rerankd.", "torch", "fastapi"),
    "rerankd.errors": ("rerankd.", "torch", "fastapi"),
    # One redaction for every text made of upstream or request data: usable from every layer, so a leaf.
    "rerankd.redaction": ("rerankd.", "torch", "fastapi", "starlette", "httpx", "uvicorn"),
    # The request's deadline: read by the service, the scheduler and upstream calls, so below them all.
    "rerankd.deadline": ("rerankd.", "torch", "fastapi"),
    # HTTP connections: uvicorn's protocol with timeouts and a cap, knowing nothing of the server's parts.
    "rerankd.connections": ("rerankd.", "torch", "fastapi", "starlette"),
    "rerankd.config": (
        "rerankd.api",
        "rerankd.service",
        "rerankd.models",
        "rerankd.backends",
        "rerankd.scheduler",
        "rerankd.upstream",
        "torch",
    ),
    # The Python API and batch reranking run the service without HTTP; Ray only in its own modules.
    "rerankd.reranker": ("fastapi", "starlette", "torch", "ray", "rerankd.api", "rerankd.app"),
    "rerankd.batch": ("fastapi", "starlette", "torch", "rerankd.api", "rerankd.app", "rerankd.ray_serve"),
    "rerankd.ray_options": ("ray", "fastapi", "torch", "rerankd.api"),
    "rerankd.metrics": ("rerankd.api", "rerankd.service", "rerankd.scheduler", "rerankd.backends", "torch"),
}

# The light modules of the backends package: settings and interfaces, read before any model loads.
LIGHT_BACKENDS = ("rerankd.backends.specs", "rerankd.backends.prompts", "rerankd.backends.sources")


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


@pytest.mark.parametrize("module", LIGHT_BACKENDS)
def test_model_settings_import_no_model_library(module: str) -> None:
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    for name in imports_of(path):
        assert name.split(".")[0] not in MODEL_LIBRARIES, f"{module} imports {name}"


def test_the_app_imports_no_model_library_until_a_model_loads() -> None:
    import subprocess
    import sys

    heavy = "{'torch', 'transformers', 'bm25s', 'sentence_transformers', 'ray'}"
    code = (
        "import sys, rerankd.app, rerankd.cli\n"
        "from rerankd.config import load_settings\n"
        "load_settings()  # validating every kind's settings loads no model library\n"
        f"print(sorted({heavy} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
