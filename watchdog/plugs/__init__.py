"""Power switches: the Plug interface, its drivers and the one power-cycle procedure.

Orchestration uses :class:`Plug`, :func:`make_plug`, :func:`power_cycle` and
:func:`ensure_on`. Legacy (XOR) Kasa plugs are driven natively (:mod:`watchdog.plugs.kasa_xor`
over ``kasa_wire``, with ``kasa_iot``); only :mod:`watchdog.plugs.kasa` (with its
``kasa_bounded`` and ``kasa_timer``) knows python-kasa, and :func:`make_plug` imports it only
for a KLAP, AES or Tapo plug.
"""

from watchdog.plugs.base import Plug, failure_kind, unreachable_reading
from watchdog.plugs.cycle import ensure_on, power_cycle
from watchdog.plugs.cycle_steps import CycleOutcome, CycleStep, StepReport
from watchdog.plugs.dryrun import DryRunPlug
from watchdog.plugs.factory import make_plug

__all__ = [
    "CycleOutcome",
    "CycleStep",
    "DryRunPlug",
    "Plug",
    "StepReport",
    "ensure_on",
    "failure_kind",
    "make_plug",
    "power_cycle",
    "unreachable_reading",
]
