"""The output file of a batch run: what it already holds, appending in input order, and repairs.

Results are appended one line at a time and flushed, so a run killed at any moment leaves every job it
finished in the file, plus at most one torn last line; :func:`read_done` cuts that line off and returns
the ids already done, which a rerun skips. Jobs finish out of order (they share forward passes);
:class:`OrderedWriter` holds them back until the jobs before them are written, so the file follows the
input. A job that failed is skipped in that order (a rerun does it, at the end of the file), and
:func:`restore_order` then puts the file back in input order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from rerankd.batch.jobs import job_key

__all__ = ["OrderedWriter", "OutputError", "read_done", "restore_order"]


class OutputError(ValueError):
    """The output file exists but is not the output of ``rerankd batch``."""


def _key_of(raw: bytes, path: Path, number: int) -> str:
    try:
        data = json.loads(raw)
        return job_key(data["id"])
    except (ValueError, KeyError, TypeError):
        raise OutputError(
            f"{path} line {number} is not a result of `rerankd batch`; give another --output "
            "(a rerun appends to the output it resumes)"
        ) from None


def read_done(path: Path) -> set[str]:
    """The ids (as :func:`~rerankd.batch.jobs.job_key`) the output already has; a torn last line, left
    by an interrupted run, is cut off the file."""
    if not path.exists():
        return set()
    keys: set[str] = set()
    complete = 0
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            if not raw.endswith(b"\n"):
                break  # written in part when the run stopped: the job is done again
            keys.add(_key_of(raw, path, number))
            complete += len(raw)
    if complete < path.stat().st_size:
        os.truncate(path, complete)
    return keys


class OrderedWriter:
    """Appends results in the order of ``keys``, each as soon as every job before it is settled."""

    def __init__(self, path: Path, keys: Sequence[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._keys = keys
        self._next = 0
        self._settled: dict[str, str | None] = {}
        self.written = 0

    def put(self, key: str, text: str | None) -> None:
        """A job's output line, or None for a job that failed (skipped; a rerun retries it)."""
        self._settled[key] = text
        wrote = False
        while self._next < len(self._keys) and self._keys[self._next] in self._settled:
            line = self._settled.pop(self._keys[self._next])
            self._next += 1
            if line is not None:
                self._file.write(line + "\n")
                self.written += 1
                wrote = True
        if wrote:
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def restore_order(path: Path, order: Sequence[str]) -> bool:
    """Rewrite the output in input order if a rerun appended jobs an earlier run had skipped; lines of
    ids the input does not have keep their place at the end. Returns whether it rewrote the file."""
    if not path.exists():
        return False
    with path.open("rb") as file:
        lines = [(_key_of(raw, path, number), raw) for number, raw in enumerate(file, start=1)]
    position = {key: index for index, key in enumerate(order)}
    ranked = sorted(range(len(lines)), key=lambda i: (position.get(lines[i][0], len(order)), i))
    if ranked == list(range(len(lines))):
        return False
    temporary = path.with_name(path.name + ".reordering")
    with temporary.open("wb") as file:
        file.writelines(lines[i][1] for i in ranked)
    os.replace(temporary, path)
    return True
