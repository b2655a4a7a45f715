"""The Kasa/Tapo device-side switch-on timer: the backstop that powers a node on by itself.

docs/design.md, "Crash safety": before a power cycle switches the outlet off, a rule on the
device switches it back on after a delay, so a watchdog that dies mid-cycle never leaves a
node off. Legacy Kasa firmware has a ``count_down`` rule; python-kasa's ``Countdown`` module
asks for the service ``countdown`` (wrong name), so the rule is set through the raw protocol
query, the one the native XOR driver sends too (:mod:`.kasa_iot`). Tapo firmware has
``add_countdown_rule`` on its own API; that path follows the published method shape but has
no emulator to test it against. Each function returns False
when the device has no such service; :class:`watchdog.plugs.kasa.KasaPlug` then stops asking.
A wrong answer is a :class:`~watchdog.core.errors.PlugError`, its text made printable.
"""

from __future__ import annotations

from typing import Any

from kasa import Device
from kasa.exceptions import DeviceError, SmartErrorCode
from kasa.iot import IotDevice

from watchdog.plugs.kasa_iot import countdown_done, countdown_request

_UNSUPPORTED_SMART = {SmartErrorCode.UNKNOWN_METHOD_ERROR, SmartErrorCode.PARAMS_ERROR}


async def iot_countdown(dev: IotDevice, target: Device, seconds: int | None, label: str) -> bool:
    """Replace the outlet's count_down rule by ours (``seconds``) or by none."""
    child_id = None if target is dev else target.child_id  # type: ignore[attr-defined]
    query, calls = countdown_request(seconds, child_id)
    return countdown_done(await dev.protocol.query(query), calls, label)


async def smart_countdown(target: Any, seconds: int | None) -> bool:
    """Tapo / smart firmware: one countdown rule per device, edited in place."""
    try:
        listed = await target._query_helper("get_countdown_rules")
        rules = listed.get("get_countdown_rules", listed).get("rule_list", [])
        if seconds is None:
            for rule in rules:
                await target._query_helper("edit_countdown_rule", {**rule, "enable": False})
            return True
        params = {
            "delay": seconds,
            "desired_states": {"on": True},
            "enable": True,
            "remain": seconds,
        }
        if rules:
            await target._query_helper("edit_countdown_rule", {**params, "id": rules[0]["id"]})
        else:
            await target._query_helper("add_countdown_rule", params)
        return True
    except DeviceError as exc:
        if exc.error_code in _UNSUPPORTED_SMART:
            return False
        raise
