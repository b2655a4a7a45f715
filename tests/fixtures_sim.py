"""Fixtures for the simulators several test files share: Kasa plug emulators, an alert
receiver and a plain HTTP client (all on loopback, all stopped at teardown)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from watchdog.sim.kasa import KasaEmulator
from watchdog.sim.receiver import AlertReceiver

HS110 = "HS110(EU)_1.0_1.2.5"
MakeEmulator = Callable[..., Awaitable[KasaEmulator]]


@pytest.fixture
async def emulator() -> AsyncIterator[MakeEmulator]:
    """A factory of started Kasa emulators (``await emulator(fixture, **kwargs)``)."""
    started: list[KasaEmulator] = []

    async def make(fixture: str = HS110, **kwargs: Any) -> KasaEmulator:
        emu = KasaEmulator(fixture, **kwargs)
        await emu.start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        await emu.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[AlertReceiver]:
    r = AlertReceiver()
    await r.start()
    yield r
    await r.stop()


# One TLS context for every test client, as the daemon's probe suite shares one: building it
# (loading the CA bundle) costs more than the rest of a client, and the tests speak plain HTTP.
TLS = httpx.create_ssl_context(trust_env=False)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: a proxy from the environment must never see loopback test traffic.
    async with httpx.AsyncClient(trust_env=False, verify=TLS) as c:
        yield c
