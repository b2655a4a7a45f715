"""URLs in the config: accepted only in the shape httpx will send a request to.

Owns :func:`check_http_url`: an ``http``/``https`` scheme, a host, a port in 1..65535 and
no character httpx refuses — so that a URL ``check-config`` accepts is one ``run`` can use.
Messages never quote the URL: a webhook or ping URL is itself a secret.
"""

from __future__ import annotations

import httpx

from watchdog.config.base import _Problem

_FIX = "write e.g. https://host:8443/path (port 1..65535)"


def check_http_url(value: str) -> str:
    """``value`` if httpx can send a request to it, else :class:`_Problem` (URL not echoed)."""
    try:
        url = httpx.URL(value)
        httpx.Request("GET", url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        reason = "invalid characters" if "character" in str(exc) else "not a valid URL"
        raise _Problem(f"the URL is {reason}", _FIX) from None
    if url.scheme not in ("http", "https"):
        raise _Problem("expected an http:// or https:// URL", _FIX)
    if not url.host:
        raise _Problem("the URL has no host", _FIX)
    if url.port is not None and not 1 <= url.port <= 65535:
        raise _Problem(f"port {url.port} is out of range", _FIX)
    return value
