"""What the emulated Kasa firmware says without any state: fixtures, canned answers, error codes.

Owns the loading of recorded device dumps (``watchdog/sim/fixtures``) and the scrubbing of
their identities, the services a plug answers, the answers of methods whose state we do not
model (``get_time`` included), and the firmware's ``err_code``/``err_msg`` pairs shared by the
device (:mod:`watchdog.sim.kasa_device`) and its count_down rules
(:mod:`watchdog.sim.kasa_countdown`).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

_STATE_SERVICES = ("system", "time", "schedule", "anti_theft", "count_down", "cnCloud")
_NO_RULES = {"rule_list": [], "version": 2, "enable": 0}
# Canned answers (None: just err_code 0) for what a plug answers without any state we model.
_STATIC: dict[str, dict[str, dict[str, Any] | None]] = {
    "system": {"reboot": None},  # a Kasa reboot keeps the relay state
    "emeter": {
        "get_daystat": {"day_list": []},
        "get_monthstat": {"month_list": []},
        "erase_emeter_stat": None,
    },
    "time": {
        "get_timezone": {"index": 38},  # "UCT" in python-kasa's index table
        "set_time": None,
        "set_timezone": None,
    },
    "schedule": {
        "get_rules": _NO_RULES,
        "get_next_action": {"type": -1},
        "get_daystat": {"day_list": []},
        "get_monthstat": {"month_list": []},
        "delete_all_rules": None,
        "set_overall_enable": None,
    },
    "anti_theft": {
        "get_rules": _NO_RULES,
        "get_next_action": {"type": -1},
        "delete_all_rules": None,
        "set_overall_enable": None,
    },
    "cnCloud": {
        "get_info": {
            "username": "",
            "server": "devs.tplinkcloud.com",
            "binded": 0,
            "cld_connection": 0,
            "illegalType": -1,
            "stopConnect": -1,
            "tcspStatus": -1,
            "fwDlPage": "",
            "tcspInfo": "",
            "fwNotifyType": 0,
        }
    },
}

Json = dict[str, Any]


def _err(code: int, msg: str) -> Json:
    return {"err_code": code, "err_msg": msg}


_MODULE_NOT_SUPPORTED = (-1, "module not support")
_MEMBER_NOT_SUPPORTED = (-2, "member not support")
# The firmware stores one countdown rule per outlet; the code for a second add_rule and for
# bad arguments is not documented, so these are the emulator's choice (clients only check
# err_code != 0).
_INVALID_ARGUMENT = (-3, "invalid argument")
_TABLE_FULL = (-10, "table is full")
_NO_ENTRY = (-14, "entry not exist")


def load_fixture(fixture: str) -> Json:
    """A recorded dump by name (shipped in ``watchdog/sim/fixtures``) or by path."""
    if fixture.endswith(".json") and Path(fixture).is_file():
        text = Path(fixture).read_text(encoding="utf-8")
    else:
        text = (resources.files("watchdog.sim") / "fixtures" / f"{fixture}.json").read_text(
            encoding="utf-8"
        )
    data: Json = json.loads(text)
    return data


def _scrub_identity(info: Json, fixture: str, alias: str | None) -> None:
    """Dumps are scrubbed: give the device and outlets stable, distinct names and ids."""
    model = str(info.get("model", "plug")).split("(")[0]
    if alias or "MASKED" in str(info.get("alias", "")):
        info["alias"] = alias or f"{model} emulator"
    if set(str(info.get("deviceId", "0"))) <= {"0"}:
        info["deviceId"] = uuid.uuid5(uuid.NAMESPACE_URL, fixture).hex.upper() + "00000000"
    for i, child in enumerate(info.get("children", [])):
        # Real strips name children <deviceId><two-digit index>.
        child["id"] = f"{info['deviceId']}{i:02d}"
        if "MASKED" in str(child.get("alias", "")) or not child.get("alias"):
            child["alias"] = f"outlet {i + 1}"


def _time_now() -> Json:
    """The answer to ``time.get_time``: the wall clock, in UTC."""
    now = datetime.now(UTC)
    return {
        "year": now.year,
        "month": now.month,
        "mday": now.day,
        "hour": now.hour,
        "min": now.minute,
        "sec": now.second,
    }
