"""The Kasa emulator, driven by the real python-kasa client over loopback.

If python-kasa can read, switch, meter and time-switch the emulated HS100/HS110/KP115 plugs
and HS300/KP303 strips, the emulator speaks the protocol well enough for everything built on
it. Faults (down, hang, bad credentials) must look to python-kasa as they do in the field.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from fixtures_sim import MakeEmulator
from kasa import Credentials, Device, DeviceConfig, Module
from kasa.deviceconfig import DeviceConnectionParameters, DeviceEncryptionType, DeviceFamily
from kasa.exceptions import AuthenticationError, KasaException
from kasa.transports.xortransport import XorEncryption

from watchdog.sim.kasa import KasaEmulator, PlugFault, xor_decrypt, xor_encrypt

HS110 = "HS110(EU)_1.0_1.2.5"
HS100 = "HS100(US)_2.0_1.5.6"
KP115 = "KP115(US)_1.0_1.0.21"
HS300 = "HS300(US)_2.0_1.0.12"
KP303 = "KP303(US)_2.0_1.0.9"


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Awaitable[Device]]]:
    devices: list[Device] = []

    async def open_device(
        emu: KasaEmulator, *, credentials: tuple[str, str] | None = None, timeout: int = 2
    ) -> Device:
        if credentials is None:
            ctype = DeviceConnectionParameters(
                DeviceFamily.IotSmartPlugSwitch, DeviceEncryptionType.Xor
            )
        else:
            ctype = DeviceConnectionParameters(
                DeviceFamily.IotSmartPlugSwitch, DeviceEncryptionType.Klap, login_version=2
            )
        config = DeviceConfig(
            host=emu.host,
            port_override=emu.port,
            timeout=timeout,
            credentials=Credentials(*credentials) if credentials else None,
            connection_type=ctype,
        )
        dev = await Device.connect(config=config)
        devices.append(dev)
        return dev

    yield open_device
    for dev in devices:
        await dev.disconnect()


async def raw_query(emu: KasaEmulator, request: dict[str, Any], timeout: float = 2.0) -> Any:
    """One request on a fresh TCP connection, without python-kasa."""
    reader, writer = await asyncio.open_connection(emu.host, emu.port)
    try:
        writer.write(xor_encrypt(json.dumps(request).encode()))
        await writer.drain()
        async with asyncio.timeout(timeout):
            length = int.from_bytes(await reader.readexactly(4), "big")
            return json.loads(xor_decrypt(await reader.readexactly(length)))
    finally:
        writer.close()


def test_the_xor_cipher_matches_python_kasas() -> None:
    text = '{"system":{"get_sysinfo":{}}}'
    assert xor_encrypt(text.encode()) == XorEncryption.encrypt(text)
    assert xor_decrypt(xor_encrypt(text.encode())[4:]).decode() == text


@pytest.mark.parametrize("fixture", [HS110, HS100, KP115])
async def test_python_kasa_reads_and_switches_a_single_plug(
    emulator: MakeEmulator, connect: Callable[..., Awaitable[Device]], fixture: str
) -> None:
    emu = await emulator(fixture, initial_on=True)
    dev = await connect(emu)
    assert type(dev).__name__ == "IotPlug"
    assert dev.model == fixture.split("(")[0]
    assert dev.alias == emu.alias()
    assert dev.is_on is True

    await dev.turn_off()
    await dev.update()
    assert dev.is_on is False
    assert emu.is_on() is False
    await dev.turn_on()
    await dev.update()
    assert dev.is_on is True
    assert [(e.outlet, e.on, e.cause) for e in emu.record] == [
        (0, False, "client"),
        (0, True, "client"),
    ]


@pytest.mark.parametrize("fixture", [HS110, KP115])
async def test_the_energy_meter_shows_the_load_only_while_the_relay_is_on(
    emulator: MakeEmulator, connect: Callable[..., Awaitable[Device]], fixture: str
) -> None:
    emu = await emulator(fixture, initial_on=True, on_watts=87.5)
    dev = await connect(emu)
    energy = dev.modules[Module.Energy]
    assert energy.current_consumption == pytest.approx(87.5, abs=0.01)
    assert energy.voltage is not None and energy.voltage > 100
    await dev.turn_off()
    await dev.update()
    assert dev.modules[Module.Energy].current_consumption == 0


async def test_a_plug_without_a_meter_has_no_energy_module(
    emulator: MakeEmulator, connect: Callable[..., Awaitable[Device]]
) -> None:
    dev = await connect(await emulator(HS100))
    assert Module.Energy not in dev.modules


async def test_strip_outlets_have_distinct_aliases_and_switch_independently(
    emulator: MakeEmulator, connect: Callable[..., Awaitable[Device]]
) -> None:
    emu = await emulator(HS300, initial_on=True, on_watts=90.0)
    strip = await connect(emu)
    assert type(strip).__name__ == "IotStrip"
    assert [c.alias for c in strip.children] == [f"outlet {i}" for i in range(1, 7)]

    await strip.children[3].turn_off()
    by_alias = strip.get_child_device("outlet 6")
    assert by_alias is not None
    await by_alias.turn_off()
    await strip.update()
    assert [c.is_on for c in strip.children] == [True, True, True, False, True, False]
    assert [(e.outlet, e.on) for e in emu.record] == [(3, False), (5, False)]
    assert strip.children[0].modules[Module.Energy].current_consumption == pytest.approx(90.0)
    assert strip.children[3].modules[Module.Energy].current_consumption == 0


async def test_a_kp303_strip_works_without_an_energy_meter(
    emulator: MakeEmulator, connect: Callable[..., Awaitable[Device]]
) -> None:
    emu = await emulator(KP303)
    strip = await connect(emu)
    assert len(strip.children) == 3
    assert Module.Energy not in strip.children[0].modules
    await strip.children[1].turn_on()
    assert emu.is_on(1) is True


async def test_a_count_down_rule_switches_the_plug_on_by_itself(
    emulator: MakeEmulator, connect: Callable[..., Awaitable[Device]]
) -> None:
    emu = await emulator(HS110, initial_on=True)
    dev = await connect(emu)
    answer = await dev.protocol.query(
        {"count_down": {"add_rule": {"enable": 1, "delay": 1, "act": 1, "name": "back on"}}}
    )
    assert answer["count_down"]["add_rule"]["err_code"] == 0
    await dev.turn_off()
    rules = (await dev.protocol.query({"count_down": {"get_rules": {}}}))["count_down"]
    assert rules["get_rules"]["rule_list"][0]["name"] == "back on"
    assert rules["get_rules"]["rule_list"][0]["remain"] in (0, 1)

    await asyncio.sleep(1.3)
    assert emu.is_on() is True
    assert [(e.on, e.cause) for e in emu.record] == [(False, "client"), (True, "countdown")]
    assert emu.record[1].at - emu.record[0].at == pytest.approx(1.0, abs=0.25)


async def test_a_count_down_rule_on_a_strip_outlet_switches_only_that_outlet(
    emulator: MakeEmulator, connect: Callable[..., Awaitable[Device]]
) -> None:
    emu = await emulator(HS300, initial_on=False)
    strip = await connect(emu)
    child = strip.children[2]
    await strip.protocol.query(
        {
            "context": {"child_ids": [child.child_id]},  # type: ignore[attr-defined]
            "count_down": {"add_rule": {"enable": 1, "delay": 1, "act": 1, "name": "x"}},
        }
    )
    assert [r.outlet for r in emu.rules] == [2]
    await asyncio.sleep(1.3)
    assert [emu.is_on(i) for i in range(6)] == [False, False, True, False, False, False]


async def test_count_down_rules_can_be_listed_edited_and_deleted(emulator: MakeEmulator) -> None:
    emu = await emulator(HS110, initial_on=False)
    add = await raw_query(
        emu, {"count_down": {"add_rule": {"enable": 1, "delay": 600, "act": 1, "name": "a"}}}
    )
    rule_id = add["count_down"]["add_rule"]["id"]
    second = await raw_query(
        emu, {"count_down": {"add_rule": {"enable": 1, "delay": 5, "act": 1, "name": "b"}}}
    )
    assert second["count_down"]["add_rule"]["err_code"] != 0  # one rule per outlet

    await raw_query(emu, {"count_down": {"edit_rule": {"id": rule_id, "delay": 300}}})
    assert emu.rules[0].delay == 300 and 299 <= emu.rules[0].remain <= 300
    await raw_query(emu, {"count_down": {"delete_all_rules": None}})
    assert emu.rules == []
    assert emu.record == []


async def test_unknown_services_and_methods_are_answered_like_real_firmware(
    emulator: MakeEmulator,
) -> None:
    emu = await emulator(HS100)
    answer = await raw_query(
        emu,
        {
            "countdown": {"get_rules": {}},  # python-kasa's wrong service name
            "emeter": {"get_realtime": {}},  # HS100 has no meter
            "system": {"self_destruct": {}},
        },
    )
    assert answer["countdown"] == {"err_code": -1, "err_msg": "module not support"}
    assert answer["emeter"] == {"err_code": -1, "err_msg": "module not support"}
    assert answer["system"]["self_destruct"]["err_code"] == -2


async def test_set_on_is_recorded_and_reported_to_on_change(emulator: MakeEmulator) -> None:
    emu = await emulator(HS300, initial_on=True)
    seen: list[tuple[int, bool]] = []
    emu.on_change = lambda outlet, on: seen.append((outlet, on))
    emu.set_on(False, outlet=4, cause="human")
    emu.set_on(False, outlet=4, cause="human")  # no change, no event
    assert seen == [(4, False)]
    assert [(e.outlet, e.on, e.cause) for e in emu.record] == [(4, False, "human")]
    with pytest.raises(IndexError):
        emu.set_on(True, outlet=6)


async def test_the_down_fault_refuses_connections_until_it_clears_on_the_same_port(
    emulator: MakeEmulator,
) -> None:
    emu = await emulator(HS110)
    port = emu.port
    await emu.set_fault(PlugFault.DOWN)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(emu.host, port)
    await emu.set_fault(PlugFault.NONE)
    assert emu.port == port
    answer = await raw_query(emu, {"system": {"get_sysinfo": {}}})
    assert answer["system"]["get_sysinfo"]["model"] == "HS110(EU)"


async def test_the_hang_fault_accepts_and_reads_but_never_answers(emulator: MakeEmulator) -> None:
    emu = await emulator(HS110)
    emu.fault = PlugFault.HANG
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await raw_query(emu, {"system": {"get_sysinfo": {}}}, timeout=0.3)
    assert time.monotonic() - started < 1.0
    assert emu.requests == type(emu.requests)()  # read but never handled
    emu.fault = PlugFault.NONE
    assert "system" in await raw_query(emu, {"system": {"get_sysinfo": {}}})


async def test_a_klap_plug_serves_python_kasa_with_the_right_credentials(
    emulator: MakeEmulator, connect: Callable[..., Awaitable[Device]]
) -> None:
    emu = await emulator(HS300, credentials=("ops@example.org", "hunter2"), initial_on=True)
    strip = await connect(emu, credentials=("ops@example.org", "hunter2"))
    await strip.children[1].turn_off()
    await strip.update()
    assert strip.children[1].is_on is False
    assert [(e.outlet, e.on) for e in emu.record] == [(1, False)]


async def test_a_klap_plug_rejects_wrong_credentials_as_python_kasa_expects(
    emulator: MakeEmulator, connect: Callable[..., Awaitable[Device]]
) -> None:
    emu = await emulator(HS110, credentials=("ops@example.org", "hunter2"))
    with pytest.raises(AuthenticationError):
        await connect(emu, credentials=("ops@example.org", "wrong"))
    assert "hunter2" not in repr(emu)


async def test_the_auth_fault_rejects_even_the_right_credentials(
    emulator: MakeEmulator, connect: Callable[..., Awaitable[Device]]
) -> None:
    emu = await emulator(HS110, credentials=("ops@example.org", "hunter2"))
    await emu.set_fault(PlugFault.AUTH)
    with pytest.raises(AuthenticationError):
        await connect(emu, credentials=("ops@example.org", "hunter2"))
    await emu.set_fault(PlugFault.NONE)
    assert (await connect(emu, credentials=("ops@example.org", "hunter2"))).alias


async def test_a_down_klap_plug_is_a_connection_error(
    emulator: MakeEmulator, connect: Callable[..., Awaitable[Device]]
) -> None:
    emu = await emulator(HS110, credentials=("ops@example.org", "hunter2"))
    await emu.set_fault(PlugFault.DOWN)
    with pytest.raises(KasaException):
        await connect(emu, credentials=("ops@example.org", "hunter2"), timeout=1)
