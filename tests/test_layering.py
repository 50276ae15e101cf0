"""The package's floors, and imports that only go down them.

Lowest first: the leaves (types, errors, the request's deadline, the redaction, the access record,
tracing); the settings every model has and money; model code (backends) and upstream providers; the table
of kinds; the config; the gateway (keys, money, the ledger); serving (pool, scheduler, service, the Python
API); the front doors (HTTP api, the web pages, batch jobs, eval); Ray; the commands. A module imports from
its own floor and the floors below it, never above, and no module reaches itself through its imports (no
circles, lazy imports included). On top of the floors, a few modules are kept narrower still (FORBIDDEN):
the API sees models only through the service's views, the leaves import no library of consequence, and so
on.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rerankd"

MODEL_LIBRARIES = ("torch", "transformers", "sentence_transformers", "bm25s", "tokenizers")

FLOORS: list[tuple[str, ...]] = [
    (
        "rerankd.types",
        "rerankd.errors",
        "rerankd.deadline",
        "rerankd.redaction",
        "rerankd.access",
        "rerankd.tracing",
    ),
    ("rerankd.spec", "rerankd.gateway.money"),
    ("rerankd.backends", "rerankd.upstream"),
    ("rerankd.kinds",),
    ("rerankd.config",),
    ("rerankd.gateway",),
    ("rerankd.serving",),
    ("rerankd.api", "rerankd.web", "rerankd.batch", "rerankd.evaluate"),
    ("rerankd.ray",),
    ("rerankd.commands",),
    ("rerankd",),  # the package itself: __init__ (the lazy Reranker) and __main__
]

# module prefix -> imports it must never make, beyond what the floors forbid
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "rerankd.types": ("rerankd.", "torch", "fastapi"),
    "rerankd.errors": ("rerankd.", "torch", "fastapi"),
    "rerankd.deadline": ("rerankd.", "torch", "fastapi"),
    "rerankd.access": ("rerankd.", "torch", "fastapi"),
    # OpenTelemetry is imported here and nowhere else, and only once tracing is on (lazily).
    "rerankd.tracing": ("rerankd.", "torch", "fastapi", "starlette", "httpx"),
    "rerankd.redaction": ("rerankd.", "torch", "fastapi", "starlette", "httpx", "uvicorn"),
    "rerankd.gateway.money": ("rerankd.",),
    "rerankd.spec": ("fastapi", *MODEL_LIBRARIES),
    # Model code knows nothing of providers, and providers nothing of model code or torch.
    "rerankd.backends": ("fastapi", "starlette", "uvicorn", "rerankd.upstream"),
    # (tokenizers only to count an upstream's tokens, when its tokenizer is configured)
    "rerankd.upstream": ("fastapi", "starlette", "torch", "transformers", "bm25s", "rerankd.backends"),
    "rerankd.kinds": ("fastapi", *MODEL_LIBRARIES),
    "rerankd.config": ("torch",),
    # The database is a leaf of the gateway: it knows nothing of HTTP, models or metering policy.
    "rerankd.gateway": ("fastapi", "starlette", *MODEL_LIBRARIES, "rerankd.backends", "rerankd.upstream"),
    "rerankd.gateway.store": (
        "httpx",
        "rerankd.gateway.metering",
        "rerankd.gateway.accounts",
        "rerankd.kinds",
    ),
    "rerankd.serving": ("fastapi", "starlette", "torch"),
    "rerankd.serving.metrics": ("rerankd.serving.", "rerankd.backends"),
    "rerankd.serving.reranker": ("ray",),
    # The API sees models only through the service's read-only views, keys through gateway.accounts.
    "rerankd.api": (
        *MODEL_LIBRARIES,
        "httpx",
        "rerankd.backends",
        "rerankd.upstream",
        "rerankd.kinds",
        "rerankd.serving.pool",
        "rerankd.serving.scheduler",
        "rerankd.gateway.store",
        "rerankd.batch",
        "rerankd.evaluate",
    ),
    # HTTP connections: uvicorn's protocol with timeouts and a cap, knowing nothing of the server's parts.
    "rerankd.api.connections": ("rerankd.", "torch", "fastapi", "starlette"),
    # The pages are static files and their routes: they reach the server only over HTTP, as any client does.
    "rerankd.web": (*MODEL_LIBRARIES, "httpx", "rerankd.api", "rerankd.serving", "rerankd.gateway"),
    "rerankd.batch": ("fastapi", "starlette", "torch", "ray", "rerankd.api", "rerankd.evaluate"),
    "rerankd.evaluate": ("fastapi", "starlette", "ray", "rerankd.api", "rerankd.batch"),
    "rerankd.ray.options": ("ray", "fastapi", "torch"),
}

# The light modules of the backends package: settings and interfaces, read before any model loads.
LIGHT_BACKENDS = ("rerankd.backends.specs", "rerankd.backends.prompts", "rerankd.backends.sources")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, but those under ``if TYPE_CHECKING:`` (read by type checkers only, never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        yield node
        yield from _runtime_nodes(node)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function: ``from rerankd import deadline``
    names the module ``rerankd.deadline``."""
    names: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & set(MODULES)
            names.update(submodules)
            if len(submodules) < len(node.names):  # names defined in the module itself
                names.add(node.module)
    return names


def floor_of(module: str) -> int | None:
    """The floor of a rerankd module (its longest listed prefix), None for other packages."""
    best: tuple[int, int] | None = None
    for floor, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            inside = module == prefix or module.startswith(prefix + ".")
            if inside and (best is None or len(prefix) > best[1]):
                best = (floor, len(prefix))
    return best[0] if best else None


def own_imports(path: Path) -> Iterator[str]:
    """The rerankd modules a file imports (a package imported for a name in it counts as the package)."""
    for name in imports_of(path):
        if name.split(".")[0] == "rerankd" and name != "rerankd":
            yield name


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_has_a_floor(module: str) -> None:
    assert module == "rerankd" or floor_of(module) is not None or module == "rerankd.__main__", module


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down(module: str) -> None:
    here = floor_of(module)
    assert here is not None
    for name in own_imports(MODULES[module]):
        there = floor_of(name)
        assert there is not None and there <= here, (
            f"{module} (floor {here}: {FLOORS[here][0]}) imports {name} (floor {there}), which is above it"
        )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_forbidden_imports(module: str) -> None:
    for prefix, forbidden in FORBIDDEN.items():
        if module == prefix or module.startswith(prefix + "."):
            for name in imports_of(MODULES[module]):
                for bad in forbidden:
                    clash = name == bad or name.startswith(bad if bad.endswith(".") else bad + ".")
                    assert not clash, f"{module} imports {name}, which the layering forbids"


def test_no_import_circles() -> None:
    graph = {
        module: {name for name in own_imports(path) if name in MODULES and name != module}
        for module, path in MODULES.items()
    }
    circles: list[list[str]] = []
    # Tarjan's strongly connected components: any component of two or more modules is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert circles == []


@pytest.mark.parametrize("module", LIGHT_BACKENDS)
def test_model_settings_import_no_model_library(module: str) -> None:
    for name in imports_of(MODULES[module]):
        assert name.split(".")[0] not in MODEL_LIBRARIES, f"{module} imports {name}"


def test_the_app_imports_no_model_library_until_a_model_loads() -> None:
    import subprocess
    import sys

    heavy = "{'torch', 'transformers', 'bm25s', 'sentence_transformers', 'ray'}"
    code = (
        "import sys, rerankd.api.app, rerankd.commands.cli\n"
        "from rerankd.config import load_settings\n"
        "load_settings()  # validating every kind's settings loads no model library\n"
        f"print(sorted({heavy} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
