"""URLs in the config: the standard-library check agrees with what httpx will send to.

``check_http_url`` parses without httpx so that reading the config does not import an HTTP
client; the alert channels still send with httpx. The oracle below is the check as it was
written on httpx itself: for every URL — the named cases and random ones — both accept the
same URLs and give the same message, and neither message quotes the URL.
"""

from __future__ import annotations

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from watchdog.config import parse_config
from watchdog.config.base import _Problem
from watchdog.config.urls import check_http_url
from watchdog.core.errors import ConfigError

FIX = "write e.g. https://host:8443/path (port 1..65535)"


def httpx_verdict(value: str) -> str:
    """The check as written on httpx (the oracle): "ok" or the message."""
    try:
        url = httpx.URL(value)
        httpx.Request("GET", url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        reason = "invalid characters" if "character" in str(exc) else "not a valid URL"
        return f"the URL is {reason}"
    if url.scheme not in ("http", "https"):
        return "expected an http:// or https:// URL"
    if not url.host:
        return "the URL has no host"
    if url.port is not None and not 1 <= url.port <= 65535:
        return f"port {url.port} is out of range"
    return "ok"


def verdict(value: str) -> str:
    try:
        assert check_http_url(value) == value
    except _Problem as exc:
        assert exc.fix == FIX
        return str(exc)
    return "ok"


CASES = [
    ("http://127.0.0.1:8000", "ok"),
    ("HTTPS://Example.org/path?q=1#frag", "ok"),
    ("http://[::1]:9093/api", "ok"),
    ("http://[fe80::1%25eth0]:80/", "ok"),
    ("http://user:pw@host/", "ok"),
    ("https://bücher.example/x", "ok"),
    ("https://hooks.example/é/ü?x=ß", "ok"),
    ("http://host:80", "ok"),
    ("http://host:443", "ok"),
    ("http://host:65535", "ok"),
    ("http://host:/", "ok"),
    ("http://host\t/", "the URL is invalid characters"),
    ("http://host/\x00", "the URL is invalid characters"),
    ("http://host/\x7f", "the URL is invalid characters"),
    ("http://host/" + "a" * 65536, "the URL is not a valid URL"),
    ("http://999.1.1.1/", "the URL is not a valid URL"),
    ("http://[::zz]/", "the URL is not a valid URL"),
    ("http://[::1/", "the URL is not a valid URL"),
    ("http://host:port/", "the URL is not a valid URL"),
    ("http://host:80:81/", "the URL is not a valid URL"),
    ("https://xn--bcher-kva.example/", "ok"),
    ("https://xn--/", "the URL is not a valid URL"),
    ("https://a\u0300b.example/", "the URL is not a valid URL"),
    ("https://ex\u2028ample/", "the URL is not a valid URL"),
    ("////path", "the URL is not a valid URL"),
    ("ftp://host/", "expected an http:// or https:// URL"),
    ("host:8000", "expected an http:// or https:// URL"),
    ("//host/", "expected an http:// or https:// URL"),
    ("", "expected an http:// or https:// URL"),
    ("http:///path", "the URL has no host"),
    ("http://:8000/", "the URL has no host"),
    ("http://user@/", "the URL has no host"),
    ("http:host", "the URL has no host"),
    ("http://host:0/", "port 0 is out of range"),
    ("http://host:65536/", "port 65536 is out of range"),
    ("http://host:-1/", "port -1 is out of range"),
]


@pytest.mark.parametrize(("url", "expected"), CASES)
def test_each_named_url_gets_the_verdict_httpx_gives(url: str, expected: str) -> None:
    assert httpx_verdict(url) == expected  # the oracle still says what the table says
    assert verdict(url) == expected


# Random URLs built from the characters that steer the parse (and a few that must not).
PIECES = st.sampled_from(
    [
        "http", "https", "HTTP", "ftp", ":", "//", "/", "@", "[", "]", "::1", "%25", "?", "#",
        ".", "1", "80", "65536", "0", "-", "+", "host", "Ex", "127.0.0.1", "999", "é", "ß",
        "\u0300", "\u2028", " ", "\t", "\x00", "\x7f", "_", "xn--", "a",
    ]
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(st.lists(PIECES, max_size=12).map("".join))
@example("http://[::1]x/")
@example("http://a[b/")
@example("http://host name/")
def test_random_urls_get_the_verdict_httpx_gives(url: str) -> None:
    assert verdict(url) == httpx_verdict(url)


@given(st.text(max_size=40).map(lambda tail: "https://" + tail))
@settings(max_examples=400, deadline=None)
def test_random_text_after_the_scheme_gets_the_verdict_httpx_gives(tail: str) -> None:
    # The oracle's accident: an IDNA or port error quoting a host that contains the word
    # "character" reads as "invalid characters"; the check names only control characters.
    if "character" not in tail.lower():
        assert verdict(tail) == httpx_verdict(tail)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://spark-1\t:8000", "the URL is invalid characters"),
        ("http://spark-1:99999", "port 99999 is out of range"),
        ("http://[::1:8000", "the URL is not a valid URL"),
    ],
)
def test_a_bad_endpoint_url_names_its_key_and_not_the_url(url: str, message: str) -> None:
    text = (
        "clusters:\n  - name: spark\n"
        f"    endpoint: {{base_url: {url!r}, model: m}}\n"
        "    nodes:\n      - {name: spark-1, host: 127.0.0.1, plug: {type: dry_run}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text.replace("'", '"').replace("\t", "\\t"), env={})
    assert str(caught.value) == f"clusters[0].endpoint.base_url: {message} (fix: {FIX})"


def test_a_bad_channel_url_names_its_key_and_not_the_url() -> None:
    secret = "https://hooks.example:70000/services/T0/B0/zq-SECRET"
    text = (
        "alerts:\n  channels:\n    - {type: slack, url: '${SLACK_URL}'}\n"
        "clusters:\n  - name: spark\n"
        "    endpoint: {base_url: 'http://127.0.0.1:8000', model: m}\n"
        "    nodes:\n      - {name: spark-1, host: 127.0.0.1, plug: {type: dry_run}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env={"SLACK_URL": secret})
    assert str(caught.value) == (f"alerts.channels[0].url: port 70000 is out of range (fix: {FIX})")
    assert "zq-SECRET" not in str(caught.value)
