"""The HTTP client the alert channels and the heartbeat share, built when first needed.

A daemon that never pages needs no HTTP client library: :class:`LazyClient` holds the
factory (the daemon passes :func:`watchdog.probes.http.make_client`) and builds the httpx
client at the first send, so httpx is imported then and not at start. :func:`http_client`
gives the channels a real client from either a :class:`LazyClient` or an httpx client
(commands and tests pass one directly).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    import httpx

    HttpClient: TypeAlias = "httpx.AsyncClient | LazyClient"


class LazyClient:
    """An httpx client made by ``factory`` on first use; closing an unbuilt one is a no-op."""

    def __init__(self, factory: Callable[[], httpx.AsyncClient]) -> None:
        self._factory = factory
        self._client: httpx.AsyncClient | None = None

    @property
    def built(self) -> bool:
        return self._client is not None

    def get(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._factory()
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def http_client(client: HttpClient) -> httpx.AsyncClient:
    """The httpx client behind ``client`` (built now if it is a :class:`LazyClient`)."""
    return client.get() if isinstance(client, LazyClient) else client
