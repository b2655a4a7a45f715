"""The Plug drivers against the emulator: the native XOR driver and KasaPlug (python-kasa)
for legacy plugs, KasaPlug alone for KLAP, and DryRunPlug.

Each test of a legacy plug runs against both drivers (``driver``: native, python-kasa) and
reads the outcome from the emulator's own record, never from the driver.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fixtures_sim import MakeEmulator
from kasa.exceptions import AuthenticationError, KasaException
from kasa.exceptions import TimeoutError as KasaTimeoutError

from watchdog.config import Plug as PlugConfig
from watchdog.core.errors import ConfigError, PlugError, PlugFailure
from watchdog.core.model import FailureKind, PlugReading
from watchdog.plugs import DryRunPlug, Plug, make_plug
from watchdog.plugs.kasa import KasaPlug, classify
from watchdog.plugs.kasa_iot import TIMER_NAME
from watchdog.plugs.kasa_xor import XorKasaPlug
from watchdog.sim.kasa import KasaEmulator, PlugFault

HS110 = "HS110(EU)_1.0_1.2.5"
HS100 = "HS100(US)_2.0_1.5.6"
KP115 = "KP115(US)_1.0_1.0.21"
HS300 = "HS300(US)_2.0_1.0.12"
USER, PASSWORD = "ops@example.org", "correct-horse-battery"


AnyKasa = XorKasaPlug | KasaPlug
MakePlug = Callable[..., AnyKasa]
DRIVERS: dict[str, type[AnyKasa]] = {"native": XorKasaPlug, "python-kasa": KasaPlug}


@pytest.fixture(params=sorted(DRIVERS))
def driver(request: pytest.FixtureRequest) -> type[AnyKasa]:
    """Each driver of a legacy (XOR) plug in turn."""
    return DRIVERS[request.param]


@asynccontextmanager
async def plugs_made(tmp_path: Path, default: type[AnyKasa]) -> AsyncIterator[MakePlug]:
    """``make(emu, **plug_fields)``: a ``default`` driver (``cls=`` another one) for ``emu``,
    closed at the end; ``credentials=(user, password)`` are written to files, by reference."""
    plugs: list[AnyKasa] = []

    def make(emu: KasaEmulator, *, cls: type[AnyKasa] | None = None, **fields: Any) -> AnyKasa:
        data: dict[str, Any] = {"type": "kasa", "host": emu.host, "port": emu.port, "timeout": 1}
        credentials = fields.pop("credentials", None)
        if credentials is not None:
            (tmp_path / "user").write_text(credentials[0])
            (tmp_path / "password").write_text(credentials[1])
            data |= {
                "username_file": str(tmp_path / "user"),
                "password_file": str(tmp_path / "password"),
            }
        plug = (cls or default)(PlugConfig.model_validate(data | fields), label="spark-1")
        plugs.append(plug)
        return plug

    try:
        yield make
    finally:
        for plug in plugs:
            await plug.close()


@pytest.fixture
async def plug_for(tmp_path: Path, driver: type[AnyKasa]) -> AsyncIterator[MakePlug]:
    """The driver under test, for a legacy (XOR) plug."""
    async with plugs_made(tmp_path, driver) as make:
        yield make


@pytest.fixture
async def kasa_plug_for(tmp_path: Path) -> AsyncIterator[MakePlug]:
    """python-kasa unless ``cls=`` says otherwise, not once per driver (KLAP is python-kasa's
    alone)."""
    async with plugs_made(tmp_path, KasaPlug) as make:
        yield make


@pytest.mark.parametrize(("fixture", "watts"), [(HS110, 90.0), (KP115, 90.0), (HS100, None)])
async def test_it_reads_relay_state_and_power_draw(
    emulator: MakeEmulator, plug_for: MakePlug, fixture: str, watts: float | None
) -> None:
    emu = await emulator(fixture, initial_on=True)
    reading = await plug_for(emu).read()
    assert reading.reachable and reading.is_on is True and reading.failure is None
    assert reading.watts == (pytest.approx(watts) if watts is not None else None)
    emu.set_on(False)
    reading = await plug_for(emu).read()
    assert reading.is_on is False
    assert reading.watts == (0 if watts is not None else None)


async def test_it_switches_a_single_plug_off_and_on(
    emulator: MakeEmulator, plug_for: MakePlug
) -> None:
    emu = await emulator(HS110, initial_on=True)
    plug = plug_for(emu)
    await plug.turn_off()
    assert await plug.is_on() is False
    await plug.turn_on()
    assert await plug.is_on() is True
    assert [(e.on, e.cause) for e in emu.record] == [(False, "client"), (True, "client")]


@pytest.mark.parametrize("outlet", [4, "outlet 5", "OUTLET 5"])
async def test_it_switches_only_the_configured_strip_outlet(
    emulator: MakeEmulator, plug_for: MakePlug, outlet: int | str
) -> None:
    emu = await emulator(HS300, initial_on=True)
    plug = plug_for(emu, outlet=outlet)
    await plug.turn_off()
    assert await plug.is_on() is False
    assert [(e.outlet, e.on) for e in emu.record] == [(4, False)]
    assert [emu.is_on(i) for i in range(6)] == [True, True, True, True, False, True]
    reading = await plug.read()
    assert reading.is_on is False and reading.watts == 0 and reading.detail == "outlet 5"


@pytest.mark.parametrize(
    ("fixture", "outlet"), [(HS300, 6), (HS300, "outlet 9"), (HS300, None), (HS110, 0)]
)
async def test_a_missing_outlet_is_a_no_outlet_error(
    emulator: MakeEmulator, plug_for: MakePlug, fixture: str, outlet: Any
) -> None:
    emu = await emulator(fixture, initial_on=True)
    plug = plug_for(emu, outlet=outlet)
    with pytest.raises(PlugError) as info:
        await plug.turn_off()
    assert info.value.kind is PlugFailure.NO_OUTLET
    reading = await plug.read()
    assert not reading.reachable and reading.failure is FailureKind.PLUG_ERROR
    assert emu.record == []


@pytest.mark.parametrize(("fixture", "outlet"), [(HS110, None), (HS300, "outlet 2")])
async def test_the_armed_timer_switches_the_outlet_back_on_by_itself(
    emulator: MakeEmulator, plug_for: MakePlug, fixture: str, outlet: Any
) -> None:
    emu = await emulator(fixture, initial_on=True)
    plug = plug_for(emu, outlet=outlet)
    index = 1 if outlet else 0
    assert plug.supports_timer
    assert await plug.arm_on_timer(0.4) is True  # rounded up to the firmware's whole second
    assert [(r.name, r.delay, r.act, r.outlet) for r in emu.rules] == [(TIMER_NAME, 1, True, index)]
    await plug.turn_off()
    await asyncio.sleep(1.3)
    assert emu.is_on(index) is True
    assert [(e.outlet, e.on, e.cause) for e in emu.record] == [
        (index, False, "client"),
        (index, True, "countdown"),
    ]


async def test_arming_again_replaces_the_rule_and_disarming_removes_it(
    emulator: MakeEmulator, plug_for: MakePlug
) -> None:
    emu = await emulator(HS110)
    plug = plug_for(emu)
    assert await plug.arm_on_timer(90)
    assert await plug.arm_on_timer(120)
    assert [r.delay for r in emu.rules] == [120]
    await plug.disarm_timer()
    assert emu.rules == []


async def test_with_device_timer_off_it_never_arms(
    emulator: MakeEmulator, plug_for: MakePlug
) -> None:
    emu = await emulator(HS110)
    plug = plug_for(emu, device_timer=False)
    assert plug.supports_timer is False
    assert await plug.arm_on_timer(90) is False
    await plug.disarm_timer()
    assert emu.rules == [] and not [r for r in emu.requests if "count_down" in r]


async def test_a_down_plug_reads_unreachable_and_switching_raises_unreachable(
    emulator: MakeEmulator, plug_for: MakePlug
) -> None:
    emu = await emulator(HS110, initial_on=True)
    plug = plug_for(emu)
    assert (await plug.read()).reachable  # connected and cached: the fault must still show
    await emu.set_fault(PlugFault.DOWN)
    reading = await plug.read()
    assert reading.reachable is False and reading.failure is FailureKind.PLUG_UNREACHABLE
    assert "spark-1" in reading.detail
    with pytest.raises(PlugError) as info:
        await plug.turn_off()
    assert info.value.kind is PlugFailure.UNREACHABLE
    assert info.value.__cause__ is not None  # the driver's own error, kept for the log

    await emu.set_fault(PlugFault.NONE)  # it reconnects by itself
    await plug.turn_off()
    assert emu.is_on() is False


async def test_a_hanging_plug_times_out_within_python_kasas_retry_bound(
    emulator: MakeEmulator, kasa_plug_for: MakePlug
) -> None:
    """SLOW (~7 s): each driver tries 4 times at timeout 1 s with 1 s pauses (4 x 1 + 3 s).

    The only test that waits out the retries of a silent plug; both drivers read and switch
    at once, so the bound is paid once.
    """
    emu = await emulator(HS110, initial_on=True)
    emu.fault = PlugFault.HANG
    started = time.monotonic()

    async def switch_off(plug: AnyKasa) -> PlugError:
        with pytest.raises(PlugError) as info:
            await plug.turn_off()
        return info.value

    results = await asyncio.gather(
        *(kasa_plug_for(emu, cls=cls).read() for cls in DRIVERS.values()),
        *(switch_off(kasa_plug_for(emu, cls=cls)) for cls in DRIVERS.values()),
    )
    elapsed = time.monotonic() - started
    assert elapsed < 4 * 1 + 3 + 2.5
    readings, errors = results[: len(DRIVERS)], results[len(DRIVERS) :]
    for error in errors:
        assert isinstance(error, PlugError) and error.kind is PlugFailure.TIMEOUT
    for reading in readings:
        assert isinstance(reading, PlugReading)
        assert reading.reachable is False and reading.failure is FailureKind.PLUG_UNREACHABLE
        assert "timeout" in reading.detail


async def test_wrong_credentials_are_an_auth_error_that_never_shows_the_secret(
    emulator: MakeEmulator, kasa_plug_for: MakePlug
) -> None:
    emu = await emulator(HS110, credentials=(USER, "the-real-password"))
    plug = kasa_plug_for(emu, credentials=(USER, PASSWORD))
    with pytest.raises(PlugError) as info:
        await plug.turn_off()
    err = info.value
    assert err.kind is PlugFailure.AUTH
    assert isinstance(err.__cause__, AuthenticationError)
    reading = await plug.read()
    assert reading.failure is FailureKind.PLUG_AUTH
    for text in (str(err), repr(err), repr(plug), reading.detail, repr(reading)):
        assert PASSWORD not in text and USER not in text
    assert emu.record == []


async def test_the_right_credentials_switch_a_klap_strip_outlet(
    emulator: MakeEmulator, kasa_plug_for: MakePlug
) -> None:
    emu = await emulator(HS300, credentials=(USER, PASSWORD), initial_on=True)
    plug = kasa_plug_for(emu, credentials=(USER, PASSWORD), outlet=0)
    await plug.turn_off()
    assert await plug.arm_on_timer(60)
    assert [(e.outlet, e.on) for e in emu.record] == [(0, False)]
    assert [r.outlet for r in emu.rules] == [0]


def test_kasa_exceptions_map_onto_plug_failures() -> None:
    def wrapped(cause: BaseException) -> KasaException:
        try:
            try:
                raise cause
            except BaseException as exc:
                raise KasaException("Communication error on system:set_relay_state") from exc
        except KasaException as outer:
            return outer

    assert classify(AuthenticationError("no")) is PlugFailure.AUTH
    assert classify(wrapped(KasaTimeoutError("Timeout after 1 seconds"))) is PlugFailure.TIMEOUT
    assert classify(wrapped(ConnectionRefusedError(111, "refused"))) is PlugFailure.UNREACHABLE
    assert classify(wrapped(OSError(113, "No route to host"))) is PlugFailure.UNREACHABLE
    assert classify(KasaException("Error on system.set_relay_state: -3")) is PlugFailure.PROTOCOL


def test_a_tapo_plug_cannot_be_configured_for_xor(tmp_path: Path) -> None:
    (tmp_path / "u").write_text(USER)
    (tmp_path / "p").write_text(PASSWORD)
    cfg = PlugConfig.model_validate(
        {
            "type": "tapo",
            "host": "127.0.0.1",
            "encryption": "xor",
            "username_file": str(tmp_path / "u"),
            "password_file": str(tmp_path / "p"),
        }
    )
    with pytest.raises(ConfigError) as info:
        make_plug(cfg, label="spark-1")
    assert PASSWORD not in str(info.value)


def test_make_plug_picks_the_driver(tmp_path: Path) -> None:
    kasa = PlugConfig.model_validate({"type": "kasa", "host": "127.0.0.1"})
    assert isinstance(make_plug(kasa, label="n1"), XorKasaPlug)
    wrapped = make_plug(kasa, label="n1", dry_run=True)
    assert isinstance(wrapped, DryRunPlug) and isinstance(wrapped.inner, XorKasaPlug)
    (tmp_path / "u").write_text(USER)
    (tmp_path / "p").write_text(PASSWORD)
    secrets = {"username_file": str(tmp_path / "u"), "password_file": str(tmp_path / "p")}
    for fields in (
        {"type": "kasa", "host": "127.0.0.1", "encryption": "klap"},
        {"type": "kasa", "host": "127.0.0.1", "encryption": "aes"},
        {"type": "kasa", "host": "127.0.0.1"} | secrets,  # credentials: KLAP by default
        {"type": "tapo", "host": "127.0.0.1"} | secrets,
    ):
        assert isinstance(make_plug(PlugConfig.model_validate(fields), label="n1"), KasaPlug)
    bare = make_plug(PlugConfig.model_validate({"type": "dry_run"}), label="n1")
    assert isinstance(bare, DryRunPlug) and bare.inner is None
    assert all(isinstance(p, Plug) for p in (wrapped, bare))


async def test_a_dry_run_plug_reads_the_device_but_never_switches_it(
    emulator: MakeEmulator, plug_for: MakePlug, caplog: pytest.LogCaptureFixture
) -> None:
    emu = await emulator(HS110, initial_on=True)
    plug = DryRunPlug(plug_for(emu), "spark-1")
    caplog.set_level(logging.INFO, logger="watchdog.plugs")
    assert await plug.arm_on_timer(90) is True
    await plug.turn_off()
    assert await plug.is_on() is False  # virtually
    reading = await plug.read()
    assert reading.reachable and reading.is_on is False and "really on" in reading.detail
    await plug.turn_on()
    assert await plug.is_on() is True
    assert emu.record == [] and emu.rules == []
    assert not [r for r in emu.requests if "count_down" in r or "set_relay_state" in str(r)]
    assert any(r["system"].get("get_sysinfo") is not None for r in emu.requests if "system" in r)
    assert "dry run: would switch off spark-1" in caplog.text


async def test_a_dry_run_plug_still_reports_an_unusable_plug(
    emulator: MakeEmulator, plug_for: MakePlug
) -> None:
    emu = await emulator(HS110)
    await emu.set_fault(PlugFault.DOWN)
    plug = DryRunPlug(plug_for(emu), "spark-1")
    assert (await plug.read()).failure is FailureKind.PLUG_UNREACHABLE
    with pytest.raises(PlugError):
        await plug.is_on()


@pytest.mark.parametrize(
    "text",
    ["", "{}", '{"system":{"get_sysinfo":{"relay_state":1,"alias":"n\\u00e9"}}}', "x" * 5000],
)
def test_the_xor_cipher_is_python_kasas_both_ways(text: str) -> None:
    from kasa.transports.xortransport import XorEncryption

    from watchdog.plugs.kasa_wire import decrypt, encrypt

    framed = XorEncryption.encrypt(text)
    assert encrypt(text) == framed
    cipher = framed[4:]  # without the length prefix
    assert decrypt(cipher) == XorEncryption.decrypt(cipher) == text
