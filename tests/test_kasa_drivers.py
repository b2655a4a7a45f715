"""The native XOR driver and python-kasa agree on every recorded device, and the daemon only
imports python-kasa when a plug needs it.

Differential: for each recorded dump shipped with the emulator (single plugs and strips,
every outlet), both drivers read the same :class:`PlugReading` from the same emulator, each
sees what the other switched, and both send the same ``set_relay_state`` and ``count_down``
requests. Import isolation runs in a fresh interpreter, as the daemon starts.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import pytest
from fixtures_sim import MakeEmulator

from watchdog.config import Plug as PlugConfig
from watchdog.core.errors import PlugError, PlugFailure
from watchdog.plugs.kasa import KasaPlug
from watchdog.plugs.kasa_iot import BadAnswer, read_outlet, realtime_watts
from watchdog.plugs.kasa_xor import XorKasaPlug
from watchdog.sim.kasa import KasaEmulator, load_fixture

AnyKasa = XorKasaPlug | KasaPlug
FIXTURES = sorted(
    p.name.removesuffix(".json")
    for p in (resources.files("watchdog.sim") / "fixtures").iterdir()
    if p.name.endswith(".json")
)


def outlets(fixture: str) -> list[int | None]:
    children = load_fixture(fixture)["system"]["get_sysinfo"].get("children")
    return list(range(len(children))) if children else [None]


CASES = [(fixture, outlet) for fixture in FIXTURES for outlet in outlets(fixture)]


@pytest.fixture
async def pair() -> AsyncIterator[Any]:
    """``pair(emu, outlet)``: the native driver and python-kasa on the same outlet."""
    made: list[AnyKasa] = []

    def make(emu: KasaEmulator, outlet: int | str | None) -> tuple[XorKasaPlug, KasaPlug]:
        data = {"type": "kasa", "host": emu.host, "port": emu.port, "timeout": 2, "outlet": outlet}
        cfg = PlugConfig.model_validate(data)
        native, kasa = XorKasaPlug(cfg, label="spark-1"), KasaPlug(cfg, label="spark-1")
        made.extend((native, kasa))
        return native, kasa

    yield make
    for plug in made:
        await plug.close()


def test_every_recorded_device_is_compared() -> None:
    assert {"HS100(US)_2.0_1.5.6", "HS110(EU)_1.0_1.2.5", "HS300(US)_2.0_1.0.12"} <= set(FIXTURES)
    assert any(o is not None for _, o in CASES) and any(o is None for _, o in CASES)


@pytest.mark.parametrize(("fixture", "outlet"), CASES)
async def test_both_drivers_read_the_same_and_see_each_others_switching(
    emulator: MakeEmulator, pair: Any, fixture: str, outlet: int | None
) -> None:
    emu = await emulator(fixture, initial_on=True)
    emu.load = {i: 10.5 + i for i in range(emu.outlets)}  # each outlet draws its own
    native, kasa = pair(emu, outlet)
    first = await native.read()
    assert first == await kasa.read()
    assert first.reachable and first.is_on is True
    for actor, witness in ((native, kasa), (kasa, native)):
        for on in (False, True):
            await (actor.turn_on() if on else actor.turn_off())
            seen = await witness.read()
            assert seen == await actor.read()
            assert seen.is_on is on and await witness.is_on() is on
            assert emu.is_on(outlet or 0) is on
    assert [e.outlet for e in emu.record] == [outlet or 0] * 4  # no other outlet touched


@pytest.mark.parametrize(("fixture", "outlet"), CASES)
async def test_both_drivers_send_the_same_switching_and_timer_requests(
    emulator: MakeEmulator, pair: Any, fixture: str, outlet: int | None
) -> None:
    emu = await emulator(fixture, initial_on=True)
    native, kasa = pair(emu, outlet)

    async def sent(plug: AnyKasa, what: str, *args: Any) -> tuple[Any, list[dict[str, Any]]]:
        before = len(emu.requests)
        outcome = await getattr(plug, what)(*args)
        new = list(emu.requests)[before:]
        return outcome, [r for r in new if "count_down" in r or "set_relay_state" in str(r)]

    def rules() -> list[tuple[str, bool, int, bool, int | None]]:
        return [(r.name, r.enable, r.delay, r.act, r.outlet) for r in emu.rules]

    armed, by_native = await sent(native, "arm_on_timer", 90)
    assert armed is True and rules() == [("cluster-watchdog", True, 90, True, outlet or 0)]
    native_rules = rules()
    await sent(kasa, "disarm_timer")
    assert emu.rules == []
    armed, by_kasa = await sent(kasa, "arm_on_timer", 90)
    assert armed is True and rules() == native_rules and by_kasa == by_native
    _, cleared_by_native = await sent(native, "disarm_timer")
    assert emu.rules == []
    _, cleared_by_kasa = await sent(kasa, "disarm_timer")
    assert cleared_by_kasa == cleared_by_native
    for on in (False, True):
        what = "turn_on" if on else "turn_off"
        assert (await sent(native, what))[1] == (await sent(kasa, what))[1]


@pytest.mark.parametrize(
    ("fixture", "outlet"),
    [
        ("HS300(US)_2.0_1.0.12", None),
        ("HS300(US)_2.0_1.0.12", 6),
        ("KP303(US)_2.0_1.0.9", "outlet 9"),
        ("HS110(EU)_1.0_1.2.5", 0),
    ],
)
async def test_both_drivers_refuse_a_missing_outlet_with_the_same_words(
    emulator: MakeEmulator, pair: Any, fixture: str, outlet: int | str | None
) -> None:
    emu = await emulator(fixture)
    errors = []
    for plug in pair(emu, outlet):
        with pytest.raises(PlugError) as caught:
            await plug.turn_off()
        errors.append(caught.value)
        assert caught.value.kind is PlugFailure.NO_OUTLET
    assert str(errors[0]) == str(errors[1])
    assert emu.record == []


# --------------------------------------------------------------------------- answers read
@pytest.mark.parametrize(
    ("answer", "watts"),
    [
        ({"emeter": {"get_realtime": {"power": 12.5, "err_code": 0}}}, 12.5),
        ({"emeter": {"get_realtime": {"power_mw": 12500, "err_code": 0}}}, 12.5),
        (
            {"emeter": {"get_realtime": {"power": 3, "power_mw": 9}}},
            3.0,
        ),  # W wins, as in python-kasa
        ({"emeter": {"err_code": -1, "err_msg": "module not support"}}, None),
        ({"emeter": {"get_realtime": {"err_code": -2, "err_msg": "member not support"}}}, None),
        ({"emeter": {"get_realtime": {"voltage": 230.0}}}, None),
    ],
)
def test_the_meter_answer_is_read_in_watts(answer: dict[str, Any], watts: float | None) -> None:
    assert realtime_watts(answer) == watts


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"emeter": "on"},
        {"emeter": {"get_realtime": [1]}},
        {"emeter": {"get_realtime": {"power": "12"}}},
        {"emeter": {"get_realtime": {"power_mw": True}}},
        {"emeter": {"get_realtime": {"power": float("nan")}}},
    ],
)
def test_a_wrong_typed_meter_answer_is_a_bad_answer(answer: dict[str, Any]) -> None:
    with pytest.raises(BadAnswer):
        realtime_watts(answer)


def sysinfo(**info: Any) -> dict[str, Any]:
    return {"system": {"get_sysinfo": {"alias": "n1", "feature": "TIM:ENE"} | info}}


@pytest.mark.parametrize(
    ("answer", "outlet"),
    [
        (sysinfo(relay_state=2), None),
        (sysinfo(relay_state="1"), None),
        (sysinfo(relay_state=1, feature=7), None),
        (sysinfo(children="many"), 0),
        (sysinfo(children=[{"alias": "a", "state": 1}]), 0),  # no id
        (sysinfo(children=[{"id": "X00", "alias": "a", "state": None}]), "A"),
        ({"system": {"get_sysinfo": {"err_code": -1}}}, None),
        ({"system": "down"}, None),
    ],
)
def test_a_wrong_typed_sysinfo_is_a_bad_answer(answer: dict[str, Any], outlet: Any) -> None:
    with pytest.raises(BadAnswer):
        read_outlet(answer, outlet, "n1")


def test_a_strip_outlet_is_addressed_by_the_id_the_device_reports() -> None:
    children = [{"id": "00", "alias": "a", "state": 0}, {"id": "01", "alias": "B", "state": 1}]
    outlet = read_outlet(sysinfo(children=children), "b", "n1")
    assert (outlet.child_id, outlet.is_on, outlet.alias, outlet.metered) == ("01", True, "B", True)


# --------------------------------------------------------------------------- import isolation
def imported_after(code: str) -> dict[str, bool]:
    """Run ``code`` in a fresh interpreter; which heavy libraries it imported."""
    probe = textwrap.dedent(code) + textwrap.dedent(
        """
        import json as _json, sys as _sys
        print(_json.dumps({m: m in _sys.modules for m in ("kasa", "cryptography", "aiohttp")}))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    found: dict[str, bool] = json.loads(run.stdout.splitlines()[-1])
    return found


def test_the_daemon_starts_without_python_kasa_or_cryptography() -> None:
    found = imported_after("import watchdog.service.daemon, watchdog.plugs")
    assert found["kasa"] is False and found["cryptography"] is False


async def test_a_daemon_with_only_legacy_plugs_reads_them_without_python_kasa(
    emulator: MakeEmulator,
) -> None:
    # The emulators serve from this process (they import aiohttp and cryptography for KLAP);
    # the daemon's wiring builds and reads the plugs in a fresh one.
    single, strip = await emulator("HS110(EU)_1.0_1.2.5"), await emulator("HS300(US)_2.0_1.0.12")
    plugs = (
        f"{{type: kasa, host: 127.0.0.1, port: {single.port}}}",
        f"{{type: kasa, host: 127.0.0.1, port: {strip.port}, outlet: 1, encryption: xor}}",
    )
    code = f"""
        import asyncio
        from watchdog.config import parse_config
        from watchdog.service.wiring import build_plugs

        cfg = parse_config('''
        clusters:
          - name: c
            endpoint: {{base_url: 'http://127.0.0.1:1', model: m, round_trip: false}}
            nodes:
              - {{name: n1, host: 127.0.0.1, plug: {plugs[0]}}}
              - {{name: n2, host: 127.0.0.2, plug: {plugs[1]}}}
        ''')

        async def main():
            for plug in build_plugs(cfg).values():
                assert (await plug.read()).reachable, plug
                await plug.close()

        asyncio.run(main())
    """
    found = await asyncio.to_thread(imported_after, code)
    assert found["kasa"] is False and found["cryptography"] is False
    assert len(single.requests) >= 1 and len(strip.requests) >= 1  # they were read


def test_building_a_klap_plug_imports_python_kasa() -> None:
    found = imported_after(
        """
        from watchdog.config import Plug
        from watchdog.plugs import make_plug

        make_plug(Plug.model_validate({"type": "kasa", "host": "127.0.0.1"}), label="n1")
        import sys
        assert "kasa" not in sys.modules
        make_plug(
            Plug.model_validate({"type": "kasa", "host": "127.0.0.1", "encryption": "klap"}),
            label="n2",
        )
        """
    )
    assert found["kasa"] is True
