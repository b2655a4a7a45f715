"""Builds the right :class:`~watchdog.plugs.base.Plug` for a node's plug configuration.

The composition root calls :func:`make_plug` and hands the result to orchestration, which
only ever sees the :class:`Plug` interface. ``dry_run`` (the global switch) wraps the real
driver, so a dry run still reads the device and proves it answers.
"""

from __future__ import annotations

from watchdog.config import Plug as PlugConfig
from watchdog.config import PlugType
from watchdog.plugs.base import Plug
from watchdog.plugs.dryrun import DryRunPlug
from watchdog.plugs.kasa import KasaPlug


def make_plug(cfg: PlugConfig, *, label: str, dry_run: bool = False) -> Plug:
    """The driver for ``cfg``; raises ConfigError for a combination no device speaks."""
    if cfg.type is PlugType.DRY_RUN:
        return DryRunPlug(None, label)
    real = KasaPlug(cfg, label=label)  # Kasa and Tapo both go through python-kasa
    return DryRunPlug(real, label) if dry_run else real
