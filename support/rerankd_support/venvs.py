"""Cached virtual environments of their own, for code that cannot share rerankd's: real client libraries
(tests/clients) and the reference implementations that model recipes are checked against (tests/backends).

A group's venv lives in ``<repo>/.cache/client-venvs/<group>-<hash>``; the hash covers the group's pins,
its lock and the Python version, so an unchanged group is reused and a changed pin builds a new venv.
A build runs ``python -m venv`` + ``pip install`` in a temporary folder that is renamed into place only
when pip succeeded: a killed or failed build is never reused. A failed build raises `VenvBuildError`
with pip's output; a build that takes longer than `BUILD_TIMEOUT` seconds is killed.

A group that needs torch pins ``torch==2.13.0`` in its lock: pip then takes the local CPU wheel
(``PIP_FIND_LINKS``), whose ``+cpu`` label sorts above PyPI's CUDA build of the same version.

A package whose declared dependencies cannot be installed here (e.g. one that pins another torch for a
part the tests do not use) goes in ``no_deps``: installed last, without them; ``requirements`` then
name the dependencies it does need.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rerankd_support.paths import CACHE

__all__ = ["BUILD_TIMEOUT", "CACHE_ROOT", "Group", "VenvBuildError", "ensure_venv", "pins", "venv_dir"]

# ``RERANKD_CLIENT_VENV_DIR`` moves the cache (e.g. to a CI cache folder).
CACHE_ROOT = Path(os.environ.get("RERANKD_CLIENT_VENV_DIR") or CACHE / "client-venvs")
# Seconds one group's build may take (``RERANKD_CLIENT_VENV_TIMEOUT``); cold builds take 0.5-3 minutes.
BUILD_TIMEOUT = float(os.environ.get("RERANKD_CLIENT_VENV_TIMEOUT", "600"))
# Temporary build folders older than this are left over from killed runs and are removed.
_STALE_BUILD_SECONDS = 6 * 3600


@dataclass(frozen=True)
class Group:
    """Clients installed together: ``requirements`` are installed, ``lock`` pins everything they pull in."""

    name: str
    requirements: tuple[str, ...]
    lock: tuple[str, ...]
    no_deps: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        key: dict[str, object] = {
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "requirements": self.requirements,
            "lock": self.lock,
        }
        if self.no_deps:  # only when set: the venvs of the other groups keep their names
            key["no_deps"] = self.no_deps
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def _pins(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def pins(text: str) -> tuple[str, ...]:
    """Requirement pins written as whitespace-separated words (one per word)."""
    return tuple(text.split())


class VenvBuildError(RuntimeError):
    """pip could not build a group's venv (no network, no wheel, a conflict, or it ran too long)."""


def venv_dir(group: Group) -> Path:
    return CACHE_ROOT / f"{group.name}-{group.digest}"


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_failures: dict[str, VenvBuildError] = {}


def ensure_venv(group: Group, *, timeout: float = BUILD_TIMEOUT) -> Path:
    """The python of ``group``'s venv, built first when it is not cached yet.

    Thread-safe; a build that failed in this process is not retried (every caller gets the same error).
    """
    name = group.name
    with _locks_guard:
        lock = _locks.setdefault(name, threading.Lock())
    with lock:
        if name in _failures:
            raise _failures[name]
        venv = venv_dir(group)
        if _python(venv).exists():
            return _python(venv)
        try:
            _build(group, venv, timeout)
        except VenvBuildError as exc:
            _failures[name] = exc
            raise
        return _python(venv)


def _build(group: Group, venv: Path, timeout: float) -> None:
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds()
    staging = Path(tempfile.mkdtemp(prefix=f".build-{group.name}-", dir=CACHE_ROOT))
    try:
        began = time.monotonic()
        _run([sys.executable, "-m", "venv", str(staging)], group, timeout)
        constraints = staging / "constraints.txt"
        constraints.write_text("\n".join(group.lock) + "\n", encoding="utf-8")
        (staging / "requirements.txt").write_text("\n".join(group.requirements) + "\n", encoding="utf-8")
        pip = [str(_python(staging)), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        remaining = max(1.0, timeout - (time.monotonic() - began))
        _run([*pip, "-c", str(constraints), *group.requirements], group, remaining)
        if group.no_deps:
            remaining = max(1.0, timeout - (time.monotonic() - began))
            _run([*pip, "--no-deps", *group.no_deps], group, remaining)
        try:
            staging.rename(venv)
        except OSError:
            if not _python(venv).exists():  # not another process's finished build: a real error
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _run(command: list[str], group: Group, timeout: float) -> None:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_NO_INPUT"] = "1"
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            raise VenvBuildError(
                f"building the {group.name!r} venv took over {timeout:.0f}s and was stopped "
                f"({' '.join(command[:6])} ...):\n{_tail(output)}"
            ) from None
    if proc.returncode != 0:
        raise VenvBuildError(
            f"building the {group.name!r} venv failed (exit {proc.returncode}) running "
            f"{' '.join(command)}:\n{_tail(output)}"
        )


def _tail(output: bytes, lines: int = 60) -> str:
    text = output.decode("utf-8", errors="replace").splitlines()
    # pip's warnings about the local index mirrors say nothing about the failure.
    kept = [line for line in text if "is ignored: it is neither a file nor a directory" not in line]
    return "\n".join(kept[-lines:])


def _remove_stale_builds() -> None:
    now = time.time()
    for leftover in CACHE_ROOT.glob(".build-*"):
        try:
            if now - leftover.stat().st_mtime > _STALE_BUILD_SECONDS:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass
