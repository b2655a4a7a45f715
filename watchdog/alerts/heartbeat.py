"""Dead-man switch: ping a healthchecks.io-style URL every cycle so on-call learns when the
watchdog itself stops.

A successful cycle GETs the URL; a cycle that wants to report its own trouble GETs
``<url>/fail`` (healthchecks.io's convention). The service alerts when pings stop. The URL
embeds the check's secret, so it never appears in a log line or an exception.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from pydantic import SecretStr

from watchdog.alerts.client import http_client
from watchdog.edge.bounded import IDENTITY, BodyRefused, read_body

if TYPE_CHECKING:
    from watchdog.alerts.client import HttpClient

log = logging.getLogger("watchdog.alerts")
_MAX_ANSWER = 65536  # a ping service answers "OK"; anything longer is not one


def fail_url(url: str) -> str:
    """``url`` with ``/fail`` appended to its path (query string kept)."""
    import httpx  # a ping is being sent: the client has imported it already

    parsed = httpx.URL(url)
    return str(parsed.copy_with(path=parsed.path.rstrip("/") + "/fail"))


class Heartbeat:
    """Pings the dead-man URL; never raises, so a ping can never stall the daemon's loop."""

    def __init__(self, url: SecretStr, client: HttpClient, *, timeout: float) -> None:
        self._url = url
        self._client = client
        self._timeout = timeout
        self.failures = 0  # consecutive failed pings, for status

    def __repr__(self) -> str:
        return "Heartbeat(url=***)"

    async def ping(self, *, ok: bool = True) -> bool:
        """GET the URL (``/fail`` when not ``ok``); return whether the service took it."""
        import httpx  # at the first ping, not at start

        what = "ok" if ok else "fail"
        try:
            base = self._url.get_secret_value()
            url = base if ok else fail_url(base)
            # One deadline for the whole exchange: httpx's timeouts are per read.
            async with (
                asyncio.timeout(self._timeout),
                http_client(self._client).stream(
                    "GET", url, headers={"Accept-Encoding": IDENTITY}, timeout=self._timeout
                ) as response,
            ):
                await read_body(response, _MAX_ANSWER)  # bounded; the content is not used
        except BodyRefused as exc:
            problem = f"answer refused ({exc})"
        except TimeoutError:
            problem = f"no complete answer within {self._timeout:g}s"
        except httpx.TimeoutException as exc:
            problem = f"timed out after {self._timeout:g}s ({type(exc).__name__})"
        except httpx.TransportError as exc:
            problem = f"connection failed ({type(exc).__name__})"
        except Exception as exc:  # a bad URL must not kill the loop either
            problem = f"could not send ({type(exc).__name__})"
        else:
            if response.is_success:
                if self.failures:
                    log.info("heartbeat ping delivered again after %d failures", self.failures)
                self.failures = 0
                return True
            problem = f"HTTP {response.status_code}"
        self.failures += 1
        # The URL is the secret: say only what failed.
        log.warning("heartbeat ping (%s) failed: %s", what, problem)
        return False
