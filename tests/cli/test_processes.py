import logging

import pytest

from tidings.cli.processes import RedactReaderTokens, redact_token


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/preferences/abc.def-ghi_", "/preferences/[token]"),
        ("/preferences/abc?saved=true", "/preferences/[token]?saved=true"),
        ("/preferences/abc/leave-all", "/preferences/[token]/leave-all"),
        ("/u/abc", "/u/[token]"),
        ("/u/abc/undo", "/u/[token]/undo"),
        ("/confirm/abc", "/confirm/[token]"),
        ("/u/", "/u/[token]"),
        ("/users/abc", "/users/abc"),
        ("/archive/daily/12", "/archive/daily/12"),
        ("/api/v1/subscribers?q=x", "/api/v1/subscribers?q=x"),
    ],
)
def test_redact_token(path: str, logged: str) -> None:
    assert redact_token(path) == logged


def test_the_filter_rewrites_uvicorns_access_record() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/u/secret", "1.1", 200),
        None,
    )
    assert RedactReaderTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /u/[token] HTTP/1.1" 200'
