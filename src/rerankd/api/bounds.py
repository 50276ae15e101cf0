"""Bounds on the strings a client chooses, checked before a request reaches the service.

Whatever a client names goes on to logs, metric labels and the ledger: a model name is refused (400)
when longer than :data:`MAX_MODEL_CHARS` or holding a control character, and any string of the body
(query, documents, instruction, an unknown field, a field's name) when it holds a NUL, which PostgreSQL
cannot store and no text needs. Unknown fields are logged once per name, with bounded memory.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable
from typing import Any

from rerankd.errors import InvalidText

__all__ = ["MAX_MODEL_CHARS", "UnknownFields", "check_model", "check_no_nul", "shown"]

log = logging.getLogger(__name__)

MAX_MODEL_CHARS = 128
_SHOWN_CHARS = 64  # of a client's string, quoted in a message or a log line


def shown(text: str) -> str:
    """A client's string as quoted in a message: at most ``_SHOWN_CHARS`` characters, repr-escaped."""
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return f"{text[:_SHOWN_CHARS]!r}... ({len(text)} characters)"


def check_model(name: str) -> None:
    """Refuse a model name no configured model could have: too long, or with control characters."""
    if len(name) > MAX_MODEL_CHARS:
        raise InvalidText(
            f"`model` is {len(name)} characters long; model names have at most {MAX_MODEL_CHARS}: "
            "GET /v1/models lists them"
        )
    if any(unicodedata.category(char) == "Cc" for char in name):
        raise InvalidText(f"`model` {shown(name)} holds a control character; GET /v1/models lists the names")


def check_no_nul(body: Any) -> None:
    """Refuse a parsed JSON body with a NUL character in any string or field name, naming the field."""
    # Iterative: a body nested as deep as the JSON parser allows must not exhaust the stack here.
    pending: list[tuple[str, Any]] = [("", body)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise InvalidText(f"`{path or 'body'}` holds a NUL character (\\u0000); remove it")
        elif isinstance(value, dict):
            for key, item in value.items():
                name = str(key)
                where = f"{path}.{name}" if path else name
                if "\x00" in name:
                    raise InvalidText(f"the field name {shown(where)} holds a NUL character (\\u0000)")
                pending.append((_short(where), item))
        elif isinstance(value, list | tuple):
            pending.extend((_short(f"{path}.{index}"), item) for index, item in enumerate(value))


def _short(path: str) -> str:
    return path if len(path) <= _SHOWN_CHARS else path[:_SHOWN_CHARS] + "..."


class UnknownFields:
    """Unknown request fields are accepted (clients send extras) and logged once per dialect and name.

    Bounded whatever clients send: at most ``capacity`` names are remembered (then one last line says
    that no more are logged), at most ``per_request`` new names of one request are logged, each
    shortened to a few dozen characters."""

    def __init__(self, capacity: int = 1000, per_request: int = 5) -> None:
        self.capacity = capacity
        self.per_request = per_request
        self._seen: set[tuple[str, str]] = set()
        self._full = False

    def report(self, dialect: str, names: Iterable[str]) -> None:
        if self._full:
            return
        new: list[str] = []
        for name in names:
            key = (dialect, name[:_SHOWN_CHARS])
            if key in self._seen:
                continue
            if len(self._seen) >= self.capacity:
                self._full = True
                break
            self._seen.add(key)
            new.append(shown(name))
            if len(new) == self.per_request:
                break
        if new:
            log.warning(
                "ignoring unknown field%s %s in %s rerank requests (each logged once)",
                "s" if len(new) > 1 else "",
                ", ".join(new),
                dialect,
            )
        if self._full:
            log.warning("ignoring unknown fields: %d names logged, no more will be", len(self._seen))
