"""One redaction for every text rerankd makes out of upstream answers or request data: error messages
sent to clients, the attempts of a response, and log lines (rerankd's, httpx's and uvicorn's).

It removes, each replaced by ``[redacted]``:

- every secret it has been told of (:func:`remember`): the upstream keys, read from the variables named
  by ``api_key_env``, and the user and password of upstream ``base_url`` values;
- the user:password part of any URL;
- anything shaped like a key: ``rk-`` or ``sk-`` and 20 or more key characters (rerankd's managed keys,
  OpenAI-style keys). A managed key's 11-character prefix, which names the key in messages, stays;
- the value of ``api_key=``, ``key=``, ``token=``, ``password=`` (query strings, form bodies) and of
  ``Bearer ...`` / ``Basic ...``.

The secrets are known process-wide, as logging is: handlers and the loggers of httpx and uvicorn are
process-wide, and a secret once seen stays redacted (a rotated key is still worth hiding).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

__all__ = [
    "MIN_SECRET_CHARS",
    "REDACTED",
    "RedactingFilter",
    "redact",
    "redact_logs",
    "remember",
    "url_secrets",
]

REDACTED = "[redacted]"
# Shorter values are too likely to be ordinary words to be cut out of every text; URLs' user:password
# parts and key-shaped tokens are redacted whatever their length.
MIN_SECRET_CHARS = 8

_PATTERNS = (
    # user:password@ (or a key as the user) in any URL
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@"), rf"\1{REDACTED}@"),
    (re.compile(r"(?<![A-Za-z0-9_-])(?:rk|sk)-[A-Za-z0-9_-]{20,}"), REDACTED),
    (
        re.compile(r"(?i)\b((?:api[_-]?key|access[_-]?token|token|key|secret|password)=)[^&\s#\"'<>]+"),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(?i)\b((?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\1{REDACTED}"),
)

_lock = threading.Lock()
_secrets: set[str] = set()
_known: re.Pattern[str] | None = None


def remember(*secrets: str | None) -> None:
    """Redact these values from now on, wherever they appear (too short ones and None are ignored)."""
    global _known
    new = {secret for secret in secrets if secret and len(secret) >= MIN_SECRET_CHARS} - _secrets
    if not new:
        return
    with _lock:
        _secrets.update(new)
        # Longest first, so that a secret containing another is removed whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _known = re.compile("|".join(re.escape(secret) for secret in ordered))


def url_secrets(url: str | None) -> tuple[str, ...]:
    """The user and password of a URL, as written and decoded (either may be a key)."""
    if not url:
        return ()
    parts = urlsplit(url)
    found = [value for value in (parts.username, parts.password) if value]
    return tuple(dict.fromkeys([*found, *(unquote(value) for value in found)]))


def redact(text: str) -> str:
    """``text`` without any known secret, URL credential, key-shaped token or key parameter."""
    known = _known
    if known is not None:
        text = known.sub(REDACTED, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redacted_arg(value: object) -> object:
    """A log argument without secrets; numbers stay numbers (for ``%d``), other objects are replaced by
    their redacted text only when it differs (so ``%r`` of harmless objects is unchanged)."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


def _message(msg: object, args: object) -> str:
    """What ``LogRecord.getMessage`` makes of ``msg`` and ``args``."""
    text = str(msg)
    return text % args if args else text


class RedactingFilter(logging.Filter):
    """Redacts a record in place: its arguments where that suffices (uvicorn's access formatter reads
    them one by one), else its whole message; and its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a broken record: logging reports it as such, with nothing formatted
        if redact(message) != message:
            args = record.args
            if isinstance(args, tuple):
                args = tuple(_redacted_arg(arg) for arg in args)
            elif isinstance(args, Mapping):
                args = {name: _redacted_arg(value) for name, value in args.items()}
            try:
                cleaned = _message(record.msg, args)
            except (TypeError, ValueError):
                cleaned = message
            if redact(cleaned) == cleaned:
                record.args = args
            else:
                record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()
# Loggers with handlers of their own (uvicorn's do not propagate) or that log what they were given:
# httpx logs the URL of every call, uvicorn.access the path and query string of every request.
_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore")


def redact_logs() -> None:
    """Redact every record that reaches the root logger's handlers or is logged by httpx or uvicorn.
    Call it after logging is configured; calling it again adds nothing twice."""
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
