"""The one redaction: secrets it was told of, URL credentials, key-shaped tokens and key parameters; and the
log filter, on records shaped as httpx and uvicorn write them."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import httpx
import pytest
from uvicorn.logging import AccessFormatter

from rerankd.redaction import REDACTED, RedactingFilter, redact, redact_logs, remember, url_secrets

SECRET = "upstream-secret-3fa9c1d2e7"  # no key shape: only the registry knows it


def test_a_remembered_secret_is_redacted_wherever_it_appears() -> None:
    remember(SECRET, None, "")
    for text in (SECRET, f"invalid key {SECRET}.", f'{{"key":"{SECRET}"}}', f"<p>{SECRET}</p>"):
        assert SECRET not in redact(text) and REDACTED in redact(text)


def test_the_longest_secret_goes_whole() -> None:
    remember("shared-prefix-abcdefgh", "shared-prefix-abcdefgh-and-more")
    assert redact("x shared-prefix-abcdefgh-and-more y") == f"x {REDACTED} y"


def test_short_values_are_not_taken_for_secrets() -> None:
    remember("admin", "secret")  # ordinary words: redacting them everywhere would garble every text
    assert redact("the admin API keeps a secret") == "the admin API keeps a secret"


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("POST https://svc:hunter2-horse@api.example.com/v1/rerank", "svc:hunter2-horse"),
        ("postgresql+psycopg://rerankd:pw@db/rerankd", "rerankd:pw"),
        ("http://only-a-token@host:8080/x", "only-a-token"),
        ("invalid api key sk-proj-0123456789abcdefghij", "sk-proj-0123456789abcdefghij"),
        ("key rk-AbCdEfGh_ijklmnopqrstuvwxyz0123 unknown", "rk-AbCdEfGh_ijklmnopqrstuvwxyz0123"),
        ("GET /v1/models?api_key=client-key-1&x=1 HTTP/1.1", "client-key-1"),
        ("GET /v1/rerank?x=1&key=abc HTTP/1.1", "abc"),
        ("GET /v1/rerank?access_token=t0k3n HTTP/1.1", "t0k3n"),
        ("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678"),
        ("Authorization: Basic c3ZjOmh1bnRlcjI=", "c3ZjOmh1bnRlcjI="),
    ],
)
def test_credentials_by_their_shape(text: str, gone: str) -> None:
    assert gone not in redact(text)
    assert REDACTED in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "key rk-AbCdEfGh has spent 1.5 of its budget",  # a managed key's prefix names it: kept
        "model 'sk-reranker' is not served here",
        "send the header `Authorization: Bearer <key>`",
        "https://api.cohere.com/v2/rerank answered HTTP 500",
        "monkey=3 and turnkey=4",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_url_secrets_as_written_and_decoded() -> None:
    assert url_secrets("https://svc%40corp:p%2Fss-word@host/") == (
        "svc%40corp",
        "p%2Fss-word",
        "svc@corp",
        "p/ss-word",
    )
    assert url_secrets("https://host/") == () and url_secrets(None) == ()


def record(name: str, msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args or None, info)


def test_httpx_line_with_url_credentials() -> None:
    url = httpx.URL("https://svc:hunter2-horse@api.example.com/v1/rerank")
    line = record("httpx", 'HTTP Request: %s %s "%s %d %s"', "POST", url, "HTTP/1.1", 200, "OK")
    assert "hunter2-horse" in line.getMessage()  # httpx's URL prints its password
    assert RedactingFilter().filter(line)
    assert "hunter2-horse" not in line.getMessage()
    assert line.getMessage().endswith('"HTTP/1.1 200 OK"')


def test_uvicorn_access_line_keeps_its_arguments() -> None:
    line = record(
        "uvicorn.access",
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5",
        "GET",
        "/v1/models?api_key=c-k-9",
        "1.1",
        401,
    )
    RedactingFilter().filter(line)
    # uvicorn's formatter unpacks the five arguments: they must still be five
    shown = AccessFormatter(fmt="%(client_addr)s %(request_line)s %(status_code)s", use_colors=False).format(
        line
    )
    assert "c-k-9" not in shown and f"api_key={REDACTED}" in shown and "401" in shown


def test_a_secret_in_the_format_string_itself() -> None:
    line = record("rerankd", f"calling with {SECRET} now")
    remember(SECRET)
    RedactingFilter().filter(line)
    assert line.getMessage() == f"calling with {REDACTED} now"


def test_a_key_parameter_in_the_format_with_its_value_as_argument() -> None:
    line = record("rerankd", "calling with api_key=%s (%d tries)", "client-value-1", 3)
    RedactingFilter().filter(line)
    assert line.getMessage() == f"calling with api_key={REDACTED} (3 tries)"


def test_a_traceback_is_redacted() -> None:
    try:
        raise RuntimeError(f"upstream said: invalid key {SECRET}")
    except RuntimeError as error:
        line = record("rerankd", "failed", exc=error)
    remember(SECRET)
    RedactingFilter().filter(line)
    text = logging.Formatter().format(line)
    assert "RuntimeError" in text and SECRET not in text


@pytest.fixture
def root_handler() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore"):
            logging.getLogger(name).filters.clear()


def test_redact_logs_covers_the_root_handlers_and_children_of_httpcore(root_handler: io.StringIO) -> None:
    redact_logs()
    redact_logs()  # twice adds nothing twice
    assert sum(isinstance(f, RedactingFilter) for f in logging.getLogger("httpx").filters) == 1
    remember(SECRET)
    logging.getLogger("httpcore.http11").info("sent Authorization: Bearer %s", "abcdefgh12345678")
    logging.getLogger("rerankd.anything").warning("answer: %s", f"invalid key {SECRET}")
    text = root_handler.getvalue()
    assert "abcdefgh12345678" not in text and SECRET not in text and text.count(REDACTED) == 2
