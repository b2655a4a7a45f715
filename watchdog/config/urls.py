"""URLs in the config: accepted only in the shape the HTTP clients will send a request to.

Owns :func:`check_http_url`: an ``http``/``https`` scheme, a host, a port in 1..65535 and
no character the alert channels' client (httpx) refuses — so that a URL ``check-config``
accepts is one ``run`` can use. The parse follows httpx's own (RFC 3986 split, the same
host and port rules) with the standard library, so that reading the config does not import
an HTTP client; ``tests/test_config_urls.py`` checks the two agree. Messages never quote
the URL: a webhook or ping URL is itself a secret.
"""

from __future__ import annotations

import ipaddress
import re
import string

from watchdog.config.base import _Problem

_FIX = "write e.g. https://host:8443/path (port 1..65535)"

_MAX_LENGTH = 65536
# The split httpx applies (httpx/_urlparse.py): every part optional, so it always matches.
_URL = re.compile(
    r"(?:(?P<scheme>(?:[a-zA-Z][a-zA-Z0-9+.-]*)?):)?"
    r"(?://(?P<authority>[^/?#]*))?"
    r"(?P<path>[^?#]*)"
)
_AUTHORITY = re.compile(r"(?:(?P<userinfo>.*)@)?(?P<host>\[.*\]|[^:@]*):?(?P<port>.*)?")
_IPV4_STYLE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
_IPV6_STYLE = re.compile(r"\[.*\]")
# What httpx leaves as it is in an ASCII host (unreserved, sub-delims, WHATWG's extras, %).
_HOST_SAFE = frozenset(string.ascii_letters + string.digits + "-._~" + "!$&'()*+,;=" + '"`{}%|\\')
_DEFAULT_PORTS = {"ftp": 21, "http": 80, "https": 443, "ws": 80, "wss": 443}


class _Invalid(Exception):
    """The URL cannot be parsed; ``reason`` is what the message says."""

    def __init__(self, reason: str = "not a valid URL") -> None:
        super().__init__(reason)
        self.reason = reason


def check_http_url(value: str) -> str:
    """``value`` if httpx can send a request to it, else :class:`_Problem` (URL not echoed)."""
    try:
        scheme, host, port = _split(value)
    except _Invalid as exc:
        raise _Problem(f"the URL is {exc.reason}", _FIX) from None
    if scheme not in ("http", "https"):
        raise _Problem("expected an http:// or https:// URL", _FIX)
    if not host:
        raise _Problem("the URL has no host", _FIX)
    if port is not None and not 1 <= port <= 65535:
        raise _Problem(f"port {port} is out of range", _FIX)
    return value


def _split(url: str) -> tuple[str, str, int | None]:
    """The lower-cased scheme, the raw host and the port (``None``: the scheme's default)."""
    if len(url) > _MAX_LENGTH:
        raise _Invalid
    if any(char.isascii() and not char.isprintable() for char in url):
        raise _Invalid("invalid characters")
    parts = _URL.match(url)
    assert parts is not None  # every part of the pattern is optional
    authority = _AUTHORITY.match(parts["authority"] or "")
    assert authority is not None
    scheme = (parts["scheme"] or "").lower()
    host = authority["host"] or ""
    port = _port(authority["port"], scheme)
    _check_host(host)
    has_authority = bool(authority["userinfo"] or host or port is not None)
    path = parts["path"] or ""
    if not scheme and not has_authority and path.startswith(("//", ":")):
        raise _Invalid  # a relative reference RFC 3986 does not allow
    try:  # userinfo, path, query and fragment are sent percent-encoded as UTF-8
        url.encode("utf-8")
    except UnicodeEncodeError:
        raise _Invalid from None
    return scheme, host, port


def _port(text: str | None, scheme: str) -> int | None:
    if not text:
        return None
    try:
        port = int(text)
    except ValueError:
        raise _Invalid from None
    return None if port == _DEFAULT_PORTS.get(scheme) else port


def _check_host(host: str) -> None:
    """The host as httpx encodes it (IP literals, IDNA) and decodes it back (``xn--``)."""
    try:
        if _IPV4_STYLE.fullmatch(host):
            ipaddress.IPv4Address(host)
        elif _IPV6_STYLE.fullmatch(host):
            ipaddress.IPv6Address(host[1:-1])
        elif not host.isascii() or host.lower().startswith("xn--"):
            import idna  # international names only: the rest need no codec

            if host.isascii():
                encoded = "".join(c if c in _HOST_SAFE else _percent(c) for c in host.lower())
            else:
                encoded = idna.encode(host.lower()).decode("ascii")
            if encoded.startswith("xn--"):
                idna.decode(encoded)
    except (ValueError, UnicodeError):
        raise _Invalid from None


def _percent(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
