"""The one redaction step: every registered secret, and any 8-character piece of one, masked."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.edge import redact

SECRET_CHARS = st.characters(min_codepoint=33, max_codepoint=126)


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    redact.forget_all()
    yield
    redact.forget_all()


@settings(max_examples=200, deadline=None)
@given(
    st.text(SECRET_CHARS, min_size=8, max_size=40),
    st.text(max_size=30),
    st.text(max_size=30),
    st.data(),
)
def test_no_8_character_piece_of_a_secret_survives_whatever_surrounds_it(
    secret: str, before: str, after: str, data: st.DataObject
) -> None:
    redact.forget_all()
    redact.register(secret)
    start = data.draw(st.integers(0, len(secret) - 8))
    end = data.draw(st.integers(start + 8, len(secret)))
    out = redact.redact(before + secret[start:end] + after)
    assert all(secret[i : i + 8] not in out for i in range(len(secret) - 7))


def test_a_secret_url_is_masked_whole_and_by_its_path_but_its_host_stays_readable() -> None:
    url = "https://hooks.slack.com/services/T0AB12CD/B0EF34GH/slackhook7d3e9a1c"
    redact.register(url)
    assert redact.redact(f"POST {url} 200") == "POST *** 200"
    assert "slackhook" not in redact.redact("echoed: B0EF34GH/slackhook7d3e9a1c/fail")
    assert redact.redact("see https://hooks.slack.com/ for docs") == (
        "see https://hooks.slack.com/ for docs"
    )


def test_a_log_record_is_redacted_before_any_handler_formats_or_cuts_it() -> None:
    key = "R0UTINGKEY5e8c1a9d7f2b"
    redact.register(key)
    record = logging.LogRecord("httpx", logging.DEBUG, __file__, 1, "sent %s", (key,), None)
    try:
        raise ValueError(f"echo {key[:12]}")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert redact.RedactingFilter().filter(record)
    assert key[:8] not in record.getMessage() and key[:8] not in (record.exc_text or "")
    assert record.getMessage() == "sent ***"
